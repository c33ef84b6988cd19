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
	ol_config cfg;
	char *err = NULL;
	if (!cfg_load(&cfg, argc, argv, &err)) {
		fprintf(stderr, "onceledgerd: %s\n", err ? err : "invalid settings");
		free(err);
		cfg_free(&cfg);
		return 1;
	}
	log_set_level(cfg.log_level);
	/* A malformed URL is a configuration error now, not a relay that
	 * retries forever. */
	redis_url ru;
	if (!redis_url_parse(cfg.redis_url, &ru, &err)) {
		fprintf(stderr, "onceledgerd: %s\n", err ? err : "bad redis_url");
		free(err);
		cfg_free(&cfg);
		return 1;
	}
	if (sodium_init() < 0) {
		log_error("sodium_init_failed", "{}");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit((long)cfg.max_connections);

	int nthreads = (int)cfg.threads;
	if (nthreads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = n > 0 ? (int)n : 1;
	}
	app ap = {.cfg = &cfg, .nworkers = nthreads};
	master_key mk;
	if (cfg.dynamodb_listen[0] != '\0' || cfg.master_key_file[0] != '\0') {
		if (!master_key_load(cfg.master_key_file, &mk, &err)) {
			log_error("startup_failed", "{s:s}", "error", err ? err : "cannot load the master key");
			free(err);
			return 1;
		}
		ap.mk = &mk;
	}
	ap.keys = ev_keys_open(cfg.events_key_file, true, &err);
	if (ap.keys == NULL) {
		log_error("startup_failed", "{s:s, s:s}", "error", err ? err : "cannot load the events key file", "file", cfg.events_key_file);
		free(err);
		return 1;
	}
	/* Every daemon of a database reads the same key file: a cursor one
	 * issues, another accepts (docs/operations.md "List cursors"). */
	ev_keys_derive(ap.keys, "onceledger list cursors v1", ap.cursor_key.k, sizeof(ap.cursor_key.k));
	ap.rl = rl_new(65536);
	if (ap.rl == NULL) {
		log_error("startup_failed", "{s:s}", "error", "out of memory");
		return 1;
	}
	ap.workers = calloc((size_t)nthreads, sizeof(app_worker *));
	http_limits lim = {
		.max_body_bytes = (size_t)cfg.max_body_bytes,
		.max_dynamodb_body_bytes = (size_t)cfg.dynamodb_max_body_bytes,
		.max_header_bytes = (size_t)cfg.max_header_bytes,
		.max_connections = (long)cfg.max_connections,
		.read_timeout_ms = (int)cfg.read_timeout_ms,
		.idle_timeout_ms = (int)cfg.idle_timeout_ms,
		.write_timeout_ms = (int)cfg.write_timeout_ms,
		.shutdown_timeout_ms = (int)cfg.shutdown_timeout_ms,
	};
	http_hooks hooks = {api_worker_init, api_worker_fini, api_on_request, api_on_complete, NULL, &ap};
	http_server *srv = http_server_new(cfg.listen, cfg.metrics_listen, cfg.dynamodb_listen, nthreads, &lim, &hooks, &err);
	if (srv == NULL || ap.workers == NULL) {
		log_error("startup_failed", "{s:s}", "error", err ? err : "out of memory");
		free(err);
		return 1;
	}
	ap.srv = srv;
	daemon_state d = {.srv = srv, .ap = &ap, .redis = &ru};
	d.base = event_base_new();
	struct event *sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
	struct event *sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
	struct event *probe = event_new(d.base, -1, EV_PERSIST, on_redis_probe, &d);
	struct timeval probe_tv = {2, 0};
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	event_add(probe, &probe_tv);
	on_redis_probe(-1, 0, &d);

	if (!http_server_start(srv, &err)) {
		log_error("startup_failed", "{s:s}", "error", err ? err : "worker start failed");
		free(err);
		return 1;
	}
	if (cfg.relay_enabled) {
		ev_relay_config rc = {
			.conninfo = cfg.database_url,
			.redis = &ru,
			.prefix = cfg.events_stream_prefix,
			.maxlen = cfg.events_stream_maxlen,
			.batch = (int)cfg.relay_batch,
			.poll_ms = (int)cfg.relay_poll_ms,
			.redis_timeout_ms = (int)cfg.relay_redis_timeout_ms,
			.takeover_ms = (int)cfg.relay_takeover_ms,
			.retention_s = cfg.outbox_retention_s,
			.connect_timeout_ms = (int)cfg.db_connect_timeout_ms,
			.keys = ap.keys,
		};
		ap.relay = ev_relay_start(&rc, &err);
		if (ap.relay == NULL) {
			log_error("startup_failed", "{s:s}", "error", err ? err : "cannot start the relay");
			free(err);
			return 1;
		}
	}
	log_info("listening", "{s:s, s:i, s:i, s:s, s:s, s:i}", "listen", cfg.listen, "port", http_server_port(srv), "threads",
		 nthreads, "metrics_listen", cfg.metrics_listen, "dynamodb_listen", cfg.dynamodb_listen, "dynamodb_port",
		 http_server_dynamodb_port(srv));
	event_base_dispatch(d.base);
	http_server_join(srv);
	ev_relay_stop(ap.relay);
	log_info("stopped", "{}");

	/* Freeing the signal events restores the default action: a second
	 * SIGTERM during the rest of the teardown would then kill us with
	 * status -15 instead of 0. Only this thread is left: block them. */
	sigset_t quiet;
	sigemptyset(&quiet);
	sigaddset(&quiet, SIGTERM);
	sigaddset(&quiet, SIGINT);
	pthread_sigmask(SIG_BLOCK, &quiet, NULL);

	event_free(sigterm);
	event_free(sigint);
	event_free(probe);
	event_base_free(d.base);
	for (int i = 0; i < nthreads; i++) {
		if (ap.workers[i] != NULL) {
			metrics_free(ap.workers[i]->metrics);
			free(ap.workers[i]);
		}
	}
	http_server_free(srv);
	free(ap.workers);
	ev_keys_free(ap.keys);
	rl_free(ap.rl);
	redis_url_free(&ru);
	cfg_free(&cfg);
	sodium_memzero(&mk, sizeof(mk));
	return 0;
}
