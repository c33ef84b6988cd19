/* keys.c — API key format and hashing (libsodium: randombytes, BLAKE2b). */
#include "auth/keys.h"

#include <string.h>
#include <strings.h>

#include <sodium.h>

void auth_key_generate(char *key, char *id)
{
	unsigned char secret[32];
	util_random_hex(id, AUTH_KEY_ID_LEN / 2);
	randombytes_buf(secret, sizeof(secret));
	memcpy(key, "olk_", 4);
	memcpy(key + 4, id, AUTH_KEY_ID_LEN);
	key[4 + AUTH_KEY_ID_LEN] = '_';
	sodium_bin2base64(key + 5 + AUTH_KEY_ID_LEN, AUTH_KEY_SECRET_LEN + 1, secret, sizeof(secret),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(secret, sizeof(secret));
}

static bool is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool auth_bearer(const char *authorization, const char **key, size_t *len)
{
	if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	const char *k = authorization + 7;
	while (*k == ' ')
		k++;
	size_t n = strlen(k);
	while (n > 0 && k[n - 1] == ' ')
		n--;
	*key = k;
	*len = n;
	return true;
}

bool auth_key_parse(const char *key, size_t len, char *id)
{
	if (len != AUTH_KEY_LEN || memcmp(key, "olk_", 4) != 0 || key[4 + AUTH_KEY_ID_LEN] != '_')
		return false;
	for (size_t i = 0; i < AUTH_KEY_ID_LEN; i++) {
		char c = key[4 + i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	for (size_t i = 5 + AUTH_KEY_ID_LEN; i < len; i++)
		if (!is_b64url(key[i]))
			return false;
	memcpy(id, key + 4, AUTH_KEY_ID_LEN);
	id[AUTH_KEY_ID_LEN] = '\0';
	return true;
}

void auth_key_hash(const char *key, size_t len, unsigned char out[AUTH_HASH_LEN])
{
	crypto_generichash(out, AUTH_HASH_LEN, (const unsigned char *)key, len, NULL, 0);
}

static const struct {
	const char *name;
	unsigned bit;
} scope_names[] = {{"read", SCOPE_READ}, {"write", SCOPE_WRITE}, {"audit", SCOPE_AUDIT}, {"dynamodb", SCOPE_DYNAMODB}};

bool auth_scopes_parse(const char *csv, unsigned *mask)
{
	*mask = 0;
	const char *p = csv;
	while (*p != '\0') {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		bool found = false;
		for (size_t i = 0; i < OL_ARRAY_LEN(scope_names); i++) {
			if (strlen(scope_names[i].name) == n && memcmp(scope_names[i].name, p, n) == 0) {
				*mask |= scope_names[i].bit;
				found = true;
			}
		}
		if (!found)
			return false;
		p += n;
		if (*p == ',')
			p++;
	}
	return *mask != 0;
}

void auth_scopes_format(unsigned mask, char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < OL_ARRAY_LEN(scope_names); i++) {
		if ((mask & scope_names[i].bit) == 0)
			continue;
		size_t n = strlen(scope_names[i].name);
		if (o + n + 2 > len)
			break;
		if (o > 0)
			buf[o++] = ',';
		memcpy(buf + o, scope_names[i].name, n);
		o += n;
		buf[o] = '\0';
	}
}

bool auth_scope_allows(unsigned have, unsigned need)
{
	if (need == 0)
		return true;
	if (need == SCOPE_READ)
		return (have & (SCOPE_READ | SCOPE_WRITE)) != 0;
	return (have & need) == need;
}

bool auth_tenant_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}
