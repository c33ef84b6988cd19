/* ratelimit.h — per-key request rate limits (docs/operations.md "Rate
 * limits"): a token bucket per API key, shared by the workers of one daemon
 * (per instance, not across instances), refilled at `rps` tokens a second up
 * to `burst`. Also the per-tenant counts of allowed and limited requests for
 * /metrics. Thread-safe (striped locks). */
#ifndef OL_API_RATELIMIT_H
#define OL_API_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

typedef struct rl_table rl_table;

typedef struct rl_verdict {
	bool allowed;
	long quota;       /* the burst: RateLimit-Policy q */
	long window_s;    /* ceil(burst / rps): RateLimit-Policy w */
	long remaining;   /* whole tokens left after this request: RateLimit r */
	long reset_s;     /* seconds until another token (0 when full): RateLimit t */
	long retry_after_s; /* when refused: >= 1 and >= reset_s */
} rl_verdict;

/* idle_keys: buckets kept before full (idle) ones are dropped. */
rl_table *rl_new(long idle_keys);
void rl_free(rl_table *t);
/* One request of key_id (of tenant) at now_us (monotonic): takes a token
 * from its bucket. rps > 0, burst >= 1. */
void rl_take(rl_table *t, const char *key_id, const char *tenant, double rps, double burst, int64_t now_us,
	     rl_verdict *out);
/* Appends onceledger_ratelimit_requests_total{tenant,result} to out. */
void rl_metrics(rl_table *t, struct evbuffer *out);

#endif
