/* libFuzzer target: the list cursor decoder (api/cursor.h), which reads
 * whatever a client puts in `cursor=`. Byte 0 picks a mode:
 *
 *  - even: the rest is cursor text, decoded under a fixed key and binding.
 *    It must be refused unless it is exactly what the encoder writes for
 *    the position it decodes to (so an accepted cursor is canonical and
 *    server-made), and an accepted one is refused under any other binding.
 *  - odd: the rest is a JSON document; an object is encoded, must decode
 *    back to an equal object under its binding and be refused under
 *    another binding and another key.
 *
 * No leak, no read past the input (ASan), no crash on any input. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "api/cursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char BIND[] = "t_fuzz\0GET /v1/accounts\0owner=x";
static const char OTHER[] = "t_other\0GET /v1/accounts\0owner=x";

static void decode_text(const cursor_key *k, const char *text, size_t len)
{
	json_t *pos = cursor_decode(k, BIND, sizeof(BIND), text, len);
	if (pos == NULL)
		return;
	assert(json_is_object(pos));
	char *again = cursor_encode(k, BIND, sizeof(BIND), pos);
	assert(again != NULL && strlen(again) == len && memcmp(again, text, len) == 0);
	assert(cursor_decode(k, OTHER, sizeof(OTHER), text, len) == NULL);
	free(again);
	json_decref(pos);
}

static void round_trip(const cursor_key *k, const char *json, size_t len)
{
	json_t *pos = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
	char *text = pos != NULL ? cursor_encode(k, BIND, sizeof(BIND), pos) : NULL;
	if (text != NULL) {
		json_t *back = cursor_decode(k, BIND, sizeof(BIND), text, strlen(text));
		assert(back != NULL && json_equal(back, pos));
		json_decref(back);
		assert(cursor_decode(k, OTHER, sizeof(OTHER), text, strlen(text)) == NULL);
		cursor_key other = *k;
		other.k[0] ^= 1;
		assert(cursor_decode(&other, BIND, sizeof(BIND), text, strlen(text)) == NULL);
	} else if (pos != NULL) {
		assert(!json_is_object(pos) || json_dumpb(pos, NULL, 0, JSON_COMPACT) > CURSOR_MAX_TEXT / 2);
	}
	free(text);
	json_decref(pos);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cursor_key key;
	static int init;
	if (!init) {
		if (sodium_init() < 0)
			abort();
		memset(key.k, 0x5a, sizeof(key.k)); /* fixed: crashes reproduce */
		init = 1;
	}
	if (size < 1)
		return 0;
	/* A copy of exactly the input: the decoder must not read past len. */
	char *in = malloc(size - 1 + 1);
	if (in == NULL)
		return 0;
	memcpy(in, data + 1, size - 1);
	if (data[0] & 1)
		round_trip(&key, in, size - 1);
	else
		decode_text(&key, in, size - 1);
	free(in);
	return 0;
}
