/* test_idem.c — the Idempotency-Key header grammar, the canonical JSON and
 * the fingerprint (docs/api.md §2). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "idem/idem.h"
#include "tap.h"

static idem_key_status one(const char *v, char *out)
{
	const char *vals[1] = {v};
	return idem_parse_key(vals, 1, out);
}

static void test_header(void)
{
	char k[IDEM_KEY_MAX + 1];
	CHECK(idem_parse_key(NULL, 0, k) == IDEM_KEY_MISSING, "no header: missing");
	CHECK(one("abc", k) == IDEM_KEY_OK && strcmp(k, "abc") == 0, "bare token");
	CHECK(one("\"abc\"", k) == IDEM_KEY_OK && strcmp(k, "abc") == 0, "sf-string is the same key as the bare token");
	CHECK(one("  \"abc\"  ", k) == IDEM_KEY_OK && strcmp(k, "abc") == 0, "surrounding whitespace ignored");
	CHECK(one("\"a\\\"b\\\\c\"", k) == IDEM_KEY_OK && strcmp(k, "a\"b\\c") == 0, "sf-string escapes");
	CHECK(one("8e03978e-40d5-43e8-bc93-6894a57f9324", k) == IDEM_KEY_OK, "a UUID");
	CHECK(one("a=b/c+d:e", k) == IDEM_KEY_OK, "base64-ish bare value");
	CHECK(one("", k) == IDEM_KEY_INVALID, "empty");
	CHECK(one("\"\"", k) == IDEM_KEY_INVALID, "empty sf-string");
	CHECK(one("a b", k) == IDEM_KEY_INVALID, "space inside a bare value");
	CHECK(one("\"a b\"", k) == IDEM_KEY_INVALID, "space inside a string (not visible ASCII)");
	CHECK(one("\"abc", k) == IDEM_KEY_INVALID, "unterminated string");
	CHECK(one("\"abc\"x", k) == IDEM_KEY_INVALID, "junk after the string");
	CHECK(one("\"a\\nb\"", k) == IDEM_KEY_INVALID, "unknown escape");
	CHECK(one("a,b", k) == IDEM_KEY_INVALID, "a list");
	CHECK(one("\"a\",\"b\"", k) == IDEM_KEY_INVALID, "a list of strings");
	CHECK(one("ab\x01", k) == IDEM_KEY_INVALID, "control character");
	CHECK(one("caf\xc3\xa9", k) == IDEM_KEY_INVALID, "non-ASCII");
	char big[300];
	memset(big, 'k', 255);
	big[255] = '\0';
	CHECK(one(big, k) == IDEM_KEY_OK && strlen(k) == 255, "255 characters");
	big[255] = 'k';
	big[256] = '\0';
	CHECK(one(big, k) == IDEM_KEY_INVALID, "256 characters");
	char q[300];
	q[0] = '"';
	memset(q + 1, 'q', 256);
	q[257] = '"';
	q[258] = '\0';
	CHECK(one(q, k) == IDEM_KEY_INVALID, "256 characters quoted");
	const char *two[2] = {"a", "a"};
	CHECK(idem_parse_key(two, 2, k) == IDEM_KEY_INVALID, "two fields: invalid");
}

static char *canon_of(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	char *c = j ? idem_canonical_json(j) : NULL;
	json_decref(j);
	return c;
}

static void fp_of(const char *method, const char *path, const char *body, char hex[65])
{
	json_t *j = json_loads(body, 0, NULL);
	idem_fingerprint(method, path, j, hex);
	json_decref(j);
}

static void test_canonical(void)
{
	char *c = canon_of("{ \"b\" : 1,\n \"a\" : {\"y\": [1, 2, {\"d\":1, \"c\":2}], \"x\": \"\\u00e9\"} }");
	CHECK_STR(c, "{\"a\":{\"x\":\"\xc3\xa9\",\"y\":[1,2,{\"c\":2,\"d\":1}]},\"b\":1}", "keys sorted at every level, no whitespace");
	free(c);
	char a[65], b[65];
	fp_of("POST", "/v1/accounts", "{\"currency\":\"EUR\",\"owner\":\"x\"}", a);
	fp_of("POST", "/v1/accounts", "{ \"owner\" : \"x\" ,\n\t\"currency\" : \"EUR\" }", b);
	CHECK_STR(a, b, "key order and whitespace do not change the fingerprint");
	fp_of("POST", "/v1/accounts", "{\"currency\":\"USD\",\"owner\":\"x\"}", b);
	CHECK(strcmp(a, b) != 0, "another body changes it");
	fp_of("POST", "/v1/accounts/x/freeze", "{\"currency\":\"EUR\",\"owner\":\"x\"}", b);
	CHECK(strcmp(a, b) != 0, "another path changes it");
	fp_of("PUT", "/v1/accounts", "{\"currency\":\"EUR\",\"owner\":\"x\"}", b);
	CHECK(strcmp(a, b) != 0, "another method changes it");
	/* Length prefixes: moving bytes between parts changes the hash. */
	fp_of("POST", "/v1/a", "{}", a);
	fp_of("POST/", "v1/a", "{}", b);
	CHECK(strcmp(a, b) != 0, "parts are delimited");
	CHECK(strlen(a) == 64, "BLAKE2b-256 in hex");
}

static void test_saveable(void)
{
	int no[] = {400, 401, 403, 413, 415, 429, 500, 501, 503, 504};
	int yes[] = {200, 201, 204, 402, 404, 409, 422};
	bool ok = true;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ok = ok && !idem_saveable(no[i]);
	CHECK(ok, "400, 401, 403, 413, 415, 429 and 5xx leave the key free");
	ok = true;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ok = ok && idem_saveable(yes[i]);
	CHECK(ok, "successes and business failures are saved");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_header();
	test_canonical();
	test_saveable();
	return it_test_done();
}
