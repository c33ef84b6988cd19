/* validate.h — field-by-field validation of request bodies and query
 * strings, each failure answered with 400 invalid_request naming the field
 * (API.md §1). Every function replies itself and returns false on a bad
 * value. */
#ifndef OL_API_VALIDATE_H
#define OL_API_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "http/http.h"

/* Refuses members not in the NULL-terminated list. */
bool v_only_fields(http_req *r, const json_t *body, const char *const *allowed);
/* An optional client id (1–64 of [A-Za-z0-9_.:-], not starting with '@'):
 * *out NULL when absent. */
bool v_opt_id(http_req *r, const json_t *body, const char *field, const char **out);
/* The id rules above, for a value from elsewhere (a query string). */
bool v_is_id(const char *s);
/* A path id, same rules (404 code given when it cannot name anything). */
bool v_path_id(http_req *r, const char *id, const char *not_found_code);
/* A required account reference: an account id or "@world:<CUR>". */
bool v_account_ref(http_req *r, const json_t *body, const char *field, const char **out);
bool v_currency(http_req *r, const json_t *body, const char *field, const char **out);
/* An optional string of 1..max visible characters (UTF-8 allowed, no controls). */
bool v_opt_string(http_req *r, const json_t *body, const char *field, size_t max, const char **out);
/* An integer in [min, max]; absent: *out = def (required when def < 0 is not
 * acceptable: pass required = true). */
bool v_int(http_req *r, const json_t *body, const char *field, bool required, int64_t min, int64_t max, int64_t def,
	   int64_t *out);
/* Optional metadata: an object of at most 4 KiB serialized. */
bool v_metadata(http_req *r, const json_t *body, const json_t **out);

/* Query strings: the decoded value of name's first occurrence (malloc'd;
 * '+' is a space, a %00 becomes U+0001) or NULL when absent. */
char *v_query(http_req *r, const char *name);
/* Text from a percent-decoded path or query: 1..max bytes of valid UTF-8
 * without control characters. */
bool v_text_ok(const char *s, size_t max);
/* An optional query parameter that must be text: 1..max bytes of UTF-8
 * without control characters; *out (malloc'd) NULL when absent. */
bool v_query_text(http_req *r, const char *name, size_t max, char **out);
/* An optional RFC 3339 time in the query (µs since the epoch); def when absent. */
bool v_query_time(http_req *r, const char *name, int64_t def, int64_t *out);
/* limit=1..1000 (default 100). */
bool v_limit(http_req *r, int *out);
/* cursor: the position (a JSON object) of a cursor this server issued for
 * the same list (tenant, route, path parameters and every query parameter
 * but cursor and limit: list_cursor.c), or NULL when absent; anything else
 * is 400 invalid_request (field "cursor"). */
bool v_cursor(http_req *r, json_t **out);
/* The cursor text of a position of the request's list (malloc'd; NULL when
 * out of memory). */
char *v_cursor_encode(http_req *r, const json_t *pos);

#endif
