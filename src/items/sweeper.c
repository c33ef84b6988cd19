/* sweeper.c — TTL: deletes expired items in batches (reads already hide
 * them; their stream records say a service deleted them), forgets
 * ClientRequestTokens older than ten minutes, and drops stream records past
 * their 24 hours (in batches too). Driven by
 * a periodic timer of the daemon; any instance may run it, the batches use
 * SKIP LOCKED so concurrent sweepers never wait on each other. */
#include "items/items_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "items/write.h"

/* Marks this transaction's deletions as the service's (the stream trigger
 * reads it, sql/011_streams.sql). */
static const db_stmt stmt_sweep_service = {"it_sweep_service", "SELECT set_config('ol.stream_service', 'true', true)", 0};
static const db_stmt stmt_sweep_stream = {
	"it_sweep_stream",
	"DELETE FROM item_stream s USING (SELECT table_id, ord, seq FROM item_stream"
	" WHERE created_at < now() - interval '24 hours' ORDER BY created_at LIMIT $1::int FOR UPDATE SKIP LOCKED) d"
	" WHERE s.table_id = d.table_id AND s.ord = d.ord AND s.seq = d.seq",
	1};
static const db_stmt stmt_sweep = {
	"it_sweep_expired",
	"WITH doomed AS (SELECT table_id, pk, sk FROM items WHERE expires_at IS NOT NULL AND expires_at <= $1::bigint"
	" ORDER BY expires_at LIMIT $2::int FOR UPDATE SKIP LOCKED)"
	" DELETE FROM items i USING doomed d WHERE i.table_id = d.table_id AND i.pk = d.pk AND i.sk = d.sk"
	" AND i.expires_at <= $1::bigint",
	2};
static const db_stmt stmt_sweep_tokens = {
	"it_sweep_tokens", "DELETE FROM item_txn_tokens WHERE created_at < now() - interval '10 minutes'", 0};

typedef struct sweep {
	void (*cb)(long deleted, void *arg);
	void *arg;
	int count_at; /* the statement whose row count is the answer */
} sweep;

static void swept(db_result *res, void *arg)
{
	sweep *s = arg;
	long n = -1;
	if (res->status == DB_OK)
		n = atol(PQcmdTuples(res->results[s->count_at]));
	s->cb(n, s->arg);
	free(s);
}

void it_sweep_expired(it_store *st, int batch, void (*cb)(long deleted, void *arg), void *arg)
{
	char now[24], lim[16];
	it_w_now(now);
	snprintf(lim, sizeof(lim), "%d", batch);
	const char *p[2] = {now, lim};
	sweep *s = calloc(1, sizeof(*s));
	db_batch *b = db_batch_new();
	/* one implicit transaction: the service mark covers the deletions */
	if (s == NULL || b == NULL || !db_batch_add(b, &stmt_sweep_service, NULL) || !db_batch_add(b, &stmt_sweep, p) ||
	    !db_batch_add(b, &stmt_sweep_tokens, NULL)) {
		free(s);
		db_batch_free(b);
		cb(-1, arg);
		return;
	}
	s->cb = cb;
	s->arg = arg;
	s->count_at = 1; /* after the service mark */
	db_exec(st->db, b, swept, s);
}

void it_sweep_streams(it_store *st, int batch, void (*cb)(long deleted, void *arg), void *arg)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", batch);
	const char *p[1] = {lim};
	sweep *s = calloc(1, sizeof(*s));
	db_batch *b = db_batch_new();
	if (s == NULL || b == NULL || !db_batch_add(b, &stmt_sweep_stream, p)) {
		free(s);
		db_batch_free(b);
		cb(-1, arg);
		return;
	}
	s->cb = cb;
	s->arg = arg;
	db_exec(st->db, b, swept, s);
}

/* The index slots of the system table (sql/005_ledger.sql, 006_orders.sql). */
static const struct {
	const char *name;
	int slot;
} system_slots[] = {{"by_owner", 1},	    {"orders_by_status", 2},	 {"open_by_expiry", 3},	  {"by_customer", 4},
		    {"entries_by_time", 5}, {"accounts_by_currency", 6}, {"orders_by_created", 7}};

typedef struct due {
	void (*cb)(json_t *rows, void *arg);
	void *arg;
} due;

static void due_done(db_result *res, void *arg)
{
	due *d = arg;
	json_t *rows = NULL;
	if (res->status == DB_OK) {
		rows = json_array();
		PGresult *r = res->results[0];
		for (int i = 0; i < PQntuples(r); i++) {
			json_t *item = json_loads(PQgetvalue(r, i, 1), 0, NULL);
			if (item != NULL)
				json_array_append_new(rows, json_pack("{s:s, s:o}", "tenant", PQgetvalue(r, i, 0), "item", item));
		}
	}
	d->cb(rows, d->arg);
	json_decref(rows);
	free(d);
}

void it_system_due(it_store *s, const char *index, const char *pk, const char *below, int limit,
		   void (*cb)(json_t *rows, void *arg), void *arg)
{
	int slot = 0;
	for (size_t i = 0; i < OL_ARRAY_LEN(system_slots); i++)
		if (strcmp(system_slots[i].name, index) == 0)
			slot = system_slots[i].slot;
	char sql[512], lim[16];
	/* The slot number comes from the table above, never from a request. */
	snprintf(sql, sizeof(sql),
		 "SELECT t.tenant, i.item::text FROM item_tables t JOIN items i ON i.table_id = t.id"
		 " WHERE t.name = '" IT_SYSTEM_TABLE "' AND i.x%dpk = $1 AND i.x%dsk < $2 ORDER BY i.x%dsk LIMIT $3::int",
		 slot, slot, slot);
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *p[3] = {pk, below, lim};
	due *d = calloc(1, sizeof(*d));
	db_batch *b = db_batch_new();
	if (slot == 0 || d == NULL || b == NULL || !db_batch_add_sql(b, sql, 3, p)) {
		free(d);
		db_batch_free(b);
		cb(NULL, arg);
		return;
	}
	d->cb = cb;
	d->arg = arg;
	db_exec(s->db, b, due_done, d);
}

db_tx *it_tx_new(it_store *s)
{
	return db_tx_new(s->db);
}

typedef struct commit_call {
	void (*cb)(bool ok, void *arg);
	void *arg;
} commit_call;

static void commit_done(db_result *res, void *arg)
{
	commit_call *c = arg;
	c->cb(res->status == DB_OK, c->arg);
	free(c);
}

void it_tx_commit(db_tx *tx, void (*cb)(bool ok, void *arg), void *arg)
{
	commit_call *c = calloc(1, sizeof(*c));
	db_batch *b = db_batch_new();
	if (c == NULL || b == NULL) {
		free(c);
		db_batch_free(b);
		cb(false, arg);
		return;
	}
	c->cb = cb;
	c->arg = arg;
	db_tx_exec(tx, b, DB_TX_COMMIT, commit_done, c);
}

db_tx *it_snapshot_new(it_store *s)
{
	return db_tx_new_snapshot(s->db);
}

void it_tx_mark(db_tx *tx)
{
	db_tx_mark(tx);
}

void it_tx_undo(db_tx *tx)
{
	db_tx_undo(tx);
}
