"""The DynamoDB endpoint's fast paths (issue #17 item 8) give the answers of
the general paths.

GetItem and Query answer from the stored items' text:
when nothing asks for the items' contents the endpoint passes PostgreSQL's
jsonb text through without decoding it; a projection, a filter, an index's
projection or ReturnConsumedCapacity still decode every item. Both paths
must give the same answer for the same items: these tests ask each question
both ways (ReturnConsumedCapacity or a projection of every attribute forces
the decoding path) and compare the bodies as JSON.

A PutItem whose condition is attribute_not_exists(<key attribute>) (the
idempotency claim) is one INSERT ... ON CONFLICT: it must succeed exactly
when no live item has the key, also against an expired item and under
concurrent claims of one key.

Requests are signed with botocore's SigV4Auth and sent raw, so the bodies
are compared as the endpoint wrote them."""
import json
import secrets
import threading
import time

import pytest
import requests

botocore = pytest.importorskip("botocore")
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

from oltest import DynamoDaemon  # noqa: E402

TARGET = "DynamoDB_20120810."


@pytest.fixture(scope="module")
def ddb(stack, cli, tmp_path_factory):
    dd = DynamoDaemon(stack, cli, tmp_path_factory.mktemp("ddbtext"))
    _tenant, akid, secret = dd.tenant_keys()

    class Ddb:
        pass

    o = Ddb()
    o.url, o.creds = dd.url, Credentials(akid, secret)
    yield o
    dd.finish()


def call(o, op, body):
    """The operation's answer: the parsed body and its raw text."""
    data = json.dumps(body)
    req = AWSRequest(method="POST", url=o.url + "/", data=data,
                     headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET + op})
    SigV4Auth(o.creds, "dynamodb", "us-east-1").add_auth(req)
    r = requests.post(req.url, data=req.body, headers=dict(req.headers.items()), timeout=60)
    assert r.status_code == 200, (op, r.status_code, r.text[:300])
    assert r.headers["Content-Type"] == "application/x-amz-json-1.0"
    return r.json(), r.text


def decoded(o, op, body):
    """The same question through the decoding path: ConsumedCapacity asked
    for, then dropped from the answer."""
    got, _ = call(o, op, dict(body, ReturnConsumedCapacity="TOTAL"))
    assert "ConsumedCapacity" in got
    del got["ConsumedCapacity"]
    return got


def make_table(o, **extra):
    name = "x" + secrets.token_hex(4)
    spec = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]}
    spec.update(extra)
    call(o, "CreateTable", spec)
    return name


# Every type, nesting, escapes, control characters and non-ASCII text.
RICH = {
    "s": {"S": "quote \" backslash \\ tab \t newline \n bell \u0007 é 日本 🎉 </script>"},
    "n": {"N": "-1234567890123456789.0000000000000000001"},
    "small": {"N": "1E-130"},
    "b": {"B": "AAECAwT/"},
    "t": {"BOOL": True},
    "f": {"BOOL": False},
    "z": {"NULL": True},
    "ss": {"SS": ["b", "a", "é", "c"]},
    "ns": {"NS": ["10", "-1", "2.5"]},
    "bs": {"BS": ["Ag==", "AQ=="]},
    "l": {"L": [{"S": ""}, {"N": "0"}, {"L": []}, {"M": {}}]},
    "m": {"M": {"deep": {"M": {"x": {"SS": ["y"]}}}, "with space": {"S": "v"}, "": {"S": "empty name"}}},
    "empty": {"S": ""},
}


def passed_through(text):
    """PostgreSQL's jsonb text puts a space after ':' (the daemon's own
    encoder does not): the answer carries the stored text."""
    return '": {"' in text


def test_get_item_text_equals_the_decoded_answer(ddb):
    name = make_table(ddb)
    item = dict(RICH, pk={"S": "p"}, sk={"S": "1"})
    call(ddb, "PutItem", {"TableName": name, "Item": item})
    key = {"pk": {"S": "p"}, "sk": {"S": "1"}}
    fast, text = call(ddb, "GetItem", {"TableName": name, "Key": key})
    assert passed_through(text)
    assert fast == decoded(ddb, "GetItem", {"TableName": name, "Key": key})
    names = {f"#a{i}": a for i, a in enumerate(item)}
    proj, text = call(ddb, "GetItem", {"TableName": name, "Key": key, "ProjectionExpression": ", ".join(names),
                                       "ExpressionAttributeNames": names})
    assert fast == proj and not passed_through(text)
    assert fast["Item"]["s"] == RICH["s"] and fast["Item"]["m"] == RICH["m"]
    assert sorted(fast["Item"]["ss"]["SS"]) == sorted(RICH["ss"]["SS"])
    missing, text = call(ddb, "GetItem", {"TableName": name, "Key": {"pk": {"S": "none"}, "sk": {"S": "1"}}})
    assert missing == {} and text == "{}"


def test_get_item_after_updates_in_sql_equals_the_decoded_answer(ddb):
    # numbers, sets and lists computed by PostgreSQL, not encoded by the daemon
    name = make_table(ddb)
    key = {"pk": {"S": "u"}, "sk": {"S": "1"}}
    call(ddb, "PutItem", {"TableName": name, "Item": dict(key, n={"N": "1"}, ss={"SS": ["m"]}, l={"L": [{"N": "1"}]})})
    call(ddb, "UpdateItem", {"TableName": name, "Key": key,
                             "UpdateExpression": "SET n = n + :d, l = list_append(l, :l) ADD ss :s, ns :ns",
                             "ExpressionAttributeValues": {":d": {"N": "0.50"}, ":l": {"L": [{"S": "z"}]},
                                                           ":s": {"SS": ["z", "a"]}, ":ns": {"NS": ["3", "1"]}}})
    fast, _ = call(ddb, "GetItem", {"TableName": name, "Key": key})
    slow = decoded(ddb, "GetItem", {"TableName": name, "Key": key})
    assert fast["Item"]["n"] == slow["Item"]["n"] == {"N": "1.5"}
    assert fast["Item"]["l"] == slow["Item"]["l"]
    # DynamoDB promises no set order: the same members
    for k in ("ss", "ns"):
        t = next(iter(fast["Item"][k]))
        assert sorted(fast["Item"][k][t]) == sorted(slow["Item"][k][t]), k
    assert set(fast["Item"]) == set(slow["Item"])


def test_query_pages_text_equal_the_decoded_pages(ddb):
    name = make_table(ddb)
    for i in range(25):
        call(ddb, "PutItem", {"TableName": name, "Item": dict(RICH, pk={"S": "q"}, sk={"S": f"s{i:02d}"},
                                                               i={"N": str(i)})})
    call(ddb, "PutItem", {"TableName": name, "Item": {"pk": {"S": "other"}, "sk": {"S": "s"}}})
    for limit in (None, 1, 7, 25, 30):
        for forward in (True, False):
            q = {"TableName": name, "KeyConditionExpression": "pk = :p AND sk >= :s",
                 "ExpressionAttributeValues": {":p": {"S": "q"}, ":s": {"S": "s03"}}, "ScanIndexForward": forward}
            if limit:
                q["Limit"] = limit
            seen = []
            for _ in range(40):
                fast, text = call(ddb, "Query", q)
                assert passed_through(text) or fast["Count"] == 0, (limit, forward)
                assert fast == decoded(ddb, "Query", q), (limit, forward)
                seen += [it["sk"]["S"] for it in fast["Items"]]
                if "LastEvaluatedKey" not in fast:
                    break
                q["ExclusiveStartKey"] = fast["LastEvaluatedKey"]
            want = [f"s{i:02d}" for i in range(3, 25)]
            assert seen == (want if forward else want[::-1]), (limit, forward)
    empty, text = call(ddb, "Query", {"TableName": name, "KeyConditionExpression": "pk = :p",
                                      "ExpressionAttributeValues": {":p": {"S": "none"}}})
    assert empty == {"Count": 0, "ScannedCount": 0, "Items": []}, text


def test_query_with_a_filter_or_projection_still_decodes(ddb):
    name = make_table(ddb)
    for i in range(6):
        call(ddb, "PutItem", {"TableName": name, "Item": {"pk": {"S": "f"}, "sk": {"S": str(i)}, "i": {"N": str(i)},
                                                           "x": {"S": "drop me"}}})
    base = {"TableName": name, "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "f"}}}
    filt, _ = call(ddb, "Query", dict(base, FilterExpression="i >= :two",
                                      ExpressionAttributeValues={":p": {"S": "f"}, ":two": {"N": "2"}}))
    assert filt["Count"] == 4 and filt["ScannedCount"] == 6
    proj, text = call(ddb, "Query", dict(base, ProjectionExpression="sk, i"))
    assert proj["Count"] == 6 and all(set(it) == {"sk", "i"} for it in proj["Items"]) and not passed_through(text)
    count, _ = call(ddb, "Query", dict(base, Select="COUNT"))
    assert count == {"Count": 6, "ScannedCount": 6}


def test_query_over_an_index_with_all_attributes_is_the_decoded_answer(ddb):
    name = make_table(ddb, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                 {"AttributeName": "sk", "AttributeType": "S"},
                                                 {"AttributeName": "g", "AttributeType": "S"}],
                      GlobalSecondaryIndexes=[{"IndexName": "all", "Projection": {"ProjectionType": "ALL"},
                                               "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]},
                                              {"IndexName": "keys", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                               "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}])
    for i in range(5):
        call(ddb, "PutItem", {"TableName": name, "Item": {"pk": {"S": f"p{i}"}, "sk": {"S": "s"}, "g": {"S": "G"},
                                                           "v": {"N": str(i)}}})
    for ix in ("all", "keys"):
        q = {"TableName": name, "IndexName": ix, "KeyConditionExpression": "g = :g",
             "ExpressionAttributeValues": {":g": {"S": "G"}}, "Limit": 3}
        fast, text = call(ddb, "Query", q)
        assert passed_through(text) == (ix == "all"), ix
        assert fast == decoded(ddb, "Query", q), ix
        assert set(fast["LastEvaluatedKey"]) == {"pk", "sk", "g"}
        want = {"pk", "sk", "g", "v"} if ix == "all" else {"pk", "sk", "g"}
        assert all(set(it) == want for it in fast["Items"]), ix


def test_a_page_near_the_byte_limit_is_cut_the_same_way(ddb):
    # 3 items of ~390 KB: over 1 MB of text, so the page goes through the
    # decoding path, which cuts it where DynamoDB's size passes 1 MB
    name = make_table(ddb)
    for i in range(3):
        call(ddb, "PutItem", {"TableName": name, "Item": {"pk": {"S": "big"}, "sk": {"S": str(i)},
                                                           "v": {"S": secrets.token_hex(195_000)}}})
    q = {"TableName": name, "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "big"}}}
    fast, _ = call(ddb, "Query", q)
    assert fast == decoded(ddb, "Query", q)
    seen = [it["sk"]["S"] for it in fast["Items"]]
    while "LastEvaluatedKey" in fast:
        fast, _ = call(ddb, "Query", dict(q, ExclusiveStartKey=fast["LastEvaluatedKey"]))
        seen += [it["sk"]["S"] for it in fast["Items"]]
    assert seen == ["0", "1", "2"]


def call_status(o, op, body):
    """(HTTP status, parsed body) without asserting success."""
    req = AWSRequest(method="POST", url=o.url + "/", data=json.dumps(body),
                     headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET + op})
    SigV4Auth(o.creds, "dynamodb", "us-east-1").add_auth(req)
    r = requests.post(req.url, data=req.body, headers=dict(req.headers.items()), timeout=60)
    return r.status_code, r.json()


def claim(o, name, pk, cond_attr="pk", **extra):
    item = {"pk": {"S": pk}, "sk": {"S": "K"}, "status": {"S": "IN_PROGRESS"}}
    item.update(extra.pop("item_extra", {}))
    body = {"TableName": name, "Item": item, "ConditionExpression": f"attribute_not_exists({cond_attr})"}
    body.update(extra)
    return call_status(o, "PutItem", body)


@pytest.mark.parametrize("cond_attr", ["pk", "sk"])
def test_a_claim_succeeds_once_per_key(ddb, cond_attr):
    name = make_table(ddb)
    st, body = claim(ddb, name, "k1", cond_attr)
    assert (st, body) == (200, {})
    st, body = claim(ddb, name, "k1", cond_attr, item_extra={"status": {"S": "SECOND"}})
    assert st == 400 and body["__type"].endswith("#ConditionalCheckFailedException") and "Item" not in body
    got, _ = call(ddb, "GetItem", {"TableName": name, "Key": {"pk": {"S": "k1"}, "sk": {"S": "K"}}})
    assert got["Item"]["status"] == {"S": "IN_PROGRESS"}
    # the general path (old item asked for) agrees
    st, body = claim(ddb, name, "k1", cond_attr, ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert st == 400 and body["Item"]["status"] == {"S": "IN_PROGRESS"}
    # capacity asked for: the same outcome, with its units
    st, body = claim(ddb, name, "k2", cond_attr, ReturnConsumedCapacity="TOTAL")
    assert st == 200 and body["ConsumedCapacity"]["CapacityUnits"] == 1.0
    st, body = claim(ddb, name, "k2", cond_attr, ReturnConsumedCapacity="TOTAL")
    assert st == 400 and body["__type"].endswith("#ConditionalCheckFailedException")


def test_a_claim_takes_the_place_of_an_expired_item(ddb):
    name = make_table(ddb)
    call(ddb, "UpdateTimeToLive", {"TableName": name,
                                   "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "exp"}})
    past, future = str(int(time.time()) - 60), str(int(time.time()) + 3600)
    call(ddb, "PutItem", {"TableName": name, "Item": {"pk": {"S": "old"}, "sk": {"S": "K"}, "exp": {"N": past}}})
    call(ddb, "PutItem", {"TableName": name, "Item": {"pk": {"S": "live"}, "sk": {"S": "K"}, "exp": {"N": future}}})
    st, _ = claim(ddb, name, "old", item_extra={"exp": {"N": future}})
    assert st == 200
    got, _ = call(ddb, "GetItem", {"TableName": name, "Key": {"pk": {"S": "old"}, "sk": {"S": "K"}}})
    assert got["Item"]["status"] == {"S": "IN_PROGRESS"} and got["Item"]["exp"] == {"N": future}
    st, body = claim(ddb, name, "live")
    assert st == 400 and body["__type"].endswith("#ConditionalCheckFailedException")


def test_concurrent_claims_of_one_key_have_one_winner(ddb):
    name = make_table(ddb)
    for round_ in range(5):
        results, start = [], threading.Barrier(8)

        def one(i):
            start.wait()
            results.append(claim(ddb, name, f"race{round_}", item_extra={"who": {"N": str(i)}}))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = [b for s, b in results if s == 200]
        failed = [b for s, b in results if s == 400 and b["__type"].endswith("#ConditionalCheckFailedException")]
        assert len(ok) == 1 and len(failed) == 7, results
