/* transfers.c — double-entry transfers, credits, debits and batches
 * (docs/api.md §4, docs/ledger.md) on the ledger tables: each operation is
 * ONE call of a function of sql/013_ledger_transfers.sql in the request's
 * transaction (the Idempotency-Key claim rides on the same round trip).
 * The function moves the money under the guard, chains the entries and
 * returns the transfer's document, or the refusal in the contract's order;
 * the transfer.posted event is queued here (events.c) and goes out with the
 * saved response and COMMIT. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static const db_stmt st_transfer = {
	"lg_transfer", "SELECT code, doc FROM ledger.transfer($1, $2, $3, $4, $5::bigint, $6, $7, $8, $9)", 9};
static const db_stmt st_batch = {"lg_transfer_batch",
				 "SELECT code, doc, fresh::text FROM ledger.transfer_batch($1, $2::json)", 2};
static const db_stmt st_get = {"lg_transfer_get", "SELECT ledger.stored_transfer_json($1, $2)", 2};
const db_stmt *const lg_transfers_stmts[] = {&st_transfer, &st_batch, &st_get, NULL};

typedef struct run {
	lg_ctx ctx;
	lg_cb cb;
	lg_doc_cb doc_cb; /* instead of cb: lg_transfer_create */
	void *arg;
	char id[80];
} run;

static run *run_new(const lg_ctx *c, lg_cb cb, void *arg)
{
	run *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, arg);
		return NULL;
	}
	k->ctx = *c;
	k->cb = cb;
	k->arg = arg;
	return k;
}

static void run_end(run *k, lg_status st, json_t *obj)
{
	k->cb(st, obj, k->arg);
	json_decref(obj);
	free(k);
}

/* A growing text; oom sticks, sb_take then gives NULL. */
typedef struct strbuf {
	char *p;
	size_t len, cap;
	bool oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_putc(strbuf *b, char c)
{
	sb_put(b, &c, 1);
}

static char *sb_take(strbuf *b)
{
	if (b->oom) {
		free(b->p);
		return NULL;
	}
	return b->p;
}

/* A JSON string as jansson writes it (JSON_COMPACT): quotes, backslashes
 * and control characters escaped, the rest (valid UTF-8) as it is. */
static void put_json_string(strbuf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	sb_putc(b, '"');
	const char *span = s;
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_put(b, span, (size_t)(p - span));
		span = p + 1;
		const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
			: c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
		if (esc != NULL) {
			sb_put(b, esc, 2);
		} else {
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			sb_put(b, u, sizeof(u));
		}
	}
	sb_put(b, span, strlen(span));
	sb_putc(b, '"');
}

static void put_member(strbuf *b, const char *name, const char *s)
{
	sb_put(b, name, strlen(name));
	if (s != NULL)
		put_json_string(b, s);
	else
		sb_put(b, "null", 4);
}

char *lg_transfer_params(const lg_transfer_new *t)
{
	/* The text json_dumps(JSON_COMPACT | JSON_SORT_KEYS) wrote of
	 * {kind, from, to, amount, currency, description, metadata} (the
	 * stored parameters are compared as text), written directly: it is
	 * built for every transfer. Omitted metadata is {}: spelled out or
	 * not, the same parameters. */
	char *meta = NULL;
	if (t->metadata != NULL && (meta = json_dumps(t->metadata, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		return NULL;
	char amount[24];
	int al = snprintf(amount, sizeof(amount), "%lld", (long long)t->amount);
	strbuf b = {0};
	sb_put(&b, "{\"amount\":", 10);
	sb_put(&b, amount, (size_t)al);
	put_member(&b, ",\"currency\":", t->currency);
	put_member(&b, ",\"description\":", t->description);
	put_member(&b, ",\"from\":", t->from);
	put_member(&b, ",\"kind\":", t->kind != NULL ? t->kind : "transfer");
	sb_put(&b, ",\"metadata\":", 12);
	sb_put(&b, meta != NULL ? meta : "{}", meta != NULL ? strlen(meta) : 2);
	put_member(&b, ",\"to\":", t->to);
	sb_putc(&b, '}');
	free(meta);
	return sb_take(&b);
}

/* The outcome of a money function: code, and doc (the document, or the
 * problem's members) as JSON. */
static lg_status outcome(const db_result *res, const char *what, json_t **obj)
{
	*obj = NULL;
	lg_status st = lg_db_status(res, what);
	if (st != LG_OK)
		return st;
	const char *code = lg_sql_value(res, 0, 0), *doc = lg_sql_value(res, 0, 1);
	st = lg_outcome(code);
	if (st == LG_FAILED)
		return st;
	*obj = doc != NULL ? json_loads(doc, 0, NULL) : NULL;
	if (*obj == NULL && (st == LG_OK || st == LG_DUPLICATE))
		return LG_FAILED;
	return st;
}

/* lg_doc_cb's end: the document's text on LG_OK and LG_DUPLICATE. */
static void doc_end(run *k, lg_status st, json_t *obj, const char *doc)
{
	k->doc_cb(st, obj, doc, k->arg);
	json_decref(obj);
	free(k);
}

static void posted(db_result *res, void *arg)
{
	run *k = arg;
	lg_status st = lg_db_status(res, "lg_transfer");
	if (st != LG_OK) {
		doc_end(k, st, NULL, NULL);
		return;
	}
	st = lg_outcome(lg_sql_value(res, 0, 0));
	const char *doc = lg_sql_value(res, 0, 1);
	if (st == LG_OK || st == LG_DUPLICATE) {
		/* The document goes out as the SQL wrote it (the contract's
		 * compact JSON, sql/013 transfer_json). Posted now: its event,
		 * with the same text as data. */
		if (doc == NULL || (st == LG_OK && !lg_event_defer(&k->ctx, "transfer.posted", k->id, doc)))
			doc_end(k, LG_FAILED, NULL, NULL);
		else
			doc_end(k, st, NULL, doc);
		return;
	}
	/* A refusal: doc holds the problem's members. */
	doc_end(k, st, st != LG_FAILED && doc != NULL ? json_loads(doc, 0, NULL) : NULL, NULL);
}

void lg_transfer_create(const lg_ctx *c, const lg_transfer_new *t, lg_doc_cb cb, void *arg)
{
	run *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cb(LG_FAILED, NULL, NULL, arg);
		return;
	}
	k->ctx = *c;
	k->doc_cb = cb;
	k->arg = arg;
	if (t->id != NULL)
		util_strlcpy(k->id, t->id, sizeof(k->id));
	else
		lg_new_id("tr_", k->id, sizeof(k->id));
	char amount[24];
	snprintf(amount, sizeof(amount), "%lld", (long long)t->amount);
	char *params = lg_transfer_params(t);
	char *meta = t->metadata != NULL ? lg_dump(t->metadata) : NULL;
	if (params == NULL || (t->metadata != NULL && meta == NULL)) {
		free(params);
		free(meta);
		doc_end(k, LG_FAILED, NULL, NULL);
		return;
	}
	const char *v[9] = {c->tenant, k->id, t->from, t->to, amount, t->currency, t->description, meta ? meta : "{}", params};
	lg_sql(c, &st_transfer, v, posted, k);
	free(params);
	free(meta);
}

/* ---- batches ---- */

/* {"id","from","to","amount","currency","description","metadata","params"}
 * of one transfer of a batch (from/to null: @world; metadata as text). */
static json_t *batch_item(const lg_transfer_new *t)
{
	char id[80];
	if (t->id != NULL)
		util_strlcpy(id, t->id, sizeof(id));
	else
		lg_new_id("tr_", id, sizeof(id));
	char *params = lg_transfer_params(t);
	char *meta = t->metadata != NULL ? lg_dump(t->metadata) : NULL;
	json_t *o = params != NULL && (t->metadata == NULL || meta != NULL)
			    ? json_pack("{s:s, s:s?, s:s?, s:I, s:s?, s:s?, s:s, s:s}", "id", id, "from", t->from, "to", t->to,
					"amount", (json_int_t)t->amount, "currency", t->currency, "description", t->description,
					"metadata", meta ? meta : "{}", "params", params)
			    : NULL;
	free(params);
	free(meta);
	return o;
}

static void batch_posted(db_result *res, void *arg)
{
	run *k = arg;
	json_t *obj;
	lg_status st = outcome(res, "lg_transfer_batch", &obj);
	if (st != LG_OK) {
		run_end(k, st, obj);
		return;
	}
	/* fresh: {t,f,...}, one per transfer; a transfer answered as stored
	 * (its id reused with identical parameters) has no new event. */
	const char *fresh = lg_sql_value(res, 0, 2);
	json_t *list = json_object_get(obj, "transfers");
	size_t i = 0;
	for (const char *p = fresh != NULL ? fresh + 1 : ""; *p != '\0' && *p != '}'; p++) {
		if (*p == ',')
			continue;
		json_t *doc = json_array_get(list, i++);
		if (*p != 't')
			continue;
		char *text = lg_dump(doc);
		bool ok = text != NULL &&
			  lg_event_defer(&k->ctx, "transfer.posted", json_string_value(json_object_get(doc, "id")), text);
		free(text);
		if (!ok) {
			json_decref(obj);
			run_end(k, LG_FAILED, NULL);
			return;
		}
	}
	if (fresh == NULL || i != json_array_size(list)) {
		json_decref(obj);
		run_end(k, LG_FAILED, NULL);
		return;
	}
	run_end(k, LG_OK, obj);
}

void lg_transfer_batch(const lg_ctx *c, const lg_transfer_new *t, int n, lg_cb cb, void *arg)
{
	run *k = run_new(c, cb, arg);
	if (k == NULL)
		return;
	json_t *items = json_array();
	for (int i = 0; items != NULL && i < n; i++) {
		json_t *o = batch_item(&t[i]);
		if (o == NULL || json_array_append_new(items, o) != 0) {
			json_decref(items);
			items = NULL;
		}
	}
	char *text = items != NULL ? json_dumps(items, JSON_COMPACT) : NULL;
	json_decref(items);
	if (text == NULL) {
		run_end(k, LG_FAILED, NULL);
		return;
	}
	const char *v[2] = {c->tenant, text};
	lg_sql(c, &st_batch, v, batch_posted, k);
	free(text);
}

/* ---- reads ---- */

static void got(db_result *res, void *arg)
{
	run *k = arg;
	lg_status st = lg_db_status(res, "lg_transfer_get");
	if (st != LG_OK) {
		run_end(k, st, NULL);
		return;
	}
	const char *doc = lg_sql_value(res, 0, 0);
	json_t *obj = doc != NULL ? json_loads(doc, 0, NULL) : NULL;
	run_end(k, obj != NULL ? LG_OK : doc != NULL ? LG_FAILED : LG_NOT_FOUND, obj);
}

void lg_transfer_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg)
{
	run *k = run_new(c, cb, arg);
	if (k == NULL)
		return;
	const char *v[2] = {c->tenant, id};
	lg_sql(c, &st_get, v, got, k);
}
