/* sigv4.c — AWS Signature Version 4 verification (libsodium: SHA-256,
 * HMAC-SHA-256, constant-time compare).
 *
 * The canonical request is never materialised: it is streamed straight into
 * a SHA-256 state, so arbitrarily long paths, queries and headers cost no
 * memory and need no allocation. The only fixed-size tables are the path
 * segment stack (for "..") and the query pair list (for sorting); requests
 * that overflow them are refused as malformed. */
#include "auth/sigv4.h"

#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"
/* Bounds on the tables below; DynamoDB requests use "/" and no query. */
#define MAX_PATH_SEGMENTS 64
#define MAX_QUERY_PAIRS 64

/* Messages: AWS's wording where it is known, otherwise in its style. */
static const char msg_missing[] = "Request is missing Authentication Token";
static const char msg_duplicate_authz[] = "Only one Authorization header may be specified";
static const char msg_algorithm[] = "Authorization header requires the 'AWS4-HMAC-SHA256' algorithm";
static const char msg_pair[] = "Authorization header contains a component that is not a valid key=value pair "
			       "(missing equal-sign)";
static const char msg_unknown_key[] = "Authorization header contains an unknown parameter; expected Credential, "
				      "SignedHeaders and Signature";
static const char msg_duplicate_key[] = "Authorization header contains a parameter more than once";
static const char msg_need_credential[] = "Authorization header requires 'Credential' parameter.";
static const char msg_need_signed[] = "Authorization header requires 'SignedHeaders' parameter.";
static const char msg_need_signature[] = "Authorization header requires 'Signature' parameter.";
static const char msg_credential[] = "Credential must have exactly 5 slash-delimited elements, e.g. "
				     "keyid/date/region/service/term";
static const char msg_credential_date[] = "Credential date must be YYYYMMDD";
static const char msg_terminator[] = "Credential should be scoped with a valid terminator: 'aws4_request'.";
static const char msg_signed_headers[] = "SignedHeaders must be a ';'-separated list of lowercase header names";
static const char msg_signature_hex[] = "Signature must be 64 lowercase hexadecimal characters";
static const char msg_need_date[] = "Authorization header requires existence of either a 'X-Amz-Date' or a "
				    "'Date' header.";
static const char msg_duplicate_date[] = "Only one X-Amz-Date header may be specified";
static const char msg_bad_date[] = "X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'";
static const char msg_host[] = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.";
static const char msg_target_unsigned[] = "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.";
static const char msg_ctype_unsigned[] = "'Content-Type' must be a 'SignedHeader' in the AWS Authorization.";
static const char msg_date_unsigned[] = "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.";
static const char msg_signed_absent[] = "A header listed in SignedHeaders is not present in the request";
static const char msg_bad_auth[] = "Authorization fields are not NUL-terminated or are empty";
static const char msg_too_complex[] = "Request path or query string has too many components to canonicalize";
static const char msg_scope_date[] = "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
				     "date from HTTP";
static const char msg_expired[] = "Signature expired: X-Amz-Date is more than 15 minutes earlier than the "
				  "server's time";
static const char msg_not_yet[] = "Signature not yet current: X-Amz-Date is more than 15 minutes later than the "
				  "server's time";
static const char msg_mismatch[] = "The request signature we calculated does not match the signature you "
				   "provided. Check your AWS Secret Access Key and signing method. Consult the "
				   "service documentation for details.";

/* ---- small character helpers (ASCII only: never the locale) ---- */

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The whitespace botocore's str.split() and the JS SDK's /\s+/ agree on. */
static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* RFC 3986 unreserved: the only bytes AWS URI encoding leaves alone. */
static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	       c == '.' || c == '~';
}

/* A lowercase RFC 9110 token character, as allowed in SignedHeaders. */
static bool is_lower_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || is_digit(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* True when NUL-terminated name equals the lowercase name lname[0..n) in any case. */
static bool name_eq(const char *name, const char *lname, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (name[i] == '\0' || lower(name[i]) != lname[i])
			return false;
	return name[i] == '\0';
}

/* Counts the request headers named lname[0..n); *first gets the first value. */
static size_t header_count(const sigv4_req *r, const char *lname, size_t n, const char **first)
{
	size_t count = 0;
	for (size_t i = 0; i < r->nheaders; i++) {
		if (r->hnames[i] != NULL && r->hvalues[i] != NULL && name_eq(r->hnames[i], lname, n)) {
			if (count++ == 0 && first != NULL)
				*first = r->hvalues[i];
		}
	}
	return count;
}

/* Copies s[0..n) into dst[size] with a terminator; false (nothing copied) if it does not fit. */
static bool copy_field(char *dst, size_t size, const char *s, size_t n)
{
	if (n >= size)
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

/* ---- X-Amz-Date ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so we need neither timegm() nor the TZ environment. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int64_t digits(const char *s, size_t n)
{
	int64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* Parses "YYYYMMDDTHHMMSSZ" (exactly 16 bytes, then NUL) into epoch seconds. */
static bool parse_amz_date(const char *s, int64_t *epoch)
{
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	for (size_t i = 0; i < 16; i++) {
		bool ok = i == 8 ? s[i] == 'T' : i == 15 ? s[i] == 'Z' : is_digit(s[i]);
		if (!ok)
			return false;
	}
	if (s[16] != '\0')
		return false;
	int64_t y = digits(s, 4), mo = digits(s + 4, 2), d = digits(s + 6, 2);
	int64_t h = digits(s + 9, 2), mi = digits(s + 11, 2), se = digits(s + 13, 2);
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 59)
		return false;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return false;
	*epoch = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	return true;
}

/* ---- Authorization header ---- */

/* Credential=AKID/YYYYMMDD/region/service/aws4_request */
static sigv4_status parse_credential(const char *s, size_t n, sigv4_auth *out, const char **why)
{
	const char *end = s + n, *part[4];
	size_t plen[4];
	const char *p = s;
	for (int i = 0; i < 4; i++) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		if (slash == NULL) {
			*why = msg_credential;
			return SIGV4_MALFORMED;
		}
		part[i] = p;
		plen[i] = (size_t)(slash - p);
		p = slash + 1;
	}
	/* Every element goes into the string to sign verbatim, so only visible
	 * ASCII is accepted; anything else could not have been signed by an SDK. */
	for (const char *c = s; c < end; c++) {
		if (*c < 0x21 || *c > 0x7e) {
			*why = msg_credential;
			return SIGV4_MALFORMED;
		}
	}
	if (plen[0] == 0 || plen[2] == 0 || plen[3] == 0 ||
	    !copy_field(out->access_key, sizeof(out->access_key), part[0], plen[0]) ||
	    !copy_field(out->region, sizeof(out->region), part[2], plen[2]) ||
	    !copy_field(out->service, sizeof(out->service), part[3], plen[3])) {
		*why = msg_credential;
		return SIGV4_MALFORMED;
	}
	if (plen[1] != 8) {
		*why = msg_credential_date;
		return SIGV4_MALFORMED;
	}
	for (size_t i = 0; i < 8; i++) {
		if (!is_digit(part[1][i])) {
			*why = msg_credential_date;
			return SIGV4_MALFORMED;
		}
	}
	memcpy(out->date, part[1], 8);
	out->date[8] = '\0';
	if ((size_t)(end - p) != strlen(TERMINATOR) || memcmp(p, TERMINATOR, strlen(TERMINATOR)) != 0) {
		*why = msg_terminator;
		return SIGV4_MALFORMED;
	}
	return SIGV4_OK;
}

/* SignedHeaders=a;b;c — lowercase tokens, no empty entries. */
static sigv4_status parse_signed_headers(const char *s, size_t n, sigv4_auth *out, const char **why)
{
	bool ok = n > 0 && s[0] != ';' && s[n - 1] != ';';
	for (size_t i = 0; ok && i < n; i++)
		ok = s[i] == ';' ? s[i + 1] != ';' : is_lower_tchar(s[i]);
	if (!ok || !copy_field(out->signed_headers, sizeof(out->signed_headers), s, n)) {
		*why = msg_signed_headers;
		return SIGV4_MALFORMED;
	}
	return SIGV4_OK;
}

/* Signature=<64 lowercase hex>: what every SDK sends (HMAC-SHA-256 hex). */
static sigv4_status parse_signature(const char *s, size_t n, sigv4_auth *out, const char **why)
{
	bool ok = n == 64;
	for (size_t i = 0; ok && i < n; i++)
		ok = is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f');
	if (!ok) {
		*why = msg_signature_hex;
		return SIGV4_MALFORMED;
	}
	memcpy(out->signature, s, 64);
	out->signature[64] = '\0';
	return SIGV4_OK;
}

static bool span_is(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Calls fn on each ';'-separated name of a SignedHeaders list until it returns false. */
static bool signed_each(const char *list, bool (*fn)(const char *name, size_t n, void *arg), void *arg)
{
	const char *p = list;
	while (*p != '\0') {
		const char *semi = strchr(p, ';');
		size_t n = semi != NULL ? (size_t)(semi - p) : strlen(p);
		if (!fn(p, n, arg))
			return false;
		p += n;
		if (*p == ';')
			p++;
	}
	return true;
}

static bool is_not(const char *name, size_t n, void *arg)
{
	return !span_is(name, n, arg);
}

static bool is_present(const char *name, size_t n, void *arg)
{
	return header_count(arg, name, n, NULL) > 0;
}

sigv4_status sigv4_parse(const sigv4_req *r, sigv4_auth *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	const char *authz = NULL;
	size_t count = header_count(r, "authorization", strlen("authorization"), &authz);
	/* An empty Authorization header is as good as none (AWS says the same). */
	if (count == 0 || authz[0] == '\0') {
		*why = msg_missing;
		return SIGV4_MISSING;
	}
	if (count > 1) {
		*why = msg_duplicate_authz;
		return SIGV4_MALFORMED;
	}
	size_t alen = strlen(ALGORITHM);
	if (strncmp(authz, ALGORITHM, alen) != 0 || authz[alen] != ' ') {
		*why = msg_algorithm;
		return SIGV4_MALFORMED;
	}

	/* "Credential=..., SignedHeaders=..., Signature=..." in any order, with
	 * optional whitespace around the commas (SDKs write ", "). */
	bool have_cred = false, have_signed = false, have_sig = false;
	const char *p = authz + alen;
	for (bool more = true; more;) {
		const char *comma = strchr(p, ',');
		more = comma != NULL;
		const char *s = p, *t = comma != NULL ? comma : p + strlen(p);
		p = comma != NULL ? comma + 1 : t;
		/* an empty component (",," or a trailing comma) fails the '=' test */
		while (s < t && is_ws(*s))
			s++;
		while (t > s && is_ws(t[-1]))
			t--;
		const char *eq = memchr(s, '=', (size_t)(t - s));
		if (eq == NULL) {
			*why = msg_pair;
			return SIGV4_MALFORMED;
		}
		size_t klen = (size_t)(eq - s), vlen = (size_t)(t - eq - 1);
		bool *seen;
		sigv4_status st;
		if (span_is(s, klen, "Credential")) {
			seen = &have_cred;
			st = parse_credential(eq + 1, vlen, out, why);
		} else if (span_is(s, klen, "SignedHeaders")) {
			seen = &have_signed;
			st = parse_signed_headers(eq + 1, vlen, out, why);
		} else if (span_is(s, klen, "Signature")) {
			seen = &have_sig;
			st = parse_signature(eq + 1, vlen, out, why);
		} else {
			*why = msg_unknown_key;
			return SIGV4_MALFORMED;
		}
		if (*seen) {
			*why = msg_duplicate_key;
			return SIGV4_MALFORMED;
		}
		if (st != SIGV4_OK)
			return st;
		*seen = true;
	}
	if (!have_cred || !have_signed || !have_sig) {
		*why = !have_cred ? msg_need_credential : !have_signed ? msg_need_signed : msg_need_signature;
		return SIGV4_MALFORMED;
	}

	const char *date = NULL;
	count = header_count(r, "x-amz-date", strlen("x-amz-date"), &date);
	if (count == 0) {
		*why = msg_need_date;
		return SIGV4_MALFORMED;
	}
	if (count > 1) {
		*why = msg_duplicate_date;
		return SIGV4_MALFORMED;
	}
	int64_t epoch;
	if (!parse_amz_date(date, &epoch)) {
		*why = msg_bad_date;
		return SIGV4_MALFORMED;
	}
	memcpy(out->amz_date, date, 17);

	/* Without host signed, a request could be replayed to another endpoint. */
	if (signed_each(out->signed_headers, is_not, (void *)"host")) {
		*why = msg_host;
		return SIGV4_MALFORMED;
	}
	/* The operation (X-Amz-Target), how the body is read (Content-Type) and
	 * the date must be signed when present, as every AWS SDK signs them:
	 * with only host signed, a captured GetItem could be re-sent as a
	 * DeleteItem. */
	static const struct {
		const char *name;
		const char *why;
	} must_sign[] = {
		{"x-amz-target", msg_target_unsigned},
		{"content-type", msg_ctype_unsigned},
		{"x-amz-date", msg_date_unsigned},
	};
	for (size_t i = 0; i < sizeof(must_sign) / sizeof(must_sign[0]); i++) {
		const char *name = must_sign[i].name;
		if (header_count(r, name, strlen(name), NULL) > 0 && signed_each(out->signed_headers, is_not, (void *)name)) {
			*why = must_sign[i].why;
			return SIGV4_MALFORMED;
		}
	}
	/* A signed header that is absent cannot be canonicalized faithfully. */
	if (!signed_each(out->signed_headers, is_present, (void *)r)) {
		*why = msg_signed_absent;
		return SIGV4_MALFORMED;
	}
	return SIGV4_OK;
}

/* ---- canonical request, streamed into SHA-256 ---- */

/* Buffers small writes so per-byte URI encoding does not mean per-byte hash updates. */
typedef struct hwriter {
	crypto_hash_sha256_state st;
	size_t len;
	unsigned char buf[256];
} hwriter;

static void hw_flush(hwriter *w)
{
	crypto_hash_sha256_update(&w->st, w->buf, w->len);
	w->len = 0;
}

static void hw_putc(hwriter *w, char c)
{
	if (w->len == sizeof(w->buf))
		hw_flush(w);
	w->buf[w->len++] = (unsigned char)c;
}

static void hw_put(hwriter *w, const void *p, size_t n)
{
	if (n > sizeof(w->buf) - w->len) {
		hw_flush(w);
		crypto_hash_sha256_update(&w->st, p, n);
		return;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void hw_puts(hwriter *w, const char *s)
{
	hw_put(w, s, strlen(s));
}

static const char hexdigits[] = "0123456789ABCDEF";

/* AWS URI encoding of one byte: unreserved bytes as is, others as %XX (uppercase). */
static void hw_put_encoded(hwriter *w, unsigned char c)
{
	if (is_unreserved(c)) {
		hw_putc(w, (char)c);
	} else {
		hw_putc(w, '%');
		hw_putc(w, hexdigits[c >> 4]);
		hw_putc(w, hexdigits[c & 15]);
	}
}

typedef struct span {
	const char *p;
	size_t n;
} span;

/* Canonical URI for non-S3 services: dot segments and empty segments removed
 * (as botocore and the JS SDK do), then the raw, already percent-encoded path
 * encoded once more — AWS's "encode twice" counted from the unencoded path. */
static bool put_canonical_uri(hwriter *w, const char *path)
{
	if (path == NULL || path[0] == '\0') {
		hw_putc(w, '/');
		return true;
	}
	span seg[MAX_PATH_SEGMENTS];
	size_t nseg = 0;
	const char *p = path;
	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.')) {
			/* empty or "." segment: dropped */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (nseg > 0)
				nseg--;
		} else {
			if (nseg == MAX_PATH_SEGMENTS)
				return false;
			seg[nseg].p = p;
			seg[nseg++].n = n;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	if (path[0] == '/')
		hw_putc(w, '/');
	for (size_t i = 0; i < nseg; i++) {
		if (i > 0)
			hw_putc(w, '/');
		for (size_t j = 0; j < seg[i].n; j++)
			hw_put_encoded(w, (unsigned char)seg[i].p[j]);
	}
	if (nseg > 0 && path[strlen(path) - 1] == '/')
		hw_putc(w, '/');
	return true;
}

/* Yields the AWS URI encoding of a percent-decoded span one byte at a time,
 * so query pairs can be sorted and emitted by their canonical form without
 * a buffer. A '%' not followed by two hex digits stands for itself. */
typedef struct enc_iter {
	const char *p, *end;
	char pending[2];
	int npending;
} enc_iter;

static void enc_init(enc_iter *it, span s)
{
	it->p = s.p;
	it->end = s.p + s.n;
	it->npending = 0;
}

static int enc_next(enc_iter *it)
{
	if (it->npending > 0) {
		char c = it->pending[2 - it->npending];
		it->npending--;
		return (unsigned char)c;
	}
	if (it->p == it->end)
		return -1;
	unsigned char c = (unsigned char)*it->p;
	if (c == '%' && it->end - it->p >= 3 && hexval(it->p[1]) >= 0 && hexval(it->p[2]) >= 0) {
		c = (unsigned char)(hexval(it->p[1]) << 4 | hexval(it->p[2]));
		it->p += 3;
	} else {
		it->p++;
	}
	if (is_unreserved(c))
		return c;
	it->pending[0] = hexdigits[c >> 4];
	it->pending[1] = hexdigits[c & 15];
	it->npending = 2;
	return '%';
}

/* Byte-order comparison of the canonical encodings of a and b. */
static int enc_cmp(span a, span b)
{
	enc_iter x, y;
	enc_init(&x, a);
	enc_init(&y, b);
	for (;;) {
		int cx = enc_next(&x), cy = enc_next(&y);
		if (cx != cy)
			return cx < cy ? -1 : 1;
		if (cx < 0)
			return 0;
	}
}

static void hw_put_reencoded(hwriter *w, span s)
{
	enc_iter it;
	enc_init(&it, s);
	for (int c; (c = enc_next(&it)) >= 0;)
		hw_putc(w, (char)c);
}

/* Canonical query string: pairs split at the first '=', each side decoded
 * and re-encoded with AWS URI encoding, sorted by name then value. */
static bool put_canonical_query(hwriter *w, const char *query)
{
	span key[MAX_QUERY_PAIRS], val[MAX_QUERY_PAIRS];
	size_t n = 0;
	const char *p = query != NULL ? query : "";
	while (*p != '\0') {
		const char *amp = strchr(p, '&');
		size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
		if (len > 0) {
			if (n == MAX_QUERY_PAIRS)
				return false;
			const char *eq = memchr(p, '=', len);
			key[n].p = p;
			key[n].n = eq != NULL ? (size_t)(eq - p) : len;
			val[n].p = eq != NULL ? eq + 1 : p + len;
			val[n].n = eq != NULL ? len - key[n].n - 1 : 0;
			/* insertion sort: n is small and bounded */
			size_t i = n++;
			while (i > 0) {
				int c = enc_cmp(key[i - 1], key[i]);
				if (c < 0 || (c == 0 && enc_cmp(val[i - 1], val[i]) <= 0))
					break;
				span tk = key[i], tv = val[i];
				key[i] = key[i - 1];
				val[i] = val[i - 1];
				key[i - 1] = tk;
				val[i - 1] = tv;
				i--;
			}
		}
		p += len;
		if (*p == '&')
			p++;
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			hw_putc(w, '&');
		hw_put_reencoded(w, key[i]);
		hw_putc(w, '=');
		hw_put_reencoded(w, val[i]);
	}
	return true;
}

typedef struct canon_ctx {
	hwriter *w;
	const sigv4_req *r;
} canon_ctx;

/* One canonical header line: "name:v1,v2\n", each value trimmed and its
 * inner whitespace runs collapsed to one space (AWS's Trimall). */
static bool put_header_line(const char *name, size_t n, void *arg)
{
	canon_ctx *c = arg;
	hw_put(c->w, name, n);
	hw_putc(c->w, ':');
	bool first = true;
	for (size_t i = 0; i < c->r->nheaders; i++) {
		const char *v = c->r->hvalues[i];
		if (c->r->hnames[i] == NULL || v == NULL || !name_eq(c->r->hnames[i], name, n))
			continue;
		if (!first)
			hw_putc(c->w, ',');
		first = false;
		bool space = false, any = false;
		for (; *v != '\0'; v++) {
			if (is_ws(*v)) {
				space = true;
				continue;
			}
			if (space && any)
				hw_putc(c->w, ' ');
			hw_putc(c->w, *v);
			space = false;
			any = true;
		}
	}
	hw_putc(c->w, '\n');
	return true;
}

/* SHA-256 of the canonical request, as lowercase hex. */
static bool canonical_request_hash(const sigv4_req *r, const sigv4_auth *a, char hex[65])
{
	hwriter w;
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_init(&w.st);
	w.len = 0;

	hw_puts(&w, r->method != NULL ? r->method : "");
	hw_putc(&w, '\n');
	if (!put_canonical_uri(&w, r->path))
		return false;
	hw_putc(&w, '\n');
	if (!put_canonical_query(&w, r->query))
		return false;
	hw_putc(&w, '\n');
	canon_ctx c = {&w, r};
	(void)signed_each(a->signed_headers, put_header_line, &c);
	hw_putc(&w, '\n');
	hw_puts(&w, a->signed_headers);
	hw_putc(&w, '\n');
	/* Always the hash of the body actually received, even when the client
	 * sent X-Amz-Content-Sha256: trusting that header would let a body be
	 * swapped under a valid signature. */
	crypto_hash_sha256(digest, r->body != NULL ? r->body : (const unsigned char *)"", r->body_len);
	char body_hex[65];
	sodium_bin2hex(body_hex, sizeof(body_hex), digest, sizeof(digest));
	hw_put(&w, body_hex, 64);

	hw_flush(&w);
	crypto_hash_sha256_final(&w.st, digest);
	sodium_bin2hex(hex, 65, digest, sizeof(digest));
	return true;
}

/* ---- signing key and signature ---- */

static void hmac(unsigned char out[crypto_auth_hmacsha256_BYTES], const unsigned char *key, size_t keylen,
		 const char *msg, size_t n)
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, n);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").
 * A first key longer than SHA-256's 64-byte block is replaced by its hash,
 * exactly as HMAC itself specifies, so no secret length needs a bound. */
static void signing_key(unsigned char out[32], const char *secret, const sigv4_auth *a)
{
	unsigned char k0[64], k[32];
	size_t slen = strlen(secret), k0len;
	if (slen <= sizeof(k0) - 4) {
		memcpy(k0, "AWS4", 4);
		memcpy(k0 + 4, secret, slen);
		k0len = 4 + slen;
	} else {
		crypto_hash_sha256_state st;
		crypto_hash_sha256_init(&st);
		crypto_hash_sha256_update(&st, (const unsigned char *)"AWS4", 4);
		crypto_hash_sha256_update(&st, (const unsigned char *)secret, slen);
		crypto_hash_sha256_final(&st, k0);
		sodium_memzero(&st, sizeof(st));
		k0len = crypto_hash_sha256_BYTES;
	}
	hmac(k, k0, k0len, a->date, strlen(a->date));
	hmac(k, k, sizeof(k), a->region, strlen(a->region));
	hmac(k, k, sizeof(k), a->service, strlen(a->service));
	hmac(out, k, sizeof(k), TERMINATOR, strlen(TERMINATOR));
	sodium_memzero(k0, sizeof(k0));
	sodium_memzero(k, sizeof(k));
}

/* True when field[size] holds a terminated string of length 1..size-1. */
static bool field_ok(const char *field, size_t size)
{
	return field[0] != '\0' && memchr(field, '\0', size) != NULL;
}

/* The cache's signing key for secret and a's scope, derived on a miss. */
static void cached_signing_key(unsigned char out[32], const char *secret, const sigv4_auth *a, sigv4_key_cache *c)
{
	unsigned char tag[32];
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	/* NUL-separated: no two different tuples hash the same input */
	const char *parts[] = {secret, a->access_key, a->date, a->region, a->service};
	for (size_t i = 0; i < OL_ARRAY_LEN(parts); i++)
		crypto_hash_sha256_update(&st, (const unsigned char *)parts[i], strlen(parts[i]) + 1);
	crypto_hash_sha256_final(&st, tag);
	sodium_memzero(&st, sizeof(st));
	for (unsigned i = 0; i < SIGV4_KEY_CACHE_SLOTS; i++) {
		if (c->slot[i].used && sodium_memcmp(c->slot[i].tag, tag, sizeof(tag)) == 0) {
			memcpy(out, c->slot[i].key, 32);
			c->hits++;
			return;
		}
	}
	signing_key(out, secret, a);
	unsigned i = c->next++ % SIGV4_KEY_CACHE_SLOTS;
	memcpy(c->slot[i].tag, tag, sizeof(tag));
	memcpy(c->slot[i].key, out, 32);
	c->slot[i].used = true;
	c->misses++;
}

static sigv4_status verify(const sigv4_req *r, const sigv4_auth *a, const char *secret, int64_t now, sigv4_key_cache *cache,
			   const char **why)
{
	/* The caller may have built or altered *a: never read past a field. */
	if (!field_ok(a->access_key, sizeof(a->access_key)) || !field_ok(a->date, sizeof(a->date)) ||
	    !field_ok(a->region, sizeof(a->region)) || !field_ok(a->service, sizeof(a->service)) ||
	    !field_ok(a->amz_date, sizeof(a->amz_date)) || !field_ok(a->signed_headers, sizeof(a->signed_headers)) ||
	    strnlen(a->signature, sizeof(a->signature)) != 64) {
		*why = msg_bad_auth;
		return SIGV4_MALFORMED;
	}
	int64_t t;
	if (!parse_amz_date(a->amz_date, &t)) {
		*why = msg_bad_date;
		return SIGV4_MALFORMED;
	}
	if (strlen(a->date) != 8 || memcmp(a->date, a->amz_date, 8) != 0) {
		*why = msg_scope_date;
		return SIGV4_MISMATCH;
	}
	/* t is within years 0..9999, so these comparisons cannot overflow. */
	if (now > t + SIGV4_MAX_SKEW_SECONDS) {
		*why = msg_expired;
		return SIGV4_EXPIRED;
	}
	if (now < t - SIGV4_MAX_SKEW_SECONDS) {
		*why = msg_not_yet;
		return SIGV4_EXPIRED;
	}

	char cr_hex[65];
	if (!canonical_request_hash(r, a, cr_hex)) {
		*why = msg_too_complex;
		return SIGV4_MALFORMED;
	}

	/* String to sign, streamed into the final HMAC. */
	unsigned char key[32], mac[crypto_auth_hmacsha256_BYTES];
	if (cache != NULL)
		cached_signing_key(key, secret != NULL ? secret : "", a, cache);
	else
		signing_key(key, secret != NULL ? secret : "", a);
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, sizeof(key));
	const char *parts[] = {ALGORITHM "\n", a->amz_date, "\n", a->date, "/", a->region, "/",
			       a->service, "/" TERMINATOR "\n", cr_hex};
	for (size_t i = 0; i < OL_ARRAY_LEN(parts); i++)
		crypto_auth_hmacsha256_update(&st, (const unsigned char *)parts[i], strlen(parts[i]));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(key, sizeof(key));

	char sig[65];
	sodium_bin2hex(sig, sizeof(sig), mac, sizeof(mac));
	if (sodium_memcmp(sig, a->signature, 64) != 0) {
		*why = msg_mismatch;
		return SIGV4_MISMATCH;
	}
	return SIGV4_OK;
}

sigv4_status sigv4_verify(const sigv4_req *r, const sigv4_auth *a, const char *secret, int64_t now,
			  const char **why)
{
	return verify(r, a, secret, now, NULL, why);
}

sigv4_status sigv4_verify_cached(const sigv4_req *r, const sigv4_auth *a, const char *secret, int64_t now,
				 sigv4_key_cache *cache, const char **why)
{
	return verify(r, a, secret, now, cache, why);
}

const char *sigv4_error_type(sigv4_status st)
{
	switch (st) {
	case SIGV4_OK:
		return NULL;
	case SIGV4_MISSING:
		return "MissingAuthenticationTokenException";
	case SIGV4_MALFORMED:
		return "IncompleteSignatureException";
	case SIGV4_EXPIRED:
	case SIGV4_MISMATCH:
		return "InvalidSignatureException";
	}
	return "InvalidSignatureException";
}
