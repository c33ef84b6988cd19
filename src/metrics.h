/* metrics.h — per-worker request counters and latency histograms, written
 * only by their worker and summed by /metrics with relaxed atomic loads:
 * no lock anywhere on the request path. */
#ifndef OL_METRICS_H
#define OL_METRICS_H

#include <stdint.h>

#include <event2/buffer.h>

#define METRICS_NBUCKETS 14

typedef struct metrics metrics;

metrics *metrics_new(int nroutes);
void metrics_free(metrics *m);
/* route -1 = unrouted (404, framing errors). status 0 = client went away. */
void metrics_observe(metrics *m, int route, int status, int64_t micros);

typedef const char *(*metrics_route_name)(int route);
/* Appends the HTTP metric families summed over the given workers. */
void metrics_render(metrics *const *all, int n, int nroutes, metrics_route_name name, struct evbuffer *out);

#endif
