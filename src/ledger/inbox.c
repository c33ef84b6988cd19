/* inbox.c — the hot merchant's inbox (docs/orders.md "The hot merchant",
 * docs/ledger-engine.md): a settlement whose merchant row another
 * transaction holds credits one of the merchant's 16 inbox shards instead
 * of waiting (sql/014's ho_merchant_credit); consolidation posts the inbox
 * rows as chained entries and hands the shards their room again
 * (ledger.inbox_consolidate). It runs from the sweeper (here), before a GET
 * of the account and when a debit of the account fails its guard (both in
 * SQL, ledger.inbox_post). */
#include "ledger/ledger_int.h"

static const db_stmt st_sweep = {"lg_inbox_sweep", "SELECT ledger.inbox_sweep($1::integer)", 1};
const db_stmt *const lg_inbox_stmts[] = {&st_sweep, NULL};

void lg_inbox_sweep(db_pool *db, int limit, void (*cb)(long n, void *arg), void *arg)
{
	lg_ho_sweep(db, &st_sweep, limit, cb, arg);
}
