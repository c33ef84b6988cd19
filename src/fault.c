/* fault.c — test-only fault injection for the start-up steps (fault.h). */
#include "fault.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util/util.h"

static long fault_target = -1; /* -1: not read yet; 0: off */
static long fault_seen;

bool fault_inject(const char *step)
{
	if (fault_target < 0) {
		const char *v = getenv("ONCELEDGER_TEST_FAIL_STEP");
		long long n;
		fault_target = v != NULL && util_parse_ll(v, 1, 1000000, &n) ? (long)n : 0;
	}
	if (fault_target == 0)
		return false;
	if (++fault_seen != fault_target)
		return false;
	log_error("injected_failure", "{s:s, s:i}", "step", step, "n", (int)fault_seen);
	return true;
}

bool fault_bad_stmt(const char *name)
{
	const char *v = getenv("ONCELEDGER_TEST_BAD_STMT");
	return v != NULL && *v != '\0' && strcmp(v, name) == 0;
}
