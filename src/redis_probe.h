/* redis_probe.h — periodic Redis reachability check for /readyz and
 * /metrics (the event relay of issue #8 will own the real connection). */
#ifndef OL_REDIS_PROBE_H
#define OL_REDIS_PROBE_H

#include <stdbool.h>

/* Parses redis://host[:port] or unix:///path. host >= 256 bytes. */
bool redis_url_parse(const char *url, char *host, int *port, bool *is_unix);
/* One blocking PING with a short timeout; true when Redis answered. */
bool redis_probe_once(const char *url, int timeout_ms);

#endif
