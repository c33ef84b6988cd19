/* stmts.c — the registry of the program's fixed statements (stmts.h). */
#include "api/stmts.h"

const db_stmt *const *const api_stmt_tables[] = {
	api_ops_stmts,     auth_akid_stmts,    auth_cache_stmts, it_claim_stmts, it_lease_stmts,  it_store_stmts,
	it_tables_stmts,   it_streams_stmts,   it_sweeper_stmts, it_txn_stmts,   ev_outbox_stmts, ev_read_stmts,
	lg_accounts_stmts, lg_transfers_stmts, lg_holds_stmts,   lg_orders_stmts, lg_inbox_stmts, lg_history_stmts,
	lg_audit_stmts,    NULL,
};
