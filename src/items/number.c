/* DynamoDB numbers: parsing, canonical form and exact arithmetic (number.h).
 * A number is held as sign, a digit string without leading or trailing zeros,
 * and a power of ten: value = (-1)^neg * digits * 10^exp. */
#include <stdlib.h>
#include <string.h>

#include "items/number.h"

#define MSG_NAN "The parameter cannot be converted to a numeric value"
#define MSG_OVERFLOW "Number overflow. Attempting to store a number with " \
	"magnitude larger than supported range"
#define MSG_UNDERFLOW "Number underflow. Attempting to store a number with " \
	"magnitude smaller than supported range"
#define MSG_PRECISION "Attempting to store more than 38 significant digits " \
	"in a Number"
#define EXP_CLAMP 1000000000L

typedef struct dec {
	bool neg;
	size_t n;		/* number of digits; 0 means zero */
	char *d;		/* digits '0'..'9', malloc'd, n + 1 bytes */
	long exp;
} dec;

static void
dec_free(dec *x)
{
	free(x->d);
	x->d = NULL;
}

/* Parses the syntax [+-]? (digits [. digits?] | . digits) ([eE][+-]?digits)?
 * into x, trimmed; returns false on a syntax error (no message). */
static bool
dec_parse(const char *s, size_t len, dec *x)
{
	size_t i = 0, start, nd = 0, lead;
	long frac = 0, e = 0;
	bool eneg = false, seen_dot = false;

	memset(x, 0, sizeof(*x));
	if (i < len && (s[i] == '+' || s[i] == '-'))
		x->neg = s[i++] == '-';
	x->d = malloc(len + 1);
	if (x->d == NULL)
		return false;
	start = i;
	for (; i < len; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			x->d[nd++] = s[i];
			if (seen_dot)
				frac++;
		} else if (s[i] == '.' && !seen_dot) {
			seen_dot = true;
		} else {
			break;
		}
	}
	if (nd == 0 || (i == start))
		goto fail;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		size_t es;

		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		es = i;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
			if (e < EXP_CLAMP)
				e = e * 10 + (s[i] - '0');
		}
		if (i == es)
			goto fail;
	}
	if (i != len)
		goto fail;
	x->exp = (eneg ? -e : e) - frac;
	/* Trim leading then trailing zeros. */
	for (lead = 0; lead < nd && x->d[lead] == '0'; lead++)
		;
	memmove(x->d, x->d + lead, nd - lead);
	nd -= lead;
	while (nd > 0 && x->d[nd - 1] == '0') {
		nd--;
		x->exp++;
	}
	x->n = nd;
	x->d[nd] = '\0';
	if (nd == 0) {
		x->neg = false;
		x->exp = 0;
	}
	return true;
fail:
	dec_free(x);
	return false;
}

/* Checks DynamoDB's magnitude and precision limits, in DynamoDB's order. */
static bool
dec_check(const dec *x, it_error *e)
{
	long lead;

	if (x->n == 0)
		return true;
	lead = x->exp + (long)x->n - 1;
	if (lead > IT_NUM_MAX_EXP) {
		it_error_set(e, IT_ERR_VALIDATION, MSG_OVERFLOW);
		return false;
	}
	if (lead < IT_NUM_MIN_EXP) {
		it_error_set(e, IT_ERR_VALIDATION, MSG_UNDERFLOW);
		return false;
	}
	if (x->n > IT_NUM_MAX_DIGITS) {
		it_error_set(e, IT_ERR_VALIDATION, MSG_PRECISION);
		return false;
	}
	return true;
}

/* Formats a checked number without exponent. */
static char *
dec_format(const dec *x)
{
	size_t cap, o = 0;
	long p, k;
	char *s;

	if (x->n == 0)
		return strdup("0");
	cap = x->n + (size_t)(x->exp < 0 ? -x->exp : x->exp) + 4;
	s = malloc(cap);
	if (s == NULL)
		return NULL;
	if (x->neg)
		s[o++] = '-';
	if (x->exp >= 0) {
		memcpy(s + o, x->d, x->n);
		o += x->n;
		for (k = 0; k < x->exp; k++)
			s[o++] = '0';
	} else {
		p = (long)x->n + x->exp;	/* digits before the point */
		if (p > 0) {
			memcpy(s + o, x->d, (size_t)p);
			o += (size_t)p;
			s[o++] = '.';
			memcpy(s + o, x->d + p, x->n - (size_t)p);
			o += x->n - (size_t)p;
		} else {
			s[o++] = '0';
			s[o++] = '.';
			for (k = 0; k < -p; k++)
				s[o++] = '0';
			memcpy(s + o, x->d, x->n);
			o += x->n;
		}
	}
	s[o] = '\0';
	return s;
}

bool
it_num_canon(const char *s, size_t len, char **canon, it_error *e)
{
	dec x;

	*canon = NULL;
	if (len == 0) {
		it_error_set(e, IT_ERR_VALIDATION, MSG_NAN);
		return false;
	}
	if (!dec_parse(s, len, &x)) {
		it_error_set(e, IT_ERR_VALIDATION, MSG_NAN ": %.*s",
		    (int)(len > 1024 ? 1024 : len), s);
		return false;
	}
	if (!dec_check(&x, e))
		goto fail;
	*canon = dec_format(&x);
	if (*canon == NULL) {
		it_error_nomem(e);
		goto fail;
	}
	dec_free(&x);
	return true;
fail:
	dec_free(&x);
	return false;
}

bool
it_num_valid(const char *s, size_t len)
{
	dec x;
	bool ok;

	if (len == 0 || !dec_parse(s, len, &x))
		return false;
	ok = dec_check(&x, NULL);
	dec_free(&x);
	return ok;
}

size_t
it_num_digits(const char *s)
{
	dec x;
	size_t n;

	if (!dec_parse(s, strlen(s), &x))
		return 0;
	n = x.n;
	dec_free(&x);
	return n;
}

/* Compares magnitudes of two parsed numbers. */
static int
dec_cmp_abs(const dec *a, const dec *b)
{
	long la, lb;
	size_t i;

	if (a->n == 0 || b->n == 0)
		return (a->n != 0) - (b->n != 0);
	la = a->exp + (long)a->n - 1;
	lb = b->exp + (long)b->n - 1;
	if (la != lb)
		return la < lb ? -1 : 1;
	for (i = 0; i < a->n && i < b->n; i++) {
		if (a->d[i] != b->d[i])
			return a->d[i] < b->d[i] ? -1 : 1;
	}
	return (a->n > b->n) - (a->n < b->n);
}

static int
dec_cmp(const dec *a, const dec *b)
{
	int sa = a->n == 0 ? 0 : a->neg ? -1 : 1;
	int sb = b->n == 0 ? 0 : b->neg ? -1 : 1;

	if (sa != sb)
		return sa < sb ? -1 : 1;
	if (sa == 0)
		return 0;
	return sa * dec_cmp_abs(a, b);
}

int
it_num_cmp(const char *a, const char *b)
{
	dec x, y;
	int r;

	if (!dec_parse(a, strlen(a), &x))
		return 0;
	if (!dec_parse(b, strlen(b), &y)) {
		dec_free(&x);
		return 0;
	}
	r = dec_cmp(&x, &y);
	dec_free(&x);
	dec_free(&y);
	return r;
}

/* Writes the digits of x scaled to exponent base into buf (least significant
 * digit first, as integers 0..9), buf having room for len digits. */
static void
dec_spread(const dec *x, long base, unsigned char *buf, size_t len)
{
	size_t shift = (size_t)(x->exp - base), i;

	memset(buf, 0, len);
	for (i = 0; i < x->n; i++)
		buf[shift + x->n - 1 - i] = (unsigned char)(x->d[i] - '0');
}

/* r = a + (negate_b ? -b : b), exact; both a and b must be checked numbers
 * (their exponents are bounded, so buffers stay a few hundred digits). */
static bool
dec_addsub(const dec *a, const dec *b, bool negate_b, dec *r)
{
	bool bneg = negate_b ? !b->neg : b->neg;
	long base;
	size_t len, la, lb, i, top;
	unsigned char *x = NULL, *y = NULL;
	int carry = 0;

	memset(r, 0, sizeof(*r));
	if (b->n == 0 || a->n == 0) {
		const dec *src = b->n == 0 ? a : b;

		r->d = malloc(src->n + 1);
		if (r->d == NULL)
			return false;
		memcpy(r->d, src->d, src->n + 1);
		r->n = src->n;
		r->exp = src->exp;
		r->neg = b->n == 0 ? a->neg : bneg;
		if (r->n == 0)
			r->neg = false;
		return true;
	}
	base = a->exp < b->exp ? a->exp : b->exp;
	la = (size_t)(a->exp - base) + a->n;
	lb = (size_t)(b->exp - base) + b->n;
	len = (la > lb ? la : lb) + 1;
	x = calloc(len, 1);
	y = calloc(len, 1);
	r->d = malloc(len + 1);
	if (x == NULL || y == NULL || r->d == NULL)
		goto fail;
	dec_spread(a, base, x, len);
	dec_spread(b, base, y, len);
	if (a->neg == bneg) {
		for (i = 0; i < len; i++) {
			int s = x[i] + y[i] + carry;

			x[i] = (unsigned char)(s % 10);
			carry = s / 10;
		}
		r->neg = a->neg;
	} else {
		/* Subtract the smaller magnitude from the larger. */
		dec bpos = *b;
		int c;

		bpos.neg = a->neg;
		c = dec_cmp_abs(a, &bpos);
		if (c < 0) {
			unsigned char *t = x;

			x = y;
			y = t;
			r->neg = bneg;
		} else {
			r->neg = a->neg;
		}
		for (i = 0; i < len; i++) {
			int s = x[i] - y[i] - carry;

			carry = s < 0;
			x[i] = (unsigned char)(s < 0 ? s + 10 : s);
		}
	}
	/* Back to most-significant-first, trimmed. */
	top = len;
	while (top > 0 && x[top - 1] == 0)
		top--;
	r->exp = base;
	i = 0;
	while (i < top && x[i] == 0) {
		i++;
		r->exp++;
	}
	r->n = top - i;
	for (size_t k = 0; k < r->n; k++)
		r->d[k] = (char)('0' + x[top - 1 - k]);
	r->d[r->n] = '\0';
	if (r->n == 0) {
		r->neg = false;
		r->exp = 0;
	}
	free(x);
	free(y);
	return true;
fail:
	free(x);
	free(y);
	dec_free(r);
	return false;
}

static bool
num_arith(const char *a, const char *b, bool sub, char **out, it_error *e)
{
	dec x, y, r;
	bool ok = false;

	*out = NULL;
	if (!dec_parse(a, strlen(a), &x)) {
		it_error_set(e, IT_ERR_VALIDATION, MSG_NAN ": %s", a);
		return false;
	}
	if (!dec_parse(b, strlen(b), &y)) {
		it_error_set(e, IT_ERR_VALIDATION, MSG_NAN ": %s", b);
		dec_free(&x);
		return false;
	}
	if (!dec_check(&x, e) || !dec_check(&y, e))
		goto out;
	if (!dec_addsub(&x, &y, sub, &r)) {
		it_error_nomem(e);
		goto out;
	}
	if (dec_check(&r, e)) {
		*out = dec_format(&r);
		if (*out == NULL)
			it_error_nomem(e);
		else
			ok = true;
	}
	dec_free(&r);
out:
	dec_free(&x);
	dec_free(&y);
	return ok;
}

bool
it_num_add(const char *a, const char *b, char **out, it_error *e)
{
	return num_arith(a, b, false, out, e);
}

bool
it_num_sub(const char *a, const char *b, char **out, it_error *e)
{
	return num_arith(a, b, true, out, e);
}
