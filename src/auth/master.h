/* master.h — the server's master key (32 random bytes in a file named by
 * --master-key-file / ONCELEDGER_MASTER_KEY_FILE) and the secrets sealed
 * with it (libsodium secretbox): SigV4 verification needs the secret access
 * key itself, so the database holds it only in sealed form. */
#ifndef OL_AUTH_MASTER_H
#define OL_AUTH_MASTER_H

#include <stdbool.h>
#include <stddef.h>

#include <sodium.h>

#include "util/util.h"

typedef struct master_key {
	unsigned char k[crypto_secretbox_KEYBYTES];
} master_key;

/* Reads exactly 32 bytes from path, refusing a file its group or others may
 * access (util_file_private); *err explains a failure. */
bool master_key_load(const char *path, master_key *out, char **err) OL_WARN_UNUSED;
/* Seals text: out gets nonce || box (len + MASTER_SEAL_OVERHEAD bytes). */
#define MASTER_SEAL_OVERHEAD (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
void master_seal(const master_key *mk, const unsigned char *text, size_t len, unsigned char *out);
/* Opens a sealed blob into out (len - MASTER_SEAL_OVERHEAD bytes). */
bool master_open(const master_key *mk, const unsigned char *sealed, size_t len, unsigned char *out) OL_WARN_UNUSED;

#endif
