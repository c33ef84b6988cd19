/* cons_entry.c — one entry's way through the consumer.
 *
 * The order of the steps is the design:
 *   1. too many deliveries          -> dead letter (a poison entry stops here,
 *                                      before anything that could choke on it)
 *   2. fields, signature, event     -> dead letter when anything is wrong
 *   3. done marker exists           -> XACK, skip (a duplicate)
 *   4. handle (print one line)      -> on failure: leave it pending
 *   5. SET done marker, XACK
 *
 * The marker is written only after handling succeeded, so delivery is
 * at-least-once: a consumer that dies between 4 and 5 handles the event
 * again when the entry is claimed.  Writing it first (SET NX before 4)
 * would be at-most-once: a crash between the marker and the handling would
 * lose the event for good.  A notifier must therefore tolerate the rare
 * duplicate (make its side effect idempotent by event id). */
#include "cons_entry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cons_verify.h"

/* The fields the relay writes (docs/events.md). */
struct cons_fields {
	struct cons_slice id, type, event, signature, kid;
};

static struct cons_slice cons_reply_slice(const redisReply *r)
{
	return (struct cons_slice){r->str, (size_t)r->len};
}

bool cons_entry_enough(const struct cons_state *st)
{
	return st->o->count > 0 && st->handled >= st->o->count;
}

/* Picks the five fields out of [field, value, ...]; a missing, empty or
 * repeated one makes the entry malformed. */
static bool cons_fields_get(const redisReply *list, struct cons_fields *f, char **cause)
{
	static const char *const names[] = {"id", "type", "event", "signature", "kid"};
	struct cons_slice *slots[] = {&f->id, &f->type, &f->event, &f->signature, &f->kid};
	memset(f, 0, sizeof(*f));
	if (list->type != REDIS_REPLY_ARRAY || list->elements % 2 != 0) {
		*cause = cons_xasprintf("malformed entry (field list)");
		return false;
	}
	for (size_t i = 0; i + 1 < list->elements; i += 2) {
		const redisReply *k = list->element[i], *v = list->element[i + 1];
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++) {
			if ((size_t)k->len != strlen(names[j]) || memcmp(k->str, names[j], (size_t)k->len) != 0)
				continue;
			if (slots[j]->p != NULL) {
				*cause = cons_xasprintf("malformed entry (field %s repeated)", names[j]);
				return false;
			}
			*slots[j] = cons_reply_slice(v);
		}
	}
	for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++) {
		if (slots[j]->p == NULL || slots[j]->n == 0) {
			*cause = cons_xasprintf("malformed entry (field %s missing or empty)", names[j]);
			return false;
		}
	}
	return true;
}

/* XACK alone: for entries that need nothing else. */
static bool cons_ack(struct cons_state *st, const redisReply *sid)
{
	struct cons_cmd c;
	cons_cmd_init(&c);
	cons_cmd_str(&c, "XACK");
	cons_cmd_str(&c, st->o->stream);
	cons_cmd_str(&c, st->o->group);
	cons_cmd_arg(&c, sid->str, (size_t)sid->len);
	redisReply *reply = cons_redis_cmd(st->r, &c);
	cons_cmd_free(&c);
	bool ok = reply != NULL && reply->type == REDIS_REPLY_INTEGER;
	if (reply != NULL && !ok)
		cons_log(CONS_ERROR, "XACK %s: %s", sid->str, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
	if (reply != NULL)
		freeReplyObject(reply);
	return ok;
}

/* Copies the entry (its original fields, then reason, deliveries, the
 * original stream id and who gave up on it) to <stream>:dead, then
 * acknowledges it.  Not MULTI/EXEC: EXEC runs XACK even when XADD fails
 * (WRONGTYPE), which would lose the entry.  In this order a crash (or a
 * reply lost to a reconnection) in between only repeats the dead letter. */
static bool cons_dead_letter(struct cons_state *st, const redisReply *sid, const redisReply *fields,
			     long long deliveries, const char *reason)
{
	cons_log(CONS_WARN, "dead letter: entry %s (delivery %lld): %s", sid->str, deliveries, reason);
	struct cons_cmd xadd;
	cons_cmd_init(&xadd);
	cons_cmd_str(&xadd, "XADD");
	cons_cmd_str(&xadd, st->dead_stream);
	cons_cmd_str(&xadd, "*");
	if (fields != NULL && fields->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < fields->elements; i++)
			if (fields->element[i]->type == REDIS_REPLY_STRING)
				cons_cmd_arg(&xadd, fields->element[i]->str, (size_t)fields->element[i]->len);
	if (xadd.argc % 2 == 0) /* an odd list cannot happen; keep the pairs aligned */
		cons_cmd_str(&xadd, "");
	cons_cmd_str(&xadd, "reason");
	cons_cmd_str(&xadd, reason);
	cons_cmd_str(&xadd, "deliveries");
	cons_cmd_fmt(&xadd, "%lld", deliveries);
	cons_cmd_str(&xadd, "stream_id");
	cons_cmd_arg(&xadd, sid->str, (size_t)sid->len);
	cons_cmd_str(&xadd, "consumer");
	cons_cmd_str(&xadd, st->o->consumer);
	redisReply *reply = cons_redis_cmd(st->r, &xadd);
	cons_cmd_free(&xadd);
	if (reply == NULL)
		return false;
	bool ok = reply->type == REDIS_REPLY_STRING;
	if (!ok)
		cons_log(CONS_ERROR, "XADD %s: %s", st->dead_stream,
			 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
	freeReplyObject(reply);
	if (!ok || !cons_ack(st, sid))
		return false;
	st->dead++;
	return true;
}

/* The done marker's key: per group, since every group handles every event. */
static void cons_done_key(struct cons_state *st, struct cons_cmd *c, struct cons_slice id)
{
	cons_cmd_fmt(c, "%s:%s:done:%.*s", st->o->stream, st->o->group, (int)id.n, id.p);
}

/* 1: the event was handled before (by this group), 0: not, -1: Redis gave up. */
static int cons_seen(struct cons_state *st, struct cons_slice id)
{
	struct cons_cmd c;
	cons_cmd_init(&c);
	cons_cmd_str(&c, "EXISTS");
	cons_done_key(st, &c, id);
	redisReply *reply = cons_redis_cmd(st->r, &c);
	cons_cmd_free(&c);
	if (reply == NULL)
		return -1;
	int seen = -1;
	if (reply->type == REDIS_REPLY_INTEGER)
		seen = reply->integer > 0;
	else
		cons_log(CONS_ERROR, "EXISTS: %s", reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
	freeReplyObject(reply);
	return seen;
}

/* The handler of this reference consumer: the event text, one line, on
 * stdout.  1: handled, 0: not handled (leave it pending), -1: stdout is
 * gone (nothing later can be handled either). */
static int cons_handle(struct cons_state *st, const struct cons_fields *f)
{
	const char *ft = st->o->fail_type;
	if (ft != NULL && f->type.n == strlen(ft) && memcmp(f->type.p, ft, f->type.n) == 0) {
		cons_log(CONS_INFO, "not handling a %s event (--fail-type): left pending", ft);
		return 0;
	}
	errno = 0;
	if (fwrite(f->event.p, 1, f->event.n, stdout) != f->event.n || putc('\n', stdout) == EOF ||
	    fflush(stdout) != 0) {
		cons_log(CONS_ERROR, "writing to stdout: %s", errno ? strerror(errno) : "short write");
		return -1;
	}
	return 1;
}

/* Step 5: the marker (NX: finding it already set means another delivery
 * of the same event was handled meanwhile, the at-least-once window) and
 * the XACK, pipelined; both are safe to repeat after a reconnection.  A
 * failed SET with a successful XACK (Redis out of memory refuses SET, not
 * XACK) only forgets that the event was handled: a later duplicate would be
 * handled again, which at-least-once allows; we still stop (exit 1). */
static bool cons_mark_done(struct cons_state *st, const redisReply *sid, struct cons_slice id)
{
	struct cons_cmd set, ack;
	cons_cmd_init(&set);
	cons_cmd_str(&set, "SET");
	cons_done_key(st, &set, id);
	cons_cmd_str(&set, "1");
	cons_cmd_str(&set, "NX");
	cons_cmd_str(&set, "EX");
	cons_cmd_fmt(&set, "%lld", st->o->dedupe_ttl_s);
	cons_cmd_init(&ack);
	cons_cmd_str(&ack, "XACK");
	cons_cmd_str(&ack, st->o->stream);
	cons_cmd_str(&ack, st->o->group);
	cons_cmd_arg(&ack, sid->str, (size_t)sid->len);
	struct cons_cmd *cmds[] = {&set, &ack};
	redisReply *replies[2] = {NULL, NULL};
	bool ok = cons_redis_pipeline(st->r, cmds, 2, replies);
	if (ok) {
		if (replies[0]->type == REDIS_REPLY_NIL)
			cons_log(CONS_WARN, "entry %s: its event was also handled by another delivery", sid->str);
		for (int i = 0; i < 2 && ok; i++) {
			if (replies[i]->type == REDIS_REPLY_ERROR) {
				cons_log(CONS_ERROR, "%s: %s", cmds[i]->argv[0], replies[i]->str);
				ok = false;
			}
		}
		freeReplyObject(replies[0]);
		freeReplyObject(replies[1]);
	}
	cons_cmd_free(&set);
	cons_cmd_free(&ack);
	return ok;
}

bool cons_entry_process(struct cons_state *st, const redisReply *entry, long long deliveries)
{
	if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 || entry->element[0]->type != REDIS_REPLY_STRING) {
		cons_log(CONS_WARN, "skipping a malformed stream entry reply");
		return true;
	}
	const redisReply *sid = entry->element[0];
	const redisReply *list = entry->element[1];
	if (list->type == REDIS_REPLY_NIL) {
		/* Redis < 7 claims entries deleted (trimmed) while pending as nil:
		 * nothing left to handle or to copy. */
		cons_log(CONS_WARN, "entry %s was deleted from the stream while pending", sid->str);
		return cons_ack(st, sid);
	}
	char *cause = NULL;
	bool ok;
	struct cons_fields f;
	if (deliveries > st->o->max_deliveries) {
		cause = cons_xasprintf("delivered %lld times (--max-deliveries %lld)", deliveries, st->o->max_deliveries);
		goto dead;
	}
	if (!cons_fields_get(list, &f, &cause) ||
	    !cons_verify_signature(st->o->keys, f.kid, f.signature, f.event, &cause) ||
	    !cons_verify_event(f.event, f.id, f.type, st->o->source, &cause))
		goto dead;

	int seen = cons_seen(st, f.id);
	if (seen < 0)
		return false;
	if (seen) {
		cons_log(CONS_INFO, "entry %s: event %.*s already handled, acknowledging", sid->str, (int)f.id.n, f.id.p);
		st->duplicates++;
		return cons_ack(st, sid);
	}
	int handled = cons_handle(st, &f);
	if (handled < 0)
		return false;
	if (handled == 0) {
		st->unhandled++;
		return true;
	}
	if (!cons_mark_done(st, sid, f.id))
		return false;
	st->handled++;
	cons_log(CONS_DEBUG, "entry %s: handled event %.*s", sid->str, (int)f.id.n, f.id.p);
	return true;
dead:
	ok = cons_dead_letter(st, sid, list, deliveries, cause);
	free(cause);
	return ok;
}
