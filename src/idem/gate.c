/* gate.c — the Idempotency-Key gate: one record per (tenant, key), item
 * PK "IDEM#<key>", SK "METADATA" of the tenant's system table.
 *
 * The claim (it_claim_arm) rides on the first batch of the request's
 * transaction, the saved response on its last, with COMMIT: the key, the
 * effects and the response commit together or not at all, and the gate
 * costs one round trip (the save) on top of the handler's own. A request
 * that finds a committed record replays it from the claim's answer, in the
 * same single round trip. */
#include "idem/idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "items/value.h"
#include "util/util.h"

struct idem_gate {
	it_store *store;
	idem_hints *hints;
	void (*probe_cb)(bool run_handler, void *arg);
	void (*armed)(bool ok, void *arg);
	void *armed_arg;
	void *probe_arg;
	db_tx *tx;
	char tenant[33];
	char key[IDEM_KEY_MAX + 1];
	char fp[65];
	int ttl_s, wait_ms;
	it_claim claim;
	idem_saved replay;
	idem_saved resp;
	void (*cb)(const idem_result *res, void *arg);
	void *cb_arg;
};

void idem_saved_clear(idem_saved *s)
{
	json_decref(s->headers);
	free(s->body);
	memset(s, 0, sizeof(*s));
}

bool idem_saveable(int status)
{
	switch (status) {
	case 400:
	case 401:
	case 403:
	case 413:
	case 415:
	case 429:
		return false;
	default:
		return status >= 200 && status < 500;
	}
}

idem_gate *idem_gate_new(it_store *s, db_pool *db, idem_hints *hints, const char *tenant, const char *key,
			 const char *fingerprint, int ttl_s, int wait_ms)
{
	idem_gate *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->tx = db_tx_new(db);
	if (g->tx == NULL) {
		free(g);
		return NULL;
	}
	g->store = s;
	g->hints = hints;
	util_strlcpy(g->tenant, tenant, sizeof(g->tenant));
	util_strlcpy(g->key, key, sizeof(g->key));
	util_strlcpy(g->fp, fingerprint, sizeof(g->fp));
	g->ttl_s = ttl_s;
	g->wait_ms = wait_ms;
	return g;
}

/* A string attribute value; false when out of memory. */
static bool set_s(it_value *m, const char *name, const char *p, size_t len)
{
	it_value *v = it_value_new_str(IT_S, p, len);
	if (v != NULL && it_map_set(m, name, strlen(name), v))
		return true;
	it_value_free(v);
	return false;
}

/* The record's key {PK: "IDEM#<key>", SK: "METADATA"}, typed; NULL when
 * out of memory. */
static it_value *record_key(const idem_gate *g)
{
	char pk[IDEM_KEY_MAX + 8];
	int n = snprintf(pk, sizeof(pk), "IDEM#%s", g->key);
	it_value *k = it_value_new_map();
	if (k != NULL && set_s(k, "PK", pk, (size_t)n) && set_s(k, "SK", "METADATA", 8))
		return k;
	it_value_free(k);
	return NULL;
}

void idem_gate_arm(idem_gate *g, void (*armed)(bool ok, void *arg), void *arg)
{
	g->armed = armed;
	g->armed_arg = arg;
	it_value *item = record_key(g);
	if (item == NULL || !set_s(item, "type", "idempotency", 11) || !set_s(item, "fingerprint", g->fp, strlen(g->fp)) ||
	    !set_s(item, "status", "in_progress", 11)) {
		it_value_free(item);
		armed(false, arg);
		return;
	}
	it_claim_arm(g->store, g->tx, g->tenant, IT_SYSTEM_TABLE, item, g->ttl_s, g->wait_ms, &g->claim, armed, arg);
	it_value_free(item);
}

bool idem_gate_hinted(const idem_gate *g)
{
	return idem_hints_has(g->hints, g->tenant, g->key, util_now_us() / 1000000);
}

void idem_gate_on_armed(idem_gate *g, void (*armed)(bool ok, void *arg), void *arg)
{
	g->armed = armed;
	g->armed_arg = arg;
}

static void peeked(void *arg)
{
	idem_gate *g = arg;
	if (g->claim.outcome == IT_CLAIM_TAKEN) {
		g->probe_cb(false, g->probe_arg); /* decided by the record */
		return;
	}
	/* No live record after all: the normal way, claim and handler. */
	it_claim_clear(&g->claim);
	idem_gate_arm(g, g->armed, g->armed_arg);
}

void idem_gate_probe(idem_gate *g, void (*cb)(bool run_handler, void *arg), void *arg)
{
	g->probe_cb = cb;
	g->probe_arg = arg;
	it_value *key = record_key(g);
	if (key == NULL) {
		/* out of memory: the normal way, which reports it */
		idem_gate_arm(g, g->armed, g->armed_arg);
		return;
	}
	it_claim_peek(g->store, g->tenant, IT_SYSTEM_TABLE, key, &g->claim, peeked, g);
	it_value_free(key);
}

db_tx *idem_gate_tx(idem_gate *g)
{
	return g->tx;
}

const idem_saved *idem_gate_response(const idem_gate *g)
{
	return &g->resp;
}

void idem_gate_free(idem_gate *g)
{
	if (g == NULL)
		return;
	db_tx_free(g->tx);
	it_claim_clear(&g->claim);
	idem_saved_clear(&g->replay);
	idem_saved_clear(&g->resp);
	free(g);
}

/* An attribute of a map of the record, and a string attribute of a type. */
static const it_value *attr(const it_value *m, const char *name)
{
	return m != NULL && m->type == IT_M ? it_map_get(m, name, strlen(name)) : NULL;
}

static const it_str *attr_str(const it_value *m, const char *name, it_type t)
{
	const it_value *v = attr(m, name);
	return v != NULL && v->type == t ? &v->u.s : NULL;
}

/* The saved response of a committed record. */
static bool parse_saved(const it_value *item, idem_saved *out)
{
	const it_value *m = attr(item, "response"), *hm = attr(m, "headers");
	const it_str *status = attr_str(m, "status", IT_N), *body = attr_str(m, "body", IT_S);
	if (status == NULL || body == NULL)
		return false;
	out->status = atoi(status->ptr);
	out->body = malloc(body->len + 1);
	if (out->body != NULL)
		memcpy(out->body, body->ptr, body->len + 1);
	out->len = body->len;
	out->headers = json_object();
	for (size_t i = 0; hm != NULL && hm->type == IT_M && out->headers != NULL && i < hm->u.m.n; i++) {
		const it_value *v = hm->u.m.v[i].value;
		if (v->type == IT_S)
			json_object_set_new(out->headers, hm->u.m.v[i].name.ptr, json_string(v->u.s.ptr));
	}
	return out->body != NULL && out->headers != NULL;
}

static void finish(idem_gate *g, idem_verdict v, long long expires)
{
	if ((v == IDEM_REPLAY || (v == IDEM_SEND && expires > 0)) && g->hints != NULL)
		idem_hints_put(g->hints, g->tenant, g->key, expires);
	idem_result r = {.verdict = v, .expires = expires, .waited = g->claim.waited};
	if (v == IDEM_REPLAY)
		r.replay = &g->replay;
	r.claimed = g->claim.outcome == IT_CLAIM_CLAIMED;
	g->cb(&r, g->cb_arg);
}

/* The claim has run: decides for any outcome but CLAIMED. Returns false
 * when the claim is ours and the caller goes on. */
static bool decided_by_claim(idem_gate *g)
{
	const it_value *item = g->claim.item;
	switch (g->claim.outcome) {
	case IT_CLAIM_CLAIMED:
		return false;
	case IT_CLAIM_TAKEN: {
		const it_str *fp = attr_str(item, "fingerprint", IT_S), *st = attr_str(item, "status", IT_S);
		if (fp == NULL || strcmp(fp->ptr, g->fp) != 0)
			finish(g, IDEM_MISMATCH, g->claim.expires);
		else if (st == NULL || strcmp(st->ptr, "completed") != 0 || !parse_saved(item, &g->replay))
			finish(g, IDEM_IN_USE, g->claim.expires);
		else
			finish(g, IDEM_REPLAY, g->claim.expires);
		return true;
	}
	case IT_CLAIM_BUSY:
		finish(g, IDEM_IN_USE, 0);
		return true;
	case IT_CLAIM_FAILED:
	case IT_CLAIM_PENDING:
	default:
		finish(g, IDEM_UNAVAILABLE, 0);
		return true;
	}
}

static void saved(it_set_status st, void *arg)
{
	idem_gate *g = arg;
	if (g->claim.outcome != IT_CLAIM_CLAIMED) {
		decided_by_claim(g);
		return;
	}
	if (st != IT_SET_OK || !db_tx_committed(g->tx)) {
		finish(g, st == IT_SET_UNAVAILABLE || st == IT_SET_OK ? IDEM_UNAVAILABLE : IDEM_FAILED, 0);
		return;
	}
	finish(g, IDEM_SEND, g->claim.expires);
}

/* The record's completed state, as typed attributes: status "completed" and
 * response {status: N, headers: M of S, body: S}. NULL when out of memory. */
static it_value *completed_attrs(const idem_saved *resp)
{
	it_value *attrs = it_value_new_map(), *r = it_value_new_map(), *hm = it_value_new_map();
	char status[8];
	int n = snprintf(status, sizeof(status), "%d", resp->status);
	it_value *code = it_value_new_str(IT_N, status, (size_t)n);
	bool ok = attrs != NULL && r != NULL && hm != NULL && code != NULL;
	const char *name;
	json_t *v;
	json_object_foreach(resp->headers, name, v)
	{
		if (ok && json_is_string(v))
			ok = set_s(hm, name, json_string_value(v), json_string_length(v));
	}
	ok = ok && it_map_set(r, "status", 6, code);
	code = ok ? NULL : code;
	ok = ok && it_map_set(r, "headers", 7, hm);
	hm = ok ? NULL : hm;
	ok = ok && set_s(r, "body", resp->body != NULL ? resp->body : "", resp->body != NULL ? resp->len : 0) &&
	     it_map_set(attrs, "response", 8, r);
	r = ok ? NULL : r;
	ok = ok && set_s(attrs, "status", "completed", 9);
	it_value_free(code);
	it_value_free(hm);
	it_value_free(r);
	if (!ok) {
		it_value_free(attrs);
		return NULL;
	}
	return attrs;
}

static void save(idem_gate *g)
{
	it_value *attrs = completed_attrs(&g->resp);
	if (attrs == NULL) {
		finish(g, IDEM_FAILED, 0);
		return;
	}
	it_claim_set(g->tx, &g->claim, attrs, DB_TX_COMMIT, saved, g);
	it_value_free(attrs);
}

void idem_gate_finish(idem_gate *g, idem_saved *resp, void (*cb)(const idem_result *res, void *arg), void *arg)
{
	g->cb = cb;
	g->cb_arg = arg;
	idem_saved_clear(&g->resp);
	g->resp = *resp;
	memset(resp, 0, sizeof(*resp));
	if (g->claim.outcome != IT_CLAIM_PENDING && g->claim.outcome != IT_CLAIM_CLAIMED) {
		decided_by_claim(g);
		return;
	}
	if (!idem_saveable(g->resp.status)) {
		/* Not saved: the effects roll back with the claim (db_tx_free),
		 * and the key stays free. A 5xx that follows a claim that never
		 * ran is sent as it is. */
		finish(g, IDEM_SEND, 0);
		return;
	}
	/* Saved: with the claim still unsent (a handler that answered without
	 * touching the database) the save carries it. */
	save(g);
}
