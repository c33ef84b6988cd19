/* keys.h — the Ed25519 keys that sign events (docs/events.md "Keys"): a
 * file of `ed25519 <kid> <base64 seed>` lines, the last one signing. Shared
 * by the relay (signs) and the API workers (publish public keys); reloaded
 * when the file changes, so a rotation needs no restart. */
#ifndef OL_EVENTS_KEYS_H
#define OL_EVENTS_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define EV_KID_LEN 17      /* 16 hex digits + NUL */
#define EV_SIG_B64_LEN 89  /* base64 of 64 bytes + NUL */
#define EV_PUB_B64_LEN 45  /* base64 of 32 bytes + NUL */

typedef struct ev_keys ev_keys;

/* Loads path; when it does not exist and create is set, creates it (mode
 * 0600) with a first key. NULL and *err on failure, also when the file's
 * group or others may access it (util_file_private). */
ev_keys *ev_keys_open(const char *path, bool create, char **err);
void ev_keys_free(ev_keys *k);
/* Reloads the file when its modification time or size changed; keeps the
 * keys it has when the new file is unreadable, empty or no longer private
 * (logged). */
void ev_keys_refresh(ev_keys *k);
/* Signs msg with the current key: base64 signature and the key's id. */
bool ev_keys_sign(ev_keys *k, const void *msg, size_t len, char sig[EV_SIG_B64_LEN], char kid[EV_KID_LEN]);
/* The public key (base64) of kid, or of the current key when kid is NULL;
 * false when there is no such key. kid_out gets the key's id. */
bool ev_keys_public(ev_keys *k, const char *kid, char kid_out[EV_KID_LEN], char pub[EV_PUB_B64_LEN]);

/* A secret for another purpose (e.g. "list cursors"), the same in every
 * daemon that reads the same file: keyed BLAKE2b of purpose under the
 * oldest key's seed (rotations append, so it outlives them). len 16..64. */
void ev_keys_derive(ev_keys *k, const char *purpose, unsigned char *out, size_t len);

/* Calls fn for every key, oldest first (the last one signs). */
void ev_keys_each(ev_keys *k, void (*fn)(const char *kid, const char *pub, bool signing, void *arg), void *arg);

/* Appends a new key to path (creating the file, mode 0600, when missing):
 * the rotation. Refuses a file that is not private. kid_out gets its id. */
bool ev_keys_add(const char *path, char kid_out[EV_KID_LEN], char **err);

#endif
