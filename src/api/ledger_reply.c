/* ledger_reply.c — one mapping from ledger outcomes to HTTP answers
 * (docs/api.md §3–§5, docs/errors.md). */
#include "api/ledger_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"

void api_ledger_reply(http_req *r, lg_status st, json_t *obj, int ok_status, const char *what)
{
	char code[40];
	if (st == LG_OK || st == LG_DUPLICATE) {
		api_result_json(r, st == LG_OK ? ok_status : 200, json_incref(obj));
		return;
	}
	/* A refusal's members become the problem's extension members:
	 * problem_send only reads them (and drops its reference), no copy. */
	json_t *ext = json_incref(obj);
	switch (st) {
	case LG_NOT_FOUND:
		/* A leg names the missing account; otherwise the object itself. */
		snprintf(code, sizeof(code), "%s_not_found", json_object_get(obj, "account") ? "account" : what);
		problem_send(r, 404, code, "no such object in this tenant", ext);
		return;
	case LG_EXISTS:
		snprintf(code, sizeof(code), "%s_exists", what);
		problem_send(r, 409, code, "this id exists already with other parameters", ext);
		return;
	case LG_INSUFFICIENT:
		problem_send(r, 402, "insufficient_funds", "the amount exceeds the available balance plus the overdraft limit", ext);
		return;
	case LG_FROZEN:
		problem_send(r, 409, "account_frozen", "the account is frozen", ext);
		return;
	case LG_CURRENCY_MISMATCH:
		problem_send(r, 422, "currency_mismatch", "the account's currency is not the request's", ext);
		return;
	case LG_OVERFLOW:
		problem_send(r, 422, "amount_overflow", "the amount would overflow the account's balance", ext);
		return;
	case LG_NOT_PENDING:
		if (strcmp(what, "order") == 0)
			problem_send(r, 409, "order_not_payable", "the order is not in a state that allows this", ext);
		else
			problem_send(r, 409, "hold_not_pending", "the hold is not pending", ext);
		return;
	case LG_TOO_MUCH:
		if (strcmp(what, "order") == 0) {
			problem_send(r, 422, "refund_exceeds_payment", "the refund exceeds what was paid and not refunded yet", ext);
			return;
		}
		json_decref(ext);
		problem_send(r, 400, "invalid_request", "'amount' exceeds the hold's amount", json_pack("{s:s}", "field", "amount"));
		return;
	case LG_INVALID:
		problem_send(r, 400, "invalid_request", "the request does not fit (e.g. a cursor of another list)", ext);
		return;
	case LG_UNAVAILABLE:
		json_decref(ext);
		problem_unavailable(r, api_worker(r)->app->cfg->retry_after_s, "the database is unavailable");
		return;
	case LG_FAILED:
	default:
		json_decref(ext);
		problem_send(r, 500, "internal", "internal error; see the server log with this request id", NULL);
		return;
	}
}

void api_ledger_reply_doc(http_req *r, lg_status st, json_t *obj, const char *doc, int ok_status, const char *what)
{
	if ((st == LG_OK || st == LG_DUPLICATE) && doc != NULL)
		api_result(r, st == LG_OK ? ok_status : 200, "application/json", doc, strlen(doc));
	else
		api_ledger_reply(r, doc == NULL && (st == LG_OK || st == LG_DUPLICATE) ? LG_FAILED : st, obj, ok_status, what);
}

void api_list_reply(http_req *r, lg_status st, json_t *obj, const char *what)
{
	if (st != LG_OK) {
		api_ledger_reply(r, st, obj, 200, what);
		return;
	}
	const json_t *next = json_object_get(obj, "next");
	char *cursor = json_is_object(next) ? v_cursor_encode(r, next) : NULL;
	if (json_is_object(next) && cursor == NULL) { /* never a silently shortened list */
		problem_send(r, 500, "internal", "internal error; see the server log with this request id", NULL);
		return;
	}
	api_result_json(r, 200, json_pack("{s:O, s:s?}", "data", json_object_get(obj, "data"), "next_cursor", cursor));
	free(cursor);
}
