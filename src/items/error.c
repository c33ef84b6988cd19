/* Error records of the item layer (see error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "items/error.h"

void
it_error_set(it_error *e, it_errcode code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL || e->code != IT_ERR_NONE)
		return;
	e->code = code;
	va_start(ap, fmt);
	if (vasprintf(&e->msg, fmt, ap) < 0)
		e->msg = NULL;
	va_end(ap);
}

void
it_error_nomem(it_error *e)
{
	it_error_set(e, IT_ERR_NOMEM, "Out of memory");
}

void
it_error_clear(it_error *e)
{
	if (e == NULL)
		return;
	free(e->msg);
	e->msg = NULL;
	e->code = IT_ERR_NONE;
}

void
it_error_move(it_error *dst, it_error *src)
{
	it_error_clear(dst);
	*dst = *src;
	src->code = IT_ERR_NONE;
	src->msg = NULL;
}

void
it_error_prefix(it_error *e, const char *prefix)
{
	char *m;

	if (e == NULL || e->code == IT_ERR_NONE || e->code == IT_ERR_NOMEM)
		return;
	if (asprintf(&m, "%s%s", prefix, e->msg ? e->msg : "") < 0)
		return;
	free(e->msg);
	e->msg = m;
}

const char *
it_errcode_name(it_errcode code)
{
	switch (code) {
	case IT_ERR_NONE:
		return "None";
	case IT_ERR_VALIDATION:
		return "ValidationException";
	case IT_ERR_SERIALIZATION:
		return "SerializationException";
	case IT_ERR_NOMEM:
		return "InternalServerError";
	}
	return "InternalServerError";
}
