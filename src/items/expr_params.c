/* ExpressionAttributeNames / ExpressionAttributeValues: validation of the
 * maps themselves, lookup during resolution, and the unused-placeholder
 * check DynamoDB applies once every expression of a request is parsed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "items/expr.h"

static bool
key_ok(const char *k, size_t len, char lead)
{
	if (len < 2 || k[0] != lead)
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = k[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

static bool
init_names(it_params *p, const json_t *names, it_error *e)
{
	const char *k;
	size_t klen;
	json_t *v;

	if (!json_is_object(names)) {
		it_error_set(e, IT_ERR_SERIALIZATION, "Unexpected value type in "
		    "payload: ExpressionAttributeNames must be a map");
		return false;
	}
	if (json_object_size(names) == 0) {
		it_error_set(e, IT_ERR_VALIDATION,
		    "ExpressionAttributeNames must not be empty");
		return false;
	}
	p->names = calloc(json_object_size(names), sizeof(it_param));
	if (p->names == NULL)
		goto nomem;
	json_object_keylen_foreach((json_t *)names, k, klen, v) {
		it_param *n = &p->names[p->nnames];

		if (!key_ok(k, klen, '#')) {
			it_error_set(e, IT_ERR_VALIDATION, "ExpressionAttributeNames "
			    "contains invalid key: Syntax error; key: \"%s\"", k);
			return false;
		}
		if (!json_is_string(v)) {
			it_error_set(e, IT_ERR_SERIALIZATION, "Unexpected value "
			    "type in payload: ExpressionAttributeNames values "
			    "must be strings");
			return false;
		}
		if (json_string_length(v) == 0) {
			it_error_set(e, IT_ERR_VALIDATION, "ExpressionAttributeNames "
			    "contains invalid value: Empty attribute name for key "
			    "%s", k);
			return false;
		}
		n->key = strndup(k, klen);
		n->name = malloc(json_string_length(v) + 1);
		if (n->key == NULL || n->name == NULL) {
			free(n->key);
			free(n->name);
			goto nomem;
		}
		memcpy(n->name, json_string_value(v), json_string_length(v) + 1);
		n->name_len = json_string_length(v);
		p->nnames++;
	}
	return true;
nomem:
	it_error_nomem(e);
	return false;
}

static bool
init_values(it_params *p, const json_t *values, it_error *e)
{
	const char *k;
	size_t klen;
	json_t *v;

	if (!json_is_object(values)) {
		it_error_set(e, IT_ERR_SERIALIZATION, "Unexpected value type in "
		    "payload: ExpressionAttributeValues must be a map");
		return false;
	}
	if (json_object_size(values) == 0) {
		it_error_set(e, IT_ERR_VALIDATION,
		    "ExpressionAttributeValues must not be empty");
		return false;
	}
	p->values = calloc(json_object_size(values), sizeof(it_param));
	if (p->values == NULL)
		goto nomem;
	json_object_keylen_foreach((json_t *)values, k, klen, v) {
		it_param *n = &p->values[p->nvalues];
		it_error ve = { 0 };

		if (!key_ok(k, klen, ':')) {
			it_error_set(e, IT_ERR_VALIDATION,
			    "ExpressionAttributeValues contains invalid key: "
			    "Syntax error; key: \"%s\"", k);
			return false;
		}
		if (!it_value_from_json(v, &n->value, &ve)) {
			if (ve.code == IT_ERR_VALIDATION)
				it_error_set(e, ve.code, "ExpressionAttributeValues "
				    "contains invalid value: %s for key %s",
				    ve.msg, k);
			else
				it_error_move(e, &ve);
			it_error_clear(&ve);
			return false;
		}
		n->key = strndup(k, klen);
		if (n->key == NULL) {
			it_value_free(n->value);
			goto nomem;
		}
		p->nvalues++;
	}
	return true;
nomem:
	it_error_nomem(e);
	return false;
}

bool
it_params_init(it_params *p, const json_t *names, const json_t *values,
    it_error *e)
{
	memset(p, 0, sizeof(*p));
	if (names != NULL && !json_is_null(names) && !init_names(p, names, e))
		goto fail;
	if (values != NULL && !json_is_null(values) &&
	    !init_values(p, values, e))
		goto fail;
	return true;
fail:
	it_params_free(p);
	return false;
}

void
it_params_free(it_params *p)
{
	size_t i;

	for (i = 0; i < p->nnames; i++) {
		free(p->names[i].key);
		free(p->names[i].name);
	}
	for (i = 0; i < p->nvalues; i++) {
		free(p->values[i].key);
		it_value_free(p->values[i].value);
	}
	free(p->names);
	free(p->values);
	memset(p, 0, sizeof(*p));
}

/* Formats "{#a, #b}" from the unused entries; NULL when all were used. */
static char *
unused_list(const it_param *v, size_t n)
{
	char *buf = NULL;
	size_t sz = 0;
	bool any = false;
	FILE *f;

	for (size_t i = 0; i < n; i++)
		any |= !v[i].used;
	if (!any)
		return NULL;
	f = open_memstream(&buf, &sz);
	if (f == NULL)
		return NULL;
	fputc('{', f);
	any = false;
	for (size_t i = 0; i < n; i++) {
		if (v[i].used)
			continue;
		fprintf(f, "%s%s", any ? ", " : "", v[i].key);
		any = true;
	}
	fputc('}', f);
	fclose(f);
	return buf;
}

bool
it_params_check_unused(const it_params *p, it_error *e)
{
	char *s = unused_list(p->names, p->nnames);

	if (s != NULL) {
		it_error_set(e, IT_ERR_VALIDATION, "Value provided in "
		    "ExpressionAttributeNames unused in expressions: keys: %s", s);
		free(s);
		return false;
	}
	s = unused_list(p->values, p->nvalues);
	if (s != NULL) {
		it_error_set(e, IT_ERR_VALIDATION, "Value provided in "
		    "ExpressionAttributeValues unused in expressions: keys: %s",
		    s);
		free(s);
		return false;
	}
	return true;
}
