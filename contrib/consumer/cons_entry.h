/* cons_entry.h — what happens to one stream entry: checked, verified,
 * deduplicated, handled (printed), acknowledged, or moved to the
 * dead-letter stream. */
#ifndef CONS_ENTRY_H
#define CONS_ENTRY_H

#include <stdbool.h>

#include <hiredis/hiredis.h>

#include "cons.h"
#include "cons_redis.h"

/* The running consumer: its options, connection and counters. */
struct cons_state {
	const struct cons_opts *o;
	struct cons_redis *r;
	char *dead_stream; /* <stream>:dead */
	long long handled;
	long long duplicates;
	long long dead;
	long long unhandled; /* --fail-type: left pending */
};

/* Processes one entry, a reply element [stream id, [field, value, ...]],
 * delivered to this group for the deliveries-th time.  false: Redis gave up
 * or stdout failed; the caller exits 1 and the entry stays pending. */
bool cons_entry_process(struct cons_state *st, const redisReply *entry, long long deliveries) CONS_WARN_UNUSED;

/* True once --count events were handled. */
bool cons_entry_enough(const struct cons_state *st);

#endif
