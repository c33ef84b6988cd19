/* Unit tests for the HTTP/1.x head parser and the chunked decoder. */
#include <stdbool.h>
#include <stdlib.h>

#include "http/parse.h"
#include "tap.h"

static int parse(const char *s, http_head *h)
{
	const char *why = NULL;
	return http_parse_head(s, strlen(s), 16384, h, &why);
}

static char body[256];
static size_t body_len;
static void emit(void *arg, const char *d, size_t n)
{
	(void)arg;
	memcpy(body + body_len, d, n);
	body_len += n;
}

int main(void)
{
	http_head h;
	CHECK(parse("GET /v1/x?a=1 HTTP/1.1\r\nHost: a\r\n\r\n", &h) == 0, "simple GET");
	CHECK(h.method.len == 3 && h.target.len == 9 && h.minor == 1 && h.keep_alive, "GET fields");
	CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\n", &h) == -1, "incomplete head needs more");
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", &h) == 0 && h.has_length && h.content_length == 12,
	      "content-length");
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", &h) == 400, "repeated CL refused");
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &h) == 400, "negative CL refused");
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", &h) == 400, "huge CL refused");
	CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", &h) == 400,
	      "TE + CL refused (smuggling)");
	CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", &h) == 501, "unknown TE 501");
	CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &h) == 0 && h.chunked, "chunked");
	CHECK(parse("GET / HTTP/2.0\r\n\r\n", &h) == 505, "HTTP/2 505");
	CHECK(parse("GET / HTTP/1.0\r\n\r\n", &h) == 0 && !h.keep_alive, "1.0 closes by default");
	CHECK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &h) == 0 && h.keep_alive, "1.0 keep-alive");
	CHECK(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &h) == 0 && !h.keep_alive, "1.1 close");
	CHECK(parse("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", &h) == 400, "space in name refused");
	CHECK(parse("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", &h) == 400, "obs-fold refused");
	CHECK(parse("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", &h) == 400, "control char refused");
	CHECK(parse("GET /a b HTTP/1.1\r\n\r\n", &h) == 400, "space in target refused");
	CHECK(parse("\r\nGET / HTTP/1.1\r\n\r\n", &h) == 0, "leading CRLF ignored");
	CHECK(parse("GET / HTTP/1.1\nX: y\n\n", &h) == 0 && h.nheaders == 1, "bare LF accepted");
	CHECK(parse("GET / HTTP/1.1\r\nX:   padded  \r\n\r\n", &h) == 0 && h.values[0].len == 6, "value trimmed");
	http_span v = http_head_get(&h, "x");
	CHECK(v.p != NULL && memcmp(v.p, "padded", 6) == 0, "case-insensitive lookup");

	char big[20000];
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	const char *why;
	CHECK(http_parse_head(big, sizeof(big), 16384, &h, &why) == 431, "oversized head 431");
	/* 101 headers */
	char many[4096] = "GET / HTTP/1.1\r\n";
	for (int i = 0; i < 101; i++)
		strcat(many, "A: b\r\n");
	strcat(many, "\r\n");
	CHECK(parse(many, &h) == 431, "too many headers 431");

	http_chunked ck = {0};
	bool done = false;
	const char *chunked = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
	size_t used = http_chunked_feed(&ck, chunked, strlen(chunked), &done, emit, NULL);
	CHECK(done && used == strlen(chunked) && body_len == 12 && memcmp(body, "hello, world", 12) == 0, "chunked decode");

	/* byte-at-a-time gives the same answer */
	memset(&ck, 0, sizeof(ck));
	body_len = 0;
	done = false;
	for (size_t i = 0; i < strlen(chunked) && !done; i++)
		if (http_chunked_feed(&ck, chunked + i, 1, &done, emit, NULL) != 1)
			break;
	CHECK(done && body_len == 12, "chunked byte by byte");
	memset(&ck, 0, sizeof(ck));
	CHECK(http_chunked_feed(&ck, "zz\r\n", 4, &done, emit, NULL) == (size_t)-1, "bad chunk size refused");
	memset(&ck, 0, sizeof(ck));
	CHECK(http_chunked_feed(&ck, "3\r\nabcX", 7, &done, emit, NULL) == (size_t)-1, "missing CRLF after data refused");
	memset(&ck, 0, sizeof(ck));
	CHECK(http_chunked_feed(&ck, "ffffffffffffffff\r\n", 18, &done, emit, NULL) == (size_t)-1, "overflowing size refused");
	return it_test_done();
}
