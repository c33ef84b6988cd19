/* keytab.h — the table behind the API key cache (auth/cache.c): key id ->
 * entry, at most `max` entries, evicting the least recently used one at a
 * time when full. Buckets are chained and hashed with SipHash under a random
 * key (crypto_shorthash), so chosen key ids cannot pile into one chain. One
 * per worker: not thread-safe. */
#ifndef OL_AUTH_KEYTAB_H
#define OL_AUTH_KEYTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/keys.h"

typedef struct keytab_entry {
	char id[AUTH_KEY_ID_LEN + 1];
	bool filled;                  /* a lookup has answered at least once */
	bool found;                   /* false: no such (active) key */
	unsigned char hash[AUTH_HASH_LEN];
	char tenant[33];
	unsigned scopes;
	int idem_ttl_s;
	int rl_rps, rl_burst;         /* the tenant's rate limit, -1: the server's */
	int64_t fetched_ms;           /* when the query that filled it was sent */
	void *pending;                /* the lookup in flight for this id, if any */
	/* the table's links */
	struct keytab_entry *hnext, *newer, *older;
} keytab_entry;

typedef struct keytab keytab;

keytab *keytab_new(size_t max);
void keytab_free(keytab *t);
/* The entry of id, now the most recently used; NULL when absent. */
keytab_entry *keytab_get(keytab *t, const char *id);
/* The entry of id, created (zeroed but for its id) when absent, evicting
 * the least recently used entry when the table is full; NULL when out of
 * memory. Either way it is now the most recently used. */
keytab_entry *keytab_put(keytab *t, const char *id);
size_t keytab_count(const keytab *t);
unsigned long keytab_evictions(const keytab *t);

#endif
