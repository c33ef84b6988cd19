/* hints.c — per-worker memory of keys seen completed, so that a replay can
 * skip the route's handler: the gate then sends the claim alone and
 * replays from its answer. A hint is only a guess: the database still
 * decides (a key that expired or was never committed is claimed, and the
 * handler runs after all, one round trip later). A direct-mapped table of
 * 64-bit hashes: a collision only costs that round trip. */
#include "idem/idem.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define HINTS 4096 /* power of two */

typedef struct hint {
	uint64_t h;
	long long expires;
} hint;

struct idem_hints {
	hint slot[HINTS];
};

idem_hints *idem_hints_new(void)
{
	return calloc(1, sizeof(idem_hints));
}

void idem_hints_free(idem_hints *hs)
{
	free(hs);
}

static uint64_t hash_of(const char *tenant, const char *key)
{
	static const unsigned char k[crypto_shorthash_KEYBYTES] = "onceledger-hints";
	unsigned char out[crypto_shorthash_BYTES];
	size_t tl = strlen(tenant), kl = strlen(key);
	unsigned char buf[40 + IDEM_KEY_MAX];
	if (tl > 39 || kl > IDEM_KEY_MAX)
		return 0;
	memcpy(buf, tenant, tl);
	buf[tl] = '\0';
	memcpy(buf + tl + 1, key, kl);
	crypto_shorthash(out, buf, tl + 1 + kl, k);
	uint64_t h;
	memcpy(&h, out, sizeof(h));
	return h | 1; /* 0 marks an empty slot */
}

void idem_hints_put(idem_hints *hs, const char *tenant, const char *key, long long expires)
{
	if (hs == NULL)
		return;
	uint64_t h = hash_of(tenant, key);
	hs->slot[h & (HINTS - 1)] = (hint){h, expires};
}

bool idem_hints_has(const idem_hints *hs, const char *tenant, const char *key, long long now)
{
	if (hs == NULL)
		return false;
	uint64_t h = hash_of(tenant, key);
	const hint *s = &hs->slot[h & (HINTS - 1)];
	return s->h == h && s->expires > now;
}
