/* dispatch.c — the steps of the request pipeline every API route goes
 * through (pipeline.h advances them), in order:
 *   received:      route (404/405)
 *   routed:        authenticate (401, or 503 when the key must be looked up
 *                  and PostgreSQL is down) → the key's rate limit (429) →
 *                  scope (403)
 *   authenticated: body media type (415) → JSON object (400) → on a POST,
 *                  the Idempotency-Key gate opens (gate.c)
 *   gated:         the route's handler, which records a result
 *   handled:       on a POST, the gate saves it and commits (gate.c)
 *   sent:          the reply is written (http_reply)
 * Bodies over the limit were already refused (413) by the HTTP layer
 * before a byte of them was buffered. Then, once the response is written,
 * api_on_complete records it (metrics, log line).
 * The workers' start and end are in worker.c, their timers in sweepers.c. */
#include "api/app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/ratelimit.h"
#include "http/problem.h"
#include "log.h"

static void api_req_free(void *p)
{
	api_req *a = p;
	idem_gate_free(a->gate);
	json_decref(a->body);
	free(a->out.owned);
	free(a);
}

static bool gated_route(const http_req *r, const route *rt)
{
	return r->method == HTTP_M_POST && !(rt->flags & (ROUTE_PUBLIC | ROUTE_NO_IDEM));
}

/* The key's rate limit (docs/operations.md "Rate limits"): the RateLimit
 * fields of draft-ietf-httpapi-ratelimit-headers-10 on every response while
 * a limit applies, and 429 rate_limited past it. False when refused. The
 * fields are final headers: the idempotency gate never saves them, and a
 * 429 comes before the gate, so it is never saved either. */
static bool rate_limit_ok(http_req *r, const auth_principal *p)
{
	const ol_config *cfg = api_worker(r)->app->cfg;
	long rps = p->rate_limit_rps >= 0 ? p->rate_limit_rps : cfg->rate_limit_rps;
	if (rps <= 0 || api_worker(r)->app->rl == NULL)
		return true;
	long burst = p->rate_limit_burst > 0 ? p->rate_limit_burst : cfg->rate_limit_burst > 0 ? cfg->rate_limit_burst : rps;
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
		problem_unavailable(r, api_worker(r)->app->cfg->retry_after_s, "cannot verify the API key right now");
		api_step_done(r, API_FAILED);
		return;
	}
	if (st == AUTH_THROTTLED) {
		/* Made-up keys, most likely: counted in /metrics, not logged at
		 * warn once per request. */
		a->quiet = true;
		problem_unavailable(r, api_worker(r)->app->cfg->retry_after_s,
				    "too many lookups of API keys this server does not know; retry shortly");
		api_step_done(r, API_FAILED);
		return;
	}
	if (st != AUTH_OK) {
		http_req_add_header(r, "WWW-Authenticate", "Bearer");
		problem_send(r, 401, "unauthenticated", "a valid API key is required: Authorization: Bearer <key>", NULL);
		api_step_done(r, API_REFUSED);
		return;
	}
	a->who = *p;
	if (!rate_limit_ok(r, p)) {
		api_step_done(r, API_REFUSED);
		return;
	}
	if (!(rt->flags & ROUTE_ANY_SCOPE) && !auth_scope_allows(p->scopes, rt->scope)) {
		char need[32];
		auth_scopes_format(rt->scope, need, sizeof(need));
		char detail[96];
		snprintf(detail, sizeof(detail), "this route needs the '%s' scope", need);
		problem_send(r, 403, "forbidden", detail, NULL);
		api_step_done(r, API_REFUSED);
		return;
	}
	api_step_done(r, API_OK);
}

/* ---- the steps ----------------------------------------------------------- */

static void step_route(http_req *r)
{
	api_req *a = api_ctx(r);
	size_t n;
	const route *table = api_routes(&n);
	unsigned allowed = 0;
	int rc = router_match_path(table, n, r->path, r->method, &a->match, &allowed);
	if (rc == 0 && r->on_metrics_listener && !(a->match.route->flags & ROUTE_OPS))
		rc = 404;
	if (rc == 404) {
		problem_send(r, 404, "not_found", "no such route", NULL);
		api_step_done(r, API_REFUSED);
		return;
	}
	if (rc == 400) {
		problem_send(r, 400, "invalid_request", "a path parameter is not valid percent-encoded text", NULL);
		api_step_done(r, API_REFUSED);
		return;
	}
	if (rc == 405) {
		char allow[64];
		router_allow_header(allowed, allow, sizeof(allow));
		http_req_add_header(r, "Allow", allow);
		problem_send(r, 405, "method_not_allowed", "the route exists but not with this method", NULL);
		api_step_done(r, API_REFUSED);
		return;
	}
	r->route_id = a->match.index;
	api_step_done(r, API_OK);
}

static void step_authenticate(http_req *r)
{
	if (api_ctx(r)->match.route->flags & ROUTE_PUBLIC) {
		api_step_done(r, API_OK);
		return;
	}
	auth_check(api_worker(r)->auth, http_req_header(r, "Authorization"), auth_done, r);
}

static void step_open_gate(http_req *r)
{
	api_req *a = api_ctx(r);
	if ((r->method == HTTP_M_POST || evbuffer_get_length(r->body) > 0) && !api_decode_body(r, a)) {
		api_step_done(r, API_REFUSED);
		return;
	}
	if (gated_route(r, a->match.route)) {
		api_gate_open(r);
		return;
	}
	api_step_done(r, API_OK);
}

static void step_handle(http_req *r)
{
	api_ctx(r)->match.route->handler(r);
}

static void step_save(http_req *r)
{
	if (api_ctx(r)->gate != NULL) {
		api_gate_save(r);
		return;
	}
	api_step_done(r, API_OK); /* nothing to save: the result is final */
}

static void step_send(http_req *r)
{
	api_req *a = api_ctx(r);
	api_out o = a->out;
	char *owned = api_out_release(&a->out);
	if (o.status == 0) {
		/* A step ended without a result: a bug, answered as one. */
		static const char body[] = "{\"type\":\"urn:onceledger:problem:internal\",\"title\":\"Internal error\","
					   "\"status\":500,\"code\":\"internal\"}";
		o = (api_out){.status = 500, .content_type = "application/problem+json", .body = body, .len = sizeof(body) - 1};
	}
	http_reply(r, o.status, o.content_type, o.body, o.len); /* frees r */
	free(owned);
}

static const api_steps steps = {
	.route = step_route,
	.authenticate = step_authenticate,
	.open_gate = step_open_gate,
	.handle = step_handle,
	.save = step_save,
	.send = step_send,
};

void api_on_request(http_req *r, void *arg)
{
	(void)arg;
	if (r->on_dynamodb_listener) {
		ddb_on_request(r); /* its own protocol, context and errors */
		return;
	}
	api_req *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		http_problem(r, 500, "internal", "out of memory");
		return;
	}
	a->steps = &steps;
	r->app = a;
	r->app_free = api_req_free;
	api_pipeline_start(r);
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
