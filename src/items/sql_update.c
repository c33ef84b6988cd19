/* SQL compilation of update expressions (sql.h): the new item as one jsonb
 * expression, a chain of ol_it_act steps over the old item in eval.c's
 * application order, every operand read from the old item, runtime errors
 * carried as markers and raised once by ol_it_update_end (see
 * sql/003_items_functions.sql). */
#include <stdlib.h>
#include <string.h>

#include "items/eval.h"
#include "items/sql_int.h"

/* The value of a SET operand, read from the old item (col). */
static bool __attribute__((warn_unused_result))
value_to(it_sql *q, it_sqlbuf *b, const it_node *n, const char *col,
    it_error *e)
{
	switch (n->kind) {
	case IT_NODE_VALUE:
		if (n->value == NULL)
			break;
		return it_sql_value_to(q, b, n->value, e);
	case IT_NODE_PATH:
		it_sqlbuf_add(b, "ol_it_need((%s)::jsonb #> ", col);
		if (!it_sql_path_to(q, b, &n->path, e))
			return false;
		it_sqlbuf_cat(b, ")");
		return true;
	case IT_NODE_PLUS:
	case IT_NODE_MINUS:
		it_sqlbuf_cat(b, "ol_it_arith(");
		if (!value_to(q, b, n->args[0], col, e))
			return false;
		it_sqlbuf_cat(b, ", ");
		if (!value_to(q, b, n->args[1], col, e))
			return false;
		it_sqlbuf_cat(b, n->kind == IT_NODE_MINUS ? ", true)" :
		    ", false)");
		return true;
	case IT_NODE_CALL:
		if (n->nargs != 2)
			break;
		if (n->func == IT_FN_IF_NOT_EXISTS &&
		    n->args[0]->kind == IT_NODE_PATH) {
			it_sqlbuf_add(b, "coalesce((%s)::jsonb #> ", col);
			if (!it_sql_path_to(q, b, &n->args[0]->path, e))
				return false;
			it_sqlbuf_cat(b, ", ");
			if (!value_to(q, b, n->args[1], col, e))
				return false;
			it_sqlbuf_cat(b, ")");
			return true;
		}
		if (n->func != IT_FN_LIST_APPEND)
			break;
		it_sqlbuf_cat(b, "ol_it_list_append(");
		if (!value_to(q, b, n->args[0], col, e))
			return false;
		it_sqlbuf_cat(b, ", ");
		if (!value_to(q, b, n->args[1], col, e))
			return false;
		it_sqlbuf_cat(b, ")");
		return true;
	default:
		break;
	}
	it_sqlbuf_cat(b, "ol_it_type_error()");
	return true;
}

/* The value an action writes: SET's operand, ADD's and DELETE's result from
 * the old attribute, nothing for REMOVE. */
static bool __attribute__((warn_unused_result))
action_value_to(it_sql *q, it_sqlbuf *b, const it_uaction *a,
    const char *col, it_error *e)
{
	switch (a->kind) {
	case IT_UPD_SET:
		return value_to(q, b, a->value, col, e);
	case IT_UPD_ADD:
	case IT_UPD_DELETE:
		it_sqlbuf_add(b, "%s((%s)::jsonb #> ", a->kind == IT_UPD_ADD ?
		    "ol_it_add_value" : "ol_it_delete_value", col);
		if (!it_sql_path_to(q, b, &a->path, e))
			return false;
		it_sqlbuf_cat(b, ", ");
		if (a->value == NULL || a->value->value == NULL)
			it_sqlbuf_cat(b, "NULL::jsonb");
		else if (!it_sql_value_to(q, b, a->value->value, e))
			return false;
		it_sqlbuf_cat(b, ")");
		return true;
	case IT_UPD_REMOVE:
		it_sqlbuf_cat(b, "NULL::jsonb");
		return true;
	}
	return true;
}

/* A canonical N of at most 19 characters: below 1E+19 in magnitude with
 * at most 18 decimals (canonical N never has an exponent). */
static bool
small_number(const char *n)
{
	return strlen(n) <= 19;
}

/* SET a = a + :n or SET a = a - :n, with a top-level and :n a small N. */
static bool
counter_shape(const it_uaction *a)
{
	const it_node *v = a->value;
	const it_node *l, *r;

	if (v == NULL || (v->kind != IT_NODE_PLUS && v->kind != IT_NODE_MINUS) ||
	    v->nargs != 2)
		return false;
	l = v->args[0];
	r = v->args[1];
	return l->kind == IT_NODE_PATH && l->path.n == 1 &&
	    !l->path.v[0].is_index && a->path.v[0].name.len ==
	    l->path.v[0].name.len && memcmp(a->path.v[0].name.ptr,
	    l->path.v[0].name.ptr, l->path.v[0].name.len) == 0 &&
	    r->kind == IT_NODE_VALUE && r->value != NULL &&
	    r->value->type == IT_N && small_number(r->value->u.s.ptr);
}

/* The common shape, one SET of a top-level attribute, without a function
 * call on the normal path: the value expression is inlined (and repeated:
 * its parameters keep their numbers), an error marker is raised by
 * ol_it_fail, and only an item that might now exceed 400 KB takes the
 * general path. The bound is safe because an item's DynamoDB size never
 * exceeds the size of its jsonb datum (see ol_it_update_end). */
static bool __attribute__((warn_unused_result))
update_single_set(it_sql *q, const it_uaction *a, const char *col,
    const char *key, it_error *e)
{
	it_sqlbuf acc = { 0 }, v = { 0 }, path = { 0 };
	bool ok = false;

	if (key != NULL)
		it_sqlbuf_add(&acc, "coalesce((%s)::jsonb, (%s)::jsonb, "
		    "'{}'::jsonb)", col, key);
	else
		it_sqlbuf_add(&acc, "coalesce((%s)::jsonb, '{}'::jsonb)", col);
	if (!it_sql_path_to(q, &path, &a->path, e) ||
	    !it_sql_check(q, &acc, e) || !it_sql_check(q, &path, e))
		goto fail;
	if (counter_shape(a)) {
		/* SET a = a +/- :n, the debit and credit of every ledger: when a
		 * is an N and the item is far from 400 KB no error can occur but
		 * a number out of range, so it is one jsonb_set with exact
		 * arithmetic; every other case takes ol_it_set_counter. */
		it_sqlbuf num = { 0 };
		if (!it_sql_value_to(q, &num, a->value->args[1]->value, e) ||
		    !it_sql_check(q, &num, e)) {
			it_sqlbuf_free(&num);
			goto fail;
		}
		/* Both operands are canonical N of at most 19 characters (the
		 * constant checked here, the stored value in SQL): each is below
		 * 1E+19 with at most 18 decimals, so the result has at most 38
		 * significant digits and is in range; trim_scale() gives the
		 * canonical text. One length() tests type, magnitude and scale.
		 * Every other case is one call: PostgreSQL initialises the
		 * branch not taken too, at each execution, and the general
		 * form's inlined arithmetic cost the debit a fifth of its
		 * throughput (sql/008). */
		it_sqlbuf_add(&q->text, "(CASE WHEN pg_column_size(%s) < 409000 "
		    "AND coalesce(length(((%s)::jsonb #> %s) ->> 'N') <= 19, false) "
		    "THEN jsonb_set(%s, %s, jsonb_build_object('N', trim_scale(((("
		    "%s)::jsonb #> %s) ->> 'N')::numeric %c ((%s) ->> 'N')::numeric)"
		    "::text), true) ELSE ol_it_set_counter(%s, %s, %s, %s, %zu) END)",
		    acc.p, col, path.p, acc.p, path.p, col, path.p,
		    a->value->kind == IT_NODE_MINUS ? '-' : '+', num.p, acc.p, path.p,
		    num.p, a->value->kind == IT_NODE_MINUS ? "true" : "false",
		    a->path.v[0].name.len + 16);
		it_sqlbuf_free(&num);
	} else {
		/* One call (sql/008): the value is evaluated once, as its
		 * argument, and the statement carries no subplan. */
		if (!value_to(q, &v, a->value, col, e) || !it_sql_check(q, &v, e))
			goto fail;
		it_sqlbuf_add(&q->text, "ol_it_set_top(%s, %s, %s, %zu)", acc.p,
		    path.p, v.p, a->path.v[0].name.len + 16);
	}
	ok = it_sql_check(q, NULL, e);
fail:
	it_sqlbuf_free(&acc);
	it_sqlbuf_free(&v);
	it_sqlbuf_free(&path);
	return ok;
}

bool
it_sql_update(it_sql *q, const it_update *u, const char *col,
    const char *key, it_error *e)
{
	const it_uaction **order = NULL;
	it_sqlbuf acc = { 0 }, next = { 0 };
	bool ok = false;
	size_t i;

	if (u->n == 1 && u->v[0].kind == IT_UPD_SET && u->v[0].path.n == 1 &&
	    !u->v[0].path.v[0].is_index)
		return update_single_set(q, &u->v[0], col, key, e);
	order = calloc(u->n + 1, sizeof(*order));
	if (order == NULL) {
		it_error_nomem(e);
		goto fail;
	}
	for (i = 0; i < u->n; i++)
		order[i] = &u->v[i];
	it_update_sort(order, u->n);
	if (key != NULL)
		it_sqlbuf_add(&acc, "coalesce((%s)::jsonb, (%s)::jsonb, "
		    "'{}'::jsonb)", col, key);
	else
		it_sqlbuf_add(&acc, "coalesce((%s)::jsonb, '{}'::jsonb)", col);
	for (i = 0; i < u->n; i++) {
		const it_uaction *a = order[i];

		if (a->path.n == 0)
			continue;
		it_sqlbuf_add(&next, "ol_it_act(%s, '%c', ", acc.p,
		    a->kind == IT_UPD_REMOVE ? 'R' : a->kind == IT_UPD_DELETE ?
		    'D' : 'P');
		if (!it_sql_path_to(q, &next, &a->path, e))
			goto fail;
		it_sqlbuf_cat(&next, ", ");
		if (!action_value_to(q, &next, a, col, e))
			goto fail;
		it_sqlbuf_add(&next, ", %zu)", (size_t)(a - u->v));
		if (!it_sql_check(q, &next, e))
			goto fail;
		it_sqlbuf_free(&acc);
		acc = next;
		memset(&next, 0, sizeof(next));
	}
	if (!it_sql_check(q, &acc, e))
		goto fail;
	it_sqlbuf_add(&q->text, "ol_it_update_end(%s)", acc.p);
	ok = it_sql_check(q, NULL, e);
fail:
	it_sqlbuf_free(&acc);
	it_sqlbuf_free(&next);
	free(order);
	return ok;
}
