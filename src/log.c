/* log.c — JSON line logger. Each line is written with one write(2) so lines
 * from different worker threads never interleave. */
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

log_level log_min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

bool log_set_level(const char *name)
{
	for (size_t i = 0; i < OL_ARRAY_LEN(level_names); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			log_min_level = (log_level)i;
			return true;
		}
	}
	return false;
}

void log_emit(log_level level, const char *msg, json_t *fields)
{
	char ts[40];
	util_format_time(ts, sizeof(ts), util_now_us());
	json_t *line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "msg", msg);
	if (line == NULL) {
		json_decref(fields);
		return;
	}
	if (fields != NULL && json_is_object(fields))
		json_object_update(line, fields);
	json_decref(fields);
	char *text = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(line);
	if (text == NULL)
		return;
	size_t n = strlen(text);
	text[n] = '\n'; /* replaces the terminator: we write n+1 bytes */
	ssize_t ignored = write(STDERR_FILENO, text, n + 1);
	(void)ignored;
	free(text);
}
