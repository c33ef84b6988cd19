/* read.c — GET /v1/events from the outbox (read.h). */
#include "events/read.h"

#include <stdio.h>
#include <stdlib.h>

#include "events/envelope.h"

typedef struct ev_read_call {
	ev_read_cb cb;
	void *arg;
	int limit;
} ev_read_call;

static const db_stmt stmt_read = {
	"ev_read",
	"SELECT txid::text, n, tenant, id, type, subject, time, data FROM outbox"
	" WHERE tenant = $1 AND (txid, n) > ($2::xid8, $3::int) AND txid < pg_snapshot_xmin(pg_current_snapshot())"
	" ORDER BY outbox.tenant, outbox.txid, outbox.n LIMIT $4::int",
	4};
const db_stmt *const ev_read_stmts[] = {&stmt_read, NULL};

static void read_done(db_result *res, void *arg)
{
	ev_read_call *c = arg;
	if (res->status != DB_OK) {
		c->cb(res, NULL, c->arg);
		free(c);
		return;
	}
	PGresult *pr = res->results[0];
	int rows = PQntuples(pr);
	json_t *data = json_array();
	struct evbuffer *buf = evbuffer_new();
	char seq[EV_SEQ_LEN] = "";
	for (int i = 0; data != NULL && buf != NULL && i < rows; i++) {
		ev_row row = ev_row_at(pr, i);
		evbuffer_drain(buf, evbuffer_get_length(buf));
		json_t *ev = NULL;
		if (ev_envelope(buf, &row))
			ev = json_loadb((const char *)evbuffer_pullup(buf, -1), evbuffer_get_length(buf), JSON_DECODE_ANY, NULL);
		if (ev == NULL) {
			json_decref(data);
			data = NULL;
			break;
		}
		json_array_append_new(data, ev);
		ev_sequence(seq, row.txid, row.n);
	}
	if (buf != NULL)
		evbuffer_free(buf);
	json_t *page = data != NULL ? json_pack("{s:o, s:o}", "data", data, "next_cursor", rows >= c->limit ? json_string(seq) : json_null())
				    : NULL;
	if (page == NULL) {
		db_result oom = {.status = DB_ERR_QUERY, .failed_index = -1, .message = "out of memory"};
		c->cb(&oom, NULL, c->arg);
	} else {
		c->cb(NULL, page, c->arg);
	}
	json_decref(page);
	free(c);
}

void ev_read(db_pool *db, const char *tenant, uint64_t after_txid, int after_n, int limit, ev_read_cb cb, void *arg)
{
	ev_read_call *c = calloc(1, sizeof(*c));
	db_batch *b = db_batch_new();
	char t[24], n[16], l[16];
	snprintf(t, sizeof(t), "%llu", (unsigned long long)after_txid);
	snprintf(n, sizeof(n), "%d", after_n);
	snprintf(l, sizeof(l), "%d", limit);
	const char *p[4] = {tenant, t, n, l};
	if (c == NULL || b == NULL || !db_batch_add(b, &stmt_read, p)) {
		free(c);
		db_batch_free(b);
		db_result oom = {.status = DB_ERR_QUERY, .failed_index = -1, .message = "out of memory"};
		cb(&oom, NULL, arg);
		return;
	}
	c->cb = cb;
	c->arg = arg;
	c->limit = limit;
	db_exec(db, b, read_done, c);
}
