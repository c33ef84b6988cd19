/* The expression parser: recursive descent over the token array, building
 * the AST with placeholders still unresolved (expr_check.c resolves them).
 * Ambiguous parentheses ("(a = b)" versus "(a) = b") are settled by trying
 * the condition first and backtracking; a syntax error is reported at the
 * furthest token any alternative reached, as DynamoDB's parser does. */
#include <stdlib.h>
#include <string.h>

#include "items/expr_int.h"

#define MAX_NESTING 200		/* recursion guard, far above real use */

typedef struct parser {
	const it_toks *t;
	size_t i;		/* current token */
	size_t far;		/* furthest token where a syntax error arose */
	it_expr_kind kind;
	int depth;
	it_error *e;		/* set for errors that stop the parse at once */
} parser;

static const it_tok *
cur(const parser *p)
{
	return &p->t->v[p->i];
}

static it_tok_kind
curk(const parser *p)
{
	return p->t->v[p->i].kind;
}

static void
syntax(parser *p)
{
	if (p->i > p->far)
		p->far = p->i;
}

static bool
hard_failed(const parser *p)
{
	return p->e->code != IT_ERR_NONE;
}

/* ---- AST helpers ---- */

it_node *
it_node_new(it_node_kind kind, size_t pos)
{
	it_node *n = calloc(1, sizeof(*n));

	if (n != NULL) {
		n->kind = kind;
		n->pos = pos;
	}
	return n;
}

bool
it_node_push(it_node *n, it_node *arg)
{
	it_node **nv = realloc(n->args, (n->nargs + 1) * sizeof(*nv));

	if (nv == NULL)
		return false;
	n->args = nv;
	nv[n->nargs++] = arg;
	return true;
}

bool
it_path_push(it_path *p, const it_pathel *el)
{
	it_pathel *nv = realloc(p->v, (p->n + 1) * sizeof(*nv));

	if (nv == NULL)
		return false;
	p->v = nv;
	nv[p->n++] = *el;
	return true;
}

void
it_path_clear(it_path *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].name.ptr);
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

void
it_node_free(it_node *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->nargs; i++)
		it_node_free(n->args[i]);
	free(n->args);
	free(n->fname);
	free(n->ref);
	it_value_free(n->value);
	it_path_clear(&n->path);
	free(n);
}

void
it_update_free(it_update *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++) {
		it_path_clear(&u->v[i].path);
		it_node_free(u->v[i].value);
	}
	free(u->v);
	free(u);
}

void
it_projection_free(it_projection *pr)
{
	if (pr == NULL)
		return;
	for (size_t i = 0; i < pr->n; i++)
		it_path_clear(&pr->v[i]);
	free(pr->v);
	free(pr);
}

static void
nomem(parser *p)
{
	it_error_nomem(p->e);
}

static char *
tok_dup(const parser *p, const it_tok *k)
{
	return strndup(p->t->src + k->pos, k->len);
}

/* ---- keywords ---- */

static bool
is_cond_keyword(const parser *p, size_t i)
{
	return it_tok_is(p->t, i, "AND") || it_tok_is(p->t, i, "OR") ||
	    it_tok_is(p->t, i, "NOT") || it_tok_is(p->t, i, "BETWEEN") ||
	    it_tok_is(p->t, i, "IN");
}

static bool
is_section_keyword(const parser *p, size_t i)
{
	return it_tok_is(p->t, i, "SET") || it_tok_is(p->t, i, "REMOVE") ||
	    it_tok_is(p->t, i, "ADD") || it_tok_is(p->t, i, "DELETE");
}

static bool
is_keyword(const parser *p, size_t i)
{
	if (p->kind == IT_EXPR_UPDATE)
		return is_section_keyword(p, i);
	if (p->kind == IT_EXPR_PROJECTION)
		return false;
	return is_cond_keyword(p, i);
}

/* ---- paths ---- */

static bool
path_el(parser *p, it_path *path, bool is_index, size_t index)
{
	it_pathel el;
	const it_tok *k = cur(p);

	memset(&el, 0, sizeof(el));
	el.is_index = is_index;
	el.index = index;
	el.pos = k->pos;
	if (!is_index) {
		el.is_ref = k->kind == IT_TOK_NAMEREF;
		el.name.ptr = tok_dup(p, k);
		el.name.len = k->len;
		if (el.name.ptr == NULL)
			goto fail;
	}
	if (!it_path_push(path, &el)) {
		free(el.name.ptr);
		goto fail;
	}
	return true;
fail:
	nomem(p);
	return false;
}

/* path := (NAME | NAMEREF) ('.' (NAME | NAMEREF) | '[' NUMBER ']')* */
static bool
parse_path(parser *p, it_path *path)
{
	memset(path, 0, sizeof(*path));
	if (!((curk(p) == IT_TOK_NAME && !is_keyword(p, p->i)) ||
	    curk(p) == IT_TOK_NAMEREF)) {
		syntax(p);
		return false;
	}
	if (!path_el(p, path, false, 0))
		goto fail;
	p->i++;
	for (;;) {
		if (curk(p) == IT_TOK_DOT) {
			p->i++;
			if (curk(p) != IT_TOK_NAME && curk(p) != IT_TOK_NAMEREF) {
				syntax(p);
				goto fail;
			}
			if (!path_el(p, path, false, 0))
				goto fail;
			p->i++;
		} else if (curk(p) == IT_TOK_LBRACKET) {
			size_t idx = 0;
			const it_tok *k;

			p->i++;
			k = cur(p);
			if (k->kind != IT_TOK_NUMBER || k->len > 9) {
				syntax(p);
				goto fail;
			}
			for (size_t j = 0; j < k->len; j++)
				idx = idx * 10 + (size_t)(p->t->src[k->pos + j] - '0');
			if (!path_el(p, path, true, idx))
				goto fail;
			p->i++;
			if (curk(p) != IT_TOK_RBRACKET) {
				syntax(p);
				goto fail;
			}
			p->i++;
		} else {
			break;
		}
	}
	if (path->n > IT_EXPR_MAX_PATH_DEPTH) {
		it_error_set(p->e, IT_ERR_VALIDATION, "The document path has too "
		    "many nesting levels; nesting levels: %zu", path->n);
		goto fail;
	}
	return true;
fail:
	it_path_clear(path);
	return false;
}

/* ---- operands ---- */

static it_node *parse_operand(parser *p);

static it_node *
parse_call(parser *p)
{
	it_node *n = it_node_new(IT_NODE_CALL, cur(p)->pos), *a;

	if (n == NULL || (n->fname = tok_dup(p, cur(p))) == NULL)
		goto nomem;
	p->i += 2;		/* name '(' */
	for (;;) {
		a = parse_operand(p);
		if (a == NULL)
			goto fail;
		if (!it_node_push(n, a)) {
			it_node_free(a);
			goto nomem;
		}
		if (curk(p) == IT_TOK_COMMA) {
			p->i++;
			continue;
		}
		if (curk(p) == IT_TOK_RPAREN) {
			p->i++;
			return n;
		}
		syntax(p);
		goto fail;
	}
nomem:
	nomem(p);
fail:
	it_node_free(n);
	return NULL;
}

/* operand := '(' operand ')' | :value | NAME '(' args ')' | path */
static it_node *
parse_operand(parser *p)
{
	it_node *n = NULL;

	if (++p->depth > MAX_NESTING) {
		syntax(p);
		it_syntax_error(p->t, p->i, p->e);
		goto out;
	}
	switch (curk(p)) {
	case IT_TOK_LPAREN:
		p->i++;
		n = parse_operand(p);
		if (n == NULL)
			goto out;
		if (curk(p) != IT_TOK_RPAREN) {
			syntax(p);
			it_node_free(n);
			n = NULL;
			goto out;
		}
		p->i++;
		n->parens++;
		break;
	case IT_TOK_VALREF:
		n = it_node_new(IT_NODE_VALUE, cur(p)->pos);
		if (n == NULL || (n->ref = tok_dup(p, cur(p))) == NULL) {
			it_node_free(n);
			n = NULL;
			nomem(p);
			goto out;
		}
		p->i++;
		break;
	case IT_TOK_NAME:
		if (p->t->v[p->i + 1].kind == IT_TOK_LPAREN &&
		    !is_keyword(p, p->i)) {
			n = parse_call(p);
			break;
		}
		/* FALLTHROUGH */
	case IT_TOK_NAMEREF:
		n = it_node_new(IT_NODE_PATH, cur(p)->pos);
		if (n == NULL) {
			nomem(p);
			goto out;
		}
		if (!parse_path(p, &n->path)) {
			it_node_free(n);
			n = NULL;
		}
		break;
	default:
		syntax(p);
		break;
	}
out:
	p->depth--;
	return n;
}

/* ---- conditions ---- */

static it_node *parse_or(parser *p);

static bool
is_comparator(it_tok_kind k)
{
	return k == IT_TOK_EQ || k == IT_TOK_NE || k == IT_TOK_LT ||
	    k == IT_TOK_LE || k == IT_TOK_GT || k == IT_TOK_GE;
}

static it_cmp
tok_cmp(it_tok_kind k)
{
	switch (k) {
	case IT_TOK_NE: return IT_NE;
	case IT_TOK_LT: return IT_LT;
	case IT_TOK_LE: return IT_LE;
	case IT_TOK_GT: return IT_GT;
	case IT_TOK_GE: return IT_GE;
	default: return IT_EQ;
	}
}

static it_node *
binary(parser *p, it_node_kind kind, size_t pos, it_node *a, it_node *b)
{
	it_node *n = it_node_new(kind, pos);

	if (n == NULL || !it_node_push(n, a)) {
		it_node_free(n);
		it_node_free(a);
		it_node_free(b);
		nomem(p);
		return NULL;
	}
	if (b != NULL && !it_node_push(n, b)) {
		it_node_free(n);
		it_node_free(b);
		nomem(p);
		return NULL;
	}
	return n;
}

/* The rest of a condition whose first operand is lhs. */
static it_node *
parse_predicate(parser *p, it_node *lhs)
{
	it_node *n = NULL, *a;
	size_t pos = cur(p)->pos;

	if (is_comparator(curk(p))) {
		it_cmp c = tok_cmp(curk(p));

		p->i++;
		a = parse_operand(p);
		if (a == NULL)
			goto fail;
		n = binary(p, IT_NODE_CMP, pos, lhs, a);
		if (n != NULL)
			n->cmp = c;
		return n;
	}
	if (it_tok_is(p->t, p->i, "BETWEEN")) {
		p->i++;
		a = parse_operand(p);
		if (a == NULL)
			goto fail;
		n = binary(p, IT_NODE_BETWEEN, pos, lhs, a);
		if (n == NULL)
			return NULL;
		if (!it_tok_is(p->t, p->i, "AND")) {
			syntax(p);
			goto fail_n;
		}
		p->i++;
		a = parse_operand(p);
		if (a == NULL)
			goto fail_n;
		if (!it_node_push(n, a)) {
			it_node_free(a);
			nomem(p);
			goto fail_n;
		}
		return n;
	}
	if (it_tok_is(p->t, p->i, "IN")) {
		p->i++;
		n = binary(p, IT_NODE_IN, pos, lhs, NULL);
		if (n == NULL)
			return NULL;
		if (curk(p) != IT_TOK_LPAREN) {
			syntax(p);
			goto fail_n;
		}
		p->i++;
		for (;;) {
			a = parse_operand(p);
			if (a == NULL)
				goto fail_n;
			if (!it_node_push(n, a)) {
				it_node_free(a);
				nomem(p);
				goto fail_n;
			}
			if (curk(p) == IT_TOK_COMMA) {
				p->i++;
				continue;
			}
			if (curk(p) == IT_TOK_RPAREN) {
				p->i++;
				break;
			}
			syntax(p);
			goto fail_n;
		}
		if (n->nargs - 1 > IT_EXPR_MAX_IN) {
			it_error_set(p->e, IT_ERR_VALIDATION, "The IN operator is "
			    "provided with too many operands; number of operands: "
			    "%zu", n->nargs - 1);
			goto fail_n;
		}
		return n;
	}
	if (lhs->kind == IT_NODE_CALL)
		return lhs;		/* a function used as a condition */
	syntax(p);
fail:
	it_node_free(lhs);
	return NULL;
fail_n:
	it_node_free(n);
	return NULL;
}

static bool
ends_condition(const parser *p)
{
	return !is_comparator(curk(p)) && !it_tok_is(p->t, p->i, "BETWEEN") &&
	    !it_tok_is(p->t, p->i, "IN");
}

/* primary := '(' or ')' | operand predicate */
static it_node *
parse_primary(parser *p)
{
	it_node *n, *lhs;

	if (curk(p) == IT_TOK_LPAREN) {
		size_t save = p->i;

		p->i++;
		n = parse_or(p);
		if (n != NULL && curk(p) == IT_TOK_RPAREN) {
			p->i++;
			if (ends_condition(p)) {
				n->parens++;
				return n;
			}
		}
		it_node_free(n);
		if (hard_failed(p))
			return NULL;
		p->i = save;
	}
	lhs = parse_operand(p);
	if (lhs == NULL)
		return NULL;
	return parse_predicate(p, lhs);
}

static it_node *
parse_not(parser *p)
{
	it_node *n;
	size_t pos = cur(p)->pos;

	if (++p->depth > MAX_NESTING) {
		syntax(p);
		it_syntax_error(p->t, p->i, p->e);
		n = NULL;
	} else if (it_tok_is(p->t, p->i, "NOT")) {
		p->i++;
		n = parse_not(p);
		if (n != NULL)
			n = binary(p, IT_NODE_NOT, pos, n, NULL);
	} else {
		n = parse_primary(p);
	}
	p->depth--;
	return n;
}

static it_node *
parse_and(parser *p)
{
	it_node *n = parse_not(p), *b;

	while (n != NULL && it_tok_is(p->t, p->i, "AND")) {
		size_t pos = cur(p)->pos;

		p->i++;
		b = parse_not(p);
		if (b == NULL) {
			it_node_free(n);
			return NULL;
		}
		n = binary(p, IT_NODE_AND, pos, n, b);
	}
	return n;
}

static it_node *
parse_or(parser *p)
{
	it_node *n = parse_and(p), *b;

	while (n != NULL && it_tok_is(p->t, p->i, "OR")) {
		size_t pos = cur(p)->pos;

		p->i++;
		b = parse_and(p);
		if (b == NULL) {
			it_node_free(n);
			return NULL;
		}
		n = binary(p, IT_NODE_OR, pos, n, b);
	}
	return n;
}

/* ---- update expressions ---- */

static bool
ends_set_action(const parser *p)
{
	return curk(p) == IT_TOK_COMMA || curk(p) == IT_TOK_EOF ||
	    is_section_keyword(p, p->i);
}

/* arith := operand [('+' | '-') operand] */
static it_node *
parse_arith(parser *p)
{
	it_node *a = parse_operand(p), *b;
	it_node_kind k;
	size_t pos;

	if (a == NULL)
		return NULL;
	if (curk(p) != IT_TOK_PLUS && curk(p) != IT_TOK_MINUS)
		return a;
	k = curk(p) == IT_TOK_PLUS ? IT_NODE_PLUS : IT_NODE_MINUS;
	pos = cur(p)->pos;
	p->i++;
	b = parse_operand(p);
	if (b == NULL) {
		it_node_free(a);
		return NULL;
	}
	return binary(p, k, pos, a, b);
}

/* set_value := '(' arith ')' | arith */
static it_node *
parse_set_value(parser *p)
{
	it_node *n;

	if (curk(p) == IT_TOK_LPAREN) {
		size_t save = p->i;

		p->i++;
		n = parse_arith(p);
		if (n != NULL && curk(p) == IT_TOK_RPAREN) {
			p->i++;
			if (ends_set_action(p)) {
				n->parens++;
				return n;
			}
		}
		it_node_free(n);
		if (hard_failed(p))
			return NULL;
		p->i = save;
	}
	return parse_arith(p);
}

static bool
push_action(parser *p, it_update *u, it_uaction *a)
{
	it_uaction *nv = realloc(u->v, (u->n + 1) * sizeof(*nv));

	if (nv == NULL) {
		nomem(p);
		return false;
	}
	u->v = nv;
	nv[u->n++] = *a;
	return true;
}

/* One section's list of actions, after its keyword. */
static bool
parse_section(parser *p, it_uact_kind kind, int section, it_update *u)
{
	for (;;) {
		it_uaction a;

		memset(&a, 0, sizeof(a));
		a.kind = kind;
		a.section = section;
		if (!parse_path(p, &a.path))
			return false;
		if (kind == IT_UPD_SET) {
			if (curk(p) != IT_TOK_EQ) {
				syntax(p);
				goto fail;
			}
			p->i++;
			a.value = parse_set_value(p);
			if (a.value == NULL)
				goto fail;
		} else if (kind == IT_UPD_ADD || kind == IT_UPD_DELETE) {
			if (curk(p) != IT_TOK_VALREF) {
				syntax(p);
				goto fail;
			}
			a.value = parse_operand(p);
			if (a.value == NULL)
				goto fail;
		}
		if (!push_action(p, u, &a))
			goto fail;
		if (curk(p) != IT_TOK_COMMA)
			return true;
		p->i++;
		continue;
fail:
		it_path_clear(&a.path);
		it_node_free(a.value);
		return false;
	}
}

static bool
parse_update_sections(parser *p, it_update *u)
{
	int section = 0;

	do {
		it_uact_kind k;

		if (it_tok_is(p->t, p->i, "SET"))
			k = IT_UPD_SET;
		else if (it_tok_is(p->t, p->i, "REMOVE"))
			k = IT_UPD_REMOVE;
		else if (it_tok_is(p->t, p->i, "ADD"))
			k = IT_UPD_ADD;
		else if (it_tok_is(p->t, p->i, "DELETE"))
			k = IT_UPD_DELETE;
		else {
			syntax(p);
			return false;
		}
		p->i++;
		if (!parse_section(p, k, section++, u))
			return false;
	} while (curk(p) != IT_TOK_EOF);
	return true;
}

/* ---- entry points (called by expr_check.c) ---- */

bool
it_parse_raw(it_expr_kind kind, const it_toks *t, void **out, it_error *e)
{
	parser p = { .t = t, .kind = kind, .e = e };
	it_update *u = NULL;
	it_projection *pr = NULL;
	it_node *n = NULL;
	bool ok = false;

	*out = NULL;
	switch (kind) {
	case IT_EXPR_UPDATE:
		u = calloc(1, sizeof(*u));
		if (u == NULL) {
			nomem(&p);
			break;
		}
		ok = parse_update_sections(&p, u);
		break;
	case IT_EXPR_PROJECTION:
		pr = calloc(1, sizeof(*pr));
		if (pr == NULL) {
			nomem(&p);
			break;
		}
		for (;;) {
			it_path path;
			it_path *nv;

			if (!parse_path(&p, &path))
				break;
			nv = realloc(pr->v, (pr->n + 1) * sizeof(*nv));
			if (nv == NULL) {
				it_path_clear(&path);
				nomem(&p);
				break;
			}
			pr->v = nv;
			nv[pr->n++] = path;
			if (curk(&p) != IT_TOK_COMMA) {
				ok = true;
				break;
			}
			p.i++;
		}
		break;
	default:
		n = parse_or(&p);
		ok = n != NULL;
		break;
	}
	if (ok && curk(&p) != IT_TOK_EOF) {
		syntax(&p);
		ok = false;
	}
	if (!ok) {
		if (!hard_failed(&p))
			it_syntax_error(t, p.far, e);
		it_update_free(u);
		it_projection_free(pr);
		it_node_free(n);
		return false;
	}
	*out = kind == IT_EXPR_UPDATE ? (void *)u :
	    kind == IT_EXPR_PROJECTION ? (void *)pr : (void *)n;
	return true;
}
