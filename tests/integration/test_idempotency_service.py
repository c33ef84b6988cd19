"""Idempotency as a service (docs/api.md §9): claim (201 in_progress / 200
completed / 409 idempotency_key_in_use / 422 idempotency_key_reused),
complete and release with the lease token (409 lease_lost otherwise), lease
takeover, GET without the lease token, percent-encoded keys, validation,
ttl_seconds expiry, tenants, scopes, and racing claimers."""

import calendar
import json
import re
import secrets
import threading
import time
import uuid
from urllib.parse import quote

import pytest
import requests

from oltest import assert_problem

BASE = "/v1/idempotency-keys"


def _k(prefix="svc"):
    return f"{prefix}-{uuid.uuid4().hex}"


def _p(key):
    """The percent-encoded path segment of a key."""
    return quote(key, safe="")


def _claim(d, apikey, key, session=None, timeout=10, **fields):
    body = {"key": key}
    body.update(fields)
    return d.post(BASE, key=apikey, json=body, session=session, timeout=timeout)


def _complete(d, apikey, key, token, response):
    return d.post(f"{BASE}/{_p(key)}/complete", key=apikey, json={"lease_token": token, "response": response})


def _release(d, apikey, key, token):
    return d.post(f"{BASE}/{_p(key)}/release", key=apikey, json={"lease_token": token})


def _get(d, apikey, key):
    return d.get(f"{BASE}/{_p(key)}", key=apikey)


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]00:00)")


def _ts(value):
    """RFC 3339 UTC timestamp -> epoch seconds."""
    assert isinstance(value, str), f"timestamp is not a string: {value!r}"
    m = _RFC3339.fullmatch(value)
    assert m, f"not an RFC 3339 UTC timestamp: {value!r}"
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    return calendar.timegm((y, mo, d, h, mi, s)) + (float(m.group(7)) if m.group(7) else 0.0)


def _json_ok(r, status):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:400]}"
    assert r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", r.headers
    return r.json()


def _claimed(r, key, lease_seconds=30, ttl_seconds=86400, t=None):
    """r is a 201 claim of key; returns its lease token."""
    body = _json_ok(r, 201)
    assert body.get("key") == key, body
    assert body.get("status") == "in_progress", body
    tok = body.get("lease_token")
    assert isinstance(tok, str) and len(tok) >= 16, f"lease_token {tok!r}"
    t = time.time() if t is None else t
    assert abs(_ts(body.get("lease_expires_at")) - (t + lease_seconds)) < 5, body
    assert abs(_ts(body.get("expires_at")) - (t + ttl_seconds)) < 5, body
    return tok


def _in_use(r):
    assert_problem(r, 409, "idempotency_key_in_use")
    ra = r.headers.get("Retry-After", "")
    assert ra.strip().isdigit() and int(ra) >= 1, f"Retry-After {ra!r}"


def _no_token(body, token=None, text=""):
    assert "lease_token" not in json.dumps(body), f"lease_token shown: {body}"
    if token:
        assert token not in text, f"the lease token appears in {text[:300]}"


RESP = {"status": 201, "headers": {"Content-Type": "application/json", "X-Charge": "ch_1"},
        "body": {"charge": "ch_1", "amount": 1250, "nested": {"list": [1, "two", None, True]}, "u": "\u00e9\u20ac"}}


@pytest.fixture
def wkey(make_key):
    return make_key("read,write")


# ---------------------------------------------------------------------------


def test_claim_new_key_is_201_in_progress(daemon, wkey):
    key = _k()
    t = time.time()
    r = _claim(daemon, wkey, key)
    _claimed(r, key, t=t)
    assert set(r.json()) >= {"key", "status", "lease_token", "lease_expires_at", "expires_at"}


def test_claim_needs_no_idempotency_key_header(daemon, wkey):
    # the gate does not apply to these routes: no 400 idempotency_key_missing
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key), key)
    r = _complete(daemon, wkey, key, tok, {"status": 200})
    _json_ok(r, 200)
    key2 = _k()
    tok2 = _claimed(_claim(daemon, wkey, key2), key2)
    r = _release(daemon, wkey, key2, tok2)
    assert r.status_code == 204, r.text[:300]
    assert r.content == b""


def test_claim_while_leased_is_409_in_use(daemon, wkey):
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key, fingerprint="fp"), key)
    r = _claim(daemon, wkey, key, fingerprint="fp")
    _in_use(r)
    _no_token(r.json(), tok, r.text)
    # still the holder's lease
    _json_ok(_complete(daemon, wkey, key, tok, {"status": 204}), 200)


def test_complete_then_claim_returns_completed(daemon, wkey):
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key, fingerprint="fp-1"), key)
    body = _json_ok(_complete(daemon, wkey, key, tok, RESP), 200)
    assert body.get("key") == key and body.get("status") == "completed", body
    assert body.get("response") == RESP, body
    _no_token(body)

    t = time.time()
    r = _claim(daemon, wkey, key, fingerprint="fp-1")
    body = _json_ok(r, 200)
    assert body.get("key") == key and body.get("status") == "completed", body
    assert body.get("response") == RESP, body
    assert abs(_ts(body.get("expires_at")) - (t + 86400)) < 10, body
    _no_token(body, tok, r.text)
    # and again: nothing changes
    r2 = _claim(daemon, wkey, key, fingerprint="fp-1")
    assert _json_ok(r2, 200) == body


@pytest.mark.parametrize("body", [None, "text", [1, {"a": None}], 0, {"deep": {"er": [[], {}]}}],
                         ids=["null", "string", "array", "zero", "object"])
def test_completed_response_body_is_stored_as_given(daemon, wkey, body):
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key), key)
    resp = {"status": 402, "headers": {}, "body": body}
    got = _json_ok(_complete(daemon, wkey, key, tok, resp), 200)
    assert got["response"] == resp, got
    assert _json_ok(_claim(daemon, wkey, key), 200)["response"] == resp
    assert _json_ok(_get(daemon, wkey, key), 200)["response"] == resp


def test_complete_without_headers_and_body(daemon, wkey):
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key), key)
    got = _json_ok(_complete(daemon, wkey, key, tok, {"status": 500}), 200)
    assert got["status"] == "completed" and got["response"]["status"] == 500, got
    assert got["response"].get("headers") in (None, {}), got
    assert got["response"].get("body") is None, got


def test_complete_with_a_token_not_the_holders_is_lease_lost(daemon, wkey):
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key), key)
    # a made-up token
    bad = ("x" if tok[0] != "x" else "y") + tok[1:]
    assert_problem(_complete(daemon, wkey, key, bad, RESP), 409, "lease_lost")
    assert_problem(_complete(daemon, wkey, key, "nope", RESP), 409, "lease_lost")
    # another key's token
    other = _k()
    otok = _claimed(_claim(daemon, wkey, other), other)
    assert_problem(_complete(daemon, wkey, key, otok, RESP), 409, "lease_lost")
    assert _json_ok(_get(daemon, wkey, key), 200)["status"] == "in_progress"
    # the holder completes; the same token a second time is lease_lost
    _json_ok(_complete(daemon, wkey, key, tok, RESP), 200)
    assert_problem(_complete(daemon, wkey, key, tok, {"status": 200, "body": "other"}), 409, "lease_lost")
    assert _json_ok(_get(daemon, wkey, key), 200)["response"] == RESP
    # releasing a completed record does not free it
    assert_problem(_release(daemon, wkey, key, tok), 409, "lease_lost")
    assert _json_ok(_claim(daemon, wkey, key), 200)["response"] == RESP


def test_get_never_shows_the_lease_token(daemon, wkey):
    key = _k()
    t = time.time()
    tok = _claimed(_claim(daemon, wkey, key, ttl_seconds=3600), key, ttl_seconds=3600, t=t)
    r = _get(daemon, wkey, key)
    body = _json_ok(r, 200)
    assert body.get("key") == key and body.get("status") == "in_progress", body
    assert abs(_ts(body.get("expires_at")) - (t + 3600)) < 5, body
    _no_token(body, tok, r.text)
    _json_ok(_complete(daemon, wkey, key, tok, RESP), 200)
    r = _get(daemon, wkey, key)
    body = _json_ok(r, 200)
    assert body.get("status") == "completed" and body.get("response") == RESP, body
    _no_token(body, tok, r.text)


def test_unknown_key_is_404(daemon, wkey):
    key = _k()
    assert_problem(_get(daemon, wkey, key), 404, "not_found")
    assert_problem(_complete(daemon, wkey, key, "tok", RESP), 404, "not_found")


def test_release_frees_the_key(daemon, wkey):
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key, fingerprint="fp"), key)
    r = _release(daemon, wkey, key, tok)
    assert r.status_code == 204, r.text[:300]
    assert r.content == b""
    tok2 = _claimed(_claim(daemon, wkey, key, fingerprint="fp"), key)
    assert tok2 != tok, "a new claim must get a new lease token"
    assert_problem(_complete(daemon, wkey, key, tok, RESP), 409, "lease_lost")
    assert_problem(_release(daemon, wkey, key, tok), 409, "lease_lost")
    _json_ok(_complete(daemon, wkey, key, tok2, RESP), 200)


def test_release_with_wrong_token_is_lease_lost(daemon, wkey):
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key), key)
    assert_problem(_release(daemon, wkey, key, "nope-" + secrets.token_hex(8)), 409, "lease_lost")
    _in_use(_claim(daemon, wkey, key))     # still held
    assert _release(daemon, wkey, key, tok).status_code == 204


def test_takeover_after_lease_expiry(daemon, wkey):
    key = _k()
    tok1 = _claimed(_claim(daemon, wkey, key, lease_seconds=1, fingerprint="fp"), key, lease_seconds=1)
    _in_use(_claim(daemon, wkey, key, lease_seconds=1, fingerprint="fp"))
    t0 = time.monotonic()
    while True:
        r = _claim(daemon, wkey, key, lease_seconds=30, fingerprint="fp")
        if r.status_code != 409 or time.monotonic() - t0 > 4:
            break
        _in_use(r)
        time.sleep(0.2)
    tok2 = _claimed(r, key)
    assert tok2 != tok1, "the takeover must get a new lease token"
    # the old holder has lost its lease
    assert_problem(_complete(daemon, wkey, key, tok1, {"status": 200, "body": "late"}), 409, "lease_lost")
    assert_problem(_release(daemon, wkey, key, tok1), 409, "lease_lost")
    _in_use(_claim(daemon, wkey, key, fingerprint="fp"))
    body = _json_ok(_complete(daemon, wkey, key, tok2, RESP), 200)
    assert body["response"] == RESP


def test_fingerprint_mismatch_is_422(daemon, wkey):
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key, fingerprint="fp-a"), key)
    assert_problem(_claim(daemon, wkey, key, fingerprint="fp-b"), 422, "idempotency_key_reused")
    _json_ok(_complete(daemon, wkey, key, tok, RESP), 200)
    assert_problem(_claim(daemon, wkey, key, fingerprint="fp-b"), 422, "idempotency_key_reused")
    assert _json_ok(_claim(daemon, wkey, key, fingerprint="fp-a"), 200)["response"] == RESP
    # 128-character fingerprints are compared in full; after a release the
    # key is free again
    key2 = _k()
    tok2 = _claimed(_claim(daemon, wkey, key2, fingerprint="x" * 128), key2)
    assert_problem(_claim(daemon, wkey, key2, fingerprint="x" * 127 + "y"), 422, "idempotency_key_reused")
    assert _release(daemon, wkey, key2, tok2).status_code == 204
    _claimed(_claim(daemon, wkey, key2, fingerprint="x" * 128), key2)


@pytest.mark.parametrize("key", ["a/b c%d", "a%2Fb", "/", "%", " lead and trail ", "q?x=1&y#z", "..", "a+b"],
                         ids=["slash-space-percent", "literal-escape", "slash", "percent", "spaces",
                              "query-chars", "dots", "plus"])
def test_percent_encoded_keys(daemon, wkey, key):
    key = key[:1] + uuid.uuid4().hex[:8] + key[1:]       # unique, same first and last character
    tok = _claimed(_claim(daemon, wkey, key), key)
    body = _json_ok(_get(daemon, wkey, key), 200)
    assert body["key"] == key and body["status"] == "in_progress", body
    _json_ok(_complete(daemon, wkey, key, tok, RESP), 200)
    body = _json_ok(_get(daemon, wkey, key), 200)
    assert body["key"] == key and body["response"] == RESP, body
    # release path too
    key2 = key + "-r"
    tok2 = _claimed(_claim(daemon, wkey, key2), key2)
    assert _release(daemon, wkey, key2, tok2).status_code == 204
    _claimed(_claim(daemon, wkey, key2), key2)


def test_encoded_and_literal_keys_are_distinct(daemon, wkey):
    s = uuid.uuid4().hex[:8]
    k1, k2 = f"a/b{s}", f"a%2Fb{s}"
    t1 = _claimed(_claim(daemon, wkey, k1), k1)
    _claimed(_claim(daemon, wkey, k2), k2)
    _json_ok(_complete(daemon, wkey, k1, t1, RESP), 200)
    assert _json_ok(_get(daemon, wkey, k1), 200)["status"] == "completed"
    assert _json_ok(_get(daemon, wkey, k2), 200)["status"] == "in_progress"


@pytest.mark.parametrize("fields", [
    {},
    {"key": ""},
    {"key": 5},
    {"key": None},
    {"key": ["k"]},
    {"fingerprint": "x" * 129},
    {"fingerprint": 5},
    {"lease_seconds": 0},
    {"lease_seconds": 3601},
    {"lease_seconds": -1},
    {"lease_seconds": "30"},
    {"lease_seconds": 1.5},
    {"ttl_seconds": 0},
    {"ttl_seconds": 2592001},
    {"ttl_seconds": "86400"},
    {"ttl_seconds": 2.5},
], ids=lambda f: json.dumps(f)[:40])
def test_claim_validation_is_400(daemon, wkey, fields):
    key = _k()
    body = {"key": key}
    body.update(fields)
    if not fields:
        body = {}
    r = daemon.post(BASE, key=wkey, json=body)
    assert_problem(r, 400, "invalid_request")
    # nothing was claimed
    assert_problem(_get(daemon, wkey, key), 404, "not_found")


def test_claim_non_object_body_is_400(daemon, wkey):
    for raw in (b"[]", b'"k"', b"{"):
        r = daemon.post(BASE, key=wkey, data=raw, headers={"Content-Type": "application/json"})
        assert_problem(r, 400, "invalid_request")


@pytest.mark.parametrize("fields", [
    {"lease_seconds": 1}, {"lease_seconds": 3600}, {"ttl_seconds": 1}, {"ttl_seconds": 2592000},
    {"fingerprint": "f" * 128},
], ids=lambda f: json.dumps(f)[:40])
def test_claim_boundaries_are_accepted(daemon, wkey, fields):
    key = _k()
    t = time.time()
    r = _claim(daemon, wkey, key, **fields)
    _claimed(r, key, lease_seconds=fields.get("lease_seconds", 30),
             ttl_seconds=fields.get("ttl_seconds", 86400), t=t)


@pytest.mark.parametrize("case", [
    "empty", "no-response", "no-token", "token-not-string", "response-not-object", "no-status",
    "status-string", "status-float", "headers-not-object"])
def test_complete_validation_is_400(daemon, wkey, case):
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key), key)
    body = {
        "empty": {},
        "no-response": {"lease_token": tok},
        "no-token": {"response": {"status": 200}},
        "token-not-string": {"lease_token": 5, "response": {"status": 200}},
        "response-not-object": {"lease_token": tok, "response": "ok"},
        "no-status": {"lease_token": tok, "response": {"body": {}}},
        "status-string": {"lease_token": tok, "response": {"status": "200"}},
        "status-float": {"lease_token": tok, "response": {"status": 200.5}},
        "headers-not-object": {"lease_token": tok, "response": {"status": 200, "headers": ["a"]}},
    }[case]
    r = daemon.post(f"{BASE}/{_p(key)}/complete", key=wkey, json=body)
    assert_problem(r, 400, "invalid_request")
    # the lease is intact
    assert _json_ok(_get(daemon, wkey, key), 200)["status"] == "in_progress"
    _json_ok(_complete(daemon, wkey, key, tok, RESP), 200)


def test_release_validation_is_400(daemon, wkey):
    key = _k()
    tok = _claimed(_claim(daemon, wkey, key), key)
    for body in ({}, {"lease_token": 5}, {"lease_token": None}):
        r = daemon.post(f"{BASE}/{_p(key)}/release", key=wkey, json=body)
        assert_problem(r, 400, "invalid_request")
    _in_use(_claim(daemon, wkey, key))
    assert _release(daemon, wkey, key, tok).status_code == 204


def test_ttl_seconds_expiry_makes_the_key_new(daemon, wkey):
    key = _k()
    t = time.time()
    t0 = time.monotonic()
    tok = _claimed(_claim(daemon, wkey, key, ttl_seconds=2, lease_seconds=1, fingerprint="a"), key,
                   ttl_seconds=2, lease_seconds=1, t=t)
    _json_ok(_complete(daemon, wkey, key, tok, RESP), 200)
    assert _json_ok(_claim(daemon, wkey, key, fingerprint="a"), 200)["response"] == RESP
    while True:
        r = _claim(daemon, wkey, key, fingerprint="b")
        if r.status_code != 422 or time.monotonic() - t0 > 6:
            break
        time.sleep(0.25)
    took = time.monotonic() - t0
    # expired: a new key (another fingerprint is fine), claimed afresh
    tok2 = _claimed(r, key)
    assert tok2 != tok
    assert took >= 0.9, f"record expired after {took:.2f}s (ttl_seconds 2)"


def test_keys_are_per_tenant(daemon, cli):
    ta, tb = cli.tenant_create(), cli.tenant_create()
    ka, kb = cli.key_create(ta, "read,write"), cli.key_create(tb, "read,write")
    key = _k()
    tok_a = _claimed(_claim(daemon, ka, key, fingerprint="a"), key)
    tok_b = _claimed(_claim(daemon, kb, key, fingerprint="b"), key)   # no 409, no 422
    assert tok_a != tok_b
    assert_problem(_complete(daemon, kb, key, tok_a, RESP), 409, "lease_lost")
    _json_ok(_complete(daemon, ka, key, tok_a, RESP), 200)
    assert _json_ok(_get(daemon, kb, key), 200)["status"] == "in_progress"
    assert _json_ok(_get(daemon, ka, key), 200)["status"] == "completed"
    # a third tenant does not see either
    tc = cli.tenant_create()
    kc = cli.key_create(tc, "read,write")
    assert_problem(_get(daemon, kc, key), 404, "not_found")
    assert_problem(_complete(daemon, kc, key, tok_b, RESP), 404, "not_found")


def test_read_only_key_is_403_on_posts(daemon, make_key):
    rkey = make_key("read")
    wkey = make_key("read,write")
    key = _k()
    assert_problem(_claim(daemon, rkey, key), 403, "forbidden")
    tok = _claimed(_claim(daemon, wkey, key), key)
    assert_problem(_complete(daemon, rkey, key, tok, RESP), 403, "forbidden")
    assert_problem(_release(daemon, rkey, key, tok), 403, "forbidden")
    assert _json_ok(_get(daemon, rkey, key), 200)["status"] == "in_progress"
    audit = make_key("audit")
    assert_problem(_get(daemon, audit, key), 403, "forbidden")
    assert_problem(_claim(daemon, None, key), 401, "unauthenticated")


def test_racing_claimers_one_wins(daemon, wkey):
    n = 30
    key = _k()
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        with requests.Session() as s:
            try:
                barrier.wait(timeout=20)
                results[i] = _claim(daemon, wkey, key, session=s, timeout=20, fingerprint="race")
            except Exception as e:          # noqa: BLE001
                results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    errors = [r for r in results if not isinstance(r, requests.Response)]
    assert not errors, f"{len(errors)} claims failed: {errors[:3]}"
    won = [r for r in results if r.status_code == 201]
    assert len(won) == 1, f"{len(won)} claimers won: {sorted(r.status_code for r in results)}"
    tok = _claimed(won[0], key)
    for r in results:
        if r is not won[0]:
            _in_use(r)
            assert tok not in r.text
    _json_ok(_complete(daemon, wkey, key, tok, RESP), 200)
