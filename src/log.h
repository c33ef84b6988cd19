/* log.h — structured logging: one JSON object per line on stderr.
 * Callers pass key/value pairs; nothing that is a secret is ever passed. */
#ifndef OL_LOG_H
#define OL_LOG_H

#include <stdbool.h>
#include <jansson.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

extern log_level log_min_level;

bool log_set_level(const char *name);
/* Emits {"ts","level","msg", fields...}; `fields` is stolen (may be NULL). */
void log_emit(log_level level, const char *msg, json_t *fields);

/* The level is checked before the fields are built (Redis serverLog habit). */
#define log_at(level, msg, ...)                                                \
	do {                                                                   \
		if ((level) >= log_min_level)                                  \
			log_emit((level), (msg), json_pack(__VA_ARGS__));      \
	} while (0)
#define log_debug(msg, ...) log_at(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) log_at(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_at(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_at(LOG_ERROR, msg, __VA_ARGS__)

#endif
