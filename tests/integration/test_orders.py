"""Orders, checkout settlement (docs/api.md §6; docs/orders.md): the order object,
client-chosen ids that dedupe, the create errors (404 account_not_found with
the customer reported first, 422 currency_mismatch / same_account, 409
order_exists) and the 400 input matrix; settle (customer -> merchant transfer
with order_id, 402 leaves the order created, 409 order_not_payable with the
order's status), 20 racing settles, cancel, expiry by the sweeper and lazily
when touched, refunds (partial, the rest, too much, merchant short of money),
lists (filters, newest first, pages), tenants, scopes, and the ledger's own
verification afterwards.

Money comes in through POST /v1/accounts/{id}/credits (§4); the transfers of
settles and refunds are read back with GET /v1/transfers/{id} and found
through the accounts' entries (§7, audit scope).  Nothing here asserts on
timing: expiry is polled for with a generous deadline."""

import calendar
import json
import re
import secrets
import threading
import time
import uuid

import pytest
import requests

from oltest import assert_problem, poll

CUR = "USD"
MAX = 9223372036854775807            # 2^63 - 1
MAX_EXPIRES = 2592000
DEFAULT_EXPIRES = 900
ORDER_KEYS = {"id", "customer", "merchant", "amount", "refunded", "currency", "status", "transfer_id",
              "expires_at", "paid_at", "metadata", "created_at"}
TRANSFER_KEYS = {"id", "from", "to", "amount", "currency", "status", "description", "metadata",
                 "hold_id", "order_id", "created_at", "entries"}
STATUSES = ("created", "paid", "cancelled", "expired", "refunded", "partially_refunded")
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


# ---------------------------------------------------------------------------
# helpers


def _ik():
    return uuid.uuid4().hex


def _hex():
    return secrets.token_hex(6)


def _post(d, path, key, body=None, session=None, idem=None, timeout=20):
    """POST with a fresh Idempotency-Key; body None sends no body at all."""
    h = {"Idempotency-Key": idem or _ik()}
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    return d.post(path, key=key, data=data, headers=h, session=session, timeout=timeout)


def _get(d, path, key, params=None, session=None):
    return d.get(path, key=key, params=params, session=session, timeout=20)


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


_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z$")


def _us(ts):
    """RFC 3339 UTC with microseconds (docs/api.md §1) -> integer microseconds since the epoch."""
    assert isinstance(ts, str), f"timestamp is not a string: {ts!r}"
    m = _TS.match(ts)
    assert m, f"not an RFC 3339 UTC timestamp with microseconds: {ts!r}"
    secs = calendar.timegm(tuple(int(m.group(i)) for i in range(1, 7)))
    return secs * 1_000_000 + int(m.group(7))


# accounts and money ---------------------------------------------------------

def _account(d, key, currency=CUR, funded=0):
    acc = "acc-" + _hex()
    _expect(_post(d, "/v1/accounts", key, {"id": acc, "currency": currency}), 201)
    if funded:
        _credit(d, key, acc, funded)
    return acc


def _credit(d, key, acc, amount):
    return _expect(_post(d, f"/v1/accounts/{acc}/credits", key, {"amount": amount}), 201)


def _debit(d, key, acc, amount):
    return _expect(_post(d, f"/v1/accounts/{acc}/debits", key, {"amount": amount}), 201)


def _bal(d, key, acc):
    """(posted, pending, available)"""
    b = _expect(_get(d, f"/v1/accounts/{acc}", key), 200)["balance"]
    return b["posted"], b["pending"], b["available"]


def _posted(d, key, acc):
    return _bal(d, key, acc)[0]


# orders -----------------------------------------------------------------------

def _order_body(customer, merchant, amount, currency=CUR, **extra):
    body = {"customer": customer, "merchant": merchant, "amount": amount, "currency": currency}
    body.update(extra)
    return body


def _create(d, key, customer, merchant, amount, currency=CUR, idem=None, session=None, **extra):
    return _post(d, "/v1/orders", key, _order_body(customer, merchant, amount, currency, **extra),
                 idem=idem, session=session)


def _mk(d, key, customer, merchant, amount, **extra):
    o = _expect(_create(d, key, customer, merchant, amount, **extra), 201)
    check_order(o, customer, merchant, amount, oid=extra.get("id"), metadata=extra.get("metadata"))
    return o


def _get_order(d, key, oid):
    return _expect(_get(d, f"/v1/orders/{oid}", key), 200)


def _settle(d, key, oid, idem=None, session=None):
    return _post(d, f"/v1/orders/{oid}/settle", key, None, idem=idem, session=session, timeout=60)


def _cancel(d, key, oid, idem=None):
    return _post(d, f"/v1/orders/{oid}/cancel", key, None, idem=idem)


def _refund(d, key, oid, amount=None, body=None, idem=None):
    if body is None:
        body = {} if amount is None else {"amount": amount}
    return _post(d, f"/v1/orders/{oid}/refund", key, body, idem=idem)


def _paid(d, key, customer, merchant, amount, **extra):
    o = _mk(d, key, customer, merchant, amount, **extra)
    p = _expect(_settle(d, key, o["id"]), 200)
    assert p["status"] == "paid", p
    return p


def check_order(o, customer, merchant, amount, currency=CUR, oid=None, status="created", refunded=0,
                metadata=None, expires_in=None):
    """o is an order object of exactly the contract's shape (docs/api.md §6)."""
    assert isinstance(o, dict), o
    assert set(o) == ORDER_KEYS, f"order members {sorted(o)} != {sorted(ORDER_KEYS)}"
    if oid is None:
        assert isinstance(o["id"], str) and o["id"].startswith("ord_") and len(o["id"]) > 4, \
            f"generated order id {o['id']!r} lacks the ord_ prefix"
    else:
        assert o["id"] == oid, o
    assert ID_RE.match(o["id"]), o["id"]
    assert o["customer"] == customer and o["merchant"] == merchant, o
    assert o["amount"] == amount and type(o["amount"]) is int, o
    assert o["refunded"] == refunded and type(o["refunded"]) is int, o
    assert o["currency"] == currency, o
    assert o["status"] == status, o
    if metadata is None:
        # omitted metadata: {} (docs/ledger.md compares an omitted one as {}); null tolerated
        assert o["metadata"] in ({}, None), o
    else:
        assert o["metadata"] == metadata, o
    created, expires = _us(o["created_at"]), _us(o["expires_at"])
    if expires_in is not None:
        assert abs(expires - created - expires_in * 1_000_000) <= 1000, \
            f"expires_at {o['expires_at']} != created_at {o['created_at']} + {expires_in} s"
    if status in ("created", "cancelled", "expired"):
        assert o["transfer_id"] is None and o["paid_at"] is None, o
    else:
        assert isinstance(o["transfer_id"], str) and ID_RE.match(o["transfer_id"]), o
        assert created <= _us(o["paid_at"]) <= expires, f"paid_at outside [created_at, expires_at]: {o}"
    return o


def _not_payable(r, status):
    """409 order_not_payable with "order_status": <the order's status>
    (docs/api.md, orders); "status" is the HTTP status, a number (RFC 9457)."""
    body = assert_problem(r, 409, "order_not_payable")
    assert body.get("order_status") == status, \
        f"order_status {body.get('order_status')!r}, expected {status!r}: {_desc(r)}"
    return body


def _order_404(r):
    # docs/api.md §6: order_not_found, like hold_not_found / transfer_not_found
    return assert_problem(r, 404, "order_not_found")


def _list_page(d, key, params):
    body = _expect(_get(d, "/v1/orders", key, params), 200)
    assert set(body) == {"data", "next_cursor"}, f"list members {sorted(body)}: {body}"
    assert isinstance(body["data"], list), body
    assert body["next_cursor"] is None or (isinstance(body["next_cursor"], str) and body["next_cursor"]), body
    return body


def _list(d, key, limit=None, max_pages=100, **filters):
    """Every order of a list, following next_cursor; returns (orders, pages)."""
    params = dict(filters)
    if limit is not None:
        params["limit"] = limit
    out, pages = [], 0
    while True:
        page = _list_page(d, key, params)
        pages += 1
        if limit is not None:
            assert len(page["data"]) <= limit, f"page of {len(page['data'])} > limit {limit}: {page}"
        out.extend(page["data"])
        if page["next_cursor"] is None:
            break
        assert pages < max_pages, f"more than {max_pages} pages for {params}"
        params["cursor"] = page["next_cursor"]
    for o in out:
        assert set(o) == ORDER_KEYS, f"listed order members {sorted(o)}: {o}"
    return out, pages


def _ids(orders):
    return [o["id"] for o in orders]


def _newest_first(orders):
    ts = [_us(o["created_at"]) for o in orders]
    assert ts == sorted(ts, reverse=True), \
        f"list is not newest first (docs/orders.md): {[(o['id'], o['created_at']) for o in orders]}"


# ledger readback ----------------------------------------------------------------

def _entries(d, akey, acc):
    out, params = [], {"order": "asc", "limit": 1000}
    while True:
        body = _expect(_get(d, f"/v1/accounts/{acc}/entries", akey, params), 200)
        out.extend(body["data"])
        if not body.get("next_cursor"):
            return out
        params["cursor"] = body["next_cursor"]


def _transfer(d, key, tid):
    t = _expect(_get(d, f"/v1/transfers/{tid}", key), 200)
    assert set(t) == TRANSFER_KEYS, f"transfer members {sorted(t)}: {t}"
    return t


def _order_transfers(d, key, akey, acc, oid):
    """The transfers with order_id = oid among acc's entries, in seq order."""
    seen, out = set(), []
    for e in _entries(d, akey, acc):
        tid = e["transfer_id"]
        if tid in seen:
            continue
        seen.add(tid)
        t = _transfer(d, key, tid)
        if t["order_id"] == oid:
            out.append(t)
    return out


def _check_transfer(t, frm, to, amount, oid):
    assert t["from"] == frm and t["to"] == to, t
    assert t["amount"] == amount and t["currency"] == CUR, t
    assert t["status"] == "posted" and t["order_id"] == oid and t["hold_id"] is None, t
    es = t["entries"]
    assert len(es) == 2, t
    assert (es[0]["account"], es[0]["amount"]) == (frm, -amount), es
    assert (es[1]["account"], es[1]["amount"]) == (to, amount), es


def _verify_ledger(d, akey, accounts, currency=CUR):
    for acc in accounts:
        v = _expect(_get(d, f"/v1/accounts/{acc}/verify", akey), 200)
        assert v["account"] == acc and v["ok"] is True and v["balance_matches"] is True, v
        assert v["entries"] == len(_entries(d, akey, acc)), v
    v = _expect(_get(d, "/v1/audit/verify", akey, {"currency": currency}), 200)
    assert v["ok"] is True and v["sum"] == 0 and type(v["sum"]) is int, v


def _setup_tenant(cli):
    tenant = cli.tenant_create()
    return tenant, cli.key_create(tenant, "read,write"), cli.key_create(tenant, "audit")


@pytest.fixture
def wkey(make_key):
    return make_key("read,write")


@pytest.fixture
def akey(make_key):
    return make_key("audit")


# ---------------------------------------------------------------------------
# 5. expiry.  These two come first in the module, before anything starts the
# module's daemon: every daemon's sweeper (--hold-sweep-interval-ms, default
# 1 s, also expires orders) expires the orders of every tenant in the
# database, so the lazy test must be the only daemon running against it (the
# module daemon of another module is stopped at that module's end).


def test_sweeper_expires_orders(daemon_factory, cli):
    d = daemon_factory("--hold-sweep-interval-ms", "200")
    _, key, _ = _setup_tenant(cli)
    c, m = _account(d, key, funded=1050), _account(d, key)
    # paid and cancelled orders whose expires_at passes stay as they are
    po = _mk(d, key, c, m, 50, expires_in=1)
    po = _expect(_settle(d, key, po["id"]), 200)
    co = _expect(_cancel(d, key, _mk(d, key, c, m, 60, expires_in=1)["id"]), 200)
    o = _mk(d, key, c, m, 300, expires_in=1)          # created last: the latest expires_at of the three
    keep = _mk(d, key, c, m, 200, expires_in=3600)

    # read the list (never the order itself: a GET expires lazily) until the
    # sweeper moved the order to expired
    def swept():
        return o["id"] in _ids(_list(d, key, status="expired")[0])
    assert poll(swept, timeout=20, interval=0.2), \
        f"order {o['id']} (expires_at {o['expires_at']}) not in ?status=expired after 20 s: " \
        f"{_list(d, key)[0]}"
    assert _ids(_list(d, key, status="created")[0]) == [keep["id"]]
    assert _ids(_list(d, key, status="expired")[0]) == [o["id"]]
    assert _get_order(d, key, po["id"]) == po
    assert _get_order(d, key, co["id"]) == co
    listed = [x for x in _list(d, key, status="expired")[0] if x["id"] == o["id"]][0]
    g = _get_order(d, key, o["id"])
    check_order(g, c, m, 300, oid=o["id"], status="expired")
    assert listed == g, (listed, g)
    assert {k: g[k] for k in ORDER_KEYS - {"status"}} == {k: o[k] for k in ORDER_KEYS - {"status"}}, (o, g)

    _not_payable(_settle(d, key, o["id"]), "expired")
    _not_payable(_cancel(d, key, o["id"]), "expired")
    _not_payable(_refund(d, key, o["id"]), "expired")
    assert _get_order(d, key, o["id"])["status"] == "expired"
    assert _posted(d, key, c) == 1000 and _posted(d, key, m) == 50

    # the other order is untouched and still payable
    assert _get_order(d, key, keep["id"]) == keep
    p = _expect(_settle(d, key, keep["id"]), 200)
    check_order(p, c, m, 200, oid=keep["id"], status="paid")
    assert _posted(d, key, c) == 800 and _posted(d, key, m) == 250
    # a paid order past its expires_at is still refundable
    x = _expect(_refund(d, key, po["id"], 20), 200)
    check_order(x, c, m, 50, oid=po["id"], status="partially_refunded", refunded=20)
    _not_payable(_settle(d, key, co["id"]), "cancelled")
    assert _posted(d, key, c) == 820 and _posted(d, key, m) == 230


def test_lazy_expiry_when_touched(daemon_factory, cli):
    d = daemon_factory("--hold-sweep-interval-ms", "0")
    tenant, key, _ = _setup_tenant(cli)
    rkey = cli.key_create(tenant, "read")
    c, m = _account(d, key, funded=1050), _account(d, key)
    po = _expect(_settle(d, key, _mk(d, key, c, m, 50, expires_in=1)["id"]), 200)
    o1 = _mk(d, key, c, m, 100, expires_in=1)
    o2 = _mk(d, key, c, m, 200, expires_in=1)
    o3 = _mk(d, key, c, m, 300, expires_in=1)
    o4 = _mk(d, key, c, m, 400, expires_in=1)
    live = _mk(d, key, c, m, 500, expires_in=3600)
    latest = max(_us(o["expires_at"]) for o in (o1, o2, o3, o4)) / 1e6
    time.sleep(max(1.5, latest - time.time() + 0.5))

    # nothing touched them and no sweeper runs: still created in the status index
    # (a failure here can also mean another daemon's sweeper runs on this database)
    assert _list(d, key, status="expired")[0] == [], "expired without a sweeper and without a touch"

    _not_payable(_settle(d, key, o1["id"]), "expired")          # touched by a settle
    assert _posted(d, key, c) == 1000 and _posted(d, key, m) == 50
    _not_payable(_cancel(d, key, o2["id"]), "expired")          # by a cancel
    _not_payable(_refund(d, key, o3["id"]), "expired")          # by a refund
    g4 = _get_order(d, rkey, o4["id"])                          # by a GET (with a read-only key)
    check_order(g4, c, m, 400, oid=o4["id"], status="expired")

    # docs/orders.md: the expiring write commits with the answer
    for o in (o1, o2, o3):
        g = _get_order(d, key, o["id"])
        check_order(g, c, m, o["amount"], oid=o["id"], status="expired")
    assert sorted(_ids(_list(d, key, status="expired")[0])) == sorted(x["id"] for x in (o1, o2, o3, o4))
    assert _ids(_list(d, key, status="created")[0]) == [live["id"]]
    _not_payable(_settle(d, key, o1["id"]), "expired")
    assert _posted(d, key, c) == 1000 and _posted(d, key, m) == 50

    # the unexpired order is untouched and payable
    p = _expect(_settle(d, key, live["id"]), 200)
    check_order(p, c, m, 500, oid=live["id"], status="paid")
    assert _posted(d, key, c) == 500 and _posted(d, key, m) == 550
    # the paid order past its expires_at is not expired by touching it, and refundable
    assert _get_order(d, key, po["id"]) == po
    x = _expect(_refund(d, key, po["id"], 20), 200)
    check_order(x, c, m, 50, oid=po["id"], status="partially_refunded", refunded=20)
    assert _posted(d, key, c) == 520 and _posted(d, key, m) == 530
    assert _ids(_list(d, key, status="expired")[0]).count(po["id"]) == 0


# ---------------------------------------------------------------------------
# 1. creating an order


def test_create_order_shape(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey), _account(d, wkey)
    before = time.time()
    r = _create(d, wkey, c, m, 1234)
    o = _expect(r, 201)
    check_order(o, c, m, 1234, expires_in=DEFAULT_EXPIRES)
    assert abs(_us(o["created_at"]) / 1e6 - before) < 60, f"created_at {o['created_at']} is not now"
    assert r.headers.get("Idempotency-Expires"), "POST answer without Idempotency-Expires"
    assert _get_order(d, wkey, o["id"]) == o

    # client id, expires_in and metadata given
    oid = "ord-" + _hex()
    meta = {"cart": "c-17", "n": 2, "nested": {"a": [1, 2]}}
    o2 = _expect(_create(d, wkey, c, m, 1, id=oid, expires_in=60, metadata=meta), 201)
    check_order(o2, c, m, 1, oid=oid, metadata=meta, expires_in=60)
    assert _get_order(d, wkey, oid) == o2

    # generated ids differ
    o3 = _mk(d, wkey, c, m, 1234)
    assert o3["id"] != o["id"]
    # creating an order moves no money
    assert _bal(d, wkey, c) == (0, 0, 0) and _bal(d, wkey, m) == (0, 0, 0)


def test_create_replays_under_its_idempotency_key(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey), _account(d, wkey)
    idem = _ik()
    r1 = _create(d, wkey, c, m, 50, idem=idem)
    o = _expect(r1, 201)
    r2 = _create(d, wkey, c, m, 50, idem=idem)
    assert r2.status_code == 201 and r2.content == r1.content and _replayed(r2), _desc(r2)
    assert _ids(_list(d, wkey)[0]) == [o["id"]]
    assert_problem(_create(d, wkey, c, m, 51, idem=idem), 422, "idempotency_key_reused")


def test_client_order_id_dedupes(daemon, wkey):
    d = daemon
    c, m, m2 = _account(d, wkey, funded=1000), _account(d, wkey), _account(d, wkey)
    oid = "ord-" + _hex()
    meta = {"cart": "c-1"}
    o = _expect(_create(d, wkey, c, m, 300, id=oid, metadata=meta), 201)

    # same parameters, new key: 200 with the same object, nothing new
    r = _create(d, wkey, c, m, 300, id=oid, metadata=meta)
    assert _expect(r, 200) == o and not _replayed(r), _desc(r)
    # other parameters: 409 order_exists
    for other in (dict(amount=301, merchant=m, metadata=meta), dict(amount=300, merchant=m2, metadata=meta),
                  dict(amount=300, merchant=m, metadata={"cart": "c-2"})):
        body = _order_body(c, other["merchant"], other["amount"], id=oid, metadata=other["metadata"])
        pb = assert_problem(_post(d, "/v1/orders", wkey, body), 409, "order_exists")
        assert pb.get("order") == oid, f"docs/errors.md: order_exists carries \"order\": {pb}"
    assert _get_order(d, wkey, oid) == o
    assert _ids(_list(d, wkey)[0]) == [oid]

    # a reused id with the same parameters after the order moved on returns it as it is now
    p = _expect(_settle(d, wkey, oid), 200)
    r = _create(d, wkey, c, m, 300, id=oid, metadata=meta)
    assert _expect(r, 200) == p, _desc(r)
    assert p["status"] == "paid"
    assert _posted(d, wkey, c) == 700 and _posted(d, wkey, m) == 300
    assert_problem(_create(d, wkey, c, m, 1, id=oid, metadata=meta), 409, "order_exists")
    assert _ids(_list(d, wkey)[0]) == [oid]


def test_create_order_account_errors(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey), _account(d, wkey)
    eur = _account(d, wkey, currency="EUR")
    oid = "ord-" + _hex()

    body = assert_problem(_create(d, wkey, "nobody-1", "nobody-2", 10, id=oid), 404, "account_not_found")
    assert body.get("account") == "nobody-1", f"customer is reported first: {body}"
    body = assert_problem(_create(d, wkey, "nobody-1", m, 10, id=oid), 404, "account_not_found")
    assert body.get("account") == "nobody-1", body
    body = assert_problem(_create(d, wkey, c, "nobody-2", 10, id=oid), 404, "account_not_found")
    assert body.get("account") == "nobody-2", body

    body = assert_problem(_create(d, wkey, c, eur, 10, id=oid), 422, "currency_mismatch")
    assert body.get("account") == eur, body
    body = assert_problem(_create(d, wkey, eur, m, 10, id=oid), 422, "currency_mismatch")
    assert body.get("account") == eur, body
    assert_problem(_create(d, wkey, c, m, 10, currency="GBP", id=oid), 422, "currency_mismatch")

    assert_problem(_create(d, wkey, c, c, 10, id=oid), 422, "same_account")

    # nothing was created by any of them; the id is still free
    _order_404(_get(d, f"/v1/orders/{oid}", wkey))
    assert _list(d, wkey)[0] == []
    _mk(d, wkey, c, m, 10, id=oid)
    # an EUR order between EUR accounts is fine
    eur2 = _account(d, wkey, currency="EUR")
    o = _expect(_create(d, wkey, eur, eur2, 10, currency="EUR"), 201)
    assert o["currency"] == "EUR", o


_BAD_FIELDS = [
    ("amount", 0), ("amount", -1), ("amount", -MAX), ("amount", MAX + 1), ("amount", "100"),
    ("amount", 1.5), ("amount", 100.0), ("amount", True), ("amount", None), ("amount", [100]),
    ("amount", 1e30),
    ("expires_in", 0), ("expires_in", -1), ("expires_in", MAX_EXPIRES + 1), ("expires_in", "60"),
    ("expires_in", 1.5), ("expires_in", True), ("expires_in", [60]),
    ("currency", "usd"), ("currency", "US"), ("currency", "USDD"), ("currency", 840), ("currency", None),
    ("customer", ""), ("customer", 5), ("customer", None), ("customer", "a b"), ("customer", "x" * 65),
    ("customer", ["c"]),
    ("merchant", ""), ("merchant", 5), ("merchant", None), ("merchant", "a/b"), ("merchant", "y" * 65),
    ("id", ""), ("id", "@o"), ("id", "has space"), ("id", "o" * 65), ("id", 5), ("id", "a/b"),
    ("metadata", "text"), ("metadata", [1]), ("metadata", 5), ("metadata", None),
    ("metadata", {"big": "x" * 5000}),
    ("foo", 1), ("status", "paid"), ("refunded", 0), ("transfer_id", "tr_x"),
    ("expires_at", "2030-01-01T00:00:00.000000Z"), ("paid_at", None),
]


@pytest.mark.parametrize("field,value", _BAD_FIELDS,
                         ids=[f"{f}={str(v)[:12]}" for f, v in _BAD_FIELDS])
def test_bad_order_field_is_400(daemon, wkey, field, value):
    d = daemon
    c, m = _account(d, wkey), _account(d, wkey)
    oid = "ord-" + _hex()
    body = _order_body(c, m, 100, id=oid)
    body[field] = value
    idem = _ik()
    assert_problem(_post(d, "/v1/orders", wkey, body, idem=idem), 400, "invalid_request")
    if field != "id":
        _order_404(_get(d, f"/v1/orders/{oid}", wkey))
    else:
        assert _list(d, wkey)[0] == []
    # a 400 is not saved: the key is free for a valid request
    o = _expect(_create(d, wkey, c, m, 100, id=oid, idem=idem), 201)
    assert o["id"] == oid


@pytest.mark.parametrize("missing", ["customer", "merchant", "amount", "currency"])
def test_missing_order_field_is_400(daemon, wkey, missing):
    d = daemon
    c, m = _account(d, wkey), _account(d, wkey)
    oid = "ord-" + _hex()
    body = _order_body(c, m, 100, id=oid)
    del body[missing]
    assert_problem(_post(d, "/v1/orders", wkey, body), 400, "invalid_request")
    assert_problem(_post(d, "/v1/orders", wkey, b"[]"), 400, "invalid_request")
    assert_problem(_post(d, "/v1/orders", wkey, b"{}"), 400, "invalid_request")
    assert_problem(_post(d, "/v1/orders", wkey, None), 400, "invalid_request")
    _order_404(_get(d, f"/v1/orders/{oid}", wkey))
    assert _list(d, wkey)[0] == []


def test_order_field_boundaries(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey, funded=1000), _account(d, wkey)
    o = _mk(d, wkey, c, m, 1, expires_in=MAX_EXPIRES, id="o" * 64)
    check_order(o, c, m, 1, oid="o" * 64, expires_in=MAX_EXPIRES)
    o = _mk(d, wkey, c, m, 1, expires_in=60, id="A-z_0.9:x")
    check_order(o, c, m, 1, oid="A-z_0.9:x", expires_in=60)
    assert _get_order(d, wkey, "A-z_0.9:x") == o
    assert _expect(_settle(d, wkey, "A-z_0.9:x"), 200)["status"] == "paid"
    o = _mk(d, wkey, c, m, 1, expires_in=1)
    check_order(o, c, m, 1, expires_in=1)
    # the largest amount is valid input; the settle is refused by the guard, not the validator
    big = _mk(d, wkey, c, m, MAX)
    body = assert_problem(_settle(d, wkey, big["id"]), 402, "insufficient_funds")
    assert body.get("account") == c, body
    assert _get_order(d, wkey, big["id"]) == big
    assert _posted(d, wkey, c) == 999 and _posted(d, wkey, m) == 1


# ---------------------------------------------------------------------------
# 2. settle


def test_settle_pays_the_merchant_once(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey, funded=1000), _account(d, wkey, funded=50)
    o = _mk(d, wkey, c, m, 300, metadata={"cart": "k"})
    idem = _ik()
    r = _settle(d, wkey, o["id"], idem=idem)
    p = _expect(r, 200)
    check_order(p, c, m, 300, oid=o["id"], status="paid", metadata={"cart": "k"})
    for k in ("amount", "created_at", "expires_at", "customer", "merchant", "currency", "metadata"):
        assert p[k] == o[k], (k, o, p)
    assert _get_order(d, wkey, o["id"]) == p

    t = _transfer(d, wkey, p["transfer_id"])
    assert t["id"] == p["transfer_id"], t
    _check_transfer(t, c, m, 300, o["id"])
    assert (t["entries"][0]["balance_after"], t["entries"][1]["balance_after"]) == (700, 350), t
    assert _bal(d, wkey, c) == (700, 0, 700) and _bal(d, wkey, m) == (350, 0, 350)

    # the same key replays the 200 byte for byte
    r2 = _settle(d, wkey, o["id"], idem=idem)
    assert r2.status_code == 200 and r2.content == r.content and _replayed(r2), _desc(r2)
    # a new key: the order is not payable any more
    _not_payable(_settle(d, wkey, o["id"]), "paid")
    assert _get_order(d, wkey, o["id"]) == p
    assert _bal(d, wkey, c) == (700, 0, 700) and _bal(d, wkey, m) == (350, 0, 350)


def test_settle_with_insufficient_funds_changes_nothing(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey, funded=100), _account(d, wkey)
    o = _mk(d, wkey, c, m, 300)
    idem = _ik()
    r = _settle(d, wkey, o["id"], idem=idem)
    body = assert_problem(r, 402, "insufficient_funds")
    assert body.get("account") == c and body.get("available") == 100, body
    assert _get_order(d, wkey, o["id"]) == o
    assert _bal(d, wkey, c) == (100, 0, 100) and _bal(d, wkey, m) == (0, 0, 0)

    _credit(d, wkey, c, 200)
    # the 402 was a business failure: saved, the same key replays it
    r2 = _settle(d, wkey, o["id"], idem=idem)
    assert r2.status_code == 402 and r2.content == r.content and _replayed(r2), _desc(r2)
    assert _get_order(d, wkey, o["id"]) == o
    # a new key settles now
    p = _expect(_settle(d, wkey, o["id"]), 200)
    check_order(p, c, m, 300, oid=o["id"], status="paid")
    assert _bal(d, wkey, c) == (0, 0, 0) and _bal(d, wkey, m) == (300, 0, 300)
    _check_transfer(_transfer(d, wkey, p["transfer_id"]), c, m, 300, o["id"])


def test_settle_from_a_frozen_customer_is_409(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey, funded=1000), _account(d, wkey)
    o = _mk(d, wkey, c, m, 300)
    _expect(_post(d, f"/v1/accounts/{c}/freeze", wkey), 200)
    body = assert_problem(_settle(d, wkey, o["id"]), 409, "account_frozen")
    assert body.get("account") == c, body
    assert _get_order(d, wkey, o["id"]) == o
    _expect(_post(d, f"/v1/accounts/{c}/unfreeze", wkey), 200)
    _expect(_settle(d, wkey, o["id"]), 200)
    assert _posted(d, wkey, c) == 700 and _posted(d, wkey, m) == 300
    # a frozen merchant is only credited: accepted (docs/ledger.md: credits to frozen accounts are)
    o2 = _mk(d, wkey, c, m, 100)
    _expect(_post(d, f"/v1/accounts/{m}/freeze", wkey), 200)
    p2 = _expect(_settle(d, wkey, o2["id"]), 200)
    assert p2["status"] == "paid", p2
    assert _posted(d, wkey, c) == 600 and _posted(d, wkey, m) == 400


def test_settle_guard_uses_available_and_overdraft(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey, funded=1000), _account(d, wkey)
    # a pending hold lowers what the customer can spend
    _expect(_post(d, "/v1/holds", wkey, {"from": c, "to": m, "amount": 800, "currency": CUR}), 201)
    o = _mk(d, wkey, c, m, 300)
    body = assert_problem(_settle(d, wkey, o["id"]), 402, "insufficient_funds")
    assert body.get("account") == c and body.get("available") == 200, body
    assert _get_order(d, wkey, o["id"]) == o
    assert _bal(d, wkey, c) == (1000, 800, 200)
    o2 = _mk(d, wkey, c, m, 200)
    _expect(_settle(d, wkey, o2["id"]), 200)
    assert _bal(d, wkey, c) == (800, 800, 0)

    # an overdraft limit is spendable
    od = "acc-" + _hex()
    _expect(_post(d, "/v1/accounts", wkey, {"id": od, "currency": CUR, "overdraft_limit": 500}), 201)
    big = _mk(d, wkey, od, m, 501)
    body = assert_problem(_settle(d, wkey, big["id"]), 402, "insufficient_funds")
    assert body.get("account") == od, body
    p = _expect(_settle(d, wkey, _mk(d, wkey, od, m, 500)["id"]), 200)
    assert p["status"] == "paid", p
    assert _bal(d, wkey, od) == (-500, 0, -500)
    assert _get_order(d, wkey, big["id"]) == big


# ---------------------------------------------------------------------------
# 3. racing settles


def test_concurrent_settles_pay_once(daemon_factory, cli):
    d = daemon_factory(threads=8)
    _, key, akey = _setup_tenant(cli)
    c, m = _account(d, key, funded=1000), _account(d, key)
    o = _mk(d, key, c, m, 300)
    n = 20
    results = [None] * n
    barrier = threading.Barrier(n)

    def worker(i):
        s = requests.Session()
        try:
            barrier.wait(30)
            r = _settle(d, key, o["id"], session=s)
            results[i] = r
        except (requests.RequestException, threading.BrokenBarrierError) as e:
            results[i] = e
        finally:
            s.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in results if not isinstance(r, requests.Response)]
    assert not errors, f"requests without an answer: {errors[:3]}"
    wins = [r for r in results if r.status_code == 200]
    others = [r for r in results if r.status_code != 200]
    assert len(wins) == 1, f"{len(wins)} settles succeeded: {[_desc(r) for r in wins[:3]]} " \
                           f"{[_desc(r) for r in others[:3]]}"
    for r in others:
        _not_payable(r, "paid")
    p = wins[0].json()
    check_order(p, c, m, 300, oid=o["id"], status="paid")
    assert _get_order(d, key, o["id"]) == p
    assert _bal(d, key, c) == (700, 0, 700) and _bal(d, key, m) == (300, 0, 300)
    ts = _order_transfers(d, key, akey, c, o["id"])
    assert [t["id"] for t in ts] == [p["transfer_id"]], ts
    _verify_ledger(d, akey, [c, m])


def _race(n, fn):
    """Runs fn(i, session) in n threads released together; returns the answers."""
    results = [None] * n
    barrier = threading.Barrier(n)

    def worker(i):
        s = requests.Session()
        try:
            barrier.wait(30)
            results[i] = fn(i, s)
        except (requests.RequestException, threading.BrokenBarrierError) as e:
            results[i] = e
        finally:
            s.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in results if not isinstance(r, requests.Response)]
    assert not errors, f"requests without an answer: {errors[:3]}"
    return results


def test_settle_racing_cancel_has_one_winner(daemon_factory, cli):
    """10 settles and 10 cancels of one order at once, three times: exactly
    one 200; every loser is 409 order_not_payable with the winner's status;
    money moved only when the settle won."""
    d = daemon_factory(threads=8)
    _, key, akey = _setup_tenant(cli)
    c, m = _account(d, key, funded=1000), _account(d, key)
    moved = 0
    for _ in range(3):
        o = _mk(d, key, c, m, 100)

        def go(i, s):
            if i % 2:
                return _post(d, f"/v1/orders/{o['id']}/cancel", key, None, session=s, timeout=60)
            return _settle(d, key, o["id"], session=s)

        results = _race(20, go)
        wins = [r for r in results if r.status_code == 200]
        assert len(wins) == 1, f"{len(wins)} winners: {[_desc(r) for r in results if r.status_code != 409][:4]}"
        w = wins[0].json()
        assert w["status"] in ("paid", "cancelled"), w
        for r in results:
            if r.status_code != 200:
                _not_payable(r, w["status"])
        assert _get_order(d, key, o["id"]) == w
        if w["status"] == "paid":
            moved += 100
        assert _posted(d, key, c) == 1000 - moved and _posted(d, key, m) == moved
    _verify_ledger(d, akey, [c, m])


def test_concurrent_refunds_never_exceed_the_payment(daemon_factory, cli):
    """15 refunds of 100 of a 1000 order at once: exactly 10 succeed, each
    answer with its own "refunded" total, the others are 422
    refund_exceeds_payment or 409 (refunded); 1000 moved back once."""
    d = daemon_factory(threads=8)
    _, key, akey = _setup_tenant(cli)
    c, m = _account(d, key, funded=1000), _account(d, key)
    p = _paid(d, key, c, m, 1000)
    results = _race(15, lambda i, s: _post(d, f"/v1/orders/{p['id']}/refund", key, {"amount": 100},
                                           session=s, timeout=60))
    wins = [r.json() for r in results if r.status_code == 200]
    # whatever the answers, the money agrees with the successes
    g = _get_order(d, key, p["id"])
    assert g["refunded"] == 100 * len(wins), (g, len(wins))
    assert _posted(d, key, c) == 100 * len(wins) and _posted(d, key, m) == 1000 - 100 * len(wins)
    # contention is not an outage: no 5xx (503 is for PostgreSQL down, slow or a full pool queue)
    odd = [_desc(r) for r in results if r.status_code not in (200, 409, 422)]
    assert not odd, f"{len(odd)} of 15 concurrent refunds answered neither 200 nor 409/422 " \
                    f"({len(wins)} succeeded): {odd[:3]}"
    assert len(wins) == 10, f"{len(wins)} refunds of 100 succeeded: " \
                            f"{[_desc(r) for r in results if r.status_code != 200][:4]}"
    assert sorted(w["refunded"] for w in wins) == list(range(100, 1001, 100)), [w["refunded"] for w in wins]
    for w in wins:
        assert w["status"] == ("refunded" if w["refunded"] == 1000 else "partially_refunded"), w
    for r in results:
        if r.status_code == 422:
            assert_problem(r, 422, "refund_exceeds_payment")
        elif r.status_code != 200:
            _not_payable(r, "refunded")
    g = _get_order(d, key, p["id"])
    check_order(g, c, m, 1000, oid=p["id"], status="refunded", refunded=1000)
    assert _posted(d, key, c) == 1000 and _posted(d, key, m) == 0
    ts = _order_transfers(d, key, akey, m, p["id"])
    assert len(ts) == 11 and all(t["from"] == m and t["amount"] == 100 for t in ts[1:]), ts
    _verify_ledger(d, akey, [c, m])


# ---------------------------------------------------------------------------
# 4. cancel


def test_cancel(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey, funded=1000), _account(d, wkey)
    o = _mk(d, wkey, c, m, 300)
    idem = _ik()
    r = _cancel(d, wkey, o["id"], idem=idem)
    x = _expect(r, 200)
    check_order(x, c, m, 300, oid=o["id"], status="cancelled")
    assert {k: x[k] for k in ORDER_KEYS - {"status"}} == {k: o[k] for k in ORDER_KEYS - {"status"}}, (o, x)
    assert _get_order(d, wkey, o["id"]) == x
    r2 = _cancel(d, wkey, o["id"], idem=idem)
    assert r2.status_code == 200 and r2.content == r.content and _replayed(r2), _desc(r2)

    _not_payable(_settle(d, wkey, o["id"]), "cancelled")
    _not_payable(_cancel(d, wkey, o["id"]), "cancelled")
    _not_payable(_refund(d, wkey, o["id"]), "cancelled")
    _not_payable(_refund(d, wkey, o["id"], 10), "cancelled")
    assert _get_order(d, wkey, o["id"]) == x
    assert _posted(d, wkey, c) == 1000 and _posted(d, wkey, m) == 0

    # a paid order cannot be cancelled
    p = _paid(d, wkey, c, m, 200)
    _not_payable(_cancel(d, wkey, p["id"]), "paid")
    assert _get_order(d, wkey, p["id"]) == p
    assert _posted(d, wkey, c) == 800 and _posted(d, wkey, m) == 200


# ---------------------------------------------------------------------------
# 6. refunds


def test_partial_then_rest_refund(daemon, wkey, akey):
    d = daemon
    c, m = _account(d, wkey, funded=1000), _account(d, wkey)
    p = _paid(d, wkey, c, m, 400)
    assert _posted(d, wkey, c) == 600 and _posted(d, wkey, m) == 400

    r1 = _expect(_refund(d, wkey, p["id"], 150), 200)
    check_order(r1, c, m, 400, oid=p["id"], status="partially_refunded", refunded=150)
    assert (r1["transfer_id"], r1["paid_at"]) == (p["transfer_id"], p["paid_at"]), (p, r1)
    assert _get_order(d, wkey, p["id"]) == r1
    assert _posted(d, wkey, c) == 750 and _posted(d, wkey, m) == 250

    # more than paid minus refunded: 422, nothing changes
    body = assert_problem(_refund(d, wkey, p["id"], 251), 422, "refund_exceeds_payment")
    assert body.get("refundable") == 250, f"docs/errors.md: with \"refundable\": {body}"
    assert _get_order(d, wkey, p["id"]) == r1, body
    body = assert_problem(_refund(d, wkey, p["id"], MAX), 422, "refund_exceeds_payment")
    assert body.get("refundable") == 250, body
    assert _get_order(d, wkey, p["id"]) == r1
    assert _posted(d, wkey, c) == 750 and _posted(d, wkey, m) == 250

    # bad refund input
    for bad in ({"amount": 0}, {"amount": -1}, {"amount": "10"}, {"amount": 1.5},
                {"amount": MAX + 1}, {"foo": 1}, [], "x"):
        assert_problem(_refund(d, wkey, p["id"], body=bad), 400, "invalid_request")
    assert _get_order(d, wkey, p["id"]) == r1

    r2 = _expect(_refund(d, wkey, p["id"], 100), 200)
    check_order(r2, c, m, 400, oid=p["id"], status="partially_refunded", refunded=250)
    # the rest, no amount
    r3 = _expect(_refund(d, wkey, p["id"]), 200)
    check_order(r3, c, m, 400, oid=p["id"], status="refunded", refunded=400)
    assert _get_order(d, wkey, p["id"]) == r3
    assert _posted(d, wkey, c) == 1000 and _posted(d, wkey, m) == 0

    # a refunded order is not refundable any more (docs/orders.md: refund from paid, partially_refunded)
    _not_payable(_refund(d, wkey, p["id"]), "refunded")
    _not_payable(_refund(d, wkey, p["id"], 1), "refunded")
    _not_payable(_settle(d, wkey, p["id"]), "refunded")
    _not_payable(_cancel(d, wkey, p["id"]), "refunded")
    assert _get_order(d, wkey, p["id"]) == r3
    assert _posted(d, wkey, c) == 1000 and _posted(d, wkey, m) == 0

    # the transfers: the settle, then three merchant -> customer refunds, all with order_id
    ts = _order_transfers(d, wkey, akey, m, p["id"])
    assert [t["id"] for t in ts][0] == p["transfer_id"], ts
    _check_transfer(ts[0], c, m, 400, p["id"])
    assert len(ts) == 4, [(t["id"], t["from"], t["to"], t["amount"]) for t in ts]
    for t, amount in zip(ts[1:], (150, 100, 150)):
        _check_transfer(t, m, c, amount, p["id"])
    assert len({t["id"] for t in ts}) == 4
    assert _ids(_order_transfers(d, wkey, akey, c, p["id"])) == [t["id"] for t in ts]


def test_full_refund_from_paid(daemon, wkey, akey):
    d = daemon
    c, m = _account(d, wkey, funded=500), _account(d, wkey)
    p = _paid(d, wkey, c, m, 500)
    idem = _ik()
    r = _refund(d, wkey, p["id"], body={}, idem=idem)
    x = _expect(r, 200)
    check_order(x, c, m, 500, oid=p["id"], status="refunded", refunded=500)
    r2 = _refund(d, wkey, p["id"], body={}, idem=idem)
    assert r2.status_code == 200 and r2.content == r.content and _replayed(r2), _desc(r2)
    assert _posted(d, wkey, c) == 500 and _posted(d, wkey, m) == 0
    ts = _order_transfers(d, wkey, akey, m, p["id"])
    assert len(ts) == 2, ts
    _check_transfer(ts[1], m, c, 500, p["id"])

    # an explicit amount of all of it, and a body-less refund, are the same
    p2 = _paid(d, wkey, c, m, 200)
    x2 = _expect(_refund(d, wkey, p2["id"], 200), 200)
    check_order(x2, c, m, 200, oid=p2["id"], status="refunded", refunded=200)
    p3 = _paid(d, wkey, c, m, 300)
    x3 = _expect(_post(d, f"/v1/orders/{p3['id']}/refund", wkey, None), 200)
    check_order(x3, c, m, 300, oid=p3["id"], status="refunded", refunded=300)
    assert _posted(d, wkey, c) == 500 and _posted(d, wkey, m) == 0


def test_refund_of_an_unpaid_order_is_409(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey, funded=1000), _account(d, wkey, funded=1000)
    o = _mk(d, wkey, c, m, 300)
    _not_payable(_refund(d, wkey, o["id"]), "created")
    _not_payable(_refund(d, wkey, o["id"], 100), "created")
    assert _get_order(d, wkey, o["id"]) == o
    x = _expect(_cancel(d, wkey, _mk(d, wkey, c, m, 300)["id"]), 200)
    _not_payable(_refund(d, wkey, x["id"], 100), "cancelled")
    assert _get_order(d, wkey, x["id"]) == x
    assert _posted(d, wkey, c) == 1000 and _posted(d, wkey, m) == 1000


def test_refund_with_the_merchant_short_of_money_is_402(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey, funded=1000), _account(d, wkey)
    p = _paid(d, wkey, c, m, 500)
    _debit(d, wkey, m, 400)                     # the merchant paid out meanwhile
    assert _posted(d, wkey, m) == 100

    idem = _ik()
    r = _refund(d, wkey, p["id"], 200, idem=idem)
    body = assert_problem(r, 402, "insufficient_funds")
    assert body.get("account") == m and body.get("available") == 100, body
    assert _get_order(d, wkey, p["id"]) == p
    assert _posted(d, wkey, c) == 500 and _posted(d, wkey, m) == 100
    assert_problem(_refund(d, wkey, p["id"]), 402, "insufficient_funds")          # the rest: 500
    assert _get_order(d, wkey, p["id"]) == p

    x = _expect(_refund(d, wkey, p["id"], 100), 200)
    check_order(x, c, m, 500, oid=p["id"], status="partially_refunded", refunded=100)
    assert _posted(d, wkey, c) == 600 and _posted(d, wkey, m) == 0
    # the saved 402 replays under its key even though nothing else changed
    r2 = _refund(d, wkey, p["id"], 200, idem=idem)
    assert r2.status_code == 402 and r2.content == r.content and _replayed(r2), _desc(r2)
    _credit(d, wkey, m, 400)
    y = _expect(_refund(d, wkey, p["id"]), 200)
    check_order(y, c, m, 500, oid=p["id"], status="refunded", refunded=500)
    assert _posted(d, wkey, c) == 1000 and _posted(d, wkey, m) == 0


# ---------------------------------------------------------------------------
# 7. lists


def test_lists_filter_and_page(daemon, wkey):
    d = daemon
    c1, c2 = _account(d, wkey, funded=10_000), _account(d, wkey, funded=10_000)
    m = _account(d, wkey)
    made = []                                         # (id, customer, final status), creation order

    def add(customer, amount, then):
        o = _mk(d, wkey, customer, m, amount)
        if then in ("paid", "refunded", "partially_refunded"):
            _expect(_settle(d, wkey, o["id"]), 200)
        if then == "refunded":
            _expect(_refund(d, wkey, o["id"]), 200)
        if then == "partially_refunded":
            _expect(_refund(d, wkey, o["id"], 1), 200)
        if then == "cancelled":
            _expect(_cancel(d, wkey, o["id"]), 200)
        made.append((o["id"], customer, then))

    add(c1, 100, "paid")
    add(c1, 110, "created")
    add(c2, 120, "paid")
    add(c2, 130, "cancelled")
    add(c1, 140, "cancelled")
    add(c1, 150, "refunded")
    add(c1, 160, "partially_refunded")
    add(c2, 170, "created")
    add(c1, 180, "paid")

    def want(customer=None, status=None):
        return {i for i, c, s in made if customer in (None, c) and status in (None, s)}

    current = {i: _get_order(d, wkey, i) for i, _, _ in made}
    for i, _, s in made:
        assert current[i]["status"] == s, current[i]

    cases = [{}, {"customer": c1}, {"customer": c2}, {"customer": m}]
    cases += [{"status": s} for s in STATUSES]
    cases += [{"customer": c, "status": s} for c in (c1, c2) for s in ("paid", "created", "cancelled")]
    for filters in cases:
        got, pages = _list(d, wkey, **filters)
        exp = want(filters.get("customer"), filters.get("status"))
        assert sorted(_ids(got)) == sorted(exp), f"?{filters}: got {_ids(got)}, want {sorted(exp)}"
        assert pages == 1, f"?{filters}: {len(exp)} orders in {pages} pages (default limit 100)"
        _newest_first(got)
        for o in got:
            assert o == current[o["id"]], (o, current[o["id"]])

    # pages of 2 (and of 1) give every order exactly once, in the same order
    full = _ids(_list(d, wkey)[0])
    for filters, limit in (({}, 2), ({}, 1), ({"customer": c1}, 2), ({"status": "paid"}, 2),
                           ({"customer": c1, "status": "paid"}, 1), ({"customer": c2, "status": "cancelled"}, 2)):
        got, pages = _list(d, wkey, limit=limit, **filters)
        exp = want(filters.get("customer"), filters.get("status"))
        assert len(_ids(got)) == len(set(_ids(got))), f"?{filters}&limit={limit}: duplicates {_ids(got)}"
        assert set(_ids(got)) == exp, f"?{filters}&limit={limit}: got {_ids(got)}, want {sorted(exp)}"
        assert _ids(got) == [i for i in full if i in exp], f"?{filters}&limit={limit}: order {_ids(got)}"
        if not filters:
            assert pages >= (len(exp) + limit - 1) // limit, (pages, len(exp))
    first = _list_page(d, wkey, {"limit": 2})
    assert len(first["data"]) == 2 and first["next_cursor"], first
    last = _list_page(d, wkey, {"limit": 1000})
    assert len(last["data"]) == len(made) and last["next_cursor"] is None, last


@pytest.mark.parametrize("params", [
    {"status": "bogus"}, {"status": "PAID"}, {"status": "pending"}, {"limit": 0}, {"limit": 1001},
    {"limit": -1}, {"limit": "x"}, {"limit": 1.5},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_bad_list_parameters_are_400(daemon, wkey, params):
    d = daemon
    c, m = _account(d, wkey), _account(d, wkey)
    _mk(d, wkey, c, m, 10)
    assert_problem(_get(d, "/v1/orders", wkey, params), 400, "invalid_request")


def test_cursor_of_another_list_is_refused_cleanly(daemon, wkey):
    """The cursor is opaque (docs/api.md §1): one from another list (another
    filter) is a client's mistake, never a 5xx.  400 invalid_request, or a
    page that still only holds orders matching the filter."""
    d = daemon
    c1, c2 = _account(d, wkey, funded=1000), _account(d, wkey, funded=1000)
    m = _account(d, wkey)
    for c in (c1, c2, c1, c2):
        _paid(d, wkey, c, m, 10)
        _mk(d, wkey, c, m, 10)
    every = {o["id"]: o for o in _list(d, wkey)[0]}
    cursors = {}
    for name, filters in (("all", {}), ("c1", {"customer": c1}), ("paid", {"status": "paid"}),
                          ("c1 paid", {"customer": c1, "status": "paid"})):
        page = _list_page(d, wkey, dict(filters, limit=1))
        assert page["next_cursor"], (name, page)
        cursors[name] = page["next_cursor"]
    bad = []
    for name, cur in cursors.items():
        for filters in ({}, {"customer": c2}, {"status": "created"}, {"customer": c2, "status": "created"},
                        {"status": "paid"}):
            r = _get(d, "/v1/orders", wkey, dict(filters, limit=2, cursor=cur))
            if r.status_code not in (200, 400):
                bad.append(f"cursor of ?{name} on ?{filters}: {r.status_code} {r.text[:160]}")
                continue
            if r.status_code == 400:
                assert_problem(r, 400, "invalid_request")
                continue
            for o in r.json()["data"]:
                assert filters.get("customer") in (None, o["customer"]) and \
                    filters.get("status") in (None, o["status"]), f"cursor of ?{name} on ?{filters}: {o}"
                assert o == every[o["id"]], o
    assert not bad, f"{len(bad)} lists answered neither 200 nor 400:\n" + "\n".join(bad)
    assert_problem(_get(d, "/v1/orders", wkey, {"cursor": "garbage"}), 400, "invalid_request")


def test_list_limit_bounds(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey), _account(d, wkey)
    o = _mk(d, wkey, c, m, 10)
    page = _list_page(d, wkey, {"limit": 1})
    assert page["data"] == [o], page
    # A full last page may still carry a cursor (the item layer's Query answers
    # like DynamoDB's LastEvaluatedKey when it filled the limit), docs/api.md §1.
    # Following it must give an empty last page with a null cursor.
    if page["next_cursor"] is not None:
        assert _list_page(d, wkey, {"limit": 1, "cursor": page["next_cursor"]}) == \
            {"data": [], "next_cursor": None}
    assert _list_page(d, wkey, {"limit": 1000}) == {"data": [o], "next_cursor": None}
    assert _list_page(d, wkey, {}) == {"data": [o], "next_cursor": None}


# ---------------------------------------------------------------------------
# 8. tenants and scopes


def test_other_tenants_order_is_404(daemon, cli, wkey, make_key):
    d = daemon
    c, m = _account(d, wkey, funded=1000), _account(d, wkey)
    o = _mk(d, wkey, c, m, 300, id="ord-" + _hex())
    p = _paid(d, wkey, c, m, 200, id="ord-" + _hex())
    other = cli.tenant_create()
    okey = make_key("read,write", tenant_name=other)

    for x in (o, p):
        _order_404(_get(d, f"/v1/orders/{x['id']}", okey))
        _order_404(_settle(d, okey, x["id"]))
        _order_404(_cancel(d, okey, x["id"]))
        _order_404(_refund(d, okey, x["id"]))
        _order_404(_refund(d, okey, x["id"], 10))
    assert _list(d, okey)[0] == []
    assert _list(d, okey, customer=c)[0] == []
    assert _get_order(d, wkey, o["id"]) == o
    assert _get_order(d, wkey, p["id"]) == p
    assert _posted(d, wkey, c) == 800 and _posted(d, wkey, m) == 200

    # the other tenant cannot name this tenant's accounts
    oc, om = _account(d, okey, funded=1000), _account(d, okey)
    body = assert_problem(_create(d, okey, c, om, 10), 404, "account_not_found")
    assert body.get("account") == c, body
    body = assert_problem(_create(d, okey, oc, m, 10), 404, "account_not_found")
    assert body.get("account") == m, body
    # ids are per tenant: the same order id is free in the other tenant
    oo = _mk(d, okey, oc, om, 10, id=o["id"])
    assert oo["customer"] == oc
    _expect(_settle(d, okey, oo["id"]), 200)
    assert _get_order(d, wkey, o["id"]) == o
    assert _posted(d, wkey, c) == 800 and _posted(d, wkey, m) == 200

    # unknown orders of one's own tenant
    _order_404(_get(d, "/v1/orders/no-such-order", wkey))
    _order_404(_settle(d, wkey, "no-such-order"))
    _order_404(_cancel(d, wkey, "no-such-order"))
    _order_404(_refund(d, wkey, "no-such-order"))


def test_order_scopes(daemon, wkey, make_key):
    d = daemon
    rkey, akey = make_key("read"), make_key("audit")
    c, m = _account(d, wkey, funded=1000), _account(d, wkey)
    o = _mk(d, wkey, c, m, 100)
    p = _paid(d, wkey, c, m, 100)
    for k in (rkey, akey):
        assert_problem(_create(d, k, c, m, 100), 403, "forbidden")
        assert_problem(_settle(d, k, o["id"]), 403, "forbidden")
        assert_problem(_cancel(d, k, o["id"]), 403, "forbidden")
        assert_problem(_refund(d, k, p["id"]), 403, "forbidden")
    assert _get_order(d, rkey, o["id"]) == o                          # read may GET
    assert sorted(_ids(_list(d, rkey)[0])) == sorted([o["id"], p["id"]])
    assert_problem(_get(d, f"/v1/orders/{o['id']}", akey), 403, "forbidden")   # audit implies nothing else
    assert_problem(_get(d, "/v1/orders", akey), 403, "forbidden")
    assert_problem(d.get(f"/v1/orders/{o['id']}"), 401, "unauthenticated")
    assert_problem(d.get("/v1/orders"), 401, "unauthenticated")
    assert _get_order(d, wkey, o["id"]) == o
    assert _get_order(d, wkey, p["id"]) == p
    assert _posted(d, wkey, c) == 900 and _posted(d, wkey, m) == 100


def test_order_posts_need_an_idempotency_key(daemon, wkey):
    d = daemon
    c, m = _account(d, wkey, funded=1000), _account(d, wkey)
    o = _mk(d, wkey, c, m, 100)
    h = {"Content-Type": "application/json"}
    body = json.dumps(_order_body(c, m, 100)).encode()
    assert_problem(d.post("/v1/orders", key=wkey, data=body, headers=h), 400, "idempotency_key_missing")
    for path in ("settle", "cancel", "refund"):
        assert_problem(d.post(f"/v1/orders/{o['id']}/{path}", key=wkey), 400, "idempotency_key_missing")
    assert _get_order(d, wkey, o["id"]) == o
    assert _list(d, wkey)[0] == [o]


# ---------------------------------------------------------------------------
# 9. the ledger after all of it


def test_ledger_verifies_after_orders(daemon, wkey, akey):
    d = daemon
    c, m = _account(d, wkey, funded=2000), _account(d, wkey, funded=10)
    c2 = _account(d, wkey, funded=50)
    a = _paid(d, wkey, c, m, 700)                                   # settle
    _expect(_refund(d, wkey, a["id"], 200), 200)                    # partial refund
    _expect(_refund(d, wkey, a["id"]), 200)                         # the rest
    b = _paid(d, wkey, c, m, 300)                                   # settled, partly refunded
    _expect(_refund(d, wkey, b["id"], 120), 200)
    _expect(_cancel(d, wkey, _mk(d, wkey, c, m, 999)["id"]), 200)   # cancelled
    short = _mk(d, wkey, c2, m, 500)
    assert_problem(_settle(d, wkey, short["id"]), 402, "insufficient_funds")
    assert_problem(_refund(d, wkey, b["id"], 1000), 422, "refund_exceeds_payment")
    _debit(d, wkey, m, 150)
    _expect(_settle(d, wkey, _mk(d, wkey, c2, m, 40)["id"]), 200)

    # money: c 2000 -700 +200 +500 -300 +120 = 1820; c2 50 - 40 = 10; m 10 +700 -700 +300 -120 -150 +40 = 80
    assert _bal(d, wkey, c) == (1820, 0, 1820)
    assert _bal(d, wkey, c2) == (10, 0, 10)
    assert _bal(d, wkey, m) == (80, 0, 80)
    _verify_ledger(d, akey, [c, c2, m])

    # every order transfer is in both accounts' entries exactly once
    for acc in (c, m):
        es = _entries(d, akey, acc)
        assert [e["seq"] for e in es] == list(range(1, len(es) + 1)), es
        assert sum(e["amount"] for e in es) == _posted(d, wkey, acc)
    assert len(_order_transfers(d, wkey, akey, c, a["id"])) == 3
    assert len(_order_transfers(d, wkey, akey, m, a["id"])) == 3
    assert len(_order_transfers(d, wkey, akey, c, b["id"])) == 2
    assert _order_transfers(d, wkey, akey, c2, short["id"]) == []
