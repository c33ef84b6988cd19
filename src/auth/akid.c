/* akid.c — SigV4 access key lookups with a small per-worker cache. The
 * table is small (keys per instance are few), so a linear array keeps it
 * obvious; full, it evicts the least recently used entry (wiping the whole
 * array let made-up ids flush the valid keys). Secrets are wiped when
 * evicted. */
#include "auth/akid.h"

#include <stdlib.h>
#include <string.h>

#include "util/tbucket.h"
#include "util/util.h"

typedef struct akid_entry {
	char id[AUTH_KEY_ID_LEN + 1];
	bool found;
	akid_info info;
	int64_t fetched_ms;
	int64_t used_ms; /* last hit: the eviction order */
} akid_entry;

struct akid_cache {
	db_pool *db;
	master_key mk;
	int ttl_ms;
	int max;
	int n;
	akid_entry *e;
	tbucket unknown; /* lookups of ids not known as valid keys */
	int lookup_rate;
	unsigned long queries, throttled; /* for /metrics */
};

typedef struct akid_pending {
	akid_cache *c;
	char id[AUTH_KEY_ID_LEN + 1];
	int64_t sent_ms;
	akid_cb cb;
	void *arg;
} akid_pending;

static const db_stmt stmt_akid = {
	"akid_lookup",
	"SELECT tenant, encode(sealed_secret, 'hex'), array_to_string(scopes, ',') FROM api_keys"
	" WHERE id = $1 AND kind = 'sigv4' AND revoked_at IS NULL",
	1};
const db_stmt *const auth_akid_stmts[] = {&stmt_akid, NULL};

akid_cache *akid_cache_new(db_pool *db, const master_key *mk, int ttl_ms, int max_entries, int lookup_rate)
{
	akid_cache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->db = db;
	c->mk = *mk;
	c->ttl_ms = ttl_ms;
	c->max = max_entries;
	c->lookup_rate = lookup_rate > 0 ? lookup_rate : 1;
	c->e = calloc((size_t)max_entries, sizeof(akid_entry));
	if (c->e == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void akid_cache_free(akid_cache *c)
{
	if (c == NULL)
		return;
	sodium_memzero(c->e, (size_t)c->max * sizeof(akid_entry));
	sodium_memzero(&c->mk, sizeof(c->mk));
	free(c->e);
	free(c);
}

void akid_stats(const akid_cache *c, unsigned long *queries, unsigned long *throttled)
{
	*queries = __atomic_load_n(&c->queries, __ATOMIC_RELAXED);
	*throttled = __atomic_load_n(&c->throttled, __ATOMIC_RELAXED);
}

static akid_entry *slot(akid_cache *c, const char *id, bool create)
{
	for (int i = 0; i < c->n; i++)
		if (strcmp(c->e[i].id, id) == 0)
			return &c->e[i];
	if (!create)
		return NULL;
	akid_entry *e;
	if (c->n == c->max) {
		e = &c->e[0];
		for (int i = 1; i < c->n; i++)
			if (c->e[i].used_ms < e->used_ms)
				e = &c->e[i];
		sodium_memzero(e, sizeof(*e));
	} else {
		e = &c->e[c->n++];
	}
	memset(e, 0, sizeof(*e));
	memcpy(e->id, id, sizeof(e->id));
	return e;
}

static void looked_up(db_result *res, void *arg)
{
	akid_pending *p = arg;
	akid_cache *c = p->c;
	if (res->status != DB_OK) {
		p->cb(AKID_UNAVAILABLE, NULL, p->arg);
		free(p);
		return;
	}
	akid_entry *e = slot(c, p->id, true);
	e->found = false;
	PGresult *r = res->results[0];
	if (PQntuples(r) == 1) {
		unsigned char sealed[128];
		size_t slen = 0;
		const char *hex = PQgetvalue(r, 0, 1);
		if (sodium_hex2bin(sealed, sizeof(sealed), hex, strlen(hex), NULL, &slen, NULL) == 0 &&
		    slen > MASTER_SEAL_OVERHEAD && slen - MASTER_SEAL_OVERHEAD < sizeof(e->info.secret) &&
		    master_open(&c->mk, sealed, slen, (unsigned char *)e->info.secret) &&
		    auth_scopes_parse(PQgetvalue(r, 0, 2), &e->info.scopes)) {
			e->info.secret[slen - MASTER_SEAL_OVERHEAD] = '\0';
			util_strlcpy(e->info.tenant, PQgetvalue(r, 0, 0), sizeof(e->info.tenant));
			e->found = true;
		}
		sodium_memzero(sealed, sizeof(sealed));
	}
	e->fetched_ms = p->sent_ms;
	e->used_ms = util_mono_ms();
	akid_info info = e->info;
	bool found = e->found;
	p->cb(found ? AKID_OK : AKID_UNKNOWN, found ? &info : NULL, p->arg);
	sodium_memzero(&info, sizeof(info));
	free(p);
}

void akid_lookup(akid_cache *c, const char *akid, akid_cb cb, void *arg)
{
	char id[AUTH_KEY_ID_LEN + 1];
	if (strlen(akid) != 4 + AUTH_KEY_ID_LEN || strncmp(akid, "OLAK", 4) != 0) {
		cb(AKID_UNKNOWN, NULL, arg);
		return;
	}
	for (int i = 0; i < AUTH_KEY_ID_LEN; i++) {
		char ch = akid[4 + i];
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
			cb(AKID_UNKNOWN, NULL, arg);
			return;
		}
		id[i] = ch;
	}
	id[AUTH_KEY_ID_LEN] = '\0';
	akid_entry *e = slot(c, id, false);
	int64_t now = util_mono_ms();
	if (e != NULL && now - e->fetched_ms < c->ttl_ms) {
		e->used_ms = now;
		akid_info info = e->info;
		cb(e->found ? AKID_OK : AKID_UNKNOWN, e->found ? &info : NULL, arg);
		sodium_memzero(&info, sizeof(info));
		return;
	}
	/* a valid key's refresh is never held back; anything else takes a
	 * token, so made-up ids cannot turn into a query each */
	if ((e == NULL || !e->found) && !tbucket_take(&c->unknown, c->lookup_rate, c->lookup_rate, util_mono_us(), NULL)) {
		__atomic_fetch_add(&c->throttled, 1, __ATOMIC_RELAXED);
		cb(AKID_THROTTLED, NULL, arg);
		return;
	}
	__atomic_fetch_add(&c->queries, 1, __ATOMIC_RELAXED);
	akid_pending *p = calloc(1, sizeof(*p));
	db_batch *b = db_batch_new();
	const char *params[1] = {id};
	if (p == NULL || b == NULL || !db_batch_add(b, &stmt_akid, params)) {
		free(p);
		db_batch_free(b);
		cb(AKID_UNAVAILABLE, NULL, arg);
		return;
	}
	p->c = c;
	memcpy(p->id, id, sizeof(p->id));
	p->sent_ms = util_mono_ms();
	p->cb = cb;
	p->arg = arg;
	db_exec(c->db, b, looked_up, p);
}
