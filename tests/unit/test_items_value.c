/* Unit tests of the AttributeValue model (src/items/value*.c): decoding of
 * every type, DynamoDB's validation messages, encoding round trips, item
 * sizes, equality, ordering, set operations and key attribute checks. */
#include <stdbool.h>
#include <stdlib.h>

#include "items/value.h"
#include "items_test.h"

static it_value *
dec(const char *json, it_error *e)
{
	json_error_t je;
	json_t *j = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	it_value *v = NULL;

	if (j == NULL)
		return NULL;
	if (!it_value_from_json(j, &v, e))
		v = NULL;
	json_decref(j);
	return v;
}

/* Decodes, re-encodes and compares with the expected canonical JSON. */
static void
round_trip(const char *in, const char *want)
{
	it_error e = { 0 };
	it_value *v = dec(in, &e);
	json_t *j = v ? it_value_to_json(v) : NULL;
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;
	char name[300];

	snprintf(name, sizeof(name), "round trip %.200s", in);
	CHECK_STR(s ? s : e.msg, want, name);
	free(s);
	json_decref(j);
	it_value_free(v);
	it_error_clear(&e);
}

static void
invalid(const char *in, it_errcode code, const char *msg)
{
	it_error e = { 0 };
	it_value *v = dec(in, &e);
	char name[300];

	snprintf(name, sizeof(name), "invalid %.200s", in);
	CHECK(v == NULL && e.code == code, name);
	CHECK_STR(e.msg, msg, name);
	it_value_free(v);
	it_error_clear(&e);
}

static bool
equal_json(const char *a, const char *b)
{
	it_error e = { 0 };
	it_value *x = dec(a, &e), *y = dec(b, &e);
	bool r = x && y && it_value_equal(x, y);

	it_value_free(x);
	it_value_free(y);
	it_error_clear(&e);
	return r;
}

static int
cmp_json(const char *a, const char *b)
{
	it_error e = { 0 };
	it_value *x = dec(a, &e), *y = dec(b, &e);
	int r = x && y ? it_value_cmp(x, y) : 99;

	it_value_free(x);
	it_value_free(y);
	it_error_clear(&e);
	return r;
}

static size_t
size_of(const char *item_json)
{
	json_error_t je;
	json_t *j = json_loads(item_json, 0, &je);
	it_error e = { 0 };
	it_value *v = NULL;
	size_t n = (size_t)-1;

	if (j != NULL && it_item_from_json(j, &v, &e))
		n = it_item_size(v);
	it_value_free(v);
	json_decref(j);
	it_error_clear(&e);
	return n;
}

#define PFX "One or more parameter values were invalid: "

static void
test_nesting(void)
{
	char *s = malloc(64 * 20), *p;
	it_error e = { 0 };
	it_value *v;
	int depth;

	for (depth = 32; depth <= 33; depth++) {
		p = s;
		for (int i = 0; i < depth; i++)
			p += sprintf(p, "{\"L\":[");
		p += sprintf(p, "{\"S\":\"x\"}");
		for (int i = 0; i < depth; i++)
			p += sprintf(p, "]}");
		v = dec(s, &e);
		if (depth == 32) {
			CHECK(v != NULL, "32 nesting levels accepted");
		} else {
			CHECK(v == NULL, "33 nesting levels rejected");
			CHECK_STR(e.msg, PFX "Nesting Levels have exceeded "
			    "supported limits", "nesting message");
		}
		it_value_free(v);
		it_error_clear(&e);
	}
	free(s);
}

static void
test_item_size_limit(void)
{
	size_t n = 409600 - 1 - 4;	/* name "a" + value */
	char *s = malloc(n + 64);
	json_t *j;
	it_value *v = NULL;
	it_error e = { 0 };

	sprintf(s, "{\"a\":{\"S\":\"");
	memset(s + strlen(s), 'x', n);
	strcpy(s + 11 + n, "\"}}");
	CHECK(size_of(s) == 409600 - 4, "size of a 400 KB item");
	j = json_loads(s, 0, NULL);
	json_object_set_new(j, "bcde", json_pack("{s:s}", "S", ""));
	CHECK(it_item_from_json(j, &v, &e), "item of exactly 400 KB accepted");
	it_value_free(v);
	v = NULL;
	json_object_set_new(j, "bcdef", json_pack("{s:s}", "S", ""));
	CHECK(!it_item_from_json(j, &v, &e), "item over 400 KB rejected");
	CHECK_STR(e.msg, "Item size has exceeded the maximum allowed size",
	    "item size message");
	it_error_clear(&e);
	json_decref(j);
	free(s);
}

static void
test_sets_and_maps(void)
{
	it_error e = { 0 };
	it_value *a = dec("{\"NS\":[\"1\",\"2\",\"3\"]}", &e);
	it_value *b = dec("{\"NS\":[\"3\",\"4\"]}", &e);
	it_value *u = NULL, *d = NULL, *m;
	it_str one = { "1", 1 }, five = { "5", 1 };

	CHECK(it_set_union(a, b, &u) && u->u.set.n == 4, "NS union");
	CHECK(it_set_minus(a, b, &d) && d->u.set.n == 2, "NS difference");
	CHECK(it_set_contains(a, &one) && !it_set_contains(a, &five),
	    "NS membership");
	it_value_free(u);
	it_value_free(d);
	m = it_value_new_map();
	CHECK(it_map_set(m, "b", 1, it_value_new_bool(true)) &&
	    it_map_set(m, "a", 1, it_value_new_null()) &&
	    it_map_set(m, "b", 1, it_value_new_bool(false)), "map set");
	CHECK(m->u.m.n == 2 && it_map_get(m, "b", 1)->u.b == false &&
	    strcmp(m->u.m.v[0].name.ptr, "a") == 0, "map sorted and replaced");
	CHECK(it_map_remove(m, "a", 1) && !it_map_remove(m, "zz", 2) &&
	    m->u.m.n == 1, "map remove");
	it_value_free(m);
	it_value_free(a);
	it_value_free(b);
	it_error_clear(&e);
}

static void
test_keys(void)
{
	it_error e = { 0 };
	it_value *s = dec("{\"S\":\"\"}", &e), *n = dec("{\"N\":\"1\"}", &e);
	it_value *b = dec("{\"B\":\"\"}", &e);

	CHECK(!it_check_key_attr("pk", s, IT_S, false, &e), "empty S key rejected");
	CHECK_STR(e.msg, "One or more parameter values are not valid. The "
	    "AttributeValue for a key attribute cannot contain an empty string "
	    "value. Key: pk", "empty S key message");
	it_error_clear(&e);
	CHECK(!it_check_key_attr("pk", b, IT_B, false, &e), "empty B key rejected");
	CHECK_STR(e.msg, "One or more parameter values are not valid. The "
	    "AttributeValue for a key attribute cannot contain an empty binary "
	    "value. Key: pk", "empty B key message");
	it_error_clear(&e);
	CHECK(!it_check_key_attr("sk", n, IT_S, true, &e), "key type mismatch");
	CHECK_STR(e.msg, PFX "Type mismatch for key sk expected: S actual: N",
	    "key type mismatch message");
	it_error_clear(&e);
	CHECK(it_check_key_attr("sk", n, IT_N, true, &e), "N key accepted");
	{
		/* DynamoDB's limits: 2,048 bytes partition, 1,024 sort */
		char big[2100];
		memset(big, 'x', sizeof(big));
		it_value *k1024 = it_value_new_str(IT_S, big, 1024);
		it_value *k1025 = it_value_new_str(IT_S, big, 1025);
		it_value *k2048 = it_value_new_str(IT_S, big, 2048);
		it_value *k2049 = it_value_new_str(IT_S, big, 2049);
		CHECK(it_check_key_attr("sk", k1024, IT_S, true, &e), "1,024-byte sort key accepted");
		CHECK(!it_check_key_attr("sk", k1025, IT_S, true, &e), "1,025-byte sort key refused");
		CHECK_STR(e.msg, PFX "Aggregated size of all range keys has exceeded the size limit of 1024 bytes",
		    "sort key size message");
		it_error_clear(&e);
		CHECK(it_check_key_attr("pk", k2048, IT_S, false, &e), "2,048-byte partition key accepted");
		CHECK(!it_check_key_attr("pk", k2049, IT_S, false, &e), "2,049-byte partition key refused");
		it_error_clear(&e);
		CHECK(it_check_key_attr("pk", k1025, IT_S, false, &e), "1,025 bytes is fine for a partition key");
		it_value_free(k1024);
		it_value_free(k1025);
		it_value_free(k2048);
		it_value_free(k2049);
	}
	{
		/* U+0000 in a key is refused, never cut short */
		it_value *z = dec("{\"S\":\"a\\u0000b\"}", &e);
		CHECK(z != NULL && !it_check_key_attr("pk", z, IT_S, false, &e), "S key with U+0000 refused");
		CHECK(e.msg != NULL && strstr(e.msg, "U+0000") != NULL, "U+0000 message");
		it_error_clear(&e);
		it_value_free(z);
	}
	it_value_free(s);
	it_value_free(n);
	it_value_free(b);
}

int
main(void)
{
	round_trip("{\"S\":\"hello\"}", "{\"S\":\"hello\"}");
	round_trip("{\"S\":\"\"}", "{\"S\":\"\"}");
	round_trip("{\"S\":\"caf\\u00e9 \\u0000 nul\"}",
	    "{\"S\":\"caf\\u00E9 \\u0000 nul\"}");
	round_trip("{\"N\":\"1.50\"}", "{\"N\":\"1.5\"}");
	round_trip("{\"N\":\"-0\"}", "{\"N\":\"0\"}");
	round_trip("{\"N\":\"12345678901234567890123456789012345678\"}",
	    "{\"N\":\"12345678901234567890123456789012345678\"}");
	round_trip("{\"N\":\"-1.2345678901234567890123456789012345678E-100\"}",
	    "{\"N\":\"-0.000000000000000000000000000000000000000000000000000000"
	    "00000000000000000000000000000000000000000000012345678901234567890"
	    "123456789012345678\"}");
	round_trip("{\"B\":\"AAEC/w==\"}", "{\"B\":\"AAEC/w==\"}");
	round_trip("{\"B\":\"\"}", "{\"B\":\"\"}");
	round_trip("{\"BOOL\":true}", "{\"BOOL\":true}");
	round_trip("{\"BOOL\":false}", "{\"BOOL\":false}");
	round_trip("{\"NULL\":true}", "{\"NULL\":true}");
	round_trip("{\"M\":{}}", "{\"M\":{}}");
	round_trip("{\"L\":[]}", "{\"L\":[]}");
	round_trip("{\"M\":{\"b\":{\"N\":\"2\"},\"a\":{\"L\":[{\"S\":\"x\"},"
	    "{\"NULL\":true}]}}}", "{\"M\":{\"a\":{\"L\":[{\"S\":\"x\"},"
	    "{\"NULL\":true}]},\"b\":{\"N\":\"2\"}}}");
	round_trip("{\"SS\":[\"b\",\"a\",\"\"]}", "{\"SS\":[\"\",\"a\",\"b\"]}");
	round_trip("{\"NS\":[\"10\",\"9\",\"-1.0\"]}",
	    "{\"NS\":[\"-1\",\"9\",\"10\"]}");
	round_trip("{\"BS\":[\"AQ==\",\"AA==\"]}", "{\"BS\":[\"AA==\",\"AQ==\"]}");
	round_trip("{\"S\":\"x\",\"Unknown\":1}", "{\"S\":\"x\"}");
	round_trip("{\"S\":null,\"N\":\"3\"}", "{\"N\":\"3\"}");

	invalid("{}", IT_ERR_VALIDATION, "Supplied AttributeValue is empty, "
	    "must contain exactly one of the supported datatypes");
	invalid("{\"S\":\"a\",\"N\":\"1\"}", IT_ERR_VALIDATION, "Supplied "
	    "AttributeValue has more than one datatypes set, must contain "
	    "exactly one of the supported datatypes");
	invalid("{\"SS\":[]}", IT_ERR_VALIDATION, PFX "An string set  may not "
	    "be empty");
	invalid("{\"NS\":[]}", IT_ERR_VALIDATION, PFX "An number set  may not "
	    "be empty");
	invalid("{\"BS\":[]}", IT_ERR_VALIDATION, PFX "Binary sets should not "
	    "be empty");
	invalid("{\"SS\":[\"a\",\"b\",\"a\"]}", IT_ERR_VALIDATION, PFX "Input "
	    "collection [a, b, a] contains duplicates.");
	invalid("{\"NS\":[\"1\",\"1.0\"]}", IT_ERR_VALIDATION, PFX "Input "
	    "collection [1, 1.0] contains duplicates.");
	invalid("{\"BS\":[\"AA==\",\"AA==\"]}", IT_ERR_VALIDATION, PFX "Input "
	    "collection contains duplicates of type BS.");
	invalid("{\"N\":\"abc\"}", IT_ERR_VALIDATION, "The parameter cannot be "
	    "converted to a numeric value: abc");
	invalid("{\"N\":\"\"}", IT_ERR_VALIDATION, "The parameter cannot be "
	    "converted to a numeric value");
	invalid("{\"N\":\"1E126\"}", IT_ERR_VALIDATION, "Number overflow. "
	    "Attempting to store a number with magnitude larger than supported "
	    "range");
	invalid("{\"NS\":[\"1\",\"1E-131\"]}", IT_ERR_VALIDATION, "Number "
	    "underflow. Attempting to store a number with magnitude smaller "
	    "than supported range");
	invalid("{\"N\":\"123456789012345678901234567890123456789\"}",
	    IT_ERR_VALIDATION, "Attempting to store more than 38 significant "
	    "digits in a Number");
	invalid("{\"NULL\":false}", IT_ERR_VALIDATION, PFX "Null attribute "
	    "value types must have the value of true");
	invalid("{\"B\":\"abc\"}", IT_ERR_SERIALIZATION, "'abc' can not be "
	    "converted to a Blob: Base64 encoded length is expected a multiple "
	    "of 4 bytes but found: 3");
	invalid("{\"B\":\"ab!d\"}", IT_ERR_SERIALIZATION, "'ab!d' can not be "
	    "converted to a Blob: Invalid Base64 character");
	invalid("{\"S\":5}", IT_ERR_SERIALIZATION, "NUMBER_VALUE cannot be "
	    "converted to String");
	invalid("{\"BOOL\":\"true\"}", IT_ERR_SERIALIZATION, "STRING_VALUE "
	    "cannot be converted to Boolean");
	invalid("{\"M\":[]}", IT_ERR_SERIALIZATION, "START_ARRAY cannot be "
	    "converted to Map");
	invalid("{\"L\":{}}", IT_ERR_SERIALIZATION, "START_OBJECT cannot be "
	    "converted to List");
	invalid("\"x\"", IT_ERR_SERIALIZATION, "STRING_VALUE cannot be "
	    "converted to AttributeValue");
	invalid("{\"M\":{\"a\":{}}}", IT_ERR_VALIDATION, "Supplied "
	    "AttributeValue is empty, must contain exactly one of the supported "
	    "datatypes");
	invalid("{\"L\":[{\"SS\":[]}]}", IT_ERR_VALIDATION, PFX "An string "
	    "set  may not be empty");

	test_nesting();
	test_item_size_limit();
	test_sets_and_maps();
	test_keys();

	/* Sizes: name length + value size, DynamoDB's documented rules. */
	CHECK(size_of("{\"ab\":{\"S\":\"hello\"}}") == 7, "size S");
	CHECK(size_of("{\"a\":{\"N\":\"12345\"}}") == 1 + 4, "size N 5 digits");
	CHECK(size_of("{\"a\":{\"N\":\"0\"}}") == 1 + 1, "size N zero");
	CHECK(size_of("{\"a\":{\"B\":\"AAEC\"}}") == 1 + 3, "size B");
	CHECK(size_of("{\"a\":{\"BOOL\":true},\"b\":{\"NULL\":true}}") == 4,
	    "size BOOL and NULL");
	CHECK(size_of("{\"a\":{\"M\":{}}}") == 1 + 3, "size empty M");
	CHECK(size_of("{\"a\":{\"L\":[{\"S\":\"xy\"},{\"N\":\"1\"}]}}") ==
	    1 + 3 + (1 + 2) + (1 + 2), "size L");
	CHECK(size_of("{\"a\":{\"M\":{\"k\":{\"S\":\"v\"}}}}") ==
	    1 + 3 + 1 + 1 + 1, "size M");
	CHECK(size_of("{\"a\":{\"SS\":[\"x\",\"yz\"]}}") == 1 + 3, "size SS");

	CHECK(equal_json("{\"N\":\"1.0\"}", "{\"N\":\"1\"}"), "equal N");
	CHECK(equal_json("{\"SS\":[\"a\",\"b\"]}", "{\"SS\":[\"b\",\"a\"]}"),
	    "equal SS order-free");
	CHECK(!equal_json("{\"S\":\"1\"}", "{\"N\":\"1\"}"), "S != N");
	CHECK(equal_json("{\"M\":{\"x\":{\"L\":[{\"N\":\"1\"}]}}}",
	    "{\"M\":{\"x\":{\"L\":[{\"N\":\"1.00\"}]}}}"), "equal deep");
	CHECK(!equal_json("{\"L\":[{\"N\":\"1\"},{\"N\":\"2\"}]}",
	    "{\"L\":[{\"N\":\"2\"},{\"N\":\"1\"}]}"), "L order matters");
	CHECK(cmp_json("{\"N\":\"9\"}", "{\"N\":\"10\"}") < 0, "N numeric order");
	CHECK(cmp_json("{\"S\":\"9\"}", "{\"S\":\"10\"}") > 0, "S byte order");
	CHECK(cmp_json("{\"S\":\"Z\"}", "{\"S\":\"a\"}") < 0, "S case order");
	CHECK(cmp_json("{\"S\":\"\\u00e9\"}", "{\"S\":\"z\"}") > 0,
	    "S UTF-8 byte order");
	CHECK(cmp_json("{\"B\":\"/w==\"}", "{\"B\":\"AA==\"}") > 0,
	    "B unsigned order");
	CHECK(cmp_json("{\"S\":\"a\"}", "{\"N\":\"1\"}") == 0,
	    "different types are not ordered");
	return it_test_done();
}
