"""The DynamoDB-compatible endpoint under hostile and edge-case input
(issues #17 and #18): a bad index definition cannot crash the daemon, nothing
is parsed before the signature is checked, the signature covers the
operation, U+0000 never makes a key match another item, the index-slot limit
is enforced, messages cut inside a UTF-8 character stay valid JSON, LSI
pages lose nothing, index projections are honoured, legacy parameters are
refused consistently, and DynamoDB's longest keys work.

Each module runs its own daemon with --dynamodb-listen; requests are signed
with botocore (Debian's python3-botocore), raw ones with its SigV4Auth."""
import json
import secrets

import psycopg2
import pytest
import requests

botocore = pytest.importorskip("botocore")
import boto3  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from oltest import DynamoDaemon  # noqa: E402

TARGET = "DynamoDB_20120810."


@pytest.fixture(scope="module")
def ddb(stack, cli, tmp_path_factory):
    dd = DynamoDaemon(stack, cli, tmp_path_factory.mktemp("ddb"))
    tenant, akid, secret = dd.tenant_keys()

    class Ddb:
        pass

    o = Ddb()
    o.daemon, o.url, o.tenant = dd.daemon, dd.url, tenant
    o.client = boto3.client("dynamodb", **dd.boto3_kw(akid, secret))
    o.creds = Credentials(akid, secret)
    o.database_url = stack.database_url
    yield o
    dd.finish()


def signed(o, op, body, signed_headers=None, creds=None):
    """An AWSRequest for op, signed; signed_headers limits what is signed."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET + op}
    req = AWSRequest(method="POST", url=o.url + "/", data=data, headers=headers)
    if signed_headers is not None:
        # sign only these (botocore signs every header present)
        kept = {k: v for k, v in headers.items() if k.lower() in signed_headers}
        req = AWSRequest(method="POST", url=o.url + "/", data=data, headers=kept)
    SigV4Auth(creds or o.creds, "dynamodb", "us-east-1").add_auth(req)
    return req


def send(req, **extra_headers):
    h = dict(req.headers.items())
    h.update(extra_headers)
    return requests.post(req.url, data=req.body, headers=h, timeout=60)


def err_type(resp):
    return resp.json().get("__type", "").split("#")[-1]


def code(exc):
    return exc.value.response["Error"]["Code"]


def table(o, name=None, **extra):
    name = name or "t" + secrets.token_hex(4)
    spec = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}
    spec.update(extra)
    o.client.create_table(**spec)
    return name


# ---------------------------------------------------------------------------
# #17.1: the crash


def test_include_projection_with_a_non_string_attribute_is_refused(ddb):
    name = "t" + secrets.token_hex(4)
    with pytest.raises(ClientError) as e:
        # botocore validates types client-side: go raw
        r = send(signed(ddb, "CreateTable", {
            "TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "g", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "GlobalSecondaryIndexes": [{"IndexName": "gix", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                        "Projection": {"ProjectionType": "INCLUDE",
                                                       "NonKeyAttributes": ["a", 123]}}]}))
        assert r.status_code == 400, r.text
        assert err_type(r) == "ValidationException", r.text
        ddb.client.describe_table(TableName=name)
    assert code(e) == "ResourceNotFoundException"
    assert ddb.daemon.alive()


@pytest.mark.parametrize("proj,msg", [
    ({"ProjectionType": "INCLUDE"}, "NonKeyAttributes is not specified"),
    ({"ProjectionType": "KEYS_ONLY", "NonKeyAttributes": ["a"]}, "ProjectionType is KEYS_ONLY, but NonKeyAttributes is specified"),
    ({"ProjectionType": "ALL", "NonKeyAttributes": ["a"]}, "ProjectionType is ALL, but NonKeyAttributes is specified"),
    ({"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "a"]}, "Duplicate"),
    ({"ProjectionType": "INCLUDE", "NonKeyAttributes": [""]}, "length"),
])
def test_bad_projections_are_validation_errors(ddb, proj, msg):
    r = send(signed(ddb, "CreateTable", {
        "TableName": "t" + secrets.token_hex(4), "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "g", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [{"IndexName": "gix", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                    "Projection": proj}]}))
    assert r.status_code == 400 and err_type(r) == "ValidationException", r.text
    assert msg in r.json()["message"], r.text


def test_a_stored_definition_that_does_not_load_is_an_error_for_that_table_only(ddb):
    """The bad definition stored the old way (straight into item_tables, as
    the daemon used to accept it): every request on that table is a 500 for
    that table, the daemon survives, other tables work, DeleteTable works."""
    bad = "bad" + secrets.token_hex(4)
    good = table(ddb)
    definition = {
        "TableName": bad, "TableStatus": "ACTIVE",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "g", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [{"IndexName": "gix", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", 123]},
                                    "_slot": 1}]}
    with psycopg2.connect(ddb.database_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO item_tables (tenant, name, definition) VALUES (%s, %s, %s)",
                    (ddb.tenant, bad, json.dumps(definition)))
    conn.close()
    for _ in range(3):
        with pytest.raises(ClientError) as e:
            ddb.client.describe_table(TableName=bad)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        with pytest.raises(ClientError):
            ddb.client.get_item(TableName=bad, Key={"pk": {"S": "x"}})
        assert ddb.daemon.alive()
    ddb.client.put_item(TableName=good, Item={"pk": {"S": "still"}})
    assert ddb.client.get_item(TableName=good, Key={"pk": {"S": "still"}})["Item"]["pk"] == {"S": "still"}
    ddb.client.delete_table(TableName=bad)
    assert "unreadable" in ddb.daemon.log_text()


# ---------------------------------------------------------------------------
# #18.3: a ninth index


def test_a_ninth_index_is_refused_and_the_table_stays_usable(ddb):
    defs = [{"AttributeName": "pk", "AttributeType": "S"}] + \
        [{"AttributeName": f"g{i}", "AttributeType": "S"} for i in range(9)]
    gsis = [{"IndexName": f"gix{i}", "KeySchema": [{"AttributeName": f"g{i}", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}} for i in range(8)]
    name = table(ddb, AttributeDefinitions=defs[:9], GlobalSecondaryIndexes=gsis)
    with pytest.raises(ClientError) as e:
        ddb.client.update_table(TableName=name, AttributeDefinitions=[defs[9]], GlobalSecondaryIndexUpdates=[
            {"Create": {"IndexName": "gix8", "KeySchema": [{"AttributeName": "g8", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "ALL"}}}])
    assert code(e) == "LimitExceededException", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "a"}, "g7": {"S": "v"}})
    got = ddb.client.query(TableName=name, IndexName="gix7", KeyConditionExpression="g7 = :v",
                           ExpressionAttributeValues={":v": {"S": "v"}})
    assert got["Count"] == 1
    desc = ddb.client.describe_table(TableName=name)["Table"]
    assert len(desc["GlobalSecondaryIndexes"]) == 8


# ---------------------------------------------------------------------------
# #18.10: messages cut inside a UTF-8 character


def test_a_long_multibyte_name_in_an_error_message_is_still_a_validation_error(ddb):
    long_name = "x" + "é" * 200  # the old 256-byte buffer cut inside an é
    r = send(signed(ddb, "CreateTable", {
        "TableName": "t" + secrets.token_hex(4), "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": long_name, "KeyType": "HASH"}]}))
    assert r.status_code == 400, r.text
    assert err_type(r) == "ValidationException", r.text
    r.json()["message"].encode("utf-8")


# ---------------------------------------------------------------------------
# #18.1: nothing is parsed before the signature is checked


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_an_unauthenticated_16_mib_body_is_not_parsed(ddb):
    """Before: a made-up key and an all-zero signature made a worker parse the
    whole body (RSS 12 MB -> 355 MB). Now the signature is checked over the
    raw body first; memory stays flat (generous margin, not a timing test)."""
    n = (16 * 1024 * 1024 - 16) // 2
    body = b"[" + b"0," * (n - 1) + b"0]"
    assert len(body) <= 16 * 1024 * 1024
    fake = Credentials("AKIA" + secrets.token_hex(8).upper(), "x" * 40)
    req = signed(ddb, "ListTables", body, creds=fake)
    hdr = dict(req.headers.items())
    hdr["Authorization"] = hdr["Authorization"].rsplit("Signature=", 1)[0] + "Signature=" + "0" * 64
    before = _rss_kb(ddb.daemon.proc.pid)
    for _ in range(8):
        r = requests.post(req.url, data=body, headers=hdr, timeout=120)
        assert r.status_code == 400, r.text
        assert err_type(r) in ("UnrecognizedClientException", "InvalidSignatureException"), r.text
    after = _rss_kb(ddb.daemon.proc.pid)
    # the bodies themselves are buffered (16 MiB each, per connection); a
    # parse made jansson trees of ~20x that. AddressSanitizer keeps freed
    # memory in its quarantine (up to 256 MB): there the 8 bodies may stay.
    with open(f"/proc/{ddb.daemon.proc.pid}/maps") as f:
        asan = "libasan" in f.read()
    margin = 120 * 1024 + (8 * 16 * 1024 if asan else 0)
    assert after - before < margin, f"RSS grew from {before} kB to {after} kB (asan: {asan})"


def test_a_bad_signature_on_a_valid_key_is_refused_before_parsing(ddb):
    req = signed(ddb, "ListTables", b"{not json")
    r = send(req)
    # the signature is valid, so the body is parsed: SerializationException
    assert r.status_code == 400 and err_type(r) == "SerializationException", r.text
    hdr = dict(req.headers.items())
    hdr["Authorization"] = hdr["Authorization"][:-4] + "0000"
    r = requests.post(req.url, data=req.body, headers=hdr, timeout=30)
    assert r.status_code == 400 and err_type(r) == "InvalidSignatureException", r.text


# ---------------------------------------------------------------------------
# #18.4: the signature covers the operation


def test_the_target_header_must_be_signed(ddb):
    name = table(ddb)
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "keep"}})
    body = {"TableName": name, "Key": {"pk": {"S": "keep"}}}
    # signed without X-Amz-Target, then the target is added: refused
    req = signed(ddb, "GetItem", body, signed_headers={"host", "x-amz-date", "content-type"})
    r = send(req, **{"X-Amz-Target": TARGET + "DeleteItem"})
    assert r.status_code == 400, r.text
    assert err_type(r) in ("InvalidSignatureException", "IncompleteSignatureException"), r.text
    # a captured, fully signed GetItem re-sent as DeleteItem: refused
    req = signed(ddb, "GetItem", body)
    r = send(req, **{"X-Amz-Target": TARGET + "DeleteItem"})
    assert r.status_code == 400 and err_type(r) == "InvalidSignatureException", r.text
    assert ddb.client.get_item(TableName=name, Key={"pk": {"S": "keep"}}).get("Item") is not None
    # content-type present but unsigned: refused
    req = signed(ddb, "GetItem", body, signed_headers={"host", "x-amz-date", "x-amz-target"})
    r = send(req, **{"Content-Type": "application/x-amz-json-1.0"})
    assert r.status_code == 400, r.text


# ---------------------------------------------------------------------------
# #18.2 / #17.2: U+0000


def test_a_key_with_nul_never_matches_another_item(ddb):
    name = table(ddb)
    ddb.client.put_item(TableName=name, Item={"pk": {"S": "a"}, "v": {"S": "original"}})
    nul_key = {"pk": {"S": "a\u0000zzz"}}

    def refused(op, body):
        r = send(signed(ddb, op, body))
        assert r.status_code == 400, (op, r.text)
        assert err_type(r) == "ValidationException", (op, r.text)
        assert "U+0000" in r.json()["message"], (op, r.text)

    refused("DeleteItem", {"TableName": name, "Key": nul_key})
    refused("GetItem", {"TableName": name, "Key": nul_key})
    refused("PutItem", {"TableName": name, "Item": {**nul_key, "v": {"S": "x"}}})
    refused("UpdateItem", {"TableName": name, "Key": nul_key, "UpdateExpression": "SET v = :v",
                           "ExpressionAttributeValues": {":v": {"S": "y"}}})
    refused("Query", {"TableName": name, "KeyConditionExpression": "pk = :k",
                      "ExpressionAttributeValues": {":k": {"S": "a\u0000zzz"}}})
    refused("BatchGetItem", {"RequestItems": {name: {"Keys": [nul_key]}}})
    refused("TransactGetItems", {"TransactItems": [{"Get": {"TableName": name, "Key": nul_key}}]})
    refused("BatchWriteItem", {"RequestItems": {name: [{"DeleteRequest": {"Key": nul_key}}]}})
    refused("TransactWriteItems", {"TransactItems": [{"Delete": {"TableName": name, "Key": nul_key}}]})
    item = ddb.client.get_item(TableName=name, Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert item["v"] == {"S": "original"}


# ---------------------------------------------------------------------------
# #17.2: LSI pages, index projections


def lsi_table(ddb, projection):
    return table(ddb,
                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                       {"AttributeName": "sk", "AttributeType": "S"},
                                       {"AttributeName": "l", "AttributeType": "N"},
                                       {"AttributeName": "g", "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                 LocalSecondaryIndexes=[{"IndexName": "lix", "KeySchema": [
                     {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "l", "KeyType": "RANGE"}],
                     "Projection": projection}],
                 GlobalSecondaryIndexes=[{"IndexName": "gix", "KeySchema": [
                     {"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "l", "KeyType": "RANGE"}],
                     "Projection": projection}])


def pages(ddb, fn, **kw):
    seen, start = [], None
    for _ in range(200):
        if start is not None:
            kw["ExclusiveStartKey"] = start
        r = fn(**kw)
        seen += r["Items"]
        start = r.get("LastEvaluatedKey")
        if start is None:
            return seen
    raise AssertionError("no end of pages")


@pytest.mark.parametrize("limit", [1, 3, 7, 10])
def test_lsi_scan_and_query_pages_lose_nothing(ddb, limit):
    name = lsi_table(ddb, {"ProjectionType": "ALL"})
    for i in range(50):
        ddb.client.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"S": f"s{i:02d}"},
                                                   "l": {"N": str(i % 5)}, "g": {"S": "G"}})
    for op in ("scan", "query"):
        kw = {"TableName": name, "IndexName": "lix", "Limit": limit}
        if op == "query":
            kw.update(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}})
        got = pages(ddb, getattr(ddb.client, op), **kw)
        sks = [it["sk"]["S"] for it in got]
        assert sorted(sks) == [f"s{i:02d}" for i in range(50)], (op, limit, len(sks))
        ls = [int(it["l"]["N"]) for it in got]
        assert ls == sorted(ls), (op, "not in index order")
    got = pages(ddb, ddb.client.scan, TableName=name, IndexName="gix", Limit=limit)
    assert len({it["sk"]["S"] for it in got}) == 50


def test_keys_only_and_include_projections_return_only_projected_attributes(ddb):
    for proj, extra in (({"ProjectionType": "KEYS_ONLY"}, set()),
                        ({"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a"]}, {"a"})):
        name = lsi_table(ddb, proj)
        ddb.client.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"S": "s"}, "l": {"N": "1"},
                                                   "g": {"S": "G"}, "a": {"S": "A"}, "b": {"S": "B"}})
        keys = {"pk", "sk", "l"}
        r = ddb.client.query(TableName=name, IndexName="lix", KeyConditionExpression="pk = :p",
                             ExpressionAttributeValues={":p": {"S": "p"}})
        assert set(r["Items"][0]) == keys | extra, (proj, r["Items"])
        r = ddb.client.query(TableName=name, IndexName="gix", KeyConditionExpression="g = :g",
                             ExpressionAttributeValues={":g": {"S": "G"}})
        assert set(r["Items"][0]) == keys | {"g"} | extra, (proj, r["Items"])
        r = ddb.client.scan(TableName=name, IndexName="gix")
        assert set(r["Items"][0]) == keys | {"g"} | extra, (proj, r["Items"])
        # an LSI fetches what is asked for from the table
        r = ddb.client.query(TableName=name, IndexName="lix", KeyConditionExpression="pk = :p",
                             ExpressionAttributeValues={":p": {"S": "p"}}, Select="ALL_ATTRIBUTES")
        assert set(r["Items"][0]) == keys | {"g", "a", "b"}
        # a GSI cannot
        with pytest.raises(ClientError) as e:
            ddb.client.query(TableName=name, IndexName="gix", KeyConditionExpression="g = :g",
                             ExpressionAttributeValues={":g": {"S": "G"}}, Select="ALL_ATTRIBUTES")
        assert code(e) == "ValidationException"


def test_select_specific_attributes_needs_a_projection(ddb):
    name = table(ddb)
    with pytest.raises(ClientError) as e:
        ddb.client.scan(TableName=name, Select="SPECIFIC_ATTRIBUTES")
    assert code(e) == "ValidationException"


# ---------------------------------------------------------------------------
# #17.3: legacy (non-expression) parameters, translated to expressions


def ok(r):
    assert r.status_code == 200, r.text
    return r.json()


def legacy_table(ddb):
    name = table(ddb, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                            {"AttributeName": "sk", "AttributeType": "N"}],
                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    for i in range(10):
        ddb.client.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"N": str(i)}, "v": {"N": str(i * 10)},
                                                   "tag": {"S": "even" if i % 2 == 0 else "odd"}, "x": {"S": "X"}})
    return name


def test_legacy_query_key_conditions_query_filter_and_attributes_to_get(ddb):
    name = legacy_table(ddb)
    r = ok(send(signed(ddb, "Query", {
        "TableName": name,
        "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]},
                          "sk": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "2"}, {"N": "7"}]}},
        "QueryFilter": {"tag": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "even"}]}},
        "AttributesToGet": ["sk", "tag"]})))
    assert [it["sk"]["N"] for it in r["Items"]] == ["2", "4", "6"]
    assert all(set(it) == {"sk", "tag"} for it in r["Items"]), r["Items"]
    assert r["ScannedCount"] == 6
    r = ok(send(signed(ddb, "Query", {
        "TableName": name, "ScanIndexForward": False, "Limit": 2,
        "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]},
                          "sk": {"ComparisonOperator": "GE", "AttributeValueList": [{"N": "5"}]}}})))
    assert [it["sk"]["N"] for it in r["Items"]] == ["9", "8"] and "LastEvaluatedKey" in r


def test_legacy_scan_filter_with_or_in_and_not_null(ddb):
    name = legacy_table(ddb)
    r = ok(send(signed(ddb, "Scan", {
        "TableName": name, "ConditionalOperator": "OR",
        "ScanFilter": {"sk": {"ComparisonOperator": "IN", "AttributeValueList": [{"N": "1"}, {"N": "3"}]},
                       "v": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "75"}]}}})))
    assert sorted(int(it["sk"]["N"]) for it in r["Items"]) == [1, 3, 8, 9]
    r = ok(send(signed(ddb, "Scan", {"TableName": name,
                                     "ScanFilter": {"nope": {"ComparisonOperator": "NULL"},
                                                    "tag": {"ComparisonOperator": "BEGINS_WITH",
                                                            "AttributeValueList": [{"S": "od"}]}}})))
    assert r["Count"] == 5


def test_legacy_get_batch_get_and_conditional_writes(ddb):
    name = legacy_table(ddb)
    key = {"pk": {"S": "p"}, "sk": {"N": "1"}}
    r = ok(send(signed(ddb, "GetItem", {"TableName": name, "Key": key, "AttributesToGet": ["v"]})))
    assert r["Item"] == {"v": {"N": "10"}}
    r = ok(send(signed(ddb, "BatchGetItem", {"RequestItems": {name: {"Keys": [key], "AttributesToGet": ["tag"]}}})))
    assert r["Responses"][name] == [{"tag": {"S": "odd"}}]
    new = {"pk": {"S": "q"}, "sk": {"N": "1"}, "v": {"N": "1"}}
    ok(send(signed(ddb, "PutItem", {"TableName": name, "Item": new, "Expected": {"pk": {"Exists": False}}})))
    r = send(signed(ddb, "PutItem", {"TableName": name, "Item": new, "Expected": {"pk": {"Exists": False}}}))
    assert r.status_code == 400 and err_type(r) == "ConditionalCheckFailedException", r.text
    qkey = {"pk": {"S": "q"}, "sk": {"N": "1"}}
    r = ok(send(signed(ddb, "UpdateItem", {
        "TableName": name, "Key": qkey, "ReturnValues": "ALL_NEW",
        "AttributeUpdates": {"v": {"Action": "ADD", "Value": {"N": "5"}}, "s": {"Action": "PUT", "Value": {"SS": ["a", "b"]}},
                             "gone": {"Action": "DELETE"}},
        "Expected": {"v": {"Value": {"N": "1"}}}})))
    assert r["Attributes"]["v"] == {"N": "6"} and sorted(r["Attributes"]["s"]["SS"]) == ["a", "b"]
    r = ok(send(signed(ddb, "UpdateItem", {
        "TableName": name, "Key": qkey, "ReturnValues": "ALL_NEW",
        "AttributeUpdates": {"s": {"Action": "DELETE", "Value": {"SS": ["a"]}}},
        "Expected": {"v": {"ComparisonOperator": "GE", "AttributeValueList": [{"N": "6"}]}}})))
    assert r["Attributes"]["s"] == {"SS": ["b"]}
    r = send(signed(ddb, "DeleteItem", {"TableName": name, "Key": qkey, "Expected": {"v": {"Value": {"N": "7"}}}}))
    assert r.status_code == 400 and err_type(r) == "ConditionalCheckFailedException", r.text


@pytest.mark.parametrize("op,body,msg", [
    ("Query", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}},
               "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]}}},
     "Can not use both expression and non-expression parameters in the same request: "
     "Non-expression parameters: {KeyConditions} Expression parameters: {ExpressionAttributeValues, KeyConditionExpression}"),
    ("Scan", {"ScanFilter": {"v": {"ComparisonOperator": "EQ", "AttributeValueList": []}}},
     "Invalid number of argument(s) for the EQ ComparisonOperator"),
    ("Scan", {"ScanFilter": {"v": {"ComparisonOperator": "LIKE", "AttributeValueList": [{"S": "x"}]}}},
     "comparisonOperator"),
    ("Query", {"KeyConditions": {"pk": {"ComparisonOperator": "NE", "AttributeValueList": [{"S": "a"}]}}},
     "Unsupported operator on KeyConditions: NE"),
    ("PutItem", {"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}}, "Expected": {"pk": {"Exists": True}}},
     "Value must be provided when Exists is true"),
    ("Scan", {"AttributesToGet": ["pk"], "ProjectionExpression": "pk"}, "Can not use both"),
])
def test_legacy_parameters_are_validated(ddb, op, body, msg):
    name = legacy_table(ddb)
    r = send(signed(ddb, op, {"TableName": name, **body}))
    assert r.status_code == 400 and err_type(r) == "ValidationException", (op, r.text)
    assert msg in r.json()["message"], (op, r.text)


# ---------------------------------------------------------------------------
# #17.2: DynamoDB's longest keys


def test_longest_keys_are_stored_found_and_ordered(ddb):
    name = table(ddb, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "B"},
                                            {"AttributeName": "sk", "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    pk = secrets.token_bytes(2048)
    sks = ["a" * 1023 + c for c in "zyxb"] + ["b" * 1024, "a" * 10]
    for sk in sks:
        ddb.client.put_item(TableName=name, Item={"pk": {"B": pk}, "sk": {"S": sk}, "v": {"S": sk[-1]}})
    for sk in sks:
        got = ddb.client.get_item(TableName=name, Key={"pk": {"B": pk}, "sk": {"S": sk}}, ConsistentRead=True)
        assert got["Item"]["sk"]["S"] == sk
    other = bytearray(pk)
    other[-1] ^= 1
    assert "Item" not in ddb.client.get_item(TableName=name, Key={"pk": {"B": bytes(other)}, "sk": {"S": sks[0]}})
    got = pages(ddb, ddb.client.query, TableName=name, KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"B": pk}}, Limit=2)
    assert [it["sk"]["S"] for it in got] == sorted(sks)
    got = ddb.client.query(TableName=name, KeyConditionExpression="pk = :p AND sk > :s",
                           ExpressionAttributeValues={":p": {"B": pk}, ":s": {"S": "a" * 1023 + "x"}})
    assert [it["sk"]["S"] for it in got["Items"]] == sorted(s for s in sks if s > "a" * 1023 + "x")
    ddb.client.delete_item(TableName=name, Key={"pk": {"B": pk}, "sk": {"S": sks[0]}})
    assert "Item" not in ddb.client.get_item(TableName=name, Key={"pk": {"B": pk}, "sk": {"S": sks[0]}},
                                             ConsistentRead=True)


# ---------------------------------------------------------------------------
# #18.13: a page stops reading at its byte limit


def _toast_blocks(database_url):
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(toast_blks_read, 0) + coalesce(toast_blks_hit, 0) FROM pg_statio_user_tables"
                    " WHERE relname = 'items'")
        n = cur.fetchone()[0]
    conn.close()
    return n


def _set_autovacuum(database_url, on):
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        v = "true" if on else "false"
        cur.execute(f"ALTER TABLE items SET (autovacuum_enabled = {v}, toast.autovacuum_enabled = {v})")
        if not on:
            # wait out a worker that is already at it
            for _ in range(60):
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'autovacuum:%items%'")
                if cur.fetchone()[0] == 0:
                    break
                __import__("time").sleep(1)
    conn.close()


def _settled_toast_blocks(database_url):
    """The counter once backends have flushed their statistics (PostgreSQL
    reports them at intervals of up to ~10 s)."""
    import time
    last, same = _toast_blocks(database_url), 0
    for _ in range(30):
        time.sleep(1)
        now = _toast_blocks(database_url)
        same = same + 1 if now == last else 0
        last = now
        if same >= 12:
            break
    return last


def test_a_page_of_large_items_reads_about_one_megabyte(ddb):
    name = table(ddb, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                            {"AttributeName": "sk", "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    n = 20
    for i in range(n):
        # random text: PostgreSQL cannot compress it below its real size
        ddb.client.put_item(TableName=name, Item={"pk": {"S": "big"}, "sk": {"S": f"{i:02d}"},
                                                   "blob": {"S": secrets.token_hex(190_000)}})
    with psycopg2.connect(ddb.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_relation_size(reltoastrelid) / 8192 FROM pg_class WHERE relname = 'items'")
        toast_blocks_total = cur.fetchone()[0]
    conn.close()
    # autovacuum reads TOAST too: off for the measurement (on a busy test
    # database it read the whole table twice inside the window)
    _set_autovacuum(ddb.database_url, False)
    try:
        before = _settled_toast_blocks(ddb.database_url)
        first = ddb.client.query(TableName=name, KeyConditionExpression="pk = :p",
                                 ExpressionAttributeValues={":p": {"S": "big"}})
        read = _settled_toast_blocks(ddb.database_url) - before
    finally:
        _set_autovacuum(ddb.database_url, True)
    assert 1 <= first["Count"] <= 4 and "LastEvaluatedKey" in first, first["Count"]
    # 20 items of 380 KB are ~950 TOAST blocks; one page is ~3 of them
    per_item = 380_000 / 8192
    assert read < 8 * per_item, f"one page read {read} TOAST blocks (table: {toast_blocks_total})"
    got = pages(ddb, ddb.client.query, TableName=name, KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "big"}})
    assert [it["sk"]["S"] for it in got] == [f"{i:02d}" for i in range(n)]


# ---------------------------------------------------------------------------
# #17.4: DynamoDB's validation of requests it refuses


def _refused(ddb, op, body, msg):
    r = send(signed(ddb, op, body))
    assert r.status_code == 400 and err_type(r) == "ValidationException", (op, r.text)
    assert msg in r.json()["message"], (op, r.text)


def test_empty_and_wrong_typed_index_keys_are_refused_on_every_put_path(ddb):
    name = lsi_table(ddb, {"ProjectionType": "ALL"})
    base = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    for item, msg in (({**base, "g": {"S": ""}}, "cannot contain an empty string value. IndexName: gix"),
                      ({**base, "g": {"N": "1"}}, "Type mismatch for Index Key g")):
        _refused(ddb, "PutItem", {"TableName": name, "Item": item}, msg)
        _refused(ddb, "BatchWriteItem", {"RequestItems": {name: [{"PutRequest": {"Item": item}}]}}, msg)
        _refused(ddb, "TransactWriteItems", {"TransactItems": [{"Put": {"TableName": name, "Item": item}}]}, msg)
    assert ddb.client.scan(TableName=name)["Count"] == 0


def test_a_query_filter_on_a_key_attribute_is_refused(ddb):
    name = lsi_table(ddb, {"ProjectionType": "ALL"})
    _refused(ddb, "Query", {"TableName": name, "KeyConditionExpression": "pk = :p", "FilterExpression": "sk > :s",
                            "ExpressionAttributeValues": {":p": {"S": "p"}, ":s": {"S": "a"}}},
             "Filter Expression can only contain non-primary key attributes: Primary key attribute: sk")
    _refused(ddb, "Query", {"TableName": name, "IndexName": "gix", "KeyConditionExpression": "g = :g",
                            "FilterExpression": "l > :l",
                            "ExpressionAttributeValues": {":g": {"S": "G"}, ":l": {"N": "1"}}},
             "Primary key attribute: l")
    # a Scan may filter on keys
    ddb.client.scan(TableName=name, FilterExpression="sk > :s", ExpressionAttributeValues={":s": {"S": "a"}})


def test_attribute_definition_names_are_1_to_255_bytes(ddb):
    for n, msg in (("", "greater than or equal to 1"), ("a" * 256, "less than or equal to 255")):
        _refused(ddb, "CreateTable", {"TableName": "t" + secrets.token_hex(4), "BillingMode": "PAY_PER_REQUEST",
                                      "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"}],
                                      "KeySchema": [{"AttributeName": n, "KeyType": "HASH"}]}, msg)


def test_an_lsi_on_a_hash_only_table_is_refused(ddb):
    _refused(ddb, "CreateTable", {
        "TableName": "t" + secrets.token_hex(4), "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "l", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "LocalSecondaryIndexes": [{"IndexName": "lix", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                                     {"AttributeName": "l", "KeyType": "RANGE"}],
                                   "Projection": {"ProjectionType": "ALL"}}]},
        "Table KeySchema does not have a range key")


def test_transactions_refuse_one_item_twice_and_more_than_4_mb(ddb):
    name = table(ddb)
    key = {"pk": {"S": "k"}}
    _refused(ddb, "TransactGetItems", {"TransactItems": [{"Get": {"TableName": name, "Key": key}},
                                                         {"Get": {"TableName": name, "Key": key}}]},
             "Transaction request cannot include multiple operations on one item")
    big = "x" * 390_000
    puts = [{"Put": {"TableName": name, "Item": {"pk": {"S": f"k{i}"}, "v": {"S": big}}}} for i in range(11)]
    _refused(ddb, "TransactWriteItems", {"TransactItems": puts}, "cannot be larger than 4 MB")
    assert ddb.client.scan(TableName=name)["Count"] == 0


def test_update_table_without_a_change_is_refused(ddb):
    name = table(ddb)
    _refused(ddb, "UpdateTable", {"TableName": name}, "At least one of ProvisionedThroughput")
    _refused(ddb, "UpdateTable", {"TableName": name, "GlobalSecondaryIndexUpdates": []}, "At least one of")


def test_date_and_server_headers_and_a_precise_creation_time(ddb):
    import email.utils
    import time
    name = "t" + secrets.token_hex(4)
    r = ok(send(signed(ddb, "CreateTable", {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]})))
    created = r["TableDescription"]["CreationDateTime"]
    assert abs(created - time.time()) < 60
    resp = send(signed(ddb, "DescribeTable", {"TableName": name}))
    assert resp.headers["Server"] == "onceledger"
    when = email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
    assert abs(when - time.time()) < 60, resp.headers["Date"]
    stored = resp.json()["Table"]["CreationDateTime"]
    assert stored == created
    # sub-second precision (a creation exactly on a whole second is 1 in 10^6)
    assert any(ok(send(signed(ddb, "CreateTable", {
        "TableName": "t" + secrets.token_hex(4), "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]})))["TableDescription"]["CreationDateTime"] % 1 != 0
        for _ in range(3))


# ---------------------------------------------------------------------------
# #17.6: consumed capacity by DynamoDB's arithmetic


def test_consumed_capacity_follows_dynamodbs_rules(ddb):
    name = lsi_table(ddb, {"ProjectionType": "KEYS_ONLY"})
    c = ddb.client
    small = {"pk": {"S": "p"}, "sk": {"S": "a"}, "l": {"N": "1"}}
    big = {"pk": {"S": "p"}, "sk": {"S": "b"}, "l": {"N": "2"}, "g": {"S": "G"}, "blob": {"S": "x" * 9000}}
    # PutItem: ceil(size / 1 KB); a new item in an index costs a write there
    r = c.put_item(TableName=name, Item=big, ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert r["Table"]["CapacityUnits"] == 9.0, r
    assert r["LocalSecondaryIndexes"]["lix"]["CapacityUnits"] == 1.0, r
    assert r["GlobalSecondaryIndexes"]["gix"]["CapacityUnits"] == 1.0, r
    assert r["CapacityUnits"] == 11.0, r
    r = c.put_item(TableName=name, Item=small, ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert r == {"TableName": name, "CapacityUnits": 2.0, "WriteCapacityUnits": 2.0}, r  # table 1 + lix 1
    # GetItem: ceil(size / 4 KB), half when eventually consistent
    key = {"pk": {"S": "p"}, "sk": {"S": "b"}}
    assert c.get_item(TableName=name, Key=key, ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]["CapacityUnits"] == 1.5
    assert c.get_item(TableName=name, Key=key, ConsistentRead=True,
                      ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]["CapacityUnits"] == 3.0
    assert c.get_item(TableName=name, Key={"pk": {"S": "p"}, "sk": {"S": "none"}},
                      ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]["CapacityUnits"] == 0.5
    # Query: the items read, summed, then rounded to 4 KB; an index read is the index's
    q = c.query(TableName=name, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}},
                ConsistentRead=True, ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert q["CapacityUnits"] == 3.0 and q["Table"]["CapacityUnits"] == 3.0, q
    q = c.query(TableName=name, IndexName="gix", KeyConditionExpression="g = :g",
                ExpressionAttributeValues={":g": {"S": "G"}}, ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    # the GSI projects keys only: its entry, not the 9 KB item, is read
    assert q["Table"]["CapacityUnits"] == 0.0 and q["GlobalSecondaryIndexes"]["gix"]["CapacityUnits"] == 0.5, q
    # UpdateItem changing an index key: a delete and a put in that index
    r = c.update_item(TableName=name, Key=key, UpdateExpression="SET g = :h",
                      ExpressionAttributeValues={":h": {"S": "H"}}, ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert r["GlobalSecondaryIndexes"]["gix"]["CapacityUnits"] == 2.0 and r["Table"]["CapacityUnits"] == 9.0, r
    # DeleteItem: the old item's size
    r = c.delete_item(TableName=name, Key=key, ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert r["CapacityUnits"] == 11.0, r  # table 9 + lix 1 + gix 1
    # transactions: twice
    r = c.transact_write_items(TransactItems=[{"Put": {"TableName": name, "Item": small}}],
                               ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert r == [{"TableName": name, "CapacityUnits": 2.0, "WriteCapacityUnits": 2.0}], r
    r = c.transact_get_items(TransactItems=[{"Get": {"TableName": name, "Key": {"pk": {"S": "p"}, "sk": {"S": "a"}}}}],
                             ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert r[0]["CapacityUnits"] == 2.0, r
    r = c.batch_get_item(RequestItems={name: {"Keys": [{"pk": {"S": "p"}, "sk": {"S": "a"}},
                                                       {"pk": {"S": "p"}, "sk": {"S": "zz"}}]}},
                         ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert r == [{"TableName": name, "CapacityUnits": 1.0, "ReadCapacityUnits": 1.0}], r
    r = c.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": big}}]},
                           ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert r == [{"TableName": name, "CapacityUnits": 9.0, "WriteCapacityUnits": 9.0}], r


# ---------------------------------------------------------------------------
# #18.6 for SigV4: made-up access key ids


def _metric(d_url, name):
    import re as _re
    text = requests.get(d_url + "/metrics", timeout=10).text
    m = _re.search(r"^" + name + r" (\S+)$", text, _re.M)
    return float(m.group(1))


def test_made_up_access_key_ids_cost_bounded_lookups_and_keep_valid_keys_cached(stack, cli, tmp_path):
    """The SigV4 key cache evicts one least recently used entry at a time
    (it was wiped when full) and lookups of ids it does not know as valid
    keys take a token of the worker's bucket (auth_lookup_rate)."""
    dd = DynamoDaemon(stack, cli, tmp_path, ["--auth-lookup-rate", "20", "--auth-cache-ttl-ms", "5000"],
                      name="akid", threads=1)
    d = dd.daemon
    _, akid, secret = dd.tenant_keys()
    try:
        o = type("O", (), {})()
        o.url, o.creds = dd.url, Credentials(akid, secret)
        assert send(signed(o, "ListTables", {})).status_code == 200
        q0 = _metric(d.url, "onceledger_sigv4_key_queries_total")
        statuses = {}
        t0 = __import__("time").monotonic()
        for _ in range(200):
            fake = Credentials("OLAK" + secrets.token_hex(8).upper(), "x" * 40)
            r = send(signed(o, "ListTables", {}, creds=fake))
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert send(signed(o, "ListTables", {})).status_code == 200  # the valid key, from the cache
        elapsed = __import__("time").monotonic() - t0
        queries = _metric(d.url, "onceledger_sigv4_key_queries_total") - q0
        assert queries <= 20 + 20 * elapsed + 1, (queries, elapsed, statuses)
        assert _metric(d.url, "onceledger_sigv4_lookups_throttled_total") > 0
        assert set(statuses) <= {400, 503}, statuses
    finally:
        dd.finish()
