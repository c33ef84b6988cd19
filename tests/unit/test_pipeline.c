/* test_pipeline.c — the request phases of src/api (api/pipeline.h), without
 * PostgreSQL: every step (route, authenticate, open the gate, handle, save,
 * send) is a fake that answers with the outcome the scenario gives it, at
 * once or later (as the real ones do after a round trip). Checked: each
 * phase's next phase for success, a refusal, a gate replay and a failure;
 * the phases a request walks; which result is sent; that a handler's owned
 * body reaches the save step without a copy and is freed on every path. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "tap.h"

/* ---- the scenario and what the fakes saw ---------------------------------- */

typedef struct scenario {
	api_outcome route, auth, gate, save; /* each step's outcome */
	bool async;        /* steps answer later (run_pending) */
	bool handler_owns; /* the handler's body is malloc'd (api_result_take) */
} scenario;

static struct {
	scenario sc;
	api_phase trace[16];
	int ntrace;
	bool handler_ran;
	const char *saved_body;   /* the body the save step was given */
	bool saved_was_handlers;  /* ... is the handler's own buffer */
	int sent_status;
	char sent_body[128];
	bool sent;
	http_req *pending;        /* an async step to finish */
	http_req *handler_pending; /* an async handler to answer */
	api_outcome pending_o;
	const char *handler_buf;
} t;

static void seen(http_req *r)
{
	if (t.ntrace < 16)
		t.trace[t.ntrace++] = api_ctx(r)->phase;
}

/* A step's answer: at once, or later like a database round trip. */
static void answer(http_req *r, api_outcome o)
{
	if (t.sc.async) {
		t.pending = r;
		t.pending_o = o;
		return;
	}
	api_step_done(r, o);
}

static void handler_result(http_req *r);

static void run_pending(void)
{
	while (t.pending != NULL || t.handler_pending != NULL) {
		http_req *r = t.handler_pending;
		if (r != NULL) {
			t.handler_pending = NULL;
			handler_result(r);
			continue;
		}
		r = t.pending;
		t.pending = NULL;
		api_step_done(r, t.pending_o);
	}
}

static const char *const refusal_body[] = {"refused", "refused", "replayed", "failed"};

/* A refusal, replay or failure records its own result, as the real steps
 * record their problem documents. */
static void outcome_result(http_req *r, api_outcome o, int refused, int failed)
{
	if (o == API_REFUSED)
		api_result(r, refused, "application/problem+json", refusal_body[o], strlen(refusal_body[o]));
	else if (o == API_FAILED)
		api_result(r, failed, "application/problem+json", refusal_body[o], strlen(refusal_body[o]));
	else if (o == API_REPLAY)
		api_result(r, 201, "application/json", "replayed", 8);
}

static void fake_route(http_req *r)
{
	seen(r);
	outcome_result(r, t.sc.route, 404, 500);
	answer(r, t.sc.route);
}

static void fake_authenticate(http_req *r)
{
	seen(r);
	outcome_result(r, t.sc.auth, 401, 503);
	answer(r, t.sc.auth);
}

static void fake_open_gate(http_req *r)
{
	seen(r);
	outcome_result(r, t.sc.gate, 400, 503);
	answer(r, t.sc.gate);
}

static void handler_result(http_req *r)
{
	if (t.sc.handler_owns) {
		char *b = strdup("{\"id\":\"t1\"}");
		t.handler_buf = b;
		api_result_take(r, 201, "application/json", b, strlen(b));
		return;
	}
	api_result(r, 201, "application/json", "{\"id\":\"t1\"}", 11);
}

static void fake_handle(http_req *r)
{
	seen(r);
	t.handler_ran = true;
	if (t.sc.async) {
		t.handler_pending = r; /* the handler's own round trip first */
		return;
	}
	handler_result(r);
}

static void fake_save(http_req *r)
{
	seen(r);
	api_req *a = api_ctx(r);
	t.saved_body = a->out.body;
	t.saved_was_handlers = t.handler_buf != NULL && a->out.owned == t.handler_buf;
	/* the gate takes the handler's buffer as the saved response */
	char *taken = api_out_release(&a->out);
	free(taken);
	if (t.sc.save == API_OK)
		api_result(r, 201, "application/json", "{\"id\":\"t1\"}", 11); /* the saved copy */
	outcome_result(r, t.sc.save, 409, 503);
	answer(r, t.sc.save);
}

static void fake_send(http_req *r)
{
	seen(r);
	api_req *a = api_ctx(r);
	t.sent = true;
	t.sent_status = a->out.status;
	snprintf(t.sent_body, sizeof(t.sent_body), "%.*s", (int)a->out.len, a->out.body);
	free(api_out_release(&a->out));
}

static const api_steps fakes = {
	.route = fake_route,
	.authenticate = fake_authenticate,
	.open_gate = fake_open_gate,
	.handle = fake_handle,
	.save = fake_save,
	.send = fake_send,
};

/* Runs one request through the pipeline on the fakes. */
static void run(scenario sc)
{
	memset(&t, 0, sizeof(t));
	t.sc = sc;
	static api_req a;
	static http_req r;
	memset(&a, 0, sizeof(a));
	memset(&r, 0, sizeof(r));
	a.steps = &fakes;
	r.app = &a;
	api_pipeline_start(&r);
	run_pending();
}

/* The phases whose step ran, in order (saved has none: it goes on to sent). */
static bool walked(const api_phase *want, int n)
{
	if (t.ntrace != n)
		return false;
	for (int i = 0; i < n; i++)
		if (t.trace[i] != want[i])
			return false;
	return true;
}

#define WALKED(...) walked((const api_phase[]){__VA_ARGS__}, (int)(sizeof((const api_phase[]){__VA_ARGS__}) / sizeof(api_phase)))

static void test_table(void)
{
	/* success: one phase after another */
	CHECK(api_phase_next(API_RECEIVED, API_OK) == API_ROUTED, "received --ok--> routed");
	CHECK(api_phase_next(API_ROUTED, API_OK) == API_AUTHENTICATED, "routed --ok--> authenticated");
	CHECK(api_phase_next(API_AUTHENTICATED, API_OK) == API_GATED, "authenticated --ok--> gated");
	CHECK(api_phase_next(API_GATED, API_OK) == API_HANDLED, "gated --ok--> handled");
	CHECK(api_phase_next(API_HANDLED, API_OK) == API_SAVED, "handled --ok--> saved");
	CHECK(api_phase_next(API_SAVED, API_OK) == API_SENT, "saved --ok--> sent");
	CHECK(api_phase_next(API_SENT, API_OK) == API_SENT, "sent is the end");
	/* a refusal is sent at once and never saved */
	CHECK(api_phase_next(API_RECEIVED, API_REFUSED) == API_SENT, "received --refused (404/405)--> sent");
	CHECK(api_phase_next(API_ROUTED, API_REFUSED) == API_SENT, "routed --refused (401/403/429)--> sent");
	CHECK(api_phase_next(API_AUTHENTICATED, API_REFUSED) == API_SENT,
	      "authenticated --refused (400/415/422 by the record)--> sent");
	CHECK(api_phase_next(API_GATED, API_REFUSED) == API_HANDLED, "gated --a handler's 4xx--> handled (the gate decides)");
	CHECK(api_phase_next(API_HANDLED, API_REFUSED) == API_SENT, "handled --refused (409 in use, 422)--> sent");
	CHECK(api_phase_next(API_SAVED, API_REFUSED) == API_SENT, "saved --refused--> sent");
	/* a replay is a saved response */
	CHECK(api_phase_next(API_AUTHENTICATED, API_REPLAY) == API_SAVED, "authenticated --replay (probe)--> saved");
	CHECK(api_phase_next(API_HANDLED, API_REPLAY) == API_SAVED, "handled --replay (claim)--> saved");
	CHECK(api_phase_next(API_GATED, API_REPLAY) == API_HANDLED, "gated --replay--> handled");
	CHECK(api_phase_next(API_RECEIVED, API_REPLAY) == API_SENT, "received --replay (none there)--> sent");
	CHECK(api_phase_next(API_ROUTED, API_REPLAY) == API_SENT, "routed --replay (none there)--> sent");
	/* a failure is sent, never saved */
	CHECK(api_phase_next(API_RECEIVED, API_FAILED) == API_SENT, "received --failed--> sent");
	CHECK(api_phase_next(API_ROUTED, API_FAILED) == API_SENT, "routed --failed (503 auth)--> sent");
	CHECK(api_phase_next(API_AUTHENTICATED, API_FAILED) == API_SENT, "authenticated --failed (503 claim)--> sent");
	CHECK(api_phase_next(API_GATED, API_FAILED) == API_HANDLED, "gated --a handler's 5xx--> handled (rolled back there)");
	CHECK(api_phase_next(API_HANDLED, API_FAILED) == API_SENT, "handled --failed (commit)--> sent");
	CHECK(api_phase_next(API_SAVED, API_FAILED) == API_SENT, "saved --failed--> sent");
	/* out of range */
	CHECK(api_phase_next(API_NPHASES, API_OK) == API_SENT, "an unknown phase ends the request");
	CHECK(api_phase_next(API_GATED, (api_outcome)7) == API_SENT, "an unknown outcome ends the request");
	CHECK_STR(api_phase_name(API_AUTHENTICATED), "authenticated", "phase names");
}

static void test_walks(bool async)
{
	const char *mode = async ? " (async)" : "";
	char name[160];
#define NAME(s) (snprintf(name, sizeof(name), "%s%s", (s), mode), name)

	run((scenario){.async = async, .handler_owns = true});
	CHECK(WALKED(API_RECEIVED, API_ROUTED, API_AUTHENTICATED, API_GATED, API_HANDLED, API_SENT),
	      NAME("executed: every phase in order"));
	CHECK(t.sent && t.sent_status == 201 && strcmp(t.sent_body, "{\"id\":\"t1\"}") == 0, NAME("executed: the saved result is sent"));
	CHECK(t.saved_was_handlers, NAME("executed: the save step gets the handler's own buffer (no copy)"));

	run((scenario){.async = async});
	CHECK(t.sent_status == 201 && strcmp(t.saved_body, "{\"id\":\"t1\"}") == 0 && !t.saved_was_handlers,
	      NAME("executed, borrowed body: the save step sees it"));

	run((scenario){.async = async, .route = API_REFUSED});
	CHECK(WALKED(API_RECEIVED, API_SENT) && t.sent_status == 404 && !t.handler_ran, NAME("refused by the route: sent at once"));

	run((scenario){.async = async, .auth = API_REFUSED});
	CHECK(WALKED(API_RECEIVED, API_ROUTED, API_SENT) && t.sent_status == 401 && !t.handler_ran,
	      NAME("refused by authentication: sent, not saved"));

	run((scenario){.async = async, .auth = API_FAILED});
	CHECK(WALKED(API_RECEIVED, API_ROUTED, API_SENT) && t.sent_status == 503, NAME("authentication failed: 503 sent"));

	run((scenario){.async = async, .gate = API_REFUSED});
	CHECK(WALKED(API_RECEIVED, API_ROUTED, API_AUTHENTICATED, API_SENT) && t.sent_status == 400 && !t.handler_ran,
	      NAME("refused at the gate (key missing): sent, not saved"));

	run((scenario){.async = async, .gate = API_REPLAY});
	CHECK(WALKED(API_RECEIVED, API_ROUTED, API_AUTHENTICATED, API_SENT) && !t.handler_ran && t.saved_body == NULL &&
		      t.sent_status == 201 && strcmp(t.sent_body, "replayed") == 0,
	      NAME("replay from the record alone: the handler never runs, the saved response is sent"));

	run((scenario){.async = async, .gate = API_FAILED});
	CHECK(WALKED(API_RECEIVED, API_ROUTED, API_AUTHENTICATED, API_SENT) && t.sent_status == 503 && !t.handler_ran,
	      NAME("the claim cannot be made: 503 sent, handler not run"));

	run((scenario){.async = async, .handler_owns = true, .save = API_REPLAY});
	CHECK(WALKED(API_RECEIVED, API_ROUTED, API_AUTHENTICATED, API_GATED, API_HANDLED, API_SENT) &&
		      strcmp(t.sent_body, "replayed") == 0,
	      NAME("replay found by the claim: the first request's response replaces the handler's"));

	run((scenario){.async = async, .handler_owns = true, .save = API_REFUSED});
	CHECK(WALKED(API_RECEIVED, API_ROUTED, API_AUTHENTICATED, API_GATED, API_HANDLED, API_SENT) && t.sent_status == 409,
	      NAME("key in use at the save: 409 sent, not saved"));

	run((scenario){.async = async, .handler_owns = true, .save = API_FAILED});
	CHECK(WALKED(API_RECEIVED, API_ROUTED, API_AUTHENTICATED, API_GATED, API_HANDLED, API_SENT) && t.sent_status == 503,
	      NAME("commit failed: 503 sent instead of the handler's result"));
#undef NAME
}

/* Outside the handler's phase a result is only recorded: the step that
 * recorded it reports the outcome. */
static void test_record_only(void)
{
	static api_req a;
	static http_req r;
	memset(&t, 0, sizeof(t));
	a = (api_req){.steps = &fakes, .phase = API_AUTHENTICATED};
	r.app = &a;
	api_result_take(&r, 400, "application/problem+json", strdup("x"), 1);
	api_result(&r, 415, "application/problem+json", "y", 1); /* replaces it; the first is freed */
	CHECK(a.phase == API_AUTHENTICATED && !t.sent && a.out.status == 415 && a.out.owned == NULL,
	      "a result outside the handler is recorded, the phase stays");
	char *b = strdup("z");
	api_result_take(&r, 201, "application/json", b, 1);
	CHECK(api_out_release(&a.out) == b && a.out.owned == NULL, "api_out_release hands over the owned body");
	free(b);
}

int main(void)
{
	test_table();
	test_walks(false);
	test_walks(true);
	test_record_only();
	return it_test_done();
}
