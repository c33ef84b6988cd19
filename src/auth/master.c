/* master.c — loading the master key and sealing secrets with it. */
#include "auth/master.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

bool master_key_load(const char *path, master_key *out, char **err)
{
	*err = NULL;
	if (path == NULL || path[0] == '\0') {
		if (asprintf(err, "no master key file: set --master-key-file or ONCELEDGER_MASTER_KEY_FILE (32 random bytes, private to the daemon's user, e.g. (umask 077; head -c 32 /dev/urandom > master.key))") < 0)
			*err = NULL;
		return false;
	}
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		if (asprintf(err, "cannot open master key file %s: %s", path, strerror(errno)) < 0)
			*err = NULL;
		return false;
	}
	/* Anyone who reads it can open every sealed SigV4 secret. */
	if (!util_file_private(fileno(f), path, err)) {
		fclose(f);
		return false;
	}
	unsigned char buf[crypto_secretbox_KEYBYTES + 1];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n != crypto_secretbox_KEYBYTES) {
		if (asprintf(err, "master key file %s must hold exactly %d bytes (it holds %s%zu)", path,
			     (int)crypto_secretbox_KEYBYTES, n > crypto_secretbox_KEYBYTES ? "more than " : "",
			     n > crypto_secretbox_KEYBYTES ? (size_t)crypto_secretbox_KEYBYTES : n) < 0)
			*err = NULL;
		sodium_memzero(buf, sizeof(buf));
		return false;
	}
	memcpy(out->k, buf, sizeof(out->k));
	sodium_memzero(buf, sizeof(buf));
	return true;
}

void master_seal(const master_key *mk, const unsigned char *text, size_t len, unsigned char *out)
{
	randombytes_buf(out, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, text, len, out, mk->k);
}

bool master_open(const master_key *mk, const unsigned char *sealed, size_t len, unsigned char *out)
{
	if (len < MASTER_SEAL_OVERHEAD)
		return false;
	return crypto_secretbox_open_easy(out, sealed + crypto_secretbox_NONCEBYTES, len - crypto_secretbox_NONCEBYTES, sealed,
					  mk->k) == 0;
}
