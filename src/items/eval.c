/* Evaluation of conditions, application of updates and projections on
 * in-memory items, with DynamoDB's runtime semantics (eval.h). */
#include <stdlib.h>
#include <string.h>

#include "items/eval.h"
#include "items/number.h"

#define MSG_TYPE "An operand in the update expression has an incorrect " \
	"data type"
#define MSG_MISSING "The provided expression refers to an attribute that " \
	"does not exist in the item"
#define MSG_BADPATH "The document path provided in the update expression " \
	"is invalid for update"

const it_value *
it_path_get(const it_value *item, const it_path *p)
{
	const it_value *v = item;

	for (size_t i = 0; v != NULL && i < p->n; i++) {
		const it_pathel *el = &p->v[i];

		if (el->is_index) {
			if (v->type != IT_L || el->index >= v->u.l.n)
				return NULL;
			v = v->u.l.v[el->index];
		} else {
			if (v->type != IT_M)
				return NULL;
			v = it_map_get(v, el->name.ptr, el->name.len);
		}
	}
	return v;
}

/* ---- conditions ---- */

/* Java's String.length(): UTF-16 code units of a UTF-8 string. */
static size_t
utf16_len(const it_str *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->len; i++) {
		unsigned char c = (unsigned char)s->ptr[i];

		if ((c & 0xc0) != 0x80)
			n += c >= 0xf0 ? 2 : 1;
	}
	return n;
}

/* An operand's value: borrowed (*v) or computed (*owned, freed by caller);
 * both NULL when the operand is absent. */
static bool
operand(const it_node *n, const it_value *item, const it_value **v,
    it_value **owned)
{
	const it_value *x;
	size_t sz;
	char buf[32];

	*v = NULL;
	*owned = NULL;
	switch (n->kind) {
	case IT_NODE_PATH:
		*v = item != NULL ? it_path_get(item, &n->path) : NULL;
		return true;
	case IT_NODE_VALUE:
		*v = n->value;
		return true;
	case IT_NODE_CALL:
		if (n->func != IT_FN_SIZE || n->nargs != 1)
			return true;
		if (!operand(n->args[0], item, &x, owned))
			return false;
		if (x == NULL)
			return true;
		switch (x->type) {
		case IT_S: sz = utf16_len(&x->u.s); break;
		case IT_B: sz = x->u.s.len; break;
		case IT_M: sz = x->u.m.n; break;
		case IT_L: sz = x->u.l.n; break;
		case IT_SS: case IT_NS: case IT_BS: sz = x->u.set.n; break;
		default:
			it_value_free(*owned);
			*owned = NULL;
			return true;
		}
		it_value_free(*owned);
		snprintf(buf, sizeof(buf), "%zu", sz);
		*owned = it_value_new_str(IT_N, buf, strlen(buf));
		*v = *owned;
		return *owned != NULL;
	default:
		return true;
	}
}

static bool
bytes_has(const it_str *hay, const it_str *needle)
{
	if (needle->len == 0)
		return true;
	return memmem(hay->ptr, hay->len, needle->ptr, needle->len) != NULL;
}

static bool
contains(const it_value *a, const it_value *b)
{
	switch (a->type) {
	case IT_S:
	case IT_B:
		return b->type == a->type && bytes_has(&a->u.s, &b->u.s);
	case IT_SS:
	case IT_NS:
	case IT_BS:
		return b->type == it_set_elem_type(a->type) &&
		    it_set_contains(a, &b->u.s);
	case IT_L:
		for (size_t i = 0; i < a->u.l.n; i++) {
			if (it_value_equal(a->u.l.v[i], b))
				return true;
		}
		return false;
	default:
		return false;
	}
}

static bool
compare(it_cmp op, const it_value *a, const it_value *b)
{
	int c;

	if (op == IT_EQ)
		return a != NULL && b != NULL && it_value_equal(a, b);
	if (op == IT_NE)
		return a == NULL || b == NULL || !it_value_equal(a, b);
	if (a == NULL || b == NULL || !it_value_comparable(a, b))
		return false;
	c = it_value_cmp(a, b);
	switch (op) {
	case IT_LT: return c < 0;
	case IT_LE: return c <= 0;
	case IT_GT: return c > 0;
	case IT_GE: return c >= 0;
	default: return false;
	}
}

static bool
eval_call(const it_node *n, const it_value *item, bool *r)
{
	const it_value *a = NULL, *b = NULL;
	it_value *oa = NULL, *ob = NULL;
	it_type t;
	bool ok = false;

	*r = false;
	if (!operand(n->args[0], item, &a, &oa))
		goto out;
	if (n->nargs > 1 && !operand(n->args[1], item, &b, &ob))
		goto out;
	ok = true;
	switch (n->func) {
	case IT_FN_ATTRIBUTE_EXISTS:
		*r = a != NULL;
		break;
	case IT_FN_ATTRIBUTE_NOT_EXISTS:
		*r = a == NULL;
		break;
	case IT_FN_ATTRIBUTE_TYPE:
		*r = a != NULL && b != NULL && b->type == IT_S &&
		    it_type_from_name(b->u.s.ptr, &t) && a->type == t;
		break;
	case IT_FN_BEGINS_WITH:
		*r = a != NULL && b != NULL && a->type == b->type &&
		    (a->type == IT_S || a->type == IT_B) &&
		    a->u.s.len >= b->u.s.len &&
		    memcmp(a->u.s.ptr, b->u.s.ptr, b->u.s.len) == 0;
		break;
	case IT_FN_CONTAINS:
		*r = a != NULL && b != NULL && contains(a, b);
		break;
	default:
		break;
	}
out:
	it_value_free(oa);
	it_value_free(ob);
	return ok;
}

static bool
eval(const it_node *n, const it_value *item, bool *r, it_error *e)
{
	const it_value *a = NULL, *b = NULL, *c = NULL;
	it_value *oa = NULL, *ob = NULL, *oc = NULL;
	bool x, ok = false;

	*r = false;
	switch (n->kind) {
	case IT_NODE_AND:
	case IT_NODE_OR:
		if (!eval(n->args[0], item, &x, e))
			return false;
		if (x == (n->kind == IT_NODE_OR)) {
			*r = x;
			return true;
		}
		return eval(n->args[1], item, r, e);
	case IT_NODE_NOT:
		if (!eval(n->args[0], item, &x, e))
			return false;
		*r = !x;
		return true;
	case IT_NODE_CALL:
		if (!eval_call(n, item, r))
			goto nomem;
		return true;
	case IT_NODE_CMP:
		if (!operand(n->args[0], item, &a, &oa) ||
		    !operand(n->args[1], item, &b, &ob))
			goto nomem;
		*r = compare(n->cmp, a, b);
		break;
	case IT_NODE_BETWEEN:
		if (!operand(n->args[0], item, &a, &oa) ||
		    !operand(n->args[1], item, &b, &ob) ||
		    !operand(n->args[2], item, &c, &oc))
			goto nomem;
		*r = compare(IT_GE, a, b) && compare(IT_LE, a, c);
		break;
	case IT_NODE_IN:
		if (!operand(n->args[0], item, &a, &oa))
			goto nomem;
		for (size_t i = 1; !*r && i < n->nargs; i++) {
			if (!operand(n->args[i], item, &b, &ob))
				goto nomem;
			*r = compare(IT_EQ, a, b);
			it_value_free(ob);
			ob = NULL;
		}
		break;
	default:
		break;
	}
	ok = true;
	goto out;
nomem:
	it_error_nomem(e);
out:
	it_value_free(oa);
	it_value_free(ob);
	it_value_free(oc);
	return ok;
}

bool
it_eval_condition(const it_node *cond, const it_value *item, bool *result,
    it_error *e)
{
	return eval(cond, item, result, e);
}

/* ---- updates ---- */

/* Computes the value of a SET operand against the old item. */
static bool
set_value(const it_node *n, const it_value *old, it_value **out, it_error *e)
{
	const it_value *v;
	it_value *a = NULL, *b = NULL, *r = NULL;
	char *s = NULL;
	size_t i;

	*out = NULL;
	switch (n->kind) {
	case IT_NODE_VALUE:
	case IT_NODE_PATH:
		v = n->kind == IT_NODE_VALUE ? n->value :
		    old != NULL ? it_path_get(old, &n->path) : NULL;
		if (v == NULL) {
			it_error_set(e, IT_ERR_VALIDATION, MSG_MISSING);
			return false;
		}
		*out = it_value_copy(v);
		goto check_mem;
	case IT_NODE_PLUS:
	case IT_NODE_MINUS:
		if (!set_value(n->args[0], old, &a, e) ||
		    !set_value(n->args[1], old, &b, e))
			goto fail;
		if (a->type != IT_N || b->type != IT_N) {
			it_error_set(e, IT_ERR_VALIDATION, MSG_TYPE);
			goto fail;
		}
		if (!(n->kind == IT_NODE_PLUS ? it_num_add(a->u.s.ptr,
		    b->u.s.ptr, &s, e) : it_num_sub(a->u.s.ptr, b->u.s.ptr, &s,
		    e)))
			goto fail;
		*out = it_value_new_str(IT_N, s, strlen(s));
		free(s);
		break;
	case IT_NODE_CALL:
		if (n->func == IT_FN_IF_NOT_EXISTS) {
			v = old != NULL ? it_path_get(old, &n->args[0]->path) : NULL;
			if (v != NULL) {
				*out = it_value_copy(v);
				goto check_mem;
			}
			return set_value(n->args[1], old, out, e);
		}
		if (!set_value(n->args[0], old, &a, e) ||
		    !set_value(n->args[1], old, &b, e))
			goto fail;
		if (a->type != IT_L || b->type != IT_L) {
			it_error_set(e, IT_ERR_VALIDATION, MSG_TYPE);
			goto fail;
		}
		r = it_value_new_list();
		if (r == NULL)
			break;
		for (i = 0; i < a->u.l.n + b->u.l.n; i++) {
			it_value *c = it_value_copy(i < a->u.l.n ? a->u.l.v[i] :
			    b->u.l.v[i - a->u.l.n]);

			if (c == NULL || !it_list_append(r, c)) {
				it_value_free(c);
				it_value_free(r);
				r = NULL;
				break;
			}
		}
		*out = r;
		break;
	default:
		it_error_set(e, IT_ERR_VALIDATION, MSG_TYPE);
		return false;
	}
	it_value_free(a);
	it_value_free(b);
check_mem:
	if (*out == NULL) {
		it_error_nomem(e);
		return false;
	}
	return true;
fail:
	it_value_free(a);
	it_value_free(b);
	return false;
}

/* The container holding the last element of p, or NULL (invalid path). */
static it_value *
parent_of(it_value *item, const it_path *p)
{
	it_value *v = item;

	for (size_t i = 0; v != NULL && i + 1 < p->n; i++) {
		const it_pathel *el = &p->v[i];

		if (el->is_index)
			v = v->type == IT_L && el->index < v->u.l.n ?
			    v->u.l.v[el->index] : NULL;
		else
			v = v->type == IT_M ? it_map_get(v, el->name.ptr,
			    el->name.len) : NULL;
	}
	return v;
}

/* Stores v (owned) at p; lists grow at the end for indexes past it. */
static bool
put_at(it_value *item, const it_path *p, it_value *v, it_error *e)
{
	it_value *parent = parent_of(item, p);
	const it_pathel *last = &p->v[p->n - 1];

	if (parent == NULL || parent->type != (last->is_index ? IT_L : IT_M)) {
		it_error_set(e, IT_ERR_VALIDATION, MSG_BADPATH);
		goto fail;
	}
	if (!last->is_index) {
		if (!it_map_set(parent, last->name.ptr, last->name.len, v))
			goto nomem;
		return true;
	}
	if (last->index < parent->u.l.n) {
		it_value_free(parent->u.l.v[last->index]);
		parent->u.l.v[last->index] = v;
		return true;
	}
	if (!it_list_append(parent, v))
		goto nomem;
	return true;
nomem:
	it_error_nomem(e);
fail:
	it_value_free(v);
	return false;
}

static bool
remove_at(it_value *item, const it_path *p, it_error *e)
{
	it_value *parent = parent_of(item, p);
	const it_pathel *last = &p->v[p->n - 1];

	if (parent == NULL) {
		if (p->n == 1)
			return true;
		it_error_set(e, IT_ERR_VALIDATION, MSG_BADPATH);
		return false;
	}
	if (!last->is_index) {
		if (parent->type == IT_M)
			it_map_remove(parent, last->name.ptr, last->name.len);
		else {
			it_error_set(e, IT_ERR_VALIDATION, MSG_BADPATH);
			return false;
		}
		return true;
	}
	if (parent->type != IT_L) {
		it_error_set(e, IT_ERR_VALIDATION, MSG_BADPATH);
		return false;
	}
	if (last->index < parent->u.l.n) {
		it_value_free(parent->u.l.v[last->index]);
		memmove(&parent->u.l.v[last->index],
		    &parent->u.l.v[last->index + 1],
		    (parent->u.l.n - last->index - 1) * sizeof(it_value *));
		parent->u.l.n--;
	}
	return true;
}

/* ADD and DELETE: the new value at the path, or NULL to remove it. */
static bool
add_delete(const it_uaction *a, const it_value *cur, it_value **out,
    it_error *e)
{
	const it_value *v = a->value->value;
	char *s = NULL;

	*out = NULL;
	if (a->kind == IT_UPD_DELETE) {
		if (cur == NULL)
			return true;
		if (cur->type != v->type || (v->type != IT_SS &&
		    v->type != IT_NS && v->type != IT_BS))
			goto type;
		if (!it_set_minus(cur, v, out))
			goto nomem;
		if ((*out)->u.set.n == 0) {
			it_value_free(*out);
			*out = NULL;
		}
		return true;
	}
	if (cur == NULL) {
		*out = it_value_copy(v);
		return *out != NULL ? true : (it_error_nomem(e), false);
	}
	if (cur->type != v->type)
		goto type;
	if (v->type == IT_N) {
		if (!it_num_add(cur->u.s.ptr, v->u.s.ptr, &s, e))
			return false;
		*out = it_value_new_str(IT_N, s, strlen(s));
		free(s);
		return *out != NULL ? true : (it_error_nomem(e), false);
	}
	if (v->type != IT_SS && v->type != IT_NS && v->type != IT_BS)
		goto type;
	if (!it_set_union(cur, v, out))
		goto nomem;
	return true;
type:
	it_error_set(e, IT_ERR_VALIDATION, MSG_TYPE);
	return false;
nomem:
	it_error_nomem(e);
	return false;
}

static size_t
last_index(const it_uaction *a)
{
	const it_pathel *el = &a->path.v[a->path.n - 1];

	return el->is_index ? el->index : 0;
}

/* Application order: SET, ADD and DELETE first (list appends by ascending
 * index), then REMOVE by descending index so that every index names an
 * element of the original list, as DynamoDB reads them. */
static int
action_order(const void *x, const void *y)
{
	const it_uaction *a = *(const it_uaction *const *)x;
	const it_uaction *b = *(const it_uaction *const *)y;
	bool ra = a->kind == IT_UPD_REMOVE, rb = b->kind == IT_UPD_REMOVE;
	size_t ia = last_index(a), ib = last_index(b);

	if (ra != rb)
		return ra ? 1 : -1;
	if (ia != ib)
		return (ra ? ia < ib : ia > ib) ? 1 : -1;
	return (a > b) - (a < b);
}

void
it_update_sort(const it_uaction **order, size_t n)
{
	qsort(order, n, sizeof(*order), action_order);
}

bool
it_apply_update(const it_update *u, const it_value *item, const it_value *key,
    it_value **out, it_error *e)
{
	const it_value *base = item != NULL ? item : key;
	it_value *ni, **vals = NULL;
	const it_uaction **order = NULL;
	size_t i;

	*out = NULL;
	ni = base != NULL ? it_value_copy(base) : it_value_new_map();
	vals = calloc(u->n + 1, sizeof(*vals));
	order = calloc(u->n + 1, sizeof(*order));
	if (ni == NULL || vals == NULL || order == NULL) {
		it_error_nomem(e);
		goto fail;
	}
	/* Every operand reads the item as it was before the update. */
	for (i = 0; i < u->n; i++) {
		const it_uaction *a = &u->v[i];

		order[i] = a;
		if (a->kind == IT_UPD_SET) {
			if (!set_value(a->value, item, &vals[i], e))
				goto fail;
		} else if (a->kind != IT_UPD_REMOVE) {
			if (!add_delete(a, item != NULL ? it_path_get(item,
			    &a->path) : NULL, &vals[i], e))
				goto fail;
		}
	}
	it_update_sort(order, u->n);
	for (i = 0; i < u->n; i++) {
		const it_uaction *a = order[i];
		size_t k = (size_t)(a - u->v);

		if (a->kind == IT_UPD_REMOVE ||
		    (a->kind == IT_UPD_DELETE && vals[k] == NULL)) {
			if (a->kind == IT_UPD_DELETE && (item == NULL ||
			    it_path_get(item, &a->path) == NULL))
				continue;
			if (!remove_at(ni, &a->path, e))
				goto fail;
			continue;
		}
		if (!put_at(ni, &a->path, vals[k], e)) {
			vals[k] = NULL;
			goto fail;
		}
		vals[k] = NULL;
	}
	if (it_item_size(ni) > IT_MAX_ITEM_SIZE) {
		it_error_set(e, IT_ERR_VALIDATION, "Item size to update has "
		    "exceeded the maximum allowed size");
		goto fail;
	}
	*out = ni;
	ni = NULL;
fail:
	for (i = 0; vals != NULL && i < u->n; i++)
		it_value_free(vals[i]);
	free(vals);
	free(order);
	it_value_free(ni);
	return *out != NULL;
}

/* ---- projections ---- */

/* A selection trie: which elements of a value to keep. */
typedef struct sel {
	bool whole;		/* keep the whole value */
	const it_pathel *el;	/* the element this node selects */
	struct sel *kids;
	size_t n;
} sel;

static void
sel_free(sel *s)
{
	for (size_t i = 0; i < s->n; i++)
		sel_free(&s->kids[i]);
	free(s->kids);
}

static bool
el_same(const it_pathel *a, const it_pathel *b)
{
	if (a->is_index != b->is_index)
		return false;
	return a->is_index ? a->index == b->index : (a->name.len ==
	    b->name.len && memcmp(a->name.ptr, b->name.ptr, a->name.len) == 0);
}

static bool
sel_add(sel *s, const it_path *p, size_t from)
{
	sel *k = NULL, *nk;

	if (from == p->n) {
		s->whole = true;
		return true;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (el_same(s->kids[i].el, &p->v[from]))
			k = &s->kids[i];
	}
	if (k == NULL) {
		nk = realloc(s->kids, (s->n + 1) * sizeof(*nk));
		if (nk == NULL)
			return false;
		s->kids = nk;
		k = &nk[s->n++];
		memset(k, 0, sizeof(*k));
		k->el = &p->v[from];
	}
	return sel_add(k, p, from + 1);
}

static int
sel_index_order(const void *x, const void *y)
{
	const sel *a = x, *b = y;

	return (a->el->index > b->el->index) - (a->el->index < b->el->index);
}

/* Copies the selected parts of v; *out NULL when nothing is selected. */
static bool
sel_copy(sel *s, const it_value *v, it_value **out)
{
	it_value *r = NULL, *c;

	*out = NULL;
	if (s->whole) {
		*out = it_value_copy(v);
		return *out != NULL;
	}
	if (v->type == IT_L)
		qsort(s->kids, s->n, sizeof(sel), sel_index_order);
	for (size_t i = 0; i < s->n; i++) {
		const it_pathel *el = s->kids[i].el;
		const it_value *child = NULL;

		if (el->is_index && v->type == IT_L && el->index < v->u.l.n)
			child = v->u.l.v[el->index];
		else if (!el->is_index && v->type == IT_M)
			child = it_map_get(v, el->name.ptr, el->name.len);
		if (child == NULL)
			continue;
		if (!sel_copy(&s->kids[i], child, &c))
			goto fail;
		if (c == NULL)
			continue;
		if (r == NULL)
			r = v->type == IT_L ? it_value_new_list() :
			    it_value_new_map();
		if (r == NULL || !(v->type == IT_L ? it_list_append(r, c) :
		    it_map_set(r, el->name.ptr, el->name.len, c))) {
			it_value_free(c);
			goto fail;
		}
	}
	*out = r;
	return true;
fail:
	it_value_free(r);
	return false;
}

static bool
project_paths(it_path *const *paths, size_t n, const it_value *item,
    it_value **out, it_error *e)
{
	sel root;
	bool ok = true;

	memset(&root, 0, sizeof(root));
	*out = NULL;
	for (size_t i = 0; ok && i < n; i++)
		ok = sel_add(&root, paths[i], 0);
	if (ok && item != NULL)
		ok = sel_copy(&root, item, out);
	if (ok && *out == NULL)
		ok = (*out = it_value_new_map()) != NULL;
	sel_free(&root);
	if (!ok) {
		it_value_free(*out);
		*out = NULL;
		it_error_nomem(e);
	}
	return ok;
}

bool
it_project(const it_projection *p, const it_value *item, it_value **out,
    it_error *e)
{
	it_path **paths = calloc(p->n + 1, sizeof(*paths));
	bool ok;

	if (paths == NULL) {
		it_error_nomem(e);
		return false;
	}
	for (size_t i = 0; i < p->n; i++)
		paths[i] = &p->v[i];
	ok = project_paths(paths, p->n, item, out, e);
	free(paths);
	return ok;
}

bool
it_updated_attrs(const it_update *u, const it_value *item, it_value **out,
    it_error *e)
{
	it_path **paths = calloc(u->n + 1, sizeof(*paths));
	bool ok;

	if (paths == NULL) {
		it_error_nomem(e);
		return false;
	}
	for (size_t i = 0; i < u->n; i++)
		paths[i] = (it_path *)&u->v[i].path;
	ok = project_paths(paths, u->n, item, out, e);
	free(paths);
	return ok;
}
