/* keys.h — API key format, generation, hashing and scopes.
 * A key is "olk_<16 hex id>_<43 base64url secret>" (256 random bits); only
 * BLAKE2b-256 of the whole key is stored, so the database never holds a
 * usable credential. The id part finds the row; the hash proves the key. */
#ifndef OL_AUTH_KEYS_H
#define OL_AUTH_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

#define AUTH_KEY_ID_LEN 16
#define AUTH_KEY_SECRET_LEN 43
#define AUTH_KEY_LEN (4 + AUTH_KEY_ID_LEN + 1 + AUTH_KEY_SECRET_LEN)
#define AUTH_HASH_LEN 32

enum {
	SCOPE_READ = 1,
	SCOPE_WRITE = 2,
	SCOPE_AUDIT = 4,
	SCOPE_DYNAMODB = 8,
};

/* Generates a key; key >= AUTH_KEY_LEN+1, id >= AUTH_KEY_ID_LEN+1. */
void auth_key_generate(char *key, char *id);
/* Validates the format and extracts the id. */
bool auth_key_parse(const char *key, size_t len, char *id) OL_WARN_UNUSED;
/* The key of an "Authorization: Bearer <key>" value (scheme case-blind,
 * spaces around the key dropped): *key points into authorization. */
bool auth_bearer(const char *authorization, const char **key, size_t *len) OL_WARN_UNUSED;
void auth_key_hash(const char *key, size_t len, unsigned char out[AUTH_HASH_LEN]);
/* "read,write" -> mask; false on an unknown or empty scope. */
bool auth_scopes_parse(const char *csv, unsigned *mask) OL_WARN_UNUSED;
/* mask -> "read,write" (buf >= 32). */
void auth_scopes_format(unsigned mask, char *buf, size_t len);
/* Does a key with `have` satisfy a route that needs `need`?
 * write implies read; audit and dynamodb imply nothing else. */
bool auth_scope_allows(unsigned have, unsigned need);
bool auth_tenant_name_valid(const char *name);

#endif
