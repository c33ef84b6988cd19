/* accounts.c — §3 accounts: decode and validate, call the ledger, encode. */
#include "api/ledger_api.h"

#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "ledger/ledger.h"


/* The answers of a ledger call on one account: its own words for a missing
 * or taken id, the common mapping (ledger_reply.c) for the rest. */
static void answer(http_req *r, lg_status st, json_t *obj, int ok_status, const char *id)
{
	switch (st) {
	case LG_NOT_FOUND:
		problem_send(r, 404, "account_not_found", "no such account", json_pack("{s:s}", "account", id ? id : ""));
		return;
	case LG_EXISTS:
		problem_send(r, 409, "account_exists", "an account with this id exists already",
			     json_pack("{s:s}", "account", id ? id : ""));
		return;
	default:
		api_ledger_reply(r, st, obj, ok_status, "account");
		return;
	}
}

static void created(lg_status st, json_t *obj, void *arg)
{
	http_req *r = arg;
	answer(r, st, obj, 201, json_string_value(json_object_get(api_ctx(r)->body, "id")));
}

void api_account_create(http_req *r)
{
	const json_t *b = api_ctx(r)->body;
	static const char *const fields[] = {"id", "currency", "owner", "overdraft_limit", "metadata", NULL};
	lg_account_new a = {0};
	if (!v_only_fields(r, b, fields) || !v_opt_id(r, b, "id", &a.id) || !v_currency(r, b, "currency", &a.currency) ||
	    !v_opt_string(r, b, "owner", 128, &a.owner) ||
	    !v_int(r, b, "overdraft_limit", false, 0, INT64_MAX, 0, &a.overdraft_limit) || !v_metadata(r, b, &a.metadata))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_account_create(&c, &a, created, r);
}

static void got(lg_status st, json_t *obj, void *arg)
{
	http_req *r = arg;
	answer(r, st, obj, 200, api_param(r, 0));
}

void api_account_get(http_req *r)
{
	if (!v_path_id(r, api_param(r, 0), "account_not_found"))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_account_get(&c, api_param(r, 0), got, r);
}

static void set_frozen(http_req *r, bool frozen)
{
	static const char *const fields[] = {NULL};
	if (!v_path_id(r, api_param(r, 0), "account_not_found") || !v_only_fields(r, api_ctx(r)->body, fields))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_account_set_frozen(&c, api_param(r, 0), frozen, got, r);
}

void api_account_freeze(http_req *r)
{
	set_frozen(r, true);
}

void api_account_unfreeze(http_req *r)
{
	set_frozen(r, false);
}

static void listed(lg_status st, json_t *obj, void *arg)
{
	api_list_reply(arg, st, obj, "account");
}

void api_account_list(http_req *r)
{
	char *owner;
	int limit;
	json_t *cursor = NULL;
	if (!v_query_text(r, "owner", 128, &owner))
		return;
	if (owner == NULL) {
		problem_send(r, 400, "invalid_request", "'owner' is required: GET /v1/accounts?owner=<owner>",
			     json_pack("{s:s}", "field", "owner"));
		return;
	}
	if (!v_limit(r, &limit) || !v_cursor(r, &cursor)) {
		free(owner);
		return;
	}
	lg_ctx c = api_lg_ctx(r);
	lg_accounts_by_owner(&c, owner, limit, cursor, listed, r);
	json_decref(cursor);
	free(owner);
}
