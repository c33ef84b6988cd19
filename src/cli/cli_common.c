/* cli_common.c — option scanning and blocking libpq helpers for the CLI. */
#include "cli/cli_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_parse(int argc, char **argv, cli_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->database_url = getenv("ONCELEDGER_DATABASE_URL");
	o->master_key_file = getenv("ONCELEDGER_MASTER_KEY_FILE");
	o->key_file = getenv("ONCELEDGER_EVENTS_KEY_FILE");
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;
		if (strcmp(a, "--database-url") == 0)
			slot = &o->database_url;
		else if (strcmp(a, "--tenant") == 0)
			slot = &o->tenant;
		else if (strcmp(a, "--scopes") == 0)
			slot = &o->scopes;
		else if (strcmp(a, "--master-key-file") == 0)
			slot = &o->master_key_file;
		else if (strcmp(a, "--key-file") == 0)
			slot = &o->key_file;
		else if (strcmp(a, "--idempotency-ttl-s") == 0)
			slot = &o->idempotency_ttl_s;
		else if (strcmp(a, "--rate-limit-rps") == 0)
			slot = &o->rate_limit_rps;
		else if (strcmp(a, "--rate-limit-burst") == 0)
			slot = &o->rate_limit_burst;
		else if (strcmp(a, "--sigv4") == 0) {
			o->sigv4 = true;
			continue;
		} else if (strncmp(a, "--", 2) == 0) {
			fprintf(stderr, "onceledger: unknown option %s\n", a);
			return false;
		} else {
			if (o->npositional == 4) {
				fprintf(stderr, "onceledger: too many arguments\n");
				return false;
			}
			o->positional[o->npositional++] = a;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "onceledger: %s needs a value\n", a);
			return false;
		}
		*slot = argv[++i];
	}
	return true;
}

PGconn *cli_connect(const cli_opts *o, int *rc)
{
	*rc = CLI_USAGE;
	if (o->database_url == NULL || o->database_url[0] == '\0') {
		fprintf(stderr, "onceledger: --database-url (or ONCELEDGER_DATABASE_URL) is required\n");
		return NULL;
	}
	*rc = CLI_FAIL;
	PGconn *pg = PQconnectdb(o->database_url);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "onceledger: cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

PGresult *cli_exec(PGconn *pg, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		fprintf(stderr, "onceledger: %s", PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	return r;
}
