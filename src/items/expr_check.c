/* Resolution and semantic checks of parsed expressions: #name / :value
 * placeholders, reserved words, functions and their operands, BETWEEN
 * bounds, update clauses and overlapping paths, key condition forms. Each
 * kind of error goes into its own slot and the first slot in DynamoDB's
 * order wins, so that an expression with several faults reports the one
 * DynamoDB reports. Also the public parse entry points. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "items/expr_int.h"

enum slot {
	SL_PARENS, SL_UNKNOWN_FN, SL_MISUSED_FN, SL_RESERVED, SL_SECTION,
	SL_NAME, SL_VALUE, SL_OVERLAP, SL_CONFLICT, SL_OPERAND, SL_FUNCTION,
	SL_KEYCOND, SL_COUNT
};

typedef struct checker {
	it_expr_kind kind;
	it_params *params;
	it_error slot[SL_COUNT];
	bool nomem;
} checker;

#define CHK_SET(c, s, ...) it_error_set(&(c)->slot[s], IT_ERR_VALIDATION, \
	__VA_ARGS__)

const char *
it_expr_kind_name(it_expr_kind k)
{
	switch (k) {
	case IT_EXPR_CONDITION: return "ConditionExpression";
	case IT_EXPR_FILTER: return "FilterExpression";
	case IT_EXPR_KEYCOND: return "KeyConditionExpression";
	case IT_EXPR_UPDATE: return "UpdateExpression";
	case IT_EXPR_PROJECTION: return "ProjectionExpression";
	}
	return "Expression";
}

/* ---- paths ---- */

char *
it_path_str(const it_path *p)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);

	if (f == NULL)
		return NULL;
	fputc('[', f);
	for (size_t i = 0; i < p->n; i++) {
		if (i > 0)
			fputs(", ", f);
		if (p->v[i].is_index)
			fprintf(f, "[%zu]", p->v[i].index);
		else
			fwrite(p->v[i].name.ptr, 1, p->v[i].name.len, f);
	}
	fputc(']', f);
	fclose(f);
	return buf;
}

char *
it_path_expr(const it_path *p)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);

	if (f == NULL)
		return NULL;
	for (size_t i = 0; i < p->n; i++) {
		if (p->v[i].is_index) {
			fprintf(f, "[%zu]", p->v[i].index);
		} else {
			if (i > 0)
				fputc('.', f);
			fwrite(p->v[i].name.ptr, 1, p->v[i].name.len, f);
		}
	}
	fclose(f);
	return buf;
}

static bool
path_resolved(const it_path *p)
{
	for (size_t i = 0; i < p->n; i++) {
		if (p->v[i].is_ref)
			return false;
	}
	return true;
}

static bool
path_equal(const it_path *a, const it_path *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		if (a->v[i].is_index != b->v[i].is_index)
			return false;
		if (a->v[i].is_index ? a->v[i].index != b->v[i].index :
		    (a->v[i].name.len != b->v[i].name.len ||
		    memcmp(a->v[i].name.ptr, b->v[i].name.ptr,
		    a->v[i].name.len) != 0))
			return false;
	}
	return true;
}

/* Resolves #refs and checks bare names against the reserved words. */
static void
resolve_path(checker *c, it_path *p)
{
	for (size_t i = 0; i < p->n; i++) {
		it_pathel *el = &p->v[i];
		it_param *prm = NULL;

		if (el->is_index)
			continue;
		if (!el->is_ref) {
			if (it_reserved_word(el->name.ptr, el->name.len))
				CHK_SET(c, SL_RESERVED, "Attribute name is a reserved "
				    "keyword; reserved keyword: %s", el->name.ptr);
			continue;
		}
		for (size_t j = 0; j < c->params->nnames; j++) {
			if (strcmp(c->params->names[j].key, el->name.ptr) == 0) {
				prm = &c->params->names[j];
				break;
			}
		}
		if (prm == NULL) {
			CHK_SET(c, SL_NAME, "An expression attribute name used in "
			    "the document path is not defined; attribute name: %s",
			    el->name.ptr);
			continue;
		}
		prm->used = true;
		free(el->name.ptr);
		el->name.ptr = malloc(prm->name_len + 1);
		if (el->name.ptr == NULL) {
			el->name.len = 0;
			c->nomem = true;
			continue;
		}
		memcpy(el->name.ptr, prm->name, prm->name_len + 1);
		el->name.len = prm->name_len;
		el->is_ref = false;
	}
}

static void
resolve_value(checker *c, it_node *n)
{
	for (size_t j = 0; j < c->params->nvalues; j++) {
		if (strcmp(c->params->values[j].key, n->ref) == 0) {
			c->params->values[j].used = true;
			n->value = it_value_copy(c->params->values[j].value);
			if (n->value == NULL)
				c->nomem = true;
			return;
		}
	}
	/* Conditions report undefined names and values in one slot. */
	CHK_SET(c, c->kind == IT_EXPR_UPDATE ? SL_VALUE : SL_NAME,
	    "An expression attribute value used in expression is not "
	    "defined; attribute value: %s", n->ref);
}

/* ---- operands and functions ---- */

static const struct {
	const char *name;
	it_func func;
	size_t nargs;
	bool update;		/* an UpdateExpression function */
} functions[] = {
	{ "attribute_exists", IT_FN_ATTRIBUTE_EXISTS, 1, false },
	{ "attribute_not_exists", IT_FN_ATTRIBUTE_NOT_EXISTS, 1, false },
	{ "attribute_type", IT_FN_ATTRIBUTE_TYPE, 2, false },
	{ "begins_with", IT_FN_BEGINS_WITH, 2, false },
	{ "contains", IT_FN_CONTAINS, 2, false },
	{ "size", IT_FN_SIZE, 1, false },
	{ "if_not_exists", IT_FN_IF_NOT_EXISTS, 2, true },
	{ "list_append", IT_FN_LIST_APPEND, 2, true },
};

/* The type an operand is known to have before evaluation, or -1. */
static int
static_type(const it_node *n)
{
	if (n->kind == IT_NODE_VALUE && n->value != NULL)
		return (int)n->value->type;
	if (n->kind == IT_NODE_CALL && n->func == IT_FN_SIZE)
		return IT_N;
	if (n->kind == IT_NODE_CALL && n->func == IT_FN_LIST_APPEND)
		return IT_L;
	if (n->kind == IT_NODE_PLUS || n->kind == IT_NODE_MINUS)
		return IT_N;
	return -1;
}

static void
operand_type_error(checker *c, const char *fn, int type)
{
	CHK_SET(c, SL_FUNCTION, "Incorrect operand type for operator or "
	    "function; operator or function: %s, operand type: %s", fn,
	    it_type_name((it_type)type));
}

static void check_operand(checker *c, it_node *n, bool in_update);

static void
check_distinct(checker *c, const char *op, it_node *a, it_node *b)
{
	char *s;

	if (a->kind != IT_NODE_PATH || b->kind != IT_NODE_PATH ||
	    !path_resolved(&a->path) || !path_resolved(&b->path) ||
	    !path_equal(&a->path, &b->path))
		return;
	s = it_path_str(&a->path);
	CHK_SET(c, SL_FUNCTION, "The first operand must be distinct from the "
	    "remaining operands for this operator or function; operator: %s, "
	    "first operand: %s", op, s ? s : "[]");
	free(s);
}

static void
check_call(checker *c, it_node *n, bool in_update)
{
	size_t i, want = 0;
	bool known = false;
	int t;

	for (i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
		if (strcmp(functions[i].name, n->fname) == 0 &&
		    functions[i].update == in_update) {
			n->func = functions[i].func;
			want = functions[i].nargs;
			known = true;
		}
	}
	if (!known)
		CHK_SET(c, SL_UNKNOWN_FN, "Invalid function name; function: %s",
		    n->fname);
	for (i = 0; i < n->nargs; i++) {
		it_node *a = n->args[i];

		if (!in_update && a->kind == IT_NODE_CALL &&
		    strcmp(a->fname, "size") != 0)
			CHK_SET(c, SL_MISUSED_FN, "The function is not allowed to "
			    "be used this way in an expression; function: %s",
			    a->fname);
		check_operand(c, a, in_update);
	}
	if (!known)
		return;
	if (n->nargs != want) {
		CHK_SET(c, SL_FUNCTION, "Incorrect number of operands for "
		    "operator or function; operator or function: %s, number of "
		    "operands: %zu", n->fname, n->nargs);
		return;
	}
	switch (n->func) {
	case IT_FN_ATTRIBUTE_EXISTS:
	case IT_FN_ATTRIBUTE_NOT_EXISTS:
	case IT_FN_IF_NOT_EXISTS:
		if (n->args[0]->kind != IT_NODE_PATH)
			CHK_SET(c, SL_FUNCTION, "Operator or function requires a "
			    "document path; operator or function: %s", n->fname);
		break;
	case IT_FN_ATTRIBUTE_TYPE:
		if (n->args[0]->kind != IT_NODE_PATH) {
			CHK_SET(c, SL_FUNCTION, "Operator or function requires a "
			    "document path; operator or function: %s", n->fname);
			break;
		}
		t = static_type(n->args[1]);
		if (t >= 0 && t != IT_S) {
			operand_type_error(c, n->fname, t);
		} else if (t == IT_S) {
			it_type tt;

			if (!it_type_from_name(n->args[1]->value->u.s.ptr, &tt))
				CHK_SET(c, SL_FUNCTION, "Invalid attribute type name "
				    "found; type: %s, valid types: "
				    "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}",
				    n->args[1]->value->u.s.ptr);
		}
		break;
	case IT_FN_BEGINS_WITH:
		for (i = 0; i < 2; i++) {
			t = static_type(n->args[i]);
			if (t >= 0 && t != IT_S && t != IT_B) {
				operand_type_error(c, n->fname, t);
				break;
			}
		}
		check_distinct(c, n->fname, n->args[0], n->args[1]);
		break;
	case IT_FN_CONTAINS:
		check_distinct(c, n->fname, n->args[0], n->args[1]);
		break;
	case IT_FN_SIZE:
		t = static_type(n->args[0]);
		if (t == IT_N || t == IT_BOOL || t == IT_NULL)
			operand_type_error(c, n->fname, t);
		break;
	case IT_FN_LIST_APPEND:
		for (i = 0; i < 2; i++) {
			t = static_type(n->args[i]);
			if (t >= 0 && t != IT_L) {
				operand_type_error(c, n->fname, t);
				break;
			}
		}
		break;
	case IT_FN_UNKNOWN:
		break;
	}
}

static void
check_operand(checker *c, it_node *n, bool in_update)
{
	int t;

	if (n->parens > 1)
		CHK_SET(c, SL_PARENS, "The expression has redundant parentheses;");
	switch (n->kind) {
	case IT_NODE_PATH:
		resolve_path(c, &n->path);
		break;
	case IT_NODE_VALUE:
		resolve_value(c, n);
		break;
	case IT_NODE_CALL:
		check_call(c, n, in_update);
		break;
	case IT_NODE_PLUS:
	case IT_NODE_MINUS:
		for (size_t i = 0; i < 2; i++) {
			check_operand(c, n->args[i], in_update);
			t = static_type(n->args[i]);
			if (t >= 0 && t != IT_N)
				operand_type_error(c, n->kind == IT_NODE_PLUS ?
				    "+" : "-", t);
		}
		break;
	default:
		break;
	}
}

/* An operand of a comparison, BETWEEN or IN: only size() may be a call. */
static void
check_cmp_operand(checker *c, it_node *n)
{
	if (n->kind == IT_NODE_CALL && strcmp(n->fname, "size") != 0) {
		bool known = false;

		for (size_t i = 0; i < 6; i++)
			known |= strcmp(functions[i].name, n->fname) == 0;
		if (known)
			CHK_SET(c, SL_MISUSED_FN, "The function is not allowed to "
			    "be used this way in an expression; function: %s",
			    n->fname);
	}
	check_operand(c, n, false);
}

static char *
av_str(const it_value *v)
{
	char *s = NULL;

	if (v->type == IT_S || v->type == IT_N || v->type == IT_B) {
		if (asprintf(&s, "{%s:%s}", it_type_name(v->type),
		    v->u.s.ptr) < 0)
			s = NULL;
	} else if (asprintf(&s, "{%s}", it_type_name(v->type)) < 0) {
		s = NULL;
	}
	return s;
}

static void
check_between(checker *c, const it_node *lo, const it_node *hi)
{
	const it_value *a = lo->value, *b = hi->value;
	char *sa, *sb;

	if (lo->kind != IT_NODE_VALUE || hi->kind != IT_NODE_VALUE ||
	    a == NULL || b == NULL)
		return;
	if (a->type == b->type && (!it_value_comparable(a, b) ||
	    it_value_cmp(a, b) <= 0))
		return;
	sa = av_str(a);
	sb = av_str(b);
	CHK_SET(c, SL_FUNCTION, "The BETWEEN operator requires %s; lower bound "
	    "operand: AttributeValue: %s, upper bound operand: AttributeValue: "
	    "%s", a->type != b->type ? "same data type for lower and upper "
	    "bounds" : "upper bound to be greater than or equal to lower bound",
	    sa ? sa : "{}", sb ? sb : "{}");
	free(sa);
	free(sb);
}

static const char *const cmp_names[] = { "=", "<>", "<", "<=", ">", ">=" };

static void
check_cond(checker *c, it_node *n)
{
	size_t i;

	if (n->parens > 1)
		CHK_SET(c, SL_PARENS, "The expression has redundant parentheses;");
	switch (n->kind) {
	case IT_NODE_AND:
	case IT_NODE_OR:
	case IT_NODE_NOT:
		for (i = 0; i < n->nargs; i++)
			check_cond(c, n->args[i]);
		break;
	case IT_NODE_CMP:
		check_cmp_operand(c, n->args[0]);
		check_cmp_operand(c, n->args[1]);
		check_distinct(c, cmp_names[n->cmp], n->args[0], n->args[1]);
		break;
	case IT_NODE_BETWEEN:
	case IT_NODE_IN:
		for (i = 0; i < n->nargs; i++)
			check_cmp_operand(c, n->args[i]);
		if (n->kind == IT_NODE_BETWEEN)
			check_between(c, n->args[1], n->args[2]);
		break;
	case IT_NODE_CALL:
		if (strcmp(n->fname, "size") == 0)
			CHK_SET(c, SL_MISUSED_FN, "The function is not allowed to "
			    "be used this way in an expression; function: size");
		check_call(c, n, false);
		break;
	default:
		check_operand(c, n, false);
		break;
	}
}

/* ---- key conditions ---- */

/* Flattens the ANDs of a key condition; stores at most 3 conditions and
 * returns how many there are (capped at 3). */
static size_t
key_flatten(const it_node *n, const it_node **out, size_t have)
{
	if (have >= 3)
		return have;
	if (n->kind == IT_NODE_AND) {
		have = key_flatten(n->args[0], out, have);
		return key_flatten(n->args[1], out, have);
	}
	out[have] = n;
	return have + 1;
}

static const char *
key_bad_operator(const it_node *n)
{
	switch (n->kind) {
	case IT_NODE_OR: return "OR";
	case IT_NODE_NOT: return "NOT";
	case IT_NODE_IN: return "IN";
	case IT_NODE_CMP: return n->cmp == IT_NE ? "<>" : NULL;
	case IT_NODE_CALL:
		return n->func == IT_FN_BEGINS_WITH ? NULL : n->fname;
	default: return NULL;
	}
}

static const char *
key_bad_any(const it_node *n)
{
	const char *s = key_bad_operator(n);

	if (s != NULL)
		return s;
	if (n->kind == IT_NODE_AND || n->kind == IT_NODE_OR ||
	    n->kind == IT_NODE_NOT) {
		for (size_t i = 0; i < n->nargs; i++) {
			s = key_bad_any(n->args[i]);
			if (s != NULL)
				return s;
		}
	}
	return NULL;
}

static const it_path *
key_cond_path(const it_node *n)
{
	return n->args[0]->kind == IT_NODE_PATH ? &n->args[0]->path :
	    n->kind == IT_NODE_CMP && n->args[1]->kind == IT_NODE_PATH ?
	    &n->args[1]->path : NULL;
}

static void
check_keycond(checker *c, const it_node *root)
{
	const it_node *conds[3];
	const it_path *paths[3];
	const char *bad = key_bad_any(root);
	size_t n, i, j, npaths;

	if (bad != NULL) {
		CHK_SET(c, SL_KEYCOND, "Invalid operator used in "
		    "KeyConditionExpression: %s", bad);
		return;
	}
	n = key_flatten(root, conds, 0);
	if (n > 2) {
		CHK_SET(c, SL_KEYCOND, "Conditions can be of length 1 or 2 only");
		return;
	}
	for (i = 0; i < n; i++) {
		npaths = 0;
		for (j = 0; j < conds[i]->nargs; j++)
			npaths += conds[i]->args[j]->kind == IT_NODE_PATH;
		if (npaths > 1) {
			CHK_SET(c, SL_KEYCOND, "Invalid condition in "
			    "KeyConditionExpression: Multiple attribute names "
			    "used in one condition");
			return;
		}
		for (j = 0; j < conds[i]->nargs; j++) {
			const it_node *a = conds[i]->args[j];

			if (a->kind == IT_NODE_CALL) {
				CHK_SET(c, SL_KEYCOND, "Invalid operator used in "
				    "KeyConditionExpression: %s", a->fname);
				return;
			}
		}
		paths[i] = key_cond_path(conds[i]);
		if (paths[i] == NULL || (conds[i]->kind != IT_NODE_CMP &&
		    conds[i]->args[0]->kind != IT_NODE_PATH)) {
			CHK_SET(c, SL_KEYCOND, "Invalid condition in "
			    "KeyConditionExpression: No key attribute specified");
			return;
		}
		if (paths[i]->n > 1) {
			CHK_SET(c, SL_KEYCOND, "KeyConditionExpressions cannot have "
			    "conditions on nested attributes");
			return;
		}
	}
	if (n == 2 && path_equal(paths[0], paths[1]))
		CHK_SET(c, SL_KEYCOND, "KeyConditionExpressions must only contain "
		    "one condition per key");
}

static it_keyop
key_op(const it_node *n, bool flipped)
{
	if (n->kind == IT_NODE_BETWEEN)
		return IT_KEY_BETWEEN;
	if (n->kind == IT_NODE_CALL)
		return IT_KEY_BEGINS_WITH;
	switch (n->cmp) {
	case IT_LT: return flipped ? IT_KEY_GT : IT_KEY_LT;
	case IT_LE: return flipped ? IT_KEY_GE : IT_KEY_LE;
	case IT_GT: return flipped ? IT_KEY_LT : IT_KEY_GT;
	case IT_GE: return flipped ? IT_KEY_LE : IT_KEY_GE;
	default: return IT_KEY_EQ;
	}
}

static void
key_fill(const it_node *n, it_keycond *kc)
{
	bool flipped = n->args[0]->kind != IT_NODE_PATH;
	const it_node *p = flipped ? n->args[1] : n->args[0];

	kc->name = &p->path.v[0].name;
	kc->op = key_op(n, flipped);
	kc->v1 = (flipped ? n->args[0] : n->args[1])->value;
	kc->v2 = n->nargs > 2 ? n->args[2]->value : NULL;
}

static bool
name_is(const it_str *s, const char *name)
{
	return name != NULL && strlen(name) == s->len &&
	    memcmp(s->ptr, name, s->len) == 0;
}

bool
it_keycond_bind(const it_node *root, const char *pk, const char *sk,
    it_keycond *pkc, it_keycond *skc, it_error *e)
{
	const it_node *conds[3];
	it_keycond kc;
	size_t n = key_flatten(root, conds, 0), i;
	bool have_pk = false;

	memset(pkc, 0, sizeof(*pkc));
	memset(skc, 0, sizeof(*skc));
	for (i = 0; i < n && i < 2; i++) {
		key_fill(conds[i], &kc);
		have_pk |= name_is(kc.name, pk);
	}
	if (!have_pk) {
		it_error_set(e, IT_ERR_VALIDATION, "Query condition missed key "
		    "schema element: %s", pk);
		return false;
	}
	for (i = 0; i < n && i < 2; i++) {
		key_fill(conds[i], &kc);
		if (name_is(kc.name, pk)) {
			*pkc = kc;
		} else if (name_is(kc.name, sk)) {
			*skc = kc;
		} else {
			it_error_set(e, IT_ERR_VALIDATION, "Query condition missed "
			    "key schema element: %s", sk != NULL ? sk : pk);
			return false;
		}
	}
	if (pkc->op != IT_KEY_EQ) {
		it_error_set(e, IT_ERR_VALIDATION,
		    "Query key condition not supported");
		return false;
	}
	return true;
}

/* ---- updates and projections ---- */

static const char *
ddb_type_word(it_type t)
{
	switch (t) {
	case IT_S: return "STRING";
	case IT_N: return "NUMBER";
	case IT_B: return "BINARY";
	case IT_NULL: return "NULL";
	case IT_BOOL: return "BOOLEAN";
	case IT_L: return "LIST";
	case IT_M: return "MAP";
	default: return it_type_name(t);
	}
}

/* Two written paths overlap when one is a prefix of the other and conflict
 * when they index the same element both as a map and as a list. */
static void
check_paths(checker *c, it_path *const *paths, size_t n)
{
	for (size_t j = 1; j < n; j++) {
		for (size_t i = 0; i < j; i++) {
			const it_path *a = paths[i], *b = paths[j];
			size_t k, m = a->n < b->n ? a->n : b->n;
			enum slot s = SL_OVERLAP;
			char *sa, *sb;

			if (!path_resolved(a) || !path_resolved(b))
				continue;
			for (k = 0; k < m; k++) {
				const it_pathel *x = &a->v[k], *y = &b->v[k];

				if (x->is_index != y->is_index) {
					s = SL_CONFLICT;
					break;
				}
				if (x->is_index ? x->index != y->index :
				    x->name.len != y->name.len || memcmp(x->name.ptr,
				    y->name.ptr, x->name.len) != 0)
					break;
			}
			if (k < m && s != SL_CONFLICT)
				continue;
			sa = it_path_str(a);
			sb = it_path_str(b);
			CHK_SET(c, s, "Two document paths %s with each other; must "
			    "remove or rewrite one of these paths; path one: %s, "
			    "path two: %s", s == SL_CONFLICT ? "conflict" :
			    "overlap", sa ? sa : "[]", sb ? sb : "[]");
			free(sa);
			free(sb);
		}
	}
}

static void
check_update(checker *c, it_update *u)
{
	static const char *const section_names[] = {
		"SET", "REMOVE", "ADD", "DELETE"
	};
	it_path **paths = calloc(u->n + 1, sizeof(*paths));
	bool seen[4] = { false, false, false, false };
	int last = -1;

	if (paths == NULL) {
		c->nomem = true;
		return;
	}
	for (size_t i = 0; i < u->n; i++) {
		it_uaction *a = &u->v[i];
		int t;

		if (a->section != last) {
			if (seen[a->kind])
				CHK_SET(c, SL_SECTION, "The \"%s\" section can only "
				    "be used once in an update expression;",
				    section_names[a->kind]);
			seen[a->kind] = true;
			last = a->section;
		}
		resolve_path(c, &a->path);
		paths[i] = &a->path;
		if (a->value == NULL)
			continue;
		if (a->value->parens > 1)
			CHK_SET(c, SL_PARENS, "The expression has redundant "
			    "parentheses;");
		check_operand(c, a->value, true);
		if (a->kind != IT_UPD_ADD && a->kind != IT_UPD_DELETE)
			continue;
		t = static_type(a->value);
		if (t < 0)
			continue;
		if (!(t == IT_SS || t == IT_NS || t == IT_BS ||
		    (t == IT_N && a->kind == IT_UPD_ADD)))
			CHK_SET(c, SL_OPERAND, "Incorrect operand type for operator "
			    "or function; operator: %s, operand type: %s",
			    section_names[a->kind], ddb_type_word((it_type)t));
	}
	check_paths(c, paths, u->n);
	free(paths);
}

bool
it_update_touches(const it_update *u, const char *name, size_t len)
{
	for (size_t i = 0; i < u->n; i++) {
		const it_pathel *el = &u->v[i].path.v[0];

		if (el->name.len == len && memcmp(el->name.ptr, name, len) == 0)
			return true;
	}
	return false;
}

bool
it_node_references(const it_node *n, const char *name, size_t len)
{
	if (n == NULL)
		return false;
	if (n->kind == IT_NODE_PATH && n->path.n > 0 && !n->path.v[0].is_index &&
	    n->path.v[0].name.len == len &&
	    memcmp(n->path.v[0].name.ptr, name, len) == 0)
		return true;
	for (size_t i = 0; i < n->nargs; i++)
		if (it_node_references(n->args[i], name, len))
			return true;
	return false;
}

static void
check_projection(checker *c, it_projection *pr)
{
	it_path **paths = calloc(pr->n + 1, sizeof(*paths));

	if (paths == NULL) {
		c->nomem = true;
		return;
	}
	for (size_t i = 0; i < pr->n; i++) {
		resolve_path(c, &pr->v[i]);
		paths[i] = &pr->v[i];
	}
	check_paths(c, paths, pr->n);
	free(paths);
}

/* ---- entry points ---- */

static const enum slot cond_order[] = {
	SL_PARENS, SL_UNKNOWN_FN, SL_MISUSED_FN, SL_RESERVED, SL_NAME,
	SL_VALUE, SL_FUNCTION, SL_KEYCOND, SL_COUNT
};
static const enum slot update_order[] = {
	SL_RESERVED, SL_UNKNOWN_FN, SL_SECTION, SL_PARENS, SL_NAME, SL_VALUE,
	SL_OVERLAP, SL_CONFLICT, SL_OPERAND, SL_FUNCTION, SL_COUNT
};
static const enum slot projection_order[] = {
	SL_RESERVED, SL_NAME, SL_OVERLAP, SL_CONFLICT, SL_COUNT
};

/* Moves the winning slot into e; true when there was none. */
static bool
checker_finish(checker *c, it_error *e)
{
	const enum slot *order = c->kind == IT_EXPR_UPDATE ? update_order :
	    c->kind == IT_EXPR_PROJECTION ? projection_order : cond_order;
	bool ok = true;

	if (c->nomem) {
		it_error_nomem(e);
		ok = false;
	}
	for (; ok && *order != SL_COUNT; order++) {
		if (c->slot[*order].code != IT_ERR_NONE) {
			it_error_move(e, &c->slot[*order]);
			ok = false;
		}
	}
	for (int i = 0; i < SL_COUNT; i++)
		it_error_clear(&c->slot[i]);
	return ok;
}

/* Length limits, lexing and parsing shared by every kind. */
static bool
parse_common(it_expr_kind kind, const char *src, size_t len, it_params *p,
    void **out, it_error *e)
{
	checker c;
	it_toks t;
	bool ok;

	*out = NULL;
	if (len == 0) {
		it_error_set(e, IT_ERR_VALIDATION, "The expression can not be "
		    "empty;");
		goto fail;
	}
	if (len > IT_EXPR_MAX_LEN) {
		it_error_set(e, IT_ERR_VALIDATION, "Expression size has exceeded "
		    "the maximum allowed size; expression size: %zu", len);
		goto fail;
	}
	if (!it_lex(src, len, &t)) {
		it_error_nomem(e);
		return false;
	}
	ok = it_parse_raw(kind, &t, out, e);
	it_toks_free(&t);
	if (!ok)
		goto fail;
	memset(&c, 0, sizeof(c));
	c.kind = kind;
	c.params = p;
	if (kind == IT_EXPR_UPDATE) {
		check_update(&c, *out);
	} else if (kind == IT_EXPR_PROJECTION) {
		check_projection(&c, *out);
	} else {
		check_cond(&c, *out);
		if (kind == IT_EXPR_KEYCOND)
			check_keycond(&c, *out);
	}
	if (checker_finish(&c, e))
		return true;
	if (kind == IT_EXPR_UPDATE)
		it_update_free(*out);
	else if (kind == IT_EXPR_PROJECTION)
		it_projection_free(*out);
	else
		it_node_free(*out);
	*out = NULL;
fail:
	if (e->code == IT_ERR_VALIDATION) {
		char pfx[64];

		snprintf(pfx, sizeof(pfx), "Invalid %s: ", it_expr_kind_name(kind));
		it_error_prefix(e, pfx);
	}
	return false;
}

bool
it_parse_condition(it_expr_kind kind, const char *src, size_t len,
    it_params *p, it_node **out, it_error *e)
{
	void *r;

	*out = NULL;
	if (!parse_common(kind, src, len, p, &r, e))
		return false;
	*out = r;
	return true;
}

bool
it_parse_update(const char *src, size_t len, it_params *p, it_update **out,
    it_error *e)
{
	void *r;

	*out = NULL;
	if (!parse_common(IT_EXPR_UPDATE, src, len, p, &r, e))
		return false;
	*out = r;
	return true;
}

bool
it_parse_projection(const char *src, size_t len, it_params *p,
    it_projection **out, it_error *e)
{
	void *r;

	*out = NULL;
	if (!parse_common(IT_EXPR_PROJECTION, src, len, p, &r, e))
		return false;
	*out = r;
	return true;
}
