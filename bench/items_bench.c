/* items_bench.c — drives the item layer directly (no HTTP): conditional
 * UpdateItem ("SET balance = balance - :amt" if "balance >= :amt") on random
 * items from N concurrent clients, to compare with the same statement written
 * by hand and run by pgbench on the same PostgreSQL (bench/run.sh).
 *
 *   items_bench --database-url URL [--setup-only] [--clients 16] [--threads 2]
 *   (or the URL in ONCELEDGER_DATABASE_URL: a URL with a password does not
 *   belong on a command line)
 *               [--seconds 10] [--items 10000]
 *
 * Prints one line "WRKJSON {...}" (rps, latency percentiles) for bench/run.sh. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "db/db.h"
#include "db/migrate.h"
#include "items/items.h"
#include "log.h"
#include "util/util.h"

#define TENANT "bench"
#define MAX_LAT 4000000

static const char *url;
static int clients = 16, threads = 2, seconds = 10, nitems = 10000;
static bool raw;              /* --raw: the same statement through db_exec, no item layer */
static char raw_tid[32];
static int64_t *lat_us;
static long nlat;

typedef struct worker {
	int id;
	struct event_base *base;
	db_pool *pool;
	it_store *store;
	int inflight;
	long ok, failed, errors;
	int64_t deadline_us;
	unsigned seed;
	int64_t *lat;
	long nlat, caplat;
} worker;

typedef struct call {
	worker *w;
	int64_t start;
} call;

static void issue(worker *w);

enum { OUT_OK, OUT_REFUSED, OUT_ERROR };

/* Records one completed call and keeps the client busy until the deadline. */
static void complete(call *c, int outcome)
{
	worker *w = c->w;
	int64_t now = util_mono_us();
	if (outcome == OUT_OK)
		w->ok++;
	else if (outcome == OUT_REFUSED)
		w->failed++;
	else
		w->errors++;
	if (w->nlat < w->caplat)
		w->lat[w->nlat++] = now - c->start;
	free(c);
	w->inflight--;
	if (now < w->deadline_us)
		issue(w);
	else if (w->inflight == 0)
		event_base_loopbreak(w->base);
}

static void done(it_reply *r, void *arg)
{
	complete(arg, r->err_type == NULL ? OUT_OK
		      : strcmp(r->err_type, "ConditionalCheckFailedException") == 0 ? OUT_REFUSED
										  : OUT_ERROR);
}

static void raw_done(db_result *res, void *arg)
{
	complete(arg, res->status != DB_OK ? OUT_ERROR : PQntuples(res->results[0]) == 1 ? OUT_OK : OUT_REFUSED);
}

/* A fixed statement of the item layer's general single-SET update form,
 * sent straight through the pool: --raw measures the pool alone. */
static const db_stmt raw_stmt = {
	"bench_raw",
	"UPDATE items i SET (item, expires_at) = (SELECT n.item, NULL::bigint FROM (SELECT ol_it_update_end(ol_it_act("
	"coalesce((i.item)::jsonb, '{}'::jsonb), 'P', $1::text[], ol_it_arith(ol_it_need((i.item)::jsonb #> $1::text[]), "
	"$2::jsonb, true), 0)) AS item) n) WHERE i.table_id = $3::bigint AND i.pk = $4::text AND i.sk = $5::text AND "
	"(i.expires_at IS NULL OR i.expires_at > $6::bigint) AND coalesce(((((i.item)::jsonb #> $1::text[]))->>'N')::numeric "
	">= $7::numeric, false) RETURNING NULL::text, TRUE, i.item::text",
	7};

static void issue(worker *w)
{
	char key[32];
	if (raw) {
		char now[24];
		snprintf(key, sizeof(key), "acct%d", 1 + (int)(rand_r(&w->seed) % (unsigned)nitems));
		snprintf(now, sizeof(now), "%lld", (long long)(util_now_us() / 1000000));
		const char *p[7] = {"{balance}", "{\"N\": \"1\"}", raw_tid, key, "", now, "1"};
		db_batch *b = db_batch_new();
		if (!db_batch_add(b, &raw_stmt, p))
			abort();
		call *c = malloc(sizeof(*c));
		c->w = w;
		c->start = util_mono_us();
		w->inflight++;
		db_exec(w->pool, b, raw_done, c);
		return;
	}
	snprintf(key, sizeof(key), "acct%d", 1 + (int)(rand_r(&w->seed) % (unsigned)nitems));
	json_t *req = json_pack("{s:s, s:{s:{s:s}}, s:s, s:s, s:{s:{s:s}}}", "TableName", "bench", "Key", "PK", "S", key,
				"UpdateExpression", "SET balance = balance - :amt", "ConditionExpression", "balance >= :amt",
				"ExpressionAttributeValues", ":amt", "N", "1");
	call *c = malloc(sizeof(*c));
	c->w = w;
	c->start = util_mono_us();
	w->inflight++;
	it_call(w->store, TENANT, "UpdateItem", req, done, c);
	json_decref(req);
}

static bool open_worker(worker *w, int pool)
{
	w->base = event_base_new();
	db_pool_config pc = {.conninfo = url, .size = pool, .connect_timeout_ms = 5000, .query_timeout_ms = 30000, .queue_max = 100000};
	w->pool = db_pool_new(w->base, &pc);
	w->store = it_store_new(w->pool);
	struct timeval tv = {0, 20000};
	for (int i = 0; i < 500 && db_pool_up(w->pool) < pool; i++)
		event_base_loopexit(w->base, &tv), event_base_dispatch(w->base);
	return db_pool_up(w->pool) == pool;
}

static void close_worker(worker *w)
{
	it_store_free(w->store);
	db_pool_free(w->pool);
	event_base_free(w->base);
}

static void *run_worker(void *arg)
{
	worker *w = arg;
	int per = clients / threads;
	if (!open_worker(w, per)) {
		fprintf(stderr, "items_bench: cannot connect\n");
		return NULL;
	}
	/* warm the table cache and the prepared statements */
	w->deadline_us = util_mono_us() + 1000000;
	for (int i = 0; i < per; i++)
		issue(w);
	event_base_dispatch(w->base);
	w->ok = w->failed = w->errors = 0;
	w->nlat = 0;
	w->deadline_us = util_mono_us() + (int64_t)seconds * 1000000;
	for (int i = 0; i < per; i++)
		issue(w);
	event_base_dispatch(w->base);
	close_worker(w);
	return NULL;
}

struct sync_state {
	bool done, ok;
};

static void sync_done(it_reply *r, void *arg)
{
	struct sync_state *s = arg;
	s->done = true;
	s->ok = r->err_type == NULL || strcmp(r->err_type, "ResourceInUseException") == 0;
	if (!s->ok)
		fprintf(stderr, "items_bench: %s: %s\n", r->err_type, r->err_msg ? r->err_msg : "");
}

static void sync_call(it_store *s, struct event_base *base, const char *op, json_t *req, bool *ok_out)
{
	struct sync_state st = {false, false};
	it_call(s, TENANT, op, req, sync_done, &st);
	json_decref(req);
	while (!st.done)
		event_base_loop(base, EVLOOP_ONCE);
	*ok_out = st.ok;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static bool setup(void)
{
	PGconn *pg = PQconnectdb(url);
	int applied;
	char *err = NULL;
	if (PQstatus(pg) != CONNECTION_OK || !mig_apply(pg, &applied, &err)) {
		fprintf(stderr, "items_bench: migrate: %s%s\n", PQerrorMessage(pg), err ? err : "");
		return false;
	}
	PQclear(PQexec(pg, "INSERT INTO tenants (name) VALUES ('" TENANT "') ON CONFLICT DO NOTHING"));
	PGresult *r = PQexec(pg, "SELECT count(*) FROM items i JOIN item_tables t ON t.id = i.table_id"
				 " WHERE t.tenant = '" TENANT "' AND t.name = 'bench'");
	long have = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	PQfinish(pg);
	if (have >= nitems)
		return true;
	worker w = {0};
	if (!open_worker(&w, 2))
		return false;
	bool ok;
	sync_call(w.store, w.base, "CreateTable",
		  json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:s}]}", "TableName", "bench", "KeySchema", "AttributeName", "PK",
			    "KeyType", "HASH", "AttributeDefinitions", "AttributeName", "PK", "AttributeType", "S"),
		  &ok);
	for (int i = 1; ok && i <= nitems; i += 25) {
		json_t *puts = json_array();
		for (int k = i; k < i + 25 && k <= nitems; k++) {
			char key[32];
			snprintf(key, sizeof(key), "acct%d", k);
			json_array_append_new(puts, json_pack("{s:{s:{s:{s:s}, s:{s:s}}}}", "PutRequest", "Item", "PK", "S", key,
							      "balance", "N", "1000000000000"));
		}
		sync_call(w.store, w.base, "BatchWriteItem", json_pack("{s:{s:o}}", "RequestItems", "bench", puts), &ok);
	}
	close_worker(&w);
	return ok;
}

int main(int argc, char **argv)
{
	bool setup_only = false;
	url = getenv("ONCELEDGER_DATABASE_URL");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--database-url") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
			clients = atoi(argv[++i]);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--items") == 0 && i + 1 < argc)
			nitems = atoi(argv[++i]);
		else if (strcmp(argv[i], "--setup-only") == 0)
			setup_only = true;
		else if (strcmp(argv[i], "--raw") == 0)
			raw = true;
		else {
			fprintf(stderr, "usage: items_bench --database-url URL [--setup-only] [--clients N] [--threads N] [--seconds N] [--items N]\n");
			return 1;
		}
	}
	if (url == NULL || sodium_init() < 0 || threads < 1 || clients < threads)
		return 1;
	log_min_level = LOG_WARN;
	if (!setup())
		return 2;
	if (setup_only)
		return 0;
	if (raw) {
		PGconn *pg = PQconnectdb(url);
		PGresult *r = PQexec(pg, "SELECT id FROM item_tables WHERE tenant = '" TENANT "' AND name = 'bench'");
		snprintf(raw_tid, sizeof(raw_tid), "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "0");
		PQclear(r);
		PQfinish(pg);
	}
	worker *ws = calloc((size_t)threads, sizeof(worker));
	pthread_t *th = calloc((size_t)threads, sizeof(pthread_t));
	for (int i = 0; i < threads; i++) {
		ws[i].id = i;
		ws[i].seed = (unsigned)(i * 7919 + 17);
		ws[i].caplat = MAX_LAT / threads;
		ws[i].lat = malloc((size_t)ws[i].caplat * sizeof(int64_t));
		pthread_create(&th[i], NULL, run_worker, &ws[i]);
	}
	long ok = 0, failed = 0, errors = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		ok += ws[i].ok;
		failed += ws[i].failed;
		errors += ws[i].errors;
	}
	lat_us = malloc(MAX_LAT * sizeof(int64_t));
	for (int i = 0; i < threads; i++) {
		memcpy(lat_us + nlat, ws[i].lat, (size_t)ws[i].nlat * sizeof(int64_t));
		nlat += ws[i].nlat;
		free(ws[i].lat);
	}
	qsort(lat_us, (size_t)nlat, sizeof(int64_t), cmp64);
#define PCT(q) (nlat ? lat_us[(long)((q) / 100.0 * (double)(nlat - 1))] / 1000.0 : 0)
	printf("conditional UpdateItem: %ld ok, %ld condition failed, %ld errors in %d s with %d clients\n", ok, failed, errors,
	       seconds, clients);
	printf("WRKJSON {\"requests\":%ld,\"rps\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
	       "\"non_2xx\":%ld,\"socket_errors\":0,\"server_cpu_pct\":null}\n",
	       ok + failed, (double)(ok + failed) / seconds, PCT(50), PCT(90), PCT(99), PCT(100), errors);
	free(lat_us);
	free(ws);
	free(th);
	return errors == 0 ? 0 : 3;
}
