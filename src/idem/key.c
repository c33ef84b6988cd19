/* key.c — the Idempotency-Key header (draft-ietf-httpapi-idempotency-key-
 * header: a Structured Field string; bare tokens accepted too) and the
 * request fingerprint. */
#include "idem/idem.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static bool visible(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e;
}

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* RFC 8941 sf-string: DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE,
 * then only whitespace. Spaces inside are refused: the contract asks for
 * visible characters. */
static bool parse_sf_string(const char *p, char out[IDEM_KEY_MAX + 1])
{
	size_t n = 0;
	p++;
	for (;;) {
		unsigned char c = (unsigned char)*p++;
		if (c == '"')
			break;
		if (c == '\\') {
			c = (unsigned char)*p++;
			if (c != '"' && c != '\\')
				return false;
		} else if (!visible(c)) {
			return false; /* control, space, non-ASCII or end of value */
		}
		if (n == IDEM_KEY_MAX)
			return false;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return n > 0 && *skip_ows(p) == '\0';
}

/* A bare value: visible ASCII without the characters that would make it a
 * quoted string or a list of several values. */
static bool parse_bare(const char *p, char out[IDEM_KEY_MAX + 1])
{
	size_t n = 0;
	while (*p != '\0' && *p != ' ' && *p != '\t') {
		unsigned char c = (unsigned char)*p++;
		if (!visible(c) || c == '"' || c == '\\' || c == ',')
			return false;
		if (n == IDEM_KEY_MAX)
			return false;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return n > 0 && *skip_ows(p) == '\0';
}

idem_key_status idem_parse_key(const char *const *values, size_t n, char out[IDEM_KEY_MAX + 1])
{
	out[0] = '\0';
	if (n == 0)
		return IDEM_KEY_MISSING;
	if (n > 1)
		return IDEM_KEY_INVALID;
	const char *p = skip_ows(values[0]);
	bool ok = *p == '"' ? parse_sf_string(p, out) : parse_bare(p, out);
	if (!ok) {
		out[0] = '\0';
		return IDEM_KEY_INVALID;
	}
	return IDEM_KEY_OK;
}

char *idem_canonical_json(const json_t *j)
{
	/* jansson prints sorted keys, no spaces, and one spelling per string
	 * and number it parsed, which is exactly the canonical form asked for. */
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

void idem_fingerprint(const char *method, const char *path, const json_t *body, char hex[65])
{
	unsigned char h[32];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	/* Length-prefixed parts, so no two requests hash the same bytes. */
	const char *parts[3] = {method, path, NULL};
	char *canon = body != NULL ? idem_canonical_json(body) : NULL;
	parts[2] = canon != NULL ? canon : "";
	for (int i = 0; i < 3; i++) {
		unsigned char len[8];
		size_t l = strlen(parts[i]);
		for (int b = 0; b < 8; b++)
			len[b] = (unsigned char)(l >> (56 - 8 * b));
		crypto_generichash_update(&st, len, sizeof(len));
		crypto_generichash_update(&st, (const unsigned char *)parts[i], l);
	}
	free(canon);
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(hex, 65, h, sizeof(h));
}
