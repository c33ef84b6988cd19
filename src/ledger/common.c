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

json_t *lg_account_json(const json_t *item)
{
	const char *owner = lg_s(item, "owner");
	const char *meta = lg_s(item, "metadata");
	json_t *m = meta != NULL ? json_loads(meta, 0, NULL) : NULL;
	int64_t posted = lg_n(item, "posted"), pending = lg_n(item, "pending");
	return json_pack("{s:s?, s:s?, s:o, s:s?, s:{s:I, s:I, s:I}, s:I, s:I, s:o, s:s?}", "id", lg_s(item, "id"),
			 "currency", lg_s(item, "currency"), "owner", owner ? json_string(owner) : json_null(), "status",
			 lg_s(item, "status"), "balance", "posted", (json_int_t)posted, "pending", (json_int_t)pending,
			 "available", (json_int_t)(posted - pending), "overdraft_limit", (json_int_t)lg_n(item, "overdraft_limit"),
			 "version", (json_int_t)lg_n(item, "version"), "metadata", m ? m : json_object(), "created_at",
			 lg_s(item, "created_at"));
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
