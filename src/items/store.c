/* store.c — the entry point of the item layer's operations: dispatch by
 * operation name, reply helpers, the per-worker cache of table definitions
 * (one indexed query per table per second at most), and key extraction. */
#include "items/items_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "items/keyenc.h"
#include "log.h"
#include "util/util.h"

#define TABLE_CACHE_MS 1000

static const struct {
	const char *name;
	void (*fn)(it_op *op);
} ops[] = {
	{"CreateTable", it_op_create_table},
	{"DescribeTable", it_op_describe_table},
	{"DeleteTable", it_op_delete_table},
	{"UpdateTable", it_op_update_table},
	{"ListTables", it_op_list_tables},
	{"UpdateTimeToLive", it_op_update_ttl},
	{"DescribeTimeToLive", it_op_describe_ttl},
	{"GetItem", it_op_get_item},
	{"PutItem", it_op_put_item},
	{"UpdateItem", it_op_update_item},
	{"DeleteItem", it_op_delete_item},
	{"Query", it_op_query},
	{"Scan", it_op_scan},
	{"TransactWriteItems", it_op_transact_write},
	{"TransactGetItems", it_op_transact_get},
	{"BatchGetItem", it_op_batch_get},
	{"BatchWriteItem", it_op_batch_write},
	/* DynamoDB Streams (its own target prefix, docs/dynamodb.md "Streams") */
	{IT_STREAMS_OP_PREFIX "ListStreams", it_op_list_streams},
	{IT_STREAMS_OP_PREFIX "DescribeStream", it_op_describe_stream},
	{IT_STREAMS_OP_PREFIX "GetShardIterator", it_op_get_shard_iterator},
	{IT_STREAMS_OP_PREFIX "GetRecords", it_op_get_records},
};

it_store *it_store_new(db_pool *db)
{
	it_store *s = calloc(1, sizeof(*s));
	if (s != NULL)
		s->db = db;
	return s;
}

void it_store_set_stream_key(it_store *s, const unsigned char key[32])
{
	memcpy(s->stream_key, key, sizeof(s->stream_key));
	s->has_stream_key = true;
}

void it_store_free(it_store *s)
{
	if (s == NULL)
		return;
	sodium_memzero(s->stream_key, sizeof(s->stream_key));
	for (int i = 0; i < s->ntables; i++)
		it_table_unref(s->tables[i]);
	free(s->tables);
	free(s);
}

bool it_op_known(const char *op)
{
	for (size_t i = 0; i < OL_ARRAY_LEN(ops); i++)
		if (strcmp(ops[i].name, op) == 0)
			return true;
	return false;
}

static void loader_free(void *p);

static void op_free(it_op *op)
{
	if (op->state_free != NULL)
		op->state_free(op->state);
	if (op->params_init)
		it_params_free(&op->params);
	if (op->table != NULL)
		it_table_unref(op->table);
	for (int i = 0; i < op->ntables; i++)
		it_table_unref(op->tables[i]);
	free(op->tables);
	loader_free(op->loader);
	json_decref(op->req);
	json_decref(op->reply.body);
	free(op->reply.text);
	json_decref(op->reply.err_extra);
	free(op->reply.err_msg);
	free(op);
}

static void finish(it_op *op)
{
	op->cb(&op->reply, op->cb_arg);
	op_free(op);
}

void it_finish_ok(it_op *op, json_t *body)
{
	op->reply.body = body != NULL ? body : json_object();
	finish(op);
}

void it_finish_text(it_op *op, char *text, size_t len)
{
	op->reply.text = text;
	op->reply.text_len = len;
	finish(op);
}

void it_finish_err(it_op *op, const char *type, json_t *extra, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	/* a message quoting request text may end inside a character: cut it
	 * where the JSON encoder will accept it (else the client got 500 {}) */
	if (msg != NULL)
		msg[util_utf8_prefix(msg, strlen(msg))] = '\0';
	op->reply.err_type = type;
	op->reply.err_msg = msg;
	op->reply.err_extra = extra;
	finish(op);
}

void it_finish_error(it_op *op, it_error *e)
{
	const char *type = e->code == IT_ERR_SERIALIZATION ? "SerializationException"
			   : e->code == IT_ERR_NOMEM	     ? "InternalServerError"
							     : "ValidationException";
	it_finish_err(op, type, NULL, "%s", e->msg ? e->msg : "invalid request");
	it_error_clear(e);
}

void it_finish_db(it_op *op, const db_result *res)
{
	if (res->status == DB_ERR_QUERY && strncmp(res->sqlstate, "OLV", 3) == 0) {
		/* A DynamoDB runtime error raised by our SQL functions. */
		const char *m = res->results != NULL && res->failed_index >= 0 && res->results[res->failed_index]
					? PQresultErrorField(res->results[res->failed_index], PG_DIAG_MESSAGE_PRIMARY)
					: res->message;
		it_finish_err(op, "ValidationException", NULL, "%s", m ? m : "invalid request");
		return;
	}
	if (res->status == DB_ERR_QUERY && strcmp(res->sqlstate, "54000") == 0) {
		/* an index entry over the btree's 2,704 bytes: both sort keys of
		 * a secondary index near their limits (docs/dynamodb.md) */
		it_finish_err(op, "ValidationException", NULL,
			      "One or more parameter values were invalid: the key values of this item are too long for one index entry");
		return;
	}
	if (res->status == DB_ERR_QUERY && strncmp(res->sqlstate, "57", 2) != 0 && strncmp(res->sqlstate, "08", 2) != 0) {
		log_error("item_query_failed", "{s:s, s:s, s:s, s:i}", "op", op->opname, "sqlstate", res->sqlstate, "error",
			  res->message ? res->message : "", "statement", res->failed_index);
		it_finish_err(op, "InternalServerError", NULL, "Internal server error");
		return;
	}
	if (res->status == DB_ERR_ABORTED) {
		/* An earlier statement of the transaction failed: say which, it
		 * is not this operation's fault. A key claimed by another request
		 * (OLC01) or a lock wait past its limit (55P03) is routine. */
		bool routine = strcmp(res->sqlstate, "OLC01") == 0 || strcmp(res->sqlstate, "55P03") == 0;
		if (routine)
			log_debug("item_tx_aborted", "{s:s, s:s}", "op", op->opname, "sqlstate", res->sqlstate);
		else
			log_error("item_tx_aborted", "{s:s, s:s, s:s}", "op", op->opname, "sqlstate", res->sqlstate, "error",
				  res->message ? res->message : "");
	}
	op->reply.retryable = true;
	it_finish_err(op, "ServiceUnavailable", NULL, "%s",
		      res->status == DB_ERR_TIMEOUT ? "The database did not answer in time" : "The database is unavailable");
}

void it_exec(it_op *op, db_batch *b, bool ok, it_error *e, db_cb cb)
{
	if (!ok || b == NULL) {
		db_batch_free(b);
		if (e != NULL && e->code != IT_ERR_NONE)
			it_finish_error(op, e);
		else
			it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	db_exec(op->store->db, b, cb, op);
}

static void call(it_store *s, bool text_ok, const char *tenant, const char *opname, json_t *request, it_done cb, void *arg)
{
	it_op *op = calloc(1, sizeof(*op));
	if (op == NULL) {
		it_reply r = {.err_type = "InternalServerError", .err_msg = NULL};
		cb(&r, arg);
		return;
	}
	op->store = s;
	util_strlcpy(op->tenant, tenant, sizeof(op->tenant));
	util_strlcpy(op->opname, opname, sizeof(op->opname));
	op->req = json_incref(request);
	op->cb = cb;
	op->cb_arg = arg;
	op->text_ok = text_ok;
	if (!json_is_object(request)) {
		it_finish_err(op, "SerializationException", NULL, "Start of structure or map found where not expected.");
		return;
	}
	if (it_legacy_present(request)) {
		/* rewritten on a copy: the caller's request stays as it sent it */
		it_error e = {0};
		json_decref(op->req);
		op->req = json_deep_copy(request);
		if (op->req == NULL || !it_legacy_translate(op->req, &e)) {
			if (op->req == NULL)
				it_error_nomem(&e);
			it_finish_error(op, &e);
			return;
		}
	}
	for (size_t i = 0; i < OL_ARRAY_LEN(ops); i++) {
		if (strcmp(ops[i].name, opname) == 0) {
			ops[i].fn(op);
			return;
		}
	}
	it_finish_err(op, "UnknownOperationException", NULL, "Unknown operation %s", opname);
}

void it_call(it_store *s, const char *tenant, const char *opname, json_t *request, it_done cb, void *arg)
{
	call(s, false, tenant, opname, request, cb, arg);
}

void it_call_text(it_store *s, const char *tenant, const char *opname, json_t *request, it_done cb, void *arg)
{
	call(s, true, tenant, opname, request, cb, arg);
}

it_op *it_internal_op(it_store *s, const char *tenant, const char *name, it_done cb, void *cb_arg)
{
	it_op *op = calloc(1, sizeof(*op));
	if (op == NULL)
		return NULL;
	op->req = json_object();
	if (op->req == NULL) {
		free(op);
		return NULL;
	}
	op->store = s;
	op->internal = true;
	util_strlcpy(op->tenant, tenant, sizeof(op->tenant));
	util_strlcpy(op->opname, name, sizeof(op->opname));
	op->cb = cb;
	op->cb_arg = cb_arg;
	return op;
}

/* ---- request helpers -------------------------------------------------- */

const char *it_req_str(const json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

bool it_check_table_name(it_op *op, const char *field, const char *name)
{
	if (name == NULL) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null",
			      field);
		return false;
	}
	size_t n = strlen(name);
	if (n < 3 || n > 255) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must have length %s",
			      name, field, n < 3 ? "greater than or equal to 3" : "less than or equal to 255");
		return false;
	}
	/* System tables ("ol:...") are reachable from inside the program
	 * only; for everyone else ':' is not a valid character. */
	if (op->internal && strncmp(name, "ol:", 3) == 0)
		return true;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		      c == '.')) {
			it_finish_err(op, "ValidationException", NULL,
				      "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy "
				      "regular expression pattern: [a-zA-Z0-9_.-]+",
				      name, field);
			return false;
		}
	}
	return true;
}

/* What an index holds of item: the table's and the index's keys and, for
 * INCLUDE, the named attributes (KEYS_ONLY / INCLUDE projections). */
it_value *it_index_view(const it_table *t, const it_index *ix, const it_value *item)
{
	const char *names[4];
	size_t n = 0;
	names[n++] = t->pk.name;
	if (t->has_sk)
		names[n++] = t->sk.name;
	names[n++] = ix->pk.name;
	if (ix->has_sk)
		names[n++] = ix->sk.name;
	it_value *v = it_value_new_map();
	bool ok = v != NULL;
	for (size_t i = 0; ok && i < n + ix->ninclude; i++) {
		const char *name = i < n ? names[i] : ix->include[i - n];
		const it_value *a = it_map_get(item, name, strlen(name));
		if (a == NULL || it_map_get(v, name, strlen(name)) != NULL)
			continue;
		it_value *c = it_value_copy(a);
		ok = c != NULL && it_map_set(v, name, strlen(name), c);
		if (!ok)
			it_value_free(c);
	}
	if (!ok) {
		it_value_free(v);
		return NULL;
	}
	return v;
}

bool it_check_index_keys(const it_table *t, const it_value *item, it_error *e)
{
	for (int i = 0; i < t->nidx; i++) {
		const it_index *ix = &t->idx[i];
		const it_keydef *ks[2] = {&ix->pk, ix->has_sk ? &ix->sk : NULL};
		for (int k = 0; k < 2; k++) {
			if (ks[k] == NULL)
				continue;
			const it_value *v = it_map_get(item, ks[k]->name, strlen(ks[k]->name));
			if (v == NULL)
				continue; /* sparse: the item is simply not in the index */
			if (v->type != ks[k]->type) {
				it_error_set(e, IT_ERR_VALIDATION,
					     "One or more parameter values were invalid: Type mismatch for Index Key %s Expected: %s Actual: %s IndexName: %s",
					     ks[k]->name, it_type_name(ks[k]->type), it_type_name(v->type), ix->name);
				return false;
			}
			if ((v->type == IT_S || v->type == IT_B) && v->u.s.len == 0) {
				it_error_set(e, IT_ERR_VALIDATION,
					     "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty %s value. IndexName: %s, IndexKey: %s",
					     v->type == IT_S ? "string" : "binary", ix->name, ks[k]->name);
				return false;
			}
			if (!it_check_key_attr(ks[k]->name, v, ks[k]->type, k == 1, e))
				return false;
		}
	}
	return true;
}

bool it_item_keys(it_op *op, const it_table *t, const it_value *item, char **pkenc, char **skenc)
{
	it_error e = {0};
	*pkenc = *skenc = NULL;
	const it_value *pv = it_map_get(item, t->pk.name, strlen(t->pk.name));
	if (pv == NULL) {
		it_finish_err(op, "ValidationException", NULL,
			      "One or more parameter values were invalid: Missing the key %s in the item", t->pk.name);
		return false;
	}
	if (!it_check_key_attr(t->pk.name, pv, t->pk.type, false, &e) || !it_check_index_keys(t, item, &e)) {
		it_finish_error(op, &e);
		return false;
	}
	if (t->has_sk) {
		const it_value *sv = it_map_get(item, t->sk.name, strlen(t->sk.name));
		if (sv == NULL) {
			it_finish_err(op, "ValidationException", NULL,
				      "One or more parameter values were invalid: Missing the key %s in the item", t->sk.name);
			return false;
		}
		if (!it_check_key_attr(t->sk.name, sv, t->sk.type, true, &e)) {
			it_finish_error(op, &e);
			return false;
		}
		if (!it_key_encode(sv, skenc))
			goto nomem;
	} else {
		*skenc = strdup("");
	}
	if (!it_key_encode_partition(pv, pkenc) || *skenc == NULL)
		goto nomem;
	return true;
nomem:
	free(*pkenc);
	free(*skenc);
	*pkenc = *skenc = NULL;
	it_finish_err(op, "InternalServerError", NULL, "out of memory");
	return false;
}

bool it_key_from_json(it_op *op, const it_table *t, const json_t *key, it_value **key_item, char **pkenc, char **skenc)
{
	it_error e = {0};
	*key_item = NULL;
	if (key == NULL) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value null at 'key' failed to satisfy constraint: Member must not be null");
		return false;
	}
	it_value *k = NULL;
	if (!it_item_from_json(key, &k, &e)) {
		it_finish_error(op, &e);
		return false;
	}
	size_t want = t->has_sk ? 2 : 1;
	if (k->u.m.n != want || it_map_get(k, t->pk.name, strlen(t->pk.name)) == NULL ||
	    (t->has_sk && it_map_get(k, t->sk.name, strlen(t->sk.name)) == NULL)) {
		it_value_free(k);
		it_finish_err(op, "ValidationException", NULL, "The provided key element does not match the schema");
		return false;
	}
	const it_value *pv = it_map_get(k, t->pk.name, strlen(t->pk.name));
	const it_value *sv = t->has_sk ? it_map_get(k, t->sk.name, strlen(t->sk.name)) : NULL;
	if (pv->type != t->pk.type || (sv != NULL && sv->type != t->sk.type)) {
		it_value_free(k);
		it_finish_err(op, "ValidationException", NULL, "The provided key element does not match the schema");
		return false;
	}
	if (!it_item_keys(op, t, k, pkenc, skenc)) {
		it_value_free(k);
		return false;
	}
	*key_item = k;
	return true;
}

/* ---- table cache ------------------------------------------------------ */

it_table *it_table_new(void)
{
	it_table *t = calloc(1, sizeof(*t));
	if (t != NULL)
		t->refs = 1;
	return t;
}

static void keydef_clear(it_keydef *k)
{
	free(k->name);
	k->name = NULL;
}

void it_table_unref(it_table *t)
{
	if (t == NULL || --t->refs > 0)
		return;
	free(t->tenant);
	free(t->name);
	keydef_clear(&t->pk);
	keydef_clear(&t->sk);
	for (int i = 0; i < t->nidx; i++) {
		free(t->idx[i].name);
		keydef_clear(&t->idx[i].pk);
		keydef_clear(&t->idx[i].sk);
		for (size_t j = 0; j < t->idx[i].ninclude; j++)
			free(t->idx[i].include[j]);
		free(t->idx[i].include);
	}
	free(t->ttl_attr);
	json_decref(t->def);
	free(t);
}

const it_index *it_table_index(const it_table *t, const char *name)
{
	for (int i = 0; i < t->nidx; i++)
		if (strcmp(t->idx[i].name, name) == 0)
			return &t->idx[i];
	return NULL;
}

static bool attr_type(json_t *defs, const char *name, it_type *out)
{
	size_t i;
	json_t *d;
	json_array_foreach(defs, i, d)
	{
		const char *n = json_string_value(json_object_get(d, "AttributeName"));
		const char *ty = json_string_value(json_object_get(d, "AttributeType"));
		if (n != NULL && ty != NULL && strcmp(n, name) == 0)
			return it_type_from_name(ty, out);
	}
	return false;
}

/* Reads a KeySchema array into pk/sk using the attribute definitions. */
static bool parse_keyschema(json_t *ks, json_t *defs, it_keydef *pk, it_keydef *sk, bool *has_sk)
{
	*has_sk = false;
	size_t i;
	json_t *k;
	json_array_foreach(ks, i, k)
	{
		const char *n = json_string_value(json_object_get(k, "AttributeName"));
		const char *kt = json_string_value(json_object_get(k, "KeyType"));
		if (n == NULL || kt == NULL)
			return false;
		it_keydef *dst = strcmp(kt, "HASH") == 0 ? pk : sk;
		if (dst->name != NULL)
			return false; /* two HASH or two RANGE elements */
		if (dst == sk)
			*has_sk = true;
		dst->name = strdup(n);
		if (dst->name == NULL || !attr_type(defs, n, &dst->type))
			return false;
	}
	return pk->name != NULL;
}

static bool parse_index(json_t *j, json_t *defs, bool local, it_index *ix)
{
	ix->local = local;
	const char *name = json_string_value(json_object_get(j, "IndexName"));
	ix->name = name != NULL ? strdup(name) : NULL;
	ix->slot = (int)json_integer_value(json_object_get(j, "_slot"));
	if (ix->name == NULL || ix->slot < 1 || ix->slot > IT_MAX_SLOTS)
		return false;
	if (!parse_keyschema(json_object_get(j, "KeySchema"), defs, &ix->pk, &ix->sk, &ix->has_sk))
		return false;
	json_t *proj = json_object_get(j, "Projection");
	const char *pt = json_string_value(json_object_get(proj, "ProjectionType"));
	ix->projection = pt == NULL || strcmp(pt, "ALL") == 0 ? IT_PROJ_ALL
			 : strcmp(pt, "KEYS_ONLY") == 0	    ? IT_PROJ_KEYS_ONLY
			 : strcmp(pt, "INCLUDE") == 0	    ? IT_PROJ_INCLUDE
							    : -1;
	if ((int)ix->projection < 0)
		return false;
	json_t *nka = json_object_get(proj, "NonKeyAttributes");
	if (ix->projection == IT_PROJ_INCLUDE) {
		/* a stored definition is data: anything malformed makes the
		 * table unreadable (an error for it), never a crash */
		if (!json_is_array(nka))
			return false;
		ix->include = calloc(json_array_size(nka) + 1, sizeof(char *));
		if (ix->include == NULL)
			return false;
		size_t i;
		json_t *a;
		json_array_foreach(nka, i, a)
		{
			const char *n = json_string_value(a);
			if (n == NULL || (ix->include[ix->ninclude] = strdup(n)) == NULL)
				return false;
			ix->ninclude++;
		}
	}
	return true;
}

bool it_table_from_def(it_table *t, json_t *def)
{
	json_t *defs = json_object_get(def, "AttributeDefinitions");
	t->def = json_incref(def);
	if (!parse_keyschema(json_object_get(def, "KeySchema"), defs, &t->pk, &t->sk, &t->has_sk))
		return false;
	json_t *spec = json_object_get(def, "StreamSpecification");
	if (json_is_true(json_object_get(spec, "StreamEnabled"))) {
		t->stream = it_stream_view(json_string_value(json_object_get(spec, "StreamViewType")));
		if (t->stream == IT_STREAM_NONE)
			return false;
	}
	const char *kinds[2] = {"GlobalSecondaryIndexes", "LocalSecondaryIndexes"};
	for (int k = 0; k < 2; k++) {
		size_t i;
		json_t *j;
		json_array_foreach(json_object_get(def, kinds[k]), i, j)
		{
			if (t->nidx == IT_MAX_SLOTS || !parse_index(j, defs, k == 1, &t->idx[t->nidx++]))
				return false;
		}
	}
	return true;
}

const it_keydef *it_index_key(const it_table *t, const it_index *ix, bool sort)
{
	if (ix == NULL)
		return sort ? (t->has_sk ? &t->sk : NULL) : &t->pk;
	return sort ? (ix->has_sk ? &ix->sk : NULL) : &ix->pk;
}

typedef struct table_load {
	it_op *op;
	it_table_cb cb;
	char name[256];
} table_load;

static const db_stmt stmt_table_load = {
	"it_table_load", "SELECT id, definition, ttl_attribute FROM item_tables WHERE tenant = $1 AND name = $2", 2};
const db_stmt *const it_store_stmts[] = {&stmt_table_load, NULL};

static void cache_put(it_store *s, it_table *t)
{
	for (int i = 0; i < s->ntables; i++) {
		if (strcmp(s->tables[i]->tenant, t->tenant) == 0 && strcmp(s->tables[i]->name, t->name) == 0) {
			it_table_unref(s->tables[i]);
			s->tables[i] = t;
			t->refs++;
			return;
		}
	}
	if (s->ntables == s->cap) {
		int ncap = s->cap ? s->cap * 2 : 16;
		it_table **nt = realloc(s->tables, (size_t)ncap * sizeof(*nt));
		if (nt == NULL)
			return;
		s->tables = nt;
		s->cap = ncap;
	}
	s->tables[s->ntables++] = t;
	t->refs++;
}

void it_table_forget(it_store *s, const char *tenant, const char *name)
{
	for (int i = 0; i < s->ntables; i++) {
		if (strcmp(s->tables[i]->tenant, tenant) == 0 && strcmp(s->tables[i]->name, name) == 0) {
			it_table_unref(s->tables[i]);
			s->tables[i] = s->tables[--s->ntables];
			return;
		}
	}
}

static void table_loaded(db_result *res, void *arg)
{
	table_load *tl = arg;
	it_op *op = tl->op;
	if (res->status != DB_OK) {
		free(tl);
		it_finish_db(op, res);
		return;
	}
	PGresult *r = res->results[0];
	if (PQntuples(r) == 0) {
		it_table_forget(op->store, op->tenant, tl->name);
		it_finish_err(op, "ResourceNotFoundException", NULL, "Requested resource not found: Table: %s not found", tl->name);
		free(tl);
		return;
	}
	json_t *def = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
	it_table *t = it_table_new();
	if (def == NULL || t == NULL || !it_table_from_def(t, def)) {
		log_error("item_table_unreadable", "{s:s, s:s}", "tenant", op->tenant, "table", tl->name);
		json_decref(def);
		it_table_unref(t);
		free(tl);
		it_finish_err(op, "InternalServerError", NULL, "table definition unreadable");
		return;
	}
	json_decref(def);
	long long id = 0;
	if (!util_parse_ll(PQgetvalue(r, 0, 0), 1, INT64_MAX, &id))
		id = 0;
	t->id = id;
	t->tenant = strdup(op->tenant);
	t->name = strdup(tl->name);
	t->ttl_attr = PQgetisnull(r, 0, 2) ? NULL : strdup(PQgetvalue(r, 0, 2));
	t->loaded_ms = util_mono_ms();
	cache_put(op->store, t);
	it_table_cb cb = tl->cb;
	free(tl);
	op->table = t; /* the op's reference */
	cb(op, t);
}

void it_table_get(it_op *op, const char *name, it_table_cb cb)
{
	it_store *s = op->store;
	int64_t now = util_mono_ms();
	for (int i = 0; i < s->ntables; i++) {
		it_table *t = s->tables[i];
		if (strcmp(t->name, name) == 0 && strcmp(t->tenant, op->tenant) == 0 && now - t->loaded_ms < TABLE_CACHE_MS) {
			t->refs++;
			op->table = t;
			cb(op, t);
			return;
		}
	}
	table_load *tl = calloc(1, sizeof(*tl));
	db_batch *b = db_batch_new();
	const char *p[2] = {op->tenant, name};
	if (tl == NULL || b == NULL || !db_batch_add(b, &stmt_table_load, p)) {
		free(tl);
		db_batch_free(b);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	tl->op = op;
	tl->cb = cb;
	util_strlcpy(tl->name, name, sizeof(tl->name));
	db_exec(s->db, b, table_loaded, tl);
}

typedef struct tables_loader {
	char **names;
	int n, next;
	it_tables_cb cb;
} tables_loader;

static void tables_step(it_op *op);

static void tables_one(it_op *op, it_table *t)
{
	tables_loader *tl = op->loader;
	op->tables[tl->next++] = t; /* take the op's reference */
	op->table = NULL;
	tables_step(op);
}

static void tables_step(it_op *op)
{
	tables_loader *tl = op->loader;
	if (tl->next == tl->n) {
		for (int i = 0; i < tl->n; i++)
			free(tl->names[i]);
		free(tl->names);
		tl->names = NULL;
		tl->cb(op);
		return;
	}
	it_table_get(op, tl->names[tl->next], tables_one);
}

void it_tables_get(it_op *op, const char *const *names, int n, it_tables_cb cb)
{
	tables_loader *tl = calloc(1, sizeof(*tl));
	op->tables = calloc((size_t)(n > 0 ? n : 1), sizeof(it_table *));
	if (tl != NULL)
		tl->names = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
	if (tl == NULL || op->tables == NULL || tl->names == NULL) {
		if (tl != NULL)
			free(tl->names);
		free(tl);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	op->ntables = n;
	for (int i = 0; i < n; i++)
		tl->names[i] = strdup(names[i]);
	tl->n = n;
	tl->cb = cb;
	op->loader = tl;
	tables_step(op);
}

static void loader_free(void *p)
{
	tables_loader *tl = p;
	if (tl == NULL)
		return;
	for (int i = 0; tl->names != NULL && i < tl->n; i++)
		free(tl->names[i]);
	free(tl->names);
	free(tl);
}
