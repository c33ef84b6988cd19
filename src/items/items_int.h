/* items_int.h — shared internals of the storage half of the item layer:
 * table definitions (cached per worker), the per-operation context, and
 * helpers to build replies with DynamoDB's error types. */
#ifndef IT_ITEMS_INT_H
#define IT_ITEMS_INT_H

#include <stdint.h>

#include "items/error.h"
#include "items/eval.h"
#include "items/expr.h"
#include "items/items.h"
#include "items/value.h"

#define IT_MAX_SLOTS 8 /* secondary indexes per table (see sql/002_items.sql) */

typedef struct it_keydef {
	char *name;
	it_type type; /* IT_S, IT_N or IT_B */
} it_keydef;

enum { IT_PROJ_ALL, IT_PROJ_KEYS_ONLY, IT_PROJ_INCLUDE };

/* Stream view types, as stored in items.stream (sql/011_streams.sql). */
enum { IT_STREAM_NONE, IT_STREAM_KEYS_ONLY, IT_STREAM_NEW_IMAGE, IT_STREAM_OLD_IMAGE, IT_STREAM_NEW_AND_OLD_IMAGES };
/* The view type named (0 when unknown) and its name. */
int it_stream_view(const char *name);
const char *it_stream_view_name(int view);

typedef struct it_index {
	char *name;
	int slot; /* 1..IT_MAX_SLOTS: columns x<slot>pk / x<slot>sk */
	bool local;
	it_keydef pk, sk;
	bool has_sk;
	int projection;
	char **include;
	size_t ninclude;
} it_index;

typedef struct it_table {
	int refs;
	int64_t id;
	char *tenant;
	char *name;
	it_keydef pk, sk;
	bool has_sk;
	it_index idx[IT_MAX_SLOTS];
	int nidx;
	char *ttl_attr; /* NULL: TTL disabled */
	int stream;     /* 0: no enabled stream, else IT_STREAM_* (items.stream) */
	json_t *def;    /* the stored description */
	int64_t loaded_ms;
	bool deleted;
} it_table;

struct it_store {
	db_pool *db;
	it_table **tables; /* cache, small: linear scan */
	int ntables, cap;
	unsigned char stream_key[32]; /* shard iterators' MAC key */
	bool has_stream_key;
};

/* Context of one operation in flight. */
typedef struct it_op {
	it_store *store;
	char tenant[33];
	char opname[32];
	json_t *req;
	it_table *table;
	it_done cb;
	void *cb_arg;
	it_reply reply;
	it_params params;
	bool params_init;
	void *state; /* operation-specific */
	it_table **tables; /* it_tables_get: several tables, in request order */
	int ntables;
	void *loader;
	void (*state_free)(void *);
	int attempt;
	bool internal;  /* called by the program: system tables allowed */
	bool text_ok;   /* it_call_text: the reply may be it_finish_text's */
} it_op;

/* An operation context for the program's own calls (claim.c, lease.c):
 * system tables allowed, cb gets the reply. NULL when out of memory. */
it_op *it_internal_op(it_store *s, const char *tenant, const char *name, it_done cb, void *cb_arg);

/* Table cache. */
typedef void (*it_table_cb)(it_op *op, it_table *t);
/* Looks the table up (cached ~1 s); on a miss replies
 * ResourceNotFoundException itself and does not call cb. */
void it_table_get(it_op *op, const char *name, it_table_cb cb);
void it_table_unref(it_table *t);
/* Loads several tables (references kept in op->tables); on a missing one
 * replies ResourceNotFoundException and does not call cb. */
typedef void (*it_tables_cb)(it_op *op);
void it_tables_get(it_op *op, const char *const *names, int n, it_tables_cb cb);
void it_table_forget(it_store *s, const char *tenant, const char *name);
bool it_table_from_def(it_table *t, json_t *def);
it_table *it_table_new(void);
const it_keydef *it_index_key(const it_table *t, const it_index *ix, bool sort);
/* Finds an index by name, NULL when absent. */
const it_index *it_table_index(const it_table *t, const char *name);

/* Replies (each finishes the operation and frees it). */
void it_finish_ok(it_op *op, json_t *body);
/* A success as JSON text (op->text_ok only); takes text (malloc'd). */
void it_finish_text(it_op *op, char *text, size_t len);
void it_finish_err(it_op *op, const char *type, json_t *extra, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void it_finish_error(it_op *op, it_error *e); /* from an it_error */
/* Sends a batch the operation built (ok) and calls cb with its result; when
 * building failed, frees it and finishes with e, or out of memory. */
void it_exec(it_op *op, db_batch *b, bool ok, it_error *e, db_cb cb);
/* Maps a failed database result to the right error and finishes. */
void it_finish_db(it_op *op, const db_result *res);

/* Request helpers. */
const char *it_req_str(const json_t *req, const char *key);
/* legacy.c: true when a request carries pre-2014 parameters (KeyConditions,
 * Expected, AttributesToGet, ...); rewrites them in place as expressions
 * (false with e set when they are invalid or mixed with expressions). */
bool it_legacy_present(const json_t *req);
bool it_legacy_translate(json_t *req, it_error *e) __attribute__((warn_unused_result));
/* Validates TableName as DynamoDB does; false after finishing with the error. */
bool it_check_table_name(it_op *op, const char *field, const char *name);
/* Extracts and checks the primary key of t from a Key map. pkenc and skenc
 * get the encoded key (skenc "" when the table has no sort key). */
bool it_key_from_json(it_op *op, const it_table *t, const json_t *key, it_value **key_item, char **pkenc, char **skenc);
/* Encodes a key attribute of an item (which must be present and typed). */
bool it_item_keys(it_op *op, const it_table *t, const it_value *item, char **pkenc, char **skenc);
/* What index ix holds of item (KEYS_ONLY / INCLUDE): the table's and the
 * index's keys and the included attributes; NULL on OOM. */
it_value *it_index_view(const it_table *t, const it_index *ix, const it_value *item);

/* capacity.c: ConsumedCapacity (ReturnConsumedCapacity NONE/TOTAL/INDEXES). */
enum { IT_CAP_NONE, IT_CAP_TOTAL, IT_CAP_INDEXES };
int it_cap_mode(const it_op *op);
double it_cap_read(size_t bytes, bool consistent);
double it_cap_write(size_t bytes);
/* Adds the write units of t's indexes (idx[i] for t->idx[i]) for an item
 * going from old to new (either NULL). */
void it_cap_index_writes(const it_table *t, const it_value *old, const it_value *new, double *idx);
/* {TableName, CapacityUnits, Read|WriteCapacityUnits[, Table, Global/
 * LocalSecondaryIndexes]}; idx may be NULL. */
json_t *it_cap_json(const it_table *t, const char *name, double table, const double *idx, int mode, bool write);
/* A list of the above, one per table, units[i] charged to op->tables[i]. */
json_t *it_cap_tables(const it_op *op, const double *units, int n, int mode, bool write);
/* Checks the secondary-index key attributes an item carries: declared type,
 * non-empty, DynamoDB's sizes. */
bool it_check_index_keys(const it_table *t, const it_value *item, it_error *e);

/* The operations. */
void it_op_create_table(it_op *op);
void it_op_describe_table(it_op *op);
void it_op_delete_table(it_op *op);
void it_op_update_table(it_op *op);
void it_op_list_tables(it_op *op);
void it_op_update_ttl(it_op *op);
void it_op_describe_ttl(it_op *op);
void it_op_get_item(it_op *op);
void it_op_put_item(it_op *op);
void it_op_update_item(it_op *op);
void it_op_delete_item(it_op *op);
void it_op_query(it_op *op);
void it_op_scan(it_op *op);
void it_op_transact_write(it_op *op);
void it_op_transact_get(it_op *op);
void it_op_batch_get(it_op *op);
void it_op_batch_write(it_op *op);
/* streams.c: the DynamoDB Streams API (target DynamoDBStreams_20120810). */
void it_op_list_streams(it_op *op);
void it_op_describe_stream(it_op *op);
void it_op_get_shard_iterator(it_op *op);
void it_op_get_records(it_op *op);
/* stream_spec.c: StreamSpecification on CreateTable/UpdateTable. NULL when
 * spec is valid, else DynamoDB's message; *enabled and *view say what it asks. */
const char *it_stream_spec_check(const json_t *spec, bool *enabled, int *view);
/* Records an enabled stream (label: now) or the disabling of one in def. */
void it_stream_spec_apply(json_t *def, const char *tenant, bool enabled, int view);

#endif
