/* cons.h — onceledger-consume, the reference event consumer: its options,
 * logging and the few helpers every file of it uses.  The program is
 * standalone (hiredis, libsodium, jansson; nothing from src/) so that it can
 * be copied out of the tree as the starting point of a real consumer. */
#ifndef CONS_H
#define CONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONS_WARN_UNUSED __attribute__((warn_unused_result))
#define CONS_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* XREADGROUP blocks at most this long, so that claim sweeps, --idle-exit-ms
 * and signals are looked at between reads; the socket timeout leaves Redis
 * time to answer a read that blocked that long. */
#define CONS_BLOCK_MAX_MS 2000
#define CONS_COMMAND_TIMEOUT_MS (CONS_BLOCK_MAX_MS + 3000)
#define CONS_CLAIM_EVERY_MAX_MS 5000

/* onceledger's tenant names: [a-z0-9_-]{1,32}; an event's "source" is
 * "onceledger/<tenant>". */
#define CONS_TENANT_MAX 32
#define CONS_SOURCE_PREFIX "onceledger/"
#define CONS_DEFAULT_STREAM_PREFIX "onceledger:events:"
#define CONS_DEFAULT_REDIS_URL "redis://127.0.0.1:6379"

/* A borrowed byte string (stream fields are binary safe, not NUL-terminated
 * by contract). */
struct cons_slice {
	const char *p;
	size_t n;
};

struct cons_keys; /* cons_verify.h */

/* Everything the command line sets. */
struct cons_opts {
	const char *redis_url;
	const char *stream;
	const char *stream_prefix; /* the daemons' events_stream_prefix */
	/* "onceledger/<tenant>", the tenant being the stream's name after
	 * stream_prefix: every event on the stream must have this source. */
	char source[sizeof(CONS_SOURCE_PREFIX) + CONS_TENANT_MAX];
	const char *group;
	const char *consumer;
	struct cons_keys *keys;
	long long max_deliveries;
	long long claim_idle_ms;
	long long dedupe_ttl_s;
	long long count;        /* 0: no limit */
	long long idle_exit_ms; /* 0: never */
	long long redis_retries;
	const char *fail_type; /* test hook, NULL when unset */
};

typedef enum { CONS_DEBUG = 0, CONS_INFO, CONS_WARN, CONS_ERROR } cons_level;

extern cons_level cons_log_min;

void cons_log_emit(cons_level level, const char *fmt, ...) CONS_PRINTF(2, 3);

/* The level is checked before the arguments are formatted (Redis serverLog). */
#define cons_log(level, ...)                                                   \
	do {                                                                   \
		if ((level) >= cons_log_min)                                   \
			cons_log_emit((level), __VA_ARGS__);                   \
	} while (0)

/* Monotonic clock in milliseconds, for timeouts and idle tracking. */
int64_t cons_mono_ms(void);
/* Allocation that cannot fail (a consumer out of memory has nothing better
 * to do than stop; its pending entries are claimed by another). */
void *cons_xrealloc(void *p, size_t n);
char *cons_xasprintf(const char *fmt, ...) CONS_PRINTF(1, 2);

/* Set by SIGINT/SIGTERM: finish the entry in hand, then exit 0. */
extern volatile int cons_stopping;

#endif
