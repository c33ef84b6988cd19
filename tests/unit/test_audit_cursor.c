/* test_audit_cursor.c — the position of a currency audit's pass
 * (src/ledger/audit_cursor.c): it round-trips through its JSON, sums beyond
 * int64 exact, and nothing else loads; the snapshot text; the exact
 * integers of the reads. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/reads.h"
#include "tap.h"
#include "util/util.h"

static void test_round_trip(void)
{
	lg_audit_pos p = {.world = false, .accounts = 7, .ok = true};
	p.sum = (__int128)INT64_MAX * 4;
	p.world_sum = -(__int128)INT64_MAX * 3;
	p.snap = strdup("10:14:11,13");
	p.after = strdup("acc-7");
	json_t *j = lg_audit_pos_json(&p, "USD");
	lg_audit_pos q;
	CHECK(j != NULL && lg_audit_pos_load(j, "USD", &q), "a position loads back");
	CHECK(q.sum == p.sum && q.world_sum == p.world_sum && q.accounts == 7 && q.ok && !q.world &&
		      strcmp(q.after, "acc-7") == 0 && strcmp(q.snap, "10:14:11,13") == 0,
	      "... unchanged, sums beyond int64 exact");
	lg_audit_pos_clear(&q);
	CHECK(!lg_audit_pos_load(j, "EUR", &q), "another currency's position does not load");
	json_decref(j);
	lg_audit_pos_clear(&p);

	json_t *w = json_pack("{s:s, s:s, s:n, s:i, s:s, s:s, s:b, s:s}", "c", "USD", "ph", "w", "k", "n", 0, "s", "0", "w", "-12",
			      "ok", 0, "sn", "795:795:");
	CHECK(lg_audit_pos_load(w, "USD", &q) && q.world && q.after == NULL && q.world_sum == -12 && !q.ok,
	      "the start of the @world legs");
	lg_audit_pos_clear(&q);
	json_decref(w);
	w = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:b, s:s}", "c", "USD", "ph", "w", "k", "tr_0001", "n", 3, "s", "5", "w",
		      "-5", "ok", 1, "sn", "795:795:");
	CHECK(lg_audit_pos_load(w, "USD", &q) && q.world && strcmp(q.after, "tr_0001") == 0 && q.accounts == 3,
	      "after a @world leg");
	lg_audit_pos_clear(&q);
	json_decref(w);
}

static void test_refused(void)
{
	lg_audit_pos q;
#define POS(ph, k, s, extra) \
	json_pack("{s:s, s:s, s:o, s:i, s:s, s:s, s:b, s:s" extra "}", "c", "USD", "ph", ph, "k", k, "n", 0, "s", s, "w", "0", \
		  "ok", 1, "sn", "795:795:"
	json_t *bad[] = {
		json_pack("{s:s}", "s", "1"),
		POS("a", json_null(), "0", "")),                       /* accounts without where they stopped */
		POS("w", json_null(), "007", "")),                     /* leading zeros */
		POS("w", json_null(), "-0", "")),                      /* minus zero */
		POS("w", json_null(), "1e3", "")),                     /* not digits */
		POS("w", json_null(), "0", ", s:i"), "x", 1),          /* an unknown member */
		POS("x", json_null(), "0", "")),                       /* another phase */
		POS("a", json_string("no spaces"), "0", "")),          /* not an id */
		POS("a", json_string("@world:USD"), "0", "")),         /* not an id */
		POS("a", json_integer(3), "0", "")),                   /* not a string */
		POS("a", json_string(""), "0", "")),                   /* empty */
		POS("a", json_string("a"), "123456789012345678901234567890123456789", "")), /* 39 digits */
		json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:b}", "c", "USD", "ph", "a", "k", "a", "n", 0, "s", "0", "w", "0", "ok",
			  1), /* no snapshot */
		json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:b, s:s}", "c", "USD", "ph", "a", "k", "a", "n", -1, "s", "0", "w", "0",
			  "ok", 1, "sn", "795:795:"), /* a negative count */
		json_pack("{s:s, s:s, s:{s:{s:s}}, s:i, s:i, s:s, s:s, s:b, s:s}", "c", "USD", "ph", "a", "k", "PK", "S",
			  "ACCOUNT#a", "sh", 0, "n", 0, "s", "0", "w", "0", "ok", 1, "sn", "795:795:"), /* the item layout's */
	};
#undef POS
	for (size_t i = 0; i < OL_ARRAY_LEN(bad); i++) {
		char name[64];
		snprintf(name, sizeof(name), "malformed position %zu refused", i);
		CHECK(bad[i] != NULL && !lg_audit_pos_load(bad[i], "USD", &q), name);
		json_decref(bad[i]);
	}
}

static void test_snapshots(void)
{
	const char *snaps_ok[] = {"795:795:", "1:9:2,3,8"};
	const char *snaps_bad[] = {"", "1:2", "1:2:3:4", "a:1:", "01:2:", "1::", ":1:", "1:2:,3", "1:2:3,", "1:2:3,,4", "1;2:"};
	for (size_t i = 0; i < OL_ARRAY_LEN(snaps_ok); i++)
		CHECK(lg_audit_snap_ok(snaps_ok[i]), snaps_ok[i]);
	for (size_t i = 0; i < OL_ARRAY_LEN(snaps_bad); i++) {
		char name[64];
		snprintf(name, sizeof(name), "snapshot '%s' refused", snaps_bad[i]);
		CHECK(!lg_audit_snap_ok(snaps_bad[i]), name);
	}
}

static void test_numbers(void)
{
	json_t *j = lg_numeric_json("-12345678901234567890123456789012345678");
	CHECK(json_is_string(j) && strcmp(json_string_value(j), "-12345678901234567890123456789012345678") == 0,
	      "a numeric beyond int64 stays exact (digits)");
	json_decref(j);
	j = lg_numeric_json("-9223372036854775808");
	CHECK(json_is_integer(j) && json_integer_value(j) == INT64_MIN, "int64's range is a JSON integer");
	json_decref(j);
	j = lg_numeric_json("9223372036854775808");
	CHECK(json_is_string(j), "one past int64 is digits");
	json_decref(j);
	__int128 v;
	CHECK(!lg_i128_parse("1.5", &v) && !lg_i128_parse("", &v) && !lg_i128_parse(NULL, &v), "not integers");
}

/* The id grammar the cursor's k shares with the API's validation
 * (util_id_ok). */
static void test_ids(void)
{
	char id[66];
	memset(id, 'a', 65);
	id[65] = '\0';
	CHECK(util_id_ok(id, 64), "64 id characters");
	CHECK(!util_id_ok(id, 65), "65: too long");
	CHECK(!util_id_ok("", 0) && !util_id_ok(NULL, 0), "empty: not an id");
	CHECK(util_id_ok("acct_A-1.x:y", 12), "letters, digits and _ - . :");
	CHECK(!util_id_ok("@world", 6) && !util_id_ok("a b", 3) && !util_id_ok("a/b", 3) && !util_id_ok("caf\xc3\xa9", 5),
	      "@, space, slash, non-ASCII: not id characters");
}

int main(void)
{
	test_ids();
	test_round_trip();
	test_refused();
	test_snapshots();
	test_numbers();
	return it_test_done();
}
