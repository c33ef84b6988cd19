/* accounts.c — accounts as items: PK "ACCOUNT#<id>", SK "METADATA";
 * accounts with an owner also carry GSI1PK "OWNER#<owner>" and GSI1SK
 * "ACCOUNT#<id>" (index by_owner, sparse: no owner, not in it). Balances
 * are N attributes changed only by conditional updates (transfers.c). */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util/util.h"

typedef struct call {
	lg_cb cb;
	void *arg;
	json_t *obj; /* the answer prepared before the call, if any */
	bool frozen;
	lg_ctx ctx;
	char id[80];
} call;

static call *call_new(lg_cb cb, void *arg)
{
	call *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, arg);
		return NULL;
	}
	k->cb = cb;
	k->arg = arg;
	return k;
}

/* Ends the call with st and obj (taken). */
static void call_end(call *k, lg_status st, json_t *obj)
{
	k->cb(st, obj, k->arg);
	json_decref(obj);
	json_decref(k->obj);
	free(k);
}

static void created(it_reply *r, void *arg)
{
	call *k = arg;
	if (r->err_type != NULL) {
		call_end(k, strcmp(r->err_type, "TransactionCanceledException") == 0 ? LG_EXISTS : lg_err_status(r), NULL);
		return;
	}
	/* The answer is the item as written: nothing else can change it
	 * before this transaction commits. */
	json_t *obj = k->obj;
	k->obj = NULL;
	call_end(k, LG_OK, obj);
}

void lg_account_create(const lg_ctx *c, const lg_account_new *a, lg_cb cb, void *arg)
{
	call *k = call_new(cb, arg);
	if (k == NULL)
		return;
	char id[80];
	if (a->id != NULL)
		util_strlcpy(id, a->id, sizeof(id));
	else
		lg_new_id("acc_", id, sizeof(id));
	char created_at[40], limit[24];
	util_format_time(created_at, sizeof(created_at), util_now_us());
	snprintf(limit, sizeof(limit), "%lld", (long long)a->overdraft_limit);
	char *meta_text = a->metadata != NULL ? json_dumps(a->metadata, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_t *item = lg_key("ACCOUNT#", id, "METADATA");
	json_object_update_new(item, json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s},"
					       " s:{s:s}, s:{s:s}, s:{s:s}}",
					       "type", "S", "account", "id", "S", id, "currency", "S", a->currency, "status", "S",
					       "active", "posted", "N", "0", "pending", "N", "0", "overdraft_limit", "N", limit,
					       "version", "N", "1", "seq", "N", "0", "head", "S", LG_ZERO_HASH, "metadata", "S",
					       meta_text ? meta_text : "{}", "created_at", "S", created_at));
	/* spendable = posted - pending + overdraft_limit: the guard's operand
	 * (a condition cannot add attributes); by_currency for the audit. */
	char cur_pk[16], acc_sk[96];
	snprintf(cur_pk, sizeof(cur_pk), "CUR#%s", a->currency);
	snprintf(acc_sk, sizeof(acc_sk), "ACCOUNT#%s", id);
	json_object_update_new(item, json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "spendable", "N", limit, "last_at", "N",
					       "0", "GSI6PK", "S", cur_pk, "GSI6SK", "S", acc_sk));
	free(meta_text);
	if (a->owner != NULL) {
		char gpk[200], gsk[96];
		snprintf(gpk, sizeof(gpk), "OWNER#%s", a->owner);
		snprintf(gsk, sizeof(gsk), "ACCOUNT#%s", id);
		json_object_update_new(item, json_pack("{s:{s:s}, s:{s:s}, s:{s:s}}", "owner", "S", a->owner, "GSI1PK", "S", gpk,
						       "GSI1SK", "S", gsk));
	}
	k->obj = lg_account_json(item);
	/* A transaction of one Put: the only write call that carries events. */
	json_t *req = json_pack("{s:[{s:{s:s, s:o, s:s}}]}", "TransactItems", "Put", "TableName", IT_SYSTEM_TABLE, "Item", item,
				"ConditionExpression", "attribute_not_exists(PK)");
	if (req == NULL || k->obj == NULL || !lg_emit(req, "account.created", k->obj)) {
		json_decref(req);
		call_end(k, LG_FAILED, NULL);
		return;
	}
	it_call_tx(c->items, c->tx, IT_INTERNAL, c->tenant, "TransactWriteItems", req, created, k);
	json_decref(req);
}

static void got(it_reply *r, void *arg)
{
	call *k = arg;
	if (r->err_type != NULL) {
		call_end(k, lg_err_status(r), NULL);
		return;
	}
	const json_t *item = json_object_get(r->body, "Item");
	if (item == NULL) {
		call_end(k, LG_NOT_FOUND, NULL);
		return;
	}
	call_end(k, LG_OK, lg_account_json(item));
}

static void inbox_posted(lg_status st, long moved, void *arg)
{
	call *k = arg;
	(void)moved;
	if (st == LG_UNAVAILABLE || st == LG_FAILED) {
		call_end(k, st, NULL);
		return;
	}
	json_t *req = json_pack("{s:s, s:o, s:b}", "TableName", IT_SYSTEM_TABLE, "Key", lg_key("ACCOUNT#", k->id, "METADATA"),
				"ConsistentRead", 1);
	it_call_tx(k->ctx.items, k->ctx.tx, IT_INTERNAL, k->ctx.tenant, "GetItem", req, got, k);
	json_decref(req);
}

void lg_account_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	call *k = call_new(cb, arg);
	if (k == NULL)
		return;
	k->ctx = *c;
	util_strlcpy(k->id, id, sizeof(k->id));
	/* A hot account's inbox (inbox.c) is posted first, so the balance
	 * read includes every credit committed before this GET. */
	lg_inbox_consolidate(c, id, inbox_posted, k);
}

static void status_emitted(lg_status st, void *arg)
{
	call *k = arg;
	json_t *obj = k->obj;
	k->obj = NULL;
	call_end(k, st, st == LG_OK ? obj : NULL);
	if (st != LG_OK)
		json_decref(obj);
}

static void status_set(it_reply *r, void *arg)
{
	call *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "ConditionalCheckFailedException") == 0) {
		/* Missing, or already in that state: then it is the answer. */
		const json_t *old = r->err_extra != NULL ? json_object_get(r->err_extra, "Item") : NULL;
		call_end(k, old != NULL ? LG_OK : LG_NOT_FOUND, old != NULL ? lg_account_json(old) : NULL);
		return;
	}
	if (r->err_type != NULL) {
		call_end(k, lg_err_status(r), NULL);
		return;
	}
	/* Changed: the event carries the account as this update left it. */
	k->obj = lg_account_json(json_object_get(r->body, "Attributes"));
	if (k->obj == NULL) {
		call_end(k, LG_FAILED, NULL);
		return;
	}
	lg_emit_deferred(&k->ctx, k->frozen ? "account.frozen" : "account.unfrozen", k->obj, status_emitted, k);
}

void lg_account_set_frozen(const lg_ctx *c, const char *id, bool frozen, lg_cb cb, void *arg)
{
	call *k = call_new(cb, arg);
	if (k == NULL)
		return;
	k->ctx = *c;
	k->frozen = frozen;
	const char *to = frozen ? "frozen" : "active";
	json_t *req = json_pack("{s:s, s:o, s:s, s:s, s:{s:s}, s:{s:{s:s}, s:{s:s}}, s:s, s:s}", "TableName", IT_SYSTEM_TABLE,
				"Key", lg_key("ACCOUNT#", id, "METADATA"), "UpdateExpression", "SET #st = :to, version = version + :one",
				"ConditionExpression", "attribute_exists(PK) AND #st <> :to", "ExpressionAttributeNames", "#st",
				"status", "ExpressionAttributeValues", ":to", "S", to, ":one", "N", "1", "ReturnValues", "ALL_NEW",
				"ReturnValuesOnConditionCheckFailure", "ALL_OLD");
	it_call_tx(c->items, c->tx, IT_INTERNAL, c->tenant, "UpdateItem", req, status_set, k);
	json_decref(req);
}

static void listed(it_reply *r, void *arg)
{
	call *k = arg;
	if (r->err_type != NULL) {
		json_t *extra;
		lg_status st = lg_list_err_status(r, &extra);
		call_end(k, st, extra);
		return;
	}
	json_t *data = json_array();
	json_t *items = json_object_get(r->body, "Items");
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
		json_array_append_new(data, lg_account_json(it));
	json_t *next = json_object_get(r->body, "LastEvaluatedKey");
	call_end(k, LG_OK, json_pack("{s:o, s:O}", "data", data, "next", next ? next : json_null()));
}

void lg_accounts_by_owner(const lg_ctx *c, const char *owner, int limit, const json_t *after, lg_cb cb, void *arg)
{
	call *k = call_new(cb, arg);
	if (k == NULL)
		return;
	char gpk[200];
	snprintf(gpk, sizeof(gpk), "OWNER#%s", owner);
	json_t *req = json_pack("{s:s, s:s, s:s, s:{s:{s:s}}, s:i}", "TableName", IT_SYSTEM_TABLE, "IndexName", "by_owner",
				"KeyConditionExpression", "GSI1PK = :o", "ExpressionAttributeValues", ":o", "S", gpk, "Limit",
				limit);
	if (after != NULL)
		json_object_set(req, "ExclusiveStartKey", (json_t *)after);
	it_call_tx(c->items, c->tx, IT_INTERNAL, c->tenant, "Query", req, listed, k);
	json_decref(req);
}
