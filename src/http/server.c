/* server.c — HTTP/1.1 connections on bufferevents: the listeners (one table,
 * one accept path, one back-off when accept fails), accept with a per-worker
 * connection cap, read a head and body under size limits and a deadline that
 * starts at the request's first byte (slowloris defence), dispatch, write the
 * response, keep-alive and pipelining, and the two-stage drain on SIGTERM. */
#include "http/http.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#include "fault.h"
#include "http/parse.h"
#include "http/problem.h"
#include "log.h"

/* Pending connections the kernel queues per listening socket (capped by
 * net.core.somaxconn).  A burst of thousands of connects must not overflow
 * it: an overflowing queue drops SYNs and the client waits out a 1 s
 * retransmission. */
#define HTTP_LISTEN_BACKLOG 4096
/* evconnlistener_new's backlog argument: 0 means "already listening".  Its
 * -1 ("a reasonable default") calls listen(fd, 128) again and silently
 * shrinks the queue set above. */
#define HTTP_ALREADY_LISTENING 0
/* How long a listener rests after accept(2) failed for a reason other than
 * a vanished client (EMFILE, ENFILE, ENOBUFS, ENOMEM): the pending
 * connection keeps the socket readable, so retrying at once would spin.
 * A connection closing on the worker ends the rest early. */
#define HTTP_ACCEPT_RETRY_MS 100
/* At most one accept_paused line per listener and worker in this interval,
 * so a daemon hovering at its descriptor limit does not flood the log. */
#define HTTP_ACCEPT_LOG_INTERVAL_US (10 * 1000000LL)

/* The listeners, one row each: every row gets the same socket setup, the
 * same accept path and the same error handling; the flags say what differs.
 * The address comes from the settings (http_server_new); a row without one
 * is not opened. */
enum {
	LF_CAPPED = 1 << 0,   /* stops accepting while the worker is at its connection share */
	LF_OPS_ONLY = 1 << 1, /* requests are marked on_metrics_listener */
	LF_DYNAMODB = 1 << 2, /* requests are marked on_dynamodb_listener; its own body limit */
};

typedef enum { L_API, L_DYNAMODB, L_METRICS, L_COUNT } listener_kind;

static const struct listener_def {
	const char *name; /* in logs */
	unsigned flags;
} listener_defs[L_COUNT] = {
	[L_API] = {"api", LF_CAPPED},
	[L_DYNAMODB] = {"dynamodb", LF_CAPPED | LF_DYNAMODB},
	/* Not capped: a worker at its share can still be scraped and probed. */
	[L_METRICS] = {"metrics", LF_OPS_ONLY},
};

enum conn_state { C_IDLE, C_HEAD, C_BODY, C_HANDLING, C_CLOSING };

struct http_conn {
	http_worker *w;
	struct bufferevent *bev;
	struct event *timer;
	enum conn_state state;
	http_req *req;
	uint64_t body_need;
	bool chunked;
	http_chunked ck;
	bool keep_alive;
	bool in_process;     /* process_input is on the stack */
	unsigned lflags;     /* LF_* of the listener it arrived on */
	size_t max_body;     /* this listener's body limit */
	TAILQ_ENTRY(http_conn) link;
};
TAILQ_HEAD(conn_list, http_conn);

/* One listener of one worker: its accept events on a dup() of the row's
 * socket, and the timer that ends a rest after accept failed. */
typedef struct http_listener {
	http_worker *w;
	const struct listener_def *def;
	struct evconnlistener *evl;
	struct event *retry_ev;
	bool resting;        /* accept failed; retry_ev (or a closing connection) ends it */
	bool failing;        /* the last accept failed */
	bool logged;         /* accept_paused was logged for this episode */
	long failures;       /* failed accepts not yet reported by accept_resumed */
	int64_t logged_us;   /* when accept_paused was last logged */
} http_listener;

struct http_worker {
	http_server *srv;
	int index;
	pthread_t thread;
	struct event_base *base;
	http_listener ls[L_COUNT];
	struct event *stop_ev;
	struct event *deadline_ev;
	struct conn_list conns;
	long nconns;
	long cap;
	long inflight;
	bool paused;
	bool draining;
	bool init_ok;        /* worker_init succeeded */
	bool started;        /* its thread runs (until http_server_join) */
	void *app;
};

struct http_server {
	struct {
		int fd;      /* the bound socket the workers dup(); -1 when not configured */
		int port;    /* as bound (useful with port 0) */
	} listen[L_COUNT];
	int nworkers;
	http_worker *workers;
	http_limits lim;
	http_hooks hooks;
};

static void conn_free(http_conn *c);
static void process_input(http_conn *c);
static void req_finish(http_req *r);

/* ---- requests ---------------------------------------------------------- */

static http_req *req_new(http_worker *w, http_conn *c)
{
	http_req *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->worker = w;
	r->conn = c;
	r->body = evbuffer_new();
	r->route_id = -1;
	r->start_mono_us = util_mono_us();
	TAILQ_INIT(&r->out_headers);
	TAILQ_INIT(&r->final_headers);
	r->on_metrics_listener = c != NULL && (c->lflags & LF_OPS_ONLY);
	r->on_dynamodb_listener = c != NULL && (c->lflags & LF_DYNAMODB);
	w->inflight++;
	return r;
}

static void req_free(http_req *r)
{
	if (r->app_free != NULL)
		r->app_free(r->app);
	evhttp_clear_headers(&r->out_headers);
	evhttp_clear_headers(&r->final_headers);
	if (r->body != NULL)
		evbuffer_free(r->body);
	free(r->headbuf);
	r->worker->inflight--;
	free(r);
}

const char *http_req_header(const http_req *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->hnames[i], name) == 0)
			return r->hvalues[i];
	return NULL;
}

size_t http_req_header_count(const http_req *r, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->hnames[i], name) == 0)
			n++;
	return n;
}

void http_req_add_header(http_req *r, const char *name, const char *value)
{
	evhttp_add_header(&r->out_headers, name, value);
}

void http_req_add_final_header(http_req *r, const char *name, const char *value)
{
	evhttp_add_header(&r->final_headers, name, value);
}

static http_method method_of(const char *m)
{
	static const struct {
		const char *name;
		http_method m;
	} tab[] = {{"GET", HTTP_M_GET},	      {"POST", HTTP_M_POST}, {"PUT", HTTP_M_PUT},
		   {"DELETE", HTTP_M_DELETE}, {"PATCH", HTTP_M_PATCH}, {"HEAD", HTTP_M_HEAD},
		   {"OPTIONS", HTTP_M_OPTIONS}};
	for (size_t i = 0; i < OL_ARRAY_LEN(tab); i++)
		if (strcmp(m, tab[i].name) == 0)
			return tab[i].m;
	return HTTP_M_OTHER;
}

const char *http_method_name(http_method m)
{
	switch (m) {
	case HTTP_M_GET: return "GET";
	case HTTP_M_POST: return "POST";
	case HTTP_M_PUT: return "PUT";
	case HTTP_M_DELETE: return "DELETE";
	case HTTP_M_PATCH: return "PATCH";
	case HTTP_M_HEAD: return "HEAD";
	case HTTP_M_OPTIONS: return "OPTIONS";
	default: return "OTHER";
	}
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* Copies the parsed head into one allocation owned by the request and
 * NUL-terminates every piece in place. */
static bool req_take_head(http_req *r, const char *buf, const http_head *h, size_t max_body)
{
	r->headbuf = malloc(h->head_len + 1);
	if (r->headbuf == NULL)
		return false;
	memcpy(r->headbuf, buf, h->head_len);
	r->headbuf[h->head_len] = '\0';
#define AT(span) (r->headbuf + ((span).p - buf))
	char *m = AT(h->method);
	m[h->method.len] = '\0';
	r->method_str = m;
	r->method = method_of(m);
	char *t = AT(h->target);
	t[h->target.len] = '\0';
	char *q = strchr(t, '?');
	if (q != NULL) {
		*q = '\0';
		r->query = q + 1;
	}
	char *hash = strchr(t, '#');
	if (hash != NULL)
		*hash = '\0';
	r->path = t;
	for (size_t i = 0; i < h->nheaders && i < HTTP_REQ_MAX_HEADERS; i++) {
		char *n = AT(h->names[i]);
		n[h->names[i].len] = '\0';
		char *v = AT(h->values[i]);
		v[h->values[i].len] = '\0';
		r->hnames[i] = n;
		r->hvalues[i] = v;
		r->nheaders++;
	}
#undef AT
	const char *rid = http_req_header(r, "X-Request-Id");
	if (rid != NULL && rid[0] != '\0' && strlen(rid) <= HTTP_REQ_ID_MAX && util_visible_ascii(rid, strlen(rid)))
		util_strlcpy(r->request_id, rid, sizeof(r->request_id));
	(void)max_body;
	return true;
}

/* ---- responses --------------------------------------------------------- */

/* Request ids: a random per-process prefix and a per-thread counter, so a
 * request costs no getrandom(2) call (libsodium's default RNG is a syscall). */
static char rid_prefix[17];
static pthread_once_t rid_once = PTHREAD_ONCE_INIT;
static __thread uint64_t rid_counter;

static void rid_init(void)
{
	util_random_hex(rid_prefix, 8);
}

static void make_request_id(http_req *r)
{
	pthread_once(&rid_once, rid_init);
	snprintf(r->request_id, sizeof(r->request_id), "%s%02x%012llx", rid_prefix, r->worker->index & 0xff,
		 (unsigned long long)++rid_counter);
}

const char *http_req_id(http_req *r)
{
	if (r->request_id[0] == '\0')
		make_request_id(r);
	return r->request_id;
}

void http_req_clear_headers(http_req *r)
{
	evhttp_clear_headers(&r->out_headers);
}

void http_req_foreach_header(http_req *r, void (*fn)(const char *name, const char *value, void *arg), void *arg)
{
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, &r->out_headers, next)
		fn(kv->key, kv->value, arg);
}

void http_reply(http_req *r, int status, const char *content_type, const char *body, size_t len)
{
	http_conn *c = r->conn;
	r->status = status;
	if (r->request_id[0] == '\0')
		make_request_id(r);
	if (c == NULL) {
		/* The client went away while we worked: nothing to send. */
		req_finish(r);
		return;
	}
	http_worker *w = c->w;
	bool close_after = !c->keep_alive || w->draining;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
	if (content_type != NULL)
		evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
	evbuffer_add_printf(out, "Content-Length: %zu\r\nX-Request-Id: %s\r\n", len, r->request_id);
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, &r->out_headers, next)
		evbuffer_add_printf(out, "%s: %s\r\n", kv->key, kv->value);
	TAILQ_FOREACH(kv, &r->final_headers, next)
		evbuffer_add_printf(out, "%s: %s\r\n", kv->key, kv->value);
	if (close_after)
		evbuffer_add(out, "Connection: close\r\n", 19);
	evbuffer_add(out, "\r\n", 2);
	if (len > 0 && r->method != HTTP_M_HEAD)
		evbuffer_add(out, body, len);

	c->req = NULL;
	r->conn = NULL;
	req_finish(r);
	if (close_after) {
		c->state = C_CLOSING;
		bufferevent_disable(c->bev, EV_READ);
		evtimer_del(c->timer);
		/* conn_write_cb frees the connection once the output drained. */
		return;
	}
	c->state = C_IDLE;
	struct timeval tv = {w->srv->lim.idle_timeout_ms / 1000, (w->srv->lim.idle_timeout_ms % 1000) * 1000};
	evtimer_add(c->timer, &tv);
	if (!c->in_process && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		process_input(c); /* a pipelined request is already waiting */
}

static void req_finish(http_req *r)
{
	http_worker *w = r->worker;
	if (w->srv->hooks.on_complete != NULL)
		w->srv->hooks.on_complete(r, w->srv->hooks.arg);
	req_free(r);
	if (w->draining && w->nconns == 0 && w->inflight == 0)
		event_base_loopexit(w->base, NULL);
}

/* Replies to a request that never reached the router (framing errors,
 * timeouts, oversized heads) and closes the connection afterwards. */
static void reply_early(http_conn *c, int status, const char *code, const char *detail)
{
	http_req *r = c->req;
	if (r == NULL) {
		r = req_new(c->w, c);
		if (r == NULL) {
			conn_free(c);
			return;
		}
		r->method = HTTP_M_OTHER;
		r->method_str = "-";
		r->path = "-";
		c->req = r;
	}
	c->keep_alive = false;
	http_problem(r, status, code, detail);
}

/* ---- connections ------------------------------------------------------- */

static void conn_arm(http_conn *c, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(c->timer, &tv);
}

/* Enables or disables a listener's accept events from the worker's state:
 * off while draining, resting after a failed accept, or (when capped) while
 * the worker is at its connection share. */
static void listener_sync(http_listener *l)
{
	if (l->evl == NULL)
		return;
	http_worker *w = l->w;
	bool on = !w->draining && !l->resting && !((l->def->flags & LF_CAPPED) && w->paused);
	if (on)
		evconnlistener_enable(l->evl);
	else
		evconnlistener_disable(l->evl);
}

static void listener_rest_end(http_listener *l)
{
	if (!l->resting)
		return;
	l->resting = false;
	listener_sync(l);
}

/* A connection closed: below the cap again, and a descriptor is free. */
static void maybe_resume_accept(http_worker *w)
{
	if (w->draining)
		return;
	bool was_paused = w->paused;
	if (w->paused && w->nconns < w->cap)
		w->paused = false;
	for (int k = 0; k < L_COUNT; k++) {
		if (was_paused && !w->paused)
			listener_sync(&w->ls[k]);
		listener_rest_end(&w->ls[k]);
	}
}

static void conn_free(http_conn *c)
{
	http_worker *w = c->w;
	if (c->req != NULL) {
		if (c->state == C_HANDLING) {
			c->req->conn = NULL; /* the handler finishes; its reply is dropped */
		} else {
			c->req->conn = NULL;
			c->req->status = 0;
			req_finish(c->req);
		}
		c->req = NULL;
	}
	TAILQ_REMOVE(&w->conns, c, link);
	w->nconns--;
	event_free(c->timer);
	bufferevent_free(c->bev);
	free(c);
	maybe_resume_accept(w);
	if (w->draining && w->nconns == 0 && w->inflight == 0)
		event_base_loopexit(w->base, NULL);
}

static void body_emit(void *arg, const char *data, size_t n)
{
	http_req *r = arg;
	if (r->body_too_large)
		return;
	size_t max = r->conn != NULL ? r->conn->max_body : r->worker->srv->lim.max_body_bytes;
	if (evbuffer_get_length(r->body) + n > max) {
		r->body_too_large = true;
		evbuffer_drain(r->body, evbuffer_get_length(r->body));
		return;
	}
	evbuffer_add(r->body, data, n);
}

static void dispatch(http_conn *c)
{
	/* Reading stays enabled while the handler works: a client that hangs
	 * up is noticed at once, and pipelined bytes wait in the input buffer
	 * (bounded by the read high-watermark) without an epoll_ctl per request. */
	c->state = C_HANDLING;
	evtimer_del(c->timer);
	http_server *s = c->w->srv;
	if (c->req->body_too_large) {
		c->keep_alive = false;
		http_problem(c->req, 413, "payload_too_large", "the request body exceeds the limit");
		return;
	}
	s->hooks.on_request(c->req, s->hooks.arg);
}

/* Reads as much of the current request as has arrived; dispatches complete
 * ones. Loops so that pipelined requests answered synchronously continue. */
static void process_input(http_conn *c)
{
	http_worker *w = c->w;
	const http_limits *lim = &w->srv->lim;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	c->in_process = true;
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		if (c->state == C_IDLE) {
			if (avail == 0)
				break;
			c->state = C_HEAD;
			conn_arm(c, lim->read_timeout_ms);
		}
		if (c->state == C_HEAD) {
			size_t want = avail < lim->max_header_bytes + 8 ? avail : lim->max_header_bytes + 8;
			const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
			http_head head;
			const char *why = NULL;
			int rc = http_parse_head(buf, want, lim->max_header_bytes, &head, &why);
			if (rc == -1)
				break;
			if (rc > 0) {
				const char *code = rc == 431 ? "request_header_too_large"
						   : rc == 505 ? "http_version_not_supported"
						   : rc == 501 ? "not_implemented"
							       : "invalid_request";
				reply_early(c, rc, code, why);
				break;
			}
			http_req *r = req_new(w, c);
			if (r == NULL || !req_take_head(r, buf, &head, c->max_body)) {
				if (r != NULL)
					req_free(r);
				conn_free(c);
				return;
			}
			c->req = r;
			c->keep_alive = head.keep_alive;
			c->chunked = head.chunked;
			c->body_need = head.has_length ? head.content_length : 0;
			memset(&c->ck, 0, sizeof(c->ck));
			evbuffer_drain(in, head.head_len);
			if (head.has_length && head.content_length > c->max_body) {
				/* Refuse before reading a byte of it; the connection closes. */
				reply_early(c, 413, "payload_too_large", "the request body exceeds the limit");
				break;
			}
			c->state = C_BODY;
			const char *expect = http_req_header(r, "Expect");
			if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && (c->chunked || c->body_need > 0))
				bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
			continue;
		}
		if (c->state == C_BODY) {
			if (c->chunked) {
				bool done = false;
				size_t len = evbuffer_get_length(in);
				if (len == 0)
					break;
				const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
				size_t used = http_chunked_feed(&c->ck, buf, len, &done, body_emit, c->req);
				if (used == (size_t)-1) {
					reply_early(c, 400, "invalid_request", "malformed chunked body");
					break;
				}
				evbuffer_drain(in, used);
				if (c->req->body_too_large && !done) {
					reply_early(c, 413, "payload_too_large", "the request body exceeds the limit");
					break;
				}
				if (!done)
					break;
			} else if (c->body_need > 0) {
				size_t n = avail < c->body_need ? avail : (size_t)c->body_need;
				if (n == 0)
					break;
				evbuffer_remove_buffer(in, c->req->body, n);
				c->body_need -= n;
				if (c->body_need > 0)
					break;
			}
			dispatch(c);
			/* dispatch may have replied synchronously (state back to IDLE),
			 * closed the connection (C_CLOSING) or gone asynchronous. */
			if (c->state != C_IDLE)
				break;
			continue;
		}
		break;
	}
	c->in_process = false;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	http_conn *c = arg;
	if (c->state == C_CLOSING) {
		evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
		return;
	}
	if (c->state == C_HANDLING)
		return; /* picked up by http_reply */
	process_input(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	http_conn *c = arg;
	if (c->state == C_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		/* Half-close and give the peer a moment to read the answer before
		 * the socket goes away, so an unread request body does not turn the
		 * close into a reset that destroys our response. */
		shutdown(bufferevent_getfd(bev), SHUT_WR);
		bufferevent_enable(bev, EV_READ);
		conn_arm(c, 1000);
	}
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	http_conn *c = arg;
	/* EOF, error or write timeout: the connection is gone. */
	conn_free(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	http_conn *c = arg;
	switch (c->state) {
	case C_HEAD:
	case C_BODY:
		reply_early(c, 408, "request_timeout", "the request did not arrive in time");
		break;
	default:
		conn_free(c);
	}
}

static void accept_conn(http_listener *l, evutil_socket_t fd)
{
	http_worker *w = l->w;
	const http_limits *lim = &w->srv->lim;
	http_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->w = w;
	c->lflags = l->def->flags;
	c->max_body = (c->lflags & LF_DYNAMODB) ? lim->max_dynamodb_body_bytes : lim->max_body_bytes;
	c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(w->base, conn_timer_cb, c);
	if (c->bev == NULL || c->timer == NULL) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		else
			evutil_closesocket(fd);
		if (c->timer != NULL)
			event_free(c->timer);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	struct timeval wtv = {lim->write_timeout_ms / 1000, (lim->write_timeout_ms % 1000) * 1000};
	bufferevent_set_timeouts(c->bev, NULL, &wtv);
	/* Stop reading from the socket once a full request's worth is buffered. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, lim->max_header_bytes + c->max_body + 4096);
	bufferevent_enable(c->bev, EV_READ);
	c->state = C_IDLE;
	/* A fresh connection must start its request within the read timeout. */
	conn_arm(c, lim->read_timeout_ms);
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	w->nconns++;
	if (w->nconns >= w->cap && !w->paused) {
		w->paused = true;
		for (int k = 0; k < L_COUNT; k++)
			listener_sync(&w->ls[k]);
		log_warn("max_connections_reached", "{s:i, s:I}", "worker", w->index, "connections", (json_int_t)w->nconns);
	}
}

static void accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)evl;
	(void)sa;
	(void)salen;
	http_listener *l = arg;
	if (l->failing) {
		l->failing = false;
		if (l->logged) {
			log_info("accept_resumed", "{s:i, s:s, s:I}", "worker", l->w->index, "listener", l->def->name,
				 "failures", (json_int_t)l->failures);
			l->logged = false;
			l->failures = 0;
		}
	}
	accept_conn(l, fd);
}

/* accept(2) failed for a reason libevent does not retry by itself (EMFILE,
 * ENFILE, ENOBUFS, ENOMEM): the client waits in the backlog while this
 * listener rests, instead of the loop retrying at once. Logged once per
 * episode (and per HTTP_ACCEPT_LOG_INTERVAL_US); accept_resumed ends it. */
static void accept_error_cb(struct evconnlistener *evl, void *arg)
{
	(void)evl;
	http_listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	l->failures++;
	if (!l->failing) {
		l->failing = true;
		int64_t now = util_mono_us();
		if (l->logged_us == 0 || now - l->logged_us >= HTTP_ACCEPT_LOG_INTERVAL_US) {
			log_error("accept_paused", "{s:i, s:s, s:s, s:i}", "worker", l->w->index, "listener", l->def->name,
				  "error", evutil_socket_error_to_string(err), "retry_ms", HTTP_ACCEPT_RETRY_MS);
			l->logged = true;
			l->logged_us = now;
		}
	}
	l->resting = true;
	listener_sync(l);
	struct timeval tv = {HTTP_ACCEPT_RETRY_MS / 1000, (HTTP_ACCEPT_RETRY_MS % 1000) * 1000};
	evtimer_add(l->retry_ev, &tv);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	listener_rest_end(arg);
}

/* ---- workers ----------------------------------------------------------- */

/* Opens this worker's listener of row k on its own dup() of the bound
 * socket: the kernel spreads connections, no lock is shared. */
static bool worker_listen(http_worker *w, listener_kind k, char **err)
{
	http_listener *l = &w->ls[k];
	int fd = dup(w->srv->listen[k].fd);
	if (fd < 0)
		goto fail;
	l->evl = evconnlistener_new(w->base, accept_cb, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
				    HTTP_ALREADY_LISTENING, fd);
	if (l->evl == NULL) {
		close(fd);
		goto fail;
	}
	evconnlistener_set_error_cb(l->evl, accept_error_cb);
	return true;
fail:
	if (asprintf(err, "worker %d cannot listen (%s): %s", w->index, l->def->name, strerror(errno)) < 0)
		*err = NULL;
	return false;
}

static void worker_stop_listening(http_worker *w)
{
	for (int k = 0; k < L_COUNT; k++) {
		http_listener *l = &w->ls[k];
		if (l->evl != NULL) {
			evconnlistener_free(l->evl);
			l->evl = NULL;
		}
		if (l->retry_ev != NULL)
			evtimer_del(l->retry_ev);
		l->resting = false;
	}
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	http_worker *w = arg;
	log_warn("shutdown_deadline", "{s:i, s:I, s:I}", "worker", w->index, "connections", (json_int_t)w->nconns,
		 "inflight", (json_int_t)w->inflight);
	event_base_loopbreak(w->base);
}

/* Stage one of shutdown: stop accepting, close idle keep-alive connections;
 * busy ones close after their response. */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	http_worker *w = arg;
	if (w->draining)
		return;
	w->draining = true;
	worker_stop_listening(w);
	if (w->srv->hooks.on_drain != NULL)
		w->srv->hooks.on_drain(w, w->srv->hooks.arg);
	http_conn *c, *next;
	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == C_IDLE)
			conn_free(c);
	}
	struct timeval tv = {w->srv->lim.shutdown_timeout_ms / 1000, (w->srv->lim.shutdown_timeout_ms % 1000) * 1000};
	evtimer_add(w->deadline_ev, &tv);
	if (w->nconns == 0 && w->inflight == 0)
		event_base_loopexit(w->base, NULL);
}

static void *worker_main(void *arg)
{
	http_worker *w = arg;
	http_server *s = w->srv;
	event_base_dispatch(w->base);
	/* Whatever is left after the deadline is closed without an answer. */
	while (!TAILQ_EMPTY(&w->conns))
		conn_free(TAILQ_FIRST(&w->conns));
	if (s->hooks.worker_fini != NULL)
		s->hooks.worker_fini(w, s->hooks.arg);
	return NULL;
}

static int bind_listener(const char *spec, int *port_out, char **err)
{
	char host[256];
	int port;
	if (!util_split_hostport(spec, host, sizeof(host), &port)) {
		if (asprintf(err, "invalid listen address '%s' (expected HOST:PORT)", spec) < 0)
			*err = NULL;
		return -1;
	}
	struct evutil_addrinfo hints = {0}, *res = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICSERV;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	int gai = evutil_getaddrinfo(host, portstr, &hints, &res);
	if (gai != 0) {
		if (asprintf(err, "cannot resolve %s: %s", host, evutil_gai_strerror(gai)) < 0)
			*err = NULL;
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, HTTP_LISTEN_BACKLOG) < 0 ||
	    evutil_make_socket_nonblocking(fd) < 0) {
		if (asprintf(err, "cannot listen on %s: %s", spec, strerror(errno)) < 0)
			*err = NULL;
		if (fd >= 0)
			close(fd);
		evutil_freeaddrinfo(res);
		return -1;
	}
	evutil_freeaddrinfo(res);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (port_out != NULL && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* One worker's event base, control events and listeners. */
static bool worker_setup(http_server *s, http_worker *w, int index, long cap, char **err)
{
	w->srv = s;
	w->index = index;
	w->cap = cap < 1 ? 1 : cap;
	TAILQ_INIT(&w->conns);
	w->base = fault_inject("http_worker") ? NULL : event_base_new();
	if (w->base == NULL)
		goto fail;
	w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
	w->deadline_ev = evtimer_new(w->base, deadline_cb, w);
	if (w->stop_ev == NULL || w->deadline_ev == NULL)
		goto fail;
	for (int k = 0; k < L_COUNT; k++) {
		http_listener *l = &w->ls[k];
		l->w = w;
		l->def = &listener_defs[k];
		if (s->listen[k].fd < 0)
			continue;
		l->retry_ev = evtimer_new(w->base, accept_retry_cb, l);
		if (l->retry_ev == NULL)
			goto fail;
		if (!worker_listen(w, (listener_kind)k, err))
			return false;
	}
	return true;
fail:
	if (asprintf(err, "worker %d: out of memory", index) < 0)
		*err = NULL;
	return false;
}

http_server *http_server_new(const char *listen, const char *metrics_listen, const char *dynamodb_listen, int nthreads,
			     const http_limits *limits, const http_hooks *hooks, char **err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, (void (*)(void))evthread_use_pthreads);
	const char *addr[L_COUNT] = {[L_API] = listen, [L_DYNAMODB] = dynamodb_listen, [L_METRICS] = metrics_listen};
	http_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->lim = *limits;
	s->hooks = *hooks;
	s->nworkers = nthreads;
	for (int k = 0; k < L_COUNT; k++)
		s->listen[k].fd = -1;
	for (int k = 0; k < L_COUNT; k++) {
		/* The API listener is always opened; the others when configured. */
		if (k != L_API && (addr[k] == NULL || addr[k][0] == '\0'))
			continue;
		s->listen[k].fd = bind_listener(addr[k], &s->listen[k].port, err);
		if (s->listen[k].fd < 0)
			goto fail;
	}
	s->workers = calloc((size_t)nthreads, sizeof(http_worker));
	if (s->workers == NULL)
		goto fail;
	long cap = limits->max_connections / nthreads;
	for (int i = 0; i < nthreads; i++)
		if (!worker_setup(s, &s->workers[i], i, cap, err))
			goto fail;
	return s;
fail:
	http_server_free(s);
	return NULL;
}

/* Initialises the workers (worker_init, on this thread), then starts their
 * threads. On a failure, undoes what was done: the threads already running
 * are stopped and joined (each finalizes its worker as it ends), the
 * workers initialised but not started are finalized here. */
bool http_server_start(http_server *s, char **err)
{
	for (int i = 0; i < s->nworkers; i++) {
		http_worker *w = &s->workers[i];
		if (s->hooks.worker_init != NULL && !s->hooks.worker_init(w, s->hooks.arg)) {
			if (asprintf(err, "worker %d failed to initialise", i) < 0)
				*err = NULL;
			goto fail;
		}
		w->init_ok = true;
	}
	for (int i = 0; i < s->nworkers; i++) {
		http_worker *w = &s->workers[i];
		int rc = fault_inject("worker_thread") ? EAGAIN : pthread_create(&w->thread, NULL, worker_main, w);
		if (rc != 0) {
			if (asprintf(err, "cannot start worker thread %d: %s", i, strerror(rc)) < 0)
				*err = NULL;
			goto fail;
		}
		w->started = true;
	}
	return true;
fail:
	for (int i = 0; i < s->nworkers; i++)
		if (s->workers[i].started)
			event_active(s->workers[i].stop_ev, 0, 0);
	http_server_join(s);
	for (int i = 0; i < s->nworkers; i++) {
		http_worker *w = &s->workers[i];
		if (w->init_ok && !w->started && s->hooks.worker_fini != NULL)
			s->hooks.worker_fini(w, s->hooks.arg);
		w->init_ok = false;
	}
	return false;
}

void http_server_drain(http_server *s)
{
	for (int i = 0; i < s->nworkers; i++)
		event_active(s->workers[i].stop_ev, 0, 0);
	/* The workers close their dup()s; closing the original too closes the
	 * socket, so new clients are refused at once instead of waiting in a
	 * backlog nobody accepts from. */
	for (int k = 0; k < L_COUNT; k++) {
		if (s->listen[k].fd >= 0) {
			close(s->listen[k].fd);
			s->listen[k].fd = -1;
		}
	}
}

void http_server_join(http_server *s)
{
	for (int i = 0; i < s->nworkers; i++) {
		if (s->workers[i].started) {
			pthread_join(s->workers[i].thread, NULL);
			s->workers[i].started = false;
		}
	}
}

void http_server_free(http_server *s)
{
	if (s == NULL)
		return;
	if (s->workers != NULL) {
		for (int i = 0; i < s->nworkers; i++) {
			http_worker *w = &s->workers[i];
			worker_stop_listening(w);
			for (int k = 0; k < L_COUNT; k++)
				if (w->ls[k].retry_ev != NULL)
					event_free(w->ls[k].retry_ev);
			if (w->stop_ev != NULL)
				event_free(w->stop_ev);
			if (w->deadline_ev != NULL)
				event_free(w->deadline_ev);
			if (w->base != NULL)
				event_base_free(w->base);
		}
		free(s->workers);
	}
	for (int k = 0; k < L_COUNT; k++)
		if (s->listen[k].fd >= 0)
			close(s->listen[k].fd);
	free(s);
}

int http_server_nworkers(const http_server *s) { return s->nworkers; }
http_worker *http_server_worker(http_server *s, int i) { return &s->workers[i]; }
int http_server_port(const http_server *s) { return s->listen[L_API].port; }
int http_server_dynamodb_port(const http_server *s) { return s->listen[L_DYNAMODB].port; }
struct event_base *http_worker_base(http_worker *w) { return w->base; }
int http_worker_index(const http_worker *w) { return w->index; }
void *http_worker_app(http_worker *w) { return w->app; }
void http_worker_set_app(http_worker *w, void *app) { w->app = app; }
bool http_worker_draining(const http_worker *w) { return w->draining; }
long http_worker_conns(const http_worker *w) { return w->nconns; }
long http_worker_inflight(const http_worker *w) { return w->inflight; }
