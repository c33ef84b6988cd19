/* config.h — the settings table: every daemon setting with its type,
 * default, bounds and documentation, read from flags, ONCELEDGER_* environment
 * variables and an optional config file (flag > environment > file > default). */
#ifndef OL_CONFIG_H
#define OL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

/* Each field's C type is the one its setting's type stores (cfg_type);
 * config.c's table refuses to compile when they differ. */
typedef struct ol_config {
	char *listen;
	char *metrics_listen;
	char *dynamodb_listen;
	char *master_key_file;
	char *database_url;
	char *redis_url;
	char *events_stream_prefix;
	char *events_key_file;
	long long events_stream_maxlen;
	bool relay_enabled;
	int relay_batch;
	int relay_poll_ms;
	int relay_redis_timeout_ms;
	int relay_takeover_ms;
	int outbox_retention_s;
	int threads;
	int db_pool_size;
	int db_connect_timeout_ms;
	int db_query_timeout_ms;
	int db_queue_max;
	int retry_after_s;
	size_t max_body_bytes;
	size_t dynamodb_max_body_bytes;
	size_t max_header_bytes;
	int max_connections;
	int read_timeout_ms;
	int idle_timeout_ms;
	int write_timeout_ms;
	int shutdown_timeout_ms;
	int auth_cache_ttl_ms;
	int auth_cache_size;
	int auth_lookup_rate;
	int rate_limit_rps;
	int rate_limit_burst;
	int ttl_sweep_interval_ms;
	int ttl_sweep_batch;
	int hold_sweep_interval_ms;
	int idempotency_wait_ms;
	int idempotency_ttl_s;
	int audit_page_entries;
	int log_level; /* a log_level (log.h) */
} ol_config;

typedef enum {
	CFG_STR,   /* char *; max > 0: at most max bytes */
	CFG_INT,   /* int in [min, max] */
	CFG_INT64, /* long long in [min, max] */
	CFG_BYTES, /* size_t, a number of bytes in [min, max] */
	CFG_BOOL,  /* bool: 1, 0, true, false, yes, no, on, off */
	CFG_MS,    /* int, a duration in milliseconds in [min, max]: 250, 250ms, 2s, 5m, 1h, 1d */
	CFG_SECS,  /* int, a duration in seconds in [min, max]: 90, 90s, 15m, 1h, 7d */
	CFG_ENUM,  /* int, the value of one of the names in `names` */
} cfg_type;

typedef struct cfg_name {
	const char *name;
	int value;
} cfg_name;

typedef struct cfg_setting {
	const char *name; /* snake_case; flag --name-with-dashes; env ONCELEDGER_NAME */
	cfg_type type;
	size_t offset;      /* into ol_config, of the type `type` stores */
	const char *def;
	long long min, max; /* in the setting's unit; CFG_STR: max length (0: none) */
	const cfg_name *names; /* CFG_ENUM: the names, ending with {NULL, 0} */
	const char *doc;
} cfg_setting;

const cfg_setting *cfg_settings(size_t *count);
/* Loads defaults, then file, environment, flags. argv may be NULL. */
bool cfg_load(ol_config *cfg, int argc, char **argv, char **err) OL_WARN_UNUSED;
/* Applies one setting by name (used by all three sources and by tests):
 * parses the text as the setting's type and checks its bounds; on a bad
 * value *err (free()) names the setting, the value and what is allowed. */
bool cfg_set(ol_config *cfg, const char *name, const char *value, char **err) OL_WARN_UNUSED;
void cfg_free(ol_config *cfg);
/* Prints `--help` text listing every setting. */
void cfg_print_help(const char *prog);
/* What a setting accepts, for --help and messages: "an integer from 1 to
 * 64", "a duration from 100ms to 1h (...)", "one of debug, info, warn, error". */
void cfg_describe(const cfg_setting *s, char *buf, size_t len);

#endif
