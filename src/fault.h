/* fault.h — test-only fault injection for the start-up steps.
 *
 * ONCELEDGER_TEST_FAIL_STEP=N in the daemon's environment makes the Nth
 * start-up step that asks fault_inject() fail as if what it allocates,
 * creates or starts had failed (out of memory, no thread), so that a test
 * can walk every failure path of start-up under ASan
 * (tests/integration/test_startup_failures.py). Each injected failure is
 * logged ("injected_failure" with the step's name and number). Not a
 * setting, not for production: unset, fault_inject() is one comparison.
 * Steps are counted on the thread that starts the daemon only. */
#ifndef OL_FAULT_H
#define OL_FAULT_H

#include <stdbool.h>

/* True when this step is the one to fail; `step` names it in the log. */
bool fault_inject(const char *step);

/* ONCELEDGER_TEST_BAD_STMT=<name>: the fixed statement of that name is
 * prepared at connect with a typo put in front of its text, so that a test can
 * see the daemon refuse to run with an invalid statement
 * (statement_invalid). True when `name` is that statement. */
bool fault_bad_stmt(const char *name);

#endif
