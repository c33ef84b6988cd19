/* keyenc.h — order-preserving text encoding of key values (S, N, B), used
 * for pk/sk and the secondary-index slots, compared bytewise (COLLATE "C").
 * S: the UTF-8 text; B: lowercase hex; N: a sign class, a biased exponent
 * and the significant digits (complemented for negatives), so that text
 * order equals numeric order. sql/002_items.sql ol_key_enc() is its twin. */
#ifndef IT_KEYENC_H
#define IT_KEYENC_H

#include <stdbool.h>

#include "items/value.h"

/* Encodes v (S, N or B); *out is malloc'd. False on another type or OOM. */
bool it_key_encode(const it_value *v, char **out) __attribute__((warn_unused_result));
/* Encodes v in the partition-key role (pk, x<N>pk): as it_key_encode, but
 * an encoding longer than IT_KEY_INLINE_MAX bytes is replaced by the hex
 * SHA-256 of it padded with '~' to IT_KEY_HASHED_LEN bytes, so that
 * DynamoDB's 2,048-byte partition keys fit a btree entry. Only equality is
 * asked of a partition key, and the two forms cannot collide (their lengths
 * differ). sql/009_long_keys.sql ol_key_cap() is its twin. */
bool it_key_encode_partition(const it_value *v, char **out) __attribute__((warn_unused_result));
#define IT_KEY_INLINE_MAX 256
#define IT_KEY_HASHED_LEN 300
/* Encodes a canonical N string. */
bool it_key_encode_number(const char *canonical, char **out) __attribute__((warn_unused_result));

#endif
