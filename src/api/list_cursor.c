/* list_cursor.c — the cursors of the bearer API's lists (validate.h,
 * api/cursor.h): what a cursor is bound to, and the 400 for any cursor the
 * server did not issue for the list at hand. */
#include "api/validate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api/app.h"
#include "api/cursor.h"
#include "http/problem.h"

typedef struct qpair {
	char *name, *value;
	size_t nlen, vlen;
	size_t index; /* position in the query: the first occurrence counts */
} qpair;

static int qpair_cmp(const void *a, const void *b)
{
	const qpair *x = a, *y = b;
	size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
	int c = memcmp(x->name, y->name, n);
	if (c != 0)
		return c;
	if (x->nlen != y->nlen)
		return x->nlen < y->nlen ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* A field of the binding: its length (4 bytes, little-endian), its bytes. */
static void field(struct evbuffer *b, const void *p, size_t len)
{
	unsigned char l[4] = {(unsigned char)len, (unsigned char)(len >> 8), (unsigned char)(len >> 16), (unsigned char)(len >> 24)};
	evbuffer_add(b, l, sizeof(l));
	evbuffer_add(b, p, len);
}

static bool is_paging(const qpair *q)
{
	return (q->nlen == 6 && memcmp(q->name, "cursor", 6) == 0) || (q->nlen == 5 && memcmp(q->name, "limit", 5) == 0);
}

/* The query's parameters, decoded, but cursor and limit, sorted by name,
 * the first occurrence of each (as v_query reads them). */
static bool add_query(struct evbuffer *b, const char *query)
{
	size_t cap = 1;
	for (const char *p = query; *p != '\0'; p++)
		cap += *p == '&';
	qpair *qs = calloc(cap, sizeof(*qs));
	size_t n = 0;
	bool ok = qs != NULL;
	for (const char *p = query; ok && *p != '\0';) {
		size_t len = strcspn(p, "&");
		if (len > 0) {
			const char *eq = memchr(p, '=', len);
			size_t nl = eq != NULL ? (size_t)(eq - p) : len;
			char *rn = strndup(p, nl), *rv = strndup(eq != NULL ? eq + 1 : p + len, eq != NULL ? len - nl - 1 : 0);
			qpair *q = &qs[n];
			q->index = n;
			q->name = rn != NULL ? evhttp_uridecode(rn, 1, &q->nlen) : NULL;
			q->value = rv != NULL ? evhttp_uridecode(rv, 1, &q->vlen) : NULL;
			free(rn);
			free(rv);
			n++;
			ok = q->name != NULL && q->value != NULL;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	if (ok) {
		qsort(qs, n, sizeof(*qs), qpair_cmp);
		for (size_t i = 0; i < n; i++) {
			if (is_paging(&qs[i]) || (i > 0 && qs[i].nlen == qs[i - 1].nlen && memcmp(qs[i].name, qs[i - 1].name, qs[i].nlen) == 0))
				continue;
			field(b, qs[i].name, qs[i].nlen);
			field(b, qs[i].value, qs[i].vlen);
		}
	}
	for (size_t i = 0; qs != NULL && i < n; i++) {
		free(qs[i].name);
		free(qs[i].value);
	}
	free(qs);
	return ok;
}

/* What a cursor of this request's list is bound to: the tenant, the route,
 * its path parameters and its other query parameters. A cursor is good for
 * the same request with another cursor or limit, and nothing else. */
static struct evbuffer *binding_of(http_req *r)
{
	api_req *a = api_ctx(r);
	struct evbuffer *b = evbuffer_new();
	if (b == NULL)
		return NULL;
	field(b, a->who.tenant, strlen(a->who.tenant));
	const char *method = http_method_name(a->match.route->method);
	field(b, method, strlen(method));
	field(b, a->match.route->pattern, strlen(a->match.route->pattern));
	for (int i = 0; i < a->match.nparams; i++)
		field(b, a->match.params[i], strlen(a->match.params[i]));
	if (r->query != NULL && !add_query(b, r->query)) {
		evbuffer_free(b);
		return NULL;
	}
	return b;
}

static const cursor_key *key_of(http_req *r)
{
	return &api_worker(r)->app->cursor_key;
}

bool v_cursor(http_req *r, json_t **out)
{
	*out = NULL;
	char *s = v_query(r, "cursor");
	if (s == NULL)
		return true;
	struct evbuffer *b = strlen(s) <= CURSOR_MAX_TEXT ? binding_of(r) : NULL;
	json_t *pos = NULL;
	if (b != NULL) {
		size_t blen = evbuffer_get_length(b);
		pos = cursor_decode(key_of(r), evbuffer_pullup(b, -1), blen, s, strlen(s));
		evbuffer_free(b);
	}
	free(s);
	if (pos == NULL) {
		problem_send(r, 400, "invalid_request", "'cursor' is not a cursor this API returned for this list",
			     json_pack("{s:s}", "field", "cursor"));
		return false;
	}
	*out = pos;
	return true;
}

char *v_cursor_encode(http_req *r, const json_t *pos)
{
	struct evbuffer *b = binding_of(r);
	if (b == NULL)
		return NULL;
	size_t blen = evbuffer_get_length(b);
	char *text = cursor_encode(key_of(r), evbuffer_pullup(b, -1), blen, pos);
	evbuffer_free(b);
	return text;
}
