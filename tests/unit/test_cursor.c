/* test_cursor.c — the list cursor codec (api/cursor.h): a round trip, and
 * everything the server did not issue for the list refused: another list's
 * or key's cursor, every truncation, every changed character, unsigned JSON
 * (issue #18's `eyJhIjogMX0`), padding, the standard alphabet, oversize. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "api/cursor.h"
#include "tap.h"

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static bool refused(const cursor_key *k, const char *binding, const char *text, size_t len)
{
	json_t *j = cursor_decode(k, binding, strlen(binding), text, len);
	json_decref(j);
	return j == NULL;
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	cursor_key k, other;
	randombytes_buf(k.k, sizeof(k.k));
	randombytes_buf(other.k, sizeof(other.k));
	const char *bind = "tenant-a|GET /v1/accounts|owner=x";
	json_t *pos = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}}", "PK", "S", "ACCOUNT#acc_1", "SK", "S", "METADATA", "owner", "S", "x");

	char *c = cursor_encode(&k, bind, strlen(bind), pos);
	CHECK(c != NULL && strspn(c, B64URL) == strlen(c), "a cursor is base64url without padding");
	json_t *back = c != NULL ? cursor_decode(&k, bind, strlen(bind), c, strlen(c)) : NULL;
	CHECK(back != NULL && json_equal(back, pos), "round trip");
	json_decref(back);
	char *c2 = cursor_encode(&k, bind, strlen(bind), pos);
	CHECK(c2 != NULL && strcmp(c, c2) == 0, "deterministic");
	free(c2);

	CHECK(refused(&other, bind, c, strlen(c)), "another key's cursor is refused (another deployment)");
	CHECK(refused(&k, "tenant-b|GET /v1/accounts|owner=x", c, strlen(c)), "another tenant's binding is refused");
	CHECK(refused(&k, "tenant-a|GET /v1/accounts|owner=y", c, strlen(c)), "another filter's binding is refused");
	CHECK(refused(&k, "tenant-a|GET /v1/orders|", c, strlen(c)), "another list's binding is refused");

	size_t n = strlen(c);
	bool all = true;
	for (size_t len = 0; len < n; len++)
		all = all && refused(&k, bind, c, len);
	CHECK(all, "every truncation is refused");
	all = true;
	for (size_t i = 0; i < n; i++) {
		char saved = c[i];
		for (const char *a = B64URL; *a != '\0'; a++) {
			if (*a == saved)
				continue;
			c[i] = *a;
			all = all && refused(&k, bind, c, n);
		}
		c[i] = saved;
	}
	CHECK(all, "every changed character is refused (bit flips)");
	CHECK(!refused(&k, bind, c, n), "and the original still decodes");

	char *padded = malloc(n + 3);
	memcpy(padded, c, n);
	memcpy(padded + n, "==", 3);
	CHECK(refused(&k, bind, padded, n + 1) && refused(&k, bind, padded, n + 2), "padding is refused");
	free(padded);
	char *std = strdup(c);
	for (char *p = std; *p; p++)
		*p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
	CHECK(strcmp(std, c) == 0 || refused(&k, bind, std, n), "the standard alphabet is refused");
	free(std);
	char *nul = strdup(c);
	nul[n / 2] = '\0';
	CHECK(refused(&k, bind, nul, n), "an embedded NUL is refused");
	free(nul);

	CHECK(refused(&k, bind, "eyJhIjogMX0", 11), "unsigned JSON ({\"a\": 1}) is refused");
	CHECK(refused(&k, bind, "", 0), "empty is refused");
	CHECK(refused(&k, bind, "AQ", 2), "the version byte alone is refused");
	char big[CURSOR_MAX_TEXT + 2];
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(refused(&k, bind, big, strlen(big)), "oversize is refused");

	/* A tag that verifies over a non-object, or over bad JSON, is still
	 * refused (only a bug could issue one; the decoder does not trust it). */
	json_t *arr = json_array();
	CHECK(cursor_encode(&k, bind, strlen(bind), arr) == NULL, "only objects are encoded");
	json_decref(arr);
	json_t *huge = json_object();
	char v[CURSOR_MAX_TEXT];
	memset(v, 'x', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	json_object_set_new(huge, "k", json_string(v));
	CHECK(cursor_encode(&k, bind, strlen(bind), huge) == NULL, "a position too long to decode is not encoded");
	json_decref(huge);

	free(c);
	json_decref(pos);
	return it_test_done();
}
