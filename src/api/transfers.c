/* transfers.c — §4 transfers, credits, debits and batches: decode and
 * validate, call the ledger, encode. */
#include "api/ledger_api.h"

#include <stdlib.h>
#include <string.h>

#include "api/validate.h"

#define DESCRIPTION_MAX 1024
#define BATCH_MAX 100

/* A "@world:<CUR>" reference becomes NULL (the ledger's @world). Its
 * currency must be the transfer's: *mismatch names it when it is not (the
 * caller answers, after the other side's existence: 404 comes first). */
static void world_side(const char **ref, const char *currency, const char **mismatch)
{
	if (strncmp(*ref, "@world:", 7) != 0)
		return;
	if (strcmp(*ref + 7, currency) != 0 && *mismatch == NULL)
		*mismatch = *ref;
	*ref = NULL;
}

static void reply_mismatch(http_req *r, const char *world)
{
	json_t *ext = json_pack("{s:s}", "account", world);
	if (api_ctx(r)->v_index > 0)
		json_object_set_new(ext, "index", json_integer(api_ctx(r)->v_index - 1));
	problem_send(r, 422, "currency_mismatch", "the @world account's currency is not the transfer's", ext);
}

/* One transfer body (also a batch element); false after replying. */
static bool decode_transfer(http_req *r, const json_t *b, lg_transfer_new *t, const char **mismatch)
{
	static const char *const fields[] = {"id", "from", "to", "amount", "currency", "description", "metadata", NULL};
	memset(t, 0, sizeof(*t));
	t->kind = "transfer";
	if (!json_is_object(b)) {
		problem_send(r, 400, "invalid_request", "a transfer must be a JSON object",
			     api_ctx(r)->v_index > 0 ? json_pack("{s:i}", "index", api_ctx(r)->v_index - 1) : NULL);
		return false;
	}
	if (!v_only_fields(r, b, fields) || !v_opt_id(r, b, "id", &t->id) || !v_account_ref(r, b, "from", &t->from) ||
	    !v_account_ref(r, b, "to", &t->to) || !v_int(r, b, "amount", true, 1, INT64_MAX, 0, &t->amount) ||
	    !v_currency(r, b, "currency", &t->currency) || !v_opt_string(r, b, "description", DESCRIPTION_MAX, &t->description) ||
	    !v_metadata(r, b, &t->metadata))
		return false;
	if (strcmp(t->from, t->to) == 0) {
		json_t *ext = json_pack("{s:s}", "account", t->from);
		if (api_ctx(r)->v_index > 0)
			json_object_set_new(ext, "index", json_integer(api_ctx(r)->v_index - 1));
		problem_send(r, 422, "same_account", "'from' and 'to' are the same account", ext);
		return false;
	}
	*mismatch = NULL;
	world_side(&t->from, t->currency, mismatch);
	world_side(&t->to, t->currency, mismatch);
	return true;
}

static void created(lg_status st, json_t *obj, const char *doc, void *arg)
{
	api_ledger_reply_doc(arg, st, obj, doc, 201, "transfer");
}

static void mismatch_checked(lg_status st, json_t *obj, void *arg)
{
	http_req *r = arg;
	(void)obj;
	json_t *b = api_ctx(r)->body;
	const char *from = json_string_value(json_object_get(b, "from"));
	const char *to = json_string_value(json_object_get(b, "to"));
	const char *world = strncmp(from, "@world:", 7) == 0 ? from : to;
	const char *other = world == from ? to : from;
	if (st == LG_NOT_FOUND)
		problem_send(r, 404, "account_not_found", "no such object in this tenant", json_pack("{s:s}", "account", other));
	else if (st == LG_OK)
		reply_mismatch(r, world);
	else
		api_ledger_reply(r, st, NULL, 200, "account");
}

void api_transfer_create(http_req *r)
{
	lg_transfer_new t;
	const char *mismatch;
	if (!decode_transfer(r, api_ctx(r)->body, &t, &mismatch))
		return;
	lg_ctx c = api_lg_ctx(r);
	if (mismatch != NULL) {
		/* Wrong @world currency: but a missing account is reported first. */
		const char *other = t.from != NULL ? t.from : t.to;
		if (other == NULL)
			reply_mismatch(r, mismatch);
		else
			lg_account_get(&c, other, mismatch_checked, r);
		return;
	}
	lg_transfer_create(&c, &t, created, r);
}

/* Credits and debits: a transfer from or to @world in the account's currency. */
static void world_transfer(http_req *r, bool credit)
{
	static const char *const fields[] = {"id", "amount", "description", "metadata", NULL};
	const json_t *b = api_ctx(r)->body;
	lg_transfer_new t = {.kind = credit ? "credit" : "debit"};
	if (!v_path_id(r, api_param(r, 0), "account_not_found") || !v_only_fields(r, b, fields) ||
	    !v_opt_id(r, b, "id", &t.id) || !v_int(r, b, "amount", true, 1, INT64_MAX, 0, &t.amount) ||
	    !v_opt_string(r, b, "description", DESCRIPTION_MAX, &t.description) || !v_metadata(r, b, &t.metadata))
		return;
	if (credit)
		t.to = api_param(r, 0);
	else
		t.from = api_param(r, 0);
	lg_ctx c = api_lg_ctx(r);
	lg_transfer_create(&c, &t, created, r);
}

void api_credit(http_req *r)
{
	world_transfer(r, true);
}

void api_debit(http_req *r)
{
	world_transfer(r, false);
}

typedef struct batch {
	http_req *r;
	lg_transfer_new *t;
} batch;

static void batch_done(lg_status st, json_t *obj, void *arg)
{
	batch *bt = arg;
	api_ledger_reply(bt->r, st, obj, 201, "transfer");
	free(bt->t);
	free(bt);
}

void api_transfer_batch(http_req *r)
{
	static const char *const fields[] = {"transfers", NULL};
	const json_t *b = api_ctx(r)->body;
	if (!v_only_fields(r, b, fields))
		return;
	json_t *list = json_object_get(b, "transfers");
	size_t n = json_array_size(list);
	if (!json_is_array(list) || n < 1 || n > BATCH_MAX) {
		problem_send(r, 400, "invalid_request", "'transfers' must be an array of 1-100 transfers",
			     json_pack("{s:s}", "field", "transfers"));
		return;
	}
	batch *bt = calloc(1, sizeof(*bt));
	lg_transfer_new *t = calloc(n, sizeof(*t));
	if (bt == NULL || t == NULL) {
		free(bt);
		free(t);
		problem_send(r, 500, "internal", "out of memory", NULL);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		api_ctx(r)->v_index = (int)i + 1;
		const char *mismatch = NULL;
		bool ok = decode_transfer(r, json_array_get(list, i), &t[i], &mismatch);
		if (ok && mismatch != NULL) {
			reply_mismatch(r, mismatch);
			ok = false;
		}
		if (!ok) {
			/* replied: r may be gone already */
			free(bt);
			free(t);
			return;
		}
	}
	api_ctx(r)->v_index = 0;
	bt->r = r;
	bt->t = t;
	lg_ctx c = api_lg_ctx(r);
	lg_transfer_batch(&c, t, (int)n, batch_done, bt);
}

static void got(lg_status st, json_t *obj, void *arg)
{
	api_ledger_reply(arg, st, obj, 200, "transfer");
}

void api_transfer_get(http_req *r)
{
	if (!v_path_id(r, api_param(r, 0), "transfer_not_found"))
		return;
	lg_ctx c = api_lg_ctx(r);
	lg_transfer_get(&c, api_param(r, 0), got, r);
}
