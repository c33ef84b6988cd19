/* http.h — the HTTP/1.1 server the API runs on: worker threads, each with
 * its own event_base accepting on a dup() of one shared listening socket,
 * connection limits and timeouts, and the request/response interface that
 * upper layers use. See docs/architecture.md for why this is not evhttp. */
#ifndef OL_HTTP_H
#define OL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>

#include "util/util.h"

typedef enum {
	HTTP_M_GET = 1,
	HTTP_M_POST = 2,
	HTTP_M_PUT = 4,
	HTTP_M_DELETE = 8,
	HTTP_M_PATCH = 16,
	HTTP_M_HEAD = 32,
	HTTP_M_OPTIONS = 64,
	HTTP_M_OTHER = 128,
} http_method;

typedef struct http_worker http_worker;
typedef struct http_server http_server;
typedef struct http_conn http_conn;
typedef struct http_req http_req;

#define HTTP_REQ_MAX_HEADERS 100
#define HTTP_REQ_ID_MAX 128

struct http_req {
	http_worker *worker;
	http_conn *conn;            /* NULL once the client went away */
	http_method method;
	const char *method_str;
	const char *path;           /* raw path, without the query */
	const char *query;          /* raw query string or NULL */
	size_t nheaders;
	const char *hnames[HTTP_REQ_MAX_HEADERS];
	const char *hvalues[HTTP_REQ_MAX_HEADERS];
	struct evbuffer *body;
	bool body_too_large;        /* body exceeded max_body_bytes (discarded) */
	char request_id[HTTP_REQ_ID_MAX + 1];
	int64_t start_mono_us;
	struct evkeyvalq out_headers;
	struct evkeyvalq final_headers; /* http_req_add_final_header */
	int status;                 /* set by http_reply */
	int route_id;               /* for metrics; -1 until routed */
	bool on_metrics_listener;
	bool on_dynamodb_listener;  /* arrived on --dynamodb-listen */
	/* Owned by the layer above: freed with the request. */
	void *app;
	void (*app_free)(void *);
	char *headbuf;              /* storage behind method/path/headers */
};

typedef struct http_hooks {
	/* Called once per worker, before its thread starts, to attach the
	 * worker's own resources (database pool, caches) to its event_base. */
	bool (*worker_init)(http_worker *w, void *arg);
	void (*worker_fini)(http_worker *w, void *arg);
	/* Called for every complete request; must eventually call http_reply. */
	void (*on_request)(http_req *r, void *arg);
	/* Called after the response was queued (or dropped), for metrics. */
	void (*on_complete)(http_req *r, void *arg);
	/* Called when the server begins draining (SIGTERM), on each worker. */
	void (*on_drain)(http_worker *w, void *arg);
	void *arg;
} http_hooks;

typedef struct http_limits {
	size_t max_body_bytes;
	size_t max_dynamodb_body_bytes; /* on the DynamoDB listener */
	size_t max_header_bytes;
	long max_connections;       /* across all workers */
	int read_timeout_ms;
	int idle_timeout_ms;
	int write_timeout_ms;
	int shutdown_timeout_ms;
} http_limits;

/* Binds the listeners; returns NULL with *err set on failure. */
http_server *http_server_new(const char *listen, const char *metrics_listen, const char *dynamodb_listen, int nthreads,
			     const http_limits *limits, const http_hooks *hooks, char **err);
/* Initialises the workers (hooks.worker_init) and starts their threads.
 * On failure (*err set) nothing runs and every worker initialised was
 * finalized again (hooks.worker_fini): http_server_free is all that is left. */
bool http_server_start(http_server *s, char **err) OL_WARN_UNUSED;
/* Stops accepting, lets in-flight requests finish, then stops the workers.
 * Safe to call from any thread; returns immediately. */
void http_server_drain(http_server *s);
/* Waits for every worker thread to exit (none when the start failed). */
void http_server_join(http_server *s);
void http_server_free(http_server *s);
int http_server_nworkers(const http_server *s);
http_worker *http_server_worker(http_server *s, int i);
/* Port actually bound (useful with port 0). */
int http_server_port(const http_server *s);
int http_server_dynamodb_port(const http_server *s);

struct event_base *http_worker_base(http_worker *w);
int http_worker_index(const http_worker *w);
void *http_worker_app(http_worker *w);
void http_worker_set_app(http_worker *w, void *app);
bool http_worker_draining(const http_worker *w);
/* Open connections and requests in flight on this worker. */
long http_worker_conns(const http_worker *w);
long http_worker_inflight(const http_worker *w);

/* Request helpers. */
const char *http_req_header(const http_req *r, const char *name);
size_t http_req_header_count(const http_req *r, const char *name);
void http_req_add_header(http_req *r, const char *name, const char *value);
/* Forgets the response headers added so far. */
void http_req_clear_headers(http_req *r);
/* A header about this exchange rather than about the response's content
 * (e.g. the RateLimit fields): sent after the others with whatever response
 * goes out; not listed by http_req_foreach_header (an upper layer that keeps
 * a response to send again does not keep it) and not removed by
 * http_req_clear_headers. */
void http_req_add_final_header(http_req *r, const char *name, const char *value);
/* Calls fn for each response header added so far. */
void http_req_foreach_header(http_req *r, void (*fn)(const char *name, const char *value, void *arg), void *arg);
/* The request id (the client's X-Request-Id, or one generated now). */
const char *http_req_id(http_req *r);
/* Queues the response. Takes no ownership of body. Call exactly once. */
void http_reply(http_req *r, int status, const char *content_type, const char *body, size_t len);
const char *http_status_text(int status);
const char *http_method_name(http_method m);

#endif
