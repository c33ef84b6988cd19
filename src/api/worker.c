/* worker.c — the API layer's part of each HTTP worker's life: what
 * api_worker_init hangs on the worker at start-up (its PostgreSQL pool,
 * API key cache, metrics, item store, Idempotency-Key hints, SigV4 key
 * cache and, on worker 0, the sweepers), what api_worker_fini releases when
 * the worker's loop has ended, and api_workers_free for what outlives the
 * loops (the metrics, rendered by any thread until the process exits,
 * and the app's array of workers).
 *
 * A failed init releases everything it took before returning false; the
 * HTTP layer then finalizes the workers that were initialised before it
 * (http_server_start). Each step can be made to fail by the test-only
 * ONCELEDGER_TEST_FAIL_STEP (fault.h). */
#include "api/app.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <sodium.h>

#include "api/stmts.h"
#include "auth/akid.h"
#include "fault.h"
#include "log.h"

/* Everything but the app_worker itself and its metrics. */
static void worker_release(app_worker *aw)
{
	api_sweepers_stop(aw);
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

/* DynamoDB Streams shard iterators are MACed with a key of their own,
 * derived from the master key (keyed BLAKE2b of a label). */
static void set_stream_key(app_worker *aw, const master_key *mk)
{
	static const char label[] = "onceledger dynamodb streams shard iterators v1";
	unsigned char sk[32];
	crypto_generichash(sk, sizeof(sk), (const unsigned char *)label, sizeof(label) - 1, mk->k, sizeof(mk->k));
	it_store_set_stream_key(aw->items, sk);
	sodium_memzero(sk, sizeof(sk));
}

/* A fixed statement could not be prepared because of its own text: the
 * daemon cannot serve with it. The main loop stops as on SIGTERM (nothing
 * is in flight: no connection was handed out) and the exit status is 1. */
static void stmt_invalid(void *arg)
{
	app *ap = arg;
	if (__atomic_exchange_n(&ap->stmt_invalid, 1, __ATOMIC_SEQ_CST) == 0)
		kill(getpid(), SIGTERM);
}

bool api_worker_init(http_worker *w, void *arg)
{
	app *ap = arg;
	const ol_config *cfg = ap->cfg;
	const char *step = "worker";
	app_worker *aw = fault_inject(step) ? NULL : calloc(1, sizeof(*aw));
	if (aw == NULL) {
		log_error("worker_init_failed", "{s:i, s:s}", "worker", http_worker_index(w), "step", step);
		return false;
	}
	aw->app = ap;
	aw->hw = w;
	db_pool_config pc = {
		.conninfo = cfg->database_url,
		.size = cfg->db_pool_size,
		.connect_timeout_ms = cfg->db_connect_timeout_ms,
		.query_timeout_ms = cfg->db_query_timeout_ms,
		.queue_max = cfg->db_queue_max,
		.application_name = "onceledgerd",
		.stmts = api_stmt_tables,
		.on_invalid = stmt_invalid,
		.invalid_arg = ap,
	};
	step = "db_pool";
	aw->db = fault_inject(step) ? NULL : db_pool_new(http_worker_base(w), &pc);
	if (aw->db == NULL)
		goto fail;
	step = "auth_cache";
	aw->auth = fault_inject(step) ? NULL
				      : auth_cache_new(aw->db, cfg->auth_cache_ttl_ms, cfg->auth_cache_size, cfg->auth_lookup_rate);
	if (aw->auth == NULL)
		goto fail;
	size_t nroutes;
	api_routes(&nroutes);
	step = "metrics";
	aw->metrics = fault_inject(step) ? NULL : metrics_new((int)nroutes);
	if (aw->metrics == NULL)
		goto fail;
	step = "item_store";
	aw->items = fault_inject(step) ? NULL : it_store_new(aw->db);
	if (aw->items == NULL)
		goto fail;
	step = "idem_hints";
	aw->idem_hints = fault_inject(step) ? NULL : idem_hints_new();
	if (aw->idem_hints == NULL)
		goto fail;
	if (ap->mk != NULL) {
		step = "akid_cache";
		aw->akids = fault_inject(step) ? NULL
					       : akid_cache_new(aw->db, ap->mk, cfg->auth_cache_ttl_ms, 1024, cfg->auth_lookup_rate);
		if (aw->akids == NULL)
			goto fail;
		set_stream_key(aw, ap->mk);
	}
	step = "sweepers";
	if (fault_inject(step) || !api_sweepers_start(aw))
		goto fail;
	ap->workers[http_worker_index(w)] = aw;
	http_worker_set_app(w, aw);
	return true;
fail:
	log_error("worker_init_failed", "{s:i, s:s}", "worker", http_worker_index(w), "step", step);
	worker_release(aw);
	metrics_free(aw->metrics);
	free(aw);
	return false;
}

void api_worker_fini(http_worker *w, void *arg)
{
	(void)arg;
	app_worker *aw = http_worker_app(w);
	if (aw == NULL)
		return;
	/* The metrics stay until the process exits: another thread may be
	 * rendering /metrics; api_workers_free releases them. */
	worker_release(aw);
}

void api_workers_free(app *ap)
{
	if (ap->workers == NULL)
		return;
	for (int i = 0; i < ap->nworkers; i++) {
		if (ap->workers[i] != NULL) {
			metrics_free(ap->workers[i]->metrics);
			free(ap->workers[i]);
			ap->workers[i] = NULL;
		}
	}
	free(ap->workers);
	ap->workers = NULL;
}
