/* Unit tests of the in-memory evaluator (src/items/eval.c): conditions
 * against items, updates applied to items with DynamoDB's runtime errors,
 * projections and UPDATED_OLD/UPDATED_NEW attribute sets. */
#include <stdbool.h>
#include <stdlib.h>

#include "items/eval.h"
#include "items_test.h"

static const char *ITEM = "{\"pk\":{\"S\":\"A\"},\"balance\":{\"N\":\"100\"},"
    "\"name\":{\"S\":\"caf\\u00e9\"},\"tags\":{\"SS\":[\"x\",\"y\"]},"
    "\"l\":{\"L\":[{\"N\":\"1\"},{\"S\":\"two\"},{\"N\":\"3\"}]},"
    "\"m\":{\"M\":{\"k\":{\"S\":\"v\"},\"n\":{\"M\":{}}}},"
    "\"b\":{\"B\":\"AAEC\"},\"f\":{\"BOOL\":true},\"z\":{\"NULL\":true}}";

static it_value *
item_of(const char *s)
{
	json_t *j = json_loads(s, 0, NULL);
	it_error e = { 0 };
	it_value *v = NULL;

	if (j == NULL || !it_item_from_json(j, &v, &e))
		v = NULL;
	json_decref(j);
	it_error_clear(&e);
	return v;
}

static char *
item_str(const it_value *v)
{
	json_t *j = it_item_to_json(v);
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(j);
	return s;
}

/* 1 true, 0 false, -1 error. */
static int
cond(const char *expr, const char *values, const it_value *item)
{
	json_t *jv = values ? json_loads(values, 0, NULL) : NULL;
	json_t *jn = json_loads("{\"#n\":\"name\"}", 0, NULL);
	it_error e = { 0 };
	it_params p;
	it_node *n = NULL;
	bool r = false;
	int out = -1;

	if (it_params_init(&p, jn, jv, &e)) {
		if (it_parse_condition(IT_EXPR_CONDITION, expr, strlen(expr), &p,
		    &n, &e) && it_eval_condition(n, item, &r, &e))
			out = r;
		else
			printf("# %s\n", e.msg);
		it_params_free(&p);
	}
	it_node_free(n);
	it_error_clear(&e);
	json_decref(jv);
	json_decref(jn);
	return out;
}

/* Applies an update; returns the new item as JSON or the error message. */
static char *
upd(const char *expr, const char *values, const char *item_json)
{
	json_t *jv = values ? json_loads(values, 0, NULL) : NULL;
	it_value *item = item_json ? item_of(item_json) : NULL, *ni = NULL;
	it_error e = { 0 };
	it_params p;
	it_update *u = NULL;
	char *s = NULL;

	if (it_params_init(&p, NULL, jv, &e)) {
		if (it_parse_update(expr, strlen(expr), &p, &u, &e) &&
		    it_apply_update(u, item, NULL, &ni, &e))
			s = item_str(ni);
		it_params_free(&p);
	}
	if (s == NULL && e.msg != NULL)
		s = strdup(e.msg);
	it_update_free(u);
	it_value_free(item);
	it_value_free(ni);
	it_error_clear(&e);
	json_decref(jv);
	return s;
}

#define CHECK_UPD(expr, vals, item, want) do {				\
	char *s_ = upd(expr, vals, item);				\
	CHECK_STR(s_, want, "update " expr);				\
	free(s_);							\
} while (0)

static void
test_conditions(void)
{
	it_value *it = item_of(ITEM);

	CHECK(it != NULL, "item decodes");
	CHECK(cond("balance >= :v", "{\":v\":{\"N\":\"100\"}}", it) == 1, ">=");
	CHECK(cond("balance >= :v", "{\":v\":{\"N\":\"100.5\"}}", it) == 0,
	    ">= false");
	CHECK(cond("balance = :v", "{\":v\":{\"N\":\"1E2\"}}", it) == 1,
	    "= numeric");
	CHECK(cond("balance = :v", "{\":v\":{\"S\":\"100\"}}", it) == 0,
	    "= across types");
	CHECK(cond("balance < :v", "{\":v\":{\"S\":\"100\"}}", it) == 0,
	    "< across types is false");
	CHECK(cond("absent <> :v", "{\":v\":{\"N\":\"1\"}}", it) == 1,
	    "<> on a missing attribute is true");
	CHECK(cond("absent = :v", "{\":v\":{\"N\":\"1\"}}", it) == 0,
	    "= on a missing attribute is false");
	CHECK(cond("attribute_exists(pk)", NULL, it) == 1, "attribute_exists");
	CHECK(cond("attribute_not_exists(pk)", NULL, it) == 0,
	    "attribute_not_exists on item");
	CHECK(cond("attribute_not_exists(pk)", NULL, NULL) == 1,
	    "attribute_not_exists without item");
	CHECK(cond("attribute_exists(m.k) AND attribute_exists(l[2])", NULL,
	    it) == 1, "nested exists");
	CHECK(cond("attribute_exists(l[3])", NULL, it) == 0, "index past end");
	CHECK(cond("attribute_type(tags, :t)", "{\":t\":{\"S\":\"SS\"}}",
	    it) == 1, "attribute_type");
	CHECK(cond("begins_with(#n, :p)", "{\":p\":{\"S\":\"ca\"}}", it) == 1,
	    "begins_with");
	CHECK(cond("begins_with(b, :p)", "{\":p\":{\"B\":\"AAE=\"}}", it) == 1,
	    "begins_with binary");
	CHECK(cond("contains(tags, :t)", "{\":t\":{\"S\":\"y\"}}", it) == 1,
	    "contains set");
	CHECK(cond("contains(l, :t)", "{\":t\":{\"S\":\"two\"}}", it) == 1,
	    "contains list");
	CHECK(cond("contains(#n, :t)", "{\":t\":{\"S\":\"f\"}}", it) == 1,
	    "contains substring");
	CHECK(cond("size(#n) = :n", "{\":n\":{\"N\":\"4\"}}", it) == 1,
	    "size of string counts characters");
	CHECK(cond("size(l) = :n AND size(m) = :m AND size(b) = :n",
	    "{\":n\":{\"N\":\"3\"},\":m\":{\"N\":\"2\"}}", it) == 1,
	    "size of list, map, binary");
	CHECK(cond("size(balance) = :n", "{\":n\":{\"N\":\"3\"}}", it) == 0,
	    "size of a number is false");
	CHECK(cond("balance BETWEEN :a AND :b",
	    "{\":a\":{\"N\":\"99\"},\":b\":{\"N\":\"100\"}}", it) == 1, "BETWEEN");
	CHECK(cond("pk IN (:a, :b)", "{\":a\":{\"S\":\"Q\"},\":b\":{\"S\":\"A\"}}",
	    it) == 1, "IN");
	CHECK(cond("NOT (f = :t OR z = :t)", "{\":t\":{\"BOOL\":true}}", it) == 0,
	    "NOT OR");
	CHECK(cond("m = :m", "{\":m\":{\"M\":{\"n\":{\"M\":{}},\"k\":{\"S\":"
	    "\"v\"}}}}", it) == 1, "map equality");
	it_value_free(it);
}

static void
test_updates(void)
{
	const char *item = "{\"pk\":{\"S\":\"A\"},\"bal\":{\"N\":\"100\"},"
	    "\"l\":{\"L\":[{\"N\":\"0\"},{\"N\":\"1\"},{\"N\":\"2\"}]},"
	    "\"s\":{\"SS\":[\"a\",\"b\"]},\"m\":{\"M\":{}}}";

	CHECK_UPD("SET bal = bal - :a", "{\":a\":{\"N\":\"30.5\"}}", item,
	    "{\"bal\":{\"N\":\"69.5\"},\"l\":{\"L\":[{\"N\":\"0\"},{\"N\":\"1\"},"
	    "{\"N\":\"2\"}]},\"m\":{\"M\":{}},\"pk\":{\"S\":\"A\"},\"s\":{\"SS\":"
	    "[\"a\",\"b\"]}}");
	CHECK_UPD("SET a = :v, b = a", "{\":v\":{\"N\":\"1\"}}", item,
	    "The provided expression refers to an attribute that does not exist "
	    "in the item");
	CHECK_UPD("SET x = if_not_exists(x, :z) + :o",
	    "{\":z\":{\"N\":\"0\"},\":o\":{\"N\":\"1\"}}", NULL,
	    "{\"x\":{\"N\":\"1\"}}");
	CHECK_UPD("SET l = list_append(l, :n)", "{\":n\":{\"L\":[{\"S\":\"x\"}]}}",
	    "{\"l\":{\"L\":[{\"N\":\"1\"}]}}",
	    "{\"l\":{\"L\":[{\"N\":\"1\"},{\"S\":\"x\"}]}}");
	CHECK_UPD("SET pk = pk + :n", "{\":n\":{\"N\":\"1\"}}", item,
	    "An operand in the update expression has an incorrect data type");
	CHECK_UPD("SET m.a.b = :n", "{\":n\":{\"N\":\"1\"}}", item,
	    "The document path provided in the update expression is invalid "
	    "for update");
	CHECK_UPD("SET m.a = :n, l[10] = :n", "{\":n\":{\"N\":\"9\"}}",
	    "{\"l\":{\"L\":[]},\"m\":{\"M\":{}}}",
	    "{\"l\":{\"L\":[{\"N\":\"9\"}]},\"m\":{\"M\":{\"a\":{\"N\":\"9\"}}}}");
	CHECK_UPD("REMOVE l[0], l[2], bal, nope", NULL, item,
	    "{\"l\":{\"L\":[{\"N\":\"1\"}]},\"m\":{\"M\":{}},\"pk\":{\"S\":\"A\"},"
	    "\"s\":{\"SS\":[\"a\",\"b\"]}}");
	CHECK_UPD("ADD s :s, n :n", "{\":s\":{\"SS\":[\"c\"]},\":n\":{\"N\":\"5\"}}",
	    "{\"s\":{\"SS\":[\"a\"]}}",
	    "{\"n\":{\"N\":\"5\"},\"s\":{\"SS\":[\"a\",\"c\"]}}");
	CHECK_UPD("ADD s :n", "{\":n\":{\"N\":\"5\"}}", "{\"s\":{\"SS\":[\"a\"]}}",
	    "An operand in the update expression has an incorrect data type");
	CHECK_UPD("DELETE s :s", "{\":s\":{\"SS\":[\"a\",\"z\"]}}",
	    "{\"s\":{\"SS\":[\"a\",\"b\"]}}", "{\"s\":{\"SS\":[\"b\"]}}");
	CHECK_UPD("DELETE s :s", "{\":s\":{\"SS\":[\"a\"]}}",
	    "{\"s\":{\"SS\":[\"a\"]}}", "{}");
	CHECK_UPD("DELETE s :s", "{\":s\":{\"NS\":[\"1\"]}}",
	    "{\"s\":{\"SS\":[\"a\"]}}",
	    "An operand in the update expression has an incorrect data type");
	CHECK_UPD("SET n = n + :n", "{\":n\":{\"N\":\"1\"}}",
	    "{\"n\":{\"N\":\"99999999999999999999999999999999999999\"}}",
	    "{\"n\":{\"N\":\"100000000000000000000000000000000000000\"}}");
	CHECK_UPD("SET n = n + :n", "{\":n\":{\"N\":\"0.1\"}}",
	    "{\"n\":{\"N\":\"99999999999999999999999999999999999999\"}}",
	    "Attempting to store more than 38 significant digits in a Number");
}

static void
test_projection(void)
{
	it_value *it = item_of(ITEM), *out = NULL, *ni = NULL;
	it_error e = { 0 };
	it_params p;
	it_projection *pr = NULL;
	it_update *u = NULL;
	json_t *jv = json_loads("{\":v\":{\"N\":\"1\"}}", 0, NULL);
	const char *src = "pk, l[2], l[0], m.k, nothing, m.zz";
	char *s;

	CHECK(it_params_init(&p, NULL, NULL, &e), "params");
	CHECK(it_parse_projection(src, strlen(src), &p, &pr, &e) &&
	    it_project(pr, it, &out, &e), "projection");
	s = out ? item_str(out) : NULL;
	CHECK_STR(s, "{\"l\":{\"L\":[{\"N\":\"1\"},{\"N\":\"3\"}]},\"m\":{\"M\":"
	    "{\"k\":{\"S\":\"v\"}}},\"pk\":{\"S\":\"A\"}}", "projected item");
	free(s);
	it_value_free(out);
	out = NULL;
	it_params_free(&p);
	src = "SET balance = :v, m.k = :v REMOVE f";
	CHECK(it_params_init(&p, NULL, jv, &e) &&
	    it_parse_update(src, strlen(src), &p, &u, &e) &&
	    it_apply_update(u, it, NULL, &ni, &e), "update for ReturnValues");
	CHECK(u != NULL && it_updated_attrs(u, it, &out, &e), "UPDATED_OLD");
	s = out ? item_str(out) : NULL;
	CHECK_STR(s, "{\"balance\":{\"N\":\"100\"},\"f\":{\"BOOL\":true},\"m\":"
	    "{\"M\":{\"k\":{\"S\":\"v\"}}}}", "UPDATED_OLD attributes");
	free(s);
	it_value_free(out);
	out = NULL;
	CHECK(ni != NULL && it_updated_attrs(u, ni, &out, &e), "UPDATED_NEW");
	s = out ? item_str(out) : NULL;
	CHECK_STR(s, "{\"balance\":{\"N\":\"1\"},\"m\":{\"M\":{\"k\":{\"N\":"
	    "\"1\"}}}}", "UPDATED_NEW attributes");
	free(s);
	it_value_free(out);
	it_value_free(ni);
	it_update_free(u);
	it_projection_free(pr);
	it_params_free(&p);
	it_value_free(it);
	json_decref(jv);
	it_error_clear(&e);
}

int
main(void)
{
	test_conditions();
	test_updates();
	test_projection();
	return it_test_done();
}
