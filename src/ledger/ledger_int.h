/* ledger_int.h — what the files of src/ledger/ share: typed attribute
 * access on items in DynamoDB JSON, the keys of the single-table layout
 * (docs/ledger.md), and the journal that turns account updates into
 * chained entries. */
#ifndef OL_LEDGER_INT_H
#define OL_LEDGER_INT_H

#include "ledger/ledger.h"

#define LG_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define LG_WORLD_PREFIX "@world:"
#define LG_WORLD_SHARDS 16

/* The S / N value of an attribute (NULL / 0 when absent). */
const char *lg_s(const json_t *item, const char *name);
int64_t lg_n(const json_t *item, const char *name);
/* {"S": s} and {"N": n} attribute values. */
json_t *lg_av_s(const char *s);
json_t *lg_av_n(int64_t n);
/* The key {"PK": {"S": "<prefix><id>"}, "SK": {"S": sk}}. */
json_t *lg_key(const char *prefix, const char *id, const char *sk);
/* The status of a failed item call (logs what is not retryable). */
lg_status lg_err_status(const it_reply *r);
/* The same for a list: a ValidationException there is the client's cursor
 * (ExclusiveStartKey) not fitting the query: LG_INVALID, *extra names it. */
lg_status lg_list_err_status(const it_reply *r, json_t **extra);
/* "@world:<CUR>" → true (and *cur the currency); anything else false. */
bool lg_is_world(const char *id, const char **cur);
/* The text of a JSON value, compact with keys in the given order (NULL on
 * no memory); metadata and saved documents. */
char *lg_dump(const json_t *v);
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
/* Calls an item operation with the context's transaction and flags. */
void lg_call(const lg_ctx *c, int flags, const char *op, json_t *req, it_done cb, void *arg);

/* ---- account legs (legs.c) -------------------------------------------
 *
 * A change of one account's numbers as a conditional UpdateItem (a
 * TransactItems element), and the problem it reports when its condition
 * fails, judged from the account as it was (ALL_OLD). */
typedef struct lg_leg {
	const char *account;  /* id */
	int64_t dposted;      /* added to posted (an entry when not 0) */
	int64_t dpending;     /* added to pending */
	bool guard;           /* spendable must cover what leaves available */
	bool active;          /* a frozen account refuses it */
	const char *currency; /* required currency, NULL: any */
} lg_leg;

json_t *lg_leg_action(const lg_leg *l);
/* A ConditionCheck that the account exists in the currency (ALL_OLD on
 * failure; judged like a leg with only .currency set). */
json_t *lg_check_action(const char *account, const char *currency);
/* The failure of a leg whose condition failed: old is the account or NULL
 * when missing. *rank orders failures (lower is reported first); *extra
 * gets the problem's members. */
lg_status lg_leg_failure(const lg_leg *l, const json_t *old, int *rank, json_t **extra);

/* The API document of an item (its "doc") with another status. */
json_t *lg_doc_with(const json_t *item, const char *status);
/* A cancellation reason that is a failed condition. */
bool lg_reason_failed(const json_t *reason);
/* The Put of a new object failed on its id (reason: its cancellation
 * reason, with ALL_OLD): the same object again (LG_DUPLICATE, *obj its
 * document) or another one (LG_EXISTS, *obj {kind: id}). */
lg_status lg_reused_id(const json_t *reason, const char *params, const char *kind, json_t **obj);
/* The problem of a cancelled transaction from its legs (present[l] false:
 * leg l has no action; present NULL: all do), whose reasons start at
 * index at: the failure ranked first (lg_leg_failure). */
lg_status lg_legs_failure(const lg_leg *legs, const bool *present, int n, const json_t *reasons, int at, json_t **extra);
/* Expiry of holds and orders: the items of open_by_expiry with partition
 * open_pk that are past now, each expired by build(item) (a standalone
 * TransactWriteItems request; NULL skips it). cb gets how many succeeded. */
void lg_sweep_due(it_store *items, const char *open_pk, int limit, json_t *(*build)(const json_t *item),
		  void (*cb)(long n, void *arg), void *arg);

/* ---- transfer items of the item layout (journal.c), for holds and orders
 * until they move to the ledger tables ---- */

/* The Put of a new transfer item (fails when the id exists; ALL_OLD). */
json_t *lg_transfer_put_action(const char *id, const char *params, int64_t amount);
/* The API document of a transfer; from/to NULL mean @world of currency. */
json_t *lg_transfer_doc(const char *id, const char *from, const char *to, int64_t amount, const char *currency,
			const char *description, const json_t *metadata, const char *hold_id, const char *order_id,
			const char *created_at, json_t *entries);
/* The deferred update that stores the document on the transfer item. */
json_t *lg_transfer_doc_action(const char *id, const json_t *doc);

/* ---- the journal (journal.c) ------------------------------------------
 *
 * A request posts entries for one or several transfers. Each account's
 * update (in the first batch) returns the account as written: its new seq
 * and posted balance, and its head and last_at as of the last flush. The
 * journal computes each entry (time, hash over the previous one) and keeps
 * the newest head per account, so that several transfers of one request
 * (a batch) chain correctly; lg_journal_flush then writes every entry, the
 * heads and the @world legs as one deferred TransactWriteItems. */
typedef struct lg_journal lg_journal;

lg_journal *lg_journal_new(void);
void lg_journal_free(lg_journal *j);
/* One leg of a transfer: account (an id, or NULL for @world) gets amount
 * (signed). after is the account item returned by its update (ignored for
 * @world). Returns the API entry ({"account","seq","amount","balance_after"})
 * or NULL on no memory. */
json_t *lg_journal_post(lg_journal *j, const char *transfer_id, const char *account, const char *currency, int64_t amount,
			const json_t *after);
/* A whole transfer posted through the journal. */
typedef struct lg_posting {
	const char *id;
	const char *from, *to;   /* account ids; NULL: @world */
	int64_t amount;
	const char *currency;
	const char *description; /* NULL: none */
	const json_t *metadata;  /* NULL: {} */
	const char *hold_id, *order_id, *created_at;
	const json_t *after_from, *after_to; /* the accounts as their updates left them */
	bool to_inbox; /* the credit goes to the inbox of `to` (inbox.c): no seq yet */
} lg_posting;
/* Posts both legs of a transfer (from −amount, to +amount) and queues its
 * document on the transfer item; returns the document (a new reference) or
 * NULL on failure. */
json_t *lg_journal_transfer(lg_journal *j, const lg_posting *p);
/* Adds one more deferred action (a TransactItems element, taken). */
bool lg_journal_add_action(lg_journal *j, json_t *action);
/* Queues everything (deferred: sent with the transaction's next batch).
 * cb(LG_OK) once queued; the journal is emptied. */
void lg_journal_flush(const lg_ctx *c, lg_journal *j, void (*cb)(lg_status st, void *arg), void *arg);

/* Queues an event of the request (after the transfers' own
 * transfer.posted): written with the flush. */
bool lg_journal_event(lg_journal *j, const char *type, const json_t *data);

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
/* Dead with journal.c (the item-layout inbox credit). */
json_t *lg_inbox_put_action(const char *account, const char *currency, const char *transfer_id, int64_t amount);

/* ---- events (events.c, docs/events.md) ---------------------------------
 *
 * The event of a change made in c's transaction (c->tx, false without
 * one): an outbox row (src/events/outbox.h) queued to go out with the
 * transaction's next batch (the saved response and COMMIT). data is the
 * JSON text, subject the object's id. */
bool lg_event_defer(const lg_ctx *c, const char *type, const char *subject, const char *data) OL_WARN_UNUSED;
/* For item-layer transactions (holds, orders): an event is
 * {"id","type","subject","time","data"} in the "Outbox" of an internal
 * TransactWriteItems, written in the transaction of the change; subject is
 * data's "id". */
json_t *lg_event(const char *type, const json_t *data);
/* Adds the event to req's Outbox. */
bool lg_emit(json_t *req, const char *type, const json_t *data) OL_WARN_UNUSED;

/* Canonical bytes and hash of an entry (docs/ledger.md "The hash chain"):
 * out is 65 bytes of lowercase hex. */
void lg_entry_hash(const char *prev_hex, const char *account, int64_t amount, int64_t balance_after, const char *posted_at,
		   int64_t seq, const char *transfer_id, char out[65]);

#endif
