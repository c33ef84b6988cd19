/* events.c — the events of ledger changes (docs/events.md).
 *
 * lg_event_defer: a row of the outbox (src/events/outbox.c owns its shape)
 * queued on the request's transaction, sent with its saved response and
 * COMMIT: the event commits with the change, at no extra round trip. */
#include "ledger/ledger_int.h"

#include "events/outbox.h"

bool lg_event_defer(const lg_ctx *c, const char *type, const char *subject, const char *data)
{
	if (c->tx == NULL)
		return false;
	db_batch *b = db_batch_new();
	if (b == NULL || !ev_outbox_add(b, c->tenant, type, subject, data)) {
		db_batch_free(b);
		return false;
	}
	return db_tx_defer(c->tx, b);
}
