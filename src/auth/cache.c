/* cache.c — open-addressing table of key id -> {hash, tenant, scopes,
 * revoked, fetched_at}. Unknown ids are cached too, so a flood of made-up
 * keys cannot turn into a flood of queries. When the table fills it is
 * simply emptied: lookups are cheap and this keeps the code obvious. */
#include "auth/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

typedef struct lookup lookup;

typedef struct entry {
	char id[AUTH_KEY_ID_LEN + 1]; /* "" = empty slot */
	bool filled;                  /* a lookup has answered at least once */
	bool found;                   /* false: no such (active) key */
	unsigned char hash[AUTH_HASH_LEN];
	char tenant[33];
	unsigned scopes;
	int idem_ttl_s;
	int64_t fetched_ms;           /* when the query that filled it was sent */
	lookup *pending;              /* the lookup in flight for this id, if any */
} entry;

struct auth_cache {
	db_pool *db;
	int ttl_ms;   /* fresh: answer from the entry */
	int hard_ms;  /* stale but usable while one refresh runs */
	size_t cap;   /* power of two */
	size_t count;
	size_t max;
	entry *slots;
	unsigned long hits, misses;
};

typedef struct waiter {
	unsigned char hash[AUTH_HASH_LEN];
	auth_cb cb;
	void *arg;
} waiter;

/* One query per key id at a time; requests that cannot be answered from the
 * cache wait on it instead of sending their own. */
struct lookup {
	auth_cache *cache;
	char id[AUTH_KEY_ID_LEN + 1];
	int64_t sent_ms;
	waiter *w;
	size_t nw, capw;
};

static const db_stmt stmt_key_lookup = {
	"auth_key_lookup",
	"SELECT k.tenant, k.hash, array_to_string(k.scopes, ','), coalesce(t.idempotency_ttl_seconds, 0)"
	" FROM api_keys k JOIN tenants t ON t.name = k.tenant"
	" WHERE k.id = $1 AND k.kind = 'bearer' AND k.revoked_at IS NULL",
	1,
};

auth_cache *auth_cache_new(db_pool *db, int ttl_ms, int max_entries)
{
	auth_cache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->db = db;
	c->ttl_ms = ttl_ms;
	/* Past ttl an entry still answers while its refresh is in flight, but
	 * never past 5 s after its query was sent: the revocation bound. */
	c->hard_ms = 2 * ttl_ms < 5000 ? 2 * ttl_ms : 5000;
	c->max = (size_t)max_entries;
	c->cap = 16;
	while (c->cap < c->max * 2)
		c->cap <<= 1;
	c->slots = calloc(c->cap, sizeof(entry));
	if (c->slots == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void auth_cache_free(auth_cache *c)
{
	if (c == NULL)
		return;
	free(c->slots);
	free(c);
}

void auth_cache_stats(const auth_cache *c, unsigned long *hits, unsigned long *misses)
{
	*hits = __atomic_load_n(&c->hits, __ATOMIC_RELAXED);
	*misses = __atomic_load_n(&c->misses, __ATOMIC_RELAXED);
}

static size_t slot_of(const auth_cache *c, const char *id)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a over the hex id */
	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)h & (c->cap - 1);
}

static entry *find(auth_cache *c, const char *id, bool create)
{
	size_t i = slot_of(c, id);
	for (;;) {
		entry *e = &c->slots[i];
		if (e->id[0] == '\0') {
			if (!create)
				return NULL;
			if (c->count >= c->max) {
				memset(c->slots, 0, c->cap * sizeof(entry));
				c->count = 0;
				return find(c, id, true);
			}
			memcpy(e->id, id, sizeof(e->id));
			c->count++;
			return e;
		}
		if (strcmp(e->id, id) == 0)
			return e;
		i = (i + 1) & (c->cap - 1);
	}
}

static void decide(const entry *e, const unsigned char *hash, auth_cb cb, void *arg)
{
	if (!e->found || sodium_memcmp(e->hash, hash, AUTH_HASH_LEN) != 0) {
		cb(AUTH_DENIED, NULL, arg);
		return;
	}
	auth_principal p;
	memcpy(p.tenant, e->tenant, sizeof(p.tenant));
	memcpy(p.key_id, e->id, sizeof(p.key_id));
	p.scopes = e->scopes;
	p.idempotency_ttl_s = e->idem_ttl_s;
	cb(AUTH_OK, &p, arg);
}

static bool parse_bytea_hex(const char *s, unsigned char out[AUTH_HASH_LEN])
{
	size_t bin_len = 0;
	if (strncmp(s, "\\x", 2) != 0)
		return false;
	return sodium_hex2bin(out, AUTH_HASH_LEN, s + 2, strlen(s + 2), NULL, &bin_len, NULL) == 0 &&
	       bin_len == AUTH_HASH_LEN;
}

static void lookup_done(db_result *res, void *arg)
{
	lookup *lk = arg;
	auth_cache *c = lk->cache;
	entry *e = find(c, lk->id, true);
	if (e->pending == lk)
		e->pending = NULL;
	if (res->status == DB_OK) {
		PGresult *r = res->results[0];
		e->found = false;
		if (PQntuples(r) == 1 && parse_bytea_hex(PQgetvalue(r, 0, 1), e->hash) &&
		    auth_scopes_parse(PQgetvalue(r, 0, 2), &e->scopes)) {
			util_strlcpy(e->tenant, PQgetvalue(r, 0, 0), sizeof(e->tenant));
			e->idem_ttl_s = atoi(PQgetvalue(r, 0, 3));
			e->found = true;
		}
		/* Age counts from when the query was sent: its snapshot can be
		 * no older than that, so the revocation bound holds exactly. */
		e->fetched_ms = lk->sent_ms;
		e->filled = true;
	}
	entry snapshot = *e; /* callbacks may reshape the table */
	for (size_t i = 0; i < lk->nw; i++) {
		if (res->status != DB_OK)
			lk->w[i].cb(AUTH_UNAVAILABLE, NULL, lk->w[i].arg);
		else
			decide(&snapshot, lk->w[i].hash, lk->w[i].cb, lk->w[i].arg);
	}
	free(lk->w);
	free(lk);
}

/* Starts the lookup for e's id unless one is in flight; returns it. */
static lookup *start_lookup(auth_cache *c, entry *e)
{
	if (e->pending != NULL)
		return e->pending;
	lookup *lk = calloc(1, sizeof(*lk));
	db_batch *b = db_batch_new();
	const char *params[1] = {e->id};
	if (lk == NULL || b == NULL || !db_batch_add(b, &stmt_key_lookup, params)) {
		free(lk);
		db_batch_free(b);
		return NULL;
	}
	lk->cache = c;
	memcpy(lk->id, e->id, sizeof(lk->id));
	lk->sent_ms = util_mono_ms();
	e->pending = lk;
	db_exec(c->db, b, lookup_done, lk);
	/* db_exec may have answered synchronously (database down) and freed lk. */
	return e->pending;
}

static bool add_waiter(lookup *lk, const unsigned char *hash, auth_cb cb, void *arg)
{
	if (lk->nw == lk->capw) {
		size_t ncap = lk->capw ? lk->capw * 2 : 4;
		waiter *nw = realloc(lk->w, ncap * sizeof(*nw));
		if (nw == NULL)
			return false;
		lk->w = nw;
		lk->capw = ncap;
	}
	memcpy(lk->w[lk->nw].hash, hash, AUTH_HASH_LEN);
	lk->w[lk->nw].cb = cb;
	lk->w[lk->nw].arg = arg;
	lk->nw++;
	return true;
}

void auth_check(auth_cache *c, const char *authorization, auth_cb cb, void *arg)
{
	const char *key;
	size_t len;
	char id[AUTH_KEY_ID_LEN + 1];
	if (!auth_bearer(authorization, &key, &len) || !auth_key_parse(key, len, id)) {
		cb(AUTH_DENIED, NULL, arg);
		return;
	}
	unsigned char hash[AUTH_HASH_LEN];
	auth_key_hash(key, len, hash);
	entry *e = find(c, id, true);
	int64_t age = util_mono_ms() - e->fetched_ms;
	if (e->filled && age < c->ttl_ms) {
		__atomic_fetch_add(&c->hits, 1, __ATOMIC_RELAXED);
		decide(e, hash, cb, arg);
		return;
	}
	if (e->filled && age < c->hard_ms) {
		/* Stale: answer now and let one request refresh it. */
		__atomic_fetch_add(&c->hits, 1, __ATOMIC_RELAXED);
		start_lookup(c, e);
		decide(e, hash, cb, arg);
		return;
	}
	__atomic_fetch_add(&c->misses, 1, __ATOMIC_RELAXED);
	lookup *lk = start_lookup(c, e);
	if (lk == NULL || !add_waiter(lk, hash, cb, arg)) {
		/* Either the database refused at once (down) or memory ran out. */
		cb(AUTH_UNAVAILABLE, NULL, arg);
		return;
	}
}
