/* problem.h — RFC 9457 problem+json responses with stable codes. */
#ifndef OL_HTTP_PROBLEM_H
#define OL_HTTP_PROBLEM_H

#include <jansson.h>

#include "http/http.h"

/* Sends {"type":"urn:onceledger:problem:<code>","title","status","detail","code"}
 * plus the members of `ext` (stolen, may be NULL) that do not clash with
 * those: `status` is always the HTTP status (RFC 9457). */
void problem_send(http_req *r, int status, const char *code, const char *detail, json_t *ext);
/* 503 unavailable with Retry-After. */
void problem_unavailable(http_req *r, int retry_after_s, const char *detail);
/* Sends a JSON body (stolen) with the given status. */
void http_reply_json(http_req *r, int status, json_t *body);

#endif
