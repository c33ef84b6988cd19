/* orders.c — checkout orders (docs/api.md §6, docs/orders.md) on the ledger
 * tables: the state machine created → paid → partially_refunded →
 * refunded, created → cancelled, created → expired. Each call is ONE call
 * of a function of sql/014_ledger_holds_orders.sql in the request's
 * transaction: the transition is a conditional update of the order row
 * (exactly one of two racing transitions wins) before its money moves
 * (a transfer with order_id; a busy merchant's credit through its inbox),
 * and a refusal changes nothing. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/util.h"

static const db_stmt st_create = {
	"lg_order_create",
	"SELECT outcome, doc, events FROM ledger.order_create($1, $2, $3, $4, $5::bigint, $6, $7::bigint, $8, $9, $10::boolean)", 10};
static const db_stmt st_get = {"lg_order_get", "SELECT outcome, doc, events FROM ledger.order_get($1, $2, $3::boolean)", 3};
static const db_stmt st_settle = {"lg_order_settle",
				  "SELECT outcome, doc, events FROM ledger.order_settle($1, $2, $3::boolean)", 3};
static const db_stmt st_cancel = {"lg_order_cancel",
				  "SELECT outcome, doc, events FROM ledger.order_cancel($1, $2, $3::boolean)", 3};
static const db_stmt st_refund = {
	"lg_order_refund", "SELECT outcome, doc, events FROM ledger.order_refund($1, $2, $3::bigint, $4::boolean)", 4};
static const db_stmt st_list = {
	"lg_orders_list", "SELECT doc, created_us, id FROM ledger.orders_list($1, $2, $3, $4::integer, $5::bigint, $6)", 6};
static const db_stmt st_sweep = {"lg_orders_sweep", "SELECT ledger.orders_sweep($1::integer)", 1};
const db_stmt *const lg_orders_stmts[] = {&st_create, &st_get, &st_settle, &st_cancel, &st_refund, &st_list, &st_sweep, NULL};

void lg_order_create(const lg_ctx *c, const lg_order_new *o, lg_cb cb, void *arg)
{
	char id[80], amount[24], expires[24];
	if (o->id != NULL)
		util_strlcpy(id, o->id, sizeof(id));
	else
		lg_new_id("ord_", id, sizeof(id));
	snprintf(amount, sizeof(amount), "%lld", (long long)o->amount);
	snprintf(expires, sizeof(expires), "%lld", (long long)o->expires_in_s);
	json_t *empty = json_object();
	json_t *p = json_pack("{s:s, s:s, s:I, s:s, s:I, s:O}", "customer", o->customer, "merchant", o->merchant, "amount",
			      (json_int_t)o->amount, "currency", o->currency, "expires_in", (json_int_t)o->expires_in_s, "metadata",
			      o->metadata ? o->metadata : empty);
	json_decref(empty);
	char *params = p != NULL ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(p);
	char *meta = o->metadata != NULL ? lg_dump(o->metadata) : NULL;
	if (params == NULL || (o->metadata != NULL && meta == NULL)) {
		free(params);
		free(meta);
		cb(LG_FAILED, NULL, arg);
		return;
	}
	const char *v[10] = {c->tenant, id,     o->customer, o->merchant, amount, o->currency, expires, meta ? meta : "{}",
			     params,    lg_ho_emit(c)};
	lg_ho_call(c, &st_create, v, cb, arg);
	free(params);
	free(meta);
}

static void by_id(const lg_ctx *c, const db_stmt *st, const char *id, lg_cb cb, void *arg)
{
	const char *v[3] = {c->tenant, id, lg_ho_emit(c)};
	lg_ho_call(c, st, v, cb, arg);
}

void lg_order_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	by_id(c, &st_get, id, cb, arg);
}

void lg_order_settle(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	by_id(c, &st_settle, id, cb, arg);
}

void lg_order_cancel(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	by_id(c, &st_cancel, id, cb, arg);
}

void lg_order_refund(const lg_ctx *c, const char *id, int64_t amount, lg_cb cb, void *arg)
{
	char a[24];
	snprintf(a, sizeof(a), "%lld", (long long)amount);
	const char *v[4] = {c->tenant, id, a, lg_ho_emit(c)};
	lg_ho_call(c, &st_refund, v, cb, arg);
}

/* An id of the API: [A-Za-z0-9_.:-]{1,64}. */
static bool is_id(const char *s)
{
	size_t n = 0;
	for (; s[n] != '\0'; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
		      s[n] == '_' || s[n] == '.' || s[n] == ':' || s[n] == '-'))
			return false;
	return n >= 1 && n <= 64;
}

/* ---- lists ----------------------------------------------------------------
 *
 * Newest first; a page's position is its last order's {"c": created_at in
 * µs, "i": id}, which the next page starts after (whatever the filter: a
 * cursor of another list still gives only orders of this one). */

typedef struct olist {
	lg_cb cb;
	void *arg;
	int limit;
} olist;

static void listed(db_result *res, void *arg)
{
	olist *l = arg;
	lg_status st = lg_db_status(res, "lg_orders_list");
	json_t *out = NULL;
	if (st == LG_OK) {
		json_t *data = json_array();
		int n = lg_sql_rows(res);
		for (int i = 0; i < n; i++) {
			const char *doc = lg_sql_value(res, i, 0);
			json_t *d = doc != NULL ? json_loads(doc, 0, NULL) : NULL;
			if (d == NULL || json_array_append_new(data, d) != 0) {
				st = LG_FAILED;
				break;
			}
		}
		json_t *next = json_null();
		if (st == LG_OK && n > 0 && n == l->limit) {
			const char *us = lg_sql_value(res, n - 1, 1), *id = lg_sql_value(res, n - 1, 2);
			json_decref(next);
			next = us != NULL && id != NULL ? json_pack("{s:I, s:s}", "c", (json_int_t)strtoll(us, NULL, 10), "i", id) : NULL;
		}
		if (st == LG_OK && next != NULL) {
			/* "o" takes both references, also when packing fails */
			out = json_pack("{s:o, s:o}", "data", data, "next", next);
		} else {
			json_decref(data);
			json_decref(next);
		}
		if (out == NULL)
			st = LG_FAILED;
	}
	l->cb(st, out, l->arg);
	json_decref(out);
	free(l);
}

void lg_orders_list(const lg_ctx *c, const char *status, const char *customer, int limit, const json_t *after, lg_cb cb,
		    void *arg)
{
	char lim[16], us[24];
	const char *after_us = NULL, *after_id = NULL;
	if (after != NULL) {
		const json_t *ci = json_object_get(after, "c"), *ii = json_object_get(after, "i");
		if (!json_is_object(after) || json_object_size(after) != 2 || !json_is_integer(ci) || !json_is_string(ii) ||
		    !is_id(json_string_value(ii))) {
			json_t *extra = json_pack("{s:s}", "field", "cursor");
			cb(LG_INVALID, extra, arg);
			json_decref(extra);
			return;
		}
		snprintf(us, sizeof(us), "%lld", (long long)json_integer_value(ci));
		after_us = us;
		after_id = json_string_value(ii);
	}
	olist *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		cb(LG_FAILED, NULL, arg);
		return;
	}
	l->cb = cb;
	l->arg = arg;
	l->limit = limit;
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *v[6] = {c->tenant, status, customer, lim, after_us, after_id};
	lg_sql(c, &st_list, v, listed, l);
}

void lg_orders_sweep(db_pool *db, int limit, void (*cb)(long n, void *arg), void *arg)
{
	lg_ho_sweep(db, &st_sweep, limit, cb, arg);
}
