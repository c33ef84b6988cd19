/* service.c — idempotency as a service (docs/api.md §9): lease-based
 * records written by the item layer's typed lease calls (items.h,
 * src/items/lease.c), each one conditional statement, never read-then-write.
 * This file decides what the answers of those calls mean for the API.
 *
 * Record: PK "IDEMSVC#<key>", SK "METADATA", key, status (in_progress |
 * completed), fingerprint?, lease_token + lease_ms (epoch ms) while in
 * progress, response (JSON text) once completed, created_at, expires_at,
 * and the TTL attribute ttl (epoch seconds): an expired record is invisible
 * at once, so a claim of it is the claim of a new key. */
#include "idem/idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define PK_PREFIX "IDEMSVC#"

typedef struct call {
	idems_cb cb;
	void *arg;
	char pk[IDEM_KEY_MAX + sizeof(PK_PREFIX)]; /* the record's partition key */
	char token[65];
	char fp[129]; /* the claim's fingerprint, "" when none */
	long long now_ms;
} call;

/* The context of one call on the record of key; NULL after answering
 * FAILED (out of memory, or a key longer than the API allows). */
static call *call_new(const char *key, idems_cb cb, void *arg)
{
	call *k = calloc(1, sizeof(*k));
	if (k == NULL || snprintf(k->pk, sizeof(k->pk), PK_PREFIX "%s", key) >= (int)sizeof(k->pk)) {
		free(k);
		cb(IDEMS_FAILED, NULL, 0, arg);
		return NULL;
	}
	k->cb = cb;
	k->arg = arg;
	k->now_ms = util_now_us() / 1000;
	return k;
}

static void call_end(call *k, idems_status st, json_t *obj, int retry_after)
{
	k->cb(st, obj, retry_after, k->arg);
	json_decref(obj);
	free(k);
}

static void fmt_ms(char *buf, size_t len, long long ms)
{
	util_format_time(buf, len, (int64_t)ms * 1000);
}

json_t *idems_record_json(const it_lease *rec, bool claim_answer)
{
	bool busy = rec->state == IT_LEASE_IN_PROGRESS;
	/* The claim's answer has no created_at (docs/api.md §9). */
	json_t *o = json_pack("{s:s, s:s, s:s?, s:s*}", "key", rec->key, "status", busy ? "in_progress" : "completed",
			      "expires_at", rec->expires_at, "created_at", claim_answer ? NULL : rec->created_at);
	if (o == NULL)
		return NULL;
	if (rec->fingerprint != NULL)
		json_object_set_new(o, "fingerprint", json_string(rec->fingerprint));
	if (busy) {
		char t[40];
		fmt_ms(t, sizeof(t), rec->lease_ms);
		json_object_set_new(o, "lease_expires_at", json_string(t));
		if (claim_answer)
			json_object_set_new(o, "lease_token", json_string(rec->token));
	}
	if (rec->response != NULL) {
		json_t *rj = json_loads(rec->response, JSON_DECODE_ANY, NULL);
		if (rj != NULL)
			json_object_set_new(o, "response", rj);
	}
	return o;
}

idems_status idems_claim_refused(const it_lease *old, const char *fingerprint, long long now_ms, int *retry_after_s)
{
	*retry_after_s = 0;
	if (old == NULL) { /* gone meanwhile (expired or released): a retry would claim it */
		*retry_after_s = 1;
		return IDEMS_IN_USE;
	}
	if (fingerprint != NULL && old->fingerprint != NULL && strcmp(fingerprint, old->fingerprint) != 0)
		return IDEMS_MISMATCH;
	if (old->state == IT_LEASE_COMPLETED)
		return IDEMS_COMPLETED;
	long long left_ms = old->lease_ms - now_ms;
	*retry_after_s = left_ms <= 0 ? 1 : (int)((left_ms + 999) / 1000);
	return IDEMS_IN_USE;
}

idems_status idems_held_refused(const it_lease *live)
{
	return live != NULL ? IDEMS_LEASE_LOST : IDEMS_NOT_FOUND;
}

static idems_status failed(it_lease_status st)
{
	return st == IT_LEASE_UNAVAILABLE ? IDEMS_UNAVAILABLE : IDEMS_FAILED;
}

/* ---- claim ---- */

static void claimed(it_lease_status st, const it_lease *rec, void *arg)
{
	call *k = arg;
	if (st == IT_LEASE_OK && rec != NULL) {
		json_t *o = idems_record_json(rec, true);
		call_end(k, o != NULL ? IDEMS_CLAIMED : IDEMS_FAILED, o, 0);
		return;
	}
	if (st != IT_LEASE_REFUSED) {
		call_end(k, failed(st), NULL, 0);
		return;
	}
	int retry = 0;
	idems_status v = idems_claim_refused(rec, k->fp[0] != '\0' ? k->fp : NULL, k->now_ms, &retry);
	call_end(k, v, v == IDEMS_COMPLETED ? idems_record_json(rec, false) : NULL, retry);
}

void idems_claim(it_store *s, const char *tenant, const char *key, const char *fingerprint, int lease_s, int ttl_s,
		 idems_cb cb, void *arg)
{
	call *k = call_new(key, cb, arg);
	if (k == NULL)
		return;
	util_random_hex(k->token, 24);
	if (fingerprint != NULL)
		util_strlcpy(k->fp, fingerprint, sizeof(k->fp));
	it_lease_new n = {.pk = k->pk, .key = key, .fingerprint = fingerprint, .token = k->token, .now_ms = k->now_ms};
	n.lease_ms = k->now_ms + (long long)lease_s * 1000;
	n.expires_s = k->now_ms / 1000 + ttl_s;
	char created[40], exp_at[40];
	fmt_ms(created, sizeof(created), k->now_ms);
	fmt_ms(exp_at, sizeof(exp_at), n.expires_s * 1000);
	n.created_at = created;
	n.expires_at = exp_at;
	/* New (or expired, which reads as absent), or a lease that ran out —
	 * taken over only by a request with the same fingerprint. */
	it_lease_claim(s, tenant, &n, claimed, k);
}

/* ---- complete / release: conditional on holding the lease ---- */

static void held_done(it_lease_status st, const it_lease *rec, void *arg)
{
	call *k = arg;
	if (st == IT_LEASE_OK) {
		call_end(k, IDEMS_OK, rec != NULL ? idems_record_json(rec, false) : NULL, 0);
		return;
	}
	call_end(k, st == IT_LEASE_REFUSED ? idems_held_refused(rec) : failed(st), NULL, 0);
}

void idems_complete(it_store *s, const char *tenant, const char *key, const char *token, const json_t *response,
		    idems_cb cb, void *arg)
{
	call *k = call_new(key, cb, arg);
	if (k == NULL)
		return;
	char *text = json_dumps(response, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text == NULL) {
		call_end(k, IDEMS_FAILED, NULL, 0);
		return;
	}
	it_lease_complete(s, tenant, k->pk, token, text, k->now_ms, held_done, k);
	free(text);
}

static void released(it_lease_status st, const it_lease *rec, void *arg)
{
	held_done(st, st == IT_LEASE_OK ? NULL : rec, arg); /* 204: no record */
}

void idems_release(it_store *s, const char *tenant, const char *key, const char *token, idems_cb cb, void *arg)
{
	call *k = call_new(key, cb, arg);
	if (k == NULL)
		return;
	it_lease_release(s, tenant, k->pk, token, k->now_ms, released, k);
}

static void got(it_lease_status st, const it_lease *rec, void *arg)
{
	call *k = arg;
	if (st != IT_LEASE_OK) {
		call_end(k, failed(st), NULL, 0);
		return;
	}
	call_end(k, rec != NULL ? IDEMS_OK : IDEMS_NOT_FOUND, rec != NULL ? idems_record_json(rec, false) : NULL, 0);
}

void idems_get(it_store *s, const char *tenant, const char *key, idems_cb cb, void *arg)
{
	call *k = call_new(key, cb, arg);
	if (k == NULL)
		return;
	it_lease_get(s, tenant, k->pk, k->now_ms, got, k);
}
