/* accounts.c — accounts as rows of ledger.accounts (sql/012_ledger.sql):
 * one statement per operation (sql/013_ledger_transfers.sql builds the API
 * object, ledger.account_json), in the request's transaction when there is
 * one. Balances change only in the money functions (transfers.c). */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static const db_stmt st_create = {
	"lg_account_create",
	"INSERT INTO ledger.accounts AS a (tenant, id, currency, owner, overdraft_limit, metadata)"
	" VALUES ($1, $2, $3, $4, $5::bigint, $6) ON CONFLICT (tenant, id) DO NOTHING RETURNING ledger.account_json(a)",
	6};
/* A hot account's inbox is posted first (docs/orders.md). */
static const db_stmt st_get = {"lg_account_get", "SELECT ledger.account_read($1, $2)", 2};
static const db_stmt st_status = {"lg_account_status", "SELECT changed, doc FROM ledger.account_set_status($1, $2, $3)", 3};
/* One more row than asked: whether there is a next page. */
static const db_stmt st_by_owner = {"lg_accounts_by_owner",
				    "SELECT a.id, ledger.account_json(a) FROM ledger.accounts a"
				    " WHERE a.tenant = $1 AND a.owner = $2 AND a.id > $3 ORDER BY a.id LIMIT $4::int + 1",
				    4};
const db_stmt *const lg_accounts_stmts[] = {&st_create, &st_get, &st_status, &st_by_owner, NULL};

typedef struct call {
	lg_cb cb;
	void *arg;
	lg_ctx ctx;
	bool frozen;
	int limit;
	char id[80];
} call;

static call *call_new(const lg_ctx *c, lg_cb cb, void *arg)
{
	call *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, arg);
		return NULL;
	}
	k->cb = cb;
	k->arg = arg;
	k->ctx = *c;
	return k;
}

/* Ends the call with st and obj (taken). */
static void call_end(call *k, lg_status st, json_t *obj)
{
	k->cb(st, obj, k->arg);
	json_decref(obj);
	free(k);
}

/* The account document of the result's first row, and its event when
 * event is not NULL (before the answer: it goes out with the saved
 * response). */
static void answer_doc(call *k, const char *doc, const char *event)
{
	json_t *obj = json_loads(doc, 0, NULL);
	if (obj == NULL || (event != NULL && !lg_event_defer(&k->ctx, event, k->id, doc))) {
		json_decref(obj);
		call_end(k, LG_FAILED, NULL);
		return;
	}
	call_end(k, LG_OK, obj);
}

static void created(db_result *res, void *arg)
{
	call *k = arg;
	lg_status st = lg_db_status(res, "lg_account_create");
	if (st != LG_OK) {
		call_end(k, st, NULL);
		return;
	}
	const char *doc = lg_sql_value(res, 0, 0);
	if (doc == NULL) {
		call_end(k, LG_EXISTS, NULL); /* the id is taken */
		return;
	}
	answer_doc(k, doc, "account.created");
}

void lg_account_create(const lg_ctx *c, const lg_account_new *a, lg_cb cb, void *arg)
{
	call *k = call_new(c, cb, arg);
	if (k == NULL)
		return;
	if (a->id != NULL)
		util_strlcpy(k->id, a->id, sizeof(k->id));
	else
		lg_new_id("acc_", k->id, sizeof(k->id));
	char limit[24];
	snprintf(limit, sizeof(limit), "%lld", (long long)a->overdraft_limit);
	char *meta = a->metadata != NULL ? lg_dump(a->metadata) : NULL;
	if (a->metadata != NULL && meta == NULL) {
		call_end(k, LG_FAILED, NULL);
		return;
	}
	const char *v[6] = {c->tenant, k->id, a->currency, a->owner, limit, meta != NULL ? meta : "{}"};
	lg_sql(c, &st_create, v, created, k);
	free(meta);
}

static void got(db_result *res, void *arg)
{
	call *k = arg;
	lg_status st = lg_db_status(res, "lg_account_get");
	if (st != LG_OK) {
		call_end(k, st, NULL);
		return;
	}
	const char *doc = lg_sql_value(res, 0, 0);
	if (doc == NULL) {
		call_end(k, LG_NOT_FOUND, NULL);
		return;
	}
	answer_doc(k, doc, NULL);
}

void lg_account_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	call *k = call_new(c, cb, arg);
	if (k == NULL)
		return;
	const char *v[2] = {c->tenant, id};
	lg_sql(c, &st_get, v, got, k);
}

static void status_set(db_result *res, void *arg)
{
	call *k = arg;
	lg_status st = lg_db_status(res, "lg_account_status");
	if (st != LG_OK) {
		call_end(k, st, NULL);
		return;
	}
	const char *changed = lg_sql_value(res, 0, 0), *doc = lg_sql_value(res, 0, 1);
	if (doc == NULL) {
		call_end(k, LG_NOT_FOUND, NULL);
		return;
	}
	/* Already in that state: the account is the answer, without an event. */
	bool ch = changed != NULL && strcmp(changed, "t") == 0;
	answer_doc(k, doc, ch ? (k->frozen ? "account.frozen" : "account.unfrozen") : NULL);
}

void lg_account_set_frozen(const lg_ctx *c, const char *id, bool frozen, lg_cb cb, void *arg)
{
	call *k = call_new(c, cb, arg);
	if (k == NULL)
		return;
	k->frozen = frozen;
	util_strlcpy(k->id, id, sizeof(k->id));
	const char *v[3] = {c->tenant, id, frozen ? "frozen" : "active"};
	lg_sql(c, &st_status, v, status_set, k);
}

static void listed(db_result *res, void *arg)
{
	call *k = arg;
	lg_status st = lg_db_status(res, "lg_accounts_by_owner");
	if (st != LG_OK) {
		call_end(k, st, NULL);
		return;
	}
	int n = lg_sql_rows(res);
	json_t *data = json_array();
	for (int i = 0; data != NULL && i < n && i < k->limit; i++) {
		json_t *obj = json_loads(lg_sql_value(res, i, 1) ?: "", 0, NULL);
		if (obj == NULL || json_array_append_new(data, obj) != 0) {
			json_decref(data);
			data = NULL;
		}
	}
	/* The position after the last row of the page, when there is more. */
	json_t *next = NULL, *out = NULL;
	if (data != NULL)
		next = n > k->limit ? json_pack("{s:s}", "id", lg_sql_value(res, k->limit - 1, 0) ?: "") : json_null();
	if (next != NULL)
		out = json_pack("{s:o, s:o}", "data", data, "next", next); /* takes both */
	else
		json_decref(data);
	if (out == NULL) {
		call_end(k, LG_FAILED, NULL);
		return;
	}
	call_end(k, LG_OK, out);
}

void lg_accounts_by_owner(const lg_ctx *c, const char *owner, int limit, const json_t *after, lg_cb cb, void *arg)
{
	/* The position is {"id": <the last account of the previous page>}
	 * (the API layer signs it; anything else is not ours). */
	const char *from = "";
	if (after != NULL) {
		const json_t *id = json_object_get(after, "id");
		if (!json_is_object(after) || json_object_size(after) != 1 || !json_is_string(id) ||
		    json_string_length(id) < 1 || json_string_length(id) > 64) {
			json_t *extra = json_pack("{s:s}", "field", "cursor");
			cb(LG_INVALID, extra, arg);
			json_decref(extra);
			return;
		}
		from = json_string_value(id);
	}
	call *k = call_new(c, cb, arg);
	if (k == NULL)
		return;
	k->limit = limit > 0 ? limit : 1;
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", k->limit);
	const char *v[4] = {c->tenant, owner, from, lim};
	lg_sql(c, &st_by_owner, v, listed, k);
}
