/* claim.c — the claim of an idempotency key as the prefix of a caller's
 * transaction (items.h). The item is stored in canonical form, as every
 * write of the item layer stores it; the SQL side (ol_it_claim in
 * sql/004_idempotency.sql) decides claim or replay in one statement and
 * never locks a live item, so replays of one key do not queue behind each
 * other. */
#include "items/items_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

typedef struct arm_ctx {
	db_tx *tx;
	it_value *item;
	int ttl_s, wait_ms;
	it_claim *out;
	void (*armed)(bool ok, void *arg);
	void *arg;
} arm_ctx;

static const db_stmt stmt_claim = {
	"it_claim",
	"SELECT outcome, item::text, expires, waited FROM ol_it_claim($1::bigint, $2, $3, $4::jsonb, $5::int, $6::int, $7)", 7};
static const db_stmt stmt_guard = {"it_claim_guard", "SELECT ol_it_claim_guard($1)", 1};

void it_claim_clear(it_claim *c)
{
	it_value_free(c->item);
	if (c->table != NULL)
		it_table_unref(c->table);
	free(c->pkenc);
	free(c->skenc);
	memset(c, 0, sizeof(*c));
}

static void prefix_done(db_result *res, void *arg)
{
	it_claim *out = arg;
	PGresult *r = res->nresults > 0 && res->results != NULL ? res->results[0] : NULL;
	if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		const char *o = PQgetvalue(r, 0, 0);
		out->outcome = strcmp(o, "claimed") == 0 ? IT_CLAIM_CLAIMED
			       : strcmp(o, "taken") == 0 ? IT_CLAIM_TAKEN
							 : IT_CLAIM_BUSY;
		out->waited = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
		/* Only a live item of another request is read back: ours is what
		 * the caller built (parsing it cost a hundred allocations a claim). */
		if (out->outcome == IT_CLAIM_TAKEN && !PQgetisnull(r, 0, 1))
			out->item = it_item_from_text(PQgetvalue(r, 0, 1));
		if (!PQgetisnull(r, 0, 2))
			out->expires = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		if (out->outcome == IT_CLAIM_TAKEN && out->item == NULL)
			out->outcome = IT_CLAIM_FAILED;
		return;
	}
	/* 55P03: the other claimer kept the key past wait_ms. */
	if (res->status == DB_ERR_QUERY && strcmp(res->sqlstate, "55P03") == 0) {
		out->outcome = IT_CLAIM_BUSY;
		out->waited = true;
	}
	else
		out->outcome = IT_CLAIM_FAILED;
}

static void armed_reply(it_reply *r, void *arg)
{
	arm_ctx *c = arg;
	bool ok = r->err_type == NULL;
	if (!ok)
		c->out->outcome = IT_CLAIM_FAILED;
	c->armed(ok, c->arg);
	it_value_free(c->item);
	free(c);
}

static void table_loaded(it_op *op, it_table *t)
{
	arm_ctx *c = op->cb_arg;
	const it_value *item = c->item;
	char *pkenc = NULL, *skenc = NULL, *text = NULL;
	db_batch *b = NULL;
	if (!it_item_keys(op, t, item, &pkenc, &skenc))
		return;
	json_t *canon = it_item_to_json(item);
	text = canon != NULL ? json_dumps(canon, JSON_COMPACT) : NULL;
	json_decref(canon);
	unsigned char raw[16];
	char nonce[33];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(nonce, sizeof(nonce), raw, sizeof(raw));
	char tid[24], ttl[16], wait[16];
	snprintf(tid, sizeof(tid), "%lld", (long long)t->id);
	snprintf(ttl, sizeof(ttl), "%d", c->ttl_s);
	snprintf(wait, sizeof(wait), "%d", c->wait_ms);
	const char *p[7] = {tid, pkenc, skenc, text, ttl, wait, nonce};
	const char *g[1] = {nonce};
	b = db_batch_new();
	bool ok = text != NULL && b != NULL && db_batch_add(b, &stmt_claim, p) && db_batch_add(b, &stmt_guard, g);
	free(text);
	if (!ok) {
		free(pkenc);
		free(skenc);
		db_batch_free(b);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	db_tx_set_prefix(c->tx, b, prefix_done, c->out);
	c->out->table = t;
	t->refs++;
	c->out->pkenc = pkenc;
	c->out->skenc = skenc;
	it_finish_ok(op, NULL);
}

/* ---- set: attributes of the claimed item, typed ---- */

/* jsonb's || replaces the top-level attributes it names: an UpdateItem's
 * SET of whole attributes, without its request and expression. */
static const db_stmt stmt_set = {
	"it_claim_set", "UPDATE items SET item = item || $4::jsonb WHERE table_id = $1::bigint AND pk = $2 AND sk = $3", 4};

typedef struct set_ctx {
	void (*cb)(it_set_status st, void *arg);
	void *arg;
} set_ctx;

/* A key attribute of the table or of one of its indexes, or its TTL
 * attribute: what a SET of the claimed item may not change. */
static bool same_name(const char *a, const it_str *b)
{
	return a != NULL && strlen(a) == b->len && memcmp(a, b->ptr, b->len) == 0;
}

static bool protected_attr(const it_table *t, const it_str *name)
{
	if (same_name(t->pk.name, name) || (t->has_sk && same_name(t->sk.name, name)) || same_name(t->ttl_attr, name))
		return true;
	for (int i = 0; i < t->nidx; i++) {
		const it_keydef *pk = it_index_key(t, &t->idx[i], false), *sk = it_index_key(t, &t->idx[i], true);
		if ((pk != NULL && same_name(pk->name, name)) || (sk != NULL && same_name(sk->name, name)))
			return true;
	}
	return false;
}

static void set_done(db_result *res, void *arg)
{
	set_ctx *c = arg;
	it_set_status st = IT_SET_FAILED;
	if (res->status == DB_OK) {
		PGresult *r = res->results[res->nresults - 1];
		st = r != NULL && strcmp(PQcmdTuples(r), "1") == 0 ? IT_SET_OK : IT_SET_GONE;
	}
	else if (db_retryable(res))
		st = IT_SET_UNAVAILABLE;
	c->cb(st, c->arg);
	free(c);
}

void it_claim_set(db_tx *tx, it_claim *c, const it_value *attrs, int flags, void (*cb)(it_set_status st, void *arg),
		  void *arg)
{
	if (c->table == NULL || c->pkenc == NULL) {
		cb(IT_SET_GONE, arg);
		return;
	}
	if (attrs == NULL || attrs->type != IT_M) {
		cb(IT_SET_BAD_ATTR, arg);
		return;
	}
	for (size_t i = 0; i < attrs->u.m.n; i++)
		if (protected_attr(c->table, &attrs->u.m.v[i].name)) {
			cb(IT_SET_BAD_ATTR, arg);
			return;
		}
	/* The claimed item is a few hundred bytes (key, fingerprint, status,
	 * TTL): its key's size bounds it well enough with a margin. */
	if (it_item_size(attrs) + strlen(c->pkenc) + (c->skenc ? strlen(c->skenc) : 0) + 1024 > IT_MAX_ITEM_SIZE) {
		cb(IT_SET_TOO_LARGE, arg);
		return;
	}
	json_t *j = it_item_to_json(attrs);
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	set_ctx *sc = text != NULL ? calloc(1, sizeof(*sc)) : NULL;
	char tid[24];
	snprintf(tid, sizeof(tid), "%lld", (long long)c->table->id);
	const char *p[4] = {tid, c->pkenc, c->skenc != NULL ? c->skenc : "", text};
	db_batch *b = sc != NULL ? db_batch_new() : NULL;
	if (b == NULL || !db_batch_add(b, &stmt_set, p)) {
		db_batch_free(b);
		free(sc);
		free(text);
		cb(IT_SET_FAILED, arg);
		return;
	}
	free(text);
	sc->cb = cb;
	sc->arg = arg;
	db_tx_exec(tx, b, flags, set_done, sc);
}

void it_claim_arm(it_store *s, db_tx *tx, const char *tenant, const char *table, const it_value *item, int ttl_s, int wait_ms,
		  it_claim *out, void (*armed)(bool ok, void *arg), void *arg)
{
	memset(out, 0, sizeof(*out));
	arm_ctx *c = calloc(1, sizeof(*c));
	it_value *copy = c != NULL ? it_value_copy(item) : NULL;
	it_op *op = copy != NULL ? it_internal_op(s, tenant, "Claim", armed_reply, c) : NULL;
	if (op == NULL) {
		it_value_free(copy);
		free(c);
		out->outcome = IT_CLAIM_FAILED;
		armed(false, arg);
		return;
	}
	c->tx = tx;
	c->item = copy;
	c->ttl_s = ttl_s;
	c->wait_ms = wait_ms;
	c->out = out;
	c->armed = armed;
	c->arg = arg;
	it_table_get(op, table, table_loaded);
}

/* ---- peek: the live item at a key, read without claiming ---- */

typedef struct peek_ctx {
	it_value *key;
	it_claim *out;
	void (*done)(void *arg);
	void *arg;
} peek_ctx;

static const db_stmt stmt_peek = {
	"it_claim_peek",
	"SELECT item::text, expires_at FROM items WHERE table_id = $1::bigint AND pk = $2 AND sk = $3"
	" AND (expires_at IS NULL OR expires_at > floor(extract(epoch FROM clock_timestamp())))",
	3};
const db_stmt *const it_claim_stmts[] = {&stmt_claim, &stmt_guard, &stmt_set, &stmt_peek, NULL};

static void peeked(db_result *res, void *arg)
{
	it_op *op = arg;
	peek_ctx *c = op->cb_arg;
	PGresult *r = res->status == DB_OK ? res->results[0] : NULL;
	if (r != NULL && PQntuples(r) == 1) {
		c->out->item = it_item_from_text(PQgetvalue(r, 0, 0));
		c->out->expires = PQgetisnull(r, 0, 1) ? 0 : strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		if (c->out->item != NULL)
			c->out->outcome = IT_CLAIM_TAKEN;
	}
	it_finish_ok(op, NULL);
}

static void peek_table(it_op *op, it_table *t)
{
	peek_ctx *c = op->cb_arg;
	char *pkenc = NULL, *skenc = NULL;
	if (!it_item_keys(op, t, c->key, &pkenc, &skenc))
		return;
	char tid[24];
	snprintf(tid, sizeof(tid), "%lld", (long long)t->id);
	const char *p[3] = {tid, pkenc, skenc};
	db_batch *b = db_batch_new();
	bool ok = b != NULL && db_batch_add(b, &stmt_peek, p);
	free(pkenc);
	free(skenc);
	it_exec(op, b, ok, NULL, peeked);
}

static void peek_reply(it_reply *r, void *arg)
{
	(void)r;
	peek_ctx *c = arg;
	c->done(c->arg);
	it_value_free(c->key);
	free(c);
}

void it_claim_peek(it_store *s, const char *tenant, const char *table, const it_value *key, it_claim *out,
		   void (*done)(void *arg), void *arg)
{
	memset(out, 0, sizeof(*out));
	peek_ctx *c = calloc(1, sizeof(*c));
	it_value *copy = c != NULL ? it_value_copy(key) : NULL;
	it_op *op = copy != NULL ? it_internal_op(s, tenant, "ClaimPeek", peek_reply, c) : NULL;
	if (op == NULL) {
		it_value_free(copy);
		free(c);
		done(arg);
		return;
	}
	c->key = copy;
	c->out = out;
	c->done = done;
	c->arg = arg;
	it_table_get(op, table, peek_table);
}
