/* The in-memory evaluator: conditions evaluated against an item, update
 * expressions applied to an item, projections, and the attribute sets that
 * ReturnValues asks for. It is the reference semantics of the item layer:
 * tests use it, ReturnValues use it, and the SQL compilation is checked
 * against it. Runtime errors carry DynamoDB's messages. */
#ifndef IT_EVAL_H
#define IT_EVAL_H

#include "items/expr.h"
#include "items/value.h"

/* Looks a document path up in an item (an M value); NULL when absent. */
const it_value *it_path_get(const it_value *item, const it_path *p);

/* Evaluates a condition (or filter) against item; item NULL means "no
 * item" (every path is absent). */
bool it_eval_condition(const it_node *cond, const it_value *item,
    bool *result, it_error *e) __attribute__((warn_unused_result));

/* Applies an update to a copy of item (NULL: start from key, which may also
 * be NULL) and returns the new item in *out. */
bool it_apply_update(const it_update *u, const it_value *item,
    const it_value *key, it_value **out, it_error *e)
	__attribute__((warn_unused_result));

/* Sorts an update's actions (pointers into u->v) into the order they are
 * applied in: SET, ADD and DELETE by ascending last list index, then REMOVE
 * by descending index; ties in expression order. The SQL compilation uses
 * the same order, so it lives here once. */
void it_update_sort(const it_uaction **order, size_t n);

/* The item restricted to the projected paths (lists keep the selected
 * elements in index order). */
bool it_project(const it_projection *p, const it_value *item, it_value **out,
    it_error *e) __attribute__((warn_unused_result));

/* ReturnValues UPDATED_OLD / UPDATED_NEW: the attributes the update wrote,
 * taken from item (the old or the new one); *out may be an empty map. */
bool it_updated_attrs(const it_update *u, const it_value *item,
    it_value **out, it_error *e) __attribute__((warn_unused_result));

#endif
