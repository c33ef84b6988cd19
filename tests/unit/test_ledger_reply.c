/* test_ledger_reply.c — the one mapping from ledger outcomes to HTTP
 * answers (src/api/ledger_reply.c, docs/errors.md), without a server: the
 * reply functions of src/http and the cursor encoder are fakes that record
 * what would be sent. Their symbols take the place of the real ones at
 * link time. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/ledger_api.h"
#include "api/validate.h"
#include "config.h"
#include "api/problem.h"
#include "tap.h"

/* ---- the fakes ---- */

static struct {
	int calls;
	int status;
	char code[64];
	json_t *body; /* a JSON reply's body, or a problem's ext */
	int retry_after;
	bool cursor_fails;
} sent;

void api_result_json(http_req *r, int status, json_t *body)
{
	(void)r;
	sent.calls++;
	sent.status = status;
	sent.code[0] = '\0';
	json_decref(sent.body);
	sent.body = body;
}

void problem_send(http_req *r, int status, const char *code, const char *detail, json_t *ext)
{
	(void)r, (void)detail;
	sent.calls++;
	sent.status = status;
	snprintf(sent.code, sizeof(sent.code), "%s", code);
	json_decref(sent.body);
	sent.body = ext;
}

void problem_unavailable(http_req *r, int retry_after_s, const char *detail)
{
	(void)r, (void)detail;
	sent.calls++;
	sent.status = 503;
	snprintf(sent.code, sizeof(sent.code), "unavailable");
	sent.retry_after = retry_after_s;
}

static ol_config cfg = {.retry_after_s = 7};
static app the_app = {.cfg = &cfg};
static app_worker worker = {.app = &the_app};

void *http_worker_app(http_worker *w)
{
	(void)w;
	return &worker;
}

char *v_cursor_encode(http_req *r, const json_t *pos)
{
	(void)r;
	return sent.cursor_fails ? NULL : strdup(json_string_value(json_object_get(pos, "id")));
}

/* ---- the mapping ---- */

static http_req req;

static void reply(lg_status st, const char *obj, int ok_status, const char *what)
{
	json_decref(sent.body);
	memset(&sent, 0, sizeof(sent));
	json_t *o = obj != NULL ? json_loads(obj, 0, NULL) : NULL;
	api_ledger_reply(&req, st, o, ok_status, what);
	json_decref(o);
}

static bool is(int status, const char *code)
{
	return sent.calls == 1 && sent.status == status && strcmp(sent.code, code) == 0;
}

static void test_outcomes(void)
{
	reply(LG_OK, "{\"id\":\"t1\"}", 201, "transfer");
	CHECK(is(201, "") && strcmp(json_string_value(json_object_get(sent.body, "id")), "t1") == 0, "OK: the given status, the object");
	reply(LG_DUPLICATE, "{\"id\":\"t1\"}", 201, "transfer");
	CHECK(is(200, "") && json_object_get(sent.body, "id") != NULL, "DUPLICATE: 200 with the stored object");
	reply(LG_NOT_FOUND, "{\"account\":\"a1\"}", 201, "transfer");
	CHECK(is(404, "account_not_found") && strcmp(json_string_value(json_object_get(sent.body, "account")), "a1") == 0,
	      "NOT_FOUND naming an account: account_not_found with it");
	reply(LG_NOT_FOUND, NULL, 200, "hold");
	CHECK(is(404, "hold_not_found"), "NOT_FOUND of the object: <what>_not_found");
	reply(LG_EXISTS, "{\"id\":\"x\"}", 201, "order");
	CHECK(is(409, "order_exists"), "EXISTS: 409 <what>_exists");
	reply(LG_INSUFFICIENT, "{\"available\":5,\"overdraft_limit\":0}", 201, "transfer");
	CHECK(is(402, "insufficient_funds") && json_integer_value(json_object_get(sent.body, "available")) == 5,
	      "INSUFFICIENT: 402 with available and overdraft_limit");
	reply(LG_FROZEN, NULL, 201, "transfer");
	CHECK(is(409, "account_frozen"), "FROZEN: 409 account_frozen");
	reply(LG_CURRENCY_MISMATCH, NULL, 201, "transfer");
	CHECK(is(422, "currency_mismatch"), "CURRENCY_MISMATCH: 422");
	reply(LG_OVERFLOW, NULL, 201, "transfer");
	CHECK(is(422, "amount_overflow"), "OVERFLOW: 422 amount_overflow");
	reply(LG_NOT_PENDING, "{\"order_status\":\"paid\"}", 200, "order");
	CHECK(is(409, "order_not_payable") && json_object_get(sent.body, "order_status") != NULL,
	      "NOT_PENDING of an order: 409 order_not_payable with its status");
	reply(LG_NOT_PENDING, NULL, 200, "hold");
	CHECK(is(409, "hold_not_pending"), "NOT_PENDING of a hold: 409 hold_not_pending");
	reply(LG_TOO_MUCH, NULL, 200, "order");
	CHECK(is(422, "refund_exceeds_payment"), "TOO_MUCH of an order: 422 refund_exceeds_payment");
	reply(LG_TOO_MUCH, "{\"x\":1}", 200, "hold");
	CHECK(is(400, "invalid_request") && strcmp(json_string_value(json_object_get(sent.body, "field")), "amount") == 0 &&
		      json_object_get(sent.body, "x") == NULL,
	      "TOO_MUCH of a hold: 400 invalid_request on amount");
	reply(LG_INVALID, NULL, 200, "account");
	CHECK(is(400, "invalid_request"), "INVALID: 400 invalid_request");
	reply(LG_UNAVAILABLE, NULL, 200, "account");
	CHECK(is(503, "unavailable") && sent.retry_after == 7, "UNAVAILABLE: 503 with the configured Retry-After");
	reply(LG_FAILED, "{\"secret\":1}", 200, "account");
	CHECK(is(500, "internal") && sent.body == NULL, "FAILED: 500 internal, nothing of the object shown");
	reply((lg_status)999, NULL, 200, "account");
	CHECK(is(500, "internal"), "an unknown outcome: 500 internal");
}

static void test_lists(void)
{
	json_decref(sent.body);
	memset(&sent, 0, sizeof(sent));
	json_t *page = json_pack("{s:[i,i], s:{s:s}}", "data", 1, 2, "next", "id", "c9");
	api_list_reply(&req, LG_OK, page, "account");
	CHECK(is(200, "") && json_array_size(json_object_get(sent.body, "data")) == 2 &&
		      strcmp(json_string_value(json_object_get(sent.body, "next_cursor")), "c9") == 0,
	      "a page: data and the next cursor");
	json_decref(sent.body);
	memset(&sent, 0, sizeof(sent));
	sent.cursor_fails = true;
	api_list_reply(&req, LG_OK, page, "account");
	CHECK(is(500, "internal"), "a next position that cannot be encoded: 500, never a silently shortened list");
	json_decref(page);
	json_decref(sent.body);
	memset(&sent, 0, sizeof(sent));
	page = json_pack("{s:[], s:n}", "data", "next");
	api_list_reply(&req, LG_OK, page, "account");
	CHECK(is(200, "") && json_is_null(json_object_get(sent.body, "next_cursor")), "the last page: next_cursor null");
	json_decref(page);
	json_decref(sent.body);
	memset(&sent, 0, sizeof(sent));
	api_list_reply(&req, LG_UNAVAILABLE, NULL, "account");
	CHECK(is(503, "unavailable"), "a failed list: the outcome's problem");
}

int main(void)
{
	test_outcomes();
	test_lists();
	json_decref(sent.body);
	return it_test_done();
}
