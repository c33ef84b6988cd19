/* sweepers.c — the background work of worker 0, on timers of its event
 * loop: the TTL sweeper (the item layer's expired items, then DynamoDB
 * stream records past retention) and the hold sweeper (pending holds past
 * expires_at, then created orders past theirs, then the inboxes of hot
 * accounts). One sweeper per instance is plenty; instances sweeping at once
 * do not collide (SKIP LOCKED). Each runs one batch at a time: a tick while
 * the previous round is in flight does nothing, and a full batch is
 * followed at once by the next. */
#include "api/app.h"
#include "ledger/ledger.h"

#include "log.h"

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
		it_sweep_streams(aw->items, aw->app->cfg->ttl_sweep_batch, streams_swept, aw);
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
		it_sweep_streams(aw->items, aw->app->cfg->ttl_sweep_batch, streams_swept, aw);
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
	it_sweep_expired(aw->items, aw->app->cfg->ttl_sweep_batch, ttl_swept, aw);
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
	lg_inbox_sweep(aw->db, aw->app->cfg->ttl_sweep_batch, inboxes_swept, aw);
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
	lg_orders_sweep(aw->db, aw->app->cfg->ttl_sweep_batch, orders_swept, aw);
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
	lg_holds_sweep(aw->db, aw->app->cfg->ttl_sweep_batch, holds_swept, aw);
}

static bool add_timer(app_worker *aw, struct event **ev, int ms, event_callback_fn fn)
{
	*ev = event_new(http_worker_base(aw->hw), -1, EV_PERSIST, fn, aw);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	return *ev != NULL && event_add(*ev, &tv) == 0;
}

bool api_sweepers_start(app_worker *aw)
{
	const ol_config *cfg = aw->app->cfg;
	if (http_worker_index(aw->hw) != 0)
		return true;
	if (cfg->ttl_sweep_interval_ms > 0 && !add_timer(aw, &aw->ttl_sweep, cfg->ttl_sweep_interval_ms, ttl_sweep_tick))
		return false;
	if (cfg->hold_sweep_interval_ms > 0 && !add_timer(aw, &aw->hold_sweep, cfg->hold_sweep_interval_ms, hold_sweep_tick))
		return false;
	return true;
}

void api_sweepers_stop(app_worker *aw)
{
	if (aw->ttl_sweep != NULL) {
		event_free(aw->ttl_sweep);
		aw->ttl_sweep = NULL;
	}
	if (aw->hold_sweep != NULL) {
		event_free(aw->hold_sweep);
		aw->hold_sweep = NULL;
	}
}
