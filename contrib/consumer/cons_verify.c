/* cons_verify.c — signature and event checks.  Everything an entry carries
 * besides `event` and `signature` is unsigned (id, type, kid): it is only
 * trusted once it agrees with the signed event. */
#include "cons_verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

static bool cons_visible(struct cons_slice s)
{
	for (size_t i = 0; i < s.n; i++)
		if (s.p[i] < 0x21 || s.p[i] > 0x7e)
			return false;
	return true;
}

/* Copies s into buf (CONS_KID_MAX + 1 bytes) for a log line or a reason;
 * anything that is not short visible ASCII is shown as "?". */
static const char *cons_printable(struct cons_slice s, char *buf)
{
	if (s.n == 0 || s.n > CONS_KID_MAX || !cons_visible(s))
		return "?";
	memcpy(buf, s.p, s.n);
	buf[s.n] = '\0';
	return buf;
}

static bool cons_slice_eq(struct cons_slice s, const char *str, size_t n)
{
	return s.n == n && memcmp(s.p, str, n) == 0;
}

bool cons_verify_init(void)
{
	return sodium_init() >= 0;
}

bool cons_keys_add(struct cons_keys *keys, const char *arg, char **cause)
{
	const char *colon = strchr(arg, ':');
	if (colon == NULL || colon == arg || (size_t)(colon - arg) > CONS_KID_MAX) {
		*cause = cons_xasprintf("--key '%s': expected KID:BASE64PUB", arg);
		return false;
	}
	struct cons_key k;
	memset(&k, 0, sizeof(k));
	memcpy(k.kid, arg, (size_t)(colon - arg));
	if (!cons_visible((struct cons_slice){k.kid, strlen(k.kid)})) {
		*cause = cons_xasprintf("--key: the kid must be visible ASCII");
		return false;
	}
	const char *b64 = colon + 1;
	size_t pk_len = 0;
	const char *end = NULL;
	if (sodium_base642bin(k.pk, sizeof(k.pk), b64, strlen(b64), NULL, &pk_len, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != b64 + strlen(b64) || pk_len != sizeof(k.pk)) {
		*cause = cons_xasprintf("--key %s: the public key must be the standard base64 of 32 bytes", k.kid);
		return false;
	}
	/* onceledger names a key by 16 hex digits of BLAKE2b-64 of it: a kid
	 * that does not match is most likely a copy-paste slip, worth a word
	 * but not a refusal (other signers may name keys otherwise). */
	unsigned char h[8];
	char hex[2 * sizeof(h) + 1];
	crypto_generichash(h, sizeof(h), k.pk, sizeof(k.pk), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	if (strcmp(hex, k.kid) != 0)
		cons_log(CONS_WARN, "--key %s: this kid is not the one onceledger derives from this key (%s)", k.kid, hex);
	for (size_t i = 0; i < keys->n; i++) {
		if (strcmp(keys->v[i].kid, k.kid) != 0)
			continue;
		if (memcmp(keys->v[i].pk, k.pk, sizeof(k.pk)) == 0)
			return true; /* the same key twice is harmless */
		*cause = cons_xasprintf("--key %s: given twice with different public keys", k.kid);
		return false;
	}
	keys->v = cons_xrealloc(keys->v, (keys->n + 1) * sizeof(*keys->v));
	keys->v[keys->n++] = k;
	return true;
}

void cons_keys_free(struct cons_keys *keys)
{
	free(keys->v);
	keys->v = NULL;
	keys->n = 0;
}

bool cons_verify_signature(const struct cons_keys *keys, struct cons_slice kid, struct cons_slice sig,
			   struct cons_slice event, char **cause)
{
	char buf[CONS_KID_MAX + 1];
	const struct cons_key *key = NULL;
	for (size_t i = 0; i < keys->n && key == NULL; i++)
		if (cons_slice_eq(kid, keys->v[i].kid, strlen(keys->v[i].kid)))
			key = &keys->v[i];
	if (key == NULL) {
		/* A key rotated after we started, or a forger's: either way an
		 * operator decides (add --key after checking GET
		 * /v1/events/signing-key?kid=, then replay the dead letters). */
		*cause = cons_xasprintf("unknown kid %s", cons_printable(kid, buf));
		return false;
	}
	unsigned char raw[crypto_sign_BYTES];
	size_t raw_len = 0;
	const char *end = NULL;
	if (sodium_base642bin(raw, sizeof(raw), sig.p, sig.n, NULL, &raw_len, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != sig.p + sig.n || raw_len != sizeof(raw)) {
		*cause = cons_xasprintf("malformed signature (not the base64 of %d bytes)", crypto_sign_BYTES);
		return false;
	}
	if (crypto_sign_verify_detached(raw, (const unsigned char *)event.p, event.n, key->pk) != 0) {
		*cause = cons_xasprintf("bad signature (kid %s)", key->kid);
		return false;
	}
	return true;
}

bool cons_stream_source(const char *stream, const char *prefix, char *source, size_t len)
{
	size_t pn = strlen(prefix);
	if (strncmp(stream, prefix, pn) != 0)
		return false;
	const char *tenant = stream + pn;
	size_t tn = strlen(tenant);
	if (tn == 0 || tn > CONS_TENANT_MAX || strspn(tenant, "abcdefghijklmnopqrstuvwxyz0123456789_-") != tn)
		return false;
	int n = snprintf(source, len, "%s%s", CONS_SOURCE_PREFIX, tenant);
	return n > 0 && (size_t)n < len;
}

bool cons_verify_event(struct cons_slice event, struct cons_slice id, struct cons_slice type, const char *source,
		       char **cause)
{
	/* stdout carries one event per line: a signed text with a raw newline
	 * (legal JSON whitespace, never produced by the relay) cannot be framed. */
	if (memchr(event.p, '\n', event.n) != NULL) {
		*cause = cons_xasprintf("event contains a newline");
		return false;
	}
	json_error_t err;
	json_t *ev = json_loadb(event.p, event.n, JSON_REJECT_DUPLICATES, &err);
	bool ok = false;
	if (ev == NULL) {
		*cause = cons_xasprintf("event is not JSON: %s", err.text);
		goto out;
	}
	json_t *eid = json_object_get(ev, "id");
	json_t *etype = json_object_get(ev, "type");
	json_t *esource = json_object_get(ev, "source");
	if (!json_is_object(ev) || !json_is_string(eid) || !json_is_string(etype) || !json_is_string(esource)) {
		*cause = cons_xasprintf("event is not an object with string id, type and source");
		goto out;
	}
	if (!cons_slice_eq(id, json_string_value(eid), json_string_length(eid))) {
		*cause = cons_xasprintf("event id does not match the id field");
		goto out;
	}
	if (!cons_slice_eq(type, json_string_value(etype), json_string_length(etype))) {
		*cause = cons_xasprintf("event type does not match the type field");
		goto out;
	}
	/* A validly signed event of another tenant copied into this stream. */
	if (strcmp(json_string_value(esource), source) != 0 || json_string_length(esource) != strlen(source)) {
		char buf[CONS_KID_MAX + 1];
		struct cons_slice es = {json_string_value(esource), json_string_length(esource)};
		*cause = cons_xasprintf("event source %s is not this stream's tenant (%s)", cons_printable(es, buf), source);
		goto out;
	}
	ok = true;
out:
	json_decref(ev);
	return ok;
}
