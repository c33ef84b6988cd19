/* libFuzzer target: typed item decoding. The input is parsed as JSON and
 * decoded as an item (falling back to a single AttributeValue); what decodes
 * must encode, decode again and compare equal, with the same size. */
#include <stdint.h>
#include <stdlib.h>

#include "items/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
round_trip(const it_value *v, bool is_item)
{
	json_t *j = is_item ? it_item_to_json(v) : it_value_to_json(v);
	it_value *w = NULL;
	it_error e = { 0 };
	bool ok;

	if (j == NULL)
		abort();
	ok = is_item ? it_item_from_json(j, &w, &e) : it_value_from_json(j, &w,
	    &e);
	if (!ok || !it_value_equal(v, w) ||
	    it_value_size(v) != it_value_size(w))
		abort();
	it_value_free(w);
	json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t je;
	json_t *j = json_loadb((const char *)data, size,
	    JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	it_error e = { 0 };
	it_value *v = NULL, *c;

	if (j == NULL)
		return 0;
	if (it_item_from_json(j, &v, &e)) {
		round_trip(v, true);
		c = it_value_copy(v);
		if (c == NULL || !it_value_equal(v, c))
			abort();
		it_value_free(c);
		it_value_free(v);
	}
	it_error_clear(&e);
	if (it_value_from_json(j, &v, &e)) {
		round_trip(v, false);
		it_value_free(v);
	}
	it_error_clear(&e);
	json_decref(j);
	return 0;
}
