/* Unit tests for the router: matching, 404/405, parameter decoding, and the
 * real routing table's invariants (every /v1 route needs auth and a scope). */
#include <stdbool.h>

#include "api/app.h"
#include "http/router.h"
#include "tap.h"

static void noop(http_req *r) { (void)r; }

static const route t[] = {
	{HTTP_M_GET, "/v1/accounts/{id}", 1, 0, noop},
	{HTTP_M_POST, "/v1/accounts/{id}/credits", 2, 0, noop},
	{HTTP_M_POST, "/v1/transfers/batch", 2, 0, noop},
	{HTTP_M_GET, "/v1/transfers/{id}", 1, 0, noop},
};

int main(void)
{
	router_match m;
	unsigned allowed;
	CHECK(router_match_path(t, 4, "/v1/accounts/acc_1", HTTP_M_GET, &m, &allowed) == 0 && m.index == 0 &&
		      strcmp(m.params[0], "acc_1") == 0,
	      "param route");
	CHECK(router_match_path(t, 4, "/v1/accounts/a%3Ab", HTTP_M_GET, &m, &allowed) == 0 && strcmp(m.params[0], "a:b") == 0,
	      "percent-decoded param");
	CHECK(router_match_path(t, 4, "/v1/accounts/a%00b", HTTP_M_GET, &m, &allowed) == 400, "NUL in param refused");
	CHECK(router_match_path(t, 4, "/v1/accounts/a%zz", HTTP_M_GET, &m, &allowed) == 400, "bad escape refused");
	CHECK(router_match_path(t, 4, "/v1/accounts/a%4", HTTP_M_GET, &m, &allowed) == 400, "truncated escape refused");
	CHECK(router_match_path(t, 4, "/v1/accounts/x", HTTP_M_DELETE, &m, &allowed) == 405 && allowed == HTTP_M_GET,
	      "405 with Allow");
	CHECK(router_match_path(t, 4, "/v1/nothing", HTTP_M_GET, &m, &allowed) == 404, "404");
	CHECK(router_match_path(t, 4, "/v1/accounts/", HTTP_M_GET, &m, &allowed) == 404, "empty param is 404");
	CHECK(router_match_path(t, 4, "/v1/accounts/x/credits", HTTP_M_POST, &m, &allowed) == 0 && m.index == 1,
	      "nested route");
	CHECK(router_match_path(t, 4, "/v1/transfers/batch", HTTP_M_POST, &m, &allowed) == 0 && m.index == 2,
	      "literal beats nothing");
	CHECK(router_match_path(t, 4, "/v1/transfers/batch", HTTP_M_GET, &m, &allowed) == 0 && m.index == 3,
	      "GET batch is an id");
	CHECK(router_match_path(t, 4, "/v1/accounts/x", HTTP_M_HEAD, &m, &allowed) == 0, "HEAD served by GET");
	char allow[64];
	router_allow_header(HTTP_M_GET | HTTP_M_POST, allow, sizeof(allow));
	CHECK(strcmp(allow, "GET, POST") == 0, "Allow header text");

	size_t n;
	const route *real = api_routes(&n);
	bool all_scoped = true, ops_public = true, no_dupes = true;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(real[i].pattern, "/v1/", 4) == 0 && ((real[i].flags & ROUTE_PUBLIC) ||
								 (real[i].scope == 0 && !(real[i].flags & ROUTE_ANY_SCOPE))))
			all_scoped = false;
		if (strncmp(real[i].pattern, "/v1/", 4) != 0 && !(real[i].flags & ROUTE_PUBLIC))
			ops_public = false;
		for (size_t j = 0; j < i; j++)
			if (real[i].method == real[j].method && strcmp(real[i].pattern, real[j].pattern) == 0)
				no_dupes = false;
	}
	CHECK(all_scoped, "every /v1 route authenticates with a scope");
	CHECK(ops_public, "ops routes are public");
	CHECK(no_dupes, "no duplicate routes");
	return it_test_done();
}
