/* The AttributeValue model: construction, DynamoDB JSON decoding with
 * DynamoDB's validation, encoding, sizes, equality and ordering (value.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "items/number.h"
#include "items/value.h"

#define PFX "One or more parameter values were invalid: "

static const char *const type_names[] = {
	[IT_S] = "S", [IT_N] = "N", [IT_B] = "B", [IT_BOOL] = "BOOL",
	[IT_NULL] = "NULL", [IT_M] = "M", [IT_L] = "L", [IT_SS] = "SS",
	[IT_NS] = "NS", [IT_BS] = "BS",
};

const char *
it_type_name(it_type t)
{
	return (unsigned)t <= IT_BS ? type_names[t] : "?";
}

bool
it_type_from_name(const char *name, it_type *t)
{
	for (unsigned i = 0; i <= IT_BS; i++) {
		if (strcmp(name, type_names[i]) == 0) {
			*t = (it_type)i;
			return true;
		}
	}
	return false;
}

it_type
it_set_elem_type(it_type set_type)
{
	return set_type == IT_NS ? IT_N : set_type == IT_BS ? IT_B : IT_S;
}

static bool
str_init(it_str *s, const char *p, size_t len)
{
	s->ptr = malloc(len + 1);
	if (s->ptr == NULL)
		return false;
	if (len > 0)
		memcpy(s->ptr, p, len);
	s->ptr[len] = '\0';
	s->len = len;
	return true;
}

static it_value *
value_alloc(it_type t)
{
	it_value *v = calloc(1, sizeof(*v));

	if (v != NULL)
		v->type = t;
	return v;
}

it_value *
it_value_new_str(it_type t, const char *p, size_t len)
{
	it_value *v = value_alloc(t);

	if (v != NULL && !str_init(&v->u.s, p, len)) {
		free(v);
		return NULL;
	}
	return v;
}

it_value *
it_value_new_bool(bool b)
{
	it_value *v = value_alloc(IT_BOOL);

	if (v != NULL)
		v->u.b = b;
	return v;
}

it_value *
it_value_new_null(void)
{
	it_value *v = value_alloc(IT_NULL);

	if (v != NULL)
		v->u.b = true;
	return v;
}

it_value *
it_value_new_map(void)
{
	return value_alloc(IT_M);
}

it_value *
it_value_new_list(void)
{
	return value_alloc(IT_L);
}

void
it_value_free(it_value *v)
{
	size_t i;

	if (v == NULL)
		return;
	switch (v->type) {
	case IT_S:
	case IT_N:
	case IT_B:
		free(v->u.s.ptr);
		break;
	case IT_M:
		for (i = 0; i < v->u.m.n; i++) {
			free(v->u.m.v[i].name.ptr);
			it_value_free(v->u.m.v[i].value);
		}
		free(v->u.m.v);
		break;
	case IT_L:
		for (i = 0; i < v->u.l.n; i++)
			it_value_free(v->u.l.v[i]);
		free(v->u.l.v);
		break;
	case IT_SS:
	case IT_NS:
	case IT_BS:
		for (i = 0; i < v->u.set.n; i++)
			free(v->u.set.v[i].ptr);
		free(v->u.set.v);
		break;
	case IT_BOOL:
	case IT_NULL:
		break;
	}
	free(v);
}

it_value *
it_value_copy(const it_value *v)
{
	it_value *c;
	size_t i;

	switch (v->type) {
	case IT_S:
	case IT_N:
	case IT_B:
		return it_value_new_str(v->type, v->u.s.ptr, v->u.s.len);
	case IT_BOOL:
		return it_value_new_bool(v->u.b);
	case IT_NULL:
		return it_value_new_null();
	case IT_M:
		c = it_value_new_map();
		if (c == NULL)
			return NULL;
		c->u.m.v = calloc(v->u.m.n ? v->u.m.n : 1, sizeof(it_attr));
		if (c->u.m.v == NULL)
			goto fail;
		for (i = 0; i < v->u.m.n; i++) {
			it_attr *a = &c->u.m.v[i];

			if (!str_init(&a->name, v->u.m.v[i].name.ptr,
			    v->u.m.v[i].name.len))
				goto fail;
			c->u.m.n++;
			a->value = it_value_copy(v->u.m.v[i].value);
			if (a->value == NULL)
				goto fail;
		}
		return c;
	case IT_L:
		c = it_value_new_list();
		if (c == NULL)
			return NULL;
		c->u.l.v = calloc(v->u.l.n ? v->u.l.n : 1, sizeof(it_value *));
		if (c->u.l.v == NULL)
			goto fail;
		for (i = 0; i < v->u.l.n; i++) {
			c->u.l.v[i] = it_value_copy(v->u.l.v[i]);
			if (c->u.l.v[i] == NULL)
				goto fail;
			c->u.l.n++;
		}
		return c;
	case IT_SS:
	case IT_NS:
	case IT_BS:
		c = value_alloc(v->type);
		if (c == NULL)
			return NULL;
		c->u.set.v = calloc(v->u.set.n ? v->u.set.n : 1, sizeof(it_str));
		if (c->u.set.v == NULL)
			goto fail;
		for (i = 0; i < v->u.set.n; i++) {
			if (!str_init(&c->u.set.v[i], v->u.set.v[i].ptr,
			    v->u.set.v[i].len))
				goto fail;
			c->u.set.n++;
		}
		return c;
	}
	return NULL;
fail:
	it_value_free(c);
	return NULL;
}

static int
bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);

	if (r != 0)
		return r < 0 ? -1 : 1;
	return (al > bl) - (al < bl);
}

/* Binary search in a map; returns the index where name is or would go. */
static size_t
map_find(const it_value *m, const char *name, size_t len, bool *found)
{
	size_t lo = 0, hi = m->u.m.n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = bytes_cmp(m->u.m.v[mid].name.ptr, m->u.m.v[mid].name.len,
		    name, len);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

it_value *
it_map_get(const it_value *m, const char *name, size_t len)
{
	bool found;
	size_t i;

	if (m == NULL || m->type != IT_M)
		return NULL;
	i = map_find(m, name, len, &found);
	return found ? m->u.m.v[i].value : NULL;
}

bool
it_map_set(it_value *m, const char *name, size_t len, it_value *v)
{
	bool found;
	size_t i = map_find(m, name, len, &found);
	it_attr *nv;

	if (found) {
		it_value_free(m->u.m.v[i].value);
		m->u.m.v[i].value = v;
		return true;
	}
	nv = realloc(m->u.m.v, (m->u.m.n + 1) * sizeof(*nv));
	if (nv == NULL)
		return false;
	m->u.m.v = nv;
	memmove(&nv[i + 1], &nv[i], (m->u.m.n - i) * sizeof(*nv));
	if (!str_init(&nv[i].name, name, len)) {
		memmove(&nv[i], &nv[i + 1], (m->u.m.n - i) * sizeof(*nv));
		return false;
	}
	nv[i].value = v;
	m->u.m.n++;
	return true;
}

bool
it_map_remove(it_value *m, const char *name, size_t len)
{
	bool found;
	size_t i = map_find(m, name, len, &found);

	if (!found)
		return false;
	free(m->u.m.v[i].name.ptr);
	it_value_free(m->u.m.v[i].value);
	memmove(&m->u.m.v[i], &m->u.m.v[i + 1],
	    (m->u.m.n - i - 1) * sizeof(it_attr));
	m->u.m.n--;
	return true;
}

bool
it_list_append(it_value *l, it_value *v)
{
	it_value **nv = realloc(l->u.l.v, (l->u.l.n + 1) * sizeof(*nv));

	if (nv == NULL)
		return false;
	l->u.l.v = nv;
	nv[l->u.l.n++] = v;
	return true;
}

int
it_str_cmp(it_type set_type, const it_str *a, const it_str *b)
{
	if (set_type == IT_NS || set_type == IT_N)
		return it_num_cmp(a->ptr, b->ptr);
	return bytes_cmp(a->ptr, a->len, b->ptr, b->len);
}

bool
it_value_comparable(const it_value *a, const it_value *b)
{
	return a->type == b->type &&
	    (a->type == IT_S || a->type == IT_N || a->type == IT_B);
}

int
it_value_cmp(const it_value *a, const it_value *b)
{
	if (!it_value_comparable(a, b))
		return 0;
	return it_str_cmp(a->type, &a->u.s, &b->u.s);
}

bool
it_value_equal(const it_value *a, const it_value *b)
{
	size_t i;

	if (a->type != b->type)
		return false;
	switch (a->type) {
	case IT_S:
	case IT_B:
		return bytes_cmp(a->u.s.ptr, a->u.s.len, b->u.s.ptr,
		    b->u.s.len) == 0;
	case IT_N:
		return it_num_cmp(a->u.s.ptr, b->u.s.ptr) == 0;
	case IT_BOOL:
		return a->u.b == b->u.b;
	case IT_NULL:
		return true;
	case IT_M:
		if (a->u.m.n != b->u.m.n)
			return false;
		for (i = 0; i < a->u.m.n; i++) {
			if (bytes_cmp(a->u.m.v[i].name.ptr, a->u.m.v[i].name.len,
			    b->u.m.v[i].name.ptr, b->u.m.v[i].name.len) != 0 ||
			    !it_value_equal(a->u.m.v[i].value,
			    b->u.m.v[i].value))
				return false;
		}
		return true;
	case IT_L:
		if (a->u.l.n != b->u.l.n)
			return false;
		for (i = 0; i < a->u.l.n; i++) {
			if (!it_value_equal(a->u.l.v[i], b->u.l.v[i]))
				return false;
		}
		return true;
	case IT_SS:
	case IT_NS:
	case IT_BS:
		if (a->u.set.n != b->u.set.n)
			return false;
		for (i = 0; i < a->u.set.n; i++) {
			if (it_str_cmp(a->type, &a->u.set.v[i],
			    &b->u.set.v[i]) != 0)
				return false;
		}
		return true;
	}
	return false;
}

bool
it_set_contains(const it_value *set, const it_str *member)
{
	size_t lo = 0, hi = set->u.set.n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = it_str_cmp(set->type, &set->u.set.v[mid], member);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Merges two sorted sets: keep members of a (all, or only those not in b)
 * and, for a union, members of b. */
static bool
set_merge(const it_value *a, const it_value *b, bool uni, it_value **out)
{
	it_value *r = value_alloc(a->type);
	size_t i = 0, j = 0;

	*out = NULL;
	if (r == NULL)
		return false;
	r->u.set.v = calloc(a->u.set.n + b->u.set.n + 1, sizeof(it_str));
	if (r->u.set.v == NULL)
		goto fail;
	while (i < a->u.set.n || j < b->u.set.n) {
		const it_str *pick = NULL;
		int c;

		if (i >= a->u.set.n)
			c = 1;
		else if (j >= b->u.set.n)
			c = -1;
		else
			c = it_str_cmp(a->type, &a->u.set.v[i], &b->u.set.v[j]);
		if (c < 0) {
			pick = &a->u.set.v[i++];
		} else if (c > 0) {
			if (uni)
				pick = &b->u.set.v[j];
			j++;
		} else {
			if (uni)
				pick = &a->u.set.v[i];
			i++;
			j++;
		}
		if (pick != NULL) {
			if (!str_init(&r->u.set.v[r->u.set.n], pick->ptr,
			    pick->len))
				goto fail;
			r->u.set.n++;
		}
	}
	*out = r;
	return true;
fail:
	it_value_free(r);
	return false;
}

bool
it_set_union(const it_value *a, const it_value *b, it_value **out)
{
	return set_merge(a, b, true, out);
}

bool
it_set_minus(const it_value *a, const it_value *b, it_value **out)
{
	return set_merge(a, b, false, out);
}

/* ---- sizes ---- */

static size_t
num_size(const it_str *s)
{
	return (it_num_digits(s->ptr) + 1) / 2 + 1;
}

size_t
it_value_size(const it_value *v)
{
	size_t n = 0, i;

	switch (v->type) {
	case IT_S:
	case IT_B:
		return v->u.s.len;
	case IT_N:
		return num_size(&v->u.s);
	case IT_BOOL:
	case IT_NULL:
		return 1;
	case IT_M:
		n = 3;
		for (i = 0; i < v->u.m.n; i++)
			n += 1 + v->u.m.v[i].name.len +
			    it_value_size(v->u.m.v[i].value);
		return n;
	case IT_L:
		n = 3;
		for (i = 0; i < v->u.l.n; i++)
			n += 1 + it_value_size(v->u.l.v[i]);
		return n;
	case IT_SS:
	case IT_BS:
		for (i = 0; i < v->u.set.n; i++)
			n += v->u.set.v[i].len;
		return n;
	case IT_NS:
		for (i = 0; i < v->u.set.n; i++)
			n += num_size(&v->u.set.v[i]);
		return n;
	}
	return 0;
}

size_t
it_item_size(const it_value *item)
{
	size_t n = 0;

	for (size_t i = 0; i < item->u.m.n; i++)
		n += item->u.m.v[i].name.len +
		    it_value_size(item->u.m.v[i].value);
	return n;
}

bool
it_item_check_size(const it_value *item, it_error *e)
{
	if (it_item_size(item) > IT_MAX_ITEM_SIZE) {
		it_error_set(e, IT_ERR_VALIDATION,
		    "Item size has exceeded the maximum allowed size");
		return false;
	}
	return true;
}

/* ---- key attributes ---- */

bool
it_check_key_attr(const char *name, const it_value *v, it_type want,
    bool sort, it_error *e)
{
	if (v->type != want) {
		it_error_set(e, IT_ERR_VALIDATION, PFX "Type mismatch for key %s "
		    "expected: %s actual: %s", name, it_type_name(want),
		    it_type_name(v->type));
		return false;
	}
	if ((v->type == IT_S || v->type == IT_B) && v->u.s.len == 0) {
		it_error_set(e, IT_ERR_VALIDATION, "One or more parameter values "
		    "are not valid. The AttributeValue for a key attribute "
		    "cannot contain an empty %s value. Key: %s",
		    v->type == IT_S ? "string" : "binary", name);
		return false;
	}
	if (v->type == IT_S && memchr(v->u.s.ptr, '\0', v->u.s.len) != NULL) {
		/* stored keys are text: a NUL would cut the key short and name
		 * another item */
		it_error_set(e, IT_ERR_VALIDATION, "%s", IT_MSG_NUL);
		return false;
	}
	if ((v->type == IT_S || v->type == IT_B) && v->u.s.len >
	    (sort ? IT_SORT_KEY_MAX : IT_PARTITION_KEY_MAX)) {
		it_error_set(e, IT_ERR_VALIDATION, "%s", sort ?
		    PFX "Aggregated size of all range keys has exceeded the "
		    "size limit of 1024 bytes" :
		    PFX "Size of hashkey has exceeded the maximum size limit "
		    "of2048 bytes");
		return false;
	}
	return true;
}
