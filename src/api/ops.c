/* ops.c — operational endpoints: liveness, readiness (a real round trip
 * to PostgreSQL; Redis is reported but never makes the service unready),
 * Prometheus metrics, and /v1/whoami (authenticated, no database). */
#include "api/app.h"
#include "events/relay.h"

#include <stdlib.h>
#include <string.h>

#include "api/ratelimit.h"
#include "auth/akid.h"
#include "auth/keys.h"

static const char *redis_state_name(int st)
{
	return st == REDIS_UP ? "up" : st == REDIS_DOWN ? "down" : "unknown";
}

void ops_healthz(http_req *r)
{
	static const char body[] = "{\"status\":\"ok\"}";
	api_result(r, 200, "application/json", body, sizeof(body) - 1);
}

static const db_stmt stmt_ping = {"ops_ping", "SELECT 1", 0};
const db_stmt *const api_ops_stmts[] = {&stmt_ping, NULL};

static void readyz_done(db_result *res, void *arg)
{
	http_req *r = arg;
	app *ap = api_worker(r)->app;
	bool pg_ok = res->status == DB_OK;
	int redis = __atomic_load_n(&ap->redis_state, __ATOMIC_RELAXED);
	json_t *body = json_pack("{s:s, s:s, s:s}", "status", pg_ok ? "ready" : "unavailable", "postgres",
				 pg_ok ? "up" : "down", "redis", redis_state_name(redis));
	if (!pg_ok) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", ap->cfg->retry_after_s);
		http_req_add_header(r, "Retry-After", ra);
	}
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	api_result(r, pg_ok ? 200 : 503, "application/json", text ? text : "{}", text ? strlen(text) : 2);
	free(text);
}

void ops_readyz(http_req *r)
{
	db_batch *b = db_batch_new();
	if (b == NULL || !db_batch_add(b, &stmt_ping, NULL)) {
		db_batch_free(b);
		problem_send(r, 500, "internal", "out of memory", NULL);
		return;
	}
	db_exec(api_worker(r)->db, b, readyz_done, r);
}

void ops_metrics(http_req *r)
{
	app *ap = api_worker(r)->app;
	size_t nroutes;
	api_routes(&nroutes);
	struct evbuffer *out = evbuffer_new();
	metrics *all[256];
	int n = ap->nworkers < 256 ? ap->nworkers : 256;
	long conns = 0, inflight = 0, db_up = 0, db_busy = 0, db_queued = 0, db_size = 0, swept = 0;
	auth_cache_counters ac = {0};
	long idem[5] = {0};
	unsigned long round_trips = 0, sigv4_queries = 0, sigv4_throttled = 0;
	for (int i = 0; i < n; i++) {
		app_worker *aw = ap->workers[i];
		all[i] = aw->metrics;
		/* Other workers' gauges are read without a lock: each is one
		 * aligned word written by its own thread, good enough for a gauge. */
		conns += http_worker_conns(aw->hw);
		swept += __atomic_load_n(&aw->swept, __ATOMIC_RELAXED);
		idem[0] += __atomic_load_n(&aw->idem_claims, __ATOMIC_RELAXED);
		idem[1] += __atomic_load_n(&aw->idem_replays, __ATOMIC_RELAXED);
		idem[2] += __atomic_load_n(&aw->idem_conflicts, __ATOMIC_RELAXED);
		idem[3] += __atomic_load_n(&aw->idem_mismatches, __ATOMIC_RELAXED);
		idem[4] += __atomic_load_n(&aw->idem_waits, __ATOMIC_RELAXED);
		inflight += http_worker_inflight(aw->hw);
		if (aw->db != NULL) {
			db_up += db_pool_up(aw->db);
			db_busy += db_pool_busy(aw->db);
			db_queued += db_pool_queued(aw->db);
			db_size += db_pool_size(aw->db);
			round_trips += db_pool_round_trips(aw->db);
		}
		if (aw->akids != NULL) {
			unsigned long q, t;
			akid_stats(aw->akids, &q, &t);
			sigv4_queries += q;
			sigv4_throttled += t;
		}
		if (aw->auth != NULL) {
			auth_cache_counters w;
			auth_cache_stats(aw->auth, &w);
			ac.hits += w.hits;
			ac.misses += w.misses;
			ac.queries += w.queries;
			ac.throttled += w.throttled;
			ac.evictions += w.evictions;
			ac.entries += w.entries;
		}
	}
	metrics_render(all, n, (int)nroutes, api_route_name, out);
	evbuffer_add_printf(out,
			    "# TYPE onceledger_http_connections gauge\nonceledger_http_connections %ld\n"
			    "# TYPE onceledger_http_inflight gauge\nonceledger_http_inflight %ld\n"
			    "# TYPE onceledger_db_pool_connections gauge\n"
			    "onceledger_db_pool_connections{state=\"configured\"} %ld\n"
			    "onceledger_db_pool_connections{state=\"up\"} %ld\n"
			    "onceledger_db_pool_connections{state=\"busy\"} %ld\n"
			    "# TYPE onceledger_db_pool_queued gauge\nonceledger_db_pool_queued %ld\n"
			    "# TYPE onceledger_auth_cache_lookups_total counter\n"
			    "onceledger_auth_cache_lookups_total{result=\"hit\"} %lu\n"
			    "onceledger_auth_cache_lookups_total{result=\"miss\"} %lu\n"
			    "# TYPE onceledger_auth_key_queries_total counter\nonceledger_auth_key_queries_total %lu\n"
			    "# TYPE onceledger_auth_lookups_throttled_total counter\nonceledger_auth_lookups_throttled_total %lu\n"
			    "# TYPE onceledger_auth_cache_evictions_total counter\nonceledger_auth_cache_evictions_total %lu\n"
			    "# TYPE onceledger_auth_cache_entries gauge\nonceledger_auth_cache_entries %lu\n"
			    "# TYPE onceledger_redis_up gauge\nonceledger_redis_up %d\n"
			    "# TYPE onceledger_items_expired_deleted_total counter\nonceledger_items_expired_deleted_total %ld\n",
			    conns, inflight, db_size, db_up, db_busy, db_queued, ac.hits, ac.misses, ac.queries, ac.throttled,
			    ac.evictions, ac.entries,
			    __atomic_load_n(&ap->redis_state, __ATOMIC_RELAXED) == REDIS_UP, swept);
	evbuffer_add_printf(out, "# TYPE onceledger_db_round_trips_total counter\nonceledger_db_round_trips_total %lu\n",
			    round_trips);
	evbuffer_add_printf(out,
			    "# TYPE onceledger_sigv4_key_queries_total counter\nonceledger_sigv4_key_queries_total %lu\n"
			    "# TYPE onceledger_sigv4_lookups_throttled_total counter\nonceledger_sigv4_lookups_throttled_total %lu\n",
			    sigv4_queries, sigv4_throttled);
	static const char *const idem_names[5] = {"claims", "replays", "conflicts", "mismatches", "waits"};
	for (int i = 0; i < 5; i++)
		evbuffer_add_printf(out, "# TYPE onceledger_idempotency_%s_total counter\nonceledger_idempotency_%s_total %ld\n",
				    idem_names[i], idem_names[i], idem[i]);
	if (ap->rl != NULL)
		rl_metrics(ap->rl, out);
	ev_relay_metrics(ap->relay, out);
	size_t len = evbuffer_get_length(out);
	api_result(r, 200, "text/plain; version=0.0.4", (const char *)evbuffer_pullup(out, -1), len);
	evbuffer_free(out);
}

void ops_whoami(http_req *r)
{
	api_req *a = api_ctx(r);
	char scopes[64];
	auth_scopes_format(a->who.scopes, scopes, sizeof(scopes));
	json_t *list = json_array();
	char *save = NULL;
	for (char *s = strtok_r(scopes, ",", &save); s != NULL; s = strtok_r(NULL, ",", &save))
		json_array_append_new(list, json_string(s));
	api_result_json(r, 200, json_pack("{s:s, s:s, s:o}", "tenant", a->who.tenant, "key_id", a->who.key_id, "scopes", list));
}

void api_not_implemented(http_req *r)
{
	problem_send(r, 501, "not_implemented", "this route is part of the contract but not implemented yet", NULL);
}
