/* Integration tests of the item layer on real PostgreSQL: tables, typed
 * round trips, conditional writes, concurrency of a guarded debit,
 * transactions and their cancellation reasons, client tokens, queries across
 * pages in both orders, sparse indexes, TTL, batches, scans, tenancy. */
#include <pthread.h>
#include <unistd.h>

#include "dbtest.h"
#include "items/keyenc.h"
#include "items/value.h"

#define OK(r) ((r).done && (r).type[0] == '\0')
#define ERR(r, t) ((r).done && strcmp((r).type, (t)) == 0)

static char T1[40], T2[40];

/* Counts stored rows of this run's tenant matching a predicate on i. */
static char *count_rows(const char *pred)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM items i JOIN item_tables t ON t.id = i.table_id WHERE t.tenant = '%s' AND %s", T1, pred);
	return dbt_sql(sql);
}

static const char *item_n(json_t *item, const char *attr)
{
	return json_string_value(json_object_get(json_object_get(item, attr), "N"));
}

static void test_tables(dbt_ctx *c)
{
	dbt_res r;
	dbt_call(c, T1, "CreateTable", &r,
		 "{\"TableName\":\"acct\",\"KeySchema\":[{\"AttributeName\":\"PK\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"SK\",\"KeyType\":\"RANGE\"}],"
		 "\"AttributeDefinitions\":[{\"AttributeName\":\"PK\",\"AttributeType\":\"S\"},{\"AttributeName\":\"SK\",\"AttributeType\":\"S\"},"
		 "{\"AttributeName\":\"owner\",\"AttributeType\":\"S\"},{\"AttributeName\":\"n\",\"AttributeType\":\"N\"}],"
		 "\"GlobalSecondaryIndexes\":[{\"IndexName\":\"by_owner\",\"KeySchema\":[{\"AttributeName\":\"owner\",\"KeyType\":\"HASH\"},"
		 "{\"AttributeName\":\"n\",\"KeyType\":\"RANGE\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}}],\"BillingMode\":\"PAY_PER_REQUEST\"}");
	CHECK(OK(r), "CreateTable with a GSI");
	if (!OK(r))
		printf("#   %s: %s\n", r.type, r.msg);
	dbt_res_clear(&r);
	dbt_call(c, T1, "CreateTable", &r,
		 "{\"TableName\":\"acct\",\"KeySchema\":[{\"AttributeName\":\"PK\",\"KeyType\":\"HASH\"}],"
		 "\"AttributeDefinitions\":[{\"AttributeName\":\"PK\",\"AttributeType\":\"S\"}]}");
	CHECK(ERR(r, "ResourceInUseException"), "CreateTable twice: ResourceInUseException");
	dbt_res_clear(&r);
	dbt_call(c, T1, "CreateTable", &r,
		 "{\"TableName\":\"nums\",\"KeySchema\":[{\"AttributeName\":\"p\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"s\",\"KeyType\":\"RANGE\"}],"
		 "\"AttributeDefinitions\":[{\"AttributeName\":\"p\",\"AttributeType\":\"S\"},{\"AttributeName\":\"s\",\"AttributeType\":\"N\"}]}");
	CHECK(OK(r), "CreateTable with a numeric sort key");
	dbt_res_clear(&r);
	dbt_call(c, T1, "CreateTable", &r,
		 "{\"TableName\":\"bad\",\"KeySchema\":[{\"AttributeName\":\"p\",\"KeyType\":\"HASH\"}],"
		 "\"AttributeDefinitions\":[{\"AttributeName\":\"p\",\"AttributeType\":\"S\"},{\"AttributeName\":\"x\",\"AttributeType\":\"S\"}]}");
	CHECK(ERR(r, "ValidationException"), "unused attribute definition refused");
	dbt_res_clear(&r);
	dbt_call(c, T1, "DescribeTable", &r, "{\"TableName\":\"acct\"}");
	CHECK(OK(r) && json_object_get(json_object_get(r.body, "Table"), "GlobalSecondaryIndexes") != NULL, "DescribeTable shows the GSI");
	dbt_res_clear(&r);
	dbt_call(c, T1, "ListTables", &r, "{}");
	CHECK(OK(r) && json_array_size(json_object_get(r.body, "TableNames")) == 2, "ListTables lists the tenant's two tables");
	dbt_res_clear(&r);
	/* A GSI without Projection gets ALL (its default object leaked before;
	 * found by fuzz/fuzz_items_request; the ASan suite's leak check
	 * covers it). Tenant T2, so that T1's count above holds. */
	dbt_call(c, T2, "CreateTable", &r,
		 "{\"TableName\":\"noproj\",\"KeySchema\":[{\"AttributeName\":\"p\",\"KeyType\":\"HASH\"}],"
		 "\"AttributeDefinitions\":[{\"AttributeName\":\"p\",\"AttributeType\":\"S\"},{\"AttributeName\":\"g\",\"AttributeType\":\"S\"}],"
		 "\"GlobalSecondaryIndexes\":[{\"IndexName\":\"by_g\",\"KeySchema\":[{\"AttributeName\":\"g\",\"KeyType\":\"HASH\"}]}]}");
	json_t *gsi = json_array_get(json_object_get(json_object_get(r.body, "TableDescription"), "GlobalSecondaryIndexes"), 0);
	json_t *all = json_pack("{s:s}", "ProjectionType", "ALL");
	CHECK(OK(r) && json_equal(json_object_get(gsi, "Projection"), all), "a GSI without Projection projects ALL");
	json_decref(all);
	dbt_res_clear(&r);
	dbt_call(c, T2, "DescribeTable", &r, "{\"TableName\":\"acct\"}");
	CHECK(ERR(r, "ResourceNotFoundException"), "another tenant cannot see the table");
	dbt_res_clear(&r);
	dbt_call(c, T2, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"a\"},\"SK\":{\"S\":\"b\"}}}");
	CHECK(ERR(r, "ResourceNotFoundException"), "another tenant cannot read the table");
	dbt_res_clear(&r);
}

static void test_roundtrip(dbt_ctx *c)
{
	dbt_res r;
	const char *item = "{\"PK\":{\"S\":\"ACCOUNT#1\"},\"SK\":{\"S\":\"METADATA\"},\"n38\":{\"N\":\"12345678901234567890123456789012345678\"},"
			   "\"small\":{\"N\":\"-0.000000000000000000000000000000000001\"},\"b\":{\"B\":\"AAEC/w==\"},\"t\":{\"BOOL\":true},"
			   "\"z\":{\"NULL\":true},\"m\":{\"M\":{\"x\":{\"L\":[{\"S\":\"a\"},{\"N\":\"1.5\"}]}}},\"ss\":{\"SS\":[\"b\",\"a\"]},"
			   "\"ns\":{\"NS\":[\"3\",\"1e2\"]},\"bs\":{\"BS\":[\"AQ==\"]},\"u\":{\"S\":\"h\\u00e9llo \\u2603\"}}";
	dbt_call(c, T1, "PutItem", &r, "{\"TableName\":\"acct\",\"Item\":%s}", item);
	CHECK(OK(r), "PutItem with every type");
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#1\"},\"SK\":{\"S\":\"METADATA\"}}}");
	json_t *got = json_object_get(r.body, "Item");
	CHECK(OK(r) && got != NULL, "GetItem finds it");
	CHECK(got && strcmp(item_n(got, "n38"), "12345678901234567890123456789012345678") == 0, "38-digit number round trip");
	CHECK(got && strcmp(item_n(got, "small"), "-0.000000000000000000000000000000000001") == 0, "tiny negative number round trip");
	json_t *want = json_loads(item, 0, NULL);
	/* sets come back sorted and numbers canonical: compare decoded values */
	it_value *a = NULL, *b = NULL;
	it_error e = {0};
	bool eq = got && it_item_from_json(got, &a, &e) && it_item_from_json(want, &b, &e) && it_value_equal(a, b);
	CHECK(eq, "every type survives storage losslessly");
	it_value_free(a);
	it_value_free(b);
	it_error_clear(&e);
	json_decref(want);
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r,
		 "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#1\"},\"SK\":{\"S\":\"METADATA\"}},\"ProjectionExpression\":\"m.x[1], #t\","
		 "\"ExpressionAttributeNames\":{\"#t\":\"t\"}}");
	got = json_object_get(r.body, "Item");
	CHECK(OK(r) && got && json_object_size(got) == 2 && json_object_get(got, "t") != NULL, "ProjectionExpression");
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#1\"}}}");
	CHECK(ERR(r, "ValidationException"), "key without its sort key refused");
	dbt_res_clear(&r);
	dbt_call(c, T1, "PutItem", &r, "{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"N\":\"1\"},\"SK\":{\"S\":\"x\"}}}");
	CHECK(ERR(r, "ValidationException"), "key of the wrong type refused");
	dbt_res_clear(&r);
}

/* SET a = a +/- :n has its own compiled form: check its edges end to end. */
static void test_counter_edges(dbt_ctx *c)
{
	dbt_res r;
	dbt_call(c, T1, "PutItem", &r,
		 "{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"CTR\"},\"SK\":{\"S\":\"1\"},\"n\":{\"N\":\"1.5\"},"
		 "\"s\":{\"S\":\"x\"},\"big\":{\"N\":\"9.9999999999999999999999999999999999999E+125\"}}}");
	dbt_res_clear(&r);
#define CTR(expr, val) "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"CTR\"},\"SK\":{\"S\":\"1\"}}," \
	"\"UpdateExpression\":\"" expr "\",\"ExpressionAttributeValues\":{\":v\":{\"N\":\"" val "\"}},\"ReturnValues\":\"UPDATED_NEW\"}"
	dbt_call(c, T1, "UpdateItem", &r, CTR("SET n = n + :v", "-1.50"));
	CHECK(OK(r) && strcmp(item_n(json_object_get(r.body, "Attributes"), "n"), "0") == 0, "counter: 1.5 + -1.50 = 0 (canonical)");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTR("SET n = n - :v", "0.25"));
	CHECK(OK(r) && strcmp(item_n(json_object_get(r.body, "Attributes"), "n"), "-0.25") == 0, "counter: 0 - 0.25");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTR("SET nope = nope + :v", "1"));
	CHECK(ERR(r, "ValidationException") && strstr(r.msg, "does not exist in the item") != NULL, "counter on a missing attribute");

	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTR("SET s = s + :v", "1"));
	CHECK(ERR(r, "ValidationException") && strstr(r.msg, "incorrect data type") != NULL, "counter on a string");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTR("SET big = big + :v", "1E+125"));
	CHECK(ERR(r, "ValidationException") && strstr(r.msg, "Number overflow") != NULL, "counter overflow");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTR("SET n = n + :v", "0.00000000000000000000000000000000000000001"));
	CHECK(ERR(r, "ValidationException") && strstr(r.msg, "38 significant digits") != NULL, "counter precision limit");
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"CTR\"},\"SK\":{\"S\":\"1\"}}}");
	CHECK(OK(r) && strcmp(item_n(json_object_get(r.body, "Item"), "n"), "-0.25") == 0, "failed counters changed nothing");
	dbt_res_clear(&r);
#undef CTR
	/* The same with a condition: the plain UPDATE whose WHERE also
	 * requires the counter's fast path (write.c); a miss is sent again
	 * in the general form, which must give the same answers. */
#define CTRC(sk, expr, cond, vals) "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"CTR\"},\"SK\":{\"S\":\"" sk "\"}}," \
	"\"UpdateExpression\":\"" expr "\",\"ConditionExpression\":\"" cond "\",\"ExpressionAttributeValues\":{" vals "}," \
	"\"ReturnValues\":\"UPDATED_NEW\"}"
	dbt_call(c, T1, "UpdateItem", &r, CTRC("1", "SET n = n + :v", "attribute_exists(PK)", "\":v\":{\"N\":\"1\"}"));
	CHECK(OK(r) && strcmp(item_n(json_object_get(r.body, "Attributes"), "n"), "0.75") == 0, "conditional counter: -0.25 + 1");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTRC("1", "SET n = n + :v", "n > :w", "\":v\":{\"N\":\"1\"},\":w\":{\"N\":\"5\"}"));
	CHECK(ERR(r, "ConditionalCheckFailedException"), "conditional counter: the condition fails");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTRC("404", "SET n = n + :v", "attribute_exists(PK)", "\":v\":{\"N\":\"1\"}"));
	CHECK(ERR(r, "ConditionalCheckFailedException"), "conditional counter: no item fails the condition");
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"CTR\"},\"SK\":{\"S\":\"404\"}}}");
	CHECK(OK(r) && json_object_get(r.body, "Item") == NULL, "... and creates none");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTRC("1", "SET s = s + :v", "attribute_exists(PK)", "\":v\":{\"N\":\"1\"}"));
	CHECK(ERR(r, "ValidationException") && strstr(r.msg, "incorrect data type") != NULL, "conditional counter on a string");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTRC("1", "SET nope = nope + :v", "attribute_exists(PK)", "\":v\":{\"N\":\"1\"}"));
	CHECK(ERR(r, "ValidationException") && strstr(r.msg, "does not exist in the item") != NULL,
	      "conditional counter on a missing attribute");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTRC("1", "SET big = big + :v", "attribute_exists(PK)", "\":v\":{\"N\":\"1E+125\"}"));
	CHECK(ERR(r, "ValidationException") && strstr(r.msg, "Number overflow") != NULL, "conditional counter overflow");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, CTRC("1", "SET big = big - :v", "attribute_exists(PK)", "\":v\":{\"N\":\"1E+125\"}"));
	CHECK(OK(r) && strcmp(item_n(json_object_get(r.body, "Attributes"), "big"),
			      "899999999999999999999999999999999999990000000000000000000000000000000000000000000000000000000000000000000000000000000000000000") == 0,
	      "conditional counter on a number too long for the fast path");
	if (!OK(r))
		printf("#   %s: %s\n", r.type, r.msg);
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"CTR\"},\"SK\":{\"S\":\"1\"}}}");
	json_t *it = json_object_get(r.body, "Item");
	const char *sv = json_string_value(json_object_get(json_object_get(it, "s"), "S"));
	CHECK(OK(r) && strcmp(item_n(it, "n"), "0.75") == 0 && sv != NULL && strcmp(sv, "x") == 0,
	      "failed conditional counters changed nothing");
	dbt_res_clear(&r);
#undef CTRC
}

static void test_conditional(dbt_ctx *c)
{
	dbt_res r;
	const char *put = "{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"ACCOUNT#c\"},\"SK\":{\"S\":\"METADATA\"},\"balance\":{\"N\":\"100\"}},"
			  "\"ConditionExpression\":\"attribute_not_exists(PK)\",\"ReturnValuesOnConditionCheckFailure\":\"ALL_OLD\"}";
	dbt_call(c, T1, "PutItem", &r, "%s", put);
	CHECK(OK(r), "conditional put attribute_not_exists(PK) creates");
	dbt_res_clear(&r);
	dbt_call(c, T1, "PutItem", &r, "%s", put);
	CHECK(ERR(r, "ConditionalCheckFailedException"), "second conditional put fails");
	CHECK(strcmp(r.msg, "The conditional request failed") == 0, "with DynamoDB's message");
	CHECK(r.extra && json_object_get(json_object_get(r.extra, "Item"), "balance") != NULL, "and the old Item when asked");
	dbt_res_clear(&r);
#define DEBIT "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#c\"},\"SK\":{\"S\":\"METADATA\"}}," \
			    "\"UpdateExpression\":\"SET balance = balance - :amt\",\"ConditionExpression\":\"balance >= :amt\"," \
			    "\"ExpressionAttributeValues\":{\":amt\":{\"N\":\"%s\"}},\"ReturnValues\":\"UPDATED_NEW\"}"
	dbt_call(c, T1, "UpdateItem", &r, DEBIT, "60");
	CHECK(OK(r) && strcmp(item_n(json_object_get(r.body, "Attributes"), "balance"), "40") == 0, "guarded debit 100-60 = 40 (UPDATED_NEW)");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, DEBIT, "41");
	CHECK(ERR(r, "ConditionalCheckFailedException"), "debit past the balance refused");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r, DEBIT, "40");
	CHECK(OK(r) && strcmp(item_n(json_object_get(r.body, "Attributes"), "balance"), "0") == 0, "debit to exactly zero");
	dbt_res_clear(&r);
	/* upsert through UpdateItem, ADD, REMOVE, ReturnValues */
	dbt_call(c, T1, "UpdateItem", &r,
		 "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#u\"},\"SK\":{\"S\":\"METADATA\"}},"
		 "\"UpdateExpression\":\"SET a = :one, tags = :t ADD cnt :one\",\"ExpressionAttributeValues\":{\":one\":{\"N\":\"1\"},\":t\":{\"SS\":[\"x\"]}},"
		 "\"ReturnValues\":\"ALL_NEW\"}");
	json_t *at = json_object_get(r.body, "Attributes");
	CHECK(OK(r) && at && strcmp(item_n(at, "cnt"), "1") == 0 && json_object_get(at, "PK") != NULL, "UpdateItem creates the item (ALL_NEW)");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r,
		 "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#u\"},\"SK\":{\"S\":\"METADATA\"}},"
		 "\"UpdateExpression\":\"REMOVE a ADD cnt :two\",\"ExpressionAttributeValues\":{\":two\":{\"N\":\"2\"}},\"ReturnValues\":\"ALL_OLD\"}");
	at = json_object_get(r.body, "Attributes");
	CHECK(OK(r) && at && json_object_get(at, "a") != NULL && strcmp(item_n(at, "cnt"), "1") == 0, "ALL_OLD returns the item before");
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#u\"},\"SK\":{\"S\":\"METADATA\"}}}");
	at = json_object_get(r.body, "Item");
	CHECK(OK(r) && at && json_object_get(at, "a") == NULL && strcmp(item_n(at, "cnt"), "3") == 0, "REMOVE and ADD applied");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r,
		 "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#u\"},\"SK\":{\"S\":\"METADATA\"}},"
		 "\"UpdateExpression\":\"SET PK = :v\",\"ExpressionAttributeValues\":{\":v\":{\"S\":\"x\"}}}");
	CHECK(ERR(r, "ValidationException") && strstr(r.msg, "part of the key") != NULL, "updating a key attribute refused");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateItem", &r,
		 "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#u\"},\"SK\":{\"S\":\"METADATA\"}},"
		 "\"UpdateExpression\":\"SET cnt = cnt + :s\",\"ExpressionAttributeValues\":{\":s\":{\"S\":\"x\"}}}");
	CHECK(ERR(r, "ValidationException"), "arithmetic on a string is a ValidationException raised in SQL");
	dbt_res_clear(&r);
	dbt_call(c, T1, "DeleteItem", &r,
		 "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#u\"},\"SK\":{\"S\":\"METADATA\"}},\"ConditionExpression\":\"cnt > :n\","
		 "\"ExpressionAttributeValues\":{\":n\":{\"N\":\"5\"}}}");
	CHECK(ERR(r, "ConditionalCheckFailedException"), "conditional delete refused");
	dbt_res_clear(&r);
	dbt_call(c, T1, "DeleteItem", &r,
		 "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#u\"},\"SK\":{\"S\":\"METADATA\"}},\"ReturnValues\":\"ALL_OLD\"}");
	CHECK(OK(r) && json_object_get(r.body, "Attributes") != NULL, "delete returns ALL_OLD");
	dbt_res_clear(&r);
}

/* ---- concurrency: 8 clients, one guarded balance --------------------------- */

#define NCLIENTS 8
#define START_BALANCE 1000
#define AMOUNT 7
#define TRIES 40

static long successes[NCLIENTS];
static long failures[NCLIENTS];

static void *debit_client(void *arg)
{
	long id = (long)arg;
	dbt_ctx c;
	if (!dbt_open(&c))
		return NULL;
	for (int i = 0; i < TRIES; i++) {
		dbt_res r;
		dbt_call(&c, T1, "UpdateItem", &r,
			 "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#hot\"},\"SK\":{\"S\":\"METADATA\"}},"
			 "\"UpdateExpression\":\"SET balance = balance - :amt\",\"ConditionExpression\":\"balance >= :amt\","
			 "\"ExpressionAttributeValues\":{\":amt\":{\"N\":\"%d\"}}}",
			 AMOUNT);
		if (OK(r))
			successes[id]++;
		else if (ERR(r, "ConditionalCheckFailedException"))
			failures[id]++;
		dbt_res_clear(&r);
	}
	dbt_close(&c);
	return NULL;
}

static void test_concurrent_debits(dbt_ctx *c)
{
	dbt_res r;
	dbt_call(c, T1, "PutItem", &r,
		 "{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"ACCOUNT#hot\"},\"SK\":{\"S\":\"METADATA\"},\"balance\":{\"N\":\"%d\"}}}",
		 START_BALANCE);
	dbt_res_clear(&r);
	pthread_t th[NCLIENTS];
	for (long i = 0; i < NCLIENTS; i++)
		pthread_create(&th[i], NULL, debit_client, (void *)i);
	for (int i = 0; i < NCLIENTS; i++)
		pthread_join(th[i], NULL);
	long ok = 0, fail = 0;
	for (int i = 0; i < NCLIENTS; i++) {
		ok += successes[i];
		fail += failures[i];
	}
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#hot\"},\"SK\":{\"S\":\"METADATA\"}}}");
	long bal = atol(item_n(json_object_get(r.body, "Item"), "balance"));
	dbt_res_clear(&r);
	printf("# %d clients x %d debits of %d from %d: %ld ok, %ld refused, balance %ld\n", NCLIENTS, TRIES, AMOUNT, START_BALANCE,
	       ok, fail, bal);
	CHECK(ok == START_BALANCE / AMOUNT, "successes equal what the balance allows");
	CHECK(ok + fail == NCLIENTS * TRIES, "every other attempt was a ConditionalCheckFailed");
	CHECK(bal == START_BALANCE - ok * AMOUNT && bal >= 0, "balance never below zero and consistent");
}

static void test_transactions(dbt_ctx *c)
{
	dbt_res r;
#define TX	"{\"TransactItems\":[" \
		"{\"Put\":{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"ORDER#1\"},\"SK\":{\"S\":\"METADATA\"},\"status\":{\"S\":\"paid\"}}}}," \
		"{\"Update\":{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#m\"},\"SK\":{\"S\":\"METADATA\"}},\"UpdateExpression\":\"ADD balance :a\"," \
		"\"ExpressionAttributeValues\":{\":a\":{\"N\":\"50\"}}}}," \
		"{\"Update\":{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#c\"},\"SK\":{\"S\":\"METADATA\"}},\"UpdateExpression\":\"SET balance = balance - :a\"," \
		"\"ConditionExpression\":\"balance >= :a\",\"ExpressionAttributeValues\":{\":a\":{\"N\":\"50\"}},\"ReturnValuesOnConditionCheckFailure\":\"ALL_OLD\"}}," \
		"{\"ConditionCheck\":{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#1\"},\"SK\":{\"S\":\"METADATA\"}},\"ConditionExpression\":\"attribute_exists(PK)\"}}" \
		"]%s}"
	dbt_call(c, T1, "TransactWriteItems", &r, TX, "");
	CHECK(ERR(r, "TransactionCanceledException"), "transaction whose third action fails is cancelled");
	json_t *reasons = r.extra ? json_object_get(r.extra, "CancellationReasons") : NULL;
	const char *want[4] = {"None", "None", "ConditionalCheckFailed", "None"};
	bool match = json_array_size(reasons) == 4;
	for (int i = 0; match && i < 4; i++)
		match = strcmp(json_string_value(json_object_get(json_array_get(reasons, (size_t)i), "Code")), want[i]) == 0;
	CHECK(match, "CancellationReasons [None, None, ConditionalCheckFailed, None] in request order");
	CHECK(match && json_object_get(json_array_get(reasons, 2), "Item") != NULL, "the failed action reports its item (ALL_OLD)");
	CHECK(strstr(r.msg, "[None, None, ConditionalCheckFailed, None]") != NULL, "message lists the reasons");
	dbt_res_clear(&r);
	CHECK(strcmp(count_rows("i.pk IN ('ORDER#1', 'ACCOUNT#m')"), "0") == 0, "nothing was written");

	/* top up the customer, then the same transaction succeeds, with a token */
	dbt_call(c, T1, "UpdateItem", &r,
		 "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#c\"},\"SK\":{\"S\":\"METADATA\"}},\"UpdateExpression\":\"SET balance = :b\","
		 "\"ExpressionAttributeValues\":{\":b\":{\"N\":\"500\"}}}");
	dbt_res_clear(&r);
	unsigned long rt0 = db_pool_round_trips(c->pool);
	dbt_call(c, T1, "TransactWriteItems", &r, TX, ",\"ClientRequestToken\":\"tok-1\"");
	CHECK(OK(r), "transaction with a token commits");
	unsigned long rts = db_pool_round_trips(c->pool) - rt0;
	printf("# 4-action TransactWriteItems with a token: %lu round trip(s)\n", rts);
	CHECK(rts <= 2, "a 4-action TransactWriteItems costs at most 2 round trips");
	dbt_res_clear(&r);
	dbt_call(c, T1, "TransactWriteItems", &r, TX, ",\"ClientRequestToken\":\"tok-1\"");
	CHECK(OK(r), "same token, same request: success again");
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#m\"},\"SK\":{\"S\":\"METADATA\"}}}");
	CHECK(OK(r) && strcmp(item_n(json_object_get(r.body, "Item"), "balance"), "50") == 0, "but applied once (merchant +50, not +100)");
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#c\"},\"SK\":{\"S\":\"METADATA\"}}}");
	CHECK(OK(r) && strcmp(item_n(json_object_get(r.body, "Item"), "balance"), "450") == 0, "customer debited once");
	dbt_res_clear(&r);
	dbt_call(c, T1, "TransactWriteItems", &r,
		 "{\"ClientRequestToken\":\"tok-1\",\"TransactItems\":[{\"Put\":{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"X\"},\"SK\":{\"S\":\"Y\"}}}}]}");
	CHECK(ERR(r, "IdempotentParameterMismatchException"), "same token, other request: IdempotentParameterMismatch");
	dbt_res_clear(&r);
	dbt_call(c, T2, "TransactWriteItems", &r,
		 "{\"ClientRequestToken\":\"tok-1\",\"TransactItems\":[{\"Put\":{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"X\"},\"SK\":{\"S\":\"Y\"}}}}]}");
	CHECK(ERR(r, "ResourceNotFoundException"), "tokens and tables are per tenant");
	dbt_res_clear(&r);
	dbt_call(c, T1, "TransactWriteItems", &r,
		 "{\"TransactItems\":[{\"Put\":{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"D\"},\"SK\":{\"S\":\"1\"}}}},"
		 "{\"Delete\":{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"D\"},\"SK\":{\"S\":\"1\"}}}}]}");
	CHECK(ERR(r, "ValidationException") && strstr(r.msg, "multiple operations on one item"), "two actions on one item refused");
	dbt_res_clear(&r);
	dbt_call(c, T1, "TransactGetItems", &r,
		 "{\"TransactItems\":[{\"Get\":{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#c\"},\"SK\":{\"S\":\"METADATA\"}}}},"
		 "{\"Get\":{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"nope\"},\"SK\":{\"S\":\"METADATA\"}}}},"
		 "{\"Get\":{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"ACCOUNT#m\"},\"SK\":{\"S\":\"METADATA\"}}}}]}");
	json_t *resp = json_object_get(r.body, "Responses");
	CHECK(OK(r) && json_array_size(resp) == 3 && json_object_get(json_array_get(resp, 0), "Item") &&
		      !json_object_get(json_array_get(resp, 1), "Item") && json_object_get(json_array_get(resp, 2), "Item"),
	      "TransactGetItems answers in request order, {} for a missing item");
	dbt_res_clear(&r);
}

static int collect_sks(json_t *items, char out[][32], int at)
{
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) snprintf(out[at++], 32, "%s", json_string_value(json_object_get(json_object_get(it, "SK"), "S")));
	return at;
}

/* Runs a Query (req: its JSON without the closing brace) page by page,
 * following LastEvaluatedKey; collects the sort keys, returns their number. */
static int query_pages(dbt_ctx *c, const char *req, char out[][32], int *pages)
{
	char esk[256] = "";
	int n = 0;
	dbt_res r;
	for (*pages = 0; *pages <= 20;) {
		dbt_call(c, T1, "Query", &r, "%s%s%s}", req, esk[0] ? ",\"ExclusiveStartKey\":" : "", esk);
		if (!OK(r)) {
			printf("#   %s: %s\n", r.type, r.msg);
			dbt_res_clear(&r);
			break;
		}
		(*pages)++;
		n = collect_sks(json_object_get(r.body, "Items"), out, n);
		json_t *lek = json_object_get(r.body, "LastEvaluatedKey");
		char *t = lek ? json_dumps(lek, JSON_COMPACT) : NULL;
		snprintf(esk, sizeof(esk), "%s", t ? t : "");
		free(t);
		dbt_res_clear(&r);
		if (lek == NULL)
			break;
	}
	return n;
}

static void test_query(dbt_ctx *c)
{
	dbt_res r;
	for (int i = 0; i < 60; i++) {
		dbt_call(c, T1, "PutItem", &r,
			 "{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"ACCOUNT#q\"},\"SK\":{\"S\":\"ENTRY#%03d\"},\"n\":{\"N\":\"%d\"}%s}}", i, i,
			 i % 2 == 0 ? ",\"owner\":{\"S\":\"alice\"}" : "");
		dbt_res_clear(&r);
	}
	dbt_call(c, T1, "PutItem", &r, "{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"ACCOUNT#q\"},\"SK\":{\"S\":\"METADATA\"}}}");
	dbt_res_clear(&r);
	/* BETWEEN and begins_with, read page by page in both orders, return
	 * exactly their range (from..from+count-1 ascending). */
	static const struct {
		const char *cond, *values, *what;
		int limit, from, count, min_pages;
	} ranges[] = {
		{"PK = :pk AND SK BETWEEN :a AND :b", "\":a\":{\"S\":\"ENTRY#010\"},\":b\":{\"S\":\"ENTRY#049\"}", "BETWEEN", 7, 10, 40, 6},
		{"PK = :pk AND begins_with(SK, :p)", "\":p\":{\"S\":\"ENTRY#01\"}", "begins_with", 3, 10, 10, 4},
	};
	for (size_t k = 0; k < sizeof(ranges) / sizeof(ranges[0]); k++) {
		for (int fwd = 1; fwd >= 0; fwd--) {
			char got[80][32], req[512];
			snprintf(req, sizeof(req),
				 "{\"TableName\":\"acct\",\"KeyConditionExpression\":\"%s\",\"Limit\":%d,\"ScanIndexForward\":%s,"
				 "\"ExpressionAttributeValues\":{\":pk\":{\"S\":\"ACCOUNT#q\"},%s}",
				 ranges[k].cond, ranges[k].limit, fwd ? "true" : "false", ranges[k].values);
			int pages = 0;
			int n = query_pages(c, req, got, &pages);
			bool exact = n == ranges[k].count;
			for (int i = 0; exact && i < n; i++) {
				char want[32];
				snprintf(want, sizeof(want), "ENTRY#%03d",
					 fwd ? ranges[k].from + i : ranges[k].from + ranges[k].count - 1 - i);
				exact = strcmp(got[i], want) == 0;
			}
			char name[128];
			snprintf(name, sizeof(name), "%s returns exactly its range across pages, %s", ranges[k].what,
				 fwd ? "ascending" : "descending");
			CHECK(exact && pages >= ranges[k].min_pages, name);
		}
	}
	dbt_call(c, T1, "Query", &r,
		 "{\"TableName\":\"acct\",\"KeyConditionExpression\":\"PK = :pk AND begins_with(SK, :p)\",\"ExpressionAttributeValues\":"
		 "{\":pk\":{\"S\":\"ACCOUNT#q\"},\":p\":{\"S\":\"ENTRY#02\"}},\"ScanIndexForward\":false}");
	char got[80][32];
	int n = collect_sks(json_object_get(r.body, "Items"), got, 0);
	CHECK(OK(r) && n == 10 && strcmp(got[0], "ENTRY#029") == 0 && strcmp(got[9], "ENTRY#020") == 0, "begins_with, descending");
	dbt_res_clear(&r);
	dbt_call(c, T1, "Query", &r,
		 "{\"TableName\":\"acct\",\"KeyConditionExpression\":\"PK = :pk\",\"FilterExpression\":\"n >= :x\",\"Limit\":20,"
		 "\"ExpressionAttributeValues\":{\":pk\":{\"S\":\"ACCOUNT#q\"},\":x\":{\"N\":\"15\"}}}");
	CHECK(OK(r) && json_integer_value(json_object_get(r.body, "ScannedCount")) == 20 &&
		      json_integer_value(json_object_get(r.body, "Count")) == 5,
	      "Limit counts evaluated items; the filter runs after it");
	dbt_res_clear(&r);
	/* sparse GSI: only the even entries have an owner */
	dbt_call(c, T1, "Query", &r,
		 "{\"TableName\":\"acct\",\"IndexName\":\"by_owner\",\"KeyConditionExpression\":\"#o = :o AND n > :n\","
		 "\"ExpressionAttributeNames\":{\"#o\":\"owner\"},\"ExpressionAttributeValues\":{\":o\":{\"S\":\"alice\"},\":n\":{\"N\":\"39\"}}}");
	CHECK(OK(r) && json_integer_value(json_object_get(r.body, "Count")) == 10, "GSI query: only items with the index keys (sparse)");
	json_t *first = json_array_get(json_object_get(r.body, "Items"), 0);
	CHECK(first && strcmp(item_n(first, "n"), "40") == 0, "GSI sorted by its numeric sort key");
	dbt_res_clear(&r);
	CHECK(strcmp(count_rows("t.name = 'acct' AND i.pk = 'ACCOUNT#q' AND i.x1pk IS NOT NULL"),
		     "30") == 0,
	      "items without the GSI key attributes are absent from the index");
	/* numeric sort keys order numerically */
	const char *nums[] = {"-100", "-2.5", "-2", "0", "0.001", "1", "1.5", "10", "99.99", "1e3"};
	for (size_t i = 0; i < 10; i++) {
		dbt_call(c, T1, "PutItem", &r, "{\"TableName\":\"nums\",\"Item\":{\"p\":{\"S\":\"x\"},\"s\":{\"N\":\"%s\"}}}", nums[9 - i]);
		dbt_res_clear(&r);
	}
	dbt_call(c, T1, "Query", &r,
		 "{\"TableName\":\"nums\",\"KeyConditionExpression\":\"p = :p AND s > :lo\",\"ExpressionAttributeValues\":{\":p\":{\"S\":\"x\"},\":lo\":{\"N\":\"-3\"}}}");
	json_t *items = json_object_get(r.body, "Items");
	bool order = OK(r) && json_array_size(items) == 9; /* all but -100 */
	for (size_t i = 0; order && i < 9; i++) {
		it_value *a = NULL, *b = NULL;
		it_error e = {0};
		json_t *ja = json_object_get(json_array_get(items, i), "s");
		json_t *jb = json_pack("{s:s}", "N", nums[i + 1]);
		order = it_value_from_json(ja, &a, &e) && it_value_from_json(jb, &b, &e) && it_value_equal(a, b);
		it_value_free(a);
		it_value_free(b);
		json_decref(jb);
		it_error_clear(&e);
	}
	CHECK(order, "numeric sort key range in numeric order");
	dbt_res_clear(&r);
}

static void test_keyenc_matches_sql(void)
{
	const char *nums[] = {"0", "1", "-1", "10", "0.5", "-0.5", "123.456", "-123.456", "1E+125", "-9.9E-130", "99999999999999999999999999999999999999"};
	bool all = true;
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		json_t *j = json_pack("{s:s}", "N", nums[i]);
		it_value *v = NULL;
		it_error e = {0};
		char *enc = NULL;
		if (!it_value_from_json(j, &v, &e) || !it_key_encode(v, &enc)) {
			all = false;
		} else {
			char sql[512];
			snprintf(sql, sizeof(sql), "SELECT ol_key_enc('{\"N\":\"%s\"}'::jsonb, 'N')", v->u.s.ptr);
			if (strcmp(dbt_sql(sql), enc) != 0) {
				printf("#   %s: C %s SQL %s\n", nums[i], enc, dbt_sql(sql));
				all = false;
			}
		}
		free(enc);
		it_value_free(v);
		json_decref(j);
		it_error_clear(&e);
	}
	CHECK(all, "C and SQL key encodings agree");
	CHECK(strcmp(dbt_sql("SELECT bool_and(a < b) FROM (SELECT ol_key_enc(jsonb_build_object('N', x::text), 'N') a,"
			     " ol_key_enc(jsonb_build_object('N', (x + 0.001)::text), 'N') b FROM generate_series(-50, 50) x) s"),
		     "t") == 0,
	      "encoding preserves numeric order");
	/* the partition-key role: C and sql/009 agree, short keys unchanged,
	 * long ones hashed to a form no short key has */
	static const size_t lens[] = {1, 255, 256, 257, 1000, 2048};
	bool same = true;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char raw[2049];
		for (size_t k = 0; k < lens[i]; k++)
			raw[k] = (char)('a' + (k * 7 + i) % 26);
		it_value *sv = it_value_new_str(IT_S, raw, lens[i]);
		char *enc = NULL;
		if (sv == NULL || !it_key_encode_partition(sv, &enc)) {
			same = false;
		} else {
			char sql[2400];
			snprintf(sql, sizeof(sql), "SELECT ol_key_cap('%.*s')", (int)lens[i], raw);
			const char *got = dbt_sql(sql);
			size_t want_len = lens[i] <= IT_KEY_INLINE_MAX ? lens[i] : IT_KEY_HASHED_LEN;
			if (strcmp(got, enc) != 0 || strlen(enc) != want_len) {
				printf("#   length %zu: C %.80s SQL %.80s\n", lens[i], enc, got);
				same = false;
			}
		}
		free(enc);
		it_value_free(sv);
	}
	CHECK(same, "C and SQL partition-key encodings agree (long keys hashed)");
}

static void sweep_cb(long n, void *arg);

static void test_ttl(dbt_ctx *c)
{
	dbt_res r;
	dbt_call(c, T1, "UpdateTimeToLive", &r, "{\"TableName\":\"acct\",\"TimeToLiveSpecification\":{\"Enabled\":true,\"AttributeName\":\"exp\"}}");
	CHECK(OK(r), "UpdateTimeToLive enables TTL");
	dbt_res_clear(&r);
	dbt_call(c, T1, "DescribeTimeToLive", &r, "{\"TableName\":\"acct\"}");
	CHECK(OK(r) && strcmp(json_string_value(json_object_get(json_object_get(r.body, "TimeToLiveDescription"), "TimeToLiveStatus")),
			      "ENABLED") == 0,
	      "DescribeTimeToLive");
	dbt_res_clear(&r);
	usleep(1100 * 1000); /* the table cache is trusted for one second */
	dbt_call(c, T1, "PutItem", &r,
		 "{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"IDEM#old\"},\"SK\":{\"S\":\"METADATA\"},\"exp\":{\"N\":\"1000\"}}}");
	dbt_res_clear(&r);
	dbt_call(c, T1, "PutItem", &r,
		 "{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"IDEM#new\"},\"SK\":{\"S\":\"METADATA\"},\"exp\":{\"N\":\"99999999999\"}}}");
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"acct\",\"Key\":{\"PK\":{\"S\":\"IDEM#old\"},\"SK\":{\"S\":\"METADATA\"}}}");
	CHECK(OK(r) && json_object_get(r.body, "Item") == NULL, "an expired item is invisible at once");
	dbt_res_clear(&r);
	dbt_call(c, T1, "PutItem", &r,
		 "{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"IDEM#old\"},\"SK\":{\"S\":\"METADATA\"},\"v\":{\"N\":\"2\"}},"
		 "\"ConditionExpression\":\"attribute_not_exists(PK)\"}");
	CHECK(OK(r), "an expired item counts as absent for conditions");
	dbt_res_clear(&r);
	dbt_call(c, T1, "PutItem", &r,
		 "{\"TableName\":\"acct\",\"Item\":{\"PK\":{\"S\":\"IDEM#gone\"},\"SK\":{\"S\":\"METADATA\"},\"exp\":{\"N\":\"1000\"}}}");
	dbt_res_clear(&r);
	CHECK(strcmp(count_rows("i.pk = 'IDEM#gone'"), "1") == 0, "expired row still stored before the sweep");
	struct {
		bool done;
		long n;
	} sw = {false, 0};
	it_sweep_expired(c->store, 1000, sweep_cb, &sw);
	while (!sw.done)
		event_base_loop(c->base, EVLOOP_ONCE);
	CHECK(sw.n >= 1 && strcmp(count_rows("i.pk = 'IDEM#gone'"), "0") == 0, "the sweeper deletes it");
	CHECK(strcmp(count_rows("i.pk = 'IDEM#new'"), "1") == 0, "and keeps unexpired items");
}

static void sweep_cb(long n, void *arg)
{
	struct {
		bool done;
		long n;
	} *sw = arg;
	sw->n = n;
	sw->done = true;
}

/* UpdateTable adds a GSI over existing items (backfilled in the same
 * transaction) and removes it again. */
static void test_update_table(dbt_ctx *c)
{
	dbt_res r;
	dbt_call(c, T1, "UpdateTable", &r,
		 "{\"TableName\":\"nums\",\"AttributeDefinitions\":[{\"AttributeName\":\"tag\",\"AttributeType\":\"S\"}],"
		 "\"GlobalSecondaryIndexUpdates\":[{\"Create\":{\"IndexName\":\"by_tag\",\"KeySchema\":[{\"AttributeName\":\"tag\","
		 "\"KeyType\":\"HASH\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}}}]}");
	CHECK(OK(r), "UpdateTable creates a GSI");
	if (!OK(r))
		printf("#   %s: %s\n", r.type, r.msg);
	dbt_res_clear(&r);
	usleep(1100 * 1000); /* this worker forgot its cached definition; wait out the cache anyway */
	dbt_call(c, T1, "PutItem", &r, "{\"TableName\":\"nums\",\"Item\":{\"p\":{\"S\":\"t\"},\"s\":{\"N\":\"1\"},\"tag\":{\"S\":\"red\"}}}");
	dbt_res_clear(&r);
	dbt_call(c, T1, "Query", &r,
		 "{\"TableName\":\"nums\",\"IndexName\":\"by_tag\",\"KeyConditionExpression\":\"tag = :t\","
		 "\"ExpressionAttributeValues\":{\":t\":{\"S\":\"red\"}}}");
	CHECK(OK(r) && json_integer_value(json_object_get(r.body, "Count")) == 1, "new items are in the new index");
	dbt_res_clear(&r);
	CHECK(strcmp(count_rows("t.name = 'nums' AND i.x1pk IS NOT NULL"), "1") == 0, "only items with the key attribute are in it");
	dbt_call(c, T1, "UpdateTable", &r,
		 "{\"TableName\":\"nums\",\"GlobalSecondaryIndexUpdates\":[{\"Delete\":{\"IndexName\":\"by_tag\"}}]}");
	CHECK(OK(r), "UpdateTable deletes the GSI");
	dbt_res_clear(&r);
	CHECK(strcmp(count_rows("t.name = 'nums' AND i.x1pk IS NOT NULL"), "0") == 0, "its slot is cleared");
	dbt_call(c, T1, "Query", &r,
		 "{\"TableName\":\"nums\",\"IndexName\":\"by_tag\",\"KeyConditionExpression\":\"tag = :t\","
		 "\"ExpressionAttributeValues\":{\":t\":{\"S\":\"red\"}}}");
	CHECK(ERR(r, "ValidationException"), "querying a deleted index fails");
	dbt_res_clear(&r);
}

static void test_backfill(dbt_ctx *c)
{
	/* items written before the index exists are backfilled */
	dbt_res r;
	dbt_call(c, T1, "PutItem", &r, "{\"TableName\":\"nums\",\"Item\":{\"p\":{\"S\":\"bf\"},\"s\":{\"N\":\"2\"},\"color\":{\"S\":\"blue\"}}}");
	dbt_res_clear(&r);
	dbt_call(c, T1, "UpdateTable", &r,
		 "{\"TableName\":\"nums\",\"AttributeDefinitions\":[{\"AttributeName\":\"color\",\"AttributeType\":\"S\"}],"
		 "\"GlobalSecondaryIndexUpdates\":[{\"Create\":{\"IndexName\":\"by_color\",\"KeySchema\":[{\"AttributeName\":\"color\","
		 "\"KeyType\":\"HASH\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}}}]}");
	dbt_res_clear(&r);
	dbt_call(c, T1, "Query", &r,
		 "{\"TableName\":\"nums\",\"IndexName\":\"by_color\",\"KeyConditionExpression\":\"color = :c\","
		 "\"ExpressionAttributeValues\":{\":c\":{\"S\":\"blue\"}}}");
	CHECK(OK(r) && json_integer_value(json_object_get(r.body, "Count")) == 1, "existing items are backfilled into a new GSI");
	dbt_res_clear(&r);
}

static void test_batches_and_scan(dbt_ctx *c)
{
	dbt_res r;
	char req[8192];
	size_t o = (size_t)snprintf(req, sizeof(req), "{\"RequestItems\":{\"nums\":[");
	for (int i = 0; i < 25; i++)
		o += (size_t)snprintf(req + o, sizeof(req) - o, "%s{\"PutRequest\":{\"Item\":{\"p\":{\"S\":\"b%d\"},\"s\":{\"N\":\"%d\"}}}}",
				      i ? "," : "", i % 5, i);
	snprintf(req + o, sizeof(req) - o, "]}}");
	dbt_call(c, T1, "BatchWriteItem", &r, "%s", req);
	CHECK(OK(r) && json_object_size(json_object_get(r.body, "UnprocessedItems")) == 0, "BatchWriteItem of 25 puts");
	if (!OK(r))
		printf("#   %s: %s\n", r.type, r.msg);
	dbt_res_clear(&r);
	dbt_call(c, T1, "BatchGetItem", &r,
		 "{\"RequestItems\":{\"nums\":{\"Keys\":[{\"p\":{\"S\":\"b0\"},\"s\":{\"N\":\"0\"}},{\"p\":{\"S\":\"b1\"},\"s\":{\"N\":\"6\"}},"
		 "{\"p\":{\"S\":\"zz\"},\"s\":{\"N\":\"1\"}}]}}}");
	CHECK(OK(r) && json_array_size(json_object_get(json_object_get(r.body, "Responses"), "nums")) == 2, "BatchGetItem finds the two existing keys");
	dbt_res_clear(&r);
	dbt_call(c, T1, "BatchGetItem", &r,
		 "{\"RequestItems\":{\"nums\":{\"Keys\":[{\"p\":{\"S\":\"b0\"},\"s\":{\"N\":\"0\"}},{\"p\":{\"S\":\"b0\"},\"s\":{\"N\":\"0\"}}]}}}");
	CHECK(ERR(r, "ValidationException"), "duplicate keys in BatchGetItem refused");
	dbt_res_clear(&r);
	/* A PutRequest without its Item dereferenced NULL (found by
	 * fuzz/fuzz_items_request): now a ValidationException, nothing written. */
	dbt_call(c, T1, "BatchWriteItem", &r,
		 "{\"RequestItems\":{\"nums\":[{\"PutRequest\":{\"Item\":{\"p\":{\"S\":\"nx\"},\"s\":{\"N\":\"1\"}}}},"
		 "{\"PutRequest\":{\"Itm\":{}}}]}}");
	CHECK(ERR(r, "ValidationException") && strstr(r.msg, "putRequest.item") != NULL, "a PutRequest without Item is refused");
	dbt_res_clear(&r);
	dbt_call(c, T1, "GetItem", &r, "{\"TableName\":\"nums\",\"Key\":{\"p\":{\"S\":\"nx\"},\"s\":{\"N\":\"1\"}}}");
	CHECK(OK(r) && json_object_get(r.body, "Item") == NULL, "... and the batch's other put was not written");
	dbt_res_clear(&r);
	/* parallel scan: 3 segments cover the table exactly once */
	int total = 0;
	for (int seg = 0; seg < 3; seg++) {
		char esk[256] = "";
		for (int guard = 0; guard < 50; guard++) {
			dbt_call(c, T1, "Scan", &r, "{\"TableName\":\"nums\",\"Segment\":%d,\"TotalSegments\":3,\"Limit\":4%s%s}", seg,
				 esk[0] ? ",\"ExclusiveStartKey\":" : "", esk);
			if (!OK(r))
				break;
			total += (int)json_integer_value(json_object_get(r.body, "Count"));
			json_t *lek = json_object_get(r.body, "LastEvaluatedKey");
			char *t = lek ? json_dumps(lek, JSON_COMPACT) : NULL;
			snprintf(esk, sizeof(esk), "%s", t ? t : "");
			free(t);
			dbt_res_clear(&r);
			if (!lek)
				break;
		}
	}
	CHECK(total == 35, "Scan with 3 segments and paging sees every item exactly once");
	dbt_call(c, T1, "Scan", &r, "{\"TableName\":\"nums\",\"Segment\":3,\"TotalSegments\":3}");
	CHECK(ERR(r, "ValidationException"), "Segment out of range refused");
	dbt_res_clear(&r);
}

/* ---- it_claim_set: the typed write of a claimed item ---- */

static void flag_armed(bool ok, void *arg)
{
	*(int *)arg = ok ? 1 : -1;
}

typedef struct set_res {
	bool done;
	it_set_status st;
} set_res;

static void set_cb(it_set_status st, void *arg)
{
	set_res *r = arg;
	r->done = true;
	r->st = st;
}

static it_value *attrs_s(const char *name, const char *value)
{
	it_value *m = it_value_new_map(), *v = it_value_new_str(IT_S, value, strlen(value));
	if (m == NULL || v == NULL || !it_map_set(m, name, strlen(name), v)) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return m;
}

/* Arms a claim of IDEM#<key> in a new transaction of the system table. */
static db_tx *arm(dbt_ctx *c, const char *table, const char *key, it_claim *claim)
{
	char pk[64];
	snprintf(pk, sizeof(pk), "IDEM#%s", key);
	it_value *item = attrs_s("PK", pk), *sk = it_value_new_str(IT_S, "METADATA", 8),
		 *st = it_value_new_str(IT_S, "in_progress", 11), *fp = it_value_new_str(IT_S, "fp", 2);
	if (!it_map_set(item, "SK", 2, sk) || !it_map_set(item, "status", 6, st) || !it_map_set(item, "fingerprint", 11, fp))
		exit(2);
	db_tx *tx = db_tx_new(c->pool);
	int armed = 0;
	it_claim_arm(c->store, tx, T1, table, item, 60, 200, claim, flag_armed, &armed);
	it_value_free(item);
	while (armed == 0)
		event_base_loop(c->base, EVLOOP_ONCE);
	CHECK(armed == 1, "claim armed");
	return tx;
}

static it_set_status set_and_wait(dbt_ctx *c, db_tx *tx, it_claim *claim, it_value *attrs, int flags)
{
	set_res r = {0};
	it_claim_set(tx, claim, attrs, flags, set_cb, &r);
	it_value_free(attrs);
	while (!r.done)
		event_base_loop(c->base, EVLOOP_ONCE);
	return r.st;
}

static void test_claim_set(dbt_ctx *c)
{
	it_claim never = {0};
	CHECK(set_and_wait(c, NULL, &never, attrs_s("status", "x"), 0) == IT_SET_GONE, "set without a claim: GONE");

	it_claim claim;
	db_tx *tx = arm(c, IT_SYSTEM_TABLE, "set-1", &claim);
	CHECK(set_and_wait(c, tx, &claim, attrs_s("PK", "IDEM#other"), 0) == IT_SET_BAD_ATTR, "the key attribute is refused");
	CHECK(set_and_wait(c, tx, &claim, attrs_s("ttl", "1"), 0) == IT_SET_BAD_ATTR, "the TTL attribute is refused");
	char *big = malloc(IT_MAX_ITEM_SIZE + 1);
	memset(big, 'a', IT_MAX_ITEM_SIZE);
	big[IT_MAX_ITEM_SIZE] = '\0';
	CHECK(set_and_wait(c, tx, &claim, attrs_s("response", big), 0) == IT_SET_TOO_LARGE, "an item over 400 KB is refused");
	free(big);
	it_value *done = attrs_s("status", "completed");
	it_value *resp = it_value_new_str(IT_S, "{\"a\":1}", 7);
	CHECK(resp != NULL && it_map_set(done, "response", 8, resp), "attrs built");
	CHECK(set_and_wait(c, tx, &claim, done, DB_TX_COMMIT) == IT_SET_OK && claim.outcome == IT_CLAIM_CLAIMED &&
		      db_tx_committed(tx),
	      "claimed, set and committed in one batch");
	db_tx_free(tx);
	it_claim_clear(&claim);
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT (i.item->'status'->>'S') || ' ' || (i.item->'response'->>'S') || ' ' || (i.item->'fingerprint'->>'S') || ' '"
		 " || ((i.item->'ttl'->>'N')::bigint = i.expires_at)::text FROM items i JOIN item_tables t ON t.id = i.table_id"
		 " WHERE t.tenant = '%s' AND t.name = '%s' AND i.pk = 'IDEM#set-1'",
		 T1, IT_SYSTEM_TABLE);
	CHECK(strcmp(dbt_sql(sql), "completed {\"a\":1} fp true") == 0, "the stored item: set attributes, the others kept");

	/* A second claim of the key finds it taken: the set does not run. */
	tx = arm(c, IT_SYSTEM_TABLE, "set-1", &claim);
	it_set_status st = set_and_wait(c, tx, &claim, attrs_s("status", "overwritten"), DB_TX_COMMIT);
	CHECK(st != IT_SET_OK && claim.outcome == IT_CLAIM_TAKEN, "a taken key: the set is refused, the claim says TAKEN");
	db_tx_free(tx);
	it_claim_clear(&claim);
	CHECK(strncmp(dbt_sql(sql), "completed ", 10) == 0, "the record is unchanged");

	/* The system table has no secondary index since sql/016: a table of
	 * test_tables with one (by_owner: owner, n) shows the index keys. */
	tx = arm(c, "acct", "set-2", &claim);
	CHECK(set_and_wait(c, tx, &claim, attrs_s("owner", "x"), 0) == IT_SET_BAD_ATTR, "an index key attribute is refused");
	CHECK(set_and_wait(c, tx, &claim, attrs_s("note", "x"), DB_TX_COMMIT) == IT_SET_OK, "another attribute is set");
	db_tx_free(tx);
	it_claim_clear(&claim);
}

/* ---- it_lease_*: the typed records of idempotency as a service ---- */

typedef struct lease_res {
	bool done;
	it_lease_status st;
	bool has;
	it_lease_state state;
	char fp[64], token[64], response[64], key[64];
	long long lease_ms;
} lease_res;

static void lease_cb(it_lease_status st, const it_lease *rec, void *arg)
{
	lease_res *r = arg;
	r->done = true;
	r->st = st;
	r->has = rec != NULL;
	if (rec != NULL) {
		r->state = rec->state;
		r->lease_ms = rec->lease_ms;
		snprintf(r->key, sizeof(r->key), "%s", rec->key);
		snprintf(r->fp, sizeof(r->fp), "%s", rec->fingerprint ? rec->fingerprint : "");
		snprintf(r->token, sizeof(r->token), "%s", rec->token ? rec->token : "");
		snprintf(r->response, sizeof(r->response), "%s", rec->response ? rec->response : "");
	}
}

static void lease_wait(dbt_ctx *c, lease_res *r)
{
	while (!r->done)
		event_base_loop(c->base, EVLOOP_ONCE);
}

/* A claim of LS#<key> at now_ms with a lease of lease_ms and a TTL of ttl_s. */
static lease_res lease_claim(dbt_ctx *c, const char *key, const char *fp, const char *token, long long now_ms,
			     long long lease_ms, long long ttl_s)
{
	char pk[300];
	snprintf(pk, sizeof(pk), "LS#%s", key);
	it_lease_new n = {.pk = pk, .key = key, .fingerprint = fp, .token = token, .now_ms = now_ms,
			  .lease_ms = now_ms + lease_ms, .expires_s = now_ms / 1000 + ttl_s,
			  .created_at = "2026-01-01T00:00:00Z", .expires_at = "2026-01-02T00:00:00Z"};
	lease_res r = {0};
	it_lease_claim(c->store, T1, &n, lease_cb, &r);
	lease_wait(c, &r);
	return r;
}

static lease_res lease_do(dbt_ctx *c, char what, const char *key, const char *token, long long now_ms)
{
	char pk[300];
	snprintf(pk, sizeof(pk), "LS#%s", key);
	lease_res r = {0};
	if (what == 'c')
		it_lease_complete(c->store, T1, pk, token, "{\"status\":201}", now_ms, lease_cb, &r);
	else if (what == 'r')
		it_lease_release(c->store, T1, pk, token, now_ms, lease_cb, &r);
	else
		it_lease_get(c->store, T1, pk, now_ms, lease_cb, &r);
	lease_wait(c, &r);
	return r;
}

static void test_lease(dbt_ctx *c)
{
	/* Every statement prepares on the migrated schema: a typo fails here,
	 * before any request. */
	PGconn *pg = PQconnectdb(dbt_url());
	int n = 0;
	for (const db_stmt *const *st = it_lease_stmts; *st != NULL; st++, n++) {
		PGresult *r = PQprepare(pg, (*st)->name, (*st)->sql, (*st)->nparams, NULL);
		CHECK(PQresultStatus(r) == PGRES_COMMAND_OK, "lease statement prepares");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			printf("#   %s: %s", (*st)->name, PQerrorMessage(pg));
		PQclear(r);
		r = PQdescribePrepared(pg, (*st)->name);
		CHECK(PQresultStatus(r) == PGRES_COMMAND_OK && PQnparams(r) == (*st)->nparams && PQnfields(r) == 10,
		      "lease statement: its parameters and its ten columns");
		PQclear(r);
	}
	PQfinish(pg);
	CHECK(n == 4, "four lease statements");

	const long long t0 = 4102444800000LL; /* 2100-01-01: the TTLs below are live by the database too */
	lease_res r = lease_claim(c, "k1", "fp-a", "tok-1", t0, 30000, 86400);
	CHECK(r.st == IT_LEASE_OK && r.has && r.state == IT_LEASE_IN_PROGRESS && strcmp(r.token, "tok-1") == 0 &&
		      strcmp(r.fp, "fp-a") == 0 && r.lease_ms == t0 + 30000 && strcmp(r.key, "k1") == 0,
	      "claim of a new key: OK with the record written");
	r = lease_claim(c, "k1", "fp-a", "tok-2", t0 + 1000, 30000, 86400);
	CHECK(r.st == IT_LEASE_REFUSED && r.has && strcmp(r.token, "tok-1") == 0 && r.lease_ms == t0 + 30000,
	      "claim of a live lease: REFUSED with the holder's record");
	r = lease_claim(c, "k1", "fp-b", "tok-2", t0 + 31000, 30000, 86400);
	CHECK(r.st == IT_LEASE_REFUSED && strcmp(r.token, "tok-1") == 0, "an ended lease with another fingerprint: REFUSED");
	r = lease_claim(c, "k1", "fp-a", "tok-3", t0 + 31000, 30000, 86400);
	CHECK(r.st == IT_LEASE_OK && strcmp(r.token, "tok-3") == 0 && r.lease_ms == t0 + 61000,
	      "an ended lease, same fingerprint: taken over");
	r = lease_do(c, 'c', "k1", "tok-1", t0 + 32000);
	CHECK(r.st == IT_LEASE_REFUSED && r.has && strcmp(r.token, "tok-3") == 0,
	      "complete with the old token: REFUSED, the live record returned");
	r = lease_do(c, 'r', "k1", "tok-1", t0 + 32000);
	CHECK(r.st == IT_LEASE_REFUSED && r.has, "release with the old token: REFUSED");
	r = lease_do(c, 'c', "k1", "tok-3", t0 + 32000);
	CHECK(r.st == IT_LEASE_OK && r.has && r.state == IT_LEASE_COMPLETED && strcmp(r.response, "{\"status\":201}") == 0 &&
		      r.token[0] == '\0' && strcmp(r.fp, "fp-a") == 0,
	      "complete by the holder: completed, response stored, token gone");
	r = lease_claim(c, "k1", NULL, "tok-4", t0 + 99000, 30000, 86400);
	CHECK(r.st == IT_LEASE_REFUSED && r.state == IT_LEASE_COMPLETED, "claim of a completed key: REFUSED with the record");
	r = lease_do(c, 'c', "k1", "tok-3", t0 + 33000);
	CHECK(r.st == IT_LEASE_REFUSED && r.state == IT_LEASE_COMPLETED, "complete twice: REFUSED");
	r = lease_do(c, 'g', "k1", NULL, t0 + 33000);
	CHECK(r.st == IT_LEASE_OK && r.has && r.state == IT_LEASE_COMPLETED, "get: the completed record");
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT i.expires_at::text || ' ' || (i.item->'ttl'->>'N') || ' ' || (i.item ? 'lease_ms')::text FROM items i"
		 " JOIN item_tables t ON t.id = i.table_id WHERE t.tenant = '%s' AND t.name = '%s' AND i.pk = 'LS#k1'",
		 T1, IT_SYSTEM_TABLE);
	char want[128];
	snprintf(want, sizeof(want), "%lld %lld false", (t0 + 31000) / 1000 + 86400, (t0 + 31000) / 1000 + 86400);
	CHECK(strcmp(dbt_sql(sql), want) == 0, "stored: the TTL attribute and expires_at agree, the lease removed");

	/* release by the holder, then the key is free */
	r = lease_claim(c, "k2", NULL, "tok-5", t0, 30000, 86400);
	CHECK(r.st == IT_LEASE_OK && r.fp[0] == '\0', "claim without a fingerprint");
	r = lease_do(c, 'r', "k2", "tok-5", t0 + 1000);
	CHECK(r.st == IT_LEASE_OK, "release by the holder");
	r = lease_do(c, 'g', "k2", NULL, t0 + 1000);
	CHECK(r.st == IT_LEASE_OK && !r.has, "get after release: no record");
	r = lease_do(c, 'r', "k2", "tok-5", t0 + 1000);
	CHECK(r.st == IT_LEASE_REFUSED && !r.has, "release of no record: REFUSED without a record");
	r = lease_do(c, 'c', "k2", "tok-5", t0 + 1000);
	CHECK(r.st == IT_LEASE_REFUSED && !r.has, "complete of no record: REFUSED without a record");

	/* an expired record is absent: claimed anew, whatever its state */
	r = lease_claim(c, "k3", "fp-a", "tok-6", t0, 30000, 5);
	CHECK(r.st == IT_LEASE_OK, "claim with a TTL of 5 s");
	r = lease_do(c, 'g', "k3", NULL, t0 + 6000);
	CHECK(r.st == IT_LEASE_OK && !r.has, "get after its TTL: no record");
	r = lease_do(c, 'c', "k3", "tok-6", t0 + 6000);
	CHECK(r.st == IT_LEASE_REFUSED && !r.has, "complete after its TTL: no record");
	r = lease_claim(c, "k3", "fp-b", "tok-7", t0 + 6000, 30000, 86400);
	CHECK(r.st == IT_LEASE_OK && strcmp(r.fp, "fp-b") == 0, "claim after its TTL, another fingerprint: a new key");

	/* a key of 255 bytes (the partition key is capped, sql/009) */
	char big[256];
	memset(big, 'q', 255);
	big[255] = '\0';
	r = lease_claim(c, big, NULL, "tok-8", t0, 30000, 86400);
	CHECK(r.st == IT_LEASE_OK && strcmp(r.token, "tok-8") == 0, "claim of a 255-byte key");
	r = lease_do(c, 'g', big, NULL, t0);
	CHECK(r.st == IT_LEASE_OK && r.has, "get of a 255-byte key");

	/* a tenant without the system table: FAILED, not a crash */
	lease_res g = {0};
	it_lease_get(c->store, "no_such_tenant_x", "LS#k1", t0, lease_cb, &g);
	lease_wait(c, &g);
	CHECK(g.st == IT_LEASE_FAILED && !g.has, "no system table: FAILED");
}

int main(void)
{
	dbt_url();
	dbt_migrate();
	char suffix[9];
	snprintf(suffix, sizeof(suffix), "%08x", (unsigned)randombytes_random());
	snprintf(T1, sizeof(T1), "it_a_%s", suffix);
	snprintf(T2, sizeof(T2), "it_b_%s", suffix);
	char sql[256];
	snprintf(sql, sizeof(sql), "INSERT INTO tenants (name) VALUES ('%s'), ('%s')", T1, T2);
	dbt_sql(sql);
	dbt_ctx c;
	if (!dbt_open(&c)) {
		printf("not ok 1 - cannot connect\n");
		return 1;
	}
	test_tables(&c);
	test_roundtrip(&c);
	test_conditional(&c);
	test_counter_edges(&c);
	test_concurrent_debits(&c);
	test_transactions(&c);
	test_query(&c);
	test_keyenc_matches_sql();
	test_ttl(&c);
	test_batches_and_scan(&c);
	test_update_table(&c);
	test_backfill(&c);
	test_claim_set(&c);
	test_lease(&c);
	dbt_close(&c);
	return it_test_done();
}
