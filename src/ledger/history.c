/* history.c — what auditors read (docs/api.md §7): entries by time, the balance
 * at a time, statements and the hash chain's verification per account (the
 * double-entry invariant per currency is audit.c's). Everything here only reads; entries
 * are found by time through the index entries_by_time (GSI5SK = the entry's
 * time in µs, 16 digits, which grows with seq) and by seq in the account's
 * own item collection (SK "ENTRY#<seq>"). */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define PAGE 1000

/* ---- paging through a query ---------------------------------------------- */

typedef struct pager pager;
/* Returns false to stop early. */
typedef bool (*page_fn)(pager *p, const json_t *items);
typedef void (*pager_done)(pager *p, lg_status st);

struct pager {
	lg_ctx ctx;
	json_t *req;
	page_fn page;
	pager_done done;
	void *arg;
};

static void pager_next(pager *p);

static void pager_got(it_reply *r, void *arg)
{
	pager *p = arg;
	if (r->err_type != NULL) {
		p->done(p, lg_err_status(r));
		return;
	}
	if (!p->page(p, json_object_get(r->body, "Items"))) {
		p->done(p, LG_OK);
		return;
	}
	json_t *last = json_object_get(r->body, "LastEvaluatedKey");
	if (last == NULL) {
		p->done(p, LG_OK);
		return;
	}
	json_object_set(p->req, "ExclusiveStartKey", last);
	pager_next(p);
}

static void pager_next(pager *p)
{
	lg_call(&p->ctx, 0, "Query", p->req, pager_got, p);
}

/* Starts paging req (taken); the pager is owned by the caller (free with
 * pager_clear in done). */
static void pager_start(pager *p, const lg_ctx *c, json_t *req, page_fn page, pager_done done, void *arg)
{
	p->ctx = *c;
	p->req = req;
	p->page = page;
	p->done = done;
	p->arg = arg;
	pager_next(p);
}

static void pager_clear(pager *p)
{
	json_decref(p->req);
	p->req = NULL;
}

/* ---- small helpers ----------------------------------------------------- */

static void pad16(char out[24], int64_t v)
{
	if (v < 0)
		v = 0;
	if (v > 9999999999999999LL)
		v = 9999999999999999LL;
	snprintf(out, 24, "%016lld", (long long)v);
}

static json_t *entry_json(const json_t *it)
{
	return json_pack("{s:s?, s:I, s:s?, s:I, s:I, s:s?, s:s?, s:s?}", "account", lg_s(it, "account"), "seq",
			 (json_int_t)lg_n(it, "seq"), "transfer_id", lg_s(it, "transfer_id"), "amount", (json_int_t)lg_n(it, "amount"),
			 "balance_after", (json_int_t)lg_n(it, "balance_after"), "posted_at", lg_s(it, "posted_at"), "hash",
			 lg_s(it, "hash"), "prev_hash", lg_s(it, "prev_hash"));
}

/* A query of the account's entries by time: GSI5SK op values. */
static json_t *by_time(const char *account, const char *cond, const char *a, const char *b, bool forward, int limit)
{
	char pk[96];
	snprintf(pk, sizeof(pk), "ACCOUNT#%s", account);
	json_t *vals = json_pack("{s:{s:s}, s:{s:s}}", ":pk", "S", pk, ":a", "S", a);
	if (b != NULL)
		json_object_set_new(vals, ":b", lg_av_s(b));
	return json_pack("{s:s, s:s, s:s, s:o, s:b, s:i}", "TableName", IT_SYSTEM_TABLE, "IndexName", "entries_by_time",
			 "KeyConditionExpression", cond, "ExpressionAttributeValues", vals, "ScanIndexForward", forward, "Limit",
			 limit);
}

/* ---- one call: an account, then a query -------------------------------- */

typedef struct hcall {
	lg_ctx ctx;
	lg_cb cb;
	void *arg;
	char account[80];
	int64_t from_us, to_us, at_us;
	json_t *req;     /* the query to run after the account was found */
	json_t *account_item;
	json_t *out;
	pager pg;
	/* statement */
	__int128 debits, credits;
	int64_t opening, count;
	/* verify */
	char head[65];
	int64_t expect_seq, sum, first_bad;
	bool sum_ok;
	db_tx *own; /* the snapshot this call opened, if any */
} hcall;

static hcall *hcall_new(const lg_ctx *c, const char *account, lg_cb cb, void *arg)
{
	hcall *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, arg);
		return NULL;
	}
	k->ctx = *c;
	k->cb = cb;
	k->arg = arg;
	if (account != NULL)
		util_strlcpy(k->account, account, sizeof(k->account));
	return k;
}

static void hcall_end(hcall *k, lg_status st, json_t *obj)
{
	k->cb(st, obj, k->arg);
	json_decref(obj);
	json_decref(k->req);
	json_decref(k->account_item);
	json_decref(k->out);
	pager_clear(&k->pg);
	db_tx_free(k->own);
	free(k);
}

/* Reads that must agree with each other (the account and its entries) run
 * in one snapshot, unless the caller's context has one already. */
static bool snapshot(hcall *k)
{
	if (k->ctx.tx != NULL)
		return true;
	k->own = it_snapshot_new(k->ctx.items);
	if (k->own == NULL) {
		hcall_end(k, LG_FAILED, NULL);
		return false;
	}
	k->ctx.tx = k->own;
	return true;
}

typedef void (*account_then)(hcall *k);

typedef struct acc_load {
	hcall *k;
	account_then then;
} acc_load;

static void account_got(it_reply *r, void *arg)
{
	acc_load *a = arg;
	hcall *k = a->k;
	account_then then = a->then;
	free(a);
	if (r->err_type != NULL) {
		hcall_end(k, lg_err_status(r), NULL);
		return;
	}
	json_t *item = json_object_get(r->body, "Item");
	if (item == NULL) {
		hcall_end(k, LG_NOT_FOUND, json_pack("{s:s}", "account", k->account));
		return;
	}
	k->account_item = json_incref(item);
	then(k);
}

/* Reads the account (404 when missing), then runs then(k). */
static void with_account(hcall *k, account_then then)
{
	acc_load *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		hcall_end(k, LG_FAILED, NULL);
		return;
	}
	a->k = k;
	a->then = then;
	json_t *req = json_pack("{s:s, s:o, s:b}", "TableName", IT_SYSTEM_TABLE, "Key", lg_key("ACCOUNT#", k->account, "METADATA"),
				"ConsistentRead", 1);
	lg_call(&k->ctx, 0, "GetItem", req, account_got, a);
	json_decref(req);
}

/* ---- entries -------------------------------------------------------------- */

static void entries_page(hcall *k);

static void entries_got(it_reply *r, void *arg)
{
	hcall *k = arg;
	if (r->err_type != NULL) {
		json_t *extra;
		lg_status st = lg_list_err_status(r, &extra);
		hcall_end(k, st, extra);
		return;
	}
	json_t *items = json_object_get(r->body, "Items");
	json_t *next = json_object_get(r->body, "LastEvaluatedKey");
	if (json_array_size(items) == 0 && k->account_item == NULL && !json_object_get(k->req, "ExclusiveStartKey")) {
		/* Nothing in range: an empty page, or no such account? */
		with_account(k, entries_page);
		return;
	}
	json_t *data = json_array();
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
		json_array_append_new(data, entry_json(it));
	hcall_end(k, LG_OK, json_pack("{s:o, s:O}", "data", data, "next", next ? next : json_null()));
}

static void entries_page(hcall *k)
{
	if (k->account_item != NULL) {
		/* The account exists and the range had nothing. */
		hcall_end(k, LG_OK, json_pack("{s:[], s:n}", "data", "next"));
		return;
	}
	lg_call(&k->ctx, 0, "Query", k->req, entries_got, k);
}

void lg_entries(const lg_ctx *c, const char *account, const lg_range *r, lg_cb cb, void *arg)
{
	hcall *k = hcall_new(c, account, cb, arg);
	if (k == NULL)
		return;
	char a[24], b[24];
	pad16(a, r->from_us);
	pad16(b, r->to_us - 1); /* to is exclusive; BETWEEN is not */
	k->req = by_time(account, "GSI5PK = :pk AND GSI5SK BETWEEN :a AND :b", a, b, !r->desc, r->limit);
	if (r->after != NULL)
		json_object_set(k->req, "ExclusiveStartKey", (json_t *)r->after);
	if (r->to_us <= r->from_us) {
		with_account(k, entries_page); /* an empty range */
		return;
	}
	entries_page(k);
}

/* ---- balance at a time ------------------------------------------------------ */

static void balance_answer(hcall *k, const json_t *last)
{
	char at[40];
	util_format_time(at, sizeof(at), k->at_us);
	hcall_end(k, LG_OK, json_pack("{s:s, s:s, s:I, s:I}", "account", k->account, "at", at, "posted",
				      (json_int_t)(last ? lg_n(last, "balance_after") : 0), "seq",
				      (json_int_t)(last ? lg_n(last, "seq") : 0)));
}

static void balance_none(hcall *k)
{
	balance_answer(k, NULL);
}

static void balance_got(it_reply *r, void *arg)
{
	hcall *k = arg;
	if (r->err_type != NULL) {
		hcall_end(k, lg_err_status(r), NULL);
		return;
	}
	const json_t *last = json_array_get(json_object_get(r->body, "Items"), 0);
	if (last == NULL) {
		with_account(k, balance_none);
		return;
	}
	balance_answer(k, last);
}

void lg_balance_at(const lg_ctx *c, const char *account, int64_t at_us, lg_cb cb, void *arg)
{
	hcall *k = hcall_new(c, account, cb, arg);
	if (k == NULL)
		return;
	k->at_us = at_us;
	char a[24];
	pad16(a, at_us);
	json_t *req = by_time(account, "GSI5PK = :pk AND GSI5SK <= :a", a, NULL, false, 1);
	lg_call(c, 0, "Query", req, balance_got, k);
	json_decref(req);
}

/* ---- statements ---------------------------------------------------------------- */


static bool statement_page(pager *p, const json_t *items)
{
	hcall *k = p->arg;
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
	{
		int64_t a = lg_n(it, "amount");
		if (a < 0)
			k->debits += -(__int128)a;
		else
			k->credits += a;
		k->count++;
	}
	return true;
}

static void statement_done(pager *p, lg_status st)
{
	hcall *k = p->arg;
	if (st != LG_OK) {
		hcall_end(k, st, NULL);
		return;
	}
	char from[40], to[40];
	util_format_time(from, sizeof(from), k->from_us);
	util_format_time(to, sizeof(to), k->to_us);
	__int128 closing = (__int128)k->opening + k->credits - k->debits;
	hcall_end(k, LG_OK, json_pack("{s:s, s:s?, s:s, s:s, s:I, s:o, s:o, s:o, s:I}", "account", k->account, "currency",
				      lg_s(k->account_item, "currency"), "from", from, "to", to, "opening_balance",
				      (json_int_t)k->opening, "closing_balance", lg_i128_json(closing), "debits", lg_i128_json(k->debits), "credits",
				      lg_i128_json(k->credits), "count", (json_int_t)k->count));
}

static void statement_opened(it_reply *r, void *arg)
{
	hcall *k = arg;
	if (r->err_type != NULL) {
		hcall_end(k, lg_err_status(r), NULL);
		return;
	}
	const json_t *last = json_array_get(json_object_get(r->body, "Items"), 0);
	k->opening = last ? lg_n(last, "balance_after") : 0;
	char a[24], b[24];
	pad16(a, k->from_us);
	pad16(b, k->to_us - 1);
	json_t *req = by_time(k->account, "GSI5PK = :pk AND GSI5SK BETWEEN :a AND :b", a, b, true, PAGE);
	json_object_set_new(req, "ProjectionExpression", json_string("amount"));
	if (k->to_us <= k->from_us) {
		json_decref(req);
		k->pg.arg = k;
		statement_done(&k->pg, LG_OK);
		return;
	}
	pager_start(&k->pg, &k->ctx, req, statement_page, statement_done, k);
}

static void statement_start(hcall *k)
{
	/* The opening balance: the last entry before from. */
	char a[24];
	pad16(a, k->from_us);
	json_t *req = by_time(k->account, "GSI5PK = :pk AND GSI5SK < :a", a, NULL, false, 1);
	lg_call(&k->ctx, 0, "Query", req, statement_opened, k);
	json_decref(req);
}

void lg_statement(const lg_ctx *c, const char *account, int64_t from_us, int64_t to_us, lg_cb cb, void *arg)
{
	hcall *k = hcall_new(c, account, cb, arg);
	if (k == NULL)
		return;
	k->from_us = from_us;
	k->to_us = to_us;
	if (snapshot(k))
		with_account(k, statement_start);
}

/* ---- verification of one account's chain ------------------------------------------ */

static bool verify_page(pager *p, const json_t *items)
{
	hcall *k = p->arg;
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
	{
		int64_t seq = lg_n(it, "seq"), amount = lg_n(it, "amount"), after = lg_n(it, "balance_after");
		const char *prev = lg_s(it, "prev_hash"), *hash = lg_s(it, "hash"), *posted_at = lg_s(it, "posted_at");
		const char *tid = lg_s(it, "transfer_id"), *acc = lg_s(it, "account");
		k->expect_seq++;
		if (k->first_bad == 0) {
			char h[65];
			bool ok = seq == k->expect_seq && prev != NULL && hash != NULL && posted_at != NULL && tid != NULL &&
				  acc != NULL && strcmp(acc, k->account) == 0 && strcmp(prev, k->head) == 0 &&
				  !__builtin_add_overflow(k->sum, amount, &k->sum) && after == k->sum;
			if (ok) {
				lg_entry_hash(prev, acc, amount, after, posted_at, seq, tid, h);
				ok = strcmp(h, hash) == 0;
			}
			if (!ok)
				k->first_bad = k->expect_seq;
			else
				util_strlcpy(k->head, hash, sizeof(k->head));
		}
	}
	return true;
}

static void verify_done(pager *p, lg_status st)
{
	hcall *k = p->arg;
	if (st != LG_OK) {
		hcall_end(k, st, NULL);
		return;
	}
	const json_t *acc = k->account_item;
	int64_t n = k->expect_seq;
	/* The account's own state must agree with its chain. */
	if (k->first_bad == 0 && (lg_n(acc, "seq") != n || strcmp(lg_s(acc, "head") ?: "", k->head) != 0))
		k->first_bad = n + 1 > lg_n(acc, "seq") ? lg_n(acc, "seq") + 1 : n + 1;
	bool balance_matches = k->first_bad == 0 && lg_n(acc, "posted") == k->sum;
	json_t *out = json_pack("{s:s, s:b, s:I, s:s, s:b}", "account", k->account, "ok", k->first_bad == 0 && balance_matches,
				"entries", (json_int_t)n, "head", lg_s(acc, "head") ?: "", "balance_matches", balance_matches);
	if (k->first_bad != 0)
		json_object_set_new(out, "first_bad_seq", json_integer(k->first_bad));
	hcall_end(k, LG_OK, out);
}

static void verify_start(hcall *k)
{
	util_strlcpy(k->head, LG_ZERO_HASH, sizeof(k->head));
	char pk[96];
	snprintf(pk, sizeof(pk), "ACCOUNT#%s", k->account);
	json_t *req = json_pack("{s:s, s:s, s:{s:{s:s}, s:{s:s}}, s:i}", "TableName", IT_SYSTEM_TABLE, "KeyConditionExpression",
				"PK = :pk AND begins_with(SK, :e)", "ExpressionAttributeValues", ":pk", "S", pk, ":e", "S", "ENTRY#",
				"Limit", PAGE);
	pager_start(&k->pg, &k->ctx, req, verify_page, verify_done, k);
}

void lg_verify(const lg_ctx *c, const char *account, lg_cb cb, void *arg)
{
	hcall *k = hcall_new(c, account, cb, arg);
	if (k == NULL)
		return;
	if (snapshot(k))
		with_account(k, verify_start);
}
