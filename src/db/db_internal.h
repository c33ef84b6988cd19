/* db_internal.h — structures shared by the files of the db layer only. */
#ifndef OL_DB_INTERNAL_H
#define OL_DB_INTERNAL_H

#include <sys/queue.h>

#include "db/db.h"

typedef struct db_item {
	const char *name;  /* prepared statement name */
	const char *sql;
	char *owned_sql;   /* dynamic statements own their text */
	char dyn_name[24];
	int nparams;
	char **values;
	int *lengths;
	int *formats;
	/* db_batch_add_ex: values, lengths, formats and the copied texts in
	 * one allocation (NULL: each was allocated on its own) */
	void *block;
} db_item;

/* The prepared statement name of an item (static or derived from its text). */
static inline const char *db_item_name(const db_item *it)
{
	return it->name != NULL ? it->name : it->dyn_name;
}

struct db_batch {
	db_item *items;
	int n, cap;
};

/* DC_HELD: between two batches of a db_tx, reserved for it. */
/* DC_PREPARING: connected, preparing the fixed statements (not up yet). */
enum dc_state { DC_DOWN, DC_CONNECTING, DC_PREPARING, DC_IDLE, DC_BUSY, DC_HELD };
enum exp_kind { EXP_PREPARE, EXP_QUERY, EXP_SYNC };

typedef struct waiter {
	db_batch *batch;
	db_cb cb;
	void *arg;
	db_tx *tx; /* a batch of this transaction (tx.c) */
	int flags;
	TAILQ_ENTRY(waiter) link;
} waiter;
TAILQ_HEAD(waiter_list, waiter);

typedef struct expect {
	enum exp_kind kind;
	int item;
} expect;

typedef struct db_conn {
	db_pool *pool;
	int index;
	PGconn *pg;
	enum dc_state state;
	int fd;
	struct event *ev_read;
	struct event *ev_write;
	struct event *timer;
	int backoff_ms;
	char **prepared; /* hash set of prepared statement names */
	int nprepared, capprepared;
	/* the batch in flight */
	waiter *job;
	expect *exp;
	int nexp, iexp;
	db_result res;
	db_tx *tx; /* the transaction holding this connection */
	/* DC_PREPARING: results read so far, the first failure, the start */
	int nprep_read;
	int prep_failed; /* index in pool->fixed, or -1 */
	char prep_sqlstate[6];
	char *prep_message;
	long long prep_start_us;
} db_conn;

struct db_pool {
	struct event_base *base;
	char *conninfo;
	char options[64];
	char *appname;
	int size;
	db_conn *conns;
	struct waiter_list queue;
	int queued;
	int queue_max;
	int connect_timeout_ms;
	int query_timeout_ms;
	int up;
	/* Until the first connection is up or the first attempt failed:
	 * requests wait for it instead of failing fast (a fresh daemon). */
	bool starting;
	int busy;
	unsigned long round_trips;
	/* The fixed statements (db_pool_config.stmts and tx.c's), prepared at
	 * connect; bad_sql is the test-only broken text of one (fault.h). */
	db_stmt *fixed;
	int nfixed;
	char *bad_sql;
	void (*on_invalid)(void *arg);
	void *invalid_arg;
	bool invalid; /* a fixed statement is invalid: connect no more */
};

/* pool.c */
void db_conn_start_job(db_conn *c, waiter *wt);
void pool_dispatch(db_pool *p);
/* Closes a connection after an error and schedules its reconnect. */
void db_conn_broken(db_conn *c, db_status st, const char *why);
/* Queues a waiter for any idle connection (fails it when none can come). */
void db_pool_submit(db_pool *p, waiter *wt);

/* tx.c: the transaction statements, prepared on every connection. */
extern const db_stmt *const db_tx_stmts[];

/* tx.c: a job of a transaction finished (or its connection broke). Decides
 * whether the connection stays held, before any callback runs. */
bool db_tx_job_keeps_conn(db_conn *c, waiter *wt, db_result *res);
/* Then calls the prefix and batch callbacks with their parts of res. */
void db_tx_job_deliver(waiter *wt, db_result *res);
/* The held connection broke between batches. */
void db_tx_conn_lost(db_tx *tx);

#endif
