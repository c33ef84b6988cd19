"""Events (docs/api.md §8; docs/events.md): every committed state change of §3-§6
emits exactly the expected signed CloudEvents into the tenant's Redis stream
`onceledger:events:<tenant>`, with `data` equal to the API object after the
change; nothing is emitted by failures, replays and reused client ids; the
envelope (members, order, sequence = txid * 1000000 + n, stream id
"<txid>-<n>"), Ed25519 signatures checked against GET /v1/events/signing-key,
GET /v1/events (same events, pages, `after`, bad input), tenants and scopes.

How "exactly" is checked: a test records the events it expects; `sync()`
then creates a marker account and waits until the marker's
`account.created` is in the stream.  The relay publishes in (txid, n) order
below the watermark (docs/events.md), and the marker's transaction started
after every earlier request had answered, so once the marker is there every
earlier event is there too; the whole stream must then equal the expected
list, marker included.  A spurious event (a failed transfer's, a replay's)
shows up as a mismatch.

The relay's own faults (kill -9 at failpoints, Redis outages, two daemons)
are in test_events_relay.py.

Expiry: the lazy test comes first in the module, before anything starts the
module's daemon: every daemon's sweeper expires the holds and orders of
every tenant in the database, so the daemon without a sweeper must be the
only daemon (and so the relay) while it runs."""

import base64
import binascii
import calendar
import json
import re
import secrets
import time
import uuid

import nacl.exceptions
import nacl.signing
import pytest
import redis

from oltest import assert_problem, poll

CUR = "USD"
PREFIX = "onceledger:events:"
ENTRY_FIELDS = {"id", "type", "event", "signature", "kid"}
ENVELOPE = ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "sequence",
            "data"]
TYPES = {"account.created", "account.frozen", "account.unfrozen", "transfer.posted", "hold.created",
         "hold.captured", "hold.voided", "hold.expired", "order.created", "order.paid",
         "order.cancelled", "order.expired", "order.refunded"}
SEQ_RE = re.compile(r"^(0|[1-9][0-9]*)$")
KID_RE = re.compile(r"^[0-9a-f]{16}$")
B64_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z$")


# ---------------------------------------------------------------------------
# helpers: HTTP


def _ik():
    return uuid.uuid4().hex


def _hex():
    return secrets.token_hex(6)


def _post(d, path, key, body=None, idem=None, timeout=30):
    """POST with a fresh Idempotency-Key (or idem); body None sends no body."""
    h = {"Idempotency-Key": idem or _ik()}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    return d.post(path, key=key, data=data, headers=h, timeout=timeout)


def _get(d, path, key, params=None):
    return d.get(path, key=key, params=params, timeout=30)


def _desc(r):
    req = r.request
    body = req.body.decode(errors="replace") if isinstance(req.body, (bytes, bytearray)) else req.body
    return f"{req.method} {req.path_url} {(body or '')[:300]} -> {r.status_code} {r.text[:600]}"


def _expect(r, status):
    assert r.status_code == status, f"expected {status}: {_desc(r)}"
    ctype = r.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/json", f"Content-Type {ctype!r}: {_desc(r)}"
    return r.json()


def _replayed(r):
    return r.headers.get("Idempotent-Replayed", "").strip().lower() == "true"


def _us(ts):
    """RFC 3339 UTC with microseconds -> integer microseconds since the epoch."""
    assert isinstance(ts, str), f"timestamp is not a string: {ts!r}"
    m = _TS.match(ts)
    assert m, f"not an RFC 3339 UTC timestamp with microseconds: {ts!r}"
    secs = calendar.timegm(tuple(int(m.group(i)) for i in range(1, 7)))
    return secs * 1_000_000 + int(m.group(7))


# ---------------------------------------------------------------------------
# helpers: the stream


class Entry:
    """One stream entry, checked against docs/api.md §8 / docs/events.md."""

    def __init__(self, sid, fields, tenant):
        self.sid = sid.decode() if isinstance(sid, bytes) else sid
        self.raw = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
        f = self.raw
        assert set(f) == ENTRY_FIELDS, \
            f"stream entry {self.sid} has fields {sorted(f)}, expected exactly {sorted(ENTRY_FIELDS)}"
        self.event_bytes = f["event"] if isinstance(f["event"], bytes) else f["event"].encode()
        self.text = self.event_bytes.decode("utf-8")
        self.id = _s(f["id"])
        self.type = _s(f["type"])
        self.kid = _s(f["kid"])
        self.signature = _s(f["signature"])
        where = f"stream entry {self.sid} ({self.text[:300]})"

        # members and their order (docs/events.md "The CloudEvent and its signature")
        pairs = json.loads(self.text, object_pairs_hook=lambda p: p)
        assert isinstance(pairs, list), f"event is not a JSON object: {where}"
        names = [k for k, _ in pairs]
        assert names == ENVELOPE, f"CloudEvent members {names}, expected {ENVELOPE} in this order: {where}"
        ev = json.loads(self.text)
        self.event = ev
        assert ev["specversion"] == "1.0", where
        assert isinstance(ev["id"], str) and ev["id"] == self.id, \
            f"entry field id {self.id!r} != event id {ev['id']!r}: {where}"
        assert ev["id"].startswith("evt_") and len(ev["id"]) > 4, f"event id {ev['id']!r}: {where}"
        assert ev["source"] == f"onceledger/{tenant}", f"source {ev['source']!r}: {where}"
        assert ev["type"] == self.type, f"entry field type {self.type!r} != event type: {where}"
        assert ev["type"] in TYPES, f"unknown type {ev['type']!r}: {where}"
        assert isinstance(ev["subject"], str) and ev["subject"], where
        _us(ev["time"])
        assert abs(_us(ev["time"]) / 1e6 - time.time()) < 3600, f"time {ev['time']} is far from now: {where}"
        assert ev["datacontenttype"] == "application/json", where
        assert isinstance(ev["sequence"], str) and SEQ_RE.match(ev["sequence"]), \
            f"sequence {ev['sequence']!r} is not a decimal string: {where}"
        self.seq = int(ev["sequence"])
        self.txid, self.n = divmod(self.seq, 1_000_000)
        assert self.sid == f"{self.txid}-{self.n}", \
            f"stream id {self.sid} != <txid>-<n> of sequence {self.seq} ({self.txid}-{self.n})"
        assert isinstance(ev["data"], dict), where
        self.data = ev["data"]
        self.subject = ev["subject"]
        # envelope written without spaces (docs/events.md): the text up to "data"
        head = json.dumps({k: ev[k] for k in ENVELOPE[:-1]}, separators=(",", ":"))
        assert self.text.startswith(head[:-1] + ',"data":'), \
            f"envelope is not the compact member list {head[:-1]},\"data\":...: {where}"
        assert KID_RE.match(self.kid), f"kid {self.kid!r} is not 16 hex digits: {where}"
        assert B64_RE.match(self.signature), f"signature {self.signature!r} is not base64: {where}"
        assert len(base64.b64decode(self.signature)) == 64, f"signature is not 64 bytes: {where}"

    def __repr__(self):
        return f"<{self.sid} {self.type} {self.subject}>"


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def read_stream(rds, tenant):
    return [Entry(sid, fields, tenant) for sid, fields in rds.xrange(PREFIX + tenant, "-", "+")]


class Keys:
    """Signing keys fetched by kid (GET /v1/events/signing-key?kid=)."""

    def __init__(self, d, akey):
        self.d, self.akey, self.vks = d, akey, {}

    def vk(self, kid):
        if kid not in self.vks:
            k = _expect(_get(self.d, "/v1/events/signing-key", self.akey, {"kid": kid}), 200)
            assert set(k) == {"kid", "alg", "public_key"}, k
            assert k["kid"] == kid and k["alg"] == "ed25519", k
            pub = base64.b64decode(k["public_key"], validate=True)
            assert len(pub) == 32, k
            self.vks[kid] = nacl.signing.VerifyKey(pub)
        return self.vks[kid]

    def verify(self, e):
        sig = base64.b64decode(e.signature)
        try:
            self.vk(e.kid).verify(e.event_bytes, sig)
        except nacl.exceptions.BadSignatureError:
            raise AssertionError(f"signature of {e!r} does not verify with key {e.kid}: {e.text[:300]}")


def check_stream_order(es):
    seqs = [e.seq for e in es]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), f"sequences not strictly increasing: {es}"
    ids = [e.id for e in es]
    assert len(ids) == len(set(ids)), f"duplicate event ids in the stream: {es}"


def assert_one_tx(es):
    """Entries written by one transaction: same txid, n = 0, 1, ..."""
    assert len({e.txid for e in es}) == 1, f"not one transaction: {[(e.sid, e.type) for e in es]}"
    assert [e.n for e in es] == list(range(len(es))), \
        f"n of one transaction's events is not 0..{len(es) - 1}: {[(e.sid, e.type) for e in es]}"


class Ev:
    """One tenant: its keys, its stream and the events expected in it."""

    def __init__(self, d, rds, cli, tenant=None):
        self.d, self.rds = d, rds
        self.tenant = tenant or cli.tenant_create()
        self.wkey = cli.key_create(self.tenant, "read,write")
        self.akey = cli.key_create(self.tenant, "audit")
        self.keys = Keys(d, self.akey)
        self.expected = []        # (type, data dict or None, check fn or None)

    # -- API shortcuts that also record what they must emit ------------------
    def post(self, path, body=None, idem=None):
        return _post(self.d, path, self.wkey, body, idem=idem)

    def get(self, path, params=None):
        return _get(self.d, path, self.wkey, params)

    def account(self, acc=None, currency=CUR, **extra):
        body = {"id": acc or "acc-" + _hex(), "currency": currency}
        body.update(extra)
        a = _expect(self.post("/v1/accounts", body), 201)
        self.expect("account.created", a)
        return a

    def credit(self, acc, amount):
        t = _expect(self.post(f"/v1/accounts/{acc}/credits", {"amount": amount}), 201)
        self.expect("transfer.posted", t)
        return t

    def transfer_obj(self, tid):
        return _expect(self.get(f"/v1/transfers/{tid}"), 200)

    def expect(self, type_, data=None, check=None):
        assert type_ in TYPES
        self.expected.append((type_, data, check))

    # -- the stream -----------------------------------------------------------
    def read(self):
        return read_stream(self.rds, self.tenant)

    def wait_for(self, pred, timeout=15, what="event"):
        es = poll(lambda: (lambda x: x if any(pred(e) for e in x) else None)(self.read()), timeout, 0.1)
        assert es, f"{what} not in stream {PREFIX}{self.tenant} after {timeout} s: {self.read()}"
        return es

    def sync(self, timeout=15):
        """Marker account, wait for it, then the whole stream must be what was expected."""
        marker = "mark-" + _hex()
        self.account(marker, currency="EUR")
        es = self.wait_for(lambda e: e.type == "account.created" and e.subject == marker, timeout,
                           f"marker account.created {marker}")
        self.check(es)
        return es

    def check(self, es):
        got = [(e.type, e.subject) for e in es]
        want = [(t, (d or {}).get("id", "?")) for t, d, _ in self.expected]
        if len(got) != len(want) or any(g[0] != w[0] or (w[1] != "?" and g[1] != w[1])
                                         for g, w in zip(got, want)):
            raise AssertionError(f"stream of {self.tenant} is not the expected events\n"
                                 f"expected {len(want)}: {want}\ngot {len(got)}: {got}")
        for e, (t, data, check) in zip(es, self.expected):
            assert e.subject == e.data.get("id"), f"subject {e.subject!r} is not data.id: {e.text[:300]}"
            if data is not None:
                assert e.data == data, f"{t} {e.subject}: event data differs from the API object\n" \
                                       f"event: {e.data}\napi:   {data}"
            if check is not None:
                check(e)
        check_stream_order(es)
        for e in es:
            self.keys.verify(e)


@pytest.fixture(scope="module")
def rds(stack):
    if not stack.redis_url:
        pytest.skip("the Redis URL is unknown (set ONCELEDGER_REDIS_URL)")
    r = redis.Redis.from_url(stack.redis_url, decode_responses=False, socket_timeout=10)
    yield r
    r.close()


@pytest.fixture
def ev(daemon, rds, cli):
    return Ev(daemon, rds, cli)


def _hold_body(frm, to, amount, **extra):
    b = {"from": frm, "to": to, "amount": amount, "currency": CUR}
    b.update(extra)
    return b


def _order_body(customer, merchant, amount, **extra):
    b = {"customer": customer, "merchant": merchant, "amount": amount, "currency": CUR}
    b.update(extra)
    return b


# ---------------------------------------------------------------------------
# 1. expiry touched lazily (first: no other daemon may run, see the docstring)


def test_lazy_expiry_emits_hold_and_order_expired(daemon_factory, rds, cli):
    d = daemon_factory("--hold-sweep-interval-ms", "0")
    ev = Ev(d, rds, cli)
    a, b = ev.account()["id"], ev.account()["id"]
    ev.credit(a, 1000)
    holds = []
    for amount in (100, 200, 300):
        h = _expect(ev.post("/v1/holds", _hold_body(a, b, amount, expires_in=1)), 201)
        ev.expect("hold.created", h)
        holds.append(h)
    live = _expect(ev.post("/v1/holds", _hold_body(a, b, 50, expires_in=3600)), 201)
    ev.expect("hold.created", live)
    orders = []
    for amount in (10, 20):
        o = _expect(ev.post("/v1/orders", _order_body(a, b, amount, expires_in=1)), 201)
        ev.expect("order.created", o)
        orders.append(o)
    latest = max(_us(x["expires_at"]) for x in holds + orders) / 1e6
    time.sleep(max(1.5, latest - time.time() + 0.5))

    # nothing touched them and no sweeper runs: no expired event yet
    # (a failure here can also mean another daemon's sweeper runs on this database)
    ev.sync()

    h1, h2, h3 = holds
    g1 = _expect(ev.get(f"/v1/holds/{h1['id']}"), 200)             # touched by a GET
    assert g1["status"] == "expired", g1
    ev.expect("hold.expired", g1)
    r = ev.post(f"/v1/holds/{h2['id']}/capture", {})                 # by a capture (409)
    assert r.status_code == 409, _desc(r)
    g2 = _expect(ev.get(f"/v1/holds/{h2['id']}"), 200)
    assert g2["status"] == "expired", g2
    ev.expect("hold.expired", g2)
    r = ev.post(f"/v1/holds/{h3['id']}/void")                        # by a void (409)
    assert r.status_code == 409, _desc(r)
    g3 = _expect(ev.get(f"/v1/holds/{h3['id']}"), 200)
    assert g3["status"] == "expired", g3
    ev.expect("hold.expired", g3)
    # touching an expired hold again emits nothing
    assert _expect(ev.get(f"/v1/holds/{h1['id']}"), 200) == g1
    assert ev.post(f"/v1/holds/{h1['id']}/capture", {}).status_code == 409

    o1, o2 = orders
    go1 = _expect(ev.get(f"/v1/orders/{o1['id']}"), 200)           # by a GET
    assert go1["status"] == "expired", go1
    ev.expect("order.expired", go1)
    r = ev.post(f"/v1/orders/{o2['id']}/settle")                     # by a settle (409)
    assert r.status_code == 409, _desc(r)
    go2 = _expect(ev.get(f"/v1/orders/{o2['id']}"), 200)
    assert go2["status"] == "expired", go2
    ev.expect("order.expired", go2)
    assert _expect(ev.get(f"/v1/orders/{o1['id']}"), 200) == go1
    # the live hold is untouched: no event for it
    assert _expect(ev.get(f"/v1/holds/{live['id']}"), 200) == live
    ev.sync()


# ---------------------------------------------------------------------------
# 2. accounts


def test_account_created_frozen_unfrozen(ev):
    a = ev.account(owner="cust-" + _hex(), overdraft_limit=50, metadata={"tier": "gold", "n": 1})
    assert _expect(ev.get(f"/v1/accounts/{a['id']}"), 200) == a
    b = ev.account(currency="EUR")
    # existing id: 409, nothing
    assert_problem(ev.post("/v1/accounts", {"id": a["id"], "currency": CUR}), 409, "account_exists")

    f = _expect(ev.post(f"/v1/accounts/{a['id']}/freeze"), 200)
    assert f["status"] == "frozen", f
    ev.expect("account.frozen", f)
    # freezing an already frozen account changes nothing and emits nothing
    f2 = _expect(ev.post(f"/v1/accounts/{a['id']}/freeze"), 200)
    assert f2["status"] == "frozen", f2
    # a debit of a frozen account fails: nothing
    assert_problem(ev.post(f"/v1/accounts/{a['id']}/debits", {"amount": 1}), 409, "account_frozen")
    u = _expect(ev.post(f"/v1/accounts/{a['id']}/unfreeze"), 200)
    assert u["status"] == "active", u
    ev.expect("account.unfrozen", u)
    # unfreezing an active account: nothing
    assert _expect(ev.post(f"/v1/accounts/{b['id']}/unfreeze"), 200)["status"] == "active"
    assert _expect(ev.get(f"/v1/accounts/{a['id']}"), 200) == u
    es = ev.sync()
    assert [e.type for e in es[:4]] == ["account.created", "account.created", "account.frozen",
                                        "account.unfrozen"]


# ---------------------------------------------------------------------------
# 3. transfers, credits, debits, batches


def test_transfer_posted_events(ev):
    a, b = ev.account()["id"], ev.account()["id"]
    c = ev.credit(a, 1000)
    assert ev.transfer_obj(c["id"]) == c
    t = _expect(ev.post("/v1/transfers", {"from": a, "to": b, "amount": 300, "currency": CUR,
                                          "description": "rent", "metadata": {"k": "v"}}), 201)
    ev.expect("transfer.posted", t)
    dbt = _expect(ev.post(f"/v1/accounts/{b}/debits", {"amount": 100}), 201)
    ev.expect("transfer.posted", dbt)
    assert dbt["to"] == f"@world:{CUR}" and c["from"] == f"@world:{CUR}", (c, dbt)

    # 402: nothing
    assert_problem(ev.post("/v1/transfers", {"from": a, "to": b, "amount": 10 ** 6, "currency": CUR}),
                   402, "insufficient_funds")
    assert_problem(ev.post(f"/v1/accounts/{b}/debits", {"amount": 10 ** 6}), 402, "insufficient_funds")
    # a replay (same Idempotency-Key): nothing new
    k = _ik()
    body = {"from": a, "to": b, "amount": 7, "currency": CUR}
    t7 = _expect(ev.post("/v1/transfers", body, idem=k), 201)
    ev.expect("transfer.posted", t7)
    r = ev.post("/v1/transfers", body, idem=k)
    assert r.status_code == 201 and _replayed(r), _desc(r)
    # a reused client id with identical parameters (200): nothing
    tid = "tr-cli-" + _hex()
    body = {"id": tid, "from": a, "to": b, "amount": 5, "currency": CUR}
    t5 = _expect(ev.post("/v1/transfers", body), 201)
    ev.expect("transfer.posted", t5)
    assert _expect(ev.post("/v1/transfers", body), 200) == t5
    # ... with other parameters (409): nothing
    assert_problem(ev.post("/v1/transfers", dict(body, amount=6)), 409, "transfer_exists")
    es = ev.sync()
    for e in es:
        if e.type == "transfer.posted":
            assert_one_tx([e])


def test_batch_emits_one_event_per_transfer_in_order(ev):
    a, b, c = ev.account()["id"], ev.account()["id"], ev.account()["id"]
    ev.credit(a, 1000)
    items = [{"from": a, "to": b, "amount": 10, "currency": CUR},
             {"from": b, "to": c, "amount": 4, "currency": CUR, "id": "tr-b1-" + _hex()},
             {"from": a, "to": c, "amount": 30, "currency": CUR, "description": "third"},
             {"from": c, "to": a, "amount": 1, "currency": CUR}]
    body = _expect(ev.post("/v1/transfers/batch", {"transfers": items}), 201)
    ts = body["transfers"]
    assert len(ts) == 4, body
    for t in ts:
        ev.expect("transfer.posted", t)
    # a failed batch (the last one is short of money): nothing
    bad = [{"from": a, "to": b, "amount": 1, "currency": CUR},
           {"from": c, "to": b, "amount": 10 ** 6, "currency": CUR}]
    p = assert_problem(ev.post("/v1/transfers/batch", {"transfers": bad}), 402, "insufficient_funds")
    assert p.get("index") == 1, p
    # a batch whose first transfer exists with identical parameters: only the new one
    nid = "tr-b2-" + _hex()
    body2 = _expect(ev.post("/v1/transfers/batch", {"transfers": [
        items[1], {"id": nid, "from": a, "to": b, "amount": 2, "currency": CUR}]}), 201)
    assert body2["transfers"][0] == ts[1], body2
    ev.expect("transfer.posted", body2["transfers"][1])
    es = ev.sync()
    batch = [e for e in es if e.type == "transfer.posted" and e.subject in {t["id"] for t in ts}]
    assert [e.subject for e in batch] == [t["id"] for t in ts], "batch events not in request order"
    assert_one_tx(batch)
    for t in ts:
        assert ev.transfer_obj(t["id"]) == t


# ---------------------------------------------------------------------------
# 4. holds


def test_hold_created_captured_voided(ev):
    a, b = ev.account()["id"], ev.account()["id"]
    ev.credit(a, 1000)
    h = _expect(ev.post("/v1/holds", _hold_body(a, b, 300, metadata={"o": 1})), 201)
    ev.expect("hold.created", h)
    cap = _expect(ev.post(f"/v1/holds/{h['id']}/capture", {"amount": 120}), 200)
    assert cap["status"] == "captured" and cap["captured"] == 120 and cap["transfer_id"], cap
    tr = ev.transfer_obj(cap["transfer_id"])
    assert tr["hold_id"] == h["id"] and tr["amount"] == 120, tr
    ev.expect("transfer.posted", tr)
    ev.expect("hold.captured", cap)
    # capture again: 409, nothing
    r = ev.post(f"/v1/holds/{h['id']}/capture", {})
    assert r.status_code == 409, _desc(r)

    v = _expect(ev.post("/v1/holds", _hold_body(a, b, 200)), 201)
    ev.expect("hold.created", v)
    vo = _expect(ev.post(f"/v1/holds/{v['id']}/void"), 200)
    assert vo["status"] == "voided", vo
    ev.expect("hold.voided", vo)
    assert ev.post(f"/v1/holds/{v['id']}/void").status_code == 409
    assert ev.post(f"/v1/holds/{v['id']}/capture", {}).status_code == 409

    # a hold beyond the available amount: 402, nothing
    assert_problem(ev.post("/v1/holds", _hold_body(a, b, 10 ** 6)), 402, "insufficient_funds")
    # a reused client id with identical parameters: 200, nothing
    hid = "hold-cli-" + _hex()
    hb = _hold_body(a, b, 5, id=hid, expires_in=3600)
    h5 = _expect(ev.post("/v1/holds", hb), 201)
    ev.expect("hold.created", h5)
    assert _expect(ev.post("/v1/holds", hb), 200) == h5
    # full capture by the default amount, replayed: one pair of events
    k = _ik()
    cap5 = _expect(ev.post(f"/v1/holds/{hid}/capture", {}, idem=k), 200)
    r = ev.post(f"/v1/holds/{hid}/capture", {}, idem=k)
    assert r.status_code == 200 and _replayed(r), _desc(r)
    ev.expect("transfer.posted", ev.transfer_obj(cap5["transfer_id"]))
    ev.expect("hold.captured", cap5)
    es = ev.sync()
    for hold in (h["id"], hid):
        i = next(i for i, e in enumerate(es) if e.type == "hold.captured" and e.subject == hold)
        assert es[i - 1].type == "transfer.posted"
        assert_one_tx(es[i - 1:i + 1])      # transfer.posted then hold.captured, same transaction


def test_hold_expired_by_the_sweeper(ev):
    a, b = ev.account()["id"], ev.account()["id"]
    ev.credit(a, 100)
    h = _expect(ev.post("/v1/holds", _hold_body(a, b, 40, expires_in=1)), 201)
    ev.expect("hold.created", h)
    # never touch the hold: wait for the sweeper's event (module daemon: sweep every 1 s)
    es = ev.wait_for(lambda e: e.type == "hold.expired" and e.subject == h["id"], timeout=20,
                     what=f"hold.expired of {h['id']} (expires_at {h['expires_at']})")
    e = next(e for e in es if e.type == "hold.expired")
    g = _expect(ev.get(f"/v1/holds/{h['id']}"), 200)
    assert g["status"] == "expired", g
    ev.expect("hold.expired", g)
    assert _us(e.event["time"]) >= _us(h["expires_at"]) - 20_000, \
        f"expired event at {e.event['time']}, before expires_at {h['expires_at']}"
    ev.sync()


# ---------------------------------------------------------------------------
# 5. orders


def test_order_created_paid_cancelled_refunded(ev):
    c, m = ev.account()["id"], ev.account()["id"]
    ev.credit(c, 1000)
    o = _expect(ev.post("/v1/orders", _order_body(c, m, 400, metadata={"cart": "x1"})), 201)
    ev.expect("order.created", o)
    p = _expect(ev.post(f"/v1/orders/{o['id']}/settle"), 200)
    assert p["status"] == "paid" and p["transfer_id"], p
    st = ev.transfer_obj(p["transfer_id"])
    assert st["order_id"] == o["id"] and st["from"] == c and st["to"] == m, st
    ev.expect("transfer.posted", st)
    ev.expect("order.paid", p)
    # settle again: 409, nothing
    r = ev.post(f"/v1/orders/{o['id']}/settle")
    assert r.status_code == 409, _desc(r)

    # an order the customer cannot pay: 402, stays created, nothing
    big = _expect(ev.post("/v1/orders", _order_body(c, m, 10 ** 6)), 201)
    ev.expect("order.created", big)
    assert_problem(ev.post(f"/v1/orders/{big['id']}/settle"), 402, "insufficient_funds")
    cx = _expect(ev.post(f"/v1/orders/{big['id']}/cancel"), 200)
    assert cx["status"] == "cancelled", cx
    ev.expect("order.cancelled", cx)
    assert ev.post(f"/v1/orders/{big['id']}/cancel").status_code == 409

    # partial refund, too much (422, nothing), then the rest
    def refund_transfer(amount):
        def check(e):
            t = e.data
            assert (t["from"], t["to"], t["amount"], t["order_id"]) == (m, c, amount, o["id"]), t
            assert ev.transfer_obj(t["id"]) == t
        return check

    r1 = _expect(ev.post(f"/v1/orders/{o['id']}/refund", {"amount": 150}), 200)
    assert r1["status"] == "partially_refunded" and r1["refunded"] == 150, r1
    ev.expect("transfer.posted", None, refund_transfer(150))
    ev.expect("order.refunded", r1)
    assert_problem(ev.post(f"/v1/orders/{o['id']}/refund", {"amount": 251}), 422, "refund_exceeds_payment")
    r2 = _expect(ev.post(f"/v1/orders/{o['id']}/refund", {}), 200)
    assert r2["status"] == "refunded" and r2["refunded"] == 400, r2
    ev.expect("transfer.posted", None, refund_transfer(250))
    ev.expect("order.refunded", r2)
    assert _expect(ev.get(f"/v1/orders/{o['id']}"), 200) == r2

    # a reused client order id with identical parameters: 200, nothing
    oid = "ord-cli-" + _hex()
    ob = _order_body(c, m, 3, id=oid)
    o3 = _expect(ev.post("/v1/orders", ob), 201)
    ev.expect("order.created", o3)
    assert _expect(ev.post("/v1/orders", ob), 200) == o3

    es = ev.sync()
    for typ in ("order.paid", "order.refunded"):
        for i, e in enumerate(es):
            if e.type == typ:
                assert es[i - 1].type == "transfer.posted", es
                assert_one_tx(es[i - 1:i + 1])


def test_order_expired_by_the_sweeper(ev):
    c, m = ev.account()["id"], ev.account()["id"]
    o = _expect(ev.post("/v1/orders", _order_body(c, m, 10, expires_in=1)), 201)
    ev.expect("order.created", o)
    es = ev.wait_for(lambda e: e.type == "order.expired" and e.subject == o["id"], timeout=20,
                     what=f"order.expired of {o['id']} (expires_at {o['expires_at']})")
    e = next(e for e in es if e.type == "order.expired")
    g = _expect(ev.get(f"/v1/orders/{o['id']}"), 200)
    assert g["status"] == "expired", g
    ev.expect("order.expired", g)
    assert _us(e.event["time"]) >= _us(o["expires_at"]) - 20_000, \
        f"expired event at {e.event['time']}, before expires_at {o['expires_at']}"
    ev.sync()


# ---------------------------------------------------------------------------
# 6. envelope and signatures


def test_signing_key_and_signatures(ev, daemon):
    a = ev.account()["id"]
    ev.credit(a, 5)
    es = ev.sync()
    k = _expect(_get(daemon, "/v1/events/signing-key", ev.akey), 200)
    assert set(k) == {"kid", "alg", "public_key"}, k
    assert k["alg"] == "ed25519" and KID_RE.match(k["kid"]), k
    pub = base64.b64decode(k["public_key"], validate=True)
    assert len(pub) == 32, k
    assert _expect(_get(daemon, "/v1/events/signing-key", ev.akey, {"kid": k["kid"]}), 200) == k
    assert_problem(_get(daemon, "/v1/events/signing-key", ev.akey, {"kid": "unknown"}), 404, "not_found")
    assert_problem(_get(daemon, "/v1/events/signing-key", ev.akey, {"kid": "0123456789abcdef"}),
                   404, "not_found")
    # the current key signed these fresh events
    assert {e.kid for e in es} == {k["kid"]}, (es, k)
    vk = nacl.signing.VerifyKey(pub)
    for e in es:
        sig = base64.b64decode(e.signature)
        vk.verify(e.event_bytes, sig)
        # one flipped byte of the event (anywhere: start, middle, in data, end) fails
        for pos in (0, len(e.event_bytes) // 2, e.event_bytes.index(b'"data":') + 8,
                    len(e.event_bytes) - 1):
            bad = bytearray(e.event_bytes)
            bad[pos] ^= 0x01
            with pytest.raises(nacl.exceptions.BadSignatureError):
                vk.verify(bytes(bad), sig)
        badsig = bytearray(sig)
        badsig[10] ^= 0x80
        with pytest.raises(nacl.exceptions.BadSignatureError):
            vk.verify(e.event_bytes, bytes(badsig))


def test_events_routes_need_audit_scope(daemon, make_key):
    for path in ("/v1/events", "/v1/events/signing-key"):
        assert_problem(daemon.get(path), 401, "unauthenticated")
        assert_problem(daemon.get(path, key="olk_0000000000000000_" + "A" * 43), 401, "unauthenticated")
        for scopes in ("read", "write", "read,write"):
            assert_problem(daemon.get(path, key=make_key(scopes)), 403, "forbidden")
        assert daemon.get(path, key=make_key("audit")).status_code == 200
        assert daemon.get(path, key=make_key("read,write,audit")).status_code == 200


# ---------------------------------------------------------------------------
# 7. GET /v1/events


def _events_page(d, akey, **params):
    body = _expect(_get(d, "/v1/events", akey, params), 200)
    assert set(body) == {"data", "next_cursor"}, body
    assert isinstance(body["data"], list), body
    nc = body["next_cursor"]
    assert nc is None or (isinstance(nc, str) and SEQ_RE.match(nc)), f"next_cursor {nc!r}"
    return body


def _all_events(d, akey, limit=None, after=None, max_pages=1000):
    out, pages = [], []
    params = {}
    if limit is not None:
        params["limit"] = limit
    if after is not None:
        params["after"] = after
    while True:
        body = _events_page(d, akey, **params)
        pages.append(body)
        out.extend(body["data"])
        if body["next_cursor"] is None:
            return out, pages
        assert len(pages) < max_pages
        params["after"] = body["next_cursor"]


def test_get_events_replays_the_stream(ev, daemon):
    a, b = ev.account()["id"], ev.account()["id"]
    ev.credit(a, 100)
    _expect(ev.post("/v1/transfers/batch", {"transfers": [
        {"from": a, "to": b, "amount": 1, "currency": CUR} for _ in range(3)]}), 201)
    for _ in range(3):
        ev.expect("transfer.posted")
    ev.credit(b, 9)
    es = ev.sync()                             # 2 + 1 + 3 + 1 + marker = 8 events
    stream = [json.loads(e.text) for e in es]
    assert len(stream) == 8

    got = poll(lambda: (lambda x: x if len(x[0]) >= len(stream) else None)(_all_events(daemon, ev.akey)),
               timeout=10)
    assert got, f"GET /v1/events has fewer than {len(stream)} events: {_all_events(daemon, ev.akey)[0]}"
    events, pages = got
    assert events == stream, f"GET /v1/events != the stream\napi:    {events}\nstream: {stream}"
    assert len(pages) == 1 and pages[0]["next_cursor"] is None, pages

    for limit in (1, 3, 4, 7, 8, 1000):
        events, pages = _all_events(daemon, ev.akey, limit=limit)
        assert events == stream, f"limit={limit}: pages differ from the stream"
        for p in pages:
            assert len(p["data"]) <= limit, (limit, p)
            if len(p["data"]) == limit:
                assert p["next_cursor"] == p["data"][-1]["sequence"], \
                    f"limit={limit}: a full page's next_cursor {p['next_cursor']!r} is not its last " \
                    f"sequence {p['data'][-1]['sequence']!r}"
            else:
                assert p["next_cursor"] is None, f"limit={limit}: a short page has next_cursor {p}"
        want_pages = len(stream) // limit + 1
        assert len(pages) == want_pages, f"limit={limit}: {len(pages)} pages, expected {want_pages}"

    # after= a sequence: everything after it
    for k in (0, 2, 5, 7):
        seq = stream[k]["sequence"]
        events, _ = _all_events(daemon, ev.akey, after=seq)
        assert events == stream[k + 1:], f"after={seq} (event {k}): {[e['sequence'] for e in events]}"
        # a sequence between two events (not of one transaction: those are consecutive)
        if k < 7 and int(stream[k + 1]["sequence"]) > int(seq) + 1:
            events, _ = _all_events(daemon, ev.akey, after=str(int(seq) + 1))
            assert events == stream[k + 1:], f"after={int(seq) + 1}"
    events, _ = _all_events(daemon, ev.akey, after="0")
    assert events == stream
    events, _ = _all_events(daemon, ev.akey, after=str(int(stream[0]["sequence"]) - 1))
    assert events == stream
    body = _events_page(daemon, ev.akey, after=stream[-1]["sequence"], limit=5)
    assert body == {"data": [], "next_cursor": None}, body
    body = _events_page(daemon, ev.akey, after=stream[1]["sequence"], limit=2)
    assert body["data"] == stream[2:4] and body["next_cursor"] == stream[3]["sequence"], body


def burn_xids_to_boundary(db, before):
    """Consume transaction ids until the next one is `before` below a power of
    ten (999..., then 1000...): positions of both sides differ in their number
    of decimal digits, so ordering them as text instead of as numbers shows.
    Aborted subtransactions that write take an xid each (~100k/s)."""
    with db.cursor() as cur:
        cur.execute("SELECT pg_current_xact_id()::text")
        x = int(cur.fetchone()[0])
        boundary = 10 ** len(str(x + before + 2))
        need = boundary - before - x - 1
        if need > 3_000_000:
            pytest.skip(f"xid {x}: the next power of ten {boundary} is too far to burn")
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS xid_burn (i int)")
        if need > 0:
            cur.execute("DO $$ BEGIN FOR i IN 1..%s LOOP BEGIN INSERT INTO xid_burn VALUES (i); "
                        "RAISE EXCEPTION 'burn'; EXCEPTION WHEN raise_exception THEN NULL; END; "
                        "END LOOP; END $$" % int(need))
        cur.execute("SELECT pg_current_xact_id()::text")
        x = int(cur.fetchone()[0])
    assert boundary - before - 2 <= x < boundary, (x, boundary)
    return boundary


def test_events_across_a_txid_digit_boundary(ev, daemon, db, stack):
    """Positions are numbers: txid 9999 comes before 10000 (docs/events.md:
    the relay and GET /v1/events order by (txid, n)).  A transaction holding
    an xid keeps the watermark below the events while they are written, so
    the relay gets them in one batch, and GET /v1/events pages over them."""
    import psycopg2
    a = ev.account()["id"]
    ev.sync()
    boundary = burn_xids_to_boundary(db, 5)
    blocker = psycopg2.connect(stack.database_url)
    try:
        with blocker.cursor() as cur:
            cur.execute("SELECT pg_current_xact_id()::text")      # holds the watermark
            held = int(cur.fetchone()[0])
        for amount in range(1, 9):
            ev.credit(a, amount)
        time.sleep(0.3)
    finally:
        blocker.rollback()
        blocker.close()
    marker = "mark-" + _hex()
    ev.account(marker, currency="EUR")
    es = ev.wait_for(lambda e: e.subject == marker, 15, f"marker {marker}")
    failures = []

    # GET /v1/events: every event, in (txid, n) order, on every page size
    n_want = len(ev.expected)
    got = poll(lambda: (lambda x: x if len(x) >= n_want else None)(_all_events(daemon, ev.akey)[0]),
               timeout=10) or _all_events(daemon, ev.akey)[0]
    seqs = [int(x["sequence"]) for x in got]
    txids = [q // 1_000_000 for q in seqs]
    assert min(t for t in txids if t > held) < boundary <= max(txids), \
        f"the events do not straddle {boundary}: txids {txids}"
    if seqs != sorted(seqs) or [x["subject"] for x in got] != [d["id"] for _, d, _ in ev.expected]:
        failures.append(f"GET /v1/events across txid {boundary}: sequences {seqs} (not ascending, or not "
                        f"the {n_want} events written)")
    want = sorted(got, key=lambda x: int(x["sequence"]))
    for limit in (2, 3, 5):
        events, _ = _all_events(daemon, ev.akey, limit=limit)
        if events != want:
            failures.append(f"GET /v1/events?limit={limit}: sequences {[x['sequence'] for x in events]}, "
                            f"expected {[x['sequence'] for x in want]}")
    mids = [x for x in want if held < int(x["sequence"]) // 1_000_000 < boundary]
    if mids:
        k = want.index(mids[0])
        events, _ = _all_events(daemon, ev.akey, after=mids[0]["sequence"], limit=2)
        if events != want[k + 1:]:
            failures.append(f"GET /v1/events?after={mids[0]['sequence']}&limit=2: sequences "
                            f"{[x['sequence'] for x in events]}, expected {[x['sequence'] for x in want[k + 1:]]}")

    # the stream: exactly the events, in order (the relay's batch spans the boundary)
    try:
        ev.check(es)
        if [json.loads(e.text) for e in es] != want:
            failures.append("the stream's events differ from GET /v1/events")
    except AssertionError as e:
        failures.append(f"relay across txid {boundary}: {e}")
    assert not failures, "\n\n".join(failures)


def test_get_events_bad_parameters(daemon, make_key):
    akey = make_key("audit")
    for params in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"limit": "-1"},
                   {"limit": "1.5"}, {"after": "abc"}, {"after": "-1"}, {"after": "1e3"}):
        assert_problem(_get(daemon, "/v1/events", akey, params), 400, "invalid_request")
    for params in ({"limit": "1"}, {"limit": "1000"}, {"after": "0"}, {"after": "123456789"}):
        body = _events_page(daemon, akey, **params)
        assert body == {"data": [], "next_cursor": None}, (params, body)


def test_events_are_per_tenant(daemon, rds, cli):
    t1, t2 = Ev(daemon, rds, cli), Ev(daemon, rds, cli)
    shared = "acc-shared-" + _hex()          # the same client id in both tenants
    for t, amount in ((t1, 11), (t2, 22)):
        t.account(shared)
        t.credit(shared, amount)
    t2.account()
    es1, es2 = t1.sync(), t2.sync()
    assert len(es1) == 3 and len(es2) == 4, (es1, es2)
    assert {e.id for e in es1}.isdisjoint({e.id for e in es2})
    for t, es in ((t1, es1), (t2, es2)):
        got = poll(lambda: (lambda x: x if len(x) >= len(es) else None)(_all_events(daemon, t.akey)[0]),
                   timeout=10)
        assert got == [json.loads(e.text) for e in es], f"GET /v1/events of {t.tenant}: {got}"
        assert {x["source"] for x in got} == {f"onceledger/{t.tenant}"}
    # another tenant's key sees nothing of this one
    other = cli.key_create(cli.tenant_create(), "audit")
    assert _events_page(daemon, other) == {"data": [], "next_cursor": None}
