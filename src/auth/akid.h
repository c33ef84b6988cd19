/* akid.h — per-worker cache of SigV4 access keys: access key id -> tenant,
 * scopes and the secret (unsealed with the master key), looked up in
 * api_keys when missing or older than the cache TTL (<= 5 s, the same
 * revocation bound as bearer keys). Full, it evicts the least recently used
 * entry; lookups of ids not known as valid keys are bounded by a token
 * bucket (lookup_rate a second), as for bearer keys (auth/cache.h). */
#ifndef OL_AUTH_AKID_H
#define OL_AUTH_AKID_H

#include "auth/keys.h"
#include "auth/master.h"
#include "db/db.h"

typedef struct akid_info {
	char tenant[33];
	unsigned scopes;
	char secret[64];
} akid_info;

/* AKID_THROTTLED: not known as a valid key and the lookup bucket is empty. */
typedef enum { AKID_OK = 0, AKID_UNKNOWN, AKID_UNAVAILABLE, AKID_THROTTLED } akid_status;
typedef void (*akid_cb)(akid_status st, const akid_info *info, void *arg);
typedef struct akid_cache akid_cache;

akid_cache *akid_cache_new(db_pool *db, const master_key *mk, int ttl_ms, int max_entries, int lookup_rate);
void akid_cache_free(akid_cache *c);
/* Lookups sent to PostgreSQL and refused by the bucket, for /metrics (read
 * from any thread). */
void akid_stats(const akid_cache *c, unsigned long *queries, unsigned long *throttled);
/* Looks up "OLAK" + 16 hex; cb runs once, synchronously on a hit. */
void akid_lookup(akid_cache *c, const char *access_key_id, akid_cb cb, void *arg);

#endif
