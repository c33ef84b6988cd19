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

/* Runs the DynamoDB operation `op` ("PutItem", "Query", ...) with the given
 * request for the tenant. Takes a reference to request. cb runs exactly
 * once (possibly synchronously); the reply is freed when it returns. */
void it_call(it_store *s, const char *tenant, const char *op, json_t *request, it_done cb, void *arg);

/* Operations it_call knows, for routing and documentation. */
bool it_op_known(const char *op);

/* TTL sweeper: deletes up to `batch` expired items (any tenant); cb gets the
 * number deleted or -1 on error. */
void it_sweep_expired(it_store *s, int batch, void (*cb)(long deleted, void *arg), void *arg);

#endif
