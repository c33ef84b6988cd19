/* sql.c — how the ledger runs its statements: one prepared statement (a
 * function of sql/01x_ledger*.sql, or a read) per call, in the request's
 * transaction when it has one (the idempotency claim rides on it, the saved
 * response and COMMIT follow), else on its own. */
#include "ledger/ledger_int.h"

#include <stdlib.h>
#include <string.h>

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
	if (res->status == DB_OK)
		return LG_OK;
	/* and a lock wait past its limit (55P03): the client may retry too */
	if (db_retryable(res) || (res->status == DB_ERR_QUERY && strncmp(res->sqlstate, "55P", 3) == 0))
		return LG_UNAVAILABLE;
	if (res->status == DB_ERR_QUERY)
		log_error("ledger_statement_failed", "{s:s, s:s, s:s}", "statement", what, "sqlstate", res->sqlstate, "message",
			  res->message != NULL ? res->message : "");
	return LG_FAILED;
}

const char *lg_sql_value(const db_result *res, int row, int col)
{
	PGresult *r = res->nresults > 0 && res->results != NULL ? res->results[0] : NULL;
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || row >= PQntuples(r) || col >= PQnfields(r) ||
	    PQgetisnull(r, row, col))
		return NULL;
	return PQgetvalue(r, row, col);
}

int lg_sql_rows(const db_result *res)
{
	PGresult *r = res->nresults > 0 && res->results != NULL ? res->results[0] : NULL;
	return r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : 0;
}

lg_status lg_outcome(const char *code)
{
	static const struct {
		const char *code;
		lg_status st;
	} map[] = {
		{"ok", LG_OK},
		{"duplicate", LG_DUPLICATE},
		{"exists", LG_EXISTS},
		{"not_found", LG_NOT_FOUND},
		{"currency_mismatch", LG_CURRENCY_MISMATCH},
		{"frozen", LG_FROZEN},
		{"insufficient", LG_INSUFFICIENT},
		{"overflow", LG_OVERFLOW},
		{"not_pending", LG_NOT_PENDING},
		{"too_much", LG_TOO_MUCH},
		{"invalid", LG_INVALID},
	};
	for (size_t i = 0; code != NULL && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(code, map[i].code) == 0)
			return map[i].st;
	log_error("ledger_unknown_outcome", "{s:s}", "code", code != NULL ? code : "(null)");
	return LG_FAILED;
}
