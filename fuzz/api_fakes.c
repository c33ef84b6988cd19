/* api_fakes.c — see api_fakes.h. An assertion here means a handler passed
 * the layer below something its decoding should have refused. */
#include "api_fakes.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "events/keys.h"
#include "events/read.h"
#include "idem/idem.h"
#include "ledger/ledger.h"

fz_state fz;

/* ---- what decoding promises ---- */

static void chk_id(const char *s)
{
	assert(s != NULL);
	size_t n = strlen(s);
	assert(n >= 1 && n <= 64 && s[0] != '@');
	assert(strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-") == n);
}

static void chk_opt_id(const char *s)
{
	if (s != NULL)
		chk_id(s);
}

static void chk_currency(const char *s)
{
	assert(s != NULL && strlen(s) == 3);
	for (int i = 0; i < 3; i++)
		assert(s[i] >= 'A' && s[i] <= 'Z');
}

/* Text that will be stored and echoed in JSON: valid UTF-8, 1..max bytes,
 * no control characters. */
static void chk_text(const char *s, size_t max)
{
	if (s == NULL)
		return;
	size_t n = strlen(s);
	assert(n >= 1 && n <= max);
	for (size_t i = 0; i < n; i++)
		assert((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
	json_t *j = json_string(s);
	assert(j != NULL);
	json_decref(j);
}

static void chk_object(const json_t *j)
{
	assert(j == NULL || json_is_object(j));
}

static void chk_ctx(const lg_ctx *c)
{
	assert(c != NULL && c->tenant != NULL && c->tenant[0] != '\0');
}

/* ---- the answers ---- */

/* A plausible object for the outcome: the API object on LG_OK, extension
 * members on a failure (sometimes none). */
static json_t *result(lg_status st, bool list)
{
	if (st == LG_OK && list)
		return json_pack("{s:[{s:s}], s:{s:s, s:i}}", "data", "id", "a1", "next", "pk", "ACC#a1", "n", 7);
	if (st == LG_OK || st == LG_DUPLICATE) {
		json_t *o = json_pack("{s:s, s:s, s:i, s:b}", "id", "obj_1", "status", "paid", "amount", 5, "ok", 1);
		if (fz.big_numbers) {
			json_object_set_new(o, "sum", json_string("123456789012345678901234567890"));
			json_object_set_new(o, "closing_balance", json_string("-98765432109876543210"));
		}
		return o;
	}
	switch (st) {
	case LG_NOT_FOUND:
		return fz.big_numbers ? json_pack("{s:s}", "account", "a2") : NULL;
	case LG_NOT_PENDING:
		return json_pack("{s:s}", "status", "expired");
	case LG_INSUFFICIENT:
		return json_pack("{s:s, s:i}", "account", "a1", "available", 3);
	case LG_INVALID:
		return json_pack("{s:s}", "field", "cursor");
	default:
		return NULL;
	}
}

/* What a call can answer: reads find or miss, writes can fail every way. */
#define BIT(x) (1u << (x))
#define READS (BIT(LG_OK) | BIT(LG_NOT_FOUND) | BIT(LG_UNAVAILABLE) | BIT(LG_FAILED))
#define LISTS (READS | BIT(LG_INVALID))
#define WRITES (BIT(FZ_OUTCOMES) - 1)

/* The input's outcome among those the call can have. */
static lg_status pick(unsigned allowed)
{
	int k = fz.outcome % __builtin_popcount(allowed);
	for (int st = 0; st < FZ_OUTCOMES; st++)
		if ((allowed & BIT(st)) && k-- == 0)
			return (lg_status)st;
	abort();
}

static void answer_as(lg_cb cb, void *arg, bool list, unsigned allowed)
{
	fz.layer_calls++;
	lg_status st = pick(allowed);
	fz.answered = st;
	json_t *obj = result(st, list);
	cb(st, obj, arg);
	json_decref(obj);
}

/* The same for a call that answers with the document's text too (a
 * transfer: what the SQL wrote goes out as it is). */
static void answer_doc(lg_doc_cb cb, void *arg, unsigned allowed)
{
	fz.layer_calls++;
	lg_status st = pick(allowed);
	fz.answered = st;
	json_t *obj = result(st, false);
	char *doc = (st == LG_OK || st == LG_DUPLICATE) && obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
	cb(st, obj, doc, arg);
	free(doc);
	json_decref(obj);
}

/* A call on one object named by its id. */
static void by_id(const lg_ctx *c, const char *id, lg_cb cb, void *arg, unsigned allowed)
{
	chk_ctx(c);
	chk_id(id);
	answer_as(cb, arg, false, allowed);
}

/* What holds and orders share: a new object between two accounts. */
static void chk_between(const char *id, const char *from, const char *to, int64_t amount, const char *currency,
			int64_t expires_in_s, const json_t *metadata)
{
	chk_opt_id(id);
	chk_id(from);
	chk_opt_id(to);
	assert(to == NULL || strcmp(from, to) != 0);
	assert(amount >= 1);
	chk_currency(currency);
	assert(expires_in_s >= 1 && expires_in_s <= 2592000);
	chk_object(metadata);
}

/* ---- ledger ---- */

void lg_account_create(const lg_ctx *c, const lg_account_new *a, lg_cb cb, void *arg)
{
	chk_ctx(c);
	chk_opt_id(a->id);
	chk_currency(a->currency);
	chk_text(a->owner, 128);
	assert(a->overdraft_limit >= 0);
	chk_object(a->metadata);
	answer_as(cb, arg, false, WRITES);
}

void lg_account_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	by_id(c, id, cb, arg, READS);
}

void lg_account_set_frozen(const lg_ctx *c, const char *id, bool frozen, lg_cb cb, void *arg)
{
	(void)frozen;
	by_id(c, id, cb, arg, WRITES);
}

void lg_accounts_by_owner(const lg_ctx *c, const char *owner, int limit, const json_t *after, lg_cb cb, void *arg)
{
	chk_ctx(c);
	chk_text(owner, 128);
	assert(owner != NULL && limit >= 1 && limit <= 1000);
	chk_object(after);
	answer_as(cb, arg, true, LISTS);
}

static void chk_transfer(const lg_transfer_new *t)
{
	chk_opt_id(t->id);
	chk_opt_id(t->from);
	chk_opt_id(t->to);
	assert(t->from != NULL || t->to != NULL);
	assert(t->from == NULL || t->to == NULL || strcmp(t->from, t->to) != 0);
	assert(t->amount >= 1);
	if (t->currency != NULL)
		chk_currency(t->currency);
	chk_text(t->description, 1024);
	chk_object(t->metadata);
	assert(t->kind != NULL);
}

void lg_transfer_create(const lg_ctx *c, const lg_transfer_new *t, lg_doc_cb cb, void *arg)
{
	chk_ctx(c);
	chk_transfer(t);
	answer_doc(cb, arg, WRITES);
}

void lg_transfer_batch(const lg_ctx *c, const lg_transfer_new *t, int n, lg_cb cb, void *arg)
{
	chk_ctx(c);
	assert(n >= 1 && n <= 100);
	for (int i = 0; i < n; i++)
		chk_transfer(&t[i]);
	answer_as(cb, arg, false, WRITES);
}

void lg_transfer_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	by_id(c, id, cb, arg, READS);
}

void lg_hold_create(const lg_ctx *c, const lg_hold_new *h, lg_cb cb, void *arg)
{
	chk_ctx(c);
	chk_between(h->id, h->from, h->to, h->amount, h->currency, h->expires_in_s, h->metadata);
	answer_as(cb, arg, false, WRITES);
}

void lg_hold_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	by_id(c, id, cb, arg, READS);
}

void lg_hold_capture(const lg_ctx *c, const char *id, int64_t amount, lg_cb cb, void *arg)
{
	assert(amount >= 0);
	by_id(c, id, cb, arg, WRITES);
}

void lg_hold_void(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	by_id(c, id, cb, arg, WRITES);
}

void lg_order_create(const lg_ctx *c, const lg_order_new *o, lg_cb cb, void *arg)
{
	chk_ctx(c);
	chk_id(o->merchant);
	chk_between(o->id, o->customer, o->merchant, o->amount, o->currency, o->expires_in_s, o->metadata);
	answer_as(cb, arg, false, WRITES);
}

void lg_order_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	by_id(c, id, cb, arg, READS);
}

void lg_order_settle(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	by_id(c, id, cb, arg, WRITES);
}

void lg_order_cancel(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	by_id(c, id, cb, arg, WRITES);
}

void lg_order_refund(const lg_ctx *c, const char *id, int64_t amount, lg_cb cb, void *arg)
{
	assert(amount >= 0);
	by_id(c, id, cb, arg, WRITES);
}

void lg_orders_list(const lg_ctx *c, const char *status, const char *customer, int limit, const json_t *after, lg_cb cb,
		    void *arg)
{
	static const char *const statuses[] = {"created", "paid", "cancelled", "expired", "refunded", "partially_refunded"};
	chk_ctx(c);
	bool known = status == NULL;
	for (size_t i = 0; i < OL_ARRAY_LEN(statuses) && !known; i++)
		known = strcmp(status, statuses[i]) == 0;
	assert(known);
	chk_opt_id(customer);
	assert(limit >= 1 && limit <= 1000);
	chk_object(after);
	answer_as(cb, arg, true, LISTS);
}

void lg_entries(const lg_ctx *c, const char *account, const lg_range *r, lg_cb cb, void *arg)
{
	chk_ctx(c);
	chk_id(account);
	assert(r->from_us >= 0 && r->to_us >= 0 && r->limit >= 1 && r->limit <= 1000);
	chk_object(r->after);
	answer_as(cb, arg, true, LISTS);
}

void lg_balance_at(const lg_ctx *c, const char *account, int64_t at_us, lg_cb cb, void *arg)
{
	chk_ctx(c);
	chk_id(account);
	assert(at_us >= 0);
	answer_as(cb, arg, false, READS);
}

void lg_statement(const lg_ctx *c, const char *account, int64_t from_us, int64_t to_us, lg_cb cb, void *arg)
{
	chk_ctx(c);
	chk_id(account);
	assert(from_us >= 0 && to_us >= from_us);
	answer_as(cb, arg, false, READS);
}

void lg_verify(const lg_ctx *c, const char *account, lg_cb cb, void *arg)
{
	lg_account_get(c, account, cb, arg);
}

void lg_audit_verify(const lg_ctx *c, const char *currency, const lg_audit_page *p, lg_cb cb, void *arg)
{
	chk_ctx(c);
	chk_currency(currency);
	assert(p->limit >= 1 && p->limit <= 1000 && p->max_entries >= 1);
	assert(p->cursor == NULL || json_is_object(p->cursor));
	answer_as(cb, arg, false, READS);
}

/* ---- idempotency as a service ---- */

static void chk_key(const char *key)
{
	assert(key != NULL);
	size_t n = strlen(key);
	assert(n >= 1 && n <= IDEM_KEY_MAX);
	chk_text(key, IDEM_KEY_MAX);
}

static void chk_token(const char *tok)
{
	assert(tok != NULL);
	size_t n = strlen(tok);
	assert(n >= 1 && n <= 128);
}

/* The input's outcome among those the call can have (src/idem/service.c);
 * the record is absent only where the service gives none. */
static void idems_answer(const idems_status *can, int n, idems_cb cb, void *arg)
{
	fz.layer_calls++;
	idems_status st = can[fz.outcome % n];
	fz.answered = st == IDEMS_UNAVAILABLE ? LG_UNAVAILABLE : st == IDEMS_FAILED ? LG_FAILED : LG_OK;
	json_t *obj = st == IDEMS_OK && fz.big_numbers ? NULL : json_pack("{s:s, s:s}", "key", "k", "state", "completed");
	cb(st, obj, fz.outcome, arg);
	json_decref(obj);
}

#define FAILS IDEMS_NOT_FOUND, IDEMS_UNAVAILABLE, IDEMS_FAILED

void idems_claim(it_store *s, const char *tenant, const char *key, const char *fingerprint, int lease_s, int ttl_s,
		 idems_cb cb, void *arg)
{
	(void)s;
	assert(tenant != NULL);
	chk_key(key);
	chk_text(fingerprint, 128);
	assert(lease_s >= 1 && lease_s <= 3600 && ttl_s >= 1 && ttl_s <= 2592000);
	static const idems_status can[] = {IDEMS_CLAIMED, IDEMS_IN_USE, IDEMS_MISMATCH, IDEMS_COMPLETED, FAILS};
	idems_answer(can, OL_ARRAY_LEN(can), cb, arg);
}

void idems_complete(it_store *s, const char *tenant, const char *key, const char *token, const json_t *response,
		    idems_cb cb, void *arg)
{
	(void)s;
	assert(tenant != NULL);
	chk_key(key);
	chk_token(token);
	assert(json_is_object(response) && json_is_integer(json_object_get(response, "status")));
	static const idems_status can[] = {IDEMS_OK, IDEMS_LEASE_LOST, FAILS};
	idems_answer(can, OL_ARRAY_LEN(can), cb, arg);
}

void idems_release(it_store *s, const char *tenant, const char *key, const char *token, idems_cb cb, void *arg)
{
	(void)s;
	assert(tenant != NULL);
	chk_key(key);
	chk_token(token);
	static const idems_status can[] = {IDEMS_OK, IDEMS_LEASE_LOST, FAILS};
	idems_answer(can, OL_ARRAY_LEN(can), cb, arg);
}

void idems_get(it_store *s, const char *tenant, const char *key, idems_cb cb, void *arg)
{
	(void)s;
	assert(tenant != NULL);
	chk_key(key);
	static const idems_status can[] = {IDEMS_OK, FAILS};
	idems_answer(can, OL_ARRAY_LEN(can), cb, arg);
}

/* ---- events ---- */

void ev_read(db_pool *db, const char *tenant, uint64_t after_txid, int after_n, int limit, ev_read_cb cb, void *arg)
{
	(void)db;
	(void)after_txid;
	assert(tenant != NULL && after_n >= 0 && after_n < 1000000 && limit >= 1 && limit <= 1000);
	fz.layer_calls++;
	fz.answered = fz.outcome == LG_UNAVAILABLE || fz.outcome == LG_FAILED ? fz.outcome : LG_OK;
	if (fz.outcome == LG_UNAVAILABLE || fz.outcome == LG_FAILED) {
		db_result err = {.status = fz.outcome == LG_FAILED ? DB_ERR_QUERY : DB_ERR_UNAVAILABLE, .sqlstate = "XX000"};
		cb(&err, NULL, arg);
		return;
	}
	json_t *page = json_pack("{s:[], s:n}", "data", "next_cursor");
	cb(NULL, page, arg);
	json_decref(page);
}

bool ev_keys_public(ev_keys *k, const char *kid, char kid_out[EV_KID_LEN], char pub[EV_PUB_B64_LEN])
{
	(void)k;
	fz.layer_calls++;
	fz.answered = LG_OK;
	if (kid != NULL)
		assert(strlen(kid) < 1u << 20);
	if (!fz.key_found)
		return false;
	util_strlcpy(kid_out, "0123456789abcdef", EV_KID_LEN);
	util_strlcpy(pub, "MCowBQYDK2VwAyEA", EV_PUB_B64_LEN);
	return true;
}

/* ---- the HTTP layer and the ops routes ---- */

void http_reply(http_req *r, int status, const char *content_type, const char *body, size_t len)
{
	(void)r;
	assert(body != NULL && (content_type != NULL || len == 0));
	assert(fz.replies == 0); /* exactly once per request */
	fz.replies++;
	fz.status = status;
	fz.body = malloc(len + 1);
	assert(fz.body != NULL);
	memcpy(fz.body, body, len);
	fz.body[len] = '\0';
	fz.body_len = len;
}

void http_req_add_header(http_req *r, const char *name, const char *value)
{
	(void)r;
	assert(name != NULL && value != NULL && strpbrk(value, "\r\n") == NULL);
}

const char *http_method_name(http_method m)
{
	return m == HTTP_M_GET ? "GET" : "POST";
}

db_tx *idem_gate_tx(idem_gate *g)
{
	(void)g;
	abort(); /* the harness runs handlers without the gate */
}

/* The ops routes decode nothing: they count as the layer answering. */
static void ops_ok(http_req *r)
{
	fz.layer_calls++;
	fz.answered = LG_OK;
	api_result(r, 200, "application/json", "{}", 2);
}

void ops_healthz(http_req *r)
{
	ops_ok(r);
}

void ops_readyz(http_req *r)
{
	ops_ok(r);
}

void ops_metrics(http_req *r)
{
	ops_ok(r);
}

void ops_whoami(http_req *r)
{
	ops_ok(r);
}
