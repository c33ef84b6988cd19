/* problem.c — problem+json results of the API. The `code` is the
 * machine-readable part clients branch on; titles are for humans and may
 * change. Codes the HTTP layer also answers with take its titles. */
#include "api/problem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/pipeline.h"
#include "http/problem.h"

static const struct {
	const char *code;
	const char *title;
} titles[] = {
	{"unauthenticated", "Authentication required"},
	{"forbidden", "The API key lacks the required scope"},
	{"idempotency_key_missing", "Idempotency-Key header required"},
	{"idempotency_key_invalid", "Idempotency-Key header invalid"},
	{"idempotency_key_reused", "Idempotency-Key reused with another request"},
	{"idempotency_key_in_use", "Idempotency-Key in use by a request in progress"},
	{"lease_lost", "The lease on this idempotency key was lost"},
	{"account_not_found", "Account not found"},
	{"account_exists", "Account exists"},
	{"account_frozen", "Account frozen"},
	{"insufficient_funds", "Insufficient funds"},
	{"currency_mismatch", "Currency mismatch"},
	{"same_account", "Transfer to the same account"},
	{"amount_overflow", "Amount would overflow a balance"},
	{"transfer_not_found", "Transfer not found"},
	{"transfer_exists", "Transfer exists with other parameters"},
	{"hold_not_found", "Hold not found"},
	{"hold_exists", "Hold exists with other parameters"},
	{"hold_not_pending", "Hold is not pending"},
	{"order_not_found", "Order not found"},
	{"order_exists", "Order exists with other parameters"},
	{"order_not_payable", "Order is not in a state that allows this"},
	{"refund_exceeds_payment", "Refund exceeds the payment"},
	{"rate_limited", "Too many requests for this API key"},
};

static const char *title_for(const char *code)
{
	for (size_t i = 0; i < OL_ARRAY_LEN(titles); i++)
		if (strcmp(titles[i].code, code) == 0)
			return titles[i].title;
	const char *t = http_problem_title(code);
	return t != NULL ? t : code;
}

void api_result_json(http_req *r, int status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL) {
		static const char fallback[] = "{\"type\":\"urn:onceledger:problem:internal\",\"title\":\"Internal error\","
					       "\"status\":500,\"code\":\"internal\"}";
		api_result(r, 500, "application/problem+json", fallback, sizeof(fallback) - 1);
		return;
	}
	/* Taken, not copied: the gate saves this very buffer. */
	api_result_take(r, status, status >= 400 ? "application/problem+json" : "application/json", text, strlen(text));
}

void problem_send(http_req *r, int status, const char *code, const char *detail, json_t *ext)
{
	char type[128];
	snprintf(type, sizeof(type), "urn:onceledger:problem:%s", code);
	json_t *p = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", title_for(code), "status", status, "code", code);
	if (p != NULL && detail != NULL)
		json_object_set_new(p, "detail", json_string(detail));
	/* RFC 9457: the members above are the problem's own; an extension
	 * member never replaces them (a numeric "status" above all). */
	if (p != NULL && ext != NULL)
		json_object_update_missing(p, ext);
	json_decref(ext);
	api_result_json(r, status, p);
}

void problem_unavailable(http_req *r, int retry_after_s, const char *detail)
{
	char ra[16];
	snprintf(ra, sizeof(ra), "%d", retry_after_s);
	http_req_add_header(r, "Retry-After", ra);
	problem_send(r, 503, "unavailable", detail, NULL);
}
