// Drives onceledger's DynamoDB-compatible endpoint (docs/api.md §12)
// with the real AWS SDK v3 for JavaScript, unchanged.  Run by tests/sdk/run.sh,
// which starts a throwaway stack and daemon and exports:
//
//   ONCELEDGER_DYNAMODB_URL                          http://127.0.0.1:PORT
//   ONCELEDGER_SDK_KEY_ID,   ONCELEDGER_SDK_SECRET    a sigv4 key of tenant 1
//   ONCELEDGER_SDK_KEY_ID_2, ONCELEDGER_SDK_SECRET_2  a sigv4 key of tenant 2
//
// Every table name carries a per-run prefix, so the suite can run repeatedly
// against the same daemon.  Tests within this file run one after another.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

import {
  DynamoDBClient,
  DynamoDBServiceException,
  CreateTableCommand,
  DescribeTableCommand,
  ListTablesCommand,
  DeleteTableCommand,
  UpdateTableCommand,
  UpdateTimeToLiveCommand,
  DescribeTimeToLiveCommand,
  PutItemCommand,
  GetItemCommand,
  UpdateItemCommand,
  DeleteItemCommand,
  QueryCommand,
  ScanCommand,
  BatchWriteItemCommand,
  BatchGetItemCommand,
  TransactGetItemsCommand,
  TransactWriteItemsCommand,
  ConditionalCheckFailedException,
  TransactionCanceledException,
  IdempotentParameterMismatchException,
  ResourceNotFoundException,
  ResourceInUseException,
} from "@aws-sdk/client-dynamodb";
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
  QueryCommand as DocQueryCommand,
} from "@aws-sdk/lib-dynamodb";
import { ENDPOINT, clientOptions, credentials, runName } from "./env.mjs";

// ---------------------------------------------------------------------------
// Configuration

const { accessKeyId: KEY_ID, secretAccessKey: SECRET } = credentials();
const { accessKeyId: KEY_ID_2, secretAccessKey: SECRET_2 } = credentials("_2");
const PREFIX = runName("sdk");

const clients = [];
function makeClient(accessKeyId, secretAccessKey, extra = {}) {
  const c = new DynamoDBClient(clientOptions("", { credentials: { accessKeyId, secretAccessKey }, ...extra }));
  clients.push(c);
  return c;
}

const ddb = makeClient(KEY_ID, SECRET);    // tenant 1
const ddb2 = makeClient(KEY_ID_2, SECRET_2); // tenant 2
const doc = DynamoDBDocumentClient.from(ddb, {
  marshallOptions: { removeUndefinedValues: true },
});

// ---------------------------------------------------------------------------
// Helpers

/** Awaits `promise`, which must reject with an error named `name` (and, when
 *  given, an instance of `cls`).  Returns the error. */
async function expectError(promise, name, cls) {
  let err;
  try {
    const out = await promise;
    err = null;
    assert.fail(`expected ${name}, but the call succeeded: ${JSON.stringify(out).slice(0, 400)}`);
  } catch (e) {
    if (err === null) throw e; // the assert.fail above
    err = e;
  }
  const names = Array.isArray(name) ? name : [name];
  assert.ok(names.includes(err.name),
    `expected ${names.join(" or ")}, got ${err.name}: ${err.message}`);
  if (cls) {
    assert.ok(err instanceof cls, `${err.name} is not an instance of ${cls.name}`);
  }
  assert.ok(err instanceof DynamoDBServiceException,
    `${err.name} is not a DynamoDBServiceException (not a service error?): ${err.message}`);
  assert.equal(err.$fault, err.$metadata?.httpStatusCode >= 500 ? "server" : "client");
  return err;
}

const created = []; // [client, table name]

async function waitActive(client, name, { timeoutMs = 15000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: name }));
    last = Table;
    const gsisActive = (Table.GlobalSecondaryIndexes ?? []).every((g) => g.IndexStatus === "ACTIVE");
    if (Table.TableStatus === "ACTIVE" && gsisActive) return Table;
    await sleep(100);
  }
  throw new Error(`table ${name} not ACTIVE after ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

const GSI1 = {
  IndexName: "GSI1",
  KeySchema: [
    { AttributeName: "GSI1PK", KeyType: "HASH" },
    { AttributeName: "GSI1SK", KeyType: "RANGE" },
  ],
  Projection: { ProjectionType: "ALL" },
};

function tableParams(name, { gsi = false } = {}) {
  const attrs = [
    { AttributeName: "PK", AttributeType: "S" },
    { AttributeName: "SK", AttributeType: "S" },
  ];
  if (gsi) {
    attrs.push({ AttributeName: "GSI1PK", AttributeType: "S" },
      { AttributeName: "GSI1SK", AttributeType: "S" });
  }
  const p = {
    TableName: name,
    AttributeDefinitions: attrs,
    KeySchema: [
      { AttributeName: "PK", KeyType: "HASH" },
      { AttributeName: "SK", KeyType: "RANGE" },
    ],
    BillingMode: "PAY_PER_REQUEST",
  };
  if (gsi) p.GlobalSecondaryIndexes = [GSI1];
  return p;
}

/** Creates a PK/SK table (optionally with GSI1), waits until ACTIVE. */
async function makeTable(suffix, { gsi = false, client = ddb } = {}) {
  const name = `${PREFIX}-${suffix}`;
  await client.send(new CreateTableCommand(tableParams(name, { gsi })));
  created.push([client, name]);
  await waitActive(client, name);
  return name;
}

async function listAllTables(client) {
  const names = [];
  let start;
  for (let i = 0; i < 1000; i++) {
    const out = await client.send(new ListTablesCommand({ ExclusiveStartTableName: start, Limit: 100 }));
    names.push(...out.TableNames);
    start = out.LastEvaluatedTableName;
    if (!start) return names;
  }
  throw new Error("ListTables never ended");
}

async function getRaw(table, PK, SK) {
  const out = await ddb.send(new GetItemCommand({
    TableName: table, Key: { PK: { S: PK }, SK: { S: SK } }, ConsistentRead: true,
  }));
  return out.Item;
}

async function balanceOf(table, PK) {
  const { Item } = await doc.send(new GetCommand({
    TableName: table, Key: { PK, SK: "balance" }, ConsistentRead: true,
  }));
  return Item?.balance;
}

after(async () => {
  for (const [client, name] of created.reverse()) {
    try {
      await client.send(new DeleteTableCommand({ TableName: name }));
    } catch {
      // already deleted by the test, or the daemon is gone
    }
  }
  for (const c of clients) c.destroy();
});

// ---------------------------------------------------------------------------
// Tables

test("CreateTable with a GSI; DescribeTable and ListTables show it; another tenant cannot see it", async () => {
  const name = `${PREFIX}-tables`;
  const out = await ddb.send(new CreateTableCommand(tableParams(name, { gsi: true })));
  created.push([ddb, name]);
  assert.equal(out.$metadata.httpStatusCode, 200);
  const d = out.TableDescription;
  assert.equal(d.TableName, name);
  assert.ok(["CREATING", "ACTIVE"].includes(d.TableStatus), `TableStatus ${d.TableStatus}`);
  assert.deepEqual(d.KeySchema, tableParams(name).KeySchema);
  assert.equal(d.BillingModeSummary?.BillingMode, "PAY_PER_REQUEST");
  assert.match(d.TableArn ?? "", new RegExp(`:table/${name}$`));
  assert.ok(d.CreationDateTime instanceof Date, "CreationDateTime is a Date");
  assert.equal(d.GlobalSecondaryIndexes?.length, 1);

  const t = await waitActive(ddb, name);
  assert.equal(t.TableName, name);
  assert.equal(t.ItemCount, 0);
  assert.deepEqual(t.KeySchema, tableParams(name).KeySchema);
  const defs = Object.fromEntries(t.AttributeDefinitions.map((a) => [a.AttributeName, a.AttributeType]));
  assert.deepEqual(defs, { PK: "S", SK: "S", GSI1PK: "S", GSI1SK: "S" });
  assert.equal(t.GlobalSecondaryIndexes.length, 1);
  const g = t.GlobalSecondaryIndexes[0];
  assert.equal(g.IndexName, "GSI1");
  assert.deepEqual(g.KeySchema, GSI1.KeySchema);
  assert.equal(g.Projection.ProjectionType, "ALL");
  assert.equal(g.IndexStatus, "ACTIVE");

  const mine = await listAllTables(ddb);
  assert.ok(mine.includes(name), `ListTables of tenant 1 lacks ${name}: ${mine}`);
  // ListTables pagination: Limit 1 from just before our name returns it.
  const one = await ddb.send(new ListTablesCommand({ Limit: 1, ExclusiveStartTableName: `${PREFIX}-tablea` }));
  assert.deepEqual(one.TableNames, [name]);

  // Creating it again: ResourceInUseException.
  await expectError(ddb.send(new CreateTableCommand(tableParams(name, { gsi: true }))),
    "ResourceInUseException", ResourceInUseException);

  // Tenant 2 sees nothing of it.
  await expectError(ddb2.send(new DescribeTableCommand({ TableName: name })),
    "ResourceNotFoundException", ResourceNotFoundException);
  const theirs = await listAllTables(ddb2);
  assert.ok(!theirs.includes(name), `tenant 2 lists tenant 1's table ${name}`);
  await expectError(ddb2.send(new GetItemCommand({
    TableName: name, Key: { PK: { S: "a" }, SK: { S: "b" } },
  })), "ResourceNotFoundException", ResourceNotFoundException);
  await expectError(ddb2.send(new PutItemCommand({
    TableName: name, Item: { PK: { S: "a" }, SK: { S: "b" } },
  })), "ResourceNotFoundException", ResourceNotFoundException);
  await expectError(ddb2.send(new DeleteTableCommand({ TableName: name })),
    "ResourceNotFoundException", ResourceNotFoundException);
  // ...and tenant 1's table survived that.
  await waitActive(ddb, name);
});

test("table names are per tenant: the same name in two tenants is two tables", async () => {
  const t1 = await makeTable("shared-name");
  const t2 = await makeTable("shared-name", { client: ddb2 });
  assert.equal(t1, t2);
  await ddb.send(new PutItemCommand({ TableName: t1, Item: { PK: { S: "k" }, SK: { S: "s" }, who: { S: "one" } } }));
  await ddb2.send(new PutItemCommand({ TableName: t2, Item: { PK: { S: "k" }, SK: { S: "s" }, who: { S: "two" } } }));
  const a = await ddb.send(new GetItemCommand({ TableName: t1, Key: { PK: { S: "k" }, SK: { S: "s" } }, ConsistentRead: true }));
  const b = await ddb2.send(new GetItemCommand({ TableName: t2, Key: { PK: { S: "k" }, SK: { S: "s" } }, ConsistentRead: true }));
  assert.equal(a.Item?.who?.S, "one");
  assert.equal(b.Item?.who?.S, "two");
});

test("UpdateTable adds a GSI (backfilled) and removes it", async () => {
  const table = await makeTable("updtable");
  await ddb.send(new PutItemCommand({ TableName: table, Item: {
    PK: { S: "u1" }, SK: { S: "a" }, GSI1PK: { S: "g" }, GSI1SK: { S: "1" } } }));
  await ddb.send(new PutItemCommand({ TableName: table, Item: { PK: { S: "u2" }, SK: { S: "a" } } }));
  const out = await ddb.send(new UpdateTableCommand({
    TableName: table,
    AttributeDefinitions: [
      { AttributeName: "GSI1PK", AttributeType: "S" },
      { AttributeName: "GSI1SK", AttributeType: "S" },
    ],
    GlobalSecondaryIndexUpdates: [{ Create: GSI1 }],
  }));
  assert.equal(out.TableDescription.TableName, table);
  const t = await waitActive(ddb, table);
  assert.deepEqual(t.GlobalSecondaryIndexes?.map((g) => g.IndexName), ["GSI1"]);
  const q = await ddb.send(new QueryCommand({
    TableName: table, IndexName: "GSI1",
    KeyConditionExpression: "GSI1PK = :g", ExpressionAttributeValues: { ":g": { S: "g" } },
  }));
  assert.deepEqual(q.Items.map((i) => i.PK.S), ["u1"]);

  await ddb.send(new UpdateTableCommand({
    TableName: table, GlobalSecondaryIndexUpdates: [{ Delete: { IndexName: "GSI1" } }],
  }));
  const deadline = Date.now() + 15000;
  for (;;) {
    const { Table } = await ddb.send(new DescribeTableCommand({ TableName: table }));
    if (!Table.GlobalSecondaryIndexes?.length) break;
    assert.ok(Date.now() < deadline, `GSI still there: ${JSON.stringify(Table.GlobalSecondaryIndexes)}`);
    await sleep(100);
  }
  await expectError(ddb.send(new QueryCommand({
    TableName: table, IndexName: "GSI1",
    KeyConditionExpression: "GSI1PK = :g", ExpressionAttributeValues: { ":g": { S: "g" } },
  })), "ValidationException");
});

// ---------------------------------------------------------------------------
// Items

test("every AttributeValue type round-trips through PutItem/GetItem", async () => {
  const table = await makeTable("types");
  const item = {
    PK: { S: "types" }, SK: { S: "one" },
    s: { S: "héllo ✓ \"quoted\" \\ \n" },
    n: { N: "-12.5e3" }, big: { N: "12345678901234567890123456789012345678" }, small: { N: "0.000000000000000000000000000000000001" },
    b: { B: new Uint8Array([0, 1, 2, 253, 254, 255]) },
    ss: { SS: ["a", "b", "c"] }, ns: { NS: ["1", "2.5", "-3"] },
    bs: { BS: [new Uint8Array([1]), new Uint8Array([2, 3])] },
    m: { M: { sub: { S: "x" }, deep: { M: { l: { L: [{ N: "1" }, { NULL: true }] } } } } },
    l: { L: [{ S: "a" }, { N: "2" }, { BOOL: false }, { M: {} }, { L: [] }] },
    nul: { NULL: true }, t: { BOOL: true }, f: { BOOL: false },
    empty: { S: "" },
  };
  await ddb.send(new PutItemCommand({ TableName: table, Item: item }));
  const { Item } = await ddb.send(new GetItemCommand({
    TableName: table, Key: { PK: item.PK, SK: item.SK }, ConsistentRead: true,
  }));
  assert.ok(Item, "item not found");
  assert.equal(Item.s.S, item.s.S);
  assert.equal(Number(Item.n.N), -12500);
  assert.equal(Item.big.N, "12345678901234567890123456789012345678");
  assert.equal(Number(Item.small.N), 1e-36);
  assert.deepEqual(Buffer.from(Item.b.B), Buffer.from(item.b.B));
  assert.deepEqual([...Item.ss.SS].sort(), ["a", "b", "c"]);
  assert.deepEqual([...Item.ns.NS].map(Number).sort((x, y) => x - y), [-3, 1, 2.5]);
  assert.deepEqual(Item.bs.BS.map((x) => Buffer.from(x).toString("hex")).sort(), ["01", "0203"]);
  assert.deepEqual(Item.m, item.m);
  assert.deepEqual(Item.l, item.l);
  assert.deepEqual(Item.nul, { NULL: true });
  assert.deepEqual(Item.t, { BOOL: true });
  assert.deepEqual(Item.f, { BOOL: false });
  assert.deepEqual(Item.empty, { S: "" });

  // ProjectionExpression with a nested path and a list element.
  const p = await ddb.send(new GetItemCommand({
    TableName: table, Key: { PK: item.PK, SK: item.SK }, ConsistentRead: true,
    ProjectionExpression: "m.#k, l[1], #t", ExpressionAttributeNames: { "#t": "t", "#k": "sub" },
  }));
  assert.deepEqual(p.Item, { m: { M: { sub: { S: "x" } } }, l: { L: [{ N: "2" }] }, t: { BOOL: true } });
});

test("PutItem with attribute_not_exists(PK): first succeeds, second is ConditionalCheckFailedException (with Item when asked)", async () => {
  const table = await makeTable("condput");
  const first = { PK: { S: "idem#1" }, SK: { S: "rec" }, status: { S: "INPROGRESS" }, n: { N: "1" } };
  const put = (Item, extra = {}) => ddb.send(new PutItemCommand({
    TableName: table, Item, ConditionExpression: "attribute_not_exists(PK)", ...extra,
  }));
  const ok = await put(first, { ReturnConsumedCapacity: "TOTAL" });
  assert.equal(ok.$metadata.httpStatusCode, 200);
  assert.equal(ok.Attributes, undefined);
  assert.equal(ok.ConsumedCapacity?.TableName, table);
  assert.equal(typeof ok.ConsumedCapacity?.CapacityUnits, "number");

  const second = { ...first, status: { S: "COMPLETED" }, n: { N: "2" } };
  const e1 = await expectError(put(second), "ConditionalCheckFailedException", ConditionalCheckFailedException);
  assert.equal(e1.$metadata.httpStatusCode, 400);
  assert.equal(e1.Item, undefined, "Item returned although not asked for");
  assert.match(e1.message, /conditional request failed/i);

  const e2 = await expectError(put(second, { ReturnValuesOnConditionCheckFailure: "ALL_OLD" }),
    "ConditionalCheckFailedException", ConditionalCheckFailedException);
  assert.deepEqual(e2.Item, first);

  assert.deepEqual(await getRaw(table, "idem#1", "rec"), first);

  // Unconditional overwrite with ReturnValues ALL_OLD returns the old item.
  const ow = await ddb.send(new PutItemCommand({ TableName: table, Item: second, ReturnValues: "ALL_OLD" }));
  assert.deepEqual(ow.Attributes, first);
  assert.deepEqual(await getRaw(table, "idem#1", "rec"), second);
});

test("guarded debit SET balance = balance - :amt IF balance >= :amt (DocumentClient) until it refuses", async () => {
  const table = await makeTable("debit");
  const Key = { PK: "acct#1", SK: "balance" };
  await doc.send(new PutCommand({ TableName: table, Item: { ...Key, balance: 100, currency: "EUR" } }));
  const debit = (amt, extra = {}) => doc.send(new UpdateCommand({
    TableName: table, Key,
    UpdateExpression: "SET balance = balance - :amt",
    ConditionExpression: "balance >= :amt",
    ExpressionAttributeValues: { ":amt": amt },
    ReturnValues: "UPDATED_NEW",
    ...extra,
  }));
  for (const expected of [70, 40, 10]) {
    const out = await debit(30);
    assert.deepEqual(out.Attributes, { balance: expected });
  }
  const err = await expectError(debit(30, { ReturnValuesOnConditionCheckFailure: "ALL_OLD" }),
    "ConditionalCheckFailedException", ConditionalCheckFailedException);
  // lib-dynamodb does not unmarshall errors: Item is in AttributeValue form.
  assert.deepEqual(err.Item?.balance, { N: "10" });
  assert.equal(await balanceOf(table, "acct#1"), 10);

  // Exactly the remaining balance still goes through; then nothing more.
  assert.deepEqual((await debit(10)).Attributes, { balance: 0 });
  await expectError(debit(1), "ConditionalCheckFailedException", ConditionalCheckFailedException);
  assert.equal(await balanceOf(table, "acct#1"), 0);

  // On a missing account the condition fails (balance does not exist).
  await expectError(doc.send(new UpdateCommand({
    TableName: table, Key: { PK: "acct#missing", SK: "balance" },
    UpdateExpression: "SET balance = balance - :amt", ConditionExpression: "balance >= :amt",
    ExpressionAttributeValues: { ":amt": 1 },
  })), "ConditionalCheckFailedException", ConditionalCheckFailedException);
  assert.equal(await balanceOf(table, "acct#missing"), undefined);

  // UPDATED_OLD / ALL_NEW on a credit with if_not_exists and ADD.
  const credit = await doc.send(new UpdateCommand({
    TableName: table, Key,
    UpdateExpression: "SET balance = if_not_exists(balance, :zero) + :amt ADD credits :one",
    ExpressionAttributeValues: { ":amt": 5, ":zero": 0, ":one": 1 },
    ReturnValues: "ALL_NEW",
  }));
  assert.deepEqual(credit.Attributes, { ...Key, balance: 5, currency: "EUR", credits: 1 });
});

// ---------------------------------------------------------------------------
// Transactions

test("TransactWriteItems settles an order with a ClientRequestToken; replay, mismatch, cancellation", async () => {
  const table = await makeTable("settle");
  await doc.send(new PutCommand({ TableName: table, Item: { PK: "cust#c1", SK: "balance", balance: 100 } }));
  await doc.send(new PutCommand({ TableName: table, Item: { PK: "merch#m1", SK: "balance", balance: 0 } }));

  const settle = (orderId, amount, token, extra = {}) => ddb.send(new TransactWriteItemsCommand({
    ClientRequestToken: token,
    TransactItems: [
      { Put: {
        TableName: table,
        Item: { PK: { S: `order#${orderId}` }, SK: { S: "order" }, amount: { N: String(amount) }, status: { S: "SETTLED" } },
        ConditionExpression: "attribute_not_exists(PK)",
      } },
      { Update: {
        TableName: table,
        Key: { PK: { S: "cust#c1" }, SK: { S: "balance" } },
        UpdateExpression: "SET balance = balance - :amt",
        ConditionExpression: "balance >= :amt",
        ExpressionAttributeValues: { ":amt": { N: String(amount) } },
        ...extra,
      } },
      { Update: {
        TableName: table,
        Key: { PK: { S: "merch#m1" }, SK: { S: "balance" } },
        UpdateExpression: "SET balance = balance + :amt",
        ExpressionAttributeValues: { ":amt": { N: String(amount) } },
      } },
    ],
  }));

  const token = randomUUID();
  const ok = await settle("o1", 25, token);
  assert.equal(ok.$metadata.httpStatusCode, 200);
  assert.equal(await balanceOf(table, "cust#c1"), 75);
  assert.equal(await balanceOf(table, "merch#m1"), 25);
  const order = await getRaw(table, "order#o1", "order");
  assert.equal(order?.status?.S, "SETTLED");

  // Replay: same token, same items -> success, applied once.
  const replay = await settle("o1", 25, token);
  assert.equal(replay.$metadata.httpStatusCode, 200);
  assert.equal(await balanceOf(table, "cust#c1"), 75);
  assert.equal(await balanceOf(table, "merch#m1"), 25);

  // Same token, different request -> IdempotentParameterMismatchException.
  await expectError(settle("o1", 30, token), "IdempotentParameterMismatchException",
    IdempotentParameterMismatchException);
  await expectError(settle("o9", 25, token), "IdempotentParameterMismatchException",
    IdempotentParameterMismatchException);
  assert.equal(await balanceOf(table, "cust#c1"), 75);
  assert.equal(await balanceOf(table, "merch#m1"), 25);
  assert.equal(await getRaw(table, "order#o9", "order"), undefined);

  // A second order with a fresh token commits.
  await settle("o2", 50, randomUUID());
  assert.equal(await balanceOf(table, "cust#c1"), 25);
  assert.equal(await balanceOf(table, "merch#m1"), 75);

  // Insufficient funds: the whole transaction is cancelled, nothing written.
  const err = await expectError(settle("o3", 1000, randomUUID(), { ReturnValuesOnConditionCheckFailure: "ALL_OLD" }),
    "TransactionCanceledException", TransactionCanceledException);
  assert.deepEqual(err.CancellationReasons?.map((r) => r.Code), ["None", "ConditionalCheckFailed", "None"]);
  assert.deepEqual(err.CancellationReasons[1].Item?.balance, { N: "25" });
  assert.match(err.message, /\[None, ConditionalCheckFailed, None\]/);
  assert.equal(await getRaw(table, "order#o3", "order"), undefined);
  assert.equal(await balanceOf(table, "cust#c1"), 25);
  assert.equal(await balanceOf(table, "merch#m1"), 75);

  // Re-settling an existing order: the Put's condition fails (first reason).
  const dup = await expectError(settle("o1", 1, randomUUID()), "TransactionCanceledException",
    TransactionCanceledException);
  assert.deepEqual(dup.CancellationReasons?.map((r) => r.Code), ["ConditionalCheckFailed", "None", "None"]);
  assert.equal(await balanceOf(table, "cust#c1"), 25);
});

test("TransactWriteItems: ConditionCheck and Delete; two actions on one item are refused", async () => {
  const table = await makeTable("txmisc");
  await doc.send(new PutCommand({ TableName: table, Item: { PK: "a", SK: "1", v: 1 } }));
  await doc.send(new PutCommand({ TableName: table, Item: { PK: "b", SK: "1", v: 2 } }));
  await ddb.send(new TransactWriteItemsCommand({ TransactItems: [
    { ConditionCheck: { TableName: table, Key: { PK: { S: "a" }, SK: { S: "1" } },
      ConditionExpression: "v = :one", ExpressionAttributeValues: { ":one": { N: "1" } } } },
    { Delete: { TableName: table, Key: { PK: { S: "b" }, SK: { S: "1" } } } },
  ] }));
  assert.equal(await getRaw(table, "b", "1"), undefined);
  await expectError(ddb.send(new TransactWriteItemsCommand({ TransactItems: [
    { Put: { TableName: table, Item: { PK: { S: "a" }, SK: { S: "1" } } } },
    { Delete: { TableName: table, Key: { PK: { S: "a" }, SK: { S: "1" } } } },
  ] })), "ValidationException");
  assert.ok(await getRaw(table, "a", "1"), "item a was touched by a refused transaction");
});

// ---------------------------------------------------------------------------
// Query

test("Query PK = :pk AND SK BETWEEN :a AND :b with pagination in both orders; begins_with; sparse GSI", async () => {
  const table = await makeTable("query", { gsi: true });
  const put = [];
  for (let i = 1; i <= 12; i++) {
    const sk = `order#${String(i).padStart(3, "0")}`;
    const item = { PK: { S: "cust#q" }, SK: { S: sk }, amount: { N: String(i * 10) } };
    if (i % 2 === 1) { // only odd orders are "open": sparse GSI
      item.GSI1PK = { S: "status#OPEN" };
      item.GSI1SK = { S: sk };
    }
    put.push(item);
  }
  put.push({ PK: { S: "cust#q" }, SK: { S: "profile" }, name: { S: "Q" } });
  put.push({ PK: { S: "cust#r" }, SK: { S: "order#005" }, amount: { N: "1" },
    GSI1PK: { S: "status#CLOSED" }, GSI1SK: { S: "order#005" } });
  for (const Item of put) await ddb.send(new PutItemCommand({ TableName: table, Item }));

  const between = {
    TableName: table,
    KeyConditionExpression: "PK = :pk AND SK BETWEEN :a AND :b",
    ExpressionAttributeValues: { ":pk": { S: "cust#q" }, ":a": { S: "order#003" }, ":b": { S: "order#010" } },
  };
  const want = [3, 4, 5, 6, 7, 8, 9, 10].map((i) => `order#${String(i).padStart(3, "0")}`);

  const all = await ddb.send(new QueryCommand({ ...between, ConsistentRead: true }));
  assert.deepEqual(all.Items.map((i) => i.SK.S), want);
  assert.equal(all.Count, 8);
  assert.equal(all.ScannedCount, 8);
  assert.equal(all.LastEvaluatedKey, undefined);

  for (const forward of [true, false]) {
    const seen = [];
    const pages = [];
    let start;
    for (let n = 0; n < 10; n++) {
      const out = await ddb.send(new QueryCommand({
        ...between, Limit: 3, ExclusiveStartKey: start, ScanIndexForward: forward,
      }));
      pages.push(out.Items.length);
      assert.equal(out.Count, out.Items.length);
      seen.push(...out.Items.map((i) => i.SK.S));
      start = out.LastEvaluatedKey;
      if (start) {
        const lastSk = out.Items[out.Items.length - 1].SK.S;
        assert.deepEqual(start, { PK: { S: "cust#q" }, SK: { S: lastSk } });
      } else {
        break;
      }
    }
    assert.deepEqual(seen, forward ? want : [...want].reverse(), `ScanIndexForward=${forward}`);
    assert.deepEqual(pages, [3, 3, 2], `page sizes, ScanIndexForward=${forward}`);
  }

  // A Limit that ends exactly on the last item: DynamoDB may or may not
  // return a LastEvaluatedKey; if it does, the next page is empty and final.
  const p1 = await ddb.send(new QueryCommand({ ...between, Limit: 8 }));
  assert.equal(p1.Items.length, 8);
  if (p1.LastEvaluatedKey) {
    assert.deepEqual(p1.LastEvaluatedKey, { PK: { S: "cust#q" }, SK: { S: "order#010" } });
    const p2 = await ddb.send(new QueryCommand({ ...between, Limit: 8, ExclusiveStartKey: p1.LastEvaluatedKey }));
    assert.equal(p2.Items.length, 0);
    assert.equal(p2.LastEvaluatedKey, undefined);
  }

  // begins_with on the sort key.
  const bw = await ddb.send(new QueryCommand({
    TableName: table,
    KeyConditionExpression: "#pk = :pk AND begins_with(#sk, :p)",
    ExpressionAttributeNames: { "#pk": "PK", "#sk": "SK" },
    ExpressionAttributeValues: { ":pk": { S: "cust#q" }, ":p": { S: "order#00" } },
  }));
  assert.deepEqual(bw.Items.map((i) => i.SK.S), [1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => `order#00${i}`));

  // FilterExpression applies after the key condition: Count < ScannedCount.
  const f = await ddb.send(new QueryCommand({
    ...between, FilterExpression: "amount > :min",
    ExpressionAttributeValues: { ...between.ExpressionAttributeValues, ":min": { N: "75" } },
  }));
  assert.deepEqual(f.Items.map((i) => i.SK.S), ["order#008", "order#009", "order#010"]);
  assert.equal(f.Count, 3);
  assert.equal(f.ScannedCount, 8);

  // Select COUNT.
  const c = await ddb.send(new QueryCommand({ ...between, Select: "COUNT" }));
  assert.equal(c.Count, 8);
  assert.equal(c.Items, undefined);

  // The DocumentClient's Query unmarshalls.
  const dq = await doc.send(new DocQueryCommand({
    TableName: table, KeyConditionExpression: "PK = :pk AND SK = :sk",
    ExpressionAttributeValues: { ":pk": "cust#q", ":sk": "order#012" },
  }));
  assert.deepEqual(dq.Items, [{ PK: "cust#q", SK: "order#012", amount: 120 }]);

  // The GSI is sparse: only items with GSI1PK/GSI1SK are in it.
  const gq = await ddb.send(new QueryCommand({
    TableName: table, IndexName: "GSI1",
    KeyConditionExpression: "GSI1PK = :s",
    ExpressionAttributeValues: { ":s": { S: "status#OPEN" } },
  }));
  assert.deepEqual(gq.Items.map((i) => i.SK.S), [1, 3, 5, 7, 9, 11].map((i) => `order#${String(i).padStart(3, "0")}`));
  assert.ok(gq.Items.every((i) => i.PK.S === "cust#q" && i.amount && i.GSI1PK.S === "status#OPEN"));
  // GSI pagination: LastEvaluatedKey holds the index key and the table key.
  const g1 = await ddb.send(new QueryCommand({
    TableName: table, IndexName: "GSI1", Limit: 4, ScanIndexForward: false,
    KeyConditionExpression: "GSI1PK = :s", ExpressionAttributeValues: { ":s": { S: "status#OPEN" } },
  }));
  assert.deepEqual(g1.Items.map((i) => i.SK.S), ["order#011", "order#009", "order#007", "order#005"]);
  assert.deepEqual(g1.LastEvaluatedKey, {
    PK: { S: "cust#q" }, SK: { S: "order#005" }, GSI1PK: { S: "status#OPEN" }, GSI1SK: { S: "order#005" },
  });
  const g2 = await ddb.send(new QueryCommand({
    TableName: table, IndexName: "GSI1", Limit: 4, ScanIndexForward: false, ExclusiveStartKey: g1.LastEvaluatedKey,
    KeyConditionExpression: "GSI1PK = :s", ExpressionAttributeValues: { ":s": { S: "status#OPEN" } },
  }));
  assert.deepEqual(g2.Items.map((i) => i.SK.S), ["order#003", "order#001"]);

  // A Scan of the index sees only the 7 items that have the GSI keys.
  const gs = await ddb.send(new ScanCommand({ TableName: table, IndexName: "GSI1" }));
  assert.equal(gs.Count, 7);

  // Removing the GSI key attribute takes the item out of the index.
  await ddb.send(new UpdateItemCommand({
    TableName: table, Key: { PK: { S: "cust#q" }, SK: { S: "order#001" } }, UpdateExpression: "REMOVE GSI1PK",
  }));
  const gq2 = await ddb.send(new QueryCommand({
    TableName: table, IndexName: "GSI1",
    KeyConditionExpression: "GSI1PK = :s", ExpressionAttributeValues: { ":s": { S: "status#OPEN" } },
  }));
  assert.equal(gq2.Count, 5);

  // Strongly consistent reads are not supported on a GSI.
  await expectError(ddb.send(new QueryCommand({
    TableName: table, IndexName: "GSI1", ConsistentRead: true,
    KeyConditionExpression: "GSI1PK = :s", ExpressionAttributeValues: { ":s": { S: "status#OPEN" } },
  })), "ValidationException");
});

// ---------------------------------------------------------------------------
// TTL

test("TTL: UpdateTimeToLive / DescribeTimeToLive; an expired item is not returned", async () => {
  const table = await makeTable("ttl");
  const before = await ddb.send(new DescribeTimeToLiveCommand({ TableName: table }));
  assert.equal(before.TimeToLiveDescription?.TimeToLiveStatus, "DISABLED");

  const up = await ddb.send(new UpdateTimeToLiveCommand({
    TableName: table, TimeToLiveSpecification: { Enabled: true, AttributeName: "expires_at" },
  }));
  assert.deepEqual(up.TimeToLiveSpecification, { Enabled: true, AttributeName: "expires_at" });
  const d = await ddb.send(new DescribeTimeToLiveCommand({ TableName: table }));
  assert.ok(["ENABLED", "ENABLING"].includes(d.TimeToLiveDescription?.TimeToLiveStatus),
    `TimeToLiveStatus ${d.TimeToLiveDescription?.TimeToLiveStatus}`);
  assert.equal(d.TimeToLiveDescription.AttributeName, "expires_at");

  const now = Math.floor(Date.now() / 1000);
  const items = {
    expired: { N: String(now - 3600) },
    live: { N: String(now + 3600) },
    notanumber: { S: String(now - 3600) }, // TTL attribute of the wrong type is ignored
  };
  for (const [sk, exp] of Object.entries(items)) {
    await ddb.send(new PutItemCommand({ TableName: table, Item: { PK: { S: "ttl" }, SK: { S: sk }, expires_at: exp } }));
  }
  await ddb.send(new PutItemCommand({ TableName: table, Item: { PK: { S: "ttl" }, SK: { S: "noattr" } } }));

  assert.equal(await getRaw(table, "ttl", "expired"), undefined, "expired item returned by GetItem");
  assert.ok(await getRaw(table, "ttl", "live"), "live item not returned");
  assert.ok(await getRaw(table, "ttl", "notanumber"), "item with a string TTL attribute not returned");
  assert.ok(await getRaw(table, "ttl", "noattr"), "item without the TTL attribute not returned");

  const q = await ddb.send(new QueryCommand({
    TableName: table, KeyConditionExpression: "PK = :p", ExpressionAttributeValues: { ":p": { S: "ttl" } },
  }));
  assert.deepEqual(q.Items.map((i) => i.SK.S).sort(), ["live", "noattr", "notanumber"]);

  // attribute_not_exists on an expired item: it is gone, so a fresh put succeeds.
  await ddb.send(new PutItemCommand({
    TableName: table, Item: { PK: { S: "ttl" }, SK: { S: "expired" }, expires_at: { N: String(now + 3600) } },
    ConditionExpression: "attribute_not_exists(PK)",
  }));
  assert.ok(await getRaw(table, "ttl", "expired"));

  // Enabling again while enabled is refused.
  await expectError(ddb.send(new UpdateTimeToLiveCommand({
    TableName: table, TimeToLiveSpecification: { Enabled: true, AttributeName: "expires_at" },
  })), "ValidationException");
  // Disabling.
  const off = await ddb.send(new UpdateTimeToLiveCommand({
    TableName: table, TimeToLiveSpecification: { Enabled: false, AttributeName: "expires_at" },
  }));
  assert.equal(off.TimeToLiveSpecification?.Enabled, false);
  const d2 = await ddb.send(new DescribeTimeToLiveCommand({ TableName: table }));
  assert.ok(["DISABLED", "DISABLING"].includes(d2.TimeToLiveDescription?.TimeToLiveStatus));
});

// ---------------------------------------------------------------------------
// Batches, TransactGetItems, Scan, DeleteItem, DeleteTable

test("BatchWriteItem / BatchGetItem", async () => {
  const table = await makeTable("batch");
  const mk = (i) => ({ PK: { S: `b#${String(i).padStart(2, "0")}` }, SK: { S: "x" }, i: { N: String(i) }, pad: { S: "p".repeat(100) } });
  let requests = { [table]: Array.from({ length: 25 }, (_, i) => ({ PutRequest: { Item: mk(i) } })) };
  for (let n = 0; n < 10 && Object.keys(requests).length; n++) {
    const out = await ddb.send(new BatchWriteItemCommand({ RequestItems: requests }));
    requests = out.UnprocessedItems ?? {};
  }
  assert.deepEqual(requests, {}, "unprocessed items remained after retries");

  // 26 requests is over the limit.
  await expectError(ddb.send(new BatchWriteItemCommand({ RequestItems: {
    [table]: Array.from({ length: 26 }, (_, i) => ({ PutRequest: { Item: mk(100 + i) } })),
  } })), "ValidationException");

  // Deletes and puts mixed.
  await ddb.send(new BatchWriteItemCommand({ RequestItems: { [table]: [
    { DeleteRequest: { Key: { PK: { S: "b#00" }, SK: { S: "x" } } } },
    { DeleteRequest: { Key: { PK: { S: "b#01" }, SK: { S: "x" } } } },
    { PutRequest: { Item: { ...mk(2), extra: { BOOL: true } } } },
  ] } }));

  let keys = { [table]: {
    Keys: [0, 1, 2, 3, 24, 99].map((i) => ({ PK: { S: `b#${String(i).padStart(2, "0")}` }, SK: { S: "x" } })),
    ProjectionExpression: "PK, i, extra",
    ConsistentRead: true,
  } };
  const got = [];
  for (let n = 0; n < 10 && Object.keys(keys).length; n++) {
    const out = await ddb.send(new BatchGetItemCommand({ RequestItems: keys }));
    got.push(...(out.Responses?.[table] ?? []));
    keys = out.UnprocessedKeys ?? {};
  }
  got.sort((a, b) => Number(a.i.N) - Number(b.i.N));
  assert.deepEqual(got, [
    { PK: { S: "b#02" }, i: { N: "2" }, extra: { BOOL: true } },
    { PK: { S: "b#03" }, i: { N: "3" } },
    { PK: { S: "b#24" }, i: { N: "24" } },
  ]);

  // A BatchGetItem on an unknown table.
  await expectError(ddb.send(new BatchGetItemCommand({ RequestItems: {
    [`${PREFIX}-nosuchtable`]: { Keys: [{ PK: { S: "a" }, SK: { S: "b" } }] },
  } })), "ResourceNotFoundException", ResourceNotFoundException);
  // Duplicate keys in one BatchGetItem are refused.
  await expectError(ddb.send(new BatchGetItemCommand({ RequestItems: {
    [table]: { Keys: [{ PK: { S: "b#03" }, SK: { S: "x" } }, { PK: { S: "b#03" }, SK: { S: "x" } }] },
  } })), "ValidationException");
});

test("TransactGetItems returns items in request order, {} for missing ones", async () => {
  const table = await makeTable("txget");
  await doc.send(new PutCommand({ TableName: table, Item: { PK: "g", SK: "1", v: 1 } }));
  await doc.send(new PutCommand({ TableName: table, Item: { PK: "g", SK: "2", v: 2, w: "x" } }));
  const out = await ddb.send(new TransactGetItemsCommand({ TransactItems: [
    { Get: { TableName: table, Key: { PK: { S: "g" }, SK: { S: "2" } } } },
    { Get: { TableName: table, Key: { PK: { S: "g" }, SK: { S: "missing" } } } },
    { Get: { TableName: table, Key: { PK: { S: "g" }, SK: { S: "1" } }, ProjectionExpression: "v" } },
  ] }));
  assert.equal(out.Responses.length, 3);
  assert.deepEqual(out.Responses[0].Item, { PK: { S: "g" }, SK: { S: "2" }, v: { N: "2" }, w: { S: "x" } });
  assert.equal(out.Responses[1].Item, undefined);
  assert.deepEqual(out.Responses[2].Item, { v: { N: "1" } });
});

test("Scan with Segment/TotalSegments covers every item exactly once", async () => {
  const table = await makeTable("scan");
  const N = 40;
  for (let start = 0; start < N; start += 20) {
    await ddb.send(new BatchWriteItemCommand({ RequestItems: { [table]: Array.from({ length: 20 }, (_, k) => ({
      PutRequest: { Item: { PK: { S: `s#${start + k}` }, SK: { S: String((start + k) % 3) }, n: { N: String(start + k) } } },
    })) } }));
  }
  const total = 3;
  const bySegment = [];
  for (let seg = 0; seg < total; seg++) {
    const mine = [];
    let start;
    for (let n = 0; n < 100; n++) {
      const out = await ddb.send(new ScanCommand({
        TableName: table, Segment: seg, TotalSegments: total, Limit: 7, ExclusiveStartKey: start,
      }));
      mine.push(...out.Items.map((i) => Number(i.n.N)));
      start = out.LastEvaluatedKey;
      if (!start) break;
    }
    bySegment.push(mine);
  }
  const all = bySegment.flat().sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: N }, (_, i) => i), "segments overlap or miss items");
  assert.ok(bySegment.filter((s) => s.length > 0).length >= 2,
    `segments are not split at all: ${bySegment.map((s) => s.length)}`);

  // A plain Scan with a filter.
  const f = await ddb.send(new ScanCommand({
    TableName: table, FilterExpression: "n < :k", ExpressionAttributeValues: { ":k": { N: "5" } },
  }));
  assert.equal(f.Count, 5);
  assert.equal(f.ScannedCount, N);

  // Segment without TotalSegments, or out of range: ValidationException.
  await expectError(ddb.send(new ScanCommand({ TableName: table, Segment: 0 })), "ValidationException");
  await expectError(ddb.send(new ScanCommand({ TableName: table, Segment: 3, TotalSegments: 3 })), "ValidationException");
});

test("DeleteItem with ReturnValues ALL_OLD; DeleteTable", async () => {
  const name = `${PREFIX}-delete`;
  await ddb.send(new CreateTableCommand(tableParams(name)));
  created.push([ddb, name]);
  await waitActive(ddb, name);
  const item = { PK: { S: "d" }, SK: { S: "1" }, v: { S: "bye" } };
  await ddb.send(new PutItemCommand({ TableName: name, Item: item }));
  const del = await ddb.send(new DeleteItemCommand({
    TableName: name, Key: { PK: item.PK, SK: item.SK }, ReturnValues: "ALL_OLD",
  }));
  assert.deepEqual(del.Attributes, item);
  assert.equal(await getRaw(name, "d", "1"), undefined);
  const again = await ddb.send(new DeleteItemCommand({
    TableName: name, Key: { PK: item.PK, SK: item.SK }, ReturnValues: "ALL_OLD",
  }));
  assert.equal(again.Attributes, undefined);
  // Conditional delete of a missing item fails.
  await expectError(ddb.send(new DeleteItemCommand({
    TableName: name, Key: { PK: item.PK, SK: item.SK }, ConditionExpression: "attribute_exists(PK)",
  })), "ConditionalCheckFailedException", ConditionalCheckFailedException);

  const dt = await ddb.send(new DeleteTableCommand({ TableName: name }));
  assert.equal(dt.TableDescription?.TableName, name);
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      const { Table } = await ddb.send(new DescribeTableCommand({ TableName: name }));
      assert.equal(Table.TableStatus, "DELETING", "DescribeTable after DeleteTable");
    } catch (e) {
      assert.equal(e.name, "ResourceNotFoundException", `${e.name}: ${e.message}`);
      break;
    }
    assert.ok(Date.now() < deadline, "table still exists 15 s after DeleteTable");
    await sleep(100);
  }
  assert.ok(!(await listAllTables(ddb)).includes(name), "deleted table still listed");
  await expectError(ddb.send(new GetItemCommand({ TableName: name, Key: { PK: item.PK, SK: item.SK } })),
    "ResourceNotFoundException", ResourceNotFoundException);
  await expectError(ddb.send(new DeleteTableCommand({ TableName: name })),
    "ResourceNotFoundException", ResourceNotFoundException);
  // The name can be reused, and the new table is empty.
  await ddb.send(new CreateTableCommand(tableParams(name)));
  await waitActive(ddb, name);
  assert.equal(await getRaw(name, "d", "1"), undefined);
});

// ---------------------------------------------------------------------------
// Errors as the SDK surfaces them

test("ValidationException: reserved word used bare, bad key, unused values", async () => {
  const table = await makeTable("errors");
  const Key = { PK: { S: "e" }, SK: { S: "1" } };
  await ddb.send(new PutItemCommand({ TableName: table, Item: { ...Key, status: { S: "NEW" } } }));

  const e = await expectError(ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET status = :s",
    ExpressionAttributeValues: { ":s": { S: "DONE" } },
  })), "ValidationException");
  assert.equal(e.$metadata.httpStatusCode, 400);
  assert.match(e.message, /reserved keyword/i);
  assert.match(e.message, /status/);
  assert.equal((await getRaw(table, "e", "1")).status.S, "NEW");

  // The same update with a name placeholder works.
  const ok = await ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET #s = :s",
    ExpressionAttributeNames: { "#s": "status" }, ExpressionAttributeValues: { ":s": { S: "DONE" } },
    ReturnValues: "UPDATED_OLD",
  }));
  assert.deepEqual(ok.Attributes, { status: { S: "NEW" } });

  // Key that does not match the schema.
  await expectError(ddb.send(new GetItemCommand({ TableName: table, Key: { PK: { S: "e" } } })), "ValidationException");
  await expectError(ddb.send(new GetItemCommand({ TableName: table, Key: { PK: { S: "e" }, SK: { N: "1" } } })), "ValidationException");
  // An unused expression attribute value.
  const u = await expectError(ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET a = :a",
    ExpressionAttributeValues: { ":a": { S: "x" }, ":unused": { S: "y" } },
  })), "ValidationException");
  assert.match(u.message, /unused/i);
  // A syntax error in an expression.
  await expectError(ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET = :a", ExpressionAttributeValues: { ":a": { S: "x" } },
  })), "ValidationException");
  // Updating a key attribute.
  await expectError(ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET SK = :a", ExpressionAttributeValues: { ":a": { S: "x" } },
  })), "ValidationException");
  // An item over 400 KB.
  await expectError(ddb.send(new PutItemCommand({
    TableName: table, Item: { PK: { S: "big" }, SK: { S: "1" }, blob: { S: "x".repeat(400 * 1024 + 1) } },
  })), "ValidationException");
  // An empty string as a key value.
  await expectError(ddb.send(new PutItemCommand({
    TableName: table, Item: { PK: { S: "" }, SK: { S: "1" } },
  })), "ValidationException");
});

test("ResourceNotFoundException for an unknown table", async () => {
  const name = `${PREFIX}-does-not-exist`;
  for (const cmd of [
    new GetItemCommand({ TableName: name, Key: { PK: { S: "a" }, SK: { S: "b" } } }),
    new PutItemCommand({ TableName: name, Item: { PK: { S: "a" }, SK: { S: "b" } } }),
    new QueryCommand({ TableName: name, KeyConditionExpression: "PK = :p", ExpressionAttributeValues: { ":p": { S: "a" } } }),
    new DescribeTableCommand({ TableName: name }),
    new DescribeTimeToLiveCommand({ TableName: name }),
  ]) {
    const e = await expectError(ddb.send(cmd), "ResourceNotFoundException", ResourceNotFoundException);
    assert.equal(e.$metadata.httpStatusCode, 400);
  }
});

test("a wrong secret is refused (InvalidSignatureException), also with retries", async () => {
  const wrong = SECRET.slice(0, -1) + (SECRET.endsWith("A") ? "B" : "A");
  const bad = makeClient(KEY_ID, wrong);
  const e = await expectError(bad.send(new ListTablesCommand({})),
    ["InvalidSignatureException", "UnrecognizedClientException"]);
  assert.equal(e.$metadata.httpStatusCode, 400);
  assert.equal(e.$metadata.attempts, 1);

  // With the SDK's default retry policy (which retries signature errors as
  // clock skew) it must still fail.
  const retrying = makeClient(KEY_ID, wrong, { maxAttempts: 3 });
  await expectError(retrying.send(new ListTablesCommand({})),
    ["InvalidSignatureException", "UnrecognizedClientException"]);

  // Tenant 2's secret with tenant 1's key id.
  const swapped = makeClient(KEY_ID, SECRET_2);
  await expectError(swapped.send(new ListTablesCommand({})),
    ["InvalidSignatureException", "UnrecognizedClientException"]);
});

test("an unknown access key id is refused (UnrecognizedClientException)", async () => {
  const unknown = makeClient("AKIA" + randomBytes(8).toString("hex").toUpperCase(), SECRET);
  const e = await expectError(unknown.send(new ListTablesCommand({})), "UnrecognizedClientException");
  assert.equal(e.$metadata.httpStatusCode, 400);
  const retrying = makeClient("AKIA" + randomBytes(8).toString("hex").toUpperCase(), SECRET, { maxAttempts: 3 });
  await expectError(retrying.send(new ListTablesCommand({})), "UnrecognizedClientException");
});

test("a tampered body is refused (InvalidSignatureException)", async () => {
  const table = await makeTable("tamper");
  const c = makeClient(KEY_ID, SECRET);
  // Runs after signing (the deserialize step wraps the transport): changes
  // one character of the signed body, keeping its length.
  // The body may be a string or a Uint8Array depending on the SDK version.
  let tampered = false;
  c.middlewareStack.add((next) => async (args) => {
    const body = args.request.body;
    const text = typeof body === "string" ? body : Buffer.from(body).toString("utf8");
    if (args.request.headers.authorization && text.includes('"honest"')) {
      args.request.body = text.replace('"honest"', '"hacked"');
      tampered = true;
    }
    return next(args);
  }, { step: "deserialize", name: "tamperBody", priority: "low" });
  await expectError(c.send(new PutItemCommand({
    TableName: table, Item: { PK: { S: "t" }, SK: { S: "1" }, v: { S: "honest" } },
  })), "InvalidSignatureException");
  assert.ok(tampered, "the test middleware did not see a signed body to tamper with");
  assert.equal(await getRaw(table, "t", "1"), undefined, "tampered request was applied");
});

test("an expired signature date is refused", async () => {
  const c = makeClient(KEY_ID, SECRET, { systemClockOffset: -60 * 60 * 1000 });
  const e = await expectError(c.send(new ListTablesCommand({})),
    ["InvalidSignatureException", "ExpiredTokenException", "RequestExpired"]);
  assert.equal(e.$metadata.httpStatusCode, 400);
});

test("a request without a signature is refused; bad JSON is a SerializationException", async () => {
  const r = await fetch(ENDPOINT + "/", {
    method: "POST",
    headers: { "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.ListTables" },
    body: "{}",
  });
  const body = await r.json();
  assert.equal(r.status, 400, JSON.stringify(body));
  assert.match(body.__type ?? "", /(MissingAuthenticationToken|MissingAuthenticationTokenException|UnrecognizedClientException|InvalidSignatureException)$/,
    JSON.stringify(body));

  const g = await fetch(ENDPOINT + "/");
  assert.equal(g.status, 200, "GET / must answer 200");
  await g.arrayBuffer();

  // A signed request whose body is not JSON: the body is replaced before
  // signing (build step), so the signature is valid.
  const c = makeClient(KEY_ID, SECRET);
  c.middlewareStack.add((next) => async (args) => {
    args.request.body = "{not json";
    args.request.headers["content-length"] = String(Buffer.byteLength(args.request.body));
    return next(args);
  }, { step: "build", name: "badJson", priority: "low" });
  await expectError(c.send(new ListTablesCommand({})), "SerializationException");
});

// ---------------------------------------------------------------------------
// Update expressions, condition functions, concurrency, more validation

test("UpdateItem: nested paths, list_append, sets, REMOVE, ReturnValues variants", async () => {
  const table = await makeTable("updexpr");
  const Key = { PK: { S: "u" }, SK: { S: "1" } };
  await ddb.send(new PutItemCommand({ TableName: table, Item: {
    ...Key, profile: { M: { name: { S: "Ann" }, tags: { SS: ["a", "b"] } } },
    hist: { L: [{ N: "1" }, { N: "2" }, { N: "3" }] }, cnt: { N: "5" }, gone: { S: "x" },
  } }));
  const first = await ddb.send(new UpdateItemCommand({
    TableName: table, Key,
    UpdateExpression: "SET profile.#n = :n, hist = list_append(hist, :more), newattr = :v "
      + "REMOVE gone ADD cnt :two, profile.tags :t",
    ExpressionAttributeNames: { "#n": "name" },
    ExpressionAttributeValues: {
      ":n": { S: "Bea" }, ":more": { L: [{ N: "4" }] }, ":v": { BOOL: true }, ":two": { N: "2" }, ":t": { SS: ["c"] },
    },
    ReturnValues: "UPDATED_NEW",
  }));
  assert.deepEqual(Object.keys(first.Attributes).sort(), ["cnt", "hist", "newattr", "profile"]);
  assert.deepEqual(first.Attributes.hist, { L: [{ N: "1" }, { N: "2" }, { N: "3" }, { N: "4" }] });
  const out = await ddb.send(new UpdateItemCommand({
    TableName: table, Key,
    UpdateExpression: "SET hist[0] = :zero REMOVE hist[1] DELETE profile.tags :d",
    ExpressionAttributeValues: { ":zero": { N: "0" }, ":d": { SS: ["a"] } },
    ReturnValues: "ALL_NEW",
  }));
  const a = out.Attributes;
  assert.equal(a.profile.M.name.S, "Bea");
  assert.deepEqual([...a.profile.M.tags.SS].sort(), ["b", "c"]);
  assert.deepEqual(a.hist, { L: [{ N: "0" }, { N: "3" }, { N: "4" }] });
  assert.equal(a.cnt.N, "7");
  assert.equal(a.gone, undefined);
  assert.deepEqual(a.newattr, { BOOL: true });

  // UPDATED_OLD returns only the updated attributes, before the update.
  const old = await ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET cnt = cnt + :one",
    ExpressionAttributeValues: { ":one": { N: "1" } }, ReturnValues: "UPDATED_OLD",
  }));
  assert.deepEqual(old.Attributes, { cnt: { N: "7" } });
  // ALL_OLD returns the whole item before the update.
  const allOld = await ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET cnt = :c",
    ExpressionAttributeValues: { ":c": { N: "100" } }, ReturnValues: "ALL_OLD",
  }));
  assert.equal(allOld.Attributes.cnt.N, "8");
  assert.equal(allOld.Attributes.profile.M.name.S, "Bea");
  // NONE (default): no Attributes.
  const none = await ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET cnt = :c", ExpressionAttributeValues: { ":c": { N: "1" } },
  }));
  assert.equal(none.Attributes, undefined);
  // UpdateItem on a missing item creates it (upsert).
  await ddb.send(new UpdateItemCommand({
    TableName: table, Key: { PK: { S: "u" }, SK: { S: "new" } }, UpdateExpression: "ADD hits :one",
    ExpressionAttributeValues: { ":one": { N: "1" } },
  }));
  assert.deepEqual(await getRaw(table, "u", "new"), { PK: { S: "u" }, SK: { S: "new" }, hits: { N: "1" } });
  // Arithmetic on a missing attribute is a ValidationException.
  await expectError(ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET nope = nope + :one",
    ExpressionAttributeValues: { ":one": { N: "1" } },
  })), "ValidationException");
  // Two clauses on overlapping paths are a ValidationException.
  await expectError(ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET profile.#n = :n REMOVE profile",
    ExpressionAttributeNames: { "#n": "name" }, ExpressionAttributeValues: { ":n": { S: "x" } },
  })), "ValidationException");
});

test("ConditionExpression functions and operators", async () => {
  const table = await makeTable("condfn");
  const Key = { PK: { S: "c" }, SK: { S: "1" } };
  await ddb.send(new PutItemCommand({ TableName: table, Item: {
    ...Key, s: { S: "hello world" }, n: { N: "42" }, tags: { SS: ["x", "y"] }, l: { L: [{ S: "a" }, { S: "b" }] },
    m: { M: { k: { N: "1" } } },
  } }));
  const check = (expr, values = {}, names = undefined) => ddb.send(new UpdateItemCommand({
    TableName: table, Key, UpdateExpression: "SET touched = :true",
    ConditionExpression: expr, ExpressionAttributeNames: names,
    ExpressionAttributeValues: { ":true": { BOOL: true }, ...values },
  }));
  const passes = [
    ["attribute_exists(s) AND attribute_not_exists(nope)"],
    ["attribute_type(n, :t)", { ":t": { S: "N" } }],
    ["begins_with(s, :p)", { ":p": { S: "hello" } }],
    ["contains(s, :w)", { ":w": { S: "wor" } }],
    ["contains(tags, :x)", { ":x": { S: "x" } }],
    ["contains(l, :b)", { ":b": { S: "b" } }],
    ["size(s) = :eleven", { ":eleven": { N: "11" } }],
    ["size(tags) > :one AND size(l) = :two", { ":one": { N: "1" }, ":two": { N: "2" } }],
    ["n BETWEEN :lo AND :hi", { ":lo": { N: "40" }, ":hi": { N: "42" } }],
    ["n IN (:a, :b, :c)", { ":a": { N: "1" }, ":b": { N: "42" }, ":c": { N: "3" } }],
    ["NOT (n < :z) OR s = :nope", { ":z": { N: "0" }, ":nope": { S: "nope" } }],
    ["m.k = :one", { ":one": { N: "1" } }],
    ["l[1] = :b", { ":b": { S: "b" } }],
    ["n <> :s", { ":s": { S: "42" } }], // different types are never equal
  ];
  for (const [expr, values] of passes) {
    await check(expr, values).catch((e) => assert.fail(`${expr}: ${e.name}: ${e.message}`));
  }
  const fails = [
    ["attribute_not_exists(s)"],
    ["n > :s", { ":s": { S: "1" } }], // comparing N with S is false
    ["begins_with(s, :p)", { ":p": { S: "world" } }],
    ["size(nope) > :z", { ":z": { N: "0" } }],
    ["m.k = :two", { ":two": { N: "2" } }],
  ];
  for (const [expr, values] of fails) {
    const e = await check(expr, values).then(() => null, (err) => err);
    assert.ok(e, `${expr}: the condition passed`);
    assert.equal(e.name, "ConditionalCheckFailedException", `${expr}: ${e.name}: ${e.message}`);
  }
  // Invalid conditions are ValidationExceptions, not failed checks.
  for (const [expr, values] of [
    ["attribute_type(n, :t)", { ":t": { S: "NOPE" } }],
    ["n = :undefined"],
    ["unknown_function(n)"],
    ["n = "],
  ]) {
    const e = await check(expr, values).then(() => null, (err) => err);
    assert.ok(e, `${expr}: accepted`);
    assert.equal(e.name, "ValidationException", `${expr}: ${e.name}: ${e.message}`);
  }
});

test("concurrent guarded debits: exactly balance/amount succeed", async () => {
  const table = await makeTable("race");
  const Key = { PK: "acct#race", SK: "balance" };
  await doc.send(new PutCommand({ TableName: table, Item: { ...Key, balance: 100 } }));
  const results = await Promise.allSettled(Array.from({ length: 25 }, () => doc.send(new UpdateCommand({
    TableName: table, Key,
    UpdateExpression: "SET balance = balance - :amt", ConditionExpression: "balance >= :amt",
    ExpressionAttributeValues: { ":amt": 10 }, ReturnValues: "UPDATED_NEW",
  }))));
  const ok = results.filter((r) => r.status === "fulfilled");
  const refused = results.filter((r) => r.status === "rejected");
  for (const r of refused) {
    assert.equal(r.reason.name, "ConditionalCheckFailedException", `${r.reason.name}: ${r.reason.message}`);
  }
  assert.equal(ok.length, 10);
  assert.deepEqual(ok.map((r) => r.value.Attributes.balance).sort((x, y) => x - y), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
  assert.equal(await balanceOf(table, "acct#race"), 0);
});

test("concurrent replays of one ClientRequestToken apply the transaction once", async () => {
  const table = await makeTable("racetx");
  await doc.send(new PutCommand({ TableName: table, Item: { PK: "acct#a", SK: "balance", balance: 0 } }));
  const token = randomUUID();
  const send = () => ddb.send(new TransactWriteItemsCommand({ ClientRequestToken: token, TransactItems: [
    { Update: { TableName: table, Key: { PK: { S: "acct#a" }, SK: { S: "balance" } },
      UpdateExpression: "SET balance = balance + :one", ExpressionAttributeValues: { ":one": { N: "1" } } } },
  ] }));
  const results = await Promise.allSettled(Array.from({ length: 8 }, send));
  for (const r of results) {
    // A replay racing the first attempt may be told to retry (TransactionInProgressException).
    if (r.status === "rejected") {
      assert.ok(["TransactionInProgressException", "TransactionCanceledException"].includes(r.reason.name),
        `${r.reason.name}: ${r.reason.message}`);
    }
  }
  assert.ok(results.some((r) => r.status === "fulfilled"), "no attempt succeeded");
  assert.equal(await balanceOf(table, "acct#a"), 1);
});

test("more validation: numbers, sets, batch and transaction limits", async () => {
  const table = await makeTable("valid");
  const put = (extra) => ddb.send(new PutItemCommand({ TableName: table, Item: { PK: { S: "v" }, SK: { S: "1" }, ...extra } }));
  await put({ n: { N: "9.9999999999999999999999999999999999999E+125" } });
  for (const [what, extra] of [
    ["39 significant digits", { n: { N: "1234567890123456789012345678901234567891" } }],
    ["number too large", { n: { N: "1E+126" } }],
    ["not a number", { n: { N: "12abc" } }],
    ["empty string set", { s: { SS: [] } }],
    ["duplicates in a set", { s: { SS: ["a", "a"] } }],
    ["key of the wrong type", { SK: { N: "1" } }],
  ]) {
    const e = await put(extra).then(() => null, (err) => err);
    assert.ok(e, `${what}: accepted`);
    assert.equal(e.name, "ValidationException", `${what}: ${e.name}: ${e.message}`);
  }
  // Two requests for one key in a BatchWriteItem.
  await expectError(ddb.send(new BatchWriteItemCommand({ RequestItems: { [table]: [
    { PutRequest: { Item: { PK: { S: "d" }, SK: { S: "1" } } } },
    { DeleteRequest: { Key: { PK: { S: "d" }, SK: { S: "1" } } } },
  ] } })), "ValidationException");
  // More than 100 actions in a transaction.
  await expectError(ddb.send(new TransactWriteItemsCommand({ TransactItems: Array.from({ length: 101 }, (_, i) => ({
    Put: { TableName: table, Item: { PK: { S: "t" }, SK: { S: String(i) } } },
  })) })), "ValidationException");
  // An unused ExpressionAttributeNames entry.
  await expectError(ddb.send(new GetItemCommand({
    TableName: table, Key: { PK: { S: "v" }, SK: { S: "1" } }, ProjectionExpression: "n",
    ExpressionAttributeNames: { "#unused": "x" },
  })), "ValidationException");
  // The DocumentClient: JS Sets become SS/NS, and numbers beyond 2^53 must be NumberValue.
  await doc.send(new PutCommand({ TableName: table, Item: { PK: "doc", SK: "1", ss: new Set(["x", "y"]), ns: new Set([1, 2]) } }));
  const { Item } = await doc.send(new GetCommand({ TableName: table, Key: { PK: "doc", SK: "1" } }));
  assert.deepEqual([...Item.ss].sort(), ["x", "y"]);
  assert.deepEqual([...Item.ns].sort(), [1, 2]);
});
