// load.mjs — one AWS SDK v3 client driving a DynamoDB endpoint with one
// workload for a fixed time at a fixed concurrency; prints one JSON line
// {"workload", "requests", "errors", "seconds"}.  The server's CPU is
// measured around it by bench/ddb_compare.sh, not here.
//
//   node load.mjs ENDPOINT KEY_ID SECRET WORKLOAD SECONDS CONCURRENCY SETUP|RUN TABLE
import {
  DynamoDBClient, CreateTableCommand, PutItemCommand, GetItemCommand, UpdateItemCommand,
  QueryCommand, TransactWriteItemsCommand, DescribeTableCommand,
} from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";

const [endpoint, keyId, secret, workload, seconds, concurrency, phase, table] = process.argv.slice(2);
const client = new DynamoDBClient({
  endpoint, region: "us-east-1", credentials: { accessKeyId: keyId, secretAccessKey: secret },
  maxAttempts: 1,
});
const ACCOUNTS = 1000;

async function setup() {
  try {
    await client.send(new CreateTableCommand({
      TableName: table, BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }, { AttributeName: "sk", AttributeType: "S" }],
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }, { AttributeName: "sk", KeyType: "RANGE" }],
    }));
  } catch (e) {
    if (e.name !== "ResourceInUseException") throw e;
  }
  for (;;) {
    const d = await client.send(new DescribeTableCommand({ TableName: table }));
    if (d.Table.TableStatus === "ACTIVE") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // accounts for GetItem / guarded updates, a 20-item partition for Query
  const puts = [];
  for (let i = 0; i < ACCOUNTS; i++)
    puts.push({ pk: { S: `acct#${i}` }, sk: { S: "A" }, balance: { N: "1000000000" }, owner: { S: `o${i}` } });
  for (let i = 0; i < 20; i++)
    puts.push({ pk: { S: "orders#1" }, sk: { S: `o#${String(i).padStart(3, "0")}` }, amount: { N: String(i) },
                status: { S: "paid" }, note: { S: "x".repeat(100) } });
  for (let i = 0; i < puts.length; i += 32)
    await Promise.all(puts.slice(i, i + 32).map((Item) => client.send(new PutItemCommand({ TableName: table, Item }))));
}

const pick = () => `acct#${Math.floor(Math.random() * ACCOUNTS)}`;
const ops = {
  put: () => new PutItemCommand({ TableName: table, Item: { pk: { S: `p#${randomUUID()}` }, sk: { S: "A" },
    v: { S: "x".repeat(200) }, n: { N: "42" } } }),
  claim: () => new PutItemCommand({ TableName: table, Item: { pk: { S: `IDEM#${randomUUID()}` }, sk: { S: "K" },
    status: { S: "IN_PROGRESS" }, expiration: { N: String(Math.floor(Date.now() / 1000) + 3600) } },
    ConditionExpression: "attribute_not_exists(pk)" }),
  get: () => new GetItemCommand({ TableName: table, Key: { pk: { S: pick() }, sk: { S: "A" } } }),
  query20: () => new QueryCommand({ TableName: table, KeyConditionExpression: "pk = :p",
    ExpressionAttributeValues: { ":p": { S: "orders#1" } } }),
  debit: () => new UpdateItemCommand({ TableName: table, Key: { pk: { S: pick() }, sk: { S: "A" } },
    UpdateExpression: "SET balance = balance - :a", ConditionExpression: "balance >= :a",
    ExpressionAttributeValues: { ":a": { N: "1" } } }),
  txn3: () => {
    const a = pick(); let b = pick(); while (b === a) b = pick();
    return new TransactWriteItemsCommand({ TransactItems: [
      { Update: { TableName: table, Key: { pk: { S: a }, sk: { S: "A" } }, UpdateExpression: "SET balance = balance - :a",
                  ConditionExpression: "balance >= :a", ExpressionAttributeValues: { ":a": { N: "1" } } } },
      { Update: { TableName: table, Key: { pk: { S: b }, sk: { S: "A" } }, UpdateExpression: "SET balance = balance + :a",
                  ExpressionAttributeValues: { ":a": { N: "1" } } } },
      { Put: { TableName: table, Item: { pk: { S: `t#${randomUUID()}` }, sk: { S: "T" }, from: { S: a }, to: { S: b },
                                          amount: { N: "1" } }, ConditionExpression: "attribute_not_exists(pk)" } },
    ] });
  },
};

async function run() {
  const make = ops[workload];
  if (!make) throw new Error(`unknown workload ${workload}`);
  const end = Date.now() + Number(seconds) * 1000;
  let requests = 0, errors = 0;
  const start = Date.now();
  async function worker() {
    while (Date.now() < end) {
      try { await client.send(make()); requests++; } catch { errors++; }
    }
  }
  await Promise.all(Array.from({ length: Number(concurrency) }, worker));
  console.log(JSON.stringify({ workload, requests, errors, seconds: (Date.now() - start) / 1000 }));
}

await (phase === "SETUP" ? setup() : run());
