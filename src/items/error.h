/* Errors of the item layer: a DynamoDB error type plus the exact message
 * DynamoDB would send, carried out of every fallible call (tmux's cause). */
#ifndef IT_ERROR_H
#define IT_ERROR_H

#include <stdbool.h>

typedef enum it_errcode {
	IT_ERR_NONE = 0,
	IT_ERR_VALIDATION,	/* ValidationException */
	IT_ERR_SERIALIZATION,	/* SerializationException */
	IT_ERR_NOMEM,		/* out of memory (InternalServerError) */
} it_errcode;

typedef struct it_error {
	it_errcode code;
	char *msg;		/* malloc'd; NULL when code == IT_ERR_NONE */
} it_error;

/* Records an error; the first one recorded wins until cleared. */
void it_error_set(it_error *e, it_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void it_error_nomem(it_error *e);
void it_error_clear(it_error *e);
/* Moves src into dst (dst cleared first), leaving src empty. */
void it_error_move(it_error *dst, it_error *src);
/* Prefixes the message, e.g. "Invalid UpdateExpression: ". */
void it_error_prefix(it_error *e, const char *prefix);
const char *it_errcode_name(it_errcode code);

#endif
