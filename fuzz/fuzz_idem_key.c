/* libFuzzer target: the Idempotency-Key header parser and the request
 * fingerprint. The input up to the first NUL-free line is one header value
 * (a second line, if any, is a second occurrence); the rest is a request
 * body, fingerprinted when it is JSON. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "idem/idem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	if (!init) {
		if (sodium_init() < 0)
			abort();
		init = 1;
	}
	char *buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *values[2] = {buf, NULL};
	size_t n = 1;
	char *nl = strchr(buf, '\n');
	char *body = NULL;
	if (nl != NULL) {
		*nl = '\0';
		char *nl2 = strchr(nl + 1, '\n');
		if (nl2 != NULL) {
			*nl2 = '\0';
			values[1] = nl + 1;
			n = 2;
			body = nl2 + 1;
		}
	}
	char key[IDEM_KEY_MAX + 1];
	idem_key_status st = idem_parse_key((const char *const *)values, n, key);
	if (st == IDEM_KEY_OK) {
		size_t len = strlen(key);
		assert(len >= 1 && len <= IDEM_KEY_MAX);
		for (size_t i = 0; i < len; i++)
			assert(key[i] >= 0x21 && key[i] <= 0x7e);
		assert(n == 1);
	}
	if (body != NULL) {
		json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
		if (j != NULL) {
			char hex[65];
			idem_fingerprint("POST", "/v1/x", j, hex);
			assert(strlen(hex) == 64);
			/* canonical text is a fixed point */
			char *c = idem_canonical_json(j);
			json_t *j2 = c ? json_loads(c, JSON_DECODE_ANY, NULL) : NULL;
			char *c2 = j2 ? idem_canonical_json(j2) : NULL;
			assert(c == NULL || (c2 != NULL && strcmp(c, c2) == 0));
			free(c);
			free(c2);
			json_decref(j2);
			json_decref(j);
		}
	}
	free(buf);
	return 0;
}
