/* write.c — shared SQL fragments for item writes (see write.h). */
#include "items/write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void it_w_now(char buf[24])
{
	snprintf(buf, 24, "%lld", (long long)(util_now_us() / 1000000));
}

static bool param(it_sql *q, const char *type, const char *v, it_error *e)
{
	return it_sql_param(q, type, v, strlen(v), e);
}

bool it_w_key_pred(it_sql *q, const it_table *t, const char *alias, const char *pkenc, const char *skenc, it_error *e)
{
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)t->id);
	return it_sql_append(q, "%s.table_id = ", alias) && param(q, "bigint", id, e) &&
	       it_sql_append(q, " AND %s.pk = ", alias) && param(q, "text", pkenc, e) &&
	       it_sql_append(q, " AND %s.sk = ", alias) && param(q, "text", skenc, e);
}

bool it_w_key_params(it_sql *q, const it_table *t, const char *pkenc, const char *skenc, it_error *e)
{
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)t->id);
	return param(q, "bigint", id, e) && it_sql_append(q, ", ") && param(q, "text", pkenc, e) && it_sql_append(q, ", ") &&
	       param(q, "text", skenc, e);
}

bool it_w_not_expired(it_sql *q, const it_table *t, const char *alias, it_error *e)
{
	if (t->ttl_attr == NULL)
		return true;
	char now[24];
	it_w_now(now);
	return it_sql_append(q, " AND (%s.expires_at IS NULL OR %s.expires_at > ", alias, alias) &&
	       param(q, "bigint", now, e) && it_sql_append(q, ")");
}

bool it_w_visible_item(it_sql *q, const it_table *t, const char *alias, it_error *e)
{
	if (t->ttl_attr == NULL)
		return it_sql_append(q, "%s.item", alias);
	char now[24];
	it_w_now(now);
	return it_sql_append(q, "(CASE WHEN %s.expires_at IS NOT NULL AND %s.expires_at <= ", alias, alias) &&
	       param(q, "bigint", now, e) && it_sql_append(q, " THEN NULL ELSE %s.item END)", alias);
}

bool it_w_insert_cols(it_sql *q, const it_table *t)
{
	if (!it_sql_append(q, "(table_id, pk, sk, item, expires_at"))
		return false;
	for (int i = 0; i < t->nidx; i++)
		if (!it_sql_append(q, ", x%dpk, x%dsk", t->idx[i].slot, t->idx[i].slot))
			return false;
	if (t->stream != IT_STREAM_NONE && !it_sql_append(q, ", stream"))
		return false;
	return it_sql_append(q, ")");
}

/* The stream hint (sql/011_streams.sql): set when the table has a stream,
 * never cleared by a write (a definition cached for a moment too long must
 * not switch an item's records off; UpdateTable's backfill clears it). */
static bool stream_set(it_sql *q, const it_table *t, bool named)
{
	return t->stream == IT_STREAM_NONE || it_sql_append(q, ", %s%d::smallint", named ? "stream = " : "", t->stream);
}

/* The expiry of item expression n. */
static bool ttl_expr(it_sql *q, const it_table *t, const char *n, it_error *e)
{
	if (t->ttl_attr == NULL)
		return it_sql_append(q, "NULL::bigint");
	return it_sql_append(q, "ol_ttl_value(%s, ", n) && param(q, "text", t->ttl_attr, e) && it_sql_append(q, ")");
}

/* Slot key columns: present only when every key attribute of the index is
 * present with its declared type (sparse indexes). */
bool it_w_slot_values(it_sql *q, const it_index *ix, const char *n, it_error *e);

/* The encoded key value of attribute `name` of item expression n. S keys
 * are stored as they are, so plain SQL does it (no function call per slot
 * and row); N and B go through ol_key_enc. */
static bool key_enc(it_sql *q, const char *n, const char *name, it_type type, it_error *e)
{
	if (type == IT_S)
		return it_sql_append(q, "(%s -> ", n) && param(q, "text", name, e) && it_sql_append(q, " ->> 'S')");
	return it_sql_append(q, "ol_key_enc(%s -> ", n) && param(q, "text", name, e) &&
	       it_sql_append(q, ", '%s')", it_type_name(type));
}

/* The same in the partition-key role: long ones hashed (sql/009, keyenc.h). */
static bool key_enc_partition(it_sql *q, const char *n, const char *name, it_type type, it_error *e)
{
	return it_sql_append(q, "ol_key_cap(") && key_enc(q, n, name, type, e) && it_sql_append(q, ")");
}

static bool slot_exprs(it_sql *q, const it_index *ix, const char *n, bool with_names, it_error *e)
{
	bool ok = true;
	if (with_names)
		ok = it_sql_append(q, "x%dpk = ", ix->slot);
	ok = ok && it_sql_append(q, "CASE WHEN ");
	if (ix->has_sk)
		ok = ok && key_enc(q, n, ix->sk.name, ix->sk.type, e) && it_sql_append(q, " IS NOT NULL AND ");
	ok = ok && it_sql_append(q, "TRUE THEN ") && key_enc_partition(q, n, ix->pk.name, ix->pk.type, e) && it_sql_append(q, " END, ");
	if (with_names)
		ok = ok && it_sql_append(q, "x%dsk = ", ix->slot);
	ok = ok && it_sql_append(q, "CASE WHEN ") && key_enc(q, n, ix->pk.name, ix->pk.type, e) && it_sql_append(q, " IS NOT NULL THEN ");
	if (ix->has_sk)
		ok = ok && key_enc(q, n, ix->sk.name, ix->sk.type, e) && it_sql_append(q, " END");
	else
		ok = ok && it_sql_append(q, "''::text END");
	return ok;
}

bool it_w_slot_values(it_sql *q, const it_index *ix, const char *n, it_error *e)
{
	return slot_exprs(q, ix, n, false, e);
}

bool it_w_insert_vals(it_sql *q, const it_table *t, const char *pkenc, const char *skenc, const char *n, it_error *e)
{
	if (!it_w_key_params(q, t, pkenc, skenc, e) || !it_sql_append(q, ", %s, ", n) || !ttl_expr(q, t, n, e))
		return false;
	for (int i = 0; i < t->nidx; i++)
		if (!it_sql_append(q, ", ") || !slot_exprs(q, &t->idx[i], n, false, e))
			return false;
	return stream_set(q, t, false);
}

bool it_w_sets(it_sql *q, const it_table *t, const char *n, it_error *e)
{
	if (!it_sql_append(q, "item = %s, expires_at = ", n) || !ttl_expr(q, t, n, e))
		return false;
	for (int i = 0; i < t->nidx; i++)
		if (!it_sql_append(q, ", ") || !slot_exprs(q, &t->idx[i], n, true, e))
			return false;
	return stream_set(q, t, true);
}

/* Adds an item as a jsonb parameter; when ref is given, copies the
 * "$n::jsonb" text that now names it (identical values share a number). */
static bool add_item_param(it_sql *q, const it_value *item, char *ref, size_t reflen, it_error *e)
{
	json_t *j = it_item_to_json(item);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	size_t before = q->text.len;
	bool ok = text != NULL && it_sql_param(q, "jsonb", text, strlen(text), e);
	free(text);
	if (ok && ref != NULL) {
		size_t n = q->text.len - before;
		if (n >= reflen)
			return false;
		memcpy(ref, it_sql_text(q) + before, n);
		ref[n] = '\0';
	}
	return ok;
}

/* Hands the statement text and parameters to the batch without copying. */
static bool add_to_batch(db_batch *b, it_sql *q)
{
	bool ok = !q->oom && q->text.p != NULL && db_batch_add_sql_take(b, q->text.p, (int)q->nparams, q->params);
	if (ok)
		q->text.p = NULL; /* the batch owns it now; params were NULLed */
	it_sql_free(q);
	return ok;
}

bool it_w_add_main(db_batch *b, const it_wspec *w, it_error *e)
{
	const it_table *t = w->t;
	it_sql q;
	it_sql_init(&q, 1);
	const char *cn = w->cond_null ? "TRUE" : "FALSE";
	bool ok = it_sql_append(&q, "WITH cur AS (SELECT i.pk, ") && it_w_visible_item(&q, t, "i", e) &&
		  it_sql_append(&q, " AS item FROM items i WHERE ") && it_w_key_pred(&q, t, "i", w->pkenc, w->skenc, e) &&
		  it_sql_append(&q, " FOR UPDATE)");
	if (w->kind == IT_W_CHECK) {
		ok = ok && it_sql_append(&q, " SELECT c.old, c.existed, c.ok%s FROM (SELECT (SELECT item FROM cur)::text AS old,"
					     " EXISTS (SELECT 1 FROM cur) AS existed, ",
					 w->txn ? ", ol_txn_mark(c.ok)" : "") &&
		     it_sql_condition(&q, w->cond, "(SELECT item FROM cur)", e) && it_sql_append(&q, " AS ok) c");
		return ok && add_to_batch(b, &q);
	}
	ok = ok && it_sql_append(&q, ", nw AS (SELECT ");
	if (w->kind == IT_W_PUT) {
		ok = ok && add_item_param(&q, w->item, NULL, 0, e);
	} else if (w->kind == IT_W_UPDATE) {
		char keyexpr[32];
		ok = ok && add_item_param(&q, w->key, keyexpr, sizeof(keyexpr), e) && it_sql_append(&q, " AS k, ") &&
		     (w->upd != NULL ? it_sql_update(&q, w->upd, "cur.item", keyexpr, e)
				     : it_sql_append(&q, "coalesce(cur.item, %s)", keyexpr));
	} else {
		ok = ok && it_sql_append(&q, "1");
	}
	ok = ok && it_sql_append(&q, " AS item FROM cur WHERE ") &&
	     (w->cond != NULL ? it_sql_condition(&q, w->cond, "cur.item", e) : it_sql_append(&q, "TRUE"));
	if (w->kind == IT_W_DELETE) {
		ok = ok && it_sql_append(&q, "), w AS (DELETE FROM items USING nw WHERE ") &&
		     it_w_key_pred(&q, t, "items", w->pkenc, w->skenc, e) &&
		     it_sql_append(&q, " RETURNING 1) SELECT (SELECT item FROM cur)::text, EXISTS (SELECT 1 FROM cur),"
				       " EXISTS (SELECT 1 FROM w)");
	} else {
		ok = ok && it_sql_append(&q, "), w AS (UPDATE items SET ") && it_w_sets(&q, t, "nw.item", e) &&
		     it_sql_append(&q, " FROM nw WHERE ") && it_w_key_pred(&q, t, "items", w->pkenc, w->skenc, e) &&
		     it_sql_append(&q, " RETURNING items.item) SELECT (SELECT item FROM cur)::text, EXISTS (SELECT 1 FROM cur),"
				       " (SELECT item FROM w)::text");
	}
	/* In a transaction an absent row is decided by the insert statement
	 * (when the condition holds for no item), so it is not a failure here. */
	if (w->txn)
		ok = ok && it_sql_append(&q, ", ol_txn_mark(EXISTS (SELECT 1 FROM w) OR (NOT EXISTS (SELECT 1 FROM cur) AND %s)),"
					 " set_config('ol.txn_wrote', (EXISTS (SELECT 1 FROM w))::text, true)", cn);
	return ok && add_to_batch(b, &q);
}

bool it_w_add_insert(db_batch *b, const it_wspec *w, it_error *e)
{
	const it_table *t = w->t;
	it_sql q;
	it_sql_init(&q, 1);
	bool ok = it_sql_append(&q, "WITH ins AS (INSERT INTO items ") && it_w_insert_cols(&q, t) && it_sql_append(&q, " SELECT ") &&
		  it_w_insert_vals(&q, t, w->pkenc, w->skenc, "n.item", e) && it_sql_append(&q, " FROM (SELECT ");
	if (w->kind == IT_W_PUT) {
		ok = ok && add_item_param(&q, w->item, NULL, 0, e);
	} else {
		char keyexpr[32];
		ok = ok && add_item_param(&q, w->key, keyexpr, sizeof(keyexpr), e) && it_sql_append(&q, " AS k, ") &&
		     (w->upd != NULL ? it_sql_update(&q, w->upd, "NULL::jsonb", keyexpr, e) : it_sql_append(&q, "%s", keyexpr));
	}
	ok = ok && it_sql_append(&q, " AS item WHERE NOT EXISTS (SELECT 1 FROM items i WHERE ") &&
	     it_w_key_pred(&q, t, "i", w->pkenc, w->skenc, e) &&
	     it_sql_append(&q, ")) n ON CONFLICT (table_id, pk, sk) DO NOTHING RETURNING item) SELECT (SELECT item FROM ins)::text");
	/* Success when we inserted, or when the main statement right before
	 * this one wrote the row (it says so in ol.txn_wrote: comparing xmin
	 * with our xid misses rows written inside a savepoint); a row committed
	 * by someone else in between is a lost race and fails the transaction. */
	if (w->txn)
		ok = ok && it_sql_append(&q, ", ol_txn_mark(EXISTS (SELECT 1 FROM ins) OR current_setting('ol.txn_wrote', true) = 'true')");
	return ok && add_to_batch(b, &q);
}

bool it_w_add_upsert(db_batch *b, const it_wspec *w, it_error *e)
{
	const it_table *t = w->t;
	it_sql q;
	it_sql_init(&q, 1);
	bool ok = it_sql_append(&q, "INSERT INTO items ") && it_w_insert_cols(&q, t) && it_sql_append(&q, " SELECT ") &&
		  it_w_insert_vals(&q, t, w->pkenc, w->skenc, "n.item", e) && it_sql_append(&q, " FROM (SELECT ") &&
		  add_item_param(&q, w->item, NULL, 0, e) &&
		  it_sql_append(&q, " AS item) n ON CONFLICT (table_id, pk, sk) DO UPDATE SET item = EXCLUDED.item,"
				    " expires_at = EXCLUDED.expires_at");
	for (int i = 0; ok && i < t->nidx; i++)
		ok = it_sql_append(&q, ", x%dpk = EXCLUDED.x%dpk, x%dsk = EXCLUDED.x%dsk", t->idx[i].slot, t->idx[i].slot,
				   t->idx[i].slot, t->idx[i].slot);
	ok = ok && stream_set(&q, t, true);
	ok = ok && it_sql_append(&q, " RETURNING NULL::text, FALSE, item::text");
	if (w->txn)
		ok = ok && it_sql_append(&q, ", TRUE");
	return ok && add_to_batch(b, &q);
}

bool it_w_add_update_simple(db_batch *b, const it_wspec *w, it_error *e)
{
	const it_table *t = w->t;
	it_sql q;
	it_sql_init(&q, 1);
	/* The WHERE only admits a visible (not expired) row, so the update and
	 * the condition read i.item as is. When the table derives columns from
	 * the item (TTL, index slots), one row-valued assignment computes the new
	 * item once for all of them. */
	bool derived = t->ttl_attr != NULL || t->nidx > 0;
	bool ok;
	if (!derived) {
		/* nothing derives from the new item: assign it directly */
		ok = it_sql_append(&q, "UPDATE items i SET item = ") &&
		     (w->upd != NULL ? it_sql_update(&q, w->upd, "i.item", NULL, e) : it_sql_append(&q, "i.item"));
	} else {
		ok = it_sql_append(&q, "UPDATE items i SET (item, expires_at");
		for (int k = 0; ok && k < t->nidx; k++)
			ok = it_sql_append(&q, ", x%dpk, x%dsk", t->idx[k].slot, t->idx[k].slot);
		ok = ok && it_sql_append(&q, ") = (SELECT n.item, ");
		ok = ok && (t->ttl_attr == NULL ? it_sql_append(&q, "NULL::bigint")
						: it_sql_append(&q, "ol_ttl_value(n.item, ") &&
							  it_sql_param(&q, "text", t->ttl_attr, strlen(t->ttl_attr), e) &&
							  it_sql_append(&q, ")"));
		for (int k = 0; ok && k < t->nidx; k++)
			ok = it_sql_append(&q, ", ") && it_w_slot_values(&q, &t->idx[k], "n.item", e);
		ok = ok && it_sql_append(&q, " FROM (SELECT ") &&
		     (w->upd != NULL ? it_sql_update(&q, w->upd, "i.item", NULL, e) : it_sql_append(&q, "i.item")) &&
		     it_sql_append(&q, " AS item) n)");
	}
	ok = ok && stream_set(&q, t, true);
	ok = ok && it_sql_append(&q, " WHERE ") && it_w_key_pred(&q, t, "i", w->pkenc, w->skenc, e) &&
	     it_w_not_expired(&q, t, "i", e) && it_sql_append(&q, " AND ") && it_sql_condition(&q, w->cond, "i.item", e) &&
	     it_sql_append(&q, w->want_new ? " RETURNING NULL::text, TRUE, i.item::text" : " RETURNING NULL::text, TRUE, ''::text");
	return ok && add_to_batch(b, &q);
}

bool it_w_put_if_absent(const it_wspec *w)
{
	const it_node *c = w->cond;
	if (w->kind != IT_W_PUT || c == NULL || c->kind != IT_NODE_CALL || c->func != IT_FN_ATTRIBUTE_NOT_EXISTS ||
	    c->nargs != 1 || c->args[0]->kind != IT_NODE_PATH || c->args[0]->path.n != 1 || c->args[0]->path.v[0].is_index)
		return false;
	const it_str *name = &c->args[0]->path.v[0].name;
	const char *keys[2] = {w->t->pk.name, w->t->has_sk ? w->t->sk.name : NULL};
	for (int i = 0; i < 2; i++)
		if (keys[i] != NULL && name->len == strlen(keys[i]) && memcmp(name->ptr, keys[i], name->len) == 0)
			return true;
	return false;
}

bool it_w_add_put_if_absent(db_batch *b, const it_wspec *w, it_error *e)
{
	const it_table *t = w->t;
	it_sql q;
	it_sql_init(&q, 1);
	char now[24];
	it_w_now(now);
	/* One statement: insert, or take the place of an expired item; a live
	 * one stays and is returned as the old item (when this statement's
	 * snapshot sees it: one committed meanwhile is a race, rerun). */
	bool ok = it_sql_append(&q, "WITH ins AS (INSERT INTO items ") && it_w_insert_cols(&q, t) && it_sql_append(&q, " SELECT ") &&
		  it_w_insert_vals(&q, t, w->pkenc, w->skenc, "n.item", e) && it_sql_append(&q, " FROM (SELECT ") &&
		  add_item_param(&q, w->item, NULL, 0, e) &&
		  it_sql_append(&q, " AS item) n ON CONFLICT (table_id, pk, sk) DO UPDATE SET item = EXCLUDED.item,"
				    " expires_at = EXCLUDED.expires_at");
	for (int i = 0; ok && i < t->nidx; i++)
		ok = it_sql_append(&q, ", x%dpk = EXCLUDED.x%dpk, x%dsk = EXCLUDED.x%dsk", t->idx[i].slot, t->idx[i].slot,
				   t->idx[i].slot, t->idx[i].slot);
	ok = ok && stream_set(&q, t, true);
	ok = ok && it_sql_append(&q, " WHERE items.expires_at IS NOT NULL AND items.expires_at <= ") &&
	     param(&q, "bigint", now, e) &&
	     it_sql_append(&q, " RETURNING item) SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM ins) THEN (SELECT i.item FROM items i WHERE ") &&
	     it_w_key_pred(&q, t, "i", w->pkenc, w->skenc, e) && it_w_not_expired(&q, t, "i", e) &&
	     it_sql_append(&q, ")::text END, NOT EXISTS (SELECT 1 FROM ins), (SELECT item FROM ins)::text");
	if (w->txn)
		ok = ok && it_sql_append(&q, ", ol_txn_mark(EXISTS (SELECT 1 FROM ins))");
	return ok && add_to_batch(b, &q);
}
