/* db.h — asynchronous PostgreSQL access on a worker's event loop: a pool of
 * non-blocking libpq connections in pipeline mode, prepared statements
 * (the program's fixed ones when a connection connects, any other lazily on
 * its first use there), and batches that run as one implicit
 * transaction in one round trip. When PostgreSQL is gone, calls fail fast
 * and connections come back with backoff. */
#ifndef OL_DB_H
#define OL_DB_H

#include <stdbool.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "util/util.h"

typedef struct db_pool db_pool;
typedef struct db_batch db_batch;

/* A statement is declared once, statically. The program's fixed statements
 * are listed in db_pool_config.stmts and prepared on each new connection
 * before it is handed out; any other is prepared on a connection the first
 * time that connection runs it. */
typedef struct db_stmt {
	const char *name;
	const char *sql;
	int nparams;
} db_stmt;

typedef enum {
	DB_OK = 0,
	DB_ERR_UNAVAILABLE, /* no connection to PostgreSQL */
	DB_ERR_BUSY,        /* every connection busy and the wait queue full */
	DB_ERR_TIMEOUT,     /* no answer within db_query_timeout_ms */
	DB_ERR_QUERY,       /* a statement failed; see sqlstate/message */
	DB_ERR_ABORTED,     /* not run: the transaction had already failed */
} db_status;

typedef struct db_result {
	db_status status;
	int nresults;
	PGresult **results;  /* one per statement, in batch order (NULL if not run) */
	int failed_index;    /* statement that failed, or -1 */
	char sqlstate[6];
	const char *message; /* valid during the callback */
} db_result;

typedef void (*db_cb)(db_result *res, void *arg);

/* A failure the client may simply retry: no connection, busy or slow
 * pool, or a transaction rollback class error (40xxx: serialization
 * failure, deadlock). */
bool db_retryable(const db_result *res);

typedef struct db_pool_config {
	const char *conninfo;
	int size;
	int connect_timeout_ms;
	int query_timeout_ms;
	int queue_max;
	const char *application_name;
	/* Statements prepared on every connection right after it connects, in
	 * one round trip, before it serves anything: a NULL-terminated list of
	 * NULL-terminated tables (the transaction statements of tx.c are always
	 * added). NULL: only those. */
	const db_stmt *const *const *stmts;
	/* Called when one of them cannot be prepared because of its own text
	 * (SQLSTATE class 42: a syntax error, an undefined column, function or
	 * table — also the schema not migrated), after statement_invalid was
	 * logged: a programming error the program cannot serve with. The pool
	 * stops connecting. NULL: the connection is retried with backoff. */
	void (*on_invalid)(void *arg);
	void *invalid_arg;
} db_pool_config;

db_pool *db_pool_new(struct event_base *base, const db_pool_config *cfg);
void db_pool_free(db_pool *p);
/* Connections currently established. */
int db_pool_up(const db_pool *p);
int db_pool_size(const db_pool *p);
int db_pool_busy(const db_pool *p);
int db_pool_queued(const db_pool *p);
/* Batches sent so far: each is one round trip to PostgreSQL (the prepare
 * round trip of a new connection is not counted). */
unsigned long db_pool_round_trips(const db_pool *p);

db_batch *db_batch_new(void);
void db_batch_free(db_batch *b);
/* Adds a statement with text parameters (copied; NULL value = SQL NULL). */
bool db_batch_add(db_batch *b, const db_stmt *st, const char *const *values) OL_WARN_UNUSED;
/* Same with explicit lengths and formats (1 = binary) per parameter. */
bool db_batch_add_ex(db_batch *b, const db_stmt *st, const char *const *values, const int *lengths,
		     const int *formats) OL_WARN_UNUSED;
int db_batch_len(const db_batch *b);
/* Adds a statement whose text is built at run time (e.g. a compiled item
 * expression). Values are still parameters; the text is prepared once per
 * connection and cached by its hash, so a repeated shape costs no parse. */
bool db_batch_add_sql(db_batch *b, const char *sql, int nparams, const char *const *values) OL_WARN_UNUSED;
/* The same, taking ownership of sql and of every values[i] (malloc'd, set to
 * NULL in the array on success) instead of copying them. */
bool db_batch_add_sql_take(db_batch *b, char *sql, int nparams, char **values) OL_WARN_UNUSED;

/* Moves every statement of src to the end of dst and frees src (also on
 * failure, when dst is unchanged). */
bool db_batch_splice(db_batch *dst, db_batch *src) OL_WARN_UNUSED;

/* Runs the batch as one implicit transaction: every statement or none.
 * Takes ownership of b. cb is called exactly once — synchronously when the
 * pool is down or full — and the results are freed when it returns. */
void db_exec(db_pool *p, db_batch *b, db_cb cb, void *arg);

/* ---- transactions over several round trips ----------------------------
 *
 * A db_tx holds one connection from its first batch until it is freed, so
 * that batches built from the results of earlier ones (the idempotency
 * claim, then a request's effects, then its saved response) commit or roll
 * back together. Nothing is sent until the first db_tx_exec: a request that
 * fails validation never touches the database.
 *
 * The prefix (optional) runs in the first round trip, before BEGIN, in the
 * implicit transaction of that pipeline: when one of its statements fails,
 * PostgreSQL rolls that implicit transaction back at the Sync, nothing after
 * the failure ran, the transaction is dead and the connection goes straight
 * back to the pool. When it succeeds, BEGIN turns the implicit transaction
 * into the explicit one that the later batches continue. */
typedef struct db_tx db_tx;

enum {
	DB_TX_COMMIT = 1, /* commit after the batch (the last one) */
};

db_tx *db_tx_new(db_pool *p);
/* A read-only transaction whose statements all see one snapshot
 * (REPEATABLE READ): consistent reads over several round trips. */
db_tx *db_tx_new_snapshot(db_pool *p);
/* Sets the prefix (taken) and its callback, which runs with the prefix's
 * results before the callback of the batch they were sent with. */
void db_tx_set_prefix(db_tx *tx, db_batch *prefix, db_cb cb, void *arg);
/* Sends b within the transaction (taking it). A batch whose statements all
 * ran but was sent after a failure the transaction cannot recover from gets
 * DB_ERR_ABORTED; a failed COMMIT is DB_ERR_QUERY with failed_index -1. */
void db_tx_exec(db_tx *tx, db_batch *b, int flags, db_cb cb, void *arg);
/* Queues b (taken) to be sent at the start of the next batch: statements
 * whose results nobody needs and whose failure must abort the whole
 * transaction (the next batch then gets DB_ERR_ABORTED). */
bool db_tx_defer(db_tx *tx, db_batch *b) OL_WARN_UNUSED;
/* True when the transaction committed. */
bool db_tx_committed(const db_tx *tx);
/* Rolls back what is not committed and returns the connection; must not be
 * called while a batch of the transaction is in flight. */
void db_tx_free(db_tx *tx);

#endif
