/* cons_redis.c — the consumer's blocking Redis connection.  hiredis' sync
 * API is enough for a consumer: one command (or one pipeline) at a time,
 * SO_RCVTIMEO via redisSetTimeout so that a Redis that hangs is noticed. */
#include "cons_redis.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONS_CONNECT_TIMEOUT_MS 2000
#define CONS_BACKOFF_FIRST_MS 100
#define CONS_BACKOFF_MAX_MS 2000

void cons_cmd_init(struct cons_cmd *c)
{
	memset(c, 0, sizeof(*c));
}

void cons_cmd_arg(struct cons_cmd *c, const char *p, size_t n)
{
	if (c->argc == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->argv = cons_xrealloc(c->argv, (size_t)c->cap * sizeof(*c->argv));
		c->len = cons_xrealloc(c->len, (size_t)c->cap * sizeof(*c->len));
		c->owned = cons_xrealloc(c->owned, (size_t)c->cap * sizeof(*c->owned));
	}
	c->argv[c->argc] = p;
	c->len[c->argc] = n;
	c->argc++;
}

void cons_cmd_str(struct cons_cmd *c, const char *s)
{
	cons_cmd_arg(c, s, strlen(s));
}

void cons_cmd_fmt(struct cons_cmd *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	cons_cmd_arg(c, s, (size_t)n);
	c->owned[c->nowned++] = s; /* nowned <= argc <= cap */
}

void cons_cmd_free(struct cons_cmd *c)
{
	for (int i = 0; i < c->nowned; i++)
		free(c->owned[i]);
	free(c->argv);
	free(c->len);
	free(c->owned);
	memset(c, 0, sizeof(*c));
}

bool cons_reply_is_error(const redisReply *reply, const char *code)
{
	if (reply == NULL || reply->type != REDIS_REPLY_ERROR)
		return false;
	size_t n = strlen(code);
	return (size_t)reply->len >= n && memcmp(reply->str, code, n) == 0 &&
	       ((size_t)reply->len == n || reply->str[n] == ' ');
}

static bool cons_parse_num(const char *s, long long min, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool cons_redis_init(struct cons_redis *r, const char *url, long long retries, int command_timeout_ms,
		     char **cause)
{
	memset(r, 0, sizeof(*r));
	r->port = 6379;
	r->retries = retries;
	r->command_timeout_ms = command_timeout_ms;
	if (strncmp(url, "unix://", 7) == 0) {
		size_t n = strlen(url + 7);
		if (n == 0 || n >= sizeof(r->host))
			goto bad;
		memcpy(r->host, url + 7, n + 1);
		r->is_unix = true;
		return true;
	}
	if (strncmp(url, "redis://", 8) != 0)
		goto bad;
	char *rest = strdup(url + 8);
	if (rest == NULL)
		abort();
	char *hostport = rest;
	/* The password may contain '@' or ':'; the host part may not. */
	char *at = strrchr(rest, '@');
	if (at != NULL) {
		*at = '\0';
		hostport = at + 1;
		char *colon = strchr(rest, ':');
		if (colon == NULL) {
			r->password = strdup(rest); /* redis://password@host */
		} else {
			*colon = '\0';
			if (rest[0] != '\0')
				r->user = strdup(rest);
			r->password = strdup(colon + 1);
		}
	}
	char *slash = strchr(hostport, '/');
	if (slash != NULL) {
		*slash = '\0';
		if (slash[1] != '\0' && !cons_parse_num(slash + 1, 0, INT_MAX, &r->db))
			goto bad_free;
	}
	char *host = hostport;
	char *port = NULL;
	if (host[0] == '[') { /* [::1]:6379 */
		char *close = strchr(host, ']');
		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
			goto bad_free;
		*close = '\0';
		host++;
		if (close[1] == ':')
			port = close + 2;
	} else {
		char *colon = strrchr(host, ':');
		if (colon != NULL) {
			*colon = '\0';
			port = colon + 1;
		}
	}
	long long p = r->port;
	if (port != NULL && !cons_parse_num(port, 1, 65535, &p))
		goto bad_free;
	r->port = (int)p;
	if (host[0] == '\0')
		host = "127.0.0.1";
	if (strlen(host) >= sizeof(r->host))
		goto bad_free;
	strcpy(r->host, host);
	free(rest);
	return true;
bad_free:
	free(rest);
	free(r->user);
	free(r->password);
	r->user = r->password = NULL;
bad:
	*cause = cons_xasprintf("bad Redis URL (expected redis://[[user]:password@]host[:port][/db] or unix:///path)");
	return false;
}

void cons_redis_close(struct cons_redis *r)
{
	if (r->ctx != NULL)
		redisFree(r->ctx);
	r->ctx = NULL;
	free(r->user);
	free(r->password);
	r->user = r->password = NULL;
}

static struct timeval cons_tv(int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	return tv;
}

/* One connection attempt, AUTH and SELECT included.  1: connected, 0: try
 * again later, -1: retrying cannot help (refused credentials, bad db). */
static int cons_redis_connect_once(struct cons_redis *r)
{
	struct timeval ctv = cons_tv(CONS_CONNECT_TIMEOUT_MS);
	redisContext *c = r->is_unix ? redisConnectUnixWithTimeout(r->host, ctv)
				     : redisConnectWithTimeout(r->host, r->port, ctv);
	if (c == NULL) {
		cons_log(CONS_WARN, "redis: cannot allocate a connection");
		return 0;
	}
	if (c->err) {
		if (r->is_unix)
			cons_log(CONS_WARN, "redis: connect to %s: %s", r->host, c->errstr);
		else
			cons_log(CONS_WARN, "redis: connect to %s:%d: %s", r->host, r->port, c->errstr);
		redisFree(c);
		return 0;
	}
	if (redisSetTimeout(c, cons_tv(r->command_timeout_ms)) != REDIS_OK) {
		cons_log(CONS_WARN, "redis: cannot set the socket timeout: %s", c->errstr);
		redisFree(c);
		return 0;
	}
	struct cons_cmd cmds[2];
	int ncmds = 0;
	if (r->password != NULL) {
		cons_cmd_init(&cmds[ncmds]);
		cons_cmd_str(&cmds[ncmds], "AUTH");
		if (r->user != NULL)
			cons_cmd_str(&cmds[ncmds], r->user);
		cons_cmd_str(&cmds[ncmds], r->password);
		ncmds++;
	}
	if (r->db > 0) {
		cons_cmd_init(&cmds[ncmds]);
		cons_cmd_str(&cmds[ncmds], "SELECT");
		cons_cmd_fmt(&cmds[ncmds], "%lld", r->db);
		ncmds++;
	}
	int result = 1;
	for (int i = 0; i < ncmds && result == 1; i++) {
		redisReply *reply = redisCommandArgv(c, cmds[i].argc, cmds[i].argv, cmds[i].len);
		if (reply == NULL) {
			cons_log(CONS_WARN, "redis: %s: %s", cmds[i].argv[0], c->errstr);
			result = 0;
		} else if (reply->type == REDIS_REPLY_ERROR) {
			/* Never log the AUTH arguments, only Redis' answer. */
			cons_log(CONS_ERROR, "redis: %s refused: %s", cmds[i].argv[0], reply->str);
			result = -1;
		}
		if (reply != NULL)
			freeReplyObject(reply);
	}
	for (int i = 0; i < ncmds; i++)
		cons_cmd_free(&cmds[i]);
	if (result == 1)
		r->ctx = c;
	else
		redisFree(c);
	return result;
}

static void cons_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL); /* a signal cuts it short: the caller checks cons_stopping */
}

bool cons_redis_pipeline(struct cons_redis *r, struct cons_cmd *const *cmds, size_t n, redisReply **out)
{
	int backoff = CONS_BACKOFF_FIRST_MS;
	for (long long attempt = 0;; attempt++) {
		if (r->ctx == NULL) {
			int c = cons_redis_connect_once(r);
			if (c < 0)
				return false;
			if (c == 0)
				goto retry;
			if (attempt > 0)
				cons_log(CONS_INFO, "redis: reconnected");
		}
		for (size_t i = 0; i < n; i++)
			if (redisAppendCommandArgv(r->ctx, cmds[i]->argc, cmds[i]->argv, cmds[i]->len) != REDIS_OK)
				goto drop;
		for (size_t i = 0; i < n; i++) {
			void *reply = NULL;
			if (redisGetReply(r->ctx, &reply) != REDIS_OK || reply == NULL) {
				for (size_t j = 0; j < i; j++)
					freeReplyObject(out[j]);
				goto drop;
			}
			out[i] = reply;
		}
		return true;
	drop:
		/* The commands may or may not have run: the pipeline is sent again
		 * on a fresh connection (callers only pipeline repeatable commands). */
		cons_log(CONS_WARN, "redis: %s (%.*s)", r->ctx->errstr, (int)cmds[0]->len[0], cmds[0]->argv[0]);
		redisFree(r->ctx);
		r->ctx = NULL;
	retry:
		if (cons_stopping) {
			cons_log(CONS_WARN, "redis: stopping (signal) while disconnected");
			return false;
		}
		if (attempt >= r->retries) {
			cons_log(CONS_ERROR, "redis: giving up after %lld retries", r->retries);
			return false;
		}
		cons_sleep_ms(backoff);
		backoff = backoff * 2 > CONS_BACKOFF_MAX_MS ? CONS_BACKOFF_MAX_MS : backoff * 2;
	}
}

redisReply *cons_redis_cmd(struct cons_redis *r, struct cons_cmd *cmd)
{
	redisReply *reply = NULL;
	struct cons_cmd *cmds[1] = {cmd};
	if (!cons_redis_pipeline(r, cmds, 1, &reply))
		return NULL;
	return reply;
}
