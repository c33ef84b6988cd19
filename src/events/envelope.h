/* envelope.h — an outbox row as the CloudEvent text of docs/api.md §8 (the
 * exact bytes that are signed), and the position ↔ sequence mapping:
 * sequence = txid × 1000000 + n, stream id "<txid>-<n>" (docs/events.md). */
#ifndef OL_EVENTS_ENVELOPE_H
#define OL_EVENTS_ENVELOPE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <libpq-fe.h>

#define EV_SEQ_PER_TXID 1000000
#define EV_SEQ_LEN 32

typedef struct ev_row {
	uint64_t txid;
	int n;
	const char *tenant, *id, *type, *subject, *time;
	const char *data; /* JSON text, inserted as is */
} ev_row;

/* Row i of a result whose first columns are txid::text, n, tenant, id,
 * type, subject, time, data (the relay's and the replay's queries); the
 * strings point into res. */
ev_row ev_row_at(const PGresult *res, int i);
/* Appends the CloudEvent text of row to out; false on no memory. */
bool ev_envelope(struct evbuffer *out, const ev_row *row);
/* The decimal sequence of a position. */
void ev_sequence(char out[EV_SEQ_LEN], uint64_t txid, int n);
/* Parses a sequence (decimal digits, no sign, at most 26 digits). */
bool ev_sequence_parse(const char *s, uint64_t *txid, int *n);

#endif
