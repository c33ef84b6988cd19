/* tx.c — transactions that span several round trips on one held
 * connection (db.h explains the prefix and why BEGIN comes after it).
 *
 * Each batch of a transaction is sent as
 *   [prefix ...  BEGIN]            first batch only
 *   [deferred statements]          queued by db_tx_defer
 *   batch
 *   [COMMIT]                       with DB_TX_COMMIT
 * and the results are cut back into the prefix's part and the batch's own,
 * indexed as the caller built them. */
#include "db/db_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

struct db_tx {
	db_pool *pool;
	db_conn *conn;   /* held between batches; NULL before or after */
	db_batch *prefix;
	db_cb prefix_cb;
	void *prefix_arg;
	bool started;    /* a batch was sent */
	bool begun;      /* BEGIN ran: the transaction is open */
	bool dead;       /* cannot go on: every later batch is DB_ERR_ABORTED */
	bool committed;
	bool in_flight;
	bool snapshot;      /* BEGIN a read-only repeatable-read transaction */
	db_batch *deferred; /* sent with the next batch, before it */
	/* layout of the batch in flight */
	int n_prefix, i_begin, i_user, n_user, i_commit, n_total;
};

static const db_stmt st_begin = {"db_tx_begin", "BEGIN", 0};
static const db_stmt st_begin_snapshot = {"db_tx_begin_snapshot", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0};
static const db_stmt st_commit = {"db_tx_commit", "COMMIT", 0};
static const db_stmt st_rollback = {"db_tx_rollback", "ROLLBACK", 0};
const db_stmt *const db_tx_stmts[] = {&st_begin, &st_begin_snapshot, &st_commit, &st_rollback, NULL};

db_tx *db_tx_new(db_pool *p)
{
	db_tx *tx = calloc(1, sizeof(*tx));
	if (tx != NULL)
		tx->pool = p;
	return tx;
}

db_tx *db_tx_new_snapshot(db_pool *p)
{
	db_tx *tx = db_tx_new(p);
	if (tx != NULL)
		tx->snapshot = true;
	return tx;
}

void db_tx_set_prefix(db_tx *tx, db_batch *prefix, db_cb cb, void *arg)
{
	db_batch_free(tx->prefix);
	tx->prefix = prefix;
	tx->prefix_cb = cb;
	tx->prefix_arg = arg;
}

bool db_tx_defer(db_tx *tx, db_batch *b)
{
	if (tx->deferred == NULL) {
		tx->deferred = b;
		return true;
	}
	return db_batch_splice(tx->deferred, b);
}

bool db_tx_committed(const db_tx *tx) { return tx->committed; }

static void fail_now(db_tx *tx, db_batch *b, db_status st, const char *msg, db_cb cb, void *arg)
{
	(void)tx;
	db_batch_free(b);
	db_result r = {.status = st, .failed_index = -1, .message = msg};
	cb(&r, arg);
}

static bool add(db_batch *b, const db_stmt *st, int *idx)
{
	*idx = db_batch_len(b);
	return db_batch_add(b, st, NULL);
}

void db_tx_exec(db_tx *tx, db_batch *b, int flags, db_cb cb, void *arg)
{
	if (tx->dead || tx->committed || tx->in_flight) {
		fail_now(tx, b, DB_ERR_ABORTED, "the transaction can no longer run statements", cb, arg);
		return;
	}
	db_batch *all = db_batch_new();
	waiter *wt = calloc(1, sizeof(*wt));
	bool ok = all != NULL && wt != NULL;
	tx->n_prefix = 0;
	tx->i_begin = tx->i_commit = -1;
	if (ok && !tx->started) {
		if (tx->prefix != NULL) {
			tx->n_prefix = db_batch_len(tx->prefix);
			ok = db_batch_splice(all, tx->prefix);
			tx->prefix = NULL;
		}
		ok = ok && add(all, tx->snapshot ? &st_begin_snapshot : &st_begin, &tx->i_begin);
	}
	if (ok && tx->deferred != NULL) {
		ok = db_batch_splice(all, tx->deferred);
		tx->deferred = NULL;
	}
	tx->i_user = ok ? db_batch_len(all) : 0;
	tx->n_user = db_batch_len(b);
	ok = ok && db_batch_splice(all, b);
	b = NULL;
	if (ok && (flags & DB_TX_COMMIT))
		ok = add(all, &st_commit, &tx->i_commit);
	if (!ok) {
		free(wt);
		db_batch_free(all);
		db_batch_free(b);
		tx->dead = tx->dead || tx->started;
		db_result r = {.status = DB_ERR_UNAVAILABLE, .failed_index = -1, .message = "out of memory"};
		cb(&r, arg);
		return;
	}
	tx->n_total = db_batch_len(all);
	tx->started = true;
	tx->in_flight = true;
	wt->batch = all;
	wt->cb = cb;
	wt->arg = arg;
	wt->tx = tx;
	wt->flags = flags;
	if (tx->conn != NULL)
		db_conn_start_job(tx->conn, wt);
	else
		db_pool_submit(tx->pool, wt);
}

/* Where the first failure happened, relative to the layout. */
static bool failed_in(int from, int n, const db_result *res)
{
	return res->status == DB_ERR_QUERY && res->failed_index >= from && res->failed_index < from + n;
}

bool db_tx_job_keeps_conn(db_conn *c, waiter *wt, db_result *res)
{
	db_tx *tx = wt->tx;
	tx->in_flight = false;
	if (c != NULL && tx->conn == NULL && res->status != DB_ERR_UNAVAILABLE && res->status != DB_ERR_TIMEOUT) {
		tx->conn = c;
		c->tx = tx;
	}
	bool conn_ok = c != NULL && c->state != DC_DOWN && c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK;
	if (!conn_ok || (res->status != DB_OK && res->status != DB_ERR_QUERY)) {
		/* No connection, or it broke (a FATAL error is also a query
		 * error): PostgreSQL rolls back by itself. */
		if (tx->conn != NULL)
			tx->conn->tx = NULL;
		tx->conn = NULL;
		tx->dead = true;
		return false;
	}
	bool prefix_failed = failed_in(0, tx->n_prefix, res) || (tx->i_begin >= 0 && res->failed_index == tx->i_begin);
	if (tx->i_begin >= 0 && !prefix_failed)
		tx->begun = true;
	bool keep = true;
	if (prefix_failed) {
		/* The implicit transaction was rolled back at the Sync. */
		tx->dead = true;
		keep = false;
	} else if (res->status == DB_ERR_QUERY) {
		tx->dead = true; /* aborted; db_tx_free rolls it back */
		if (tx->i_commit >= 0 && res->failed_index == tx->i_commit)
			keep = false; /* a failed COMMIT ends the transaction */
	} else if (tx->i_commit >= 0) {
		tx->committed = true;
		keep = false;
	}
	if (!keep && tx->conn != NULL) {
		tx->conn->tx = NULL;
		tx->conn = NULL;
	}
	return keep;
}

/* A view of results [from, from+n) with the failure translated. */
static void slice(const db_result *all, int from, int n, db_result *out)
{
	memset(out, 0, sizeof(*out));
	out->status = all->status;
	out->nresults = n;
	out->results = all->results != NULL ? all->results + from : NULL;
	out->failed_index = -1;
	memcpy(out->sqlstate, all->sqlstate, sizeof(out->sqlstate));
	out->message = all->message;
	if (all->status == DB_ERR_QUERY) {
		if (all->failed_index >= from && all->failed_index < from + n)
			out->failed_index = all->failed_index - from;
		else if (all->failed_index < from)
			out->status = DB_ERR_ABORTED;
	}
}

void db_tx_job_deliver(waiter *wt, db_result *res)
{
	db_tx *tx = wt->tx;
	bool with_results = res->results != NULL && res->nresults == tx->n_total;
	if (tx->n_prefix > 0 && tx->prefix_cb != NULL) {
		db_result pr;
		if (with_results) {
			slice(res, 0, tx->n_prefix, &pr);
			if (pr.status == DB_ERR_QUERY && pr.failed_index < 0)
				pr.status = DB_OK; /* the failure came after the prefix */
		} else {
			pr = (db_result){.status = res->status, .failed_index = -1, .message = res->message};
		}
		db_cb pcb = tx->prefix_cb;
		tx->prefix_cb = NULL;
		pcb(&pr, tx->prefix_arg);
	}
	if (wt->cb == NULL)
		return;
	db_result ur;
	if (with_results) {
		slice(res, tx->i_user, tx->n_user, &ur);
		if (ur.status == DB_ERR_QUERY && ur.failed_index < 0 && res->failed_index >= tx->i_user + tx->n_user)
			ur.status = DB_ERR_QUERY; /* COMMIT failed: the batch did not take effect */
	} else {
		ur = (db_result){.status = res->status, .failed_index = -1, .message = res->message};
	}
	wt->cb(&ur, wt->arg);
}

void db_tx_conn_lost(db_tx *tx)
{
	tx->conn = NULL;
	tx->dead = true;
}

static void rolled_back(db_result *res, void *arg)
{
	(void)arg;
	if (res->status != DB_OK)
		log_debug("db_tx_rollback_failed", "{s:s}", "error", res->message ? res->message : "");
}

void db_tx_free(db_tx *tx)
{
	if (tx == NULL)
		return;
	if (tx->in_flight)
		log_error("db_tx_free_in_flight", "{}"); /* a bug: the callback would see freed memory */
	db_conn *c = tx->conn;
	db_batch_free(tx->prefix);
	db_batch_free(tx->deferred);
	if (c != NULL && c->state != DC_HELD) {
		c->tx = NULL; /* broke meanwhile: nothing to roll back */
		c = NULL;
	}
	if (c != NULL) {
		c->tx = NULL;
		db_batch *b = db_batch_new();
		waiter *wt = calloc(1, sizeof(*wt));
		if (b != NULL && wt != NULL && db_batch_add(b, &st_rollback, NULL)) {
			/* Sent without waiting: the connection returns to the pool
			 * when PostgreSQL has rolled back. */
			wt->batch = b;
			wt->cb = rolled_back;
			db_conn_start_job(c, wt);
		} else {
			free(wt);
			db_batch_free(b);
			/* Cannot roll back: drop the connection instead. */
			db_conn_broken(c, DB_ERR_UNAVAILABLE, "out of memory");
		}
	}
	free(tx);
}
