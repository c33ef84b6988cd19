/* tbucket.h — a token bucket: refilled continuously at `rate` tokens a
 * second up to `burst`, one token per event. Used to bound the key lookups
 * unknown API keys cause (auth/cache.c) and for the per-key rate limits
 * (api/ratelimit.c). Not thread-safe: each lives in one worker. */
#ifndef OL_UTIL_TBUCKET_H
#define OL_UTIL_TBUCKET_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

typedef struct tbucket {
	double tokens;
	int64_t last_us; /* 0: never used (starts full) */
} tbucket;

/* Takes one token at now_us (a monotonic clock). False when the bucket is
 * empty; then *retry_us (when not NULL) is how long until one is back. */
bool tbucket_take(tbucket *b, double rate, double burst, int64_t now_us, int64_t *retry_us) OL_WARN_UNUSED;
/* The whole tokens left at now_us (after the refill). */
long tbucket_left(tbucket *b, double rate, double burst, int64_t now_us);
/* Microseconds until the bucket is full again at now_us. */
int64_t tbucket_full_in_us(const tbucket *b, double rate, double burst);

#endif
