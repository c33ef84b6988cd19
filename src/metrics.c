/* metrics.c — Prometheus text rendering of request counts and latency. */
#include "metrics.h"

#include <stdlib.h>

#include "util/util.h"

static const int statuses[] = {0, 200, 201, 204, 400, 401, 402, 403, 404, 405, 408, 409, 413, 415, 422, 429, 431, 500, 501, 503, 505};
#define NSTATUS ((int)OL_ARRAY_LEN(statuses) + 1) /* + "other" */
static const double bucket_le[METRICS_NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
						   0.1,	   0.25,  0.5,	  1,	 2.5,	5,     10};

typedef struct route_stats {
	uint64_t by_status[NSTATUS];
	uint64_t buckets[METRICS_NBUCKETS + 1]; /* last: +Inf */
	uint64_t sum_us;
} route_stats;

struct metrics {
	int nroutes;
	route_stats *routes; /* nroutes + 1: index 0 is "unrouted" */
};

metrics *metrics_new(int nroutes)
{
	metrics *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->nroutes = nroutes;
	m->routes = calloc((size_t)nroutes + 1, sizeof(route_stats));
	if (m->routes == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

void metrics_free(metrics *m)
{
	if (m == NULL)
		return;
	free(m->routes);
	free(m);
}

static int status_index(int status)
{
	for (int i = 0; i < (int)OL_ARRAY_LEN(statuses); i++)
		if (statuses[i] == status)
			return i;
	return NSTATUS - 1;
}

#define BUMP(field, v) __atomic_fetch_add(&(field), (v), __ATOMIC_RELAXED)
#define LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

void metrics_observe(metrics *m, int route, int status, int64_t micros)
{
	if (route < -1 || route >= m->nroutes)
		route = -1;
	route_stats *rs = &m->routes[route + 1];
	BUMP(rs->by_status[status_index(status)], 1);
	double secs = (double)micros / 1e6;
	int b = 0;
	while (b < METRICS_NBUCKETS && secs > bucket_le[b])
		b++;
	BUMP(rs->buckets[b], 1);
	BUMP(rs->sum_us, (uint64_t)(micros > 0 ? micros : 0));
}

void metrics_render(metrics *const *all, int n, int nroutes, metrics_route_name name, struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP onceledger_http_requests_total HTTP requests by route and status.\n"
				 "# TYPE onceledger_http_requests_total counter\n");
	for (int r = 0; r <= nroutes; r++) {
		const char *rn = r == 0 ? "unrouted" : name(r - 1);
		for (int s = 0; s < NSTATUS; s++) {
			uint64_t total = 0;
			for (int w = 0; w < n; w++)
				total += LOAD(all[w]->routes[r].by_status[s]);
			if (total == 0)
				continue;
			if (s == NSTATUS - 1)
				evbuffer_add_printf(out, "onceledger_http_requests_total{route=\"%s\",status=\"other\"} %llu\n", rn,
						    (unsigned long long)total);
			else
				evbuffer_add_printf(out, "onceledger_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", rn,
						    statuses[s], (unsigned long long)total);
		}
	}
	evbuffer_add_printf(out, "# HELP onceledger_http_request_duration_seconds Time from request head to response queued.\n"
				 "# TYPE onceledger_http_request_duration_seconds histogram\n");
	for (int r = 0; r <= nroutes; r++) {
		const char *rn = r == 0 ? "unrouted" : name(r - 1);
		uint64_t cum = 0, sum_us = 0;
		uint64_t counts[METRICS_NBUCKETS + 1] = {0};
		for (int w = 0; w < n; w++) {
			for (int b = 0; b <= METRICS_NBUCKETS; b++)
				counts[b] += LOAD(all[w]->routes[r].buckets[b]);
			sum_us += LOAD(all[w]->routes[r].sum_us);
		}
		uint64_t total = 0;
		for (int b = 0; b <= METRICS_NBUCKETS; b++)
			total += counts[b];
		if (total == 0)
			continue;
		for (int b = 0; b < METRICS_NBUCKETS; b++) {
			cum += counts[b];
			evbuffer_add_printf(out, "onceledger_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", rn,
					    bucket_le[b], (unsigned long long)cum);
		}
		evbuffer_add_printf(out, "onceledger_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", rn,
				    (unsigned long long)total);
		evbuffer_add_printf(out, "onceledger_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", rn,
				    (double)sum_us / 1e6);
		evbuffer_add_printf(out, "onceledger_http_request_duration_seconds_count{route=\"%s\"} %llu\n", rn,
				    (unsigned long long)total);
	}
}
