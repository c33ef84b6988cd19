/* problem.h — the HTTP layer's own RFC 9457 problem+json replies: requests
 * refused before an upper layer saw them (framing, size, timeouts). */
#ifndef OL_HTTP_PROBLEM_H
#define OL_HTTP_PROBLEM_H

#include "http/http.h"

/* The title of a problem code of this layer, or NULL. */
const char *http_problem_title(const char *code);
/* Sends {"type":"urn:onceledger:problem:<code>","title","status","detail","code"}. */
void http_problem(http_req *r, int status, const char *code, const char *detail);

#endif
