/* libFuzzer target: the Authorization header. The input is one header
 * value: the Bearer scheme is stripped (auth_bearer), the key parsed
 * (auth_key_parse); an accepted key must have the exact documented form
 * (olk_<16 hex>_<base64url secret>) and lie inside the input. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *value = malloc(size + 1);
	if (value == NULL)
		return 0;
	memcpy(value, data, size);
	value[size] = '\0'; /* a header value is a C string after the parser */
	const char *key;
	size_t len;
	char id[AUTH_KEY_ID_LEN + 1];
	if (auth_bearer(value, &key, &len)) {
		assert(key >= value && key + len <= value + strlen(value));
		if (auth_key_parse(key, len, id)) {
			assert(len == AUTH_KEY_LEN && memcmp(key, "olk_", 4) == 0);
			assert(strlen(id) == AUTH_KEY_ID_LEN && strspn(id, "0123456789abcdef") == AUTH_KEY_ID_LEN);
			assert(memcmp(key + 4, id, AUTH_KEY_ID_LEN) == 0 && key[4 + AUTH_KEY_ID_LEN] == '_');
			assert(strspn(key + 5 + AUTH_KEY_ID_LEN,
				      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") >= AUTH_KEY_LEN - 5 - AUTH_KEY_ID_LEN);
		}
	}
	free(value);
	return 0;
}
