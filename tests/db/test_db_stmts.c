/* test_db_stmts.c — the registry of fixed statements (src/api/stmts.c) on a
 * freshly migrated database: every statement prepares, with the number of
 * parameters it declares, under a name no other uses; a pool given the
 * registry prepares them all when it connects, in a round trip that is not
 * a request's, and requests then prepare nothing more, while statements
 * built at run time are still prepared lazily; a statement whose text is
 * wrong calls the pool's on_invalid and the pool stops connecting. */
#include <sys/time.h>

#include "api/stmts.h"
#include "dbtest.h"
#include "util/util.h"

static const db_stmt st_count = {"t_count_prepared", "SELECT count(*) FROM pg_prepared_statements", 0};

static void test_every_statement_prepares(int *total)
{
	PGconn *pg = PQconnectdb(dbt_url());
	int n = 0, bad = 0, dup = 0;
	char **names = NULL;
	for (int t = 0; api_stmt_tables[t] != NULL; t++) {
		for (const db_stmt *const *st = api_stmt_tables[t]; *st != NULL; st++, n++) {
			PGresult *r = PQprepare(pg, (*st)->name, (*st)->sql, (*st)->nparams, NULL);
			if (PQresultStatus(r) != PGRES_COMMAND_OK) {
				bad++;
				printf("#   %s: %s", (*st)->name, PQerrorMessage(pg));
			}
			PQclear(r);
			r = PQdescribePrepared(pg, (*st)->name);
			if (PQresultStatus(r) != PGRES_COMMAND_OK || PQnparams(r) != (*st)->nparams) {
				bad++;
				printf("#   %s: %d parameters, declares %d\n", (*st)->name, PQnparams(r), (*st)->nparams);
			}
			PQclear(r);
			for (int i = 0; i < n; i++)
				if (strcmp(names[i], (*st)->name) == 0)
					dup++;
			char **grown = realloc(names, (size_t)(n + 1) * sizeof(char *));
			if (grown == NULL)
				exit(1);
			names = grown;
			names[n] = (char *)(*st)->name;
		}
	}
	free(names);
	PQfinish(pg);
	printf("# %d registered statements\n", n);
	CHECK(n > 0 && bad == 0, "every registered statement prepares with the parameters it declares");
	CHECK(dup == 0, "no two registered statements share a name");
	*total = n;
}

typedef struct wait_res {
	bool done;
	db_status st;
	long long value;
} wait_res;

static void got(db_result *res, void *arg)
{
	wait_res *w = arg;
	w->done = true;
	w->st = res->status;
	if (res->status == DB_OK && res->nresults > 0 && PQntuples(res->results[0]) > 0)
		w->value = atoll(PQgetvalue(res->results[0], 0, 0));
}

static wait_res run(struct event_base *base, db_pool *p, const db_stmt *st, const char *sql)
{
	wait_res w = {0};
	db_batch *b = db_batch_new();
	bool ok = st != NULL ? db_batch_add(b, st, NULL) : db_batch_add_sql(b, sql, 0, NULL);
	if (!ok) {
		db_batch_free(b);
		return w;
	}
	db_exec(p, b, got, &w);
	struct timeval tv = {0, 10000};
	for (int i = 0; i < 2000 && !w.done; i++)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
	return w;
}

static long long wait_up(struct event_base *base, db_pool *p)
{
	long long t0 = util_now_us();
	struct timeval tv = {0, 1000};
	for (int i = 0; i < 20000 && db_pool_up(p) < 1; i++)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
	return util_now_us() - t0;
}

static void test_pool_prepares_at_connect(int total)
{
	struct event_base *base = event_base_new();
	db_pool_config pc = {.conninfo = dbt_url(), .size = 1, .connect_timeout_ms = 5000, .query_timeout_ms = 20000,
			     .queue_max = 10, .stmts = api_stmt_tables};
	/* Connection start-up with and without the registry (a figure, not
	 * a check: the machine is shared). */
	db_pool_config plain_cfg = pc;
	plain_cfg.stmts = NULL;
	db_pool *plain = db_pool_new(base, &plain_cfg);
	long long plain_us = wait_up(base, plain);
	db_pool_free(plain);
	db_pool *p = db_pool_new(base, &pc);
	long long us = wait_up(base, p);
	printf("# connection up in %lld us with %d statements prepared, %lld us with the 4 of tx.c only\n", us, total + 4,
	       plain_us);
	CHECK(db_pool_up(p) == 1, "a pool given the registry connects");
	CHECK(db_pool_round_trips(p) == 0, "the prepare round trip at connect is not counted as a request's");

	wait_res w = run(base, p, &st_count, NULL);
	/* The registry, tx.c's four, and the count itself (prepared lazily). */
	CHECK(w.st == DB_OK && w.value == total + 4 + 1, "every fixed statement is prepared on the new connection");
	if (w.value != total + 4 + 1)
		printf("#   %lld prepared, expected %d\n", w.value, total + 5);
	wait_res ping = run(base, p, api_ops_stmts[0], NULL);
	w = run(base, p, &st_count, NULL);
	CHECK(ping.st == DB_OK && ping.value == 1 && w.value == total + 5,
	      "running a registered statement prepares nothing more");
	wait_res dyn = run(base, p, NULL, "SELECT 41 + 1");
	w = run(base, p, &st_count, NULL);
	CHECK(dyn.st == DB_OK && dyn.value == 42 && w.value == total + 6,
	      "a statement built at run time is still prepared lazily");
	CHECK(db_pool_round_trips(p) == 5, "one round trip per batch");
	db_pool_free(p);
	event_base_free(base);
}

static int invalid_calls;
static void on_invalid(void *arg)
{
	(void)arg;
	invalid_calls++;
}

static void test_invalid_statement(void)
{
	static const db_stmt bad = {"t_bad_column", "SELECT no_such_column FROM tenants", 0};
	static const db_stmt *const table[] = {&bad, NULL};
	static const db_stmt *const *const tables[] = {api_ops_stmts, table, NULL};
	struct event_base *base = event_base_new();
	db_pool_config pc = {.conninfo = dbt_url(), .size = 2, .connect_timeout_ms = 5000, .query_timeout_ms = 20000,
			     .queue_max = 10, .stmts = tables, .on_invalid = on_invalid};
	log_min_level = LOG_ERROR + 1; /* statement_invalid is expected here */
	db_pool *p = db_pool_new(base, &pc);
	struct timeval tv = {0, 10000};
	for (int i = 0; i < 1000 && invalid_calls == 0; i++)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
	/* Long enough for a reconnect (backoff from 100 ms) to have come. */
	for (int i = 0; i < 50; i++)
		event_base_loopexit(base, &tv), event_base_dispatch(base);
	log_min_level = LOG_WARN;
	CHECK(invalid_calls == 1, "a statement with an undefined column: on_invalid, once per pool");
	CHECK(db_pool_up(p) == 0, "the pool hands out no connection and stops connecting");
	wait_res w = run(base, p, api_ops_stmts[0], NULL);
	CHECK(w.done && w.st == DB_ERR_UNAVAILABLE, "a batch on it fails at once as unavailable");
	db_pool_free(p);
	event_base_free(base);
}

int main(void)
{
	dbt_url();
	dbt_migrate();
	log_min_level = LOG_WARN;
	int total = 0;
	test_every_statement_prepares(&total);
	test_pool_prepares_at_connect(total);
	test_invalid_statement();
	return it_test_done();
}
