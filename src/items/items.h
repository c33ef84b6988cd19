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
	/* With it_call_text only: the response as JSON text instead (body is
	 * NULL), text_len bytes, no NUL inside. */
	char *text;
	size_t text_len;
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

/* The same, where a success may come as text (it_reply.text) instead of
 * body: GetItem and Query pass the stored items' text (already DynamoDB
 * JSON) through undecoded when nothing asks for their contents (no
 * projection, filter, index view, Select COUNT, ReturnConsumedCapacity). */
void it_call_text(it_store *s, const char *tenant, const char *op, json_t *request, it_done cb, void *arg);

/* The system table of every tenant (sql/004_idempotency.sql): the
 * idempotency records (src/idem). No DynamoDB request can name it; the
 * program reaches it through the typed calls below only. */
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
	struct it_value *item; /* TAKEN: the live item, typed (NULL otherwise) */
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

/* ---- leases: the records of idempotency as a service (lease.c) ---------
 *
 * Items of the system table at {PK: pk, SK: "METADATA"} (src/idem/service.c
 * names them), each call one prepared statement with typed parameters and
 * a typed answer. Expired records (TTL attribute "ttl", epoch seconds, by
 * the caller's clock now_ms) are absent for every call. The writes lock the
 * one row for their one statement; it_lease_get locks nothing. */
typedef enum {
	IT_LEASE_IN_PROGRESS = 1,
	IT_LEASE_COMPLETED,
} it_lease_state;

/* A record as stored (strings valid during the callback only). */
typedef struct it_lease {
	it_lease_state state;
	const char *key;
	const char *fingerprint; /* NULL: claimed without one */
	const char *token;       /* in progress: the lease holder's token */
	long long lease_ms;      /* in progress: when the lease ends (epoch ms) */
	const char *response;    /* completed: the response, JSON text */
	const char *created_at, *expires_at; /* RFC 3339 */
} it_lease;

typedef enum {
	IT_LEASE_OK = 0,      /* done: rec is the record after it (get: the live record, or NULL) */
	IT_LEASE_REFUSED,     /* the write's condition did not hold: rec is the live record, NULL when none */
	IT_LEASE_UNAVAILABLE, /* the database failed; retryable */
	IT_LEASE_FAILED,      /* anything else (a stored record it cannot read, out of memory) */
} it_lease_status;

typedef void (*it_lease_cb)(it_lease_status st, const it_lease *rec, void *arg);

/* A new lease: written when no live record has the key, or when the live
 * one is in progress, its lease ended before now_ms and its fingerprint is
 * not another one (any, when fingerprint is NULL). */
typedef struct it_lease_new {
	const char *pk, *key, *fingerprint, *token;
	long long now_ms, lease_ms, expires_s;
	const char *created_at, *expires_at;
} it_lease_new;

void it_lease_claim(it_store *s, const char *tenant, const it_lease_new *n, it_lease_cb cb, void *arg);
/* When token holds the in-progress record: it becomes completed with
 * response (JSON text), its token and lease removed. */
void it_lease_complete(it_store *s, const char *tenant, const char *pk, const char *token, const char *response,
		       long long now_ms, it_lease_cb cb, void *arg);
/* When token holds the in-progress record: it is deleted (rec: as it was). */
void it_lease_release(it_store *s, const char *tenant, const char *pk, const char *token, long long now_ms,
		      it_lease_cb cb, void *arg);
void it_lease_get(it_store *s, const char *tenant, const char *pk, long long now_ms, it_lease_cb cb, void *arg);
/* The statements above, NULL-terminated (the db suite prepares each). */
extern const db_stmt *const it_lease_stmts[];

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

#endif
