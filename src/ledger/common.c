/* common.c — helpers every ledger file uses: typed attributes of items in
 * DynamoDB JSON, keys, ids, and the account's API object. */
#include "ledger/ledger_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util/util.h"

const char *lg_s(const json_t *item, const char *name)
{
	return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

int64_t lg_n(const json_t *item, const char *name)
{
	const char *n = json_string_value(json_object_get(json_object_get(item, name), "N"));
	if (n == NULL)
		return 0;
	errno = 0;
	long long v = strtoll(n, NULL, 10);
	return errno == 0 ? (int64_t)v : 0;
}

json_t *lg_av_s(const char *s)
{
	return json_pack("{s:s}", "S", s);
}

json_t *lg_av_n(int64_t n)
{
	char b[24];
	snprintf(b, sizeof(b), "%lld", (long long)n);
	return json_pack("{s:s}", "N", b);
}

json_t *lg_key(const char *prefix, const char *id, const char *sk)
{
	char pk[128];
	snprintf(pk, sizeof(pk), "%s%s", prefix, id);
	return json_pack("{s:{s:s}, s:{s:s}}", "PK", "S", pk, "SK", "S", sk);
}

lg_status lg_err_status(const it_reply *r)
{
	if (!r->retryable)
		log_error("ledger_item_call_failed", "{s:s, s:s}", "type", r->err_type, "message", r->err_msg ? r->err_msg : "");
	return r->retryable ? LG_UNAVAILABLE : LG_FAILED;
}

lg_status lg_list_err_status(const it_reply *r, json_t **extra)
{
	*extra = NULL;
	if (r->err_type != NULL && strcmp(r->err_type, "ValidationException") == 0) {
		*extra = json_pack("{s:s}", "field", "cursor");
		return LG_INVALID;
	}
	return lg_err_status(r);
}

bool lg_is_world(const char *id, const char **cur)
{
	if (id == NULL || strncmp(id, LG_WORLD_PREFIX, strlen(LG_WORLD_PREFIX)) != 0)
		return false;
	if (cur != NULL)
		*cur = id + strlen(LG_WORLD_PREFIX);
	return true;
}

char *lg_dump(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

void lg_call(const lg_ctx *c, int flags, const char *op, json_t *req, it_done cb, void *arg)
{
	it_call_tx(c->items, c->tx, flags | IT_INTERNAL, c->tenant, op, req, cb, arg);
}

void lg_new_id(const char *prefix, char *out, size_t len)
{
	char rnd[21];
	util_random_hex(rnd, 10);
	snprintf(out, len, "%s%012llx%s", prefix, (unsigned long long)(util_now_us() / 1000) & 0xffffffffffffULL, rnd);
}

json_t *lg_doc_with(const json_t *item, const char *status)
{
	const char *text = lg_s(item, "doc");
	json_t *d = text ? json_loads(text, 0, NULL) : NULL;
	if (d != NULL)
		json_object_set_new(d, "status", json_string(status));
	return d;
}

bool lg_reason_failed(const json_t *reason)
{
	return strcmp(json_string_value(json_object_get(reason, "Code")) ?: "", "ConditionalCheckFailed") == 0;
}

lg_status lg_reused_id(const json_t *reason, const char *params, const char *kind, json_t **obj)
{
	const json_t *old = json_object_get(reason, "Item");
	const char *p = lg_s(old, "params"), *doc = lg_s(old, "doc");
	*obj = NULL;
	if (p != NULL && doc != NULL && params != NULL && strcmp(p, params) == 0) {
		*obj = json_loads(doc, 0, NULL);
		return *obj != NULL ? LG_DUPLICATE : LG_FAILED;
	}
	*obj = json_pack("{s:s}", kind, lg_s(old, "id") ?: "");
	return LG_EXISTS;
}

lg_status lg_legs_failure(const lg_leg *legs, const bool *present, int n, const json_t *reasons, int at, json_t **extra)
{
	lg_status best = LG_UNAVAILABLE;
	int best_rank = 100;
	*extra = NULL;
	for (int l = 0; l < n; l++) {
		if (present != NULL && !present[l])
			continue;
		json_t *reason = json_array_get(reasons, (size_t)at++);
		if (!lg_reason_failed(reason))
			continue;
		int rank;
		json_t *x;
		lg_status st = lg_leg_failure(&legs[l], json_object_get(reason, "Item"), &rank, &x);
		if (rank < best_rank) {
			json_decref(*extra);
			*extra = x;
			best = st;
			best_rank = rank;
		} else {
			json_decref(x);
		}
	}
	return best;
}

/* ---- the expiry sweep of holds and orders ---- */

typedef struct sweep {
	it_store *items;
	int outstanding;
	long done;
	json_t *(*build)(const json_t *item);
	void (*cb)(long n, void *arg);
	void *arg;
} sweep;

static void sweep_one_done(it_reply *r, void *arg)
{
	sweep *s = arg;
	if (r->err_type == NULL)
		s->done++;
	if (--s->outstanding == 0) {
		s->cb(s->done, s->arg);
		free(s);
	}
}

static void sweep_due(json_t *rows, void *arg)
{
	sweep *s = arg;
	if (rows == NULL) {
		s->cb(-1, s->arg);
		free(s);
		return;
	}
	s->outstanding = 1; /* ours, dropped at the end */
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		json_t *req = s->build(json_object_get(row, "item"));
		if (req == NULL)
			continue;
		s->outstanding++;
		/* Standalone: the condition on the status makes an object that
		 * changed meanwhile a no-op (cancelled). */
		it_call_tx(s->items, NULL, IT_INTERNAL, json_string_value(json_object_get(row, "tenant")), "TransactWriteItems", req,
			   sweep_one_done, s);
		json_decref(req);
	}
	it_reply none = {.err_type = "none"};
	sweep_one_done(&none, s);
}

void lg_sweep_due(it_store *items, const char *open_pk, int limit, json_t *(*build)(const json_t *item),
		  void (*cb)(long n, void *arg), void *arg)
{
	sweep *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		cb(-1, arg);
		return;
	}
	s->items = items;
	s->build = build;
	s->cb = cb;
	s->arg = arg;
	char below[24];
	snprintf(below, sizeof(below), "%016lld", (long long)util_now_us() + 1);
	it_system_due(items, "open_by_expiry", open_pk, below, limit, sweep_due, s);
}
