/* transfers.c — double-entry transfers (docs/api.md §4, docs/ledger.md).
 *
 * A transfer is one TransactWriteItems: the transfer item (a Put that
 * fails when the id exists: client ids dedupe forever) and a conditional
 * update of each real account (legs.c; @world has no row). The updates
 * return the accounts as written, from which the journal makes the entries;
 * those, the heads and the transfer's document are written deferred, with
 * the request's saved response. A batch runs its transfers one after the
 * other inside a savepoint and rolls back to it at the first failure. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

typedef struct run {
	lg_ctx ctx;
	lg_transfer_new *t; /* copies; their strings are borrowed from the caller until cb */
	int n, i;
	bool single;
	lg_journal *journal;
	json_t *done; /* documents of the transfers so far */
	lg_cb cb;
	void *arg;
	/* the transfer in flight */
	char id[80];
	char created_at[40];
	char *params;
	lg_leg legs[2];
	bool is_leg[2]; /* from, to: a real account (else @world) */
	bool consolidated;  /* the payer's inbox was consolidated after a 402 */
	json_t *fail_extra; /* that 402's members */
} run;

static void next(run *k);

static void run_end(run *k, lg_status st, json_t *obj)
{
	k->cb(st, obj, k->arg);
	json_decref(obj);
	json_decref(k->done);
	json_decref(k->fail_extra);
	lg_journal_free(k->journal);
	free(k->params);
	free(k->t);
	free(k);
}

/* The parameters a reused client id is compared on. */
static char *params_of(const lg_transfer_new *t)
{
	/* Omitted metadata is {}: spelled out or not, the same parameters. */
	json_t *empty = json_object();
	json_t *p = json_pack("{s:s, s:s?, s:s?, s:I, s:s?, s:s?, s:O}", "kind", t->kind ? t->kind : "transfer", "from", t->from,
			      "to", t->to, "amount", (json_int_t)t->amount, "currency", t->currency, "description",
			      t->description, "metadata", t->metadata ? t->metadata : empty);
	json_decref(empty);
	char *s = p ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(p);
	return s;
}

static void failed(run *k, lg_status st, json_t *extra)
{
	if (!k->single) {
		/* All or nothing: undo the batch's earlier transfers. */
		it_tx_undo(k->ctx.tx);
		if (extra == NULL)
			extra = json_object();
		json_object_set_new(extra, "index", json_integer(k->i));
	}
	run_end(k, st, extra);
}

json_t *lg_transfer_doc(const char *id, const char *from, const char *to, int64_t amount, const char *currency,
			const char *description, const json_t *metadata, const char *hold_id, const char *order_id,
			const char *created_at, json_t *entries)
{
	char f[80], t[80];
	snprintf(f, sizeof(f), "%s%s", from ? "" : LG_WORLD_PREFIX, from ? from : currency);
	snprintf(t, sizeof(t), "%s%s", to ? "" : LG_WORLD_PREFIX, to ? to : currency);
	json_t *m = metadata ? json_deep_copy(metadata) : json_object();
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s?, s:o, s:s?, s:s?, s:s, s:o}", "id", id, "from", f, "to", t, "amount",
			 (json_int_t)amount, "currency", currency, "status", "posted", "description", description, "metadata", m,
			 "hold_id", hold_id, "order_id", order_id, "created_at", created_at, "entries", entries);
}

json_t *lg_transfer_doc_action(const char *id, const json_t *doc)
{
	char *text = lg_dump(doc);
	json_t *act = json_pack("{s:{s:s, s:o, s:s, s:s, s:{s:s, s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}}}", "Update",
				"TableName", IT_SYSTEM_TABLE, "Key", lg_key("TXN#", id, "METADATA"), "UpdateExpression",
				"SET doc = :d, #f = :f, #t = :t, currency = :c", "ConditionExpression", "attribute_exists(PK)",
				"ExpressionAttributeNames", "#f", "from", "#t",
				"to", "ExpressionAttributeValues", ":d", "S", text ? text : "", ":f", "S",
				json_string_value(json_object_get(doc, "from")), ":t", "S",
				json_string_value(json_object_get(doc, "to")), ":c", "S",
				json_string_value(json_object_get(doc, "currency")));
	free(text);
	return act;
}

json_t *lg_transfer_put_action(const char *id, const char *params, int64_t amount)
{
	char pk[96];
	snprintf(pk, sizeof(pk), "TXN#%s", id);
	return json_pack("{s:{s:s, s:o, s:s, s:s}}", "Put", "TableName", IT_SYSTEM_TABLE, "Item",
			 json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:o}", "PK", "S", pk, "SK", "S", "METADATA", "type",
				   "S", "transfer", "id", "S", id, "params", "S", params ? params : "", "amount", lg_av_n(amount)),
			 "ConditionExpression", "attribute_not_exists(PK)", "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
}

/* The document of a transfer posted earlier in this batch. */
static json_t *earlier(run *k, const char *id)
{
	size_t i;
	json_t *d;
	json_array_foreach(k->done, i, d)
	{
		if (strcmp(json_string_value(json_object_get(d, "id")) ?: "", id) == 0)
			return json_incref(d);
	}
	return NULL;
}

static void send_one(run *k);

/* The payer's balance refused the transfer: money in its inbox (inbox.c)
 * may cover it. Consolidated once, then the same transfer again. */
static void payer_consolidated(lg_status st, long moved, void *arg)
{
	run *k = arg;
	json_t *extra = k->fail_extra;
	k->fail_extra = NULL;
	if (st == LG_OK && moved > 0) {
		json_decref(extra);
		send_one(k);
		return;
	}
	failed(k, LG_INSUFFICIENT, extra);
}

static void posted(it_reply *r, void *arg)
{
	run *k = arg;
	const lg_transfer_new *t = &k->t[k->i];
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionCanceledException") == 0) {
		json_t *reasons = json_object_get(r->err_extra, "CancellationReasons");
		json_t *first = json_array_get(reasons, 0);
		if (lg_reason_failed(first)) {
			/* The id exists: the same transfer again, or another one. */
			const json_t *old = json_object_get(first, "Item");
			const char *p = lg_s(old, "params"), *doc = lg_s(old, "doc");
			if (p != NULL && strcmp(p, k->params) == 0 && (doc != NULL || !k->single)) {
				/* Without its document the transfer is an earlier one of
				 * this batch (written when the batch ends). */
				json_t *existing = doc != NULL ? json_loads(doc, 0, NULL) : earlier(k, k->id);
				if (k->single) {
					run_end(k, existing ? LG_DUPLICATE : LG_FAILED, existing);
					return;
				}
				if (existing == NULL) {
					failed(k, LG_FAILED, NULL);
					return;
				}
				json_array_append_new(k->done, existing);
				k->i++;
				next(k);
				return;
			}
			failed(k, LG_EXISTS, json_pack("{s:s}", "transfer", k->id));
			return;
		}
		/* The first failing leg in the documented order. */
		json_t *best_extra;
		lg_status best = lg_legs_failure(k->legs, k->is_leg, 2, reasons, 1, &best_extra);
		/* Not when this request already chained the payer's entries: the
		 * consolidation would move the head the journal holds. */
		if (best == LG_INSUFFICIENT && !k->consolidated && !lg_journal_has(k->journal, t->from)) {
			k->consolidated = true;
			k->fail_extra = best_extra;
			lg_inbox_consolidate(&k->ctx, t->from, payer_consolidated, k);
			return;
		}
		failed(k, best, best_extra);
		return;
	}
	if (r->err_type != NULL) {
		failed(k, lg_err_status(r), NULL);
		return;
	}
	/* Posted: the entries, from the accounts as the updates left them. */
	json_t *items = json_object_get(r->body, "Items");
	const json_t *after[2] = {NULL, NULL};
	int at = 1;
	for (int l = 0; l < 2; l++)
		if (k->is_leg[l])
			after[l] = json_array_get(items, (size_t)at++);
	const char *currency = t->currency;
	if (currency == NULL)
		currency = lg_s(after[0] ? after[0] : after[1], "currency");
	json_t *doc = currency == NULL ? NULL
					: lg_journal_transfer(k->journal, &(lg_posting){.id = k->id,
											.from = t->from,
											.to = t->to,
											.amount = t->amount,
											.currency = currency,
											.description = t->description,
											.metadata = t->metadata,
											.created_at = k->created_at,
											.after_from = after[0],
											.after_to = after[1]});
	if (doc == NULL) {
		failed(k, LG_FAILED, NULL);
		return;
	}
	json_array_append_new(k->done, doc);
	k->i++;
	next(k);
}

/* Sends transfer k->i: the transfer item and the legs, one transaction. */
static void send_one(run *k)
{
	const lg_transfer_new *t = &k->t[k->i];
	if (t->id != NULL)
		util_strlcpy(k->id, t->id, sizeof(k->id));
	else
		lg_new_id("tr_", k->id, sizeof(k->id));
	util_format_time(k->created_at, sizeof(k->created_at), util_now_us());
	free(k->params);
	k->params = params_of(t);
	json_t *items = json_array();
	json_array_append_new(items, lg_transfer_put_action(k->id, k->params, t->amount));
	/* from: debited, guarded, must be active; to: credited. */
	k->is_leg[0] = t->from != NULL;
	k->is_leg[1] = t->to != NULL;
	k->legs[0] = (lg_leg){.account = t->from, .dposted = -t->amount, .guard = true, .active = true, .currency = t->currency};
	k->legs[1] = (lg_leg){.account = t->to, .dposted = t->amount, .currency = t->currency};
	for (int l = 0; l < 2; l++)
		if (k->is_leg[l])
			json_array_append_new(items, lg_leg_action(&k->legs[l]));
	json_t *req = json_pack("{s:o, s:s}", "TransactItems", items, "ReturnValues", "ALL_NEW");
	lg_call(&k->ctx, 0, "TransactWriteItems", req, posted, k);
	json_decref(req);
}

static void flushed(lg_status st, void *arg)
{
	run *k = arg;
	if (st != LG_OK) {
		run_end(k, st, NULL);
		return;
	}
	json_t *out = k->single ? json_incref(json_array_get(k->done, 0)) : json_pack("{s:O}", "transfers", k->done);
	run_end(k, LG_OK, out);
}

static void next(run *k)
{
	if (k->i < k->n) {
		send_one(k);
		return;
	}
	lg_journal_flush(&k->ctx, k->journal, flushed, k);
}

static void locked(it_reply *r, void *arg)
{
	run *k = arg;
	if (r->err_type != NULL) {
		failed(k, lg_err_status(r), NULL);
		return;
	}
	next(k);
}

/* A batch takes its transfers' account rows one transfer after the other,
 * over several round trips; two batches could then take the same rows in
 * opposite orders and deadlock. So it first locks every account it names,
 * in the item layer's global key order, with one ConditionCheck each (the
 * check reads the row FOR UPDATE; the condition always holds, a missing
 * account is reported by its transfer). */
static void lock_accounts(run *k)
{
	json_t *seen = json_object(), *items = json_array();
	for (int i = 0; i < k->n; i++) {
		const char *ids[2] = {k->t[i].from, k->t[i].to};
		for (int l = 0; l < 2; l++) {
			if (ids[l] == NULL || json_object_get(seen, ids[l]) != NULL)
				continue;
			json_object_set_new(seen, ids[l], json_true());
			json_array_append_new(items, json_pack("{s:{s:s, s:o, s:s}}", "ConditionCheck", "TableName", IT_SYSTEM_TABLE,
							       "Key", lg_key("ACCOUNT#", ids[l], "METADATA"), "ConditionExpression",
							       "attribute_exists(PK) OR attribute_not_exists(PK)"));
		}
	}
	json_decref(seen);
	if (json_array_size(items) == 0) {
		json_decref(items);
		next(k);
		return;
	}
	json_t *req = json_pack("{s:o}", "TransactItems", items);
	lg_call(&k->ctx, 0, "TransactWriteItems", req, locked, k);
	json_decref(req);
}

static void start(const lg_ctx *c, const lg_transfer_new *t, int n, bool single, lg_cb cb, void *arg)
{
	run *k = calloc(1, sizeof(*k));
	if (k != NULL) {
		k->journal = lg_journal_new();
		k->done = json_array();
		k->t = malloc((size_t)n * sizeof(*t));
	}
	if (k == NULL || k->journal == NULL || k->done == NULL || k->t == NULL) {
		if (k != NULL) {
			lg_journal_free(k->journal);
			json_decref(k->done);
			free(k->t);
			free(k);
		}
		cb(LG_FAILED, NULL, arg);
		return;
	}
	k->ctx = *c;
	memcpy(k->t, t, (size_t)n * sizeof(*t));
	k->n = n;
	k->single = single;
	k->cb = cb;
	k->arg = arg;
	if (single) {
		next(k);
		return;
	}
	it_tx_mark(c->tx);
	lock_accounts(k);
}

void lg_transfer_create(const lg_ctx *c, const lg_transfer_new *t, lg_cb cb, void *arg)
{
	start(c, t, 1, true, cb, arg);
}

void lg_transfer_batch(const lg_ctx *c, const lg_transfer_new *t, int n, lg_cb cb, void *arg)
{
	start(c, t, n, false, cb, arg);
}

typedef struct get {
	lg_cb cb;
	void *arg;
} get;

static void got(it_reply *r, void *arg)
{
	get *g = arg;
	if (r->err_type != NULL) {
		g->cb(lg_err_status(r), NULL, g->arg);
	} else {
		const char *doc = lg_s(json_object_get(r->body, "Item"), "doc");
		json_t *obj = doc != NULL ? json_loads(doc, 0, NULL) : NULL;
		g->cb(obj != NULL ? LG_OK : LG_NOT_FOUND, obj, g->arg);
		json_decref(obj);
	}
	free(g);
}

void lg_transfer_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	get *g = calloc(1, sizeof(*g));
	if (g == NULL) {
		cb(LG_FAILED, NULL, arg);
		return;
	}
	g->cb = cb;
	g->arg = arg;
	json_t *req = json_pack("{s:s, s:o, s:b}", "TableName", IT_SYSTEM_TABLE, "Key", lg_key("TXN#", id, "METADATA"),
				"ConsistentRead", 1);
	lg_call(c, 0, "GetItem", req, got, g);
	json_decref(req);
}
