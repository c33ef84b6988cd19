/* Unit tests of the expression parser (src/items/expr*.c): valid forms of
 * every expression kind, and invalid ones each with DynamoDB's message. */
#include <stdbool.h>
#include <stdlib.h>

#include "items/expr.h"
#include "items_test.h"

#define V1 "{\":v\":{\"N\":\"1\"}}"
#define VS "{\":v\":{\"S\":\"x\"}}"
#define NS "{\"#s\":\"status\"}"

typedef struct tcase {
	char kind;		/* c k u p */
	const char *expr;
	const char *names, *values;
	const char *msg;	/* NULL: valid */
} tcase;

static const tcase cases[] = {
	/* conditions: valid */
	{ 'c', "a = :v", NULL, V1, NULL },
	{ 'c', "#s = :v", NS, V1, NULL },
	{ 'c', "a.b[2].c <> :v", NULL, V1, NULL },
	{ 'c', "a < :v AND b <= :v OR c > :v AND NOT d >= :v", NULL, V1, NULL },
	{ 'c', "a BETWEEN :v AND :v", NULL, V1, NULL },
	{ 'c', "a IN (:v, b, c.d)", NULL, V1, NULL },
	{ 'c', "attribute_exists(a) AND attribute_not_exists(#s)", NS, NULL,
	  NULL },
	{ 'c', "attribute_type(a, :v)", NULL, "{\":v\":{\"S\":\"SS\"}}", NULL },
	{ 'c', "begins_with(a, :v) and contains(b, :v)", NULL, VS, NULL },
	{ 'c', "size(a) > :v", NULL, V1, NULL },
	{ 'c', "(a = :v)", NULL, V1, NULL },
	{ 'c', "(a) = :v", NULL, V1, NULL },
	{ 'c', "NOT NOT a = :v", NULL, V1, NULL },
	{ 'c', "(a = :v OR b = :v) AND (c = :v)", NULL, V1, NULL },
	{ 'c', "a=:v", NULL, V1, NULL },
	{ 'c', "\ta\n=\r:v ", NULL, V1, NULL },
	{ 'c', "contains(a, size(b))", NULL, NULL, NULL },
	{ 'c', "a = b", NULL, NULL, NULL },
	/* conditions: invalid */
	{ 'c', "", NULL, NULL, "Invalid ConditionExpression: The expression can "
	  "not be empty;" },
	{ 'c', "status = :v", NULL, V1, "Invalid ConditionExpression: Attribute "
	  "name is a reserved keyword; reserved keyword: status" },
	{ 'c', "a.Size = :v", NULL, V1, "Invalid ConditionExpression: Attribute "
	  "name is a reserved keyword; reserved keyword: Size" },
	{ 'c', "#x = :v", NS, V1, "Invalid ConditionExpression: An expression "
	  "attribute name used in the document path is not defined; attribute "
	  "name: #x" },
	{ 'c', "a = :w", NULL, V1, "Invalid ConditionExpression: An expression "
	  "attribute value used in expression is not defined; attribute value: "
	  ":w" },
	{ 'c', "a = :v", NULL, "{\":v\":{\"N\":\"1\"},\":u\":{\"N\":\"2\"}}",
	  "Value provided in ExpressionAttributeValues unused in expressions: "
	  "keys: {:u}" },
	{ 'c', "a = :v", "{\"#a\":\"a\",\"#b\":\"b\"}", V1, "Value provided in "
	  "ExpressionAttributeNames unused in expressions: keys: {#a, #b}" },
	{ 'c', "a = = :v", NULL, V1, "Invalid ConditionExpression: Syntax error; "
	  "token: \"=\", near: \"= = :v\"" },
	{ 'c', "a =", NULL, NULL, "Invalid ConditionExpression: Syntax error; "
	  "token: \"<EOF>\", near: \"=\"" },
	{ 'c', "a", NULL, NULL, "Invalid ConditionExpression: Syntax error; "
	  "token: \"<EOF>\", near: \"a\"" },
	{ 'c', "a != :v", NULL, V1, "Invalid ConditionExpression: Syntax error; "
	  "token: \"!\", near: \"a !=\"" },
	{ 'c', "a = :v AND", NULL, V1, "Invalid ConditionExpression: Syntax "
	  "error; token: \"<EOF>\", near: \"AND\"" },
	{ 'c', "a = :v b", NULL, V1, "Invalid ConditionExpression: Syntax error; "
	  "token: \"b\", near: \":v b\"" },
	{ 'c', "_a = :v", NULL, V1, "Invalid ConditionExpression: Syntax error; "
	  "token: \"_\", near: \"_a\"" },
	{ 'c', "a[x] = :v", NULL, V1, "Invalid ConditionExpression: Syntax "
	  "error; token: \"x\", near: \"[x]\"" },
	{ 'c', "a + :v = :v", NULL, V1, "Invalid ConditionExpression: Syntax "
	  "error; token: \"+\", near: \"a + :v\"" },
	{ 'c', "((a = :v))", NULL, V1, "Invalid ConditionExpression: The "
	  "expression has redundant parentheses;" },
	{ 'c', "size(a)", NULL, NULL, "Invalid ConditionExpression: The "
	  "function is not allowed to be used this way in an expression; "
	  "function: size" },
	{ 'c', "attribute_exists(a) = :v", NULL, V1, "Invalid "
	  "ConditionExpression: The function is not allowed to be used this way "
	  "in an expression; function: attribute_exists" },
	{ 'c', "foo(a)", NULL, NULL, "Invalid ConditionExpression: Invalid "
	  "function name; function: foo" },
	{ 'c', "SIZE(a) = :v", NULL, V1, "Invalid ConditionExpression: Invalid "
	  "function name; function: SIZE" },
	{ 'c', "if_not_exists(a, :v) = :v", NULL, V1, "Invalid "
	  "ConditionExpression: Invalid function name; function: "
	  "if_not_exists" },
	{ 'c', "attribute_exists(a, b)", NULL, NULL, "Invalid "
	  "ConditionExpression: Incorrect number of operands for operator or "
	  "function; operator or function: attribute_exists, number of "
	  "operands: 2" },
	{ 'c', "attribute_exists(:v)", NULL, V1, "Invalid ConditionExpression: "
	  "Operator or function requires a document path; operator or "
	  "function: attribute_exists" },
	{ 'c', "begins_with(a, :v)", NULL, V1, "Invalid ConditionExpression: "
	  "Incorrect operand type for operator or function; operator or "
	  "function: begins_with, operand type: N" },
	{ 'c', "size(:v) = :v", NULL, V1, "Invalid ConditionExpression: "
	  "Incorrect operand type for operator or function; operator or "
	  "function: size, operand type: N" },
	{ 'c', "attribute_type(a, :v)", NULL, V1, "Invalid ConditionExpression: "
	  "Incorrect operand type for operator or function; operator or "
	  "function: attribute_type, operand type: N" },
	{ 'c', "attribute_type(a, :v)", NULL, VS, "Invalid ConditionExpression: "
	  "Invalid attribute type name found; type: x, valid types: "
	  "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}" },
	{ 'c', "a = a", NULL, NULL, "Invalid ConditionExpression: The first "
	  "operand must be distinct from the remaining operands for this "
	  "operator or function; operator: =, first operand: [a]" },
	{ 'c', "begins_with(#s, status)", NS, NULL, "Invalid "
	  "ConditionExpression: Attribute name is a reserved keyword; reserved "
	  "keyword: status" },
	{ 'c', "a BETWEEN :a AND :b", NULL,
	  "{\":a\":{\"N\":\"5\"},\":b\":{\"N\":\"1\"}}", "Invalid "
	  "ConditionExpression: The BETWEEN operator requires upper bound to be "
	  "greater than or equal to lower bound; lower bound operand: "
	  "AttributeValue: {N:5}, upper bound operand: AttributeValue: {N:1}" },
	{ 'c', "a BETWEEN :a AND :b", NULL,
	  "{\":a\":{\"N\":\"5\"},\":b\":{\"S\":\"6\"}}", "Invalid "
	  "ConditionExpression: The BETWEEN operator requires same data type "
	  "for lower and upper bounds; lower bound operand: AttributeValue: "
	  "{N:5}, upper bound operand: AttributeValue: {S:6}" },
	{ 'c', "foo(a) AND status = :v", NULL, V1, "Invalid "
	  "ConditionExpression: Invalid function name; function: foo" },
	/* key conditions */
	{ 'k', "pk = :v", NULL, VS, NULL },
	{ 'k', "pk = :v AND sk BETWEEN :v AND :v", NULL, VS, NULL },
	{ 'k', "pk = :v AND begins_with(sk, :v)", NULL, VS, NULL },
	{ 'k', "pk = :v AND sk <= :v", NULL, VS, NULL },
	{ 'k', "pk = :v OR sk = :v", NULL, VS, "Invalid KeyConditionExpression: "
	  "Invalid operator used in KeyConditionExpression: OR" },
	{ 'k', "pk = :v AND NOT sk = :v", NULL, VS, "Invalid "
	  "KeyConditionExpression: Invalid operator used in "
	  "KeyConditionExpression: NOT" },
	{ 'k', "pk IN (:v)", NULL, VS, "Invalid KeyConditionExpression: Invalid "
	  "operator used in KeyConditionExpression: IN" },
	{ 'k', "pk <> :v", NULL, VS, "Invalid KeyConditionExpression: Invalid "
	  "operator used in KeyConditionExpression: <>" },
	{ 'k', "pk = :v AND attribute_exists(sk)", NULL, VS, "Invalid "
	  "KeyConditionExpression: Invalid operator used in "
	  "KeyConditionExpression: attribute_exists" },
	{ 'k', "pk = :v AND pk = :v", NULL, VS, "Invalid KeyConditionExpression: "
	  "KeyConditionExpressions must only contain one condition per key" },
	{ 'k', "pk = :v AND sk = :v AND x = :v", NULL, VS, "Invalid "
	  "KeyConditionExpression: Conditions can be of length 1 or 2 only" },
	{ 'k', "pk.a = :v", NULL, VS, "Invalid KeyConditionExpression: "
	  "KeyConditionExpressions cannot have conditions on nested attributes" },
	{ 'k', "pk = sk", NULL, NULL, "Invalid KeyConditionExpression: Invalid "
	  "condition in KeyConditionExpression: Multiple attribute names used "
	  "in one condition" },
	/* updates: valid */
	{ 'u', "SET a = :v", NULL, V1, NULL },
	{ 'u', "set a = a + :v, b = b - :v", NULL, V1, NULL },
	{ 'u', "SET a = if_not_exists(a, :v) + :v", NULL, V1, NULL },
	{ 'u', "SET l = list_append(l, :l), m.n[3] = :v", NULL,
	  "{\":l\":{\"L\":[]},\":v\":{\"N\":\"1\"}}", NULL },
	{ 'u', "SET a = (b)", NULL, NULL, NULL },
	{ 'u', "SET a = (b + :v)", NULL, V1, NULL },
	{ 'u', "REMOVE a, b.c, d[1]", NULL, NULL, NULL },
	{ 'u', "ADD n :v, s :s DELETE t :s", NULL,
	  "{\":v\":{\"N\":\"1\"},\":s\":{\"SS\":[\"x\"]}}", NULL },
	{ 'u', "SET a = :v REMOVE b ADD c :v", NULL, V1, NULL },
	{ 'u', "REMOVE a SET b = :v", NULL, V1, NULL },
	{ 'u', "SET #s = :v", NS, V1, NULL },
	/* updates: invalid */
	{ 'u', "", NULL, NULL, "Invalid UpdateExpression: The expression can "
	  "not be empty;" },
	{ 'u', "INVALID SYNTAX HERE", NULL, NULL, "Invalid UpdateExpression: "
	  "Syntax error; token: \"INVALID\", near: \"INVALID SYNTAX\"" },
	{ 'u', "ADD hits : incr", NULL, NULL, "Invalid UpdateExpression: Syntax "
	  "error; token: \":\", near: \"hits : incr\"" },
	{ 'u', "SET a", NULL, NULL, "Invalid UpdateExpression: Syntax error; "
	  "token: \"<EOF>\", near: \"a\"" },
	{ 'u', "SET a = :v,", NULL, V1, "Invalid UpdateExpression: Syntax "
	  "error; token: \"<EOF>\", near: \",\"" },
	{ 'u', "SET a = b + c + d", NULL, NULL, "Invalid UpdateExpression: "
	  "Syntax error; token: \"+\", near: \"c + d\"" },
	{ 'u', "ADD a b", NULL, NULL, "Invalid UpdateExpression: Syntax error; "
	  "token: \"b\", near: \"a b\"" },
	{ 'u', "SET a = :v SET b = :v", NULL, V1, "Invalid UpdateExpression: "
	  "The \"SET\" section can only be used once in an update expression;" },
	{ 'u', "REMOVE a REMOVE b", NULL, NULL, "Invalid UpdateExpression: The "
	  "\"REMOVE\" section can only be used once in an update expression;" },
	{ 'u', "SET a = :v, a = :v", NULL, V1, "Invalid UpdateExpression: Two "
	  "document paths overlap with each other; must remove or rewrite one "
	  "of these paths; path one: [a], path two: [a]" },
	{ 'u', "SET a.b = :v REMOVE a", NULL, V1, "Invalid UpdateExpression: Two "
	  "document paths overlap with each other; must remove or rewrite one "
	  "of these paths; path one: [a, b], path two: [a]" },
	{ 'u', "SET a.b = :v, a[1] = :v", NULL, V1, "Invalid UpdateExpression: "
	  "Two document paths conflict with each other; must remove or rewrite "
	  "one of these paths; path one: [a, b], path two: [a, [1]]" },
	{ 'u', "SET a[1] = :v, a[2] = :v", NULL, V1, NULL },
	{ 'u', "SET status = :v", NULL, V1, "Invalid UpdateExpression: "
	  "Attribute name is a reserved keyword; reserved keyword: status" },
	{ 'u', "SET #x = :v", NS, V1, "Invalid UpdateExpression: An expression "
	  "attribute name used in the document path is not defined; attribute "
	  "name: #x" },
	{ 'u', "SET a = :w", NULL, V1, "Invalid UpdateExpression: An expression "
	  "attribute value used in expression is not defined; attribute value: "
	  ":w" },
	{ 'u', "ADD a :v", NULL, VS, "Invalid UpdateExpression: Incorrect "
	  "operand type for operator or function; operator: ADD, operand type: "
	  "STRING" },
	{ 'u', "DELETE a :v", NULL, V1, "Invalid UpdateExpression: Incorrect "
	  "operand type for operator or function; operator: DELETE, operand "
	  "type: NUMBER" },
	{ 'u', "ADD a :v", NULL, "{\":v\":{\"L\":[]}}", "Invalid "
	  "UpdateExpression: Incorrect operand type for operator or function; "
	  "operator: ADD, operand type: LIST" },
	{ 'u', "SET a = :v + :w", NULL,
	  "{\":v\":{\"N\":\"1\"},\":w\":{\"S\":\"x\"}}", "Invalid "
	  "UpdateExpression: Incorrect operand type for operator or function; "
	  "operator or function: +, operand type: S" },
	{ 'u', "SET a = list_append(a, :v)", NULL, V1, "Invalid "
	  "UpdateExpression: Incorrect operand type for operator or function; "
	  "operator or function: list_append, operand type: N" },
	{ 'u', "SET a = if_not_exists(:v, :v)", NULL, V1, "Invalid "
	  "UpdateExpression: Operator or function requires a document path; "
	  "operator or function: if_not_exists" },
	{ 'u', "SET a = if_not_exists(a)", NULL, NULL, "Invalid "
	  "UpdateExpression: Incorrect number of operands for operator or "
	  "function; operator or function: if_not_exists, number of operands: "
	  "1" },
	{ 'u', "SET a = size(b)", NULL, NULL, "Invalid UpdateExpression: "
	  "Invalid function name; function: size" },
	{ 'u', "SET a = :v", NULL, "{\":v\":{\"N\":\"1\"},\":w\":{\"N\":\"1\"}}",
	  "Value provided in ExpressionAttributeValues unused in expressions: "
	  "keys: {:w}" },
	/* projections */
	{ 'p', "a, b.c, d[1], #s", NS, NULL, NULL },
	{ 'p', "a, a.b", NULL, NULL, "Invalid ProjectionExpression: Two document "
	  "paths overlap with each other; must remove or rewrite one of these "
	  "paths; path one: [a], path two: [a, b]" },
	{ 'p', "a[0], a.b", NULL, NULL, "Invalid ProjectionExpression: Two "
	  "document paths conflict with each other; must remove or rewrite one "
	  "of these paths; path one: [a, [0]], path two: [a, b]" },
	{ 'p', "a, name", NULL, NULL, "Invalid ProjectionExpression: Attribute "
	  "name is a reserved keyword; reserved keyword: name" },
	{ 'p', "a,", NULL, NULL, "Invalid ProjectionExpression: Syntax error; "
	  "token: \"<EOF>\", near: \",\"" },
	{ 'p', "#n", NULL, NULL, "Invalid ProjectionExpression: An expression "
	  "attribute name used in the document path is not defined; attribute "
	  "name: #n" },
};

static json_t *
load(const char *s)
{
	return s != NULL ? json_loads(s, 0, NULL) : NULL;
}

/* Parses one case and returns the message (NULL when valid). */
static char *
run(char kind, const char *expr, const char *names, const char *values)
{
	json_t *jn = load(names), *jv = load(values);
	it_error e = { 0 };
	it_params p;
	void *r = NULL;
	bool ok;
	size_t len = strlen(expr);

	ok = it_params_init(&p, jn, jv, &e);
	if (ok) {
		switch (kind) {
		case 'u':
			ok = it_parse_update(expr, len, &p, (it_update **)&r, &e);
			it_update_free(r);
			break;
		case 'p':
			ok = it_parse_projection(expr, len, &p,
			    (it_projection **)&r, &e);
			it_projection_free(r);
			break;
		default:
			ok = it_parse_condition(kind == 'k' ? IT_EXPR_KEYCOND :
			    IT_EXPR_CONDITION, expr, len, &p, (it_node **)&r, &e);
			it_node_free(r);
			break;
		}
		if (ok)
			ok = it_params_check_unused(&p, &e);
		it_params_free(&p);
	}
	json_decref(jn);
	json_decref(jv);
	return ok ? NULL : e.msg;
}

static void
test_limits(void)
{
	char *s = malloc(5000), *m, *p;
	int i;

	/* 4096 bytes is the limit. */
	memset(s, ' ', 4096);
	memcpy(s, "a = b", 5);
	s[4096] = '\0';
	m = run('c', s, NULL, NULL);
	CHECK(m == NULL, "4096-byte expression accepted");
	free(m);
	s[4096] = ' ';
	s[4097] = '\0';
	m = run('c', s, NULL, NULL);
	CHECK_STR(m, "Invalid ConditionExpression: Expression size has exceeded "
	    "the maximum allowed size; expression size: 4097",
	    "4097-byte expression rejected");
	free(m);

	p = s + sprintf(s, "a IN (");
	for (i = 0; i < 100; i++)
		p += sprintf(p, "%s:v", i ? "," : "");
	strcpy(p, ")");
	m = run('c', s, NULL, V1);
	CHECK(m == NULL, "IN with 100 operands accepted");
	free(m);
	strcpy(p, ",:v)");
	m = run('c', s, NULL, V1);
	CHECK_STR(m, "Invalid ConditionExpression: The IN operator is provided "
	    "with too many operands; number of operands: 101",
	    "IN with 101 operands rejected");
	free(m);

	p = s + sprintf(s, "a");
	for (i = 1; i < 32; i++)
		p += sprintf(p, ".b");
	strcpy(p, " = :v");
	m = run('c', s, NULL, V1);
	CHECK(m == NULL, "path of 32 levels accepted");
	free(m);
	strcpy(p, "[0] = :v");
	m = run('c', s, NULL, V1);
	CHECK_STR(m, "Invalid ConditionExpression: The document path has too "
	    "many nesting levels; nesting levels: 33", "path of 33 levels");
	free(m);
	free(s);
}

static void
test_params(void)
{
	char *m;

	m = run('c', "a = :v", "{}", V1);
	CHECK_STR(m, "ExpressionAttributeNames must not be empty", "empty EAN");
	free(m);
	m = run('c', "a = :v", NULL, "{}");
	CHECK_STR(m, "ExpressionAttributeValues must not be empty", "empty EAV");
	free(m);
	m = run('c', "a = :v", "{\"x\":\"y\"}", V1);
	CHECK_STR(m, "ExpressionAttributeNames contains invalid key: Syntax "
	    "error; key: \"x\"", "bad EAN key");
	free(m);
	m = run('c', "a = :v", NULL, "{\"v\":{\"S\":\"x\"}}");
	CHECK_STR(m, "ExpressionAttributeValues contains invalid key: Syntax "
	    "error; key: \"v\"", "bad EAV key");
	free(m);
	m = run('c', "a = :v", NULL, "{\":v\":{\"SS\":[]}}");
	CHECK_STR(m, "ExpressionAttributeValues contains invalid value: One or "
	    "more parameter values were invalid: An string set  may not be "
	    "empty for key :v", "invalid EAV value");
	free(m);
}

static void
test_ast(void)
{
	json_t *jv = load("{\":a\":{\"S\":\"A\"},\":b\":{\"S\":\"B\"}}");
	it_error e = { 0 };
	it_params p;
	it_node *n = NULL;
	it_keycond pkc, skc;
	const char *src = "pk = :a AND sk BETWEEN :a AND :b";
	char *s;

	CHECK(it_params_init(&p, NULL, jv, &e), "params");
	CHECK(it_parse_condition(IT_EXPR_KEYCOND, src, strlen(src), &p, &n, &e),
	    "key condition parses");
	CHECK(n != NULL && n->kind == IT_NODE_AND && n->args[1]->kind ==
	    IT_NODE_BETWEEN, "AST shape");
	CHECK(n != NULL && it_keycond_bind(n, "pk", "sk", &pkc, &skc, &e) &&
	    pkc.op == IT_KEY_EQ && skc.op == IT_KEY_BETWEEN &&
	    strcmp(skc.v2->u.s.ptr, "B") == 0, "key condition binds");
	CHECK(n != NULL && !it_keycond_bind(n, "id", NULL, &pkc, &skc, &e),
	    "key condition misses key");
	CHECK_STR(e.msg, "Query condition missed key schema element: id",
	    "missed key message");
	it_error_clear(&e);
	it_node_free(n);
	n = NULL;
	src = "sk = :a AND pk < :b";
	CHECK(it_parse_condition(IT_EXPR_KEYCOND, src, strlen(src), &p, &n, &e) &&
	    !it_keycond_bind(n, "pk", "sk", &pkc, &skc, &e), "pk must be =");
	CHECK_STR(e.msg, "Query key condition not supported", "pk op message");
	it_error_clear(&e);
	it_node_free(n);
	n = NULL;
	src = "NOT a.b[3] = :a OR c IN (:a, :b) AND d < :b";
	CHECK(it_parse_condition(IT_EXPR_FILTER, src, strlen(src), &p, &n, &e),
	    "filter parses");
	CHECK(n != NULL && n->kind == IT_NODE_OR && n->args[0]->kind ==
	    IT_NODE_NOT && n->args[1]->kind == IT_NODE_AND,
	    "precedence NOT > AND > OR");
	s = n ? it_path_str(&n->args[0]->args[0]->args[0]->path) : NULL;
	CHECK_STR(s, "[a, b, [3]]", "path string");
	free(s);
	s = n ? it_path_expr(&n->args[0]->args[0]->args[0]->path) : NULL;
	CHECK_STR(s, "a.b[3]", "path expression");
	free(s);
	it_node_free(n);
	it_params_free(&p);
	json_decref(jv);
}

int
main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const tcase *c = &cases[i];
		char *m = run(c->kind, c->expr, c->names, c->values);
		char name[300];

		snprintf(name, sizeof(name), "%c %s%s", c->kind, c->expr,
		    c->msg ? " (invalid)" : "");
		for (char *q = name; *q; q++)
			if (*q == '\n' || *q == '\r' || *q == '\t')
				*q = ' ';
		if (c->msg == NULL) {
			CHECK(m == NULL, name);
			if (m != NULL)
				printf("#   got: %s\n", m);
		} else {
			CHECK_STR(m, c->msg, name);
		}
		free(m);
	}
	test_limits();
	test_params();
	test_ast();
	return it_test_done();
}
