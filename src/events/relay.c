/* relay.c — the outbox relay (relay.h, docs/events.md).
 *
 * One thread, one event loop. PostgreSQL is used with blocking libpq calls
 * on the relay's own connection (this loop serves nothing else, and the
 * session must be its own: it holds the advisory lock). Redis is a hiredis
 * asynchronous connection on the loop, so a round's XADDs are pipelined;
 * hiredis 0.14 has no timeouts, hence the deadline timer armed while
 * commands are in flight.
 *
 * A round: read rows above the cursor and below the watermark, XADD each
 * with its explicit id, and when Redis confirmed all of them (or refused
 * them as already present), store the cursor. Any failure abandons the
 * round; the next one starts again from the stored cursor. */
#include "events/relay.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "events/envelope.h"
#include "log.h"
#include "util/util.h"

/* pg_try_advisory_lock key of the relay: "onceldgr" in ASCII. */
#define RELAY_LOCK_KEY "7308604897068177266"
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define LAG_NBUCKETS 13
#define RELAY_STMTS 8 /* pg_run call sites (more run unprepared) */

static const double lag_bounds[LAG_NBUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

typedef enum { R_NONE, R_CONNECTING, R_UP } redis_state;

/* A row of the round in flight: what its reply needs. */
typedef struct round_row {
	double created; /* insert time (epoch s), for the lag */
	char key[OL_STREAM_KEY_MAX + 1]; /* its stream */
	char sid[48];   /* its entry id */
} round_row;

typedef struct tenant_top {
	char *tenant;
	uint64_t txid; /* its last event at or below the cursor */
	int n;
} tenant_top;

struct ev_relay {
	ev_relay_config cfg;
	char *conninfo, *prefix;
	char maxlen[24];
	pthread_t thread;
	bool started;
	struct event_base *base;
	struct event *tick_ev, *deadline_ev, *stop_ev;
	bool stopping;
	const char *failpoint;

	PGconn *pg;
	const char *prepared[RELAY_STMTS]; /* pg_run's statements prepared on this connection */
	int nprepared;
	bool leader;
	uint64_t cur_txid; /* the cursor: published up to here */
	int cur_n;

	redisAsyncContext *rc;
	redis_state rstate;
	bool need_reconcile;

	/* the commands in flight (a round or a reconciliation) */
	int inflight;
	bool failed;
	bool reconciling;
	int round_rows;
	uint64_t round_txid; /* the round's last position */
	int round_n;
	round_row *rows;
	int nrows;
	tenant_top *tops;
	int ntops;
	uint64_t rewind_txid;
	int rewind_n;
	bool rewind;

	int backoff_ms;
	int64_t next_backlog_ms, next_retention_ms, next_reconcile_ms;

	/* metrics: written by the relay's thread, read with relaxed loads */
	long m_leader, m_backlog, m_published, m_duplicates, m_conflicts, m_err_redis, m_err_pg;
	long m_lag_counts[LAG_NBUCKETS + 1];
	long m_lag_sum_us;
};

static void schedule(ev_relay *r, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_add(r->tick_ev, &tv);
}

static void arm_deadline(ev_relay *r)
{
	int ms = r->cfg.redis_timeout_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_add(r->deadline_ev, &tv);
}

static void failpoint(ev_relay *r, const char *name)
{
	if (r->failpoint != NULL && strcmp(r->failpoint, name) == 0) {
		log_warn("failpoint", "{s:s}", "name", name);
		kill(getpid(), SIGKILL);
	}
}

static void stat_add(long *v, long d)
{
	__atomic_add_fetch(v, d, __ATOMIC_RELAXED);
}

static void stat_set(long *v, long x)
{
	__atomic_store_n(v, x, __ATOMIC_RELAXED);
}

/* An error: wait longer each time, up to BACKOFF_MAX_MS. */
static void backoff(ev_relay *r)
{
	r->backoff_ms = r->backoff_ms < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : r->backoff_ms * 2;
	if (r->backoff_ms > BACKOFF_MAX_MS)
		r->backoff_ms = BACKOFF_MAX_MS;
	schedule(r, r->backoff_ms);
}

/* ---- PostgreSQL ------------------------------------------------------------ */

static void pg_drop(ev_relay *r, const char *why)
{
	if (r->pg != NULL) {
		log_warn("relay_postgres_error", "{s:s, s:s}", "during", why, "error", PQerrorMessage(r->pg));
		PQfinish(r->pg);
		r->pg = NULL;
	}
	if (r->leader)
		log_info("relay_standby", "{s:s}", "reason", "postgres connection lost");
	r->leader = false;
	stat_set(&r->m_leader, 0);
	stat_add(&r->m_err_pg, 1);
}

static bool pg_ensure(ev_relay *r)
{
	if (r->pg != NULL && PQstatus(r->pg) == CONNECTION_OK)
		return true;
	if (r->pg != NULL)
		pg_drop(r, "connection");
	char timeout[16];
	snprintf(timeout, sizeof(timeout), "%d", (r->cfg.connect_timeout_ms + 999) / 1000);
	const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
	const char *vals[] = {r->conninfo, timeout, "onceledger-relay", NULL};
	r->nprepared = 0;
	r->pg = PQconnectdbParams(keys, vals, 1);
	if (r->pg == NULL || PQstatus(r->pg) != CONNECTION_OK) {
		pg_drop(r, "connect");
		return false;
	}
	PGresult *res = PQexec(r->pg, "SET statement_timeout = '30s'");
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
		pg_drop(r, "set statement_timeout");
	return ok;
}

/* Runs a statement with text parameters; NULL (connection dropped) on error.
 * Each is prepared on its first use on a connection, named by what: the
 * poll runs every poll_ms even when idle, and parsing and planning its
 * text was most of what PostgreSQL spent on the relay. */
static PGresult *pg_run(ev_relay *r, const char *what, const char *sql, int n, const char *const *params)
{
	int i = 0;
	while (i < r->nprepared && strcmp(r->prepared[i], what) != 0)
		i++;
	if (i == r->nprepared) {
		PGresult *prep = PQprepare(r->pg, what, sql, n, NULL);
		bool ok = PQresultStatus(prep) == PGRES_COMMAND_OK;
		PQclear(prep);
		if (!ok) {
			pg_drop(r, what);
			return NULL;
		}
		if (r->nprepared < RELAY_STMTS)
			r->prepared[r->nprepared++] = what;
	}
	PGresult *res = i < r->nprepared ? PQexecPrepared(r->pg, what, n, params, NULL, NULL, 0)
					 : PQexecParams(r->pg, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	PQclear(res);
	pg_drop(r, what);
	return NULL;
}

static bool load_cursor(ev_relay *r)
{
	PGresult *res = pg_run(r, "read cursor", "SELECT txid::text, n FROM relay_cursor", 0, NULL);
	if (res == NULL)
		return false;
	bool ok = PQntuples(res) == 1;
	if (ok) {
		r->cur_txid = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		r->cur_n = atoi(PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return ok;
}

static bool store_cursor(ev_relay *r, uint64_t txid, int n)
{
	char t[24], nn[16];
	snprintf(t, sizeof(t), "%llu", (unsigned long long)txid);
	snprintf(nn, sizeof(nn), "%d", n);
	const char *p[2] = {t, nn};
	PGresult *res = pg_run(r, "store cursor", "UPDATE relay_cursor SET txid = $1::xid8, n = $2, updated_at = now()", 2, p);
	if (res == NULL)
		return false;
	PQclear(res);
	r->cur_txid = txid;
	r->cur_n = n;
	return true;
}

/* Becomes the relay when the lock is free. */
static bool try_lead(ev_relay *r)
{
	PGresult *res = pg_run(r, "lock", "SELECT pg_try_advisory_lock(" RELAY_LOCK_KEY ")", 0, NULL);
	if (res == NULL)
		return false;
	bool got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!got || !load_cursor(r))
		return false;
	r->leader = true;
	r->need_reconcile = true;
	stat_set(&r->m_leader, 1);
	log_info("relay_leader", "{s:I, s:i}", "cursor_txid", (json_int_t)r->cur_txid, "cursor_n", r->cur_n);
	return true;
}

/* Every second or so while leading: the backlog gauge; every minute the
 * outbox's published rows past retention, a chunk at a time. */
static void housekeeping(ev_relay *r)
{
	if (r->pg == NULL || !r->leader)
		return;
	int64_t now = util_mono_ms();
	char t[24], nn[16], ret[24];
	snprintf(t, sizeof(t), "%llu", (unsigned long long)r->cur_txid);
	snprintf(nn, sizeof(nn), "%d", r->cur_n);
	const char *p[3] = {t, nn, ret};
	/* Streams can lose entries without the connection dropping (DEL,
	 * eviction under maxmemory, FLUSHALL): compare them now and then. */
	if (now >= r->next_reconcile_ms) {
		if (r->next_reconcile_ms != 0)
			r->need_reconcile = true;
		r->next_reconcile_ms = now + 30000;
	}
	if (now >= r->next_backlog_ms) {
		r->next_backlog_ms = now + 1000;
		PGresult *res = pg_run(r, "backlog", "SELECT count(*) FROM outbox WHERE (txid, n) > ($1::xid8, $2::int)", 2, p);
		if (res == NULL)
			return;
		stat_set(&r->m_backlog, atol(PQgetvalue(res, 0, 0)));
		PQclear(res);
	}
	if (now >= r->next_retention_ms) {
		r->next_retention_ms = now + 60000;
		snprintf(ret, sizeof(ret), "%lld", r->cfg.retention_s);
		PGresult *res = pg_run(r, "retention",
				       "DELETE FROM outbox WHERE (txid, n) IN (SELECT txid, n FROM outbox WHERE (txid, n) <= ($1::xid8, $2::int)"
				       " ORDER BY txid, n LIMIT 10000) AND created_at < now() - make_interval(secs => $3::bigint)",
				       3, p);
		if (res == NULL)
			return;
		long deleted = atol(PQcmdTuples(res));
		PQclear(res);
		if (deleted > 0) {
			log_info("outbox_trimmed", "{s:I}", "deleted", (json_int_t)deleted);
			r->next_retention_ms = now; /* more may be due */
		}
	}
}

/* ---- Redis ----------------------------------------------------------------- */

static void tick(evutil_socket_t fd, short what, void *arg);

static void on_connect(const redisAsyncContext *ac, int status)
{
	ev_relay *r = ac->data;
	if (r == NULL || r->rc != ac)
		return;
	event_del(r->deadline_ev);
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback */
		log_warn("relay_redis_error", "{s:s, s:s}", "during", "connect", "error", ac->errstr);
		r->rc = NULL;
		r->rstate = R_NONE;
		stat_add(&r->m_err_redis, 1);
		backoff(r);
		return;
	}
	r->rstate = R_UP;
	r->need_reconcile = true;
	log_info("relay_redis_connected", "{}");
	schedule(r, 0);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	ev_relay *r = ac->data;
	(void)status;
	if (r == NULL)
		return;
	if (r->rc == ac) {
		r->rc = NULL;
		r->rstate = R_NONE;
		if (!r->stopping)
			log_warn("relay_redis_error", "{s:s, s:s}", "during", "connection", "error", ac->errstr);
	}
	/* Whatever Redis lost while we were away is found on reconnection. */
	r->need_reconcile = true;
}

/* The answer to AUTH or SELECT, sent ahead of everything on a new
 * connection. On a refusal the commands queued behind it fail too (NOAUTH,
 * or the wrong database never written): that round fails and backs off
 * like any other, and this log line says why. */
static void on_setup(redisAsyncContext *ac, void *reply, void *privdata)
{
	redisReply *rep = reply;
	(void)ac;
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_warn("relay_redis_error", "{s:s, s:s}", "during", (const char *)privdata, "error", rep->str);
}

static bool redis_connect(ev_relay *r)
{
	const redis_url *u = r->cfg.redis;
	redisAsyncContext *ac = u->is_unix ? redisAsyncConnectUnix(u->host) : redisAsyncConnect(u->host, u->port);
	if (ac == NULL || ac->err) {
		log_warn("relay_redis_error", "{s:s, s:s}", "during", "connect", "error", ac ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		return false;
	}
	ac->data = r;
	if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
		redisAsyncFree(ac);
		return false;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* Queued now, written first once connected: hiredis keeps order. */
	const char *auth[3], *select[2];
	char db[24];
	int nauth = redis_url_auth_argv(u, auth), nselect = redis_url_select_argv(u, select, db);
	if ((nauth > 0 && redisAsyncCommandArgv(ac, on_setup, "AUTH", nauth, auth, NULL) != REDIS_OK) ||
	    (nselect > 0 && redisAsyncCommandArgv(ac, on_setup, "SELECT", nselect, select, NULL) != REDIS_OK)) {
		redisAsyncFree(ac);
		return false;
	}
	r->rc = ac;
	r->rstate = R_CONNECTING;
	arm_deadline(r);
	return true;
}

/* Drops the connection (from the loop, never inside a hiredis callback):
 * pending callbacks run with a NULL reply and fail their round. */
static void redis_drop(ev_relay *r)
{
	redisAsyncContext *ac = r->rc;
	r->rc = NULL;
	r->rstate = R_NONE;
	r->need_reconcile = true;
	if (ac != NULL)
		redisAsyncFree(ac);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ev_relay *r = arg;
	log_warn("relay_redis_error", "{s:s, s:i}", "during", r->rstate == R_CONNECTING ? "connect" : "commands", "timeout_ms",
		 r->cfg.redis_timeout_ms);
	stat_add(&r->m_err_redis, 1);
	bool connecting = r->rstate == R_CONNECTING;
	r->failed = true;
	redis_drop(r);
	if (connecting)
		backoff(r);
}

/* ---- a round ----------------------------------------------------------------- */

static void lag_observe(ev_relay *r, double created)
{
	double lag = (double)util_now_us() / 1e6 - created;
	if (lag < 0)
		lag = 0;
	int b = 0;
	while (b < LAG_NBUCKETS && lag > lag_bounds[b])
		b++;
	stat_add(&r->m_lag_counts[b], 1);
	stat_add(&r->m_lag_sum_us, (long)(lag * 1e6));
}

static void round_done(ev_relay *r)
{
	event_del(r->deadline_ev);
	if (r->failed || r->stopping) {
		if (!r->stopping)
			backoff(r);
		return;
	}
	failpoint(r, "relay_after_xadd");
	if (!pg_ensure(r) || !r->leader || !store_cursor(r, r->round_txid, r->round_n)) {
		backoff(r);
		return;
	}
	failpoint(r, "relay_after_cursor");
	r->backoff_ms = 0;
	schedule(r, r->round_rows >= r->cfg.batch ? 0 : r->cfg.poll_ms);
}

/* The answer to XRANGE <stream> <id> <id> after a refusal: the entry must
 * be there. When it is not, something else wrote a higher id into the
 * stream (an XADD with "*"): our event can never get its id there. That is
 * an error for an operator (logged, counted), not a publication. */
static void on_check(redisAsyncContext *ac, void *reply, void *privdata)
{
	ev_relay *r = ac->data;
	redisReply *rep = reply;
	long idx = (long)(intptr_t)privdata;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		r->failed = true;
	} else if (rep->elements == 0) {
		stat_add(&r->m_conflicts, 1);
		log_error("relay_stream_conflict", "{s:s, s:s, s:s}", "stream", idx < r->nrows ? r->rows[idx].key : "?", "id",
			  idx < r->nrows ? r->rows[idx].sid : "?", "detail",
			  "the id is below the stream's top but not in it: something other than the relay writes to this stream");
	} else {
		stat_add(&r->m_duplicates, 1);
	}
	if (--r->inflight == 0) {
		if (r->failed && !r->stopping)
			stat_add(&r->m_err_redis, 1);
		round_done(r);
	}
}

static void on_xadd(redisAsyncContext *ac, void *reply, void *privdata)
{
	(void)ac;
	ev_relay *r = ac->data;
	long idx = (long)(intptr_t)privdata;
	redisReply *rep = reply;
	if (rep == NULL) {
		r->failed = true;
	} else if (rep->type == REDIS_REPLY_ERROR) {
		/* An id at or below the stream's top: published before (a round
		 * that did not store its cursor). Anything else is a failure. */
		if (strstr(rep->str, "equal or smaller") != NULL && idx >= 0 && idx < r->nrows && r->rc != NULL) {
			/* Published before, or a conflict: on_check tells, one more
			 * command in flight, sent before this one counts as done. */
			const char *argv[4] = {"XRANGE", r->rows[idx].key, r->rows[idx].sid, r->rows[idx].sid};
			if (redisAsyncCommandArgv(r->rc, on_check, privdata, 4, argv, NULL) == REDIS_OK)
				r->inflight++;
			else
				r->failed = true;
		} else {
			if (!r->failed)
				log_warn("relay_redis_error", "{s:s, s:s}", "during", "XADD", "error", rep->str);
			r->failed = true;
		}
	} else {
		stat_add(&r->m_published, 1);
		if (idx >= 0 && idx < r->nrows)
			lag_observe(r, r->rows[idx].created);
	}
	if (--r->inflight == 0) {
		if (r->failed && !r->stopping)
			stat_add(&r->m_err_redis, 1);
		round_done(r);
	}
}

/* <prefix><tenant> into buf; false (and nothing published) rather than a
 * cut key: a cut could put two tenants into one stream. The start-up check
 * of the prefix (config.c) makes this unreachable for valid tenant names. */
static bool stream_key(const ev_relay *r, const char *tenant, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s", r->prefix, tenant);
	if (n < 0 || (size_t)n >= len) {
		log_error("relay_stream_key_too_long", "{s:s, s:i}", "tenant", tenant, "max", (int)len - 1);
		return false;
	}
	return true;
}

static bool send_row(ev_relay *r, PGresult *res, int i, struct evbuffer *buf)
{
	ev_row row = ev_row_at(res, i);
	evbuffer_drain(buf, evbuffer_get_length(buf));
	if (!ev_envelope(buf, &row))
		return false;
	size_t len = evbuffer_get_length(buf);
	const char *text = (const char *)evbuffer_pullup(buf, -1);
	char sig[EV_SIG_B64_LEN], kid[EV_KID_LEN];
	ev_keys_sign(r->cfg.keys, text, len, sig, kid);
	char *key = r->rows[i].key, *sid = r->rows[i].sid;
	if (!stream_key(r, row.tenant, key, sizeof(r->rows[i].key)))
		return false;
	snprintf(sid, sizeof(r->rows[i].sid), "%llu-%d", (unsigned long long)row.txid, row.n);
	const char *argv[16];
	size_t argl[16];
	int c = 0;
#define ARG(s, l) (argv[c] = (s), argl[c] = (l), c++)
	ARG("XADD", 4);
	ARG(key, strlen(key));
	if (r->cfg.maxlen > 0) {
		ARG("MAXLEN", 6);
		ARG("~", 1);
		ARG(r->maxlen, strlen(r->maxlen));
	}
	ARG(sid, strlen(sid));
	ARG("id", 2);
	ARG(row.id, strlen(row.id));
	ARG("type", 4);
	ARG(row.type, strlen(row.type));
	ARG("event", 5);
	ARG(text, len);
	ARG("signature", 9);
	ARG(sig, strlen(sig));
	ARG("kid", 3);
	ARG(kid, strlen(kid));
#undef ARG
	/* hiredis formats the command into its buffer at once: the strings
	 * need not outlive this call. */
	if (redisAsyncCommandArgv(r->rc, on_xadd, (void *)(intptr_t)i, c, argv, argl) != REDIS_OK)
		return false;
	r->inflight++;
	return true;
}

static void publish_round(ev_relay *r)
{
	char t[24], nn[16], lim[16];
	snprintf(t, sizeof(t), "%llu", (unsigned long long)r->cur_txid);
	snprintf(nn, sizeof(nn), "%d", r->cur_n);
	snprintf(lim, sizeof(lim), "%d", r->cfg.batch);
	const char *p[3] = {t, nn, lim};
	PGresult *res = pg_run(r, "read outbox",
			       "SELECT txid::text, n, tenant, id, type, subject, time, data, extract(epoch FROM created_at)::float8"
			       " FROM outbox WHERE (txid, n) > ($1::xid8, $2::int) AND txid < pg_snapshot_xmin(pg_current_snapshot())"
			       " ORDER BY outbox.txid, outbox.n LIMIT $3::int",
			       3, p);
	if (res == NULL) {
		backoff(r);
		return;
	}
	int rows = PQntuples(res);
	if (rows == 0) {
		PQclear(res);
		r->backoff_ms = 0;
		schedule(r, r->cfg.poll_ms);
		return;
	}
	failpoint(r, "relay_before_xadd");
	if (rows > r->nrows) {
		round_row *c = realloc(r->rows, (size_t)rows * sizeof(*c));
		if (c == NULL) {
			PQclear(res);
			backoff(r);
			return;
		}
		r->rows = c;
		r->nrows = rows;
	}
	struct evbuffer *buf = evbuffer_new();
	r->failed = buf == NULL;
	r->round_rows = rows;
	r->round_txid = strtoull(PQgetvalue(res, rows - 1, 0), NULL, 10);
	r->round_n = atoi(PQgetvalue(res, rows - 1, 1));
	/* ours: the round cannot complete before every row was sent */
	r->inflight = 1;
	arm_deadline(r);
	for (int i = 0; i < rows && !r->failed; i++) {
		r->rows[i].created = strtod(PQgetvalue(res, i, 8), NULL);
		if (!send_row(r, res, i, buf))
			r->failed = true;
	}
	if (buf != NULL)
		evbuffer_free(buf);
	PQclear(res);
	if (--r->inflight == 0)
		round_done(r);
}

/* ---- reconciliation after (re)connecting to Redis ------------------------- */

static void tops_free(ev_relay *r)
{
	for (int i = 0; i < r->ntops; i++)
		free(r->tops[i].tenant);
	free(r->tops);
	r->tops = NULL;
	r->ntops = 0;
}

static void reconcile_done(ev_relay *r)
{
	event_del(r->deadline_ev);
	r->reconciling = false;
	tops_free(r);
	if (r->failed || r->stopping) {
		if (!r->stopping)
			backoff(r);
		return;
	}
	r->need_reconcile = false;
	if (r->rewind) {
		log_warn("relay_refill", "{s:I, s:i, s:I, s:i}", "from_txid", (json_int_t)r->rewind_txid, "from_n", r->rewind_n,
			 "cursor_txid", (json_int_t)r->cur_txid, "cursor_n", r->cur_n);
		/* In memory only: the stored cursor moves on as rounds confirm. */
		r->cur_txid = r->rewind_txid;
		r->cur_n = r->rewind_n;
	}
	schedule(r, 0);
}

/* XREVRANGE <stream> + - COUNT 1: the stream's last id ("0-0" when empty). */
static void on_top(redisAsyncContext *ac, void *reply, void *privdata)
{
	ev_relay *r = ac->data;
	long idx = (long)(intptr_t)privdata;
	redisReply *rep = reply;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		r->failed = true;
	} else if (idx >= 0 && idx < r->ntops) {
		unsigned long long a = 0, b = 0;
		if (rep->elements > 0) {
			redisReply *e = rep->element[0];
			if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || e->element[0]->type != REDIS_REPLY_STRING ||
			    sscanf(e->element[0]->str, "%llu-%llu", &a, &b) != 2)
				r->failed = true;
		}
		const tenant_top *t = &r->tops[idx];
		bool behind = a < t->txid || (a == t->txid && b < (unsigned long long)t->n);
		if (behind) {
			log_warn("relay_stream_behind", "{s:s, s:I, s:I, s:I, s:i}", "tenant", t->tenant, "stream_txid", (json_int_t)a,
				 "stream_n", (json_int_t)b, "expected_txid", (json_int_t)t->txid, "expected_n", t->n);
			if (!r->rewind || a < r->rewind_txid || (a == r->rewind_txid && (int)b < r->rewind_n)) {
				r->rewind = true;
				r->rewind_txid = a;
				r->rewind_n = (int)b;
			}
		}
	}
	if (--r->inflight == 0)
		reconcile_done(r);
}

static void reconcile(ev_relay *r)
{
	char t[24], nn[16];
	snprintf(t, sizeof(t), "%llu", (unsigned long long)r->cur_txid);
	snprintf(nn, sizeof(nn), "%d", r->cur_n);
	const char *p[2] = {t, nn};
	/* Per tenant, its last event the cursor says is published. */
	PGresult *res = pg_run(r, "reconcile",
			       "SELECT t.name, o.txid::text, o.n FROM tenants t CROSS JOIN LATERAL ("
			       " SELECT txid, n FROM outbox WHERE tenant = t.name AND (txid, n) <= ($1::xid8, $2::int)"
			       " ORDER BY tenant DESC, txid DESC, n DESC LIMIT 1) o",
			       2, p);
	if (res == NULL) {
		backoff(r);
		return;
	}
	int rows = PQntuples(res);
	r->tops = calloc((size_t)rows + 1, sizeof(*r->tops));
	r->failed = r->tops == NULL;
	r->rewind = false;
	r->reconciling = true;
	r->inflight = 1;
	arm_deadline(r);
	for (int i = 0; i < rows && !r->failed; i++) {
		tenant_top *tt = &r->tops[r->ntops];
		tt->tenant = strdup(PQgetvalue(res, i, 0));
		tt->txid = strtoull(PQgetvalue(res, i, 1), NULL, 10);
		tt->n = atoi(PQgetvalue(res, i, 2));
		if (tt->tenant == NULL) {
			r->failed = true;
			break;
		}
		r->ntops++;
		char key[OL_STREAM_KEY_MAX + 1];
		if (!stream_key(r, tt->tenant, key, sizeof(key))) {
			r->failed = true;
			break;
		}
		const char *argv[6] = {"XREVRANGE", key, "+", "-", "COUNT", "1"};
		if (redisAsyncCommandArgv(r->rc, on_top, (void *)(intptr_t)(r->ntops - 1), 6, argv, NULL) != REDIS_OK)
			r->failed = true;
		else
			r->inflight++;
	}
	PQclear(res);
	if (--r->inflight == 0)
		reconcile_done(r);
}

/* ---- the loop ------------------------------------------------------------------ */

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ev_relay *r = arg;
	if (r->stopping || r->inflight > 0)
		return;
	r->failed = false;
	if (!pg_ensure(r)) {
		backoff(r);
		return;
	}
	if (!r->leader && !try_lead(r)) {
		schedule(r, r->pg != NULL ? r->cfg.takeover_ms : BACKOFF_MAX_MS);
		return;
	}
	/* Every tick, whatever Redis is doing: the backlog gauge matters
	 * most while it is away. */
	housekeeping(r);
	if (!r->leader) {
		backoff(r); /* housekeeping lost the connection, and the lock with it */
		return;
	}
	if (r->rstate == R_CONNECTING)
		return; /* on_connect or the deadline schedules us */
	if (r->rstate == R_NONE) {
		if (!redis_connect(r)) {
			stat_add(&r->m_err_redis, 1);
			backoff(r);
		}
		return;
	}
	if (r->need_reconcile) {
		reconcile(r);
		return;
	}
	publish_round(r);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ev_relay *r = arg;
	r->stopping = true;
	event_base_loopbreak(r->base);
}

static void *relay_main(void *arg)
{
	ev_relay *r = arg;
	schedule(r, 0);
	event_base_dispatch(r->base);
	r->stopping = true;
	redis_drop(r);
	if (r->pg != NULL)
		PQfinish(r->pg);
	r->pg = NULL;
	return NULL;
}

static void relay_free(ev_relay *r)
{
	if (r->tick_ev != NULL)
		event_free(r->tick_ev);
	if (r->deadline_ev != NULL)
		event_free(r->deadline_ev);
	if (r->stop_ev != NULL)
		event_free(r->stop_ev);
	if (r->base != NULL)
		event_base_free(r->base);
	tops_free(r);
	free(r->rows);
	free(r->conninfo);
	free(r->prefix);
	free(r);
}

ev_relay *ev_relay_start(const ev_relay_config *cfg, char **err)
{
	*err = NULL;
	if (strlen(cfg->prefix) > OL_STREAM_KEY_MAX - OL_TENANT_NAME_MAX) {
		*err = strdup("events_stream_prefix too long for the longest tenant name");
		return NULL;
	}
	ev_relay *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		*err = strdup("out of memory");
		return NULL;
	}
	r->cfg = *cfg;
	r->conninfo = strdup(cfg->conninfo);
	r->prefix = strdup(cfg->prefix);
	snprintf(r->maxlen, sizeof(r->maxlen), "%lld", cfg->maxlen);
	r->failpoint = getenv("ONCELEDGER_FAILPOINT");
	r->base = event_base_new();
	if (r->base != NULL) {
		r->tick_ev = evtimer_new(r->base, tick, r);
		r->deadline_ev = evtimer_new(r->base, on_deadline, r);
		r->stop_ev = event_new(r->base, -1, 0, on_stop, r);
	}
	if (r->conninfo == NULL || r->prefix == NULL || r->tick_ev == NULL || r->deadline_ev == NULL ||
	    r->stop_ev == NULL) {
		relay_free(r);
		*err = strdup("out of memory");
		return NULL;
	}
	event_add(r->stop_ev, NULL);
	if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
		relay_free(r);
		*err = strdup("cannot start the relay thread");
		return NULL;
	}
	r->started = true;
	return r;
}

void ev_relay_stop(ev_relay *r)
{
	if (r == NULL)
		return;
	if (r->started) {
		event_active(r->stop_ev, EV_TIMEOUT, 0);
		pthread_join(r->thread, NULL);
	}
	relay_free(r);
}

static long load(const long *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

void ev_relay_metrics(ev_relay *r, struct evbuffer *out)
{
	long lag[LAG_NBUCKETS + 1] = {0};
	long leader = 0, backlog = 0, published = 0, duplicates = 0, conflicts = 0, err_redis = 0, err_pg = 0, sum_us = 0;
	if (r != NULL) {
		leader = load(&r->m_leader);
		backlog = load(&r->m_backlog);
		published = load(&r->m_published);
		duplicates = load(&r->m_duplicates);
		conflicts = load(&r->m_conflicts);
		err_redis = load(&r->m_err_redis);
		err_pg = load(&r->m_err_pg);
		sum_us = load(&r->m_lag_sum_us);
		for (int b = 0; b <= LAG_NBUCKETS; b++)
			lag[b] = load(&r->m_lag_counts[b]);
	}
	evbuffer_add_printf(out,
			    "# HELP onceledger_relay_leader 1 when this daemon holds the relay lock.\n"
			    "# TYPE onceledger_relay_leader gauge\nonceledger_relay_leader %ld\n"
			    "# HELP onceledger_relay_backlog Committed events not yet published (as of the relay's last count).\n"
			    "# TYPE onceledger_relay_backlog gauge\nonceledger_relay_backlog %ld\n"
			    "# HELP onceledger_relay_published_total Stream entries Redis accepted.\n"
			    "# TYPE onceledger_relay_published_total counter\nonceledger_relay_published_total %ld\n"
			    "# HELP onceledger_relay_duplicates_total Entries Redis refused as already published.\n"
			    "# TYPE onceledger_relay_duplicates_total counter\nonceledger_relay_duplicates_total %ld\n"
			    "# HELP onceledger_relay_conflicts_total Events whose id a stream refused without having it (something else writes there).\n"
			    "# TYPE onceledger_relay_conflicts_total counter\nonceledger_relay_conflicts_total %ld\n"
			    "# HELP onceledger_relay_errors_total Failed relay rounds.\n"
			    "# TYPE onceledger_relay_errors_total counter\n"
			    "onceledger_relay_errors_total{kind=\"redis\"} %ld\nonceledger_relay_errors_total{kind=\"postgres\"} %ld\n"
			    "# HELP onceledger_relay_lag_seconds From an event's insert into the outbox to Redis confirming it.\n"
			    "# TYPE onceledger_relay_lag_seconds histogram\n",
			    leader, backlog, published, duplicates, conflicts, err_redis, err_pg);
	long cum = 0;
	for (int b = 0; b < LAG_NBUCKETS; b++) {
		cum += lag[b];
		evbuffer_add_printf(out, "onceledger_relay_lag_seconds_bucket{le=\"%g\"} %ld\n", lag_bounds[b], cum);
	}
	cum += lag[LAG_NBUCKETS];
	evbuffer_add_printf(out, "onceledger_relay_lag_seconds_bucket{le=\"+Inf\"} %ld\nonceledger_relay_lag_seconds_sum %.6f\n"
			    "onceledger_relay_lag_seconds_count %ld\n",
			    cum, (double)sum_us / 1e6, cum);
}
