/* cons_main.c — onceledger-consume: the command line, logging, signals.
 * See contrib/consumer/README.md for what the program does and why. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cons.h"
#include "cons_loop.h"
#include "cons_redis.h"
#include "cons_verify.h"

#define CONS_EXIT_USAGE 2

cons_level cons_log_min = CONS_INFO;
volatile int cons_stopping;

void cons_log_emit(cons_level level, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char ts[32];
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One fprintf per line: lines of concurrent consumers sharing a
	 * terminal or a log file do not interleave mid-line. */
	fprintf(stderr, "%s.%03dZ onceledger-consume: %s: %s\n", ts, (int)(tv.tv_usec / 1000), names[level], msg);
}

int64_t cons_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *cons_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (q == NULL && n > 0) {
		fputs("onceledger-consume: out of memory\n", stderr);
		abort();
	}
	return q;
}

char *cons_xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		fputs("onceledger-consume: out of memory\n", stderr);
		abort();
	}
	return s;
}

static void cons_usage(FILE *f)
{
	fputs("usage: onceledger-consume --stream KEY --group NAME --consumer NAME --key KID:BASE64PUB\n"
	      "                          [--key ...] [options]\n"
	      "\n"
	      "Reads onceledger's signed events from a Redis stream as a member of a consumer\n"
	      "group, verifies each, and prints every event handled as one line of JSON on\n"
	      "stdout (at least once, deduplicated by event id). See contrib/consumer/README.md.\n"
	      "\n"
	      "  --redis-url URL          redis://[[user]:password@]host[:port][/db] or unix:///path\n"
	      "                           (default: $ONCELEDGER_REDIS_URL, else redis://127.0.0.1:6379;\n"
	      "                           a URL with a password belongs in the environment, since\n"
	      "                           every local user can read a command line)\n"
	      "  --stream KEY             the tenant's stream, e.g. onceledger:events:acme\n"
	      "  --stream-prefix PREFIX   the daemons' events_stream_prefix (onceledger:events:);\n"
	      "                           the rest of --stream is the tenant every event's source\n"
	      "                           must name (onceledger/<tenant>), else it is dead-lettered\n"
	      "  --group NAME             consumer group (created at the stream's start if missing)\n"
	      "  --consumer NAME          this consumer's name within the group (keep it stable)\n"
	      "  --key KID:BASE64PUB      a trusted Ed25519 public key (GET /v1/events/signing-key);\n"
	      "                           repeatable, at least one\n"
	      "  --max-deliveries N       dead-letter an entry delivered more than N times (5)\n"
	      "  --claim-idle-ms MS       take over entries pending that long (30000)\n"
	      "  --dedupe-ttl-s S         remember handled event ids that long (604800: 7 days)\n"
	      "  --count N                exit 0 after N events handled\n"
	      "  --idle-exit-ms MS        exit 0 after no entry arrived for MS\n"
	      "  --redis-retries N        reconnection attempts before exiting 1 (10)\n"
	      "  --fail-type TYPE         test hook: leave events of TYPE unhandled (pending)\n"
	      "  -v, --verbose            log every entry;  -q, --quiet: warnings and errors only\n"
	      "  -h, --help\n"
	      "\n"
	      "Exit status: 0 done (--count, --idle-exit-ms, SIGINT/SIGTERM), 1 Redis errors\n"
	      "after retries or stdout failed, 2 usage.\n",
	      f);
}

static bool cons_opt_num(const char *name, const char *s, long long min, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "onceledger-consume: --%s: expected an integer in [%lld, %lld], got '%s'\n", name, min,
			max, s);
		return false;
	}
	*out = v;
	return true;
}

static void cons_on_signal(int sig)
{
	(void)sig;
	cons_stopping = 1;
}

enum {
	OPT_REDIS_URL = 256,
	OPT_STREAM,
	OPT_STREAM_PREFIX,
	OPT_GROUP,
	OPT_CONSUMER,
	OPT_KEY,
	OPT_MAX_DELIVERIES,
	OPT_CLAIM_IDLE_MS,
	OPT_DEDUPE_TTL_S,
	OPT_COUNT,
	OPT_IDLE_EXIT_MS,
	OPT_REDIS_RETRIES,
	OPT_FAIL_TYPE,
};

/* Fills o from argv; false after printing why (exit 2). */
static bool cons_parse_args(int argc, char **argv, struct cons_opts *o)
{
	static const struct option longopts[] = {
		{"redis-url", required_argument, NULL, OPT_REDIS_URL},
		{"stream", required_argument, NULL, OPT_STREAM},
		{"stream-prefix", required_argument, NULL, OPT_STREAM_PREFIX},
		{"group", required_argument, NULL, OPT_GROUP},
		{"consumer", required_argument, NULL, OPT_CONSUMER},
		{"key", required_argument, NULL, OPT_KEY},
		{"max-deliveries", required_argument, NULL, OPT_MAX_DELIVERIES},
		{"claim-idle-ms", required_argument, NULL, OPT_CLAIM_IDLE_MS},
		{"dedupe-ttl-s", required_argument, NULL, OPT_DEDUPE_TTL_S},
		{"count", required_argument, NULL, OPT_COUNT},
		{"idle-exit-ms", required_argument, NULL, OPT_IDLE_EXIT_MS},
		{"redis-retries", required_argument, NULL, OPT_REDIS_RETRIES},
		{"fail-type", required_argument, NULL, OPT_FAIL_TYPE},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const long long day_s = 86400, year_ms = 366 * day_s * 1000;
	int ch;
	char *cause = NULL;
	while ((ch = getopt_long(argc, argv, "vqh", longopts, NULL)) != -1) {
		bool ok = true;
		switch (ch) {
		case OPT_REDIS_URL: o->redis_url = optarg; break;
		case OPT_STREAM: o->stream = optarg; break;
		case OPT_STREAM_PREFIX: o->stream_prefix = optarg; break;
		case OPT_GROUP: o->group = optarg; break;
		case OPT_CONSUMER: o->consumer = optarg; break;
		case OPT_FAIL_TYPE: o->fail_type = optarg; break;
		case OPT_KEY:
			ok = cons_keys_add(o->keys, optarg, &cause);
			if (!ok) {
				fprintf(stderr, "onceledger-consume: %s\n", cause);
				free(cause);
			}
			break;
		case OPT_MAX_DELIVERIES: ok = cons_opt_num("max-deliveries", optarg, 1, 1000000, &o->max_deliveries); break;
		case OPT_CLAIM_IDLE_MS: ok = cons_opt_num("claim-idle-ms", optarg, 1, year_ms, &o->claim_idle_ms); break;
		case OPT_DEDUPE_TTL_S: ok = cons_opt_num("dedupe-ttl-s", optarg, 1, 10 * 366 * day_s, &o->dedupe_ttl_s); break;
		case OPT_COUNT: ok = cons_opt_num("count", optarg, 1, LLONG_MAX, &o->count); break;
		case OPT_IDLE_EXIT_MS: ok = cons_opt_num("idle-exit-ms", optarg, 1, year_ms, &o->idle_exit_ms); break;
		case OPT_REDIS_RETRIES: ok = cons_opt_num("redis-retries", optarg, 0, 1000000, &o->redis_retries); break;
		case 'v': cons_log_min = CONS_DEBUG; break;
		case 'q': cons_log_min = CONS_WARN; break;
		case 'h': cons_usage(stdout); exit(0);
		default: ok = false; break; /* getopt printed why */
		}
		if (!ok)
			return false;
	}
	if (optind < argc) {
		fprintf(stderr, "onceledger-consume: unexpected argument '%s'\n", argv[optind]);
		return false;
	}
	const char *missing = o->stream == NULL ? "--stream" : o->group == NULL ? "--group"
			    : o->consumer == NULL ? "--consumer" : o->keys->n == 0 ? "--key" : NULL;
	if (missing != NULL) {
		fprintf(stderr, "onceledger-consume: %s is required\n", missing);
		return false;
	}
	if (o->stream[0] == '\0' || o->group[0] == '\0' || o->consumer[0] == '\0') {
		fputs("onceledger-consume: --stream, --group and --consumer must not be empty\n", stderr);
		return false;
	}
	if (!cons_stream_source(o->stream, o->stream_prefix, o->source, sizeof(o->source))) {
		fprintf(stderr,
			"onceledger-consume: --stream %s is not <prefix><tenant> with --stream-prefix '%s' and a tenant "
			"name of 1-%d of [a-z0-9_-]: cannot tell whose events belong on it\n",
			o->stream, o->stream_prefix, CONS_TENANT_MAX);
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	struct cons_keys keys = {NULL, 0};
	struct cons_opts o = {
		.redis_url = CONS_DEFAULT_REDIS_URL,
		.stream_prefix = CONS_DEFAULT_STREAM_PREFIX,
		.keys = &keys,
		.max_deliveries = 5,
		.claim_idle_ms = 30000,
		.dedupe_ttl_s = 7 * 86400,
		.redis_retries = 10,
	};
	const char *env_url = getenv("ONCELEDGER_REDIS_URL");
	if (env_url != NULL && env_url[0] != '\0')
		o.redis_url = env_url;
	if (!cons_verify_init()) {
		fputs("onceledger-consume: libsodium failed to initialise\n", stderr);
		return 1;
	}
	struct cons_redis r;
	char *cause = NULL;
	if (!cons_parse_args(argc, argv, &o)) {
		fputs("(onceledger-consume --help for usage)\n", stderr);
		cons_keys_free(&keys);
		return CONS_EXIT_USAGE;
	}
	if (!cons_redis_init(&r, o.redis_url, o.redis_retries, CONS_COMMAND_TIMEOUT_MS, &cause)) {
		fprintf(stderr, "onceledger-consume: %s\n", cause);
		free(cause);
		cons_keys_free(&keys);
		return CONS_EXIT_USAGE;
	}

	/* No SA_RESTART: a signal ends a backoff sleep early.  A blocked
	 * XREADGROUP still runs to its end (at most CONS_BLOCK_MAX_MS). */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cons_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* A closed stdout must be a write error we log, not a silent death. */
	signal(SIGPIPE, SIG_IGN);

	struct cons_state st = {.o = &o, .r = &r};
	st.dead_stream = cons_xasprintf("%s:dead", o.stream);
	cons_log(CONS_INFO, "consuming %s (events of %s) as %s/%s (%zu key%s)", o.stream, o.source, o.group, o.consumer,
		 keys.n, keys.n == 1 ? "" : "s");
	int code = cons_run(&st);
	free(st.dead_stream);
	cons_redis_close(&r);
	cons_keys_free(&keys);
	return code;
}
