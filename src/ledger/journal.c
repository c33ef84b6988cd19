/* journal.c — the entries of a request's transfers (ledger_int.h): their
 * seq, time and place in each account's hash chain, then one deferred
 * TransactWriteItems that writes them with the accounts' new heads and the
 * @world legs. Used by holds, orders and the inbox until they move to the
 * ledger tables (issue #16); transfers, credits, debits and batches no
 * longer do. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util/util.h"

/* The chain state of an account as this request left it. */
typedef struct head {
	char account[72];
	char hash[65];
	int64_t seq, last_at;
} head;

struct lg_journal {
	head *heads;
	int nheads, cap;
	json_t *actions; /* TransactItems: entries, @world legs, extras */
	json_t *events;  /* Outbox: the request's events, in order */
};

lg_journal *lg_journal_new(void)
{
	lg_journal *j = calloc(1, sizeof(*j));
	if (j != NULL && ((j->actions = json_array()) == NULL || (j->events = json_array()) == NULL)) {
		json_decref(j->actions);
		free(j);
		return NULL;
	}
	return j;
}

void lg_journal_free(lg_journal *j)
{
	if (j == NULL)
		return;
	free(j->heads);
	json_decref(j->actions);
	json_decref(j->events);
	free(j);
}

void lg_entry_hash(const char *prev_hex, const char *account, int64_t amount, int64_t balance_after, const char *posted_at,
		   int64_t seq, const char *transfer_id, char out[65])
{
	unsigned char prev[32] = {0};
	if (sodium_hex2bin(prev, sizeof(prev), prev_hex, strlen(prev_hex), NULL, NULL, NULL) != 0)
		memset(prev, 0, sizeof(prev));
	/* Ids are [A-Za-z0-9_.:@-] and times RFC 3339: nothing to escape. */
	char canon[512];
	int n = snprintf(canon, sizeof(canon),
			 "{\"account\":\"%s\",\"amount\":%lld,\"balance_after\":%lld,\"posted_at\":\"%s\",\"seq\":%lld,"
			 "\"transfer_id\":\"%s\"}",
			 account, (long long)amount, (long long)balance_after, posted_at, (long long)seq, transfer_id);
	crypto_generichash_state st;
	unsigned char h[32];
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, prev, sizeof(prev));
	crypto_generichash_update(&st, (const unsigned char *)canon, (size_t)(n > 0 && n < (int)sizeof(canon) ? n : 0));
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(out, 65, h, sizeof(h));
}

static head *head_of(lg_journal *j, const char *account, const json_t *after)
{
	for (int i = 0; i < j->nheads; i++)
		if (strcmp(j->heads[i].account, account) == 0)
			return &j->heads[i];
	if (j->nheads == j->cap) {
		int cap = j->cap ? j->cap * 2 : 4;
		head *h = realloc(j->heads, (size_t)cap * sizeof(*h));
		if (h == NULL)
			return NULL;
		j->heads = h;
		j->cap = cap;
	}
	head *h = &j->heads[j->nheads++];
	util_strlcpy(h->account, account, sizeof(h->account));
	const char *hx = lg_s(after, "head");
	util_strlcpy(h->hash, hx != NULL ? hx : LG_ZERO_HASH, sizeof(h->hash));
	h->seq = lg_n(after, "seq") - 1;
	h->last_at = lg_n(after, "last_at");
	return h;
}

static unsigned shard_of(const char *id)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % LG_WORLD_SHARDS;
}

static bool put(lg_journal *j, json_t *item)
{
	return json_array_append_new(j->actions, json_pack("{s:{s:s, s:o, s:s}}", "Put", "TableName", IT_SYSTEM_TABLE, "Item",
							   item, "ConditionExpression", "attribute_not_exists(PK)")) == 0;
}

json_t *lg_journal_post(lg_journal *j, const char *transfer_id, const char *account, const char *currency, int64_t amount,
			const json_t *after)
{
	int64_t now = util_now_us();
	char posted_at[40];
	if (account == NULL) {
		/* @world: an insert into one of its shards, no running balance. */
		char pk[32], sk[96], world[16];
		snprintf(pk, sizeof(pk), "WORLD#%s#%02u", currency, shard_of(transfer_id));
		snprintf(sk, sizeof(sk), "ENTRY#%s", transfer_id);
		snprintf(world, sizeof(world), LG_WORLD_PREFIX "%s", currency);
		util_format_time(posted_at, sizeof(posted_at), now);
		if (!put(j, json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:o, s:{s:s}, s:o}", "PK", "S", pk, "SK", "S", sk, "type",
				      "S", "world_entry", "transfer_id", "S", transfer_id, "amount", lg_av_n(amount), "posted_at",
				      "S", posted_at, "at", lg_av_n(now))))
			return NULL;
		return json_pack("{s:s, s:n, s:I, s:n}", "account", world, "seq", "amount", (json_int_t)amount, "balance_after");
	}
	head *h = head_of(j, account, after);
	if (h == NULL)
		return NULL;
	/* The update returned the account as written: seq counts this entry
	 * (and the ones of this request before it), posted is the balance
	 * after it. */
	int64_t seq = lg_n(after, "seq");
	int64_t balance = lg_n(after, "posted");
	if (seq != h->seq + 1)
		return NULL; /* cannot happen: the row is locked by this transaction */
	int64_t at = now > h->last_at ? now : h->last_at + 1; /* strictly after the previous entry */
	util_format_time(posted_at, sizeof(posted_at), at);
	char hash[65], prev[65];
	util_strlcpy(prev, h->hash, sizeof(prev));
	lg_entry_hash(prev, account, amount, balance, posted_at, seq, transfer_id, hash);
	char pk[96], sk[40], tpk[96], tsk[24];
	snprintf(pk, sizeof(pk), "ACCOUNT#%s", account);
	snprintf(sk, sizeof(sk), "ENTRY#%016lld", (long long)seq);
	snprintf(tsk, sizeof(tsk), "%016lld", (long long)at);
	util_strlcpy(tpk, pk, sizeof(tpk));
	json_t *item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:o, s:{s:s}, s:o, s:o, s:{s:s}, s:o, s:{s:s}, s:{s:s},"
				 " s:{s:s}, s:{s:s}}",
				 "PK", "S", pk, "SK", "S", sk, "type", "S", "entry", "account", "S", account, "seq", lg_av_n(seq),
				 "transfer_id", "S", transfer_id, "amount", lg_av_n(amount), "balance_after", lg_av_n(balance),
				 "posted_at", "S", posted_at, "at", lg_av_n(at), "hash", "S", hash, "prev_hash", "S", prev,
				 "GSI5PK", "S", tpk, "GSI5SK", "S", tsk);
	if (!put(j, item))
		return NULL;
	h->seq = seq;
	h->last_at = at;
	util_strlcpy(h->hash, hash, sizeof(h->hash));
	return json_pack("{s:s, s:I, s:I, s:I}", "account", account, "seq", (json_int_t)seq, "amount", (json_int_t)amount,
			 "balance_after", (json_int_t)balance);
}

bool lg_journal_add_action(lg_journal *j, json_t *action)
{
	return json_array_append_new(j->actions, action) == 0;
}

json_t *lg_journal_transfer(lg_journal *j, const lg_posting *p)
{
	json_t *e0 = lg_journal_post(j, p->id, p->from, p->currency, -p->amount, p->after_from);
	json_t *e1 = NULL;
	if (e0 != NULL && p->to_inbox) {
		/* Its entry is written when the inbox is consolidated. */
		json_t *put = lg_inbox_put_action(p->to, p->currency, p->id, p->amount);
		if (put != NULL && lg_journal_add_action(j, put))
			e1 = json_pack("{s:s, s:n, s:I, s:n}", "account", p->to, "seq", "amount", (json_int_t)p->amount, "balance_after");
	} else if (e0 != NULL) {
		e1 = lg_journal_post(j, p->id, p->to, p->currency, p->amount, p->after_to);
	}
	if (e1 == NULL) {
		json_decref(e0);
		return NULL;
	}
	json_t *doc = lg_transfer_doc(p->id, p->from, p->to, p->amount, p->currency, p->description, p->metadata, p->hold_id,
				      p->order_id, p->created_at, json_pack("[o, o]", e0, e1));
	json_t *act = doc != NULL ? lg_transfer_doc_action(p->id, doc) : NULL;
	if (act == NULL || !lg_journal_add_action(j, act) || !lg_journal_event(j, "transfer.posted", doc)) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

bool lg_journal_event(lg_journal *j, const char *type, const json_t *data)
{
	json_t *ev = lg_event(type, data);
	return ev != NULL && json_array_append_new(j->events, ev) == 0;
}

typedef struct flush {
	void (*cb)(lg_status st, void *arg);
	void *arg;
} flush;

static void flushed(it_reply *r, void *arg)
{
	flush *f = arg;
	f->cb(r->err_type == NULL ? LG_OK : lg_err_status(r), f->arg);
	free(f);
}

void lg_journal_flush(const lg_ctx *c, lg_journal *j, void (*cb)(lg_status st, void *arg), void *arg)
{
	/* The heads: the chain state each account has after this request. The
	 * condition on seq is a tripwire (the row is locked by us). */
	for (int i = 0; i < j->nheads; i++) {
		head *h = &j->heads[i];
		json_t *act = json_pack("{s:{s:s, s:o, s:s, s:s, s:{s:o, s:o, s:o}}}", "Update", "TableName", IT_SYSTEM_TABLE, "Key",
					lg_key("ACCOUNT#", h->account, "METADATA"), "UpdateExpression", "SET head = :h, last_at = :t",
					"ConditionExpression", "seq = :s", "ExpressionAttributeValues", ":h", lg_av_s(h->hash), ":t",
					lg_av_n(h->last_at), ":s", lg_av_n(h->seq));
		if (!lg_journal_add_action(j, act)) {
			cb(LG_FAILED, arg);
			return;
		}
	}
	j->nheads = 0;
	if (json_array_size(j->actions) == 0 && json_array_size(j->events) == 0) {
		cb(LG_OK, arg);
		return;
	}
	flush *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		cb(LG_FAILED, arg);
		return;
	}
	f->cb = cb;
	f->arg = arg;
	json_t *req = json_pack("{s:o, s:o}", "TransactItems", j->actions, "Outbox", j->events);
	j->actions = json_array();
	j->events = json_array();
	lg_call(c, IT_DEFER, "TransactWriteItems", req, flushed, f);
	json_decref(req);
}

/* ---- transfer items of the item layout (holds, orders) ---- */

json_t *lg_transfer_doc(const char *id, const char *from, const char *to, int64_t amount, const char *currency,
			const char *description, const json_t *metadata, const char *hold_id, const char *order_id,
			const char *created_at, json_t *entries)
{
	char f[80], t[80];
	snprintf(f, sizeof(f), "%s%s", from ? "" : LG_WORLD_PREFIX, from ? from : currency);
	snprintf(t, sizeof(t), "%s%s", to ? "" : LG_WORLD_PREFIX, to ? to : currency);
	json_t *m = metadata ? json_deep_copy(metadata) : json_object();
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s?, s:o, s:s?, s:s?, s:s, s:o}", "id", id, "from", f, "to", t, "amount",
			 (json_int_t)amount, "currency", currency, "status", "posted", "description", description, "metadata", m,
			 "hold_id", hold_id, "order_id", order_id, "created_at", created_at, "entries", entries);
}

json_t *lg_transfer_doc_action(const char *id, const json_t *doc)
{
	char *text = lg_dump(doc);
	json_t *act = json_pack("{s:{s:s, s:o, s:s, s:s, s:{s:s, s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}}}", "Update",
				"TableName", IT_SYSTEM_TABLE, "Key", lg_key("TXN#", id, "METADATA"), "UpdateExpression",
				"SET doc = :d, #f = :f, #t = :t, currency = :c", "ConditionExpression", "attribute_exists(PK)",
				"ExpressionAttributeNames", "#f", "from", "#t",
				"to", "ExpressionAttributeValues", ":d", "S", text ? text : "", ":f", "S",
				json_string_value(json_object_get(doc, "from")), ":t", "S",
				json_string_value(json_object_get(doc, "to")), ":c", "S",
				json_string_value(json_object_get(doc, "currency")));
	free(text);
	return act;
}

json_t *lg_transfer_put_action(const char *id, const char *params, int64_t amount)
{
	char pk[96];
	snprintf(pk, sizeof(pk), "TXN#%s", id);
	return json_pack("{s:{s:s, s:o, s:s, s:s}}", "Put", "TableName", IT_SYSTEM_TABLE, "Item",
			 json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:o}", "PK", "S", pk, "SK", "S", "METADATA", "type",
				   "S", "transfer", "id", "S", id, "params", "S", params ? params : "", "amount", lg_av_n(amount)),
			 "ConditionExpression", "attribute_not_exists(PK)", "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
}
