/* dispatch.c — the request pipeline every API route goes through, in order:
 * route (404/405) → authenticate (401, or 503 when the key must be looked up
 * and PostgreSQL is down) → the key's rate limit (429) → scope (403) → body media type (415) → JSON
 * object (400) → handler. Bodies over the limit were already refused (413)
 * by the HTTP layer before a byte of them was buffered. */
#include "api/app.h"
#include "ledger/ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/ratelimit.h"
#include "auth/akid.h"
#include "log.h"

static void api_req_free(void *p)
{
	api_req *a = p;
	idem_gate_free(a->gate);
	json_decref(a->body);
	free(a);
}

static void run_handler(http_req *r)
{
	api_req *a = api_ctx(r);
	const route *rt = a->match.route;
	if (r->method == HTTP_M_POST || evbuffer_get_length(r->body) > 0) {
		if (!api_decode_body(r, a))
			return;
	}
	if (r->method == HTTP_M_POST && !(rt->flags & (ROUTE_PUBLIC | ROUTE_NO_IDEM))) {
		api_gate_run(r);
		return;
	}
	rt->handler(r);
}

/* The key's rate limit (docs/operations.md "Rate limits"): the RateLimit
 * fields of draft-ietf-httpapi-ratelimit-headers-10 on every response while
 * a limit applies, and 429 rate_limited past it. False when refused. The
 * fields are final headers: the idempotency gate never saves them, and a
 * 429 comes before the gate, so it is never saved either. */
static bool rate_limit_ok(http_req *r, const auth_principal *p)
{
	const ol_config *cfg = api_worker(r)->app->cfg;
	long rps = p->rate_limit_rps >= 0 ? p->rate_limit_rps : (long)cfg->rate_limit_rps;
	if (rps <= 0 || api_worker(r)->app->rl == NULL)
		return true;
	long burst = p->rate_limit_burst > 0 ? p->rate_limit_burst : cfg->rate_limit_burst > 0 ? (long)cfg->rate_limit_burst : rps;
	rl_verdict v;
	rl_take(api_worker(r)->app->rl, p->key_id, p->tenant, (double)rps, (double)burst, util_mono_us(), &v);
	char policy[96], limit[96];
	snprintf(policy, sizeof(policy), "\"key\";q=%ld;w=%ld", v.quota, v.window_s);
	snprintf(limit, sizeof(limit), "\"key\";r=%ld;t=%ld", v.remaining, v.reset_s);
	http_req_add_final_header(r, "RateLimit-Policy", policy);
	http_req_add_final_header(r, "RateLimit", limit);
	if (v.allowed)
		return true;
	char ra[24], detail[160];
	snprintf(ra, sizeof(ra), "%ld", v.retry_after_s);
	http_req_add_final_header(r, "Retry-After", ra);
	snprintf(detail, sizeof(detail), "this API key is over its rate limit (%ld requests a second, bursts of %ld); retry after %ld s",
		 rps, burst, v.retry_after_s);
	problem_send(r, 429, "rate_limited", detail, json_pack("{s:[s]}", "violated-policies", "key"));
	return false;
}

static void auth_done(auth_status st, const auth_principal *p, void *arg)
{
	http_req *r = arg;
	api_req *a = api_ctx(r);
	const route *rt = a->match.route;
	if (st == AUTH_UNAVAILABLE) {
		problem_unavailable(r, (int)api_worker(r)->app->cfg->retry_after_s, "cannot verify the API key right now");
		return;
	}
	if (st == AUTH_THROTTLED) {
		/* Made-up keys, most likely: counted in /metrics, not logged at
		 * warn once per request. */
		a->quiet = true;
		problem_unavailable(r, (int)api_worker(r)->app->cfg->retry_after_s,
				    "too many lookups of API keys this server does not know; retry shortly");
		return;
	}
	if (st != AUTH_OK) {
		http_req_add_header(r, "WWW-Authenticate", "Bearer");
		problem_send(r, 401, "unauthenticated", "a valid API key is required: Authorization: Bearer <key>", NULL);
		return;
	}
	a->who = *p;
	if (!rate_limit_ok(r, p))
		return;
	if (!(rt->flags & ROUTE_ANY_SCOPE) && !auth_scope_allows(p->scopes, rt->scope)) {
		char need[32];
		auth_scopes_format(rt->scope, need, sizeof(need));
		char detail[96];
		snprintf(detail, sizeof(detail), "this route needs the '%s' scope", need);
		problem_send(r, 403, "forbidden", detail, NULL);
		return;
	}
	run_handler(r);
}

void api_on_request(http_req *r, void *arg)
{
	(void)arg;
	if (r->on_dynamodb_listener) {
		ddb_on_request(r); /* its own protocol, context and errors */
		return;
	}
	api_req *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		problem_send(r, 500, "internal", "out of memory", NULL);
		return;
	}
	r->app = a;
	r->app_free = api_req_free;
	size_t n;
	const route *table = api_routes(&n);
	unsigned allowed = 0;
	int rc = router_match_path(table, n, r->path, r->method, &a->match, &allowed);
	if (rc == 0 && r->on_metrics_listener && !(a->match.route->flags & ROUTE_OPS))
		rc = 404;
	if (rc == 404) {
		problem_send(r, 404, "not_found", "no such route", NULL);
		return;
	}
	if (rc == 400) {
		problem_send(r, 400, "invalid_request", "a path parameter is not valid percent-encoded text", NULL);
		return;
	}
	if (rc == 405) {
		char allow[64];
		router_allow_header(allowed, allow, sizeof(allow));
		http_req_add_header(r, "Allow", allow);
		problem_send(r, 405, "method_not_allowed", "the route exists but not with this method", NULL);
		return;
	}
	r->route_id = a->match.index;
	if (a->match.route->flags & ROUTE_PUBLIC) {
		run_handler(r);
		return;
	}
	auth_check(api_worker(r)->auth, http_req_header(r, "Authorization"), auth_done, r);
}

void api_on_complete(http_req *r, void *arg)
{
	(void)arg;
	app_worker *aw = api_worker(r);
	int64_t us = util_mono_us() - r->start_mono_us;
	if (aw != NULL && aw->metrics != NULL)
		metrics_observe(aw->metrics, r->route_id, r->status, us);
	api_req *a = r->on_dynamodb_listener ? NULL : api_ctx(r);
	log_level lvl = (r->status >= 500 && r->status != 501 && !(a != NULL && a->quiet)) ? LOG_WARN : LOG_DEBUG;
	if (lvl >= log_min_level) {
		log_emit(lvl, "request",
			 json_pack("{s:s, s:s, s:s, s:i, s:I, s:s}", "request_id", r->request_id, "method",
				   r->method_str ? r->method_str : "-", "route", api_route_name(r->route_id), "status",
				   r->status, "duration_us", (json_int_t)us, "tenant",
				   (a != NULL && a->who.tenant[0]) ? a->who.tenant : "-"));
	}
}

static void ttl_sweep_tick(evutil_socket_t fd, short what, void *arg);
static void streams_swept(long deleted, void *arg);

static void ttl_swept(long deleted, void *arg)
{
	app_worker *aw = arg;
	aw->sweeping = false;
	if (deleted < 0) {
		log_warn("ttl_sweep_failed", "{}");
		return;
	}
	__atomic_fetch_add(&aw->swept, deleted, __ATOMIC_RELAXED);
	if (deleted > 0)
		log_debug("ttl_swept", "{s:I}", "deleted", (json_int_t)deleted);
	/* A full batch means more are waiting: go on without waiting a tick. */
	if (deleted >= aw->app->cfg->ttl_sweep_batch && !http_worker_draining(aw->hw)) {
		ttl_sweep_tick(-1, 0, aw);
		return;
	}
	/* then the stream records past their retention, batch after batch */
	if (!http_worker_draining(aw->hw)) {
		aw->sweeping = true;
		it_sweep_streams(aw->items, (int)aw->app->cfg->ttl_sweep_batch, streams_swept, aw);
	}
}

static void streams_swept(long deleted, void *arg)
{
	app_worker *aw = arg;
	aw->sweeping = false;
	if (deleted < 0) {
		log_warn("stream_sweep_failed", "{}");
		return;
	}
	if (deleted > 0)
		log_debug("stream_records_swept", "{s:I}", "deleted", (json_int_t)deleted);
	if (deleted >= aw->app->cfg->ttl_sweep_batch && !http_worker_draining(aw->hw)) {
		aw->sweeping = true;
		it_sweep_streams(aw->items, (int)aw->app->cfg->ttl_sweep_batch, streams_swept, aw);
	}
}

/* Deletes expired items in batches; reads already hide them. */
static void ttl_sweep_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	app_worker *aw = arg;
	if (aw->sweeping || aw->db == NULL || db_pool_up(aw->db) == 0)
		return;
	aw->sweeping = true;
	it_sweep_expired(aw->items, (int)aw->app->cfg->ttl_sweep_batch, ttl_swept, aw);
}

static void hold_sweep_tick(evutil_socket_t fd, short what, void *arg);

static void inboxes_swept(long n, void *arg)
{
	app_worker *aw = arg;
	aw->hold_sweeping = false;
	if (n < 0)
		log_warn("inbox_sweep_failed", "{}");
	else if (n > 0)
		log_debug("inboxes_consolidated", "{s:I}", "credits", (json_int_t)n);
}

static void orders_swept(long n, void *arg)
{
	app_worker *aw = arg;
	if (n < 0)
		log_warn("order_sweep_failed", "{}");
	if (n > 0)
		log_info("orders_expired", "{s:I}", "expired", (json_int_t)n);
	/* Then the inboxes of hot accounts (docs/orders.md). */
	if (http_worker_draining(aw->hw)) {
		aw->hold_sweeping = false;
		return;
	}
	lg_inbox_sweep(aw->db, (int)aw->app->cfg->ttl_sweep_batch, inboxes_swept, aw);
}

static void holds_swept(long n, void *arg)
{
	app_worker *aw = arg;
	if (n < 0)
		log_warn("hold_sweep_failed", "{}");
	if (n > 0) {
		__atomic_fetch_add(&aw->holds_expired, n, __ATOMIC_RELAXED);
		log_info("holds_expired", "{s:I}", "expired", (json_int_t)n);
	}
	/* Then the orders past their time (same index, their own key). */
	if (http_worker_draining(aw->hw)) {
		aw->hold_sweeping = false;
		return;
	}
	lg_orders_sweep(aw->db, (int)aw->app->cfg->ttl_sweep_batch, orders_swept, aw);
}

/* Expires pending holds past their time, releasing their amounts, then
 * created orders past theirs, then posts the inboxes of hot accounts. */
static void hold_sweep_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	app_worker *aw = arg;
	if (aw->hold_sweeping || aw->db == NULL || db_pool_up(aw->db) == 0 || http_worker_draining(aw->hw))
		return;
	aw->hold_sweeping = true;
	lg_holds_sweep(aw->db, (int)aw->app->cfg->ttl_sweep_batch, holds_swept, aw);
}

static bool add_timer(http_worker *w, struct event **ev, long long ms, event_callback_fn fn, app_worker *aw)
{
	*ev = event_new(http_worker_base(w), -1, EV_PERSIST, fn, aw);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	return *ev != NULL && event_add(*ev, &tv) == 0;
}

bool api_worker_init(http_worker *w, void *arg)
{
	app *ap = arg;
	const ol_config *cfg = ap->cfg;
	app_worker *aw = calloc(1, sizeof(*aw));
	if (aw == NULL)
		return false;
	aw->app = ap;
	aw->hw = w;
	db_pool_config pc = {
		.conninfo = cfg->database_url,
		.size = (int)cfg->db_pool_size,
		.connect_timeout_ms = (int)cfg->db_connect_timeout_ms,
		.query_timeout_ms = (int)cfg->db_query_timeout_ms,
		.queue_max = (int)cfg->db_queue_max,
		.application_name = "onceledgerd",
	};
	size_t nroutes;
	api_routes(&nroutes);
	aw->db = db_pool_new(http_worker_base(w), &pc);
	aw->auth = aw->db ? auth_cache_new(aw->db, (int)cfg->auth_cache_ttl_ms, (int)cfg->auth_cache_size,
							(int)cfg->auth_lookup_rate) : NULL;
	aw->metrics = metrics_new((int)nroutes);
	if (aw->db == NULL || aw->auth == NULL || aw->metrics == NULL) {
		auth_cache_free(aw->auth);
		db_pool_free(aw->db);
		metrics_free(aw->metrics);
		free(aw);
		return false;
	}
	aw->items = it_store_new(aw->db);
	aw->idem_hints = idem_hints_new();
	if (aw->items == NULL || aw->idem_hints == NULL)
		return false;
	if (ap->mk != NULL) {
		aw->akids = akid_cache_new(aw->db, ap->mk, (int)cfg->auth_cache_ttl_ms, 1024, (int)cfg->auth_lookup_rate);
		if (aw->akids == NULL)
			return false;
		/* DynamoDB Streams shard iterators are MACed with a key of their
		 * own, derived from the master key (keyed BLAKE2b of a label) */
		static const char label[] = "onceledger dynamodb streams shard iterators v1";
		unsigned char sk[32];
		crypto_generichash(sk, sizeof(sk), (const unsigned char *)label, sizeof(label) - 1, ap->mk->k, sizeof(ap->mk->k));
		it_store_set_stream_key(aw->items, sk);
		sodium_memzero(sk, sizeof(sk));
	}
	/* One sweeper per instance is plenty; it lives on worker 0. Instances
	 * sweeping at once do not collide (SKIP LOCKED). */
	if (http_worker_index(w) == 0 && cfg->ttl_sweep_interval_ms > 0 &&
	    !add_timer(w, &aw->ttl_sweep, cfg->ttl_sweep_interval_ms, ttl_sweep_tick, aw))
		return false;
	if (http_worker_index(w) == 0 && cfg->hold_sweep_interval_ms > 0 &&
	    !add_timer(w, &aw->hold_sweep, cfg->hold_sweep_interval_ms, hold_sweep_tick, aw))
		return false;
	ap->workers[http_worker_index(w)] = aw;
	http_worker_set_app(w, aw);
	return true;
}

void api_worker_fini(http_worker *w, void *arg)
{
	(void)arg;
	app_worker *aw = http_worker_app(w);
	if (aw == NULL)
		return;
	/* The metrics stay until the process exits: another thread may be
	 * rendering /metrics; app_free releases them. */
	if (aw->ttl_sweep != NULL) {
		event_free(aw->ttl_sweep);
		aw->ttl_sweep = NULL;
	}
	if (aw->hold_sweep != NULL) {
		event_free(aw->hold_sweep);
		aw->hold_sweep = NULL;
	}
	auth_cache_free(aw->auth);
	aw->auth = NULL;
	it_store_free(aw->items);
	aw->items = NULL;
	idem_hints_free(aw->idem_hints);
	aw->idem_hints = NULL;
	akid_cache_free(aw->akids);
	aw->akids = NULL;
	db_pool_free(aw->db);
	aw->db = NULL;
}
