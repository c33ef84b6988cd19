/* cursor.h — the list cursors of the bearer API (`next_cursor`, `cursor=`):
 * opaque, tamper-evident text. A cursor is base64url (no padding) of
 *
 *     0x01 (version) || position (compact JSON object) || tag (16 bytes)
 *
 * where tag is keyed BLAKE2b over the version, the binding and the position.
 * The binding names the list the cursor belongs to (tenant, route, path
 * parameters, filters: api/validate.c), so a cursor is accepted only by the
 * list that issued it. The key is derived from the events signing key file
 * every daemon of a database shares (docs/operations.md "List cursors"), so a
 * cursor issued by one instance is accepted by every other. The decoder is
 * strict and allocation-bounded: anything not issued by the server, for this
 * binding, with this key, is refused before its JSON is parsed. */
#ifndef OL_API_CURSOR_H
#define OL_API_CURSOR_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "util/util.h"

#define CURSOR_KEY_BYTES 32
#define CURSOR_TAG_BYTES 16
#define CURSOR_VERSION 1
/* The longest cursor text decoded (a position is well under 1 KiB). */
#define CURSOR_MAX_TEXT 4096

typedef struct cursor_key {
	unsigned char k[CURSOR_KEY_BYTES];
} cursor_key;

/* The text of pos (a JSON object) for binding (blen bytes): malloc'd, NULL
 * when out of memory or when it would be longer than CURSOR_MAX_TEXT. */
char *cursor_encode(const cursor_key *key, const void *binding, size_t blen, const json_t *pos);
/* The position (a JSON object, new reference) of text when key issued it
 * for binding; NULL for anything else. Never logs. */
json_t *cursor_decode(const cursor_key *key, const void *binding, size_t blen, const char *text, size_t len);

#endif
