/* test_ratelimit.c — per-key token buckets (api/ratelimit.h): the verdict's
 * numbers (the RateLimit fields), keys independent, a refill, Retry-After
 * never before the reset, idle buckets dropped without losing the
 * per-tenant counts. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "api/ratelimit.h"
#include "tap.h"

static bool metrics_has(rl_table *t, const char *line)
{
	struct evbuffer *b = evbuffer_new();
	rl_metrics(t, b);
	evbuffer_add(b, "", 1);
	bool found = strstr((const char *)evbuffer_pullup(b, -1), line) != NULL;
	evbuffer_free(b);
	return found;
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	rl_table *t = rl_new(16);
	rl_verdict v;
	int64_t now = 5000000;
	rl_take(t, "aaaaaaaaaaaaaaaa", "acme", 2, 4, now, &v);
	CHECK(v.allowed && v.quota == 4 && v.window_s == 2 && v.remaining == 3 && v.reset_s == 1,
	      "first request: q=4, w=ceil(4/2)=2, r=3, t=1");
	for (int i = 0; i < 3; i++)
		rl_take(t, "aaaaaaaaaaaaaaaa", "acme", 2, 4, now, &v);
	CHECK(v.allowed && v.remaining == 0, "the burst is used up");
	rl_take(t, "aaaaaaaaaaaaaaaa", "acme", 2, 4, now, &v);
	CHECK(!v.allowed && v.remaining == 0 && v.retry_after_s == 1 && v.reset_s == v.retry_after_s,
	      "refused: Retry-After 1 s (a token every 0.5 s, rounded up), t equal");
	rl_take(t, "bbbbbbbbbbbbbbbb", "acme", 2, 4, now, &v);
	CHECK(v.allowed && v.remaining == 3, "another key has its own bucket");
	rl_take(t, "aaaaaaaaaaaaaaaa", "acme", 2, 4, now + 500000, &v);
	CHECK(v.allowed && v.remaining == 0, "0.5 s later one token is back, and taken");
	rl_take(t, "cccccccccccccccc", "slow", 0.5, 1, now, &v);
	rl_take(t, "cccccccccccccccc", "slow", 0.5, 1, now, &v);
	CHECK(!v.allowed && v.retry_after_s == 2 && v.window_s == 2, "half a token a second: retry after 2 s");
	CHECK(metrics_has(t, "onceledger_ratelimit_requests_total{tenant=\"acme\",result=\"allowed\"} 6\n") &&
		      metrics_has(t, "onceledger_ratelimit_requests_total{tenant=\"acme\",result=\"limited\"} 1\n"),
	      "per-tenant counts");

	/* Past the table's share, full buckets are dropped; the counts stay. */
	int64_t later = now + 100 * 1000000LL;
	char id[17];
	for (int i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "%016x", i);
		rl_take(t, id, "many", 1000, 1000, later, &v);
	}
	CHECK(metrics_has(t, "onceledger_ratelimit_requests_total{tenant=\"acme\",result=\"allowed\"} 6\n") &&
		      metrics_has(t, "onceledger_ratelimit_requests_total{tenant=\"many\",result=\"allowed\"} 2000\n"),
	      "counts survive dropped buckets");
	rl_take(t, "aaaaaaaaaaaaaaaa", "acme", 2, 4, later, &v);
	CHECK(v.allowed && v.remaining == 3, "a dropped (full) bucket starts full again");
	rl_free(t);
	return it_test_done();
}
