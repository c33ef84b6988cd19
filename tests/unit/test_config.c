/* Unit tests for the settings table: precedence, bounds, and that every
 * setting is documented in docs/configuration.md (PgBouncer's habit). */
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "tap.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	static char buf[1 << 17];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}


/* cfg_set of one value on a loaded configuration: true when accepted. On a
 * refusal, the message must name the setting and contain `needs` (its
 * bounds or choices). */
static bool set_ok(ol_config *cfg, const char *name, const char *value)
{
	char *err = NULL;
	bool ok = cfg_set(cfg, name, value, &err);
	free(err);
	return ok;
}

static bool refused_naming(ol_config *cfg, const char *name, const char *value, const char *needs)
{
	char *err = NULL;
	bool ok = cfg_set(cfg, name, value, &err);
	bool named = err != NULL && strstr(err, name) != NULL && strstr(err, needs) != NULL;
	if (!ok && !named)
		printf("#   message: %s\n", err ? err : "(none)");
	free(err);
	return !ok && named;
}

/* The parser, type by type: bounds inclusive, units, spellings; a bad value
 * leaves the field as it was. */
static void typed_settings(void)
{
	ol_config cfg;
	char *err = NULL;
	CHECK(cfg_load(&cfg, 0, NULL, &err), "defaults load");

	/* integer */
	CHECK(set_ok(&cfg, "db_pool_size", "1") && cfg.db_pool_size == 1, "integer: the minimum");
	CHECK(set_ok(&cfg, "db_pool_size", "64") && cfg.db_pool_size == 64, "integer: the maximum");
	CHECK(refused_naming(&cfg, "db_pool_size", "65", "from 1 to 64") && cfg.db_pool_size == 64,
	      "integer: past the maximum, refused naming the bounds, unchanged");
	CHECK(refused_naming(&cfg, "db_pool_size", "0", "from 1 to 64"), "integer: under the minimum");
	CHECK(refused_naming(&cfg, "db_pool_size", "8x", "from 1 to 64"), "integer: trailing garbage");
	CHECK(refused_naming(&cfg, "db_pool_size", "", "from 1 to 64"), "integer: empty");
	CHECK(set_ok(&cfg, "events_stream_maxlen", "1000000000000") && cfg.events_stream_maxlen == 1000000000000LL,
	      "64-bit integer: 10^12");
	CHECK(refused_naming(&cfg, "events_stream_maxlen", "1000000000001", "1000000000000"), "64-bit integer: past 10^12");

	/* bytes */
	CHECK(set_ok(&cfg, "max_body_bytes", "16777216") && cfg.max_body_bytes == (size_t)16777216, "bytes: 16 MiB");
	CHECK(refused_naming(&cfg, "max_body_bytes", "1023", "from 1024 to 16777216"), "bytes: under 1 KiB");

	/* duration in milliseconds */
	CHECK(set_ok(&cfg, "idle_timeout_ms", "250") && cfg.idle_timeout_ms == 250, "ms: a bare number is milliseconds");
	CHECK(set_ok(&cfg, "idle_timeout_ms", "1500ms") && cfg.idle_timeout_ms == 1500, "ms: 1500ms");
	CHECK(set_ok(&cfg, "idle_timeout_ms", "2s") && cfg.idle_timeout_ms == 2000, "ms: 2s");
	CHECK(set_ok(&cfg, "idle_timeout_ms", "5m") && cfg.idle_timeout_ms == 300000, "ms: 5m");
	CHECK(set_ok(&cfg, "idle_timeout_ms", "1h") && cfg.idle_timeout_ms == 3600000, "ms: 1h, the maximum");
	CHECK(refused_naming(&cfg, "idle_timeout_ms", "2h", "from 100ms to 1h") && cfg.idle_timeout_ms == 3600000,
	      "ms: 2h past the maximum, refused naming the bounds, unchanged");
	CHECK(refused_naming(&cfg, "idle_timeout_ms", "99", "from 100ms to 1h"), "ms: under the minimum");
	CHECK(refused_naming(&cfg, "idle_timeout_ms", "5 s", "from 100ms to 1h"), "ms: a space before the unit");
	CHECK(refused_naming(&cfg, "idle_timeout_ms", "5sec", "ms, s, m, h, d"), "ms: an unknown unit");
	CHECK(refused_naming(&cfg, "idle_timeout_ms", "-5", "from 100ms to 1h"), "ms: negative");
	CHECK(refused_naming(&cfg, "idle_timeout_ms", "s", "from 100ms to 1h"), "ms: a unit alone");
	CHECK(refused_naming(&cfg, "idle_timeout_ms", "99999999999999999999999d", "from 100ms to 1h"), "ms: overflow");
	CHECK(set_ok(&cfg, "shutdown_timeout_ms", "0") && cfg.shutdown_timeout_ms == 0, "ms: 0 where allowed");
	CHECK(refused_naming(&cfg, "auth_cache_ttl_ms", "6s", "from 100ms to 5s"), "ms: auth cache capped at 5s");

	/* duration in seconds */
	CHECK(set_ok(&cfg, "outbox_retention_s", "90") && cfg.outbox_retention_s == 90, "s: a bare number is seconds");
	CHECK(set_ok(&cfg, "outbox_retention_s", "7d") && cfg.outbox_retention_s == 604800, "s: 7d");
	CHECK(set_ok(&cfg, "outbox_retention_s", "120000ms") && cfg.outbox_retention_s == 120, "s: whole seconds in ms");
	CHECK(refused_naming(&cfg, "outbox_retention_s", "61500ms", "seconds") && cfg.outbox_retention_s == 120,
	      "s: not a whole number of seconds, refused, unchanged");
	CHECK(refused_naming(&cfg, "outbox_retention_s", "59", "from 1m to 3650d"), "s: under the minimum");
	CHECK(set_ok(&cfg, "retry_after_s", "1h") && cfg.retry_after_s == 3600, "s: 1h");

	/* boolean */
	static const char *const yes[] = {"1", "true", "yes", "on", "TRUE", "On"}, *const no[] = {"0", "false", "no", "off", "False", "OFF"};
	for (size_t i = 0; i < OL_ARRAY_LEN(yes); i++) {
		char name[64];
		snprintf(name, sizeof(name), "boolean: '%s' and '%s'", yes[i], no[i]);
		CHECK(set_ok(&cfg, "relay_enabled", no[i]) && !cfg.relay_enabled && set_ok(&cfg, "relay_enabled", yes[i]) &&
			      cfg.relay_enabled,
		      name);
	}
	CHECK(refused_naming(&cfg, "relay_enabled", "2", "true, false") && cfg.relay_enabled, "boolean: 2 refused, unchanged");
	CHECK(refused_naming(&cfg, "relay_enabled", "", "true, false"), "boolean: empty refused");

	/* enum by lookup table */
	CHECK(set_ok(&cfg, "log_level", "debug") && cfg.log_level == LOG_DEBUG, "enum: debug");
	CHECK(set_ok(&cfg, "log_level", "error") && cfg.log_level == LOG_ERROR, "enum: error");
	CHECK(refused_naming(&cfg, "log_level", "loud", "one of debug, info, warn, error") && cfg.log_level == LOG_ERROR,
	      "enum: an unknown name refused listing the names, unchanged");

	/* A string is never repeated in a message (database_url may hold a
	 * password). */
	char *secret = malloc(300);
	memset(secret, 's', 299);
	secret[299] = '\0';
	memcpy(secret, "pw", 2);
	CHECK(!cfg_set(&cfg, "events_stream_prefix", secret, &err) && err != NULL && strstr(err, "299 bytes") != NULL &&
		      strstr(err, "at most 223 bytes") != NULL && strstr(err, "pwss") == NULL,
	      "string: too long, refused with its length, not its text");
	free(err);
	err = NULL;
	free(secret);
	cfg_free(&cfg);

	/* The table: every default is accepted by its own parser (cfg_load
	 * above), bounds are ordered, enums have names; --help and messages
	 * describe each. */
	size_t n;
	const cfg_setting *s = cfg_settings(&n);
	bool sane = true;
	for (size_t i = 0; i < n; i++) {
		char want[160];
		cfg_describe(&s[i], want, sizeof(want));
		if (s[i].type != CFG_STR && s[i].type != CFG_BOOL && s[i].type != CFG_ENUM && s[i].min > s[i].max)
			sane = false;
		if ((s[i].type == CFG_ENUM) != (s[i].names != NULL) || want[0] == '\0' || strcmp(want, "?") == 0)
			sane = false;
		if (!sane) {
			printf("#   setting %s\n", s[i].name);
			break;
		}
	}
	CHECK(sane, "every row of the table is well-formed");
}

int main(void)
{
	typed_settings();

	ol_config cfg;
	char *err = NULL;
	char *argv1[] = {"x", "--threads", "3", "--listen=0.0.0.0:9", NULL};
	setenv("ONCELEDGER_THREADS", "5", 1);
	setenv("ONCELEDGER_DB_POOL_SIZE", "7", 1);
	CHECK(cfg_load(&cfg, 4, argv1, &err), "load");
	CHECK(cfg.threads == 3, "flag beats environment");
	CHECK(cfg.db_pool_size == 7, "environment beats default");
	CHECK(strcmp(cfg.listen, "0.0.0.0:9") == 0, "--name=value form");
	CHECK(cfg.max_body_bytes == 65536, "default body limit 64 KiB");
	cfg_free(&cfg);
	unsetenv("ONCELEDGER_THREADS");
	unsetenv("ONCELEDGER_DB_POOL_SIZE");

	char *argv2[] = {"x", "--threads", "9999", NULL};
	CHECK(!cfg_load(&cfg, 3, argv2, &err) && err != NULL && strstr(err, "threads") != NULL, "out of bounds refused");
	free(err);
	err = NULL;
	cfg_free(&cfg);
	char *argv3[] = {"x", "--no-such-thing", "1", NULL};
	CHECK(!cfg_load(&cfg, 3, argv3, &err) && strstr(err, "unknown setting") != NULL, "unknown flag refused");
	free(err);
	err = NULL;
	cfg_free(&cfg);

	char path[] = "/tmp/ol_cfg_XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "# comment\nidle_timeout_ms = 1234\nredis_url = \"redis://h:1\"\n");
	fclose(f);
	setenv("ONCELEDGER_IDLE_TIMEOUT_MS", "4321", 1);
	char *argv4[] = {"x", "--config", path, NULL};
	CHECK(cfg_load(&cfg, 3, argv4, &err), "config file loads");
	CHECK(cfg.idle_timeout_ms == 4321, "environment beats file");
	CHECK(strcmp(cfg.redis_url, "redis://h:1") == 0, "file value with quotes");
	cfg_free(&cfg);
	unsetenv("ONCELEDGER_IDLE_TIMEOUT_MS");
	unlink(path);

	/* events_stream_prefix: room for the longest tenant name within a
	 * stream key (docs/events.md "Stream names"), never a cut key. */
	char longest[OL_STREAM_KEY_MAX - OL_TENANT_NAME_MAX + 2];
	memset(longest, 'p', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	char *argv5[] = {"x", "--events-stream-prefix", longest, NULL};
	CHECK(!cfg_load(&cfg, 3, argv5, &err) && err != NULL && strstr(err, "events_stream_prefix") != NULL &&
		      strstr(err, "223") != NULL,
	      "a prefix one byte too long is refused");
	free(err);
	err = NULL;
	cfg_free(&cfg);
	longest[sizeof(longest) - 2] = '\0';
	CHECK(cfg_load(&cfg, 3, argv5, &err) && strlen(cfg.events_stream_prefix) == 223, "the longest prefix is accepted");
	cfg_free(&cfg);

	const char *top = getenv("top_srcdir");
	char docpath[4096];
	snprintf(docpath, sizeof(docpath), "%s/docs/configuration.md", top ? top : ".");
	char *doc = slurp(docpath);
	CHECK(doc != NULL, "docs/configuration.md readable");
	size_t n;
	const cfg_setting *s = cfg_settings(&n);
	for (size_t i = 0; doc != NULL && i < n; i++) {
		char needle[128];
		snprintf(needle, sizeof(needle), "`%s`", s[i].name);
		char name[160];
		snprintf(name, sizeof(name), "setting %s documented", s[i].name);
		CHECK(strstr(doc, needle) != NULL, name);
	}

	/* The example configuration that `make install` puts in place loads as
	 * it is and sets every setting explicitly (a new setting must be added
	 * to it, with its default). */
	char expath[4096];
	snprintf(expath, sizeof(expath), "%s/contrib/onceledgerd.conf.example", top ? top : ".");
	char *argv_ex[] = {"x", "--config", expath, NULL};
	CHECK(cfg_load(&cfg, 3, argv_ex, &err), "contrib/onceledgerd.conf.example loads");
	if (err != NULL)
		fprintf(stderr, "# %s\n", err);
	free(err);
	err = NULL;
	cfg_free(&cfg);
	char *example = slurp(expath);
	CHECK(example != NULL, "contrib/onceledgerd.conf.example readable");
	for (size_t i = 0; example != NULL && i < n; i++) {
		char needle[160];
		snprintf(needle, sizeof(needle), "\n%s =", s[i].name);
		char name[200];
		snprintf(name, sizeof(name), "setting %s in the example configuration", s[i].name);
		CHECK(strstr(example, needle) != NULL, name);
	}
	return it_test_done();
}
