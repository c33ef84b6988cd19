/* history.c — what auditors read of one account (docs/api.md §7): entries
 * by time, the balance at a time, statements and the hash chain's
 * verification (the audit of a currency is audit.c's). Each read is ONE
 * prepared statement on the tables of sql/012_ledger.sql, so it reads one
 * snapshot: the account row (404 when missing) joined with what it needs of
 * its entries, found by the index entries_by_time (account, posted_at) or
 * the primary key (account, seq); only the verification of a chain longer
 * than LG_VERIFY_PART entries takes more, in one REPEATABLE READ snapshot.
 * docs/ledger.md "Reads" lists what each costs. */
#include "ledger/reads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* ---- the statements ------------------------------------------------------ */

/* $1 tenant, $2 account, [$3, $4) the time range, $5 rows at most. The
 * account row comes once, with no entry when the range has none. */
#define ENTRIES_SQL(order)                                                                                                  \
	"SELECT e.seq, e.transfer_id, e.amount, e.balance_after, ledger.rfc3339(e.posted_at), encode(e.hash, 'hex'),"        \
	" encode(e.prev_hash, 'hex'), (extract(epoch FROM e.posted_at) * 1000000)::bigint"                                   \
	" FROM ledger.accounts a LEFT JOIN LATERAL (SELECT * FROM ledger.entries x WHERE x.account = a.aid"                  \
	" AND x.posted_at >= $3::timestamptz AND x.posted_at < $4::timestamptz ORDER BY x.posted_at " order " LIMIT $5::int)" \
	" e ON true WHERE a.tenant = $1 AND a.id = $2"

static const db_stmt ENTRIES_ASC = {"lg_entries_asc", ENTRIES_SQL("ASC"), 5};
static const db_stmt ENTRIES_DESC = {"lg_entries_desc", ENTRIES_SQL("DESC"), 5};

/* The last entry at or before $3. */
static const db_stmt BALANCE_AT = {
	"lg_balance_at",
	"SELECT e.balance_after, e.seq FROM ledger.accounts a LEFT JOIN LATERAL (SELECT x.balance_after, x.seq"
	" FROM ledger.entries x WHERE x.account = a.aid AND x.posted_at <= $3::timestamptz ORDER BY x.posted_at DESC LIMIT 1)"
	" e ON true WHERE a.tenant = $1 AND a.id = $2",
	3,
};

/* Over [$3, $4): the opening balance (the last entry before $3), the sums
 * (numeric: exact beyond int64) and the count. */
static const db_stmt STATEMENT = {
	"lg_statement",
	"SELECT a.currency, coalesce(o.balance_after, 0)::text, (coalesce(o.balance_after, 0) + s.credits - s.debits)::text,"
	" s.debits::text, s.credits::text, s.n FROM ledger.accounts a"
	" LEFT JOIN LATERAL (SELECT x.balance_after FROM ledger.entries x WHERE x.account = a.aid"
	" AND x.posted_at < $3::timestamptz ORDER BY x.posted_at DESC LIMIT 1) o ON true"
	" CROSS JOIN LATERAL (SELECT -coalesce(sum(x.amount) FILTER (WHERE x.amount < 0), 0) AS debits,"
	" coalesce(sum(x.amount) FILTER (WHERE x.amount > 0), 0) AS credits, count(*) AS n"
	" FROM ledger.entries x WHERE x.account = a.aid AND x.posted_at >= $3::timestamptz AND x.posted_at < $4::timestamptz) s"
	" WHERE a.tenant = $1 AND a.id = $2",
	4,
};

/* The chain, walked by ledger.chain_part (sql/015_ledger_reads.sql) at most
 * LG_VERIFY_PART entries per statement (about 7 µs each on the server: a part
 * stays well inside db_query_timeout_ms), all parts in one snapshot: the
 * account row with the first part, then the next parts after the last seq,
 * hash and balance. */
static const db_stmt VERIFY = {
	"lg_verify",
	"SELECT encode(a.head, 'hex'), a.aid, a.seq, a.posted, p.entries, p.first_bad_seq, p.balance::text,"
	" encode(p.last_hash, 'hex') FROM ledger.accounts a CROSS JOIN LATERAL ledger.chain_part(a.aid, a.id, 0,"
	" '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea, 0, $3::bigint) p"
	" WHERE a.tenant = $1 AND a.id = $2",
	3,
};
static const db_stmt VERIFY_NEXT = {
	"lg_verify_next",
	"SELECT p.entries, p.first_bad_seq, p.balance::text, encode(p.last_hash, 'hex')"
	" FROM ledger.chain_part($1::bigint, $2, $3::bigint, decode($4, 'hex'), $5::numeric, $6::bigint) p",
	6,
};
const db_stmt *const lg_history_stmts[] = {&ENTRIES_ASC, &ENTRIES_DESC, &BALANCE_AT, &STATEMENT, &VERIFY, &VERIFY_NEXT, NULL};

/* ---- one read --------------------------------------------------------------- */

typedef struct hread {
	lg_cb cb;
	void *arg;
	char account[80];
	int64_t from_us, to_us, at_us;
	int limit;
} hread;

static void hread_end(hread *k, lg_status st, json_t *obj)
{
	k->cb(st, obj, k->arg);
	json_decref(obj);
	free(k);
}

/* The statement's rows, or NULL after answering (a failure, no account). */
static const PGresult *rows_of(hread *k, db_result *res, const char *what)
{
	lg_status st = lg_db_status(res, what);
	if (st != LG_OK) {
		hread_end(k, st, NULL);
		return NULL;
	}
	if (PQntuples(res->results[0]) == 0) {
		hread_end(k, LG_NOT_FOUND, json_pack("{s:s}", "account", k->account));
		return NULL;
	}
	return res->results[0];
}

/* Times as the statements take them. Nothing is before 1970 (entries are
 * written at the database's now()). */
static void time_text(char out[40], int64_t us)
{
	util_format_time(out, 40, us < 0 ? 0 : us);
}

static void run(const lg_ctx *c, hread *k, const db_stmt *st, const char *a, const char *b, const char *n, db_cb cb)
{
	const char *values[5] = {c->tenant, k->account, a, b, n};
	lg_sql(c, st, values, cb, k);
}

static hread *hread_new(const char *account, lg_cb cb, void *arg)
{
	hread *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, arg);
		return NULL;
	}
	k->cb = cb;
	k->arg = arg;
	util_strlcpy(k->account, account, sizeof(k->account));
	return k;
}

/* ---- entries ------------------------------------------------------------------ */

static json_t *entry_json(const char *account, const PGresult *r, int i)
{
	return json_pack("{s:s, s:I, s:s, s:I, s:I, s:s, s:s, s:s}", "account", account, "seq", (json_int_t)lg_cell_i64(r, i, 0),
			 "transfer_id", PQgetvalue(r, i, 1), "amount", (json_int_t)lg_cell_i64(r, i, 2), "balance_after",
			 (json_int_t)lg_cell_i64(r, i, 3), "posted_at", PQgetvalue(r, i, 4), "hash", PQgetvalue(r, i, 5),
			 "prev_hash", PQgetvalue(r, i, 6));
}

static void entries_got(db_result *res, void *arg)
{
	hread *k = arg;
	const PGresult *r = rows_of(k, res, "lg_entries");
	if (r == NULL)
		return;
	int n = PQgetisnull(r, 0, 0) ? 0 : PQntuples(r); /* the account, no entry in range */
	json_t *out = json_pack("{s:[], s:n}", "data", "next");
	json_t *data = json_object_get(out, "data");
	bool ok = out != NULL;
	for (int i = 0; ok && i < n && i < k->limit; i++)
		ok = json_array_append_new(data, entry_json(k->account, r, i)) == 0;
	/* One row more than the page: there is a next page, which starts after
	 * the page's last entry (posted_at strictly increases with seq). */
	if (ok && n > k->limit)
		ok = json_object_set_new(out, "next", json_pack("{s:I}", "at", (json_int_t)lg_cell_i64(r, k->limit - 1, 7))) == 0;
	if (!ok) {
		json_decref(out);
		out = NULL;
	}
	hread_end(k, out != NULL ? LG_OK : LG_FAILED, out);
}

/* A position this list handed out: {"at": µs}. */
static bool position(const json_t *after, int64_t *at)
{
	const json_t *v = json_object_get(after, "at");
	if (!json_is_object(after) || json_object_size(after) != 1 || !json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*at = json_integer_value(v);
	return true;
}

void lg_entries(const lg_ctx *c, const char *account, const lg_range *r, lg_cb cb, void *arg)
{
	int64_t from = r->from_us, to = r->to_us, at = 0;
	if (r->after != NULL && !position(r->after, &at)) {
		json_t *why = json_pack("{s:s}", "field", "cursor");
		cb(LG_INVALID, why, arg);
		json_decref(why);
		return;
	}
	hread *k = hread_new(account, cb, arg);
	if (k == NULL)
		return;
	k->limit = r->limit > 0 ? r->limit : 1;
	/* The next page is the rest of the range: after the last entry read
	 * (ascending), or before it (descending). */
	if (r->after != NULL && !r->desc && at + 1 > from)
		from = at + 1;
	if (r->after != NULL && r->desc && at < to)
		to = at;
	if (to < from)
		to = from; /* an empty range: the account is still looked up */
	char a[40], b[40], n[16];
	time_text(a, from);
	time_text(b, to);
	snprintf(n, sizeof(n), "%d", k->limit + 1);
	run(c, k, r->desc ? &ENTRIES_DESC : &ENTRIES_ASC, a, b, n, entries_got);
}

/* ---- balance at a time ------------------------------------------------------ */

static void balance_got(db_result *res, void *arg)
{
	hread *k = arg;
	const PGresult *r = rows_of(k, res, BALANCE_AT.name);
	if (r == NULL)
		return;
	char at[40];
	util_format_time(at, sizeof(at), k->at_us);
	/* no entry yet at that time: 0 and seq 0 */
	hread_end(k, LG_OK,
		  json_pack("{s:s, s:s, s:I, s:I}", "account", k->account, "at", at, "posted", (json_int_t)lg_cell_i64(r, 0, 0),
			    "seq", (json_int_t)lg_cell_i64(r, 0, 1)));
}

void lg_balance_at(const lg_ctx *c, const char *account, int64_t at_us, lg_cb cb, void *arg)
{
	hread *k = hread_new(account, cb, arg);
	if (k == NULL)
		return;
	k->at_us = at_us;
	char a[40];
	time_text(a, at_us);
	run(c, k, &BALANCE_AT, a, NULL, NULL, balance_got);
}

/* ---- statements ---------------------------------------------------------------- */

static void statement_got(db_result *res, void *arg)
{
	hread *k = arg;
	const PGresult *r = rows_of(k, res, STATEMENT.name);
	if (r == NULL)
		return;
	char from[40], to[40];
	util_format_time(from, sizeof(from), k->from_us);
	util_format_time(to, sizeof(to), k->to_us);
	json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:o*, s:o*, s:o*, s:o*, s:I}", "account", k->account, "currency",
				PQgetvalue(r, 0, 0), "from", from, "to", to, "opening_balance", lg_numeric_json(PQgetvalue(r, 0, 1)),
				"closing_balance", lg_numeric_json(PQgetvalue(r, 0, 2)), "debits",
				lg_numeric_json(PQgetvalue(r, 0, 3)), "credits", lg_numeric_json(PQgetvalue(r, 0, 4)), "count",
				(json_int_t)lg_cell_i64(r, 0, 5));
	/* a sum that did not parse left its member out */
	if (out != NULL && json_object_size(out) != 9) {
		json_decref(out);
		out = NULL;
	}
	hread_end(k, out != NULL ? LG_OK : LG_FAILED, out);
}

void lg_statement(const lg_ctx *c, const char *account, int64_t from_us, int64_t to_us, lg_cb cb, void *arg)
{
	hread *k = hread_new(account, cb, arg);
	if (k == NULL)
		return;
	k->from_us = from_us;
	k->to_us = to_us;
	char a[40], b[40];
	time_text(a, from_us);
	time_text(b, to_us < from_us ? from_us : to_us);
	run(c, k, &STATEMENT, a, b, NULL, statement_got);
}

/* ---- verification of one account's chain ------------------------------------------ */

typedef struct vwalk {
	lg_ctx ctx;
	lg_cb cb;
	void *arg;
	db_tx *own; /* the snapshot this call opened, if any */
	char account[80];
	/* the account row */
	char aid[24], head[65];
	int64_t seq, posted;
	/* the chain so far */
	int64_t n, first_bad;
	__int128 balance;
	char last[65];
} vwalk;

static void vwalk_end(vwalk *v, lg_status st, json_t *obj)
{
	v->cb(st, obj, v->arg);
	json_decref(obj);
	db_tx_free(v->own);
	free(v);
}

/* The chain is walked: the account row must agree with it. */
static void verify_answer(vwalk *v)
{
	if (v->first_bad == 0 && (v->seq != v->n || strcmp(v->head, v->last) != 0))
		v->first_bad = (v->n < v->seq ? v->n : v->seq) + 1;
	bool matches = v->first_bad == 0 && v->balance == v->posted;
	json_t *out = json_pack("{s:s, s:b, s:I, s:s, s:b, s:s}", "account", v->account, "ok", matches, "entries",
				(json_int_t)v->n, "head", v->head, "balance_matches", matches, "alg", "sha256");
	if (out != NULL && v->first_bad != 0)
		json_object_set_new(out, "first_bad_seq", json_integer(v->first_bad));
	vwalk_end(v, out != NULL ? LG_OK : LG_FAILED, out);
}

static void verify_got(db_result *res, void *arg);

/* A part's (entries, first_bad_seq, balance, last_hash) at column c. */
static void verify_part(vwalk *v, const PGresult *r, int c)
{
	int64_t k = lg_cell_i64(r, 0, c);
	v->n += k;
	if (!PQgetisnull(r, 0, c + 1))
		v->first_bad = lg_cell_i64(r, 0, c + 1);
	if (!lg_i128_parse(PQgetvalue(r, 0, c + 2), &v->balance)) {
		vwalk_end(v, LG_FAILED, NULL);
		return;
	}
	util_strlcpy(v->last, PQgetvalue(r, 0, c + 3), sizeof(v->last));
	if (v->first_bad != 0 || k < LG_VERIFY_PART) {
		verify_answer(v);
		return;
	}
	/* a full part: the chain goes on after it */
	char after[24], part[24];
	snprintf(after, sizeof(after), "%lld", (long long)v->n);
	snprintf(part, sizeof(part), "%d", LG_VERIFY_PART);
	json_t *bal = lg_i128_str(v->balance);
	if (bal == NULL) {
		vwalk_end(v, LG_FAILED, NULL);
		return;
	}
	const char *values[6] = {v->aid, v->account, after, v->last, json_string_value(bal), part};
	lg_sql(&v->ctx, &VERIFY_NEXT, values, verify_got, v);
	json_decref(bal);
}

static void verify_got(db_result *res, void *arg)
{
	vwalk *v = arg;
	lg_status st = lg_db_status(res, VERIFY_NEXT.name);
	if (st != LG_OK || PQntuples(res->results[0]) != 1) {
		vwalk_end(v, st != LG_OK ? st : LG_FAILED, NULL);
		return;
	}
	verify_part(v, res->results[0], 0);
}

static void verify_first_got(db_result *res, void *arg)
{
	vwalk *v = arg;
	lg_status st = lg_db_status(res, VERIFY.name);
	if (st != LG_OK) {
		vwalk_end(v, st, NULL);
		return;
	}
	const PGresult *r = res->results[0];
	if (PQntuples(r) == 0) {
		vwalk_end(v, LG_NOT_FOUND, json_pack("{s:s}", "account", v->account));
		return;
	}
	util_strlcpy(v->head, PQgetvalue(r, 0, 0), sizeof(v->head));
	util_strlcpy(v->aid, PQgetvalue(r, 0, 1), sizeof(v->aid));
	v->seq = lg_cell_i64(r, 0, 2);
	v->posted = lg_cell_i64(r, 0, 3);
	verify_part(v, r, 4);
}

void lg_verify(const lg_ctx *c, const char *account, lg_cb cb, void *arg)
{
	vwalk *v = calloc(1, sizeof(*v));
	if (v == NULL) {
		cb(LG_FAILED, NULL, arg);
		return;
	}
	v->ctx = *c;
	v->cb = cb;
	v->arg = arg;
	util_strlcpy(v->account, account, sizeof(v->account));
	/* A chain longer than a part takes several statements: one snapshot
	 * for all of them (unless the caller's context has one already). */
	if (v->ctx.tx == NULL) {
		v->ctx.tx = v->own = db_tx_new_snapshot(c->db);
		if (v->own == NULL) {
			vwalk_end(v, LG_FAILED, NULL);
			return;
		}
	}
	char part[24];
	snprintf(part, sizeof(part), "%d", LG_VERIFY_PART);
	const char *values[3] = {c->tenant, v->account, part};
	lg_sql(&v->ctx, &VERIFY, values, verify_first_got, v);
}
