/* holds.c — two-phase holds (docs/api.md §5, docs/ledger.md).
 *
 * A hold is an item HOLD#<id> with its API document; while pending it is in
 * the sparse index open_by_expiry (GSI3PK "OPEN#HOLD", GSI3SK
 * "<expires µs>#<id>"), which the sweeper reads. Placing it raises the
 * account's pending under the same guard as a debit; capture, void and
 * expiry are conditional updates of the hold (status = pending) in one
 * transaction with the account's update, so exactly one of them wins. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define OPEN_HOLD "OPEN#HOLD"

typedef enum { H_CAPTURE, H_VOID, H_GET } h_action;

typedef struct hcall {
	lg_ctx ctx;
	lg_cb cb;
	void *arg;
	h_action action;
	char id[80];
	int64_t amount;    /* capture: requested (0: all) */
	int rounds;        /* reads after losing a race */
	json_t *hold;      /* the hold item as read */
	json_t *doc;       /* the hold's document after the change */
	char tid[80];      /* capture: the transfer */
	lg_leg legs[2];
	bool to_leg;
	lg_journal *journal;
	char created_at[40];
	json_t *expired; /* lazy expiry: the document to answer with */
} hcall;

static hcall *hcall_new(const lg_ctx *c, lg_cb cb, void *arg)
{
	hcall *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, arg);
		return NULL;
	}
	k->ctx = *c;
	k->cb = cb;
	k->arg = arg;
	return k;
}

static void hcall_end(hcall *k, lg_status st, json_t *obj)
{
	k->cb(st, obj, k->arg);
	json_decref(obj);
	json_decref(k->hold);
	json_decref(k->doc);
	json_decref(k->expired);
	lg_journal_free(k->journal);
	free(k);
}

/* ---- create ------------------------------------------------------------- */

typedef struct hnew {
	lg_ctx ctx;
	lg_cb cb;
	void *arg;
	char *params;
	json_t *doc;
	lg_leg from, to;
	bool to_check;
	json_t *req;        /* the TransactWriteItems, kept to send again */
	bool consolidated;  /* the payer's inbox was consolidated after a 402 */
	json_t *fail_extra; /* that 402's members */
} hnew;

static void hnew_end(hnew *k, lg_status st, json_t *obj)
{
	k->cb(st, obj, k->arg);
	json_decref(obj);
	json_decref(k->doc);
	json_decref(k->req);
	json_decref(k->fail_extra);
	free(k->params);
	free(k);
}

static void placed(it_reply *r, void *arg);

/* The payer's balance refused the hold: money in its inbox (inbox.c) may
 * cover it. Consolidated once, then the same request again. */
static void payer_consolidated(lg_status st, long moved, void *arg)
{
	hnew *k = arg;
	json_t *extra = k->fail_extra;
	k->fail_extra = NULL;
	if (st == LG_OK && moved > 0) {
		json_decref(extra);
		lg_call(&k->ctx, 0, "TransactWriteItems", k->req, placed, k);
		return;
	}
	hnew_end(k, LG_INSUFFICIENT, extra);
}

static void placed(it_reply *r, void *arg)
{
	hnew *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionCanceledException") == 0) {
		json_t *reasons = json_object_get(r->err_extra, "CancellationReasons");
		json_t *first = json_array_get(reasons, 0);
		json_t *obj;
		if (lg_reason_failed(first)) {
			lg_status st = lg_reused_id(first, k->params, "hold", &obj);
			hnew_end(k, st, obj);
			return;
		}
		const lg_leg legs[2] = {k->from, k->to};
		const bool present[2] = {true, k->to_check};
		lg_status st = lg_legs_failure(legs, present, 2, reasons, 1, &obj);
		if (st == LG_INSUFFICIENT && !k->consolidated) {
			k->consolidated = true;
			k->fail_extra = obj;
			lg_inbox_consolidate(&k->ctx, k->from.account, payer_consolidated, k);
			return;
		}
		hnew_end(k, st, obj);
		return;
	}
	if (r->err_type != NULL) {
		hnew_end(k, lg_err_status(r), NULL);
		return;
	}
	json_t *doc = k->doc;
	k->doc = NULL;
	hnew_end(k, LG_OK, doc);
}

static json_t *hold_update(const char *id, const char *status, const json_t *doc, const char *extra_set, json_t *vals)
{
	char *text = lg_dump(doc);
	char upd[256];
	snprintf(upd, sizeof(upd), "SET #st = :to, doc = :doc%s REMOVE GSI3PK, GSI3SK", extra_set ? extra_set : "");
	json_object_set_new(vals, ":to", lg_av_s(status));
	json_object_set_new(vals, ":doc", lg_av_s(text ? text : ""));
	json_object_set_new(vals, ":pending", lg_av_s("pending"));
	free(text);
	return json_pack("{s:{s:s, s:o, s:s, s:s, s:{s:s}, s:o, s:s}}", "Update", "TableName", IT_SYSTEM_TABLE, "Key",
			 lg_key("HOLD#", id, "METADATA"), "UpdateExpression", upd, "ConditionExpression",
			 strstr(status, "expired") ? "#st = :pending" : "#st = :pending AND #exp > :now", "ExpressionAttributeNames",
			 "#st", "status", "ExpressionAttributeValues", vals, "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
}

void lg_hold_create(const lg_ctx *c, const lg_hold_new *h, lg_cb cb, void *arg)
{
	hnew *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, arg);
		return;
	}
	k->ctx = *c;
	k->cb = cb;
	k->arg = arg;
	char id[80], created_at[40], expires_at[40], pk[96], gsk[120];
	if (h->id != NULL)
		util_strlcpy(id, h->id, sizeof(id));
	else
		lg_new_id("hold_", id, sizeof(id));
	int64_t now = util_now_us(), exp = now + h->expires_in_s * 1000000;
	util_format_time(created_at, sizeof(created_at), now);
	util_format_time(expires_at, sizeof(expires_at), exp);
	json_t *empty = json_object(); /* omitted metadata is {} */
	json_t *p = json_pack("{s:s, s:s, s:I, s:s, s:I, s:O}", "from", h->from, "to", h->to ? h->to : "@world", "amount",
			      (json_int_t)h->amount, "currency", h->currency, "expires_in", (json_int_t)h->expires_in_s, "metadata",
			      h->metadata ? h->metadata : empty);
	json_decref(empty);
	k->params = p ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(p);
	char to[80];
	snprintf(to, sizeof(to), "%s%s", h->to ? "" : LG_WORLD_PREFIX, h->to ? h->to : h->currency);
	k->doc = json_pack("{s:s, s:s, s:s, s:I, s:i, s:s, s:s, s:s, s:n, s:o, s:s}", "id", id, "from", h->from, "to", to, "amount",
			   (json_int_t)h->amount, "captured", 0, "currency", h->currency, "status", "pending", "expires_at",
			   expires_at, "transfer_id", "metadata", h->metadata ? json_deep_copy(h->metadata) : json_object(),
			   "created_at", created_at);
	char *text = lg_dump(k->doc);
	snprintf(pk, sizeof(pk), "HOLD#%s", id);
	snprintf(gsk, sizeof(gsk), "%016lld#%s", (long long)exp, id);
	json_t *item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:o, s:o, s:{s:s}, s:{s:s}, s:{s:s},"
				 " s:{s:s}, s:{s:s}, s:{s:s}}",
				 "PK", "S", pk, "SK", "S", "METADATA", "type", "S", "hold", "id", "S", id, "params", "S",
				 k->params ? k->params : "", "status", "S", "pending", "amount", lg_av_n(h->amount), "exp",
				 lg_av_n(exp), "doc", "S", text ? text : "", "GSI3PK", "S", OPEN_HOLD, "GSI3SK", "S", gsk, "from",
				 "S", h->from, "to", "S", to, "currency", "S", h->currency);
	free(text);
	json_t *items = json_array();
	json_array_append_new(items, json_pack("{s:{s:s, s:o, s:s, s:s}}", "Put", "TableName", IT_SYSTEM_TABLE, "Item", item,
					       "ConditionExpression", "attribute_not_exists(PK)",
					       "ReturnValuesOnConditionCheckFailure", "ALL_OLD"));
	k->from = (lg_leg){.account = h->from, .dpending = h->amount, .guard = true, .active = true, .currency = h->currency};
	json_array_append_new(items, lg_leg_action(&k->from));
	if (h->to != NULL) {
		/* The payee must exist in the currency now, not only at capture. */
		k->to_check = true;
		k->to = (lg_leg){.account = h->to, .currency = h->currency};
		json_array_append_new(items, lg_check_action(h->to, h->currency));
	}
	json_t *req = json_pack("{s:o}", "TransactItems", items);
	if (!lg_emit(req, "hold.created", k->doc)) {
		json_decref(req);
		hnew_end(k, LG_FAILED, NULL);
		return;
	}
	k->req = req;
	lg_call(c, 0, "TransactWriteItems", req, placed, k);
}

/* ---- reading, expiring ---------------------------------------------------- */

static void run_action(hcall *k);

static bool past_expiry(const json_t *hold)
{
	return lg_n(hold, "exp") <= util_now_us();
}

static void expired_done(it_reply *r, void *arg)
{
	hcall *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionCanceledException") == 0) {
		/* Someone else changed it first: read again and judge that. */
		if (++k->rounds > 3) {
			hcall_end(k, LG_UNAVAILABLE, NULL);
			return;
		}
		json_decref(k->expired);
		k->expired = NULL;
		json_decref(k->hold);
		k->hold = NULL;
		run_action(k);
		return;
	}
	if (r->err_type != NULL) {
		hcall_end(k, lg_err_status(r), NULL);
		return;
	}
	json_t *doc = k->expired;
	k->expired = NULL;
	if (k->action == H_GET) {
		hcall_end(k, LG_OK, doc);
		return;
	}
	json_decref(doc);
	hcall_end(k, LG_NOT_PENDING, json_pack("{s:s}", "hold_status", "expired"));
}

/* The expiry of a pending hold past its time: released, status expired. */
static json_t *expire_actions(const json_t *hold, json_t **doc_out)
{
	json_t *doc = lg_doc_with(hold, "expired");
	if (doc == NULL)
		return NULL;
	lg_leg from = {.account = lg_s(hold, "from"), .dpending = -lg_n(hold, "amount")};
	json_t *items = json_pack("{s:[o, o]}", "TransactItems",
				  hold_update(lg_s(hold, "id"), "expired", doc, NULL, json_object()), lg_leg_action(&from));
	if (items == NULL || !lg_emit(items, "hold.expired", doc)) {
		json_decref(items);
		json_decref(doc);
		return NULL;
	}
	*doc_out = doc;
	return items;
}

static void expire_lazily(hcall *k)
{
	json_t *req = expire_actions(k->hold, &k->expired);
	if (req == NULL) {
		hcall_end(k, LG_FAILED, NULL);
		return;
	}
	lg_call(&k->ctx, 0, "TransactWriteItems", req, expired_done, k);
	json_decref(req);
}

static void capture_done(it_reply *r, void *arg);
static void voided(it_reply *r, void *arg);

static void send_capture(hcall *k)
{
	const json_t *h = k->hold;
	int64_t amount = lg_n(h, "amount");
	int64_t c = k->amount ? k->amount : amount;
	if (c > amount) {
		hcall_end(k, LG_TOO_MUCH, json_pack("{s:I}", "hold_amount", (json_int_t)amount));
		return;
	}
	k->amount = c;
	lg_new_id("tr_", k->tid, sizeof(k->tid));
	util_format_time(k->created_at, sizeof(k->created_at), util_now_us());
	k->doc = lg_doc_with(h, "captured");
	if (k->doc == NULL) {
		hcall_end(k, LG_FAILED, NULL);
		return;
	}
	json_object_set_new(k->doc, "captured", json_integer(c));
	json_object_set_new(k->doc, "transfer_id", json_string(k->tid));
	char now[24];
	snprintf(now, sizeof(now), "%lld", (long long)util_now_us());
	json_t *vals = json_pack("{s:{s:s}, s:o, s:o}", ":now", "N", now, ":c", lg_av_n(c), ":tid", lg_av_s(k->tid));
	json_t *hu = hold_update(lg_s(h, "id"), "captured", k->doc, ", captured = :c, transfer_id = :tid", vals);
	json_object_set_new(json_object_get(json_object_get(hu, "Update"), "ExpressionAttributeNames"), "#exp", json_string("exp"));
	const char *to = lg_s(h, "to");
	const char *cur = NULL;
	k->to_leg = !lg_is_world(to, &cur);
	k->legs[0] = (lg_leg){.account = lg_s(h, "from"), .dposted = -c, .dpending = -amount};
	k->legs[1] = (lg_leg){.account = to, .dposted = c};
	json_t *items = json_pack("[o, o, o]", hu, lg_transfer_put_action(k->tid, "{\"kind\":\"capture\"}", c), lg_leg_action(&k->legs[0]));
	if (k->to_leg)
		json_array_append_new(items, lg_leg_action(&k->legs[1]));
	json_t *req = json_pack("{s:o, s:s}", "TransactItems", items, "ReturnValues", "ALL_NEW");
	lg_call(&k->ctx, 0, "TransactWriteItems", req, capture_done, k);
	json_decref(req);
}

static void send_void(hcall *k)
{
	const json_t *h = k->hold;
	k->doc = lg_doc_with(h, "voided");
	if (k->doc == NULL) {
		hcall_end(k, LG_FAILED, NULL);
		return;
	}
	char now[24];
	snprintf(now, sizeof(now), "%lld", (long long)util_now_us());
	json_t *hu = hold_update(lg_s(h, "id"), "voided", k->doc, NULL, json_pack("{s:{s:s}}", ":now", "N", now));
	json_object_set_new(json_object_get(json_object_get(hu, "Update"), "ExpressionAttributeNames"), "#exp", json_string("exp"));
	k->legs[0] = (lg_leg){.account = lg_s(h, "from"), .dpending = -lg_n(h, "amount")};
	json_t *req = json_pack("{s:[o, o]}", "TransactItems", hu, lg_leg_action(&k->legs[0]));
	if (req == NULL || !lg_emit(req, "hold.voided", k->doc)) {
		json_decref(req);
		hcall_end(k, LG_FAILED, NULL);
		return;
	}
	lg_call(&k->ctx, 0, "TransactWriteItems", req, voided, k);
	json_decref(req);
}

static void loaded(it_reply *r, void *arg)
{
	hcall *k = arg;
	if (r->err_type != NULL) {
		hcall_end(k, lg_err_status(r), NULL);
		return;
	}
	json_t *item = json_object_get(r->body, "Item");
	if (item == NULL) {
		hcall_end(k, LG_NOT_FOUND, NULL);
		return;
	}
	k->hold = json_incref(item);
	const char *st = lg_s(item, "status");
	bool pending = st != NULL && strcmp(st, "pending") == 0;
	if (pending && past_expiry(item)) {
		expire_lazily(k);
		return;
	}
	if (k->action == H_GET) {
		const char *doc = lg_s(item, "doc");
		json_t *d = doc ? json_loads(doc, 0, NULL) : NULL;
		hcall_end(k, d ? LG_OK : LG_FAILED, d);
		return;
	}
	if (!pending) {
		hcall_end(k, LG_NOT_PENDING, json_pack("{s:s}", "hold_status", st ? st : ""));
		return;
	}
	if (k->action == H_CAPTURE)
		send_capture(k);
	else
		send_void(k);
}

static void run_action(hcall *k)
{
	json_t *req = json_pack("{s:s, s:o, s:b}", "TableName", IT_SYSTEM_TABLE, "Key", lg_key("HOLD#", k->id, "METADATA"),
				"ConsistentRead", 1);
	lg_call(&k->ctx, 0, "GetItem", req, loaded, k);
	json_decref(req);
}

/* A capture or void whose hold update failed: the hold changed after we
 * read it (another capture, void or expiry won). Judge it again. */
static bool lost_race(hcall *k, it_reply *r)
{
	json_t *reasons = json_object_get(r->err_extra, "CancellationReasons");
	if (!lg_reason_failed(json_array_get(reasons, 0)))
		return false;
	if (++k->rounds > 3) {
		hcall_end(k, LG_UNAVAILABLE, NULL);
		return true;
	}
	json_decref(k->hold);
	k->hold = NULL;
	json_decref(k->doc);
	k->doc = NULL;
	run_action(k);
	return true;
}

static void doc_flushed(lg_status st, void *arg)
{
	hcall *k = arg;
	if (st != LG_OK) {
		hcall_end(k, st, NULL);
		return;
	}
	json_t *doc = k->doc;
	k->doc = NULL;
	hcall_end(k, LG_OK, doc);
}

static void capture_done(it_reply *r, void *arg)
{
	hcall *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionCanceledException") == 0) {
		if (lost_race(k, r))
			return;
		/* The payee's balance would overflow. */
		json_t *reason = json_array_get(json_object_get(r->err_extra, "CancellationReasons"), 3);
		int rank;
		json_t *extra = NULL;
		lg_status st = k->to_leg && lg_reason_failed(reason) ? lg_leg_failure(&k->legs[1], json_object_get(reason, "Item"), &rank, &extra)
							      : LG_UNAVAILABLE;
		hcall_end(k, st, extra);
		return;
	}
	if (r->err_type != NULL) {
		hcall_end(k, lg_err_status(r), NULL);
		return;
	}
	const json_t *h = k->hold;
	json_t *items = json_object_get(r->body, "Items");
	const char *hold_text = lg_s(h, "doc");
	json_t *hd = hold_text ? json_loads(hold_text, 0, NULL) : NULL;
	k->journal = lg_journal_new();
	json_t *tdoc = k->journal == NULL ? NULL
					  : lg_journal_transfer(k->journal,
								&(lg_posting){.id = k->tid,
									      .from = k->legs[0].account,
									      .to = k->to_leg ? k->legs[1].account : NULL,
									      .amount = k->amount,
									      .currency = lg_s(h, "currency"),
									      .metadata = json_object_get(hd, "metadata"),
									      .hold_id = lg_s(h, "id"),
									      .created_at = k->created_at,
									      .after_from = json_array_get(items, 2),
									      .after_to = k->to_leg ? json_array_get(items, 3) : NULL});
	json_decref(hd);
	if (tdoc == NULL) {
		hcall_end(k, LG_FAILED, NULL);
		return;
	}
	json_decref(tdoc);
	if (!lg_journal_event(k->journal, "hold.captured", k->doc)) {
		hcall_end(k, LG_FAILED, NULL);
		return;
	}
	lg_journal_flush(&k->ctx, k->journal, doc_flushed, k);
}

static void voided(it_reply *r, void *arg)
{
	hcall *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionCanceledException") == 0) {
		if (!lost_race(k, r))
			hcall_end(k, LG_UNAVAILABLE, NULL);
		return;
	}
	if (r->err_type != NULL) {
		hcall_end(k, lg_err_status(r), NULL);
		return;
	}
	json_t *doc = k->doc;
	k->doc = NULL;
	hcall_end(k, LG_OK, doc);
}

static void start(const lg_ctx *c, const char *id, h_action a, int64_t amount, lg_cb cb, void *arg)
{
	hcall *k = hcall_new(c, cb, arg);
	if (k == NULL)
		return;
	util_strlcpy(k->id, id, sizeof(k->id));
	k->action = a;
	k->amount = amount;
	run_action(k);
}

void lg_hold_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	start(c, id, H_GET, 0, cb, arg);
}

void lg_hold_capture(const lg_ctx *c, const char *id, int64_t amount, lg_cb cb, void *arg)
{
	start(c, id, H_CAPTURE, amount, cb, arg);
}

void lg_hold_void(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	start(c, id, H_VOID, 0, cb, arg);
}

/* ---- the sweeper ----------------------------------------------------------- */

static json_t *expire_built(const json_t *hold)
{
	json_t *doc = NULL;
	json_t *req = expire_actions(hold, &doc);
	json_decref(doc);
	return req;
}

void lg_holds_sweep(it_store *items, int limit, void (*cb)(long n, void *arg), void *arg)
{
	lg_sweep_due(items, OPEN_HOLD, limit, expire_built, cb, arg);
}
