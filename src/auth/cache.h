/* cache.h — per-worker cache of API key lookups, so the hot path needs no
 * database round trip; entries expire after auth_cache_ttl_ms (≤ 5 s),
 * which bounds how late a revocation takes effect on every instance. At
 * most auth_cache_size entries, the least recently used evicted first;
 * queries about ids not known as valid keys limited to auth_lookup_rate a
 * second per worker (cache.c). */
#ifndef OL_AUTH_CACHE_H
#define OL_AUTH_CACHE_H

#include "auth/keys.h"
#include "db/db.h"

typedef struct auth_principal {
	char tenant[33];
	char key_id[AUTH_KEY_ID_LEN + 1];
	unsigned scopes;
	int idempotency_ttl_s; /* the tenant's override, 0 = the server's */
	int rate_limit_rps;    /* the tenant's override, -1 = the server's (0: none) */
	int rate_limit_burst;  /* the tenant's override, -1 = the server's */
} auth_principal;

/* AUTH_THROTTLED: the key is not known to be valid and the worker's bucket
 * for such lookups is empty (answered 503 like AUTH_UNAVAILABLE). */
typedef enum { AUTH_OK = 0, AUTH_DENIED = 401, AUTH_UNAVAILABLE = 503, AUTH_THROTTLED = 1503 } auth_status;

typedef struct auth_cache auth_cache;
typedef void (*auth_cb)(auth_status st, const auth_principal *p, void *arg);

auth_cache *auth_cache_new(db_pool *db, int ttl_ms, int max_entries, int lookup_rate);
void auth_cache_free(auth_cache *c);
/* Checks an Authorization header value ("Bearer <key>"); cb runs exactly
 * once, synchronously on a cache hit. */
void auth_check(auth_cache *c, const char *authorization, auth_cb cb, void *arg);
typedef struct auth_cache_counters {
	unsigned long hits, misses; /* answered from the cache, or not */
	unsigned long queries;      /* key lookups sent to PostgreSQL */
	unsigned long throttled;    /* lookups refused by the bucket (503) */
	unsigned long evictions;    /* entries evicted (least recently used) */
	unsigned long entries;      /* entries now */
} auth_cache_counters;

/* Counters for /metrics (read from any thread). */
void auth_cache_stats(const auth_cache *c, auth_cache_counters *out);

#endif
