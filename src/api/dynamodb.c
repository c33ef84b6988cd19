/* dynamodb.c — the DynamoDB JSON 1.0 protocol on --dynamodb-listen: POST /
 * with X-Amz-Target "DynamoDB_20120810.<Operation>", AWS Signature V4 with
 * the tenant's access key, the request and response bodies passed through
 * to the item layer (it_call) unchanged, errors in AWS's shape
 * {"__type": "...#Type", "message": "..."}. A thin adapter: everything
 * DynamoDB means lives in src/items/. */
#include "api/app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/akid.h"
#include "auth/sigv4.h"
#include "log.h"

#define DDB_TARGET_PREFIX "DynamoDB_20120810."
/* DynamoDB Streams on the same listener (its SDK clients sign as "dynamodb") */
#define DDB_STREAMS_PREFIX "DynamoDBStreams_20120810."
#define DDB_CONTENT_TYPE "application/x-amz-json-1.0"
#define DDB_ERR_NS "com.amazonaws.dynamodb.v20120810#"
#define CORAL_ERR_NS "com.amazon.coral.service#"

typedef struct ddb_req {
	http_req *r;
	char op[40];
	json_t *body;
	sigv4_auth auth;
} ddb_req;

/* Each worker thread's signing keys (sigv4.h): four HMACs saved per request. */
static _Thread_local sigv4_key_cache ddb_keys;

static void ddb_req_free(void *p)
{
	ddb_req *d = p;
	json_decref(d->body);
	sodium_memzero(&d->auth, sizeof(d->auth));
	free(d);
}

/* The parts of a request that SigV4 signs. */
static sigv4_req sigv4_req_of(http_req *r)
{
	sigv4_req sr = {
		.method = r->method_str,
		.path = r->path,
		.query = r->query,
		.nheaders = r->nheaders,
		.hnames = r->hnames,
		.hvalues = r->hvalues,
		.body = evbuffer_pullup(r->body, -1),
		.body_len = evbuffer_get_length(r->body),
	};
	return sr;
}

/* Sends text (NULL: out of memory, a 500) with DynamoDB's headers. */
static void ddb_reply_text(http_req *r, int status, const char *text, size_t len)
{
	/* DynamoDB's own headers: some clients read Date to correct their
	 * clock skew before signing again */
	char date[40];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	http_req_add_header(r, "Date", date);
	http_req_add_header(r, "Server", "onceledger");
	http_req_add_header(r, "x-amzn-RequestId", http_req_id(r));
	http_reply(r, text ? status : 500, DDB_CONTENT_TYPE, text ? text : "{}", text ? len : 2);
}

static void ddb_reply(http_req *r, int status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	ddb_reply_text(r, status, text, text ? strlen(text) : 0);
	free(text);
}

/* An AWS error: ns is the __type namespace, extra (stolen) adds members. */
static void ddb_error(http_req *r, int status, const char *ns, const char *type, const char *message, json_t *extra)
{
	char t[160];
	snprintf(t, sizeof(t), "%s%s", ns, type);
	json_t *b = json_pack("{s:s, s:s}", "__type", t, "message", message ? message : "");
	if (b != NULL && extra != NULL)
		json_object_update(b, extra);
	json_decref(extra);
	ddb_reply(r, status, b);
}

/* Which item-layer errors are the client's (400) and which ours. */
static int status_of(const it_reply *rep)
{
	if (rep->retryable)
		return 503;
	if (strcmp(rep->err_type, "InternalServerError") == 0)
		return 500;
	return 400;
}

static void item_done(it_reply *rep, void *arg)
{
	http_req *r = arg;
	if (rep->err_type != NULL) {
		const char *ns = strcmp(rep->err_type, "UnknownOperationException") == 0 ? CORAL_ERR_NS : DDB_ERR_NS;
		ddb_error(r, status_of(rep), ns, rep->err_type, rep->err_msg, json_incref(rep->err_extra));
		return;
	}
	if (rep->text != NULL)
		ddb_reply_text(r, 200, rep->text, rep->text_len);
	else
		ddb_reply(r, 200, json_incref(rep->body));
}

static void key_found(akid_status st, const akid_info *info, void *arg)
{
	http_req *r = arg;
	ddb_req *d = r->app;
	app_worker *aw = api_worker(r);
	if (st == AKID_UNAVAILABLE || st == AKID_THROTTLED) {
		/* throttled: a flood of unknown access key ids; the SDKs retry */
		http_req_add_header(r, "Retry-After", "1");
		ddb_error(r, 503, "com.amazon.coral.availability#", "ServiceUnavailableException", "Service unavailable", NULL);
		return;
	}
	if (st != AKID_OK) {
		ddb_error(r, 400, CORAL_ERR_NS, "UnrecognizedClientException", "The security token included in the request is invalid.",
			  NULL);
		return;
	}
	sigv4_req sr = sigv4_req_of(r);
	const char *why = NULL;
	sigv4_status vs = sigv4_verify_cached(&sr, &d->auth, info->secret, util_now_us() / 1000000, &ddb_keys, &why);
	if (vs != SIGV4_OK) {
		ddb_error(r, 400, CORAL_ERR_NS, sigv4_error_type(vs), why, NULL);
		return;
	}
	if (!(info->scopes & SCOPE_DYNAMODB)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "User: %s is not authorized to perform: dynamodb:%s (the key lacks the 'dynamodb' scope)",
			 d->auth.access_key, d->op);
		ddb_error(r, 400, DDB_ERR_NS, "AccessDeniedException", msg, NULL);
		return;
	}
	/* Parsed only now: an unauthenticated body costs no parse (a made-up
	 * key and a 16 MiB array used to cost a worker 0.9 s and 350 MB). */
	size_t len = evbuffer_get_length(r->body);
	json_error_t je;
	/* NUL is allowed through here so that the item layer can refuse it
	 * with DynamoDB's ValidationException. */
	d->body = len > 0 ? json_loadb((const char *)evbuffer_pullup(r->body, -1), len, JSON_ALLOW_NUL, &je) : json_object();
	if (d->body == NULL || !json_is_object(d->body)) {
		ddb_error(r, 400, DDB_ERR_NS, "SerializationException",
			  d->body == NULL ? "Start of structure or map found where not expected." : "The request body must be a JSON object",
			  NULL);
		return;
	}
	it_call_text(aw->items, info->tenant, d->op, d->body, item_done, r);
}

void ddb_on_request(http_req *r)
{
	app_worker *aw = api_worker(r);
	if (r->method == HTTP_M_GET && strcmp(r->path, "/") == 0) {
		static const char ok[] = "healthy: onceledger dynamodb";
		http_reply(r, 200, "text/plain", ok, sizeof(ok) - 1);
		return;
	}
	if (r->method != HTTP_M_POST || strcmp(r->path, "/") != 0) {
		ddb_error(r, 404, CORAL_ERR_NS, "UnknownOperationException", "The endpoint answers POST / (and GET / for health)", NULL);
		return;
	}
	if (aw->akids == NULL) {
		ddb_error(r, 500, DDB_ERR_NS, "InternalServerError", "no master key configured", NULL);
		return;
	}
	ddb_req *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		ddb_error(r, 500, DDB_ERR_NS, "InternalServerError", "out of memory", NULL);
		return;
	}
	d->r = r;
	r->app = d;
	r->app_free = ddb_req_free;
	const char *target = http_req_header(r, "X-Amz-Target");
	const char *name = NULL, *ns = "";
	if (target != NULL && strncmp(target, DDB_TARGET_PREFIX, strlen(DDB_TARGET_PREFIX)) == 0)
		name = target + strlen(DDB_TARGET_PREFIX);
	else if (target != NULL && strncmp(target, DDB_STREAMS_PREFIX, strlen(DDB_STREAMS_PREFIX)) == 0) {
		name = target + strlen(DDB_STREAMS_PREFIX);
		ns = IT_STREAMS_OP_PREFIX; /* the item layer's name for them */
	}
	if (name != NULL && (strchr(name, '.') != NULL || strlen(ns) + strlen(name) >= sizeof(d->op)))
		name = NULL;
	if (name != NULL) {
		util_strlcpy(d->op, ns, sizeof(d->op));
		util_strlcpy(d->op + strlen(ns), name, sizeof(d->op) - strlen(ns));
	}
	if (name == NULL || !it_op_known(d->op)) {
		ddb_error(r, 400, CORAL_ERR_NS, "UnknownOperationException", "", NULL);
		return;
	}
	sigv4_req sr = sigv4_req_of(r);
	const char *why = NULL;
	sigv4_status ps = sigv4_parse(&sr, &d->auth, &why);
	if (ps == SIGV4_MISSING) {
		ddb_error(r, 400, CORAL_ERR_NS, "MissingAuthenticationTokenException", "Request is missing Authentication Token", NULL);
		return;
	}
	if (ps != SIGV4_OK) {
		ddb_error(r, 400, CORAL_ERR_NS, sigv4_error_type(ps), why, NULL);
		return;
	}
	if (strcmp(d->auth.service, "dynamodb") != 0) {
		ddb_error(r, 400, CORAL_ERR_NS, "InvalidSignatureException", "Credential should be scoped to correct service: 'dynamodb'.",
			  NULL);
		return;
	}
	akid_lookup(aw->akids, d->auth.access_key, key_found, r);
}
