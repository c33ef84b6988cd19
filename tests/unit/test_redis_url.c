/* Unit tests for the daemon's Redis URL (src/redis_url.c): every part of
 * redis://[[user]:password@]host[:port][/db], unix:///path, the refusals,
 * and that no refusal message repeats the password. */
#include <stdbool.h>
#include <stdlib.h>

#include "redis_url.h"
#include "tap.h"

static bool same(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

static void ok(const char *url, const char *host, int port, bool is_unix, const char *user, const char *password, long db)
{
	redis_url u;
	char *err = NULL;
	bool parsed = redis_url_parse(url, &u, &err);
	CHECK(parsed && strcmp(u.host, host) == 0 && u.port == port && u.is_unix == is_unix && same(u.user, user) &&
		      same(u.password, password) && u.db == db,
	      url);
	if (parsed) {
		const char *argv[3];
		int n = redis_url_auth_argv(&u, argv);
		CHECK(n == (password == NULL ? 0 : user == NULL ? 2 : 3) &&
			      (n == 0 || (strcmp(argv[0], "AUTH") == 0 && same(argv[n - 1], password))),
		      "its AUTH command");
		const char *sel[2];
		char dbtext[24], want[24];
		snprintf(want, sizeof(want), "%ld", db);
		n = redis_url_select_argv(&u, sel, dbtext);
		CHECK(n == (db > 0 ? 2 : 0) && (n == 0 || (strcmp(sel[0], "SELECT") == 0 && strcmp(sel[1], want) == 0)),
		      "its SELECT command");
	}
	redis_url_free(&u);
	free(err);
}

static void bad(const char *url, const char *why)
{
	redis_url u;
	char *err = NULL;
	bool parsed = redis_url_parse(url, &u, &err);
	CHECK(!parsed && err != NULL && strstr(err, why) != NULL && strstr(err, "s3cr3t") == NULL, url);
	if (err != NULL && (parsed || strstr(err, why) == NULL))
		printf("#   %s\n", err);
	CHECK(u.user == NULL && u.password == NULL, "nothing left to free after a refusal");
	free(err);
}

int main(void)
{
	ok("redis://127.0.0.1:6379", "127.0.0.1", 6379, false, NULL, NULL, 0);
	ok("redis://localhost", "localhost", 6379, false, NULL, NULL, 0);
	ok("redis://", "127.0.0.1", 6379, false, NULL, NULL, 0);
	ok("redis://h:1/", "h", 1, false, NULL, NULL, 0);
	ok("redis://h:6380/3", "h", 6380, false, NULL, NULL, 3);
	ok("redis://s3cr3t@h", "h", 6379, false, NULL, "s3cr3t", 0);
	ok("redis://:s3cr3t@h:7000/2", "h", 7000, false, NULL, "s3cr3t", 2);
	ok("redis://app:s3cr3t@h:7000", "h", 7000, false, "app", "s3cr3t", 0);
	/* a password may hold '@', ':' and '/': the host starts after the last '@' */
	ok("redis://app:p@ss:w/rd@h:7000/1", "h", 7000, false, "app", "p@ss:w/rd", 1);
	ok("redis://app:@h", "h", 6379, false, "app", "", 0);
	ok("redis://[::1]:6390/4", "::1", 6390, false, NULL, NULL, 4);
	ok("redis://[::1]", "::1", 6379, false, NULL, NULL, 0);
	ok("unix:///run/redis/redis.sock", "/run/redis/redis.sock", 6379, true, NULL, NULL, 0);

	bad("http://h:6379", "unknown scheme");
	bad("rediss://:s3cr3t@h:6379", "TLS");
	bad("unix://relative.sock", "absolute");
	bad("redis://:s3cr3t@h:0", "port");
	bad("redis://:s3cr3t@h:65536", "port");
	bad("redis://:s3cr3t@h:x", "port");
	bad("redis://:s3cr3t@h:6379/x", "database");
	bad("redis://:s3cr3t@h:6379/-1", "database");
	bad("redis://:s3cr3t@[::1:6379", "IPv6");
	char big[400];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "redis://", 8);
	bad(big, "too long");
	return it_test_done();
}
