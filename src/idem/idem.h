/* idem.h — idempotency: the Idempotency-Key gate of the API's POST routes
 * and the idempotency-as-a-service records (docs/api.md §2, §9;
 * docs/idempotency.md). Records are items of the tenant's system table,
 * written through the item layer. */
#ifndef OL_IDEM_H
#define OL_IDEM_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "db/db.h"
#include "items/items.h"

#define IDEM_KEY_MAX 255

/* ---- the header and the fingerprint (key.c) ---------------------------- */

typedef enum { IDEM_KEY_OK = 0, IDEM_KEY_MISSING, IDEM_KEY_INVALID } idem_key_status;

/* Parses the values of every Idempotency-Key field of a request: exactly
 * one, a Structured Field string ("abc") or a bare token (abc), 1–255
 * visible ASCII characters. out gets the key without quotes. */
idem_key_status idem_parse_key(const char *const *values, size_t n, char out[IDEM_KEY_MAX + 1]);

/* The canonical text of a JSON value: object keys sorted, no insignificant
 * whitespace (malloc'd). */
char *idem_canonical_json(const json_t *j);

/* BLAKE2b-256 of method, path and the canonical body, in hex. */
void idem_fingerprint(const char *method, const char *path, const json_t *body, char hex[65]);

/* ---- the gate (gate.c) ---------------------------------------------------- */

/* A response as it is saved and replayed. */
typedef struct idem_saved {
	int status;
	json_t *headers; /* {"Content-Type": "...", ...} */
	char *body;
	size_t len;
} idem_saved;

void idem_saved_clear(idem_saved *s);

/* Responses saved and replayed: all but 400, 401, 403, 413, 415, 429 and
 * 5xx, which leave the key free. */
bool idem_saveable(int status);

typedef enum {
	IDEM_SEND,        /* send the handler's response (saved when expires > 0) */
	IDEM_REPLAY,      /* send the saved response of the first request */
	IDEM_IN_USE,      /* 409 idempotency_key_in_use */
	IDEM_MISMATCH,    /* 422 idempotency_key_reused */
	IDEM_UNAVAILABLE, /* 503: nothing was committed, the key is free */
	IDEM_FAILED,      /* 500: nothing was committed, the key is free */
} idem_verdict;

typedef struct idem_result {
	idem_verdict verdict;
	const idem_saved *replay; /* IDEM_REPLAY */
	long long expires;        /* epoch seconds when a record exists, else 0 */
	bool claimed, waited;     /* for the metrics */
} idem_result;

typedef struct idem_gate idem_gate;

/* Keys this worker saw completed (hints.c): a replay of one of them skips
 * the handler. Only a guess; the claim decides. */
typedef struct idem_hints idem_hints;
idem_hints *idem_hints_new(void);
void idem_hints_free(idem_hints *hs);
void idem_hints_put(idem_hints *hs, const char *tenant, const char *key, long long expires);
bool idem_hints_has(const idem_hints *hs, const char *tenant, const char *key, long long now);

/* hints may be NULL. */
idem_gate *idem_gate_new(it_store *s, db_pool *db, idem_hints *hints, const char *tenant, const char *key,
			 const char *fingerprint, int ttl_s, int wait_ms);
/* Prepares the claim; armed runs when the request's handler may start (ok
 * false: the database cannot be reached or the table is missing). */
void idem_gate_arm(idem_gate *g, void (*armed)(bool ok, void *arg), void *arg);
/* True when this key is probably completed already. Then, instead of
 * idem_gate_arm, idem_gate_probe reads the record (one plain SELECT, no
 * handler, no transaction): with a live record cb(false) and
 * idem_gate_finish decides from it; without one the gate arms as usual and
 * the armed callback given to it runs. */
bool idem_gate_hinted(const idem_gate *g);
void idem_gate_probe(idem_gate *g, void (*cb)(bool run_handler, void *arg), void *arg);
/* Records the armed callback for a probe that falls back to arming. */
void idem_gate_on_armed(idem_gate *g, void (*armed)(bool ok, void *arg), void *arg);
/* The transaction the request's effects must run in: the claim rides on
 * its first batch, the saved response on its last. */
db_tx *idem_gate_tx(idem_gate *g);
/* The handler answered resp (taken): saves it with the effects and
 * commits, or finds that another request owns the key. cb runs once. */
void idem_gate_finish(idem_gate *g, idem_saved *resp, void (*cb)(const idem_result *res, void *arg), void *arg);
/* The handler's response, as given to idem_gate_finish (for IDEM_SEND). */
const idem_saved *idem_gate_response(const idem_gate *g);
void idem_gate_free(idem_gate *g);

/* ---- idempotency as a service (service.c) -------------------------------
 *
 * Lease-based records for callers guarding their own side effect: PK
 * "IDEMSVC#<key>". A claim succeeds when the key is new, its record
 * expired, or its lease ran out (the AWS Powertools condition); only the
 * lease holder completes or releases. */

typedef enum {
	IDEMS_CLAIMED,   /* 201 */
	IDEMS_COMPLETED, /* 200: record */
	IDEMS_OK,        /* 200 / 204 */
	IDEMS_IN_USE,    /* 409 idempotency_key_in_use (retry_after_s) */
	IDEMS_MISMATCH,  /* 422 idempotency_key_reused */
	IDEMS_LEASE_LOST,/* 409 lease_lost */
	IDEMS_NOT_FOUND, /* 404 */
	IDEMS_UNAVAILABLE,
	IDEMS_FAILED,
} idems_status;

/* obj: the record as the API shows it (with lease_token only on a claim). */
typedef void (*idems_cb)(idems_status st, json_t *obj, int retry_after_s, void *arg);

void idems_claim(it_store *s, const char *tenant, const char *key, const char *fingerprint, int lease_s, int ttl_s,
		 idems_cb cb, void *arg);
/* response: {"status", "headers"?, "body"?} as validated by the caller. */
void idems_complete(it_store *s, const char *tenant, const char *key, const char *token, const json_t *response,
		    idems_cb cb, void *arg);
void idems_release(it_store *s, const char *tenant, const char *key, const char *token, idems_cb cb, void *arg);
void idems_get(it_store *s, const char *tenant, const char *key, idems_cb cb, void *arg);

/* The decisions, from the typed answers of the lease calls (items.h):
 * a claim refused by the live record old (NULL: it vanished meanwhile) for
 * a request with fingerprint (NULL: none) at now_ms — IN_USE (with the
 * seconds its lease has left, at least 1), MISMATCH or COMPLETED; a
 * complete or release refused with the live record (LEASE_LOST) or none
 * (NOT_FOUND); the record as the API shows it (lease_token only in a
 * claim's answer, which has no created_at). */
idems_status idems_claim_refused(const it_lease *old, const char *fingerprint, long long now_ms, int *retry_after_s);
idems_status idems_held_refused(const it_lease *live);
json_t *idems_record_json(const it_lease *rec, bool claim_answer);

#endif
