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
const db_stmt *const it_sweeper_stmts[] = {&stmt_sweep_service, &stmt_sweep_stream, &stmt_sweep, &stmt_sweep_tokens, NULL};

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
