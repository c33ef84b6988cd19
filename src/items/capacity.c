/* capacity.c — ConsumedCapacity by DynamoDB's arithmetic: a read unit per
 * 4 KB (rounded up; half for an eventually consistent read), a write unit
 * per 1 KB (rounded up), twice that inside a transaction, and the writes of
 * secondary indexes charged to them (docs/dynamodb.md). Nothing is
 * provisioned or throttled: the numbers tell a client what its requests
 * would cost on DynamoDB. */
#include "items/items_int.h"

#include <math.h>
#include <string.h>

int it_cap_mode(const it_op *op)
{
	const char *m = it_req_str(op->req, "ReturnConsumedCapacity");
	if (m == NULL)
		return IT_CAP_NONE;
	return strcmp(m, "INDEXES") == 0 ? IT_CAP_INDEXES : strcmp(m, "TOTAL") == 0 ? IT_CAP_TOTAL : IT_CAP_NONE;
}

double it_cap_read(size_t bytes, bool consistent)
{
	double units = bytes == 0 ? 1 : ceil((double)bytes / 4096.0);
	return consistent ? units : units / 2;
}

double it_cap_write(size_t bytes)
{
	return bytes == 0 ? 1 : ceil((double)bytes / 1024.0);
}

/* Whether item carries every key attribute of ix (is in the index). */
static bool in_index(const it_index *ix, const it_value *item)
{
	return item != NULL && it_map_get(item, ix->pk.name, strlen(ix->pk.name)) != NULL &&
	       (!ix->has_sk || it_map_get(item, ix->sk.name, strlen(ix->sk.name)) != NULL);
}

static bool same_attr(const it_value *a, const it_value *b, const char *name)
{
	const it_value *x = it_map_get(a, name, strlen(name)), *y = it_map_get(b, name, strlen(name));
	return x != NULL && y != NULL && it_value_equal(x, y);
}

/* The size of item's entry in ix: what the index projects of it. */
static size_t entry_size(const it_table *t, const it_index *ix, const it_value *item)
{
	if (ix->projection == IT_PROJ_ALL)
		return it_item_size(item);
	it_value *v = it_index_view(t, ix, item);
	size_t n = v != NULL ? it_item_size(v) : it_item_size(item);
	it_value_free(v);
	return n;
}

void it_cap_index_writes(const it_table *t, const it_value *old, const it_value *new, double *idx)
{
	for (int i = 0; i < t->nidx; i++) {
		const it_index *ix = &t->idx[i];
		bool was = in_index(ix, old), is = in_index(ix, new);
		if (was && is && same_attr(old, new, ix->pk.name) && (!ix->has_sk || same_attr(old, new, ix->sk.name)))
			idx[i] += it_cap_write(entry_size(t, ix, new)); /* entry rewritten in place */
		else {
			/* a key change is a delete and a put */
			if (was)
				idx[i] += it_cap_write(entry_size(t, ix, old));
			if (is)
				idx[i] += it_cap_write(entry_size(t, ix, new));
		}
	}
}

json_t *it_cap_json(const it_table *t, const char *name, double table, const double *idx, int mode, bool write)
{
	const char *kind = write ? "WriteCapacityUnits" : "ReadCapacityUnits";
	double total = table;
	json_t *gsi = json_object(), *lsi = json_object();
	for (int i = 0; idx != NULL && t != NULL && i < t->nidx; i++) {
		if (idx[i] <= 0)
			continue;
		total += idx[i];
		json_object_set_new(t->idx[i].local ? lsi : gsi, t->idx[i].name,
				    json_pack("{s:f, s:f}", "CapacityUnits", idx[i], kind, idx[i]));
	}
	json_t *c = json_pack("{s:s, s:f, s:f}", "TableName", name, "CapacityUnits", total, kind, total);
	if (c != NULL && mode == IT_CAP_INDEXES) {
		json_object_set_new(c, "Table", json_pack("{s:f, s:f}", "CapacityUnits", table, kind, table));
		if (json_object_size(gsi) > 0)
			json_object_set(c, "GlobalSecondaryIndexes", gsi);
		if (json_object_size(lsi) > 0)
			json_object_set(c, "LocalSecondaryIndexes", lsi);
	}
	json_decref(gsi);
	json_decref(lsi);
	return c;
}

json_t *it_cap_tables(const it_op *op, const double *units, int n, int mode, bool write)
{
	json_t *list = json_array();
	for (int i = 0; i < n; i++) {
		bool seen = false;
		for (int j = 0; j < i; j++)
			seen = seen || op->tables[j] == op->tables[i];
		if (seen)
			continue;
		double sum = 0;
		for (int j = i; j < n; j++)
			if (op->tables[j] == op->tables[i])
				sum += units[j];
		json_array_append_new(list, it_cap_json(op->tables[i], op->tables[i]->name, sum, NULL, mode, write));
	}
	return list;
}
