/* audit.c — the audit of a currency (docs/ledger.md "Auditing a currency"):
 * every account's hash chain verified and the double-entry invariant
 * (Σ posted of the currency's accounts + Σ their inbox credits + @world's
 * balance = 0), bounded per request. A page is ONE call of
 * ledger.audit_page() (sql/015_ledger_reads.sql), in one statement's
 * snapshot: at most `limit` accounts of the index accounts_by_currency,
 * stopping after the account whose chain took it past `max_entries`
 * entries; then the @world legs (transfers_world), `max_entries` at a time.
 * The position and the running totals travel in the cursor, so the last page
 * answers for the whole currency; the last page of a pass of several says
 * whether the tenant's ledger moved while the pass ran ("consistent"): a
 * ledger change writes its event in its own transaction, so an outbox row of
 * the tenant that the first page's snapshot did not see and the last page's
 * does is a change in between. */
#include "ledger/reads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define MAX_LIMIT 1000

static const db_stmt PAGE = {
	"lg_audit_page",
	"SELECT accounts, balances::text, world::text, failed, next_world, next_after, done, snap, moved"
	" FROM ledger.audit_page($1, $2, $3::boolean, $4, $5::integer, $6::bigint, $7)",
	7,
};

typedef struct audit {
	lg_cb cb;
	void *arg;
	char currency[4];
	lg_audit_pos pos; /* the pass so far: from the cursor, then this page */
	bool paged;       /* this page continues a pass (it got a cursor) */
} audit;

static void audit_end(audit *a, lg_status st, json_t *out)
{
	a->cb(st, out, a->arg);
	json_decref(out);
	lg_audit_pos_clear(&a->pos);
	free(a);
}

/* The page's answer: the totals so far; the verdict on the last page. */
static json_t *page_json(audit *a, json_t *failed, bool done, bool consistent)
{
	__int128 total = a->pos.sum + a->pos.world_sum;
	return json_pack("{s:o, s:I, s:o, s:o, s:O, s:o, s:o}", "ok", done ? json_boolean(a->pos.ok && total == 0) : json_null(),
			 "accounts", (json_int_t)a->pos.accounts, "sum", lg_i128_json(total), "world",
			 lg_i128_json(a->pos.world_sum), "failed_accounts", failed, "consistent",
			 done ? json_boolean(consistent) : json_null(), "next",
			 done ? json_null() : lg_audit_pos_json(&a->pos, a->currency));
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
	json_t *failed = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 3), 0, NULL) : NULL;
	if (failed == NULL || !json_is_array(failed) || !lg_i128_parse(PQgetvalue(r, 0, 1), &balances) ||
	    !lg_i128_parse(PQgetvalue(r, 0, 2), &world)) {
		json_decref(failed);
		audit_end(a, LG_FAILED, NULL);
		return;
	}
	bool done = strcmp(PQgetvalue(r, 0, 6), "t") == 0;
	a->pos.accounts += lg_cell_i64(r, 0, 0);
	a->pos.sum += balances;
	a->pos.world_sum += world;
	a->pos.ok = a->pos.ok && json_array_size(failed) == 0;
	a->pos.world = strcmp(PQgetvalue(r, 0, 4), "t") == 0;
	free(a->pos.after);
	a->pos.after = NULL;
	const char *after = lg_cell(r, 0, 5), *snap = lg_cell(r, 0, 7);
	if (after != NULL && (a->pos.after = strdup(after)) == NULL) {
		json_decref(failed);
		audit_end(a, LG_FAILED, NULL);
		return;
	}
	/* One page: one snapshot. Several: nothing may have moved since the
	 * first page's. */
	bool consistent = !a->paged || strcmp(PQgetvalue(r, 0, 8), "f") == 0;
	if (!done && a->pos.snap == NULL) {
		if (snap == NULL || (a->pos.snap = strdup(snap)) == NULL) {
			json_decref(failed);
			audit_end(a, LG_FAILED, NULL);
			return;
		}
		if (!lg_audit_snap_ok(snap)) {
			/* so many transactions in flight that the snapshot does not
			 * fit in a cursor: a moment later it will */
			json_decref(failed);
			audit_end(a, LG_UNAVAILABLE, NULL);
			return;
		}
	}
	json_t *out = page_json(a, failed, done, consistent);
	json_decref(failed);
	audit_end(a, out != NULL ? LG_OK : LG_FAILED, out);
}

void lg_audit_verify(const lg_ctx *c, const char *currency, const lg_audit_page *p, lg_cb cb, void *arg)
{
	audit *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		cb(LG_FAILED, NULL, arg);
		return;
	}
	a->cb = cb;
	a->arg = arg;
	a->pos.ok = true;
	util_strlcpy(a->currency, currency, sizeof(a->currency));
	a->paged = p->cursor != NULL;
	if (p->cursor != NULL && !lg_audit_pos_load(p->cursor, a->currency, &a->pos)) {
		json_t *why = json_pack("{s:s}", "field", "cursor");
		audit_end(a, LG_INVALID, why);
		return;
	}
	char limit[16], max[24];
	snprintf(limit, sizeof(limit), "%d", p->limit > 0 && p->limit <= MAX_LIMIT ? p->limit : MAX_LIMIT);
	snprintf(max, sizeof(max), "%lld", (long long)(p->max_entries > 0 ? p->max_entries : 1));
	const char *values[7] = {c->tenant, a->currency, a->pos.world ? "t" : "f", a->pos.after, limit, max, a->pos.snap};
	lg_sql(c, &PAGE, values, page_got, a);
}
