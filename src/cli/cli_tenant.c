/* cli_tenant.c — `onceledger tenant create NAME` and `tenant update NAME`
 * (per-tenant settings: the Idempotency-Key retention, the per-key rate
 * limit). */
#include <stdio.h>
#include <string.h>

#include "auth/keys.h"
#include "cli/cli_common.h"
#include "util/util.h"

/* A tenant setting: absent (keep it, *set false), "default" (NULL: the
 * server's setting) or an integer in [min, max]. */
static bool setting_arg(const char *flag, const char *s, long long min, long long max, bool *set, const char **out)
{
	long long v;
	*set = s != NULL;
	*out = NULL;
	if (s == NULL || strcmp(s, "default") == 0)
		return true;
	if (!util_parse_ll(s, min, max, &v)) {
		fprintf(stderr, "onceledger: %s must be %lld-%lld or 'default'\n", flag, min, max);
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
	    (update && o.idempotency_ttl_s == NULL && o.rate_limit_rps == NULL && o.rate_limit_burst == NULL)) {
		fprintf(stderr, "usage: onceledger tenant create NAME [--idempotency-ttl-s N] [--rate-limit-rps N] [--rate-limit-burst N]"
				" --database-url URL\n"
				"       onceledger tenant update NAME [--idempotency-ttl-s N|default] [--rate-limit-rps N|default]"
				" [--rate-limit-burst N|default] --database-url URL\n");
		return CLI_USAGE;
	}
	const char *name = o.positional[0];
	if (!auth_tenant_name_valid(name)) {
		fprintf(stderr, "onceledger: invalid tenant name '%s': use 1-32 of [a-z0-9_-]\n", name);
		return CLI_USAGE;
	}
	const char *ttl, *rps, *burst;
	bool set_ttl, set_rps, set_burst;
	if (!setting_arg("--idempotency-ttl-s", o.idempotency_ttl_s, 1, 2592000, &set_ttl, &ttl) ||
	    !setting_arg("--rate-limit-rps", o.rate_limit_rps, 0, 1000000, &set_rps, &rps) ||
	    !setting_arg("--rate-limit-burst", o.rate_limit_burst, 1, 10000000, &set_burst, &burst))
		return CLI_USAGE;
	int crc;
	PGconn *pg = cli_connect(&o, &crc);
	if (pg == NULL)
		return crc;
	/* $5..$7: whether update sets each setting (an unset one is kept). */
	const char *p[7] = {name, ttl, rps, burst, set_ttl ? "t" : "f", set_rps ? "t" : "f", set_burst ? "t" : "f"};
	PGresult *r = create ? cli_exec(pg,
					"INSERT INTO tenants (name, idempotency_ttl_seconds, rate_limit_rps, rate_limit_burst)"
					" VALUES ($1, $2::int, $3::int, $4::int) ON CONFLICT DO NOTHING RETURNING name",
					4, p)
			     : cli_exec(pg,
					"UPDATE tenants SET"
					" idempotency_ttl_seconds = CASE WHEN $5::bool THEN $2::int ELSE idempotency_ttl_seconds END,"
					" rate_limit_rps = CASE WHEN $6::bool THEN $3::int ELSE rate_limit_rps END,"
					" rate_limit_burst = CASE WHEN $7::bool THEN $4::int ELSE rate_limit_burst END"
					" WHERE name = $1 RETURNING name",
					7, p);
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
