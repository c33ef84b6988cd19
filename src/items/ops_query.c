/* ops_query.c — Query and Scan over a table or a secondary index.
 *
 * The key condition becomes a btree range on the encoded keys (pk/sk, or an
 * index slot's x<N>pk/x<N>sk); pages continue after ExclusiveStartKey with a
 * row comparison in the index order. Limit counts items *evaluated*, as in
 * DynamoDB, so FilterExpression and ProjectionExpression run here in C on the
 * fetched page with the reference evaluator. */
#include "items/items_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "items/keyenc.h"
#include "items/sql.h"
#include "items/write.h"

#define PAGE_MAX_ITEMS 1000
#define PAGE_MAX_BYTES (1024 * 1024)

typedef struct query_state {
	bool scan;
	const it_index *ix;
	it_node *keycond;
	it_node *filter;
	it_projection *proj;
	bool forward;
	long limit;      /* rows to fetch */
	bool user_limit; /* Limit given */
	bool count_only;
	bool index_view; /* answer with the index's projection only */
} query_state;

static void state_free(void *p)
{
	query_state *st = p;
	it_node_free(st->keycond);
	it_node_free(st->filter);
	it_projection_free(st->proj);
	free(st);
}

static bool param_str(it_sql *q, const char *type, const char *v, it_error *e)
{
	return it_sql_param(q, type, v, strlen(v), e);
}

/* Encodes a key-condition operand, checking its type against the schema;
 * partition is the partition-key role (keyenc.h). */
static bool enc_operand(it_op *op, const it_keydef *kd, const it_value *v, bool partition, char **out)
{
	if (v->type != kd->type) {
		it_finish_err(op, "ValidationException", NULL,
			      "One or more parameter values were invalid: Condition parameter type does not match schema type");
		return false;
	}
	if (v->type == IT_S && memchr(v->u.s.ptr, '\0', v->u.s.len) != NULL) {
		it_finish_err(op, "ValidationException", NULL, "%s", IT_MSG_NUL);
		return false;
	}
	if (!(partition ? it_key_encode_partition(v, out) : it_key_encode(v, out))) {
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return false;
	}
	return true;
}

/* The attributes that make a page position in this table/index, each once:
 * the index's keys, then the table's (an LSI, or a GSI on the table's own
 * partition key, shares that attribute). */
static void position_keys(const it_table *t, const query_state *st, const it_keydef *out[4], int *n)
{
	const it_keydef *all[4];
	int m = 0;
	*n = 0;
	if (st->ix != NULL) {
		all[m++] = &st->ix->pk;
		if (st->ix->has_sk)
			all[m++] = &st->ix->sk;
	}
	all[m++] = &t->pk;
	if (t->has_sk)
		all[m++] = &t->sk;
	for (int i = 0; i < m; i++) {
		bool dup = false;
		for (int j = 0; j < *n; j++)
			dup = dup || strcmp(out[j]->name, all[i]->name) == 0;
		if (!dup)
			out[(*n)++] = all[i];
	}
}

static const char *col_pk(const query_state *st, char *buf)
{
	if (st->ix == NULL)
		return "i.pk";
	sprintf(buf, "i.x%dpk", st->ix->slot);
	return buf;
}

static const char *col_sk(const query_state *st, char *buf)
{
	if (st->ix == NULL)
		return "i.sk";
	sprintf(buf, "i.x%dsk", st->ix->slot);
	return buf;
}

/* Encodes key attribute kd of the start key in its column's role; "" for
 * a missing sort key (the column holds ''). False when it does not match. */
static bool start_value(const it_value *k, const it_keydef *kd, bool partition, char **out)
{
	if (kd == NULL)
		return (*out = strdup("")) != NULL;
	const it_value *v = it_map_get(k, kd->name, strlen(kd->name));
	if (v == NULL || v->type != kd->type)
		return false;
	return partition ? it_key_encode_partition(v, out) : it_key_encode(v, out);
}

/* Appends the ExclusiveStartKey predicate: the row tuple of the ORDER BY
 * columns after (or before, backwards) the start key's. */
static bool start_after(it_op *op, it_sql *q, const query_state *st, it_error *e)
{
	const it_table *t = op->table;
	json_t *esk = json_object_get(op->req, "ExclusiveStartKey");
	if (esk == NULL)
		return true;
	it_value *k = NULL;
	if (!it_item_from_json(esk, &k, e))
		return false;
	const it_keydef *keys[4];
	int nk;
	position_keys(t, st, keys, &nk);
	bool ok = k->u.m.n == (size_t)nk;
	/* columns in index order and the key attribute each holds */
	char b1[16], b2[16];
	const char *cols[4];
	const it_keydef *defs[4];
	bool part[4];
	int n = 0;
	if (st->ix != NULL) {
		cols[n] = col_pk(st, b1), defs[n] = &st->ix->pk, part[n++] = true;
		cols[n] = col_sk(st, b2), defs[n] = st->ix->has_sk ? &st->ix->sk : NULL, part[n++] = false;
	}
	if (st->ix != NULL || st->scan)
		cols[n] = "i.pk", defs[n] = &t->pk, part[n++] = true;
	cols[n] = "i.sk", defs[n] = t->has_sk ? &t->sk : NULL, part[n++] = false;
	char *enc[4] = {0};
	for (int i = 0; i < n && ok; i++)
		ok = start_value(k, defs[i], part[i], &enc[i]);
	if (!ok)
		it_error_set(e, IT_ERR_VALIDATION, "The provided starting key is invalid: The provided key element does not match the schema");
	if (ok && st->ix == NULL && !st->scan && !t->has_sk)
		ok = it_sql_append(q, " AND FALSE"); /* one item per partition */
	else if (ok) {
		ok = it_sql_append(q, " AND (");
		for (int i = 0; i < n && ok; i++)
			ok = it_sql_append(q, "%s%s", i ? ", " : "", cols[i]);
		ok = ok && it_sql_append(q, ") %s (", st->forward ? ">" : "<");
		for (int i = 0; i < n && ok; i++)
			ok = it_sql_append(q, "%s", i ? ", " : "") && param_str(q, "text", enc[i], e);
		ok = ok && it_sql_append(q, ")");
	}
	for (int i = 0; i < 4; i++)
		free(enc[i]);
	it_value_free(k);
	return ok;
}

/* The SQL stopped at the byte limit: more rows may follow. */
static bool sql_cut(const query_state *st, PGresult *r, int nrows)
{
	long long upto = 0;
	return nrows > 0 && nrows < st->limit && util_parse_ll(PQgetvalue(r, nrows - 1, 1), 0, INT64_MAX, &upto) &&
	       upto >= PAGE_MAX_BYTES;
}

/* LastEvaluatedKey: the position attributes of the page's last item. */
static json_t *last_key(const it_table *t, const query_state *st, const it_value *last)
{
	const it_keydef *keys[4];
	int n;
	position_keys(t, st, keys, &n);
	json_t *lek = json_object();
	for (int i = 0; i < n; i++) {
		const it_value *v = it_map_get(last, keys[i]->name, strlen(keys[i]->name));
		if (v != NULL)
			json_object_set_new(lek, keys[i]->name, it_value_to_json(v));
	}
	return lek;
}

/* The page answered with the stored items' text as it is (it_call_text),
 * when nothing asks for their contents; false leaves it to the decoding
 * path. Only the last item is decoded, for LastEvaluatedKey. */
static bool text_page(it_op *op, const query_state *st, PGresult *r, int nrows)
{
	if (!op->text_ok || st->count_only || st->filter != NULL || st->proj != NULL || st->index_view ||
	    it_cap_mode(op) != IT_CAP_NONE)
		return false;
	size_t items = 0;
	for (int i = 0; i < nrows; i++)
		items += (size_t)PQgetlength(r, i, 0) + 1;
	/* An item's text is longer than its DynamoDB size (names quoted,
	 * types tagged, binaries in base64): under the byte limit in text, the
	 * decoding path would not cut the page either. */
	if (items >= PAGE_MAX_BYTES)
		return false;
	char *lek = NULL;
	if (nrows > 0 && (nrows >= st->limit || sql_cut(st, r, nrows))) {
		json_t *j = json_loads(PQgetvalue(r, nrows - 1, 0), 0, NULL);
		it_value *last = NULL;
		it_error e = {0};
		bool ok = j != NULL && it_item_from_json(j, &last, &e);
		json_decref(j);
		it_error_clear(&e);
		if (!ok)
			return false;
		json_t *k = last_key(op->table, st, last);
		it_value_free(last);
		lek = k != NULL ? json_dumps(k, JSON_COMPACT) : NULL;
		json_decref(k);
		if (lek == NULL)
			return false;
	}
	char head[80];
	int hn = snprintf(head, sizeof(head), "{\"Count\":%d,\"ScannedCount\":%d,\"Items\":[", nrows, nrows);
	static const char lek_name[] = "],\"LastEvaluatedKey\":";
	size_t cap = (size_t)hn + items + sizeof(lek_name) + (lek != NULL ? strlen(lek) : 0) + 2;
	char *text = malloc(cap);
	if (text == NULL) {
		free(lek);
		return false;
	}
	size_t len = (size_t)hn;
	memcpy(text, head, len);
	for (int i = 0; i < nrows; i++) {
		if (i > 0)
			text[len++] = ',';
		size_t n = (size_t)PQgetlength(r, i, 0);
		memcpy(text + len, PQgetvalue(r, i, 0), n);
		len += n;
	}
	if (lek != NULL) {
		memcpy(text + len, lek_name, sizeof(lek_name) - 1);
		len += sizeof(lek_name) - 1;
		size_t n = strlen(lek);
		memcpy(text + len, lek, n);
		len += n;
		free(lek);
	} else
		text[len++] = ']';
	text[len++] = '}';
	text[len] = '\0';
	it_finish_text(op, text, len);
	return true;
}

static void page_done(db_result *res, void *arg)
{
	it_op *op = arg;
	query_state *st = op->state;
	const it_table *t = op->table;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	PGresult *r = res->results[0];
	int nrows = PQntuples(r);
	if (text_page(op, st, r, nrows))
		return;
	json_t *items = json_array();
	long scanned = 0, count = 0;
	size_t bytes = 0;
	it_value *last = NULL;
	bool cut = false;
	for (int i = 0; i < nrows; i++) {
		json_t *j = json_loads(PQgetvalue(r, i, 0), 0, NULL);
		it_value *item = NULL;
		it_error e = {0};
		if (j == NULL || !it_item_from_json(j, &item, &e)) {
			json_decref(j);
			it_error_clear(&e);
			continue;
		}
		json_decref(j);
		scanned++;
		/* a GSI holds only its projection: filter and answer see that;
		 * an LSI's filter reads the table's item, as DynamoDB fetches */
		it_value *view = st->index_view ? it_index_view(t, st->ix, item) : NULL;
		const it_value *seen = view != NULL ? view : item;
		bytes += it_item_size(seen); /* what was read: the page limit and the capacity */
		bool keep = true;
		if (st->filter != NULL && !it_eval_condition(st->filter, st->ix != NULL && st->ix->local ? item : seen, &keep, &e))
			keep = false;
		it_error_clear(&e);
		if (keep) {
			count++;
			if (!st->count_only) {
				const it_value *out = seen;
				it_value *p = NULL;
				if (st->proj != NULL && it_project(st->proj, seen, &p, &e))
					out = p;
				it_error_clear(&e);
				json_array_append_new(items, it_item_to_json(out));
				if (p != NULL)
					it_value_free(p);
			}
		}
		it_value_free(view);
		it_value_free(last);
		last = item;
		if (bytes >= PAGE_MAX_BYTES && i + 1 < nrows) {
			cut = true;
			break;
		}
	}
	json_t *body = json_pack("{s:I, s:I}", "Count", (json_int_t)count, "ScannedCount", (json_int_t)scanned);
	int mode = it_cap_mode(op);
	if (mode != IT_CAP_NONE) {
		/* the items read, summed, then rounded; charged to the index read */
		double units = it_cap_read(bytes, json_is_true(json_object_get(op->req, "ConsistentRead")));
		double idx[IT_MAX_SLOTS] = {0};
		for (int i = 0; st->ix != NULL && i < t->nidx; i++)
			if (&t->idx[i] == st->ix)
				idx[i] = units;
		json_object_set_new(body, "ConsumedCapacity", it_cap_json(t, t->name, st->ix != NULL ? 0 : units, idx, mode, false));
	}
	if (!st->count_only)
		json_object_set_new(body, "Items", items);
	else
		json_decref(items);
	if (!cut)
		cut = sql_cut(st, r, nrows);
	if (last != NULL && (cut || nrows >= st->limit))
		json_object_set_new(body, "LastEvaluatedKey", last_key(t, st, last));
	it_value_free(last);
	it_finish_ok(op, body);
}

/* Parses the options shared by Query and Scan. */
static bool common(it_op *op, query_state *st, it_table *t, it_error *e)
{
	json_t *req = op->req;
	const char *iname = it_req_str(req, "IndexName");
	if (iname != NULL) {
		st->ix = it_table_index(t, iname);
		if (st->ix == NULL) {
			it_error_set(e, IT_ERR_VALIDATION, "The table does not have the specified index: %s", iname);
			return false;
		}
		if (!st->ix->local && json_is_true(json_object_get(req, "ConsistentRead"))) {
			it_error_set(e, IT_ERR_VALIDATION, "Consistent reads are not supported on global secondary indexes");
			return false;
		}
	}
	json_t *lim = json_object_get(req, "Limit");
	st->limit = PAGE_MAX_ITEMS;
	if (lim != NULL) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1) {
			it_error_set(e, IT_ERR_VALIDATION,
				     "1 validation error detected: Value '%lld' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
				     (long long)json_integer_value(lim));
			return false;
		}
		st->user_limit = true;
		if (json_integer_value(lim) < PAGE_MAX_ITEMS)
			st->limit = (long)json_integer_value(lim);
	}
	json_t *fwd = json_object_get(req, "ScanIndexForward");
	st->forward = st->scan || fwd == NULL || json_is_true(fwd);
	const char *sel = it_req_str(req, "Select");
	if (sel != NULL && strcmp(sel, "COUNT") != 0 && strcmp(sel, "ALL_ATTRIBUTES") != 0 &&
	    strcmp(sel, "ALL_PROJECTED_ATTRIBUTES") != 0 && strcmp(sel, "SPECIFIC_ATTRIBUTES") != 0) {
		it_error_set(e, IT_ERR_VALIDATION,
			     "1 validation error detected: Value '%s' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]",
			     sel);
		return false;
	}
	st->count_only = sel != NULL && strcmp(sel, "COUNT") == 0;
	const char *filter = it_req_str(req, "FilterExpression");
	const char *proj = it_req_str(req, "ProjectionExpression");
	if (proj != NULL && sel != NULL && strcmp(sel, "SPECIFIC_ATTRIBUTES") != 0) {
		it_error_set(e, IT_ERR_VALIDATION, "Cannot specify the ProjectionExpression when choosing to get %s",
			     st->count_only ? "only the Count" : sel);
		return false;
	}
	if (proj == NULL && sel != NULL && strcmp(sel, "SPECIFIC_ATTRIBUTES") == 0) {
		it_error_set(e, IT_ERR_VALIDATION, "Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES");
		return false;
	}
	if (sel != NULL && strcmp(sel, "ALL_PROJECTED_ATTRIBUTES") == 0 && st->ix == NULL) {
		it_error_set(e, IT_ERR_VALIDATION, "ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName");
		return false;
	}
	bool all = sel != NULL && strcmp(sel, "ALL_ATTRIBUTES") == 0;
	if (st->ix != NULL && st->ix->projection != IT_PROJ_ALL) {
		if (all && !st->ix->local) {
			it_error_set(e, IT_ERR_VALIDATION,
				     "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index %s because its projection type is not ALL",
				     st->ix->name);
			return false;
		}
		/* an LSI fetches from the table what the projection lacks */
		st->index_view = !st->ix->local || (!all && proj == NULL);
	}
	const char *kc = st->scan ? NULL : it_req_str(req, "KeyConditionExpression");
	json_t *names = json_object_get(req, "ExpressionAttributeNames");
	json_t *values = json_object_get(req, "ExpressionAttributeValues");
	if (!st->scan && kc == NULL) {
		it_error_set(e, IT_ERR_VALIDATION, "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.");
		return false;
	}
	if (filter == NULL && proj == NULL && kc == NULL) {
		if (names != NULL) {
			it_error_set(e, IT_ERR_VALIDATION, "ExpressionAttributeNames can only be specified when using expressions");
			return false;
		}
		if (values != NULL) {
			it_error_set(e, IT_ERR_VALIDATION, "ExpressionAttributeValues can only be specified when using expressions");
			return false;
		}
	}
	if (!it_params_init(&op->params, names, values, e))
		return false;
	op->params_init = true;
	if (kc != NULL && !it_parse_condition(IT_EXPR_KEYCOND, kc, strlen(kc), &op->params, &st->keycond, e))
		return false;
	if (filter != NULL && !it_parse_condition(IT_EXPR_FILTER, filter, strlen(filter), &op->params, &st->filter, e))
		return false;
	if (proj != NULL && !it_parse_projection(proj, strlen(proj), &op->params, &st->proj, e))
		return false;
	if (!st->scan && st->filter != NULL) {
		/* the key condition is where keys are matched (DynamoDB's rule) */
		const it_keydef *keys[2] = {it_index_key(t, st->ix, false), it_index_key(t, st->ix, true)};
		for (int i = 0; i < 2; i++) {
			if (keys[i] != NULL && it_node_references(st->filter, keys[i]->name, strlen(keys[i]->name))) {
				it_error_set(e, IT_ERR_VALIDATION,
					     "Filter Expression can only contain non-primary key attributes: Primary key attribute: %s",
					     keys[i]->name);
				return false;
			}
		}
	}
	return it_params_check_unused(&op->params, e);
}

static void run(it_op *op, it_table *t, bool scan)
{
	query_state *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	st->scan = scan;
	op->state = st;
	op->state_free = state_free;
	it_error e = {0};
	if (!common(op, st, t, &e)) {
		it_finish_error(op, &e);
		return;
	}
	char b1[16], b2[16], id[32];
	snprintf(id, sizeof(id), "%lld", (long long)t->id);
	it_sql q;
	it_sql_init(&q, 1);
	/* The page's order, used twice: by the rows and by the running total
	 * of their stored size that stops reading at the page's byte limit. */
	char order[160];
	const char *dir = st->forward ? "ASC" : "DESC";
	if (st->ix != NULL)
		snprintf(order, sizeof(order), "%s %s, %s %s, i.pk %s, i.sk %s", col_pk(st, b1), dir, col_sk(st, b2), dir, dir, dir);
	else if (scan)
		snprintf(order, sizeof(order), "i.pk, i.sk");
	else
		snprintf(order, sizeof(order), "i.sk %s", dir);
	/* Only the rows up to the one that crosses PAGE_MAX_BYTES (stored,
	 * possibly compressed size) are detoasted and sent: a page of 400 KB
	 * items no longer reads 1,000 of them. */
	bool ok = it_sql_append(&q, "SELECT p.item::text, p.upto FROM (SELECT i.item, sum(pg_column_size(i.item)) OVER"
				    " (ORDER BY %s ROWS UNBOUNDED PRECEDING) AS upto FROM items i WHERE i.table_id = ",
				order) &&
		  param_str(&q, "bigint", id, &e) &&
		  it_w_not_expired(&q, t, "i", &e);
	if (ok && st->ix != NULL)
		ok = it_sql_append(&q, " AND %s IS NOT NULL", col_pk(st, b1));
	if (ok && !scan) {
		const it_keydef *pkd = it_index_key(t, st->ix, false);
		const it_keydef *skd = it_index_key(t, st->ix, true);
		it_keycond pkc, skc;
		if (!it_keycond_bind(st->keycond, pkd->name, skd ? skd->name : NULL, &pkc, &skc, &e)) {
			it_sql_free(&q);
			it_finish_error(op, &e);
			return;
		}
		char *pv = NULL, *v1 = NULL, *v2 = NULL;
		if (!enc_operand(op, pkd, pkc.v1, true, &pv)) {
			it_sql_free(&q);
			return;
		}
		ok = it_sql_append(&q, " AND %s = ", col_pk(st, b1)) && param_str(&q, "text", pv, &e);
		free(pv);
		if (ok && skc.name != NULL) {
			if (!enc_operand(op, skd, skc.v1, false, &v1) || (skc.op == IT_KEY_BETWEEN && !enc_operand(op, skd, skc.v2, false, &v2))) {
				free(v1);
				it_sql_free(&q);
				return;
			}
			const char *c = col_sk(st, b2);
			switch (skc.op) {
			case IT_KEY_EQ: ok = it_sql_append(&q, " AND %s = ", c) && param_str(&q, "text", v1, &e); break;
			case IT_KEY_LT: ok = it_sql_append(&q, " AND %s < ", c) && param_str(&q, "text", v1, &e); break;
			case IT_KEY_LE: ok = it_sql_append(&q, " AND %s <= ", c) && param_str(&q, "text", v1, &e); break;
			case IT_KEY_GT: ok = it_sql_append(&q, " AND %s > ", c) && param_str(&q, "text", v1, &e); break;
			case IT_KEY_GE: ok = it_sql_append(&q, " AND %s >= ", c) && param_str(&q, "text", v1, &e); break;
			case IT_KEY_BETWEEN:
				if (it_value_cmp(skc.v1, skc.v2) > 0) {
					free(v1);
					free(v2);
					it_sql_free(&q);
					it_finish_err(op, "ValidationException", NULL,
						      "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound");
					return;
				}
				ok = it_sql_append(&q, " AND %s BETWEEN ", c) && param_str(&q, "text", v1, &e) &&
				     it_sql_append(&q, " AND ") && param_str(&q, "text", v2, &e);
				break;
			case IT_KEY_BEGINS_WITH:
				if (skd->type == IT_N) {
					free(v1);
					it_sql_free(&q);
					it_finish_err(op, "ValidationException", NULL,
						      "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N");
					return;
				}
				/* A range start for the index plus the exact prefix test. */
				ok = it_sql_append(&q, " AND %s >= ", c) && param_str(&q, "text", v1, &e) &&
				     it_sql_append(&q, " AND starts_with(%s, ", c) && param_str(&q, "text", v1, &e) &&
				     it_sql_append(&q, ")");
				break;
			}
			free(v1);
			free(v2);
		}
	}
	if (ok && scan) {
		json_t *seg = json_object_get(op->req, "Segment"), *tot = json_object_get(op->req, "TotalSegments");
		if ((seg != NULL) != (tot != NULL)) {
			it_sql_free(&q);
			it_finish_err(op, "ValidationException", NULL,
				      seg ? "The TotalSegments parameter is required but was not present in the request when Segment parameter is present"
					  : "The Segment parameter is required but was not present in the request when parameter TotalSegments is present");
			return;
		}
		if (tot != NULL) {
			json_int_t ts = json_integer_value(tot), sg = json_integer_value(seg);
			if (!json_is_integer(tot) || ts < 1 || ts > 1000000) {
				it_sql_free(&q);
				it_finish_err(op, "ValidationException", NULL,
					      "1 validation error detected: Value '%lld' at 'totalSegments' failed to satisfy constraint: Member must have value less than or equal to 1000000",
					      (long long)ts);
				return;
			}
			if (!json_is_integer(seg) || sg < 0 || sg >= ts) {
				it_sql_free(&q);
				it_finish_err(op, "ValidationException", NULL,
					      "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: %lld is out of bounds; TotalSegments: %lld",
					      (long long)sg, (long long)ts);
				return;
			}
			char sbuf[24], tbuf[24];
			snprintf(sbuf, sizeof(sbuf), "%lld", (long long)sg);
			snprintf(tbuf, sizeof(tbuf), "%lld", (long long)ts);
			/* Segments split by a hash of the partition key, as DynamoDB does. */
			ok = it_sql_append(&q, " AND (hashtext(i.pk) & 2147483647) %% ") && param_str(&q, "int", tbuf, &e) &&
			     it_sql_append(&q, " = ") && param_str(&q, "int", sbuf, &e);
		}
	}
	ok = ok && start_after(op, &q, st, &e);
	ok = ok && it_sql_append(&q, " ORDER BY %s", order);
	char lbuf[24];
	snprintf(lbuf, sizeof(lbuf), "%ld", st->limit);
	ok = ok && it_sql_append(&q, " LIMIT ") && param_str(&q, "int", lbuf, &e);
	ok = ok && it_sql_append(&q, ") p WHERE p.upto - pg_column_size(p.item) < %d ORDER BY p.upto", PAGE_MAX_BYTES);
	db_batch *b = db_batch_new();
	ok = ok && b != NULL && !q.oom && db_batch_add_sql(b, it_sql_text(&q), (int)q.nparams, (const char *const *)q.params);
	it_sql_free(&q);
	it_exec(op, b, ok, &e, page_done);
}

static void query_with(it_op *op, it_table *t) { run(op, t, false); }
static void scan_with(it_op *op, it_table *t) { run(op, t, true); }

void it_op_query(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (it_check_table_name(op, "tableName", name))
		it_table_get(op, name, query_with);
}

void it_op_scan(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (it_check_table_name(op, "tableName", name))
		it_table_get(op, name, scan_with);
}
