/* holds.c — two-phase holds (docs/api.md §5, docs/ledger.md "Holds") on
 * the ledger tables: each operation is ONE call of a function of
 * sql/014_ledger_holds_orders.sql in the request's transaction (the
 * Idempotency-Key claim rides on the same round trip). Placing a hold
 * raises the payer's pending under the debit's guard; capture, void and
 * expiry are conditional updates of the hold (status pending, not past its
 * time) before the accounts, so exactly one of them wins; a hold past its
 * time is expired by whichever call touches it first, or the sweeper. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/util.h"

static const db_stmt st_create = {
	"lg_hold_create",
	"SELECT outcome, doc, events FROM ledger.hold_create($1, $2, $3, $4, $5::bigint, $6, $7::bigint, $8, $9, $10::boolean)", 10};
static const db_stmt st_get = {"lg_hold_get", "SELECT outcome, doc, events FROM ledger.hold_get($1, $2, $3::boolean)", 3};
static const db_stmt st_capture = {
	"lg_hold_capture", "SELECT outcome, doc, events FROM ledger.hold_capture($1, $2, $3::bigint, $4::boolean)", 4};
static const db_stmt st_void = {"lg_hold_void", "SELECT outcome, doc, events FROM ledger.hold_void($1, $2, $3::boolean)", 3};
static const db_stmt st_sweep = {"lg_holds_sweep", "SELECT ledger.holds_sweep($1::integer)", 1};
const db_stmt *const lg_holds_stmts[] = {&st_create, &st_get, &st_capture, &st_void, &st_sweep, NULL};

void lg_hold_create(const lg_ctx *c, const lg_hold_new *h, lg_cb cb, void *arg)
{
	char id[80], amount[24], expires[24];
	if (h->id != NULL)
		util_strlcpy(id, h->id, sizeof(id));
	else
		lg_new_id("hold_", id, sizeof(id));
	snprintf(amount, sizeof(amount), "%lld", (long long)h->amount);
	snprintf(expires, sizeof(expires), "%lld", (long long)h->expires_in_s);
	/* The parameters a reused client id is compared on; omitted metadata
	 * is {}. */
	json_t *empty = json_object();
	json_t *p = json_pack("{s:s, s:s, s:I, s:s, s:I, s:O}", "from", h->from, "to", h->to ? h->to : "@world", "amount",
			      (json_int_t)h->amount, "currency", h->currency, "expires_in", (json_int_t)h->expires_in_s, "metadata",
			      h->metadata ? h->metadata : empty);
	json_decref(empty);
	char *params = p != NULL ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(p);
	char *meta = h->metadata != NULL ? lg_dump(h->metadata) : NULL;
	if (params == NULL || (h->metadata != NULL && meta == NULL)) {
		free(params);
		free(meta);
		cb(LG_FAILED, NULL, arg);
		return;
	}
	const char *v[10] = {c->tenant, id, h->from, h->to, amount, h->currency, expires, meta ? meta : "{}", params, lg_ho_emit(c)};
	lg_ho_call(c, &st_create, v, cb, arg);
	free(params);
	free(meta);
}

void lg_hold_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	const char *v[3] = {c->tenant, id, lg_ho_emit(c)};
	lg_ho_call(c, &st_get, v, cb, arg);
}

void lg_hold_capture(const lg_ctx *c, const char *id, int64_t amount, lg_cb cb, void *arg)
{
	char a[24];
	snprintf(a, sizeof(a), "%lld", (long long)amount);
	const char *v[4] = {c->tenant, id, a, lg_ho_emit(c)};
	lg_ho_call(c, &st_capture, v, cb, arg);
}

void lg_hold_void(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	const char *v[3] = {c->tenant, id, lg_ho_emit(c)};
	lg_ho_call(c, &st_void, v, cb, arg);
}

void lg_holds_sweep(db_pool *db, int limit, void (*cb)(long n, void *arg), void *arg)
{
	lg_ho_sweep(db, &st_sweep, limit, cb, arg);
}
