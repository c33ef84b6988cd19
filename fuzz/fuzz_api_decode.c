/* libFuzzer target: JSON request decoding of every route of the routing
 * table (src/api/routes.c). The input picks a route, the outcome of the
 * layer below, a path parameter, a query string and a body; the request
 * then runs the real code from the path match on: the router's parameter
 * decoding, api_decode_body, and the route's handler, whose ledger,
 * idempotency and events calls go to fakes (api_fakes.c) that assert what
 * decoding promised them and answer at once.
 *
 * Checked for every input: exactly one reply; a request refused before it
 * reached the layer below is a 4xx problem document (never a 5xx); a reply
 * is valid JSON, and a problem's type, code and status agree; no leak (ASan).
 *
 * Input: byte 0 = route index, byte 1 = flags (bits 2-5 outcome, bit 6
 * big numbers, bit 7 key found), then
 * "<Content-Type>\n<path parameter>\n<query>\n<body>" (an empty query
 * line: none; an empty Content-Type line: no header). */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "api/app.h"
#include "api_fakes.h"
#include "auth/keys.h"
#include "ledger/ledger.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ol_config cfg = {.retry_after_s = 1, .audit_page_entries = 100000};
static app the_app = {.cfg = &cfg};
static app_worker worker = {.app = &the_app};
static const char *content_type;

void *http_worker_app(http_worker *w)
{
	(void)w;
	return &worker;
}

const char *http_req_header(const http_req *r, const char *name)
{
	(void)r;
	return strcasecmp(name, "Content-Type") == 0 ? content_type : NULL;
}

/* The pattern with every {param} replaced by param (which may hold '/',
 * '%' escapes or anything else: the router must cope). */
static char *make_path(const char *pattern, const char *param)
{
	size_t cap = strlen(pattern) + 4 * (strlen(param) + 1) + 1;
	char *out = malloc(cap), *o = out;
	assert(out != NULL);
	for (const char *p = pattern; *p != '\0'; p++) {
		if (*p == '{') {
			size_t n = strlen(param);
			memcpy(o, param, n);
			o += n;
			p = strchr(p, '}');
			continue;
		}
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

static bool outcome_is_failure(int outcome)
{
	return outcome != LG_OK && outcome != LG_DUPLICATE;
}

/* The reply's body is JSON; a problem's members agree with its status. */
static void check_reply(bool reached_layer)
{
	assert(fz.replies == 1);
	json_error_t err;
	json_t *j = json_loadb(fz.body, fz.body_len, 0, &err);
	/* sums past int64 are exact JSON integers jansson cannot hold */
	if (j == NULL && fz.status == 200 && fz.big_numbers)
		j = json_loadb(fz.body, fz.body_len, JSON_DECODE_INT_AS_REAL, &err);
	if (fz.status == 204) {
		assert(fz.body_len == 0);
		return;
	}
	if (j == NULL)
		fprintf(stderr, "reply %d is not JSON (%s): %s\n", fz.status, err.text, fz.body);
	assert(j != NULL);
	if (fz.status >= 400) {
		const char *code = json_string_value(json_object_get(j, "code"));
		const char *type = json_string_value(json_object_get(j, "type"));
		assert(code != NULL && type != NULL);
		assert(strncmp(type, "urn:onceledger:problem:", 23) == 0 && strcmp(type + 23, code) == 0);
		json_t *st = json_object_get(j, "status");
		/* RFC 9457: always the HTTP status (a hold's or an order's state
		 * is in "hold_status" / "order_status", docs/errors.md) */
		assert(json_is_integer(st) && json_integer_value(st) == fz.status);
	}
	if (!reached_layer)
		assert(fz.status >= 400 && fz.status < 500 && fz.status != 401 && fz.status != 403);
	else if (fz.status >= 500)
		assert(outcome_is_failure(fz.answered));
	json_decref(j);
}

static void fuzz_save(http_req *r)
{
	api_step_done(r, API_OK);
}

/* Writes the result through the fake http_reply (api_fakes.c). */
static void fuzz_send(http_req *r)
{
	api_out *o = &api_ctx(r)->out;
	http_reply(r, o->status, o->content_type, o->body, o->len);
	free(api_out_release(o));
}

static const api_steps fuzz_steps = {.save = fuzz_save, .send = fuzz_send};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	if (!init) {
		if (sodium_init() < 0)
			abort();
		log_min_level = (log_level)(LOG_ERROR + 1); /* db errors are logged: keep the output readable */
		init = true;
	}
	if (size < 2)
		return 0;
	size_t nroutes;
	const route *table = api_routes(&nroutes);
	const route *rt = &table[data[0] % nroutes];
	uint8_t flags = data[1];
	memset(&fz, 0, sizeof(fz));
	fz.outcome = ((flags >> 2) & 15) % FZ_OUTCOMES;
	fz.big_numbers = flags & 64;
	fz.key_found = flags & 128;

	/* Content-Type \n param \n query \n body (NULs kept in the body:
	 * jansson must refuse them) */
	const char *in = (const char *)data + 2;
	size_t n = size - 2;
	const char *nl0 = memchr(in, '\n', n);
	if (nl0 == NULL)
		return 0;
	char *ctype = strndup(in, (size_t)(nl0 - in));
	content_type = ctype != NULL && ctype[0] != '\0' ? ctype : NULL;
	n -= (size_t)(nl0 + 1 - in);
	in = nl0 + 1;
	const char *nl1 = memchr(in, '\n', n);
	const char *nl2 = nl1 != NULL ? memchr(nl1 + 1, '\n', n - (size_t)(nl1 + 1 - in)) : NULL;
	char *param = nl1 != NULL ? strndup(in, (size_t)(nl1 - in)) : strdup("a1");
	char *query = nl2 != NULL && nl2 > nl1 + 1 ? strndup(nl1 + 1, (size_t)(nl2 - nl1 - 1)) : NULL;
	const char *body = nl2 != NULL ? nl2 + 1 : nl1 != NULL ? nl1 + 1 : in;
	size_t body_len = n - (size_t)(body - in);
	if (param == NULL || strlen(param) > 4096) {
		free(param);
		free(query);
		free(ctype);
		return 0;
	}

	http_req r = {.method = rt->method, .query = query, .route_id = -1};
	char *path = make_path(rt->pattern, param);
	r.path = path;
	r.body = evbuffer_new();
	evbuffer_add(r.body, body, body_len);
	api_req *a = calloc(1, sizeof(*a));
	assert(a != NULL && r.body != NULL);
	r.app = a;
	util_strlcpy(a->who.tenant, "t_fuzz", sizeof(a->who.tenant));
	a->who.scopes = SCOPE_READ | SCOPE_WRITE | SCOPE_AUDIT;

	unsigned allowed = 0;
	int rc = router_match_path(table, nroutes, path, r.method, &a->match, &allowed);
	if (rc == 0 && !(a->match.route->flags & ROUTE_PUBLIC)) {
		/* The pipeline from the body on (api/pipeline.h), without the
		 * gate: a refused body is sent at once, the handler's result
		 * goes through the (empty) save step to the send step. */
		a->steps = &fuzz_steps;
		a->phase = API_AUTHENTICATED;
		if ((r.method != HTTP_M_POST && body_len == 0) || api_decode_body(&r, a)) {
			a->phase = API_GATED;
			a->match.route->handler(&r);
		} else {
			api_step_done(&r, API_REFUSED);
		}
		assert(fz.layer_calls <= 1);
		check_reply(fz.layer_calls > 0);
	} else {
		/* the router refused it (a '/' or a bad escape in the parameter):
		 * the dispatcher answers 400/404/405 without decoding anything */
		assert(rc == 0 || rc == 400 || rc == 404 || rc == 405);
	}

	free(fz.body);
	json_decref(a->body);
	free(a->out.owned);
	free(a);
	evbuffer_free(r.body);
	free(path);
	free(param);
	free(query);
	free(ctype);
	return 0;
}
