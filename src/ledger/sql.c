/* sql.c — how the ledger runs its statements: one prepared statement (a
 * function of sql/01x_ledger*.sql, or a read) per call, in the request's
 * transaction when it has one (the idempotency claim rides on it, the saved
 * response and COMMIT follow), else on its own. */
#include "ledger/ledger_int.h"

#include <stdlib.h>

#include "log.h"

void lg_sql(const lg_ctx *c, const db_stmt *st, const char *const *values, db_cb cb, void *arg)
{
	db_batch *b = db_batch_new();
	if (b == NULL || !db_batch_add(b, st, values)) {
		db_batch_free(b);
		db_result res = {.status = DB_ERR_QUERY, .failed_index = 0, .message = "out of memory"};
		cb(&res, arg);
		return;
	}
	if (c->tx != NULL)
		db_tx_exec(c->tx, b, 0, cb, arg);
	else
		db_exec(c->db, b, cb, arg);
}

lg_status lg_db_status(const db_result *res, const char *what)
{
	switch (res->status) {
	case DB_OK:
		return LG_OK;
	case DB_ERR_UNAVAILABLE:
	case DB_ERR_BUSY:
	case DB_ERR_TIMEOUT:
		return LG_UNAVAILABLE;
	case DB_ERR_QUERY:
		/* serialization failure, deadlock, lock timeout: the client may retry */
		if (res->sqlstate[0] == '4' && res->sqlstate[1] == '0')
			return LG_UNAVAILABLE;
		if (res->sqlstate[0] == '5' && res->sqlstate[1] == '5' && res->sqlstate[2] == 'P')
			return LG_UNAVAILABLE;
		log_error("ledger_statement_failed", "{s:s, s:s, s:s}", "statement", what, "sqlstate", res->sqlstate, "message",
			  res->message != NULL ? res->message : "");
		return LG_FAILED;
	case DB_ERR_ABORTED:
	default:
		return LG_FAILED;
	}
}
