/* relay.h — the outbox relay (docs/events.md "The relay"): a thread with
 * its own event loop that, while it holds the relay lock, publishes
 * committed outbox rows to the tenants' Redis streams in order and moves
 * the cursor once Redis confirmed them. Every daemon runs one; one relays. */
#ifndef OL_EVENTS_RELAY_H
#define OL_EVENTS_RELAY_H

#include <stdbool.h>

#include <event2/buffer.h>

#include "events/keys.h"
#include "redis_url.h"

typedef struct ev_relay_config {
	const char *conninfo;  /* PostgreSQL */
	const redis_url *redis; /* parsed by the caller (redis_url.h), borrowed */
	const char *prefix;    /* stream key prefix; the tenant follows */
	long long maxlen;      /* XADD MAXLEN ~ (0: no trimming) */
	int batch;             /* rows per round */
	int poll_ms;           /* wait after a round that was not full */
	int redis_timeout_ms;  /* deadline of the commands in flight */
	int takeover_ms;       /* how often a standby tries the lock */
	long long retention_s; /* published rows older than this are deleted */
	int connect_timeout_ms;
	ev_keys *keys;         /* borrowed */
} ev_relay_config;

typedef struct ev_relay ev_relay;

/* Starts the relay's thread; NULL and *err when it cannot. */
ev_relay *ev_relay_start(const ev_relay_config *cfg, char **err);
/* Stops it (whatever is in flight is abandoned: the cursor only moves
 * after Redis confirmed, so nothing is lost) and frees it. */
void ev_relay_stop(ev_relay *r);
/* Appends the relay's Prometheus metrics (r may be NULL: relay off). */
void ev_relay_metrics(ev_relay *r, struct evbuffer *out);

#endif
