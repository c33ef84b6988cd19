/* ops_txn.c — TransactWriteItems and TransactGetItems.
 *
 * A write transaction is one pipeline, hence one implicit PostgreSQL
 * transaction and one round trip: [token claim] + for each action its main
 * statement (and the insert-if-absent one where it applies) + a final
 * ol_txn_finish(). Each action records its outcome with ol_txn_mark(); the
 * final statement raises when any failed, which rolls everything back, while
 * every action's own result row still tells us its cancellation reason. */
#include "items/items_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "items/keyenc.h"
#include "items/sql.h"
#include "items/write.h"

#define TXN_MAX_ACTIONS 100
#define TXN_MAX_BYTES (4 * 1024 * 1024) /* items and keys of one TransactWriteItems */

typedef struct txn_action {
	it_wspec w;
	it_params params;
	bool params_init;
	bool rv_fail_old;
	bool put_new; /* one INSERT (it_w_add_put_if_absent) */
	int stmt_main, stmt_insert; /* batch indexes (-1: none) */
	it_projection *proj;        /* TransactGetItems */
} txn_action;

typedef struct txn_state {
	txn_action *a;
	int n;
	const char *token;
	char fp[65];
	int stmt_token, stmt_finish;
} txn_state;

static void txn_free(void *p)
{
	txn_state *st = p;
	for (int i = 0; i < st->n; i++) {
		txn_action *a = &st->a[i];
		it_value_free((it_value *)a->w.key);
		it_value_free((it_value *)a->w.item);
		free((char *)a->w.pkenc);
		free((char *)a->w.skenc);
		it_node_free((it_node *)a->w.cond);
		it_update_free((it_update *)a->w.upd);
		it_projection_free(a->proj);
		if (a->params_init)
			it_params_free(&a->params);
	}
	free(st->a);
	free(st);
}

static const char *const kinds[] = {"Put", "Update", "Delete", "ConditionCheck"};
static const int kind_codes[] = {IT_W_PUT, IT_W_UPDATE, IT_W_DELETE, IT_W_CHECK};

/* The one member of a TransactItems element, or NULL. */
static json_t *action_body(json_t *el, int *kind)
{
	json_t *found = NULL;
	for (size_t k = 0; k < OL_ARRAY_LEN(kinds); k++) {
		json_t *b = json_object_get(el, kinds[k]);
		if (b != NULL) {
			if (found != NULL)
				return NULL;
			found = b;
			*kind = kind_codes[k];
		}
	}
	return found;
}

static bool parse_action(it_op *op, txn_action *a, json_t *body, it_table *t, it_error *e)
{
	a->w.t = t;
	a->stmt_main = a->stmt_insert = -1;
	const char *cond = json_string_value(json_object_get(body, "ConditionExpression"));
	const char *upd = a->w.kind == IT_W_UPDATE ? json_string_value(json_object_get(body, "UpdateExpression")) : NULL;
	if (a->w.kind == IT_W_CHECK && cond == NULL) {
		it_error_set(e, IT_ERR_VALIDATION,
			     "1 validation error detected: Value null at 'transactItems.1.member.conditionCheck.conditionExpression' failed to satisfy constraint: Member must not be null");
		return false;
	}
	json_t *names = json_object_get(body, "ExpressionAttributeNames");
	json_t *values = json_object_get(body, "ExpressionAttributeValues");
	if (cond == NULL && upd == NULL) {
		if (names != NULL) {
			it_error_set(e, IT_ERR_VALIDATION, "ExpressionAttributeNames can only be specified when using expressions");
			return false;
		}
		if (values != NULL) {
			it_error_set(e, IT_ERR_VALIDATION, "ExpressionAttributeValues can only be specified when using expressions");
			return false;
		}
	}
	if (!it_params_init(&a->params, names, values, e))
		return false;
	a->params_init = true;
	if (upd != NULL && !it_parse_update(upd, strlen(upd), &a->params, (it_update **)&a->w.upd, e))
		return false;
	if (cond != NULL && !it_parse_condition(IT_EXPR_CONDITION, cond, strlen(cond), &a->params, (it_node **)&a->w.cond, e))
		return false;
	if (!it_params_check_unused(&a->params, e))
		return false;
	a->w.cond_null = true;
	if (a->w.cond != NULL && !it_eval_condition(a->w.cond, NULL, &a->w.cond_null, e))
		a->w.cond_null = false;
	it_error_clear(e);
	const char *f = json_string_value(json_object_get(body, "ReturnValuesOnConditionCheckFailure"));
	a->rv_fail_old = f != NULL && strcmp(f, "ALL_OLD") == 0;
	if (a->w.kind == IT_W_PUT) {
		json_t *item = json_object_get(body, "Item");
		if (item == NULL) {
			it_error_set(e, IT_ERR_VALIDATION, "1 validation error detected: Value null at 'transactItems.1.member.put.item' failed to satisfy constraint: Member must not be null");
			return false;
		}
		if (!it_item_from_json(item, (it_value **)&a->w.item, e))
			return false;
		/* it_item_keys replies on error; here errors must stay in e */
		it_value *tmpkey = it_value_new_map();
		const it_value *pv = it_map_get(a->w.item, t->pk.name, strlen(t->pk.name));
		const it_value *sv = t->has_sk ? it_map_get(a->w.item, t->sk.name, strlen(t->sk.name)) : NULL;
		bool ok = tmpkey != NULL && pv != NULL && (!t->has_sk || sv != NULL) &&
			  it_map_set(tmpkey, t->pk.name, strlen(t->pk.name), it_value_copy(pv)) &&
			  (!t->has_sk || it_map_set(tmpkey, t->sk.name, strlen(t->sk.name), it_value_copy(sv)));
		if (!ok) {
			it_value_free(tmpkey);
			it_error_set(e, IT_ERR_VALIDATION, "One or more parameter values were invalid: Missing the key %s in the item",
				     pv == NULL ? t->pk.name : t->sk.name);
			return false;
		}
		a->w.key = tmpkey;
	} else {
		json_t *key = json_object_get(body, "Key");
		if (key == NULL || !it_item_from_json(key, (it_value **)&a->w.key, e)) {
			if (key == NULL)
				it_error_set(e, IT_ERR_VALIDATION, "The provided key element does not match the schema");
			return false;
		}
	}
	/* Key schema and encoding. */
	const it_value *k = a->w.key;
	const it_value *pv = it_map_get(k, t->pk.name, strlen(t->pk.name));
	const it_value *sv = t->has_sk ? it_map_get(k, t->sk.name, strlen(t->sk.name)) : NULL;
	if (pv == NULL || pv->type != t->pk.type || (t->has_sk && (sv == NULL || sv->type != t->sk.type)) ||
	    (a->w.kind != IT_W_PUT && k->u.m.n != (t->has_sk ? 2u : 1u))) {
		it_error_set(e, IT_ERR_VALIDATION, "The provided key element does not match the schema");
		return false;
	}
	if (!it_check_key_attr(t->pk.name, pv, t->pk.type, false, e) || (sv != NULL && !it_check_key_attr(t->sk.name, sv, t->sk.type, true, e)) ||
	    (a->w.kind == IT_W_PUT && !it_check_index_keys(t, a->w.item, e)))
		return false;
	char *pk = NULL, *sk = NULL;
	if (!it_key_encode_partition(pv, &pk) || (sv != NULL ? !it_key_encode(sv, &sk) : (sk = strdup("")) == NULL)) {
		free(pk);
		it_error_nomem(e);
		return false;
	}
	a->w.pkenc = pk;
	a->w.skenc = sk;
	if (a->w.upd != NULL) {
		const char *keys[2] = {t->pk.name, t->has_sk ? t->sk.name : NULL};
		for (int i = 0; i < 2; i++) {
			if (keys[i] != NULL && it_update_touches(a->w.upd, keys[i], strlen(keys[i]))) {
				it_error_set(e, IT_ERR_VALIDATION,
					     "One or more parameter values were invalid: Cannot update attribute %s. This attribute is part of the key",
					     keys[i]);
				return false;
			}
		}
	}
	(void)op;
	return true;
}

static void run_txn(it_op *op);

static json_t *reasons_json(txn_state *st, db_result *res, int validation_at, const char *vmsg, bool *race)
{
	json_t *arr = json_array();
	*race = false;
	for (int i = 0; i < st->n; i++) {
		txn_action *a = &st->a[i];
		json_t *reason = NULL;
		if (validation_at >= 0) {
			reason = i == validation_at ? json_pack("{s:s, s:s}", "Code", "ValidationError", "Message", vmsg ? vmsg : "")
						    : json_pack("{s:s}", "Code", "None");
			json_array_append_new(arr, reason);
			continue;
		}
		PGresult *m = a->stmt_main >= 0 ? res->results[a->stmt_main] : NULL;
		bool existed = m && PQntuples(m) == 1 && strcmp(PQgetvalue(m, 0, 1), "t") == 0;
		bool ok;
		if (a->w.kind == IT_W_CHECK || a->w.kind == IT_W_DELETE)
			ok = m && PQntuples(m) == 1 && strcmp(PQgetvalue(m, 0, 2), "t") == 0;
		else
			ok = m && PQntuples(m) == 1 && !PQgetisnull(m, 0, 2);
		if (!ok && a->w.kind == IT_W_DELETE && !existed && a->w.cond_null)
			ok = true;
		if (!ok && a->stmt_insert >= 0) {
			PGresult *ins = res->results[a->stmt_insert];
			if (ins && PQntuples(ins) == 1 && !PQgetisnull(ins, 0, 0))
				ok = true;
			else if (!existed)
				*race = true;
		}
		if (!ok && a->put_new && m && PQntuples(m) == 1 && PQgetisnull(m, 0, 0))
			*race = true; /* inserted by a transaction our snapshot predates */
		if (ok) {
			reason = json_pack("{s:s}", "Code", "None");
		} else {
			reason = json_pack("{s:s, s:s}", "Code", "ConditionalCheckFailed", "Message", "The conditional request failed");
			if (a->rv_fail_old && m && PQntuples(m) == 1 && !PQgetisnull(m, 0, 0)) {
				json_t *old = json_loads(PQgetvalue(m, 0, 0), 0, NULL);
				if (old != NULL)
					json_object_set_new(reason, "Item", old);
			}
		}
		json_array_append_new(arr, reason);
	}
	return arr;
}

static void finish_cancelled(it_op *op, json_t *reasons)
{
	/* "Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed]" */
	char list[2048] = "";
	size_t o = 0;
	for (size_t i = 0; i < json_array_size(reasons) && o + 40 < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "",
				      json_string_value(json_object_get(json_array_get(reasons, i), "Code")));
	it_finish_err(op, "TransactionCanceledException", json_pack("{s:o}", "CancellationReasons", reasons),
		      "Transaction cancelled, please refer cancellation reasons for specific reasons [%s]", list);
}

static const db_stmt stmt_token_fp = {
	"it_txn_token_fp", "SELECT encode(fingerprint, 'hex') FROM item_txn_tokens WHERE tenant = $1 AND token = $2", 2};
static const db_stmt finish = {"it_txn_finish", "SELECT ol_txn_finish()", 0};
const db_stmt *const it_txn_stmts[] = {&stmt_token_fp, &finish, NULL};

static void token_checked(db_result *res, void *arg)
{
	it_op *op = arg;
	txn_state *st = op->state;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	PGresult *r = res->results[0];
	if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), st->fp) == 0) {
		it_finish_ok(op, json_object()); /* already done: idempotent success */
		return;
	}
	if (PQntuples(r) == 0 && ++op->attempt < 5) {
		run_txn(op); /* the earlier holder rolled back meanwhile */
		return;
	}
	it_finish_err(op, "IdempotentParameterMismatchException", NULL,
		      "The request uses the same client token as a previous, but non-identical request.");
}

static void txn_done(db_result *res, void *arg)
{
	it_op *op = arg;
	txn_state *st = op->state;
	if (res->status == DB_OK) {
		json_t *body = json_object();
		int mode = it_cap_mode(op);
		double *units = mode != IT_CAP_NONE ? calloc((size_t)st->n + 1, sizeof(double)) : NULL;
		for (int i = 0; units != NULL && i < st->n; i++) {
			/* twice a write: the put's item, else the key's size */
			const it_value *v = st->a[i].w.kind == IT_W_PUT ? st->a[i].w.item : st->a[i].w.key;
			units[i] = 2 * it_cap_write(v != NULL ? it_item_size(v) : 0);
		}
		if (units != NULL && body != NULL)
			json_object_set_new(body, "ConsumedCapacity", it_cap_tables(op, units, st->n, mode, true));
		free(units);
		it_finish_ok(op, body);
		return;
	}
	if (res->status != DB_ERR_QUERY) {
		it_finish_db(op, res);
		return;
	}
	if (st->token != NULL && res->failed_index == st->stmt_token && strcmp(res->sqlstate, "OLT02") == 0) {
		db_batch *b = db_batch_new();
		const char *p[2] = {op->tenant, st->token};
		if (b == NULL || !db_batch_add(b, &stmt_token_fp, p)) {
			db_batch_free(b);
			it_finish_err(op, "InternalServerError", NULL, "out of memory");
			return;
		}
		db_exec(op->store->db, b, token_checked, op);
		return;
	}
	bool race = false;
	json_t *reasons = NULL;
	if (strcmp(res->sqlstate, "OLT01") == 0) {
		reasons = reasons_json(st, res, -1, NULL, &race);
	} else if (strncmp(res->sqlstate, "OLV", 3) == 0) {
		int at = -1;
		for (int i = 0; i < st->n; i++)
			if (st->a[i].stmt_main == res->failed_index || st->a[i].stmt_insert == res->failed_index)
				at = i;
		const char *m = res->results[res->failed_index]
					? PQresultErrorField(res->results[res->failed_index], PG_DIAG_MESSAGE_PRIMARY)
					: res->message;
		reasons = reasons_json(st, res, at, m, &race);
	} else if (strcmp(res->sqlstate, "40P01") == 0 || strcmp(res->sqlstate, "40001") == 0) {
		race = true; /* deadlock/serialization: safe to rerun, nothing committed */
	} else {
		it_finish_db(op, res);
		return;
	}
	if (race && ++op->attempt < 5) {
		json_decref(reasons);
		run_txn(op);
		return;
	}
	if (reasons == NULL) {
		it_finish_err(op, "TransactionConflictException", NULL, "Transaction is ongoing for the item");
		return;
	}
	finish_cancelled(op, reasons);
}

static int cmp_actions(const void *x, const void *y)
{
	const txn_action *a = *(txn_action *const *)x, *b = *(txn_action *const *)y;
	if (a->w.t->id != b->w.t->id)
		return a->w.t->id < b->w.t->id ? -1 : 1;
	int c = strcmp(a->w.pkenc, b->w.pkenc);
	return c != 0 ? c : strcmp(a->w.skenc, b->w.skenc);
}

static void run_txn(it_op *op)
{
	txn_state *st = op->state;
	it_error e = {0};
	db_batch *b = db_batch_new();
	bool ok = b != NULL;
	int idx = 0;
	if (ok && st->token != NULL) {
		it_sql q;
		it_sql_init(&q, 1);
		ok = it_sql_append(&q, "WITH t AS (INSERT INTO item_txn_tokens (tenant, token, fingerprint) VALUES (") &&
		     it_sql_param(&q, "text", op->tenant, strlen(op->tenant), &e) && it_sql_append(&q, ", ") &&
		     it_sql_param(&q, "text", st->token, strlen(st->token), &e) && it_sql_append(&q, ", decode(") &&
		     it_sql_param(&q, "text", st->fp, strlen(st->fp), &e) &&
		     it_sql_append(&q, ", 'hex')) ON CONFLICT (tenant, token) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
				       " created_at = now() WHERE item_txn_tokens.created_at < now() - interval '10 minutes' RETURNING 1)"
				       " SELECT CASE WHEN EXISTS (SELECT 1 FROM t) THEN 1 ELSE ol_fail('OLT02', 'token used') END");
		ok = ok && !q.oom && db_batch_add_sql(b, it_sql_text(&q), (int)q.nparams, (const char *const *)q.params);
		it_sql_free(&q);
		st->stmt_token = idx++;
	}
	/* Rows are locked in one global order (table, pk, sk) so that two
	 * transactions over the same items cannot deadlock. */
	txn_action **order = calloc((size_t)st->n + 1, sizeof(*order));
	ok = ok && order != NULL;
	for (int i = 0; ok && i < st->n; i++)
		order[i] = &st->a[i];
	if (ok)
		qsort(order, (size_t)st->n, sizeof(*order), cmp_actions);
	for (int i = 0; ok && i < st->n; i++) {
		txn_action *a = order[i];
		a->w.txn = true;
		a->stmt_insert = -1;
		a->put_new = it_w_put_if_absent(&a->w);
		if (a->put_new) {
			ok = it_w_add_put_if_absent(b, &a->w, &e);
			a->stmt_main = idx++;
			continue;
		}
		ok = it_w_add_main(b, &a->w, &e);
		a->stmt_main = idx++;
		if (ok && (a->w.kind == IT_W_PUT || a->w.kind == IT_W_UPDATE) && a->w.cond_null) {
			ok = it_w_add_insert(b, &a->w, &e);
			a->stmt_insert = idx++;
		}
	}
	free(order);
	ok = ok && db_batch_add(b, &finish, NULL);
	st->stmt_finish = idx++;
	it_exec(op, b, ok, &e, txn_done);
}

/* DynamoDB refuses two actions of one transaction on the same item, in
 * TransactWriteItems and TransactGetItems alike; true after replying. */
static bool one_item_twice(it_op *op, const txn_state *st)
{
	for (int i = 0; i < st->n; i++)
		for (int j = 0; j < i; j++)
			if (op->tables[i]->id == op->tables[j]->id && strcmp(st->a[i].w.pkenc, st->a[j].w.pkenc) == 0 &&
			    strcmp(st->a[i].w.skenc, st->a[j].w.skenc) == 0) {
				it_finish_err(op, "ValidationException", NULL,
					      "Transaction request cannot include multiple operations on one item");
				return true;
			}
	return false;
}

static void write_tables_loaded(it_op *op)
{
	txn_state *st = op->state;
	json_t *items = json_object_get(op->req, "TransactItems");
	it_error e = {0};
	for (int i = 0; i < st->n; i++) {
		int kind = 0;
		json_t *body = action_body(json_array_get(items, (size_t)i), &kind);
		st->a[i].w.kind = kind;
		if (!parse_action(op, &st->a[i], body, op->tables[i], &e)) {
			it_finish_error(op, &e);
			return;
		}
	}
	if (one_item_twice(op, st))
		return;
	size_t bytes = 0;
	for (int i = 0; i < st->n; i++) {
		const it_value *v = st->a[i].w.kind == IT_W_PUT ? st->a[i].w.item : st->a[i].w.key;
		bytes += v != NULL ? it_item_size(v) : 0;
	}
	if (bytes > TXN_MAX_BYTES) {
		it_finish_err(op, "ValidationException", NULL, "Transaction request cannot be larger than 4 MB");
		return;
	}
	run_txn(op);
}

/* Collects TableName of each action; false after replying. */
static bool collect_tables(it_op *op, json_t *items, const char *wrapper_check, const char ***names_out, int *n_out)
{
	size_t n = json_array_size(items);
	size_t max = TXN_MAX_ACTIONS;
	if (!json_is_array(items) || n < 1 || n > max) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length %s",
			      n < 1 ? "greater than or equal to 1" : "less than or equal to 100");
		return false;
	}
	const char **names = calloc(n, sizeof(char *));
	if (names == NULL) {
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *el = json_array_get(items, i);
		json_t *body;
		if (wrapper_check != NULL) {
			body = json_object_get(el, wrapper_check);
		} else {
			int kind;
			body = action_body(el, &kind);
		}
		const char *tn = json_string_value(json_object_get(body, "TableName"));
		if (body == NULL || tn == NULL) {
			free(names);
			it_finish_err(op, "ValidationException", NULL,
				      "TransactItems can only contain one of Check, Put, Update or Delete, each with a TableName");
			return false;
		}
		if (!it_check_table_name(op, "tableName", tn)) {
			free(names);
			return false;
		}
		names[i] = tn;
	}
	*names_out = names;
	*n_out = (int)n;
	return true;
}

/* Common start of both transaction calls: the tables of TransactItems
 * (wrapper NULL: any write action; "Get": Get actions) and the state with
 * one action each. NULL after replying. */
static txn_state *txn_start(it_op *op, const char *wrapper, const char ***names, int *n)
{
	json_t *items = json_object_get(op->req, "TransactItems");
	if (!collect_tables(op, items, wrapper, names, n))
		return NULL;
	txn_state *st = calloc(1, sizeof(*st));
	if (st != NULL)
		st->a = calloc((size_t)*n, sizeof(txn_action));
	if (st == NULL || st->a == NULL) {
		free(st);
		free(*names);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return NULL;
	}
	st->n = *n;
	op->state = st;
	op->state_free = txn_free;
	return st;
}

void it_op_transact_write(it_op *op)
{
	const char **names;
	int n;
	txn_state *st = txn_start(op, NULL, &names, &n);
	if (st == NULL)
		return;
	st->token = it_req_str(op->req, "ClientRequestToken");
	if (st->token != NULL) {
		size_t tl = strlen(st->token);
		if (tl < 1 || tl > 36) {
			free(names);
			it_finish_err(op, "ValidationException", NULL,
				      "1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: Member must have length less than or equal to 36");
			return;
		}
		/* The fingerprint covers everything but the token itself. */
		json_t *copy = json_deep_copy(op->req);
		json_object_del(copy, "ClientRequestToken");
		json_object_del(copy, "ReturnConsumedCapacity");
		json_object_del(copy, "ReturnItemCollectionMetrics");
		char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(copy);
		unsigned char h[32];
		crypto_generichash(h, sizeof(h), (const unsigned char *)(text ? text : ""), text ? strlen(text) : 0, NULL, 0);
		free(text);
		sodium_bin2hex(st->fp, sizeof(st->fp), h, sizeof(h));
	}
	it_tables_get(op, names, n, write_tables_loaded);
	free(names);
}

/* ---- TransactGetItems --------------------------------------------------- */

static void get_done(db_result *res, void *arg)
{
	it_op *op = arg;
	txn_state *st = op->state;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	json_t **found = calloc((size_t)st->n, sizeof(json_t *));
	PGresult *r = res->results[0];
	for (int i = 0; found != NULL && i < PQntuples(r); i++) {
		int at = atoi(PQgetvalue(r, i, 0));
		if (at < 0 || at >= st->n)
			continue;
		json_t *j = json_loads(PQgetvalue(r, i, 1), 0, NULL);
		it_value *item = NULL;
		it_error e = {0};
		if (j != NULL && st->a[at].proj != NULL && it_item_from_json(j, &item, &e)) {
			it_value *p = NULL;
			if (it_project(st->a[at].proj, item, &p, &e)) {
				json_decref(j);
				j = it_item_to_json(p);
				it_value_free(p);
			}
			it_value_free(item);
		}
		it_error_clear(&e);
		json_decref(found[at]);
		found[at] = j;
	}
	json_t *out = json_array();
	int mode = it_cap_mode(op);
	double *units = mode != IT_CAP_NONE ? calloc((size_t)st->n + 1, sizeof(double)) : NULL;
	for (int i = 0; i < st->n; i++) {
		if (units != NULL) {
			/* transactional reads: twice a consistent read (of the item
			 * before projection) */
			it_value *v = NULL;
			it_error e = {0};
			units[i] = 2 * it_cap_read(found && found[i] && st->a[i].proj == NULL && it_item_from_json(found[i], &v, &e)
							? it_item_size(v)
							: 0,
						true);
			it_value_free(v);
			it_error_clear(&e);
		}
		json_array_append_new(out, found && found[i] ? json_pack("{s:o}", "Item", found[i]) : json_object());
	}
	free(found);
	json_t *body = json_pack("{s:o}", "Responses", out);
	if (units != NULL)
		json_object_set_new(body, "ConsumedCapacity", it_cap_tables(op, units, st->n, mode, false));
	free(units);
	it_finish_ok(op, body);
}

static void get_tables_loaded(it_op *op)
{
	txn_state *st = op->state;
	json_t *items = json_object_get(op->req, "TransactItems");
	it_error e = {0};
	it_sql q;
	it_sql_init(&q, 1);
	bool ok = true;
	/* One statement, hence one snapshot: the reads are mutually consistent. */
	for (int i = 0; ok && i < st->n; i++) {
		json_t *body = json_object_get(json_array_get(items, (size_t)i), "Get");
		txn_action *a = &st->a[i];
		a->w.kind = IT_W_GET;
		const it_table *t = op->tables[i];
		const char *proj = json_string_value(json_object_get(body, "ProjectionExpression"));
		json_t *names = json_object_get(body, "ExpressionAttributeNames");
		if (proj == NULL && names != NULL) {
			it_error_set(&e, IT_ERR_VALIDATION, "ExpressionAttributeNames can only be specified when using expressions");
			ok = false;
			break;
		}
		if (!it_params_init(&a->params, names, NULL, &e)) {
			ok = false;
			break;
		}
		a->params_init = true;
		if ((proj != NULL && !it_parse_projection(proj, strlen(proj), &a->params, &a->proj, &e)) ||
		    !it_params_check_unused(&a->params, &e)) {
			ok = false;
			break;
		}
		it_value *k = NULL;
		char *pk = NULL, *sk = NULL;
		if (!it_key_from_json(op, t, json_object_get(body, "Key"), &k, &pk, &sk)) {
			it_sql_free(&q);
			return; /* replied */
		}
		a->w.key = k;
		a->w.pkenc = pk;
		a->w.skenc = sk;
		char at[16];
		snprintf(at, sizeof(at), "%d", i);
		ok = it_sql_append(&q, "%sSELECT ", i ? " UNION ALL " : "") && it_sql_param(&q, "int", at, strlen(at), &e) &&
		     it_sql_append(&q, ", i.item::text FROM items i WHERE ") && it_w_key_pred(&q, t, "i", pk, sk, &e) &&
		     it_w_not_expired(&q, t, "i", &e);
	}
	if (ok && one_item_twice(op, st)) {
		it_sql_free(&q);
		return;
	}
	db_batch *b = ok ? db_batch_new() : NULL;
	ok = ok && b != NULL && !q.oom && db_batch_add_sql(b, it_sql_text(&q), (int)q.nparams, (const char *const *)q.params);
	it_sql_free(&q);
	it_exec(op, b, ok, &e, get_done);
}

void it_op_transact_get(it_op *op)
{
	const char **names;
	int n;
	txn_state *st = txn_start(op, "Get", &names, &n);
	if (st == NULL)
		return;
	it_tables_get(op, names, n, get_tables_loaded);
	free(names);
}
