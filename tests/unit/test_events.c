/* test_events.c — the pure parts of events: the CloudEvent text (member
 * order, escaping, data inserted as is), sequences and their parsing, and
 * the signing key file (creation, kid derived from the key, a tampered
 * file refused, a file its group or others may read refused, rotation
 * picked up by a reload, signatures that verify with the published key and
 * fail after a one-byte change). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "events/envelope.h"
#include "events/keys.h"
#include "tap.h"

static char *envelope_text(const ev_row *row)
{
	struct evbuffer *b = evbuffer_new();
	bool ok = ev_envelope(b, row);
	size_t len = evbuffer_get_length(b);
	char *s = ok ? strndup((const char *)evbuffer_pullup(b, -1), len) : NULL;
	evbuffer_free(b);
	return s;
}

static void test_envelope(void)
{
	ev_row row = {.txid = 735, .n = 2, .tenant = "demo", .id = "evt_1", .type = "transfer.posted", .subject = "tr_\"x\\y\n",
		      .time = "2026-11-21T10:00:00.123456Z", .data = "{\"b\":1,\"a\":[2]}"};
	char *s = envelope_text(&row);
	CHECK_STR(s,
		  "{\"specversion\":\"1.0\",\"id\":\"evt_1\",\"source\":\"onceledger/demo\",\"type\":\"transfer.posted\","
		  "\"subject\":\"tr_\\\"x\\\\y\\u000a\",\"time\":\"2026-11-21T10:00:00.123456Z\","
		  "\"datacontenttype\":\"application/json\",\"sequence\":\"735000002\",\"data\":{\"b\":1,\"a\":[2]}}",
		  "members in the contract's order, strings escaped, data as is");
	json_error_t e;
	json_t *j = s ? json_loads(s, 0, &e) : NULL;
	CHECK(j != NULL && strcmp(json_string_value(json_object_get(j, "subject")), "tr_\"x\\y\n") == 0, "the text is JSON");
	json_decref(j);
	free(s);
}

static void test_sequence(void)
{
	char seq[EV_SEQ_LEN];
	ev_sequence(seq, 735, 0);
	CHECK_STR(seq, "735000000", "txid 735, n 0");
	ev_sequence(seq, 18446744073709551615ULL, 999999);
	CHECK_STR(seq, "18446744073709551615999999", "past 2^64: the two parts printed");
	ev_sequence(seq, 0, 0);
	CHECK_STR(seq, "0", "the start");
	uint64_t t;
	int n;
	CHECK(ev_sequence_parse("18446744073709551615999999", &t, &n) && t == 18446744073709551615ULL && n == 999999,
	      "parses back the largest");
	CHECK(ev_sequence_parse("735000002", &t, &n) && t == 735 && n == 2, "parses 735000002");
	CHECK(ev_sequence_parse("42", &t, &n) && t == 0 && n == 42, "short: txid 0");
	CHECK(!ev_sequence_parse("", &t, &n), "empty refused");
	CHECK(!ev_sequence_parse("-1", &t, &n), "sign refused");
	CHECK(!ev_sequence_parse("12a", &t, &n), "letters refused");
	CHECK(!ev_sequence_parse("18446744073709551616000000", &t, &n), "txid past 2^64 refused");
	CHECK(!ev_sequence_parse("123456789012345678901234567", &t, &n), "27 digits refused");
	/* Order: sequences compare like positions. */
	char a[EV_SEQ_LEN], b[EV_SEQ_LEN];
	ev_sequence(a, 999, 999999);
	ev_sequence(b, 1000, 0);
	CHECK(strlen(a) < strlen(b) || (strlen(a) == strlen(b) && strcmp(a, b) < 0), "(999, 999999) < (1000, 0)");
}

static void test_keys(void)
{
	char path[] = "/tmp/ol-test-keys-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	unlink(path);
	char *err = NULL;
	CHECK(ev_keys_open(path, false, &err) == NULL && err != NULL, "a missing file is an error without create");
	free(err);
	ev_keys *k = ev_keys_open(path, true, &err);
	CHECK(k != NULL, "created with a first key");
	char kid1[EV_KID_LEN], pub1[EV_PUB_B64_LEN];
	CHECK(k != NULL && ev_keys_public(k, NULL, kid1, pub1) && strlen(kid1) == 16, "current key: a 16-hex kid");

	const char msg[] = "{\"specversion\":\"1.0\"}";
	char sig[EV_SIG_B64_LEN], kid[EV_KID_LEN];
	ev_keys_sign(k, msg, strlen(msg), sig, kid);
	unsigned char pk[32], s[64];
	size_t pl = 0, sl = 0;
	sodium_base642bin(pk, sizeof(pk), pub1, strlen(pub1), NULL, &pl, NULL, sodium_base64_VARIANT_ORIGINAL);
	sodium_base642bin(s, sizeof(s), sig, strlen(sig), NULL, &sl, NULL, sodium_base64_VARIANT_ORIGINAL);
	CHECK(strcmp(kid, kid1) == 0, "signed with the current key");
	CHECK(pl == 32 && sl == 64 && crypto_sign_verify_detached(s, (const unsigned char *)msg, strlen(msg), pk) == 0,
	      "the signature verifies with the published key");
	char bad[sizeof(msg)];
	memcpy(bad, msg, sizeof(msg));
	bad[3] ^= 1;
	CHECK(crypto_sign_verify_detached(s, (const unsigned char *)bad, strlen(bad), pk) != 0, "and fails after a one-byte change");

	/* Rotation: a new key signs after the reload, the old one is still published. */
	char kid2[EV_KID_LEN];
	usleep(20000); /* a distinct mtime on coarse clocks (the size changes anyway) */
	CHECK(ev_keys_add(path, kid2, &err) && strcmp(kid2, kid1) != 0, "rotate appends a new key");
	ev_keys_refresh(k);
	ev_keys_sign(k, msg, strlen(msg), sig, kid);
	CHECK(strcmp(kid, kid2) == 0, "after the reload the new key signs");
	char got[EV_KID_LEN], pub[EV_PUB_B64_LEN];
	CHECK(ev_keys_public(k, kid1, got, pub) && strcmp(pub, pub1) == 0, "the old key is still published by kid");
	CHECK(!ev_keys_public(k, "0000000000000000", got, pub), "an unknown kid is not found");
	ev_keys_free(k);

	/* A key file its group or others may read is refused (as ssh does),
	 * by open, rotate and reload alike; the reload keeps the keys it had. */
	k = ev_keys_open(path, false, &err);
	CHECK(k != NULL, "the 0600 file opens");
	usleep(20000);
	CHECK(chmod(path, 0644) == 0, "chmod 0644");
	CHECK(ev_keys_open(path, false, &err) == NULL && err != NULL && strstr(err, "chmod 600") != NULL,
	      "a 0644 key file is refused with a clear message");
	free(err);
	err = NULL;
	CHECK(!ev_keys_add(path, kid2, &err) && err != NULL && strstr(err, "mode 0644") != NULL, "rotate refuses a 0644 file");
	free(err);
	err = NULL;
	CHECK(chmod(path, 0640) == 0, "chmod 0640");
	CHECK(ev_keys_open(path, false, &err) == NULL && err != NULL, "a group-readable key file is refused");
	free(err);
	err = NULL;
	FILE *c = fopen(path, "a"); /* a change the reload sees (size) */
	fputs("# comment\n", c);
	fclose(c);
	ev_keys_refresh(k);
	ev_keys_sign(k, msg, strlen(msg), sig, kid);
	CHECK(strcmp(kid, kid2) == 0, "a reload of a file no longer private keeps the keys it had");
	ev_keys_free(k);
	CHECK(chmod(path, 0600) == 0, "chmod 0600");

	/* A kid that does not match its key is refused. */
	FILE *f = fopen(path, "a");
	fprintf(f, "ed25519 0123456789abcdef AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
	fclose(f);
	k = ev_keys_open(path, false, &err);
	CHECK(k == NULL && err != NULL && strstr(err, "does not match") != NULL, "a forged kid is refused");
	free(err);
	err = NULL;
	f = fopen(path, "w");
	fprintf(f, "ed25519 nonsense\n");
	fclose(f);
	k = ev_keys_open(path, false, &err);
	CHECK(k == NULL && err != NULL, "a malformed line is refused");
	free(err);
	unlink(path);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_envelope();
	test_sequence();
	test_keys();
	return it_test_done();
}
