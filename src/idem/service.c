/* service.c — idempotency as a service (docs/api.md §9): lease-based records
 * written with conditional item-layer operations, never read-then-write.
 *
 * Item: PK "IDEMSVC#<key>", SK "METADATA", key, status (in_progress |
 * completed), fingerprint?, lease_token + lease_ms (epoch ms) while in
 * progress, response (JSON text) once completed, created_at, expires_at,
 * and the TTL attribute ttl (epoch seconds): an expired record is invisible
 * at once, so a claim of it is the claim of a new key. */
#include "idem/idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util/util.h"

typedef struct call {
	idems_cb cb;
	void *arg;
	char token[65];
	char fp[129]; /* the claim's fingerprint, "" when none */
	json_t *obj; /* prepared answer */
	int64_t now_ms;
} call;

static call *call_new(idems_cb cb, void *arg)
{
	call *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(IDEMS_FAILED, NULL, 0, arg);
		return NULL;
	}
	k->cb = cb;
	k->arg = arg;
	k->now_ms = util_now_us() / 1000;
	return k;
}

static void call_end(call *k, idems_status st, json_t *obj, int retry_after)
{
	k->cb(st, obj, retry_after, k->arg);
	json_decref(obj);
	json_decref(k->obj);
	free(k);
}

static idems_status err_status(const it_reply *r)
{
	if (!r->retryable)
		log_error("idempotency_record_failed", "{s:s, s:s}", "type", r->err_type, "message", r->err_msg ? r->err_msg : "");
	return r->retryable ? IDEMS_UNAVAILABLE : IDEMS_FAILED;
}

static json_t *key_of(const char *key)
{
	char *pk = NULL;
	if (asprintf(&pk, "IDEMSVC#%s", key) < 0)
		return NULL;
	json_t *j = json_pack("{s:{s:s}, s:{s:s}}", "PK", "S", pk, "SK", "S", "METADATA");
	free(pk);
	return j;
}

static const char *s_of(const json_t *item, const char *name)
{
	return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

static long long n_of(const json_t *item, const char *name)
{
	const char *n = json_string_value(json_object_get(json_object_get(item, name), "N"));
	return n != NULL ? strtoll(n, NULL, 10) : 0;
}

static void fmt_ms(char *buf, size_t len, long long ms)
{
	util_format_time(buf, len, (int64_t)ms * 1000);
}

/* The record as the API shows it: never the lease token. */
static json_t *record_json(const json_t *item)
{
	json_t *o = json_pack("{s:s?, s:s?, s:s?, s:s?}", "key", s_of(item, "key"), "status", s_of(item, "status"),
			      "created_at", s_of(item, "created_at"), "expires_at", s_of(item, "expires_at"));
	const char *fp = s_of(item, "fingerprint");
	if (fp != NULL)
		json_object_set_new(o, "fingerprint", json_string(fp));
	const char *st = s_of(item, "status");
	if (st != NULL && strcmp(st, "in_progress") == 0) {
		char t[40];
		fmt_ms(t, sizeof(t), n_of(item, "lease_ms"));
		json_object_set_new(o, "lease_expires_at", json_string(t));
	}
	const char *resp = s_of(item, "response");
	if (resp != NULL) {
		json_t *rj = json_loads(resp, JSON_DECODE_ANY, NULL);
		if (rj != NULL)
			json_object_set_new(o, "response", rj);
	}
	return o;
}

/* ---- claim ---- */

static void claimed(it_reply *r, void *arg)
{
	call *k = arg;
	if (r->err_type == NULL) {
		json_t *o = k->obj;
		k->obj = NULL;
		call_end(k, IDEMS_CLAIMED, o, 0);
		return;
	}
	if (strcmp(r->err_type, "ConditionalCheckFailedException") != 0) {
		call_end(k, err_status(r), NULL, 0);
		return;
	}
	const json_t *old = r->err_extra != NULL ? json_object_get(r->err_extra, "Item") : NULL;
	if (old == NULL) { /* gone meanwhile (expired or released): a retry would claim it */
		call_end(k, IDEMS_IN_USE, NULL, 1);
		return;
	}
	const char *have = s_of(old, "fingerprint");
	if (k->fp[0] != '\0' && have != NULL && strcmp(k->fp, have) != 0) {
		call_end(k, IDEMS_MISMATCH, NULL, 0);
		return;
	}
	const char *st = s_of(old, "status");
	if (st != NULL && strcmp(st, "completed") == 0) {
		call_end(k, IDEMS_COMPLETED, record_json(old), 0);
		return;
	}
	long long left_ms = n_of(old, "lease_ms") - k->now_ms;
	int retry = left_ms <= 0 ? 1 : (int)((left_ms + 999) / 1000);
	call_end(k, IDEMS_IN_USE, NULL, retry);
}

void idems_claim(it_store *s, const char *tenant, const char *key, const char *fingerprint, int lease_s, int ttl_s,
		 idems_cb cb, void *arg)
{
	call *k = call_new(cb, arg);
	if (k == NULL)
		return;
	util_random_hex(k->token, 24);
	long long lease_ms = k->now_ms + (long long)lease_s * 1000;
	long long exp_s = k->now_ms / 1000 + ttl_s;
	char lease_ms_s[24], exp_s_s[24], created[40], lease_at[40], exp_at[40];
	snprintf(lease_ms_s, sizeof(lease_ms_s), "%lld", lease_ms);
	snprintf(exp_s_s, sizeof(exp_s_s), "%lld", exp_s);
	fmt_ms(created, sizeof(created), k->now_ms);
	fmt_ms(lease_at, sizeof(lease_at), lease_ms);
	fmt_ms(exp_at, sizeof(exp_at), exp_s * 1000);
	json_t *item = key_of(key);
	if (item == NULL) {
		call_end(k, IDEMS_FAILED, NULL, 0);
		return;
	}
	json_object_update_new(item, json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "key", "S", key,
					       "status", "S", "in_progress", "lease_token", "S", k->token, "lease_ms", "N",
					       lease_ms_s, "ttl", "N", exp_s_s, "created_at", "S", created, "expires_at", "S",
					       exp_at));
	if (fingerprint != NULL)
		json_object_set_new(item, "fingerprint", json_pack("{s:s}", "S", fingerprint));
	k->obj = json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", key, "status", "in_progress", "lease_token", k->token,
			   "lease_expires_at", lease_at, "expires_at", exp_at);
	if (fingerprint != NULL)
		json_object_set_new(k->obj, "fingerprint", json_string(fingerprint));
	char now[24];
	snprintf(now, sizeof(now), "%lld", (long long)k->now_ms);
	/* New (or expired, which reads as absent), or a lease that ran out —
	 * taken over only by a request with the same fingerprint. */
	const char *cond = fingerprint != NULL
				   ? "attribute_not_exists(PK) OR (#st = :inprog AND lease_ms < :now AND"
				     " (attribute_not_exists(fingerprint) OR fingerprint = :fp))"
				   : "attribute_not_exists(PK) OR (#st = :inprog AND lease_ms < :now)";
	json_t *vals = json_pack("{s:{s:s}, s:{s:s}}", ":inprog", "S", "in_progress", ":now", "N", now);
	if (fingerprint != NULL)
		json_object_set_new(vals, ":fp", json_pack("{s:s}", "S", fingerprint));
	json_t *req = json_pack("{s:s, s:o, s:s, s:{s:s}, s:o, s:s}", "TableName", IT_SYSTEM_TABLE, "Item", item,
				"ConditionExpression", cond, "ExpressionAttributeNames", "#st", "status",
				"ExpressionAttributeValues", vals, "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
	if (fingerprint != NULL)
		util_strlcpy(k->fp, fingerprint, sizeof(k->fp));
	it_call_internal(s, tenant, "PutItem", req, claimed, k);
	json_decref(req);
}

/* ---- complete / release: conditional on holding the lease ---- */

static void held_done(it_reply *r, void *arg)
{
	call *k = arg;
	if (r->err_type == NULL) {
		const json_t *attrs = json_object_get(r->body, "Attributes");
		call_end(k, IDEMS_OK, attrs != NULL ? record_json(attrs) : NULL, 0);
		return;
	}
	if (strcmp(r->err_type, "ConditionalCheckFailedException") != 0) {
		call_end(k, err_status(r), NULL, 0);
		return;
	}
	const json_t *old = r->err_extra != NULL ? json_object_get(r->err_extra, "Item") : NULL;
	call_end(k, old != NULL ? IDEMS_LEASE_LOST : IDEMS_NOT_FOUND, NULL, 0);
}

void idems_complete(it_store *s, const char *tenant, const char *key, const char *token, const json_t *response,
		    idems_cb cb, void *arg)
{
	call *k = call_new(cb, arg);
	if (k == NULL)
		return;
	char *text = json_dumps(response, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_t *kj = key_of(key);
	if (text == NULL || kj == NULL) {
		free(text);
		json_decref(kj);
		call_end(k, IDEMS_FAILED, NULL, 0);
		return;
	}
	json_t *req = json_pack("{s:s, s:o, s:s, s:s, s:{s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:s, s:s}", "TableName",
				IT_SYSTEM_TABLE, "Key", kj, "UpdateExpression",
				"SET #st = :done, #resp = :resp REMOVE lease_token, lease_ms", "ConditionExpression",
				"#st = :inprog AND lease_token = :tok", "ExpressionAttributeNames", "#st", "status",
				"ExpressionAttributeValues", ":done", "S", "completed", ":inprog", "S", "in_progress", ":tok",
				"S", token, "ReturnValues", "ALL_NEW", "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
	json_object_set_new(json_object_get(req, "ExpressionAttributeValues"), ":resp", json_pack("{s:s}", "S", text));
	json_object_set_new(json_object_get(req, "ExpressionAttributeNames"), "#resp", json_string("response"));
	free(text);
	it_call_internal(s, tenant, "UpdateItem", req, held_done, k);
	json_decref(req);
}

void idems_release(it_store *s, const char *tenant, const char *key, const char *token, idems_cb cb, void *arg)
{
	call *k = call_new(cb, arg);
	if (k == NULL)
		return;
	json_t *kj = key_of(key);
	if (kj == NULL) {
		call_end(k, IDEMS_FAILED, NULL, 0);
		return;
	}
	json_t *req = json_pack("{s:s, s:o, s:s, s:{s:s}, s:{s:{s:s}, s:{s:s}}, s:s}", "TableName", IT_SYSTEM_TABLE, "Key",
				kj, "ConditionExpression", "#st = :inprog AND lease_token = :tok", "ExpressionAttributeNames",
				"#st", "status", "ExpressionAttributeValues", ":inprog", "S", "in_progress", ":tok", "S", token,
				"ReturnValuesOnConditionCheckFailure", "ALL_OLD");
	it_call_internal(s, tenant, "DeleteItem", req, held_done, k);
	json_decref(req);
}

static void got(it_reply *r, void *arg)
{
	call *k = arg;
	if (r->err_type != NULL) {
		call_end(k, err_status(r), NULL, 0);
		return;
	}
	const json_t *item = json_object_get(r->body, "Item");
	call_end(k, item != NULL ? IDEMS_OK : IDEMS_NOT_FOUND, item != NULL ? record_json(item) : NULL, 0);
}

void idems_get(it_store *s, const char *tenant, const char *key, idems_cb cb, void *arg)
{
	call *k = call_new(cb, arg);
	if (k == NULL)
		return;
	json_t *kj = key_of(key);
	if (kj == NULL) {
		call_end(k, IDEMS_FAILED, NULL, 0);
		return;
	}
	json_t *req = json_pack("{s:s, s:o, s:b}", "TableName", IT_SYSTEM_TABLE, "Key", kj, "ConsistentRead", 1);
	it_call_internal(s, tenant, "GetItem", req, got, k);
	json_decref(req);
}
