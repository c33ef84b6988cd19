/* inbox.c — the inbox of a hot account (docs/orders.md "The hot merchant").
 *
 * When many settlements credit one merchant at once, each would lock the
 * merchant's row from its first round trip to its commit, so they would run
 * one at a time. A settlement that finds the row locked (NoWait) credits the
 * merchant's inbox instead: an item INBOX#<account> / "<µs>#<transfer>" in
 * the same transaction, no row lock. Consolidation moves the inbox into the
 * account in batches — one lock of the row, posted += the sum, and one
 * entry per credit with its seq, balance_after and hash, as if each had
 * been posted there — and deletes the inbox items, all in one transaction.
 *
 * It runs from the sweeper (every hold_sweep_interval_ms, through the sparse
 * index open_by_expiry, partition OPEN#INBOX), before a GET of the account,
 * and before a debit of the account that the consolidated balance alone
 * would refuse. The audit counts inbox items as money of their currency. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util/util.h"

#define OPEN_INBOX "OPEN#INBOX"
#define INBOX_BATCH 200
#define HOT_SLOTS 256
#define HOT_MS 2000

/* ---- which accounts are hot (per worker thread: no lock) ---- */

typedef struct hot_slot {
	uint64_t h;
	int64_t until_ms;
} hot_slot;

static __thread hot_slot hot[HOT_SLOTS];

static uint64_t hot_hash(const char *tenant, const char *account)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const char *p = tenant; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ '/') * 1099511628211ULL;
	for (const char *p = account; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h | 1;
}

bool lg_hot(const char *tenant, const char *account)
{
	uint64_t h = hot_hash(tenant, account);
	const hot_slot *s = &hot[h % HOT_SLOTS];
	return s->h == h && s->until_ms > util_mono_ms();
}

void lg_hot_mark(const char *tenant, const char *account)
{
	uint64_t h = hot_hash(tenant, account);
	hot[h % HOT_SLOTS] = (hot_slot){h, util_mono_ms() + HOT_MS};
}

/* ---- the credit ---- */

json_t *lg_inbox_put_action(const char *account, const char *currency, const char *transfer_id, int64_t amount)
{
	char pk[96], sk[120], gsk[200], cur[16], csk[200];
	int64_t now = util_now_us();
	snprintf(pk, sizeof(pk), "INBOX#%s", account);
	snprintf(sk, sizeof(sk), "%016lld#%s", (long long)now, transfer_id);
	snprintf(gsk, sizeof(gsk), "%016lld#%s", (long long)now, account);
	snprintf(cur, sizeof(cur), "CUR#%s", currency);
	snprintf(csk, sizeof(csk), "INBOX#%s#%s", account, sk);
	/* posted: the audit sums it with the accounts of the currency. */
	json_t *item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:o, s:o, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}",
				 "PK", "S", pk, "SK", "S", sk, "type", "S", "inbox", "account", "S", account, "transfer_id", "S",
				 transfer_id, "amount", lg_av_n(amount), "posted", lg_av_n(amount), "currency", "S", currency,
				 "GSI3PK", "S", OPEN_INBOX, "GSI3SK", "S", gsk, "GSI6PK", "S", cur, "GSI6SK", "S", csk);
	return json_pack("{s:{s:s, s:o}}", "Put", "TableName", IT_SYSTEM_TABLE, "Item", item);
}

/* ---- consolidation ---- */

typedef struct icall {
	lg_ctx ctx;
	db_tx *own; /* our transaction when the caller had none (opened once there is something to post) */
	bool alone; /* the caller had no transaction */
	char account[80];
	void (*cb)(lg_status st, long moved, void *arg);
	void *arg;
	json_t *items; /* the inbox items of this round */
	lg_journal *journal;
	long moved;
	int rounds;
} icall;

static void round_start(icall *k);

static void icall_free(icall *k)
{
	json_decref(k->items);
	lg_journal_free(k->journal);
	if (k->own != NULL)
		db_tx_free(k->own);
	free(k);
}

static void committed(bool ok, void *arg)
{
	icall *k = arg;
	k->cb(ok ? LG_OK : LG_UNAVAILABLE, ok ? k->moved : 0, k->arg);
	icall_free(k);
}

static void icall_end(icall *k, lg_status st)
{
	if (st == LG_OK && k->own != NULL && k->moved > 0) {
		it_tx_commit(k->own, committed, k);
		return;
	}
	k->cb(st, st == LG_OK ? k->moved : 0, k->arg);
	icall_free(k);
}

static void flushed(lg_status st, void *arg)
{
	icall *k = arg;
	if (st != LG_OK) {
		icall_end(k, st);
		return;
	}
	/* A full round may have left more. */
	if (json_array_size(k->items) == INBOX_BATCH) {
		json_decref(k->items);
		k->items = NULL;
		round_start(k);
		return;
	}
	icall_end(k, LG_OK);
}

static void consolidated(it_reply *r, void *arg)
{
	icall *k = arg;
	if (r->err_type != NULL && strcmp(r->err_type, "TransactionCanceledException") == 0) {
		json_t *reasons = json_object_get(r->err_extra, "CancellationReasons");
		if (lg_reason_failed(json_array_get(reasons, 0))) {
			/* The account refused the sum: its balance would overflow.
			 * The credits stay in the inbox (counted by the audit). */
			log_error("inbox_consolidation_refused", "{s:s, s:s}", "tenant", k->ctx.tenant, "account", k->account);
			icall_end(k, LG_OVERFLOW);
			return;
		}
		/* Another consolidation took some of them first: read again. */
		if (++k->rounds > 3) {
			icall_end(k, LG_UNAVAILABLE);
			return;
		}
		json_decref(k->items);
		k->items = NULL;
		round_start(k);
		return;
	}
	if (r->err_type != NULL) {
		icall_end(k, lg_err_status(r));
		return;
	}
	/* The account as written: posted and seq count the whole round. Each
	 * credit's entry sees the account as it would have been after it. */
	const json_t *after = json_array_get(json_object_get(r->body, "Items"), 0);
	size_t n = json_array_size(k->items);
	int64_t seq = lg_n(after, "seq") - (int64_t)n, posted = lg_n(after, "posted");
	int64_t total = 0;
	size_t i;
	json_t *it;
	json_array_foreach(k->items, i, it)
		total += lg_n(it, "amount");
	posted -= total;
	const char *cur = lg_s(after, "currency");
	if (k->journal == NULL)
		k->journal = lg_journal_new();
	bool ok = k->journal != NULL && cur != NULL;
	json_array_foreach(k->items, i, it)
	{
		if (!ok)
			break;
		int64_t amount = lg_n(it, "amount");
		posted += amount;
		json_t *step = json_deep_copy(after);
		json_object_set_new(step, "seq", lg_av_n(seq + (int64_t)i + 1));
		json_object_set_new(step, "posted", lg_av_n(posted));
		json_t *e = lg_journal_post(k->journal, lg_s(it, "transfer_id"), k->account, cur, amount, step);
		json_decref(step);
		ok = e != NULL;
		json_decref(e);
	}
	if (!ok) {
		icall_end(k, LG_FAILED);
		return;
	}
	k->moved += (long)n;
	lg_journal_flush(&k->ctx, k->journal, flushed, k);
}

static void listed(it_reply *r, void *arg)
{
	icall *k = arg;
	if (r->err_type != NULL) {
		icall_end(k, lg_err_status(r));
		return;
	}
	json_t *items = json_object_get(r->body, "Items");
	size_t n = json_array_size(items);
	if (n == 0) {
		icall_end(k, LG_OK);
		return;
	}
	if (k->alone && k->own == NULL) {
		/* The update, the deletes and the entries commit together. An
		 * empty inbox (nearly every GET of an account) needs no
		 * transaction: only now is one opened. */
		k->ctx.tx = k->own = it_tx_new(k->ctx.items);
		if (k->own == NULL) {
			icall_end(k, LG_FAILED);
			return;
		}
	}
	k->items = json_incref(items);
	int64_t sum = 0;
	size_t i;
	json_t *it;
	json_t *actions = json_array();
	json_array_foreach(items, i, it)
	{
		sum += lg_n(it, "amount");
		json_array_append_new(actions, json_pack("{s:{s:s, s:{s:O, s:O}, s:s}}", "Delete", "TableName", IT_SYSTEM_TABLE, "Key",
							 "PK", json_object_get(it, "PK"), "SK", json_object_get(it, "SK"),
							 "ConditionExpression", "attribute_exists(PK)"));
	}
	json_t *vals = json_pack("{s:o, s:o, s:o, s:{s:s}}", ":sum", lg_av_n(sum), ":k", lg_av_n((int64_t)n), ":cap",
				 lg_av_n(INT64_MAX - sum), ":one", "N", "1");
	json_t *upd = json_pack("{s:{s:s, s:o, s:s, s:s, s:o, s:s}}", "Update", "TableName", IT_SYSTEM_TABLE, "Key",
				lg_key("ACCOUNT#", k->account, "METADATA"), "UpdateExpression",
				"SET posted = posted + :sum, spendable = spendable + :sum, seq = seq + :k, version = version + :one",
				"ConditionExpression", "attribute_exists(PK) AND posted <= :cap", "ExpressionAttributeValues", vals,
				"ReturnValuesOnConditionCheckFailure", "ALL_OLD");
	json_array_insert_new(actions, 0, upd);
	json_t *req = json_pack("{s:o, s:s}", "TransactItems", actions, "ReturnValues", "ALL_NEW");
	lg_call(&k->ctx, 0, "TransactWriteItems", req, consolidated, k);
	json_decref(req);
}

static void round_start(icall *k)
{
	char pk[96];
	snprintf(pk, sizeof(pk), "INBOX#%s", k->account);
	json_t *req = json_pack("{s:s, s:s, s:{s:{s:s}}, s:i, s:b}", "TableName", IT_SYSTEM_TABLE, "KeyConditionExpression",
				"PK = :p", "ExpressionAttributeValues", ":p", "S", pk, "Limit", INBOX_BATCH, "ConsistentRead", 1);
	lg_call(&k->ctx, 0, "Query", req, listed, k);
	json_decref(req);
}

void lg_inbox_consolidate(const lg_ctx *c, const char *account, void (*cb)(lg_status st, long moved, void *arg), void *arg)
{
	icall *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, 0, arg);
		return;
	}
	k->ctx = *c;
	k->cb = cb;
	k->arg = arg;
	util_strlcpy(k->account, account, sizeof(k->account));
	k->alone = c->tx == NULL;
	round_start(k);
}

/* ---- the sweeper ---- */

typedef struct isweep {
	it_store *items;
	int outstanding;
	long moved;
	void (*cb)(long n, void *arg);
	void *arg;
	char tenants[64][40];
	char accounts[64][80];
} isweep;

static void isweep_one(lg_status st, long moved, void *arg)
{
	isweep *s = arg;
	if (st == LG_OK)
		s->moved += moved;
	if (--s->outstanding == 0) {
		s->cb(s->moved, s->arg);
		free(s);
	}
}

static void due(json_t *rows, void *arg)
{
	isweep *s = arg;
	if (rows == NULL) {
		s->cb(-1, s->arg);
		free(s);
		return;
	}
	/* One consolidation per account (it drains the whole inbox). */
	int n = 0;
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		const char *tenant = json_string_value(json_object_get(row, "tenant"));
		const char *account = lg_s(json_object_get(row, "item"), "account");
		if (tenant == NULL || account == NULL)
			continue;
		bool seen = false;
		for (int j = 0; j < n && !seen; j++)
			seen = strcmp(s->tenants[j], tenant) == 0 && strcmp(s->accounts[j], account) == 0;
		if (seen || n == (int)OL_ARRAY_LEN(s->tenants))
			continue;
		util_strlcpy(s->tenants[n], tenant, sizeof(s->tenants[n]));
		util_strlcpy(s->accounts[n], account, sizeof(s->accounts[n]));
		n++;
	}
	s->outstanding = n + 1;
	for (int j = 0; j < n; j++) {
		lg_ctx c = {.items = s->items, .tx = NULL, .tenant = s->tenants[j]};
		lg_inbox_consolidate(&c, s->accounts[j], isweep_one, s);
	}
	isweep_one(LG_FAILED, 0, s);
}

void lg_inbox_sweep(it_store *items, int limit, void (*cb)(long n, void *arg), void *arg)
{
	isweep *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		cb(-1, arg);
		return;
	}
	s->items = items;
	s->cb = cb;
	s->arg = arg;
	it_system_due(items, "open_by_expiry", OPEN_INBOX, "9999999999999999", limit, due, s);
}
