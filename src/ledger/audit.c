/* audit.c — the audit of a currency (docs/ledger.md "Auditing a currency"):
 * every account's hash chain verified and the double-entry invariant
 * (Σ posted of the currency's accounts and inbox credits + Σ @world legs
 * = 0), bounded per request. A page reads at most `limit` rows of the index
 * accounts_by_currency and stops after the account whose chain took it past
 * `max_entries` entries; then the @world legs, `max_entries` per page too.
 * The position and the running totals travel in the cursor, so the last page
 * answers for the whole currency. Each page reads in one snapshot. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define QUERY_PAGE 1000

typedef enum { PH_ACCOUNTS, PH_WORLD, PH_DONE } phase;

typedef struct audit {
	lg_ctx ctx;
	lg_cb cb;
	void *arg;
	char currency[4];
	int limit;
	int64_t max_entries, read; /* entries and legs read by this page */
	/* the pass so far (from the cursor, then this page) */
	phase ph;
	int shard;
	json_t *start; /* ExclusiveStartKey of the next query, or NULL */
	int64_t accounts;
	__int128 sum, world;
	bool ok;
	/* this page */
	json_t *rows; /* the index rows of the current accounts query */
	size_t next;
	bool index_done; /* that query was the index's last */
	json_t *bad; /* accounts of this page whose verification failed */
	db_tx *own;
} audit;

/* ---- exact sums in the cursor: decimal strings ---------------------------------- */

static json_t *i128_str(__int128 v)
{
	char buf[48], *p = buf + sizeof(buf) - 1;
	bool neg = v < 0;
	unsigned __int128 u = neg ? -(unsigned __int128)v : (unsigned __int128)v;
	*p = '\0';
	do {
		*--p = (char)('0' + (int)(u % 10));
		u /= 10;
	} while (u != 0);
	if (neg)
		*--p = '-';
	return json_string(p);
}

/* An exact integer for the reply: beyond int64 a string of digits, which
 * the API writes as a JSON number (api/history.c). */
static json_t *i128_json(__int128 v)
{
	if (v >= INT64_MIN && v <= INT64_MAX)
		return json_integer((json_int_t)v);
	return i128_str(v);
}

static bool i128_parse(const json_t *j, __int128 *out)
{
	const char *s = json_string_value(j);
	if (s == NULL)
		return false;
	bool neg = *s == '-';
	const char *p = neg ? s + 1 : s;
	/* 38 digits stay below 2^127; real sums of int64 balances have far fewer */
	if (*p == '\0' || strlen(p) > 38)
		return false;
	__int128 v = 0;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	*out = neg ? -v : v;
	return true;
}

/* ---- the cursor ------------------------------------------------------------------ */

/* A key of the index rows or of the @world legs: exactly these attributes,
 * each a string. */
static bool key_ok(const json_t *k, const char *const *names, size_t n, const char *pk_name, const char *pk)
{
	if (!json_is_object(k) || json_object_size(k) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		const json_t *av = json_object_get(k, names[i]);
		const char *s = json_string_value(json_object_get(av, "S"));
		if (!json_is_object(av) || json_object_size(av) != 1 || s == NULL || strlen(s) > 512)
			return false;
	}
	return strcmp(json_string_value(json_object_get(json_object_get(k, pk_name), "S")), pk) == 0;
}

static void world_pk(const audit *a, int shard, char *out, size_t len)
{
	snprintf(out, len, "WORLD#%s#%02d", a->currency, shard);
}

/* The pass so far from the previous page's position; false: not a cursor
 * this audit issued for this currency. */
static bool cursor_load(audit *a, const json_t *c)
{
	static const char *const acc_key[] = {"PK", "SK", "GSI6PK", "GSI6SK"};
	static const char *const world_key[] = {"PK", "SK"};
	const char *cur = json_string_value(json_object_get(c, "c"));
	const char *ph = json_string_value(json_object_get(c, "ph"));
	const json_t *n = json_object_get(c, "n"), *sh = json_object_get(c, "sh"), *ok = json_object_get(c, "ok");
	const json_t *k = json_object_get(c, "k");
	if (json_is_null(k))
		k = NULL; /* the start of a shard */
	if (!json_is_object(c) || cur == NULL || strcmp(cur, a->currency) != 0 || ph == NULL || !json_is_integer(n) ||
	    json_integer_value(n) < 0 || !json_is_integer(sh) || json_integer_value(sh) < 0 ||
	    json_integer_value(sh) >= LG_WORLD_SHARDS || !json_is_boolean(ok) || !i128_parse(json_object_get(c, "s"), &a->sum) ||
	    !i128_parse(json_object_get(c, "w"), &a->world))
		return false;
	a->accounts = json_integer_value(n);
	a->shard = (int)json_integer_value(sh);
	a->ok = json_is_true(ok);
	if (strcmp(ph, "a") == 0) {
		char pk[16];
		snprintf(pk, sizeof(pk), "CUR#%s", a->currency);
		if (k == NULL || !key_ok(k, acc_key, OL_ARRAY_LEN(acc_key), "GSI6PK", pk) || a->shard != 0)
			return false;
		a->ph = PH_ACCOUNTS;
	} else if (strcmp(ph, "w") == 0) {
		char pk[32];
		world_pk(a, a->shard, pk, sizeof(pk));
		if (k != NULL && !key_ok(k, world_key, OL_ARRAY_LEN(world_key), "PK", pk))
			return false;
		a->ph = PH_WORLD;
	} else {
		return false;
	}
	a->start = json_incref((json_t *)k);
	return true;
}

static json_t *cursor_make(const audit *a)
{
	return json_pack("{s:s, s:s, s:O?, s:i, s:I, s:o, s:o, s:b}", "c", a->currency, "ph", a->ph == PH_ACCOUNTS ? "a" : "w",
			 "k", a->start, "sh", a->shard, "n", (json_int_t)a->accounts, "s", i128_str(a->sum), "w",
			 i128_str(a->world), "ok", a->ok);
}

/* ---- the page ---------------------------------------------------------------------- */

static void audit_free(audit *a)
{
	json_decref(a->start);
	json_decref(a->rows);
	json_decref(a->bad);
	db_tx_free(a->own);
	free(a);
}

static void audit_end(audit *a, lg_status st)
{
	json_t *out = NULL;
	if (st == LG_OK) {
		__int128 total = a->sum + a->world;
		bool done = a->ph == PH_DONE;
		/* "ok" is the verdict on the whole currency: only the last page has
		 * it (null before); "sum" and "world" are the totals so far. */
		out = json_pack("{s:o, s:I, s:o, s:o, s:O, s:o}", "ok", done ? json_boolean(a->ok && total == 0) : json_null(),
				"accounts", (json_int_t)a->accounts, "sum", i128_json(total), "world", i128_json(a->world),
				"failed_accounts", a->bad, "next", done ? json_null() : cursor_make(a));
		if (out == NULL)
			st = LG_FAILED;
	}
	a->cb(st, out, a->arg);
	json_decref(out);
	audit_free(a);
}

static bool budget_left(const audit *a)
{
	return a->read < a->max_entries;
}

static void next_step(audit *a);

static void world_got(it_reply *r, void *arg)
{
	audit *a = arg;
	if (r->err_type != NULL) {
		audit_end(a, lg_err_status(r));
		return;
	}
	size_t i;
	json_t *it;
	json_array_foreach(json_object_get(r->body, "Items"), i, it)
	{
		a->world += lg_n(it, "amount");
		a->read++;
	}
	json_decref(a->start);
	a->start = json_incref(json_object_get(r->body, "LastEvaluatedKey"));
	if (a->start == NULL && ++a->shard >= LG_WORLD_SHARDS) {
		a->shard = 0;
		a->ph = PH_DONE;
	}
	next_step(a);
}

/* The next query of @world legs of the current shard. */
static void world_query(audit *a)
{
	char pk[32];
	world_pk(a, a->shard, pk, sizeof(pk));
	int64_t left = a->max_entries - a->read;
	json_t *req = json_pack("{s:s, s:s, s:{s:{s:s}}, s:s, s:i}", "TableName", IT_SYSTEM_TABLE, "KeyConditionExpression",
				"PK = :pk", "ExpressionAttributeValues", ":pk", "S", pk, "ProjectionExpression", "amount", "Limit",
				(int)(left < QUERY_PAGE ? left : QUERY_PAGE));
	if (req == NULL) {
		audit_end(a, LG_FAILED);
		return;
	}
	if (a->start != NULL)
		json_object_set(req, "ExclusiveStartKey", a->start);
	lg_call(&a->ctx, 0, "Query", req, world_got, a);
	json_decref(req);
}

/* The index key of a row: where the next page starts after it. */
static json_t *row_key(const json_t *row)
{
	return json_pack("{s:O, s:O, s:O, s:O}", "PK", json_object_get(row, "PK"), "SK", json_object_get(row, "SK"), "GSI6PK",
			 json_object_get(row, "GSI6PK"), "GSI6SK", json_object_get(row, "GSI6SK"));
}

static void next_row(audit *a);

static void verified(lg_status st, json_t *obj, void *arg)
{
	audit *a = arg;
	if (st != LG_OK && st != LG_NOT_FOUND) {
		audit_end(a, st);
		return;
	}
	if (st == LG_OK) {
		a->read += json_integer_value(json_object_get(obj, "entries"));
		if (!json_is_true(json_object_get(obj, "ok"))) {
			a->ok = false;
			json_array_append(a->bad, json_object_get(obj, "account"));
		}
	}
	next_row(a);
}

/* Verifies the fetched rows one by one; a row's posted counts once, with
 * its chain. */
static void next_row(audit *a)
{
	size_t n = json_array_size(a->rows);
	if (a->next > 0 && a->next < n && !budget_left(a)) {
		/* Out of entries: the next page starts after the last row done. */
		json_decref(a->start);
		a->start = row_key(json_array_get(a->rows, a->next - 1));
		audit_end(a, a->start != NULL ? LG_OK : LG_FAILED);
		return;
	}
	if (a->next >= n) {
		json_decref(a->rows);
		a->rows = NULL;
		if (a->index_done) {
			a->ph = PH_WORLD;
			a->shard = 0;
		}
		next_step(a);
		return;
	}
	const json_t *it = json_array_get(a->rows, a->next++);
	a->sum += lg_n(it, "posted");
	const char *type = lg_s(it, "type");
	if (type != NULL && strcmp(type, "inbox") == 0) {
		next_row(a); /* a hot account's credit not consolidated yet: money, not an account */
		return;
	}
	a->accounts++;
	lg_verify(&a->ctx, lg_s(it, "id") ?: "", verified, a);
}

static void accounts_got(it_reply *r, void *arg)
{
	audit *a = arg;
	if (r->err_type != NULL) {
		audit_end(a, lg_err_status(r));
		return;
	}
	a->rows = json_incref(json_object_get(r->body, "Items"));
	a->next = 0;
	json_decref(a->start);
	a->start = json_incref(json_object_get(r->body, "LastEvaluatedKey"));
	a->index_done = a->start == NULL; /* the accounts are done once these rows are */
	a->limit -= (int)json_array_size(a->rows);
	next_row(a);
}

static void accounts_query(audit *a)
{
	char pk[16];
	snprintf(pk, sizeof(pk), "CUR#%s", a->currency);
	json_t *req = json_pack("{s:s, s:s, s:s, s:{s:{s:s}}, s:i}", "TableName", IT_SYSTEM_TABLE, "IndexName",
				"accounts_by_currency", "KeyConditionExpression", "GSI6PK = :c", "ExpressionAttributeValues", ":c",
				"S", pk, "Limit", a->limit);
	if (req == NULL) {
		audit_end(a, LG_FAILED);
		return;
	}
	if (a->start != NULL)
		json_object_set(req, "ExclusiveStartKey", a->start);
	lg_call(&a->ctx, 0, "Query", req, accounts_got, a);
	json_decref(req);
}

/* What the page does next: more index rows while it has rows and entries
 * left, then the @world legs while it has entries left, else it ends. */
static void next_step(audit *a)
{
	if (a->ph == PH_DONE) {
		audit_end(a, LG_OK);
		return;
	}
	if (a->ph == PH_ACCOUNTS && a->limit > 0 && budget_left(a)) {
		accounts_query(a);
		return;
	}
	if (a->ph == PH_WORLD && budget_left(a)) {
		world_query(a);
		return;
	}
	audit_end(a, LG_OK); /* the page is full: a cursor */
}

void lg_audit_verify(const lg_ctx *c, const char *currency, const lg_audit_page *p, lg_cb cb, void *arg)
{
	audit *a = calloc(1, sizeof(*a));
	if (a == NULL || (a->bad = json_array()) == NULL) {
		free(a);
		cb(LG_FAILED, NULL, arg);
		return;
	}
	a->ctx = *c;
	a->cb = cb;
	a->arg = arg;
	a->ok = true;
	a->limit = p->limit > 0 ? p->limit : QUERY_PAGE;
	a->max_entries = p->max_entries > 0 ? p->max_entries : 1;
	util_strlcpy(a->currency, currency, sizeof(a->currency));
	if (p->cursor != NULL && !cursor_load(a, p->cursor)) {
		audit_free(a);
		json_t *why = json_pack("{s:s}", "field", "cursor");
		cb(LG_INVALID, why, arg);
		json_decref(why);
		return;
	}
	/* One snapshot per page: the page's chains and sums agree even under
	 * load. */
	if (a->ctx.tx == NULL) {
		a->ctx.tx = a->own = it_snapshot_new(c->items);
		if (a->own == NULL) {
			audit_end(a, LG_FAILED);
			return;
		}
	}
	next_step(a);
}
