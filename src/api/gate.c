/* gate.c — the Idempotency-Key gate around every POST route (docs/api.md §2),
 * as two steps of the request pipeline (pipeline.h): api_gate_open checks
 * the header and claims the key (the handler then runs in the gate's
 * transaction), or finds the key decided already; api_gate_save saves the
 * handler's result with the request's effects and commits — or replaces
 * the result with the first request's saved response. A route gets all of
 * this by being a POST in the routing table. */
#include "api/app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void send_problem(http_req *r, int status, const char *code, const char *detail)
{
	http_req_clear_headers(r);
	problem_send(r, status, code, detail, NULL);
}

static void add_expires(http_req *r, long long expires)
{
	if (expires <= 0)
		return;
	time_t t = (time_t)expires;
	struct tm tm;
	char buf[40];
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
	http_req_add_header(r, "Idempotency-Expires", buf);
}

/* The gate's verdict, after the save (phase handled) or from the record
 * alone (phase authenticated): records the result to send and ends the
 * step. */
static void decided(const idem_result *res, void *arg)
{
	http_req *r = arg;
	app_worker *aw = api_worker(r);
	idem_gate *g = api_ctx(r)->gate;
	if (res->waited)
		__atomic_fetch_add(&aw->idem_waits, 1, __ATOMIC_RELAXED);
	switch (res->verdict) {
	case IDEM_SEND: {
		if (res->expires > 0)
			__atomic_fetch_add(&aw->idem_claims, 1, __ATOMIC_RELAXED);
		add_expires(r, res->expires);
		const idem_saved *s = idem_gate_response(g);
		const char *ct = json_string_value(json_object_get(s->headers, "Content-Type"));
		api_result(r, s->status, ct, s->body, s->len); /* the gate keeps it until the request ends */
		api_step_done(r, API_OK);
		return;
	}
	case IDEM_REPLAY: {
		__atomic_fetch_add(&aw->idem_replays, 1, __ATOMIC_RELAXED);
		const idem_saved *s = res->replay;
		http_req_clear_headers(r);
		const char *name;
		json_t *v;
		json_object_foreach(s->headers, name, v)
		{
			if (strcasecmp(name, "Content-Type") != 0 && json_is_string(v))
				http_req_add_header(r, name, json_string_value(v));
		}
		http_req_add_header(r, "Idempotent-Replayed", "true");
		add_expires(r, res->expires);
		api_result(r, s->status, json_string_value(json_object_get(s->headers, "Content-Type")), s->body, s->len);
		api_step_done(r, API_REPLAY);
		return;
	}
	case IDEM_IN_USE: {
		__atomic_fetch_add(&aw->idem_conflicts, 1, __ATOMIC_RELAXED);
		http_req_clear_headers(r);
		http_req_add_header(r, "Retry-After", "1");
		problem_send(r, 409, "idempotency_key_in_use",
			     "a request with this Idempotency-Key is still in progress; retry after a moment", NULL);
		api_step_done(r, API_REFUSED);
		return;
	}
	case IDEM_MISMATCH:
		__atomic_fetch_add(&aw->idem_mismatches, 1, __ATOMIC_RELAXED);
		send_problem(r, 422, "idempotency_key_reused",
			     "this Idempotency-Key was used with another request (method, path or body differ)");
		api_step_done(r, API_REFUSED);
		return;
	case IDEM_UNAVAILABLE:
		http_req_clear_headers(r);
		problem_unavailable(r, (int)aw->app->cfg->retry_after_s, "the database is unavailable; nothing was done");
		api_step_done(r, API_FAILED);
		return;
	case IDEM_FAILED:
	default:
		send_problem(r, 500, "internal", "internal error; nothing was done, see the server log with this request id");
		api_step_done(r, API_FAILED);
		return;
	}
}

static void collect_header(const char *name, const char *value, void *arg)
{
	json_object_set_new(arg, name, json_string(value));
}

void api_gate_save(http_req *r)
{
	api_req *a = api_ctx(r);
	const api_out *o = &a->out;
	idem_saved s = {.status = o->status, .headers = json_object(), .len = o->len};
	/* An owned body (every JSON result) becomes the saved one as it is;
	 * a borrowed one is copied, since the gate answers later. */
	s.body = o->owned != NULL ? api_out_release(&a->out) : malloc(o->len + 1);
	if (s.body != NULL && s.body != o->body) {
		if (o->len > 0)
			memcpy(s.body, o->body, o->len);
		s.body[o->len] = '\0';
	}
	if (s.headers == NULL || s.body == NULL) {
		idem_saved_clear(&s);
		/* The rollback frees the key and undoes the effects. */
		send_problem(r, 500, "internal", "out of memory; nothing was done");
		api_step_done(r, API_FAILED);
		return;
	}
	if (o->content_type != NULL)
		json_object_set_new(s.headers, "Content-Type", json_string(o->content_type));
	http_req_foreach_header(r, collect_header, s.headers);
	idem_gate_finish(a->gate, &s, decided, r);
}

static void probed(bool run_handler, void *arg)
{
	http_req *r = arg;
	if (run_handler) {
		api_step_done(r, API_OK);
		return;
	}
	/* Decided by the record alone (replay or mismatch). */
	idem_saved none = {0};
	idem_gate_finish(api_ctx(r)->gate, &none, decided, r);
}

static void armed(bool ok, void *arg)
{
	http_req *r = arg;
	if (!ok) {
		problem_unavailable(r, (int)api_worker(r)->app->cfg->retry_after_s, "cannot record the Idempotency-Key right now");
		api_step_done(r, API_FAILED);
		return;
	}
	api_step_done(r, API_OK);
}

void api_gate_open(http_req *r)
{
	api_req *a = api_ctx(r);
	app_worker *aw = api_worker(r);
	const char *values[4];
	size_t n = 0;
	for (size_t i = 0; i < r->nheaders && n < 4; i++)
		if (strcasecmp(r->hnames[i], "Idempotency-Key") == 0)
			values[n++] = r->hvalues[i];
	char key[IDEM_KEY_MAX + 1];
	switch (idem_parse_key(values, n, key)) {
	case IDEM_KEY_MISSING:
		problem_send(r, 400, "idempotency_key_missing", "every POST needs an Idempotency-Key header", NULL);
		api_step_done(r, API_REFUSED);
		return;
	case IDEM_KEY_INVALID:
		problem_send(r, 400, "idempotency_key_invalid",
			     "Idempotency-Key must appear once: a string (\"...\") or token of 1-255 visible ASCII characters",
			     NULL);
		api_step_done(r, API_REFUSED);
		return;
	default:
		break;
	}
	char fp[65];
	idem_fingerprint(r->method_str, r->path, a->body, fp);
	int ttl = a->who.idempotency_ttl_s > 0 ? a->who.idempotency_ttl_s : (int)aw->app->cfg->idempotency_ttl_s;
	a->gate = idem_gate_new(aw->items, aw->db, aw->idem_hints, a->who.tenant, key, fp, ttl, (int)aw->app->cfg->idempotency_wait_ms);
	if (a->gate == NULL) {
		problem_send(r, 500, "internal", "out of memory", NULL);
		api_step_done(r, API_FAILED);
		return;
	}
	if (idem_gate_hinted(a->gate)) {
		/* Probably a replay: read the record first, skip the handler. */
		idem_gate_on_armed(a->gate, armed, r);
		idem_gate_probe(a->gate, probed, r);
		return;
	}
	idem_gate_arm(a->gate, armed, r);
}
