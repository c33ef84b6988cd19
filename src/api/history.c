/* history.c — §7 ledger history for auditors: query strings in, the
 * ledger's reads out. */
#include "api/ledger_api.h"

#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "util/util.h"

#define FOREVER_US 9999999999999999LL /* the end of the entries_by_time index */

static void reply(lg_status st, json_t *obj, void *arg)
{
	api_ledger_reply(arg, st, obj, 200, "account");
}

static void listed(lg_status st, json_t *obj, void *arg)
{
	http_req *r = arg;
	if (st != LG_OK) {
		api_ledger_reply(r, st, obj, 200, "account");
		return;
	}
	const json_t *next = json_object_get(obj, "next");
	char *cursor = json_is_object(next) ? v_cursor_encode(next) : NULL;
	http_reply_json(r, 200, json_pack("{s:O, s:s?}", "data", json_object_get(obj, "data"), "next_cursor", cursor));
	free(cursor);
}

void api_entries(http_req *r)
{
	if (!v_path_id(r, api_param(r, 0), "account_not_found"))
		return;
	lg_range range = {0};
	json_t *cursor = NULL;
	char *order = v_query(r, "order");
	bool order_ok = order == NULL || strcmp(order, "asc") == 0 || strcmp(order, "desc") == 0;
	range.desc = order != NULL && strcmp(order, "desc") == 0;
	free(order);
	if (!order_ok) {
		problem_send(r, 400, "invalid_request", "'order' must be asc or desc", json_pack("{s:s}", "field", "order"));
		return;
	}
	if (!v_query_time(r, "from", 0, &range.from_us) || !v_query_time(r, "to", FOREVER_US, &range.to_us) ||
	    !v_limit(r, &range.limit) || !v_cursor(r, &cursor))
		return;
	range.after = cursor;
	lg_ctx c = api_lg_ctx(r);
	lg_entries(&c, api_param(r, 0), &range, listed, r);
	json_decref(cursor);
}

void api_balance_at(http_req *r)
{
	int64_t at;
	if (!v_path_id(r, api_param(r, 0), "account_not_found") || !v_query_time(r, "at", util_now_us(), &at))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_balance_at(&c, api_param(r, 0), at, reply, r);
}

void api_statement(http_req *r)
{
	int64_t from, to;
	if (!v_path_id(r, api_param(r, 0), "account_not_found") || !v_query_time(r, "from", 0, &from) ||
	    !v_query_time(r, "to", util_now_us() + 1, &to))
		return;
	if (to < from) {
		problem_send(r, 400, "invalid_request", "'to' must not be before 'from'", json_pack("{s:s}", "field", "to"));
		return;
	}
	lg_ctx c = api_lg_ctx(r);
	lg_statement(&c, api_param(r, 0), from, to, reply, r);
}

void api_verify(http_req *r)
{
	if (!v_path_id(r, api_param(r, 0), "account_not_found"))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_verify(&c, api_param(r, 0), reply, r);
}

void api_audit_verify(http_req *r)
{
	char *cur = v_query(r, "currency");
	if (cur == NULL || strlen(cur) != 3 || cur[0] < 'A' || cur[0] > 'Z' || cur[1] < 'A' || cur[1] > 'Z' || cur[2] < 'A' ||
	    cur[2] > 'Z') {
		free(cur);
		problem_send(r, 400, "invalid_request", "'currency' is required: three uppercase ASCII letters",
			     json_pack("{s:s}", "field", "currency"));
		return;
	}
	lg_ctx c = api_lg_ctx(r);
	lg_audit_verify(&c, cur, reply, r);
	free(cur);
}
