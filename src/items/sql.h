/* SQL compilation of DynamoDB expressions: a condition (or filter) becomes a
 * two-valued boolean SQL expression and an update a jsonb SQL expression
 * computing the new item, both over the stored item (the jsonb of
 * it_item_to_json) and both equal to the in-memory evaluator (eval.h) for
 * every item. Request data (names, path elements, values) only ever travels
 * as text-format parameters; the SQL text holds structure only. The support
 * functions are in sql/003_items_functions.sql; runtime errors are raised
 * there with SQLSTATE IT_SQL_ERRCODE and DynamoDB's message. */
#ifndef IT_SQL_H
#define IT_SQL_H

#include <stdbool.h>
#include <stddef.h>

#include "items/error.h"
#include "items/expr.h"

/* SQLSTATE of the ValidationExceptions raised by the compiled SQL. */
#define IT_SQL_ERRCODE "OLV01"

/* SQL text plus its parameters. Parameters are numbered from base: params[i]
 * is $(base + i), so several fragments (and the caller's own parameters
 * $1 .. $(base - 1)) can share one statement. */
typedef struct it_sqlbuf {
	char *p;		/* NUL-terminated (NULL until used) */
	size_t len, cap;
	bool oom;		/* sticky: an allocation failed */
} it_sqlbuf;

typedef struct it_sql {
	it_sqlbuf text;		/* the SQL text */
	char **params;		/* text-format values (NUL-terminated) */
	char **types;		/* the SQL type each one is cast to */
	size_t nparams, pcap;
	int base;
	bool oom;		/* sticky: an allocation failed */
} it_sql;

/* The SQL text so far ("" when empty). */
const char *it_sql_text(const it_sql *q);

void it_sql_init(it_sql *q, int base);
void it_sql_free(it_sql *q);

/* Appends structure (never request data) to the text. */
bool it_sql_append(it_sql *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), warn_unused_result));
/* Adds a parameter (len bytes, no NUL inside) and appends "$n::type" to the
 * text; an identical value of the same type reuses its number. */
bool it_sql_param(it_sql *q, const char *type, const char *val, size_t len,
    it_error *e) __attribute__((warn_unused_result));
/* The number of the parameter after the last one. */
int it_sql_next_param(const it_sql *q);

/* Appends a boolean expression, never NULL, true exactly when
 * it_eval_condition is true for the item that col (an SQL expression of type
 * jsonb, SQL NULL for "no item") holds. */
bool it_sql_condition(it_sql *q, const it_node *cond, const char *col,
    it_error *e) __attribute__((warn_unused_result));

/* Appends a jsonb expression equal to it_apply_update(u, old, key): col is
 * the old item (SQL NULL: none), key an SQL expression of the key attributes
 * as an item (jsonb, used when col is NULL) or NULL. Raises IT_SQL_ERRCODE
 * with it_apply_update's message where that fails. */
bool it_sql_update(it_sql *q, const it_update *u, const char *col,
    const char *key, it_error *e) __attribute__((warn_unused_result));

#endif
