/* test_idem_service.c — the decisions of idempotency as a service
 * (src/idem/service.c, docs/api.md §9) without PostgreSQL: the item layer's
 * lease calls (items.h) are replaced by a fake that records what it was
 * asked and answers what a test scripts, as the real calls would (their own
 * behaviour on PostgreSQL is tests/db/test_items_store.c's test_lease).
 * The fake's symbols take the place of src/items/lease.c at link time. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "idem/idem.h"
#include "tap.h"
#include "util/util.h"

/* ---- the fake of the lease calls ---- */

static struct {
	char call;  /* 'c'laim, 'C'omplete, 'r'elease, 'g'et */
	char pk[300], key[300], fp[200], token[100], response[200];
	bool fp_null;
	long long now_ms, lease_ms, expires_s;
	char created_at[40], expires_at[40];
	int calls;
} seen;

static it_lease_status next_st;
static const it_lease *next_rec; /* NULL: none */
static bool echo_claim;           /* claim answers OK with the record it was given */

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src != NULL ? src : "");
}

void it_lease_claim(it_store *s, const char *tenant, const it_lease_new *n, it_lease_cb cb, void *arg)
{
	(void)s;
	(void)tenant;
	seen.call = 'c';
	seen.calls++;
	copy(seen.pk, sizeof(seen.pk), n->pk);
	copy(seen.key, sizeof(seen.key), n->key);
	copy(seen.fp, sizeof(seen.fp), n->fingerprint);
	seen.fp_null = n->fingerprint == NULL;
	copy(seen.token, sizeof(seen.token), n->token);
	copy(seen.created_at, sizeof(seen.created_at), n->created_at);
	copy(seen.expires_at, sizeof(seen.expires_at), n->expires_at);
	seen.now_ms = n->now_ms;
	seen.lease_ms = n->lease_ms;
	seen.expires_s = n->expires_s;
	if (echo_claim) {
		it_lease rec = {.state = IT_LEASE_IN_PROGRESS, .key = n->key, .fingerprint = n->fingerprint, .token = n->token,
				.lease_ms = n->lease_ms, .created_at = n->created_at, .expires_at = n->expires_at};
		cb(IT_LEASE_OK, &rec, arg);
		return;
	}
	cb(next_st, next_rec, arg);
}

static void held(char call, const char *pk, const char *token, long long now_ms, it_lease_cb cb, void *arg)
{
	seen.call = call;
	seen.calls++;
	copy(seen.pk, sizeof(seen.pk), pk);
	copy(seen.token, sizeof(seen.token), token);
	seen.now_ms = now_ms;
	cb(next_st, next_rec, arg);
}

void it_lease_complete(it_store *s, const char *tenant, const char *pk, const char *token, const char *response,
		       long long now_ms, it_lease_cb cb, void *arg)
{
	(void)s;
	(void)tenant;
	copy(seen.response, sizeof(seen.response), response);
	held('C', pk, token, now_ms, cb, arg);
}

void it_lease_release(it_store *s, const char *tenant, const char *pk, const char *token, long long now_ms,
		      it_lease_cb cb, void *arg)
{
	(void)s;
	(void)tenant;
	held('r', pk, token, now_ms, cb, arg);
}

void it_lease_get(it_store *s, const char *tenant, const char *pk, long long now_ms, it_lease_cb cb, void *arg)
{
	(void)s;
	(void)tenant;
	held('g', pk, NULL, now_ms, cb, arg);
}

/* ---- the service's answer ---- */

static struct {
	bool done;
	idems_status st;
	json_t *obj;
	int retry;
} got;

static void answer(idems_status st, json_t *obj, int retry_after_s, void *arg)
{
	(void)arg;
	got.done = true;
	got.st = st;
	got.obj = json_incref(obj);
	got.retry = retry_after_s;
}

static void reset(it_lease_status st, const it_lease *rec)
{
	json_decref(got.obj);
	memset(&got, 0, sizeof(got));
	memset(&seen, 0, sizeof(seen));
	next_st = st;
	next_rec = rec;
	echo_claim = false;
}

static const char *str(const char *name)
{
	return json_string_value(json_object_get(got.obj, name));
}

static long long now_ms(void)
{
	return util_now_us() / 1000;
}

/* ---- claim ---- */

static void test_claim_new(void)
{
	reset(IT_LEASE_FAILED, NULL);
	echo_claim = true;
	long long before = now_ms();
	idems_claim(NULL, "t", "order-1", "sha256:ab", 60, 3600, answer, NULL);
	long long after = now_ms();
	CHECK(got.done && got.st == IDEMS_CLAIMED, "a claim the layer writes: CLAIMED");
	CHECK_STR(seen.pk, "IDEMSVC#order-1", "the record's partition key");
	CHECK(strcmp(seen.key, "order-1") == 0 && strcmp(seen.fp, "sha256:ab") == 0, "key and fingerprint passed on");
	CHECK(seen.now_ms >= before && seen.now_ms <= after && seen.lease_ms == seen.now_ms + 60000 &&
		      seen.expires_s == seen.now_ms / 1000 + 3600,
	      "lease end and expiry from lease_seconds and ttl_seconds");
	CHECK(strlen(seen.token) == 48 && strspn(seen.token, "0123456789abcdef") == 48, "a fresh 24-byte token in hex");
	CHECK(str("lease_token") != NULL && strcmp(str("lease_token"), seen.token) == 0, "the answer carries the token");
	CHECK(json_object_get(got.obj, "created_at") == NULL, "the claim's answer has no created_at");
	CHECK_STR(str("status"), "in_progress", "in_progress");
	CHECK_STR(str("fingerprint"), "sha256:ab", "the fingerprint shown");
	CHECK_STR(str("expires_at"), seen.expires_at, "expires_at as stored");
	char want[40];
	util_format_time(want, sizeof(want), (int64_t)seen.lease_ms * 1000);
	CHECK_STR(str("lease_expires_at"), want, "lease_expires_at: the lease's end");
	char token1[100];
	snprintf(token1, sizeof(token1), "%s", seen.token);
	reset(IT_LEASE_FAILED, NULL);
	echo_claim = true;
	idems_claim(NULL, "t", "order-1", NULL, 1, 1, answer, NULL);
	CHECK(got.st == IDEMS_CLAIMED && strcmp(token1, seen.token) != 0, "each claim has its own token");
	CHECK(seen.fp_null && json_object_get(got.obj, "fingerprint") == NULL, "without a fingerprint: none passed, none shown");
}

static void test_claim_refused(void)
{
	long long now = now_ms();
	it_lease live = {.state = IT_LEASE_IN_PROGRESS, .key = "k", .fingerprint = "fp-a", .token = "secret",
			 .lease_ms = now + 2500, .created_at = "c", .expires_at = "e"};
	reset(IT_LEASE_REFUSED, &live);
	idems_claim(NULL, "t", "k", "fp-a", 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_IN_USE && got.obj == NULL, "a live lease, same fingerprint: IN_USE, no record shown");
	CHECK(got.retry == 3 || got.retry == 2, "Retry-After: the seconds the lease has left, rounded up");

	reset(IT_LEASE_REFUSED, &live);
	idems_claim(NULL, "t", "k", "fp-b", 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_MISMATCH, "a live lease, another fingerprint: MISMATCH");

	reset(IT_LEASE_REFUSED, &live);
	idems_claim(NULL, "t", "k", NULL, 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_IN_USE, "a live lease, a claim without fingerprint: IN_USE (nothing to compare)");

	/* An expired lease refused the claim: the layer took it over only for
	 * the same fingerprint, so the refusal says why. */
	it_lease ended = live;
	ended.lease_ms = now - 10000;
	reset(IT_LEASE_REFUSED, &ended);
	idems_claim(NULL, "t", "k", "fp-b", 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_MISMATCH, "an ended lease, another fingerprint: MISMATCH");
	reset(IT_LEASE_REFUSED, &ended);
	idems_claim(NULL, "t", "k", "fp-a", 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_IN_USE && got.retry == 1, "an ended lease retaken meanwhile by another caller: IN_USE, retry in 1 s");

	reset(IT_LEASE_REFUSED, NULL);
	idems_claim(NULL, "t", "k", "fp-a", 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_IN_USE && got.retry == 1, "refused by a record gone meanwhile: IN_USE, retry in 1 s");

	it_lease done = {.state = IT_LEASE_COMPLETED, .key = "k", .fingerprint = "fp-a", .response = "{\"status\":201,\"body\":{\"x\":1}}",
			 .created_at = "2026-01-01T00:00:00Z", .expires_at = "2026-01-02T00:00:00Z"};
	reset(IT_LEASE_REFUSED, &done);
	idems_claim(NULL, "t", "k", "fp-a", 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_COMPLETED, "a completed record: COMPLETED (replay)");
	CHECK(json_integer_value(json_object_get(json_object_get(got.obj, "response"), "status")) == 201 &&
		      json_integer_value(json_object_get(json_object_get(json_object_get(got.obj, "response"), "body"), "x")) == 1,
	      "the replay carries the stored response as JSON");
	CHECK_STR(str("status"), "completed", "status completed");
	CHECK_STR(str("created_at"), "2026-01-01T00:00:00Z", "created_at shown");
	CHECK(json_object_get(got.obj, "lease_token") == NULL && json_object_get(got.obj, "lease_expires_at") == NULL,
	      "no lease shown for a completed record");
	reset(IT_LEASE_REFUSED, &done);
	idems_claim(NULL, "t", "k", "fp-z", 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_MISMATCH && got.obj == NULL, "a completed record, another fingerprint: MISMATCH, nothing shown");
	reset(IT_LEASE_REFUSED, &done);
	idems_claim(NULL, "t", "k", NULL, 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_COMPLETED, "a completed record, a claim without fingerprint: COMPLETED");

	reset(IT_LEASE_UNAVAILABLE, NULL);
	idems_claim(NULL, "t", "k", NULL, 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_UNAVAILABLE, "the database unavailable: UNAVAILABLE (503)");
	reset(IT_LEASE_FAILED, NULL);
	idems_claim(NULL, "t", "k", NULL, 30, 60, answer, NULL);
	CHECK(got.st == IDEMS_FAILED, "a failure: FAILED (500)");
}

static void test_claim_refused_pure(void)
{
	int retry = -1;
	it_lease l = {.state = IT_LEASE_IN_PROGRESS, .key = "k", .token = "t", .lease_ms = 10000};
	CHECK(idems_claim_refused(&l, "a", 7001, &retry) == IDEMS_IN_USE && retry == 3, "3 s left of 2.999 s, rounded up");
	CHECK(idems_claim_refused(&l, "a", 9000, &retry) == IDEMS_IN_USE && retry == 1, "1 s left");
	CHECK(idems_claim_refused(&l, "a", 10000, &retry) == IDEMS_IN_USE && retry == 1, "lease ending now: 1");
	CHECK(idems_claim_refused(&l, "a", 0, &retry) == IDEMS_IN_USE && retry == 10, "10 s left");
	l.fingerprint = "a";
	CHECK(idems_claim_refused(&l, "a", 0, &retry) == IDEMS_IN_USE, "same fingerprint");
	CHECK(idems_claim_refused(&l, "b", 0, &retry) == IDEMS_MISMATCH && retry == 0, "another fingerprint: no Retry-After");
	CHECK(idems_held_refused(&l) == IDEMS_LEASE_LOST && idems_held_refused(NULL) == IDEMS_NOT_FOUND,
	      "complete/release refused: LEASE_LOST with a record, NOT_FOUND without");
}

/* ---- complete, release, get ---- */

static void test_held(void)
{
	it_lease other = {.state = IT_LEASE_IN_PROGRESS, .key = "k", .token = "theirs", .lease_ms = 1, .created_at = "c",
			  .expires_at = "e"};
	json_t *resp = json_pack("{s:i, s:{s:s}, s:{s:i}}", "status", 201, "headers", "X-A", "1", "body", "n", 2);
	reset(IT_LEASE_REFUSED, &other);
	idems_complete(NULL, "t", "k", "mine", resp, answer, NULL);
	CHECK(got.st == IDEMS_LEASE_LOST && got.obj == NULL, "complete with a token that does not hold it: LEASE_LOST");
	CHECK(seen.call == 'C' && strcmp(seen.token, "mine") == 0 && strcmp(seen.pk, "IDEMSVC#k") == 0, "token and key passed on");
	CHECK_STR(seen.response, "{\"status\":201,\"headers\":{\"X-A\":\"1\"},\"body\":{\"n\":2}}", "the response stored as compact JSON");
	reset(IT_LEASE_REFUSED, NULL);
	idems_complete(NULL, "t", "k", "mine", resp, answer, NULL);
	CHECK(got.st == IDEMS_NOT_FOUND, "complete of no record: NOT_FOUND");
	it_lease done = {.state = IT_LEASE_COMPLETED, .key = "k", .response = "{\"status\":201}", .created_at = "c",
			 .expires_at = "e"};
	reset(IT_LEASE_OK, &done);
	idems_complete(NULL, "t", "k", "mine", resp, answer, NULL);
	CHECK(got.st == IDEMS_OK && got.obj != NULL && strcmp(str("status"), "completed") == 0 &&
		      json_object_get(got.obj, "response") != NULL,
	      "complete by the holder: OK with the completed record");
	json_decref(resp);

	reset(IT_LEASE_REFUSED, &other);
	idems_release(NULL, "t", "k", "mine", answer, NULL);
	CHECK(got.st == IDEMS_LEASE_LOST && seen.call == 'r', "release with a token that does not hold it: LEASE_LOST");
	reset(IT_LEASE_REFUSED, NULL);
	idems_release(NULL, "t", "k", "mine", answer, NULL);
	CHECK(got.st == IDEMS_NOT_FOUND, "release of no record: NOT_FOUND");
	reset(IT_LEASE_OK, &other);
	idems_release(NULL, "t", "k", "theirs", answer, NULL);
	CHECK(got.st == IDEMS_OK && got.obj == NULL, "release by the holder: OK, no body (204)");
	reset(IT_LEASE_UNAVAILABLE, NULL);
	idems_release(NULL, "t", "k", "theirs", answer, NULL);
	CHECK(got.st == IDEMS_UNAVAILABLE, "release, the database unavailable: UNAVAILABLE");

	reset(IT_LEASE_OK, &other);
	idems_get(NULL, "t", "k", answer, NULL);
	CHECK(got.st == IDEMS_OK && seen.call == 'g' && json_object_get(got.obj, "lease_token") == NULL &&
		      json_object_get(got.obj, "lease_expires_at") != NULL && strcmp(str("created_at"), "c") == 0,
	      "get of a record in progress: its lease's end, never its token");
	reset(IT_LEASE_OK, NULL);
	idems_get(NULL, "t", "k", answer, NULL);
	CHECK(got.st == IDEMS_NOT_FOUND && got.obj == NULL, "get of no record: NOT_FOUND");
	reset(IT_LEASE_FAILED, NULL);
	idems_get(NULL, "t", "k", answer, NULL);
	CHECK(got.st == IDEMS_FAILED, "get, a failure: FAILED");
}

int main(void)
{
	test_claim_new();
	test_claim_refused();
	test_claim_refused_pure();
	test_held();
	reset(IT_LEASE_OK, NULL);
	return it_test_done();
}
