/* libFuzzer target: every expression kind parsed from fuzz input. The first
 * byte picks the kind; the rest is the expression, parsed with a fixed set
 * of placeholders; conditions are then evaluated and updates applied to a
 * fixed item, so the evaluator is exercised on whatever parses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "items/eval.h"
#include "items/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *NAMES = "{\"#a\":\"a\",\"#b\":\"b\",\"#s\":\"status\","
    "\"#n\":\"name\"}";
static const char *VALUES = "{\":n\":{\"N\":\"1\"},\":m\":{\"N\":\"-2.5\"},"
    "\":s\":{\"S\":\"x\"},\":t\":{\"S\":\"SS\"},\":b\":{\"B\":\"AAE=\"},"
    "\":l\":{\"L\":[{\"N\":\"1\"}]},\":ss\":{\"SS\":[\"x\",\"y\"]},"
    "\":ns\":{\"NS\":[\"1\",\"2\"]},\":bool\":{\"BOOL\":true},"
    "\":null\":{\"NULL\":true},\":map\":{\"M\":{\"k\":{\"S\":\"v\"}}}}";
static const char *ITEM = "{\"a\":{\"N\":\"5\"},\"b\":{\"S\":\"xyz\"},"
    "\"status\":{\"SS\":[\"x\"]},\"l\":{\"L\":[{\"N\":\"1\"},{\"M\":{}}]},"
    "\"m\":{\"M\":{\"k\":{\"L\":[]}}},\"name\":{\"B\":\"AAE=\"}}";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *names, *values;
	static it_value *item;
	it_error e = { 0 };
	it_params p;
	const char *src;
	size_t len;
	void *r = NULL;
	it_value *out = NULL;
	bool b;

	if (names == NULL) {
		json_t *ji = json_loads(ITEM, 0, NULL);

		names = json_loads(NAMES, 0, NULL);
		values = json_loads(VALUES, 0, NULL);
		if (!it_item_from_json(ji, &item, &e))
			abort();
		json_decref(ji);
	}
	if (size < 1)
		return 0;
	src = (const char *)data + 1;
	len = size - 1;
	if (!it_params_init(&p, names, values, &e))
		abort();
	switch (data[0] % 5) {
	case 0:
	case 1:
	case 2:
		if (it_parse_condition((it_expr_kind)(data[0] % 3), src, len, &p,
		    (it_node **)&r, &e)) {
			if (it_eval_condition(r, item, &b, &e) &&
			    data[0] % 3 == IT_EXPR_KEYCOND) {
				it_keycond pk, sk;

				if (!it_keycond_bind(r, "a", "b", &pk, &sk, &e))
					it_error_clear(&e);
			}
			it_node_free(r);
		}
		break;
	case 3:
		if (it_parse_update(src, len, &p, (it_update **)&r, &e)) {
			if (it_apply_update(r, item, NULL, &out, &e)) {
				it_value *old = NULL;

				if (it_updated_attrs(r, out, &old, &e))
					it_value_free(old);
				it_value_free(out);
			}
			it_update_free(r);
		}
		break;
	default:
		if (it_parse_projection(src, len, &p, (it_projection **)&r, &e)) {
			if (it_project(r, item, &out, &e))
				it_value_free(out);
			it_projection_free(r);
		}
		break;
	}
	if (!it_params_check_unused(&p, &e))
		it_error_clear(&e);
	it_params_free(&p);
	it_error_clear(&e);
	return 0;
}
