/* keyenc.c — order-preserving key encoding (see keyenc.h). */
#include "items/keyenc.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool it_key_encode_number(const char *s, char **out)
{
	bool neg = s[0] == '-';
	if (neg)
		s++;
	const char *dot = strchr(s, '.');
	size_t ilen = dot ? (size_t)(dot - s) : strlen(s);
	const char *frac = dot ? dot + 1 : "";
	size_t flen = strlen(frac);
	/* skip leading zeros of the integer part */
	size_t ist = 0;
	while (ist < ilen && s[ist] == '0')
		ist++;
	size_t fz = 0; /* leading zeros of the fraction */
	while (fz < flen && frac[fz] == '0')
		fz++;
	size_t cap = ilen + flen + 16;
	char *digits = malloc(cap);
	char *res = malloc(cap + 8);
	if (digits == NULL || res == NULL) {
		free(digits);
		free(res);
		return false;
	}
	int e;
	size_t nd = 0;
	if (ist < ilen) {
		e = (int)(ilen - ist); /* value = 0.d1d2... x 10^e */
		memcpy(digits, s + ist, ilen - ist);
		nd = ilen - ist;
		memcpy(digits + nd, frac, flen);
		nd += flen;
	} else if (fz < flen) {
		e = -(int)fz;
		memcpy(digits, frac + fz, flen - fz);
		nd = flen - fz;
	} else {
		free(digits);
		strcpy(res, "1"); /* zero */
		*out = res;
		return true;
	}
	while (nd > 0 && digits[nd - 1] == '0')
		nd--;
	size_t o = 0;
	if (!neg) {
		o += (size_t)sprintf(res, "2%04d", e + 500);
		memcpy(res + o, digits, nd);
		o += nd;
	} else {
		o += (size_t)sprintf(res, "0%04d", 9999 - (e + 500));
		for (size_t i = 0; i < nd; i++)
			res[o++] = (char)('9' - (digits[i] - '0'));
		res[o++] = '~';
	}
	res[o] = '\0';
	free(digits);
	*out = res;
	return true;
}

bool it_key_encode(const it_value *v, char **out)
{
	switch (v->type) {
	case IT_S:
		/* never cut at a NUL: that would name another key */
		if (memchr(v->u.s.ptr, '\0', v->u.s.len) != NULL)
			return false;
		*out = strndup(v->u.s.ptr, v->u.s.len);
		return *out != NULL;
	case IT_N:
		return it_key_encode_number(v->u.s.ptr, out);
	case IT_B: {
		static const char hex[] = "0123456789abcdef";
		char *r = malloc(v->u.s.len * 2 + 1);
		if (r == NULL)
			return false;
		for (size_t i = 0; i < v->u.s.len; i++) {
			unsigned char c = (unsigned char)v->u.s.ptr[i];
			r[2 * i] = hex[c >> 4];
			r[2 * i + 1] = hex[c & 15];
		}
		r[v->u.s.len * 2] = '\0';
		*out = r;
		return true;
	}
	default:
		return false;
	}
}

bool it_key_encode_partition(const it_value *v, char **out)
{
	if (!it_key_encode(v, out))
		return false;
	size_t len = strlen(*out);
	if (len <= IT_KEY_INLINE_MAX)
		return true;
	unsigned char h[crypto_hash_sha256_BYTES];
	char *capped = malloc(IT_KEY_HASHED_LEN + 1);
	if (capped == NULL) {
		free(*out);
		*out = NULL;
		return false;
	}
	crypto_hash_sha256(h, (const unsigned char *)*out, len);
	sodium_bin2hex(capped, 2 * sizeof(h) + 1, h, sizeof(h));
	memset(capped + 2 * sizeof(h), '~', IT_KEY_HASHED_LEN - 2 * sizeof(h));
	capped[IT_KEY_HASHED_LEN] = '\0';
	free(*out);
	*out = capped;
	return true;
}
