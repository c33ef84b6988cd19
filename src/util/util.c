/* util.c — clocks, time formatting, random ids, small string helpers. */
#include "util/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

int64_t util_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t util_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char hexdigits[] = "0123456789abcdef";

/* Two decimal digits of v (0..99) at p. */
static char *put2(char *p, int v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

void util_format_time(char *buf, size_t len, int64_t epoch_us)
{
	/* Per thread, the last second formatted: a request formats the same
	 * second several times (event time, log lines), and gmtime_r plus a
	 * printf of seven fields cost more than the rest. */
	static _Thread_local time_t last_secs = (time_t)-1;
	static _Thread_local char last[20]; /* YYYY-MM-DDTHH:MM:SS */
	time_t secs = (time_t)(epoch_us / 1000000);
	long micros = (long)(epoch_us % 1000000);
	if (micros < 0) {
		micros += 1000000;
		secs -= 1;
	}
	struct tm tm;
	if (secs != last_secs) {
		gmtime_r(&secs, &tm);
		if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
			snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
				 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
			return;
		}
		char *p = put2(put2(last, (tm.tm_year + 1900) / 100), (tm.tm_year + 1900) % 100);
		*p++ = '-';
		p = put2(p, tm.tm_mon + 1);
		*p++ = '-';
		p = put2(p, tm.tm_mday);
		*p++ = 'T';
		p = put2(p, tm.tm_hour);
		*p++ = ':';
		p = put2(p, tm.tm_min);
		*p++ = ':';
		put2(p, tm.tm_sec);
		last_secs = secs;
	}
	char text[28];
	memcpy(text, last, 19);
	text[19] = '.';
	for (int i = 25; i >= 20; i--, micros /= 10)
		text[i] = (char)('0' + micros % 10);
	text[26] = 'Z';
	text[27] = '\0';
	util_strlcpy(buf, text, len);
}

void util_random_bytes(void *out, size_t n)
{
	/* A per-thread pool drawn 256 bytes at a time: libsodium's source is
	 * the getrandom system call, once per call otherwise (ids are drawn
	 * several times per request). */
	static _Thread_local unsigned char pool[256];
	static _Thread_local size_t left;
	unsigned char *o = out;
	while (n > 0) {
		if (left == 0) {
			randombytes_buf(pool, sizeof(pool));
			left = sizeof(pool);
		}
		size_t k = n < left ? n : left;
		memcpy(o, pool + sizeof(pool) - left, k);
		/* drawn bytes do not stay behind in the pool */
		sodium_memzero(pool + sizeof(pool) - left, k);
		left -= k;
		o += k;
		n -= k;
	}
}

void util_random_hex(char *out, size_t nbytes)
{
	unsigned char raw[64];
	if (nbytes > sizeof(raw))
		nbytes = sizeof(raw);
	util_random_bytes(raw, nbytes);
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hexdigits[raw[i] >> 4];
		out[2 * i + 1] = hexdigits[raw[i] & 15];
	}
	out[2 * nbytes] = '\0';
}

void util_new_id(const char *prefix, char *out, size_t len)
{
	char text[96];
	size_t pl = strlen(prefix);
	if (pl > sizeof(text) - 33)
		pl = sizeof(text) - 33;
	memcpy(text, prefix, pl);
	unsigned long long ms = (unsigned long long)(util_now_us() / 1000) & 0xffffffffffffULL;
	for (int i = 11; i >= 0; i--, ms >>= 4)
		text[pl + (size_t)i] = hexdigits[ms & 15];
	util_random_hex(text + pl + 12, 10);
	util_strlcpy(out, text, len);
}

bool util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);
	if (size == 0)
		return false;
	if (n >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return false;
	}
	memcpy(dst, src, n + 1);
	return true;
}

bool util_parse_ll(const char *s, long long min, long long max, long long *out)
{
	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	char *end = NULL;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool util_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon;
	long long p;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return false;
		size_t n = (size_t)(close - s - 1);
		if (n == 0 || n >= hostlen)
			return false;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return false;
		size_t n = (size_t)(colon - s);
		if (n == 0 || n >= hostlen)
			return false;
		memcpy(host, s, n);
		host[n] = '\0';
	}
	if (!util_parse_ll(colon + 1, 0, 65535, &p))
		return false;
	*port = (int)p;
	return true;
}

bool util_id_ok(const char *s, size_t len)
{
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == ':' || c == '-'))
			return false;
	}
	return true;
}

bool util_visible_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

size_t util_utf8_prefix(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned c = p[i];
		size_t n;
		unsigned cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			break;
		}
		if (i + n >= len)
			break; /* a sequence cut short */
		size_t k;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				break;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (k <= n)
			break;
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			break;
		i += n + 1;
	}
	return i;
}

bool util_file_private(int fd, const char *path, char **err)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		if (asprintf(err, "cannot stat %s: %s", path, strerror(errno)) < 0)
			*err = NULL;
		return false;
	}
	if ((st.st_mode & 077) != 0) {
		if (asprintf(err, "%s is accessible by group or others (mode %04o): a key file must be private to its owner, "
				  "run chmod 600 %s",
			     path, (unsigned)(st.st_mode & 07777), path) < 0)
			*err = NULL;
		return false;
	}
	return true;
}

uint64_t util_shorthash64(const unsigned char key[16], const char *s)
{
	unsigned char h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const unsigned char *)s, strlen(s), key);
	uint64_t v;
	memcpy(&v, h, sizeof(v));
	return v;
}
