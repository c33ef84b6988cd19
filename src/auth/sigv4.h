/* sigv4.h — AWS Signature Version 4 verification for the DynamoDB endpoint.
 * Pure functions: no I/O, no clock, no heap (the signing-key cache is the
 * caller's memory). The caller passes the request as
 * received and the clock; sigv4_parse() extracts the access key id so the
 * caller can look up (and unseal) the secret, then sigv4_verify() recomputes
 * the signature exactly as an AWS SDK does and compares in constant time.
 * Only the "Authorization: AWS4-HMAC-SHA256 ..." header form is supported
 * (DynamoDB's SDKs never use presigned query strings for JSON requests). */
#ifndef OL_AUTH_SIGV4_H
#define OL_AUTH_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* Largest tolerated distance between X-Amz-Date and the server's clock. */
#define SIGV4_MAX_SKEW_SECONDS (15 * 60)

typedef struct sigv4_req {
	const char *method;            /* "POST" */
	const char *path;              /* raw request path, e.g. "/" */
	const char *query;             /* raw query string without '?', or NULL */
	size_t nheaders;
	const char *const *hnames;     /* header names as received (any case) */
	const char *const *hvalues;    /* header values (already trimmed of outer whitespace) */
	const unsigned char *body;
	size_t body_len;
} sigv4_req;

typedef struct sigv4_auth {
	char access_key[129];
	char date[9];                  /* YYYYMMDD from the credential scope */
	char region[65];
	char service[65];
	char amz_date[17];             /* X-Amz-Date: YYYYMMDDTHHMMSSZ */
	char signed_headers[1024];     /* as in the header, lowercase, ';'-separated */
	char signature[65];            /* lowercase hex */
} sigv4_auth;

typedef enum {
	SIGV4_OK = 0,
	SIGV4_MISSING,     /* no Authorization header: MissingAuthenticationTokenException */
	SIGV4_MALFORMED,   /* unparsable header, wrong algorithm, missing X-Amz-Date, host not signed, ...: IncompleteSignatureException */
	SIGV4_EXPIRED,     /* X-Amz-Date more than 15 minutes from now: InvalidSignatureException "Signature expired: ..." */
	SIGV4_MISMATCH,    /* signature differs: InvalidSignatureException */
} sigv4_status;

/* Parses Authorization ("AWS4-HMAC-SHA256 Credential=AKID/20261121/us-east-1/
 * dynamodb/aws4_request, SignedHeaders=a;b, Signature=hex") and X-Amz-Date,
 * and checks that "host" and every other signed header are present. why gets
 * a static message (AWS's wording where known). The service and region are
 * not checked here: the caller compares out->service with "dynamodb". */
sigv4_status sigv4_parse(const sigv4_req *r, sigv4_auth *out, const char **why) OL_WARN_UNUSED;

/* Recomputes the signature with the secret access key and compares in
 * constant time (sodium_memcmp); also checks the date skew against now (epoch
 * seconds) and that the credential date matches X-Amz-Date's date. */
sigv4_status sigv4_verify(const sigv4_req *r, const sigv4_auth *a, const char *secret, int64_t now,
			  const char **why) OL_WARN_UNUSED;

/* The signing keys of the last few credential scopes verified (a worker's
 * own, no locking): the four-HMAC chain that derives a signing key runs once
 * per secret, access key, day, region and service instead of per request.
 * An entry is found by a SHA-256 tag of all five, so a rotated secret or a
 * new day never finds an old key. Zero-initialise before first use. */
#define SIGV4_KEY_CACHE_SLOTS 8
typedef struct sigv4_key_cache {
	struct {
		unsigned char tag[32];
		unsigned char key[32];
		bool used;
	} slot[SIGV4_KEY_CACHE_SLOTS];
	unsigned next; /* the slot a miss replaces (round robin) */
	unsigned long hits, misses;
} sigv4_key_cache;

/* sigv4_verify with the signing key taken from (or added to) cache. */
sigv4_status sigv4_verify_cached(const sigv4_req *r, const sigv4_auth *a, const char *secret, int64_t now,
				 sigv4_key_cache *cache, const char **why) OL_WARN_UNUSED;

/* AWS's error __type for a status (without the "com.amazon.coral.service#"
 * prefix): "MissingAuthenticationTokenException",
 * "IncompleteSignatureException" or "InvalidSignatureException"; NULL for
 * SIGV4_OK. */
const char *sigv4_error_type(sigv4_status st);

#endif
