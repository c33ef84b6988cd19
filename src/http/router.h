/* router.h — matches a request path and method against a routing table of
 * patterns like "/v1/accounts/{id}/credits"; decodes path parameters. */
#ifndef OL_HTTP_ROUTER_H
#define OL_HTTP_ROUTER_H

#include <stddef.h>

#include "http/http.h"

#define ROUTER_MAX_PARAMS 4
#define ROUTER_PARAM_MAX 512

typedef struct route {
	http_method method;
	const char *pattern;
	unsigned scope;     /* meaning defined by the layer above */
	unsigned flags;
	void (*handler)(http_req *r);
} route;

typedef struct router_match {
	const route *route;
	int index;
	int nparams;
	char params[ROUTER_MAX_PARAMS][ROUTER_PARAM_MAX + 1];
} router_match;

/* Returns 0 on a match, 404 when no pattern matches the path, 405 when the
 * path matches under other methods (their bitmask in *allowed), 400 when a
 * parameter is not valid percent-encoded text. */
int router_match_path(const route *table, size_t n, const char *path, http_method m, router_match *out, unsigned *allowed);
/* Writes "GET, POST" for a method bitmask. */
void router_allow_header(unsigned allowed, char *buf, size_t len);

#endif
