/* router.c — segment-by-segment matching of the routing table. The table is
 * small (tens of routes) so a linear scan beats any index here. */
#include "http/router.h"

#include <stdbool.h>
#include <string.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (c | 0x20) - 'a' + 10;
	return -1;
}

/* Percent-decodes seg[0..len) into out; refuses NUL, control bytes and
 * truncated escapes so handlers only ever see printable text. */
static bool decode_param(const char *seg, size_t len, char *out)
{
	size_t o = 0;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)seg[i];
		if (c == '%') {
			if (i + 2 >= len)
				return false;
			int h = hexval(seg[i + 1]), l = hexval(seg[i + 2]);
			if (h < 0 || l < 0)
				return false;
			c = (unsigned char)(h * 16 + l);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			return false;
		if (o >= ROUTER_PARAM_MAX)
			return false;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return true;
}

/* Matches one pattern; returns 1 on match, 0 on no match, -1 on a bad param. */
static int match_one(const char *pat, const char *path, router_match *out)
{
	int np = 0;
	while (*pat != '\0' && *path != '\0') {
		if (*pat != '/' || *path != '/')
			return 0;
		pat++;
		path++;
		const char *pe = strchr(pat, '/');
		size_t plen = pe ? (size_t)(pe - pat) : strlen(pat);
		const char *se = strchr(path, '/');
		size_t slen = se ? (size_t)(se - path) : strlen(path);
		if (plen > 0 && pat[0] == '{') {
			if (slen == 0 || np >= ROUTER_MAX_PARAMS)
				return 0;
			if (!decode_param(path, slen, out->params[np]))
				return -1;
			np++;
		} else if (plen != slen || memcmp(pat, path, plen) != 0) {
			return 0;
		}
		pat += plen;
		path += slen;
	}
	if (*pat != '\0' || *path != '\0')
		return 0;
	out->nparams = np;
	return 1;
}

int router_match_path(const route *table, size_t n, const char *path, http_method m, router_match *out, unsigned *allowed)
{
	*allowed = 0;
	bool bad_param = false;
	for (size_t i = 0; i < n; i++) {
		router_match tmp;
		int rc = match_one(table[i].pattern, path, &tmp);
		if (rc < 0) {
			bad_param = true;
			continue;
		}
		if (rc == 0)
			continue;
		if (table[i].method == m || (m == HTTP_M_HEAD && table[i].method == HTTP_M_GET)) {
			*out = tmp;
			out->route = &table[i];
			out->index = (int)i;
			return 0;
		}
		*allowed |= (unsigned)table[i].method;
	}
	if (*allowed != 0)
		return 405;
	return bad_param ? 400 : 404;
}

void router_allow_header(unsigned allowed, char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = '\0';
	for (unsigned bit = 1; bit <= HTTP_M_OPTIONS; bit <<= 1) {
		if ((allowed & bit) == 0)
			continue;
		const char *name = http_method_name((http_method)bit);
		size_t n = strlen(name);
		if (o + n + 3 > len)
			break;
		if (o > 0) {
			memcpy(buf + o, ", ", 2);
			o += 2;
		}
		memcpy(buf + o, name, n);
		o += n;
		buf[o] = '\0';
	}
}
