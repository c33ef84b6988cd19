/* Unit tests of DynamoDB numbers (src/items/number.c): syntax, canonical
 * form, magnitude and precision limits with DynamoDB's messages, 38-digit
 * round trips, exact comparison and arithmetic. */
#include <stdbool.h>
#include <stdlib.h>

#include "items/number.h"
#include "items_test.h"

static void
canon_ok(const char *in, const char *want)
{
	it_error e = { 0 };
	char *c = NULL, name[512];

	snprintf(name, sizeof(name), "canon %s -> %s", in, want);
	if (!it_num_canon(in, strlen(in), &c, &e)) {
		CHECK_STR(e.msg, want, name);
	} else {
		CHECK_STR(c, want, name);
	}
	free(c);
	it_error_clear(&e);
}

static void
canon_err(const char *in, const char *msg)
{
	it_error e = { 0 };
	char *c = NULL, name[512];
	bool ok = it_num_canon(in, strlen(in), &c, &e);

	snprintf(name, sizeof(name), "invalid %.60s", in);
	CHECK(!ok && c == NULL && e.code == IT_ERR_VALIDATION, name);
	CHECK_STR(e.msg, msg, name);
	free(c);
	it_error_clear(&e);
}

static void
arith(const char *a, char op, const char *b, const char *want)
{
	it_error e = { 0 };
	char *r = NULL, name[512];
	bool ok = op == '+' ? it_num_add(a, b, &r, &e) :
	    it_num_sub(a, b, &r, &e);

	snprintf(name, sizeof(name), "%s %c %s = %.60s", a, op, b, want);
	CHECK_STR(ok ? r : e.msg, want, name);
	free(r);
	it_error_clear(&e);
}

#define OVERFLOW "Number overflow. Attempting to store a number with " \
	"magnitude larger than supported range"
#define UNDERFLOW "Number underflow. Attempting to store a number with " \
	"magnitude smaller than supported range"
#define PRECISION "Attempting to store more than 38 significant digits in " \
	"a Number"
#define NAN_MSG "The parameter cannot be converted to a numeric value"

int
main(void)
{
	char big[200], name[64];

	canon_ok("0", "0");
	canon_ok("-0", "0");
	canon_ok("+0.000", "0");
	canon_ok("0e10", "0");
	canon_ok("1.50", "1.5");
	canon_ok("007", "7");
	canon_ok("+7", "7");
	canon_ok("-1.2300e-5", "-0.0000123");
	canon_ok("1e2", "100");
	canon_ok("1E+2", "100");
	canon_ok(".5", "0.5");
	canon_ok("5.", "5");
	canon_ok("123.456e1", "1234.56");
	canon_ok("-100", "-100");
	canon_ok("12345678901234567890123456789012345678",
	    "12345678901234567890123456789012345678");
	canon_ok("-0.12345678901234567890123456789012345678",
	    "-0.12345678901234567890123456789012345678");
	canon_ok("1234567890123456789012345678901234567800000",
	    "1234567890123456789012345678901234567800000");
	memset(big, '9', 38);
	memset(big + 38, '0', 88);
	big[126] = '\0';
	canon_ok("9.9999999999999999999999999999999999999E+125", big);
	snprintf(big, sizeof(big), "0.%0129d1", 0);
	canon_ok("1E-130", big);
	snprintf(big, sizeof(big), "-0.%0129d1", 0);
	canon_ok("-1E-130", big);

	canon_err("", NAN_MSG);
	canon_err("abc", NAN_MSG ": abc");
	canon_err("1.2.3", NAN_MSG ": 1.2.3");
	canon_err(" 1", NAN_MSG ":  1");
	canon_err("1 ", NAN_MSG ": 1 ");
	canon_err("0x10", NAN_MSG ": 0x10");
	canon_err("e5", NAN_MSG ": e5");
	canon_err("1e", NAN_MSG ": 1e");
	canon_err("-", NAN_MSG ": -");
	canon_err(".", NAN_MSG ": .");
	canon_err("NaN", NAN_MSG ": NaN");
	canon_err("Infinity", NAN_MSG ": Infinity");
	canon_err("1E126", OVERFLOW);
	canon_err("-1E126", OVERFLOW);
	canon_err("1e999999999999999999", OVERFLOW);
	canon_err("1E-131", UNDERFLOW);
	canon_err("0.9E-130", UNDERFLOW);
	canon_err("1e-99999999999999999999", UNDERFLOW);
	canon_err("123456789012345678901234567890123456789", PRECISION);
	canon_err("1.23456789012345678901234567890123456789", PRECISION);

	/* Round trips of 38-digit numbers at many scales. */
	for (int exp = -130; exp <= 88; exp += 17) {
		char in[128], *c = NULL, *c2 = NULL;
		it_error e = { 0 };

		snprintf(in, sizeof(in), "9.8765432109876543210987654321098765432E%d",
		    exp);
		snprintf(name, sizeof(name), "38 digits round trip E%d", exp);
		CHECK(it_num_canon(in, strlen(in), &c, &e) &&
		    it_num_canon(c, strlen(c), &c2, &e) && strcmp(c, c2) == 0 &&
		    it_num_digits(c) == 38 && it_num_cmp(in, c) == 0, name);
		free(c);
		free(c2);
		it_error_clear(&e);
	}

	CHECK(it_num_cmp("1", "2") < 0, "cmp 1 < 2");
	CHECK(it_num_cmp("-1", "-2") > 0, "cmp -1 > -2");
	CHECK(it_num_cmp("10", "9") > 0, "cmp 10 > 9");
	CHECK(it_num_cmp("1.5", "1.50") == 0, "cmp 1.5 = 1.50");
	CHECK(it_num_cmp("-0", "0") == 0, "cmp -0 = 0");
	CHECK(it_num_cmp("0.001", "0.01") < 0, "cmp 0.001 < 0.01");
	CHECK(it_num_cmp("-5", "3") < 0, "cmp -5 < 3");
	CHECK(it_num_cmp("0", "-0.1") > 0, "cmp 0 > -0.1");
	CHECK(it_num_cmp("1E+125", "99999999999999999999") > 0,
	    "cmp large exponents");

	arith("1", '+', "2", "3");
	arith("1.5", '+', "-1.5", "0");
	arith("0.1", '+', "0.2", "0.3");
	arith("100", '-', "0.001", "99.999");
	arith("-3", '+', "2", "-1");
	arith("2", '-', "5", "-3");
	arith("0", '-', "0", "0");
	arith("99999999999999999999999999999999999999", '+', "1",
	    "100000000000000000000000000000000000000");
	arith("12345678901234567890123456789012345678", '-',
	    "12345678901234567890123456789012345677", "1");
	arith("1E+125", '+', "1E-130", PRECISION);
	arith("9.9999999999999999999999999999999999999E+125", '+',
	    "9.9999999999999999999999999999999999999E+125", OVERFLOW);
	arith("99999999999999999999999999999999999999", '+',
	    "0.1", PRECISION);
	arith("0.5", '-', "0.25", "0.25");
	return it_test_done();
}
