/* Unit tests for API key format, hashing, scopes and tenant names, and the
 * master key file (its size and its permissions). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/keys.h"
#include "auth/master.h"
#include "tap.h"

/* A master key file is refused unless exactly 32 bytes, private to its owner. */
static void test_master_key_file(void)
{
	char path[] = "/tmp/ol-test-master-XXXXXX";
	int fd = mkstemp(path); /* mode 0600 */
	unsigned char raw[32];
	randombytes_buf(raw, sizeof(raw));
	CHECK(fd >= 0 && write(fd, raw, sizeof(raw)) == (ssize_t)sizeof(raw), "write a master key");
	close(fd);
	master_key mk;
	char *err = NULL;
	CHECK(master_key_load(path, &mk, &err) && memcmp(mk.k, raw, sizeof(raw)) == 0, "a 0600 file of 32 bytes loads");
	const unsigned modes[] = {0644, 0640, 0604, 0660, 0610, 0601};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		CHECK(chmod(path, modes[i]) == 0, "chmod");
		err = NULL;
		CHECK(!master_key_load(path, &mk, &err) && err != NULL && strstr(err, path) != NULL &&
			      strstr(err, "chmod 600") != NULL,
		      "a master key file its group or others may access is refused, naming the file and the fix");
		free(err);
	}
	CHECK(chmod(path, 0400) == 0 && master_key_load(path, &mk, &err), "0400 loads");
	unlink(path);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	char key[AUTH_KEY_LEN + 1], id[AUTH_KEY_ID_LEN + 1], id2[AUTH_KEY_ID_LEN + 1];
	auth_key_generate(key, id);
	CHECK(strlen(key) == AUTH_KEY_LEN && strncmp(key, "olk_", 4) == 0, "key shape");
	CHECK(auth_key_parse(key, strlen(key), id2) && strcmp(id, id2) == 0, "parse returns the id");
	char bad[AUTH_KEY_LEN + 1];
	memcpy(bad, key, sizeof(bad));
	bad[10] = 'G';
	CHECK(!auth_key_parse(bad, strlen(bad), id2), "non-hex id refused");
	memcpy(bad, key, sizeof(bad));
	bad[AUTH_KEY_LEN - 1] = '=';
	CHECK(!auth_key_parse(bad, strlen(bad), id2), "non-base64url secret refused");
	CHECK(!auth_key_parse(key, strlen(key) - 1, id2), "short key refused");
	unsigned char h1[32], h2[32];
	auth_key_hash(key, strlen(key), h1);
	key[AUTH_KEY_LEN - 1] ^= 1;
	auth_key_hash(key, strlen(key), h2);
	CHECK(memcmp(h1, h2, 32) != 0, "hash depends on the secret");
	char key2[AUTH_KEY_LEN + 1];
	auth_key_generate(key2, id2);
	CHECK(strcmp(id, id2) != 0, "ids differ");

	unsigned m;
	CHECK(auth_scopes_parse("read,write", &m) && m == (SCOPE_READ | SCOPE_WRITE), "scopes parse");
	CHECK(!auth_scopes_parse("read,admin", &m), "unknown scope refused");
	CHECK(!auth_scopes_parse("", &m), "empty scopes refused");
	char buf[64];
	auth_scopes_format(SCOPE_AUDIT | SCOPE_READ, buf, sizeof(buf));
	CHECK(strcmp(buf, "read,audit") == 0, "scopes format");
	CHECK(auth_scope_allows(SCOPE_WRITE, SCOPE_READ), "write implies read");
	CHECK(!auth_scope_allows(SCOPE_READ, SCOPE_WRITE), "read is not write");
	CHECK(!auth_scope_allows(SCOPE_AUDIT, SCOPE_READ), "audit is not read");
	CHECK(!auth_scope_allows(SCOPE_WRITE, SCOPE_AUDIT), "write is not audit");
	CHECK(auth_scope_allows(SCOPE_AUDIT, SCOPE_AUDIT), "audit allows audit");
	CHECK(auth_tenant_name_valid("acme_1-x"), "valid tenant");
	CHECK(!auth_tenant_name_valid("Acme"), "uppercase tenant refused");
	CHECK(!auth_tenant_name_valid(""), "empty tenant refused");
	CHECK(!auth_tenant_name_valid("abcdefghijklmnopqrstuvwxyz0123456"), "33-char tenant refused");
	test_master_key_file();
	return it_test_done();
}
