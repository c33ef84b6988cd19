/* pool.c — per-worker pool of asynchronous libpq connections.
 *
 * Each connection is non-blocking and in pipeline mode. A batch is sent as
 * [Parse if new] Bind/Execute ... Sync: one round trip, one implicit
 * transaction. Results are matched to statements by walking the list of
 * what was sent. A connection that breaks or times out is closed and
 * reconnected with exponential backoff; while none is up, db_exec fails at
 * once so requests answer 503 instead of hanging.
 *
 * A new connection first prepares the program's fixed statements
 * (db_pool_config.stmts) in one pipelined round trip, and is handed out
 * only when they all prepared: requests then send no Parse for them, and a
 * statement whose text is wrong stops the program at start-up
 * (statement_invalid) rather than failing its first request. */
#include "db/db_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fault.h"
#include "log.h"

static void conn_connect(db_conn *c);
static void conn_socket_cb(evutil_socket_t fd, short what, void *arg);

static void result_clear(db_result *r)
{
	for (int i = 0; i < r->nresults; i++)
		if (r->results[i] != NULL)
			PQclear(r->results[i]);
	free(r->results);
	memset(r, 0, sizeof(*r));
	r->failed_index = -1;
}

/* Calls back a waiter that never reached a connection. */
static void fail_waiter(waiter *wt, db_status st, const char *msg)
{
	db_result r;
	memset(&r, 0, sizeof(r));
	r.status = st;
	r.failed_index = -1;
	r.message = msg;
	db_batch_free(wt->batch);
	if (wt->tx != NULL) {
		(void)db_tx_job_keeps_conn(NULL, wt, &r);
		db_tx_job_deliver(wt, &r);
	} else if (wt->cb != NULL) {
		wt->cb(&r, wt->arg);
	}
	free(wt);
}

/* Prepared statement names per connection: an open-addressing set. Past
 * DB_MAX_PREPARED names new statements run unnamed (parsed every time)
 * rather than growing without bound. */
#define DB_MAX_PREPARED 1024

static uint64_t name_hash(const char *name)
{
	uint64_t h = 1469598103934665603ULL;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

static bool is_prepared(const db_conn *c, const char *name)
{
	if (c->capprepared == 0)
		return false;
	size_t mask = (size_t)c->capprepared - 1;
	for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
		if (c->prepared[i] == NULL)
			return false;
		if (strcmp(c->prepared[i], name) == 0)
			return true;
	}
}

static bool can_prepare(const db_conn *c)
{
	return c->nprepared < DB_MAX_PREPARED;
}

static void mark_prepared(db_conn *c, const char *name)
{
	if (is_prepared(c, name) || !can_prepare(c))
		return;
	if (c->capprepared == 0) {
		c->capprepared = 2 * DB_MAX_PREPARED;
		c->prepared = calloc((size_t)c->capprepared, sizeof(char *));
		if (c->prepared == NULL) {
			c->capprepared = 0;
			return;
		}
	}
	char *copy = strdup(name);
	if (copy == NULL)
		return;
	size_t mask = (size_t)c->capprepared - 1;
	size_t i = name_hash(name) & mask;
	while (c->prepared[i] != NULL)
		i = (i + 1) & mask;
	c->prepared[i] = copy;
	c->nprepared++;
}

static void forget_prepared(db_conn *c)
{
	for (int i = 0; i < c->capprepared; i++) {
		free(c->prepared[i]);
		c->prepared[i] = NULL;
	}
	c->nprepared = 0;
}

static void forget_one(db_conn *c, const char *name)
{
	/* Open addressing cannot delete in place: rebuild without the name. */
	if (!is_prepared(c, name))
		return;
	char **old = c->prepared;
	int cap = c->capprepared;
	c->prepared = calloc((size_t)cap, sizeof(char *));
	if (c->prepared == NULL) {
		c->prepared = old;
		forget_prepared(c);
		return;
	}
	c->nprepared = 0;
	for (int i = 0; i < cap; i++) {
		if (old[i] == NULL)
			continue;
		if (strcmp(old[i], name) != 0)
			mark_prepared(c, old[i]);
		free(old[i]);
	}
	free(old);
}

static void arm_timer(db_conn *c, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(c->timer, &tv);
}

static void drop_socket_events(db_conn *c)
{
	if (c->ev_read != NULL) {
		event_free(c->ev_read);
		c->ev_read = NULL;
	}
	if (c->ev_write != NULL) {
		event_free(c->ev_write);
		c->ev_write = NULL;
	}
	c->fd = -1;
}

static bool ensure_socket_events(db_conn *c)
{
	int fd = PQsocket(c->pg);
	if (fd < 0)
		return false;
	if (fd == c->fd && c->ev_read != NULL)
		return true;
	drop_socket_events(c);
	c->fd = fd;
	c->ev_read = event_new(c->pool->base, fd, EV_READ | EV_PERSIST, conn_socket_cb, c);
	c->ev_write = event_new(c->pool->base, fd, EV_WRITE, conn_socket_cb, c);
	return c->ev_read != NULL && c->ev_write != NULL;
}

/* Finishes the batch in flight with the collected results. */
static void job_done(db_conn *c, db_status st)
{
	waiter *wt = c->job;
	c->job = NULL;
	free(c->exp);
	c->exp = NULL;
	c->nexp = c->iexp = 0;
	evtimer_del(c->timer);
	db_result res = c->res;
	memset(&c->res, 0, sizeof(c->res));
	c->res.failed_index = -1;
	if (st != DB_OK && res.status == DB_OK)
		res.status = st;
	/* The connection's state is settled before any callback runs, since a
	 * callback may send the transaction's next batch on it. */
	bool held = wt != NULL && wt->tx != NULL && db_tx_job_keeps_conn(c, wt, &res);
	if (c->state == DC_BUSY) {
		if (held) {
			c->state = DC_HELD;
		} else {
			c->state = DC_IDLE;
			c->pool->busy--;
		}
	}
	if (wt != NULL) {
		db_batch_free(wt->batch);
		if (wt->tx != NULL)
			db_tx_job_deliver(wt, &res);
		else if (wt->cb != NULL)
			wt->cb(&res, wt->arg);
		free(wt);
	}
	result_clear(&res);
}

/* Closes a connection after an error and schedules its reconnect. */
void db_conn_broken(db_conn *c, db_status st, const char *why)
{
	db_pool *p = c->pool;
	bool was_up = c->state == DC_IDLE || c->state == DC_BUSY || c->state == DC_HELD;
	if (c->state == DC_BUSY || c->state == DC_HELD)
		p->busy--;
	if (c->state == DC_HELD && c->job == NULL && c->tx != NULL) {
		db_tx *tx = c->tx;
		c->tx = NULL;
		db_tx_conn_lost(tx);
	}
	/* Down before any callback runs, so a callback that submits new work
	 * cannot be handed this connection. */
	c->state = DC_DOWN;
	if (was_up) {
		log_warn("db_connection_lost", "{s:i, s:s}", "conn", c->index, "reason", why);
		p->up--;
	}
	if (c->job != NULL) {
		c->res.message = why;
		job_done(c, st);
	}
	drop_socket_events(c);
	if (c->pg != NULL) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	forget_prepared(c);
	evtimer_del(c->timer);
	/* Exponential backoff with jitter, 100 ms .. 5 s; a timed-out query
	 * reconnects at once since the server is probably fine. */
	int base = st == DB_ERR_TIMEOUT ? 10 : c->backoff_ms;
	int jitter = (int)randombytes_uniform((uint32_t)(base / 5 + 1));
	arm_timer(c, base + jitter);
	c->backoff_ms = c->backoff_ms * 2 > 5000 ? 5000 : c->backoff_ms * 2;
	if (p->up == 0) {
		/* Nobody can serve the queue any more: fail it now, not later. */
		p->starting = false;
		while (!TAILQ_EMPTY(&p->queue)) {
			waiter *wt = TAILQ_FIRST(&p->queue);
			TAILQ_REMOVE(&p->queue, wt, link);
			p->queued--;
			fail_waiter(wt, DB_ERR_UNAVAILABLE, "database unavailable");
		}
	}
}

static void conn_flush(db_conn *c)
{
	int rc = PQflush(c->pg);
	if (rc < 0) {
		db_conn_broken(c, DB_ERR_UNAVAILABLE, PQerrorMessage(c->pg));
		return;
	}
	if (rc == 1)
		event_add(c->ev_write, NULL);
}

/* Sends one batch as a pipeline ending in a Sync. */
void db_conn_start_job(db_conn *c, waiter *wt)
{
	db_pool *p = c->pool;
	db_batch *b = wt->batch;
	c->job = wt;
	if (c->state != DC_HELD)
		p->busy++;
	c->state = DC_BUSY;
	p->round_trips++;
	memset(&c->res, 0, sizeof(c->res));
	c->res.failed_index = -1;
	c->res.nresults = b->n;
	c->res.results = calloc((size_t)(b->n > 0 ? b->n : 1), sizeof(PGresult *));
	c->exp = calloc((size_t)(2 * b->n + 1), sizeof(expect));
	c->nexp = c->iexp = 0;
	if (c->res.results == NULL || c->exp == NULL) {
		c->res.message = "out of memory";
		job_done(c, DB_ERR_UNAVAILABLE);
		return;
	}
	for (int i = 0; i < b->n; i++) {
		db_item *it = &b->items[i];
		bool prepared = is_prepared(c, db_item_name(it));
		if (!prepared && !can_prepare(c)) {
			if (!PQsendQueryParams(c->pg, it->sql, it->nparams, NULL, (const char *const *)it->values, it->lengths,
					       it->formats, 0))
				goto broken;
			c->exp[c->nexp++] = (expect){EXP_QUERY, i};
			continue;
		}
		if (!prepared) {
			if (!PQsendPrepare(c->pg, db_item_name(it), it->sql, it->nparams, NULL))
				goto broken;
			c->exp[c->nexp++] = (expect){EXP_PREPARE, i};
			/* Counted as prepared now: a second use in this same
			 * pipeline must not prepare it again. */
			mark_prepared(c, db_item_name(it));
		}
		if (!PQsendQueryPrepared(c->pg, db_item_name(it), it->nparams, (const char *const *)it->values,
					 it->lengths, it->formats, 0))
			goto broken;
		c->exp[c->nexp++] = (expect){EXP_QUERY, i};
	}
	if (!PQpipelineSync(c->pg))
		goto broken;
	c->exp[c->nexp++] = (expect){EXP_SYNC, -1};
	/* The client-side deadline backs up statement_timeout for when the
	 * network, not the query, is what hangs. */
	arm_timer(c, p->query_timeout_ms + 1000);
	conn_flush(c);
	return;
broken:
	db_conn_broken(c, DB_ERR_UNAVAILABLE, PQerrorMessage(c->pg));
}

static void record_error(db_conn *c, int item, PGresult *r)
{
	if (c->res.status != DB_OK)
		return;
	c->res.status = DB_ERR_QUERY;
	c->res.failed_index = item;
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	util_strlcpy(c->res.sqlstate, st ? st : "XX000", sizeof(c->res.sqlstate));
	c->res.message = PQresultErrorMessage(r);
}

/* Reads every result that has arrived and matches it to what was sent. */
static void conn_read_results(db_conn *c)
{
	while (c->pg != NULL && !PQisBusy(c->pg)) {
		PGresult *r = PQgetResult(c->pg);
		if (c->job == NULL || c->iexp >= c->nexp) {
			/* Nothing expected (e.g. a notice-only wakeup). */
			if (r == NULL)
				return;
			PQclear(r);
			continue;
		}
		expect *e = &c->exp[c->iexp];
		if (r == NULL) {
			c->iexp++; /* end of one statement's results */
			continue;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			job_done(c, DB_OK);
			pool_dispatch(c->pool);
			return;
		}
		if (e->kind == EXP_PREPARE) {
			if (st != PGRES_COMMAND_OK) {
				/* Not prepared after all (error, or aborted pipeline):
				 * prepare it again next time. */
				forget_one(c, db_item_name(&c->job->batch->items[e->item]));
				if (st != PGRES_PIPELINE_ABORTED)
					record_error(c, e->item, r);
			}
			if (c->res.status == DB_ERR_QUERY && c->res.results[e->item] == NULL && st == PGRES_FATAL_ERROR)
				c->res.results[e->item] = r; /* keep it: message points into it */
			else
				PQclear(r);
		} else if (e->kind == EXP_QUERY) {
			if (st == PGRES_FATAL_ERROR)
				record_error(c, e->item, r);
			if (c->res.results[e->item] == NULL)
				c->res.results[e->item] = r;
			else
				PQclear(r);
		} else {
			PQclear(r);
		}
	}
}

/* The connection is ready: up, and given work. */
static void conn_ready(db_conn *c)
{
	db_pool *p = c->pool;
	evtimer_del(c->timer);
	c->state = DC_IDLE;
	c->backoff_ms = 100;
	p->up++;
	p->starting = false;
	log_info("db_connected", "{s:i, s:i, s:i, s:I}", "conn", c->index, "up", p->up, "prepared", p->nfixed,
		 "prepare_us", (json_int_t)(util_now_us() - c->prep_start_us));
	pool_dispatch(p);
}

/* Sends a Parse of every fixed statement and one Sync: one round trip. */
static void conn_prepare_fixed(db_conn *c)
{
	db_pool *p = c->pool;
	c->state = DC_PREPARING;
	free(c->prep_message);
	c->prep_message = NULL;
	c->nprep_read = 0;
	c->prep_failed = -1;
	for (int i = 0; i < p->nfixed; i++) {
		const db_stmt *st = &p->fixed[i];
		if (!PQsendPrepare(c->pg, st->name, st->sql, st->nparams, NULL)) {
			db_conn_broken(c, DB_ERR_UNAVAILABLE, PQerrorMessage(c->pg));
			return;
		}
		mark_prepared(c, st->name);
	}
	if (!PQpipelineSync(c->pg)) {
		db_conn_broken(c, DB_ERR_UNAVAILABLE, PQerrorMessage(c->pg));
		return;
	}
	arm_timer(c, p->query_timeout_ms + 1000);
	conn_flush(c);
}

/* What to do about a class 42 failure. The schema not migrated (or older
 * than the program) shows up as something undefined. */
static const char *invalid_hint(const char *sqlstate)
{
	static const char *const undefined[] = {"42P01", "42883", "42703", "42704", NULL};
	for (int i = 0; undefined[i] != NULL; i++)
		if (strcmp(sqlstate, undefined[i]) == 0)
			return "the database schema is missing or older than this program: run `onceledger migrate`"
			       " (if it is up to date, the statement's text is wrong)";
	if (strcmp(sqlstate, "42501") == 0)
		return "the database user lacks a privilege the program needs";
	return "the statement's text is wrong: a programming error";
}

/* The prepare round trip ended: hand the connection out, or give up. */
static void conn_prepared(db_conn *c)
{
	db_pool *p = c->pool;
	if (c->prep_failed < 0) {
		conn_ready(c);
		return;
	}
	const db_stmt *st = &p->fixed[c->prep_failed];
	char why[160];
	snprintf(why, sizeof(why), "statement %s failed to prepare (SQLSTATE %s)", st->name, c->prep_sqlstate);
	if (strncmp(c->prep_sqlstate, "42", 2) == 0) {
		/* Class 42 is the program's own text: retrying cannot help. */
		log_error("statement_invalid", "{s:s, s:s, s:s, s:s}", "statement", st->name, "sqlstate", c->prep_sqlstate,
			  "message", c->prep_message ? c->prep_message : "", "hint", invalid_hint(c->prep_sqlstate));
		if (p->on_invalid != NULL)
			p->invalid = true;
	}
	free(c->prep_message);
	c->prep_message = NULL;
	db_conn_broken(c, DB_ERR_UNAVAILABLE, why);
	if (p->invalid && p->on_invalid != NULL) {
		void (*cb)(void *) = p->on_invalid;
		p->on_invalid = NULL; /* once per pool */
		cb(p->invalid_arg);
	}
}

/* Reads the answers to the Parses: one result (then NULL) each, and the
 * Sync. */
static void conn_read_prepares(db_conn *c)
{
	while (c->pg != NULL && c->state == DC_PREPARING && !PQisBusy(c->pg)) {
		PGresult *r = PQgetResult(c->pg);
		if (r == NULL) {
			c->nprep_read++;
			continue;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			conn_prepared(c);
			return;
		}
		if (st != PGRES_COMMAND_OK && c->nprep_read < c->pool->nfixed) {
			forget_one(c, c->pool->fixed[c->nprep_read].name);
			if (st == PGRES_FATAL_ERROR && c->prep_failed < 0) {
				const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
				const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
				c->prep_failed = c->nprep_read;
				util_strlcpy(c->prep_sqlstate, code ? code : "XX000", sizeof(c->prep_sqlstate));
				c->prep_message = strdup(msg ? msg : "");
			}
		}
		PQclear(r);
	}
}

static void conn_connected(db_conn *c)
{
	if (!PQenterPipelineMode(c->pg)) {
		db_conn_broken(c, DB_ERR_UNAVAILABLE, "cannot enter pipeline mode");
		return;
	}
	event_del(c->ev_write);
	event_add(c->ev_read, NULL);
	c->prep_start_us = util_now_us();
	if (c->pool->nfixed > 0)
		conn_prepare_fixed(c);
	else
		conn_ready(c);
}

static void conn_poll_connect(db_conn *c)
{
	PostgresPollingStatusType ps = PQconnectPoll(c->pg);
	if (ps == PGRES_POLLING_FAILED) {
		db_conn_broken(c, DB_ERR_UNAVAILABLE, PQerrorMessage(c->pg));
		return;
	}
	if (!ensure_socket_events(c)) {
		db_conn_broken(c, DB_ERR_UNAVAILABLE, "no socket");
		return;
	}
	if (ps == PGRES_POLLING_OK) {
		conn_connected(c);
	} else if (ps == PGRES_POLLING_READING) {
		event_del(c->ev_write);
		event_add(c->ev_read, NULL);
	} else {
		event_del(c->ev_read);
		event_add(c->ev_write, NULL);
	}
}

static void conn_socket_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	db_conn *c = arg;
	if (c->state == DC_CONNECTING) {
		conn_poll_connect(c);
		return;
	}
	if (c->pg == NULL)
		return;
	if (what & EV_READ) {
		if (!PQconsumeInput(c->pg)) {
			db_conn_broken(c, DB_ERR_UNAVAILABLE, PQerrorMessage(c->pg));
			return;
		}
		if (PQstatus(c->pg) == CONNECTION_BAD) {
			db_conn_broken(c, DB_ERR_UNAVAILABLE, "connection closed by server");
			return;
		}
	}
	if (c->state == DC_PREPARING) {
		conn_flush(c);
		if (c->pg == NULL)
			return;
		conn_read_prepares(c);
	} else if (c->job != NULL) {
		conn_flush(c);
		if (c->pg == NULL)
			return;
		conn_read_results(c);
	} else {
		/* Idle: drain notices; a server shutdown shows up here. */
		conn_read_results(c);
	}
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	db_conn *c = arg;
	switch (c->state) {
	case DC_DOWN:
		if (!c->pool->invalid)
			conn_connect(c);
		break;
	case DC_CONNECTING:
		db_conn_broken(c, DB_ERR_UNAVAILABLE, "connect timeout");
		break;
	case DC_PREPARING:
		db_conn_broken(c, DB_ERR_TIMEOUT, "prepare timeout");
		break;
	case DC_BUSY:
		c->res.message = "query timeout";
		db_conn_broken(c, DB_ERR_TIMEOUT, "query timeout");
		break;
	default:
		break;
	}
}

static void conn_connect(db_conn *c)
{
	db_pool *p = c->pool;
	const char *keys[] = {"dbname", "application_name", "options", NULL};
	const char *vals[] = {p->conninfo, p->appname, p->options, NULL};
	c->pg = PQconnectStartParams(keys, vals, 1);
	if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD || PQsetnonblocking(c->pg, 1) != 0) {
		c->state = DC_CONNECTING;
		db_conn_broken(c, DB_ERR_UNAVAILABLE, c->pg ? PQerrorMessage(c->pg) : "out of memory");
		return;
	}
	c->state = DC_CONNECTING;
	arm_timer(c, p->connect_timeout_ms);
	if (!ensure_socket_events(c)) {
		db_conn_broken(c, DB_ERR_UNAVAILABLE, "no socket");
		return;
	}
	/* libpq: after PQconnectStart, behave as if polling returned WRITING. */
	event_add(c->ev_write, NULL);
}

void pool_dispatch(db_pool *p)
{
	for (int i = 0; i < p->size && !TAILQ_EMPTY(&p->queue); i++) {
		db_conn *c = &p->conns[i];
		if (c->state != DC_IDLE)
			continue;
		waiter *wt = TAILQ_FIRST(&p->queue);
		TAILQ_REMOVE(&p->queue, wt, link);
		p->queued--;
		db_conn_start_job(c, wt);
	}
}

void db_pool_submit(db_pool *p, waiter *wt)
{
	if (p->up == 0 && !p->starting) {
		fail_waiter(wt, DB_ERR_UNAVAILABLE, "database unavailable");
		return;
	}
	for (int i = 0; i < p->size; i++) {
		if (p->conns[i].state == DC_IDLE) {
			db_conn_start_job(&p->conns[i], wt);
			return;
		}
	}
	if (p->queued >= p->queue_max) {
		fail_waiter(wt, DB_ERR_BUSY, "database pool queue full");
		return;
	}
	TAILQ_INSERT_TAIL(&p->queue, wt, link);
	p->queued++;
}

void db_exec(db_pool *p, db_batch *b, db_cb cb, void *arg)
{
	waiter *wt = calloc(1, sizeof(*wt));
	if (wt == NULL) {
		db_result r = {.status = DB_ERR_UNAVAILABLE, .failed_index = -1, .message = "out of memory"};
		db_batch_free(b);
		cb(&r, arg);
		return;
	}
	wt->batch = b;
	wt->cb = cb;
	wt->arg = arg;
	db_pool_submit(p, wt);
}

/* Flattens tx.c's statements and the configured tables into p->fixed. */
static bool collect_fixed(db_pool *p, const db_stmt *const *const *tables)
{
	int n = 0;
	for (const db_stmt *const *st = db_tx_stmts; *st != NULL; st++)
		n++;
	for (int t = 0; tables != NULL && tables[t] != NULL; t++)
		for (const db_stmt *const *st = tables[t]; *st != NULL; st++)
			n++;
	if (n > DB_MAX_PREPARED / 2)
		return false; /* leave room for the lazily prepared ones */
	p->fixed = calloc((size_t)n, sizeof(db_stmt));
	if (p->fixed == NULL)
		return false;
	for (const db_stmt *const *st = db_tx_stmts; *st != NULL; st++)
		p->fixed[p->nfixed++] = **st;
	for (int t = 0; tables != NULL && tables[t] != NULL; t++)
		for (const db_stmt *const *st = tables[t]; *st != NULL; st++)
			p->fixed[p->nfixed++] = **st;
	for (int i = 0; i < p->nfixed; i++) {
		if (p->bad_sql == NULL && fault_bad_stmt(p->fixed[i].name)) {
			/* At the front: anywhere else a word can be an alias. */
			size_t len = strlen(p->fixed[i].sql) + sizeof("typo ");
			p->bad_sql = malloc(len);
			if (p->bad_sql == NULL)
				return false;
			snprintf(p->bad_sql, len, "typo %s", p->fixed[i].sql);
			p->fixed[i].sql = p->bad_sql;
		}
	}
	return true;
}

db_pool *db_pool_new(struct event_base *base, const db_pool_config *cfg)
{
	db_pool *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->base = base;
	p->conninfo = strdup(cfg->conninfo);
	p->appname = strdup(cfg->application_name ? cfg->application_name : "onceledgerd");
	snprintf(p->options, sizeof(p->options), "-c statement_timeout=%d", cfg->query_timeout_ms);
	p->size = cfg->size;
	p->connect_timeout_ms = cfg->connect_timeout_ms;
	p->query_timeout_ms = cfg->query_timeout_ms;
	p->queue_max = cfg->queue_max;
	p->starting = true;
	p->on_invalid = cfg->on_invalid;
	p->invalid_arg = cfg->invalid_arg;
	TAILQ_INIT(&p->queue);
	p->conns = calloc((size_t)cfg->size, sizeof(db_conn));
	if (p->conninfo == NULL || p->appname == NULL || p->conns == NULL || !collect_fixed(p, cfg->stmts)) {
		free(p->conninfo);
		free(p->appname);
		free(p->conns);
		free(p->fixed);
		free(p->bad_sql);
		free(p);
		return NULL;
	}
	for (int i = 0; i < p->size; i++) {
		db_conn *c = &p->conns[i];
		c->pool = p;
		c->index = i;
		c->fd = -1;
		c->backoff_ms = 100;
		c->res.failed_index = -1;
		c->prep_failed = -1;
		c->timer = evtimer_new(base, conn_timer_cb, c);
		c->state = DC_DOWN;
		conn_connect(c);
	}
	return p;
}

void db_pool_free(db_pool *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->size; i++) {
		db_conn *c = &p->conns[i];
		c->state = DC_DOWN; /* nothing may start on it any more */
		if (c->job != NULL) {
			c->res.message = "shutting down";
			job_done(c, DB_ERR_UNAVAILABLE);
		}
		if (c->tx != NULL) {
			db_tx *tx = c->tx;
			c->tx = NULL;
			db_tx_conn_lost(tx); /* its owner frees it later */
		}
		drop_socket_events(c);
		if (c->pg != NULL)
			PQfinish(c->pg);
		event_free(c->timer);
		forget_prepared(c);
		free(c->prepared);
		free(c->prep_message);
	}
	while (!TAILQ_EMPTY(&p->queue)) {
		waiter *wt = TAILQ_FIRST(&p->queue);
		TAILQ_REMOVE(&p->queue, wt, link);
		fail_waiter(wt, DB_ERR_UNAVAILABLE, "shutting down");
	}
	free(p->conns);
	free(p->conninfo);
	free(p->appname);
	free(p->fixed);
	free(p->bad_sql);
	free(p);
}

int db_pool_up(const db_pool *p) { return p->up; }
int db_pool_size(const db_pool *p) { return p->size; }
int db_pool_busy(const db_pool *p) { return p->busy; }
int db_pool_queued(const db_pool *p) { return p->queued; }
unsigned long db_pool_round_trips(const db_pool *p) { return p->round_trips; }
