/* test_util.c — util's time formatting and ids (src/util/util.c): the
 * per-thread cache of the formatted second and the hand-written digits
 * against gmtime_r + printf, and the shape of the ids. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tap.h"
#include "util/util.h"

/* The reference: what util_format_time printed before its cache. */
static void reference(char buf[64], int64_t us)
{
	time_t secs = (time_t)(us / 1000000);
	long micros = (long)(us % 1000000);
	if (micros < 0) {
		micros += 1000000;
		secs -= 1;
	}
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(buf, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strchr("0123456789abcdef", s[i]) == NULL || s[i] == '\0')
			return false;
	return true;
}

int main(void)
{
	/* Same second twice (the cache), the next second, a day and year
	 * change, the epoch, before it, and a leap day. */
	static const int64_t times[] = {
		1796292000123456LL, 1796292000999999LL, 1796292001000000LL, 1798761599999999LL, 1798761600000000LL,
		0,		    -1,			-1000000LL,	    951782400000001LL,	 1796292000123456LL,
		253402300799999999LL, /* 9999-12-31T23:59:59.999999Z */
	};
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		char got[40], want[64], name[64];
		util_format_time(got, sizeof(got), times[i]);
		reference(want, times[i]);
		snprintf(name, sizeof(name), "format_time %lld", (long long)times[i]);
		CHECK_STR(got, want, name);
	}
	char small[11], want[64];
	util_format_time(small, sizeof(small), 1796292000123456LL);
	reference(want, 1796292000123456LL);
	want[sizeof(small) - 1] = '\0';
	CHECK_STR(small, want, "format_time: a short buffer is cut and terminated, as snprintf does");
	char now[40];
	util_format_time(now, sizeof(now), util_now_us());
	CHECK(strlen(now) == 27 && now[26] == 'Z', "format_time: now is 27 characters");

	char a[64], b[64];
	util_new_id("tr_", a, sizeof(a));
	util_new_id("tr_", b, sizeof(b));
	CHECK(strlen(a) == 35 && strncmp(a, "tr_", 3) == 0 && is_hex(a + 3, 32), "new_id: prefix, 12 + 20 hex digits");
	CHECK(strcmp(a, b) != 0, "new_id: two ids differ");
	CHECK(strncmp(a + 3, b + 3, 8) == 0 || strcmp(a, b) < 0, "new_id: the clock comes first");
	char cut[10];
	util_new_id("evt_", cut, sizeof(cut));
	CHECK(strlen(cut) == 9 && strncmp(cut, "evt_", 4) == 0, "new_id: cut to the buffer, terminated");

	/* More than the pool per call, and many small calls across refills:
	 * every draw is fresh (no two 8-byte draws alike). */
	unsigned char big[600];
	memset(big, 0, sizeof(big));
	util_random_bytes(big, sizeof(big));
	int zero_run = 0, longest = 0;
	for (size_t i = 0; i < sizeof(big); i++) {
		zero_run = big[i] == 0 ? zero_run + 1 : 0;
		longest = zero_run > longest ? zero_run : longest;
	}
	CHECK(longest < 8, "random_bytes: a draw larger than the pool is filled throughout");
	static uint64_t draws[200];
	bool distinct = true;
	for (int i = 0; i < 200; i++) {
		util_random_bytes(&draws[i], sizeof(draws[i]));
		for (int j = 0; j < i; j++)
			distinct = distinct && draws[i] != draws[j];
	}
	CHECK(distinct, "random_bytes: 200 draws across pool refills, all different");
	char hex[129];
	util_random_hex(hex, 64);
	CHECK(strlen(hex) == 128 && is_hex(hex, 128), "random_hex: 64 bytes, 128 hex digits");
	return it_test_done();
}
