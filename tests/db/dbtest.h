/* dbtest.h — helpers for C tests that run the item layer against a real
 * PostgreSQL ($ONCELEDGER_TEST_DATABASE_URL; exit 77 = skipped when unset):
 * migrations, an event loop with a pool and a store, and synchronous calls. */
#ifndef OL_DBTEST_H
#define OL_DBTEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "db/db.h"
#include "db/migrate.h"
#include "items/items.h"
#include "log.h"
#include "tap.h"

typedef struct dbt_ctx {
	struct event_base *base;
	db_pool *pool;
	it_store *store;
} dbt_ctx;

typedef struct dbt_res {
	bool done;
	json_t *body;
	char type[80];
	char msg[512];
	json_t *extra;
} dbt_res;

static inline const char *dbt_url(void)
{
	const char *u = getenv("ONCELEDGER_TEST_DATABASE_URL");
	if (u == NULL || *u == '\0') {
		printf("1..0 # SKIP ONCELEDGER_TEST_DATABASE_URL not set\n");
		exit(77);
	}
	return u;
}

/* Runs SQL on a blocking connection; returns the first value or "". */
static inline char *dbt_sql(const char *sql)
{
	static char out[4096];
	PGconn *pg = PQconnectdb(dbt_url());
	PGresult *r = PQexec(pg, sql);
	out[0] = '\0';
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
		snprintf(out, sizeof(out), "%s", PQgetvalue(r, 0, 0));
	else if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "dbt_sql: %s", PQerrorMessage(pg));
	PQclear(r);
	PQfinish(pg);
	return out;
}

static inline void dbt_migrate(void)
{
	if (sodium_init() < 0)
		exit(1);
	PGconn *pg = PQconnectdb(dbt_url());
	int applied;
	char *err = NULL;
	if (PQstatus(pg) != CONNECTION_OK || !mig_apply(pg, &applied, &err)) {
		fprintf(stderr, "migrate: %s %s\n", PQerrorMessage(pg), err ? err : "");
		exit(1);
	}
	PQfinish(pg);
}

static inline bool dbt_open(dbt_ctx *c)
{
	log_min_level = LOG_WARN;
	c->base = event_base_new();
	db_pool_config pc = {.conninfo = dbt_url(), .size = 2, .connect_timeout_ms = 5000, .query_timeout_ms = 20000, .queue_max = 10000};
	c->pool = db_pool_new(c->base, &pc);
	c->store = it_store_new(c->pool);
	struct timeval tv = {0, 20000};
	for (int i = 0; i < 500 && db_pool_up(c->pool) < pc.size; i++)
		event_base_loopexit(c->base, &tv), event_base_dispatch(c->base);
	return db_pool_up(c->pool) > 0;
}

static inline void dbt_close(dbt_ctx *c)
{
	it_store_free(c->store);
	db_pool_free(c->pool);
	event_base_free(c->base);
}

static inline void dbt_done(it_reply *r, void *arg)
{
	dbt_res *res = arg;
	res->done = true;
	if (r->err_type != NULL) {
		snprintf(res->type, sizeof(res->type), "%s", r->err_type);
		snprintf(res->msg, sizeof(res->msg), "%s", r->err_msg ? r->err_msg : "");
		res->extra = json_incref(r->err_extra);
	} else {
		res->body = json_incref(r->body);
	}
}

static inline void dbt_res_clear(dbt_res *r)
{
	json_decref(r->body);
	json_decref(r->extra);
	memset(r, 0, sizeof(*r));
}

/* Calls an operation with a request built from a printf-style JSON text. */
__attribute__((format(printf, 5, 6))) static inline void dbt_call(dbt_ctx *c, const char *tenant, const char *op, dbt_res *res,
								    const char *fmt, ...)
{
	char *text = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	memset(res, 0, sizeof(*res));
	json_error_t je;
	json_t *req = text ? json_loads(text, 0, &je) : NULL;
	if (req == NULL) {
		fprintf(stderr, "bad test JSON: %s\n%s\n", text ? je.text : "oom", text ? text : "");
		free(text);
		exit(2);
	}
	free(text);
	it_call(c->store, tenant, op, req, dbt_done, res);
	json_decref(req);
	while (!res->done)
		event_base_loop(c->base, EVLOOP_ONCE);
}

#endif
