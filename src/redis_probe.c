/* redis_probe.c — a blocking PING with a short budget, run from the main
 * thread's timer, never from a worker. */
#include "redis_probe.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* One command; true when the reply is the status `want`. */
static bool status_is(redisContext *c, int argc, const char **argv, const char *want)
{
	redisReply *reply = redisCommandArgv(c, argc, argv, NULL);
	bool ok = reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, want) == 0;
	if (reply != NULL)
		freeReplyObject(reply);
	return ok;
}

bool redis_probe_once(const redis_url *u, int timeout_ms)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c = u->is_unix ? redisConnectUnixWithTimeout(u->host, tv) : redisConnectWithTimeout(u->host, u->port, tv);
	if (c == NULL)
		return false;
	bool ok = !c->err && redisSetTimeout(c, tv) == REDIS_OK;
	const char *auth[3], *select[2];
	char db[24];
	int nauth = redis_url_auth_argv(u, auth), nselect = redis_url_select_argv(u, select, db);
	if (ok && nauth > 0)
		ok = status_is(c, nauth, auth, "OK");
	if (ok && nselect > 0)
		ok = status_is(c, nselect, select, "OK");
	if (ok)
		ok = status_is(c, 1, (const char *[]){"PING"}, "PONG");
	redisFree(c);
	return ok;
}
