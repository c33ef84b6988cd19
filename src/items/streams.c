/* streams.c — the DynamoDB Streams API over item_stream (sql/011_streams.sql):
 * ListStreams, DescribeStream, GetShardIterator, GetRecords. One stream per
 * table (its latest), one shard per stream. Positions are (ord, seq) pairs;
 * a sequence number is both as 20 + 20 decimal digits, so that it orders as
 * they do. Shard iterators carry the tenant, the table, the stream label,
 * the position and when they were issued, MACed with the store's stream key
 * (derived from the master key): opaque to clients, tamper-evident, bound to
 * the tenant, valid for 15 minutes. Records are read only below the oldest
 * running transaction (ord < xmin), so none is ever skipped. */
#include "items/items_int.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define ST_ITER_TTL_MS (15 * 60 * 1000)
#define ST_RETENTION_MS (24LL * 3600 * 1000)
#define ST_ARN_PREFIX "arn:aws:dynamodb:onceledger:"

/* ---- positions and sequence numbers ------------------------------------ */

typedef struct st_pos {
	unsigned long long ord;
	long long seq;
	bool incl; /* records at the position itself too */
} st_pos;

static void seqnum(char out[41], const char *ord, long long seq)
{
	snprintf(out, 41, "%020llu%020lld", strtoull(ord, NULL, 10), seq);
}

static bool seqnum_parse(const char *s, st_pos *p)
{
	if (s == NULL || strlen(s) != 40)
		return false;
	for (int i = 0; i < 40; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	char a[21], b[21];
	memcpy(a, s, 20);
	a[20] = '\0';
	memcpy(b, s + 20, 20);
	b[20] = '\0';
	p->ord = strtoull(a, NULL, 10);
	long long seq;
	if (!util_parse_ll(b, 0, INT64_MAX, &seq))
		return false;
	p->seq = seq;
	return true;
}

/* ---- stream ARNs ------------------------------------------------------- */

typedef struct st_arn {
	char tenant[64];
	char table[256];
	char label[40];
} st_arn;

static bool arn_parse(const char *arn, st_arn *a)
{
	if (arn == NULL || strncmp(arn, ST_ARN_PREFIX, strlen(ST_ARN_PREFIX)) != 0)
		return false;
	const char *p = arn + strlen(ST_ARN_PREFIX);
	const char *colon = strchr(p, ':');
	if (colon == NULL || colon == p || (size_t)(colon - p) >= sizeof(a->tenant) || strncmp(colon, ":table/", 7) != 0)
		return false;
	memcpy(a->tenant, p, (size_t)(colon - p));
	a->tenant[colon - p] = '\0';
	const char *name = colon + 7;
	const char *st = strstr(name, "/stream/");
	if (st == NULL || st == name || (size_t)(st - name) >= sizeof(a->table) || strlen(st + 8) == 0 ||
	    strlen(st + 8) >= sizeof(a->label))
		return false;
	memcpy(a->table, name, (size_t)(st - name));
	a->table[st - name] = '\0';
	util_strlcpy(a->label, st + 8, sizeof(a->label));
	return true;
}

/* The shard of a stream: one per stream, named after its label. */
static void shard_id(char out[64], const it_table *t, const char *label)
{
	unsigned char h[8];
	char hex[17];
	crypto_generichash(h, sizeof(h), (const unsigned char *)label, strlen(label), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	snprintf(out, 64, "shardId-%020" PRId64 "-%.8s", t->id, hex);
}

/* The table's stream as a client may name it: ARN of this tenant, the
 * table's latest stream, enabled or disabled less than 24 h ago. */
static bool stream_current(const it_op *op, const it_table *t, const st_arn *a)
{
	const json_t *def = t->def;
	const char *label = json_string_value(json_object_get(def, "LatestStreamLabel"));
	if (label == NULL || strcmp(label, a->label) != 0 || strcmp(a->tenant, op->tenant) != 0)
		return false;
	json_t *dis = json_object_get(json_object_get(def, "_stream"), "disabled_ms");
	return t->stream != IT_STREAM_NONE || (json_is_integer(dis) && json_integer_value(dis) > util_now_us() / 1000 - ST_RETENTION_MS);
}

static void not_found(it_op *op, const char *arn)
{
	it_finish_err(op, "ResourceNotFoundException", NULL, "Requested resource not found: Stream: %s not found", arn ? arn : "");
}

/* Finds the stream named by StreamArn (parsed into a, the first member of
 * an operation state of size n, which becomes op->state) and calls cb with
 * its table. */
static bool stream_table(it_op *op, st_arn *a, size_t n, it_table_cb cb)
{
	const char *arn = it_req_str(op->req, "StreamArn");
	if (arn == NULL) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value null at 'streamArn' failed to satisfy constraint: Member must not be null");
		return false;
	}
	if (!arn_parse(arn, a)) {
		it_finish_err(op, "ValidationException", NULL, "Invalid StreamArn");
		return false;
	}
	if (strcmp(a->tenant, op->tenant) != 0) {
		not_found(op, arn);
		return false;
	}
	if (!it_check_table_name(op, "streamArn", a->table))
		return false;
	it_table_forget(op->store, op->tenant, a->table); /* the truth, not a cached definition */
	op->state = malloc(n);
	if (op->state == NULL) {
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return false;
	}
	memcpy(op->state, a, n);
	op->state_free = free;
	it_table_get(op, a->table, cb);
	return true;
}

/* ---- shard iterators --------------------------------------------------- */

typedef struct st_iter {
	char tenant[64];
	long long table_id;
	char label[40];
	st_pos pos;
	long long issued_ms;
} st_iter;

static char *iter_encode(const it_store *s, const st_iter *it)
{
	char payload[256];
	int n = snprintf(payload, sizeof(payload), "1|%s|%lld|%s|%llu|%lld|%d|%lld", it->tenant, it->table_id, it->label,
			 it->pos.ord, it->pos.seq, it->pos.incl ? 1 : 0, it->issued_ms);
	if (n < 0 || (size_t)n >= sizeof(payload))
		return NULL;
	unsigned char mac[crypto_auth_BYTES];
	crypto_auth(mac, (const unsigned char *)payload, (size_t)n, s->stream_key);
	size_t plen = sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	size_t mlen = sodium_base64_ENCODED_LEN(sizeof(mac), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *out = malloc(plen + mlen + 2);
	if (out == NULL)
		return NULL;
	sodium_bin2base64(out, plen, (const unsigned char *)payload, (size_t)n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	size_t at = strlen(out);
	out[at++] = '.';
	sodium_bin2base64(out + at, mlen, mac, sizeof(mac), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

/* Verifies and reads an iterator; false when malformed or tampered with. */
static bool iter_decode(const it_store *s, const char *text, st_iter *it)
{
	const char *dot = text ? strchr(text, '.') : NULL;
	if (dot == NULL || dot == text || strlen(text) > 2048)
		return false;
	unsigned char payload[256], mac[crypto_auth_BYTES + 1];
	size_t n = 0, mn = 0;
	if (sodium_base642bin(payload, sizeof(payload) - 1, text, (size_t)(dot - text), NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    sodium_base642bin(mac, sizeof(mac), dot + 1, strlen(dot + 1), NULL, &mn, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    mn != crypto_auth_BYTES || crypto_auth_verify(mac, payload, n, s->stream_key) != 0)
		return false;
	payload[n] = '\0';
	char *f[8], *save = NULL, *p = (char *)payload;
	int nf = 0;
	for (char *tok = strtok_r(p, "|", &save); tok != NULL && nf < 8; tok = strtok_r(NULL, "|", &save))
		f[nf++] = tok;
	if (nf != 8 || strcmp(f[0], "1") != 0 || strlen(f[1]) >= sizeof(it->tenant) || strlen(f[3]) >= sizeof(it->label))
		return false;
	long long incl = 0;
	util_strlcpy(it->tenant, f[1], sizeof(it->tenant));
	util_strlcpy(it->label, f[3], sizeof(it->label));
	it->pos.ord = strtoull(f[4], NULL, 10);
	if (!util_parse_ll(f[2], 1, INT64_MAX, &it->table_id) || !util_parse_ll(f[5], 0, INT64_MAX, &it->pos.seq) ||
	    !util_parse_ll(f[6], 0, 1, &incl) || !util_parse_ll(f[7], 0, INT64_MAX, &it->issued_ms))
		return false;
	it->pos.incl = incl == 1;
	return true;
}

/* ---- ListStreams ------------------------------------------------------- */

static const db_stmt stmt_list = {
	"it_streams_list",
	"SELECT name, definition ->> 'LatestStreamArn', definition ->> 'LatestStreamLabel' FROM item_tables"
	" WHERE tenant = $1 AND name NOT LIKE 'ol:%' AND ($2::text IS NULL OR name = $2) AND name > $3"
	" AND definition ? 'LatestStreamArn'"
	" AND (definition -> 'StreamSpecification' ->> 'StreamEnabled' = 'true'"
	"      OR (definition -> '_stream' ->> 'disabled_ms')::bigint > $4::bigint)"
	" ORDER BY name COLLATE \"C\" LIMIT $5::int + 1",
	5};
static const db_stmt stmt_table_exists = {
	"it_streams_table_exists", "SELECT 1 FROM item_tables WHERE tenant = $1 AND name = $2", 2};

static void listed(db_result *res, void *arg)
{
	it_op *op = arg;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	const char *tname = it_req_str(op->req, "TableName");
	if (tname != NULL && PQntuples(res->results[1]) == 0) {
		it_finish_err(op, "ResourceNotFoundException", NULL, "Requested resource not found: Table: %s not found", tname);
		return;
	}
	long long limit = (long long)(intptr_t)op->state;
	op->state = NULL;
	PGresult *r = res->results[0];
	int n = PQntuples(r);
	json_t *list = json_array();
	for (int i = 0; i < n && i < limit; i++)
		json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "StreamArn", PQgetvalue(r, i, 1), "TableName",
						      PQgetvalue(r, i, 0), "StreamLabel", PQgetvalue(r, i, 2)));
	json_t *body = json_pack("{s:o}", "Streams", list);
	if (n > limit)
		json_object_set_new(body, "LastEvaluatedStreamArn", json_string(PQgetvalue(r, (int)limit - 1, 1)));
	it_finish_ok(op, body);
}

void it_op_list_streams(it_op *op)
{
	json_t *lim = json_object_get(op->req, "Limit");
	long long limit = 100;
	if (lim != NULL) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1 || json_integer_value(lim) > 100) {
			it_finish_err(op, "ValidationException", NULL,
				      "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value between 1 and 100");
			return;
		}
		limit = json_integer_value(lim);
	}
	const char *tname = it_req_str(op->req, "TableName");
	if (tname != NULL && !it_check_table_name(op, "tableName", tname))
		return;
	const char *start = it_req_str(op->req, "ExclusiveStartStreamArn");
	st_arn a = {0};
	if (start != NULL && !arn_parse(start, &a)) {
		it_finish_err(op, "ValidationException", NULL, "Invalid ExclusiveStartStreamArn");
		return;
	}
	char lbuf[16], since[24];
	snprintf(lbuf, sizeof(lbuf), "%lld", limit);
	snprintf(since, sizeof(since), "%lld", (long long)(util_now_us() / 1000 - ST_RETENTION_MS));
	const char *p[5] = {op->tenant, tname, start ? a.table : "", since, lbuf};
	const char *pe[2] = {op->tenant, tname ? tname : ""};
	db_batch *b = db_batch_new();
	if (b == NULL || !db_batch_add(b, &stmt_list, p) || !db_batch_add(b, &stmt_table_exists, pe)) {
		db_batch_free(b);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	op->state = (void *)(intptr_t)limit;
	db_exec(op->store->db, b, listed, op);
}

/* ---- DescribeStream ---------------------------------------------------- */

static const db_stmt stmt_range = {
	"it_streams_range",
	"SELECT (SELECT s.ord::text || ',' || s.seq FROM item_stream s WHERE s.table_id = $1::bigint ORDER BY s.ord, s.seq LIMIT 1),"
	" (SELECT s.ord::text || ',' || s.seq FROM item_stream s WHERE s.table_id = $1::bigint"
	"  ORDER BY s.ord DESC, s.seq DESC LIMIT 1),"
	" pg_snapshot_xmin(pg_current_snapshot())::text",
	1};

/* "ord,seq" (or NULL) as a sequence number; fallback_ord when NULL. */
static bool seqnum_of(const PGresult *r, int col, const char *fallback_ord, char out[41])
{
	if (PQgetisnull(r, 0, col)) {
		if (fallback_ord == NULL)
			return false;
		seqnum(out, fallback_ord, 0);
		return true;
	}
	char buf[64];
	util_strlcpy(buf, PQgetvalue(r, 0, col), sizeof(buf));
	char *comma = strchr(buf, ',');
	if (comma == NULL)
		return false;
	*comma = '\0';
	seqnum(out, buf, atoll(comma + 1));
	return true;
}

static void described(db_result *res, void *arg)
{
	it_op *op = arg;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	const it_table *t = op->table;
	const st_arn *a = op->state;
	PGresult *r = res->results[0];
	const json_t *st = json_object_get(t->def, "_stream");
	bool enabled = t->stream != IT_STREAM_NONE;
	char sid[64], first[41], last[41];
	shard_id(sid, t, a->label);
	json_t *range = json_object();
	if (seqnum_of(r, 0, PQgetvalue(r, 0, 2), first))
		json_object_set_new(range, "StartingSequenceNumber", json_string(first));
	if (!enabled && seqnum_of(r, 1, NULL, last))
		json_object_set_new(range, "EndingSequenceNumber", json_string(last));
	json_t *shards = json_array();
	const char *after = it_req_str(op->req, "ExclusiveStartShardId");
	if (after == NULL || strcmp(after, sid) != 0)
		json_array_append_new(shards, json_pack("{s:s, s:o}", "ShardId", sid, "SequenceNumberRange", range));
	else
		json_decref(range);
	const char *view = json_string_value(json_object_get(st, "view"));
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:f, s:s, s:O, s:o}", "StreamArn", it_req_str(op->req, "StreamArn"), "StreamLabel",
			      a->label, "StreamStatus", enabled ? "ENABLED" : "DISABLED", "StreamViewType",
			      view ? view : "KEYS_ONLY", "CreationRequestDateTime",
			      (double)json_integer_value(json_object_get(st, "enabled_ms")) / 1000.0, "TableName", t->name, "KeySchema",
			      json_object_get(t->def, "KeySchema"), "Shards", shards);
	it_finish_ok(op, json_pack("{s:o}", "StreamDescription", d));
}

/* The stream's sequence number range (stmt_range), then cb. */
static void query_range(it_op *op, const it_table *t, db_cb cb)
{
	char id[32];
	snprintf(id, sizeof(id), "%" PRId64, t->id);
	const char *p[1] = {id};
	db_batch *b = db_batch_new();
	if (b == NULL || !db_batch_add(b, &stmt_range, p)) {
		db_batch_free(b);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	db_exec(op->store->db, b, cb, op);
}

static void describe_with(it_op *op, it_table *t)
{
	if (!stream_current(op, t, op->state)) {
		not_found(op, it_req_str(op->req, "StreamArn"));
		return;
	}
	json_t *lim = json_object_get(op->req, "Limit");
	if (lim != NULL && (!json_is_integer(lim) || json_integer_value(lim) < 1 || json_integer_value(lim) > 100)) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value between 1 and 100");
		return;
	}
	query_range(op, t, described);
}

void it_op_describe_stream(it_op *op)
{
	st_arn a;
	(void)stream_table(op, &a, sizeof(a), describe_with);
}

/* ---- GetShardIterator -------------------------------------------------- */

enum { IT_TRIM_HORIZON = 1, IT_LATEST, IT_AT, IT_AFTER };

typedef struct iter_req {
	st_arn a; /* first: op->state is also read as an st_arn */
	int type;
	st_pos pos;
} iter_req;

static void iter_ready(db_result *res, void *arg)
{
	it_op *op = arg;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	iter_req *ir = op->state;
	PGresult *r = res->results[0];
	st_iter it = {0};
	util_strlcpy(it.tenant, op->tenant, sizeof(it.tenant));
	it.table_id = op->table->id;
	util_strlcpy(it.label, ir->a.label, sizeof(it.label));
	it.issued_ms = util_now_us() / 1000;
	if (ir->type == IT_TRIM_HORIZON) {
		it.pos = (st_pos){0, 0, true};
	} else if (ir->type == IT_LATEST) {
		/* everything that becomes readable from now on: records of
		 * transactions still running sort at or after the oldest of them */
		it.pos = (st_pos){strtoull(PQgetvalue(r, 0, 2), NULL, 10), 0, true};
	} else {
		char oldest[41];
		st_pos o;
		if (seqnum_of(r, 0, NULL, oldest) && seqnum_parse(oldest, &o) &&
		    (ir->pos.ord < o.ord || (ir->pos.ord == o.ord && ir->pos.seq < o.seq))) {
			it_finish_err(op, "TrimmedDataAccessException", NULL,
				      "The operation attempted to read past the oldest stream record in a shard.");
			return;
		}
		it.pos = ir->pos;
		it.pos.incl = ir->type == IT_AT;
	}
	char *tok = iter_encode(op->store, &it);
	if (tok == NULL) {
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	json_t *body = json_pack("{s:s}", "ShardIterator", tok);
	free(tok);
	it_finish_ok(op, body);
}

static void iterator_with(it_op *op, it_table *t)
{
	iter_req *ir = op->state;
	if (!stream_current(op, t, &ir->a)) {
		not_found(op, it_req_str(op->req, "StreamArn"));
		return;
	}
	char sid[64];
	shard_id(sid, t, ir->a.label);
	const char *want = it_req_str(op->req, "ShardId");
	if (want == NULL) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value null at 'shardId' failed to satisfy constraint: Member must not be null");
		return;
	}
	if (strcmp(want, sid) != 0) {
		it_finish_err(op, "ResourceNotFoundException", NULL, "Requested resource not found: Shard does not exist");
		return;
	}
	query_range(op, t, iter_ready);
}

void it_op_get_shard_iterator(it_op *op)
{
	if (!op->store->has_stream_key) {
		it_finish_err(op, "InternalServerError", NULL, "streams need a master key");
		return;
	}
	const char *type = it_req_str(op->req, "ShardIteratorType");
	static const char *const types[] = {NULL, "TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"};
	int ty = 0;
	for (int i = 1; type != NULL && i <= 4; i++)
		if (strcmp(type, types[i]) == 0)
			ty = i;
	if (ty == 0) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_SEQUENCE_NUMBER, TRIM_HORIZON]");
		return;
	}
	iter_req ir = {.type = ty};
	const char *sn = it_req_str(op->req, "SequenceNumber");
	if ((ty == IT_AT || ty == IT_AFTER) && sn == NULL) {
		it_finish_err(op, "ValidationException", NULL, "Must specify a SequenceNumber with ShardIteratorType %s", type);
		return;
	}
	if ((ty == IT_TRIM_HORIZON || ty == IT_LATEST) && json_object_get(op->req, "SequenceNumber") != NULL) {
		it_finish_err(op, "ValidationException", NULL, "Cannot specify a SequenceNumber with ShardIteratorType %s", type);
		return;
	}
	if (sn != NULL && !seqnum_parse(sn, &ir.pos)) {
		it_finish_err(op, "ValidationException", NULL, "Invalid SequenceNumber: %s", sn);
		return;
	}
	(void)stream_table(op, &ir.a, sizeof(ir), iterator_with);
}

/* ---- GetRecords -------------------------------------------------------- */

static const db_stmt stmt_stream_of = {
	"it_streams_of",
	"SELECT definition ->> 'LatestStreamLabel', definition -> 'StreamSpecification' ->> 'StreamEnabled' = 'true'"
	" FROM item_tables WHERE id = $1::bigint AND tenant = $2",
	2};
/* Records after (or at) a position, only below the oldest running
 * transaction: nothing can still appear before them. A page stops after
 * the record that crosses 1 MB (DynamoDB's limit), counted in stored size
 * so that only the records sent are detoasted (as Query's pages). */
static const db_stmt stmt_records = {
	"it_streams_records",
	"SELECT r.ord::text, r.seq, r.event, r.keys::text, r.old_image::text, r.new_image::text, r.view_type,"
	" extract(epoch FROM r.created_at)::bigint, r.service,"
	" ol_it_item_size(r.keys) + coalesce(ol_it_item_size(r.new_image), 0) + coalesce(ol_it_item_size(r.old_image), 0)"
	" FROM (SELECT s.*, sum(r_size) OVER (ORDER BY s.ord, s.seq ROWS UNBOUNDED PRECEDING) - r_size AS before"
	"  FROM item_stream s, LATERAL (SELECT pg_column_size(s.keys) + coalesce(pg_column_size(s.old_image), 0)"
	"   + coalesce(pg_column_size(s.new_image), 0) AS r_size) z"
	"  WHERE s.table_id = $1::bigint"
	"  AND (s.ord, s.seq) >= ($2::text::xid8, $3::bigint)"
	"  AND NOT (s.ord = $2::text::xid8 AND s.seq = $3::bigint AND NOT $4::boolean)"
	"  AND s.ord < pg_snapshot_xmin(pg_current_snapshot())"
	/* s.ord, not ord: that would be a text output column (a text order) */
	"  ORDER BY s.ord, s.seq LIMIT $5::int) r"
	" WHERE r.before < 1048576 ORDER BY r.ord, r.seq",
	5};
static const db_stmt stmt_pending = {
	"it_streams_pending",
	"SELECT EXISTS (SELECT 1 FROM item_stream WHERE table_id = $1::bigint AND (ord, seq) >= ($2::text::xid8, $3::bigint)"
	" AND NOT (ord = $2::text::xid8 AND seq = $3::bigint AND NOT $4::boolean))",
	4};
const db_stmt *const it_streams_stmts[] = {&stmt_list, &stmt_table_exists, &stmt_range, &stmt_stream_of, &stmt_records, &stmt_pending, NULL};

typedef struct rec_req {
	st_iter it;
} rec_req;

static json_t *record_json(PGresult *r, int i, char last_seq[41])
{
	char sn[41];
	seqnum(sn, PQgetvalue(r, i, 0), atoll(PQgetvalue(r, i, 1)));
	memcpy(last_seq, sn, 41);
	unsigned char h[16];
	char id[33];
	crypto_generichash(h, sizeof(h), (const unsigned char *)sn, 40, NULL, 0); /* seq is unique */
	sodium_bin2hex(id, sizeof(id), h, sizeof(h));
	json_t *dyn = json_pack("{s:I, s:o, s:s, s:I, s:s}", "ApproximateCreationDateTime", (json_int_t)atoll(PQgetvalue(r, i, 7)),
				"Keys", json_loads(PQgetvalue(r, i, 3), 0, NULL), "SequenceNumber", sn, "SizeBytes",
				(json_int_t)atoll(PQgetvalue(r, i, 9)), "StreamViewType", PQgetvalue(r, i, 6));
	if (!PQgetisnull(r, i, 5))
		json_object_set_new(dyn, "NewImage", json_loads(PQgetvalue(r, i, 5), 0, NULL));
	if (!PQgetisnull(r, i, 4))
		json_object_set_new(dyn, "OldImage", json_loads(PQgetvalue(r, i, 4), 0, NULL));
	json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "eventID", id, "eventName", PQgetvalue(r, i, 2), "eventVersion",
				"1.1", "eventSource", "aws:dynamodb", "awsRegion", "onceledger", "dynamodb", dyn);
	if (strcmp(PQgetvalue(r, i, 8), "t") == 0)
		json_object_set_new(rec, "userIdentity",
				    json_pack("{s:s, s:s}", "Type", "Service", "PrincipalId", "dynamodb.amazonaws.com"));
	return rec;
}

static void records_read(db_result *res, void *arg)
{
	it_op *op = arg;
	if (res->status != DB_OK) {
		it_finish_db(op, res);
		return;
	}
	rec_req *rq = op->state;
	PGresult *s = res->results[0];
	if (PQntuples(s) == 0 || strcmp(PQgetvalue(s, 0, 0), rq->it.label) != 0) {
		it_finish_err(op, "ResourceNotFoundException", NULL, "Requested resource not found: the stream of this iterator no longer exists");
		return;
	}
	bool enabled = strcmp(PQgetvalue(s, 0, 1), "t") == 0;
	PGresult *r = res->results[1];
	int n = PQntuples(r);
	json_t *recs = json_array();
	char last[41] = "";
	for (int i = 0; i < n; i++)
		json_array_append_new(recs, record_json(r, i, last));
	st_iter next = rq->it;
	if (n > 0) {
		(void)seqnum_parse(last, &next.pos);
		next.pos.incl = false;
	}
	json_t *body = json_pack("{s:o}", "Records", recs);
	/* a disabled stream's shard is closed: once read to its end, no next */
	bool closed = !enabled && n == 0 && strcmp(PQgetvalue(res->results[2], 0, 0), "f") == 0;
	if (!closed) {
		next.issued_ms = util_now_us() / 1000;
		char *tok = iter_encode(op->store, &next);
		if (tok == NULL) {
			json_decref(body);
			it_finish_err(op, "InternalServerError", NULL, "out of memory");
			return;
		}
		json_object_set_new(body, "NextShardIterator", json_string(tok));
		free(tok);
	}
	it_finish_ok(op, body);
}

void it_op_get_records(it_op *op)
{
	if (!op->store->has_stream_key) {
		it_finish_err(op, "InternalServerError", NULL, "streams need a master key");
		return;
	}
	json_t *itj = json_object_get(op->req, "ShardIterator");
	if (itj == NULL) {
		it_finish_err(op, "ValidationException", NULL,
			      "1 validation error detected: Value null at 'shardIterator' failed to satisfy constraint: Member must not be null");
		return;
	}
	json_t *lim = json_object_get(op->req, "Limit");
	long long limit = 1000;
	if (lim != NULL) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1 || json_integer_value(lim) > 1000) {
			it_finish_err(op, "ValidationException", NULL,
				      "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value between 1 and 1000");
			return;
		}
		limit = json_integer_value(lim);
	}
	rec_req *rq = calloc(1, sizeof(*rq));
	if (rq == NULL) {
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	op->state = rq;
	op->state_free = free;
	if (!iter_decode(op->store, json_string_value(itj), &rq->it)) {
		it_finish_err(op, "ValidationException", NULL, "Invalid ShardIterator");
		return;
	}
	if (strcmp(rq->it.tenant, op->tenant) != 0) {
		it_finish_err(op, "ResourceNotFoundException", NULL, "Requested resource not found: Shard iterator not found");
		return;
	}
	long long now = util_now_us() / 1000;
	if (now - rq->it.issued_ms > ST_ITER_TTL_MS) {
		it_finish_err(op, "ExpiredIteratorException", NULL,
			      "Iterator expired. The iterator was created at time %lld while right now it's %lld. The iterator is valid for 15 minutes.",
			      rq->it.issued_ms, now);
		return;
	}
	char id[32], ord[24], seq[24], lbuf[16];
	snprintf(id, sizeof(id), "%lld", rq->it.table_id);
	snprintf(ord, sizeof(ord), "%llu", rq->it.pos.ord);
	snprintf(seq, sizeof(seq), "%lld", rq->it.pos.seq);
	snprintf(lbuf, sizeof(lbuf), "%lld", limit);
	const char *ps[2] = {id, op->tenant};
	const char *pr[5] = {id, ord, seq, rq->it.pos.incl ? "true" : "false", lbuf};
	db_batch *b = db_batch_new();
	if (b == NULL || !db_batch_add(b, &stmt_stream_of, ps) || !db_batch_add(b, &stmt_records, pr) ||
	    !db_batch_add(b, &stmt_pending, pr)) {
		db_batch_free(b);
		it_finish_err(op, "InternalServerError", NULL, "out of memory");
		return;
	}
	db_exec(op->store->db, b, records_read, op);
}
