/* parse.c — HTTP/1.x request-head and chunked-body parsing (RFC 9112).
 * Strict where leniency enables request smuggling: no obs-fold, no
 * whitespace before the colon, one Content-Length, never both framings. */
#include "http/parse.h"

#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return true;
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool http_span_eq_ci(http_span s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

http_span http_head_get(const http_head *h, const char *name)
{
	for (size_t i = 0; i < h->nheaders; i++)
		if (http_span_eq_ci(h->names[i], name))
			return h->values[i];
	return (http_span){NULL, 0};
}

size_t http_head_count(const http_head *h, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < h->nheaders; i++)
		if (http_span_eq_ci(h->names[i], name))
			n++;
	return n;
}

/* Finds "\r\n\r\n" (or a bare "\n\n") ending the head; returns its length. */
static size_t find_head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Does a comma-separated header value contain the token? */
static bool list_has_token(http_span v, const char *tok)
{
	size_t tl = strlen(tok);
	size_t i = 0;
	while (i < v.len) {
		while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
			i++;
		size_t start = i;
		while (i < v.len && v.p[i] != ',')
			i++;
		size_t end = i;
		while (end > start && (v.p[end - 1] == ' ' || v.p[end - 1] == '\t'))
			end--;
		if (end - start == tl && strncasecmp(v.p + start, tok, tl) == 0)
			return true;
	}
	return false;
}

int http_parse_head(const char *buf, size_t len, size_t max_head, http_head *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	/* RFC 9112 §2.2: ignore at least one empty line before the request line. */
	size_t pos = 0;
	while (pos < len && pos < 4 && (buf[pos] == '\r' || buf[pos] == '\n'))
		pos++;
	size_t scan = len - pos > max_head ? max_head : len - pos;
	size_t end = find_head_end(buf + pos, scan);
	if (end == 0) {
		if (len - pos >= max_head) {
			*why = "request header block too large";
			return 431;
		}
		return -1;
	}
	const char *p = buf + pos;
	const char *lim = p + end;
	out->head_len = pos + end;

	/* request-line = method SP request-target SP HTTP-version CRLF */
	const char *s = p;
	while (p < lim && is_tchar((unsigned char)*p))
		p++;
	if (p == s || p >= lim || *p != ' ' || p - s > 16) {
		*why = "malformed request line";
		return 400;
	}
	out->method = (http_span){s, (size_t)(p - s)};
	s = ++p;
	while (p < lim && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
		p++;
	if (p == s || p >= lim || *p != ' ') {
		*why = "malformed request target";
		return 400;
	}
	out->target = (http_span){s, (size_t)(p - s)};
	p++;
	if (lim - p < 9 || memcmp(p, "HTTP/1.", 7) != 0) {
		if (lim - p >= 5 && memcmp(p, "HTTP/", 5) == 0) {
			*why = "HTTP version not supported";
			return 505;
		}
		*why = "malformed HTTP version";
		return 400;
	}
	if (p[7] != '0' && p[7] != '1') {
		*why = "HTTP version not supported";
		return 505;
	}
	out->minor = p[7] - '0';
	p += 8;
	if (*p == '\r')
		p++;
	if (p >= lim || *p != '\n') {
		*why = "malformed request line";
		return 400;
	}
	p++;

	/* header-field = field-name ":" OWS field-value OWS CRLF */
	while (p < lim) {
		if (*p == '\r' || *p == '\n')
			break; /* blank line: end of head */
		if (out->nheaders == HTTP_MAX_HEADERS) {
			*why = "too many header fields";
			return 431;
		}
		s = p;
		while (p < lim && is_tchar((unsigned char)*p))
			p++;
		if (p == s || p >= lim || *p != ':') {
			*why = "malformed header field";
			return 400;
		}
		http_span name = {s, (size_t)(p - s)};
		p++;
		while (p < lim && (*p == ' ' || *p == '\t'))
			p++;
		s = p;
		while (p < lim && *p != '\r' && *p != '\n') {
			unsigned char c = (unsigned char)*p;
			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				*why = "invalid character in header value";
				return 400;
			}
			p++;
		}
		const char *ve = p;
		while (ve > s && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (p < lim && *p == '\r')
			p++;
		if (p >= lim || *p != '\n') {
			*why = "malformed header line";
			return 400;
		}
		p++;
		if (p < lim && (*p == ' ' || *p == '\t')) {
			*why = "obsolete line folding is not accepted";
			return 400;
		}
		out->names[out->nheaders] = name;
		out->values[out->nheaders] = (http_span){s, (size_t)(ve - s)};
		out->nheaders++;
	}

	/* Framing: Transfer-Encoding wins nothing; both present is refused. */
	size_t ncl = http_head_count(out, "Content-Length");
	size_t nte = http_head_count(out, "Transfer-Encoding");
	if (nte > 0) {
		if (ncl > 0) {
			*why = "both Content-Length and Transfer-Encoding";
			return 400;
		}
		http_span te = http_head_get(out, "Transfer-Encoding");
		if (nte > 1 || !http_span_eq_ci(te, "chunked")) {
			*why = "unsupported transfer coding";
			return 501;
		}
		if (out->minor == 0) {
			*why = "chunked transfer coding in HTTP/1.0";
			return 400;
		}
		out->chunked = true;
	} else if (ncl > 0) {
		if (ncl > 1) {
			*why = "repeated Content-Length";
			return 400;
		}
		http_span cl = http_head_get(out, "Content-Length");
		if (cl.len == 0 || cl.len > 18) {
			*why = "invalid Content-Length";
			return 400;
		}
		uint64_t v = 0;
		for (size_t i = 0; i < cl.len; i++) {
			if (cl.p[i] < '0' || cl.p[i] > '9') {
				*why = "invalid Content-Length";
				return 400;
			}
			v = v * 10 + (uint64_t)(cl.p[i] - '0');
		}
		out->has_length = true;
		out->content_length = v;
	}

	http_span conn = http_head_get(out, "Connection");
	if (out->minor == 1)
		out->keep_alive = !(conn.p != NULL && list_has_token(conn, "close"));
	else
		out->keep_alive = conn.p != NULL && list_has_token(conn, "keep-alive");
	return 0;
}

enum { CK_SIZE, CK_EXT, CK_SIZE_LF, CK_DATA, CK_DATA_CR, CK_DATA_LF, CK_TRAILER, CK_TRAILER_LF, CK_DONE };

size_t http_chunked_feed(http_chunked *c, const char *in, size_t len, bool *done,
			 void (*emit)(void *arg, const char *data, size_t n), void *arg)
{
	size_t i = 0;
	*done = false;
	while (i < len) {
		char ch = in[i];
		switch (c->state) {
		case CK_SIZE: {
			int d;
			if (ch >= '0' && ch <= '9')
				d = ch - '0';
			else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
				d = (ch | 0x20) - 'a' + 10;
			else if (c->line_len > 0 && (ch == ';' || ch == ' ' || ch == '\t')) {
				c->state = CK_EXT;
				i++;
				continue;
			} else if (c->line_len > 0 && ch == '\r') {
				c->state = CK_SIZE_LF;
				i++;
				continue;
			} else
				return (size_t)-1;
			if (c->line_len >= 15) /* 2^60: far beyond any body limit */
				return (size_t)-1;
			c->remaining = c->remaining * 16 + (uint64_t)d;
			c->line_len++;
			i++;
			break;
		}
		case CK_EXT:
			if (ch == '\r')
				c->state = CK_SIZE_LF;
			else if (ch == '\n' || (unsigned char)ch < 0x09)
				return (size_t)-1;
			i++;
			break;
		case CK_SIZE_LF:
			if (ch != '\n')
				return (size_t)-1;
			i++;
			c->line_len = 0;
			c->state = c->remaining == 0 ? CK_TRAILER : CK_DATA;
			break;
		case CK_DATA: {
			size_t n = len - i;
			if (n > c->remaining)
				n = (size_t)c->remaining;
			emit(arg, in + i, n);
			c->remaining -= n;
			i += n;
			if (c->remaining == 0)
				c->state = CK_DATA_CR;
			break;
		}
		case CK_DATA_CR:
			if (ch != '\r')
				return (size_t)-1;
			c->state = CK_DATA_LF;
			i++;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return (size_t)-1;
			c->state = CK_SIZE;
			c->line_len = 0;
			i++;
			break;
		case CK_TRAILER:
			/* Trailer lines are read and ignored; an empty line ends the body. */
			if (ch == '\r') {
				c->state = CK_TRAILER_LF;
			} else {
				if (++c->line_len > 8192)
					return (size_t)-1;
			}
			i++;
			break;
		case CK_TRAILER_LF:
			if (ch != '\n')
				return (size_t)-1;
			i++;
			if (c->line_len == 0) {
				c->state = CK_DONE;
				*done = true;
				return i;
			}
			c->line_len = 0;
			c->state = CK_TRAILER;
			break;
		default:
			*done = true;
			return i;
		}
	}
	return i;
}
