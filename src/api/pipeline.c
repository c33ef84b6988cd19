/* pipeline.c — advances an API request through its phases (pipeline.h).
 * The steps themselves live with what they use: routing, authentication
 * and sending in dispatch.c, the gate in gate.c, handlers per resource; a
 * request's api_req names them (api_steps), so that the unit test runs this
 * machine on fakes of them (tests/unit/test_pipeline.c). */
#include "api/app.h"

#include <stdlib.h>

static const api_phase next[API_NPHASES][4] = {
	/*                     API_OK             API_REFUSED  API_REPLAY  API_FAILED */
	[API_RECEIVED]      = {API_ROUTED,        API_SENT,    API_SENT,   API_SENT},
	[API_ROUTED]        = {API_AUTHENTICATED, API_SENT,    API_SENT,   API_SENT},
	/* a replay decided by the record alone skips the handler */
	[API_AUTHENTICATED] = {API_GATED,         API_SENT,    API_SAVED,  API_SENT},
	[API_GATED]         = {API_HANDLED,       API_HANDLED, API_HANDLED, API_HANDLED},
	/* refused: the key is in use or was used with another request */
	[API_HANDLED]       = {API_SAVED,         API_SENT,    API_SAVED,  API_SENT},
	[API_SAVED]         = {API_SENT,          API_SENT,    API_SENT,   API_SENT},
	[API_SENT]          = {API_SENT,          API_SENT,    API_SENT,   API_SENT},
};

api_phase api_phase_next(api_phase from, api_outcome o)
{
	if ((unsigned)from >= API_NPHASES || (unsigned)o > API_FAILED)
		return API_SENT;
	return next[from][o];
}

const char *api_phase_name(api_phase p)
{
	static const char *const names[API_NPHASES] = {"received", "routed",  "authenticated", "gated",
						       "handled",  "saved",   "sent"};
	return (unsigned)p < API_NPHASES ? names[p] : "?";
}

/* Runs the step of r's phase. Steps that answer at once call
 * api_step_done from inside, so a request that never waits walks every
 * phase in one call (at most API_NPHASES deep). */
static void run(http_req *r)
{
	api_req *a = api_ctx(r);
	const api_steps *s = a->steps;
	switch (a->phase) {
	case API_RECEIVED:
		s->route(r);
		return;
	case API_ROUTED:
		s->authenticate(r);
		return;
	case API_AUTHENTICATED:
		s->open_gate(r);
		return;
	case API_GATED:
		s->handle(r);
		return;
	case API_HANDLED:
		s->save(r);
		return;
	case API_SAVED:
		api_step_done(r, API_OK);
		return;
	case API_SENT:
	default:
		s->send(r); /* frees r */
		return;
	}
}

void api_step_done(http_req *r, api_outcome o)
{
	api_req *a = api_ctx(r);
	a->phase = api_phase_next(a->phase, o);
	run(r);
}

void api_pipeline_start(http_req *r)
{
	api_ctx(r)->phase = API_RECEIVED;
	run(r);
}

static void record(http_req *r, int status, const char *content_type, const char *body, size_t len, char *owned)
{
	api_req *a = api_ctx(r);
	free(a->out.owned);
	a->out = (api_out){.status = status, .content_type = content_type, .body = body, .len = len, .owned = owned};
	if (a->phase == API_GATED)
		api_step_done(r, API_OK); /* the handler's answer */
}

void api_result(http_req *r, int status, const char *content_type, const char *body, size_t len)
{
	record(r, status, content_type, body, len, NULL);
}

void api_result_take(http_req *r, int status, const char *content_type, char *body, size_t len)
{
	record(r, status, content_type, body, len, body);
}

char *api_out_release(api_out *o)
{
	char *owned = o->owned;
	o->owned = NULL;
	return owned;
}
