/* ledger_int.h — what the files of src/ledger/ share: running the
 * statements and SQL functions of the ledger tables (sql/012-015), reading
 * their outcomes, and queuing the events of a change. */
#ifndef OL_LEDGER_INT_H
#define OL_LEDGER_INT_H

#include "ledger/ledger.h"

/* The text of a JSON value, compact with keys in the given order (NULL on
 * no memory); metadata and saved documents. */
char *lg_dump(const json_t *v);
/* The parameters a reused transfer id is compared on, as JSON text
 * (malloc'd; NULL when out of memory). */
char *lg_transfer_params(const lg_transfer_new *t);
/* Runs one prepared statement with the context's transaction (c->tx), or
 * on its own (c->db) when there is none (sql.c). */
void lg_sql(const lg_ctx *c, const db_stmt *st, const char *const *values, db_cb cb, void *arg);
/* The ledger status of a statement's failure (LG_OK for DB_OK); logs the
 * ones that are not retryable, naming the statement. */
lg_status lg_db_status(const db_result *res, const char *what);
/* The text of row, col of the statement's result (NULL: SQL NULL, or no
 * such row), and its number of rows. */
const char *lg_sql_value(const db_result *res, int row, int col);
int lg_sql_rows(const db_result *res);
/* The status of an outcome code of the ledger's SQL functions
 * (sql/013_ledger_transfers.sql: "ok", "duplicate", "exists", "not_found",
 * "currency_mismatch", "frozen", "insufficient", "overflow", ...). */
lg_status lg_outcome(const char *code);

/* ---- holds, orders, the inbox (ho_call.c, sql/014) ----------------------
 *
 * One call of a function of sql/014_ledger_holds_orders.sql returning
 * (outcome, doc, events): cb gets the status of the outcome and doc (the
 * object, or the problem's members); the events are queued on c->tx. */
void lg_ho_call(const lg_ctx *c, const db_stmt *st, const char *const *values, lg_cb cb, void *arg);
/* The functions' p_emit: "true" (write the events in SQL) without a request
 * transaction, else "false" (return them, lg_ho_call queues them). */
const char *lg_ho_emit(const lg_ctx *c);
/* A sweeper: the statement with $1 = limit, on its own; cb gets its count
 * (or -1 on error). */
void lg_ho_sweep(db_pool *db, const db_stmt *st, int limit, void (*cb)(long n, void *arg), void *arg);

/* ---- events (events.c, docs/events.md) ---------------------------------
 *
 * The event of a change made in c's transaction (c->tx, false without
 * one): an outbox row (src/events/outbox.h) queued to go out with the
 * transaction's next batch (the saved response and COMMIT). data is the
 * JSON text, subject the object's id. */
bool lg_event_defer(const lg_ctx *c, const char *type, const char *subject, const char *data) OL_WARN_UNUSED;

#endif
