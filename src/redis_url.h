/* redis_url.h — the daemon's Redis URL (docs/configuration.md "redis_url"):
 *
 *   redis://[[user]:password@]host[:port][/db]     unix:///path/to/socket
 *
 * The relay and the readiness probe connect with it; both send AUTH and
 * SELECT right after connecting.  The consumer in contrib/ reads the same
 * form with its own copy of this parser (it links nothing of src/). */
#ifndef OL_REDIS_URL_H
#define OL_REDIS_URL_H

#include <stdbool.h>

typedef struct redis_url {
	char host[256]; /* host name or address; the socket path when is_unix */
	int port;
	bool is_unix;
	char *user;     /* NULL: AUTH with the password alone (requirepass) */
	char *password; /* NULL: no AUTH */
	long db;        /* SELECT db when > 0 */
} redis_url;

/* Fills *u (free with redis_url_free) or sets *err (free()) to a message
 * that never repeats the password. */
bool redis_url_parse(const char *url, redis_url *u, char **err);
void redis_url_free(redis_url *u);
/* The AUTH command for *u in argv[0..2] (pointers into *u); returns its
 * argc, 0 when the URL has no password. */
int redis_url_auth_argv(const redis_url *u, const char *argv[3]);
/* The SELECT command for *u in argv[0..1] (argv[1] written into db);
 * returns its argc, 0 when the URL names database 0 or none. */
int redis_url_select_argv(const redis_url *u, const char *argv[2], char db[24]);

#endif
