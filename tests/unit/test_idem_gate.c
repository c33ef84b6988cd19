/* test_idem_gate.c — how the Idempotency-Key gate (src/idem/gate.c) ranks
 * a claim's outcome and the save's, without PostgreSQL: the item layer's
 * claim calls (it_claim_arm, it_claim_set, it_claim_peek, it_claim_clear)
 * and the transaction (db_tx_new, db_tx_free, db_tx_committed) are fakes
 * that answer what each test scripts, as the real ones would (their own
 * behaviour on PostgreSQL: tests/db/test_items_store.c's test_claim_set and
 * the integration tests of the gate). The fakes' symbols take the place of
 * src/items/claim.c and src/db/tx.c at link time. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "idem/idem.h"
#include "items/value.h"
#include "tap.h"

/* ---- the fakes ---- */

static struct {
	it_claim_outcome outcome;
	const char *item; /* the stored item, DynamoDB JSON text */
	long long expires;
	bool waited;
	it_set_status set_st;
	bool committed;
	/* what the gate asked */
	int arms, sets, clears;
	char claimed_fp[80], claimed_status[20], set_status[20], set_body[200];
	int set_code;
	int set_flags;
} fk;

static int dummy_tx;

db_tx *db_tx_new(db_pool *p)
{
	(void)p;
	return (db_tx *)&dummy_tx;
}

void db_tx_free(db_tx *tx)
{
	(void)tx;
}

bool db_tx_committed(const db_tx *tx)
{
	(void)tx;
	return fk.committed;
}

static const char *attr_s(const it_value *m, const char *name, char *buf, size_t n)
{
	const it_value *v = it_map_get(m, name, strlen(name));
	snprintf(buf, n, "%.*s", v != NULL && v->type == IT_S ? (int)v->u.s.len : 0, v != NULL && v->type == IT_S ? v->u.s.ptr : "");
	return buf;
}

void it_claim_arm(it_store *s, db_tx *tx, const char *tenant, const char *table, const it_value *item, int ttl_s, int wait_ms,
		  it_claim *out, void (*armed)(bool ok, void *arg), void *arg)
{
	(void)s, (void)tx, (void)tenant, (void)table, (void)ttl_s, (void)wait_ms;
	fk.arms++;
	attr_s(item, "fingerprint", fk.claimed_fp, sizeof(fk.claimed_fp));
	attr_s(item, "status", fk.claimed_status, sizeof(fk.claimed_status));
	memset(out, 0, sizeof(*out));
	/* As if the prefix had run with the handler's first batch. */
	out->outcome = fk.outcome;
	out->item = fk.item != NULL ? it_item_from_text(fk.item) : NULL;
	out->expires = fk.expires;
	out->waited = fk.waited;
	armed(true, arg);
}

void it_claim_clear(it_claim *c)
{
	fk.clears++;
	it_value_free(c->item);
	memset(c, 0, sizeof(*c));
}

void it_claim_set(db_tx *tx, it_claim *c, const it_value *attrs, int flags, void (*cb)(it_set_status st, void *arg), void *arg)
{
	(void)tx, (void)c;
	fk.sets++;
	fk.set_flags = flags;
	attr_s(attrs, "status", fk.set_status, sizeof(fk.set_status));
	const it_value *r = it_map_get(attrs, "response", 8);
	const it_value *code = r != NULL ? it_map_get(r, "status", 6) : NULL;
	fk.set_code = code != NULL && code->type == IT_N ? atoi(code->u.s.ptr) : -1;
	if (r != NULL)
		attr_s(r, "body", fk.set_body, sizeof(fk.set_body));
	cb(fk.set_st, arg);
}

void it_claim_peek(it_store *s, const char *tenant, const char *table, const it_value *key, it_claim *out,
		   void (*done)(void *arg), void *arg)
{
	(void)s, (void)tenant, (void)table, (void)key;
	memset(out, 0, sizeof(*out));
	done(arg);
}

/* ---- running the gate ---- */

static struct {
	bool done;
	idem_result res;
	int status;
	char body[200];
	char ctype[80];
} got;

static void finished(const idem_result *res, void *arg)
{
	(void)arg;
	got.done = true;
	got.res = *res;
	if (res->replay != NULL) {
		got.status = res->replay->status;
		snprintf(got.body, sizeof(got.body), "%.*s", (int)res->replay->len, res->replay->body);
		snprintf(got.ctype, sizeof(got.ctype), "%s",
			 json_string_value(json_object_get(res->replay->headers, "Content-Type")) ?: "");
	}
}

static void armed_cb(bool ok, void *arg)
{
	*(int *)arg = ok ? 1 : -1;
}

static void reset(it_claim_outcome o, const char *item, long long expires)
{
	memset(&fk, 0, sizeof(fk));
	memset(&got, 0, sizeof(got));
	fk.outcome = o;
	fk.item = item;
	fk.expires = expires;
	fk.set_st = IT_SET_OK;
	fk.committed = true;
}

/* One request through the gate: arm, the handler answers status, finish. */
static idem_verdict run(idem_hints *hints, const char *key, const char *fp, int status)
{
	idem_gate *g = idem_gate_new(NULL, NULL, hints, "t", key, fp, 3600, 100);
	int armed = 0;
	idem_gate_arm(g, armed_cb, &armed);
	CHECK(armed == 1, "armed");
	idem_saved resp = {.status = status, .headers = json_pack("{s:s}", "Content-Type", "application/json"),
			   .body = strdup("{\"id\":\"acct_1\"}"), .len = 15};
	idem_gate_finish(g, &resp, finished, NULL);
	CHECK(resp.body == NULL && resp.headers == NULL, "the response is taken");
	idem_gate_free(g);
	return got.done ? got.res.verdict : (idem_verdict)-1;
}

#define COMPLETED(fp, code)                                                                                                   \
	"{\"PK\":{\"S\":\"IDEM#k\"},\"SK\":{\"S\":\"METADATA\"},\"fingerprint\":{\"S\":\"" fp "\"},\"status\":{\"S\":\"completed\"}," \
	"\"response\":{\"M\":{\"status\":{\"N\":\"" code "\"},\"headers\":{\"M\":{\"Content-Type\":{\"S\":\"application/json\"}}},"   \
	"\"body\":{\"S\":\"{\\\"first\\\":true}\"}}}}"
#define IN_PROGRESS(fp) "{\"PK\":{\"S\":\"IDEM#k\"},\"fingerprint\":{\"S\":\"" fp "\"},\"status\":{\"S\":\"in_progress\"}}"

static void test_claimed(void)
{
	idem_hints *hints = idem_hints_new();
	reset(IT_CLAIM_CLAIMED, IN_PROGRESS("fp1"), 4000000000LL);
	CHECK(run(hints, "k1", "fp1", 201) == IDEM_SEND, "claimed, saved and committed: SEND");
	CHECK(got.res.claimed && got.res.expires == 4000000000LL && got.res.replay == NULL, "SEND with the record's expiry");
	CHECK(strcmp(fk.claimed_fp, "fp1") == 0 && strcmp(fk.claimed_status, "in_progress") == 0,
	      "the claim writes the fingerprint, in progress");
	CHECK(fk.sets == 1 && fk.set_flags == DB_TX_COMMIT && strcmp(fk.set_status, "completed") == 0 && fk.set_code == 201 &&
		      strcmp(fk.set_body, "{\"id\":\"acct_1\"}") == 0,
	      "the save: completed, the response's status and body, with COMMIT");
	CHECK(idem_hints_has(hints, "t", "k1", 0), "a saved key becomes a hint");

	reset(IT_CLAIM_CLAIMED, IN_PROGRESS("fp1"), 4000000000LL);
	CHECK(run(hints, "k2", "fp1", 500) == IDEM_SEND && fk.sets == 0 && got.res.expires == 0,
	      "a 500 is sent, not saved: the key stays free");
	CHECK(!idem_hints_has(hints, "t", "k2", 0), "an unsaved key is no hint");
	reset(IT_CLAIM_CLAIMED, IN_PROGRESS("fp1"), 4000000000LL);
	CHECK(run(hints, "k3", "fp1", 429) == IDEM_SEND && fk.sets == 0, "a 429 is not saved");

	reset(IT_CLAIM_CLAIMED, IN_PROGRESS("fp1"), 1);
	fk.set_st = IT_SET_UNAVAILABLE;
	CHECK(run(hints, "k4", "fp1", 201) == IDEM_UNAVAILABLE, "save unavailable: UNAVAILABLE (503)");
	reset(IT_CLAIM_CLAIMED, IN_PROGRESS("fp1"), 1);
	fk.set_st = IT_SET_TOO_LARGE;
	CHECK(run(hints, "k4", "fp1", 201) == IDEM_FAILED, "save refused (too large): FAILED (500)");
	reset(IT_CLAIM_CLAIMED, IN_PROGRESS("fp1"), 1);
	fk.committed = false;
	CHECK(run(hints, "k4", "fp1", 201) == IDEM_UNAVAILABLE, "saved but the COMMIT did not happen: UNAVAILABLE");
	CHECK(!idem_hints_has(hints, "t", "k4", 0), "no hint for a key that was not saved");
	idem_hints_free(hints);
}

static void test_taken(void)
{
	reset(IT_CLAIM_TAKEN, COMPLETED("fp1", "201"), 4000000000LL);
	CHECK(run(NULL, "k", "fp1", 201) == IDEM_REPLAY, "a completed record, same fingerprint: REPLAY");
	CHECK(got.status == 201 && strcmp(got.body, "{\"first\":true}") == 0 && strcmp(got.ctype, "application/json") == 0,
	      "the replay is the first response: status, body, headers");
	CHECK(fk.sets == 0 && !got.res.claimed && got.res.expires == 4000000000LL, "nothing saved; the record's expiry");

	reset(IT_CLAIM_TAKEN, COMPLETED("fp1", "201"), 4000000000LL);
	CHECK(run(NULL, "k", "fp2", 201) == IDEM_MISMATCH, "a completed record, another fingerprint: MISMATCH");
	reset(IT_CLAIM_TAKEN, IN_PROGRESS("fp2"), 4000000000LL);
	CHECK(run(NULL, "k", "fp1", 201) == IDEM_MISMATCH, "in progress with another fingerprint: MISMATCH (checked first)");
	reset(IT_CLAIM_TAKEN, IN_PROGRESS("fp1"), 4000000000LL);
	CHECK(run(NULL, "k", "fp1", 201) == IDEM_IN_USE && fk.sets == 0, "in progress, same fingerprint: IN_USE");
	reset(IT_CLAIM_TAKEN, "{\"PK\":{\"S\":\"IDEM#k\"},\"status\":{\"S\":\"completed\"}}", 1);
	CHECK(run(NULL, "k", "fp1", 201) == IDEM_MISMATCH, "a record without fingerprint: MISMATCH");
	reset(IT_CLAIM_TAKEN,
	      "{\"fingerprint\":{\"S\":\"fp1\"},\"status\":{\"S\":\"completed\"},\"response\":{\"M\":{\"status\":{\"N\":\"201\"}}}}", 1);
	CHECK(run(NULL, "k", "fp1", 201) == IDEM_IN_USE, "completed but no saved body: IN_USE, never a broken replay");
	reset(IT_CLAIM_BUSY, NULL, 0);
	fk.waited = true;
	CHECK(run(NULL, "k", "fp1", 201) == IDEM_IN_USE && got.res.expires == 0 && got.res.waited,
	      "another claimer past the wait: IN_USE, waited");
	reset(IT_CLAIM_FAILED, NULL, 0);
	CHECK(run(NULL, "k", "fp1", 201) == IDEM_UNAVAILABLE && fk.sets == 0, "the claim failed: UNAVAILABLE");
}

static void test_saveable(void)
{
	static const int no[] = {400, 401, 403, 413, 415, 429, 500, 503, 199, 100};
	static const int yes[] = {200, 201, 204, 402, 404, 409, 422};
	bool ok = true;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ok = ok && !idem_saveable(no[i]);
	CHECK(ok, "400, 401, 403, 413, 415, 429, 5xx and 1xx are not saved");
	ok = true;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ok = ok && idem_saveable(yes[i]);
	CHECK(ok, "2xx and the business 4xx are saved");
}

int main(void)
{
	test_claimed();
	test_taken();
	test_saveable();
	return it_test_done();
}
