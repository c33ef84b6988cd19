/* orders.c — §6 orders: decode and validate, call the ledger, encode. */
#include "api/ledger_api.h"

#include <stdlib.h>
#include <string.h>

#include "api/validate.h"

#define EXPIRES_IN_MAX 2592000
#define EXPIRES_IN_DEFAULT 900

static void reply_201(lg_status st, json_t *obj, void *arg)
{
	api_ledger_reply(arg, st, obj, 201, "order");
}

static void reply_200(lg_status st, json_t *obj, void *arg)
{
	api_ledger_reply(arg, st, obj, 200, "order");
}

void api_order_create(http_req *r)
{
	static const char *const fields[] = {"id", "customer", "merchant", "amount", "currency", "expires_in", "metadata", NULL};
	const json_t *b = api_ctx(r)->body;
	lg_order_new o = {0};
	if (!v_only_fields(r, b, fields) || !v_opt_id(r, b, "id", &o.id) || !v_account_ref(r, b, "customer", &o.customer) ||
	    !v_account_ref(r, b, "merchant", &o.merchant) || !v_int(r, b, "amount", true, 1, INT64_MAX, 0, &o.amount) ||
	    !v_currency(r, b, "currency", &o.currency) ||
	    !v_int(r, b, "expires_in", false, 1, EXPIRES_IN_MAX, EXPIRES_IN_DEFAULT, &o.expires_in_s) ||
	    !v_metadata(r, b, &o.metadata))
		return;
	const char *refs[2] = {o.customer, o.merchant};
	for (int i = 0; i < 2; i++) {
		if (strncmp(refs[i], "@world:", 7) == 0) {
			problem_send(r, 400, "invalid_request", "orders are between accounts, not @world",
				     json_pack("{s:s}", "field", i == 0 ? "customer" : "merchant"));
			return;
		}
	}
	if (strcmp(o.customer, o.merchant) == 0) {
		problem_send(r, 422, "same_account", "'customer' and 'merchant' are the same account",
			     json_pack("{s:s}", "account", o.customer));
		return;
	}
	lg_ctx c = api_lg_ctx(r);
	lg_order_create(&c, &o, reply_201, r);
}

static bool order_id(http_req *r)
{
	return v_path_id(r, api_param(r, 0), "order_not_found");
}

void api_order_get(http_req *r)
{
	if (!order_id(r))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_order_get(&c, api_param(r, 0), reply_200, r);
}

static bool no_body_fields(http_req *r)
{
	static const char *const fields[] = {NULL};
	return order_id(r) && v_only_fields(r, api_ctx(r)->body, fields);
}

void api_order_settle(http_req *r)
{
	if (!no_body_fields(r))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_order_settle(&c, api_param(r, 0), reply_200, r);
}

void api_order_cancel(http_req *r)
{
	if (!no_body_fields(r))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_order_cancel(&c, api_param(r, 0), reply_200, r);
}

void api_order_refund(http_req *r)
{
	static const char *const fields[] = {"amount", NULL};
	const json_t *b = api_ctx(r)->body;
	int64_t amount;
	if (!order_id(r) || !v_only_fields(r, b, fields) || !v_int(r, b, "amount", false, 1, INT64_MAX, 0, &amount))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_order_refund(&c, api_param(r, 0), amount, reply_200, r);
}

static void listed(lg_status st, json_t *obj, void *arg)
{
	api_list_reply(arg, st, obj, "order");
}

void api_order_list(http_req *r)
{
	static const char *const statuses[] = {"created", "paid", "cancelled", "expired", "refunded", "partially_refunded", NULL};
	char *status = v_query(r, "status");
	char *customer = v_query(r, "customer");
	int limit;
	json_t *cursor = NULL;
	bool ok = true;
	if (status != NULL) {
		ok = false;
		for (int i = 0; statuses[i] != NULL; i++)
			ok = ok || strcmp(status, statuses[i]) == 0;
		if (!ok)
			problem_send(r, 400, "invalid_request",
				     "'status' must be created, paid, cancelled, expired, refunded or partially_refunded",
				     json_pack("{s:s}", "field", "status"));
	}
	if (ok && customer != NULL && !v_is_id(customer)) {
		ok = false;
		problem_send(r, 400, "invalid_request", "'customer' must be an account id", json_pack("{s:s}", "field", "customer"));
	}
	if (ok && v_limit(r, &limit) && v_cursor(r, &cursor)) {
		lg_ctx c = api_lg_ctx(r);
		lg_orders_list(&c, status, customer, limit, cursor, listed, r);
	}
	json_decref(cursor);
	free(status);
	free(customer);
}
