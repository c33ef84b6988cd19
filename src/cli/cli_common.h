/* cli_common.h — shared plumbing of the `onceledger` admin commands:
 * option scanning, a blocking database connection, exit codes. */
#ifndef OL_CLI_COMMON_H
#define OL_CLI_COMMON_H

#include <stdbool.h>

#include <libpq-fe.h>

enum { CLI_OK = 0, CLI_USAGE = 1, CLI_FAIL = 2 };

typedef struct cli_opts {
	const char *database_url;
	const char *tenant;
	const char *scopes;
	bool sigv4;
	const char *master_key_file;
	const char *key_file; /* signing-key: the events key file */
	const char *idempotency_ttl_s; /* tenant create/update; "default" clears it */
	const char *rate_limit_rps;    /* tenant create/update; "default" clears it */
	const char *rate_limit_burst;  /* tenant create/update; "default" clears it */
	const char *positional[4];
	int npositional;
} cli_opts;

/* Parses --database-url, --tenant, --scopes, --sigv4 and positionals. */
bool cli_parse(int argc, char **argv, cli_opts *o);
/* Connects (blocking) or prints why not and returns NULL with *rc set:
 * CLI_USAGE when no URL was given, CLI_FAIL when the connection failed. */
PGconn *cli_connect(const cli_opts *o, int *rc);
/* Runs a parameterised statement; prints the error and returns NULL on failure. */
PGresult *cli_exec(PGconn *pg, const char *sql, int n, const char *const *params);

int cli_tenant(int argc, char **argv);
int cli_key(int argc, char **argv);
int cli_signing_key(int argc, char **argv);

#endif
