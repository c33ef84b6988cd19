/* stmts.h — the registry of the program's fixed statements: every
 * statement with fixed SQL that the daemon runs (the typed item API's, the
 * ledger's, the events', the gate's and keys'), one table per module,
 * declared where the statements are. The worker's pool prepares them all
 * on each new connection before it serves anything (db_pool_config.stmts),
 * so that a statement whose text is wrong stops the daemon at start-up
 * (statement_invalid). Statements built at run time (the DynamoDB
 * endpoint's) are prepared lazily, per connection, and are not here. */
#ifndef OL_API_STMTS_H
#define OL_API_STMTS_H

#include "db/db.h"

/* Each NULL-terminated, defined in the file named. */
extern const db_stmt *const api_ops_stmts[];      /* api/ops.c */
extern const db_stmt *const auth_akid_stmts[];    /* auth/akid.c */
extern const db_stmt *const auth_cache_stmts[];   /* auth/cache.c */
extern const db_stmt *const it_claim_stmts[];     /* items/claim.c */
extern const db_stmt *const it_lease_stmts[];     /* items/lease.c */
extern const db_stmt *const it_store_stmts[];     /* items/store.c */
extern const db_stmt *const it_tables_stmts[];    /* items/tables.c */
extern const db_stmt *const it_streams_stmts[];   /* items/streams.c */
extern const db_stmt *const it_sweeper_stmts[];   /* items/sweeper.c */
extern const db_stmt *const it_txn_stmts[];       /* items/ops_txn.c */
extern const db_stmt *const ev_outbox_stmts[];    /* events/outbox.c */
extern const db_stmt *const ev_read_stmts[];      /* events/read.c */
extern const db_stmt *const lg_accounts_stmts[];  /* ledger/accounts.c */
extern const db_stmt *const lg_transfers_stmts[]; /* ledger/transfers.c */
extern const db_stmt *const lg_holds_stmts[];     /* ledger/holds.c */
extern const db_stmt *const lg_orders_stmts[];    /* ledger/orders.c */
extern const db_stmt *const lg_inbox_stmts[];     /* ledger/inbox.c */
extern const db_stmt *const lg_history_stmts[];   /* ledger/history.c */
extern const db_stmt *const lg_audit_stmts[];     /* ledger/audit.c */

/* Every table above, NULL-terminated: db_pool_config.stmts. */
extern const db_stmt *const *const api_stmt_tables[];

#endif
