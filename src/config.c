/* config.c — one table of settings (PgBouncer's bouncer_params habit);
 * the unit test checks that every entry is documented in docs/configuration.md. */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(field) offsetof(ol_config, field)
#define KIB 1024LL
#define MIB (1024LL * 1024LL)

static const cfg_setting settings[] = {
	{"listen", CFG_STR, "127.0.0.1:8080", 0, 0, S(listen), "HOST:PORT of the HTTP API listener."},
	{"metrics_listen", CFG_STR, "", 0, 0, S(metrics_listen),
	 "Optional separate HOST:PORT for /metrics, /healthz and /readyz; empty serves them on the API listener."},
	{"dynamodb_listen", CFG_STR, "", 0, 0, S(dynamodb_listen),
	 "HOST:PORT of the DynamoDB-compatible endpoint (JSON 1.0 protocol, SigV4); empty: off."},
	{"master_key_file", CFG_STR, "", 0, 0, S(master_key_file),
	 "File of 32 random bytes sealing the SigV4 secrets; required with dynamodb_listen (the CLI reads it too). Must be private to its owner (mode 0600 or 0400): a file its group or others may access stops the daemon at start-up."},
	{"database_url", CFG_STR, "postgresql:///onceledger", 0, 0, S(database_url), "libpq connection URL of PostgreSQL."},
	{"redis_url", CFG_STR, "redis://127.0.0.1:6379", 0, 0, S(redis_url), "Redis URL for the event streams: redis://[[user]:password@]host[:port][/db] or unix:///path."},
	{"events_stream_prefix", CFG_STR, "onceledger:events:", 0, 0, S(events_stream_prefix),
	 "Prefix of the tenants' Redis stream keys; the tenant's name follows. At most 223 bytes (stream keys have at most 255)."},
	{"events_key_file", CFG_STR, "onceledger-events.key", 0, 0, S(events_key_file),
	 "Ed25519 event signing keys (docs/events.md); created (mode 0600) with a first key when missing. Must be private to its owner: a file its group or others may access stops the daemon at start-up. Every daemon of one database must use the same file."},
	{"events_stream_maxlen", CFG_INT, "1000000", 0, 1000000000000LL, S(events_stream_maxlen),
	 "Approximate length streams are trimmed to (XADD MAXLEN ~); 0 never trims. GET /v1/events reaches further back."},
	{"relay_enabled", CFG_INT, "1", 0, 1, S(relay_enabled),
	 "1: this daemon takes part in relaying the outbox (one daemon relays at a time); 0: it never relays."},
	{"relay_batch", CFG_INT, "1000", 1, 100000, S(relay_batch), "Outbox rows the relay publishes per round (one pipelined burst of XADDs)."},
	{"relay_poll_ms", CFG_INT, "10", 1, 60000, S(relay_poll_ms), "How long the relay waits after a round that was not full."},
	{"relay_redis_timeout_ms", CFG_INT, "2000", 100, 600000, S(relay_redis_timeout_ms),
	 "Deadline for Redis to connect or to answer the relay's commands in flight; past it the connection is dropped and retried."},
	{"relay_takeover_ms", CFG_INT, "1000", 50, 600000, S(relay_takeover_ms),
	 "How often a daemon that is not relaying tries to take the relay over."},
	{"outbox_retention_s", CFG_INT, "604800", 60, 315360000LL, S(outbox_retention_s),
	 "Published outbox rows older than this are deleted; GET /v1/events and refills after Redis lost data reach back this far."},
	{"threads", CFG_INT, "0", 0, 256, S(threads), "HTTP worker threads, each with its own event loop and database pool; 0 = number of CPUs."},
	{"db_pool_size", CFG_INT, "8", 1, 64, S(db_pool_size), "PostgreSQL connections per worker thread."},
	{"db_connect_timeout_ms", CFG_INT, "3000", 100, 60000, S(db_connect_timeout_ms), "Time allowed to establish one PostgreSQL connection."},
	{"db_query_timeout_ms", CFG_INT, "5000", 100, 600000, S(db_query_timeout_ms),
	 "Time allowed for one pipelined batch; also sent as statement_timeout. A batch past it fails with 503 and its connection is reset."},
	{"db_queue_max", CFG_INT, "1024", 1, 1000000, S(db_queue_max), "Requests per worker that may wait for a busy pool before 503 unavailable."},
	{"retry_after_s", CFG_INT, "1", 1, 3600, S(retry_after_s), "Retry-After seconds sent with 503 unavailable."},
	{"max_body_bytes", CFG_INT, "65536", 1024, 16 * MIB, S(max_body_bytes), "Largest request body; larger is 413 payload_too_large."},
	{"dynamodb_max_body_bytes", CFG_INT, "16777216", 1024, 64 * MIB, S(dynamodb_max_body_bytes),
	 "Largest request body on the DynamoDB endpoint (DynamoDB allows 16 MB for BatchWriteItem; items stay limited to 400 KB)."},
	{"max_header_bytes", CFG_INT, "16384", 1024, 1 * MIB, S(max_header_bytes), "Largest request line plus headers; larger is 431 request_header_too_large."},
	{"max_connections", CFG_INT, "16384", 16, 1000000, S(max_connections),
	 "Open client connections across all workers; past it a worker stops accepting until one closes."},
	{"read_timeout_ms", CFG_INT, "10000", 100, 3600000, S(read_timeout_ms),
	 "A request must arrive completely (headers and body) within this time of its first byte, else 408 and close (slow-client defence)."},
	{"idle_timeout_ms", CFG_INT, "60000", 100, 3600000, S(idle_timeout_ms), "A keep-alive connection with no request in progress is closed after this time."},
	{"write_timeout_ms", CFG_INT, "10000", 100, 3600000, S(write_timeout_ms), "A response the client does not read within this time closes the connection."},
	{"shutdown_timeout_ms", CFG_INT, "10000", 0, 600000, S(shutdown_timeout_ms), "On SIGTERM, time allowed for in-flight requests to finish before exit."},
	{"auth_cache_ttl_ms", CFG_INT, "2000", 100, 5000, S(auth_cache_ttl_ms),
	 "How long a worker trusts a cached API key lookup; bounds how late a revocation takes effect (at most 5 s)."},
	{"auth_cache_size", CFG_INT, "10000", 16, 10000000, S(auth_cache_size),
	 "Cached API key lookups per worker (unknown keys included); when full, the least recently used one is evicted."},
	{"rate_limit_rps", CFG_INT, "0", 0, 1000000, S(rate_limit_rps),
	 "Requests per second each API key may make to this daemon (a token bucket per key, per instance); 0: no limit. A tenant may override it: onceledger tenant update NAME --rate-limit-rps N. Past it: 429 rate_limited with Retry-After."},
	{"rate_limit_burst", CFG_INT, "0", 0, 10000000, S(rate_limit_burst),
	 "Requests a key may make at once above the rate (the bucket's size); 0: as many as rate_limit_rps. A tenant may override it (--rate-limit-burst)."},
	{"auth_lookup_rate", CFG_INT, "200", 1, 1000000, S(auth_lookup_rate),
	 "PostgreSQL lookups per second (and burst) each worker makes for API key ids it does not know as valid keys (new or unknown ids); past it such a request is 503 unavailable with Retry-After, without a query. Hits and refreshes of valid keys are never limited."},
	{"ttl_sweep_interval_ms", CFG_INT, "1000", 0, 3600000, S(ttl_sweep_interval_ms),
	 "How often the item layer's TTL sweeper deletes expired items, then DynamoDB stream records older than 24 hours (0 disables it; reads hide expired items regardless)."},
	{"hold_sweep_interval_ms", CFG_INT, "1000", 0, 3600000, S(hold_sweep_interval_ms),
	 "How often pending holds and created orders past expires_at are expired (0 disables the sweeper; a hold or order is also expired when a request touches it)."},
	{"ttl_sweep_batch", CFG_INT, "1000", 1, 100000, S(ttl_sweep_batch),
	 "Expired items (or stream records past retention) deleted per sweeper statement; a full batch is followed at once by the next."},
	{"idempotency_wait_ms", CFG_INT, "2000", 0, 60000, S(idempotency_wait_ms),
	 "How long a request waits for an in-flight request with the same Idempotency-Key before 409 idempotency_key_in_use; keep it below db_query_timeout_ms."},
	{"idempotency_ttl_s", CFG_INT, "86400", 1, 2592000, S(idempotency_ttl_s),
	 "Seconds an Idempotency-Key record is kept after its creation (a tenant may override it: onceledger tenant update NAME --idempotency-ttl-s N)."},
	{"audit_page_entries", CFG_INT, "100000", 1, 100000000, S(audit_page_entries),
	 "Chain entries and @world legs one page of GET /v1/audit/verify reads (an account's chain is never split); then it answers with a next_cursor."},
	{"log_level", CFG_STR, "info", 0, 0, S(log_level), "debug, info, warn or error."},
};

const cfg_setting *cfg_settings(size_t *count)
{
	*count = OL_ARRAY_LEN(settings);
	return settings;
}

static const cfg_setting *find_setting(const char *name)
{
	for (size_t i = 0; i < OL_ARRAY_LEN(settings); i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

__attribute__((format(printf, 1, 2))) static char *xasprintf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

bool cfg_set(ol_config *cfg, const char *name, const char *value, char **err)
{
	const cfg_setting *s = find_setting(name);
	if (s == NULL) {
		*err = xasprintf("unknown setting '%s'", name);
		return false;
	}
	char *base = (char *)cfg + s->offset;
	if (s->type == CFG_STR) {
		char **slot = (char **)(void *)base;
		char *copy = strdup(value);
		if (copy == NULL) {
			*err = strdup("out of memory");
			return false;
		}
		free(*slot);
		*slot = copy;
		if (strcmp(name, "log_level") == 0 && strcmp(value, "debug") != 0 && strcmp(value, "info") != 0 &&
		    strcmp(value, "warn") != 0 && strcmp(value, "error") != 0) {
			*err = xasprintf("log_level must be debug, info, warn or error, not '%s'", value);
			return false;
		}
		/* Two tenants whose names differ only past a cut would share a
		 * stream: refuse the prefix instead of ever truncating a key. */
		if (strcmp(name, "events_stream_prefix") == 0 && strlen(value) > OL_STREAM_KEY_MAX - OL_TENANT_NAME_MAX) {
			*err = xasprintf("events_stream_prefix is %zu bytes; at most %d fit, so that the stream key of a tenant with the longest "
					 "name (%d bytes) stays within %d bytes",
					 strlen(value), OL_STREAM_KEY_MAX - OL_TENANT_NAME_MAX, OL_TENANT_NAME_MAX, OL_STREAM_KEY_MAX);
			return false;
		}
		return true;
	}
	long long v;
	if (!util_parse_ll(value, s->min, s->max, &v)) {
		*err = xasprintf("invalid value for %s: expected an integer in %lld..%lld", name, s->min, s->max);
		return false;
	}
	*(long long *)(void *)base = v;
	return true;
}

static bool load_file(ol_config *cfg, const char *path, char **err)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		*err = xasprintf("cannot open config file %s: %s", path, strerror(errno));
		return false;
	}
	char line[4096];
	int lineno = 0;
	bool ok = true;
	while (ok && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '#' || *p == ';' || *p == '\0')
			continue;
		char *eq = strchr(p, '=');
		if (eq == NULL) {
			*err = xasprintf("%s:%d: expected name = value", path, lineno);
			ok = false;
			break;
		}
		char *name_end = eq;
		while (name_end > p && isspace((unsigned char)name_end[-1]))
			name_end--;
		*name_end = '\0';
		char *val = eq + 1;
		while (isspace((unsigned char)*val))
			val++;
		size_t n = strlen(val);
		while (n > 0 && isspace((unsigned char)val[n - 1]))
			val[--n] = '\0';
		if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
			val[n - 1] = '\0';
			val++;
		}
		ok = cfg_set(cfg, p, val, err);
	}
	fclose(f);
	return ok;
}

/* "--db-pool-size" -> "db_pool_size" into buf. */
static void flag_to_name(const char *flag, char *buf, size_t len)
{
	size_t i = 0;
	for (; flag[i] != '\0' && i + 1 < len; i++)
		buf[i] = flag[i] == '-' ? '_' : flag[i];
	buf[i] = '\0';
}

bool cfg_load(ol_config *cfg, int argc, char **argv, char **err)
{
	memset(cfg, 0, sizeof(*cfg));
	*err = NULL;
	for (size_t i = 0; i < OL_ARRAY_LEN(settings); i++)
		if (!cfg_set(cfg, settings[i].name, settings[i].def, err))
			return false;

	const char *file = getenv("ONCELEDGER_CONFIG");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			file = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			file = argv[i] + 9;
	}
	if (file != NULL && *file != '\0' && !load_file(cfg, file, err))
		return false;

	for (size_t i = 0; i < OL_ARRAY_LEN(settings); i++) {
		char env[128] = "ONCELEDGER_";
		size_t n = strlen(env);
		for (const char *p = settings[i].name; *p && n + 1 < sizeof(env); p++)
			env[n++] = (char)toupper((unsigned char)*p);
		env[n] = '\0';
		const char *v = getenv(env);
		if (v != NULL && !cfg_set(cfg, settings[i].name, v, err))
			return false;
	}

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0) {
			*err = xasprintf("unexpected argument '%s'", a);
			return false;
		}
		char name[128];
		const char *eq = strchr(a, '=');
		const char *value;
		if (eq != NULL) {
			size_t n = (size_t)(eq - a - 2);
			if (n >= sizeof(name))
				n = sizeof(name) - 1;
			char tmp[128];
			memcpy(tmp, a + 2, n);
			tmp[n] = '\0';
			flag_to_name(tmp, name, sizeof(name));
			value = eq + 1;
		} else {
			flag_to_name(a + 2, name, sizeof(name));
			if (i + 1 >= argc) {
				*err = xasprintf("%s needs a value", a);
				return false;
			}
			value = argv[++i];
		}
		if (strcmp(name, "config") == 0)
			continue;
		if (!cfg_set(cfg, name, value, err))
			return false;
	}
	return true;
}

void cfg_free(ol_config *cfg)
{
	for (size_t i = 0; i < OL_ARRAY_LEN(settings); i++) {
		if (settings[i].type == CFG_STR) {
			char **slot = (char **)(void *)((char *)cfg + settings[i].offset);
			free(*slot);
			*slot = NULL;
		}
	}
}

void cfg_print_help(const char *prog)
{
	printf("usage: %s [--config FILE] [--SETTING VALUE ...]\n\nSettings (flag, environment variable, default):\n", prog);
	for (size_t i = 0; i < OL_ARRAY_LEN(settings); i++) {
		char flag[128], env[128] = "ONCELEDGER_";
		size_t n = strlen(env);
		size_t j = 0;
		for (const char *p = settings[i].name; *p; p++, j++) {
			flag[j] = *p == '_' ? '-' : *p;
			env[n++] = (char)toupper((unsigned char)*p);
		}
		flag[j] = '\0';
		env[n] = '\0';
		printf("  --%-24s %-36s default \"%s\"\n      %s\n", flag, env, settings[i].def, settings[i].doc);
	}
}
