/* ops_item.c — GetItem, PutItem, UpdateItem, DeleteItem.
 *
 * A conditional write is one SQL statement: a CTE locks the current row
 * (FOR UPDATE, so concurrent writers queue and the condition is evaluated
 * against the latest committed version), computes the new item only when
 * the compiled condition holds, writes it, and returns the old item, whether
 * a row existed and the new item. When the condition also holds for "no
 * item", a second statement in the same pipeline (same implicit
 * transaction, same round trip) inserts the new item if the key is still
 * free. Nothing is decided in C between a read and a write. */
#include "items/items_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "items/keyenc.h"
#include "items/sql.h"
#include "items/write.h"

enum { RV_NONE, RV_ALL_OLD, RV_UPDATED_OLD, RV_ALL_NEW, RV_UPDATED_NEW };

typedef struct item_state {
	it_wspec w; /* what to write; its pointers are owned here */
	it_projection *proj;
	int rv;
	bool rv_fail_old;
	bool sent_insert;
} item_state;

static void state_free(void *p)
{
	item_state *st = p;
	it_value_free((it_value *)st->w.key);
	it_value_free((it_value *)st->w.item);
	free((char *)st->w.pkenc);
	free((char *)st->w.skenc);
	it_node_free((it_node *)st->w.cond);
	it_update_free((it_update *)st->w.upd);
	it_projection_free(st->proj);
	free(st);
}

static int parse_rv(const char *s, int kind, bool *ok)
{
	*ok = true;
	if (s == NULL || strcmp(s, "NONE") == 0)
		return RV_NONE;
	if (strcmp(s, "ALL_OLD") == 0)
		return RV_ALL_OLD;
	if (kind == IT_W_UPDATE) {
		if (strcmp(s, "UPDATED_OLD") == 0)
			return RV_UPDATED_OLD;
		if (strcmp(s, "ALL_NEW") == 0)
			return RV_ALL_NEW;
		if (strcmp(s, "UPDATED_NEW") == 0)
			return RV_UPDATED_NEW;
	}
	*ok = false;
	return RV_NONE;
}

/* Parses placeholders and the expressions the operation takes, with
 * DynamoDB's checks. False after finishing the op with the error. */
static bool parse_expressions(it_op *op, item_state *st, bool want_cond, bool want_update, bool want_proj)
{
	json_t *req = op->req;
	it_error e = {0};
	const char *cond = want_cond ? it_req_str(req, "ConditionExpression") : NULL;
	const char *upd = want_update ? it_req_str(req, "UpdateExpression") : NULL;
	const char *proj = want_proj ? it_req_str(req, "ProjectionExpression") : NULL;
	json_t *names = json_object_get(req, "ExpressionAttributeNames");
	json_t *values = json_object_get(req, "ExpressionAttributeValues");
	if (cond == NULL && upd == NULL && proj == NULL) {
		if (names != NULL) {
			it_finish_err(op, "ValidationException", NULL, "ExpressionAttributeNames can only be specified when using expressions");
			return false;
		}
		if (values != NULL) {
			it_finish_err(op, "ValidationException", NULL, "ExpressionAttributeValues can only be specified when using expressions");
			return false;
		}
	}
	if (!it_params_init(&op->params, names, values, &e))
		goto fail;
	op->params_init = true;
	if (upd != NULL && !it_parse_update(upd, strlen(upd), &op->params, (it_update **)&st->w.upd, &e))
		goto fail;
	if (cond != NULL && !it_parse_condition(IT_EXPR_CONDITION, cond, strlen(cond), &op->params, (it_node **)&st->w.cond, &e))
		goto fail;
	if (proj != NULL && !it_parse_projection(proj, strlen(proj), &op->params, &st->proj, &e))
		goto fail;
	if (!it_params_check_unused(&op->params, &e))
		goto fail;
	st->w.cond_null = true;
	if (st->w.cond != NULL && !it_eval_condition(st->w.cond, NULL, &st->w.cond_null, &e))
		st->w.cond_null = false; /* a runtime error on "no item": never the insert path */
	it_error_clear(&e);
	return true;
fail:
	it_finish_error(op, &e);
	return false;
}

static void finish_cond_failed(it_op *op, item_state *st, it_value *old)
{
	json_t *extra = NULL;
	if (st->rv_fail_old && old != NULL)
		extra = json_pack("{s:o}", "Item", it_item_to_json(old));
	it_value_free(old);
	it_finish_err(op, "ConditionalCheckFailedException", extra, "The conditional request failed");
}

static void finish_write(it_op *op, item_state *st, it_value *old, it_value *new)
{
	json_t *body = json_object();
	it_value *attrs = NULL;
	it_error e = {0};
	switch (st->rv) {
	case RV_ALL_OLD:
		attrs = old ? it_value_copy(old) : NULL;
		break;
	case RV_ALL_NEW:
		attrs = new ? it_value_copy(new) : NULL;
		break;
	case RV_UPDATED_OLD:
		if (old != NULL && st->w.upd != NULL && !it_updated_attrs(st->w.upd, old, &attrs, &e))
			attrs = NULL;
		break;
	case RV_UPDATED_NEW:
		if (new != NULL && st->w.upd != NULL && !it_updated_attrs(st->w.upd, new, &attrs, &e))
			attrs = NULL;
		break;
	default:
		break;
	}
	it_error_clear(&e);
	if (attrs != NULL && attrs->u.m.n > 0)
		json_object_set_new(body, "Attributes", it_item_to_json(attrs));
	it_value_free(attrs);
	int mode = it_cap_mode(op);
	if (mode != IT_CAP_NONE) {
		/* the larger of the item before and after, and the indexes' entries */
		size_t a = old != NULL ? it_item_size(old) : 0, b = new != NULL ? it_item_size(new) : 0;
		double idx[IT_MAX_SLOTS] = {0};
		it_cap_index_writes(op->table, old, new, idx);
		json_object_set_new(body, "ConsumedCapacity",
				    it_cap_json(op->table, op->table->name, it_cap_write(a > b ? a : b), idx, mode, true));
	}
	it_value_free(old);
	it_value_free(new);
	it_finish_ok(op, body);
}

static void run_write(it_op *op);

static void write_done(db_result *res, void *arg)
{
	it_op *op = arg;
	item_state *st = op->state;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	PGresult *r = res->results[0];
	bool existed = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 1), "t") == 0;
	it_value *old = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? it_item_from_text(PQgetvalue(r, 0, 0)) : NULL;
	bool written = PQntuples(r) == 1 && !PQgetisnull(r, 0, 2);
	if (st->w.kind == IT_W_DELETE) {
		written = written && strcmp(PQgetvalue(r, 0, 2), "t") == 0;
		if (written || (!existed && st->w.cond_null)) {
			finish_write(op, st, old, NULL);
			return;
		}
		finish_cond_failed(op, st, old);
		return;
	}
	if (written) {
		it_value *new = st->rv == RV_ALL_NEW || st->rv == RV_UPDATED_NEW || it_cap_mode(op) != IT_CAP_NONE
					? it_item_from_text(PQgetvalue(r, 0, 2))
					: NULL;
		finish_write(op, st, old, new);
		return;
	}
	if (st->sent_insert && res->nresults > 1 && PQntuples(res->results[1]) == 1 && !PQgetisnull(res->results[1], 0, 0)) {
		it_value *new = st->rv == RV_ALL_NEW || st->rv == RV_UPDATED_NEW || it_cap_mode(op) != IT_CAP_NONE
					? it_item_from_text(PQgetvalue(res->results[1], 0, 0))
					: NULL;
		finish_write(op, st, NULL, new);
		return;
	}
	if (!existed && st->sent_insert) {
		/* The key was free when we looked and taken when we inserted:
		 * another writer created it in between. Run again; this time
		 * the row exists and the first statement decides. */
		it_value_free(old);
		if (++op->attempt < 5) {
			run_write(op);
			return;
		}
		it_finish_err(op, "InternalServerError", NULL, "The item was contended; retry the request");
		return;
	}
	finish_cond_failed(op, st, old);
}

static void run_write(it_op *op)
{
	item_state *st = op->state;
	it_error e = {0};
	db_batch *b = db_batch_new();
	bool ok = b != NULL;
	st->sent_insert = false;
	st->w.t = op->table;
	st->w.want_new = st->rv == RV_ALL_NEW || st->rv == RV_UPDATED_NEW;
	if (ok && st->w.kind == IT_W_PUT && st->w.cond == NULL && st->rv == RV_NONE) {
		ok = it_w_add_upsert(b, &st->w, &e);
	} else if (ok && st->rv == RV_NONE && !st->rv_fail_old && it_w_put_if_absent(&st->w)) {
		/* attribute_not_exists(<key>), the idempotency claim: one INSERT
		 * ... ON CONFLICT instead of the locking CTE and the insert. A
		 * row committed by another writer meanwhile comes back as
		 * existed without its text: the condition failed all the same. */
		ok = it_w_add_put_if_absent(b, &st->w, &e);
	} else if (ok && st->w.kind == IT_W_UPDATE && st->w.cond != NULL && !st->w.cond_null && !st->rv_fail_old &&
		   st->rv != RV_ALL_OLD && st->rv != RV_UPDATED_OLD) {
		/* "No item" fails the condition and nobody asked for the old
		 * item: a plain conditional UPDATE says all there is to say. */
		ok = it_w_add_update_simple(b, &st->w, &e);
	} else {
		ok = ok && it_w_add_main(b, &st->w, &e);
		if (ok && st->w.kind != IT_W_DELETE && st->w.cond_null) {
			ok = it_w_add_insert(b, &st->w, &e);
			st->sent_insert = true;
		}
	}
	it_exec(op, b, ok, &e, write_done);
}

/* Checks that index key attributes present in a new item have the index's
 * declared type, as DynamoDB does. */
static bool common_write_opts(it_op *op, item_state *st)
{
	bool ok;
	st->rv = parse_rv(it_req_str(op->req, "ReturnValues"), st->w.kind, &ok);
	if (!ok) {
		it_finish_err(op, "ValidationException", NULL, "ReturnValues can only be %s",
			      st->w.kind == IT_W_UPDATE ? "NONE, ALL_OLD, UPDATED_OLD, ALL_NEW or UPDATED_NEW" : "ALL_OLD or NONE");
		return false;
	}
	const char *f = it_req_str(op->req, "ReturnValuesOnConditionCheckFailure");
	if (f != NULL && strcmp(f, "ALL_OLD") != 0 && strcmp(f, "NONE") != 0) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value '%s' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]",
			      f);
		return false;
	}
	st->rv_fail_old = f != NULL && strcmp(f, "ALL_OLD") == 0;
	return true;
}

static item_state *new_state(it_op *op, int kind)
{
	item_state *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return NULL;
	}
	st->w.kind = kind;
	op->state = st;
	op->state_free = state_free;
	return st;
}

/* ---- PutItem ----------------------------------------------------------- */

static void put_with(it_op *op, it_table *t)
{
	item_state *st = new_state(op, IT_W_PUT);
	if (st == NULL || !common_write_opts(op, st) || !parse_expressions(op, st, true, false, false))
		return;
	it_error e = {0};
	json_t *item = json_object_get(op->req, "Item");
	if (item == NULL) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value null at 'item' failed to satisfy constraint: Member must not be null");
		return;
	}
	if (!it_item_from_json(item, (it_value **)&st->w.item, &e)) {
		it_finish_error(op, &e);
		return;
	}
	if (!it_item_keys(op, t, st->w.item, (char **)&st->w.pkenc, (char **)&st->w.skenc))
		return;
	run_write(op);
}

void it_op_put_item(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (it_check_table_name(op, "tableName", name))
		it_table_get(op, name, put_with);
}

/* ---- UpdateItem -------------------------------------------------------- */

static void update_with(it_op *op, it_table *t)
{
	item_state *st = new_state(op, IT_W_UPDATE);
	if (st == NULL || !common_write_opts(op, st) || !parse_expressions(op, st, true, true, false))
		return;
	if (!it_key_from_json(op, t, json_object_get(op->req, "Key"), (it_value **)&st->w.key, (char **)&st->w.pkenc, (char **)&st->w.skenc))
		return;
	if (st->w.upd != NULL) {
		const char *keys[2] = {t->pk.name, t->has_sk ? t->sk.name : NULL};
		for (int k = 0; k < 2; k++) {
			if (keys[k] != NULL && it_update_touches(st->w.upd, keys[k], strlen(keys[k]))) {
				it_finish_err(op, "ValidationException", NULL,
					      "One or more parameter values were invalid: Cannot update attribute %s. This attribute is part of the key",
					      keys[k]);
				return;
			}
		}
	}
	run_write(op);
}

void it_op_update_item(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (it_check_table_name(op, "tableName", name))
		it_table_get(op, name, update_with);
}

/* ---- DeleteItem -------------------------------------------------------- */

static void delete_with(it_op *op, it_table *t)
{
	item_state *st = new_state(op, IT_W_DELETE);
	if (st == NULL || !common_write_opts(op, st) || !parse_expressions(op, st, true, false, false))
		return;
	if (!it_key_from_json(op, t, json_object_get(op->req, "Key"), (it_value **)&st->w.key, (char **)&st->w.pkenc, (char **)&st->w.skenc))
		return;
	run_write(op);
}

void it_op_delete_item(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (it_check_table_name(op, "tableName", name))
		it_table_get(op, name, delete_with);
}

/* ---- GetItem ----------------------------------------------------------- */

static void get_done(db_result *res, void *arg)
{
	it_op *op = arg;
	item_state *st = op->state;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	PGresult *r = res->results[0];
	int mode = it_cap_mode(op);
	if (op->text_ok && st->proj == NULL && mode == IT_CAP_NONE) {
		/* the stored text is the answer's Item as it is: no decoding */
		static const char pre[] = "{\"Item\":";
		size_t n = PQntuples(r) == 1 ? (size_t)PQgetlength(r, 0, 0) : 0;
		char *text = malloc(sizeof(pre) + n + 1);
		if (text == NULL) {
			it_finish_err(op, "InternalServerError", NULL, "out of memory");
			return;
		}
		size_t len = 2;
		if (n > 0) {
			memcpy(text, pre, sizeof(pre) - 1);
			memcpy(text + sizeof(pre) - 1, PQgetvalue(r, 0, 0), n);
			len = sizeof(pre) - 1 + n;
			text[len++] = '}';
		} else
			memcpy(text, "{}", 2);
		text[len] = '\0';
		it_finish_text(op, text, len);
		return;
	}
	json_t *body = json_object();
	size_t size = 0;
	if (PQntuples(r) == 1) {
		it_value *item = it_item_from_text(PQgetvalue(r, 0, 0));
		size = item != NULL ? it_item_size(item) : 0;
		if (item != NULL && st->proj != NULL) {
			it_value *p = NULL;
			it_error e = {0};
			if (it_project(st->proj, item, &p, &e)) {
				it_value_free(item);
				item = p;
			}
			it_error_clear(&e);
		}
		if (item != NULL)
			json_object_set_new(body, "Item", it_item_to_json(item));
		it_value_free(item);
	}
	if (mode != IT_CAP_NONE)
		json_object_set_new(body, "ConsumedCapacity",
				    it_cap_json(op->table, op->table->name, it_cap_read(size, json_is_true(json_object_get(op->req, "ConsistentRead"))),
						NULL, mode, false));
	it_finish_ok(op, body);
}

static void get_with(it_op *op, it_table *t)
{
	item_state *st = new_state(op, IT_W_GET);
	if (st == NULL || !parse_expressions(op, st, false, false, true))
		return;
	if (!it_key_from_json(op, t, json_object_get(op->req, "Key"), (it_value **)&st->w.key, (char **)&st->w.pkenc, (char **)&st->w.skenc))
		return;
	it_error e = {0};
	it_sql q;
	it_sql_init(&q, 1);
	bool ok = it_sql_append(&q, "SELECT i.item::text FROM items i WHERE ") &&
		  it_w_key_pred(&q, t, "i", st->w.pkenc, st->w.skenc, &e) && it_w_not_expired(&q, t, "i", &e);
	db_batch *b = db_batch_new();
	ok = ok && b != NULL && !q.oom && db_batch_add_sql(b, it_sql_text(&q), (int)q.nparams, (const char *const *)q.params);
	it_sql_free(&q);
	it_exec(op, b, ok, &e, get_done);
}

void it_op_get_item(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (it_check_table_name(op, "tableName", name))
		it_table_get(op, name, get_with);
}
