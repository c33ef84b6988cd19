/* problem.h — the API's results as RFC 9457 problem+json with stable codes,
 * and JSON results; recorded with api_result (pipeline.h), never written
 * here. */
#ifndef OL_API_PROBLEM_H
#define OL_API_PROBLEM_H

#include <jansson.h>

#include "http/http.h"

/* {"type":"urn:onceledger:problem:<code>","title","status","detail","code"}
 * plus the members of `ext` (stolen, may be NULL) that do not clash with
 * those: `status` is always the HTTP status (RFC 9457). */
void problem_send(http_req *r, int status, const char *code, const char *detail, json_t *ext);
/* 503 unavailable with Retry-After. */
void problem_unavailable(http_req *r, int retry_after_s, const char *detail);
/* A JSON body (stolen) with the given status (problem+json from 400 on). */
void api_result_json(http_req *r, int status, json_t *body);

#endif
