/* ops_batch.c — BatchGetItem and BatchWriteItem: many keys or writes, one
 * pipeline. BatchGetItem reads each table with one statement; BatchWriteItem
 * sends one upsert or delete per request (no conditions, as in DynamoDB),
 * and never leaves UnprocessedItems since nothing is throttled here. */
#include "items/items_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "items/sql.h"
#include "items/write.h"

#define BATCH_GET_MAX 100
#define BATCH_WRITE_MAX 25

typedef struct batch_state {
	const char **names; /* table names in RequestItems order */
	int n;
	it_projection **proj; /* per table */
	it_params *params;
	bool *params_init;
	it_value **values; /* owned items/keys for writes */
	int nvalues;
	char **strs;
	int nstrs;
} batch_state;

static void batch_free(void *p)
{
	batch_state *st = p;
	for (int i = 0; i < st->n; i++) {
		if (st->proj)
			it_projection_free(st->proj[i]);
		if (st->params_init && st->params_init[i])
			it_params_free(&st->params[i]);
	}
	for (int i = 0; i < st->nvalues; i++)
		it_value_free(st->values[i]);
	for (int i = 0; i < st->nstrs; i++)
		free(st->strs[i]);
	free(st->values);
	free(st->strs);
	free(st->names);
	free(st->proj);
	free(st->params);
	free(st->params_init);
	free(st);
}

static batch_state *new_state(it_op *op, int n, int maxvalues)
{
	batch_state *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	op->state = st;
	op->state_free = batch_free;
	st->n = n;
	st->names = calloc((size_t)n + 1, sizeof(char *));
	st->proj = calloc((size_t)n + 1, sizeof(it_projection *));
	st->params = calloc((size_t)n + 1, sizeof(it_params));
	st->params_init = calloc((size_t)n + 1, sizeof(bool));
	st->values = calloc((size_t)maxvalues + 1, sizeof(it_value *));
	st->strs = calloc((size_t)maxvalues * 2 + 2, sizeof(char *));
	if (st->names == NULL || st->proj == NULL || st->params == NULL || st->params_init == NULL || st->values == NULL ||
	    st->strs == NULL)
		return NULL;
	return st;
}

/* ---- BatchGetItem -------------------------------------------------------- */

static void get_done(db_result *res, void *arg)
{
	it_op *op = arg;
	batch_state *st = op->state;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	json_t *responses = json_object();
	int mode = it_cap_mode(op);
	double *units = mode != IT_CAP_NONE ? calloc((size_t)st->n + 1, sizeof(double)) : NULL;
	for (int i = 0; i < st->n; i++) {
		json_t *arr = json_array();
		PGresult *r = res->results[i];
		json_t *treq = json_object_get(json_object_get(op->req, "RequestItems"), st->names[i]);
		bool consistent = json_is_true(json_object_get(treq, "ConsistentRead"));
		if (units != NULL) /* a key not found costs what an empty item does */
			units[i] = it_cap_read(0, consistent) *
				   (double)(json_array_size(json_object_get(treq, "Keys")) - (size_t)(r != NULL ? PQntuples(r) : 0));
		for (int k = 0; r != NULL && k < PQntuples(r); k++) {
			json_t *j = json_loads(PQgetvalue(r, k, 0), 0, NULL);
			if (units != NULL && j != NULL) {
				it_value *v = NULL;
				it_error e = {0};
				units[i] += it_cap_read(it_item_from_json(j, &v, &e) ? it_item_size(v) : 0, consistent);
				it_value_free(v);
				it_error_clear(&e);
			}
			if (j != NULL && st->proj[i] != NULL) {
				it_value *item = NULL, *p = NULL;
				it_error e = {0};
				if (it_item_from_json(j, &item, &e) && it_project(st->proj[i], item, &p, &e)) {
					json_decref(j);
					j = it_item_to_json(p);
				}
				it_value_free(item);
				it_value_free(p);
				it_error_clear(&e);
			}
			if (j != NULL)
				json_array_append_new(arr, j);
		}
		json_object_set_new(responses, st->names[i], arr);
	}
	json_t *body = json_pack("{s:o, s:{}}", "Responses", responses, "UnprocessedKeys");
	if (units != NULL)
		json_object_set_new(body, "ConsumedCapacity", it_cap_tables(op, units, st->n, mode, false));
	free(units);
	it_finish_ok(op, body);
}

static void get_loaded(it_op *op)
{
	batch_state *st = op->state;
	json_t *ri = json_object_get(op->req, "RequestItems");
	it_error e = {0};
	db_batch *b = db_batch_new();
	bool ok = b != NULL;
	for (int i = 0; ok && i < st->n; i++) {
		const it_table *t = op->tables[i];
		json_t *spec = json_object_get(ri, st->names[i]);
		const char *proj = json_string_value(json_object_get(spec, "ProjectionExpression"));
		json_t *names = json_object_get(spec, "ExpressionAttributeNames");
		if (proj == NULL && names != NULL) {
			it_error_set(&e, IT_ERR_VALIDATION, "ExpressionAttributeNames can only be specified when using expressions");
			ok = false;
			break;
		}
		if (!it_params_init(&st->params[i], names, NULL, &e)) {
			ok = false;
			break;
		}
		st->params_init[i] = true;
		if ((proj != NULL && !it_parse_projection(proj, strlen(proj), &st->params[i], &st->proj[i], &e)) ||
		    !it_params_check_unused(&st->params[i], &e)) {
			ok = false;
			break;
		}
		json_t *keys = json_object_get(spec, "Keys");
		json_t *pairs = json_array();
		size_t k;
		json_t *key;
		json_array_foreach(keys, k, key)
		{
			it_value *kv = NULL;
			char *pk = NULL, *sk = NULL;
			if (!it_key_from_json(op, t, key, &kv, &pk, &sk)) {
				json_decref(pairs);
				db_batch_free(b);
				return; /* replied */
			}
			it_value_free(kv);
			json_t *pair = json_pack("[s,s]", pk, sk);
			free(pk);
			free(sk);
			for (size_t m = 0; m < json_array_size(pairs); m++) {
				if (json_equal(json_array_get(pairs, m), pair)) {
					json_decref(pair);
					json_decref(pairs);
					db_batch_free(b);
					it_finish_err(op, "ValidationException", NULL, "Provided list of item keys contains duplicates");
					return;
				}
			}
			json_array_append_new(pairs, pair);
		}
		char *ptext = json_dumps(pairs, JSON_COMPACT);
		json_decref(pairs);
		char id[32];
		snprintf(id, sizeof(id), "%lld", (long long)t->id);
		it_sql q;
		it_sql_init(&q, 1);
		ok = ptext != NULL && it_sql_append(&q, "SELECT i.item::text FROM items i WHERE i.table_id = ") &&
		     it_sql_param(&q, "bigint", id, strlen(id), &e) &&
		     it_sql_append(&q, " AND (i.pk, i.sk) IN (SELECT x ->> 0, x ->> 1 FROM jsonb_array_elements(") &&
		     it_sql_param(&q, "jsonb", ptext, strlen(ptext), &e) &&
		     it_sql_append(&q, ") x)") && it_w_not_expired(&q, t, "i", &e) && !q.oom &&
		     db_batch_add_sql(b, it_sql_text(&q), (int)q.nparams, (const char *const *)q.params);
		it_sql_free(&q);
		free(ptext);
	}
	it_exec(op, b, ok, &e, get_done);
}

/* Lists the tables of RequestItems and counts the requests under `field`. */
static bool request_tables(it_op *op, const char *field, int max, bool get, batch_state **out)
{
	json_t *ri = json_object_get(op->req, "RequestItems");
	if (!json_is_object(ri) || json_object_size(ri) == 0) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value null at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1");
		return false;
	}
	int total = 0;
	const char *name;
	json_t *spec;
	json_object_foreach(ri, name, spec)
	{
		if (!it_check_table_name(op, "requestItems.key", name))
			return false;
		json_t *list = get ? json_object_get(spec, field) : spec;
		if (!json_is_array(list) || json_array_size(list) == 0) {
			it_finish_err(op, "ValidationException", NULL,
				      "1 validation error detected: Value at 'requestItems.%s.member.%s' failed to satisfy constraint: Member must have length greater than or equal to 1",
				      name, get ? "keys" : "writeRequests");
			return false;
		}
		total += (int)json_array_size(list);
	}
	if (total > max) {
		if (get)
			it_finish_err(op, "ValidationException", NULL, "Too many items requested for the BatchGetItem call");
		else
			it_finish_err(op, "ValidationException", NULL,
				      "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater than or equal to 1]");
		return false;
	}
	batch_state *st = new_state(op, (int)json_object_size(ri), total);
	if (st == NULL) {
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return false;
	}
	int i = 0;
	json_object_foreach(ri, name, spec) st->names[i++] = name;
	*out = st;
	return true;
}

void it_op_batch_get(it_op *op)
{
	batch_state *st;
	if (!request_tables(op, "Keys", BATCH_GET_MAX, true, &st))
		return;
	it_tables_get(op, st->names, st->n, get_loaded);
}

/* ---- BatchWriteItem ------------------------------------------------------ */

static void write_done(db_result *res, void *arg)
{
	it_op *op = arg;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	json_t *body = json_pack("{s:{}}", "UnprocessedItems");
	int mode = it_cap_mode(op);
	batch_state *st = op->state;
	double *units = mode != IT_CAP_NONE ? calloc((size_t)st->n + 1, sizeof(double)) : NULL;
	for (int i = 0; units != NULL && i < st->n; i++) {
		/* a put costs its item's size; a delete the minimum (the old
		 * item is not read back here: docs/dynamodb.md) */
		size_t k;
		json_t *w;
		json_array_foreach(json_object_get(json_object_get(op->req, "RequestItems"), st->names[i]), k, w)
		{
			json_t *item = json_object_get(json_object_get(w, "PutRequest"), "Item");
			it_value *v = NULL;
			it_error e = {0};
			units[i] += it_cap_write(item != NULL && it_item_from_json(item, &v, &e) ? it_item_size(v) : 0);
			it_value_free(v);
			it_error_clear(&e);
		}
	}
	if (units != NULL)
		json_object_set_new(body, "ConsumedCapacity", it_cap_tables(op, units, st->n, mode, true));
	free(units);
	it_finish_ok(op, body);
}

static void write_loaded(it_op *op)
{
	batch_state *st = op->state;
	json_t *ri = json_object_get(op->req, "RequestItems");
	it_error e = {0};
	db_batch *b = db_batch_new();
	json_t *seen = json_array();
	bool ok = b != NULL && seen != NULL;
	for (int i = 0; ok && i < st->n; i++) {
		const it_table *t = op->tables[i];
		size_t k;
		json_t *wr;
		json_array_foreach(json_object_get(ri, st->names[i]), k, wr)
		{
			json_t *put = json_object_get(wr, "PutRequest"), *del = json_object_get(wr, "DeleteRequest");
			if ((put != NULL) == (del != NULL)) {
				it_error_set(&e, IT_ERR_VALIDATION,
					     "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes");
				ok = false;
				break;
			}
			it_value *v = NULL;
			char *pk = NULL, *sk = NULL;
			if (put != NULL) {
				const json_t *item = json_object_get(put, "Item");
				if (item == NULL) {
					it_error_set(&e, IT_ERR_VALIDATION,
						     "1 validation error detected: Value null at 'requestItems.%s.member.%zu.member.putRequest.item' "
						     "failed to satisfy constraint: Member must not be null",
						     st->names[i], k + 1);
					ok = false;
					break;
				}
				if (!it_item_from_json(item, &v, &e)) {
					ok = false;
					break;
				}
				st->values[st->nvalues++] = v;
				if (!it_item_keys(op, t, v, &pk, &sk)) {
					json_decref(seen);
					db_batch_free(b);
					return; /* replied */
				}
			} else {
				if (!it_key_from_json(op, t, json_object_get(del, "Key"), &v, &pk, &sk)) {
					json_decref(seen);
					db_batch_free(b);
					return;
				}
				st->values[st->nvalues++] = v;
			}
			st->strs[st->nstrs++] = pk;
			st->strs[st->nstrs++] = sk;
			json_t *id = json_pack("[s,s,s]", st->names[i], pk, sk);
			for (size_t m = 0; m < json_array_size(seen); m++) {
				if (json_equal(json_array_get(seen, m), id)) {
					json_decref(id);
					json_decref(seen);
					db_batch_free(b);
					it_finish_err(op, "ValidationException", NULL, "Provided list of item keys contains duplicates");
					return;
				}
			}
			json_array_append_new(seen, id);
			if (put != NULL) {
				it_wspec w = {.kind = IT_W_PUT, .t = t, .item = v, .pkenc = pk, .skenc = sk, .cond_null = true};
				ok = it_w_add_upsert(b, &w, &e);
			} else {
				it_sql q;
				it_sql_init(&q, 1);
				ok = it_sql_append(&q, "DELETE FROM items i WHERE ") && it_w_key_pred(&q, t, "i", pk, sk, &e) && !q.oom &&
				     db_batch_add_sql(b, it_sql_text(&q), (int)q.nparams, (const char *const *)q.params);
				it_sql_free(&q);
			}
		}
	}
	json_decref(seen);
	it_exec(op, b, ok, &e, write_done);
}

void it_op_batch_write(it_op *op)
{
	batch_state *st;
	if (!request_tables(op, NULL, BATCH_WRITE_MAX, false, &st))
		return;
	it_tables_get(op, st->names, st->n, write_loaded);
}
