/* events.c — the events of ledger changes (docs/events.md).
 *
 * lg_event_defer: a row of the outbox (src/events/outbox.c owns its shape)
 * queued on the request's transaction, sent with its saved response and
 * COMMIT: the event commits with the change, at no extra round trip.
 *
 * lg_event / lg_emit: an element of the internal "Outbox" of an item-layer
 * TransactWriteItems, for the operations still written as item-layer
 * transactions (holds, orders). */
#include "ledger/ledger_int.h"

#include <stdlib.h>

#include "events/outbox.h"
#include "util/util.h"

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

json_t *lg_event(const char *type, const json_t *data)
{
	char id[64], at[40];
	lg_new_id("evt_", id, sizeof(id));
	util_format_time(at, sizeof(at), util_now_us());
	char *text = lg_dump(data);
	const char *subject = json_string_value(json_object_get(data, "id"));
	json_t *ev = text != NULL ? json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", id, "type", type, "subject", subject ? subject : "",
					      "time", at, "data", text)
				  : NULL;
	free(text);
	return ev;
}

bool lg_emit(json_t *req, const char *type, const json_t *data)
{
	json_t *ev = lg_event(type, data);
	if (ev == NULL)
		return false;
	json_t *outbox = json_object_get(req, "Outbox");
	if (outbox == NULL) {
		outbox = json_array();
		if (json_object_set_new(req, "Outbox", outbox) != 0) {
			json_decref(ev);
			return false;
		}
	}
	return json_array_append_new(outbox, ev) == 0;
}
