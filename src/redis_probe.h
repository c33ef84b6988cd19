/* redis_probe.h — periodic Redis reachability check for /readyz and
 * /metrics; the event relay owns the real connection. */
#ifndef OL_REDIS_PROBE_H
#define OL_REDIS_PROBE_H

#include <stdbool.h>

#include "redis_url.h"

/* One blocking connect, AUTH, SELECT and PING with a short timeout; true
 * when Redis answered all of them. */
bool redis_probe_once(const redis_url *u, int timeout_ms);

#endif
