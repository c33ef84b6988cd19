/* libFuzzer target: SigV4 parsing and verification on arbitrary bytes.
 * The first line of the input is the Authorization header value; an optional
 * second and third line replace the request path and query string, so the
 * canonical URI and query code is fuzzed too. X-Amz-Date, Host and the body
 * are fixed (the credential date must say 20261121 to reach the HMAC). */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "auth/sigv4.h"

#define NOW INT64_C(1795255200) /* 2026-11-21T10:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Copies the next '\n'-terminated line of data into a fresh NUL-terminated
 * buffer; an embedded NUL simply ends the C string early, as in a server. */
static char *line(const uint8_t **p, const uint8_t *end, char *buf, size_t cap)
{
	const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = (size_t)((nl != NULL ? nl : end) - *p);
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, *p, n);
	buf[n] = '\0';
	*p = nl != NULL ? nl + 1 : end;
	return buf;
}

static void check_field(const char *f, size_t size)
{
	assert(memchr(f, '\0', size) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char authz[8192], path[2048], query[2048];
	static const unsigned char body[] = "{\"TableName\":\"t\"}";
	const uint8_t *p = data, *end = data + size;
	if (sodium_init() < 0)
		return 0;

	line(&p, end, authz, sizeof(authz));
	bool have_path = p < end;
	line(&p, end, path, sizeof(path));
	bool have_query = p < end;
	line(&p, end, query, sizeof(query));

	const char *names[] = {"Host", "X-Amz-Date", "X-Amz-Target", "Content-Type", "Authorization"};
	const char *values[] = {"localhost:8000", "20261121T100000Z", "DynamoDB_20120810.PutItem",
				"application/x-amz-json-1.0", authz};
	sigv4_req r = {"POST", have_path ? path : "/", have_query ? query : NULL, 5, names, values, body,
		       sizeof(body) - 1};
	sigv4_auth a;
	const char *why = NULL;
	sigv4_status st = sigv4_parse(&r, &a, &why);
	if (st != SIGV4_OK) {
		assert(why != NULL && why[0] != '\0');
		assert(sigv4_error_type(st) != NULL);
		return 0;
	}
	check_field(a.access_key, sizeof(a.access_key));
	check_field(a.region, sizeof(a.region));
	check_field(a.service, sizeof(a.service));
	check_field(a.signed_headers, sizeof(a.signed_headers));
	assert(strlen(a.signature) == 64 && strlen(a.date) == 8 && strlen(a.amz_date) == 16);

	why = NULL;
	st = sigv4_verify(&r, &a, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NOW, &why);
	assert(st == SIGV4_OK || (why != NULL && why[0] != '\0'));
	/* A 64-hex guess matching by chance would be a finding in itself. */
	why = NULL;
	st = sigv4_verify(&r, &a, "wrong-secret", NOW, &why);
	assert(st != SIGV4_OK);
	return 0;
}
