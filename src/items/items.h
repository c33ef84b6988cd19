/* items.h — the item layer's public interface: DynamoDB operations over
 * PostgreSQL, for one tenant at a time. Requests and responses are
 * DynamoDB's own JSON shapes (the same bodies the wire protocol carries), so
 * the DynamoDB endpoint is a thin adapter and the domain code speaks the
 * same language as the documentation it follows. This header is the only
 * way into src/items/ for the rest of the program. */
#ifndef IT_ITEMS_H
#define IT_ITEMS_H

#include <stdbool.h>

#include <jansson.h>

#include "db/db.h"

typedef struct it_store it_store;

/* The outcome of one operation. On success err_type is NULL and body holds
 * the response; otherwise err_type is DynamoDB's error type (e.g.
 * "ConditionalCheckFailedException"), err_msg its message, and err_extra
 * the extra members (CancellationReasons, Item) or NULL. */
typedef struct it_reply {
	json_t *body;
	const char *err_type;
	char *err_msg;
	json_t *err_extra;
	bool retryable; /* the database was unavailable: a 5xx, safe to retry */
} it_reply;

typedef void (*it_done)(it_reply *r, void *arg);

/* One store per worker, on the worker's database pool. */
it_store *it_store_new(db_pool *db);
void it_store_free(it_store *s);
/* The key that signs DynamoDB Streams shard iterators (32 bytes, derived
 * from the master key); without one the stream operations are refused. */
void it_store_set_stream_key(it_store *s, const unsigned char key[32]);

/* Runs the DynamoDB operation `op` ("PutItem", "Query", ...) with the given
 * request for the tenant. Takes a reference to request. cb runs exactly
 * once (possibly synchronously); the reply is freed when it returns. */
void it_call(it_store *s, const char *tenant, const char *op, json_t *request, it_done cb, void *arg);

/* The same inside the caller's transaction tx (see db.h): the operation's
 * statements run in a savepoint, so a failed condition or a cancelled
 * TransactWriteItems undoes only this operation and the transaction goes
 * on; flags may add DB_TX_COMMIT to commit after it. Calls through here
 * (tx != NULL, or IT_INTERNAL in flags) may name the system tables. */
enum {
	IT_INTERNAL = 0x100,
	/* With tx: the statements are queued (db_tx_defer) and sent with the
	 * transaction's next batch; cb runs at once with an empty success. A
	 * write that then fails (including a failed condition of a
	 * TransactWriteItems) aborts the whole transaction. */
	IT_DEFER = 0x200,
	/* With tx: no savepoint around the operation; its failure aborts the
	 * transaction (the last write before COMMIT needs no undo point). */
	IT_NO_SAVEPOINT = 0x400,
};
void it_call_tx(it_store *s, db_tx *tx, int flags, const char *tenant, const char *op, json_t *request, it_done cb,
		void *arg);

/* Internal calls may also ask TransactWriteItems for "ReturnValues":
 * "ALL_NEW": the reply then has "Items", the item after each action in
 * request order (null for Delete and ConditionCheck), and they may hold up
 * to IT_TXN_MAX_INTERNAL actions. */
#define IT_TXN_MAX_INTERNAL 1000

/* Internal TransactWriteItems may also carry "NoWait": <index>: when that
 * action (request order) would wait for a row another transaction holds,
 * the call fails at once with TransactionConflictException (lock_timeout
 * 1 ms on its statement), and
 * "Outbox": [events] (docs/events.md): rows written with the actions. */

/* A transaction on the store's pool for several calls that commit together
 * (db_tx_new); the last call passes DB_TX_COMMIT; free with db_tx_free. */
db_tx *it_tx_new(it_store *s);
/* Commits tx with its deferred statements; cb(true) once committed. */
void it_tx_commit(db_tx *tx, void (*cb)(bool ok, void *arg), void *arg);

/* A read-only snapshot transaction on the store's pool (db_tx_new_snapshot)
 * for reads that must agree with each other; free with db_tx_free. */
db_tx *it_snapshot_new(it_store *s);

/* Undo points inside a caller's transaction (db_tx_mark, db_tx_undo). */
void it_tx_mark(db_tx *tx);
void it_tx_undo(db_tx *tx);

/* The system table of every tenant (sql/004_idempotency.sql): the domain's
 * single-table layout. No DynamoDB request can name it. */
#define IT_SYSTEM_TABLE "ol:ledger"

/* The claim of an idempotency key, as the prefix of tx (sent with the
 * transaction's first batch, see db_tx_set_prefix): writes `item` (a map
 * with the table's key) unless a live item has that key, adding the TTL
 * attribute "ttl" = database clock + ttl_s. Waits at most wait_ms for a
 * claim of the same key that has not committed yet. */
typedef enum {
	IT_CLAIM_PENDING = 0, /* the prefix has not run (yet) */
	IT_CLAIM_CLAIMED,     /* ours: the transaction goes on */
	IT_CLAIM_TAKEN,       /* a live item: item holds it */
	IT_CLAIM_BUSY,        /* another claimer holds it past wait_ms */
	IT_CLAIM_FAILED,      /* the database failed (retryable) */
} it_claim_outcome;

struct it_table;
struct it_value;

typedef struct it_claim {
	it_claim_outcome outcome;
	json_t *item;      /* the stored item (ours or the live one), DynamoDB JSON */
	long long expires; /* its TTL, epoch seconds */
	bool waited;       /* another claimer was in flight */
	/* where the claimed item is, for it_claim_set (set by it_claim_arm) */
	struct it_table *table;
	char *pkenc, *skenc;
} it_claim;

/* Looks the table up, then sets the prefix and calls armed(true, arg) — or
 * armed(false, arg) with *err set to a message when it cannot. The outcome
 * is written into *out when the prefix has run; out must live as long as
 * tx. */
void it_claim_arm(it_store *s, db_tx *tx, const char *tenant, const char *table, const struct it_value *item, int ttl_s,
		  int wait_ms,
		  it_claim *out, void (*armed)(bool ok, void *arg), void *arg);
void it_claim_clear(it_claim *c);

/* Sets attributes of the item a claim writes (after it_claim_arm armed it,
 * in the same transaction): one prepared statement, no request to parse,
 * no expression. attrs is a map of typed values; it may not name the
 * table's key, an index key or the TTL attribute. flags as db_tx_exec's
 * (DB_TX_COMMIT for the last batch). When the claim's prefix has not been
 * sent yet, it goes with this statement. */
typedef enum {
	IT_SET_OK = 0,
	IT_SET_GONE,        /* no claimed item at that key (the prefix did not claim) */
	IT_SET_BAD_ATTR,    /* attrs names a key, index key or TTL attribute, or is not a map */
	IT_SET_TOO_LARGE,   /* the item would exceed IT_MAX_ITEM_SIZE */
	IT_SET_UNAVAILABLE, /* the database failed; retryable */
	IT_SET_FAILED,      /* anything else (out of memory, a statement error) */
} it_set_status;

void it_claim_set(db_tx *tx, it_claim *c, const struct it_value *attrs, int flags, void (*cb)(it_set_status st, void *arg),
		  void *arg);
/* Reads the live item at key (a map of the table's key) without claiming
 * or locking anything: out->outcome is IT_CLAIM_TAKEN with the item when
 * there is one, else IT_CLAIM_PENDING. Expiry by the database clock, as
 * the claim judges it. */
void it_claim_peek(it_store *s, const char *tenant, const char *table, const struct it_value *key, it_claim *out,
		   void (*done)(void *arg), void *arg);

/* Operations it_call knows, for routing and documentation. */
bool it_op_known(const char *op);
/* Stream operations are named IT_STREAMS_OP_PREFIX + their DynamoDB Streams
 * name ("Streams.GetRecords") for it_call and it_op_known. */
#define IT_STREAMS_OP_PREFIX "Streams."

/* TTL sweeper: deletes up to `batch` expired items (any tenant); cb gets the
 * number deleted or -1 on error. */
void it_sweep_expired(it_store *s, int batch, void (*cb)(long deleted, void *arg), void *arg);
/* Stream retention: deletes up to `batch` stream records older than 24 h. */
void it_sweep_streams(it_store *s, int batch, void (*cb)(long deleted, void *arg), void *arg);

/* Background work over every tenant: up to limit items of the system
 * tables whose index `index` has the partition key pk and a sort key
 * below `below` (bytewise), lowest first. cb gets an array of
 * {"tenant", "item"} (NULL on error; borrowed). */
void it_system_due(it_store *s, const char *index, const char *pk, const char *below, int limit,
		   void (*cb)(json_t *rows, void *arg), void *arg);

#endif
