/* cursor.c — list cursors: a position, bound to its list, under a keyed
 * BLAKE2b tag (cursor.h). */
#include "api/cursor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* tag = BLAKE2b-128 keyed: version || len(binding) (4 bytes, little-endian)
 * || binding || position text. The length keeps binding and position apart. */
static void tag_of(const cursor_key *key, unsigned char version, const void *binding, size_t blen, const unsigned char *text,
		   size_t tlen, unsigned char tag[CURSOR_TAG_BYTES])
{
	crypto_generichash_state st;
	unsigned char lenb[4] = {(unsigned char)blen, (unsigned char)(blen >> 8), (unsigned char)(blen >> 16),
				 (unsigned char)(blen >> 24)};
	crypto_generichash_init(&st, key->k, sizeof(key->k), CURSOR_TAG_BYTES);
	crypto_generichash_update(&st, &version, 1);
	crypto_generichash_update(&st, lenb, sizeof(lenb));
	crypto_generichash_update(&st, binding, blen);
	crypto_generichash_update(&st, text, tlen);
	crypto_generichash_final(&st, tag, CURSOR_TAG_BYTES);
}

char *cursor_encode(const cursor_key *key, const void *binding, size_t blen, const json_t *pos)
{
	if (!json_is_object(pos) || blen > UINT32_MAX)
		return NULL;
	char *text = json_dumps(pos, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL)
		return NULL;
	size_t tlen = strlen(text);
	size_t binlen = 1 + tlen + CURSOR_TAG_BYTES;
	size_t cap = sodium_base64_encoded_len(binlen, VARIANT);
	unsigned char *bin = malloc(binlen);
	char *out = NULL;
	if (bin == NULL || cap > CURSOR_MAX_TEXT + 1 || (out = malloc(cap)) == NULL)
		goto fail;
	bin[0] = CURSOR_VERSION;
	memcpy(bin + 1, text, tlen);
	tag_of(key, CURSOR_VERSION, binding, blen, bin + 1, tlen, bin + 1 + tlen);
	sodium_bin2base64(out, cap, bin, binlen, VARIANT);
fail:
	free(bin);
	free(text);
	return out;
}

json_t *cursor_decode(const cursor_key *key, const void *binding, size_t blen, const char *text, size_t len)
{
	/* The smallest: the version, "{}", the tag. */
	if (text == NULL || len < sodium_base64_encoded_len(1 + 2 + CURSOR_TAG_BYTES, VARIANT) - 1 || len > CURSOR_MAX_TEXT ||
	    blen > UINT32_MAX)
		return NULL;
	unsigned char bin[CURSOR_MAX_TEXT];
	size_t n = 0;
	/* Strict: only the URL-safe alphabet, no padding, no ignored
	 * characters, zero trailing bits (a NUL stops nothing: len is explicit). */
	if (sodium_base642bin(bin, sizeof(bin), text, len, NULL, &n, NULL, VARIANT) != 0 || n < 1 + 2 + CURSOR_TAG_BYTES ||
	    bin[0] != CURSOR_VERSION)
		return NULL;
	size_t tlen = n - 1 - CURSOR_TAG_BYTES;
	unsigned char want[CURSOR_TAG_BYTES];
	tag_of(key, bin[0], binding, blen, bin + 1, tlen, want);
	if (sodium_memcmp(want, bin + 1 + tlen, CURSOR_TAG_BYTES) != 0)
		return NULL;
	/* Issued by this server for this list: still parsed strictly. */
	json_t *pos = json_loadb((const char *)bin + 1, tlen, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(pos)) {
		json_decref(pos);
		return NULL;
	}
	return pos;
}
