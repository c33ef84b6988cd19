/* parse.h — pure HTTP/1.x request-head parser (request line + headers).
 * No I/O and no allocation beyond the output struct: the fuzz target drives it. */
#ifndef OL_HTTP_PARSE_H
#define OL_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS 100

typedef struct http_span {
	const char *p;
	size_t len;
} http_span;

typedef struct http_head {
	http_span method;
	http_span target;
	int minor;               /* HTTP/1.<minor> */
	size_t nheaders;
	http_span names[HTTP_MAX_HEADERS];
	http_span values[HTTP_MAX_HEADERS]; /* trimmed of surrounding whitespace */
	/* Derived framing, validated against request smuggling. */
	bool chunked;
	bool has_length;
	uint64_t content_length;
	bool keep_alive;
	size_t head_len;         /* bytes consumed including the blank line */
} http_head;

/* Parses buf[0..len). Returns 0 when a complete, valid head was parsed,
 * -1 when more bytes are needed, or an HTTP status (400, 431, 501, 505)
 * with *why set to a static message. max_head bounds the head size. */
int http_parse_head(const char *buf, size_t len, size_t max_head, http_head *out, const char **why);

/* Case-insensitive header lookup; returns the first value or NULL span. */
http_span http_head_get(const http_head *h, const char *name);
/* Number of occurrences of a header. */
size_t http_head_count(const http_head *h, const char *name);
bool http_span_eq_ci(http_span s, const char *lit);

/* Incremental chunked-body decoder. */
typedef struct http_chunked {
	int state;
	uint64_t remaining;   /* bytes left in the current chunk */
	size_t line_len;      /* bytes of the current size/trailer line seen */
} http_chunked;

/* Consumes input, appending decoded data via emit. Returns bytes consumed,
 * sets *done when the final chunk and trailers were read, or returns
 * (size_t)-1 on a framing error. */
size_t http_chunked_feed(http_chunked *c, const char *in, size_t len, bool *done,
			 void (*emit)(void *arg, const char *data, size_t n), void *arg);

#endif
