/* history.c — §7 ledger history for auditors: query strings in, the
 * ledger's reads out. */
#include "api/ledger_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "util/util.h"

#define FOREVER_US 9999999999999999LL /* no "to": every entry (the year 2286) */

/* Sums past int64 come from the ledger as strings of digits (jansson has
 * no larger integers); written here as the exact JSON numbers they are. */
static void reply(lg_status st, json_t *obj, void *arg)
{
	static const char *const big[] = {"sum", "world", "debits", "credits", "closing_balance", NULL};
	bool any = false;
	for (int i = 0; st == LG_OK && big[i] != NULL; i++)
		any = any || json_is_string(json_object_get(obj, big[i]));
	if (!any) {
		api_ledger_reply(arg, st, obj, 200, "account");
		return;
	}
	char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	for (int i = 0; text != NULL && big[i] != NULL; i++) {
		const char *v = json_string_value(json_object_get(obj, big[i]));
		if (v == NULL)
			continue;
		char pat[32];
		snprintf(pat, sizeof(pat), "\"%s\":\"", big[i]);
		char *at = strstr(text, pat);
		if (at == NULL)
			continue;
		char *q1 = at + strlen(pat) - 1, *q2 = q1 + 1 + strlen(v);
		/* digits only: drop the two quotes */
		memmove(q2, q2 + 1, strlen(q2 + 1) + 1);
		memmove(q1, q1 + 1, strlen(q1 + 1) + 1);
	}
	if (text == NULL) {
		api_ledger_reply(arg, LG_FAILED, NULL, 200, "account");
		return;
	}
	api_result(arg, 200, "application/json", text, strlen(text));
	free(text);
}

static void listed(lg_status st, json_t *obj, void *arg)
{
	api_list_reply(arg, st, obj, "account");
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

/* The audit's page: its position becomes the opaque next_cursor (the same
 * codec as the lists', validate.c). */
static void audited(lg_status st, json_t *obj, void *arg)
{
	if (st == LG_OK) {
		const json_t *next = json_object_get(obj, "next");
		bool more = json_is_object(next);
		char *c = more ? v_cursor_encode((http_req *)arg, next) : NULL;
		if (more && c == NULL) {
			reply(LG_FAILED, NULL, arg);
			return;
		}
		json_object_set_new(obj, "next_cursor", c != NULL ? json_string(c) : json_null());
		json_object_del(obj, "next");
		free(c);
	}
	reply(st, obj, arg);
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
	lg_audit_page page = {.limit = 1000, .max_entries = api_worker(r)->app->cfg->audit_page_entries};
	json_t *cursor = NULL;
	char *limit = v_query(r, "limit"); /* absent: 1000, not the lists' 100 */
	bool ok = (limit == NULL || v_limit(r, &page.limit)) && v_cursor(r, &cursor);
	free(limit);
	if (!ok) {
		free(cur);
		return;
	}
	if (page.max_entries < 1)
		page.max_entries = 1;
	page.cursor = cursor;
	lg_ctx c = api_lg_ctx(r);
	lg_audit_verify(&c, cur, &page, audited, r);
	json_decref(cursor);
	free(cur);
}
