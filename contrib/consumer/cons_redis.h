/* cons_redis.h — the consumer's one blocking Redis connection: URL parsing,
 * binary-safe commands built as argv, pipelines, and reconnection with
 * bounded retries (the caller exits 1 when they run out). */
#ifndef CONS_REDIS_H
#define CONS_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "cons.h"

/* A command under construction.  Arguments are borrowed, except those added
 * with cons_cmd_fmt, which the command owns. */
struct cons_cmd {
	int argc;
	int cap;
	const char **argv;
	size_t *len;
	char **owned;
	int nowned;
};

void cons_cmd_init(struct cons_cmd *c);
void cons_cmd_arg(struct cons_cmd *c, const char *p, size_t n);
void cons_cmd_str(struct cons_cmd *c, const char *s);
void cons_cmd_fmt(struct cons_cmd *c, const char *fmt, ...) CONS_PRINTF(2, 3);
void cons_cmd_free(struct cons_cmd *c);

struct cons_redis {
	redisContext *ctx; /* NULL while disconnected */
	char host[256];    /* or the socket path */
	int port;
	bool is_unix;
	char *user; /* NULL: AUTH without a user name (or no AUTH) */
	char *password;
	long long db; /* SELECT when > 0 */
	long long retries;
	int command_timeout_ms;
};

/* redis://[[user]:password@]host[:port][/db] or unix:///path. */
bool cons_redis_init(struct cons_redis *r, const char *url, long long retries, int command_timeout_ms,
		     char **cause) CONS_WARN_UNUSED;
void cons_redis_close(struct cons_redis *r);

/* Sends n commands in one pipeline and stores their n replies in out (the
 * caller frees them with freeReplyObject).  Error replies are replies; only
 * lost connections are retried: the whole pipeline is sent again after a
 * reconnection, so every command in it must be safe to repeat.  false: the
 * retries ran out (or a signal asked us to stop), already logged. */
bool cons_redis_pipeline(struct cons_redis *r, struct cons_cmd *const *cmds, size_t n,
			 redisReply **out) CONS_WARN_UNUSED;
/* One command; NULL when cons_redis_pipeline would have returned false. */
redisReply *cons_redis_cmd(struct cons_redis *r, struct cons_cmd *cmd) CONS_WARN_UNUSED;

/* True when reply is an error whose code (first word) is code. */
bool cons_reply_is_error(const redisReply *reply, const char *code);

#endif
