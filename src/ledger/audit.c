/* audit.c — the audit of a currency (docs/ledger.md "Auditing a currency"):
 * every account's hash chain verified and the double-entry invariant
 * (Σ posted of the currency's accounts and inbox credits + Σ @world legs
 * = 0), bounded per request. A page reads at most `limit` rows of the index
 * accounts_by_currency and stops after the account whose chain took it past
 * `max_entries` entries; then the @world legs, `max_entries` per page too.
 * The position and the running totals travel in the cursor, so the last page
 * answers for the whole currency. Each page reads in one snapshot; the last
 * page of a pass of several says whether the tenant's ledger moved while the
 * pass ran ("consistent"): a ledger change writes its event in the same
 * transaction, so an outbox row of the tenant that the first page's
 * snapshot did not see and the last page's does is a change in between. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define QUERY_PAGE 1000

typedef struct audit {
	lg_ctx ctx;
	lg_cb cb;
	void *arg;
	char currency[4];
	int limit;
	int64_t max_entries, read; /* entries and legs read by this page */
	/* the pass so far (from the cursor, then this page); pos.start is the
	 * ExclusiveStartKey of the next query, or NULL */
	lg_audit_pos pos;
	bool done;
	bool paged;      /* this page continues a pass (it got a cursor) */
	bool consistent; /* the last page: nothing moved since the first page's snapshot */
	/* this page */
	json_t *rows; /* the index rows of the current accounts query */
	size_t next;
	bool index_done; /* that query was the index's last */
	json_t *bad; /* accounts of this page whose verification failed */
	db_tx *own;
} audit;


/* ---- the page ---------------------------------------------------------------------- */

static void audit_free(audit *a)
{
	lg_audit_pos_clear(&a->pos);
	json_decref(a->rows);
	json_decref(a->bad);
	db_tx_free(a->own);
	free(a);
}

static void audit_end(audit *a, lg_status st)
{
	json_t *out = NULL;
	if (st == LG_OK) {
		__int128 total = a->pos.sum + a->pos.world_sum;
		bool done = a->done;
		/* "ok" is the verdict on the whole currency: only the last page has
		 * it (null before); "sum" and "world" are the totals so far. */
		out = json_pack("{s:o, s:I, s:o, s:o, s:O, s:o, s:o}", "ok",
				done ? json_boolean(a->pos.ok && total == 0) : json_null(), "accounts", (json_int_t)a->pos.accounts,
				"sum", lg_i128_json(total), "world", lg_i128_json(a->pos.world_sum), "failed_accounts", a->bad,
				"consistent", done ? json_boolean(a->consistent) : json_null(), "next",
				done ? json_null() : lg_audit_pos_json(&a->pos, a->currency));
		if (out == NULL)
			st = LG_FAILED;
	}
	a->cb(st, out, a->arg);
	json_decref(out);
	audit_free(a);
}

/* ---- did the ledger move during the pass? ------------------------------------------ */

static void page_full(audit *a);

static lg_status db_status_of(const db_result *res)
{
	return res->status == DB_ERR_QUERY ? LG_FAILED : LG_UNAVAILABLE;
}

static void snap_got(db_result *res, void *arg)
{
	audit *a = arg;
	const char *v = res->status == DB_OK && PQntuples(res->results[0]) == 1 ? PQgetvalue(res->results[0], 0, 0) : NULL;
	if (res->status != DB_OK) {
		audit_end(a, db_status_of(res));
		return;
	}
	if (v == NULL || (a->pos.snap = strdup(v)) == NULL) {
		audit_end(a, LG_FAILED);
		return;
	}
	if (!lg_audit_snap_ok(v)) {
		/* so many transactions in flight that the snapshot does not fit in
		 * a cursor: a moment later it will */
		audit_end(a, LG_UNAVAILABLE);
		return;
	}
	page_full(a);
}

/* The first page's snapshot (in REPEATABLE READ pg_current_snapshot() is
 * the transaction's), carried in the cursor to the last page. */
static void snap_read(audit *a)
{
	db_batch *b = db_batch_new();
	if (b == NULL || !db_batch_add_sql(b, "SELECT pg_current_snapshot()::text", 0, NULL)) {
		db_batch_free(b);
		audit_end(a, LG_FAILED);
		return;
	}
	db_tx_exec(a->ctx.tx, b, 0, snap_got, a);
}

static void moved_got(db_result *res, void *arg)
{
	audit *a = arg;
	if (res->status != DB_OK) {
		audit_end(a, db_status_of(res));
		return;
	}
	a->consistent = PQntuples(res->results[0]) == 1 && strcmp(PQgetvalue(res->results[0], 0, 0), "f") == 0;
	audit_end(a, LG_OK);
}

static void moved_check(audit *a)
{
	const char *p[2] = {a->ctx.tenant, a->pos.snap};
	db_batch *b = db_batch_new();
	if (b == NULL || a->ctx.tenant == NULL ||
	    !db_batch_add_sql(b,
			      "SELECT EXISTS (SELECT 1 FROM outbox WHERE tenant = $1"
			      " AND txid >= pg_snapshot_xmin($2::pg_snapshot) AND NOT pg_visible_in_snapshot(txid, $2::pg_snapshot))",
			      2, p)) {
		db_batch_free(b);
		audit_end(a, LG_FAILED);
		return;
	}
	db_tx_exec(a->ctx.tx, b, 0, moved_got, a);
}

/* A page that ends before the pass: its cursor, with the first page's
 * snapshot. */
static void page_full(audit *a)
{
	if (a->pos.snap == NULL)
		snap_read(a);
	else
		audit_end(a, LG_OK);
}

static void next_step(audit *a);

static bool budget_left(const audit *a)
{
	return a->read < a->max_entries;
}

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
		a->pos.world_sum += lg_n(it, "amount");
		a->read++;
	}
	json_decref(a->pos.start);
	a->pos.start = json_incref(json_object_get(r->body, "LastEvaluatedKey"));
	if (a->pos.start == NULL && ++a->pos.shard >= LG_WORLD_SHARDS) {
		a->pos.shard = 0;
		a->done = true;
	}
	next_step(a);
}

/* The next query of @world legs of the current shard. */
static void world_query(audit *a)
{
	char pk[32];
	lg_audit_world_pk(a->currency, a->pos.shard, pk, sizeof(pk));
	int64_t left = a->max_entries - a->read;
	json_t *req = json_pack("{s:s, s:s, s:{s:{s:s}}, s:s, s:i}", "TableName", IT_SYSTEM_TABLE, "KeyConditionExpression",
				"PK = :pk", "ExpressionAttributeValues", ":pk", "S", pk, "ProjectionExpression", "amount", "Limit",
				(int)(left < QUERY_PAGE ? left : QUERY_PAGE));
	if (req == NULL) {
		audit_end(a, LG_FAILED);
		return;
	}
	if (a->pos.start != NULL)
		json_object_set(req, "ExclusiveStartKey", a->pos.start);
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
			a->pos.ok = false;
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
		json_decref(a->pos.start);
		a->pos.start = row_key(json_array_get(a->rows, a->next - 1));
		if (a->pos.start == NULL)
			audit_end(a, LG_FAILED);
		else
			page_full(a);
		return;
	}
	if (a->next >= n) {
		json_decref(a->rows);
		a->rows = NULL;
		if (a->index_done) {
			a->pos.world = true;
			a->pos.shard = 0;
		}
		next_step(a);
		return;
	}
	const json_t *it = json_array_get(a->rows, a->next++);
	a->pos.sum += lg_n(it, "posted");
	const char *type = lg_s(it, "type");
	if (type != NULL && strcmp(type, "inbox") == 0) {
		next_row(a); /* a hot account's credit not consolidated yet: money, not an account */
		return;
	}
	a->pos.accounts++;
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
	json_decref(a->pos.start);
	a->pos.start = json_incref(json_object_get(r->body, "LastEvaluatedKey"));
	a->index_done = a->pos.start == NULL; /* the accounts are done once these rows are */
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
	if (a->pos.start != NULL)
		json_object_set(req, "ExclusiveStartKey", a->pos.start);
	lg_call(&a->ctx, 0, "Query", req, accounts_got, a);
	json_decref(req);
}

/* What the page does next: more index rows while it has rows and entries
 * left, then the @world legs while it has entries left, else it ends. */
static void next_step(audit *a)
{
	if (a->done) {
		a->consistent = !a->paged; /* one page: one snapshot */
		if (a->paged)
			moved_check(a);
		else
			audit_end(a, LG_OK);
		return;
	}
	if (!a->pos.world && a->limit > 0 && budget_left(a)) {
		accounts_query(a);
		return;
	}
	if (a->pos.world && budget_left(a)) {
		world_query(a);
		return;
	}
	page_full(a); /* the page is full: a cursor */
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
	a->pos.ok = true;
	a->limit = p->limit > 0 ? p->limit : QUERY_PAGE;
	a->max_entries = p->max_entries > 0 ? p->max_entries : 1;
	util_strlcpy(a->currency, currency, sizeof(a->currency));
	a->paged = p->cursor != NULL;
	if (p->cursor != NULL && !lg_audit_pos_load(p->cursor, a->currency, &a->pos)) {
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
