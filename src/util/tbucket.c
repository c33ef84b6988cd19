/* tbucket.c — token buckets (tbucket.h). */
#include "util/tbucket.h"

#include <math.h>

static void refill(tbucket *b, double rate, double burst, int64_t now_us)
{
	if (b->last_us == 0) {
		b->tokens = burst;
		b->last_us = now_us;
		return;
	}
	if (now_us > b->last_us) {
		b->tokens += (double)(now_us - b->last_us) * rate / 1e6;
		b->last_us = now_us;
	}
	if (b->tokens > burst)
		b->tokens = burst;
}

bool tbucket_take(tbucket *b, double rate, double burst, int64_t now_us, int64_t *retry_us)
{
	refill(b, rate, burst, now_us);
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return true;
	}
	if (retry_us != NULL)
		*retry_us = rate > 0 ? (int64_t)ceil((1.0 - b->tokens) * 1e6 / rate) : INT64_MAX;
	return false;
}

long tbucket_left(tbucket *b, double rate, double burst, int64_t now_us)
{
	refill(b, rate, burst, now_us);
	return (long)floor(b->tokens);
}

int64_t tbucket_full_in_us(const tbucket *b, double rate, double burst)
{
	if (b->last_us == 0 || b->tokens >= burst)
		return 0;
	return rate > 0 ? (int64_t)ceil((burst - b->tokens) * 1e6 / rate) : INT64_MAX;
}
