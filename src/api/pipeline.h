/* pipeline.h — the phases of an API request and the one function that
 * advances them (pipeline.c). A phase is where the request stands; each
 * phase has one step (route, authenticate, open the gate, run the handler,
 * save, send), and a step reports its outcome to api_step_done, which picks
 * the next phase (api_phase_next) and runs its step: a state machine in the
 * style of memcached's drive_machine, not a chain of callbacks.
 *
 *   received -> routed -> authenticated -> gated -> handled -> saved -> sent
 *
 * on success; a refusal or failure before the handler goes straight to
 * sent (never saved); a replay goes to saved (from authenticated when the
 * record alone decides, or from handled when the claim finds it); the
 * gate's refusals (409, 422) and failures after the handler go to sent.
 *
 * Handlers never write the reply: they produce a result (api_result and the
 * problem writers of api/problem.h) and the pipeline decides whether the
 * gate saves it and when it is sent. */
#ifndef OL_API_PIPELINE_H
#define OL_API_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

typedef enum {
	API_RECEIVED = 0,   /* step: match the route (404/405) */
	API_ROUTED,         /* step: authenticate, rate limit, scope (401/403/429/503) */
	API_AUTHENTICATED,  /* step: decode the body (400/415), open the gate on a POST (Idempotency-Key, claim) */
	API_GATED,          /* step: the route's handler, in the gate's transaction on a POST */
	API_HANDLED,        /* step: the gate saves the result with the effects and commits (or replays, or refuses) */
	API_SAVED,          /* the result is final; step: none */
	API_SENT,           /* step: write the reply (the request ends here) */
	API_NPHASES
} api_phase;

typedef enum {
	API_OK = 0,   /* the step succeeded */
	API_REFUSED,  /* a 4xx about the request or its key: sent, never saved */
	API_REPLAY,   /* the gate found the first request's saved response */
	API_FAILED,   /* a 5xx before or in the gate: sent, never saved, nothing committed */
} api_outcome;

/* The next phase after a step of phase `from` ended with `o`. A handler
 * always yields a result (its 4xx and 5xx too: the gate decides whether
 * they are saved), so API_GATED goes to API_HANDLED on any outcome. */
api_phase api_phase_next(api_phase from, api_outcome o);
const char *api_phase_name(api_phase p);

/* What each phase's step does. Every step ends, at once or later, with
 * api_step_done (the handler's with api_result); send ends the request. */
typedef struct api_steps {
	void (*route)(http_req *r);
	void (*authenticate)(http_req *r);
	void (*open_gate)(http_req *r);
	void (*handle)(http_req *r);
	void (*save)(http_req *r);
	void (*send)(http_req *r);
} api_steps;

/* The result a request answers with: status, Content-Type, body. The body
 * is borrowed, or owned (malloc'd, freed by the pipeline, or handed to the
 * gate without a copy). */
typedef struct api_out {
	int status;
	const char *content_type;
	const char *body;
	size_t len;
	char *owned; /* == body when owned */
} api_out;

/* Records r's result. From the handler (phase API_GATED) it also ends the
 * handler's step; from any other step it only records, and that step then
 * reports its outcome. body is borrowed: it must live until the step ends
 * (the pipeline copies it only when the gate saves it). */
void api_result(http_req *r, int status, const char *content_type, const char *body, size_t len);
/* The same with a malloc'd body, taken (saved or freed without a copy). */
void api_result_take(http_req *r, int status, const char *content_type, char *body, size_t len);

/* Ends the current phase's step with o and runs the next phase's step. */
void api_step_done(http_req *r, api_outcome o);
/* Starts a request at API_RECEIVED (its api_req set up by the caller). */
void api_pipeline_start(http_req *r);
/* The recorded result, taken by the send step: the body to free after
 * writing (NULL when borrowed). */
char *api_out_release(api_out *o);

#endif
