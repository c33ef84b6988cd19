/* cons_loop.h — the consumer group loop (XREADGROUP, XAUTOCLAIM). */
#ifndef CONS_LOOP_H
#define CONS_LOOP_H

#include "cons_entry.h"

/* Runs until --count, --idle-exit-ms or a signal (0), or until Redis gave
 * up or stdout failed (1).  Returns the exit code. */
int cons_run(struct cons_state *st);

#endif
