"""DynamoDB Streams (issue #17, item 5) through boto3's unmodified
`dynamodbstreams` client: StreamSpecification on CreateTable/UpdateTable and
in DescribeTable, records of every view type written in the same transaction
as their change, per-item order under concurrent writers, the four shard
iterator types, iterators that cannot be forged or used by another tenant,
TTL deletions as the service's records, and 24-hour retention.

The module runs its own daemon with --dynamodb-listen (and a fast TTL
sweeper); written from the AWS API reference for DynamoDB Streams."""
import base64
import re
import secrets
import threading
import time

import psycopg2
import pytest

botocore = pytest.importorskip("botocore")
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from oltest import DynamoDaemon, poll  # noqa: E402


@pytest.fixture(scope="module")
def ddb(stack, cli, tmp_path_factory):
    dd = DynamoDaemon(stack, cli, tmp_path_factory.mktemp("ddbs"),
                      ["--ttl-sweep-interval-ms", "200", "--ttl-sweep-batch", "10"], name="ddbs")

    class Tenant:
        pass

    def tenant():
        o = Tenant()
        o.tenant, akid, secret = dd.tenant_keys()
        kw = dd.boto3_kw(akid, secret)
        o.client = boto3.client("dynamodb", **kw)
        o.streams = boto3.client("dynamodbstreams", **kw)
        return o

    o = tenant()
    o.other = tenant()
    o.master_key = dd.master_key_file.read_bytes()
    o.daemon = dd.daemon
    o.db = psycopg2.connect(stack.database_url)
    o.database_url = stack.database_url  # .dsn of a connection hides the password
    o.db.autocommit = True
    yield o
    o.db.close()
    dd.finish()


def code(exc):
    return exc.value.response["Error"]["Code"]


def table(o, view="NEW_AND_OLD_IMAGES", sort=False, **extra):
    name = "s" + secrets.token_hex(4)
    defs = [{"AttributeName": "pk", "AttributeType": "S"}]
    ks = [{"AttributeName": "pk", "KeyType": "HASH"}]
    if sort:
        defs.append({"AttributeName": "sk", "AttributeType": "N"})
        ks.append({"AttributeName": "sk", "KeyType": "RANGE"})
    spec = {"TableName": name, "BillingMode": "PAY_PER_REQUEST", "AttributeDefinitions": defs, "KeySchema": ks}
    if view is not None:
        spec["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    spec.update(extra)
    o.client.create_table(**spec)
    return name


def stream_arn(o, name):
    return o.client.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def shard(o, arn):
    return o.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]


def iterator(o, arn, kind="TRIM_HORIZON", seq=None):
    kw = {"StreamArn": arn, "ShardId": shard(o, arn), "ShardIteratorType": kind}
    if seq is not None:
        kw["SequenceNumber"] = seq
    return o.streams.get_shard_iterator(**kw)["ShardIterator"]


def read_all(o, arn, it=None, settle=True):
    """Every record readable from `it` (TRIM_HORIZON by default), following
    NextShardIterator until a page comes back empty."""
    it = it or iterator(o, arn)
    out = []
    for _ in range(200):
        r = o.streams.get_records(ShardIterator=it, Limit=100)
        out += r["Records"]
        if not r["Records"]:
            break
        it = r.get("NextShardIterator")
        if it is None:
            break
    return out


def wait_records(o, arn, n, timeout=10):
    """Records become readable once no older transaction runs: poll."""
    got = []

    def enough():
        got[:] = read_all(o, arn)
        return len(got) >= n
    poll(enough, timeout)
    return list(got)


# ---------------------------------------------------------------------------
# StreamSpecification and DescribeTable


def test_describe_table_shows_the_stream(ddb):
    name = table(ddb, "NEW_IMAGE")
    t = ddb.client.describe_table(TableName=name)["Table"]
    assert t["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    label = t["LatestStreamLabel"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", label), label
    assert t["LatestStreamArn"] == f"arn:aws:dynamodb:onceledger:{ddb.tenant}:table/{name}/stream/{label}"
    d = ddb.streams.describe_stream(StreamArn=t["LatestStreamArn"])["StreamDescription"]
    assert d["StreamStatus"] == "ENABLED" and d["StreamViewType"] == "NEW_IMAGE"
    assert d["TableName"] == name and d["StreamLabel"] == label
    assert d["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert len(d["Shards"]) == 1 and len(d["Shards"][0]["SequenceNumberRange"]["StartingSequenceNumber"]) == 40
    assert abs(d["CreationRequestDateTime"].timestamp() - time.time()) < 60


@pytest.mark.parametrize("spec,msg", [
    ({"StreamEnabled": True}, "StreamViewType"),
    ({"StreamEnabled": False, "StreamViewType": "KEYS_ONLY"}, "StreamViewType"),
])
def test_create_table_validates_the_stream_specification(ddb, spec, msg):
    name = "s" + secrets.token_hex(4)
    with pytest.raises(ClientError) as e:
        ddb.client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], StreamSpecification=spec)
    assert code(e) == "ValidationException" and msg in str(e.value)
    with pytest.raises(ClientError) as e:
        ddb.client.describe_table(TableName=name)
    assert code(e) == "ResourceNotFoundException"


def test_a_table_without_a_stream_writes_no_records(ddb):
    name = table(ddb, view=None)
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "a"}})
    t = ddb.client.describe_table(TableName=name)["Table"]
    assert "LatestStreamArn" not in t and "StreamSpecification" not in t
    assert ddb.streams.list_streams(TableName=name)["Streams"] == []
    cur = ddb.db.cursor()
    cur.execute("SELECT count(*), count(*) FILTER (WHERE i.stream IS NOT NULL) FROM items i"
                " JOIN item_tables t ON t.id = i.table_id WHERE t.tenant = %s AND t.name = %s", (ddb.tenant, name))
    assert cur.fetchone() == (1, 0)
    cur.execute("SELECT count(*) FROM item_stream s JOIN item_tables t ON t.id = s.table_id"
                " WHERE t.tenant = %s AND t.name = %s", (ddb.tenant, name))
    assert cur.fetchone()[0] == 0


# ---------------------------------------------------------------------------
# records


@pytest.mark.parametrize("view", ["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"])
def test_insert_modify_remove_in_every_view_type(ddb, view):
    name = table(ddb, view, sort=True)
    key = {"pk": {"S": "a"}, "sk": {"N": "1"}}
    ddb.client.put_item(TableName=name, Item={**key, "v": {"S": "one"}})
    ddb.client.update_item(TableName=name, Key=key, UpdateExpression="SET v = :v",
                           ExpressionAttributeValues={":v": {"S": "two"}})
    # an update that changes nothing writes no record, as in DynamoDB
    ddb.client.update_item(TableName=name, Key=key, UpdateExpression="SET v = :v",
                           ExpressionAttributeValues={":v": {"S": "two"}})
    ddb.client.put_item(TableName=name, Item={**key, "v": {"S": "two"}})
    ddb.client.delete_item(TableName=name, Key=key)
    arn = stream_arn(ddb, name)
    recs = wait_records(ddb, arn, 3)
    assert [r["eventName"] for r in recs] == ["INSERT", "MODIFY", "REMOVE"]
    one, two = {**key, "v": {"S": "one"}}, {**key, "v": {"S": "two"}}
    want_new = view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
    want_old = view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES")
    images = [(one if want_new else None, None),
              (two if want_new else None, one if want_old else None),
              (None, two if want_old else None)]
    seqs = []
    for r, (new, old) in zip(recs, images):
        assert r["eventSource"] == "aws:dynamodb" and r["eventVersion"] == "1.1" and r["awsRegion"]
        assert re.fullmatch(r"[0-9a-f]{32}", r["eventID"])
        dd = r["dynamodb"]
        assert dd["Keys"] == key
        assert dd["StreamViewType"] == view
        assert dd.get("NewImage") == new and dd.get("OldImage") == old
        assert dd["SizeBytes"] > 0 and "userIdentity" not in r
        assert abs(dd["ApproximateCreationDateTime"].timestamp() - time.time()) < 120
        assert re.fullmatch(r"\d{40}", dd["SequenceNumber"])
        seqs.append(dd["SequenceNumber"])
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_records_are_written_with_their_transaction(ddb):
    name = table(ddb, "NEW_IMAGE")
    arn = stream_arn(ddb, name)
    ddb.client.transact_write_items(TransactItems=[
        {"Put": {"TableName": name, "Item": {"pk": {"S": "x"}, "n": {"N": "1"}}}},
        {"Put": {"TableName": name, "Item": {"pk": {"S": "y"}, "n": {"N": "1"}}}},
    ])
    with pytest.raises(ClientError) as e:
        ddb.client.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": {"pk": {"S": "z"}}}},
            {"Update": {"TableName": name, "Key": {"pk": {"S": "x"}}, "UpdateExpression": "SET n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}}}},
            {"ConditionCheck": {"TableName": name, "Key": {"pk": {"S": "y"}}, "ConditionExpression": "n = :nine",
                                "ExpressionAttributeValues": {":nine": {"N": "9"}}}},
        ])
    assert code(e) == "TransactionCanceledException"
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "w"}})  # a later record to wait for
    recs = wait_records(ddb, arn, 3)
    # the failed transaction wrote none (no z, no MODIFY of x)
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in recs] == \
        [("INSERT", "x"), ("INSERT", "y"), ("INSERT", "w")]


def test_per_item_order_under_concurrent_writers(ddb):
    name = table(ddb, "NEW_IMAGE")
    arn = stream_arn(ddb, name)
    keys = ["k0", "k1", "k2"]
    per_thread = 15
    errors = []

    def work(i):
        c = boto3.client("dynamodb", endpoint_url=ddb.client.meta.endpoint_url, region_name="us-east-1",
                         aws_access_key_id=ddb.client._request_signer._credentials.access_key,
                         aws_secret_access_key=ddb.client._request_signer._credentials.secret_key,
                         config=Config(retries={"max_attempts": 5}))
        try:
            for j in range(per_thread):
                c.update_item(TableName=name, Key={"pk": {"S": keys[(i + j) % 3]}},
                              UpdateExpression="ADD c :one", ExpressionAttributeValues={":one": {"N": "1"}})
        except Exception as ex:  # noqa: BLE001
            errors.append(ex)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    total = 8 * per_thread
    recs = wait_records(ddb, arn, total, timeout=30)
    assert len(recs) == total
    by_key = {}
    for r in recs:
        by_key.setdefault(r["dynamodb"]["Keys"]["pk"]["S"], []).append(int(r["dynamodb"]["NewImage"]["c"]["N"]))
    for k, counters in by_key.items():
        # each item's records in the order of its counter: 1, 2, 3, ...
        assert counters == list(range(1, len(counters) + 1)), (k, counters)
    assert sum(len(v) for v in by_key.values()) == total


# ---------------------------------------------------------------------------
# iterators


def test_the_four_iterator_types(ddb):
    name = table(ddb, "KEYS_ONLY")
    arn = stream_arn(ddb, name)
    for i in range(4):
        ddb.client.put_item(TableName=name, Item={"pk": {"S": "p%d" % i}})
    recs = wait_records(ddb, arn, 4)
    seqs = [r["dynamodb"]["SequenceNumber"] for r in recs]
    latest = iterator(ddb, arn, "LATEST")
    assert ddb.streams.get_records(ShardIterator=latest)["Records"] == []
    at = read_all(ddb, arn, iterator(ddb, arn, "AT_SEQUENCE_NUMBER", seqs[1]))
    assert [r["dynamodb"]["SequenceNumber"] for r in at] == seqs[1:]
    after = read_all(ddb, arn, iterator(ddb, arn, "AFTER_SEQUENCE_NUMBER", seqs[1]))
    assert [r["dynamodb"]["SequenceNumber"] for r in after] == seqs[2:]
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "late"}})
    got = []
    poll(lambda: got.extend(read_all(ddb, arn, latest)) or got, 10)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in got] == ["late"]
    # Limit pages, NextShardIterator goes on where the page ended
    r = ddb.streams.get_records(ShardIterator=iterator(ddb, arn), Limit=2)
    assert len(r["Records"]) == 2
    r2 = ddb.streams.get_records(ShardIterator=r["NextShardIterator"], Limit=2)
    assert [x["dynamodb"]["SequenceNumber"] for x in r2["Records"]] == seqs[2:4]


def test_iterator_requests_are_validated(ddb):
    name = table(ddb, "KEYS_ONLY")
    arn = stream_arn(ddb, name)
    sid = shard(ddb, arn)
    with pytest.raises(ClientError) as e:
        ddb.streams.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="AT_SEQUENCE_NUMBER")
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ddb.streams.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                       SequenceNumber="1" * 21)
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ddb.streams.get_shard_iterator(StreamArn=arn, ShardId="shardId-" + "0" * 30, ShardIteratorType="LATEST")
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ddb.streams.describe_stream(StreamArn=arn.rsplit("/", 1)[0] + "/2001-01-01T00:00:00.000")
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ddb.streams.get_records(ShardIterator=iterator(ddb, arn), Limit=1001)
    assert code(e) == "ValidationException"


def test_a_tampered_iterator_is_refused(ddb):
    name = table(ddb, "KEYS_ONLY")
    arn = stream_arn(ddb, name)
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "a"}})
    wait_records(ddb, arn, 1)
    it = iterator(ddb, arn, "LATEST")
    payload, mac = it.split(".")
    fields = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split("|")
    fields[4] = "0"  # rewind to the beginning
    forged = base64.urlsafe_b64encode("|".join(fields).encode()).decode().rstrip("=") + "." + mac
    for bad in [forged, it[:-2] + ("AA" if not it.endswith("AA") else "BB"), "garbage", it + "x"]:
        with pytest.raises(ClientError) as e:
            ddb.streams.get_records(ShardIterator=bad)
        assert code(e) == "ValidationException", bad


def _sign(o, payload):
    """An iterator as the daemon makes it (docs/dynamodb.md "Shard
    iterators"): the key is keyed BLAKE2b of a label under the master key,
    the MAC HMAC-SHA-512-256."""
    import hashlib
    import hmac
    key = hashlib.blake2b(b"onceledger dynamodb streams shard iterators v1", key=o.master_key, digest_size=32).digest()
    mac = hmac.new(key, payload.encode(), hashlib.sha512).digest()[:32]
    b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")  # noqa: E731
    return b64(payload.encode()) + "." + b64(mac)


def _fields(it):
    payload = it.split(".")[0]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split("|")


def test_an_iterator_expires_after_15_minutes(ddb):
    name = table(ddb, "KEYS_ONLY")
    arn = stream_arn(ddb, name)
    f = _fields(iterator(ddb, arn))
    assert "NextShardIterator" in ddb.streams.get_records(ShardIterator=_sign(ddb, "|".join(f)))  # fresh: works
    f[7] = str(int((time.time() - 15 * 60 - 5) * 1000))
    with pytest.raises(ClientError) as e:
        ddb.streams.get_records(ShardIterator=_sign(ddb, "|".join(f)))
    assert code(e) == "ExpiredIteratorException"


def test_another_tenant_cannot_use_the_stream(ddb):
    name = table(ddb, "NEW_IMAGE")
    arn = stream_arn(ddb, name)
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "secret"}})
    wait_records(ddb, arn, 1)
    it = iterator(ddb, arn)
    other = ddb.other
    with pytest.raises(ClientError) as e:
        other.streams.get_records(ShardIterator=it)
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        other.streams.describe_stream(StreamArn=arn)
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        other.streams.get_shard_iterator(StreamArn=arn, ShardId=shard(ddb, arn), ShardIteratorType="TRIM_HORIZON")
    assert code(e) == "ResourceNotFoundException"
    assert all(s["StreamArn"] != arn for s in other.streams.list_streams()["Streams"])
    # even a correctly signed iterator naming the other tenant's table
    f = _fields(it)
    f[1] = other.tenant
    with pytest.raises(ClientError) as e:
        other.streams.get_records(ShardIterator=_sign(ddb, "|".join(f)))
    assert code(e) == "ResourceNotFoundException"
    # the stream's records were never handed to the other tenant
    assert ddb.streams.get_records(ShardIterator=it)["Records"][0]["dynamodb"]["Keys"] == {"pk": {"S": "secret"}}


def test_positions_older_than_retention_are_trimmed(ddb):
    name = table(ddb, "KEYS_ONLY")
    arn = stream_arn(ddb, name)
    for i in range(3):
        ddb.client.put_item(TableName=name, Item={"pk": {"S": "t%d" % i}})
    recs = wait_records(ddb, arn, 3)
    first = recs[0]["dynamodb"]["SequenceNumber"]
    # what the retention sweep does to a record past its 24 hours
    ddb.db.cursor().execute(
        "DELETE FROM item_stream WHERE (table_id, ord, seq) = (SELECT table_id, ord, seq FROM item_stream s"
        " JOIN item_tables t ON t.id = s.table_id WHERE t.tenant = %s AND t.name = %s ORDER BY ord, seq LIMIT 1)",
        (ddb.tenant, name))
    with pytest.raises(ClientError) as e:
        iterator(ddb, arn, "AT_SEQUENCE_NUMBER", first)
    assert code(e) == "TrimmedDataAccessException"
    assert len(read_all(ddb, arn)) == 2


def test_records_older_than_24_hours_are_swept(ddb):
    name = table(ddb, "KEYS_ONLY")
    arn = stream_arn(ddb, name)
    for i in range(25):
        ddb.client.put_item(TableName=name, Item={"pk": {"S": "r%d" % i}})
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "young"}})
    wait_records(ddb, arn, 26)
    cur = ddb.db.cursor()
    cur.execute("UPDATE item_stream s SET created_at = now() - interval '25 hours' FROM item_tables t"
                " WHERE t.id = s.table_id AND t.tenant = %s AND t.name = %s AND s.pk <> 'young'", (ddb.tenant, name))

    def left():
        cur.execute("SELECT count(*) FROM item_stream s JOIN item_tables t ON t.id = s.table_id"
                    " WHERE t.tenant = %s AND t.name = %s", (ddb.tenant, name))
        return cur.fetchone()[0]
    assert poll(lambda: left() == 1, 15), left()  # batches of 10


# ---------------------------------------------------------------------------
# TTL, UpdateTable, ListStreams


def test_ttl_deletions_are_the_services_records(ddb):
    name = table(ddb, "OLD_IMAGE")
    arn = stream_arn(ddb, name)
    ddb.client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "gone"}, "exp": {"N": str(int(time.time()) - 10)}})
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "mine"}})
    ddb.client.delete_item(TableName=name, Key={"pk": {"S": "mine"}})
    recs = wait_records(ddb, arn, 5, timeout=15)
    removes = {r["dynamodb"]["Keys"]["pk"]["S"]: r for r in recs if r["eventName"] == "REMOVE"}
    assert removes["gone"]["userIdentity"] == {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
    assert removes["gone"]["dynamodb"]["OldImage"]["pk"] == {"S": "gone"}
    assert "userIdentity" not in removes["mine"]


def test_update_table_enables_and_disables_the_stream(ddb):
    name = table(ddb, view=None)
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "before"}, "v": {"N": "1"}})
    d = ddb.client.update_table(TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    assert d["TableDescription"]["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    arn = stream_arn(ddb, name)
    with pytest.raises(ClientError) as e:
        ddb.client.update_table(TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    assert code(e) == "ValidationException" and "Table already has an enabled stream" in str(e.value)
    time.sleep(1.1)  # other workers' table cache (docs/dynamodb.md)
    # an item stored before the stream existed: its change is recorded (backfill)
    ddb.client.update_item(TableName=name, Key={"pk": {"S": "before"}}, UpdateExpression="SET v = :v",
                           ExpressionAttributeValues={":v": {"N": "2"}})
    recs = wait_records(ddb, arn, 1)
    assert recs[0]["eventName"] == "MODIFY" and recs[0]["dynamodb"]["NewImage"]["v"] == {"N": "2"}
    assert [s["StreamArn"] for s in ddb.streams.list_streams(TableName=name)["Streams"]] == [arn]
    ddb.client.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    with pytest.raises(ClientError) as e:
        ddb.client.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    assert code(e) == "ValidationException"
    time.sleep(1.1)
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "after"}})
    # the disabled stream stays readable, closed: no next iterator at its end
    desc = ddb.streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert desc["StreamStatus"] == "DISABLED"
    assert "EndingSequenceNumber" in desc["Shards"][0]["SequenceNumberRange"]
    it = iterator(ddb, arn)
    r = ddb.streams.get_records(ShardIterator=it)
    assert [x["eventName"] for x in r["Records"]] == ["MODIFY"]
    r = ddb.streams.get_records(ShardIterator=r["NextShardIterator"])
    assert r["Records"] == [] and "NextShardIterator" not in r
    t = ddb.client.describe_table(TableName=name)["Table"]
    assert t["LatestStreamArn"] == arn and t["StreamSpecification"]["StreamEnabled"] is False
    # enabled again: a new stream with a new label
    time.sleep(0.01)
    ddb.client.update_table(TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    assert stream_arn(ddb, name) != arn


def test_list_streams_pages(ddb):
    names = sorted(table(ddb, "KEYS_ONLY") for _ in range(3))
    table(ddb, view=None)
    got, start = [], None
    while True:
        kw = {"Limit": 2}
        if start:
            kw["ExclusiveStartStreamArn"] = start
        r = ddb.streams.list_streams(**kw)
        got += [s["TableName"] for s in r["Streams"]]
        start = r.get("LastEvaluatedStreamArn")
        if not start:
            break
    assert [n for n in got if n in names] == names
    with pytest.raises(ClientError) as e:
        ddb.streams.list_streams(TableName="nosuchtable")
    assert code(e) == "ResourceNotFoundException"


# ---------------------------------------------------------------------------
# the outbox lesson, at the SQL level: what a sequence alone would get wrong


def _item_row(o, name, pk):
    return ("UPDATE items i SET item = i.item || %s::jsonb FROM item_tables t WHERE t.id = i.table_id"
            " AND t.tenant = %s AND t.name = %s AND i.pk = %s", (o.tenant, name, pk))


def test_a_record_of_a_running_transaction_is_never_skipped(ddb):
    name = table(ddb, "NEW_IMAGE")
    arn = stream_arn(ddb, name)
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "slow"}, "v": {"N": "0"}})
    wait_records(ddb, arn, 1)
    slow = psycopg2.connect(ddb.database_url)
    try:
        cur = slow.cursor()
        cur.execute("SELECT pg_current_xact_id()")  # an older transaction, still running
        # a younger one commits a change through the API
        ddb.client.put_item(TableName=name, Item={"pk": {"S": "fast"}})
        time.sleep(0.3)
        assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in read_all(ddb, arn)] == ["slow"], \
            "a record behind a running transaction was handed out"
        sql, args = _item_row(ddb, name, "slow")
        cur.execute(sql, ('{"v": {"N": "1"}}',) + args)
        slow.commit()
    finally:
        slow.close()
    recs = wait_records(ddb, arn, 3)
    # the older transaction's record sorts first: a reader that had already
    # passed "fast" would have skipped it
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in recs] == ["slow", "slow", "fast"]


def test_an_older_transaction_writing_after_a_younger_one_sorts_after_it(ddb):
    name = table(ddb, "NEW_IMAGE")
    arn = stream_arn(ddb, name)
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "x"}, "c": {"N": "0"}})
    wait_records(ddb, arn, 1)
    old = psycopg2.connect(ddb.database_url)
    try:
        cur = old.cursor()
        cur.execute("SELECT pg_current_xact_id()")  # the lower xid
        # the younger transaction (higher xid) changes x and commits
        ddb.client.put_item(TableName=name, Item={"pk": {"S": "x"}, "c": {"N": "1"}})
        # then the older one changes x too, and commits
        sql, args = _item_row(ddb, name, "x")
        cur.execute(sql, ('{"c": {"N": "2"}}',) + args)
        old.commit()
    finally:
        old.close()
    recs = wait_records(ddb, arn, 3)
    assert [r["dynamodb"]["NewImage"]["c"]["N"] for r in recs] == ["0", "1", "2"]


def test_batch_writes_and_delete_table(ddb):
    name = table(ddb, "NEW_IMAGE", sort=True)
    arn = stream_arn(ddb, name)
    ddb.client.batch_write_item(RequestItems={name: [
        {"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"N": str(i)}}}} for i in range(3)]})
    ddb.client.batch_write_item(RequestItems={name: [
        {"DeleteRequest": {"Key": {"pk": {"S": "b"}, "sk": {"N": "1"}}}}]})
    recs = wait_records(ddb, arn, 4)
    assert [(r["eventName"], r["dynamodb"]["Keys"]["sk"]["N"]) for r in recs] == \
        [("INSERT", "0"), ("INSERT", "1"), ("INSERT", "2"), ("REMOVE", "1")]
    ddb.client.delete_table(TableName=name)
    with pytest.raises(ClientError) as e:
        ddb.streams.describe_stream(StreamArn=arn)
    assert code(e) == "ResourceNotFoundException"
    assert all(s["StreamArn"] != arn for s in ddb.streams.list_streams()["Streams"])
    cur = ddb.db.cursor()
    cur.execute("SELECT count(*) FROM item_stream s LEFT JOIN item_tables t ON t.id = s.table_id WHERE t.id IS NULL")
    assert cur.fetchone()[0] == 0


def test_records_are_read_in_numeric_order_of_their_transaction_ids(ddb):
    # ids 9 and 10 sort the other way round as text
    name = table(ddb, "KEYS_ONLY")
    arn = stream_arn(ddb, name)
    cur = ddb.db.cursor()
    cur.execute("SELECT id FROM item_tables WHERE tenant = %s AND name = %s", (ddb.tenant, name))
    tid = cur.fetchone()[0]
    for ord_, pk in [(9, "nine"), (10, "ten")]:
        cur.execute("INSERT INTO item_stream (table_id, ord, event, pk, sk, keys, view_type)"
                    " VALUES (%s, %s::text::xid8, 'INSERT', %s, '', %s::jsonb, 'KEYS_ONLY')",
                    (tid, str(ord_), pk, '{"pk": {"S": "%s"}}' % pk))
    recs = read_all(ddb, arn)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in recs] == ["nine", "ten"]
    assert recs[0]["dynamodb"]["SequenceNumber"] < recs[1]["dynamodb"]["SequenceNumber"]


def test_a_page_of_records_stops_after_1_mb(ddb):
    name = table(ddb, "NEW_IMAGE")
    arn = stream_arn(ddb, name)
    for i in range(5):  # ~350 KB each, incompressible
        ddb.client.put_item(TableName=name, Item={"pk": {"S": "big%d" % i},
                                                  "blob": {"B": secrets.token_bytes(350 * 1024)}})
    wait_records(ddb, arn, 5, timeout=20)
    r = ddb.streams.get_records(ShardIterator=iterator(ddb, arn))
    assert 1 <= len(r["Records"]) <= 3, len(r["Records"])
    rest = read_all(ddb, arn, r["NextShardIterator"])
    assert [x["dynamodb"]["Keys"]["pk"]["S"] for x in r["Records"] + rest] == ["big%d" % i for i in range(5)]


@pytest.mark.parametrize("target", ["DynamoDB_20120810.GetRecords", "DynamoDB_20120810.Streams.GetRecords",
                                    "DynamoDBStreams_20120810.PutItem", "DynamoDBStreams_20120810.Streams.GetRecords"])
def test_each_api_answers_only_its_own_operations(ddb, target):
    import json

    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    creds = ddb.client._request_signer._credentials
    url = ddb.client.meta.endpoint_url + "/"
    req = AWSRequest(method="POST", url=url, data=json.dumps({}),
                     headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
    SigV4Auth(creds, "dynamodb", "us-east-1").add_auth(req)
    r = requests.post(url, data=req.body, headers=dict(req.headers.items()), timeout=30)
    assert r.status_code == 400 and r.json()["__type"].endswith("#UnknownOperationException"), r.text
