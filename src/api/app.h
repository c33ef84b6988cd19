/* app.h — what the API layer hangs on each worker and each request:
 * the worker's database pool, auth cache and metrics; the request's
 * authenticated principal, route parameters and parsed JSON body. */
#ifndef OL_API_APP_H
#define OL_API_APP_H

#include <stdbool.h>

#include <jansson.h>

#include "api/cursor.h"
#include "api/pipeline.h"
#include "api/problem.h"
#include "auth/cache.h"
#include "auth/master.h"
#include "config.h"
#include "db/db.h"
#include "http/http.h"
#include "http/router.h"
#include "idem/idem.h"
#include "items/items.h"
#include "metrics.h"

typedef struct app app;

typedef struct app_worker {
	app *app;
	http_worker *hw;
	db_pool *db;
	auth_cache *auth;
	metrics *metrics;
	it_store *items;
	struct akid_cache *akids; /* SigV4 keys (with a master key) */
	struct event *ttl_sweep; /* worker 0 only */
	bool sweeping;
	long swept;              /* items deleted by this worker's sweeper */
	struct event *hold_sweep; /* worker 0 only */
	bool hold_sweeping;
	long holds_expired;
	/* Idempotency-Key gate counters (written by this worker only). */
	long idem_claims, idem_replays, idem_conflicts, idem_mismatches, idem_waits;
	idem_hints *idem_hints;
} app_worker;

enum { REDIS_UNKNOWN = 0, REDIS_UP = 1, REDIS_DOWN = 2 };

struct app {
	const ol_config *cfg;
	http_server *srv;
	app_worker **workers;
	int nworkers;
	int redis_state; /* REDIS_*, written by the main thread, read atomically */
	const master_key *mk; /* NULL without a master key file */
	struct ev_keys *keys;     /* event signing keys (docs/events.md) */
	struct ev_relay *relay;   /* NULL when relay_enabled is 0 */
	cursor_key cursor_key;    /* list cursors' tag key (from the events key file) */
	struct rl_table *rl;      /* per-key rate limits (api/ratelimit.h) */
	/* Set (atomically) by a worker whose pool found an invalid statement
	 * (statement_invalid); the daemon then stops and exits 1. */
	int stmt_invalid;
};

typedef struct api_req {
	api_phase phase;          /* where the request stands (pipeline.h) */
	const api_steps *steps;   /* what each phase does (dispatch.c's, or a test's fakes) */
	api_out out;              /* the result it answers with */
	auth_principal who;
	router_match match;
	json_t *body; /* the request's JSON object ({} when there was no body) */
	idem_gate *gate; /* POST routes: the Idempotency-Key gate */
	int v_index;     /* 1 + the list element being validated (0: none): 400s name it */
	bool quiet;      /* a 5xx that is the client's doing: logged at debug, not warn */
} api_req;

/* Route flags. */
enum {
	ROUTE_PUBLIC = 1,     /* no authentication (ops endpoints) */
	ROUTE_OPS = 2,        /* also served on metrics_listen */
	ROUTE_ANY_SCOPE = 4,  /* any valid key */
	ROUTE_NO_IDEM = 8,    /* a POST that takes no Idempotency-Key (§9) */
};

/* The transaction a handler's item-layer calls run in: the gate's on a
 * POST (the claim and the saved response commit with them), NULL on other
 * routes (each call on its own). */
static inline db_tx *api_tx(http_req *r)
{
	api_req *a = r->app;
	return a != NULL && a->gate != NULL ? idem_gate_tx(a->gate) : NULL;
}

static inline app_worker *api_worker(http_req *r) { return http_worker_app(r->worker); }
static inline api_req *api_ctx(http_req *r) { return r->app; }
static inline const char *api_param(http_req *r, int i) { return api_ctx(r)->match.params[i]; }

/* The routing table (routes.c). */
const route *api_routes(size_t *n);
const char *api_route_name(int index);

/* http hooks: the request pipeline's steps (dispatch.c). */
void api_on_request(http_req *r, void *arg);
void api_on_complete(http_req *r, void *arg);
/* http hooks: a worker's start and end (worker.c). A failed init has
 * released what it took. */
bool api_worker_init(http_worker *w, void *arg) OL_WARN_UNUSED;
void api_worker_fini(http_worker *w, void *arg);
/* After the workers' loops ended (or never started): frees what outlives
 * them, the app_workers with their metrics, and ap->workers. */
void api_workers_free(app *ap);

/* Worker 0's sweeper timers (sweepers.c); other workers have none. False
 * when a timer cannot be set (api_sweepers_stop frees what was set). */
bool api_sweepers_start(app_worker *aw) OL_WARN_UNUSED;
void api_sweepers_stop(app_worker *aw);

/* Handlers. */
void ops_healthz(http_req *r);
void ops_readyz(http_req *r);
void ops_metrics(http_req *r);
void ops_whoami(http_req *r);
void api_not_implemented(http_req *r);
/* §3 accounts (accounts.c). */
void api_account_create(http_req *r);
void api_account_get(http_req *r);
void api_account_list(http_req *r);
void api_account_freeze(http_req *r);
void api_account_unfreeze(http_req *r);
/* §9 idempotency as a service (idempotency.c). */
void api_credit(http_req *r);
void api_debit(http_req *r);
void api_transfer_create(http_req *r);
void api_transfer_batch(http_req *r);
void api_transfer_get(http_req *r);
void api_hold_create(http_req *r);
void api_hold_get(http_req *r);
void api_hold_capture(http_req *r);
void api_hold_void(http_req *r);
void api_order_create(http_req *r);
void api_order_list(http_req *r);
void api_order_get(http_req *r);
void api_order_settle(http_req *r);
void api_order_cancel(http_req *r);
void api_order_refund(http_req *r);
void api_entries(http_req *r);
void api_balance_at(http_req *r);
void api_statement(http_req *r);
void api_verify(http_req *r);
void api_audit_verify(http_req *r);
/* §8 events (events.c). */
void api_events(http_req *r);
void api_events_signing_key(http_req *r);

void api_idem_claim(http_req *r);
void api_idem_get(http_req *r);
void api_idem_complete(http_req *r);
void api_idem_release(http_req *r);
/* The DynamoDB-compatible endpoint (dynamodb.c). */
void ddb_on_request(http_req *r);

/* The Idempotency-Key gate (gate.c), two steps of a POST's pipeline:
 * api_gate_open (phase authenticated) checks the header and claims the key,
 * or finds it decided (replay, 409, 422); api_gate_save (phase handled)
 * saves the handler's result with its effects and commits, or replaces it
 * with the first request's. */
void api_gate_open(http_req *r);
void api_gate_save(http_req *r);

/* Decodes the request body into a->body: a JSON object ({} when empty);
 * replies (415 or 400) and returns false when it is not one (request.c). */
bool api_decode_body(http_req *r, api_req *a);
/* Maps a failed db_result to the right problem (503 for availability). */
void api_db_problem(http_req *r, const db_result *res);

#endif
