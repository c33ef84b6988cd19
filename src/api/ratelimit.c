/* ratelimit.c — per-key token buckets and per-tenant counters
 * (ratelimit.h). Keys hash to one of RL_STRIPES stripes, each a mutex over
 * a chained table; a request holds one stripe's lock for a lookup and a few
 * arithmetic operations. A bucket that is full carries no state (a new one
 * starts full), so when a stripe holds more than its share of idle_keys the
 * full buckets are dropped: memory stays bounded by the keys actually being
 * limited. Their counts move to the tenant totals first. */
#include "api/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "auth/keys.h"
#include "util/tbucket.h"

#define RL_STRIPES 16
#define RL_BUCKETS 256 /* chains per stripe */

typedef struct rl_key {
	char id[AUTH_KEY_ID_LEN + 1];
	char tenant[33];
	tbucket b;
	double rps, burst; /* as last used: a full bucket is known from them */
	unsigned long allowed, limited;
	struct rl_key *next;
} rl_key;

typedef struct rl_tenant {
	char name[33];
	unsigned long allowed, limited;
	struct rl_tenant *next;
} rl_tenant;

typedef struct rl_stripe {
	pthread_mutex_t mu;
	rl_key *chains[RL_BUCKETS];
	long count;
} rl_stripe;

struct rl_table {
	rl_stripe stripes[RL_STRIPES];
	long per_stripe; /* keys before full buckets are dropped */
	unsigned char hkey[crypto_shorthash_KEYBYTES];
	pthread_mutex_t tenants_mu; /* the counts of dropped buckets */
	rl_tenant *tenants;
};

rl_table *rl_new(long idle_keys)
{
	rl_table *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	for (int i = 0; i < RL_STRIPES; i++)
		pthread_mutex_init(&t->stripes[i].mu, NULL);
	pthread_mutex_init(&t->tenants_mu, NULL);
	t->per_stripe = idle_keys / RL_STRIPES > 16 ? idle_keys / RL_STRIPES : 16;
	randombytes_buf(t->hkey, sizeof(t->hkey));
	return t;
}

void rl_free(rl_table *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < RL_STRIPES; i++) {
		for (int j = 0; j < RL_BUCKETS; j++) {
			for (rl_key *k = t->stripes[i].chains[j], *next; k != NULL; k = next) {
				next = k->next;
				free(k);
			}
		}
		pthread_mutex_destroy(&t->stripes[i].mu);
	}
	for (rl_tenant *n = t->tenants, *next; n != NULL; n = next) {
		next = n->next;
		free(n);
	}
	pthread_mutex_destroy(&t->tenants_mu);
	free(t);
}

static uint64_t hash_of(const rl_table *t, const char *id)
{
	return util_shorthash64(t->hkey, id);
}

/* Adds a dropped bucket's counts to its tenant's totals. */
static void fold(rl_table *t, const rl_key *k)
{
	pthread_mutex_lock(&t->tenants_mu);
	rl_tenant *n = t->tenants;
	while (n != NULL && strcmp(n->name, k->tenant) != 0)
		n = n->next;
	if (n == NULL && (n = calloc(1, sizeof(*n))) != NULL) {
		memcpy(n->name, k->tenant, sizeof(n->name));
		n->next = t->tenants;
		t->tenants = n;
	}
	if (n != NULL) {
		n->allowed += k->allowed;
		n->limited += k->limited;
	}
	pthread_mutex_unlock(&t->tenants_mu);
}

/* Drops the stripe's full buckets (they hold nothing a new one would not). */
static void drop_full(rl_table *t, rl_stripe *s, int64_t now_us)
{
	for (int j = 0; j < RL_BUCKETS; j++) {
		for (rl_key **p = &s->chains[j]; *p != NULL;) {
			rl_key *k = *p;
			if (tbucket_left(&k->b, k->rps, k->burst, now_us) >= (long)k->burst) {
				*p = k->next;
				fold(t, k);
				free(k);
				s->count--;
				continue;
			}
			p = &k->next;
		}
	}
}

void rl_take(rl_table *t, const char *key_id, const char *tenant, double rps, double burst, int64_t now_us,
	     rl_verdict *out)
{
	memset(out, 0, sizeof(*out));
	out->quota = (long)burst;
	out->window_s = (long)ceil(burst / rps);
	if (out->window_s < 1)
		out->window_s = 1;
	uint64_t h = hash_of(t, key_id);
	rl_stripe *s = &t->stripes[h % RL_STRIPES];
	pthread_mutex_lock(&s->mu);
	rl_key **chain = &s->chains[(h / RL_STRIPES) % RL_BUCKETS];
	rl_key *k = *chain;
	while (k != NULL && strcmp(k->id, key_id) != 0)
		k = k->next;
	if (k == NULL) {
		if (s->count >= t->per_stripe)
			drop_full(t, s, now_us);
		k = calloc(1, sizeof(*k));
		if (k == NULL) { /* out of memory: let it through */
			pthread_mutex_unlock(&s->mu);
			out->allowed = true;
			out->remaining = out->quota;
			return;
		}
		snprintf(k->id, sizeof(k->id), "%s", key_id);
		snprintf(k->tenant, sizeof(k->tenant), "%s", tenant);
		k->next = *chain;
		*chain = k;
		s->count++;
	}
	k->rps = rps;
	k->burst = burst;
	int64_t retry_us = 0;
	out->allowed = tbucket_take(&k->b, rps, burst, now_us, &retry_us);
	if (out->allowed)
		k->allowed++;
	else
		k->limited++;
	out->remaining = tbucket_left(&k->b, rps, burst, now_us);
	/* Another token in: from what is left of the current one. */
	double frac = k->b.tokens - floor(k->b.tokens);
	out->reset_s = out->remaining >= out->quota ? 0 : (long)ceil((1.0 - frac) / rps);
	pthread_mutex_unlock(&s->mu);
	if (!out->allowed) {
		long ra = (long)ceil((double)retry_us / 1e6);
		out->retry_after_s = ra > out->reset_s ? ra : out->reset_s;
		if (out->retry_after_s < 1)
			out->retry_after_s = 1;
		out->reset_s = out->retry_after_s;
	}
}

static void count(json_t *sums, const char *tenant, unsigned long allowed, unsigned long limited)
{
	json_t *e = json_object_get(sums, tenant);
	if (e == NULL) {
		e = json_pack("[I, I]", (json_int_t)0, (json_int_t)0);
		json_object_set_new(sums, tenant, e);
	}
	json_array_set_new(e, 0, json_integer(json_integer_value(json_array_get(e, 0)) + (json_int_t)allowed));
	json_array_set_new(e, 1, json_integer(json_integer_value(json_array_get(e, 1)) + (json_int_t)limited));
}

void rl_metrics(rl_table *t, struct evbuffer *out)
{
	json_t *sums = json_object();
	/* Every lock, in the order rl_take takes them (stripe, then tenants),
	 * so that no bucket is dropped and folded between the two reads. */
	for (int i = 0; i < RL_STRIPES; i++)
		pthread_mutex_lock(&t->stripes[i].mu);
	pthread_mutex_lock(&t->tenants_mu);
	for (rl_tenant *n = t->tenants; n != NULL; n = n->next)
		count(sums, n->name, n->allowed, n->limited);
	for (int i = 0; i < RL_STRIPES; i++)
		for (int j = 0; j < RL_BUCKETS; j++)
			for (rl_key *k = t->stripes[i].chains[j]; k != NULL; k = k->next)
				count(sums, k->tenant, k->allowed, k->limited);
	pthread_mutex_unlock(&t->tenants_mu);
	for (int i = RL_STRIPES - 1; i >= 0; i--)
		pthread_mutex_unlock(&t->stripes[i].mu);
	evbuffer_add_printf(out, "# TYPE onceledger_ratelimit_requests_total counter\n");
	const char *tenant;
	json_t *e;
	json_object_foreach(sums, tenant, e)
	{
		evbuffer_add_printf(out, "onceledger_ratelimit_requests_total{tenant=\"%s\",result=\"allowed\"} %lld\n", tenant,
				    (long long)json_integer_value(json_array_get(e, 0)));
		evbuffer_add_printf(out, "onceledger_ratelimit_requests_total{tenant=\"%s\",result=\"limited\"} %lld\n", tenant,
				    (long long)json_integer_value(json_array_get(e, 1)));
	}
	json_decref(sums);
}
