/* cache.c — the per-worker cache of API key lookups (cache.h): key id ->
 * {hash, tenant, scopes, found, fetched_at} in a table of at most
 * auth_cache_size entries that evicts the least recently used one at a time
 * (auth/keytab.c), so a flood of made-up keys cannot flush the valid ones.
 * Unknown ids are cached too (a negative entry, for auth_cache_ttl_ms like
 * any other), and the queries for ids the cache does not know as valid keys
 * are bounded by a token bucket per worker (auth_lookup_rate a second): past
 * it such a request is answered 503 without a query or an entry, while keys
 * the cache knows (hits, and the refreshes of valid keys) are never held
 * back. */
#include "auth/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "auth/keytab.h"
#include "util/tbucket.h"

typedef struct lookup lookup;
typedef keytab_entry entry;

struct auth_cache {
	db_pool *db;
	int ttl_ms;   /* fresh: answer from the entry */
	int hard_ms;  /* stale but usable while one refresh runs */
	keytab *tab;
	tbucket unknown;     /* queries for ids not known as valid keys */
	double unknown_rate; /* per second; also the burst */
	unsigned long hits, misses, queries, throttled;
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
	"SELECT k.tenant, k.hash, array_to_string(k.scopes, ','), coalesce(t.idempotency_ttl_seconds, 0),"
	" coalesce(t.rate_limit_rps, -1), coalesce(t.rate_limit_burst, -1)"
	" FROM api_keys k JOIN tenants t ON t.name = k.tenant"
	" WHERE k.id = $1 AND k.kind = 'bearer' AND k.revoked_at IS NULL",
	1,
};
const db_stmt *const auth_cache_stmts[] = {&stmt_key_lookup, NULL};

auth_cache *auth_cache_new(db_pool *db, int ttl_ms, int max_entries, int lookup_rate)
{
	auth_cache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->db = db;
	c->ttl_ms = ttl_ms;
	/* Past ttl an entry still answers while its refresh is in flight, but
	 * never past 5 s after its query was sent: the revocation bound. */
	c->hard_ms = 2 * ttl_ms < 5000 ? 2 * ttl_ms : 5000;
	c->unknown_rate = lookup_rate > 0 ? lookup_rate : 1;
	c->tab = keytab_new((size_t)max_entries);
	if (c->tab == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void auth_cache_free(auth_cache *c)
{
	if (c == NULL)
		return;
	keytab_free(c->tab);
	free(c);
}

void auth_cache_stats(const auth_cache *c, auth_cache_counters *out)
{
	out->hits = __atomic_load_n(&c->hits, __ATOMIC_RELAXED);
	out->misses = __atomic_load_n(&c->misses, __ATOMIC_RELAXED);
	out->queries = __atomic_load_n(&c->queries, __ATOMIC_RELAXED);
	out->throttled = __atomic_load_n(&c->throttled, __ATOMIC_RELAXED);
	/* read without a lock from another thread: one word each, a gauge */
	out->evictions = keytab_evictions(c->tab);
	out->entries = keytab_count(c->tab);
}

/* One token of the bucket for queries about ids not known as valid keys. */
static bool may_query_unknown(auth_cache *c)
{
	if (tbucket_take(&c->unknown, c->unknown_rate, c->unknown_rate, util_mono_us(), NULL))
		return true;
	__atomic_fetch_add(&c->throttled, 1, __ATOMIC_RELAXED);
	return false;
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
	p.rate_limit_rps = e->rl_rps;
	p.rate_limit_burst = e->rl_burst;
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
	entry *e = keytab_put(c->tab, lk->id); /* evicted meanwhile: back in */
	entry snapshot = {0};
	if (e != NULL && e->pending == lk)
		e->pending = NULL;
	if (e == NULL) {
		e = &snapshot; /* out of memory: answer the waiters, keep nothing */
		memcpy(e->id, lk->id, sizeof(e->id));
	}
	if (res->status == DB_OK) {
		PGresult *r = res->results[0];
		e->found = false;
		if (PQntuples(r) == 1 && parse_bytea_hex(PQgetvalue(r, 0, 1), e->hash) &&
		    auth_scopes_parse(PQgetvalue(r, 0, 2), &e->scopes)) {
			util_strlcpy(e->tenant, PQgetvalue(r, 0, 0), sizeof(e->tenant));
			e->idem_ttl_s = atoi(PQgetvalue(r, 0, 3));
			e->rl_rps = atoi(PQgetvalue(r, 0, 4));
			e->rl_burst = atoi(PQgetvalue(r, 0, 5));
			e->found = true;
		}
		/* Age counts from when the query was sent: its snapshot can be
		 * no older than that, so the revocation bound holds exactly. */
		e->fetched_ms = lk->sent_ms;
		e->filled = true;
	}
	snapshot = *e; /* callbacks may reshape the table */
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
	__atomic_fetch_add(&c->queries, 1, __ATOMIC_RELAXED);
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
	entry *e = keytab_get(c->tab, id);
	int64_t age = e != NULL ? util_mono_ms() - e->fetched_ms : 0;
	if (e != NULL && e->filled && age < c->ttl_ms) {
		__atomic_fetch_add(&c->hits, 1, __ATOMIC_RELAXED);
		decide(e, hash, cb, arg);
		return;
	}
	if (e != NULL && e->filled && age < c->hard_ms) {
		/* Stale: answer now and let one request refresh it (an unknown
		 * id's refresh only when the bucket allows). */
		__atomic_fetch_add(&c->hits, 1, __ATOMIC_RELAXED);
		if (e->found || e->pending != NULL || may_query_unknown(c))
			start_lookup(c, e);
		decide(e, hash, cb, arg);
		return;
	}
	__atomic_fetch_add(&c->misses, 1, __ATOMIC_RELAXED);
	/* A query for an id the cache does not know as a valid key (new, or
	 * known not to exist) costs a token; none left: 503, no query, and no
	 * entry that would push a valid key out. */
	bool known_valid = e != NULL && e->filled && e->found;
	if ((e == NULL || e->pending == NULL) && !known_valid && !may_query_unknown(c)) {
		cb(AUTH_THROTTLED, NULL, arg);
		return;
	}
	if (e == NULL)
		e = keytab_put(c->tab, id);
	lookup *lk = e != NULL ? start_lookup(c, e) : NULL;
	if (lk == NULL || !add_waiter(lk, hash, cb, arg)) {
		/* Either the database refused at once (down) or memory ran out. */
		cb(AUTH_UNAVAILABLE, NULL, arg);
		return;
	}
}
