/* Internals shared by the SQL compilation modules (sql.c: builder and
 * conditions, sql_update.c: updates): growing text buffers and the
 * parameters that carry request data. */
#ifndef IT_SQL_INT_H
#define IT_SQL_INT_H

#include "items/sql.h"

/* Appends to a buffer; failures are sticky in b->oom. */
void it_sqlbuf_add(it_sqlbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void it_sqlbuf_cat(it_sqlbuf *b, const char *s);
void it_sqlbuf_free(it_sqlbuf *b);
/* Moves b's text out (never NULL unless b->oom). */
char *it_sqlbuf_take(it_sqlbuf *b);

/* Registers a parameter and appends "$n::type" to b. */
bool it_sql_param_to(it_sql *q, it_sqlbuf *b, const char *type,
    const char *val, size_t len, it_error *e)
	__attribute__((warn_unused_result));
/* A document path as a #> parameter: "$n::text[]" holding
 * {name,M,name,L,2,...}. */
bool it_sql_path_to(it_sql *q, it_sqlbuf *b, const it_path *p, it_error *e)
	__attribute__((warn_unused_result));
/* A value as a jsonb parameter: "$n::jsonb" (DynamoDB JSON, canonical). */
bool it_sql_value_to(it_sql *q, it_sqlbuf *b, const it_value *v,
    it_error *e) __attribute__((warn_unused_result));
/* The checks common to the entry points: buffer failures become NOMEM. */
bool it_sql_check(it_sql *q, it_sqlbuf *b, it_error *e)
	__attribute__((warn_unused_result));

#endif
