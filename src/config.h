/* config.h — the settings table: every daemon setting with its type,
 * default, bounds and documentation, read from flags, ONCELEDGER_* environment
 * variables and an optional config file (flag > environment > file > default). */
#ifndef OL_CONFIG_H
#define OL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

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
	long long relay_enabled;
	long long relay_batch;
	long long relay_poll_ms;
	long long relay_redis_timeout_ms;
	long long relay_takeover_ms;
	long long outbox_retention_s;
	long long threads;
	long long db_pool_size;
	long long db_connect_timeout_ms;
	long long db_query_timeout_ms;
	long long db_queue_max;
	long long retry_after_s;
	long long max_body_bytes;
	long long dynamodb_max_body_bytes;
	long long max_header_bytes;
	long long max_connections;
	long long read_timeout_ms;
	long long idle_timeout_ms;
	long long write_timeout_ms;
	long long shutdown_timeout_ms;
	long long auth_cache_ttl_ms;
	long long auth_cache_size;
	long long auth_lookup_rate;
	long long rate_limit_rps;
	long long rate_limit_burst;
	long long ttl_sweep_interval_ms;
	long long ttl_sweep_batch;
	long long hold_sweep_interval_ms;
	long long idempotency_wait_ms;
	long long idempotency_ttl_s;
	char *log_level;
} ol_config;

typedef enum { CFG_STR, CFG_INT } cfg_type;

typedef struct cfg_setting {
	const char *name; /* snake_case; flag --name-with-dashes; env ONCELEDGER_NAME */
	cfg_type type;
	const char *def;
	long long min, max; /* for CFG_INT */
	size_t offset;      /* into ol_config */
	const char *doc;
} cfg_setting;

const cfg_setting *cfg_settings(size_t *count);
/* Loads defaults, then file, environment, flags. argv may be NULL. */
bool cfg_load(ol_config *cfg, int argc, char **argv, char **err) OL_WARN_UNUSED;
/* Applies one setting by name (used by all three sources and by tests). */
bool cfg_set(ol_config *cfg, const char *name, const char *value, char **err) OL_WARN_UNUSED;
void cfg_free(ol_config *cfg);
/* Prints `--help` text listing every setting. */
void cfg_print_help(const char *prog);

#endif
