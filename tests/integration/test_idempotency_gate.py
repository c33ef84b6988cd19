"""The Idempotency-Key gate on every POST under /v1 (docs/api.md §2): header
syntax, fingerprints (422), saved and replayed responses (byte for byte, with
Idempotent-Replayed: true), what is not saved (400/403/413/415/5xx leave the
key free), concurrent duplicates, in-flight waits and 409 idempotency_key_in_use,
Idempotency-Expires, the TTL (server flag and per-tenant override), the item
sweeper deleting expired records, and the idempotency metrics.

Uses POST /v1/accounts (201 / 409 account_exists / 400 invalid_request),
POST /v1/accounts/{id}/freeze (200 / 404 account_not_found) and a route that
still answers 501 (not saved)."""

import calendar
import http.client
import json
import re
import secrets
import threading
import time
import uuid

import pytest
import requests
from requests.structures import CaseInsensitiveDict

import openapi_check
from oltest import SYSTEM_TABLE, assert_problem, lock_account, poll

# ---------------------------------------------------------------------------
# helpers


def _ik(prefix="k"):
    """A fresh idempotency key (a bare token)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def _sf(k):
    """The Structured Field string form of a key."""
    return '"' + k + '"'


def _owner():
    return "own-" + secrets.token_hex(6)


def _body_bytes(body):
    if body is None or isinstance(body, (bytes, bytearray)):
        return body
    return json.dumps(body, separators=(",", ":")).encode()


def _post(d, path, key, body=None, idem=None, ctype="application/json", headers=None,
          session=None, timeout=10):
    """POST with an Idempotency-Key header value given verbatim (None: no header)."""
    data = _body_bytes(body)
    h = {}
    if data:
        h["Content-Type"] = ctype
    if idem is not None:
        h["Idempotency-Key"] = idem
    h.update(headers or {})
    return d.post(path, key=key, data=data, headers=h, session=session, timeout=timeout)


def _create(d, key, idem, **fields):
    body = {"currency": "EUR"}
    body.update(fields)
    return _post(d, "/v1/accounts", key, body, idem)


def _accounts_of(d, key, owner):
    r = d.get("/v1/accounts", key=key, params={"owner": owner, "limit": 1000})
    assert r.status_code == 200, f"GET /v1/accounts?owner={owner}: {r.status_code} {r.text[:300]}"
    body = r.json()
    assert isinstance(body.get("data"), list), body
    return body["data"]


def _get_account(d, key, acc_id):
    r = d.get(f"/v1/accounts/{acc_id}", key=key)
    assert r.status_code == 200, f"GET /v1/accounts/{acc_id}: {r.status_code} {r.text[:300]}"
    return r.json()


def _replayed(r):
    return r.headers.get("Idempotent-Replayed", "").strip().lower() == "true"


def _assert_executed(r, status):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:300]}"
    assert not _replayed(r), f"first execution marked as replayed: {dict(r.headers)}"


def _assert_replay_of(orig, r):
    """r is a byte-identical replay of orig (status, body, Content-Type) with the header."""
    assert r.status_code == orig.status_code, \
        f"replay status {r.status_code} != {orig.status_code}: {r.text[:300]}"
    assert r.content == orig.content, f"replayed body differs:\n first: {orig.content[:400]!r}\n" \
                                      f"replay: {r.content[:400]!r}"
    assert r.headers.get("Content-Type") == orig.headers.get("Content-Type"), \
        (orig.headers.get("Content-Type"), r.headers.get("Content-Type"))
    assert _replayed(r), f"replay without Idempotent-Replayed: true: {dict(r.headers)}"


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]00:00)")


def _rfc3339_utc(value):
    """RFC 3339 UTC timestamp -> epoch seconds (float)."""
    assert value is not None, "no timestamp"
    m = _RFC3339.fullmatch(value.strip())
    assert m, f"not an RFC 3339 UTC timestamp: {value!r}"
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    frac = float(m.group(7)) if m.group(7) else 0.0
    return calendar.timegm((y, mo, d, h, mi, s)) + frac


def _expires(r):
    v = r.headers.get("Idempotency-Expires")
    assert v, f"{r.status_code} response without Idempotency-Expires: {dict(r.headers)}"
    return _rfc3339_utc(v)


def _metric(d, name):
    """Sum of every sample of a counter (with or without labels); None if absent."""
    text = d.get("/metrics").text
    total, seen = 0.0, False
    for m in re.finditer(r"^%s(?:\{[^}]*\})? ([0-9.eE+-]+)$" % re.escape(name), text, re.M):
        total += float(m.group(1))
        seen = True
    return total if seen else None


_METRICS = ("claims", "replays", "conflicts", "mismatches", "waits")


def _metrics(d):
    out = {}
    for n in _METRICS:
        v = _metric(d, f"onceledger_idempotency_{n}_total")
        assert v is not None, f"/metrics lacks onceledger_idempotency_{n}_total"
        out[n] = v
    return out


class _Raw:
    """A response read with http.client, shaped enough like requests' for assert_problem."""

    def __init__(self, resp):
        self.status_code = resp.status
        self.headers = CaseInsensitiveDict(resp.getheaders())
        self.content = resp.read()
        self.text = self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


def _raw_post(d, path, key, body, idem_values):
    """POST with any number of Idempotency-Key fields whose values are bytes
    sent as is (http.client refuses only CR/LF)."""
    data = _body_bytes(body) or b""
    conn = http.client.HTTPConnection(d.host, d.tcp_port, timeout=10)
    try:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {key}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(data)))
        for v in idem_values:
            conn.putheader("Idempotency-Key", v if isinstance(v, bytes) else v.encode("latin-1"))
        conn.endheaders(data)
        resp = _Raw(conn.getresponse())
        # checked against docs/openapi.yaml like the responses read with requests
        openapi_check.record("POST", d.url + path, resp.status_code, resp.headers, resp.content)
        return resp
    finally:
        conn.close()


class _Bg:
    """Run one request in a thread; .result is the response or the exception."""

    def __init__(self, fn):
        self.result = None
        self.t0 = self.t1 = None
        self.th = threading.Thread(target=self._run, args=(fn,), daemon=True)

    def _run(self, fn):
        self.t0 = time.monotonic()
        try:
            self.result = fn()
        except Exception as e:          # noqa: BLE001 - reported by the test
            self.result = e
        self.t1 = time.monotonic()

    def start(self):
        self.th.start()
        return self

    def alive(self):
        return self.th.is_alive()

    def join(self, timeout=20):
        self.th.join(timeout)
        assert not self.th.is_alive(), "request still running"
        assert not isinstance(self.result, Exception), f"request failed: {self.result!r}"
        return self.result


@pytest.fixture
def wkey(make_key):
    return make_key("read,write")


# ---------------------------------------------------------------------------
# the pipeline and the header


def test_pipeline_order_before_key_checks(daemon, make_key):
    wkey = make_key("read,write")
    rkey = make_key("read")
    body = {"currency": "EUR"}
    # route: 404 / 405 come first
    assert_problem(_post(daemon, "/v1/no-such-route", None, body), 404, "not_found")
    assert_problem(_post(daemon, "/v1/accounts/x", None, body), 405, "method_not_allowed")
    # then authentication and scope
    assert_problem(_post(daemon, "/v1/accounts", None, body), 401, "unauthenticated")
    assert_problem(_post(daemon, "/v1/accounts", rkey, body), 403, "forbidden")
    # then the body
    assert_problem(_post(daemon, "/v1/accounts", wkey, body, ctype="text/plain"), 415,
                   "unsupported_media_type")
    assert_problem(_post(daemon, "/v1/accounts", wkey, b'{"currency":'), 400, "invalid_request")
    assert_problem(_post(daemon, "/v1/accounts", wkey, b'[1]'), 400, "invalid_request")
    # then the key, before the handler's own validation
    assert_problem(_post(daemon, "/v1/accounts", wkey, body), 400, "idempotency_key_missing")
    assert_problem(_post(daemon, "/v1/accounts", wkey, {"currency": 5}), 400, "idempotency_key_missing")
    assert_problem(_post(daemon, "/v1/accounts/x/freeze", wkey), 400, "idempotency_key_missing")
    assert_problem(_post(daemon, "/v1/accounts", wkey, body, idem=""), 400, "idempotency_key_invalid")


def test_missing_key_is_400_and_nothing_is_created(daemon, wkey):
    owner = _owner()
    r = _post(daemon, "/v1/accounts", wkey, {"currency": "EUR", "owner": owner})
    assert_problem(r, 400, "idempotency_key_missing")
    assert _accounts_of(daemon, wkey, owner) == []


_LONG = "k" + uuid.uuid4().hex


@pytest.mark.parametrize("value", [
    b"",                                     # empty
    b'""',                                   # empty sf-string
    ("x" + _LONG).ljust(256, "a").encode(),  # 256 characters, bare
    ('"' + ("y" + _LONG).ljust(256, "a") + '"').encode(),   # 256 characters, sf-string
    b"ab cd",                                # space inside a bare token
    b"ab\tcd",                               # tab inside a bare token
    b'"abc',                                 # unterminated sf-string
    b'abc"',                                 # stray quote
    b'"ab"cd"',                              # bad quoting
    b'"abc"x',                               # garbage after the sf-string
    "caf\u00e9".encode("utf-8"),             # not ASCII
    b"abc\xff",                              # not ASCII
], ids=["empty", "empty-sf", "256-bare", "256-sf", "space", "tab", "unterminated", "stray-quote",
        "bad-quoting", "trailing", "utf8", "byte-ff"])
def test_malformed_key_is_400_invalid(daemon, wkey, value):
    owner = _owner()
    r = _raw_post(daemon, "/v1/accounts", wkey, {"currency": "EUR", "owner": owner}, [value])
    assert_problem(r, 400, "idempotency_key_invalid")
    assert _accounts_of(daemon, wkey, owner) == [], "a request with a malformed key executed"


@pytest.mark.parametrize("value", [b"ab\x01cd", b"ab\x7fcd", b'"ab\x1bcd"'], ids=["soh", "del", "esc-sf"])
def test_control_character_in_key_is_400(daemon, wkey, value):
    # The HTTP parser may already refuse a control byte in a header value
    # (invalid_request); either way it is a 400 and nothing executes.
    owner = _owner()
    r = _raw_post(daemon, "/v1/accounts", wkey, {"currency": "EUR", "owner": owner}, [value])
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert r.json().get("code") in ("idempotency_key_invalid", "invalid_request"), r.text[:300]
    assert _accounts_of(daemon, wkey, owner) == []


@pytest.mark.parametrize("same", [True, False], ids=["same-value", "different-values"])
def test_repeated_key_header_is_400_invalid(daemon, wkey, same):
    owner = _owner()
    k1 = _ik()
    k2 = k1 if same else _ik()
    r = _raw_post(daemon, "/v1/accounts", wkey, {"currency": "EUR", "owner": owner}, [_sf(k1), _sf(k2)])
    assert_problem(r, 400, "idempotency_key_invalid")
    assert _accounts_of(daemon, wkey, owner) == []
    # the key was not consumed
    _assert_executed(_create(daemon, wkey, _sf(k1), owner=owner), 201)


@pytest.mark.parametrize("form", ["bare", "sf"])
def test_key_of_255_chars_is_accepted(daemon, wkey, form):
    k = _ik().ljust(255, "z")
    assert len(k) == 255
    value = k if form == "bare" else _sf(k)
    owner = _owner()
    r1 = _create(daemon, wkey, value, owner=owner)
    _assert_executed(r1, 201)
    _assert_replay_of(r1, _create(daemon, wkey, value, owner=owner))
    assert len(_accounts_of(daemon, wkey, owner)) == 1


def test_visible_ascii_punctuation_in_key_is_accepted(daemon, wkey):
    k = _ik() + "!#$%&'*+-.^_`|~:/?@[]{}()<>,;="
    owner = _owner()
    r1 = _create(daemon, wkey, _sf(k), owner=owner)
    _assert_executed(r1, 201)
    _assert_replay_of(r1, _create(daemon, wkey, _sf(k), owner=owner))


def test_sf_string_and_bare_token_are_the_same_key(daemon, wkey):
    k = _ik()
    owner = _owner()
    r1 = _create(daemon, wkey, _sf(k), owner=owner)
    _assert_executed(r1, 201)
    r2 = _create(daemon, wkey, k, owner=owner)
    _assert_replay_of(r1, r2)
    # and the other way round
    k2 = _ik()
    owner2 = _owner()
    r3 = _create(daemon, wkey, k2, owner=owner2)
    _assert_executed(r3, 201)
    _assert_replay_of(r3, _create(daemon, wkey, _sf(k2), owner=owner2))
    assert len(_accounts_of(daemon, wkey, owner)) == 1
    assert len(_accounts_of(daemon, wkey, owner2)) == 1


# ---------------------------------------------------------------------------
# saved and replayed


def test_replay_of_201_is_byte_identical(daemon, wkey):
    owner = _owner()
    k = _sf(_ik())
    r1 = _create(daemon, wkey, k, owner=owner, metadata={"b": [1, 2], "a": "\u00e9"})
    _assert_executed(r1, 201)
    acc = r1.json()
    assert acc["owner"] == owner and acc["status"] == "active", acc
    r2 = _create(daemon, wkey, k, owner=owner, metadata={"b": [1, 2], "a": "\u00e9"})
    _assert_replay_of(r1, r2)
    assert [a["id"] for a in _accounts_of(daemon, wkey, owner)] == [acc["id"]]

    # The saved response is replayed as it was, not re-rendered from the
    # account's current state.
    rf = _post(daemon, f"/v1/accounts/{acc['id']}/freeze", wkey, None, _ik())
    _assert_executed(rf, 200)
    assert rf.json()["status"] == "frozen", rf.text
    r3 = _create(daemon, wkey, k, owner=owner, metadata={"b": [1, 2], "a": "\u00e9"})
    _assert_replay_of(r1, r3)
    assert r3.json()["status"] == "active"


def test_replay_carries_its_own_request_id(daemon, wkey):
    # X-Request-Id belongs to the request (docs/api.md §1: echoed when the client
    # sent one), not to the saved response.
    k = _ik()
    owner = _owner()
    r1 = _post(daemon, "/v1/accounts", wkey, {"currency": "EUR", "owner": owner}, k,
               headers={"X-Request-Id": "req-first-" + secrets.token_hex(4)})
    _assert_executed(r1, 201)
    assert r1.headers.get("X-Request-Id") == r1.request.headers["X-Request-Id"]
    rid = "req-retry-" + secrets.token_hex(4)
    r2 = _post(daemon, "/v1/accounts", wkey, {"currency": "EUR", "owner": owner}, k,
               headers={"X-Request-Id": rid})
    _assert_replay_of(r1, r2)
    assert r2.headers.get("X-Request-Id") == rid, \
        f"replay carries X-Request-Id {r2.headers.get('X-Request-Id')!r}, the retry sent {rid!r}"
    r3 = _post(daemon, "/v1/accounts", wkey, {"currency": "EUR", "owner": owner}, k)
    _assert_replay_of(r1, r3)
    assert r3.headers.get("X-Request-Id") not in (None, "", r1.headers.get("X-Request-Id"), rid), \
        "a replay without a client X-Request-Id must get a fresh one"


def test_replay_of_409_account_exists(daemon, wkey):
    acc_id = "acc-" + secrets.token_hex(6)
    _assert_executed(_create(daemon, wkey, _ik(), id=acc_id), 201)
    k = _ik()
    r1 = _create(daemon, wkey, k, id=acc_id)
    assert_problem(r1, 409, "account_exists")
    assert not _replayed(r1)
    r2 = _create(daemon, wkey, k, id=acc_id)
    assert_problem(r2, 409, "account_exists")
    _assert_replay_of(r1, r2)


def test_saved_404_account_not_found_replays(daemon, wkey):
    acc_id = "acc-" + secrets.token_hex(6)
    k = _ik()
    r1 = _post(daemon, f"/v1/accounts/{acc_id}/freeze", wkey, None, k)
    assert_problem(r1, 404, "account_not_found")
    assert not _replayed(r1)
    # Once the account exists, the same key still answers the saved 404 and
    # does not freeze it.
    _assert_executed(_create(daemon, wkey, _ik(), id=acc_id), 201)
    r2 = _post(daemon, f"/v1/accounts/{acc_id}/freeze", wkey, None, k)
    _assert_replay_of(r1, r2)
    assert _get_account(daemon, wkey, acc_id)["status"] == "active"


def test_replay_of_402_insufficient_funds(daemon, wkey):
    acc_id = "acc-" + secrets.token_hex(6)
    _assert_executed(_create(daemon, wkey, _ik(), id=acc_id), 201)
    k = _ik()
    r1 = _post(daemon, f"/v1/accounts/{acc_id}/debits", wkey, {"amount": 100}, k)
    if r1.status_code == 501:
        pytest.skip("POST /v1/accounts/{id}/debits still answers 501 not_implemented "
                    "(debits come with the transfers issue)")
    assert_problem(r1, 402, "insufficient_funds")
    assert not _replayed(r1)
    r2 = _post(daemon, f"/v1/accounts/{acc_id}/debits", wkey, {"amount": 100}, k)
    _assert_replay_of(r1, r2)
    # Money arriving later does not turn the saved 402 into a debit.
    rc = _post(daemon, f"/v1/accounts/{acc_id}/credits", wkey, {"amount": 500}, _ik())
    if rc.status_code == 201:
        _assert_replay_of(r1, _post(daemon, f"/v1/accounts/{acc_id}/debits", wkey, {"amount": 100}, k))
        assert _get_account(daemon, wkey, acc_id)["balance"]["posted"] == 500


def test_concurrent_duplicates_create_one_account(daemon, wkey):
    n = 50
    owner = _owner()
    k = _sf(_ik())
    body = {"currency": "EUR", "owner": owner}
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        with requests.Session() as s:
            try:
                barrier.wait(timeout=20)
                results[i] = _post(daemon, "/v1/accounts", wkey, body, k, session=s, timeout=20)
            except Exception as e:          # noqa: BLE001
                results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    errors = [r for r in results if not isinstance(r, requests.Response)]
    assert not errors, f"{len(errors)} requests failed: {errors[:3]}"

    in_use = [r for r in results if r.status_code == 409]
    done = [r for r in results if r.status_code != 409]
    for r in in_use:
        assert_problem(r, 409, "idempotency_key_in_use")
        ra = r.headers.get("Retry-After", "")
        assert ra.strip().isdigit(), f"409 idempotency_key_in_use without Retry-After: {dict(r.headers)}"
    assert done, "every duplicate got 409 idempotency_key_in_use"
    first = done[0]
    assert first.status_code == 201, first.text[:300]
    for r in done:
        assert (r.status_code, r.content) == (first.status_code, first.content), \
            f"answers differ: {first.status_code} {first.text[:200]} vs {r.status_code} {r.text[:200]}"
    executed = [r for r in done if not _replayed(r)]
    assert len(executed) == 1, f"{len(executed)} answers were not marked as replayed (expected 1)"

    accounts = _accounts_of(daemon, wkey, owner)
    assert len(accounts) == 1, f"{len(accounts)} accounts for one key: {[a['id'] for a in accounts]}"
    assert accounts[0]["id"] == first.json()["id"]


# ---------------------------------------------------------------------------
# fingerprints


def test_same_key_different_body_is_422(daemon, wkey):
    owner = _owner()
    k = _ik()
    r1 = _create(daemon, wkey, k, owner=owner)
    _assert_executed(r1, 201)
    r2 = _create(daemon, wkey, k, owner=owner, currency="USD")
    assert_problem(r2, 422, "idempotency_key_reused")
    r3 = _post(daemon, "/v1/accounts", wkey, {"currency": "EUR", "owner": owner, "metadata": {}}, k)
    assert_problem(r3, 422, "idempotency_key_reused")
    assert len(_accounts_of(daemon, wkey, owner)) == 1
    # the record is intact: the original request still replays
    _assert_replay_of(r1, _create(daemon, wkey, k, owner=owner))


def test_same_key_different_path_is_422(daemon, wkey):
    owner = _owner()
    k = _ik()
    r1 = _create(daemon, wkey, k, owner=owner)
    _assert_executed(r1, 201)
    acc_id = r1.json()["id"]
    r2 = _post(daemon, f"/v1/accounts/{acc_id}/freeze", wkey, None, k)
    assert_problem(r2, 422, "idempotency_key_reused")
    assert _get_account(daemon, wkey, acc_id)["status"] == "active", "the 422 request executed"

    # same (empty) body, another account's path
    other = _create(daemon, wkey, _ik(), owner=owner).json()["id"]
    k2 = _ik()
    rf = _post(daemon, f"/v1/accounts/{acc_id}/freeze", wkey, None, k2)
    _assert_executed(rf, 200)
    r3 = _post(daemon, f"/v1/accounts/{other}/freeze", wkey, None, k2)
    assert_problem(r3, 422, "idempotency_key_reused")
    assert _get_account(daemon, wkey, other)["status"] == "active"
    # same path, other action
    r4 = _post(daemon, f"/v1/accounts/{acc_id}/unfreeze", wkey, None, k2)
    assert_problem(r4, 422, "idempotency_key_reused")
    assert _get_account(daemon, wkey, acc_id)["status"] == "frozen"


def test_key_order_and_whitespace_do_not_change_the_fingerprint(daemon, wkey):
    owner = _owner()
    k = _ik()
    b1 = ('{"currency":"EUR","owner":"%s","metadata":{"a":1,"b":[1,2,{"x":"y","w":"z"}]}}' % owner).encode()
    b2 = ('{ "metadata" : { "b" : [ 1 ,2, {"w":"z",\n "x":"y"} ], "a":1 },\r\n\t'
          '"owner":"%s" , "currency" : "EUR" }  \n' % owner).encode()
    r1 = _post(daemon, "/v1/accounts", wkey, b1, k)
    _assert_executed(r1, 201)
    r2 = _post(daemon, "/v1/accounts", wkey, b2, k)
    _assert_replay_of(r1, r2)
    # array order does matter
    b3 = ('{"currency":"EUR","owner":"%s","metadata":{"a":1,"b":[2,1,{"x":"y","w":"z"}]}}' % owner).encode()
    assert_problem(_post(daemon, "/v1/accounts", wkey, b3, k), 422, "idempotency_key_reused")
    assert len(_accounts_of(daemon, wkey, owner)) == 1


def test_same_key_in_two_tenants_is_independent(daemon, cli):
    ta, tb = cli.tenant_create(), cli.tenant_create()
    ka, kb = cli.key_create(ta, "read,write"), cli.key_create(tb, "read,write")
    k = _sf(_ik())
    acc_id = "acc-" + secrets.token_hex(6)
    ra = _create(daemon, ka, k, id=acc_id, owner="shared")
    _assert_executed(ra, 201)
    rb = _create(daemon, kb, k, id=acc_id, owner="shared")
    _assert_executed(rb, 201)
    # a different body in a third tenant is no 422 either
    tc = cli.tenant_create()
    kc = cli.key_create(tc, "read,write")
    _assert_executed(_create(daemon, kc, k, currency="USD"), 201)
    _assert_replay_of(ra, _create(daemon, ka, k, id=acc_id, owner="shared"))
    _assert_replay_of(rb, _create(daemon, kb, k, id=acc_id, owner="shared"))
    assert len(_accounts_of(daemon, ka, "shared")) == 1
    assert len(_accounts_of(daemon, kb, "shared")) == 1


# ---------------------------------------------------------------------------
# not saved: the key stays free


@pytest.mark.parametrize("case", ["validation", "bad-json", "forbidden", "media-type", "too-large"])
def test_unsaved_response_leaves_key_free(daemon, make_key, case):
    wkey = make_key("read,write")
    owner = _owner()
    k = _ik()
    if case == "validation":
        r = _post(daemon, "/v1/accounts", wkey, {"owner": owner, "currency": "eur"}, k)
        assert_problem(r, 400, "invalid_request")
        r = _post(daemon, "/v1/accounts", wkey, {"owner": owner}, k)
        assert_problem(r, 400, "invalid_request")
    elif case == "bad-json":
        assert_problem(_post(daemon, "/v1/accounts", wkey, b'{"owner":', k), 400, "invalid_request")
    elif case == "forbidden":
        assert_problem(_create(daemon, make_key("read"), k, owner=owner), 403, "forbidden")
    elif case == "media-type":
        r = _post(daemon, "/v1/accounts", wkey, {"currency": "EUR", "owner": owner}, k, ctype="text/plain")
        assert_problem(r, 415, "unsupported_media_type")
    elif case == "too-large":
        body = {"currency": "EUR", "owner": owner, "metadata": {"p": "x" * 70000}}
        assert_problem(_post(daemon, "/v1/accounts", wkey, body, k), 413, "payload_too_large")
    assert _accounts_of(daemon, wkey, owner) == []
    # The same key with a valid body executes (not 422, not a replay).
    r = _create(daemon, wkey, k, owner=owner)
    _assert_executed(r, 201)
    _assert_replay_of(r, _create(daemon, wkey, k, owner=owner))
    assert len(_accounts_of(daemon, wkey, owner)) == 1


def test_5xx_is_not_saved(daemon_factory, stack, cli):
    """A real 5xx: the account row is locked, so the freeze waits past the
    daemon's query timeout (503). Nothing of it is saved: the same key then
    executes (200), and another body under the key is no 422."""
    d = daemon_factory("--db-query-timeout-ms", "400", "--idempotency-wait-ms", "300")
    tenant = cli.tenant_create()
    wkey = cli.key_create(tenant, "read,write")
    acc_id = "acc-" + secrets.token_hex(6)
    _assert_executed(_create(d, wkey, _ik(), id=acc_id), 201)
    path = f"/v1/accounts/{acc_id}/freeze"
    k = _ik()
    lock = lock_account(stack.database_url, tenant, acc_id)
    try:
        r1 = _post(d, path, wkey, None, k, timeout=20)
    finally:
        lock.rollback()
        lock.close()
    assert r1.status_code in (500, 503), f"expected a 5xx behind the lock: {r1.status_code} {r1.text[:300]}"
    assert not _replayed(r1)
    assert _get_account(d, wkey, acc_id)["status"] == "active", "a failed request changed the account"
    r2 = poll(lambda: (lambda r: r if r.status_code == 200 else None)(_post(d, path, wkey, None, k)), timeout=10)
    _assert_executed(r2, 200)
    assert r2.json()["status"] == "frozen"


# ---------------------------------------------------------------------------
# Idempotency-Expires, metrics


def test_idempotency_expires_header(daemon, wkey):
    k = _ik()
    owner = _owner()
    t = time.time()
    r1 = _create(daemon, wkey, k, owner=owner)
    _assert_executed(r1, 201)
    e1 = _expires(r1)
    assert abs(e1 - (t + 86400)) < 60, f"Idempotency-Expires {r1.headers['Idempotency-Expires']} is not ~24 h away"
    r2 = _create(daemon, wkey, k, owner=owner)
    _assert_replay_of(r1, r2)
    assert abs(_expires(r2) - e1) < 1.0, (r1.headers["Idempotency-Expires"], r2.headers["Idempotency-Expires"])
    # saved business failures carry it too
    r3 = _post(daemon, f"/v1/accounts/nope-{secrets.token_hex(4)}/freeze", wkey, None, _ik())
    assert_problem(r3, 404, "account_not_found")
    assert abs(_expires(r3) - (time.time() + 86400)) < 60


def test_metrics_count_claims_replays_mismatches(daemon, wkey):
    before = _metrics(daemon)
    k = _ik()
    owner = _owner()
    _assert_executed(_create(daemon, wkey, k, owner=owner), 201)
    assert _replayed(_create(daemon, wkey, k, owner=owner))
    assert _replayed(_create(daemon, wkey, k, owner=owner))
    assert_problem(_create(daemon, wkey, k, owner=owner, currency="USD"), 422, "idempotency_key_reused")

    def grown():
        now = _metrics(daemon)
        return (now["claims"] >= before["claims"] + 1 and now["replays"] >= before["replays"] + 2
                and now["mismatches"] >= before["mismatches"] + 1) and now
    after = poll(grown, 3)
    assert after, f"metrics did not grow: before {before}, after {_metrics(daemon)}"
    assert after["replays"] == before["replays"] + 2, (before, after)
    assert after["mismatches"] == before["mismatches"] + 1, (before, after)
    assert after["conflicts"] == before["conflicts"], (before, after)


# ---------------------------------------------------------------------------
# in flight: wait then replay, or 409 past the wait


def test_in_flight_duplicate_waits_then_replays(daemon, stack, tenant, wkey):
    acc_id = "acc-" + secrets.token_hex(6)
    _assert_executed(_create(daemon, wkey, _ik(), id=acc_id), 201)
    before = _metrics(daemon)
    k = _ik()
    path = f"/v1/accounts/{acc_id}/freeze"
    lock = lock_account(stack.database_url, tenant, acc_id)
    try:
        first = _Bg(lambda: _post(daemon, path, wkey, None, k, timeout=20)).start()
        time.sleep(0.4)
        assert first.alive(), f"the row lock did not hold the freeze in flight: {first.result!r}"
        second = _Bg(lambda: _post(daemon, path, wkey, None, k, timeout=20)).start()
        time.sleep(0.7)
        assert second.alive(), f"the duplicate did not wait for the request in flight: " \
                               f"{getattr(second.result, 'status_code', second.result)} " \
                               f"{getattr(second.result, 'text', '')[:300]}"
        assert first.alive()
    finally:
        lock.rollback()
        lock.close()
    r1 = first.join()
    r2 = second.join()
    _assert_executed(r1, 200)
    assert r1.json()["status"] == "frozen", r1.text
    _assert_replay_of(r1, r2)
    assert second.t1 - second.t0 >= 0.6, "the duplicate did not wait"
    assert _get_account(daemon, wkey, acc_id)["status"] == "frozen"
    after = _metrics(daemon)
    assert after["waits"] >= before["waits"] + 1, (before, after)
    assert after["replays"] >= before["replays"] + 1, (before, after)
    assert after["conflicts"] == before["conflicts"], (before, after)


def test_in_flight_duplicate_past_the_wait_is_409(daemon_factory, stack, cli):
    d = daemon_factory("--idempotency-wait-ms", "500")
    tenant = cli.tenant_create()
    wkey = cli.key_create(tenant, "read,write")
    acc_id = "acc-" + secrets.token_hex(6)
    _assert_executed(_create(d, wkey, _ik(), id=acc_id), 201)
    before = _metrics(d)
    k = _ik()
    path = f"/v1/accounts/{acc_id}/freeze"
    lock = lock_account(stack.database_url, tenant, acc_id)
    t_lock = time.monotonic()
    try:
        first = _Bg(lambda: _post(d, path, wkey, None, k, timeout=20)).start()
        time.sleep(0.3)
        assert first.alive(), f"the row lock did not hold the freeze in flight: {first.result!r}"
        t = time.monotonic()
        r2 = _post(d, path, wkey, None, k, timeout=10)
        took = time.monotonic() - t
        assert_problem(r2, 409, "idempotency_key_in_use")
        ra = r2.headers.get("Retry-After", "")
        assert ra.strip().isdigit() and int(ra) >= 1, f"Retry-After {ra!r}"
        assert 0.4 <= took < 1.5, f"409 after {took:.2f}s (wait is 500 ms)"
        assert first.alive(), "the first request finished although the lock is held"
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t_lock)))
    finally:
        lock.rollback()
        lock.close()
    r1 = first.join()
    _assert_executed(r1, 200)
    _assert_replay_of(r1, _post(d, path, wkey, None, k))
    after = _metrics(d)
    assert after["conflicts"] >= before["conflicts"] + 1, (before, after)
    assert after["waits"] >= before["waits"] + 1, (before, after)


# ---------------------------------------------------------------------------
# TTL


def _retry_until_executed(d, key, idem, body, t_first, deadline_s=10):
    """Retry until the answer is not a replay; returns (response, seconds since t_first)."""
    end = time.monotonic() + deadline_s
    while True:
        r = _post(d, "/v1/accounts", key, body, idem)
        if not _replayed(r):
            return r, time.monotonic() - t_first
        assert time.monotonic() < end, f"key still replayed {deadline_s}s later"
        time.sleep(0.25)


def test_expired_key_executes_again_server_ttl(daemon_factory, cli):
    # sweeper off: the expired record is still stored and must be ignored
    d = daemon_factory("--idempotency-ttl-s", "2", "--ttl-sweep-interval-ms", "0")
    tenant = cli.tenant_create()
    wkey = cli.key_create(tenant, "read,write")
    owner = _owner()
    body = {"currency": "EUR", "owner": owner}
    k, k2 = _ik(), _ik()
    t_first = time.monotonic()
    t = time.time()
    r1 = _post(d, "/v1/accounts", wkey, body, k)
    _assert_executed(r1, 201)
    assert -1.5 <= _expires(r1) - t - 2 <= 1.5, r1.headers.get("Idempotency-Expires")
    _assert_executed(_post(d, "/v1/accounts", wkey, {"currency": "EUR"}, k2), 201)
    _assert_replay_of(r1, _post(d, "/v1/accounts", wkey, body, k))

    r2, after = _retry_until_executed(d, wkey, k, body, t_first)
    assert after >= 0.9, f"key expired after {after:.2f}s (TTL 2 s)"
    _assert_executed(r2, 201)
    assert r2.json()["id"] != r1.json()["id"]
    assert len(_accounts_of(d, wkey, owner)) == 2
    _assert_replay_of(r2, _post(d, "/v1/accounts", wkey, body, k))
    # an expired key is a new key: another body is no 422 (k2 was claimed a
    # moment after k, so it may expire up to a second later)
    end = time.monotonic() + 5
    while True:
        r3 = _post(d, "/v1/accounts", wkey, {"currency": "USD"}, k2)
        if r3.status_code != 422 or time.monotonic() > end:
            break
        time.sleep(0.25)
    _assert_executed(r3, 201)


def test_expired_key_executes_again_tenant_ttl(daemon, cli):
    tenant = cli.tenant_create()
    cli.run("tenant", "update", tenant, "--idempotency-ttl-s", "2")
    wkey = cli.key_create(tenant, "read,write")
    other = cli.tenant_create()
    okey = cli.key_create(other, "read,write")
    owner = _owner()
    body = {"currency": "EUR", "owner": owner}
    k = _ik()
    t_first = time.monotonic()
    t = time.time()
    r1 = _post(daemon, "/v1/accounts", wkey, body, k)
    _assert_executed(r1, 201)
    assert -1.5 <= _expires(r1) - t - 2 <= 1.5, r1.headers.get("Idempotency-Expires")
    # the other tenant keeps the server's TTL
    ro = _post(daemon, "/v1/accounts", okey, body, k)
    _assert_executed(ro, 201)
    assert abs(_expires(ro) - (t + 86400)) < 60, ro.headers.get("Idempotency-Expires")
    _assert_replay_of(r1, _post(daemon, "/v1/accounts", wkey, body, k))

    r2, after = _retry_until_executed(daemon, wkey, k, body, t_first)
    assert after >= 0.9, f"key expired after {after:.2f}s (TTL 2 s)"
    _assert_executed(r2, 201)
    assert len(_accounts_of(daemon, wkey, owner)) == 2
    _assert_replay_of(ro, _post(daemon, "/v1/accounts", okey, body, k))
    assert len(_accounts_of(daemon, okey, owner)) == 1


def _records(db, tenant, keys):
    """(count, min expires_at, max expires_at, count with expires_at) of the
    stored gate records of these keys (PK "IDEM#<key>" of the system table)."""
    cur = db.cursor()
    cur.execute("SELECT count(*), min(i.expires_at), max(i.expires_at), count(i.expires_at) "
                "FROM items i JOIN item_tables t ON t.id = i.table_id "
                "WHERE t.tenant = %s AND t.name = %s AND i.pk = ANY(%s::text[]) AND i.sk = 'METADATA'",
                (tenant, SYSTEM_TABLE, ["IDEM#" + k for k in keys]))
    return cur.fetchone()


def test_sweeper_deletes_expired_records(daemon_factory, cli, db):
    d = daemon_factory("--idempotency-ttl-s", "2", "--ttl-sweep-interval-ms", "200")
    tenant = cli.tenant_create()
    wkey = cli.key_create(tenant, "read,write")
    ids = ["acc-%d-%s" % (i, secrets.token_hex(4)) for i in range(3)]
    keys = [_ik() for _ in ids]
    t = time.time()
    t_first = time.monotonic()
    for acc_id, k in zip(ids, keys):
        _assert_executed(_create(d, wkey, k, id=acc_id), 201)
    n, lo, hi, with_exp = _records(db, tenant, keys)
    if n < 3:
        cur = db.cursor()
        cur.execute("SELECT t.name, i.pk, i.sk FROM items i JOIN item_tables t ON t.id = i.table_id "
                    "WHERE t.tenant = %s", (tenant,))
        raise AssertionError(f"{n} idempotency records found in items after 3 requests; "
                             f"the tenant's items: {cur.fetchall()[:20]}")
    assert with_exp == n, "idempotency records without expires_at (the sweeper cannot delete them)"
    assert t - 1 <= lo and hi <= t + 5, f"expires_at {lo}..{hi}, now {t:.0f}, TTL 2 s"

    assert poll(lambda: _records(db, tenant, keys)[0] == 0, 10), \
        f"expired idempotency records not deleted: {_records(db, tenant, keys)}"
    assert time.monotonic() - t_first >= 0.9, "records deleted before they expired"
    # The key is new again; the client-chosen id still dedupes.
    r = _create(d, wkey, keys[0], id=ids[0])
    assert_problem(r, 409, "account_exists")
    assert not _replayed(r)
    assert _records(db, tenant, keys)[0] >= 1, "the 409 account_exists was not saved"
    _assert_replay_of(r, _create(d, wkey, keys[0], id=ids[0]))
