/* test_ledger.c — the pure parts of the ledger: the entry hash (the exact
 * bytes docs/ledger.md tells auditors to hash), the journal's chaining of
 * several transfers on one account, and which problem a failed leg is. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "ledger/ledger_int.h"
#include "tap.h"

/* Vectors computed independently with Python's hashlib.blake2b. */
#define H1 "489bcfee9537b3e091b40167ba5ed785b40a2c9f5ec2441150dded4ad789f1f4"
#define H2 "867fe2ce2858fd4394e943ce23a90819dbf75deabdec79eed1e5d01aa4930056"

static void test_hash(void)
{
	char h[65];
	lg_entry_hash(LG_ZERO_HASH, "alice", 1000, 1000, "2026-11-21T10:00:00.123456Z", 1, "tr_1", h);
	CHECK(strcmp(h, H1) == 0, "first entry: BLAKE2b-256(32 zero bytes || canonical JSON)");
	lg_entry_hash(H1, "alice", -250, 750, "2026-11-21T10:00:00.123457Z", 2, "tr_2", h);
	CHECK(strcmp(h, H2) == 0, "second entry chains on the first");
	lg_entry_hash(H1, "alice", -251, 750, "2026-11-21T10:00:00.123457Z", 2, "tr_2", h);
	CHECK(strcmp(h, H2) != 0, "another amount, another hash");
}

static json_t *account_after(int64_t seq, int64_t posted, const char *head, int64_t last_at)
{
	return json_pack("{s:{s:s}, s:o, s:o, s:{s:s}, s:o}", "currency", "S", "EUR", "seq", lg_av_n(seq), "posted",
			 lg_av_n(posted), "head", "S", head, "last_at", lg_av_n(last_at));
}

static void test_journal(void)
{
	lg_journal *j = lg_journal_new();
	/* Two transfers of one request on account a: the second update saw
	 * seq 6 but still the head of before the request (heads are written
	 * at the end), so the journal must chain on its own newest head. */
	json_t *a1 = account_after(5, 100, LG_ZERO_HASH, 0);
	json_t *a2 = account_after(6, 90, LG_ZERO_HASH, 0);
	json_t *e1 = lg_journal_post(j, "t1", "a", "EUR", 100, a1);
	json_t *e2 = lg_journal_post(j, "t2", "a", "EUR", -10, a2);
	CHECK(e1 != NULL && json_integer_value(json_object_get(e1, "seq")) == 5, "seq from the update");
	CHECK(e2 != NULL && json_integer_value(json_object_get(e2, "balance_after")) == 90, "balance_after from the update");
	json_t *w = lg_journal_post(j, "t3", NULL, "EUR", -5, NULL);
	CHECK(w != NULL && strcmp(json_string_value(json_object_get(w, "account")), "@world:EUR") == 0 &&
		      json_is_null(json_object_get(w, "seq")) && json_is_null(json_object_get(w, "balance_after")),
	      "@world leg: no seq, no balance");
	json_t *bad = lg_journal_post(j, "t4", "a", "EUR", 1, a1);
	CHECK(bad == NULL, "a seq that does not follow is refused");
	json_decref(a1);
	json_decref(a2);
	json_decref(e1);
	json_decref(e2);
	json_decref(w);
	lg_journal_free(j);
}

static void test_leg_failures(void)
{
	lg_leg debit = {.account = "a", .dposted = -50, .guard = true, .active = true, .currency = "EUR"};
	int rank;
	json_t *x;
	CHECK(lg_leg_failure(&debit, NULL, &rank, &x) == LG_NOT_FOUND && rank == 1, "missing account first");
	json_decref(x);
	json_t *usd = json_pack("{s:{s:s}, s:{s:s}}", "currency", "S", "USD", "status", "S", "active");
	CHECK(lg_leg_failure(&debit, usd, &rank, &x) == LG_CURRENCY_MISMATCH, "currency");
	json_decref(x);
	json_t *frozen = json_pack("{s:{s:s}, s:{s:s}}", "currency", "S", "EUR", "status", "S", "frozen");
	CHECK(lg_leg_failure(&debit, frozen, &rank, &x) == LG_FROZEN, "frozen");
	json_decref(x);
	json_t *poor = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "currency", "S", "EUR", "status", "S", "active",
				 "posted", "N", "30", "pending", "N", "5", "overdraft_limit", "N", "20");
	CHECK(lg_leg_failure(&debit, poor, &rank, &x) == LG_INSUFFICIENT &&
		      json_integer_value(json_object_get(x, "available")) == 25 &&
		      json_integer_value(json_object_get(x, "overdraft_limit")) == 20,
	      "45 spendable for 50: insufficient, with available and overdraft_limit");
	json_decref(x);
	lg_leg credit = {.account = "b", .dposted = 10};
	json_t *full = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}}", "currency", "S", "EUR", "status", "S", "active", "posted", "N",
				 "9223372036854775800");
	CHECK(lg_leg_failure(&credit, full, &rank, &x) == LG_OVERFLOW, "a credit past 2^63-1 overflows");
	json_decref(x);
	json_decref(usd);
	json_decref(frozen);
	json_decref(poor);
	json_decref(full);
}

/* The audit's position round-trips through its JSON and nothing else loads. */
static void test_audit_pos(void)
{
	lg_audit_pos p = {.world = false, .accounts = 7, .ok = true};
	p.sum = (__int128)INT64_MAX * 4;
	p.world_sum = -(__int128)INT64_MAX * 3;
	p.snap = strdup("10:14:11,13");
	p.start = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "PK", "S", "ACCOUNT#a", "SK", "S", "METADATA", "GSI6PK", "S",
			    "CUR#USD", "GSI6SK", "S", "ACCOUNT#a");
	json_t *j = lg_audit_pos_json(&p, "USD");
	lg_audit_pos q;
	CHECK(j != NULL && lg_audit_pos_load(j, "USD", &q), "a position loads back");
	CHECK(q.sum == p.sum && q.world_sum == p.world_sum && q.accounts == 7 && q.ok && !q.world &&
		      json_equal(q.start, p.start) && strcmp(q.snap, "10:14:11,13") == 0,
	      "... unchanged, sums beyond int64 exact");
	lg_audit_pos_clear(&q);
	CHECK(!lg_audit_pos_load(j, "EUR", &q), "another currency's position does not load");
	json_t *bad[] = {
		json_pack("{s:s}", "s", "1"),
		json_pack("{s:s, s:s, s:o, s:i, s:i, s:s, s:s, s:b}", "c", "USD", "ph", "a", "k", json_null(), "sh", 0, "n", 0, "s",
			  "0", "w", "0", "ok", 1),                                          /* accounts without a key */
		json_pack("{s:s, s:s, s:n, s:i, s:i, s:s, s:s, s:b}", "c", "USD", "ph", "w", "k", "sh", 0, "n", 0, "s", "007", "w",
			  "0", "ok", 1),                                                    /* leading zeros */
		json_pack("{s:s, s:s, s:n, s:i, s:i, s:s, s:s, s:b}", "c", "USD", "ph", "w", "k", "sh", 0, "n", 0, "s", "-0", "w",
			  "0", "ok", 1),                                                    /* minus zero */
		json_pack("{s:s, s:s, s:n, s:i, s:i, s:s, s:s, s:b, s:i}", "c", "USD", "ph", "w", "k", "sh", 0, "n", 0, "s", "0",
			  "w", "0", "ok", 1, "x", 1),                                       /* an unknown member */
	};
	for (size_t i = 0; i < OL_ARRAY_LEN(bad); i++) {
		char name[64];
		snprintf(name, sizeof(name), "malformed position %zu refused", i);
		CHECK(bad[i] != NULL && !lg_audit_pos_load(bad[i], "USD", &q), name);
		json_decref(bad[i]);
	}
	json_t *w = json_pack("{s:s, s:s, s:n, s:i, s:i, s:s, s:s, s:b, s:s}", "c", "USD", "ph", "w", "k", "sh", 15, "n", 0, "s",
			      "0", "w", "-12", "ok", 0, "sn", "795:795:");
	CHECK(lg_audit_pos_load(w, "USD", &q) && q.world && q.shard == 15 && q.start == NULL && q.world_sum == -12 && !q.ok,
	      "the start of the last @world shard");
	lg_audit_pos_clear(&q);
	json_decref(w);
	/* the snapshot: PostgreSQL's text, nothing else */
	const char *snaps_ok[] = {"795:795:", "1:9:2,3,8"};
	const char *snaps_bad[] = {"", "1:2", "1:2:3:4", "a:1:", "01:2:", "1::", ":1:", "1:2:,3", "1:2:3,", "1:2:3,,4", "1;2:"};
	for (size_t i = 0; i < OL_ARRAY_LEN(snaps_ok); i++)
		CHECK(lg_audit_snap_ok(snaps_ok[i]), snaps_ok[i]);
	for (size_t i = 0; i < OL_ARRAY_LEN(snaps_bad); i++) {
		char name[64];
		snprintf(name, sizeof(name), "snapshot '%s' refused", snaps_bad[i]);
		CHECK(!lg_audit_snap_ok(snaps_bad[i]), name);
	}
	json_decref(j);
	lg_audit_pos_clear(&p);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_hash();
	test_journal();
	test_leg_failures();
	test_audit_pos();
	return it_test_done();
}
