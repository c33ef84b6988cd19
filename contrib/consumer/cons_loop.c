/* cons_loop.c — the consumer group loop: make sure the group exists, read
 * new entries with XREADGROUP, and now and then take over, with XAUTOCLAIM,
 * entries that were delivered but never acknowledged (by a consumer that
 * died, or by this one when handling failed: that is how a failed entry is
 * retried, and how its delivery count grows until the dead letter). */
#include "cons_loop.h"

#include <stdlib.h>
#include <string.h>

#include "cons_entry.h"

#define CONS_BATCH 100
#define CONS_CLAIM_ROUNDS_MAX 100 /* XAUTOCLAIM calls per sweep, at most */

/* XGROUP CREATE ... 0 MKSTREAM: a new group starts at the beginning of the
 * stream (everything still retained), and may be created before the relay
 * wrote the stream's first entry. */
static bool cons_group_ensure(struct cons_state *st)
{
	struct cons_cmd c;
	cons_cmd_init(&c);
	cons_cmd_str(&c, "XGROUP");
	cons_cmd_str(&c, "CREATE");
	cons_cmd_str(&c, st->o->stream);
	cons_cmd_str(&c, st->o->group);
	cons_cmd_str(&c, "0");
	cons_cmd_str(&c, "MKSTREAM");
	redisReply *reply = cons_redis_cmd(st->r, &c);
	cons_cmd_free(&c);
	if (reply == NULL)
		return false;
	bool ok = true;
	if (reply->type == REDIS_REPLY_ERROR && !cons_reply_is_error(reply, "BUSYGROUP")) {
		cons_log(CONS_ERROR, "XGROUP CREATE %s %s: %s", st->o->stream, st->o->group, reply->str);
		ok = false;
	} else if (reply->type != REDIS_REPLY_ERROR) {
		cons_log(CONS_INFO, "created group %s on %s", st->o->group, st->o->stream);
	}
	freeReplyObject(reply);
	return ok;
}

/* The COUNT of the next read or claim: no more than --count still needs,
 * so that a batch run does not leave entries it will never handle pending
 * (they would wait --claim-idle-ms for someone to claim them). */
static long long cons_batch(const struct cons_state *st)
{
	if (st->o->count > 0 && st->o->count - st->handled < CONS_BATCH)
		return st->o->count - st->handled;
	return CONS_BATCH;
}

static bool cons_should_stop(const struct cons_state *st)
{
	return cons_stopping || cons_entry_enough(st);
}

/* XAUTOCLAIM does not say how often an entry was delivered: XPENDING for
 * that one id does.  0: the entry is no longer pending (its first consumer
 * was slow, not dead, and acknowledged it meanwhile); -1: Redis gave up. */
static long long cons_deliveries(struct cons_state *st, const redisReply *sid)
{
	struct cons_cmd c;
	cons_cmd_init(&c);
	cons_cmd_str(&c, "XPENDING");
	cons_cmd_str(&c, st->o->stream);
	cons_cmd_str(&c, st->o->group);
	cons_cmd_arg(&c, sid->str, (size_t)sid->len);
	cons_cmd_arg(&c, sid->str, (size_t)sid->len);
	cons_cmd_str(&c, "1");
	redisReply *reply = cons_redis_cmd(st->r, &c);
	cons_cmd_free(&c);
	if (reply == NULL)
		return -1;
	long long n = -1;
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 0) {
		n = 0;
	} else if (reply->type == REDIS_REPLY_ARRAY && reply->element[0]->type == REDIS_REPLY_ARRAY &&
		   reply->element[0]->elements == 4 && reply->element[0]->element[3]->type == REDIS_REPLY_INTEGER) {
		n = reply->element[0]->element[3]->integer;
	} else {
		cons_log(CONS_ERROR, "XPENDING %s: %s", sid->str,
			 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
	}
	freeReplyObject(reply);
	return n;
}

/* One sweep of XAUTOCLAIM over the group's pending entries idle for at least
 * --claim-idle-ms; *got counts the entries taken over.  Claiming increments
 * their delivery count, which is what eventually dead-letters an entry no
 * consumer manages to handle. */
static bool cons_claim_sweep(struct cons_state *st, long long *got)
{
	char *cursor = strdup("0-0");
	if (cursor == NULL)
		abort();
	bool ok = true;
	for (int round = 0; round < CONS_CLAIM_ROUNDS_MAX && ok && !cons_should_stop(st); round++) {
		struct cons_cmd c;
		cons_cmd_init(&c);
		cons_cmd_str(&c, "XAUTOCLAIM");
		cons_cmd_str(&c, st->o->stream);
		cons_cmd_str(&c, st->o->group);
		cons_cmd_str(&c, st->o->consumer);
		cons_cmd_fmt(&c, "%lld", st->o->claim_idle_ms);
		cons_cmd_str(&c, cursor);
		cons_cmd_str(&c, "COUNT");
		cons_cmd_fmt(&c, "%lld", cons_batch(st));
		redisReply *reply = cons_redis_cmd(st->r, &c);
		cons_cmd_free(&c);
		if (reply == NULL) {
			ok = false;
			break;
		}
		if (cons_reply_is_error(reply, "NOGROUP")) {
			/* The stream or the group vanished (a Redis that restarted
			 * empty): recreate it, the relay refills the stream. */
			cons_log(CONS_WARN, "XAUTOCLAIM: %s; recreating the group", reply->str);
			freeReplyObject(reply);
			ok = cons_group_ensure(st);
			break;
		}
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
		    reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_ARRAY) {
			cons_log(CONS_ERROR, "XAUTOCLAIM (needs Redis 6.2 or later): %s",
				 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
			freeReplyObject(reply);
			ok = false;
			break;
		}
		/* Redis 7 lists entries that were deleted (trimmed) while pending
		 * separately, and has already removed them from the group. */
		if (reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_ARRAY)
			for (size_t i = 0; i < reply->element[2]->elements; i++)
				cons_log(CONS_WARN, "entry %s was deleted from the stream while pending",
					 reply->element[2]->element[i]->str);
		const redisReply *entries = reply->element[1];
		for (size_t i = 0; i < entries->elements && ok && !cons_should_stop(st); i++) {
			const redisReply *e = entries->element[i];
			if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
				continue;
			(*got)++;
			long long n = cons_deliveries(st, e->element[0]);
			if (n < 0)
				ok = false;
			else if (n > 0)
				ok = cons_entry_process(st, e, n);
		}
		free(cursor);
		cursor = strdup(reply->element[0]->str);
		if (cursor == NULL)
			abort();
		freeReplyObject(reply);
		if (strcmp(cursor, "0-0") == 0)
			break;
	}
	free(cursor);
	return ok;
}

/* One XREADGROUP ... > blocking at most block_ms; *got counts the entries. */
static bool cons_read(struct cons_state *st, long long block_ms, long long *got)
{
	struct cons_cmd c;
	cons_cmd_init(&c);
	cons_cmd_str(&c, "XREADGROUP");
	cons_cmd_str(&c, "GROUP");
	cons_cmd_str(&c, st->o->group);
	cons_cmd_str(&c, st->o->consumer);
	cons_cmd_str(&c, "COUNT");
	cons_cmd_fmt(&c, "%lld", cons_batch(st));
	cons_cmd_str(&c, "BLOCK");
	cons_cmd_fmt(&c, "%lld", block_ms);
	cons_cmd_str(&c, "STREAMS");
	cons_cmd_str(&c, st->o->stream);
	cons_cmd_str(&c, ">");
	/* Repeating a read that ran but whose reply was lost is safe: those
	 * entries sit in this consumer's pending list and come back through
	 * the claim sweep after --claim-idle-ms. */
	redisReply *reply = cons_redis_cmd(st->r, &c);
	cons_cmd_free(&c);
	if (reply == NULL)
		return false;
	bool ok = true;
	if (cons_reply_is_error(reply, "NOGROUP") || cons_reply_is_error(reply, "UNBLOCKED")) {
		/* The group was destroyed or the stream deleted (UNBLOCKED: while
		 * we were blocked on it): recreate it; what the relay re-adds
		 * is deduplicated by the done markers, if they survived. */
		cons_log(CONS_WARN, "XREADGROUP: %s; recreating the group", reply->str);
		ok = cons_group_ensure(st);
	} else if (reply->type == REDIS_REPLY_ERROR) {
		cons_log(CONS_ERROR, "XREADGROUP: %s", reply->str);
		ok = false;
	} else if (reply->type == REDIS_REPLY_ARRAY) {
		/* [[stream, [entry, ...]]]: one stream asked, one answered. */
		for (size_t s = 0; s < reply->elements && ok; s++) {
			const redisReply *sr = reply->element[s];
			if (sr->type != REDIS_REPLY_ARRAY || sr->elements < 2 || sr->element[1]->type != REDIS_REPLY_ARRAY)
				continue;
			const redisReply *entries = sr->element[1];
			for (size_t i = 0; i < entries->elements && ok && !cons_should_stop(st); i++) {
				(*got)++;
				/* A new entry (">") is on its first delivery. */
				ok = cons_entry_process(st, entries->element[i], 1);
			}
		}
	} /* nil: BLOCK timed out */
	freeReplyObject(reply);
	return ok;
}

static long long cons_min(long long a, long long b)
{
	return a < b ? a : b;
}

int cons_run(struct cons_state *st)
{
	const struct cons_opts *o = st->o;
	if (!cons_group_ensure(st))
		return cons_stopping ? 0 : 1;
	/* Sweep twice per idle period, so an abandoned entry waits between 1
	 * and 1.5 times --claim-idle-ms; a sweep costs one XAUTOCLAIM when
	 * nothing is pending. */
	long long claim_every = cons_min(o->claim_idle_ms / 2, CONS_CLAIM_EVERY_MAX_MS);
	if (claim_every < 10)
		claim_every = 10;
	int64_t last_entry = cons_mono_ms();
	int64_t next_claim = last_entry; /* first sweep at once: take over what a dead consumer left */
	bool ok = true;
	while (ok && !cons_should_stop(st)) {
		long long got = 0;
		int64_t now = cons_mono_ms();
		if (now >= next_claim) {
			ok = cons_claim_sweep(st, &got);
			now = cons_mono_ms();
			next_claim = now + claim_every;
		} else {
			long long block = cons_min(CONS_BLOCK_MAX_MS, next_claim - now);
			if (o->idle_exit_ms > 0)
				block = cons_min(block, last_entry + o->idle_exit_ms - now);
			if (block < 1)
				block = 1; /* BLOCK 0 would wait forever */
			ok = cons_read(st, block, &got);
			now = cons_mono_ms();
		}
		if (got > 0) {
			last_entry = now;
		} else if (ok && o->idle_exit_ms > 0 && now - last_entry >= o->idle_exit_ms) {
			cons_log(CONS_INFO, "no new entry for %lld ms (--idle-exit-ms): exiting", o->idle_exit_ms);
			break;
		}
	}
	cons_log(CONS_INFO, "handled %lld, duplicates %lld, dead letters %lld, left unhandled %lld", st->handled,
		 st->duplicates, st->dead, st->unhandled);
	/* A signal that cut a Redis outage short is still a requested stop. */
	return ok || cons_stopping ? 0 : 1;
}
