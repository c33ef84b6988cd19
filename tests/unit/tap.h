/* tap.h — tiny TAP-ish helpers shared by every C unit test: each check
 * prints "ok N - name" or "not ok N - name", and it_test_done() prints
 * "# N passed, N failed" and returns the exit status. */
#ifndef OL_TAP_H
#define OL_TAP_H

#include <stdio.h>
#include <string.h>

static int it_test_n, it_test_failed;

#define CHECK(cond, name) do {						\
	it_test_n++;							\
	if (cond) {							\
		printf("ok %d - %s\n", it_test_n, (name));		\
	} else {							\
		it_test_failed++;					\
		printf("not ok %d - %s (%s:%d)\n", it_test_n, (name),	\
		    __FILE__, __LINE__);				\
	}								\
} while (0)

#define CHECK_STR(got, want, name) do {					\
	const char *g_ = (got), *w_ = (want);				\
	bool eq_ = g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0;	\
	CHECK(eq_, name);						\
	if (!eq_)							\
		printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)",	\
		    w_ ? w_ : "(null)");				\
} while (0)

static inline int
it_test_done(void)
{
	printf("# %d passed, %d failed\n", it_test_n - it_test_failed,
	    it_test_failed);
	return it_test_failed == 0 ? 0 : 1;
}

#endif
