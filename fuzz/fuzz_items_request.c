/* libFuzzer target: the JSON request decoding of every operation of the
 * DynamoDB endpoint (POST / on --dynamodb-listen), from it_call down to the
 * SQL it would send: request shapes, typed values, expressions, key and
 * index checks, compilation. The db layer is a fake (db_fake.c): two tables
 * exist ("tbl": string partition key, number sort key, two GSIs, an LSI;
 * "ttl": with TTL), and every data statement is answered "unavailable".
 *
 * Checked for every input: the operation answers exactly once; a hostile
 * request never gets InternalServerError (our 500); a request that reached
 * the database got ServiceUnavailable from it; no request string marked
 * with the canary "ZQX" ever appears in SQL text (request data only ever
 * travels as parameters); no leak (ASan).
 *
 * Input: byte 0 = the operation (0xF0 and above: a DynamoDB Streams one,
 * so that the seeds of the others keep their operation), the rest = its
 * JSON request (parsed as the endpoint parses it). */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db_fake.h"
#include "items/items.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ops[] = {
	"GetItem",     "PutItem",	 "UpdateItem",	      "DeleteItem",	  "Query",
	"Scan",	       "TransactWriteItems", "TransactGetItems", "BatchGetItem",   "BatchWriteItem",
	"CreateTable", "DescribeTable",	 "DeleteTable",	      "UpdateTable",	  "ListTables",
	"UpdateTimeToLive", "DescribeTimeToLive", "NoSuchOperation",
};

static const char *const stream_ops[] = {
	IT_STREAMS_OP_PREFIX "ListStreams",
	IT_STREAMS_OP_PREFIX "DescribeStream",
	IT_STREAMS_OP_PREFIX "GetShardIterator",
	IT_STREAMS_OP_PREFIX "GetRecords",
};

static const db_fake_table tables[] = {
	{"tbl",
	 "{\"TableName\":\"tbl\",\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"},"
	 "{\"AttributeName\":\"sk\",\"KeyType\":\"RANGE\"}],\"AttributeDefinitions\":[{\"AttributeName\":\"pk\","
	 "\"AttributeType\":\"S\"},{\"AttributeName\":\"sk\",\"AttributeType\":\"N\"},{\"AttributeName\":\"gk\","
	 "\"AttributeType\":\"S\"},{\"AttributeName\":\"gb\",\"AttributeType\":\"B\"},{\"AttributeName\":\"ls\","
	 "\"AttributeType\":\"S\"}],\"GlobalSecondaryIndexes\":[{\"IndexName\":\"gsi1\",\"KeySchema\":[{"
	 "\"AttributeName\":\"gk\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"sk\",\"KeyType\":\"RANGE\"}],"
	 "\"Projection\":{\"ProjectionType\":\"ALL\"},\"_slot\":1},{\"IndexName\":\"gsi2\",\"KeySchema\":[{"
	 "\"AttributeName\":\"gb\",\"KeyType\":\"HASH\"}],\"Projection\":{\"ProjectionType\":\"KEYS_ONLY\"},"
	 "\"_slot\":2}],\"LocalSecondaryIndexes\":[{\"IndexName\":\"lsi1\",\"KeySchema\":[{\"AttributeName\":"
	 "\"pk\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"ls\",\"KeyType\":\"RANGE\"}],\"Projection\":{"
	 "\"ProjectionType\":\"INCLUDE\",\"NonKeyAttributes\":[\"a\",\"b\"]},\"_slot\":3}]}",
	 NULL},
	{"ttl",
	 "{\"TableName\":\"ttl\",\"KeySchema\":[{\"AttributeName\":\"id\",\"KeyType\":\"HASH\"}],"
	 "\"AttributeDefinitions\":[{\"AttributeName\":\"id\",\"AttributeType\":\"S\"}]}",
	 "exp"},
};

typedef struct outcome {
	int calls;
	char err_type[64];
	char err_msg[160];
} outcome;

static void done(it_reply *r, void *arg)
{
	outcome *o = arg;
	o->calls++;
	if (r->err_type != NULL)
		snprintf(o->err_type, sizeof(o->err_type), "%s", r->err_type);
	if (r->err_msg != NULL)
		snprintf(o->err_msg, sizeof(o->err_msg), "%s", r->err_msg);
}

static it_store *store;

static void init(void)
{
	if (sodium_init() < 0)
		abort();
	log_min_level = (log_level)(LOG_ERROR + 1);
	db_fake_tables(tables, (int)OL_ARRAY_LEN(tables));
	static int fake_pool;
	store = it_store_new((db_pool *)&fake_pool);
	assert(store != NULL);
	static const unsigned char stream_key[32] = {1};
	it_store_set_stream_key(store, stream_key);
	/* Self-check: the catalogue is readable, so a valid write reaches the
	 * database stage (otherwise the target would fuzz nothing past it). */
	json_t *req = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}}", "TableName", "tbl", "Item", "pk", "S", "a", "sk", "N", "1");
	outcome o = {0};
	db_fake_reset(NULL);
	it_call(store, "t_fuzz", "PutItem", req, done, &o);
	db_fake_drain();
	json_decref(req);
	if (o.calls != 1 || db_fake.data_statements != 1 || strcmp(o.err_type, "ServiceUnavailable") != 0)
		fprintf(stderr, "self-check: %d answers, %d statements, error '%s': %s\n", o.calls, db_fake.data_statements,
			o.err_type, o.err_msg);
	assert(o.calls == 1 && db_fake.data_statements == 1 && strcmp(o.err_type, "ServiceUnavailable") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		init();
		ready = true;
	}
	if (size < 1)
		return 0;
	const char *op = data[0] >= 0xF0 ? stream_ops[data[0] % OL_ARRAY_LEN(stream_ops)] : ops[data[0] % OL_ARRAY_LEN(ops)];
	json_error_t je;
	json_t *req = json_loadb((const char *)data + 1, size - 1, JSON_ALLOW_NUL, &je);
	if (req == NULL)
		return 0; /* the endpoint answers SerializationException itself */
	outcome o = {0};
	db_fake_reset("ZQX");
	it_call(store, "t_fuzz", op, req, done, &o);
	db_fake_drain();
	json_decref(req);

	assert(o.calls == 1);
	if (strcmp(o.err_type, "InternalServerError") == 0) {
		fprintf(stderr, "%s answered InternalServerError: %s\n", op, o.err_msg);
		abort();
	}
	if (db_fake.data_statements > 0)
		assert(strcmp(o.err_type, "ServiceUnavailable") == 0);
	assert(!db_fake.canary_in_sql);
	return 0;
}
