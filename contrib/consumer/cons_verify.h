/* cons_verify.h — what makes an entry trustworthy: its signature, by a key
 * the operator named on the command line, over the exact event bytes, and
 * an event whose signed id and type are the ones the entry's fields claim. */
#ifndef CONS_VERIFY_H
#define CONS_VERIFY_H

#include <stdbool.h>

#include "cons.h"

#define CONS_KID_MAX 64

struct cons_key {
	char kid[CONS_KID_MAX + 1];
	unsigned char pk[32]; /* crypto_sign_PUBLICKEYBYTES */
};

struct cons_keys {
	struct cons_key *v;
	size_t n;
};

/* libsodium must be initialised once before any check. */
bool cons_verify_init(void) CONS_WARN_UNUSED;
/* Adds one trusted key from "KID:BASE64PUB" (--key). */
bool cons_keys_add(struct cons_keys *keys, const char *arg, char **cause) CONS_WARN_UNUSED;
void cons_keys_free(struct cons_keys *keys);

/* The base64 Ed25519 signature over event, by the key named kid.  false:
 * *cause (allocated) says why the entry is not to be trusted. */
bool cons_verify_signature(const struct cons_keys *keys, struct cons_slice kid, struct cons_slice sig,
			   struct cons_slice event, char **cause) CONS_WARN_UNUSED;
/* The (already verified) event is one line of JSON, an object whose "id"
 * and "type" equal the entry's unsigned id and type fields and whose
 * "source" is the stream's tenant's (source: "onceledger/<tenant>"): one
 * signing key serves every tenant, so a signature alone does not say whose
 * stream an event belongs on. */
bool cons_verify_event(struct cons_slice event, struct cons_slice id, struct cons_slice type, const char *source,
		       char **cause) CONS_WARN_UNUSED;
/* The tenant of a stream named <prefix><tenant> into source as
 * "onceledger/<tenant>" (len >= sizeof "onceledger/" + 32); false when the
 * name does not start with prefix or what follows is no tenant name. */
bool cons_stream_source(const char *stream, const char *prefix, char *source, size_t len) CONS_WARN_UNUSED;

#endif
