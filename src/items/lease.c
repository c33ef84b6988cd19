/* lease.c — the lease records of idempotency as a service (items.h,
 * src/idem/service.c): items of the tenant's system table written and read
 * by four prepared statements, with typed parameters and typed results. No
 * request is built, no expression parsed: what the statements do is fixed
 * here, once.
 *
 * Each write is one statement that decides and writes at once (an INSERT
 * ... ON CONFLICT DO UPDATE WHERE, an UPDATE or a DELETE with its
 * condition), never a read and then a write; the same statement reads the
 * record as it is after it, so a refusal comes with the record that caused
 * it. Expiry is the TTL attribute "ttl" (epoch seconds, items.expires_at):
 * an expired record is absent for every statement here, as for the item
 * layer's own operations. Each statement runs on its own and locks the one
 * row it writes until its implicit commit; the read locks nothing. */
#include "items/items_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util/util.h"

/* The record of r.item as typed columns: what it_lease holds. */
#define REC_COLS                                                                                                         \
	"r.item IS NOT NULL, r.item->'key'->>'S', r.item->'status'->>'S', r.item->'fingerprint'->>'S',"                 \
	" r.item->'lease_token'->>'S', r.item->'lease_ms'->>'N', r.item->'response'->>'S', r.item->'created_at'->>'S',"  \
	" r.item->'expires_at'->>'S'"
/* The live item at ($1, $2, $3), now ($NOW ms) by the caller's clock. */
#define LIVE(now) "SELECT o.item FROM items o WHERE o.table_id = $1::bigint AND o.pk = $2 AND o.sk = $3" \
	" AND (o.expires_at IS NULL OR o.expires_at > " now "::bigint / 1000)"
#define LIVE_COND(now) "(i.expires_at IS NULL OR i.expires_at > " now "::bigint / 1000)"
#define KEY_COND "i.table_id = $1::bigint AND i.pk = $2 AND i.sk = $3"
/* The answer of a write: whether it was done, then the record after it
 * (the one written, or the live one that refused it). */
#define ANSWER(now) " SELECT EXISTS (SELECT 1 FROM w), " REC_COLS \
	" FROM (SELECT coalesce((SELECT item FROM w), (" LIVE(now) ")) AS item) r"

/* $4 PK, $5 key, $6 fingerprint (NULL: none), $7 token, $8 lease end (ms),
 * $9 expiry (s), $10 created_at, $11 expires_at, $12 now (ms). A new key, an
 * expired record, or an in-progress record whose lease ran out and whose
 * fingerprint is not another one. */
static const db_stmt stmt_claim = {
	"it_lease_claim",
	"WITH n AS (SELECT jsonb_strip_nulls(jsonb_build_object("
	"'PK', jsonb_build_object('S', $4::text), 'SK', '{\"S\":\"METADATA\"}'::jsonb,"
	" 'key', jsonb_build_object('S', $5::text), 'status', '{\"S\":\"in_progress\"}'::jsonb,"
	" 'fingerprint', CASE WHEN $6::text IS NOT NULL THEN jsonb_build_object('S', $6::text) END,"
	" 'lease_token', jsonb_build_object('S', $7::text), 'lease_ms', jsonb_build_object('N', $8::bigint::text),"
	" 'ttl', jsonb_build_object('N', $9::bigint::text), 'created_at', jsonb_build_object('S', $10::text),"
	" 'expires_at', jsonb_build_object('S', $11::text))) AS item),"
	" w AS (INSERT INTO items AS i (table_id, pk, sk, item, expires_at)"
	" SELECT $1::bigint, $2, $3, n.item, $9::bigint FROM n"
	" ON CONFLICT (table_id, pk, sk) DO UPDATE SET item = EXCLUDED.item, expires_at = EXCLUDED.expires_at"
	" WHERE NOT " LIVE_COND("$12") " OR (i.item->'status'->>'S' = 'in_progress'"
	" AND (i.item->'lease_ms'->>'N')::numeric < $12::bigint"
	" AND ($6::text IS NULL OR NOT i.item ? 'fingerprint' OR i.item->'fingerprint'->>'S' = $6::text))"
	" RETURNING i.item)" ANSWER("$12"),
	12};

/* $4 token, $5 response (JSON text), $6 now (ms): the holder's record
 * becomes completed, its lease gone. */
static const db_stmt stmt_complete = {
	"it_lease_complete",
	"WITH w AS (UPDATE items i SET item = (i.item - 'lease_token' - 'lease_ms')"
	" || jsonb_build_object('status', '{\"S\":\"completed\"}'::jsonb, 'response', jsonb_build_object('S', $5::text))"
	" WHERE " KEY_COND " AND " LIVE_COND("$6") " AND i.item->'status'->>'S' = 'in_progress'"
	" AND i.item->'lease_token'->>'S' = $4 RETURNING i.item)" ANSWER("$6"),
	6};

/* $4 token, $5 now (ms): the holder's record deleted. */
static const db_stmt stmt_release = {
	"it_lease_release",
	"WITH w AS (DELETE FROM items i WHERE " KEY_COND " AND " LIVE_COND("$5") " AND i.item->'status'->>'S' = 'in_progress'"
	" AND i.item->'lease_token'->>'S' = $4 RETURNING i.item)" ANSWER("$5"),
	5};

/* $4 now (ms). A plain read of the primary: consistent. */
static const db_stmt stmt_get = {
	"it_lease_get", "SELECT true, " REC_COLS " FROM (SELECT (" LIVE("$4") ") AS item) r", 4};

const db_stmt *const it_lease_stmts[] = {&stmt_claim, &stmt_complete, &stmt_release, &stmt_get, NULL};

typedef struct lease_ctx {
	const db_stmt *stmt;
	char *pk;
	const char *params[12]; /* [0..2] filled when the table is known */
	char *owned[12];        /* copies of the caller's values */
	it_lease_status st;
	bool has_rec;
	it_lease rec;
	char *cols[8];          /* the record's strings, owned */
	it_lease_cb cb;
	void *arg;
} lease_ctx;

static void ctx_free(lease_ctx *c)
{
	free(c->pk);
	for (int i = 0; i < 12; i++)
		free(c->owned[i]);
	for (int i = 0; i < 8; i++)
		free(c->cols[i]);
	free(c);
}

static char *col(PGresult *r, int i)
{
	return PQgetisnull(r, 0, i) ? NULL : strdup(PQgetvalue(r, 0, i));
}

/* The typed record from the answer's columns 1..9; false when a stored
 * record cannot be read as one (or out of memory). */
static bool read_rec(lease_ctx *c, PGresult *r)
{
	if (strcmp(PQgetvalue(r, 0, 1), "t") != 0)
		return true; /* no record */
	for (int i = 0; i < 8; i++) {
		c->cols[i] = col(r, 2 + i);
		if (c->cols[i] == NULL && !PQgetisnull(r, 0, 2 + i))
			return false;
	}
	const char *status = c->cols[1];
	it_lease *l = &c->rec;
	l->key = c->cols[0];
	l->state = status == NULL ? 0
		   : strcmp(status, "in_progress") == 0 ? IT_LEASE_IN_PROGRESS
		   : strcmp(status, "completed") == 0 ? IT_LEASE_COMPLETED
						      : 0;
	l->fingerprint = c->cols[2];
	l->token = c->cols[3];
	l->lease_ms = c->cols[4] != NULL ? strtoll(c->cols[4], NULL, 10) : 0;
	l->response = c->cols[5];
	l->created_at = c->cols[6];
	l->expires_at = c->cols[7];
	if (l->key == NULL || l->state == 0 || (l->state == IT_LEASE_IN_PROGRESS && l->token == NULL))
		return false;
	c->has_rec = true;
	return true;
}

static void ran(db_result *res, void *arg)
{
	it_op *op = arg;
	lease_ctx *c = op->cb_arg;
	PGresult *r = res->status == DB_OK ? res->results[0] : NULL;
	if (r == NULL) {
		c->st = db_retryable(res) ? IT_LEASE_UNAVAILABLE : IT_LEASE_FAILED;
		if (c->st == IT_LEASE_FAILED)
			log_error("lease_statement_failed", "{s:s, s:s, s:s}", "statement", c->stmt->name, "sqlstate", res->sqlstate,
				  "message", res->message != NULL ? res->message : "");
	} else if (PQntuples(r) != 1 || PQnfields(r) != 10) {
		c->st = IT_LEASE_FAILED;
	} else if (!read_rec(c, r)) {
		log_error("lease_record_unreadable", "{s:s}", "statement", c->stmt->name);
		c->st = IT_LEASE_FAILED;
	} else {
		c->st = strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? IT_LEASE_OK : IT_LEASE_REFUSED;
	}
	it_finish_ok(op, NULL);
}

static void on_table(it_op *op, it_table *t)
{
	lease_ctx *c = op->cb_arg;
	it_value *key = it_value_new_map();
	it_value *pk = it_value_new_str(IT_S, c->pk, strlen(c->pk)), *sk = it_value_new_str(IT_S, "METADATA", 8);
	bool ok = key != NULL && pk != NULL && sk != NULL && it_map_set(key, "PK", 2, pk);
	pk = ok ? NULL : pk;
	ok = ok && it_map_set(key, "SK", 2, sk);
	sk = ok ? NULL : sk;
	it_value_free(pk);
	it_value_free(sk);
	if (!ok) {
		it_value_free(key);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	char *pkenc = NULL, *skenc = NULL;
	bool keyed = it_item_keys(op, t, key, &pkenc, &skenc);
	it_value_free(key);
	if (!keyed)
		return;
	char tid[24];
	snprintf(tid, sizeof(tid), "%lld", (long long)t->id);
	c->params[0] = tid;
	c->params[1] = pkenc;
	c->params[2] = skenc;
	db_batch *b = db_batch_new();
	ok = b != NULL && db_batch_add(b, c->stmt, c->params);
	free(pkenc);
	free(skenc);
	c->params[0] = c->params[1] = c->params[2] = NULL;
	it_exec(op, b, ok, NULL, ran);
}

static void replied(it_reply *r, void *arg)
{
	lease_ctx *c = arg;
	if (r->err_type != NULL) {
		c->st = r->retryable ? IT_LEASE_UNAVAILABLE : IT_LEASE_FAILED;
		if (!r->retryable)
			log_error("lease_failed", "{s:s, s:s}", "type", r->err_type, "message", r->err_msg ? r->err_msg : "");
	}
	bool rec = c->has_rec && (c->st == IT_LEASE_OK || c->st == IT_LEASE_REFUSED);
	c->cb(c->st, rec ? &c->rec : NULL, c->arg);
	ctx_free(c);
}

/* Runs stmt with values[3..] (n of them, copied; NULL is SQL NULL) on the
 * record at pk. */
static void run(it_store *s, const char *tenant, const char *pk, const db_stmt *stmt, const char *const *values, int n,
		it_lease_cb cb, void *arg)
{
	lease_ctx *c = calloc(1, sizeof(*c));
	bool ok = c != NULL && (c->pk = strdup(pk)) != NULL;
	for (int i = 0; ok && i < n; i++) {
		if (values[i] != NULL && (c->owned[3 + i] = strdup(values[i])) == NULL)
			ok = false;
		c->params[3 + i] = c->owned[3 + i];
	}
	it_op *op = ok ? it_internal_op(s, tenant, stmt->name, replied, c) : NULL;
	if (op == NULL) {
		if (c != NULL)
			ctx_free(c);
		cb(IT_LEASE_FAILED, NULL, arg);
		return;
	}
	c->stmt = stmt;
	c->cb = cb;
	c->arg = arg;
	it_table_get(op, IT_SYSTEM_TABLE, on_table);
}

static void ll(char buf[24], long long v)
{
	snprintf(buf, 24, "%lld", v);
}

void it_lease_claim(it_store *s, const char *tenant, const it_lease_new *n, it_lease_cb cb, void *arg)
{
	char lease[24], exp[24], now[24];
	ll(lease, n->lease_ms);
	ll(exp, n->expires_s);
	ll(now, n->now_ms);
	const char *v[9] = {n->pk, n->key, n->fingerprint, n->token, lease, exp, n->created_at, n->expires_at, now};
	run(s, tenant, n->pk, &stmt_claim, v, 9, cb, arg);
}

void it_lease_complete(it_store *s, const char *tenant, const char *pk, const char *token, const char *response,
		       long long now_ms, it_lease_cb cb, void *arg)
{
	char now[24];
	ll(now, now_ms);
	const char *v[3] = {token, response, now};
	run(s, tenant, pk, &stmt_complete, v, 3, cb, arg);
}

void it_lease_release(it_store *s, const char *tenant, const char *pk, const char *token, long long now_ms,
		      it_lease_cb cb, void *arg)
{
	char now[24];
	ll(now, now_ms);
	const char *v[2] = {token, now};
	run(s, tenant, pk, &stmt_release, v, 2, cb, arg);
}

void it_lease_get(it_store *s, const char *tenant, const char *pk, long long now_ms, it_lease_cb cb, void *arg)
{
	char now[24];
	ll(now, now_ms);
	const char *v[1] = {now};
	run(s, tenant, pk, &stmt_get, v, 1, cb, arg);
}
