/* libFuzzer target: the HTTP head parser and the chunked decoder on
 * arbitrary bytes; every span returned must lie inside the input. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "http/parse.h"

static void sink(void *arg, const char *d, size_t n)
{
	size_t *total = arg;
	(void)d;
	*total += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	http_head h;
	const char *why = NULL;
	int rc = http_parse_head(buf, size, 8192, &h, &why);
	if (rc == 0) {
		assert(h.head_len <= size);
		for (size_t i = 0; i < h.nheaders; i++) {
			assert(h.names[i].p >= buf && h.names[i].p + h.names[i].len <= buf + size);
			assert(h.values[i].p >= buf && h.values[i].p + h.values[i].len <= buf + size);
		}
		if (h.chunked) {
			http_chunked ck = {0};
			bool done = false;
			size_t total = 0;
			size_t used = http_chunked_feed(&ck, buf + h.head_len, size - h.head_len, &done, sink, &total);
			assert(used == (size_t)-1 || used <= size - h.head_len);
			assert(total <= size);
		}
	} else if (rc > 0) {
		assert(why != NULL);
	}
	return 0;
}
