/* Unit tests for the settings table: precedence, bounds, and that every
 * setting is documented in docs/configuration.md (PgBouncer's habit). */
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
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

int main(void)
{
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
