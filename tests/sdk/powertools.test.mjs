// A real client: the idempotency utility of Powertools for AWS Lambda
// (TypeScript), npm @aws-lambda-powertools/idempotency with its
// DynamoDBPersistenceLayer, used unchanged against onceledger's
// DynamoDB-compatible endpoint.  Run by tests/sdk/run.sh (same environment as
// dynamodb.test.mjs: ONCELEDGER_DYNAMODB_URL, ONCELEDGER_SDK_KEY_ID,
// ONCELEDGER_SDK_SECRET).
//
// The table is created as Powertools documents it: partition key `id` (S),
// TTL on `expiration`.  The persistence layer then issues, per call:
//   PutItem with ConditionExpression
//     attribute_not_exists(#id) OR #expiry < :now OR
//     (#status = :inprogress AND attribute_exists(#in_progress_expiry)
//      AND #in_progress_expiry < :now_in_millis)
//   and ReturnValuesOnConditionCheckFailure ALL_OLD (the claim);
//   UpdateItem SET #expiry, #status, #response_data (the saved result);
//   DeleteItem (the function threw); GetItem ConsistentRead (fallback).
// Tests within this file run one after another.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

import {
  DynamoDBClient,
  CreateTableCommand,
  DescribeTableCommand,
  DeleteTableCommand,
  UpdateTimeToLiveCommand,
  DescribeTimeToLiveCommand,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import {
  makeIdempotent,
  IdempotencyConfig,
  IdempotencyAlreadyInProgressError,
  IdempotencyValidationError,
} from "@aws-lambda-powertools/idempotency";
import { DynamoDBPersistenceLayer } from "@aws-lambda-powertools/idempotency/dynamodb";
import { clientOptions, runName } from "./env.mjs";

const PREFIX = runName("pt");

const clients = [];
function makeClient() {
  // Powertools' own client keeps the SDK's retries; the test's too.
  const c = new DynamoDBClient(clientOptions("", { maxAttempts: 3 }));
  clients.push(c);
  return c;
}
const ddb = makeClient(); // the test's own reads and writes
const doc = DynamoDBDocumentClient.from(ddb);

const created = [];
after(async () => {
  for (const name of created.reverse()) {
    try {
      await ddb.send(new DeleteTableCommand({ TableName: name }));
    } catch {
      // the daemon is gone
    }
  }
  for (const c of clients) c.destroy();
});

/** The idempotency table as the Powertools documentation shows it
 *  (partition key `id` of type S, TTL attribute `expiration`). */
async function makeIdempotencyTable(suffix, { ttl = true, sortKey = null } = {}) {
  const name = `${PREFIX}-${suffix}`;
  const attrs = [{ AttributeName: "id", AttributeType: "S" }];
  const keys = [{ AttributeName: "id", KeyType: "HASH" }];
  if (sortKey) {
    attrs.push({ AttributeName: sortKey, AttributeType: "S" });
    keys.push({ AttributeName: sortKey, KeyType: "RANGE" });
  }
  await ddb.send(new CreateTableCommand({
    TableName: name, AttributeDefinitions: attrs, KeySchema: keys, BillingMode: "PAY_PER_REQUEST",
  }));
  created.push(name);
  for (let i = 0; ; i++) {
    const { Table } = await ddb.send(new DescribeTableCommand({ TableName: name }));
    if (Table.TableStatus === "ACTIVE") break;
    assert.ok(i < 150, `table ${name} not ACTIVE`);
    await sleep(100);
  }
  if (ttl) {
    const out = await ddb.send(new UpdateTimeToLiveCommand({
      TableName: name, TimeToLiveSpecification: { Enabled: true, AttributeName: "expiration" },
    }));
    assert.deepEqual(out.TimeToLiveSpecification, { Enabled: true, AttributeName: "expiration" });
    const d = await ddb.send(new DescribeTimeToLiveCommand({ TableName: name }));
    assert.equal(d.TimeToLiveDescription.AttributeName, "expiration");
  }
  return name;
}

/** A fake Lambda context: makeIdempotent registers it when it is the second
 *  argument, and Powertools sets in_progress_expiration to now + remaining. */
function lambdaContext(remainingMs = 60_000) {
  const deadline = Date.now() + remainingMs;
  return {
    functionName: "onceledger-powertools-test",
    functionVersion: "$LATEST",
    awsRequestId: randomBytes(8).toString("hex"),
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

/** A persistence layer (one per idempotent function: Powertools configures a
 *  layer once) on its own SDK client pointed at the endpoint. */
function persistence(tableName, sent = null) {
  const client = makeClient();
  if (sent) {
    // Counts the requests Powertools sends, by operation.
    client.middlewareStack.add((next, context) => async (args) => {
      sent[context.commandName] = (sent[context.commandName] ?? 0) + 1;
      return next(args);
    }, { step: "initialize", name: "countCommands" });
  }
  return new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client });
}

/** Powertools' record key: `<keyPrefix>#<base64 md5 of the JSON of the
 *  selected payload>` (the selected payload here is a string). */
function recordKey(keyPrefix, selected) {
  return `${keyPrefix}#${createHash("md5").update(JSON.stringify(selected)).digest("base64")}`;
}

async function getRecord(table, id) {
  const { Item } = await doc.send(new GetCommand({
    TableName: table, Key: { id }, ConsistentRead: true,
  }));
  return Item;
}

/** A payment charge with side effects counted per order id. */
function chargeFunction(executions, { delayMs = 0, fail = null } = {}) {
  return async (event) => {
    const n = (executions.get(event.orderId) ?? 0) + 1;
    executions.set(event.orderId, n);
    if (delayMs) await sleep(delayMs);
    if (fail && fail(event, n)) throw new Error(`charge ${event.orderId} failed (attempt ${n})`);
    return { orderId: event.orderId, charged: event.amount, execution: n };
  };
}

// The shared Powertools table (TTL on `expiration`), created by the first
// test that needs it, so that any one test can run alone (--test-name-pattern).
let table;
let tablePromise;
before(async () => {
  tablePromise ??= makeIdempotencyTable("idem");
  table = await tablePromise;
});

test("Powertools: the documented idempotency table (id S, TTL on expiration)", async () => {
  const { Table } = await ddb.send(new DescribeTableCommand({ TableName: table }));
  assert.deepEqual(Table.KeySchema, [{ AttributeName: "id", KeyType: "HASH" }]);
  assert.deepEqual(Table.AttributeDefinitions, [{ AttributeName: "id", AttributeType: "S" }]);
  const d = await ddb.send(new DescribeTimeToLiveCommand({ TableName: table }));
  assert.deepEqual(d.TimeToLiveDescription, { TimeToLiveStatus: "ENABLED", AttributeName: "expiration" });
});

test("Powertools: 10 concurrent duplicate calls run the function once; later calls replay the saved result", async (t) => {
  const executions = new Map();
  const keyPrefix = "charge";
  const sent = {};
  const charge = makeIdempotent(chargeFunction(executions, { delayMs: 400 }), {
    persistenceStore: persistence(table, sent),
    config: new IdempotencyConfig({ eventKeyJmesPath: "orderId" }),
    keyPrefix,
  });
  const event = { orderId: "o-1", amount: 125 };
  const outcomes = await Promise.allSettled(
    Array.from({ length: 10 }, () => charge({ ...event }, lambdaContext())));

  assert.equal(executions.get("o-1"), 1, "the function ran more than once");
  const expected = { orderId: "o-1", charged: 125, execution: 1 };
  let ok = 0, inProgress = 0;
  for (const o of outcomes) {
    if (o.status === "fulfilled") {
      assert.deepEqual(o.value, expected);
      ok++;
    } else {
      assert.ok(o.reason instanceof IdempotencyAlreadyInProgressError,
        `a duplicate failed with ${o.reason?.name}: ${o.reason?.message} (cause: ${o.reason?.cause})`);
      inProgress++;
    }
  }
  assert.ok(ok >= 1, "no call returned the result");
  assert.equal(ok + inProgress, 10);
  t.diagnostic(`10 concurrent calls: ${ok} returned the result, ${inProgress} IdempotencyAlreadyInProgressError; ` +
    `requests: ${JSON.stringify(sent)}`);
  // Ten claims (PutItem), one saved result (UpdateItem).  The refused claims
  // carried the stored record (ReturnValuesOnConditionCheckFailure ALL_OLD),
  // so Powertools never had to read it with GetItem.
  assert.equal(sent.PutItemCommand, 10);
  assert.equal(sent.UpdateItemCommand, 1);
  assert.equal(sent.GetItemCommand, undefined);

  // The stored record, in Powertools' shape.
  const rec = await getRecord(table, recordKey(keyPrefix, "o-1"));
  assert.ok(rec, "no record under Powertools' key");
  assert.equal(rec.status, "COMPLETED");
  assert.deepEqual(rec.data, expected);
  const now = Date.now() / 1000;
  assert.ok(rec.expiration > now + 3500 && rec.expiration < now + 3700, `expiration ${rec.expiration}`);
  assert.ok(rec.in_progress_expiration > Date.now(), `in_progress_expiration ${rec.in_progress_expiration} (ms)`);

  // Later calls, alone and concurrent, replay the saved result.
  assert.deepEqual(await charge({ ...event }, lambdaContext()), expected);
  const again = await Promise.all(Array.from({ length: 5 }, () => charge({ ...event }, lambdaContext())));
  for (const r of again) assert.deepEqual(r, expected);
  // Only the key (eventKeyJmesPath) counts: another amount replays too.
  assert.deepEqual(await charge({ orderId: "o-1", amount: 999 }, lambdaContext()), expected);
  assert.equal(executions.get("o-1"), 1);

  // (2) A different payload runs again, once.
  const r2 = await Promise.all(Array.from({ length: 3 }, () =>
    charge({ orderId: "o-2", amount: 7 }, lambdaContext()).catch((e) => e)));
  assert.equal(executions.get("o-2"), 1);
  for (const r of r2) {
    if (r instanceof Error) assert.ok(r instanceof IdempotencyAlreadyInProgressError, `${r.name}: ${r.message}`);
    else assert.deepEqual(r, { orderId: "o-2", charged: 7, execution: 1 });
  }
  assert.deepEqual(await charge({ orderId: "o-2", amount: 7 }, lambdaContext()),
    { orderId: "o-2", charged: 7, execution: 1 });
  assert.equal(executions.get("o-2"), 1);
});

test("Powertools: the function wrapper without a Lambda context (plain function, whole payload hashed)", async () => {
  const executions = new Map();
  const fn = makeIdempotent(chargeFunction(executions), {
    persistenceStore: persistence(table),
    keyPrefix: "plain",
  });
  const warn = console.warn;
  console.warn = () => {}; // "Could not determine remaining time left": expected, no context here
  try {
    const a = await fn({ orderId: "p-1", amount: 1 });
    const b = await fn({ amount: 1, orderId: "p-1" }); // same payload, keys in another order
    const c = await fn({ orderId: "p-1", amount: 2 }); // another payload
    assert.deepEqual(a, b);
    assert.deepEqual(a, { orderId: "p-1", charged: 1, execution: 1 });
    assert.deepEqual(c, { orderId: "p-1", charged: 2, execution: 2 });
  } finally {
    console.warn = warn;
  }
  assert.equal(executions.get("p-1"), 2);
});

test("Powertools: expiry is honoured (expiresAfterSeconds), on a table with TTL and on one without", async () => {
  // With TTL on `expiration`, onceledger hides the expired record from reads
  // and conditions (attribute_not_exists holds).  Without TTL (and in real
  // DynamoDB until its sweeper deletes the item) the record is still there
  // and the `#expiry < :now` branch of Powertools' condition lets the claim
  // through.  Both must run the function again.
  const noTtl = await makeIdempotencyTable("idem-nottl", { ttl: false });
  for (const t of [table, noTtl]) {
    const executions = new Map();
    const keyPrefix = "short";
    const fn = makeIdempotent(chargeFunction(executions), {
      persistenceStore: persistence(t),
      config: new IdempotencyConfig({ eventKeyJmesPath: "orderId", expiresAfterSeconds: 1 }),
      keyPrefix,
    });
    const ev = { orderId: "e-1", amount: 5 };
    assert.deepEqual(await fn(ev, lambdaContext()), { orderId: "e-1", charged: 5, execution: 1 });
    assert.deepEqual(await fn(ev, lambdaContext()), { orderId: "e-1", charged: 5, execution: 1 },
      `${t}: replayed before expiry`);
    const rec = await getRecord(t, recordKey(keyPrefix, "e-1"));
    assert.equal(rec?.status, "COMPLETED");
    // Powertools rounds now + 1 s to whole seconds; wait until it has passed.
    const waitMs = rec.expiration * 1000 - Date.now() + 1100;
    await sleep(Math.max(0, waitMs));
    if (t === noTtl) {
      // Still there, expired: only `#expiry < :now` lets the next claim in.
      const old = await getRecord(t, recordKey(keyPrefix, "e-1"));
      assert.equal(old?.status, "COMPLETED");
      assert.ok(old.expiration < Date.now() / 1000);
    } else {
      // onceledger hides it (docs/dynamodb.md, TTL); DynamoDB returns it
      // until its sweeper deletes it.  Either way it is expired.
      const old = await getRecord(t, recordKey(keyPrefix, "e-1"));
      assert.ok(old === undefined || old.expiration < Date.now() / 1000);
    }
    assert.deepEqual(await fn(ev, lambdaContext()), { orderId: "e-1", charged: 5, execution: 2 },
      `${t}: not run again after expiry`);
    assert.deepEqual(await fn(ev, lambdaContext()), { orderId: "e-1", charged: 5, execution: 2 },
      `${t}: the new result is not replayed`);
    assert.equal(executions.get("e-1"), 2);

    if (t === noTtl) {
      const now = Date.now() / 1000;
      const r = await getRecord(t, recordKey(keyPrefix, "e-1"));
      assert.equal(r.status, "COMPLETED");
      assert.equal(r.data.execution, 2);
      assert.ok(r.expiration > now, "the record was not replaced");
    }

    // Ten concurrent calls on an expired COMPLETED record (written directly
    // in Powertools' shape, expired ten seconds ago): one of them runs.
    const slow = makeIdempotent(chargeFunction(executions, { delayMs: 400 }), {
      persistenceStore: persistence(t),
      config: new IdempotencyConfig({ eventKeyJmesPath: "orderId" }),
      keyPrefix,
    });
    await ddb.send(new PutItemCommand({
      TableName: t,
      Item: {
        id: { S: recordKey(keyPrefix, "e-2") },
        status: { S: "COMPLETED" },
        expiration: { N: String(Math.floor(Date.now() / 1000) - 10) },
        data: { M: { orderId: { S: "e-2" }, charged: { N: "6" }, execution: { N: "0" } } },
      },
    }));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, () => slow({ orderId: "e-2", amount: 6 }, lambdaContext())));
    assert.equal(executions.get("e-2"), 1, `${t}: an expired record was taken over more than once`);
    for (const o of outcomes) {
      if (o.status === "fulfilled") assert.deepEqual(o.value, { orderId: "e-2", charged: 6, execution: 1 });
      else assert.ok(o.reason instanceof IdempotencyAlreadyInProgressError, `${o.reason?.name}: ${o.reason?.message}`);
    }
    assert.deepEqual(await slow({ orderId: "e-2", amount: 6 }, lambdaContext()),
      { orderId: "e-2", charged: 6, execution: 1 });
  }
});

test("Powertools: an invocation that never completed is taken over after its in-progress expiry", async () => {
  const executions = new Map();
  const keyPrefix = "crash";
  let hang = true;
  const fn = makeIdempotent(async (event) => {
    const n = (executions.get(event.orderId) ?? 0) + 1;
    executions.set(event.orderId, n);
    if (hang && n === 1) await new Promise(() => {}); // the Lambda timed out: never returns
    return { orderId: event.orderId, execution: n };
  }, {
    persistenceStore: persistence(table),
    config: new IdempotencyConfig({ eventKeyJmesPath: "orderId" }),
    keyPrefix,
  });

  // (a) A call with 2 s left on its Lambda clock never completes.
  const budgetMs = 2000;
  void fn({ orderId: "c-1" }, lambdaContext(budgetMs));
  let rec;
  for (let i = 0; i < 50 && !rec; i++) {
    await sleep(20);
    rec = await getRecord(table, recordKey(keyPrefix, "c-1"));
  }
  assert.equal(rec?.status, "INPROGRESS");
  assert.ok(rec.in_progress_expiration <= Date.now() + budgetMs, `in_progress_expiration ${rec.in_progress_expiration}`);
  // Before its in-progress expiry a duplicate is refused as in progress ...
  await assert.rejects(fn({ orderId: "c-1" }, lambdaContext()), IdempotencyAlreadyInProgressError);
  assert.equal(executions.get("c-1"), 1);
  // ... after it, the next call takes the record over and runs.
  await sleep(Math.max(0, rec.in_progress_expiration - Date.now() + 100));
  hang = false;
  assert.deepEqual(await fn({ orderId: "c-1" }, lambdaContext()), { orderId: "c-1", execution: 2 });
  assert.deepEqual(await fn({ orderId: "c-1" }, lambdaContext()), { orderId: "c-1", execution: 2 });
  assert.equal(executions.get("c-1"), 2);

  // (b) A crashed invocation's record written directly, in Powertools' shape:
  // INPROGRESS, expiration an hour away (seconds), in_progress_expiration
  // passed (milliseconds).
  const now = Date.now();
  const put = (orderId, inProgressExpiry) => ddb.send(new PutItemCommand({
    TableName: table,
    Item: {
      id: { S: recordKey(keyPrefix, orderId) },
      status: { S: "INPROGRESS" },
      expiration: { N: String(Math.round(now / 1000) + 3600) },
      in_progress_expiration: { N: String(inProgressExpiry) },
    },
  }));
  await put("c-2", now - 1000);
  await put("c-3", now + 60_000); // still within its Lambda's time: not taken over
  assert.deepEqual(await fn({ orderId: "c-2" }, lambdaContext()), { orderId: "c-2", execution: 1 });
  const r2 = await getRecord(table, recordKey(keyPrefix, "c-2"));
  assert.equal(r2.status, "COMPLETED");
  assert.deepEqual(r2.data, { orderId: "c-2", execution: 1 });
  await assert.rejects(fn({ orderId: "c-3" }, lambdaContext()), IdempotencyAlreadyInProgressError);
  assert.equal(executions.get("c-3"), undefined);
  assert.equal((await getRecord(table, recordKey(keyPrefix, "c-3"))).status, "INPROGRESS");

  // (c) Ten concurrent calls race for one crashed record: one takes it over
  // (the existing row is locked and the condition re-read for each claim).
  await put("c-4", Date.now() - 1000);
  const slow = makeIdempotent(chargeFunction(executions, { delayMs: 400 }), {
    persistenceStore: persistence(table),
    config: new IdempotencyConfig({ eventKeyJmesPath: "orderId" }),
    keyPrefix,
  });
  const outcomes = await Promise.allSettled(
    Array.from({ length: 10 }, () => slow({ orderId: "c-4", amount: 1 }, lambdaContext())));
  assert.equal(executions.get("c-4"), 1, "the crashed record was taken over more than once");
  for (const o of outcomes) {
    if (o.status === "fulfilled") assert.deepEqual(o.value, { orderId: "c-4", charged: 1, execution: 1 });
    else assert.ok(o.reason instanceof IdempotencyAlreadyInProgressError, `${o.reason?.name}: ${o.reason?.message}`);
  }
  assert.equal((await getRecord(table, recordKey(keyPrefix, "c-4"))).status, "COMPLETED");
});

test("Powertools: a function that throws leaves no saved result; the next call runs again", async () => {
  const executions = new Map();
  const keyPrefix = "fail";
  const fn = makeIdempotent(chargeFunction(executions, { fail: (_ev, n) => n === 1 }), {
    persistenceStore: persistence(table),
    config: new IdempotencyConfig({ eventKeyJmesPath: "orderId" }),
    keyPrefix,
  });
  const ev = { orderId: "f-1", amount: 3 };
  await assert.rejects(fn(ev, lambdaContext()), /charge f-1 failed \(attempt 1\)/);
  assert.equal(await getRecord(table, recordKey(keyPrefix, "f-1")), undefined, "the in-progress record was left");
  assert.deepEqual(await fn(ev, lambdaContext()), { orderId: "f-1", charged: 3, execution: 2 });
  assert.deepEqual(await fn(ev, lambdaContext()), { orderId: "f-1", charged: 3, execution: 2 });
  assert.equal(executions.get("f-1"), 2);
});

test("Powertools: payload validation refuses a reused key with another payload", async () => {
  const executions = new Map();
  const fn = makeIdempotent(chargeFunction(executions), {
    persistenceStore: persistence(table),
    config: new IdempotencyConfig({ eventKeyJmesPath: "orderId", payloadValidationJmesPath: "amount" }),
    keyPrefix: "validate",
  });
  assert.deepEqual(await fn({ orderId: "v-1", amount: 10 }, lambdaContext()),
    { orderId: "v-1", charged: 10, execution: 1 });
  assert.deepEqual(await fn({ orderId: "v-1", amount: 10 }, lambdaContext()),
    { orderId: "v-1", charged: 10, execution: 1 });
  await assert.rejects(fn({ orderId: "v-1", amount: 11 }, lambdaContext()), IdempotencyValidationError);
  assert.equal(executions.get("v-1"), 1);
  const rec = await getRecord(table, recordKey("validate", "v-1"));
  assert.equal(typeof rec.validation, "string");
});

test("Powertools: a composite-key table (sortKeyAttr, static partition key)", async () => {
  // Powertools' option for sharing a table with other items: partition key
  // `id` holds `idempotency#<prefix>`, the idempotency key goes to the sort key.
  const name = await makeIdempotencyTable("idem-sk", { sortKey: "sk" });
  const executions = new Map();
  const fn = makeIdempotent(chargeFunction(executions, { delayMs: 200 }), {
    persistenceStore: new DynamoDBPersistenceLayer({
      tableName: name, sortKeyAttr: "sk", staticPkValue: "idempotency#shared", awsSdkV3Client: makeClient(),
    }),
    config: new IdempotencyConfig({ eventKeyJmesPath: "orderId" }),
    keyPrefix: "sk",
  });
  const outcomes = await Promise.allSettled(
    Array.from({ length: 5 }, () => fn({ orderId: "k-1", amount: 4 }, lambdaContext())));
  assert.equal(executions.get("k-1"), 1);
  for (const o of outcomes) {
    if (o.status === "fulfilled") assert.deepEqual(o.value, { orderId: "k-1", charged: 4, execution: 1 });
    else assert.ok(o.reason instanceof IdempotencyAlreadyInProgressError, `${o.reason?.name}: ${o.reason?.message}`);
  }
  assert.deepEqual(await fn({ orderId: "k-1", amount: 4 }, lambdaContext()), { orderId: "k-1", charged: 4, execution: 1 });
  assert.deepEqual(await fn({ orderId: "k-2", amount: 4 }, lambdaContext()), { orderId: "k-2", charged: 4, execution: 1 });
  const { Item } = await doc.send(new GetCommand({
    TableName: name, Key: { id: "idempotency#shared", sk: recordKey("sk", "k-1") }, ConsistentRead: true,
  }));
  assert.equal(Item?.status, "COMPLETED");
  assert.equal(Item.data.execution, 1);
});
