/* DynamoDB JSON <-> it_value: decoding with DynamoDB's validation order and
 * messages, and encoding (value.h). Sets are sorted on the way in so that
 * equality and membership are cheap; DynamoDB does not promise set order. */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "items/number.h"
#include "items/value.h"

#define PFX "One or more parameter values were invalid: "

/* The token name DynamoDB's JSON reader reports for a JSON value. */
static const char *
json_token(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "START_OBJECT";
	case JSON_ARRAY:
		return "START_ARRAY";
	case JSON_STRING:
		return "STRING_VALUE";
	case JSON_INTEGER:
	case JSON_REAL:
		return "NUMBER_VALUE";
	case JSON_TRUE:
	case JSON_FALSE:
		return "BOOLEAN_VALUE";
	case JSON_NULL:
		return "NULL_VALUE";
	}
	return "VALUE";
}

static bool
want(const json_t *j, json_type t, const char *what, it_error *e)
{
	if (j == NULL) {
		/* callers check required members; this is the backstop */
		it_error_set(e, IT_ERR_VALIDATION,
		    "1 validation error detected: Value null failed to satisfy constraint: Member must not be null");
		return false;
	}
	if (json_typeof(j) == t || (t == JSON_TRUE && json_is_boolean(j)))
		return true;
	it_error_set(e, IT_ERR_SERIALIZATION, "%s cannot be converted to %s",
	    json_token(j), what);
	return false;
}

/* Strict standard base64 (padding required) via libsodium. */
static bool
b64_decode(const char *s, size_t len, it_str *out, it_error *e)
{
	size_t cap = len / 4 * 3 + 1, bin_len = 0;
	const char *end = NULL;

	out->ptr = NULL;
	if (len % 4 != 0) {
		it_error_set(e, IT_ERR_SERIALIZATION, "'%.*s' can not be converted "
		    "to a Blob: Base64 encoded length is expected a multiple of "
		    "4 bytes but found: %zu", (int)(len > 256 ? 256 : len), s,
		    len);
		return false;
	}
	out->ptr = malloc(cap + 1);
	if (out->ptr == NULL) {
		it_error_nomem(e);
		return false;
	}
	if (sodium_base642bin((unsigned char *)out->ptr, cap, s, len, NULL,
	    &bin_len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != s + len) {
		it_error_set(e, IT_ERR_SERIALIZATION, "'%.*s' can not be converted "
		    "to a Blob: Invalid Base64 character",
		    (int)(len > 256 ? 256 : len), s);
		free(out->ptr);
		out->ptr = NULL;
		return false;
	}
	out->ptr[bin_len] = '\0';
	out->len = bin_len;
	return true;
}

static bool
decode_scalar(it_type t, const json_t *j, it_str *out, it_error *e)
{
	const char *s;
	size_t len;
	char *canon = NULL;

	out->ptr = NULL;
	if (!want(j, JSON_STRING, t == IT_B ? "Blob" : "String", e))
		return false;
	s = json_string_value(j);
	len = json_string_length(j);
	switch (t) {
	case IT_B:
		return b64_decode(s, len, out, e);
	case IT_N:
		if (!it_num_canon(s, len, &canon, e))
			return false;
		out->ptr = canon;
		out->len = strlen(canon);
		return true;
	default:
		out->ptr = malloc(len + 1);
		if (out->ptr == NULL) {
			it_error_nomem(e);
			return false;
		}
		memcpy(out->ptr, s, len);
		out->ptr[len] = '\0';
		out->len = len;
		return true;
	}
}

static int
set_sort_cmp(const void *a, const void *b, void *type)
{
	return it_str_cmp(*(const it_type *)type, a, b);
}

/* Formats the members of a JSON array as DynamoDB prints a collection. */
static char *
collection_str(const json_t *arr)
{
	char *buf = NULL;
	size_t sz = 0, i;
	FILE *f = open_memstream(&buf, &sz);
	json_t *m;

	if (f == NULL)
		return NULL;
	fputc('[', f);
	json_array_foreach(arr, i, m) {
		if (i > 0)
			fputs(", ", f);
		if (json_is_string(m))
			fwrite(json_string_value(m), 1, json_string_length(m), f);
	}
	fputc(']', f);
	fclose(f);
	return buf;
}

static bool
decode_set(it_type t, const json_t *j, it_value **out, it_error *e)
{
	it_type et = it_set_elem_type(t);
	it_value *v = NULL;
	size_t i;
	json_t *m;

	*out = NULL;
	if (!want(j, JSON_ARRAY, "List", e))
		return false;
	if (json_array_size(j) == 0) {
		it_error_set(e, IT_ERR_VALIDATION, "%s",
		    t == IT_SS ? PFX "An string set  may not be empty" :
		    t == IT_NS ? PFX "An number set  may not be empty" :
		    PFX "Binary sets should not be empty");
		return false;
	}
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		goto nomem;
	v->type = t;
	v->u.set.v = calloc(json_array_size(j), sizeof(it_str));
	if (v->u.set.v == NULL)
		goto nomem;
	json_array_foreach(j, i, m) {
		if (json_is_null(m)) {
			it_error_set(e, IT_ERR_VALIDATION, "%s", t == IT_BS ?
			    PFX "Binary sets may not contain null or empty values" :
			    t == IT_NS ? "The parameter cannot be converted to a "
			    "numeric value" : PFX "Sets may not contain null "
			    "values");
			goto fail;
		}
		if (!decode_scalar(et, m, &v->u.set.v[i], e))
			goto fail;
		v->u.set.n++;
	}
	qsort_r(v->u.set.v, v->u.set.n, sizeof(it_str), set_sort_cmp, &t);
	for (i = 1; i < v->u.set.n; i++) {
		if (it_str_cmp(t, &v->u.set.v[i - 1], &v->u.set.v[i]) == 0) {
			char *c = t == IT_BS ? NULL : collection_str(j);

			if (t == IT_BS)
				it_error_set(e, IT_ERR_VALIDATION, PFX "Input "
				    "collection contains duplicates of type BS.");
			else
				it_error_set(e, IT_ERR_VALIDATION, PFX "Input "
				    "collection %s contains duplicates.",
				    c ? c : "[]");
			free(c);
			goto fail;
		}
	}
	*out = v;
	return true;
nomem:
	it_error_nomem(e);
fail:
	it_value_free(v);
	return false;
}

static bool decode(const json_t *j, int depth, it_value **out, it_error *e);

static bool
decode_map(const json_t *j, int depth, it_value **out, it_error *e)
{
	it_value *v = it_value_new_map(), *c = NULL;
	const char *k;
	size_t klen;
	json_t *m;

	*out = NULL;
	if (v == NULL)
		goto nomem;
	json_object_keylen_foreach((json_t *)j, k, klen, m) {
		if (!decode(m, depth, &c, e))
			goto fail;
		if (!it_map_set(v, k, klen, c)) {
			it_value_free(c);
			goto nomem;
		}
	}
	*out = v;
	return true;
nomem:
	it_error_nomem(e);
fail:
	it_value_free(v);
	return false;
}

static bool
decode_list(const json_t *j, int depth, it_value **out, it_error *e)
{
	it_value *v = it_value_new_list(), *c = NULL;
	size_t i;
	json_t *m;

	*out = NULL;
	if (v == NULL)
		goto nomem;
	v->u.l.v = calloc(json_array_size(j) + 1, sizeof(it_value *));
	if (v->u.l.v == NULL)
		goto nomem;
	json_array_foreach(j, i, m) {
		if (!decode(m, depth, &c, e))
			goto fail;
		v->u.l.v[v->u.l.n++] = c;
	}
	*out = v;
	return true;
nomem:
	it_error_nomem(e);
fail:
	it_value_free(v);
	return false;
}

/* Decodes one AttributeValue; depth counts the enclosing M/L levels. */
static bool
decode(const json_t *j, int depth, it_value **out, it_error *e)
{
	const char *k, *found = NULL;
	json_t *m, *val = NULL;
	it_type t = IT_S;
	it_value *v = NULL;
	int ntypes = 0;

	*out = NULL;
	if (!want(j, JSON_OBJECT, "AttributeValue", e))
		return false;
	/* Unknown members are ignored and null members are absent, as in
	 * DynamoDB's JSON reader. */
	json_object_foreach((json_t *)j, k, m) {
		it_type kt;

		if (json_is_null(m) || !it_type_from_name(k, &kt))
			continue;
		if (ntypes++ == 0) {
			found = k;
			t = kt;
			val = m;
		}
	}
	if (ntypes == 0) {
		it_error_set(e, IT_ERR_VALIDATION, "Supplied AttributeValue is "
		    "empty, must contain exactly one of the supported datatypes");
		return false;
	}
	if (ntypes > 1) {
		it_error_set(e, IT_ERR_VALIDATION, "Supplied AttributeValue has "
		    "more than one datatypes set, must contain exactly one of "
		    "the supported datatypes");
		return false;
	}
	(void)found;
	switch (t) {
	case IT_S:
	case IT_N:
	case IT_B:
		v = calloc(1, sizeof(*v));
		if (v == NULL)
			goto nomem;
		v->type = t;
		if (!decode_scalar(t, val, &v->u.s, e))
			goto fail;
		break;
	case IT_BOOL:
		if (!want(val, JSON_TRUE, "Boolean", e))
			return false;
		v = it_value_new_bool(json_is_true(val));
		if (v == NULL)
			goto nomem;
		break;
	case IT_NULL:
		if (!want(val, JSON_TRUE, "Boolean", e))
			return false;
		if (!json_is_true(val)) {
			it_error_set(e, IT_ERR_VALIDATION, PFX "Null attribute "
			    "value types must have the value of true");
			return false;
		}
		v = it_value_new_null();
		if (v == NULL)
			goto nomem;
		break;
	case IT_M:
	case IT_L:
		if (depth >= IT_MAX_DEPTH) {
			it_error_set(e, IT_ERR_VALIDATION, PFX "Nesting Levels "
			    "have exceeded supported limits");
			return false;
		}
		if (t == IT_M) {
			if (!want(val, JSON_OBJECT, "Map", e) ||
			    !decode_map(val, depth + 1, &v, e))
				return false;
		} else {
			if (!want(val, JSON_ARRAY, "List", e) ||
			    !decode_list(val, depth + 1, &v, e))
				return false;
		}
		break;
	case IT_SS:
	case IT_NS:
	case IT_BS:
		if (!decode_set(t, val, &v, e))
			return false;
		break;
	}
	*out = v;
	return true;
nomem:
	it_error_nomem(e);
fail:
	it_value_free(v);
	return false;
}

bool
it_value_from_json(const json_t *j, it_value **out, it_error *e)
{
	return decode(j, 0, out, e);
}

bool
it_item_from_json(const json_t *j, it_value **out, it_error *e)
{
	*out = NULL;
	if (!want(j, JSON_OBJECT, "Map", e))
		return false;
	if (!decode_map(j, 0, out, e))
		return false;
	if (!it_item_check_size(*out, e)) {
		it_value_free(*out);
		*out = NULL;
		return false;
	}
	return true;
}

it_value *
it_item_from_text(const char *text)
{
	json_t *j = text != NULL ? json_loads(text, 0, NULL) : NULL;
	it_value *v = NULL;
	it_error e = {0};
	if (j != NULL && !it_item_from_json(j, &v, &e))
		v = NULL;
	it_error_clear(&e);
	json_decref(j);
	return v;
}

/* ---- encoding ---- */

static json_t *
b64_encode(const it_str *s)
{
	size_t n = sodium_base64_encoded_len(s->len,
	    sodium_base64_VARIANT_ORIGINAL);
	char *buf = malloc(n);
	json_t *j;

	if (buf == NULL)
		return NULL;
	sodium_bin2base64(buf, n, (const unsigned char *)s->ptr, s->len,
	    sodium_base64_VARIANT_ORIGINAL);
	j = json_string(buf);
	free(buf);
	return j;
}

static json_t *
str_json(it_type t, const it_str *s)
{
	if (t == IT_B || t == IT_BS)
		return b64_encode(s);
	return json_stringn(s->ptr, s->len);
}

json_t *
it_value_to_json(const it_value *v)
{
	json_t *inner = NULL, *c;
	size_t i;

	switch (v->type) {
	case IT_S:
	case IT_N:
	case IT_B:
		inner = str_json(v->type, &v->u.s);
		break;
	case IT_BOOL:
	case IT_NULL:
		inner = json_boolean(v->u.b);
		break;
	case IT_M:
		inner = it_item_to_json(v);
		break;
	case IT_L:
		inner = json_array();
		for (i = 0; inner != NULL && i < v->u.l.n; i++) {
			c = it_value_to_json(v->u.l.v[i]);
			if (c == NULL || json_array_append_new(inner, c) != 0) {
				json_decref(inner);
				inner = NULL;
			}
		}
		break;
	case IT_SS:
	case IT_NS:
	case IT_BS:
		inner = json_array();
		for (i = 0; inner != NULL && i < v->u.set.n; i++) {
			c = str_json(v->type, &v->u.set.v[i]);
			if (c == NULL || json_array_append_new(inner, c) != 0) {
				json_decref(inner);
				inner = NULL;
			}
		}
		break;
	}
	if (inner == NULL)
		return NULL;
	c = json_object();
	if (c == NULL || json_object_set_new(c, it_type_name(v->type),
	    inner) != 0) {
		json_decref(c);
		return NULL;
	}
	return c;
}

json_t *
it_item_to_json(const it_value *item)
{
	json_t *o = json_object(), *c;

	if (o == NULL)
		return NULL;
	for (size_t i = 0; i < item->u.m.n; i++) {
		c = it_value_to_json(item->u.m.v[i].value);
		if (c == NULL || json_object_setn_new(o, item->u.m.v[i].name.ptr,
		    item->u.m.v[i].name.len, c) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}
