"""Holds, the two-phase money movement (docs/api.md §5; docs/ledger.md "Holds" and
"Choices where the contract is silent"): the hold object, the from account's
pending/available, the debit guard (402, overdraft_limit, 409 account_frozen),
404/422 like transfers, capture (full, partial, too much, twice), void,
expiry by the sweeper (--hold-sweep-interval-ms) and lazily when touched,
concurrent holds and debits on one account, per-field validation, tenants and
scopes.

Money comes in through POST /v1/accounts/{id}/credits (§4); the captured
transfer is read back with GET /v1/transfers/{id}."""

import calendar
import json
import os
import random
import re
import secrets
import threading
import time
import uuid

import pytest
import requests

from oltest import assert_problem, poll

CUR = "USD"
HOLD_KEYS = {"id", "from", "to", "amount", "captured", "currency", "status", "expires_at",
             "transfer_id", "metadata", "created_at"}
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_EXPIRES = 2592000
DEFAULT_EXPIRES = 604800

# ---------------------------------------------------------------------------
# helpers


def _ik():
    return uuid.uuid4().hex


def _hex():
    return secrets.token_hex(6)


def _post(d, path, key, body=None, session=None, idem=None):
    """POST with a fresh Idempotency-Key; body None sends no body at all."""
    h = {"Idempotency-Key": idem or _ik()}
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    return d.post(path, key=key, data=data, headers=h, session=session)


def _desc(r):
    req = r.request
    body = req.body.decode() if isinstance(req.body, (bytes, bytearray)) else req.body
    return f"{req.method} {req.path_url} {body or ''} -> {r.status_code} {r.text[:500]}"


def _expect(r, status):
    assert r.status_code == status, f"expected {status}: {_desc(r)}"
    ctype = r.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/json", f"Content-Type {ctype!r}: {_desc(r)}"
    return r.json()


_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z$")


def _us(ts):
    """RFC 3339 UTC with microseconds (docs/api.md §1) -> integer microseconds since the epoch."""
    assert isinstance(ts, str), f"timestamp is not a string: {ts!r}"
    m = _TS.match(ts)
    assert m, f"not an RFC 3339 UTC timestamp with microseconds: {ts!r}"
    secs = calendar.timegm(tuple(int(m.group(i)) for i in range(1, 7)))
    return secs * 1_000_000 + int(m.group(7))


def _account(d, key, overdraft_limit=None, currency=CUR):
    acc = "acc-" + _hex()
    body = {"id": acc, "currency": currency}
    if overdraft_limit is not None:
        body["overdraft_limit"] = overdraft_limit
    _expect(_post(d, "/v1/accounts", key, body), 201)
    return acc


def _credit(d, key, acc, amount):
    return _expect(_post(d, f"/v1/accounts/{acc}/credits", key, {"amount": amount}), 201)


def _debit(d, key, acc, amount, session=None):
    return _post(d, f"/v1/accounts/{acc}/debits", key, {"amount": amount}, session=session)


def _get_account(d, key, acc):
    return _expect(d.get(f"/v1/accounts/{acc}", key=key), 200)


def _bal(d, key, acc):
    b = _get_account(d, key, acc)["balance"]
    return b["posted"], b["pending"], b["available"]


def _hold(d, key, frm, to, amount, currency=CUR, session=None, **extra):
    body = {"from": frm, "to": to, "amount": amount, "currency": currency}
    body.update(extra)
    return _post(d, "/v1/holds", key, body, session=session)


def _mk_hold(d, key, frm, to, amount, **extra):
    h = _expect(_hold(d, key, frm, to, amount, **extra), 201)
    assert h["status"] == "pending", h
    return h


def _get_hold(d, key, hid):
    return _expect(d.get(f"/v1/holds/{hid}", key=key), 200)


def _capture(d, key, hid, body=None):
    return _post(d, f"/v1/holds/{hid}/capture", key, body)


def _void(d, key, hid):
    return _post(d, f"/v1/holds/{hid}/void", key, None)


def _not_pending(r, status):
    """409 hold_not_pending with "hold_status": <the hold's status>
    (docs/api.md, holds); "status" is the HTTP status, a number (RFC 9457)."""
    body = assert_problem(r, 409, "hold_not_pending")
    assert body.get("hold_status") == status, f"hold_status {body.get('hold_status')!r}, " \
                                              f"expected {status!r}: {_desc(r)}"
    return body


def _hold_404(r):
    # docs/api.md §5, docs/errors.md: hold_not_found
    return assert_problem(r, 404, "hold_not_found")


@pytest.fixture
def wkey(make_key):
    return make_key("read,write")


# ---------------------------------------------------------------------------
# 4./5. expiry.  These two come first in the module, before anything starts
# the module's daemon: every daemon's sweeper (default 1 s) expires the holds
# of every tenant in the database, so the lazy test must be the only daemon
# running against it (the module daemon of another module is stopped at that
# module's end).


def _setup_tenant(cli):
    tenant = cli.tenant_create()
    return tenant, cli.key_create(tenant, "read,write")


def test_sweeper_expires_holds(daemon_factory, cli):
    d = daemon_factory("--hold-sweep-interval-ms", "200")
    _, key = _setup_tenant(cli)
    a, b = _account(d, key), _account(d, key)
    _credit(d, key, a, 1000)
    h = _mk_hold(d, key, a, b, 300, expires_in=1)
    keep = _mk_hold(d, key, a, b, 200, expires_in=3600)
    assert _bal(d, key, a) == (1000, 500, 500)

    # read the account (never the hold) until the sweeper released the amount
    released = poll(lambda: _bal(d, key, a)[1] == 200 and time.time(), timeout=15, interval=0.1)
    assert released, f"hold {h['id']} (expires_at {h['expires_at']}) not released after 15 s: " \
                     f"account {_get_account(d, key, a)}"
    assert released * 1e6 >= _us(h["expires_at"]) - 20_000, \
        f"released at {released:.6f}, before expires_at {h['expires_at']}"
    assert _bal(d, key, a) == (1000, 200, 800)
    g = _get_hold(d, key, h["id"])
    assert g["status"] == "expired" and g["captured"] == 0 and g["transfer_id"] is None, g
    assert _get_hold(d, key, keep["id"])["status"] == "pending"
    _not_pending(_capture(d, key, h["id"]), "expired")
    _not_pending(_void(d, key, h["id"]), "expired")
    assert _bal(d, key, a) == (1000, 200, 800)
    assert _bal(d, key, b) == (0, 0, 0)


def test_lazy_expiry_when_touched(daemon_factory, cli):
    d = daemon_factory("--hold-sweep-interval-ms", "0")
    _, key = _setup_tenant(cli)
    a, b = _account(d, key), _account(d, key)
    _credit(d, key, a, 1000)
    h1 = _mk_hold(d, key, a, b, 100, expires_in=1)
    h2 = _mk_hold(d, key, a, b, 200, expires_in=1)
    h3 = _mk_hold(d, key, a, b, 300, expires_in=1)
    h4 = _mk_hold(d, key, a, b, 400, expires_in=3600)
    assert _bal(d, key, a) == (1000, 1000, 0)
    latest = max(_us(h["expires_at"]) for h in (h1, h2, h3)) / 1e6
    time.sleep(max(1.5, latest - time.time() + 0.5))

    # nothing touched the holds: no sweeper, the account still carries them
    # (a failure here can also mean another daemon's sweeper runs on this database)
    assert _bal(d, key, a) == (1000, 1000, 0)

    _not_pending(_capture(d, key, h1["id"]), "expired")        # touched by a capture
    assert _bal(d, key, a) == (1000, 900, 100)
    _not_pending(_void(d, key, h2["id"]), "expired")           # by a void
    assert _bal(d, key, a) == (1000, 700, 300)
    g3 = _get_hold(d, key, h3["id"])                           # by a GET
    assert g3["status"] == "expired" and g3["captured"] == 0 and g3["transfer_id"] is None, g3
    assert _bal(d, key, a) == (1000, 400, 600)
    for h in (h1, h2):
        g = _get_hold(d, key, h["id"])
        assert g["status"] == "expired", g
    _not_pending(_capture(d, key, h1["id"]), "expired")
    assert _bal(d, key, a) == (1000, 400, 600)
    # the unexpired hold is untouched and capturable
    c = _expect(_capture(d, key, h4["id"]), 200)
    assert c["status"] == "captured" and c["captured"] == 400, c
    assert _bal(d, key, a) == (600, 0, 600)
    assert _bal(d, key, b) == (400, 0, 400)


# ---------------------------------------------------------------------------
# 1. creating a hold


def test_create_hold_shape_and_balances(daemon, wkey):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    hid = "hold-" + _hex()
    r = _hold(d, wkey, a, b, 300, id=hid, expires_in=3600, metadata={"order": "o-1", "n": 2})
    h = _expect(r, 201)
    assert set(h) >= HOLD_KEYS, f"hold lacks {HOLD_KEYS - set(h)}: {h}"
    assert h["id"] == hid and h["from"] == a and h["to"] == b, h
    assert h["amount"] == 300 and type(h["amount"]) is int, h
    assert h["captured"] == 0 and type(h["captured"]) is int, h
    assert h["currency"] == CUR and h["status"] == "pending", h
    assert h["transfer_id"] is None, h
    assert h["metadata"] == {"order": "o-1", "n": 2}, h
    created, expires = _us(h["created_at"]), _us(h["expires_at"])
    assert abs(expires - created - 3600 * 1_000_000) <= 1000, \
        f"expires_at {h['expires_at']} != created_at {h['created_at']} + 3600 s"
    assert abs(created / 1e6 - time.time()) < 60, f"created_at {h['created_at']} is not now"

    # the amount moved into the from account's pending; posted unchanged
    assert _bal(d, wkey, a) == (1000, 300, 700)
    assert _bal(d, wkey, b) == (0, 0, 0)
    assert _get_hold(d, wkey, hid) == h

    # defaults: generated id, expires_in 604800, metadata
    h2 = _mk_hold(d, wkey, a, b, 50)
    assert isinstance(h2["id"], str) and ID_RE.match(h2["id"]) and h2["id"] != hid, h2
    assert not h2["id"].startswith("@"), h2
    assert abs(_us(h2["expires_at"]) - _us(h2["created_at"]) - DEFAULT_EXPIRES * 1_000_000) <= 1000, h2
    assert h2["metadata"] in ({}, None), h2
    assert _bal(d, wkey, a) == (1000, 350, 650)
    assert _get_hold(d, wkey, h2["id"]) == h2


def test_client_hold_id_dedupes(daemon, wkey):
    """A client-chosen hold id is unique within the tenant (docs/api.md §1): identical
    parameters -> 200 with the existing hold, different ones -> 409 hold_exists."""
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    hid = "hold-" + _hex()
    h = _mk_hold(d, wkey, a, b, 100, id=hid, expires_in=600)
    again = _expect(_hold(d, wkey, a, b, 100, id=hid, expires_in=600), 200)
    assert again == h, (h, again)
    assert _bal(d, wkey, a) == (1000, 100, 900), "the same hold was applied twice"
    body = assert_problem(_hold(d, wkey, a, b, 101, id=hid, expires_in=600), 409, "hold_exists")
    assert body.get("hold") == hid, body
    assert _bal(d, wkey, a) == (1000, 100, 900)


def test_hold_is_guarded_like_a_debit(daemon, wkey):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 500)
    body = assert_problem(_hold(d, wkey, a, b, 501), 402, "insufficient_funds")
    assert body.get("account") == a and body.get("available") == 500, body
    assert _bal(d, wkey, a) == (500, 0, 500)

    _mk_hold(d, wkey, a, b, 300)
    body = assert_problem(_hold(d, wkey, a, b, 201), 402, "insufficient_funds")
    assert body.get("available") == 200, body
    # holds count against debits too
    assert_problem(_debit(d, wkey, a, 201), 402, "insufficient_funds")
    _mk_hold(d, wkey, a, b, 200)
    assert _bal(d, wkey, a) == (500, 500, 0)
    assert_problem(_hold(d, wkey, a, b, 1), 402, "insufficient_funds")
    assert_problem(_debit(d, wkey, a, 1), 402, "insufficient_funds")
    assert _bal(d, wkey, a) == (500, 500, 0)

    # overdraft_limit counts: amount <= available + overdraft_limit
    c = _account(d, wkey, overdraft_limit=250)
    _credit(d, wkey, c, 100)
    body = assert_problem(_hold(d, wkey, c, b, 351), 402, "insufficient_funds")
    assert body.get("account") == c and body.get("available") == 100, body
    assert body.get("overdraft_limit") == 250, f"docs/ledger.md: 402 carries overdraft_limit: {body}"
    _mk_hold(d, wkey, c, b, 350)
    assert _bal(d, wkey, c) == (100, 350, -250)
    assert_problem(_hold(d, wkey, c, b, 1), 402, "insufficient_funds")
    assert_problem(_debit(d, wkey, c, 1), 402, "insufficient_funds")
    assert _bal(d, wkey, c) == (100, 350, -250)
    assert _bal(d, wkey, b) == (0, 0, 0)


def test_hold_overflowing_pending_is_422(daemon, wkey):
    """docs/api.md §1 / docs/ledger.md: what would overflow a balance is 422
    amount_overflow. With overdraft_limit 2^63-1 the guard lets a hold of 1
    through after one of 2^63-1, but pending cannot hold 2^63."""
    d = daemon
    big = 2 ** 63 - 1
    a, b = _account(d, wkey, overdraft_limit=big), _account(d, wkey)
    _credit(d, wkey, a, 100)
    h = _mk_hold(d, wkey, a, b, big)
    assert _bal(d, wkey, a) == (100, big, 100 - big)
    assert_problem(_hold(d, wkey, a, b, 1), 422, "amount_overflow")
    assert _bal(d, wkey, a) == (100, big, 100 - big)
    _expect(_void(d, wkey, h["id"]), 200)
    assert _bal(d, wkey, a) == (100, 0, 100)
    # a capture that would overflow the receiving account changes nothing
    _credit(d, wkey, b, big - 10)
    h = _mk_hold(d, wkey, a, b, 100)
    assert_problem(_capture(d, wkey, h["id"]), 422, "amount_overflow")
    g = _get_hold(d, wkey, h["id"])
    assert g["status"] == "pending" and g["captured"] == 0, g
    assert _bal(d, wkey, a) == (100, 100, 0)
    assert _bal(d, wkey, b) == (big - 10, 0, big - 10)
    c = _expect(_capture(d, wkey, h["id"], {"amount": 10}), 200)
    assert c["captured"] == 10, c
    assert _bal(d, wkey, a) == (90, 0, 90)
    assert _bal(d, wkey, b) == (big, 0, big)


def test_hold_on_frozen_account_is_409(daemon, wkey):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 500)
    h = _mk_hold(d, wkey, a, b, 100)
    _expect(_post(d, f"/v1/accounts/{a}/freeze", wkey), 200)
    body = assert_problem(_hold(d, wkey, a, b, 100), 409, "account_frozen")
    assert _bal(d, wkey, a) == (500, 100, 400), body
    # docs/ledger.md: capturing a hold placed before the freeze is accepted
    c = _expect(_capture(d, wkey, h["id"]), 200)
    assert c["status"] == "captured" and c["captured"] == 100, c
    assert _bal(d, wkey, a) == (400, 0, 400)
    # ... and so is voiding one
    _expect(_post(d, f"/v1/accounts/{a}/unfreeze", wkey), 200)
    h2 = _mk_hold(d, wkey, a, b, 50)
    _expect(_post(d, f"/v1/accounts/{a}/freeze", wkey), 200)
    v = _expect(_void(d, wkey, h2["id"]), 200)
    assert v["status"] == "voided", v
    assert _bal(d, wkey, a) == (400, 0, 400)
    _expect(_post(d, f"/v1/accounts/{a}/unfreeze", wkey), 200)
    _mk_hold(d, wkey, a, b, 400)
    assert _bal(d, wkey, a) == (400, 400, 0)


def test_hold_errors_like_transfers(daemon, wkey):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    e = _account(d, wkey, currency="EUR")
    _credit(d, wkey, a, 1000)
    _credit(d, wkey, e, 1000)
    missing, missing2 = "nope-" + _hex(), "nope-" + _hex()

    body = assert_problem(_hold(d, wkey, missing, b, 10), 404, "account_not_found")
    assert body.get("account") == missing, body
    body = assert_problem(_hold(d, wkey, a, missing, 10), 404, "account_not_found")
    assert body.get("account") == missing, body
    body = assert_problem(_hold(d, wkey, missing, missing2, 10), 404, "account_not_found")
    assert body.get("account") == missing, f"docs/ledger.md: from before to: {body}"

    assert_problem(_hold(d, wkey, a, b, 10, currency="EUR"), 422, "currency_mismatch")
    assert_problem(_hold(d, wkey, a, e, 10), 422, "currency_mismatch")
    assert_problem(_hold(d, wkey, e, a, 10, currency="EUR"), 422, "currency_mismatch")
    assert_problem(_hold(d, wkey, a, a, 10), 422, "same_account")

    # @world may not be the from of a hold (docs/ledger.md)
    assert_problem(_hold(d, wkey, "@world:USD", a, 10), 400, "invalid_request")
    assert_problem(_hold(d, wkey, "@world:USD", b, 10), 400, "invalid_request")

    assert _bal(d, wkey, a) == (1000, 0, 1000)
    assert _bal(d, wkey, b) == (0, 0, 0)
    assert _bal(d, wkey, e) == (1000, 0, 1000)


def test_hold_to_world_is_captured_as_a_debit(daemon, wkey):
    """docs/ledger.md: @world may be the `to` of any transfer; only `from` is refused for holds."""
    d = daemon
    a = _account(d, wkey)
    _credit(d, wkey, a, 1000)
    h = _mk_hold(d, wkey, a, "@world:USD", 400)
    assert h["to"] == "@world:USD", h
    assert _bal(d, wkey, a) == (1000, 400, 600)
    c = _expect(_capture(d, wkey, h["id"], {"amount": 250}), 200)
    assert c["status"] == "captured" and c["captured"] == 250, c
    assert _bal(d, wkey, a) == (750, 0, 750)
    t = _expect(d.get(f"/v1/transfers/{c['transfer_id']}", key=wkey), 200)
    assert t["from"] == a and t["to"] == "@world:USD" and t["amount"] == 250 and t["hold_id"] == h["id"], t


# ---------------------------------------------------------------------------
# 2. capture


def test_capture_full(daemon, wkey):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    h = _mk_hold(d, wkey, a, b, 400, metadata={"k": "v"})
    c = _expect(_capture(d, wkey, h["id"]), 200)           # no body: capture everything
    assert c["id"] == h["id"] and c["status"] == "captured", c
    assert c["amount"] == 400 and c["captured"] == 400, c
    assert isinstance(c["transfer_id"], str) and c["transfer_id"], c
    assert c["from"] == a and c["to"] == b and c["created_at"] == h["created_at"], c
    assert c["expires_at"] == h["expires_at"] and c["metadata"] == {"k": "v"}, c

    t = _expect(d.get(f"/v1/transfers/{c['transfer_id']}", key=wkey), 200)
    assert t["id"] == c["transfer_id"] and t["hold_id"] == h["id"], t
    assert t["from"] == a and t["to"] == b and t["amount"] == 400 and t["currency"] == CUR, t
    assert t["status"] == "posted" and t["order_id"] is None, t
    legs = {e["account"]: e for e in t["entries"]}
    assert legs[a]["amount"] == -400 and legs[a]["balance_after"] == 600, t
    assert legs[b]["amount"] == 400 and legs[b]["balance_after"] == 400, t

    assert _bal(d, wkey, a) == (600, 0, 600)
    assert _bal(d, wkey, b) == (400, 0, 400)
    assert _get_hold(d, wkey, h["id"]) == c

    # capture twice, void after capture: 409 hold_not_pending, nothing moves
    _not_pending(_capture(d, wkey, h["id"]), "captured")
    _not_pending(_capture(d, wkey, h["id"], {"amount": 1}), "captured")
    _not_pending(_void(d, wkey, h["id"]), "captured")
    assert _bal(d, wkey, a) == (600, 0, 600)
    assert _bal(d, wkey, b) == (400, 0, 400)


def test_capture_with_empty_object_captures_all(daemon, wkey):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 100)
    h = _mk_hold(d, wkey, a, b, 100)
    c = _expect(_capture(d, wkey, h["id"], {}), 200)
    assert c["status"] == "captured" and c["captured"] == 100, c
    assert _bal(d, wkey, a) == (0, 0, 0)
    assert _bal(d, wkey, b) == (100, 0, 100)


def test_capture_partial_releases_the_rest(daemon, wkey):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    other = _mk_hold(d, wkey, a, b, 100)
    h = _mk_hold(d, wkey, a, b, 500)
    assert _bal(d, wkey, a) == (1000, 600, 400)
    c = _expect(_capture(d, wkey, h["id"], {"amount": 200}), 200)
    assert c["status"] == "captured" and c["amount"] == 500 and c["captured"] == 200, c
    t = _expect(d.get(f"/v1/transfers/{c['transfer_id']}", key=wkey), 200)
    assert t["hold_id"] == h["id"] and t["amount"] == 200 and t["from"] == a and t["to"] == b, t
    # posted reduced by the captured amount only; the rest (300) released; the other hold stays
    assert _bal(d, wkey, a) == (800, 100, 700)
    assert _bal(d, wkey, b) == (200, 0, 200)
    assert _get_hold(d, wkey, other["id"])["status"] == "pending"
    _not_pending(_capture(d, wkey, h["id"], {"amount": 300}), "captured")
    assert _bal(d, wkey, a) == (800, 100, 700)


def test_capture_more_than_the_hold_changes_nothing(daemon, wkey):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    h = _mk_hold(d, wkey, a, b, 300)
    # docs/api.md §5: amount <= hold amount; above it 400 invalid_request (docs/errors.md)
    assert_problem(_capture(d, wkey, h["id"], {"amount": 301}), 400, "invalid_request")
    assert_problem(_capture(d, wkey, h["id"], {"amount": 1000}), 400, "invalid_request")
    for bad in (0, -1, "100", 1.5, 100.0, True, [100], {"n": 1}):
        assert_problem(_capture(d, wkey, h["id"], {"amount": bad}), 400, "invalid_request")
    assert_problem(_capture(d, wkey, h["id"], {"amount": 100, "status": "captured"}), 400, "invalid_request")
    assert_problem(_capture(d, wkey, h["id"], b"[1]"), 400, "invalid_request")
    g = _get_hold(d, wkey, h["id"])
    assert g["status"] == "pending" and g["captured"] == 0 and g["transfer_id"] is None, g
    assert _bal(d, wkey, a) == (1000, 300, 700)
    assert _bal(d, wkey, b) == (0, 0, 0)
    # exactly the hold amount is fine
    c = _expect(_capture(d, wkey, h["id"], {"amount": 300}), 200)
    assert c["captured"] == 300, c
    assert _bal(d, wkey, a) == (700, 0, 700)


def _replay_of(orig, r):
    assert r.status_code == orig.status_code and r.content == orig.content, \
        f"not a replay:\n first: {_desc(orig)}\n again: {_desc(r)}"
    assert r.headers.get("Idempotent-Replayed", "").lower() == "true", dict(r.headers)


def test_hold_requests_replay_under_their_idempotency_key(daemon, wkey):
    """docs/api.md §2 on the hold routes: a retried create or capture replays, it
    neither reserves twice nor answers 409."""
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    body = {"from": a, "to": b, "amount": 300, "currency": CUR}
    k = _ik()
    r1 = _post(d, "/v1/holds", wkey, body, idem=k)
    h = _expect(r1, 201)
    _replay_of(r1, _post(d, "/v1/holds", wkey, body, idem=k))
    assert _bal(d, wkey, a) == (1000, 300, 700)
    assert_problem(_post(d, "/v1/holds", wkey, dict(body, amount=301), idem=k), 422, "idempotency_key_reused")

    kc = _ik()
    c1 = _post(d, f"/v1/holds/{h['id']}/capture", wkey, {"amount": 100}, idem=kc)
    assert _expect(c1, 200)["captured"] == 100
    _replay_of(c1, _post(d, f"/v1/holds/{h['id']}/capture", wkey, {"amount": 100}, idem=kc))
    assert _bal(d, wkey, a) == (900, 0, 900)
    assert _bal(d, wkey, b) == (100, 0, 100)
    # a new key: the hold is not pending any more; that answer replays too
    k2 = _ik()
    n1 = _post(d, f"/v1/holds/{h['id']}/capture", wkey, {"amount": 100}, idem=k2)
    _not_pending(n1, "captured")
    _replay_of(n1, _post(d, f"/v1/holds/{h['id']}/capture", wkey, {"amount": 100}, idem=k2))
    assert_problem(_post(d, f"/v1/holds/{h['id']}/void", wkey, None, idem=kc), 422, "idempotency_key_reused")
    assert _bal(d, wkey, a) == (900, 0, 900)


# ---------------------------------------------------------------------------
# 3. void


def test_void_releases_the_amount(daemon, wkey):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    h = _mk_hold(d, wkey, a, b, 300)
    assert _bal(d, wkey, a) == (1000, 300, 700)
    v = _expect(_void(d, wkey, h["id"]), 200)
    assert v["id"] == h["id"] and v["status"] == "voided", v
    assert v["captured"] == 0 and v["transfer_id"] is None and v["amount"] == 300, v
    assert _bal(d, wkey, a) == (1000, 0, 1000)
    assert _bal(d, wkey, b) == (0, 0, 0)
    assert _get_hold(d, wkey, h["id"]) == v
    _not_pending(_capture(d, wkey, h["id"]), "voided")
    _not_pending(_capture(d, wkey, h["id"], {"amount": 10}), "voided")
    _not_pending(_void(d, wkey, h["id"]), "voided")
    assert _bal(d, wkey, a) == (1000, 0, 1000)
    assert _bal(d, wkey, b) == (0, 0, 0)


# ---------------------------------------------------------------------------
# 6. concurrency


def test_concurrent_holds_and_debits_respect_the_guard(daemon_factory, cli):
    d = daemon_factory(threads=8)
    _, key = _setup_tenant(cli)
    start, overdraft = 5000, 300
    a = _account(d, key, overdraft_limit=overdraft)
    b = _account(d, key)
    _credit(d, key, a, start)

    n_threads, per_thread = 16, 12
    results = []            # (kind, amount, status, body)
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads)

    def worker(i):
        rnd = random.Random(1000 + i)
        s = requests.Session()
        barrier.wait()
        for _ in range(per_thread):
            amount = rnd.randint(10, 150)
            try:
                if rnd.random() < 0.5:
                    r = _hold(d, key, a, b, amount, session=s, expires_in=3600)
                    kind = "hold"
                else:
                    r = _debit(d, key, a, amount, session=s)
                    kind = "debit"
                entry = (kind, amount, r.status_code, r.text[:300])
            except requests.RequestException as e:
                entry = ("error", amount, None, repr(e))
            with lock:
                results.append(entry)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "requests still running after 120 s"
    assert len(results) == n_threads * per_thread

    odd = [x for x in results if x[2] not in (201, 402)]
    assert not odd, f"answers other than 201/402: {odd[:5]}"
    debits = sum(x[1] for x in results if x[0] == "debit" and x[2] == 201)
    holds = sum(x[1] for x in results if x[0] == "hold" and x[2] == 201)
    refused = [x[1] for x in results if x[2] == 402]
    assert refused, "the guard was never exercised (no 402)"
    assert debits + holds <= start + overdraft, \
        f"guard broken: debits {debits} + open holds {holds} > {start} + overdraft {overdraft}"

    posted, pending, available = _bal(d, key, a)
    if os.environ.get("ONCELEDGER_TEST_DEBUG"):
        print(f"\nconcurrent: {len(results)} requests, debits {debits}, holds {holds}, "
              f"{len(refused)} refused (smallest {min(refused)}), final {posted}/{pending}/{available}")
    assert posted == start - debits, f"posted {posted} != {start} - successful debits {debits}"
    assert pending == holds, f"pending {pending} != sum of successful holds {holds}"
    assert available == posted - pending
    spendable = available + overdraft
    assert spendable >= 0
    # only holds and debits ran, so what could be spent never grew: every
    # refused amount exceeds what is left now (no spurious 402)
    assert min(refused) > spendable, \
        f"a request of {min(refused)} was refused but {spendable} is still spendable"
    assert _bal(d, key, b) == (0, 0, 0)


# ---------------------------------------------------------------------------
# 7. validation, tenants, scopes


_BAD_FIELDS = [
    ("expires_in", 0), ("expires_in", -1), ("expires_in", MAX_EXPIRES + 1), ("expires_in", "60"),
    ("expires_in", 1.5), ("expires_in", 60.0), ("expires_in", True), ("expires_in", [60]),
    ("amount", 0), ("amount", -5), ("amount", "100"), ("amount", 1.5), ("amount", 100.0),
    ("amount", True), ("amount", None), ("amount", [100]), ("amount", {"v": 100}),
    ("amount", 9223372036854775808), ("amount", 1e30),
    ("currency", "usd"), ("currency", "US"), ("currency", "USDD"), ("currency", 840), ("currency", None),
    ("from", ""), ("from", 5), ("from", None), ("from", "a b"), ("from", "x" * 65),
    ("to", ""), ("to", 5), ("to", "a/b"), ("to", "y" * 65),
    ("id", ""), ("id", "@h"), ("id", "has space"), ("id", "h" * 65), ("id", 5),
    ("metadata", "text"), ("metadata", [1]), ("metadata", 5), ("metadata", {"big": "x" * 5000}),
    ("foo", 1), ("captured", 0), ("status", "pending"), ("expires_at", "2030-01-01T00:00:00.000000Z"),
]


@pytest.mark.parametrize("field,value", _BAD_FIELDS,
                         ids=[f"{f}={str(v)[:12]}" for f, v in _BAD_FIELDS])
def test_bad_hold_field_is_400(daemon, wkey, field, value):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    body = {"from": a, "to": b, "amount": 100, "currency": CUR, field: value}
    assert_problem(_post(d, "/v1/holds", wkey, body), 400, "invalid_request")
    assert _bal(d, wkey, a) == (1000, 0, 1000)


@pytest.mark.parametrize("missing", ["from", "to", "amount", "currency"])
def test_missing_hold_field_is_400(daemon, wkey, missing):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    body = {"from": a, "to": b, "amount": 100, "currency": CUR}
    del body[missing]
    assert_problem(_post(d, "/v1/holds", wkey, body), 400, "invalid_request")
    assert_problem(_post(d, "/v1/holds", wkey, b"[]"), 400, "invalid_request")
    assert _bal(d, wkey, a) == (1000, 0, 1000)


def test_hold_field_boundaries(daemon, wkey):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    h = _mk_hold(d, wkey, a, b, 1, expires_in=MAX_EXPIRES, id="h" * 64)
    assert abs(_us(h["expires_at"]) - _us(h["created_at"]) - MAX_EXPIRES * 1_000_000) <= 1000, h
    h = _mk_hold(d, wkey, a, b, 1, expires_in=1, id="A-z_0.9:x")
    assert abs(_us(h["expires_at"]) - _us(h["created_at"]) - 1_000_000) <= 1000, h
    # the largest amount is valid input; it is refused by the guard, not the validator
    body = assert_problem(_hold(d, wkey, a, b, 9223372036854775807), 402, "insufficient_funds")
    assert body.get("account") == a, body
    _mk_hold(d, wkey, a, b, 998)
    assert _bal(d, wkey, a) == (1000, 1000, 0)


def test_other_tenants_hold_is_404(daemon, cli, wkey, make_key):
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    h = _mk_hold(d, wkey, a, b, 100, id="hold-" + _hex())
    other = cli.tenant_create()
    okey = make_key("read,write", tenant_name=other)

    _hold_404(d.get(f"/v1/holds/{h['id']}", key=okey))
    _hold_404(_capture(d, okey, h["id"]))
    _hold_404(_capture(d, okey, h["id"], {"amount": 10}))
    _hold_404(_void(d, okey, h["id"]))
    assert _get_hold(d, wkey, h["id"]) == h
    assert _bal(d, wkey, a) == (1000, 100, 900)

    # the other tenant cannot hold this tenant's money either
    oa = _account(d, okey)
    body = assert_problem(_hold(d, okey, a, oa, 10), 404, "account_not_found")
    assert body.get("account") == a, body
    body = assert_problem(_hold(d, okey, oa, b, 10), 404, "account_not_found")
    # ids are per tenant: the same hold id is free in the other tenant
    _credit(d, okey, oa, 50)
    ob = _account(d, okey)
    oh = _mk_hold(d, okey, oa, ob, 50, id=h["id"])
    assert oh["from"] == oa
    assert _get_hold(d, wkey, h["id"]) == h
    assert _bal(d, wkey, a) == (1000, 100, 900)

    # unknown holds
    _hold_404(d.get("/v1/holds/no-such-hold", key=wkey))
    _hold_404(_capture(d, wkey, "no-such-hold"))
    _hold_404(_void(d, wkey, "no-such-hold"))


def test_hold_scopes(daemon, wkey, make_key):
    d = daemon
    rkey, akey = make_key("read"), make_key("audit")
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    h = _mk_hold(d, wkey, a, b, 100)
    assert_problem(_hold(d, rkey, a, b, 100), 403, "forbidden")
    assert_problem(_hold(d, akey, a, b, 100), 403, "forbidden")
    assert_problem(_capture(d, rkey, h["id"]), 403, "forbidden")
    assert_problem(_void(d, rkey, h["id"]), 403, "forbidden")
    assert _get_hold(d, rkey, h["id"]) == h                  # read may GET
    assert_problem(d.get(f"/v1/holds/{h['id']}", key=akey), 403, "forbidden")  # audit implies nothing else
    assert_problem(d.get(f"/v1/holds/{h['id']}"), 401, "unauthenticated")
    assert _bal(d, wkey, a) == (1000, 100, 900)
    assert _get_hold(d, wkey, h["id"])["status"] == "pending"
