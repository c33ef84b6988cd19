/* outbox.h — the one writer of outbox rows (docs/events.md): the shape of
 * an event row is decided here, for every producer. The row is a statement
 * added to the caller's batch, so it commits (or not) with the change it
 * describes: a request queues that batch with db_tx_defer, and it goes out
 * with the saved response and COMMIT, in the same round trip. */
#ifndef OL_EVENTS_OUTBOX_H
#define OL_EVENTS_OUTBOX_H

#include <stdbool.h>

#include "db/db.h"

/* Adds the insert of one event of tenant: a new id ("evt_" + 12 hex digits
 * of milliseconds + 20 random hex digits), the time now (RFC 3339, µs),
 * type, subject (the object's id) and data (JSON text, stored as is). Its
 * position n is the next of the writing transaction (ol_outbox_next_n). */
bool ev_outbox_add(db_batch *b, const char *tenant, const char *type, const char *subject,
		   const char *data) OL_WARN_UNUSED;

#endif
