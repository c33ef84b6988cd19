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

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_hash();
	test_journal();
	test_leg_failures();
	return it_test_done();
}
