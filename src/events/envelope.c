/* envelope.c — CloudEvent text and sequences (envelope.h). Built by hand
 * rather than with jansson: the members' order is part of the signed
 * bytes, and data, already JSON text, must not be re-encoded. */
#include "events/envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A JSON string: quotes, backslashes and control characters escaped; other
 * bytes as they are (the API only stores valid UTF-8). */
static bool put_string(struct evbuffer *out, const char *s)
{
	bool ok = evbuffer_add(out, "\"", 1) == 0;
	const char *run = s;
	for (const char *p = s; ok && *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		ok = evbuffer_add(out, run, (size_t)(p - run)) == 0 &&
		     (c == '"' ? evbuffer_add(out, "\\\"", 2) == 0
		      : c == '\\' ? evbuffer_add(out, "\\\\", 2) == 0
				 : evbuffer_add_printf(out, "\\u%04x", c) > 0);
		run = p + 1;
	}
	return ok && evbuffer_add(out, run, strlen(run)) == 0 && evbuffer_add(out, "\"", 1) == 0;
}

ev_row ev_row_at(const PGresult *res, int i)
{
	return (ev_row){.txid = strtoull(PQgetvalue(res, i, 0), NULL, 10),
			.n = atoi(PQgetvalue(res, i, 1)),
			.tenant = PQgetvalue(res, i, 2),
			.id = PQgetvalue(res, i, 3),
			.type = PQgetvalue(res, i, 4),
			.subject = PQgetvalue(res, i, 5),
			.time = PQgetvalue(res, i, 6),
			.data = PQgetvalue(res, i, 7)};
}

bool ev_envelope(struct evbuffer *out, const ev_row *row)
{
	char seq[EV_SEQ_LEN];
	ev_sequence(seq, row->txid, row->n);
	return evbuffer_add_printf(out, "{\"specversion\":\"1.0\",\"id\":") > 0 && put_string(out, row->id) &&
	       evbuffer_add_printf(out, ",\"source\":\"onceledger/") > 0 && evbuffer_add(out, row->tenant, strlen(row->tenant)) == 0 &&
	       evbuffer_add_printf(out, "\",\"type\":") > 0 && put_string(out, row->type) &&
	       evbuffer_add_printf(out, ",\"subject\":") > 0 && put_string(out, row->subject) &&
	       evbuffer_add_printf(out, ",\"time\":") > 0 && put_string(out, row->time) &&
	       evbuffer_add_printf(out, ",\"datacontenttype\":\"application/json\",\"sequence\":\"%s\",\"data\":", seq) > 0 &&
	       evbuffer_add(out, row->data, strlen(row->data)) == 0 && evbuffer_add(out, "}", 1) == 0;
}

void ev_sequence(char out[EV_SEQ_LEN], uint64_t txid, int n)
{
	/* txid × 10^6 can pass 2^64: print the two parts, the low one padded. */
	if (txid == 0)
		snprintf(out, EV_SEQ_LEN, "%d", n);
	else
		snprintf(out, EV_SEQ_LEN, "%llu%06d", (unsigned long long)txid, n);
}

bool ev_sequence_parse(const char *s, uint64_t *txid, int *n)
{
	size_t len = strlen(s);
	if (len == 0 || len > 26 || strspn(s, "0123456789") != len)
		return false;
	size_t split = len > 6 ? len - 6 : 0;
	unsigned long long hi = 0;
	for (size_t i = 0; i < split; i++) {
		unsigned long long d = (unsigned long long)(s[i] - '0');
		if (hi > (UINT64_MAX - d) / 10)
			return false;
		hi = hi * 10 + d;
	}
	int lo = 0;
	for (size_t i = split; i < len; i++)
		lo = lo * 10 + (s[i] - '0');
	*txid = hi;
	*n = lo;
	return true;
}
