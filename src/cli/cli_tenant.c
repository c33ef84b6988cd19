/* cli_tenant.c — `onceledger tenant create NAME`. */
#include <stdio.h>
#include <string.h>

#include "auth/keys.h"
#include "cli/cli_common.h"

int cli_tenant(int argc, char **argv)
{
	cli_opts o;
	if (argc < 1 || strcmp(argv[0], "create") != 0 || !cli_parse(argc - 1, argv + 1, &o) || o.npositional != 1) {
		fprintf(stderr, "usage: onceledger tenant create NAME --database-url URL\n");
		return CLI_USAGE;
	}
	const char *name = o.positional[0];
	if (!auth_tenant_name_valid(name)) {
		fprintf(stderr, "onceledger: invalid tenant name '%s': use 1-32 of [a-z0-9_-]\n", name);
		return CLI_USAGE;
	}
	int crc;
	PGconn *pg = cli_connect(&o, &crc);
	if (pg == NULL)
		return crc;
	const char *p[1] = {name};
	PGresult *r = cli_exec(pg, "INSERT INTO tenants (name) VALUES ($1) ON CONFLICT DO NOTHING RETURNING name", 1, p);
	int rc = CLI_FAIL;
	if (r != NULL) {
		if (PQntuples(r) == 1) {
			printf("%s\n", name);
			rc = CLI_OK;
		} else {
			fprintf(stderr, "onceledger: tenant '%s' already exists\n", name);
		}
		PQclear(r);
	}
	PQfinish(pg);
	return rc;
}
