/* cli_key.c — `onceledger key create|revoke|list`. The key is printed once
 * and only its BLAKE2b-256 hash is stored. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/keys.h"
#include "cli/cli_common.h"

static int key_create(cli_opts *o)
{
	unsigned mask;
	if (o->tenant == NULL || o->scopes == NULL || !auth_scopes_parse(o->scopes, &mask)) {
		fprintf(stderr, "usage: onceledger key create --tenant NAME --scopes read,write,audit --database-url URL\n");
		return CLI_USAGE;
	}
	if (o->sigv4) {
		fprintf(stderr, "onceledger: --sigv4 keys arrive with the DynamoDB endpoint (issue #4)\n");
		return CLI_USAGE;
	}
	int crc;
	PGconn *pg = cli_connect(o, &crc);
	if (pg == NULL)
		return crc;
	char key[AUTH_KEY_LEN + 1], id[AUTH_KEY_ID_LEN + 1];
	auth_key_generate(key, id);
	unsigned char hash[AUTH_HASH_LEN];
	auth_key_hash(key, AUTH_KEY_LEN, hash);
	char hashhex[2 + AUTH_HASH_LEN * 2 + 1] = "\\x";
	sodium_bin2hex(hashhex + 2, sizeof(hashhex) - 2, hash, sizeof(hash));
	char scopes[64], arr[80];
	auth_scopes_format(mask, scopes, sizeof(scopes));
	snprintf(arr, sizeof(arr), "{%s}", scopes);
	const char *p[4] = {id, o->tenant, hashhex, arr};
	PGresult *r = cli_exec(pg,
			       "INSERT INTO api_keys (id, tenant, hash, scopes)"
			       " SELECT $1, name, $3::bytea, $4::text[] FROM tenants WHERE name = $2 RETURNING id",
			       4, p);
	int rc = CLI_FAIL;
	if (r != NULL) {
		if (PQntuples(r) == 1) {
			printf("%s\n", key);
			rc = CLI_OK;
		} else {
			fprintf(stderr, "onceledger: no tenant named '%s'\n", o->tenant);
		}
		PQclear(r);
	}
	sodium_memzero(key, sizeof(key));
	PQfinish(pg);
	return rc;
}

/* Accepts the id, "olk_<id>", or the whole key. */
static bool extract_id(const char *arg, char *id)
{
	const char *p = strncmp(arg, "olk_", 4) == 0 ? arg + 4 : arg;
	size_t n = strlen(p);
	if (n < AUTH_KEY_ID_LEN || (n > AUTH_KEY_ID_LEN && p[AUTH_KEY_ID_LEN] != '_'))
		return false;
	for (int i = 0; i < AUTH_KEY_ID_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	memcpy(id, p, AUTH_KEY_ID_LEN);
	id[AUTH_KEY_ID_LEN] = '\0';
	return true;
}

static int key_revoke(cli_opts *o)
{
	char id[AUTH_KEY_ID_LEN + 1];
	if (o->npositional != 1 || !extract_id(o->positional[0], id)) {
		fprintf(stderr, "usage: onceledger key revoke KEY-ID|olk_KEY-ID|KEY --database-url URL\n");
		return CLI_USAGE;
	}
	int crc;
	PGconn *pg = cli_connect(o, &crc);
	if (pg == NULL)
		return crc;
	const char *p[1] = {id};
	PGresult *r = cli_exec(pg,
			       "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING id", 1, p);
	int rc = CLI_FAIL;
	if (r != NULL) {
		if (PQntuples(r) == 1) {
			printf("revoked %s\n", id);
			rc = CLI_OK;
		} else {
			fprintf(stderr, "onceledger: no key with id %s\n", id);
		}
		PQclear(r);
	}
	PQfinish(pg);
	return rc;
}

static int key_list(cli_opts *o)
{
	if (o->tenant == NULL) {
		fprintf(stderr, "usage: onceledger key list --tenant NAME --database-url URL\n");
		return CLI_USAGE;
	}
	int crc;
	PGconn *pg = cli_connect(o, &crc);
	if (pg == NULL)
		return crc;
	const char *p[1] = {o->tenant};
	PGresult *r = cli_exec(pg,
			       "SELECT id, kind, array_to_string(scopes, ','), created_at, coalesce(revoked_at::text, '-')"
			       " FROM api_keys WHERE tenant = $1 ORDER BY created_at",
			       1, p);
	if (r == NULL) {
		PQfinish(pg);
		return CLI_FAIL;
	}
	for (int i = 0; i < PQntuples(r); i++)
		printf("%s\t%s\t%s\tcreated %s\trevoked %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
		       PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
	PQclear(r);
	PQfinish(pg);
	return CLI_OK;
}

int cli_key(int argc, char **argv)
{
	cli_opts o;
	if (argc < 1 || !cli_parse(argc - 1, argv + 1, &o)) {
		fprintf(stderr, "usage: onceledger key create|revoke|list ...\n");
		return CLI_USAGE;
	}
	if (strcmp(argv[0], "create") == 0)
		return key_create(&o);
	if (strcmp(argv[0], "revoke") == 0)
		return key_revoke(&o);
	if (strcmp(argv[0], "list") == 0)
		return key_list(&o);
	fprintf(stderr, "usage: onceledger key create|revoke|list ...\n");
	return CLI_USAGE;
}
