// DynamoDB Streams through the real, unmodified @aws-sdk/client-dynamodb-streams
// (docs/dynamodb.md "Streams"), written from the AWS API reference: a table
// created with a NEW_AND_OLD_IMAGES stream, an insert, a modification, an
// update that changes nothing (no record) and a delete, read back with
// TRIM_HORIZON and AFTER_SEQUENCE_NUMBER iterators; another tenant's client
// cannot describe the stream or use its iterator.  Run by tests/sdk/run.sh
// (same environment as dynamodb.test.mjs).

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";

import {
  DynamoDBClient,
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  PutItemCommand,
  UpdateItemCommand,
  DeleteItemCommand,
} from "@aws-sdk/client-dynamodb";
import {
  DynamoDBStreamsClient,
  ListStreamsCommand,
  DescribeStreamCommand,
  GetShardIteratorCommand,
  GetRecordsCommand,
  ResourceNotFoundException,
} from "@aws-sdk/client-dynamodb-streams";
import { clientOptions, runName } from "./env.mjs";

const ddb = new DynamoDBClient(clientOptions());
const streams = new DynamoDBStreamsClient(clientOptions());
const streams2 = new DynamoDBStreamsClient(clientOptions("_2"));
const NAME = runName("sdk-streams");

after(async () => {
  try {
    await ddb.send(new DeleteTableCommand({ TableName: NAME }));
  } catch {
    // best effort
  }
  for (const c of [ddb, streams, streams2]) c.destroy();
});

async function readAll(iterator) {
  const out = [];
  let it = iterator;
  for (let i = 0; i < 50 && it; i++) {
    const r = await streams.send(new GetRecordsCommand({ ShardIterator: it, Limit: 100 }));
    out.push(...r.Records);
    if (r.Records.length === 0) break;
    it = r.NextShardIterator;
  }
  return out;
}

test("a NEW_AND_OLD_IMAGES stream through the DynamoDBStreams client", async () => {
  await ddb.send(new CreateTableCommand({
    TableName: NAME,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
    KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
    StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_AND_OLD_IMAGES" },
  }));
  const { Table } = await ddb.send(new DescribeTableCommand({ TableName: NAME }));
  assert.deepEqual(Table.StreamSpecification, { StreamEnabled: true, StreamViewType: "NEW_AND_OLD_IMAGES" });
  const arn = Table.LatestStreamArn;
  assert.match(arn, new RegExp(`:table/${NAME}/stream/${Table.LatestStreamLabel}$`));

  const key = { id: { S: "order-1" } };
  await ddb.send(new PutItemCommand({ TableName: NAME, Item: { ...key, state: { S: "new" } } }));
  await ddb.send(new UpdateItemCommand({
    TableName: NAME, Key: key, UpdateExpression: "SET #s = :s",
    ExpressionAttributeNames: { "#s": "state" }, ExpressionAttributeValues: { ":s": { S: "paid" } },
  }));
  await ddb.send(new UpdateItemCommand({ // changes nothing: no record
    TableName: NAME, Key: key, UpdateExpression: "SET #s = :s",
    ExpressionAttributeNames: { "#s": "state" }, ExpressionAttributeValues: { ":s": { S: "paid" } },
  }));
  await ddb.send(new DeleteItemCommand({ TableName: NAME, Key: key }));

  const { Streams } = await streams.send(new ListStreamsCommand({ TableName: NAME }));
  assert.deepEqual(Streams.map((s) => s.StreamArn), [arn]);
  const { StreamDescription: d } = await streams.send(new DescribeStreamCommand({ StreamArn: arn }));
  assert.equal(d.StreamStatus, "ENABLED");
  assert.equal(d.StreamViewType, "NEW_AND_OLD_IMAGES");
  assert.equal(d.TableName, NAME);
  assert.ok(d.CreationRequestDateTime instanceof Date);
  assert.equal(d.Shards.length, 1);
  const ShardId = d.Shards[0].ShardId;

  const { ShardIterator } = await streams.send(new GetShardIteratorCommand({
    StreamArn: arn, ShardId, ShardIteratorType: "TRIM_HORIZON",
  }));
  let records = [];
  for (let i = 0; i < 50 && records.length < 3; i++) {
    records = await readAll(ShardIterator);
    if (records.length < 3) await sleep(100);
  }
  assert.deepEqual(records.map((r) => r.eventName), ["INSERT", "MODIFY", "REMOVE"]);
  const [ins, mod, rem] = records;
  for (const r of records) {
    assert.equal(r.eventSource, "aws:dynamodb");
    assert.equal(r.eventVersion, "1.1");
    assert.deepEqual(r.dynamodb.Keys, key);
    assert.equal(r.dynamodb.StreamViewType, "NEW_AND_OLD_IMAGES");
    assert.ok(r.dynamodb.ApproximateCreationDateTime instanceof Date);
  }
  assert.deepEqual(ins.dynamodb.NewImage, { ...key, state: { S: "new" } });
  assert.equal(ins.dynamodb.OldImage, undefined);
  assert.deepEqual(mod.dynamodb.OldImage, { ...key, state: { S: "new" } });
  assert.deepEqual(mod.dynamodb.NewImage, { ...key, state: { S: "paid" } });
  assert.deepEqual(rem.dynamodb.OldImage, { ...key, state: { S: "paid" } });
  assert.equal(rem.dynamodb.NewImage, undefined);

  const after1 = await streams.send(new GetShardIteratorCommand({
    StreamArn: arn, ShardId, ShardIteratorType: "AFTER_SEQUENCE_NUMBER", SequenceNumber: ins.dynamodb.SequenceNumber,
  }));
  assert.deepEqual((await readAll(after1.ShardIterator)).map((r) => r.eventName), ["MODIFY", "REMOVE"]);

  // another tenant: neither the stream nor the iterator
  await assert.rejects(streams2.send(new DescribeStreamCommand({ StreamArn: arn })), ResourceNotFoundException);
  await assert.rejects(streams2.send(new GetRecordsCommand({ ShardIterator })), ResourceNotFoundException);
});
