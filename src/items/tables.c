/* tables.c — CreateTable, DescribeTable, DeleteTable, ListTables and the TTL
 * settings: logical tables per tenant, stored in item_tables with their
 * DynamoDB description; secondary indexes get fixed storage slots. */
#include "items/items_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "items/sql.h"
#include "items/write.h"
#include "util/util.h"

static const db_stmt stmt_create = {
	"it_table_create",
	"INSERT INTO item_tables (tenant, name, definition) SELECT $1, $2, $3::jsonb"
	" WHERE EXISTS (SELECT 1 FROM tenants WHERE name = $1)"
	" ON CONFLICT (tenant, name) DO NOTHING RETURNING id",
	3};
static const db_stmt stmt_delete = {
	"it_table_delete", "DELETE FROM item_tables WHERE tenant = $1 AND name = $2 RETURNING definition", 2};
static const db_stmt stmt_list = {
	"it_table_list",
	"SELECT name FROM item_tables WHERE tenant = $1 AND name > $2 AND name NOT LIKE 'ol:%' ORDER BY name COLLATE \"C\" LIMIT $3::int + 1", 3};
static const db_stmt stmt_ttl_set = {
	"it_table_ttl_set", "UPDATE item_tables SET ttl_attribute = $3 WHERE tenant = $1 AND name = $2 RETURNING id", 3};
static const db_stmt stmt_ttl_items = {
	"it_table_ttl_items",
	"UPDATE items SET expires_at = ol_ttl_value(item, $2)"
	" WHERE table_id = $1 AND expires_at IS DISTINCT FROM ol_ttl_value(item, $2)",
	2};
static const db_stmt stmt_counts = {
	"it_table_counts", "SELECT count(*), coalesce(sum(pg_column_size(item)), 0) FROM items WHERE table_id = $1", 1};

static bool valid_index_name(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	if (len < 3 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = n[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* Messages are built in the caller's buffer (workers run concurrently). */
typedef struct tbl_msg {
	char buf[400];
} tbl_msg;

/* Checks a KeySchema (1-2 elements, HASH then RANGE, names defined) and
 * records the names it uses. Returns an error message or NULL. */
static const char *check_keyschema(json_t *ks, json_t *defs, json_t *used, const char *what, tbl_msg *m)
{
	char *buf = m->buf;
	if (!json_is_array(ks) || json_array_size(ks) < 1 || json_array_size(ks) > 2) {
		snprintf(buf, sizeof(m->buf),
			 "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length less than or equal to 2",
			 what);
		return json_is_array(ks) && json_array_size(ks) > 2 ? buf : "Invalid KeySchema: Some index key attribute have no definition";
	}
	size_t i;
	json_t *k;
	json_array_foreach(ks, i, k)
	{
		const char *n = json_string_value(json_object_get(k, "AttributeName"));
		const char *kt = json_string_value(json_object_get(k, "KeyType"));
		if (n == NULL || kt == NULL || (strcmp(kt, "HASH") != 0 && strcmp(kt, "RANGE") != 0))
			return "Invalid KeySchema: The first KeySchemaElement is not a HASH key type";
		if (i == 0 && strcmp(kt, "HASH") != 0)
			return "Invalid KeySchema: The first KeySchemaElement is not a HASH key type";
		if (i == 1 && strcmp(kt, "RANGE") != 0)
			return "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type";
		if (i == 1 && strcmp(n, json_string_value(json_object_get(json_array_get(ks, 0), "AttributeName"))) == 0)
			return "Invalid KeySchema: Both the Hash Key and the Range Key element in the KeySchema have the same name";
		bool defined = false;
		size_t j;
		json_t *d;
		json_array_foreach(defs, j, d)
		{
			const char *dn = json_string_value(json_object_get(d, "AttributeName"));
			if (dn != NULL && strcmp(dn, n) == 0)
				defined = true;
		}
		if (!defined) {
			snprintf(buf, sizeof(m->buf),
				 "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [%.200s], AttributeDefinitions: [...]",
				 n);
			buf[util_utf8_prefix(buf, strlen(buf))] = '\0';
			return buf;
		}
		json_object_set_new(used, n, json_true());
	}
	return NULL;
}

static json_t *table_arn(const char *tenant, const char *name)
{
	char arn[512];
	snprintf(arn, sizeof(arn), "arn:aws:dynamodb:onceledger:%s:table/%s", tenant, name);
	return json_string(arn);
}

/* Checks an index's Projection as DynamoDB does; NULL when valid. */
static const char *check_projection(json_t *proj, tbl_msg *m)
{
	if (proj == NULL)
		return NULL;
	if (!json_is_object(proj))
		return "Start of structure or map found where not expected.";
	json_t *ptj = json_object_get(proj, "ProjectionType");
	const char *pt = json_string_value(ptj);
	if (ptj != NULL && pt == NULL)
		return "1 validation error detected: Value at 'projection.projectionType' failed to satisfy constraint: Member must satisfy enum value set: [ALL, INCLUDE, KEYS_ONLY]";
	if (pt != NULL && strcmp(pt, "ALL") != 0 && strcmp(pt, "KEYS_ONLY") != 0 && strcmp(pt, "INCLUDE") != 0)
		return "1 validation error detected: Value at 'projection.projectionType' failed to satisfy constraint: Member must satisfy enum value set: [ALL, INCLUDE, KEYS_ONLY]";
	json_t *nka = json_object_get(proj, "NonKeyAttributes");
	bool include = pt != NULL && strcmp(pt, "INCLUDE") == 0;
	if (nka != NULL && !include) {
		snprintf(m->buf, sizeof(m->buf),
			 "One or more parameter values were invalid: ProjectionType is %s, but NonKeyAttributes is specified",
			 pt ? pt : "null");
		return m->buf;
	}
	if (!include)
		return NULL;
	if (nka == NULL || !json_is_array(nka) || json_array_size(nka) == 0)
		return nka != NULL && !json_is_array(nka) ? "Start of list found where not expected"
							  : "One or more parameter values were invalid: ProjectionType is INCLUDE, but NonKeyAttributes is not specified";
	if (json_array_size(nka) > 20)
		return "1 validation error detected: Value at 'projection.nonKeyAttributes' failed to satisfy constraint: Member must have length less than or equal to 20";
	size_t i;
	json_t *a;
	json_array_foreach(nka, i, a)
	{
		const char *n = json_string_value(a);
		if (n == NULL)
			return "1 validation error detected: Value at 'projection.nonKeyAttributes' failed to satisfy constraint: Member must satisfy constraint: [Member must be a string]";
		size_t len = json_string_length(a);
		if (len == 0 || len > 255 || memchr(n, '\0', len) != NULL)
			return "1 validation error detected: Value at 'projection.nonKeyAttributes' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 255, Member must have length greater than or equal to 1]";
		for (size_t j = 0; j < i; j++)
			if (strcmp(json_string_value(json_array_get(nka, j)), n) == 0)
				return "One or more parameter values were invalid: Duplicate attributes in NonKeyAttributes";
	}
	return NULL;
}

/* Validates the index list and builds its stored description with slots. */
static const char *build_indexes(it_op *op, json_t *list, json_t *defs, json_t *used, bool local, json_t *tks, int *next_slot,
				 json_t **out, tbl_msg *m)
{
	*out = json_array();
	if (list != NULL && !json_is_array(list))
		return "Start of list found where not expected";
	size_t i;
	json_t *ix;
	json_array_foreach(list, i, ix)
	{
		const char *iname = json_string_value(json_object_get(ix, "IndexName"));
		if (!valid_index_name(iname))
			return "1 validation error detected: Value at 'indexName' failed to satisfy constraint: Member must have length greater than or equal to 3";
		json_t *ks = json_object_get(ix, "KeySchema");
		const char *err = check_keyschema(ks, defs, used, "keySchema", m);
		if (err != NULL)
			return err;
		if (local) {
			const char *ih = json_string_value(json_object_get(json_array_get(ks, 0), "AttributeName"));
			const char *th = json_string_value(json_object_get(json_array_get(tks, 0), "AttributeName"));
			if (json_array_size(tks) != 2)
				return "One or more parameter values were invalid: Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex";
			if (json_array_size(ks) != 2 || ih == NULL || th == NULL || strcmp(ih, th) != 0)
				return "One or more parameter values were invalid: Index KeySchema does not have a range key for index";
		}
		json_t *proj = json_object_get(ix, "Projection");
		err = check_projection(proj, m);
		if (err != NULL)
			return err;
		if (*next_slot < 1 || *next_slot > IT_MAX_SLOTS) {
			snprintf(m->buf, sizeof(m->buf),
				 "One or more parameter values were invalid: onceledger supports at most %d secondary indexes per table",
				 IT_MAX_SLOTS);
			return m->buf;
		}
		for (size_t j = 0; j < json_array_size(*out); j++)
			if (strcmp(json_string_value(json_object_get(json_array_get(*out, j), "IndexName")), iname) == 0)
				return "One or more parameter values were invalid: Duplicate index name";
		/* "o" takes the reference: a borrowed Projection is incref'd,
		 * a default one is new (with "O" it leaked; fuzz_items_request) */
		json_t *d = json_pack("{s:s, s:O, s:o, s:s, s:I, s:I, s:i}", "IndexName", iname, "KeySchema", ks, "Projection",
				      proj ? json_incref(proj) : json_pack("{s:s}", "ProjectionType", "ALL"), "IndexStatus", "ACTIVE",
				      "IndexSizeBytes", (json_int_t)0, "ItemCount", (json_int_t)0, "_slot", (*next_slot)++);
		char arn[600];
		snprintf(arn, sizeof(arn), "arn:aws:dynamodb:onceledger:%s:table/%s/index/%s", op->tenant,
			 it_req_str(op->req, "TableName"), iname);
		json_object_set_new(d, "IndexArn", json_string(arn));
		json_array_append_new(*out, d);
	}
	return NULL;
}

/* True when a description loads the way every later request will load it:
 * nothing is stored that would make the table unreadable. */
static bool def_loads(json_t *def)
{
	it_table *t = it_table_new();
	bool ok = t != NULL && it_table_from_def(t, def);
	it_table_unref(t);
	return ok;
}

static void created(db_result *res, void *arg)
{
	it_op *op = arg;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	if (PQntuples(res->results[0]) == 0) {
		it_finish_err(op, "ResourceInUseException", NULL, "Table already exists: %s", it_req_str(op->req, "TableName"));
		return;
	}
	json_t *desc = op->state;
	op->state = NULL;
	json_object_set_new(desc, "TableId", json_string(PQgetvalue(res->results[0], 0, 0)));
	it_table_forget(op->store, op->tenant, it_req_str(op->req, "TableName"));
	it_finish_ok(op, json_pack("{s:o}", "TableDescription", desc));
}

/* Strips our private members (slots) from a stored description. */
static json_t *public_desc(json_t *def)
{
	json_t *d = json_deep_copy(def);
	const char *kinds[2] = {"GlobalSecondaryIndexes", "LocalSecondaryIndexes"};
	for (int k = 0; k < 2; k++) {
		size_t i;
		json_t *ix;
		json_array_foreach(json_object_get(d, kinds[k]), i, ix) json_object_del(ix, "_slot");
	}
	json_object_del(d, "_stream");
	return d;
}

void it_op_create_table(it_op *op)
{
	json_t *req = op->req;
	const char *name = it_req_str(req, "TableName");
	if (!it_check_table_name(op, "tableName", name))
		return;
	json_t *defs = json_object_get(req, "AttributeDefinitions");
	json_t *ks = json_object_get(req, "KeySchema");
	if (!json_is_array(defs) || json_array_size(defs) == 0) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value null at 'attributeDefinitions' failed to satisfy constraint: Member must not be null");
		return;
	}
	size_t i;
	json_t *d;
	json_array_foreach(defs, i, d)
	{
		json_t *an = json_object_get(d, "AttributeName");
		if (json_is_string(an) && (json_string_length(an) == 0 || json_string_length(an) > 255)) {
			it_finish_err(op, "ValidationException", NULL,
				      "1 validation error detected: Value at 'attributeDefinitions.%zu.member.attributeName' failed to satisfy constraint: Member must have length %s",
				      i + 1, json_string_length(an) == 0 ? "greater than or equal to 1" : "less than or equal to 255");
			return;
		}
		const char *t = json_string_value(json_object_get(d, "AttributeType"));
		if (json_string_value(json_object_get(d, "AttributeName")) == NULL || t == NULL ||
		    (strcmp(t, "S") != 0 && strcmp(t, "N") != 0 && strcmp(t, "B") != 0)) {
			it_finish_err(op, "ValidationException", NULL,
				      "1 validation error detected: Value at 'attributeDefinitions.%zu.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]",
				      i + 1);
			return;
		}
	}
	json_t *used = json_object();
	tbl_msg m;
	const char *err = check_keyschema(ks, defs, used, "keySchema", &m);
	int slot = 1;
	json_t *gsis = NULL, *lsis = NULL;
	if (err == NULL)
		err = build_indexes(op, json_object_get(req, "GlobalSecondaryIndexes"), defs, used, false, ks, &slot, &gsis, &m);
	if (err == NULL)
		err = build_indexes(op, json_object_get(req, "LocalSecondaryIndexes"), defs, used, true, ks, &slot, &lsis, &m);
	if (err == NULL && json_object_size(used) != json_array_size(defs))
		err = "One or more parameter values were invalid: Some AttributeDefinitions are not used. AttributeDefinitions: [...], keys used: [...]";
	json_decref(used);
	if (err != NULL) {
		json_decref(gsis);
		json_decref(lsis);
		it_finish_err(op, "ValidationException", NULL, "%s", err);
		return;
	}
	const char *billing = it_req_str(req, "BillingMode");
	json_t *desc = json_pack("{s:s, s:s, s:O, s:O, s:f, s:I, s:I, s:o, s:{s:s}}", "TableName", name, "TableStatus", "ACTIVE",
				 "KeySchema", ks, "AttributeDefinitions", defs, "CreationDateTime", (double)util_now_us() / 1e6,
				 "ItemCount", (json_int_t)0, "TableSizeBytes", (json_int_t)0, "TableArn", table_arn(op->tenant, name),
				 "BillingModeSummary", "BillingMode", billing ? billing : "PROVISIONED");
	json_t *pt = json_object_get(req, "ProvisionedThroughput");
	json_object_set_new(desc, "ProvisionedThroughput",
			    pt ? json_pack("{s:O, s:O, s:I}", "ReadCapacityUnits", json_object_get(pt, "ReadCapacityUnits"),
					   "WriteCapacityUnits", json_object_get(pt, "WriteCapacityUnits"), "NumberOfDecreasesToday",
					   (json_int_t)0)
			       : json_pack("{s:I, s:I, s:I}", "ReadCapacityUnits", (json_int_t)0, "WriteCapacityUnits",
					   (json_int_t)0, "NumberOfDecreasesToday", (json_int_t)0));
	if (json_array_size(gsis) > 0)
		json_object_set(desc, "GlobalSecondaryIndexes", gsis);
	if (json_array_size(lsis) > 0)
		json_object_set(desc, "LocalSecondaryIndexes", lsis);
	json_decref(gsis);
	json_decref(lsis);
	json_t *spec = json_object_get(req, "StreamSpecification");
	if (spec != NULL) {
		bool enabled;
		int view;
		err = it_stream_spec_check(spec, &enabled, &view);
		if (err != NULL) {
			json_decref(desc);
			it_finish_err(op, "ValidationException", NULL, "%s", err);
			return;
		}
		if (enabled)
			it_stream_spec_apply(desc, op->tenant, true, view);
	}
	if (!def_loads(desc)) {
		json_decref(desc);
		it_finish_err(op, "ValidationException", NULL, "One or more parameter values were invalid: the table definition is not usable");
		return;
	}
	char *text = json_dumps(desc, JSON_COMPACT);
	db_batch *b = db_batch_new();
	const char *p[3] = {op->tenant, name, text};
	if (text == NULL || b == NULL || !db_batch_add(b, &stmt_create, p)) {
		free(text);
		db_batch_free(b);
		json_decref(desc);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	free(text);
	op->state = public_desc(desc);
	op->state_free = (void (*)(void *))json_decref;
	json_decref(desc);
	db_exec(op->store->db, b, created, op);
}

static void described(db_result *res, void *arg)
{
	it_op *op = arg;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	json_t *d = public_desc(op->table->def);
	const char *id = NULL;
	char idbuf[32];
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)op->table->id);
	id = idbuf;
	json_object_set_new(d, "TableId", json_string(id));
	json_object_set_new(d, "ItemCount", json_integer(atoll(PQgetvalue(res->results[0], 0, 0))));
	json_object_set_new(d, "TableSizeBytes", json_integer(atoll(PQgetvalue(res->results[0], 0, 1))));
	it_finish_ok(op, json_pack("{s:o}", "Table", d));
}

static void describe_with(it_op *op, it_table *t)
{
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)t->id);
	const char *p[1] = {id};
	db_batch *b = db_batch_new();
	if (b == NULL || !db_batch_add(b, &stmt_counts, p)) {
		db_batch_free(b);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	db_exec(op->store->db, b, described, op);
}

void it_op_describe_table(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (!it_check_table_name(op, "tableName", name))
		return;
	it_table_forget(op->store, op->tenant, name); /* describe reads the truth */
	it_table_get(op, name, describe_with);
}

static void deleted(db_result *res, void *arg)
{
	it_op *op = arg;
	const char *name = it_req_str(op->req, "TableName");
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	it_table_forget(op->store, op->tenant, name);
	if (PQntuples(res->results[0]) == 0) {
		it_finish_err(op, "ResourceNotFoundException", NULL, "Requested resource not found: Table: %s not found", name);
		return;
	}
	json_t *def = json_loads(PQgetvalue(res->results[0], 0, 0), 0, NULL);
	json_t *d = def ? public_desc(def) : json_object();
	json_decref(def);
	json_object_set_new(d, "TableStatus", json_string("DELETING"));
	it_finish_ok(op, json_pack("{s:o}", "TableDescription", d));
}

void it_op_delete_table(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (!it_check_table_name(op, "tableName", name))
		return;
	const char *p[2] = {op->tenant, name};
	db_batch *b = db_batch_new();
	if (b == NULL || !db_batch_add(b, &stmt_delete, p)) {
		db_batch_free(b);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	db_exec(op->store->db, b, deleted, op);
}

static void listed(db_result *res, void *arg)
{
	it_op *op = arg;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	long long limit = (long long)(intptr_t)op->state;
	op->state = NULL;
	PGresult *r = res->results[0];
	json_t *names = json_array();
	int n = PQntuples(r);
	for (int i = 0; i < n && i < limit; i++)
		json_array_append_new(names, json_string(PQgetvalue(r, i, 0)));
	json_t *body = json_pack("{s:o}", "TableNames", names);
	if (n > limit)
		json_object_set_new(body, "LastEvaluatedTableName", json_string(PQgetvalue(r, (int)limit - 1, 0)));
	it_finish_ok(op, body);
}

void it_op_list_tables(it_op *op)
{
	json_t *lim = json_object_get(op->req, "Limit");
	long long limit = 100;
	if (lim != NULL) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1 || json_integer_value(lim) > 100) {
			it_finish_err(op, "ValidationException", NULL,
				      "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100");
			return;
		}
		limit = json_integer_value(lim);
	}
	const char *start = it_req_str(op->req, "ExclusiveStartTableName");
	char lbuf[16];
	snprintf(lbuf, sizeof(lbuf), "%lld", limit);
	const char *p[3] = {op->tenant, start ? start : "", lbuf};
	db_batch *b = db_batch_new();
	if (b == NULL || !db_batch_add(b, &stmt_list, p)) {
		db_batch_free(b);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	op->state = (void *)(intptr_t)limit;
	db_exec(op->store->db, b, listed, op);
}

static void ttl_updated(db_result *res, void *arg)
{
	it_op *op = arg;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	it_table_forget(op->store, op->tenant, it_req_str(op->req, "TableName"));
	it_finish_ok(op, json_pack("{s:O}", "TimeToLiveSpecification", json_object_get(op->req, "TimeToLiveSpecification")));
}

static void ttl_with(it_op *op, it_table *t)
{
	json_t *spec = json_object_get(op->req, "TimeToLiveSpecification");
	json_t *en = json_object_get(spec, "Enabled");
	const char *attr = json_string_value(json_object_get(spec, "AttributeName"));
	if (!json_is_boolean(en) || attr == NULL || attr[0] == '\0') {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value null at 'timeToLiveSpecification' failed to satisfy constraint: Member must not be null");
		return;
	}
	bool enable = json_is_true(en);
	if (enable && t->ttl_attr != NULL) {
		it_finish_err(op, "ValidationException", NULL, "TimeToLive is already enabled");
		return;
	}
	if (!enable && t->ttl_attr == NULL) {
		it_finish_err(op, "ValidationException", NULL, "TimeToLive is already disabled");
		return;
	}
	if (!enable && strcmp(t->ttl_attr, attr) != 0) {
		it_finish_err(op, "ValidationException", NULL,
			      "TimeToLive is active on a different AttributeName: current AttributeName is %s", t->ttl_attr);
		return;
	}
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)t->id);
	const char *p1[3] = {op->tenant, t->name, enable ? attr : NULL};
	const char *p2[2] = {id, enable ? attr : NULL};
	db_batch *b = db_batch_new();
	/* One implicit transaction: the setting and every item's expiry. */
	if (b == NULL || !db_batch_add(b, &stmt_ttl_set, p1) || !db_batch_add(b, &stmt_ttl_items, p2)) {
		db_batch_free(b);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	db_exec(op->store->db, b, ttl_updated, op);
}

void it_op_update_ttl(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (!it_check_table_name(op, "tableName", name))
		return;
	it_table_forget(op->store, op->tenant, name);
	it_table_get(op, name, ttl_with);
}

static void describe_ttl_with(it_op *op, it_table *t)
{
	json_t *d = t->ttl_attr ? json_pack("{s:s, s:s}", "TimeToLiveStatus", "ENABLED", "AttributeName", t->ttl_attr)
				: json_pack("{s:s}", "TimeToLiveStatus", "DISABLED");
	it_finish_ok(op, json_pack("{s:o}", "TimeToLiveDescription", d));
}

void it_op_describe_ttl(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (!it_check_table_name(op, "tableName", name))
		return;
	it_table_forget(op->store, op->tenant, name);
	it_table_get(op, name, describe_ttl_with);
}

/* ---- UpdateTable: add or remove a GSI (one per call, as DynamoDB) --------- */

static const db_stmt stmt_stream_items = {
	"it_table_stream_items",
	"UPDATE items SET stream = $2::smallint WHERE table_id = $1::bigint AND stream IS DISTINCT FROM $2::smallint", 2};
static const db_stmt stmt_stream_reset = {"it_table_stream_reset", "DELETE FROM item_stream WHERE table_id = $1::bigint", 1};
static const db_stmt stmt_def_set = {
	"it_table_def_set", "UPDATE item_tables SET definition = $3::jsonb WHERE tenant = $1 AND name = $2 RETURNING id", 3};
const db_stmt *const it_tables_stmts[] = {&stmt_create, &stmt_delete, &stmt_list, &stmt_ttl_set, &stmt_ttl_items, &stmt_counts, &stmt_stream_items, &stmt_stream_reset, &stmt_def_set, NULL};

static void table_updated(db_result *res, void *arg)
{
	it_op *op = arg;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	json_t *desc = op->state;
	op->state = NULL;
	it_table_forget(op->store, op->tenant, it_req_str(op->req, "TableName"));
	it_finish_ok(op, json_pack("{s:o}", "TableDescription", desc));
}

/* The slot a new index may use: the lowest not taken. */
static int free_slot(const it_table *t)
{
	for (int s = 1; s <= IT_MAX_SLOTS; s++) {
		bool used = false;
		for (int i = 0; i < t->nidx; i++)
			used = used || t->idx[i].slot == s;
		if (!used)
			return s;
	}
	return 0;
}

static void update_with(it_op *op, it_table *t)
{
	json_t *req = op->req;
	json_t *def = json_deep_copy(t->def);
	json_t *updates = json_object_get(req, "GlobalSecondaryIndexUpdates");
	it_error e = {0};
	it_sql backfill;
	it_sql_init(&backfill, 1);
	bool have_backfill = false;
	const char *err = NULL;
	tbl_msg m;
	if (json_array_size(updates) > 1)
		err = "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table";
	json_t *u = json_array_get(updates, 0);
	json_t *create = json_object_get(u, "Create"), *del = json_object_get(u, "Delete");
	if (err == NULL && create != NULL) {
		/* validate the new index against the merged attribute definitions */
		json_t *defs = json_object_get(def, "AttributeDefinitions");
		size_t i;
		json_t *nd;
		json_array_foreach(json_object_get(req, "AttributeDefinitions"), i, nd)
		{
			const char *n = json_string_value(json_object_get(nd, "AttributeName"));
			bool have = false;
			size_t j;
			json_t *od;
			json_array_foreach(defs, j, od) have = have || (n && strcmp(n, json_string_value(json_object_get(od, "AttributeName"))) == 0);
			if (n != NULL && !have)
				json_array_append(defs, nd);
		}
		const char *iname = json_string_value(json_object_get(create, "IndexName"));
		if (iname != NULL && it_table_index(t, iname) != NULL)
			err = "Attempting to create an index which already exists";
		int slot = free_slot(t);
		json_t *built = NULL, *used = json_object();
		json_t *one = json_pack("[O]", create);
		if (err == NULL && slot == 0) {
			/* every slot taken: build_indexes must never see slot 0 */
			json_decref(one);
			json_decref(used);
			it_sql_free(&backfill);
			json_decref(def);
			it_finish_err(op, "LimitExceededException", NULL,
				      "Subscriber limit exceeded: onceledger supports at most %d secondary indexes per table", IT_MAX_SLOTS);
			return;
		}
		if (err == NULL)
			err = build_indexes(op, one, defs, used, false, json_object_get(def, "KeySchema"), &slot, &built, &m);
		json_decref(one);
		json_decref(used);
		if (err == NULL) {
			json_t *gsis = json_object_get(def, "GlobalSecondaryIndexes");
			if (gsis == NULL)
				json_object_set_new(def, "GlobalSecondaryIndexes", gsis = json_array());
			json_t *ix = json_array_get(built, 0);
			json_array_append(gsis, ix);
			/* backfill the new slot from every existing item, in the same
			 * transaction as the definition */
			it_table *nt = it_table_new();
			if (nt != NULL && it_table_from_def(nt, def)) {
				nt->id = t->id;
				const it_index *nix = it_table_index(nt, iname);
				char id[32];
				snprintf(id, sizeof(id), "%lld", (long long)t->id);
				have_backfill = nix != NULL && it_sql_append(&backfill, "UPDATE items i SET (x%dpk, x%dsk) = (SELECT ", nix->slot, nix->slot) &&
						it_w_slot_values(&backfill, nix, "i.item", &e) && it_sql_append(&backfill, ") WHERE i.table_id = ") &&
						it_sql_param(&backfill, "bigint", id, strlen(id), &e);
			}
			else
				err = "One or more parameter values were invalid: the table definition is not usable";
			it_table_unref(nt);
		}
		json_decref(built);
	} else if (err == NULL && del != NULL) {
		const char *iname = json_string_value(json_object_get(del, "IndexName"));
		const it_index *ix = iname ? it_table_index(t, iname) : NULL;
		if (ix == NULL || ix->local) {
			it_sql_free(&backfill);
			json_decref(def);
			it_finish_err(op, "ResourceNotFoundException", NULL, "Requested resource not found");
			return;
		}
		json_t *gsis = json_object_get(def, "GlobalSecondaryIndexes");
		for (size_t i = 0; i < json_array_size(gsis); i++)
			if (strcmp(json_string_value(json_object_get(json_array_get(gsis, i), "IndexName")), iname) == 0)
				json_array_remove(gsis, i--);
		char id[32];
		snprintf(id, sizeof(id), "%lld", (long long)t->id);
		have_backfill = it_sql_append(&backfill, "UPDATE items i SET x%dpk = NULL, x%dsk = NULL WHERE i.table_id = ", ix->slot, ix->slot) &&
				it_sql_param(&backfill, "bigint", id, strlen(id), &e) && it_sql_append(&backfill, " AND i.x%dpk IS NOT NULL", ix->slot);
	}
	if (err == NULL) {
		const char *billing = it_req_str(req, "BillingMode");
		if (billing != NULL)
			json_object_set_new(def, "BillingModeSummary", json_pack("{s:s}", "BillingMode", billing));
		json_t *pt = json_object_get(req, "ProvisionedThroughput");
		if (pt != NULL)
			json_object_set_new(def, "ProvisionedThroughput",
					    json_pack("{s:O, s:O, s:I}", "ReadCapacityUnits", json_object_get(pt, "ReadCapacityUnits"),
						      "WriteCapacityUnits", json_object_get(pt, "WriteCapacityUnits"), "NumberOfDecreasesToday", (json_int_t)0));
	}
	json_t *spec = json_object_get(req, "StreamSpecification");
	bool stream_change = false, stream_on = false;
	int view = IT_STREAM_NONE;
	if (err == NULL && spec != NULL) {
		err = it_stream_spec_check(spec, &stream_on, &view);
		if (err == NULL && stream_on && t->stream != IT_STREAM_NONE) {
			snprintf(m.buf, sizeof(m.buf), "Table already has an enabled stream: TableName: %s", t->name);
			err = m.buf;
		} else if (err == NULL && !stream_on && t->stream == IT_STREAM_NONE) {
			snprintf(m.buf, sizeof(m.buf), "Table has no stream to disable: TableName: %s", t->name);
			err = m.buf;
		}
		if (err == NULL) {
			it_stream_spec_apply(def, op->tenant, stream_on, view);
			stream_change = true;
		}
	}
	if (err == NULL && !def_loads(def))
		err = "One or more parameter values were invalid: the table definition is not usable";
	if (err != NULL) {
		it_sql_free(&backfill);
		json_decref(def);
		it_finish_err(op, "ValidationException", NULL, "%s", err);
		return;
	}
	char *text = json_dumps(def, JSON_COMPACT);
	db_batch *b = db_batch_new();
	const char *p[3] = {op->tenant, t->name, text};
	bool ok = text != NULL && b != NULL && db_batch_add(b, &stmt_def_set, p) &&
		  (!have_backfill || (!backfill.oom && db_batch_add_sql(b, it_sql_text(&backfill), (int)backfill.nparams,
								       (const char *const *)backfill.params)));
	if (ok && stream_change) {
		/* every item's stream hint, in the definition's transaction; a new
		 * stream starts empty (docs/dynamodb.md "Streams") */
		char id[32], vbuf[8];
		snprintf(id, sizeof(id), "%lld", (long long)t->id);
		snprintf(vbuf, sizeof(vbuf), "%d", view);
		const char *sp[2] = {id, stream_on ? vbuf : NULL};
		ok = db_batch_add(b, &stmt_stream_items, sp) && (!stream_on || db_batch_add(b, &stmt_stream_reset, sp));
	}
	free(text);
	it_sql_free(&backfill);
	op->state = public_desc(def);
	op->state_free = (void (*)(void *))json_decref;
	json_decref(def);
	it_exec(op, b, ok, &e, table_updated);
}

void it_op_update_table(it_op *op)
{
	const char *name = it_req_str(op->req, "TableName");
	if (!it_check_table_name(op, "tableName", name))
		return;
	static const char *const changes[] = {"ProvisionedThroughput", "BillingMode",		   "StreamSpecification",
					      "SSESpecification",	     "DeletionProtectionEnabled", "TableClass"};
	bool change = json_array_size(json_object_get(op->req, "GlobalSecondaryIndexUpdates")) > 0;
	for (size_t i = 0; !change && i < OL_ARRAY_LEN(changes); i++)
		change = json_object_get(op->req, changes[i]) != NULL;
	if (!change) {
		it_finish_err(op, "ValidationException", NULL,
			      "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required");
		return;
	}
	it_table_forget(op->store, op->tenant, name);
	it_table_get(op, name, update_with);
}
