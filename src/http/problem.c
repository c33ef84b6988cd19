/* problem.c — the problem+json replies of the HTTP layer itself. The
 * `code` is the machine-readable part clients branch on; titles are for
 * humans and may change. The upper layer's problems (src/api/problem.c)
 * take their titles for these codes from here. */
#include "http/problem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const struct {
	const char *code;
	const char *title;
} titles[] = {
	{"invalid_request", "The request is invalid"},
	{"not_found", "Not found"},
	{"method_not_allowed", "Method not allowed"},
	{"payload_too_large", "Request body too large"},
	{"unsupported_media_type", "Unsupported media type"},
	{"request_header_too_large", "Request header fields too large"},
	{"request_timeout", "Request timeout"},
	{"unavailable", "Service temporarily unavailable"},
	{"internal", "Internal error"},
	{"not_implemented", "Not implemented"},
	{"http_version_not_supported", "HTTP version not supported"},
};

const char *http_problem_title(const char *code)
{
	for (size_t i = 0; i < OL_ARRAY_LEN(titles); i++)
		if (strcmp(titles[i].code, code) == 0)
			return titles[i].title;
	return NULL;
}

void http_problem(http_req *r, int status, const char *code, const char *detail)
{
	char type[128];
	snprintf(type, sizeof(type), "urn:onceledger:problem:%s", code);
	const char *title = http_problem_title(code);
	json_t *p = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", title != NULL ? title : code, "status",
			      status, "code", code, "detail", detail);
	char *text = p != NULL ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(p);
	if (text == NULL) {
		static const char fallback[] = "{\"type\":\"urn:onceledger:problem:internal\",\"title\":\"Internal error\","
					       "\"status\":500,\"code\":\"internal\"}";
		http_reply(r, 500, "application/problem+json", fallback, sizeof(fallback) - 1);
		return;
	}
	http_reply(r, status, "application/problem+json", text, strlen(text));
	free(text);
}
