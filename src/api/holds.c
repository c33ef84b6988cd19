/* holds.c — §5 holds: decode and validate, call the ledger, encode. */
#include "api/ledger_api.h"

#include <string.h>

#include "api/validate.h"

#define EXPIRES_IN_MAX 2592000
#define EXPIRES_IN_DEFAULT 604800

static void reply_201(lg_status st, json_t *obj, void *arg)
{
	api_ledger_reply(arg, st, obj, 201, "hold");
}

static void reply_200(lg_status st, json_t *obj, void *arg)
{
	api_ledger_reply(arg, st, obj, 200, "hold");
}

void api_hold_create(http_req *r)
{
	static const char *const fields[] = {"id", "from", "to", "amount", "currency", "expires_in", "metadata", NULL};
	const json_t *b = api_ctx(r)->body;
	lg_hold_new h = {0};
	if (!v_only_fields(r, b, fields) || !v_opt_id(r, b, "id", &h.id) || !v_account_ref(r, b, "from", &h.from) ||
	    !v_account_ref(r, b, "to", &h.to) || !v_int(r, b, "amount", true, 1, INT64_MAX, 0, &h.amount) ||
	    !v_currency(r, b, "currency", &h.currency) ||
	    !v_int(r, b, "expires_in", false, 1, EXPIRES_IN_MAX, EXPIRES_IN_DEFAULT, &h.expires_in_s) ||
	    !v_metadata(r, b, &h.metadata))
		return;
	if (strncmp(h.from, "@world:", 7) == 0) {
		problem_send(r, 400, "invalid_request", "'from' of a hold must be an account, not @world",
			     json_pack("{s:s}", "field", "from"));
		return;
	}
	if (strcmp(h.from, h.to) == 0) {
		problem_send(r, 422, "same_account", "'from' and 'to' are the same account", json_pack("{s:s}", "account", h.from));
		return;
	}
	if (strncmp(h.to, "@world:", 7) == 0) {
		if (strcmp(h.to + 7, h.currency) != 0) {
			problem_send(r, 422, "currency_mismatch", "the @world account's currency is not the hold's",
				     json_pack("{s:s}", "account", h.to));
			return;
		}
		h.to = NULL;
	}
	lg_ctx c = api_lg_ctx(r);
	lg_hold_create(&c, &h, reply_201, r);
}

void api_hold_get(http_req *r)
{
	if (!v_path_id(r, api_param(r, 0), "hold_not_found"))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_hold_get(&c, api_param(r, 0), reply_200, r);
}

void api_hold_capture(http_req *r)
{
	static const char *const fields[] = {"amount", NULL};
	const json_t *b = api_ctx(r)->body;
	int64_t amount;
	if (!v_path_id(r, api_param(r, 0), "hold_not_found") || !v_only_fields(r, b, fields) ||
	    !v_int(r, b, "amount", false, 1, INT64_MAX, 0, &amount))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_hold_capture(&c, api_param(r, 0), amount, reply_200, r);
}

void api_hold_void(http_req *r)
{
	static const char *const fields[] = {NULL};
	if (!v_path_id(r, api_param(r, 0), "hold_not_found") || !v_only_fields(r, api_ctx(r)->body, fields))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_hold_void(&c, api_param(r, 0), reply_200, r);
}
