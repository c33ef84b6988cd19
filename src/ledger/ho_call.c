/* ho_call.c — one call of a function of sql/014_ledger_holds_orders.sql
 * (holds, orders, the inbox): the function returns (outcome, doc, events);
 * the outcome becomes an lg_status, doc the object or the problem's
 * members, and each event [type, subject, data] is queued on the request's
 * transaction (events.c: the one writer of outbox rows, sent with the
 * saved response and COMMIT). Without a request transaction the function
 * was asked to write its events itself (lg_ho_emit). */
#include "ledger/ledger_int.h"

#include <stdlib.h>

#include "log.h"

typedef struct ho_run {
	lg_ctx ctx;
	lg_cb cb;
	void *arg;
	const char *what;
} ho_run;

const char *lg_ho_emit(const lg_ctx *c)
{
	return c->tx != NULL ? "false" : "true";
}

/* Queues the events the function returned: a JSON array of
 * [type, subject, data text]. */
static bool defer_events(const lg_ctx *c, const char *events)
{
	if (events == NULL)
		return true;
	if (c->tx == NULL)
		return false; /* the function should have written them */
	json_t *all = json_loads(events, 0, NULL);
	bool ok = json_is_array(all);
	size_t i;
	json_t *ev;
	json_array_foreach(all, i, ev)
	{
		const char *type = json_string_value(json_array_get(ev, 0));
		const char *subject = json_string_value(json_array_get(ev, 1));
		const char *data = json_string_value(json_array_get(ev, 2));
		if (!ok || type == NULL || data == NULL || !lg_event_defer(c, type, subject, data)) {
			ok = false;
			break;
		}
	}
	json_decref(all);
	return ok;
}

static void ho_done(db_result *res, void *arg)
{
	ho_run *k = arg;
	json_t *obj = NULL;
	lg_status st = lg_db_status(res, k->what);
	if (st == LG_OK) {
		const char *doc = lg_sql_value(res, 0, 1);
		st = lg_outcome(lg_sql_value(res, 0, 0));
		obj = doc != NULL ? json_loads(doc, 0, NULL) : NULL;
		if ((st == LG_OK || st == LG_DUPLICATE) && obj == NULL)
			st = LG_FAILED;
		/* A refusal's events too: a lazy expiry commits with the answer. */
		if (st != LG_FAILED && !defer_events(&k->ctx, lg_sql_value(res, 0, 2))) {
			log_error("ledger_events_not_queued", "{s:s}", "statement", k->what);
			st = LG_FAILED;
		}
	}
	if (st == LG_FAILED) {
		json_decref(obj);
		obj = NULL;
	}
	k->cb(st, obj, k->arg);
	json_decref(obj);
	free(k);
}

void lg_ho_call(const lg_ctx *c, const db_stmt *st, const char *const *values, lg_cb cb, void *arg)
{
	ho_run *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, arg);
		return;
	}
	k->ctx = *c;
	k->cb = cb;
	k->arg = arg;
	k->what = st->name;
	lg_sql(c, st, values, ho_done, k);
}

/* ---- sweepers: one call on its own (autocommit), any tenant ---- */

typedef struct ho_sweep {
	void (*cb)(long n, void *arg);
	void *arg;
	const char *what;
} ho_sweep;

static void swept(db_result *res, void *arg)
{
	ho_sweep *s = arg;
	long n = -1;
	if (lg_db_status(res, s->what) == LG_OK) {
		const char *v = lg_sql_value(res, 0, 0);
		n = v != NULL ? strtol(v, NULL, 10) : -1;
	}
	s->cb(n, s->arg);
	free(s);
}

void lg_ho_sweep(db_pool *db, const db_stmt *st, int limit, void (*cb)(long n, void *arg), void *arg)
{
	ho_sweep *s = calloc(1, sizeof(*s));
	db_batch *b = db_batch_new();
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *v[1] = {lim};
	if (s == NULL || b == NULL || db == NULL || !db_batch_add(b, st, v)) {
		free(s);
		db_batch_free(b);
		cb(-1, arg);
		return;
	}
	s->cb = cb;
	s->arg = arg;
	s->what = st->name;
	db_exec(db, b, swept, s);
}
