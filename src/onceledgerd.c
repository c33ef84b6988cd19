/* onceledgerd.c — the daemon: settings, worker threads serving the API,
 * signal handling and the two-stage shutdown (stop accepting and drain on
 * SIGTERM/SIGINT, exit 0 once in-flight requests finished). */
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "api/app.h"
#include "api/ratelimit.h"
#include "config.h"
#include "fault.h"
#include "http/http.h"
#include "log.h"
#include "events/keys.h"
#include "events/relay.h"
#include "redis_probe.h"

typedef struct daemon_state {
	struct event_base *base;
	http_server *srv;
	app *ap;
	bool stopping;
	int redis_failures;
	const redis_url *redis;
} daemon_state;

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	daemon_state *d = arg;
	if (d->stopping)
		return;
	d->stopping = true;
	log_info("shutdown", "{s:s}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	http_server_drain(d->srv);
	event_base_loopexit(d->base, NULL);
}

/* Every client connection is a descriptor: raise the soft limit to the
 * hard one so max_connections is not silently capped at 1024. */
static void raise_fd_limit(long want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return;
	}
	if ((long)rl.rlim_cur < want + 64)
		log_warn("fd_limit_low", "{s:I, s:I}", "nofile", (json_int_t)rl.rlim_cur, "max_connections", (json_int_t)want);
}

static void on_redis_probe(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	daemon_state *d = arg;
	/* Down only after two failed probes in a row: one slow PING on a busy
	 * machine is not an outage. */
	/* A rotated key file is picked up here (docs/events.md "Keys"). */
	ev_keys_refresh(d->ap->keys);
	bool up = redis_probe_once(d->redis, 500);
	d->redis_failures = up ? 0 : d->redis_failures + 1;
	int st = up ? REDIS_UP : d->redis_failures >= 2 ? REDIS_DOWN : __atomic_load_n(&d->ap->redis_state, __ATOMIC_RELAXED);
	if (st == REDIS_UNKNOWN)
		st = REDIS_DOWN;
	int old = __atomic_exchange_n(&d->ap->redis_state, st, __ATOMIC_RELAXED);
	if (old != st)
		log_info("redis_state", "{s:s}", "state", st == REDIS_UP ? "up" : "down");
}

/* Start-up takes its resources in order; any failure logs startup_failed
 * (plain text on stderr while the settings are not loaded yet) and jumps to
 * the one teardown below, which releases whatever was taken, running or
 * not, and exits 1. The normal exit goes through the same teardown. */
int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			cfg_print_help("onceledgerd");
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("onceledgerd %s\n", PACKAGE_VERSION);
			return 0;
		}
	}
	int status = 1;
	char *err = NULL;
	ol_config cfg;
	redis_url ru = {0};
	master_key mk = {0};
	app ap = {.cfg = &cfg};
	daemon_state d = {.ap = &ap, .redis = &ru};
	struct event *sigterm = NULL, *sigint = NULL, *probe = NULL;
	bool started = false;

	if (!cfg_load(&cfg, argc, argv, &err)) {
		fprintf(stderr, "onceledgerd: %s\n", err ? err : "invalid settings");
		goto done;
	}
	log_min_level = cfg.log_level;
	/* A malformed URL is a configuration error now, not a relay that
	 * retries forever. */
	if (!redis_url_parse(cfg.redis_url, &ru, &err)) {
		fprintf(stderr, "onceledgerd: %s\n", err ? err : "bad redis_url");
		goto done;
	}
	if (sodium_init() < 0) {
		log_error("startup_failed", "{s:s}", "error", "sodium_init failed");
		goto done;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(cfg.max_connections);

	int nthreads = cfg.threads;
	if (nthreads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = n > 0 ? (int)n : 1;
	}
	ap.nworkers = nthreads;
	if (cfg.dynamodb_listen[0] != '\0' || cfg.master_key_file[0] != '\0') {
		if (!master_key_load(cfg.master_key_file, &mk, &err)) {
			log_error("startup_failed", "{s:s}", "error", err ? err : "cannot load the master key");
			goto done;
		}
		ap.mk = &mk;
	}
	ap.keys = ev_keys_open(cfg.events_key_file, true, &err);
	if (ap.keys == NULL) {
		log_error("startup_failed", "{s:s, s:s}", "error", err ? err : "cannot load the events key file", "file", cfg.events_key_file);
		goto done;
	}
	/* Every daemon of a database reads the same key file: a cursor one
	 * issues, another accepts (docs/operations.md "List cursors"). */
	ev_keys_derive(ap.keys, "onceledger list cursors v1", ap.cursor_key.k, sizeof(ap.cursor_key.k));
	ap.rl = fault_inject("rate_limits") ? NULL : rl_new(65536);
	ap.workers = fault_inject("workers") ? NULL : calloc((size_t)nthreads, sizeof(app_worker *));
	if (ap.rl == NULL || ap.workers == NULL) {
		log_error("startup_failed", "{s:s}", "error", "out of memory");
		goto done;
	}
	http_limits lim = {
		.max_body_bytes = cfg.max_body_bytes,
		.max_dynamodb_body_bytes = cfg.dynamodb_max_body_bytes,
		.max_header_bytes = cfg.max_header_bytes,
		.max_connections = cfg.max_connections,
		.read_timeout_ms = cfg.read_timeout_ms,
		.idle_timeout_ms = cfg.idle_timeout_ms,
		.write_timeout_ms = cfg.write_timeout_ms,
		.shutdown_timeout_ms = cfg.shutdown_timeout_ms,
	};
	http_hooks hooks = {api_worker_init, api_worker_fini, api_on_request, api_on_complete, NULL, &ap};
	ap.srv = http_server_new(cfg.listen, cfg.metrics_listen, cfg.dynamodb_listen, nthreads, &lim, &hooks, &err);
	if (ap.srv == NULL) {
		log_error("startup_failed", "{s:s}", "error", err ? err : "out of memory");
		goto done;
	}
	d.srv = ap.srv;
	d.base = fault_inject("main_loop") ? NULL : event_base_new();
	if (d.base != NULL) {
		sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
		sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
		probe = event_new(d.base, -1, EV_PERSIST, on_redis_probe, &d);
	}
	struct timeval probe_tv = {2, 0};
	if (d.base == NULL || sigterm == NULL || sigint == NULL || probe == NULL || evsignal_add(sigterm, NULL) != 0 ||
	    evsignal_add(sigint, NULL) != 0 || event_add(probe, &probe_tv) != 0) {
		log_error("startup_failed", "{s:s}", "error", "cannot set up the main event loop");
		goto done;
	}
	on_redis_probe(-1, 0, &d);

	if (!http_server_start(ap.srv, &err)) {
		log_error("startup_failed", "{s:s}", "error", err ? err : "worker start failed");
		goto done;
	}
	started = true;
	if (cfg.relay_enabled) {
		ev_relay_config rc = {
			.conninfo = cfg.database_url,
			.redis = &ru,
			.prefix = cfg.events_stream_prefix,
			.maxlen = cfg.events_stream_maxlen,
			.batch = cfg.relay_batch,
			.poll_ms = cfg.relay_poll_ms,
			.redis_timeout_ms = cfg.relay_redis_timeout_ms,
			.takeover_ms = cfg.relay_takeover_ms,
			.retention_s = cfg.outbox_retention_s,
			.connect_timeout_ms = cfg.db_connect_timeout_ms,
			.keys = ap.keys,
		};
		ap.relay = fault_inject("relay") ? NULL : ev_relay_start(&rc, &err);
		if (ap.relay == NULL) {
			log_error("startup_failed", "{s:s}", "error", err ? err : "cannot start the relay");
			goto done;
		}
	}
	log_info("listening", "{s:s, s:i, s:i, s:s, s:s, s:i}", "listen", cfg.listen, "port", http_server_port(ap.srv), "threads",
		 nthreads, "metrics_listen", cfg.metrics_listen, "dynamodb_listen", cfg.dynamodb_listen, "dynamodb_port",
		 http_server_dynamodb_port(ap.srv));
	event_base_dispatch(d.base);
	status = 0;
	if (__atomic_load_n(&ap.stmt_invalid, __ATOMIC_SEQ_CST)) {
		log_error("startup_failed", "{s:s}", "error", "a statement of the program is invalid (statement_invalid)");
		status = 1;
	}

done:
	if (started) {
		/* After a failed start, the workers that run are stopped as on
		 * SIGTERM (with nothing in flight they end at once). */
		if (!d.stopping)
			http_server_drain(ap.srv);
		http_server_join(ap.srv);
	}
	ev_relay_stop(ap.relay);
	if (status == 0)
		log_info("stopped", "{}");

	/* Freeing the signal events restores the default action: a second
	 * SIGTERM during the rest of the teardown would then kill us with
	 * status -15 instead of 0. Only this thread is left: block them. */
	sigset_t quiet;
	sigemptyset(&quiet);
	sigaddset(&quiet, SIGTERM);
	sigaddset(&quiet, SIGINT);
	pthread_sigmask(SIG_BLOCK, &quiet, NULL);

	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	if (probe != NULL)
		event_free(probe);
	if (d.base != NULL)
		event_base_free(d.base);
	api_workers_free(&ap);
	http_server_free(ap.srv);
	ev_keys_free(ap.keys);
	rl_free(ap.rl);
	redis_url_free(&ru);
	cfg_free(&cfg);
	sodium_memzero(&mk, sizeof(mk));
	free(err);
	return status;
}
