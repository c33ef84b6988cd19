/* redis_probe.c — a blocking PING with a 200 ms budget, run from the main
 * thread's timer, never from a worker. */
#include "redis_probe.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "util/util.h"

bool redis_url_parse(const char *url, char *host, int *port, bool *is_unix)
{
	*port = 6379;
	*is_unix = false;
	if (strncmp(url, "unix://", 7) == 0) {
		*is_unix = true;
		return util_strlcpy(host, url + 7, 256) && host[0] != '\0';
	}
	if (strncmp(url, "redis://", 8) != 0)
		return false;
	const char *h = url + 8;
	const char *at = strchr(h, '@');
	if (at != NULL)
		h = at + 1;
	char buf[256];
	if (!util_strlcpy(buf, h, sizeof(buf)))
		return false;
	char *slash = strchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	char *colon = strrchr(buf, ':');
	if (colon != NULL) {
		long long p;
		if (!util_parse_ll(colon + 1, 1, 65535, &p))
			return false;
		*port = (int)p;
		*colon = '\0';
	}
	if (buf[0] == '\0')
		util_strlcpy(buf, "127.0.0.1", sizeof(buf));
	return util_strlcpy(host, buf, 256);
}

bool redis_probe_once(const char *url, int timeout_ms)
{
	char host[256];
	int port;
	bool is_unix;
	if (!redis_url_parse(url, host, &port, &is_unix))
		return false;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c = is_unix ? redisConnectUnixWithTimeout(host, tv) : redisConnectWithTimeout(host, port, tv);
	if (c == NULL)
		return false;
	bool ok = false;
	if (!c->err && redisSetTimeout(c, tv) == REDIS_OK) {
		redisReply *reply = redisCommand(c, "PING");
		ok = reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
		if (reply != NULL)
			freeReplyObject(reply);
	}
	redisFree(c);
	return ok;
}
