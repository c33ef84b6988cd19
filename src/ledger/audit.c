/* audit.c — the audit of a currency (docs/ledger.md "Auditing a currency"):
 * every account's hash chain verified and the double-entry invariant
 * (Σ posted of the currency's accounts + Σ their inbox credits + @world's
 * balance = 0), bounded per request. A page is a call of ledger.audit_page()
 * (sql/015_ledger_reads.sql): at most `limit` accounts of the index
 * accounts_by_currency, stopping after the account whose chain took it past
 * `max_entries` entries; then the @world legs (transfers_world),
 * `max_entries` at a time. An account with a long chain stops that call:
 * its chain is walked in parts as lg_verify does, and the page goes on after
 * it with another call; all of a page's statements read one snapshot
 * (REPEATABLE READ READ ONLY). The position and the running totals travel
 * in the cursor, so the last page answers for the whole currency; the last
 * page of a pass of several says whether the tenant's ledger moved while the
 * pass ran ("consistent"): a ledger change writes its event in its own
 * transaction, so an outbox row of the tenant that the first page's snapshot
 * did not see and the last page's does is a change in between. */
#include "ledger/reads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define MAX_LIMIT 1000

static const db_stmt PAGE = {
	"lg_audit_page",
	"SELECT accounts, n_read, balances::text, world::text, failed, next_world, next_after, done, snap, moved, long_id,"
	" long_balance::text FROM ledger.audit_page($1, $2, $3::boolean, $4, $5::integer, $6::bigint, $7, $8::bigint)",
	8,
};
const db_stmt *const lg_audit_stmts[] = {&PAGE, NULL};

typedef struct audit {
	lg_ctx ctx;
	lg_cb cb;
	void *arg;
	db_tx *own; /* the page's snapshot, if this call opened it */
	char currency[4];
	lg_audit_pos pos; /* the pass so far: from the cursor, then this page */
	bool paged;       /* this page continues a pass (it got a cursor) */
	int limit;        /* accounts this page may still take */
	int64_t budget;   /* entries and legs this page may still read */
	json_t *failed;   /* accounts of this page that did not verify */
	__int128 long_balance; /* of the long chain being walked */
} audit;

static void audit_end(audit *a, lg_status st, json_t *out)
{
	a->cb(st, out, a->arg);
	json_decref(out);
	json_decref(a->failed);
	lg_audit_pos_clear(&a->pos);
	db_tx_free(a->own);
	free(a);
}

/* The page's answer: the totals so far; the verdict on the last page. */
static void answer(audit *a, bool done, bool consistent)
{
	__int128 total = a->pos.sum + a->pos.world_sum;
	json_t *out = json_pack("{s:o, s:I, s:o, s:o, s:O, s:o, s:o}", "ok", done ? json_boolean(a->pos.ok && total == 0) : json_null(),
				"accounts", (json_int_t)a->pos.accounts, "sum", lg_i128_json(total), "world",
				lg_i128_json(a->pos.world_sum), "failed_accounts", a->failed, "consistent",
				done ? json_boolean(consistent) : json_null(), "next",
				done ? json_null() : lg_audit_pos_json(&a->pos, a->currency));
	audit_end(a, out != NULL ? LG_OK : LG_FAILED, out);
}

static bool set_after(audit *a, const char *after)
{
	free(a->pos.after);
	a->pos.after = after != NULL ? strdup(after) : NULL;
	return after == NULL || a->pos.after != NULL;
}

static void page_call(audit *a);

/* A long chain walked (lg_verify in the page's snapshot): it counts as one
 * account of the page, and the page goes on after it. */
static void long_verified(lg_status st, json_t *obj, void *arg)
{
	audit *a = arg;
	const char *id = json_string_value(json_object_get(obj, "account"));
	if (st != LG_OK || id == NULL) {
		audit_end(a, st != LG_OK ? st : LG_FAILED, NULL);
		return;
	}
	int64_t n = json_integer_value(json_object_get(obj, "entries"));
	a->pos.accounts++;
	a->limit--;
	a->budget -= n < a->budget ? n : a->budget;
	a->pos.sum += a->long_balance;
	if (!json_is_true(json_object_get(obj, "ok"))) {
		a->pos.ok = false;
		json_array_append_new(a->failed, json_string(id));
	}
	if (!set_after(a, id)) {
		audit_end(a, LG_FAILED, NULL);
		return;
	}
	page_call(a);
}

static void page_got(db_result *res, void *arg)
{
	audit *a = arg;
	lg_status st = lg_db_status(res, PAGE.name);
	if (st != LG_OK) {
		audit_end(a, st, NULL);
		return;
	}
	const PGresult *r = res->results[0];
	__int128 balances, world;
	json_t *failed = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 4), 0, NULL) : NULL;
	if (failed == NULL || !json_is_array(failed) || !lg_i128_parse(PQgetvalue(r, 0, 2), &balances) ||
	    !lg_i128_parse(PQgetvalue(r, 0, 3), &world) || json_array_extend(a->failed, failed) != 0) {
		json_decref(failed);
		audit_end(a, LG_FAILED, NULL);
		return;
	}
	int64_t accounts = lg_cell_i64(r, 0, 0), n_read = lg_cell_i64(r, 0, 1);
	a->pos.accounts += accounts;
	a->limit -= (int)accounts;
	a->budget -= n_read < a->budget ? n_read : a->budget;
	a->pos.sum += balances;
	a->pos.world_sum += world;
	a->pos.ok = a->pos.ok && json_array_size(failed) == 0;
	json_decref(failed);
	const char *long_id = lg_cell(r, 0, 10);
	if (long_id != NULL) {
		/* the call stopped before a long chain: walk it, then go on */
		if (!lg_i128_parse(PQgetvalue(r, 0, 11), &a->long_balance) || !set_after(a, lg_cell(r, 0, 6))) {
			audit_end(a, LG_FAILED, NULL);
			return;
		}
		lg_verify(&a->ctx, long_id, long_verified, a);
		return;
	}
	bool done = strcmp(PQgetvalue(r, 0, 7), "t") == 0;
	a->pos.world = strcmp(PQgetvalue(r, 0, 5), "t") == 0;
	if (!set_after(a, lg_cell(r, 0, 6))) {
		audit_end(a, LG_FAILED, NULL);
		return;
	}
	/* One page: one snapshot. Several: nothing may have moved since the
	 * first page's. */
	bool consistent = !a->paged || strcmp(PQgetvalue(r, 0, 9), "f") == 0;
	const char *snap = lg_cell(r, 0, 8);
	if (!done && a->pos.snap == NULL) {
		if (snap == NULL || (a->pos.snap = strdup(snap)) == NULL) {
			audit_end(a, LG_FAILED, NULL);
			return;
		}
		if (!lg_audit_snap_ok(snap)) {
			/* so many transactions in flight that the snapshot does not
			 * fit in a cursor: a moment later it will */
			audit_end(a, LG_UNAVAILABLE, NULL);
			return;
		}
	}
	answer(a, done, consistent);
}

static void page_call(audit *a)
{
	char limit[16], max[24], part[24];
	snprintf(limit, sizeof(limit), "%d", a->limit > 0 ? a->limit : 0);
	snprintf(max, sizeof(max), "%lld", (long long)a->budget);
	snprintf(part, sizeof(part), "%d", LG_VERIFY_PART);
	const char *values[8] = {a->ctx.tenant, a->currency, a->pos.world ? "t" : "f", a->pos.after, limit, max, a->pos.snap, part};
	lg_sql(&a->ctx, &PAGE, values, page_got, a);
}

void lg_audit_verify(const lg_ctx *c, const char *currency, const lg_audit_page *p, lg_cb cb, void *arg)
{
	audit *a = calloc(1, sizeof(*a));
	if (a == NULL || (a->failed = json_array()) == NULL) {
		free(a);
		cb(LG_FAILED, NULL, arg);
		return;
	}
	a->ctx = *c;
	a->cb = cb;
	a->arg = arg;
	a->pos.ok = true;
	a->limit = p->limit > 0 && p->limit <= MAX_LIMIT ? p->limit : MAX_LIMIT;
	a->budget = p->max_entries > 0 ? p->max_entries : 1;
	util_strlcpy(a->currency, currency, sizeof(a->currency));
	a->paged = p->cursor != NULL;
	if (p->cursor != NULL && !lg_audit_pos_load(p->cursor, a->currency, &a->pos)) {
		json_t *why = json_pack("{s:s}", "field", "cursor");
		audit_end(a, LG_INVALID, why);
		return;
	}
	/* One snapshot for the page's statements (several when it meets a long
	 * chain), unless the caller's context has one already. */
	if (a->ctx.tx == NULL) {
		a->ctx.tx = a->own = db_tx_new_snapshot(c->db);
		if (a->own == NULL) {
			audit_end(a, LG_FAILED, NULL);
			return;
		}
	}
	page_call(a);
}
