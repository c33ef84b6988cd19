/* SQL compilation of conditions (sql.h) and the statement builder shared
 * with sql_update.c: text buffers, parameters (request data never becomes
 * SQL text) and the operand forms of conditions. Every condition node
 * becomes a two-valued SQL boolean equal to eval.c's result. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "items/sql_int.h"

/* ---- buffers ---- */

/* Appends formatted text; a failure is sticky in b->oom. */
static bool sqlbuf_reserve(it_sqlbuf *b, size_t n);
static void sqlbuf_vadd(it_sqlbuf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static bool
sqlbuf_reserve(it_sqlbuf *b, size_t n)
{
	size_t need = b->len + n + 1, cap;
	char *np;

	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	np = realloc(b->p, cap);
	if (np == NULL)
		return false;
	b->p = np;
	b->cap = cap;
	return true;
}

static void
sqlbuf_vadd(it_sqlbuf *b, const char *fmt, va_list ap)
{
	const char *lit = NULL;
	char tmp[256];
	int n;

	if (b->oom)
		return;
	/* Most appends are fixed text or one %s: no printf for those (this
	 * builder runs for every item-layer request). */
	if (strchr(fmt, '%') == NULL)
		lit = fmt;
	else if (strcmp(fmt, "%s") == 0)
		lit = va_arg(ap, const char *);
	if (lit != NULL) {
		size_t len = strlen(lit);
		if (!sqlbuf_reserve(b, len))
			goto fail;
		memcpy(b->p + b->len, lit, len + 1);
		b->len += len;
		return;
	}
	/* The SQL builder's formats use %s, %d, %zu, %c, %lld and %%: format
	 * those here in one pass; anything else goes to vsnprintf. */
	for (const char *f = fmt; *f != '\0';) {
		const char *pct = strchr(f, '%');
		size_t lit_len = pct ? (size_t)(pct - f) : strlen(f);
		if (lit_len > 0) {
			if (!sqlbuf_reserve(b, lit_len))
				goto fail;
			memcpy(b->p + b->len, f, lit_len);
			b->len += lit_len;
			b->p[b->len] = '\0';
		}
		if (pct == NULL)
			break;
		const char *arg = NULL;
		size_t arg_len = 0;
		char num[32];
		size_t spec = 2;
		switch (pct[1]) {
		case 's':
			arg = va_arg(ap, const char *);
			arg_len = strlen(arg);
			break;
		case 'd':
			arg_len = (size_t)snprintf(num, sizeof(num), "%d", va_arg(ap, int));
			arg = num;
			break;
		case 'c':
			num[0] = (char)va_arg(ap, int);
			arg = num;
			arg_len = 1;
			break;
		case '%':
			arg = "%";
			arg_len = 1;
			break;
		case 'z':
			if (pct[2] == 'u') {
				arg_len = (size_t)snprintf(num, sizeof(num), "%zu", va_arg(ap, size_t));
				arg = num;
				spec = 3;
			}
			break;
		case 'l':
			if (pct[2] == 'l' && pct[3] == 'd') {
				arg_len = (size_t)snprintf(num, sizeof(num), "%lld", va_arg(ap, long long));
				arg = num;
				spec = 4;
			}
			break;
		default:
			break;
		}
		if (arg == NULL) {
			/* An unusual conversion: let vsnprintf do the rest.  pct is
			 * the tail of fmt, which the format attribute on the
			 * declaration already checked at every call site; clang
			 * cannot see that through the pointer. */
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wformat-nonliteral"
#endif
			va_list ap2;
			va_copy(ap2, ap);
			n = vsnprintf(tmp, sizeof(tmp), pct, ap2);
			va_end(ap2);
			if (n < 0 || !sqlbuf_reserve(b, (size_t)n))
				goto fail;
			if ((size_t)n < sizeof(tmp))
				memcpy(b->p + b->len, tmp, (size_t)n + 1);
			else
				vsnprintf(b->p + b->len, (size_t)n + 1, pct, ap);
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
			b->len += (size_t)n;
			return;
		}
		if (!sqlbuf_reserve(b, arg_len))
			goto fail;
		memcpy(b->p + b->len, arg, arg_len);
		b->len += arg_len;
		b->p[b->len] = '\0';
		f = pct + spec;
	}
	return;
fail:
	b->oom = true;
}

void
it_sqlbuf_add(it_sqlbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sqlbuf_vadd(b, fmt, ap);
	va_end(ap);
}

void
it_sqlbuf_cat(it_sqlbuf *b, const char *s)
{
	it_sqlbuf_add(b, "%s", s);
}

void
it_sqlbuf_free(it_sqlbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

char *
it_sqlbuf_take(it_sqlbuf *b)
{
	char *s;

	if (b->oom) {
		it_sqlbuf_free(b);
		return NULL;
	}
	s = b->p != NULL ? b->p : strdup("");
	memset(b, 0, sizeof(*b));
	return s;
}

/* ---- the builder ---- */

void
it_sql_init(it_sql *q, int base)
{
	memset(q, 0, sizeof(*q));
	q->base = base;
	/* A statement is typically 1-3 KB: one allocation instead of a chain
	 * of doublings (an allocation failure here surfaces on first use). */
	if (sqlbuf_reserve(&q->text, 4095))
		q->text.p[0] = '\0';
}

void
it_sql_free(it_sql *q)
{
	it_sqlbuf_free(&q->text);
	for (size_t i = 0; i < q->nparams; i++) {
		free(q->params[i]);
		free(q->types[i]);
	}
	free(q->params);
	free(q->types);
	memset(q, 0, sizeof(*q));
}

const char *
it_sql_text(const it_sql *q)
{
	return q->text.p != NULL ? q->text.p : "";
}

int
it_sql_next_param(const it_sql *q)
{
	return q->base + (int)q->nparams;
}

bool
it_sql_check(it_sql *q, it_sqlbuf *b, it_error *e)
{
	if (q->oom || q->text.oom || (b != NULL && b->oom)) {
		q->oom = true;
		it_error_nomem(e);
		return false;
	}
	return true;
}

bool
it_sql_append(it_sql *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sqlbuf_vadd(&q->text, fmt, ap);
	va_end(ap);
	if (q->text.oom)
		q->oom = true;
	return !q->oom;
}

bool
it_sql_param_to(it_sql *q, it_sqlbuf *b, const char *type, const char *val,
    size_t len, it_error *e)
{
	size_t i;
	char **np, **nt;

	if (memchr(val, '\0', len) != NULL) {
		it_error_set(e, IT_ERR_VALIDATION, IT_MSG_NUL);
		return false;
	}
	for (i = 0; i < q->nparams; i++) {
		if (strcmp(q->types[i], type) == 0 &&
		    strlen(q->params[i]) == len &&
		    memcmp(q->params[i], val, len) == 0)
			break;
	}
	if (i == q->nparams) {
		if (q->nparams == q->pcap) {
			size_t cap = q->pcap ? q->pcap * 2 : 8;

			np = realloc(q->params, cap * sizeof(*np));
			if (np == NULL)
				goto nomem;
			q->params = np;
			nt = realloc(q->types, cap * sizeof(*nt));
			if (nt == NULL)
				goto nomem;
			q->types = nt;
			q->pcap = cap;
		}
		q->params[i] = strndup(val, len);
		q->types[i] = strdup(type);
		if (q->params[i] == NULL || q->types[i] == NULL) {
			free(q->params[i]);
			free(q->types[i]);
			goto nomem;
		}
		q->nparams++;
	}
	it_sqlbuf_add(b, "$%d::%s", q->base + (int)i, type);
	return true;
nomem:
	q->oom = true;
	it_error_nomem(e);
	return false;
}

bool
it_sql_param(it_sql *q, const char *type, const char *val, size_t len,
    it_error *e)
{
	return it_sql_param_to(q, &q->text, type, val, len, e) &&
	    it_sql_check(q, NULL, e);
}

/* Appends s as one double-quoted element of an array literal. */
static void
array_elem(it_sqlbuf *b, const char *s, size_t len)
{
	it_sqlbuf_cat(b, "\"");
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			it_sqlbuf_add(b, "\\%c", s[i]);
		else
			it_sqlbuf_add(b, "%c", s[i]);
	}
	it_sqlbuf_cat(b, "\"");
}

bool
it_sql_path_to(it_sql *q, it_sqlbuf *b, const it_path *p, it_error *e)
{
	it_sqlbuf lit = { 0 };
	bool ok = false;

	it_sqlbuf_cat(&lit, "{");
	for (size_t i = 0; i < p->n; i++) {
		const it_pathel *el = &p->v[i];

		if (i > 0)
			it_sqlbuf_cat(&lit, el->is_index ? ",\"L\"," : ",\"M\",");
		if (el->is_index) {
			it_sqlbuf_add(&lit, "\"%zu\"", el->index);
		} else {
			if (memchr(el->name.ptr, '\0', el->name.len) != NULL) {
				it_error_set(e, IT_ERR_VALIDATION, IT_MSG_NUL);
				goto fail;
			}
			array_elem(&lit, el->name.ptr, el->name.len);
		}
	}
	it_sqlbuf_cat(&lit, "}");
	if (!it_sql_check(q, &lit, e))
		goto fail;
	ok = it_sql_param_to(q, b, "text[]", lit.p, lit.len, e);
fail:
	it_sqlbuf_free(&lit);
	return ok;
}

/* True when a string anywhere in v (names included) holds a NUL byte;
 * PostgreSQL's text and jsonb cannot carry one. */
static bool
value_has_nul(const it_value *v)
{
	size_t i;

	switch (v->type) {
	case IT_S:
		return memchr(v->u.s.ptr, '\0', v->u.s.len) != NULL;
	case IT_M:
		for (i = 0; i < v->u.m.n; i++) {
			if (memchr(v->u.m.v[i].name.ptr, '\0',
			    v->u.m.v[i].name.len) != NULL ||
			    value_has_nul(v->u.m.v[i].value))
				return true;
		}
		return false;
	case IT_L:
		for (i = 0; i < v->u.l.n; i++) {
			if (value_has_nul(v->u.l.v[i]))
				return true;
		}
		return false;
	case IT_SS:
		for (i = 0; i < v->u.set.n; i++) {
			if (memchr(v->u.set.v[i].ptr, '\0',
			    v->u.set.v[i].len) != NULL)
				return true;
		}
		return false;
	default:
		return false;
	}
}

bool
it_sql_value_to(it_sql *q, it_sqlbuf *b, const it_value *v, it_error *e)
{
	json_t *j;
	char *s;
	bool ok;

	if (value_has_nul(v)) {
		it_error_set(e, IT_ERR_VALIDATION, IT_MSG_NUL);
		return false;
	}
	/* The frequent scalars need no JSON encoder: a canonical N holds only
	 * digits, '-' and '.', nothing to escape. */
	if (v->type == IT_N && v->u.s.len < 64) {
		char buf[80];
		int n = snprintf(buf, sizeof(buf), "{\"N\":\"%s\"}", v->u.s.ptr);
		return it_sql_param_to(q, b, "jsonb", buf, (size_t)n, e);
	}
	if (v->type == IT_BOOL)
		return it_sql_param_to(q, b, "jsonb", v->u.b ? "{\"BOOL\":true}" : "{\"BOOL\":false}",
		    v->u.b ? 13 : 14, e);
	if (v->type == IT_NULL)
		return it_sql_param_to(q, b, "jsonb", "{\"NULL\":true}", 13, e);
	j = it_value_to_json(v);
	s = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(j);
	if (s == NULL) {
		q->oom = true;
		it_error_nomem(e);
		return false;
	}
	ok = it_sql_param_to(q, b, "jsonb", s, strlen(s), e);
	free(s);
	return ok;
}

/* A constant as a typed scalar parameter: N as numeric, S as text, B as
 * bytea (hex). */
static bool __attribute__((warn_unused_result))
scalar_param(it_sql *q, it_sqlbuf *b, const it_value *v, it_error *e)
{
	it_sqlbuf hex = { 0 };
	bool ok = false;

	switch (v->type) {
	case IT_N:
		return it_sql_param_to(q, b, "numeric", v->u.s.ptr, v->u.s.len,
		    e);
	case IT_S:
		return it_sql_param_to(q, b, "text", v->u.s.ptr, v->u.s.len, e);
	case IT_B:
		it_sqlbuf_cat(&hex, "\\x");
		for (size_t i = 0; i < v->u.s.len; i++)
			it_sqlbuf_add(&hex, "%02x", (unsigned char)v->u.s.ptr[i]);
		if (it_sql_check(q, &hex, e))
			ok = it_sql_param_to(q, b, "bytea", hex.p, hex.len, e);
		it_sqlbuf_free(&hex);
		return ok;
	default:
		it_sqlbuf_cat(b, "NULL");
		return true;
	}
}

/* ---- condition operands ---- */

/* An operand of a condition. Its SQL is built when first needed, so that
 * no parameter is added that the text never mentions (PostgreSQL cannot
 * type those). av is a jsonb AttributeValue expression (SQL NULL when the
 * operand is absent); stype the type known before evaluation (-1: only
 * known at run time); cv the constant of a :value; for size(), inner is the
 * AttributeValue it measures. */
typedef struct opnd {
	const it_node *n;
	const char *col;
	it_sqlbuf av;
	it_sqlbuf inner;
	int stype;
	const it_value *cv;
	bool is_size;
} opnd;

static void
opnd_free(opnd *o)
{
	it_sqlbuf_free(&o->av);
	it_sqlbuf_free(&o->inner);
}

static void
opnd_init(opnd *o, const it_node *n, const char *col)
{
	memset(o, 0, sizeof(*o));
	o->n = n;
	o->col = col;
	o->stype = -1;
	if (n == NULL)
		return;
	if (n->kind == IT_NODE_VALUE && n->value != NULL) {
		o->cv = n->value;
		o->stype = (int)n->value->type;
	} else if (n->kind == IT_NODE_CALL && n->func == IT_FN_SIZE &&
	    n->nargs == 1) {
		o->stype = IT_N;
		o->is_size = true;
	}
}

/* The operand's jsonb AttributeValue expression (NULL on failure). */
static const char *
opnd_av(it_sql *q, opnd *o, it_error *e)
{
	const it_node *n = o->n;
	opnd in;
	const char *ia;

	if (o->av.len > 0)
		goto out;
	if (o->cv != NULL) {
		if (!it_sql_value_to(q, &o->av, o->cv, e))
			return NULL;
	} else if (o->is_size) {
		opnd_init(&in, n->args[0], o->col);
		ia = opnd_av(q, &in, e);
		if (ia != NULL) {
			it_sqlbuf_cat(&o->inner, ia);
			it_sqlbuf_add(&o->av, "ol_it_size_av(%s)", ia);
		}
		opnd_free(&in);
		if (ia == NULL)
			return NULL;
	} else if (n != NULL && n->kind == IT_NODE_PATH) {
		it_sqlbuf_add(&o->av, "((%s)::jsonb #> ", o->col);
		if (!it_sql_path_to(q, &o->av, &n->path, e))
			return NULL;
		it_sqlbuf_cat(&o->av, ")");
	} else {
		it_sqlbuf_cat(&o->av, "NULL::jsonb");
	}
out:
	if (o->av.oom || o->inner.oom || o->av.p == NULL) {
		q->oom = true;
		it_error_nomem(e);
		return NULL;
	}
	return o->av.p;
}

/* The operand as a scalar of type t (N numeric, S text, B bytea). */
static bool __attribute__((warn_unused_result))
opnd_scalar(it_sql *q, it_sqlbuf *b, opnd *o, it_type t, it_error *e)
{
	const char *a;

	if (o->cv != NULL)
		return scalar_param(q, b, o->cv, e);
	if ((a = opnd_av(q, o, e)) == NULL)
		return false;
	if (o->is_size) {
		it_sqlbuf_add(b, "ol_it_size(%s)", o->inner.p);
		return true;
	}
	switch (t) {
	case IT_N:
		it_sqlbuf_add(b, "((%s)->>'N')::numeric", a);
		break;
	case IT_S:
		it_sqlbuf_add(b, "((%s)->>'S')", a);
		break;
	default:
		it_sqlbuf_add(b, "decode((%s)->>'B', 'base64')", a);
		break;
	}
	return true;
}

static const char *const cmp_sql[] = { "=", "<>", "<", "<=", ">", ">=" };

/* x op y as eval.c's compare(): = and <> by value equality (jsonb equality
 * of canonical AttributeValues), the orderings only between two S, two N or
 * two B. */
static bool __attribute__((warn_unused_result))
cmp_to(it_sql *q, it_sqlbuf *b, it_cmp op, opnd *x, opnd *y, it_error *e)
{
	const char *xa, *ya;
	int t;

	if (op == IT_EQ || op == IT_NE) {
		if (x->stype >= 0 && y->stype >= 0 && x->stype != y->stype) {
			it_sqlbuf_cat(b, op == IT_EQ ? "false" : "true");
			return true;
		}
		if ((xa = opnd_av(q, x, e)) == NULL ||
		    (ya = opnd_av(q, y, e)) == NULL)
			return false;
		it_sqlbuf_add(b, "coalesce(%s %s %s, %s)", xa, cmp_sql[op], ya,
		    op == IT_EQ ? "false" : "true");
		return true;
	}
	if (x->stype >= 0 && y->stype >= 0 && x->stype != y->stype) {
		it_sqlbuf_cat(b, "false");
		return true;
	}
	t = x->stype >= 0 ? x->stype : y->stype;
	if (t < 0) {
		if ((xa = opnd_av(q, x, e)) == NULL ||
		    (ya = opnd_av(q, y, e)) == NULL)
			return false;
		it_sqlbuf_add(b, "coalesce(ol_it_cmp(%s, %s) %s 0, false)", xa,
		    ya, cmp_sql[op]);
		return true;
	}
	if (t != IT_N && t != IT_S && t != IT_B) {
		it_sqlbuf_cat(b, "false");
		return true;
	}
	it_sqlbuf_cat(b, "coalesce(");
	if (!opnd_scalar(q, b, x, (it_type)t, e))
		return false;
	it_sqlbuf_add(b, "%s %s ", t == IT_S ? " COLLATE \"C\"" : "",
	    cmp_sql[op]);
	if (!opnd_scalar(q, b, y, (it_type)t, e))
		return false;
	it_sqlbuf_cat(b, ", false)");
	return true;
}

static bool __attribute__((warn_unused_result))
call_to(it_sql *q, it_sqlbuf *b, const it_node *n, opnd *a, opnd *c,
    it_error *e)
{
	const char *aa, *ca;
	it_type t;

	if ((aa = opnd_av(q, a, e)) == NULL)
		return false;
	switch (n->func) {
	case IT_FN_ATTRIBUTE_EXISTS:
		it_sqlbuf_add(b, "(%s IS NOT NULL)", aa);
		return true;
	case IT_FN_ATTRIBUTE_NOT_EXISTS:
		it_sqlbuf_add(b, "(%s IS NULL)", aa);
		return true;
	case IT_FN_ATTRIBUTE_TYPE:
		if (c->cv == NULL) {
			if ((ca = opnd_av(q, c, e)) == NULL)
				return false;
			it_sqlbuf_add(b, "coalesce(ol_it_is_type(%s, %s), false)",
			    aa, ca);
			return true;
		}
		if (c->cv->type != IT_S || !it_type_from_name(c->cv->u.s.ptr,
		    &t)) {
			it_sqlbuf_cat(b, "false");
			return true;
		}
		it_sqlbuf_add(b, "coalesce(%s ? ", aa);
		if (!it_sql_param_to(q, b, "text", it_type_name(t),
		    strlen(it_type_name(t)), e))
			return false;
		it_sqlbuf_cat(b, ", false)");
		return true;
	case IT_FN_BEGINS_WITH:
		if ((a->stype >= 0 && a->stype != IT_S && a->stype != IT_B) ||
		    (c->stype >= 0 && c->stype != IT_S && c->stype != IT_B) ||
		    (a->stype >= 0 && c->stype >= 0 && a->stype != c->stype)) {
			it_sqlbuf_cat(b, "false");
			return true;
		}
		if (c->cv != NULL && c->cv->type == IT_S) {
			it_sqlbuf_add(b, "coalesce(starts_with((%s->>'S') "
			    "COLLATE \"C\", ", aa);
			if (!scalar_param(q, b, c->cv, e))
				return false;
			it_sqlbuf_cat(b, "), false)");
			return true;
		}
		if ((ca = opnd_av(q, c, e)) == NULL)
			return false;
		it_sqlbuf_add(b, "coalesce(ol_it_begins_with(%s, %s), false)",
		    aa, ca);
		return true;
	case IT_FN_CONTAINS:
		if ((ca = opnd_av(q, c, e)) == NULL)
			return false;
		it_sqlbuf_add(b, "coalesce(ol_it_contains(%s, %s), false)",
		    aa, ca);
		return true;
	default:
		it_sqlbuf_cat(b, "false");
		return true;
	}
}

static bool __attribute__((warn_unused_result))
cond_to(it_sql *q, it_sqlbuf *b, const it_node *n, const char *col,
    it_error *e)
{
	opnd o[3];
	size_t i, k = 0;
	const char *av;
	bool ok = false;

	switch (n->kind) {
	case IT_NODE_AND:
	case IT_NODE_OR:
		it_sqlbuf_cat(b, "(");
		if (!cond_to(q, b, n->args[0], col, e))
			return false;
		it_sqlbuf_cat(b, n->kind == IT_NODE_AND ? " AND " : " OR ");
		if (!cond_to(q, b, n->args[1], col, e))
			return false;
		it_sqlbuf_cat(b, ")");
		return true;
	case IT_NODE_NOT:
		it_sqlbuf_cat(b, "(NOT ");
		if (!cond_to(q, b, n->args[0], col, e))
			return false;
		it_sqlbuf_cat(b, ")");
		return true;
	case IT_NODE_IN:
		if (n->nargs < 2) {
			it_sqlbuf_cat(b, "false");
			return true;
		}
		it_sqlbuf_cat(b, "coalesce(");
		for (i = 0; i < n->nargs; i++) {
			opnd_init(&o[0], n->args[i], col);
			av = opnd_av(q, &o[0], e);
			if (av != NULL)
				it_sqlbuf_add(b, "%s%s", i == 0 ? "" : i == 1 ?
				    " IN (" : ", ", av);
			opnd_free(&o[0]);
			if (av == NULL)
				return false;
		}
		it_sqlbuf_cat(b, "), false)");
		return true;
	case IT_NODE_CMP:
	case IT_NODE_BETWEEN:
	case IT_NODE_CALL:
		break;
	default:
		it_sqlbuf_cat(b, "false");
		return true;
	}
	for (k = 0; k < n->nargs && k < 3; k++)
		opnd_init(&o[k], n->args[k], col);
	if (n->kind == IT_NODE_CMP && k == 2) {
		ok = cmp_to(q, b, n->cmp, &o[0], &o[1], e);
	} else if (n->kind == IT_NODE_BETWEEN && k == 3) {
		it_sqlbuf_cat(b, "(");
		ok = cmp_to(q, b, IT_GE, &o[0], &o[1], e);
		it_sqlbuf_cat(b, " AND ");
		ok = ok && cmp_to(q, b, IT_LE, &o[0], &o[2], e);
		it_sqlbuf_cat(b, ")");
	} else if (n->kind == IT_NODE_CALL && k >= 1) {
		if (k == 1)
			opnd_init(&o[k++], NULL, col);
		ok = call_to(q, b, n, &o[0], &o[1], e);
	} else {
		it_sqlbuf_cat(b, "false");
		ok = true;
	}
	for (i = 0; i < k; i++)
		opnd_free(&o[i]);
	return ok;
}

bool
it_sql_condition(it_sql *q, const it_node *cond, const char *col,
    it_error *e)
{
	it_sqlbuf b = { 0 };
	bool ok = false;

	if (!cond_to(q, &b, cond, col, e) || !it_sql_check(q, &b, e))
		goto fail;
	it_sqlbuf_cat(&q->text, b.p);
	ok = it_sql_check(q, NULL, e);
fail:
	it_sqlbuf_free(&b);
	return ok;
}
