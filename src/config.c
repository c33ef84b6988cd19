/* config.c — one table of settings (PgBouncer's bouncer_params habit): each
 * row gives the setting's type (string, integer, bytes, boolean, duration in
 * milliseconds or seconds, or a name from a lookup table), default, bounds
 * and documentation; cfg_set parses and checks every value in one place, so
 * the rest of the daemon reads typed fields. The unit test checks that every
 * entry is documented in docs/configuration.md. */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define MIB (1024LL * 1024LL)

/* One row per setting: SETTING's _Generic refuses to compile a row whose
 * field in ol_config is not of the C type its cfg_type stores. */
#define SETTING(field, cfg_t, c_t) .name = #field, .type = cfg_t, .offset = _Generic(((ol_config *)0)->field, c_t: offsetof(ol_config, field))
#define STR(f) SETTING(f, CFG_STR, char *)
#define INT(f) SETTING(f, CFG_INT, int)
#define INT64(f) SETTING(f, CFG_INT64, long long)
#define BYTES(f) SETTING(f, CFG_BYTES, size_t)
#define BOOL(f) SETTING(f, CFG_BOOL, bool)
#define MS(f) SETTING(f, CFG_MS, int)
#define SECS(f) SETTING(f, CFG_SECS, int)
#define ENUM(f, table) SETTING(f, CFG_ENUM, int), .names = table

static const cfg_name log_levels[] = {
	{"debug", LOG_DEBUG}, {"info", LOG_INFO}, {"warn", LOG_WARN}, {"error", LOG_ERROR}, {NULL, 0},
};

static const cfg_setting settings[] = {
	{STR(listen), .def = "127.0.0.1:8080",
	 .doc = "HOST:PORT of the HTTP API listener."},
	{STR(metrics_listen), .def = "",
	 .doc = "Optional separate HOST:PORT for /metrics, /healthz and /readyz; empty serves them on the API listener."},
	{STR(dynamodb_listen), .def = "",
	 .doc = "HOST:PORT of the DynamoDB-compatible endpoint (JSON 1.0 protocol, SigV4); empty: off."},
	{STR(master_key_file), .def = "",
	 .doc = "File of 32 random bytes sealing the SigV4 secrets; required with dynamodb_listen (the CLI reads it too). Must be private to its owner (mode 0600 or 0400): a file its group or others may access stops the daemon at start-up."},
	{STR(database_url), .def = "postgresql:///onceledger",
	 .doc = "libpq connection URL of PostgreSQL."},
	{STR(redis_url), .def = "redis://127.0.0.1:6379",
	 .doc = "Redis URL for the event streams: redis://[[user]:password@]host[:port][/db] or unix:///path."},
	{STR(events_stream_prefix), .def = "onceledger:events:", .max = OL_STREAM_KEY_MAX - OL_TENANT_NAME_MAX,
	 .doc = "Prefix of the tenants' Redis stream keys; the tenant's name follows. At most 223 bytes (stream keys have at most 255)."},
	{STR(events_key_file), .def = "onceledger-events.key",
	 .doc = "Ed25519 event signing keys (docs/events.md); created (mode 0600) with a first key when missing. Must be private to its owner: a file its group or others may access stops the daemon at start-up. Every daemon of one database must use the same file."},
	{INT64(events_stream_maxlen), .def = "1000000", .min = 0, .max = 1000000000000LL,
	 .doc = "Approximate length streams are trimmed to (XADD MAXLEN ~); 0 never trims. GET /v1/events reaches further back."},
	{BOOL(relay_enabled), .def = "1",
	 .doc = "True: this daemon takes part in relaying the outbox (one daemon relays at a time); false: it never relays."},
	{INT(relay_batch), .def = "1000", .min = 1, .max = 100000,
	 .doc = "Outbox rows the relay publishes per round (one pipelined burst of XADDs)."},
	{MS(relay_poll_ms), .def = "10", .min = 1, .max = 60000,
	 .doc = "How long the relay waits after a round that was not full."},
	{MS(relay_redis_timeout_ms), .def = "2000", .min = 100, .max = 600000,
	 .doc = "Deadline for Redis to connect or to answer the relay's commands in flight; past it the connection is dropped and retried."},
	{MS(relay_takeover_ms), .def = "1000", .min = 50, .max = 600000,
	 .doc = "How often a daemon that is not relaying tries to take the relay over."},
	{SECS(outbox_retention_s), .def = "604800", .min = 60, .max = 315360000LL,
	 .doc = "Published outbox rows older than this are deleted; GET /v1/events and refills after Redis lost data reach back this far."},
	{INT(threads), .def = "0", .min = 0, .max = 256,
	 .doc = "HTTP worker threads, each with its own event loop and database pool; 0 = number of CPUs."},
	{INT(db_pool_size), .def = "8", .min = 1, .max = 64,
	 .doc = "PostgreSQL connections per worker thread."},
	{MS(db_connect_timeout_ms), .def = "3000", .min = 100, .max = 60000,
	 .doc = "Time allowed to establish one PostgreSQL connection."},
	{MS(db_query_timeout_ms), .def = "5000", .min = 100, .max = 600000,
	 .doc = "Time allowed for one pipelined batch; also sent as statement_timeout. A batch past it fails with 503 and its connection is reset."},
	{INT(db_queue_max), .def = "1024", .min = 1, .max = 1000000,
	 .doc = "Requests per worker that may wait for a busy pool before 503 unavailable."},
	{SECS(retry_after_s), .def = "1", .min = 1, .max = 3600,
	 .doc = "Retry-After seconds sent with 503 unavailable."},
	{BYTES(max_body_bytes), .def = "65536", .min = 1024, .max = 16 * MIB,
	 .doc = "Largest request body; larger is 413 payload_too_large."},
	{BYTES(dynamodb_max_body_bytes), .def = "16777216", .min = 1024, .max = 64 * MIB,
	 .doc = "Largest request body on the DynamoDB endpoint (DynamoDB allows 16 MB for BatchWriteItem; items stay limited to 400 KB)."},
	{BYTES(max_header_bytes), .def = "16384", .min = 1024, .max = 1 * MIB,
	 .doc = "Largest request line plus headers; larger is 431 request_header_too_large."},
	{INT(max_connections), .def = "16384", .min = 16, .max = 1000000,
	 .doc = "Open client connections across all workers; past it a worker stops accepting until one closes."},
	{MS(read_timeout_ms), .def = "10000", .min = 100, .max = 3600000,
	 .doc = "A request must arrive completely (headers and body) within this time of its first byte, else 408 and close (slow-client defence)."},
	{MS(idle_timeout_ms), .def = "60000", .min = 100, .max = 3600000,
	 .doc = "A keep-alive connection with no request in progress is closed after this time."},
	{MS(write_timeout_ms), .def = "10000", .min = 100, .max = 3600000,
	 .doc = "A response the client does not read within this time closes the connection."},
	{MS(shutdown_timeout_ms), .def = "10000", .min = 0, .max = 600000,
	 .doc = "On SIGTERM, time allowed for in-flight requests to finish before exit."},
	{MS(auth_cache_ttl_ms), .def = "2000", .min = 100, .max = 5000,
	 .doc = "How long a worker trusts a cached API key lookup; bounds how late a revocation takes effect (at most 5 s)."},
	{INT(auth_cache_size), .def = "10000", .min = 16, .max = 10000000,
	 .doc = "Cached API key lookups per worker (unknown keys included); when full, the least recently used one is evicted."},
	{INT(rate_limit_rps), .def = "0", .min = 0, .max = 1000000,
	 .doc = "Requests per second each API key may make to this daemon (a token bucket per key, per instance); 0: no limit. A tenant may override it: onceledger tenant update NAME --rate-limit-rps N. Past it: 429 rate_limited with Retry-After."},
	{INT(rate_limit_burst), .def = "0", .min = 0, .max = 10000000,
	 .doc = "Requests a key may make at once above the rate (the bucket's size); 0: as many as rate_limit_rps. A tenant may override it (--rate-limit-burst)."},
	{INT(auth_lookup_rate), .def = "200", .min = 1, .max = 1000000,
	 .doc = "PostgreSQL lookups per second (and burst) each worker makes for API key ids it does not know as valid keys (new or unknown ids); past it such a request is 503 unavailable with Retry-After, without a query. Hits and refreshes of valid keys are never limited."},
	{MS(ttl_sweep_interval_ms), .def = "1000", .min = 0, .max = 3600000,
	 .doc = "How often the item layer's TTL sweeper deletes expired items, then DynamoDB stream records older than 24 hours (0 disables it; reads hide expired items regardless)."},
	{MS(hold_sweep_interval_ms), .def = "1000", .min = 0, .max = 3600000,
	 .doc = "How often pending holds and created orders past expires_at are expired (0 disables the sweeper; a hold or order is also expired when a request touches it)."},
	{INT(ttl_sweep_batch), .def = "1000", .min = 1, .max = 100000,
	 .doc = "Expired items (or stream records past retention) deleted per sweeper statement; a full batch is followed at once by the next."},
	{MS(idempotency_wait_ms), .def = "2000", .min = 0, .max = 60000,
	 .doc = "How long a request waits for an in-flight request with the same Idempotency-Key before 409 idempotency_key_in_use; keep it below db_query_timeout_ms."},
	{SECS(idempotency_ttl_s), .def = "86400", .min = 1, .max = 2592000,
	 .doc = "Seconds an Idempotency-Key record is kept after its creation (a tenant may override it: onceledger tenant update NAME --idempotency-ttl-s N)."},
	{INT(audit_page_entries), .def = "100000", .min = 1, .max = 100000000,
	 .doc = "Chain entries and @world legs one page of GET /v1/audit/verify reads (an account's chain is never split); then it answers with a next_cursor."},
	{ENUM(log_level, log_levels), .def = "info",
	 .doc = "debug, info, warn or error."},
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

/* A duration in milliseconds, shortest exact form: 0, 250ms, 2s, 5m, 1h, 7d. */
static void format_ms(long long ms, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		long long ms;
	} units[] = {{"d", 86400000LL}, {"h", 3600000LL}, {"m", 60000LL}, {"s", 1000LL}, {"ms", 1LL}};
	if (ms == 0) {
		snprintf(buf, len, "0");
		return;
	}
	for (size_t i = 0; i < OL_ARRAY_LEN(units); i++) {
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%lld%s", ms / units[i].ms, units[i].unit);
			return;
		}
	}
}

/* Digits and an optional unit (ms, s, m, h, d); without one, `bare_ms` is
 * the unit (1 or 1000). At most 10^10 of a unit: far past every bound. */
static bool parse_duration_ms(const char *v, long long bare_ms, long long *ms)
{
	long long n = 0;
	const char *p = v;
	if (!isdigit((unsigned char)*p))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		n = n * 10 + (*p - '0');
		if (n > 10000000000LL)
			return false;
	}
	long long unit;
	if (*p == '\0')
		unit = bare_ms;
	else if (strcmp(p, "ms") == 0)
		unit = 1;
	else if (strcmp(p, "s") == 0)
		unit = 1000;
	else if (strcmp(p, "m") == 0)
		unit = 60000;
	else if (strcmp(p, "h") == 0)
		unit = 3600000;
	else if (strcmp(p, "d") == 0)
		unit = 86400000;
	else
		return false;
	*ms = n * unit;
	return true;
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off"};
	for (size_t i = 0; i < OL_ARRAY_LEN(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
			*out = strcasecmp(v, yes[i]) == 0;
			return true;
		}
	}
	return false;
}

void cfg_describe(const cfg_setting *s, char *buf, size_t len)
{
	char lo[32], hi[32];
	switch (s->type) {
	case CFG_STR:
		if (s->max > 0)
			snprintf(buf, len, "a string of at most %lld bytes", s->max);
		else
			snprintf(buf, len, "a string");
		return;
	case CFG_INT:
	case CFG_INT64:
		snprintf(buf, len, "an integer from %lld to %lld", s->min, s->max);
		return;
	case CFG_BYTES:
		snprintf(buf, len, "a number of bytes from %lld to %lld", s->min, s->max);
		return;
	case CFG_BOOL:
		snprintf(buf, len, "a boolean: 1, 0, true, false, yes, no, on or off");
		return;
	case CFG_MS:
	case CFG_SECS: {
		long long unit = s->type == CFG_SECS ? 1000 : 1;
		format_ms(s->min * unit, lo, sizeof(lo));
		format_ms(s->max * unit, hi, sizeof(hi));
		snprintf(buf, len, "a duration from %s to %s (%s, or a number with a unit: ms, s, m, h, d)", lo, hi,
			 s->type == CFG_SECS ? "seconds" : "milliseconds");
		return;
	}
	case CFG_ENUM: {
		size_t n = (size_t)snprintf(buf, len, "one of");
		for (const cfg_name *e = s->names; e->name != NULL && n < len; e++)
			n += (size_t)snprintf(buf + n, len - n, "%s %s", e == s->names ? "" : ",", e->name);
		return;
	}
	}
	snprintf(buf, len, "?");
}

/* Parses `value` as s's type within its bounds into its field. */
static bool set_value(ol_config *cfg, const cfg_setting *s, const char *value)
{
	void *field = (char *)cfg + s->offset;
	long long v = 0;
	switch (s->type) {
	case CFG_STR: {
		if (s->max > 0 && (long long)strlen(value) > s->max)
			return false;
		char *copy = strdup(value);
		if (copy == NULL)
			return false;
		free(*(char **)field);
		*(char **)field = copy;
		return true;
	}
	case CFG_BOOL:
		return parse_bool(value, (bool *)field);
	case CFG_ENUM:
		for (const cfg_name *e = s->names; e->name != NULL; e++) {
			if (strcmp(e->name, value) == 0) {
				*(int *)field = e->value;
				return true;
			}
		}
		return false;
	case CFG_MS:
	case CFG_SECS: {
		long long unit = s->type == CFG_SECS ? 1000 : 1, ms;
		if (!parse_duration_ms(value, unit, &ms) || ms % unit != 0)
			return false;
		v = ms / unit;
		break;
	}
	case CFG_INT:
	case CFG_INT64:
	case CFG_BYTES:
		if (!util_parse_ll(value, s->min, s->max, &v))
			return false;
		break;
	}
	if (v < s->min || v > s->max)
		return false;
	if (s->type == CFG_INT64)
		*(long long *)field = v;
	else if (s->type == CFG_BYTES)
		*(size_t *)field = (size_t)v;
	else
		*(int *)field = (int)v;
	return true;
}

bool cfg_set(ol_config *cfg, const char *name, const char *value, char **err)
{
	const cfg_setting *s = find_setting(name);
	if (s == NULL) {
		*err = xasprintf("unknown setting '%s'", name);
		return false;
	}
	if (set_value(cfg, s, value))
		return true;
	char want[160];
	cfg_describe(s, want, sizeof(want));
	/* A string may be a secret (database_url): never repeated. */
	if (s->type == CFG_STR)
		*err = s->max > 0 && (long long)strlen(value) > s->max
			       ? xasprintf("invalid value for %s: %zu bytes long; expected %s", name, strlen(value), want)
			       : xasprintf("cannot set %s: out of memory", name);
	else
		*err = xasprintf("invalid value '%s' for %s: expected %s", value, name, want);
	return false;
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
		if (settings[i].type != CFG_STR || settings[i].max > 0) {
			char want[160];
			cfg_describe(&settings[i], want, sizeof(want));
			printf("      Value: %s.\n", want);
		}
	}
}
