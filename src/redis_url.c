/* redis_url.c — see redis_url.h. */
#include "redis_url.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define REDIS_URL_FORM "redis://[[user]:password@]host[:port][/db] or unix:///path"

static bool fail(redis_url *u, char **err, const char *why)
{
	redis_url_free(u);
	if (asprintf(err, "bad redis_url: %s (expected " REDIS_URL_FORM ")", why) < 0)
		*err = NULL;
	return false;
}

/* user:password or password, before the last '@' (a password may contain
 * '@' and ':'; a host cannot). */
static bool take_userinfo(redis_url *u, const char *ui, size_t n)
{
	const char *colon = memchr(ui, ':', n);
	if (colon == NULL) {
		u->password = strndup(ui, n);
		return u->password != NULL;
	}
	if (colon > ui && (u->user = strndup(ui, (size_t)(colon - ui))) == NULL)
		return false;
	u->password = strndup(colon + 1, n - (size_t)(colon + 1 - ui));
	return u->password != NULL;
}

bool redis_url_parse(const char *url, redis_url *u, char **err)
{
	memset(u, 0, sizeof(*u));
	u->port = 6379;
	*err = NULL;
	if (strncmp(url, "unix://", 7) == 0) {
		u->is_unix = true;
		if (url[7] != '/')
			return fail(u, err, "a unix socket path must be absolute");
		if (!util_strlcpy(u->host, url + 7, sizeof(u->host)))
			return fail(u, err, "socket path too long");
		return true;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return fail(u, err, strncmp(url, "rediss://", 9) == 0 ? "TLS (rediss://) is not supported" : "unknown scheme");
	const char *rest = url + 8;
	const char *at = strrchr(rest, '@');
	if (at != NULL) {
		if (!take_userinfo(u, rest, (size_t)(at - rest)))
			return fail(u, err, "out of memory");
		rest = at + 1;
	}
	char buf[300];
	if (!util_strlcpy(buf, rest, sizeof(buf)))
		return fail(u, err, "host too long");
	char *slash = strchr(buf, '/');
	if (slash != NULL) {
		*slash = '\0';
		long long db = 0;
		if (slash[1] != '\0' && !util_parse_ll(slash + 1, 0, INT_MAX, &db))
			return fail(u, err, "the database after '/' must be a number");
		u->db = (long)db;
	}
	char *host = buf, *port = NULL;
	if (host[0] == '[') { /* [::1]:6379 */
		char *close = strchr(host, ']');
		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
			return fail(u, err, "unterminated IPv6 address");
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
	long long p = u->port;
	if (port != NULL && !util_parse_ll(port, 1, 65535, &p))
		return fail(u, err, "the port must be 1-65535");
	u->port = (int)p;
	if (!util_strlcpy(u->host, host[0] != '\0' ? host : "127.0.0.1", sizeof(u->host)))
		return fail(u, err, "host too long");
	return true;
}

void redis_url_free(redis_url *u)
{
	free(u->user);
	if (u->password != NULL)
		explicit_bzero(u->password, strlen(u->password)); /* not left in freed memory */
	free(u->password);
	u->user = u->password = NULL;
}

int redis_url_auth_argv(const redis_url *u, const char *argv[3])
{
	if (u->password == NULL)
		return 0;
	int n = 0;
	argv[n++] = "AUTH";
	if (u->user != NULL)
		argv[n++] = u->user;
	argv[n++] = u->password;
	return n;
}

int redis_url_select_argv(const redis_url *u, const char *argv[2], char db[24])
{
	if (u->db <= 0)
		return 0;
	snprintf(db, 24, "%ld", u->db);
	argv[0] = "SELECT";
	argv[1] = db;
	return 2;
}
