/* orders.c — checkout orders (docs/api.md §6, docs/orders.md): the state machine
 * created → paid → partially_refunded → refunded, created → cancelled,
 * created → expired. Each transition is a conditional update of the order
 * item in one TransactWriteItems with its money movement (a transfer with
 * order_id, through legs.c and the journal), so exactly one of two racing
 * transitions wins and a failed guard changes nothing. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define OPEN_ORDER "OPEN#ORDER"

typedef enum { O_SETTLE, O_CANCEL, O_REFUND, O_GET } o_action;

typedef struct ocall {
	lg_ctx ctx;
	lg_cb cb;
	void *arg;
	o_action action;
	char id[80];
	int64_t amount; /* refund: requested (0: the rest) */
	int rounds;
	json_t *order;  /* the item as read */
	json_t *doc;    /* the document after the change */
	char tid[80];
	char now_at[40];
	lg_leg legs[2];
	lg_journal *journal;
	bool via_inbox;     /* settle: the merchant's credit goes to its inbox (inbox.c) */
	bool consolidated;  /* the payer's inbox was consolidated after a 402 */
	json_t *fail_extra; /* that 402's members */
} ocall;

static void run(ocall *k);

static void ocall_end(ocall *k, lg_status st, json_t *obj)
{
	k->cb(st, obj, k->arg);
	json_decref(obj);
	json_decref(k->order);
	json_decref(k->doc);
	json_decref(k->fail_extra);
	lg_journal_free(k->journal);
	free(k);
}

static json_t *not_payable(const char *status)
{
	return json_pack("{s:s}", "order_status", status);
}

static void slot_sk(char *out, size_t len, int64_t us, const char *id)
{
	snprintf(out, len, "%016lld#%s", (long long)us, id);
}

/* The update of the order to `status` with doc; cond is its condition
 * (on #st, #exp, refunded); more SET clauses in extra_set. Leaving
 * created takes it out of open_by_expiry. */
static json_t *order_update(const json_t *order, const char *status, const json_t *doc, const char *cond,
			    const char *extra_set, json_t *vals)
{
	char *text = lg_dump(doc);
	char upd[320], sidx[48];
	snprintf(upd, sizeof(upd), "SET #st = :to, doc = :doc, GSI2PK = :sidx%s REMOVE GSI3PK, GSI3SK", extra_set ? extra_set : "");
	snprintf(sidx, sizeof(sidx), "ORDERS#%s", status);
	json_object_set_new(vals, ":to", lg_av_s(status));
	json_object_set_new(vals, ":doc", lg_av_s(text ? text : ""));
	json_object_set_new(vals, ":sidx", lg_av_s(sidx));
	free(text);
	json_t *names = json_pack("{s:s}", "#st", "status");
	if (strstr(cond, "#exp") != NULL)
		json_object_set_new(names, "#exp", json_string("exp"));
	return json_pack("{s:{s:s, s:o, s:s, s:s, s:o, s:o, s:s}}", "Update", "TableName", IT_SYSTEM_TABLE, "Key",
			 lg_key("ORDER#", lg_s(order, "id"), "METADATA"), "UpdateExpression", upd, "ConditionExpression", cond,
			 "ExpressionAttributeNames", names, "ExpressionAttributeValues", vals, "ReturnValuesOnConditionCheckFailure",
			 "ALL_OLD");
}

static json_t *now_vals(void)
{
	char now[24];
	snprintf(now, sizeof(now), "%lld", (long long)util_now_us());
	return json_pack("{s:{s:s}, s:{s:s}}", ":now", "N", now, ":created", "S", "created");
}

/* ---- create -------------------------------------------------------------- */

typedef struct onew {
	lg_cb cb;
	void *arg;
	char *params;
	json_t *doc;
	lg_leg checks[2];
} onew;

static void onew_end(onew *k, lg_status st, json_t *obj)
{
	k->cb(st, obj, k->arg);
	json_decref(obj);
	json_decref(k->doc);
	free(k->params);
	free(k);
}

static void created(it_reply *r, void *arg)
{
	onew *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionCanceledException") == 0) {
		json_t *reasons = json_object_get(r->err_extra, "CancellationReasons");
		json_t *first = json_array_get(reasons, 0);
		if (lg_reason_failed(first)) {
			json_t *obj;
			lg_status st = lg_reused_id(first, k->params, "order", &obj);
			onew_end(k, st, obj);
			return;
		}
		json_t *extra;
		lg_status st = lg_legs_failure(k->checks, NULL, 2, reasons, 1, &extra);
		onew_end(k, st, extra);
		return;
	}
	if (r->err_type != NULL) {
		onew_end(k, lg_err_status(r), NULL);
		return;
	}
	json_t *doc = k->doc;
	k->doc = NULL;
	onew_end(k, LG_OK, doc);
}


void lg_order_create(const lg_ctx *c, const lg_order_new *o, lg_cb cb, void *arg)
{
	onew *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, arg);
		return;
	}
	k->cb = cb;
	k->arg = arg;
	char id[80], created_at[40], expires_at[40], pk[96], gsk[120], cpk[160], spk[32];
	if (o->id != NULL)
		util_strlcpy(id, o->id, sizeof(id));
	else
		lg_new_id("ord_", id, sizeof(id));
	int64_t now = util_now_us(), exp = now + o->expires_in_s * 1000000;
	util_format_time(created_at, sizeof(created_at), now);
	util_format_time(expires_at, sizeof(expires_at), exp);
	json_t *empty = json_object();
	json_t *p = json_pack("{s:s, s:s, s:I, s:s, s:I, s:O}", "customer", o->customer, "merchant", o->merchant, "amount",
			      (json_int_t)o->amount, "currency", o->currency, "expires_in", (json_int_t)o->expires_in_s, "metadata",
			      o->metadata ? o->metadata : empty);
	json_decref(empty);
	k->params = p ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(p);
	k->doc = json_pack("{s:s, s:s, s:s, s:I, s:i, s:s, s:s, s:n, s:s, s:n, s:o, s:s}", "id", id, "customer", o->customer,
			   "merchant", o->merchant, "amount", (json_int_t)o->amount, "refunded", 0, "currency", o->currency,
			   "status", "created", "transfer_id", "expires_at", expires_at, "paid_at", "metadata",
			   o->metadata ? json_deep_copy(o->metadata) : json_object(), "created_at", created_at);
	char *text = lg_dump(k->doc);
	snprintf(pk, sizeof(pk), "ORDER#%s", id);
	char csk[120];
	slot_sk(gsk, sizeof(gsk), exp, id);
	slot_sk(csk, sizeof(csk), now, id);
	snprintf(cpk, sizeof(cpk), "CUSTOMER#%s", o->customer);
	snprintf(spk, sizeof(spk), "ORDERS#created");
	json_t *item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:o, s:o, s:{s:s},"
				 " s:o, s:o, s:{s:s}}",
				 "PK", "S", pk, "SK", "S", "METADATA", "type", "S", "order", "id", "S", id, "params", "S",
				 k->params ? k->params : "", "status", "S", "created", "customer", "S", o->customer, "merchant", "S",
				 o->merchant, "amount", lg_av_n(o->amount), "refunded", lg_av_n(0), "currency", "S", o->currency,
				 "exp", lg_av_n(exp), "created", lg_av_n(now), "doc", "S", text ? text : "");
	free(text);
	json_object_update_new(item, json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "GSI2PK",
					       "S", spk, "GSI2SK", "S", csk, "GSI3PK", "S", OPEN_ORDER, "GSI3SK", "S", gsk,
					       "GSI4PK", "S", cpk, "GSI4SK", "S", csk, "GSI7PK", "S", "ORDERS", "GSI7SK", "S", csk));
	k->checks[0] = (lg_leg){.account = o->customer, .currency = o->currency};
	k->checks[1] = (lg_leg){.account = o->merchant, .currency = o->currency};
	json_t *items = json_pack("[{s:{s:s, s:o, s:s, s:s}}, o, o]", "Put", "TableName", IT_SYSTEM_TABLE, "Item", item,
				  "ConditionExpression", "attribute_not_exists(PK)", "ReturnValuesOnConditionCheckFailure", "ALL_OLD",
				  lg_check_action(o->customer, o->currency), lg_check_action(o->merchant, o->currency));
	json_t *req = json_pack("{s:o}", "TransactItems", items);
	if (req == NULL || !lg_emit(req, "order.created", k->doc)) {
		json_decref(req);
		onew_end(k, LG_FAILED, NULL);
		return;
	}
	lg_call(c, 0, "TransactWriteItems", req, created, k);
	json_decref(req);
}

/* ---- transitions ------------------------------------------------------------ */

static bool lost_race(ocall *k)
{
	if (++k->rounds > 5) {
		ocall_end(k, LG_UNAVAILABLE, NULL);
		return true;
	}
	json_decref(k->order);
	k->order = NULL;
	json_decref(k->doc);
	k->doc = NULL;
	run(k);
	return true;
}

static void expired_done(it_reply *r, void *arg)
{
	ocall *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionCanceledException") == 0) {
		lost_race(k);
		return;
	}
	if (r->err_type != NULL) {
		ocall_end(k, lg_err_status(r), NULL);
		return;
	}
	if (k->action == O_GET) {
		json_t *doc = k->doc;
		k->doc = NULL;
		ocall_end(k, LG_OK, doc);
		return;
	}
	ocall_end(k, LG_NOT_PENDING, not_payable("expired"));
}

/* created → expired (a created order past its time): the update alone. */
static json_t *expire_request(const json_t *order, json_t **doc_out)
{
	json_t *doc = lg_doc_with(order, "expired");
	if (doc == NULL)
		return NULL;
	json_t *u = order_update(order, "expired", doc, "#st = :created", NULL, json_pack("{s:{s:s}}", ":created", "S", "created"));
	json_t *req = json_pack("{s:[o]}", "TransactItems", u);
	if (req == NULL || !lg_emit(req, "order.expired", doc)) {
		json_decref(req);
		json_decref(doc);
		return NULL;
	}
	*doc_out = doc;
	return req;
}

static void expire_lazily(ocall *k)
{
	json_t *req = expire_request(k->order, &k->doc);
	if (req == NULL) {
		ocall_end(k, LG_FAILED, NULL);
		return;
	}
	lg_call(&k->ctx, 0, "TransactWriteItems", req, expired_done, k);
	json_decref(req);
}

static void flushed(lg_status st, void *arg)
{
	ocall *k = arg;
	if (st != LG_OK) {
		ocall_end(k, st, NULL);
		return;
	}
	json_t *doc = k->doc;
	k->doc = NULL;
	ocall_end(k, LG_OK, doc);
}

static void settle(ocall *k);

/* The payer's balance refused the movement: money in its inbox may cover
 * it. Consolidated once, then the whole call again. */
static void payer_consolidated(lg_status st, long moved, void *arg)
{
	ocall *k = arg;
	if (st == LG_OK && moved > 0) {
		json_decref(k->fail_extra);
		k->fail_extra = NULL;
		lost_race(k);
		return;
	}
	json_t *extra = k->fail_extra;
	k->fail_extra = NULL;
	ocall_end(k, LG_INSUFFICIENT, extra);
}

/* Settle and refund: the transfer's entries and document, then done. */
static void moved(it_reply *r, void *arg)
{
	ocall *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionConflictException") == 0 && k->action == O_SETTLE &&
	    !k->via_inbox) {
		/* The merchant's row is locked by another settlement: a flash
		 * sale. Credit its inbox instead (and for a while after). */
		lg_hot_mark(k->ctx.tenant, k->legs[1].account);
		k->via_inbox = true;
		json_decref(k->doc);
		k->doc = NULL;
		settle(k);
		return;
	}
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionCanceledException") == 0) {
		json_t *reasons = json_object_get(r->err_extra, "CancellationReasons");
		if (lg_reason_failed(json_array_get(reasons, 0))) {
			lost_race(k);
			return;
		}
		json_t *extra;
		const bool present[2] = {true, !k->via_inbox};
		lg_status st = lg_legs_failure(k->legs, present, 2, reasons, 2, &extra);
		if (st == LG_INSUFFICIENT && !k->consolidated) {
			k->consolidated = true;
			k->fail_extra = extra;
			lg_inbox_consolidate(&k->ctx, k->legs[0].account, payer_consolidated, k);
			return;
		}
		ocall_end(k, st, extra);
		return;
	}
	if (r->err_type != NULL) {
		ocall_end(k, lg_err_status(r), NULL);
		return;
	}
	json_t *items = json_object_get(r->body, "Items");
	k->journal = lg_journal_new();
	json_t *tdoc = k->journal == NULL ? NULL
					  : lg_journal_transfer(k->journal, &(lg_posting){.id = k->tid,
											  .from = k->legs[0].account,
											  .to = k->legs[1].account,
											  .amount = -k->legs[0].dposted,
											  .currency = lg_s(k->order, "currency"),
											  .order_id = lg_s(k->order, "id"),
											  .created_at = k->now_at,
											  .after_from = json_array_get(items, 2),
											  .after_to = k->via_inbox ? NULL : json_array_get(items, 3),
											  .to_inbox = k->via_inbox});
	if (tdoc == NULL) {
		ocall_end(k, LG_FAILED, NULL);
		return;
	}
	json_decref(tdoc);
	if (!lg_journal_event(k->journal, k->action == O_SETTLE ? "order.paid" : "order.refunded", k->doc)) {
		ocall_end(k, LG_FAILED, NULL);
		return;
	}
	lg_journal_flush(&k->ctx, k->journal, flushed, k);
}

/* Sends [order update, transfer put, legs[0] (pays), legs[1] (is paid)];
 * a settlement through the merchant's inbox has no legs[1] (the journal
 * adds the inbox credit), one that is not must not wait for its lock. */
static void send_movement(ocall *k, json_t *order_upd, int64_t amount)
{
	json_t *items = json_pack("[o, o, o]", order_upd, lg_transfer_put_action(k->tid, "{\"kind\":\"order\"}", amount),
				  lg_leg_action(&k->legs[0]));
	if (!k->via_inbox)
		json_array_append_new(items, lg_leg_action(&k->legs[1]));
	json_t *req = json_pack("{s:o, s:s}", "TransactItems", items, "ReturnValues", "ALL_NEW");
	if (k->action == O_SETTLE && !k->via_inbox)
		json_object_set_new(req, "NoWait", json_integer(3));
	lg_call(&k->ctx, 0, "TransactWriteItems", req, moved, k);
	json_decref(req);
}

static void settle(ocall *k)
{
	const json_t *o = k->order;
	int64_t amount = lg_n(o, "amount");
	const char *cur = lg_s(o, "currency");
	lg_new_id("tr_", k->tid, sizeof(k->tid));
	util_format_time(k->now_at, sizeof(k->now_at), util_now_us());
	k->doc = lg_doc_with(o, "paid");
	if (k->doc == NULL) {
		ocall_end(k, LG_FAILED, NULL);
		return;
	}
	json_object_set_new(k->doc, "transfer_id", json_string(k->tid));
	json_object_set_new(k->doc, "paid_at", json_string(k->now_at));
	json_t *vals = now_vals();
	json_object_set_new(vals, ":tid", lg_av_s(k->tid));
	json_object_set_new(vals, ":paid", lg_av_s(k->now_at));
	json_t *u = order_update(o, "paid", k->doc, "#st = :created AND #exp > :now", ", transfer_id = :tid, paid_at = :paid", vals);
	/* The customer pays under the guard; the merchant is credited, or its
	 * inbox when it is hot (a flash sale, inbox.c). */
	k->legs[0] = (lg_leg){.account = lg_s(o, "customer"), .dposted = -amount, .guard = true, .active = true, .currency = cur};
	k->legs[1] = (lg_leg){.account = lg_s(o, "merchant"), .dposted = amount, .currency = cur};
	if (lg_hot(k->ctx.tenant, k->legs[1].account))
		k->via_inbox = true;
	send_movement(k, u, amount);
}

static void refund(ocall *k)
{
	const json_t *o = k->order;
	int64_t amount = lg_n(o, "amount"), refunded = lg_n(o, "refunded");
	int64_t rest = amount - refunded;
	int64_t a = k->amount ? k->amount : rest;
	if (a > rest || a <= 0) {
		ocall_end(k, LG_TOO_MUCH, json_pack("{s:I}", "refundable", (json_int_t)rest));
		return;
	}
	const char *cur = lg_s(o, "currency");
	const char *to = a == rest ? "refunded" : "partially_refunded";
	lg_new_id("tr_", k->tid, sizeof(k->tid));
	util_format_time(k->now_at, sizeof(k->now_at), util_now_us());
	k->doc = lg_doc_with(o, to);
	if (k->doc == NULL) {
		ocall_end(k, LG_FAILED, NULL);
		return;
	}
	json_object_set_new(k->doc, "refunded", json_integer(refunded + a));
	/* Optimistic on refunded: two refunds at once cannot both take the rest. */
	json_t *vals = json_pack("{s:o, s:o, s:o}", ":from", lg_av_s(lg_s(o, "status")), ":old", lg_av_n(refunded), ":new",
				 lg_av_n(refunded + a));
	json_t *u = order_update(o, to, k->doc, "#st = :from AND refunded = :old", ", refunded = :new", vals);
	k->legs[0] = (lg_leg){.account = lg_s(o, "merchant"), .dposted = -a, .guard = true, .active = true, .currency = cur};
	k->legs[1] = (lg_leg){.account = lg_s(o, "customer"), .dposted = a, .currency = cur};
	send_movement(k, u, a);
}

static void cancelled(it_reply *r, void *arg)
{
	ocall *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionCanceledException") == 0) {
		lost_race(k);
		return;
	}
	flushed(r->err_type != NULL ? lg_err_status(r) : LG_OK, k);
}

static void cancel(ocall *k)
{
	k->doc = lg_doc_with(k->order, "cancelled");
	if (k->doc == NULL) {
		ocall_end(k, LG_FAILED, NULL);
		return;
	}
	json_t *u = order_update(k->order, "cancelled", k->doc, "#st = :created AND #exp > :now", NULL, now_vals());
	json_t *req = json_pack("{s:[o]}", "TransactItems", u);
	if (req == NULL || !lg_emit(req, "order.cancelled", k->doc)) {
		json_decref(req);
		ocall_end(k, LG_FAILED, NULL);
		return;
	}
	lg_call(&k->ctx, 0, "TransactWriteItems", req, cancelled, k);
	json_decref(req);
}

static void loaded(it_reply *r, void *arg)
{
	ocall *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "ConditionalCheckFailedException") == 0) {
		ocall_end(k, LG_NOT_FOUND, NULL); /* the locking read of a missing order */
		return;
	}
	if (r->err_type != NULL) {
		ocall_end(k, lg_err_status(r), NULL);
		return;
	}
	json_t *item = json_object_get(r->body, "Item");
	if (item == NULL)
		item = json_object_get(r->body, "Attributes");
	if (item == NULL) {
		ocall_end(k, LG_NOT_FOUND, NULL);
		return;
	}
	k->order = json_incref(item);
	const char *st = lg_s(item, "status") ?: "";
	bool created = strcmp(st, "created") == 0;
	if (created && lg_n(item, "exp") <= util_now_us()) {
		expire_lazily(k);
		return;
	}
	switch (k->action) {
	case O_GET: {
		const char *doc = lg_s(item, "doc");
		json_t *d = doc ? json_loads(doc, 0, NULL) : NULL;
		ocall_end(k, d ? LG_OK : LG_FAILED, d);
		return;
	}
	case O_SETTLE:
	case O_CANCEL:
		if (!created) {
			ocall_end(k, LG_NOT_PENDING, not_payable(st));
			return;
		}
		if (k->action == O_SETTLE)
			settle(k);
		else
			cancel(k);
		return;
	case O_REFUND:
		if (strcmp(st, "paid") != 0 && strcmp(st, "partially_refunded") != 0) {
			ocall_end(k, LG_NOT_PENDING, not_payable(st));
			return;
		}
		refund(k);
		return;
	}
}

static void run(ocall *k)
{
	json_t *req;
	if (k->action == O_REFUND && k->ctx.tx != NULL) {
		/* Refunds change the order's numbers each time, so racing ones
		 * would keep losing optimistic retries: read it locked instead (a
		 * no-op update), and the next refund waits for this one. */
		req = json_pack("{s:s, s:o, s:s, s:s, s:{s:s}, s:s}", "TableName", IT_SYSTEM_TABLE, "Key",
				lg_key("ORDER#", k->id, "METADATA"), "UpdateExpression", "SET #st = #st", "ConditionExpression",
				"attribute_exists(PK)", "ExpressionAttributeNames", "#st", "status", "ReturnValues", "ALL_NEW");
		lg_call(&k->ctx, 0, "UpdateItem", req, loaded, k);
	} else {
		req = json_pack("{s:s, s:o, s:b}", "TableName", IT_SYSTEM_TABLE, "Key", lg_key("ORDER#", k->id, "METADATA"),
				"ConsistentRead", 1);
		lg_call(&k->ctx, 0, "GetItem", req, loaded, k);
	}
	json_decref(req);
}

static void start(const lg_ctx *c, const char *id, o_action a, int64_t amount, lg_cb cb, void *arg)
{
	ocall *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, arg);
		return;
	}
	k->ctx = *c;
	k->cb = cb;
	k->arg = arg;
	k->action = a;
	k->amount = amount;
	util_strlcpy(k->id, id, sizeof(k->id));
	run(k);
}

void lg_order_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	start(c, id, O_GET, 0, cb, arg);
}

void lg_order_settle(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	start(c, id, O_SETTLE, 0, cb, arg);
}

void lg_order_cancel(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	start(c, id, O_CANCEL, 0, cb, arg);
}

void lg_order_refund(const lg_ctx *c, const char *id, int64_t amount, lg_cb cb, void *arg)
{
	start(c, id, O_REFUND, amount, cb, arg);
}

/* ---- lists ----------------------------------------------------------------- */

typedef struct olist {
	lg_cb cb;
	void *arg;
} olist;

static void listed(it_reply *r, void *arg)
{
	olist *l = arg;
	if (r->err_type != NULL) {
		json_t *extra;
		lg_status st = lg_list_err_status(r, &extra);
		l->cb(st, extra, l->arg);
		json_decref(extra);
		free(l);
		return;
	}
	json_t *data = json_array();
	size_t i;
	json_t *it;
	json_array_foreach(json_object_get(r->body, "Items"), i, it)
	{
		const char *doc = lg_s(it, "doc");
		json_t *d = doc ? json_loads(doc, 0, NULL) : NULL;
		/* A created order past its time is expired, listed as such. */
		if (d != NULL && strcmp(lg_s(it, "status") ?: "", "created") == 0 && lg_n(it, "exp") <= util_now_us())
			json_object_set_new(d, "status", json_string("expired"));
		if (d != NULL)
			json_array_append_new(data, d);
	}
	json_t *next = json_object_get(r->body, "LastEvaluatedKey");
	json_t *out = json_pack("{s:o, s:O}", "data", data, "next", next ? next : json_null());
	l->cb(LG_OK, out, l->arg);
	json_decref(out);
	free(l);
}

void lg_orders_list(const lg_ctx *c, const char *status, const char *customer, int limit, const json_t *after, lg_cb cb,
		    void *arg)
{
	olist *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		cb(LG_FAILED, NULL, arg);
		return;
	}
	l->cb = cb;
	l->arg = arg;
	char pk[160];
	const char *index, *cond;
	if (customer != NULL) {
		snprintf(pk, sizeof(pk), "CUSTOMER#%s", customer);
		index = "by_customer", cond = "GSI4PK = :pk";
	} else if (status != NULL) {
		snprintf(pk, sizeof(pk), "ORDERS#%s", status);
		index = "orders_by_status", cond = "GSI2PK = :pk";
	} else {
		snprintf(pk, sizeof(pk), "ORDERS");
		index = "orders_by_created", cond = "GSI7PK = :pk";
	}
	json_t *req = json_pack("{s:s, s:s, s:s, s:{s:{s:s}}, s:b, s:i}", "TableName", IT_SYSTEM_TABLE, "IndexName", index,
				"KeyConditionExpression", cond, "ExpressionAttributeValues", ":pk", "S", pk, "ScanIndexForward", 0,
				"Limit", limit);
	if (customer != NULL && status != NULL) {
		json_object_set_new(req, "FilterExpression", json_string("#st = :st"));
		json_object_set_new(req, "ExpressionAttributeNames", json_pack("{s:s}", "#st", "status"));
		json_object_set_new(json_object_get(req, "ExpressionAttributeValues"), ":st", lg_av_s(status));
	}
	if (after != NULL)
		json_object_set(req, "ExclusiveStartKey", (json_t *)after);
	lg_call(c, 0, "Query", req, listed, l);
	json_decref(req);
}

/* ---- the sweeper ---------------------------------------------------------------- */

static json_t *expire_built(const json_t *order)
{
	json_t *doc = NULL;
	json_t *req = expire_request(order, &doc);
	json_decref(doc);
	return req;
}

void lg_orders_sweep(it_store *items, int limit, void (*cb)(long n, void *arg), void *arg)
{
	lg_sweep_due(items, OPEN_ORDER, limit, expire_built, cb, arg);
}
