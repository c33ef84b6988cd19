/* cli_tenant.c — `onceledger tenant create NAME` and `tenant update NAME`
 * (per-tenant settings: the Idempotency-Key retention). */
#include <stdio.h>
#include <string.h>

#include "auth/keys.h"
#include "cli/cli_common.h"
#include "util/util.h"

/* "default" (NULL: the server's setting) or 1..2592000 seconds. */
static bool ttl_arg(const char *s, const char **out)
{
	long long v;
	if (strcmp(s, "default") == 0) {
		*out = NULL;
		return true;
	}
	if (!util_parse_ll(s, 1, 2592000, &v)) {
		fprintf(stderr, "onceledger: --idempotency-ttl-s must be 1-2592000 seconds or 'default'\n");
		return false;
	}
	*out = s;
	return true;
}

int cli_tenant(int argc, char **argv)
{
	cli_opts o;
	bool create = argc >= 1 && strcmp(argv[0], "create") == 0;
	bool update = argc >= 1 && strcmp(argv[0], "update") == 0;
	if ((!create && !update) || !cli_parse(argc - 1, argv + 1, &o) || o.npositional != 1 ||
	    (update && o.idempotency_ttl_s == NULL)) {
		fprintf(stderr, "usage: onceledger tenant create NAME [--idempotency-ttl-s N] --database-url URL\n"
				"       onceledger tenant update NAME --idempotency-ttl-s N|default --database-url URL\n");
		return CLI_USAGE;
	}
	const char *name = o.positional[0];
	if (!auth_tenant_name_valid(name)) {
		fprintf(stderr, "onceledger: invalid tenant name '%s': use 1-32 of [a-z0-9_-]\n", name);
		return CLI_USAGE;
	}
	const char *ttl = NULL;
	if (o.idempotency_ttl_s != NULL && !ttl_arg(o.idempotency_ttl_s, &ttl))
		return CLI_USAGE;
	int crc;
	PGconn *pg = cli_connect(&o, &crc);
	if (pg == NULL)
		return crc;
	const char *p[2] = {name, ttl};
	PGresult *r = create ? cli_exec(pg,
					"INSERT INTO tenants (name, idempotency_ttl_seconds) VALUES ($1, $2::int)"
					" ON CONFLICT DO NOTHING RETURNING name",
					2, p)
			     : cli_exec(pg, "UPDATE tenants SET idempotency_ttl_seconds = $2::int WHERE name = $1 RETURNING name",
					2, p);
	int rc = CLI_FAIL;
	if (r != NULL) {
		if (PQntuples(r) == 1) {
			printf("%s\n", name);
			rc = CLI_OK;
		} else {
			fprintf(stderr, create ? "onceledger: tenant '%s' already exists\n" : "onceledger: no tenant '%s'\n", name);
		}
		PQclear(r);
	}
	PQfinish(pg);
	return rc;
}
