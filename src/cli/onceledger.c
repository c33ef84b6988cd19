/* onceledger.c — the admin CLI: migrate, tenant, key, signing-key (man/onceledger.1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli_common.h"
#include "db/migrate.h"

static void usage(void)
{
	fprintf(stderr, "usage:\n"
			"  onceledger migrate --database-url URL\n"
			"  onceledger tenant create NAME [--idempotency-ttl-s N] [--rate-limit-rps N] [--rate-limit-burst N]"
			" --database-url URL\n"
			"  onceledger tenant update NAME [--idempotency-ttl-s N|default] [--rate-limit-rps N|default]"
			" [--rate-limit-burst N|default] --database-url URL\n"
			"  onceledger key create --tenant NAME --scopes read,write,audit,dynamodb [--sigv4 --master-key-file FILE]\n"
			"                        --database-url URL\n"
			"  onceledger key revoke KEY-ID --database-url URL\n"
			"  onceledger key list --tenant NAME --database-url URL\n"
			"  onceledger signing-key rotate|list --key-file FILE\n"
			"  onceledger help | --help\n"
			"--database-url, --master-key-file and --key-file may also come from ONCELEDGER_DATABASE_URL,\n"
			"ONCELEDGER_MASTER_KEY_FILE and ONCELEDGER_EVENTS_KEY_FILE. See onceledger(1).\n");
}

static int cmd_migrate(int argc, char **argv)
{
	cli_opts o;
	if (!cli_parse(argc, argv, &o) || o.npositional != 0) {
		usage();
		return CLI_USAGE;
	}
	int crc;
	PGconn *pg = cli_connect(&o, &crc);
	if (pg == NULL)
		return crc;
	int applied = 0;
	char *err = NULL;
	bool ok = mig_apply(pg, &applied, &err);
	PQfinish(pg);
	if (!ok) {
		fprintf(stderr, "onceledger: migrate failed: %s\n", err ? err : "unknown error");
		free(err);
		return CLI_FAIL;
	}
	printf("%d migration(s) applied, %d known\n", applied, mig_nfiles);
	return CLI_OK;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "onceledger: libsodium failed to initialise\n");
		return CLI_FAIL;
	}
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage();
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (strcmp(argv[1], "migrate") == 0)
		return cmd_migrate(argc - 2, argv + 2);
	if (strcmp(argv[1], "tenant") == 0)
		return cli_tenant(argc - 2, argv + 2);
	if (strcmp(argv[1], "key") == 0)
		return cli_key(argc - 2, argv + 2);
	if (strcmp(argv[1], "signing-key") == 0)
		return cli_signing_key(argc - 2, argv + 2);
	usage();
	return CLI_USAGE;
}
