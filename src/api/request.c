/* request.c — what every API handler's request goes through on its way in
 * and on a database failure: the JSON body, and db errors as problems.
 * Kept apart from dispatch.c (which needs the whole worker) so that the
 * decoding fuzz target (fuzz/fuzz_api_decode.c) runs exactly this code. */
#include "api/app.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static bool is_json_media_type(const char *ct)
{
	if (ct == NULL)
		return false;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, "application/json", 16) != 0)
		return false;
	const char *rest = ct + 16;
	while (*rest == ' ')
		rest++;
	return *rest == '\0' || *rest == ';';
}

bool api_decode_body(http_req *r, api_req *a)
{
	size_t len = evbuffer_get_length(r->body);
	if (len == 0) {
		a->body = json_object();
		return true;
	}
	if (!is_json_media_type(http_req_header(r, "Content-Type"))) {
		problem_send(r, 415, "unsupported_media_type", "request bodies must be application/json", NULL);
		return false;
	}
	const char *text = (const char *)evbuffer_pullup(r->body, -1);
	json_error_t jerr;
	/* Duplicate keys are refused: two values for one field of a payment
	 * request are ambiguous, and parsers disagree on which one wins. */
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		char detail[200];
		snprintf(detail, sizeof(detail), "malformed JSON at position %d: %s", jerr.position, jerr.text);
		problem_send(r, 400, "invalid_request", detail, NULL);
		return false;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		problem_send(r, 400, "invalid_request", "the request body must be a JSON object", NULL);
		return false;
	}
	a->body = j;
	return true;
}

void api_db_problem(http_req *r, const db_result *res)
{
	const ol_config *cfg = api_worker(r)->app->cfg;
	if (res->status == DB_ERR_QUERY) {
		log_error("db_query_failed", "{s:s, s:s, s:s}", "request_id", r->request_id, "sqlstate", res->sqlstate,
			  "error", res->message ? res->message : "");
		problem_send(r, 500, "internal", "internal error; see the server log with this request id", NULL);
		return;
	}
	problem_unavailable(r, cfg->retry_after_s,
			    res->status == DB_ERR_TIMEOUT ? "the database did not answer in time" : "the database is unavailable");
}
