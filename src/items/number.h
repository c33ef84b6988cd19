/* DynamoDB numbers (type N): validation with DynamoDB's limits and
 * messages, the canonical decimal form we store, exact comparison and exact
 * addition/subtraction on decimal strings (no floating point anywhere). */
#ifndef IT_NUMBER_H
#define IT_NUMBER_H

#include <stdbool.h>
#include <stddef.h>

#include "items/error.h"

#define IT_NUM_MAX_DIGITS 38	/* significant digits */
#define IT_NUM_MAX_EXP 125	/* largest magnitude is 9.99..E+125 */
#define IT_NUM_MIN_EXP (-130)	/* smallest non-zero magnitude is 1E-130 */

/* Validates s[0..len) as a DynamoDB number and returns its canonical form in
 * *canon (malloc'd): no exponent, no leading or trailing zeros, "-0" -> "0". */
bool it_num_canon(const char *s, size_t len, char **canon, it_error *e)
	__attribute__((warn_unused_result));
/* True when s is a valid DynamoDB number (no message). */
bool it_num_valid(const char *s, size_t len);
/* Orders two valid numbers numerically: <0, 0, >0. */
int it_num_cmp(const char *a, const char *b);
/* *out = a + b and a - b, exact; fails with DynamoDB's range/precision
 * messages when the result is out of range. */
bool it_num_add(const char *a, const char *b, char **out, it_error *e)
	__attribute__((warn_unused_result));
bool it_num_sub(const char *a, const char *b, char **out, it_error *e)
	__attribute__((warn_unused_result));
/* Significant digits of a valid number (0 for zero), for item sizes. */
size_t it_num_digits(const char *s);

#endif
