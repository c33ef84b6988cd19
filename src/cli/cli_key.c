/* cli_key.c — `onceledger key create|revoke|list`. The key is printed once
 * and only its BLAKE2b-256 hash is stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/keys.h"
#include "auth/master.h"
#include "cli/cli_common.h"

/* AWS-style credentials for the DynamoDB endpoint: an access key id
 * "OLAK" + 16 uppercase hex (the hex is the row id) and a 40-character
 * secret, stored sealed with the master key (verification needs it). */
static int key_create_sigv4(cli_opts *o, unsigned mask)
{
	master_key mk;
	char *err = NULL;
	if (!master_key_load(o->master_key_file, &mk, &err)) {
		fprintf(stderr, "onceledger: %s\n", err ? err : "cannot load the master key");
		free(err);
		return CLI_USAGE;
	}
	int crc;
	PGconn *pg = cli_connect(o, &crc);
	if (pg == NULL) {
		sodium_memzero(&mk, sizeof(mk));
		return crc;
	}
	char id[AUTH_KEY_ID_LEN + 1], akid[4 + AUTH_KEY_ID_LEN + 1];
	util_random_hex(id, AUTH_KEY_ID_LEN / 2);
	snprintf(akid, sizeof(akid), "OLAK%s", id);
	for (char *p = akid + 4; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	/* 30 random bytes in base64: 40 characters, like AWS secrets */
	unsigned char raw[30];
	char secret[41];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(secret, sizeof(secret), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
	unsigned char hash[AUTH_HASH_LEN];
	auth_key_hash(secret, strlen(secret), hash);
	unsigned char sealed[40 + MASTER_SEAL_OVERHEAD];
	master_seal(&mk, (const unsigned char *)secret, 40, sealed);
	char hashhex[2 + AUTH_HASH_LEN * 2 + 1] = "\\x", sealedhex[2 + sizeof(sealed) * 2 + 1] = "\\x";
	sodium_bin2hex(hashhex + 2, sizeof(hashhex) - 2, hash, sizeof(hash));
	sodium_bin2hex(sealedhex + 2, sizeof(sealedhex) - 2, sealed, sizeof(sealed));
	char scopes[64], arr[80];
	auth_scopes_format(mask, scopes, sizeof(scopes));
	snprintf(arr, sizeof(arr), "{%s}", scopes);
	const char *p[5] = {id, o->tenant, hashhex, arr, sealedhex};
	PGresult *r = cli_exec(pg,
			       "INSERT INTO api_keys (id, tenant, hash, scopes, kind, sealed_secret)"
			       " SELECT $1, name, $3::bytea, $4::text[], 'sigv4', $5::bytea FROM tenants WHERE name = $2 RETURNING id",
			       5, p);
	int rc = CLI_FAIL;
	if (r != NULL) {
		if (PQntuples(r) == 1) {
			printf("%s %s\n", akid, secret);
			rc = CLI_OK;
		} else {
			fprintf(stderr, "onceledger: no tenant named '%s'\n", o->tenant);
		}
		PQclear(r);
	}
	sodium_memzero(secret, sizeof(secret));
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(&mk, sizeof(mk));
	PQfinish(pg);
	return rc;
}

static int key_create(cli_opts *o)
{
	unsigned mask;
	if (o->tenant == NULL || o->scopes == NULL || !auth_scopes_parse(o->scopes, &mask)) {
		fprintf(stderr, "usage: onceledger key create --tenant NAME --scopes read,write,audit --database-url URL\n");
		return CLI_USAGE;
	}
	if (o->sigv4)
		return key_create_sigv4(o, mask);
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
	const char *p = strncmp(arg, "olk_", 4) == 0 || strncmp(arg, "OLAK", 4) == 0 ? arg + 4 : arg;
	char lower[AUTH_KEY_ID_LEN + 1];
	if (strncmp(arg, "OLAK", 4) == 0 && strlen(p) == AUTH_KEY_ID_LEN) {
		for (int i = 0; i <= AUTH_KEY_ID_LEN; i++)
			lower[i] = (char)(p[i] >= 'A' && p[i] <= 'F' ? p[i] - 'A' + 'a' : p[i]);
		p = lower;
	}
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
