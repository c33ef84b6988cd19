/* events.c — the events of ledger changes (docs/events.md): each is an
 * element of the internal "Outbox" of the TransactWriteItems that makes
 * the change, so the item layer writes it in the same transaction. */
#include "ledger/ledger_int.h"

#include <stdlib.h>

#include "util/util.h"

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

typedef struct emit_call {
	void (*cb)(lg_status st, void *arg);
	void *arg;
} emit_call;

static void emitted(it_reply *r, void *arg)
{
	emit_call *e = arg;
	e->cb(r->err_type == NULL ? LG_OK : lg_err_status(r), e->arg);
	free(e);
}

void lg_emit_deferred(const lg_ctx *c, const char *type, const json_t *data, void (*cb)(lg_status st, void *arg), void *arg)
{
	emit_call *e = calloc(1, sizeof(*e));
	json_t *req = json_pack("{s:[]}", "TransactItems");
	if (e == NULL || req == NULL || !lg_emit(req, type, data)) {
		free(e);
		json_decref(req);
		cb(LG_FAILED, arg);
		return;
	}
	e->cb = cb;
	e->arg = arg;
	lg_call(c, IT_DEFER, "TransactWriteItems", req, emitted, e);
	json_decref(req);
}
