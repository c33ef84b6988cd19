/* legacy.c — DynamoDB's pre-2014 (non-expression) request parameters
 * rewritten as the expressions they stand for, so one executor serves both:
 * KeyConditions, QueryFilter, ScanFilter and Expected become condition
 * expressions, AttributeUpdates an update expression, AttributesToGet a
 * projection; ConditionalOperator joins the conditions. Attribute names and
 * values travel as generated placeholders (#l<n>, :l<n>), never as text of
 * an expression. A request may not mix the two styles (DynamoDB's rule). */
#include "items/items_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* The rewritten request under construction. */
typedef struct lg_ctx {
	json_t *names;	/* ExpressionAttributeNames being built */
	json_t *values; /* ExpressionAttributeValues being built */
	int next;	/* placeholder counter */
	char *buf;	/* the expression being built */
	size_t len, cap;
	bool oom;
} lg_ctx;

static void put(lg_ctx *c, const char *s)
{
	size_t n = strlen(s);
	if (c->oom)
		return;
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 128;
		while (cap < c->len + n + 1)
			cap *= 2;
		char *nb = realloc(c->buf, cap);
		if (nb == NULL) {
			c->oom = true;
			return;
		}
		c->buf = nb;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, s, n + 1);
	c->len += n;
}

/* Appends a placeholder for attribute name `name`. */
static void put_name(lg_ctx *c, const char *name)
{
	char ph[24];
	snprintf(ph, sizeof(ph), "#l%d", c->next++);
	if (json_object_set_new(c->names, ph, json_string(name)) != 0)
		c->oom = true;
	put(c, ph);
}

/* Appends a placeholder for value v (borrowed). */
static void put_value(lg_ctx *c, json_t *v)
{
	char ph[24];
	snprintf(ph, sizeof(ph), ":l%d", c->next++);
	if (json_object_set(c->values, ph, v) != 0)
		c->oom = true;
	put(c, ph);
}

/* Takes the expression built so far. */
static char *take(lg_ctx *c)
{
	char *s = c->buf;
	c->buf = NULL;
	c->len = c->cap = 0;
	return s;
}

static const struct {
	const char *op;
	int nargs; /* -1: one or more (IN) */
	const char *fmt;
	bool key; /* allowed in KeyConditions */
} ops[] = {
	{"EQ", 1, "= ", true},
	{"NE", 1, "<> ", false},
	{"LE", 1, "<= ", true},
	{"LT", 1, "< ", true},
	{"GE", 1, ">= ", true},
	{"GT", 1, "> ", true},
	{"NOT_NULL", 0, "attribute_exists", false},
	{"NULL", 0, "attribute_not_exists", false},
	{"CONTAINS", 1, "contains", false},
	{"NOT_CONTAINS", 1, "NOT contains", false},
	{"BEGINS_WITH", 1, "begins_with", true},
	{"IN", -1, "IN", false},
	{"BETWEEN", 2, "BETWEEN", true},
};

/* Appends one condition on attribute `name`: operator `op` over `args` (a
 * JSON array of AttributeValues). */
static bool put_condition(lg_ctx *c, const char *name, const char *op, json_t *args, bool key, it_error *e)
{
	size_t i;
	for (i = 0; i < OL_ARRAY_LEN(ops); i++)
		if (strcmp(ops[i].op, op) == 0)
			break;
	if (i == OL_ARRAY_LEN(ops) || (key && !ops[i].key)) {
		it_error_set(e, IT_ERR_VALIDATION, key ? "Unsupported operator on KeyConditions: %s" :
			     "1 validation error detected: Value '%s' at 'comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: [IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]",
			     op);
		return false;
	}
	size_t n = json_array_size(args);
	if (args != NULL && !json_is_array(args)) {
		it_error_set(e, IT_ERR_SERIALIZATION, "Start of list found where not expected");
		return false;
	}
	if ((ops[i].nargs >= 0 && n != (size_t)ops[i].nargs) || (ops[i].nargs < 0 && n == 0)) {
		it_error_set(e, IT_ERR_VALIDATION,
			     "One or more parameter values were invalid: Invalid number of argument(s) for the %s ComparisonOperator", op);
		return false;
	}
	const char *f = ops[i].fmt;
	if (ops[i].nargs == 0 || strstr(f, "contains") != NULL || strcmp(f, "begins_with") == 0) {
		put(c, f);
		put(c, "(");
		put_name(c, name);
		if (n == 1) {
			put(c, ", ");
			put_value(c, json_array_get(args, 0));
		}
		put(c, ")");
	} else if (strcmp(f, "IN") == 0) {
		put_name(c, name);
		put(c, " IN (");
		for (size_t k = 0; k < n; k++) {
			put(c, k ? ", " : "");
			put_value(c, json_array_get(args, k));
		}
		put(c, ")");
	} else if (strcmp(f, "BETWEEN") == 0) {
		put_name(c, name);
		put(c, " BETWEEN ");
		put_value(c, json_array_get(args, 0));
		put(c, " AND ");
		put_value(c, json_array_get(args, 1));
	} else {
		put_name(c, name);
		put(c, " ");
		put(c, f);
		put_value(c, json_array_get(args, 0));
	}
	return true;
}

/* Opens the next parenthesised clause of a list joined by `join`. */
static void open_clause(lg_ctx *c, bool *first, const char *join)
{
	if (!*first)
		put(c, join);
	put(c, "(");
	*first = false;
}

/* KeyConditions / QueryFilter / ScanFilter: {attr: {ComparisonOperator,
 * AttributeValueList}} joined by `join`. */
static char *conditions(lg_ctx *c, json_t *map, const char *join, bool key, it_error *e)
{
	if (!json_is_object(map) || json_object_size(map) == 0) {
		it_error_set(e, IT_ERR_VALIDATION, "One or more parameter values were invalid: the condition map must not be empty");
		return NULL;
	}
	const char *name;
	json_t *cond;
	bool first = true;
	json_object_foreach(map, name, cond)
	{
		const char *op = json_string_value(json_object_get(cond, "ComparisonOperator"));
		if (op == NULL) {
			it_error_set(e, IT_ERR_VALIDATION,
				     "1 validation error detected: Value null at 'comparisonOperator' failed to satisfy constraint: Member must not be null");
			return NULL;
		}
		open_clause(c, &first, join);
		if (!put_condition(c, name, op, json_object_get(cond, "AttributeValueList"), key, e))
			return NULL;
		put(c, ")");
	}
	return take(c);
}

/* Expected: {attr: {Value, Exists, ComparisonOperator, AttributeValueList}}. */
static char *expected(lg_ctx *c, json_t *map, const char *join, it_error *e)
{
	if (!json_is_object(map)) {
		it_error_set(e, IT_ERR_SERIALIZATION, "Start of structure or map found where not expected.");
		return NULL;
	}
	const char *name;
	json_t *x;
	bool first = true;
	json_object_foreach(map, name, x)
	{
		open_clause(c, &first, join);
		json_t *value = json_object_get(x, "Value"), *exists = json_object_get(x, "Exists");
		const char *op = json_string_value(json_object_get(x, "ComparisonOperator"));
		json_t *list = json_object_get(x, "AttributeValueList");
		if (op != NULL) {
			if (value != NULL && list != NULL) {
				it_error_set(e, IT_ERR_VALIDATION,
					     "One or more parameter values were invalid: Value and AttributeValueList cannot be used together for Attribute: %s",
					     name);
				return NULL;
			}
			if (exists != NULL) {
				it_error_set(e, IT_ERR_VALIDATION,
					     "One or more parameter values were invalid: Exists and ComparisonOperator cannot be used together for Attribute: %s",
					     name);
				return NULL;
			}
			json_t *args = list;
			json_t *one = value != NULL ? json_pack("[O]", value) : NULL;
			bool ok = put_condition(c, name, op, one != NULL ? one : args, false, e);
			json_decref(one);
			if (!ok)
				return NULL;
		} else if (json_is_false(exists)) {
			if (value != NULL) {
				it_error_set(e, IT_ERR_VALIDATION,
					     "One or more parameter values were invalid: Value cannot be used when Exists is false for Attribute: %s",
					     name);
				return NULL;
			}
			put(c, "attribute_not_exists(");
			put_name(c, name);
			put(c, ")");
		} else {
			if (value == NULL) {
				it_error_set(e, IT_ERR_VALIDATION,
					     "One or more parameter values were invalid: Value must be provided when Exists is %s for Attribute: %s",
					     exists != NULL ? "true" : "null", name);
				return NULL;
			}
			put_name(c, name);
			put(c, " = ");
			put_value(c, value);
		}
		put(c, ")");
	}
	if (first) {
		it_error_set(e, IT_ERR_VALIDATION, "One or more parameter values were invalid: Expected must not be empty");
		return NULL;
	}
	return take(c);
}

/* AttributeUpdates: {attr: {Action: PUT|DELETE|ADD, Value}}. */
static char *updates(lg_ctx *c, json_t *map, it_error *e)
{
	static const char *const sections[] = {"SET", "REMOVE", "ADD", "DELETE"};
	if (!json_is_object(map)) {
		it_error_set(e, IT_ERR_SERIALIZATION, "Start of structure or map found where not expected.");
		return NULL;
	}
	bool any = false;
	for (size_t s = 0; s < OL_ARRAY_LEN(sections); s++) {
		bool first = true;
		const char *name;
		json_t *u;
		json_object_foreach(map, name, u)
		{
			const char *action = json_string_value(json_object_get(u, "Action"));
			json_t *value = json_object_get(u, "Value");
			if (action == NULL)
				action = "PUT";
			size_t want;
			if (strcmp(action, "PUT") == 0)
				want = 0;
			else if (strcmp(action, "DELETE") == 0)
				want = value != NULL ? 3 : 1;
			else if (strcmp(action, "ADD") == 0)
				want = 2;
			else {
				it_error_set(e, IT_ERR_VALIDATION,
					     "1 validation error detected: Value '%s' at 'attributeUpdates.%s.member.action' failed to satisfy constraint: Member must satisfy enum value set: [ADD, PUT, DELETE]",
					     action, name);
				return NULL;
			}
			if (want != s)
				continue;
			if (value == NULL && want != 1) {
				it_error_set(e, IT_ERR_VALIDATION,
					     "One or more parameter values were invalid: Only DELETE action is allowed when no attribute value is specified");
				return NULL;
			}
			put(c, first ? (any ? " " : "") : ", ");
			if (first) {
				put(c, sections[s]);
				put(c, " ");
			}
			first = false;
			any = true;
			put_name(c, name);
			if (want == 0) {
				put(c, " = ");
				put_value(c, value);
			} else if (want != 1) {
				put(c, " ");
				put_value(c, value);
			}
		}
	}
	return any ? take(c) : NULL;
}

/* AttributesToGet: [names] as a projection. */
static char *projection(lg_ctx *c, json_t *list, it_error *e)
{
	if (!json_is_array(list) || json_array_size(list) == 0) {
		it_error_set(e, IT_ERR_VALIDATION,
			     "1 validation error detected: Value '[]' at 'attributesToGet' failed to satisfy constraint: Member must have length greater than or equal to 1");
		return NULL;
	}
	size_t i;
	json_t *n;
	json_array_foreach(list, i, n)
	{
		for (size_t j = 0; j < i; j++)
			if (json_equal(json_array_get(list, j), n)) {
				it_error_set(e, IT_ERR_VALIDATION, "One or more parameter values were invalid: Duplicate value in attribute name: %s",
					     json_string_value(n) ? json_string_value(n) : "");
				return NULL;
			}
		if (!json_is_string(n) || json_string_length(n) == 0) {
			it_error_set(e, IT_ERR_VALIDATION, "One or more parameter values were invalid: attribute names must be non-empty strings");
			return NULL;
		}
		put(c, i ? ", " : "");
		put_name(c, json_string_value(n));
	}
	return take(c);
}

static const char *const legacy_names[] = {"AttributesToGet", "AttributeUpdates", "ConditionalOperator", "Expected",
					   "KeyConditions",   "QueryFilter",	  "ScanFilter"};
static const char *const expr_names[] = {"ConditionExpression",	    "ExpressionAttributeNames", "ExpressionAttributeValues",
					 "FilterExpression",	    "KeyConditionExpression",	"ProjectionExpression",
					 "UpdateExpression"};

/* "{A, B}" of the members of req among names. */
static void list_present(char *out, size_t len, const json_t *req, const char *const *names, size_t n)
{
	size_t o = 0;
	o += (size_t)snprintf(out, len, "{");
	for (size_t i = 0; i < n && o < len; i++)
		if (json_object_get(req, names[i]) != NULL)
			o += (size_t)snprintf(out + o, len - o, "%s%s", o > 1 ? ", " : "", names[i]);
	if (o < len)
		snprintf(out + o, len - o, "}");
}

/* Rewrites one request object (a whole request, or one table's entry of
 * BatchGetItem's RequestItems). */
static bool rewrite(json_t *req, it_error *e)
{
	bool legacy = false, expr = false;
	for (size_t i = 0; i < OL_ARRAY_LEN(legacy_names); i++)
		legacy = legacy || json_object_get(req, legacy_names[i]) != NULL;
	if (!legacy)
		return true;
	for (size_t i = 0; i < OL_ARRAY_LEN(expr_names); i++)
		expr = expr || json_object_get(req, expr_names[i]) != NULL;
	if (expr) {
		char a[200], b[240];
		list_present(a, sizeof(a), req, legacy_names, OL_ARRAY_LEN(legacy_names));
		list_present(b, sizeof(b), req, expr_names, OL_ARRAY_LEN(expr_names));
		it_error_set(e, IT_ERR_VALIDATION,
			     "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: %s Expression parameters: %s",
			     a, b);
		return false;
	}
	const char *cop = json_string_value(json_object_get(req, "ConditionalOperator"));
	json_t *copj = json_object_get(req, "ConditionalOperator");
	if (copj != NULL && (cop == NULL || (strcmp(cop, "AND") != 0 && strcmp(cop, "OR") != 0))) {
		it_error_set(e, IT_ERR_VALIDATION,
			     "1 validation error detected: Value at 'conditionalOperator' failed to satisfy constraint: Member must satisfy enum value set: [OR, AND]");
		return false;
	}
	const char *join = cop != NULL && strcmp(cop, "OR") == 0 ? " OR " : " AND ";
	lg_ctx c = {.names = json_object(), .values = json_object()};
	static const struct {
		const char *from, *to;
	} conds[] = {
		{"KeyConditions", "KeyConditionExpression"},
		{"QueryFilter", "FilterExpression"},
		{"ScanFilter", "FilterExpression"},
		{"Expected", "ConditionExpression"},
		{"AttributeUpdates", "UpdateExpression"},
		{"AttributesToGet", "ProjectionExpression"},
	};
	bool ok = c.names != NULL && c.values != NULL;
	for (size_t i = 0; ok && i < OL_ARRAY_LEN(conds); i++) {
		json_t *v = json_object_get(req, conds[i].from);
		if (v == NULL)
			continue;
		char *text = NULL;
		if (i == 0)
			text = conditions(&c, v, " AND ", true, e);
		else if (i <= 2)
			text = conditions(&c, v, join, false, e);
		else if (i == 3)
			text = expected(&c, v, join, e);
		else if (i == 4)
			text = updates(&c, v, e);
		else
			text = projection(&c, v, e);
		if (c.oom) {
			free(text);
			it_error_nomem(e);
			ok = false;
			break;
		}
		if (text == NULL && e->code != IT_ERR_NONE) {
			ok = false;
			break;
		}
		if (text != NULL && json_object_set_new(req, conds[i].to, json_string(text)) != 0)
			ok = false;
		free(text);
	}
	if (ok) {
		for (size_t i = 0; i < OL_ARRAY_LEN(legacy_names); i++)
			json_object_del(req, legacy_names[i]);
		if (json_object_size(c.names) > 0)
			json_object_set(req, "ExpressionAttributeNames", c.names);
		if (json_object_size(c.values) > 0)
			json_object_set(req, "ExpressionAttributeValues", c.values);
	}
	free(c.buf);
	json_decref(c.names);
	json_decref(c.values);
	return ok;
}

bool it_legacy_present(const json_t *req)
{
	for (size_t i = 0; i < OL_ARRAY_LEN(legacy_names); i++)
		if (json_object_get(req, legacy_names[i]) != NULL)
			return true;
	const char *table;
	json_t *ri;
	json_object_foreach((json_t *)json_object_get(req, "RequestItems"), table, ri)
	{
		if (json_is_object(ri) && json_object_get(ri, "AttributesToGet") != NULL)
			return true;
	}
	return false;
}

bool it_legacy_translate(json_t *req, it_error *e)
{
	if (!rewrite(req, e))
		return false;
	const char *table;
	json_t *ri;
	json_object_foreach(json_object_get(req, "RequestItems"), table, ri)
	{
		if (json_is_object(ri) && !rewrite(ri, e))
			return false;
	}
	return true;
}
