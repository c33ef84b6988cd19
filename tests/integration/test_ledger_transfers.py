"""Double-entry transfers (docs/api.md §4, docs/ledger.md): POST /v1/transfers,
credits and debits (the @world counterparty), GET /v1/transfers/{id}, the
all-or-nothing batch, client-chosen ids that dedupe forever, the error
problems (404 account_not_found, 422 currency_mismatch / same_account /
amount_overflow, 402 insufficient_funds, 409 account_frozen /
transfer_exists) and their precedence, the 400 input matrix, tenant
isolation, scopes, and concurrent debits / opposite transfers.

Every check reads the money back through the API (account balances and
versions, the transfers' entries with seq and balance_after); nothing here
asserts on timing."""

import hashlib
import json
import random
import re
import threading
import uuid

import pytest
import requests

import queue
import time

from oltest import assert_problem, poll

# ---------------------------------------------------------------------------
# helpers

MAX = 9223372036854775807  # 2^63 - 1

TRANSFER_KEYS = {"id", "from", "to", "amount", "currency", "status", "description", "metadata",
                 "hold_id", "order_id", "created_at", "entries"}
ENTRY_KEYS = {"account", "seq", "amount", "balance_after"}
ACCOUNT_KEYS = {"id", "currency", "owner", "status", "balance", "overdraft_limit", "version", "metadata",
                "created_at"}
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _ik():
    """A fresh idempotency key."""
    return uuid.uuid4().hex


def _cid(prefix="t"):
    """A fresh client-chosen id."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def _world(cur):
    return f"@world:{cur}"


def _replayed(r):
    return r.headers.get("Idempotent-Replayed", "").strip().lower() == "true"


def _show(r):
    return f"{r.request.method} {r.request.url} body={(r.request.body or b'')[:300]!r} -> " \
           f"{r.status_code} {r.text[:500]}"


class Api:
    """One tenant's key against the daemon."""

    def __init__(self, daemon, key, session=None):
        self.d = daemon
        self.key = key
        self.s = session

    def post(self, path, body=None, idem=None, data=None, timeout=20):
        h = {"Idempotency-Key": idem or _ik()}
        if data is None:
            data = json.dumps(body if body is not None else {}).encode()
        h["Content-Type"] = "application/json"
        return self.d.post(path, key=self.key, data=data, headers=h, session=self.s, timeout=timeout)

    def get(self, path, **kw):
        kw.setdefault("timeout", 20)
        return self.d.get(path, key=self.key, session=self.s, **kw)

    # accounts -------------------------------------------------------------

    def account(self, currency="USD", **fields):
        body = {"currency": currency}
        body.update(fields)
        r = self.post("/v1/accounts", body)
        assert r.status_code == 201, "create account: " + _show(r)
        return r.json()["id"]

    def acct(self, acc_id):
        r = self.get(f"/v1/accounts/{acc_id}")
        assert r.status_code == 200, "GET account: " + _show(r)
        return r.json()

    def bal(self, acc_id):
        """(posted, pending, available, version)"""
        a = self.acct(acc_id)
        b = a["balance"]
        return b["posted"], b["pending"], b["available"], a["version"]

    def funded(self, amount, currency="USD", **fields):
        acc = self.account(currency, **fields)
        if amount:
            r = self.credit(acc, amount)
            assert r.status_code == 201, "funding credit: " + _show(r)
        return acc

    def freeze(self, acc_id, frozen=True):
        r = self.post(f"/v1/accounts/{acc_id}/{'freeze' if frozen else 'unfreeze'}")
        assert r.status_code == 200, _show(r)
        assert r.json()["status"] == ("frozen" if frozen else "active"), r.text

    # money ------------------------------------------------------------------

    def transfer(self, frm, to, amount, currency="USD", idem=None, **extra):
        body = {"from": frm, "to": to, "amount": amount, "currency": currency}
        body.update(extra)
        return self.post("/v1/transfers", body, idem)

    def credit(self, acc, amount, idem=None, **extra):
        body = {"amount": amount}
        body.update(extra)
        return self.post(f"/v1/accounts/{acc}/credits", body, idem)

    def debit(self, acc, amount, idem=None, **extra):
        body = {"amount": amount}
        body.update(extra)
        return self.post(f"/v1/accounts/{acc}/debits", body, idem)

    def batch(self, transfers, idem=None):
        return self.post("/v1/transfers/batch", {"transfers": transfers}, idem)

    def get_transfer(self, tid):
        return self.get(f"/v1/transfers/{tid}")


class _NoAnswer:
    """Stands for a request that got no HTTP answer (connection error, 60 s
    read timeout): status 0, the exception as the body."""

    def __init__(self, exc):
        self.status_code = 0
        self.content = repr(exc).encode()
        self.text = repr(exc)
        self.headers = {}


class _SafeApi(Api):
    """For the concurrency tests: a request without an answer is a result
    (status 0) to report, not an exception that kills the worker thread."""

    def post(self, path, body=None, idem=None, data=None, timeout=60):
        try:
            return super().post(path, body, idem, data, timeout)
        except requests.RequestException as e:
            return _NoAnswer(e)


def _ok(r, status=201):
    assert r.status_code == status, f"expected {status}: " + _show(r)
    assert r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", r.headers
    return r.json()


def check_transfer(t, frm, to, amount, currency, tid=None, description=None, metadata=None):
    """t is a posted transfer object of exactly the contract's shape."""
    assert isinstance(t, dict), t
    assert set(t) == TRANSFER_KEYS, f"transfer members {sorted(t)} != {sorted(TRANSFER_KEYS)}"
    if tid is None:
        assert isinstance(t["id"], str) and t["id"].startswith("tr_"), f"generated id {t['id']!r} lacks tr_"
        assert len(t["id"]) > 3
    else:
        assert t["id"] == tid, t
    assert ID_RE.fullmatch(t["id"]), t["id"]
    assert t["from"] == frm and t["to"] == to, t
    assert t["amount"] == amount and type(t["amount"]) is int, t
    assert t["currency"] == currency, t
    assert t["status"] == "posted", t
    assert t["description"] == description, t
    if metadata is None:
        assert t["metadata"] in ({}, None), t
    else:
        assert t["metadata"] == metadata, t
    assert t["hold_id"] is None and t["order_id"] is None, t
    assert isinstance(t["created_at"], str) and TS_RE.fullmatch(t["created_at"]), \
        f"created_at {t['created_at']!r} is not RFC 3339 UTC with microseconds"
    es = t["entries"]
    assert isinstance(es, list) and len(es) == 2, t
    for e in es:
        assert isinstance(e, dict) and set(e) == ENTRY_KEYS, f"entry members {e}"
    assert es[0]["account"] == frm and es[0]["amount"] == -amount, es
    assert es[1]["account"] == to and es[1]["amount"] == amount, es
    for e in es:
        if e["account"].startswith("@world:"):
            assert e["seq"] is None and e["balance_after"] is None, f"@world leg {e}"
        else:
            assert type(e["seq"]) is int and e["seq"] >= 1, e
            assert type(e["balance_after"]) is int, e
    return es


def leg(t, acc):
    for e in t["entries"]:
        if e["account"] == acc:
            return e
    raise AssertionError(f"no entry for {acc} in {t}")


@pytest.fixture
def api(daemon, make_key):
    """A key of a fresh tenant; audit too, so tests can read entries and run
    the ledger's own verification (scopes are tested with separate keys)."""
    return Api(daemon, make_key("read,write,audit"))


def _no_floats(text):
    def refuse(x):
        raise AssertionError(f"a number that is not an integer: {x} in {text[:300]}")
    return json.loads(text, parse_float=refuse)


def assert_books_balance(api, currency="USD"):
    """/v1/audit/verify: every chain verifies and the currency sums to 0."""
    r = api.get("/v1/audit/verify", params={"currency": currency})
    assert r.status_code == 200, _show(r)
    v = _no_floats(r.text)
    assert v.get("ok") is True and v.get("sum") == 0, v


# ---------------------------------------------------------------------------
# 1. POST /v1/transfers happy path


def test_transfer_happy_path_shape_balances_and_get(daemon, api):
    a = api.funded(1000)
    b = api.account("USD")
    pa0, _, _, va0 = api.bal(a)
    pb0, _, _, vb0 = api.bal(b)
    assert (pa0, pb0) == (1000, 0)

    r = api.transfer(a, b, 250)
    t = _ok(r, 201)
    assert not _replayed(r)
    es = check_transfer(t, a, b, 250, "USD")
    # a: seq 1 was the funding credit, this is seq 2
    assert es[0] == {"account": a, "seq": 2, "amount": -250, "balance_after": 750}, es
    assert es[1] == {"account": b, "seq": 1, "amount": 250, "balance_after": 250}, es

    acc_a, acc_b = api.acct(a), api.acct(b)
    assert set(acc_a) == ACCOUNT_KEYS, sorted(acc_a)
    assert acc_a["balance"] == {"posted": 750, "pending": 0, "available": 750}, acc_a
    assert acc_b["balance"] == {"posted": 250, "pending": 0, "available": 250}, acc_b
    assert acc_a["version"] == va0 + 1 and acc_b["version"] == vb0 + 1, (va0, vb0, acc_a, acc_b)

    g = api.get_transfer(t["id"])
    assert _ok(g, 200) == t, f"GET differs from POST:\n{g.text}\n{r.text}"

    # description and metadata are stored and returned as is; a client id is kept
    meta = {"order": "o-1", "n": 3, "nested": {"list": [1, "two", None, True]}, "ü": "é"}
    tid = _cid()
    t2 = _ok(api.transfer(b, a, 50, id=tid, description="refund of ü", metadata=meta))
    check_transfer(t2, b, a, 50, "USD", tid=tid, description="refund of ü", metadata=meta)
    assert leg(t2, b) == {"account": b, "seq": 2, "amount": -50, "balance_after": 200}
    assert leg(t2, a) == {"account": a, "seq": 3, "amount": 50, "balance_after": 800}
    assert _ok(api.get_transfer(tid), 200) == t2
    assert api.bal(a)[:3] == (800, 0, 800) and api.bal(b)[:3] == (200, 0, 200)

    # two generated ids differ
    t3 = _ok(api.transfer(a, b, 1))
    assert t3["id"] != t["id"] and t3["id"].startswith("tr_")


def test_transfer_replay_same_key_moves_money_once(api):
    a = api.funded(100)
    b = api.account("USD")
    k = _ik()
    r1 = api.transfer(a, b, 30, idem=k)
    _ok(r1)
    r2 = api.transfer(a, b, 30, idem=k)
    assert r2.status_code == 201 and r2.content == r1.content, _show(r2)
    assert _replayed(r2), r2.headers
    assert api.bal(a)[0] == 70 and api.bal(b)[0] == 30
    # the same key with another body is refused
    assert_problem(api.transfer(a, b, 31, idem=k), 422, "idempotency_key_reused")
    assert api.bal(a)[0] == 70 and api.bal(b)[0] == 30


def test_get_unknown_transfer_is_404(api):
    for tid in ("nope-" + uuid.uuid4().hex, "@world:USD", "x" * 65):
        r = api.get_transfer(tid)
        assert r.status_code == 404, _show(r)
        assert_problem(r, 404, "transfer_not_found")     # docs/errors.md


# ---------------------------------------------------------------------------
# 2. credits and debits


def test_credit_and_debit_shape_and_world_leg(api):
    acc = api.account("EUR")
    v0 = api.bal(acc)[3]
    c = _ok(api.credit(acc, 500))
    check_transfer(c, "@world:EUR", acc, 500, "EUR")
    assert c["entries"][0] == {"account": "@world:EUR", "seq": None, "amount": -500, "balance_after": None}
    assert c["entries"][1] == {"account": acc, "seq": 1, "amount": 500, "balance_after": 500}
    assert _ok(api.get_transfer(c["id"]), 200) == c

    tid = _cid("deb")
    d = _ok(api.debit(acc, 120, id=tid, description="fee", metadata={"k": "v"}))
    check_transfer(d, acc, "@world:EUR", 120, "EUR", tid=tid, description="fee", metadata={"k": "v"})
    assert d["entries"][0] == {"account": acc, "seq": 2, "amount": -120, "balance_after": 380}
    assert d["entries"][1] == {"account": "@world:EUR", "seq": None, "amount": 120, "balance_after": None}
    assert _ok(api.get_transfer(tid), 200) == d

    posted, pending, available, v = api.bal(acc)
    assert (posted, pending, available) == (380, 0, 380)
    assert v == v0 + 2


def test_debit_guard_with_overdraft_limit(api):
    acc = api.account("USD", overdraft_limit=100)
    d1 = _ok(api.debit(acc, 60))
    assert leg(d1, acc) == {"account": acc, "seq": 1, "amount": -60, "balance_after": -60}
    d2 = _ok(api.debit(acc, 40))
    assert leg(d2, acc) == {"account": acc, "seq": 2, "amount": -40, "balance_after": -100}
    before = api.acct(acc)
    assert before["balance"] == {"posted": -100, "pending": 0, "available": -100}, before

    r = api.debit(acc, 1)
    p = assert_problem(r, 402, "insufficient_funds")
    assert p.get("account") == acc, p
    assert p.get("available") == -100, p
    assert p.get("overdraft_limit") == 100, p          # docs/ledger.md
    assert api.acct(acc) == before, "a refused debit changed the account"

    # a credit of 1 makes room for exactly 1
    _ok(api.credit(acc, 1))
    assert_problem(api.debit(acc, 2), 402, "insufficient_funds")
    d3 = _ok(api.debit(acc, 1))
    assert leg(d3, acc)["seq"] == 4 and leg(d3, acc)["balance_after"] == -100
    assert api.bal(acc)[:3] == (-100, 0, -100)


def test_debit_without_overdraft_stops_at_zero(api):
    acc = api.funded(10)
    p = assert_problem(api.debit(acc, 11), 402, "insufficient_funds")
    assert p.get("account") == acc and p.get("available") == 10, p
    _ok(api.debit(acc, 10))
    p = assert_problem(api.debit(acc, 1), 402, "insufficient_funds")
    assert p.get("available") == 0 and p.get("overdraft_limit") == 0, p
    assert api.bal(acc)[:3] == (0, 0, 0)


def test_seq_gapless_and_balance_after_running(api):
    a = api.account("USD")
    b = api.account("USD")
    ops = [("c", a, 100), ("c", a, 50), ("t", a, b, 30), ("d", a, 20), ("t", b, a, 5), ("c", b, 7),
           ("d", b, 1), ("t", a, b, 60), ("c", a, 3)]
    running = {a: 0, b: 0}
    seqs = {a: [], b: []}
    for op in ops:
        if op[0] == "c":
            t = _ok(api.credit(op[1], op[2]))
            deltas = [(op[1], op[2])]
        elif op[0] == "d":
            t = _ok(api.debit(op[1], op[2]))
            deltas = [(op[1], -op[2])]
        else:
            t = _ok(api.transfer(op[1], op[2], op[3]))
            deltas = [(op[1], -op[3]), (op[2], op[3])]
        for acc, delta in deltas:
            running[acc] += delta
            e = leg(t, acc)
            seqs[acc].append(e["seq"])
            assert e["balance_after"] == running[acc], (op, e, running)
    for acc in (a, b):
        assert seqs[acc] == list(range(1, len(seqs[acc]) + 1)), (acc, seqs[acc])
        assert api.bal(acc)[0] == running[acc]
    assert_books_balance(api)


def test_credits_debits_unknown_account_404(api):
    missing = "acc-" + uuid.uuid4().hex
    for path in ("credits", "debits"):
        r = api.post(f"/v1/accounts/{missing}/{path}", {"amount": 5})
        p = assert_problem(r, 404, "account_not_found")
        assert p.get("account") == missing, p


# ---------------------------------------------------------------------------
# 3. @world named in a transfer


def test_transfer_from_and_to_world(api):
    acc = api.account("USD")
    t = _ok(api.transfer("@world:USD", acc, 300))
    check_transfer(t, "@world:USD", acc, 300, "USD")
    assert t["entries"][0]["seq"] is None and t["entries"][0]["balance_after"] is None
    assert leg(t, acc) == {"account": acc, "seq": 1, "amount": 300, "balance_after": 300}

    t2 = _ok(api.transfer(acc, "@world:USD", 100))
    check_transfer(t2, acc, "@world:USD", 100, "USD")
    assert leg(t2, acc) == {"account": acc, "seq": 2, "amount": -100, "balance_after": 200}
    assert _ok(api.get_transfer(t2["id"]), 200) == t2

    # to @world is guarded like a debit
    p = assert_problem(api.transfer(acc, "@world:USD", 201), 402, "insufficient_funds")
    assert p.get("account") == acc and p.get("available") == 200, p
    assert api.bal(acc)[0] == 200

    # @world is not an account object
    r = api.get("/v1/accounts/@world:USD")
    assert r.status_code == 404, _show(r)


def test_world_currency_must_match(api):
    acc = api.account("USD")
    eur = api.account("EUR")
    v = api.bal(acc)[3]
    for frm, to, cur in (("@world:EUR", acc, "USD"), ("@world:EUR", acc, "EUR"), (acc, "@world:EUR", "USD"),
                         ("@world:USD", acc, "EUR"), ("@world:USD", eur, "USD")):
        r = api.transfer(frm, to, 10, currency=cur)
        assert_problem(r, 422, "currency_mismatch")
    assert api.bal(acc) == (0, 0, 0, v)


def test_world_to_world_is_refused(api):
    r = api.transfer("@world:USD", "@world:USD", 10)
    assert r.status_code in (400, 422), _show(r)
    if r.status_code == 422:
        assert_problem(r, 422, "same_account")
    else:
        assert_problem(r, 400, "invalid_request")


# ---------------------------------------------------------------------------
# 4. errors


def test_unknown_accounts_404_from_reported_first(api):
    a = api.funded(100)
    m1, m2 = "gone-" + uuid.uuid4().hex[:8], "gone-" + uuid.uuid4().hex[:8]
    p = assert_problem(api.transfer(m1, a, 10), 404, "account_not_found")
    assert p.get("account") == m1, p
    p = assert_problem(api.transfer(a, m2, 10), 404, "account_not_found")
    assert p.get("account") == m2, p
    p = assert_problem(api.transfer(m1, m2, 10), 404, "account_not_found")
    assert p.get("account") == m1, f"from must be reported before to: {p}"
    assert api.bal(a)[:3] == (100, 0, 100)


def test_currency_mismatch(api):
    usd = api.funded(100, "USD")
    usd2 = api.account("USD")
    eur = api.account("EUR")
    before = [api.acct(x) for x in (usd, usd2, eur)]
    p = assert_problem(api.transfer(usd, eur, 10, "USD"), 422, "currency_mismatch")
    assert p.get("account") == eur, p                  # docs/errors.md: the account whose currency differs
    p = assert_problem(api.transfer(usd, eur, 10, "EUR"), 422, "currency_mismatch")
    assert p.get("account") == usd, p
    for cur in ("EUR", "GBP"):
        p = assert_problem(api.transfer(usd, usd2, 10, cur), 422, "currency_mismatch")
        assert p.get("account") in (usd, usd2), p
    assert [api.acct(x) for x in (usd, usd2, eur)] == before


def test_same_account(api):
    a = api.funded(100)
    before = api.acct(a)
    assert_problem(api.transfer(a, a, 10), 422, "same_account")
    assert api.acct(a) == before


def test_insufficient_funds_changes_nothing_and_is_replayed(api):
    a = api.funded(100)
    b = api.funded(5)
    ba, bb = api.acct(a), api.acct(b)
    k = _ik()
    r = api.transfer(a, b, 101, idem=k)
    p = assert_problem(r, 402, "insufficient_funds")
    assert p.get("account") == a and p.get("available") == 100 and p.get("overdraft_limit") == 0, p
    assert not _replayed(r)
    assert api.acct(a) == ba and api.acct(b) == bb

    # saved by the gate: a retry replays the 402 byte for byte, even after money arrived
    _ok(api.credit(a, 1000))
    r2 = api.transfer(a, b, 101, idem=k)
    assert r2.status_code == 402 and r2.content == r.content, _show(r2)
    assert _replayed(r2), f"402 replay without Idempotent-Replayed: {dict(r2.headers)}"
    assert r2.headers.get("Content-Type", "").split(";")[0] == "application/problem+json"
    assert api.bal(a)[0] == 1100 and api.bal(b)[0] == 5
    # a new key executes
    _ok(api.transfer(a, b, 101))
    assert api.bal(a)[0] == 999 and api.bal(b)[0] == 106


def test_frozen_account(api):
    a = api.funded(100)
    b = api.funded(100)
    api.freeze(a)
    fa, fb = api.acct(a), api.acct(b)
    assert fa["status"] == "frozen"
    for r in (api.transfer(a, b, 10), api.debit(a, 10), api.transfer(a, "@world:USD", 10)):
        p = assert_problem(r, 409, "account_frozen")
        assert p.get("account") == a, p                # docs/errors.md
    assert api.acct(a) == fa and api.acct(b) == fb

    # credits to a frozen account are accepted (docs/ledger.md)
    c = _ok(api.credit(a, 7))
    assert leg(c, a)["balance_after"] == 107
    t = _ok(api.transfer(b, a, 3))
    assert leg(t, a)["balance_after"] == 110
    assert api.acct(a)["status"] == "frozen"

    api.freeze(a, False)
    t = _ok(api.transfer(a, b, 10))
    assert leg(t, a)["balance_after"] == 100
    _ok(api.debit(a, 100))
    assert api.bal(a)[:3] == (0, 0, 0) and api.bal(b)[0] == 107


def test_amount_overflow(api):
    a = api.account("USD")
    _ok(api.credit(a, MAX - 5))
    t = _ok(api.credit(a, 5))
    assert leg(t, a)["balance_after"] == MAX
    before = api.acct(a)
    assert before["balance"]["posted"] == MAX
    for r in (api.credit(a, 1), api.credit(a, MAX)):
        p = assert_problem(r, 422, "amount_overflow")
        assert p.get("account") == a, p                # docs/errors.md
    assert api.acct(a) == before

    # a transfer into a full account rolls back its debit leg too
    b = api.funded(10)
    bb = api.acct(b)
    assert_problem(api.transfer(b, a, 10), 422, "amount_overflow")
    assert_problem(api.transfer("@world:USD", a, 1), 422, "amount_overflow")
    assert api.acct(a) == before and api.acct(b) == bb

    # and MAX + MAX in one account in two credits
    c = api.account("USD")
    _ok(api.credit(c, MAX))
    assert_problem(api.credit(c, MAX), 422, "amount_overflow")
    assert api.bal(c)[0] == MAX
    # spending it makes room again
    _ok(api.debit(c, MAX))
    _ok(api.credit(c, MAX))
    assert api.bal(c)[0] == MAX


def test_sums_past_int64_stay_exact_integers(api):
    """Balances stay within int64, but sums over time do not: two credits
    of 2^63-1 (and a debit between) make @world's total and a statement's
    credits exceed int64. Amounts are JSON integers (docs/api.md §1): the audit
    and statement answers must stay exact integers, never floats."""
    a = api.account("JPY")
    b = api.account("JPY")
    _ok(api.credit(a, MAX))
    _ok(api.credit(b, MAX))
    _ok(api.debit(a, MAX))
    _ok(api.credit(a, MAX))
    assert_books_balance(api, "JPY")
    r = api.get(f"/v1/accounts/{a}/statement")
    assert r.status_code == 200, _show(r)
    st = _no_floats(r.text)
    assert st["credits"] == 2 * MAX and st["debits"] == MAX, st
    assert st["opening_balance"] == 0 and st["closing_balance"] == MAX, st


def test_huge_overdraft_limit_does_not_overflow(api):
    """overdraft_limit 2^63-1 is accepted by POST /v1/accounts; no balance
    overflows in this sequence, so every step must succeed (or be refused by
    the guard), never 5xx."""
    a = api.account("USD", overdraft_limit=MAX)
    _ok(api.debit(a, MAX))                             # posted -MAX
    assert api.bal(a)[0] == -MAX
    assert_problem(api.debit(a, 1), 402, "insufficient_funds")   # available + limit = 0
    _ok(api.credit(a, MAX))                            # posted 0
    r = api.credit(a, MAX)                             # posted MAX: no balance overflows
    assert r.status_code == 201, "credit of MAX to an account with overdraft_limit MAX: " + _show(r)
    assert api.bal(a)[0] == MAX
    _ok(api.debit(a, MAX))
    assert api.bal(a)[0] == 0


def test_error_precedence(api):
    """docs/ledger.md: transfer_exists, account_not_found (from before to),
    currency_mismatch, account_frozen, insufficient_funds, amount_overflow."""
    missing = "gone-" + uuid.uuid4().hex[:8]
    usd_poor = api.account("USD")
    eur = api.account("EUR")
    full = api.funded(MAX, "USD")
    frozen_poor = api.account("USD")
    api.freeze(frozen_poor)
    tid = _cid()
    _ok(api.credit(usd_poor, 1, id=tid))

    # existing id with other params beats unknown accounts
    p = assert_problem(api.transfer(missing, missing + "x", 10, id=tid), 409, "transfer_exists")
    assert p.get("transfer") == tid, p
    # unknown account beats currency mismatch
    p = assert_problem(api.transfer(missing, eur, 10, "USD"), 404, "account_not_found")
    assert p.get("account") == missing
    # currency mismatch beats frozen and insufficient
    assert_problem(api.transfer(frozen_poor, eur, 10, "USD"), 422, "currency_mismatch")
    # frozen beats insufficient
    assert_problem(api.transfer(frozen_poor, usd_poor, 10), 409, "account_frozen")
    # insufficient beats overflow
    p = assert_problem(api.transfer(usd_poor, full, 10), 402, "insufficient_funds")
    assert p.get("account") == usd_poor and p.get("available") == 1, p
    assert api.bal(usd_poor)[0] == 1 and api.bal(full)[0] == MAX


def test_error_precedence_unknown_account_before_world_currency(api):
    """docs/ledger.md lists 404 account_not_found before 422
    currency_mismatch, with no exception for @world: a transfer between
    @world of another currency and a missing account is 404."""
    missing = "gone-" + uuid.uuid4().hex[:8]
    p = assert_problem(api.transfer("@world:EUR", missing, 10, "USD"), 404, "account_not_found")
    assert p.get("account") == missing, p
    p = assert_problem(api.transfer(missing, "@world:EUR", 10, "USD"), 404, "account_not_found")
    assert p.get("account") == missing, p


# ---------------------------------------------------------------------------
# 5. client-chosen ids


def test_client_id_dedupes_with_new_key(api):
    a = api.funded(1000)
    b = api.account("USD")
    tid = _cid()
    meta = {"x": 1}
    r1 = api.transfer(a, b, 100, id=tid, description="d", metadata=meta)
    t1 = _ok(r1)
    va, vb = api.bal(a)[3], api.bal(b)[3]

    r2 = api.transfer(a, b, 100, id=tid, description="d", metadata=meta)   # new idempotency key
    t2 = _ok(r2, 200)
    assert t2 == t1, f"existing transfer differs:\n{r1.text}\n{r2.text}"
    assert r2.content == r1.content, f"not byte-equal:\n{r1.content!r}\n{r2.content!r}"
    assert api.bal(a) == (900, 0, 900, va) and api.bal(b) == (100, 0, 100, vb), "money moved twice"

    for kw in ({"amount": 101}, {"to": a, "frm": b}, {"description": "other"}, {"metadata": {"x": 2}},
               {"description": None}, {"currency": "EUR"}):
        args = {"frm": a, "to": b, "amount": 100, "currency": "USD", "description": "d", "metadata": meta}
        args.update(kw)
        body = {"id": tid, "from": args["frm"], "to": args["to"], "amount": args["amount"],
                "currency": args["currency"], "metadata": args["metadata"]}
        if args["description"] is not None:
            body["description"] = args["description"]
        r = api.post("/v1/transfers", body)
        p = assert_problem(r, 409, "transfer_exists")
        assert p.get("transfer") == tid, p
    assert api.bal(a) == (900, 0, 900, va) and api.bal(b) == (100, 0, 100, vb)
    assert _ok(api.get_transfer(tid), 200) == t1


def test_client_id_dedupes_credits_and_debits(api):
    a = api.account("USD")
    b = api.account("USD")
    cid = _cid("cr")
    r1 = api.credit(a, 50, id=cid)
    _ok(r1)
    r2 = api.credit(a, 50, id=cid)
    assert _ok(r2, 200) == r1.json() and r2.content == r1.content, _show(r2)
    assert api.bal(a)[0] == 50
    assert api.acct(a)["version"] == 2

    # same id: other amount, other account, other kind
    for r in (api.credit(a, 51, id=cid), api.credit(b, 50, id=cid), api.debit(a, 50, id=cid),
              api.transfer(a, b, 50, id=cid)):
        p = assert_problem(r, 409, "transfer_exists")
        assert p.get("transfer") == cid, p
    assert api.bal(a)[0] == 50 and api.bal(b)[0] == 0

    did = _cid("db")
    _ok(api.debit(a, 20, id=did))
    assert _ok(api.debit(a, 20, id=did), 200)["id"] == did
    assert api.bal(a)[0] == 30


def test_client_id_dedupe_treats_defaults_as_identical(api):
    """Omitted metadata is stored and returned as {} and omitted description
    as null: a retry spelling the defaults out (or leaving them out) names
    the same transfer, 200, not 409."""
    a = api.funded(100)
    b = api.account("USD")
    t1 = _cid()
    o1 = _ok(api.transfer(a, b, 5, id=t1))
    assert o1["metadata"] == {} and o1["description"] is None, o1
    r = api.transfer(a, b, 5, id=t1, description=None)
    assert _ok(r, 200) == o1
    r = api.transfer(a, b, 5, id=t1, metadata={})
    assert r.status_code == 200, "omitted metadata is {}: " + _show(r)
    assert r.json() == o1

    t2 = _cid()
    o2 = _ok(api.transfer(a, b, 5, id=t2, metadata={}))
    r = api.transfer(a, b, 5, id=t2)
    assert r.status_code == 200, "metadata {} vs omitted: " + _show(r)
    assert r.json() == o2
    assert api.bal(a)[0] == 90 and api.bal(b)[0] == 10


@pytest.mark.parametrize("bad_id", ["@x", "@world:USD", "a b", "ü", "x/y", "a#b", "", "x" * 65, 5, ["a"]],
                         ids=["at", "at-world", "space", "non-ascii", "slash", "hash", "empty", "65chars",
                              "int", "list"])
def test_client_id_invalid_is_400(api, bad_id):
    a = api.funded(100)
    b = api.account("USD")
    v = (api.bal(a), api.bal(b))
    assert_problem(api.transfer(a, b, 1, id=bad_id), 400, "invalid_request")
    assert_problem(api.credit(a, 1, id=bad_id), 400, "invalid_request")
    assert_problem(api.debit(a, 1, id=bad_id), 400, "invalid_request")
    assert (api.bal(a), api.bal(b)) == v


def test_client_id_64_chars_ok(api):
    a = api.funded(100)
    b = api.account("USD")
    tid = "Az09_.:-" * 8
    assert len(tid) == 64
    check_transfer(_ok(api.transfer(a, b, 1, id=tid)), a, b, 1, "USD", tid=tid)
    assert _ok(api.get_transfer(tid), 200)["id"] == tid


# ---------------------------------------------------------------------------
# 6. batch


def test_batch_applies_in_order(api):
    a = api.funded(100)
    b = api.account("USD")
    c = api.account("USD")
    va, vb, vc = api.bal(a)[3], api.bal(b)[3], api.bal(c)[3]
    ids = [_cid("b") for _ in range(6)]
    items = [
        {"id": ids[0], "from": a, "to": b, "amount": 60, "currency": "USD"},
        {"id": ids[1], "from": b, "to": c, "amount": 50, "currency": "USD", "description": "hop"},
        {"id": ids[2], "from": a, "to": b, "amount": 40, "currency": "USD"},  # a now 0: only possible in order
        {"id": ids[3], "from": c, "to": a, "amount": 50, "currency": "USD", "metadata": {"m": 1}},
        {"from": "@world:USD", "to": b, "amount": 5, "currency": "USD"},
        {"id": ids[5], "from": b, "to": "@world:USD", "amount": 55, "currency": "USD"},
    ]
    r = api.batch(items)
    body = _ok(r, 201)
    assert set(body) == {"transfers"}, body
    ts = body["transfers"]
    assert isinstance(ts, list) and len(ts) == len(items), body
    for it, t in zip(items, ts):
        check_transfer(t, it["from"], it["to"], it["amount"], "USD", tid=it.get("id"),
                       description=it.get("description"), metadata=it.get("metadata"))
    # seqs consecutive per account, balance_after running in batch order
    assert [leg(ts[i], a)["seq"] for i in (0, 2, 3)] == [2, 3, 4]
    assert [leg(ts[i], a)["balance_after"] for i in (0, 2, 3)] == [40, 0, 50]
    assert [leg(ts[i], b)["seq"] for i in (0, 1, 2, 4, 5)] == [1, 2, 3, 4, 5]
    assert [leg(ts[i], b)["balance_after"] for i in (0, 1, 2, 4, 5)] == [60, 10, 50, 55, 0]
    assert [leg(ts[i], c)["seq"] for i in (1, 3)] == [1, 2]
    assert api.bal(a)[:3] == (50, 0, 50) and api.bal(b)[:3] == (0, 0, 0) and api.bal(c)[:3] == (0, 0, 0)
    # every account changed: version grew (by one per touch, docs/ledger.md)
    assert api.bal(a)[3] == va + 3 and api.bal(b)[3] == vb + 5 and api.bal(c)[3] == vc + 2
    for it, t in zip(items, ts):
        assert _ok(api.get_transfer(t["id"]), 200) == t
    # replay of the batch: byte for byte, applied once
    r2 = api.post("/v1/transfers/batch", {"transfers": items}, idem=r.request.headers["Idempotency-Key"])
    assert r2.status_code == 201 and r2.content == r.content and _replayed(r2), _show(r2)
    assert api.bal(a)[0] == 50


def test_batch_of_100_fails_at_56_and_writes_nothing(api):
    a = api.funded(560)            # elements 0..55 take 10 each: element 56 finds 0
    b = api.account("USD")
    c = api.funded(100)
    before = [api.acct(x) for x in (a, b, c)]
    ids = [_cid("n") for _ in range(100)]
    items = []
    for i in range(100):
        if i < 57:
            items.append({"id": ids[i], "from": a, "to": b, "amount": 10, "currency": "USD"})
        else:
            items.append({"id": ids[i], "from": c, "to": b, "amount": 1, "currency": "USD"})
    k = _ik()
    r = api.batch(items, idem=k)
    p = assert_problem(r, 402, "insufficient_funds")
    assert p.get("index") == 56, p
    assert p.get("account") == a, p
    assert p.get("available") == 0, f"available at element 56 (applied in order) is 0: {p}"
    assert [api.acct(x) for x in (a, b, c)] == before, "a failed batch wrote something"
    for tid in ids:
        g = api.get_transfer(tid)
        assert g.status_code == 404, f"transfer {tid} of a failed batch exists: {_show(g)}"

    # the 402 is saved: replayed byte for byte
    r2 = api.batch(items, idem=k)
    assert r2.status_code == 402 and r2.content == r.content and _replayed(r2), _show(r2)

    # a fixed batch with a new key applies all 100
    items[56] = {"id": ids[56], "from": c, "to": b, "amount": 1, "currency": "USD"}
    body = _ok(api.batch(items))
    assert len(body["transfers"]) == 100
    assert [t["id"] for t in body["transfers"]] == ids
    assert api.bal(a)[0] == 0 and api.bal(c)[0] == 100 - 44 and api.bal(b)[0] == 560 + 44
    for tid in (ids[0], ids[56], ids[99]):
        assert _ok(api.get_transfer(tid), 200)["id"] == tid


def test_batch_business_failure_index_and_kind(api):
    a = api.funded(100)
    b = api.account("USD")
    eur = api.account("EUR")
    before = [api.acct(x) for x in (a, b, eur)]
    ok = {"from": a, "to": b, "amount": 1, "currency": "USD"}
    missing = "gone-" + uuid.uuid4().hex[:8]
    cases = [
        (2, {"from": a, "to": missing, "amount": 1, "currency": "USD"}, 404, "account_not_found"),
        (1, {"from": a, "to": eur, "amount": 1, "currency": "USD"}, 422, "currency_mismatch"),
        (4, {"from": b, "to": b, "amount": 1, "currency": "USD"}, 422, "same_account"),
        (0, {"from": a, "to": b, "amount": 101, "currency": "USD"}, 402, "insufficient_funds"),
    ]
    for idx, bad, status, code in cases:
        items = [dict(ok) for _ in range(6)]
        items[idx] = bad
        p = assert_problem(api.batch(items), status, code)
        assert p.get("index") == idx, p
        if code == "account_not_found":
            assert p.get("account") == missing, p
    assert [api.acct(x) for x in (a, b, eur)] == before


def test_batch_existing_ids(api):
    a = api.funded(100)
    b = api.account("USD")
    tid = _cid()
    t = _ok(api.transfer(a, b, 10, id=tid))
    # identical parameters: returned as is, not applied again
    nid = _cid()
    body = _ok(api.batch([{"id": tid, "from": a, "to": b, "amount": 10, "currency": "USD"},
                          {"id": nid, "from": a, "to": b, "amount": 5, "currency": "USD"}]))
    assert body["transfers"][0] == t, body
    check_transfer(body["transfers"][1], a, b, 5, "USD", tid=nid)
    assert api.bal(a)[0] == 85 and api.bal(b)[0] == 15
    # other parameters: 409 transfer_exists at its index, nothing written
    before = [api.acct(x) for x in (a, b)]
    xid = _cid()
    p = assert_problem(api.batch([{"id": xid, "from": a, "to": b, "amount": 5, "currency": "USD"},
                                  {"id": tid, "from": a, "to": b, "amount": 11, "currency": "USD"}]),
                       409, "transfer_exists")
    assert p.get("index") == 1 and p.get("transfer") == tid, p
    assert [api.acct(x) for x in (a, b)] == before
    assert api.get_transfer(xid).status_code == 404


def test_batch_repeated_client_id_within_one_batch(api):
    """docs/ledger.md: a transfer of the batch whose client id exists already
    with identical parameters is returned as it is, not applied again. Within
    one batch (applied in order) the second element's id exists already (the
    first element made it): identical parameters dedupe, others are 409 at
    their index."""
    a = api.funded(100)
    b = api.account("USD")
    tid = _cid("dup")
    el = {"id": tid, "from": a, "to": b, "amount": 1, "currency": "USD"}
    r = api.batch([el, dict(el)])
    body = _ok(r, 201)
    ts = body["transfers"]
    assert len(ts) == 2 and ts[0] == ts[1], body
    check_transfer(ts[0], a, b, 1, "USD", tid=tid)
    assert api.bal(a)[0] == 99 and api.bal(b)[0] == 1, "applied twice"

    tid2 = _cid("dup")
    before = (api.acct(a), api.acct(b))
    p = assert_problem(api.batch([dict(el, id=tid2), dict(el, id=tid2, amount=2)]), 409, "transfer_exists")
    assert p.get("index") == 1 and p.get("transfer") == tid2, p
    assert (api.acct(a), api.acct(b)) == before
    assert api.get_transfer(tid2).status_code == 404


def test_batch_validation(api):
    a = api.funded(100)
    b = api.account("USD")
    before = [api.acct(x) for x in (a, b)]
    ok = {"from": a, "to": b, "amount": 1, "currency": "USD"}

    items = [dict(ok) for _ in range(5)]
    items[3] = {"from": a, "to": b, "amount": "1", "currency": "USD"}
    p = assert_problem(api.batch(items), 400, "invalid_request")
    assert p.get("index") == 3, p

    items = [dict(ok) for _ in range(5)]
    items[3] = 7
    p = assert_problem(api.batch(items), 400, "invalid_request")
    assert p.get("index") == 3, p

    # a business failure (element 1) before a validation error (element 4):
    # the contract does not say whether the batch is validated as a whole
    # first (400, index 4) or element by element (402, index 1); either is
    # accepted, and nothing is written
    items = [dict(ok) for _ in range(5)]
    items[4] = {"from": a, "to": b, "currency": "USD"}
    items[1] = {"from": a, "to": b, "amount": 10 ** 6, "currency": "USD"}
    r = api.batch(items)
    assert r.status_code in (400, 402), _show(r)
    p = assert_problem(r, r.status_code, "invalid_request" if r.status_code == 400 else "insufficient_funds")
    assert p.get("index") == (4 if r.status_code == 400 else 1), p

    for bad in ([], [dict(ok) for _ in range(101)]):
        assert_problem(api.batch(bad), 400, "invalid_request")
    for body in ({"transfers": dict(ok)}, {"transfers": "x"}, {"transfers": None}, {"transfers": 1}, {},
                 {"transfers": [dict(ok)], "extra": 1}):
        assert_problem(api.post("/v1/transfers/batch", body), 400, "invalid_request")
    assert [api.acct(x) for x in (a, b)] == before

    # exactly 100 is fine
    body = _ok(api.batch([dict(ok) for _ in range(100)]))
    assert len(body["transfers"]) == 100
    assert api.bal(a)[0] == 0 and api.bal(b)[0] == 100
    assert [leg(t, a)["seq"] for t in body["transfers"]] == list(range(2, 102))


# ---------------------------------------------------------------------------
# 7. bad input matrix

TOO_BIG = 9223372036854775808
BIG_META = {"k": "a" * 4200}

AMOUNT_BAD = [("str", "10"), ("float", 1.5), ("float-int", 10.0), ("true", True), ("false", False),
              ("null", None), ("zero", 0), ("neg", -1), ("neg-max", -MAX), ("too-big", TOO_BIG),
              ("huge", 10 ** 30), ("list", [10]), ("obj", {"v": 10})]
DESC_BAD = [("int", 5), ("bool", True), ("list", ["x"]), ("obj", {"a": "b"})]
META_BAD = [("str", "x"), ("list", []), ("int", 5), ("bool", True), ("big", BIG_META)]
CUR_BAD = [("lower", "usd"), ("two", "US"), ("four", "USDX"), ("int", 840), ("null", None), ("empty", ""),
           ("mixed", "UsD"), ("digits", "US1")]
_MISSING = object()


def _variants(kind):
    """(name, body-mutator) for one endpoint kind: transfer / credit / debit."""
    out = []
    for n, v in AMOUNT_BAD:
        out.append((f"amount-{n}", "amount", v))
    out.append(("amount-missing", "amount", _MISSING))
    for n, v in DESC_BAD:
        out.append((f"description-{n}", "description", v))
    for n, v in META_BAD:
        out.append((f"metadata-{n}", "metadata", v))
    out += [("unknown-field", "foo", 1), ("unknown-status", "status", "posted"), ("unknown-hold", "hold_id", None)]
    if kind == "transfer":
        for n, v in CUR_BAD:
            out.append((f"currency-{n}", "currency", v))
        out += [("currency-missing", "currency", _MISSING), ("from-missing", "from", _MISSING),
                ("to-missing", "to", _MISSING), ("from-int", "from", 5), ("to-int", "to", 5),
                ("from-null", "from", None), ("to-null", "to", None), ("from-list", "from", ["x"]),
                ("to-obj", "to", {})]
    else:
        out += [("field-from", "from", "@world:USD"), ("field-to", "to", "x"), ("field-currency", "currency", "USD")]
    return out


MATRIX = [(k, n, f, v) for k in ("transfer", "credit", "debit", "batch") for (n, f, v) in
          _variants("transfer" if k == "batch" else k)]


@pytest.fixture(scope="module")
def mx(daemon, cli):
    """One tenant with two funded accounts for the whole matrix."""
    t = cli.tenant_create()
    api = Api(daemon, cli.key_create(t, "read,write"))
    a = api.funded(1000)
    b = api.funded(1000)
    return api, a, b


@pytest.mark.parametrize("kind,name,field,value", MATRIX, ids=[f"{k}-{n}" for k, n, _, _ in MATRIX])
def test_bad_input_is_400_and_writes_nothing(mx, kind, name, field, value):
    api, a, b = mx
    before = (api.acct(a), api.acct(b))
    if kind in ("transfer", "batch"):
        body = {"from": a, "to": b, "amount": 10, "currency": "USD"}
    else:
        body = {"amount": 10}
    if value is _MISSING:
        body.pop(field, None)
    else:
        body[field] = value
    if kind == "transfer":
        r = api.post("/v1/transfers", body)
    elif kind == "credit":
        r = api.post(f"/v1/accounts/{a}/credits", body)
    elif kind == "debit":
        r = api.post(f"/v1/accounts/{a}/debits", body)
    else:
        r = api.post("/v1/transfers/batch",
                     {"transfers": [{"from": a, "to": b, "amount": 1, "currency": "USD"}, body]})
    p = assert_problem(r, 400, "invalid_request")
    if kind == "batch":
        if name in ("amount-too-big", "amount-huge"):
            # an integer beyond int64 may already be refused by the JSON parser,
            # for the body as a whole: then there is no element to name
            assert p.get("index") in (1, None), p
        else:
            assert p.get("index") == 1, p
    assert (api.acct(a), api.acct(b)) == before, "a refused request wrote something"


@pytest.mark.parametrize("value", ["", "x" * 65, "a b", "@nope"], ids=["empty", "65chars", "space", "at"])
def test_bad_account_reference_is_400_or_404(mx, value):
    """A from/to that cannot name any account: 400 invalid_request or 404
    account_not_found (the contract does not say which); never 2xx/5xx."""
    api, a, b = mx
    before = (api.acct(a), api.acct(b))
    for body in ({"from": value, "to": b, "amount": 1, "currency": "USD"},
                 {"from": a, "to": value, "amount": 1, "currency": "USD"}):
        r = api.post("/v1/transfers", body)
        assert r.status_code in (400, 404), _show(r)
        assert_problem(r, r.status_code, "invalid_request" if r.status_code == 400 else "account_not_found")
    assert (api.acct(a), api.acct(b)) == before


def test_amount_max_is_valid(mx):
    api, a, b = mx
    # 2^63-1 passes validation; it is refused only by the guard
    p = assert_problem(api.transfer(a, b, MAX), 402, "insufficient_funds")
    assert p.get("account") == a
    p = assert_problem(api.debit(a, MAX), 402, "insufficient_funds")


def test_metadata_4k_boundary(mx):
    api, a, b = mx
    # {"k":"aaa..."} serialized: 8 + n bytes
    small = {"k": "a" * (4096 - 8)}
    assert len(json.dumps(small, separators=(",", ":"))) == 4096
    t = _ok(api.transfer(a, b, 1, metadata=small))
    assert t["metadata"] == small
    big = {"k": "a" * (4097 - 8)}
    assert_problem(api.transfer(a, b, 1, metadata=big), 400, "invalid_request")


@pytest.mark.parametrize("data", [
    b'{"amount":1,"amount":50}',                 # duplicate member: which amount?
    b'{"amount":010}',                           # leading zero: not JSON
    b'{"amount":1} x',                           # trailing garbage
    b'{"amount":1,"description":"a\\u0000b"}',  # NUL inside a string
    b'{"amount":1E1}',                           # a float, even if integral
    b'{"amount":-0}',
], ids=["dup-member", "leading-zero", "trailing", "nul", "exp", "minus-zero"])
def test_raw_bodies_are_400(mx, data):
    api, a, b = mx
    before = (api.acct(a), api.acct(b))
    for path in (f"/v1/accounts/{a}/debits", f"/v1/accounts/{a}/credits"):
        assert_problem(api.post(path, data=data), 400, "invalid_request")
    assert (api.acct(a), api.acct(b)) == before


def test_400_leaves_the_idempotency_key_free(mx):
    api, a, b = mx
    k = _ik()
    assert_problem(api.transfer(a, b, "10", idem=k), 400, "invalid_request")
    t = _ok(api.transfer(a, b, 10, idem=k))
    check_transfer(t, a, b, 10, "USD")


def test_non_json_and_non_object_bodies(mx):
    api, a, b = mx
    before = (api.acct(a), api.acct(b))
    for path in ("/v1/transfers", f"/v1/accounts/{a}/credits", f"/v1/accounts/{a}/debits", "/v1/transfers/batch"):
        for data in (b"[1]", b'"x"', b"{", b"null"):
            assert_problem(api.post(path, data=data), 400, "invalid_request")
    assert (api.acct(a), api.acct(b)) == before


def test_transfer_guard_counts_pending_holds(api):
    """available = posted - pending: an open hold reduces what a transfer may
    move (docs/api.md §3)."""
    a = api.funded(100)
    b = api.account("USD")
    r = api.post("/v1/holds", {"from": a, "to": b, "amount": 60, "currency": "USD"})
    assert r.status_code == 201, _show(r)
    assert api.bal(a)[:3] == (100, 60, 40)
    p = assert_problem(api.transfer(a, b, 41), 402, "insufficient_funds")
    assert p.get("available") == 40, p
    assert_problem(api.debit(a, 41), 402, "insufficient_funds")
    t = _ok(api.transfer(a, b, 40))
    assert leg(t, a)["balance_after"] == 60
    assert api.bal(a)[:3] == (60, 60, 0)
    assert api.bal(b)[:3] == (40, 0, 40)


def test_batch_overflow_and_frozen_report_their_index(api):
    a = api.funded(100)
    full = api.funded(MAX)
    fz = api.funded(50)
    api.freeze(fz)
    before = [api.acct(x) for x in (a, full, fz)]
    ok = {"from": a, "to": "@world:USD", "amount": 1, "currency": "USD"}
    p = assert_problem(api.batch([ok, ok, {"from": a, "to": full, "amount": 1, "currency": "USD"}]), 422,
                       "amount_overflow")
    assert p.get("index") == 2, p
    p = assert_problem(api.batch([ok, {"from": fz, "to": a, "amount": 1, "currency": "USD"}, ok]), 409,
                       "account_frozen")
    assert p.get("index") == 1, p
    # a credit to the frozen account inside a batch is fine
    body = _ok(api.batch([ok, {"from": a, "to": fz, "amount": 5, "currency": "USD"}]))
    assert leg(body["transfers"][1], fz)["balance_after"] == 55
    assert api.bal(a)[0] == 94 and api.acct(full) == before[1]


def test_metadata_round_trip(api):
    a = api.funded(10)
    meta = {"z": 1, "a": {"nested": [1, 2, {"deep": None}]}, "unicode": "ü€😀", "esc": "quote\" back\\ nl\n",
            "neg": -5, "float": 0.5, "t": True, "empty": {}, "list": []}
    r = api.debit(a, 1, metadata=meta)
    t = _ok(r)
    assert t["metadata"] == meta
    # insertion order of the keys is kept
    assert list(t["metadata"]) == list(meta), list(t["metadata"])
    assert _ok(api.get_transfer(t["id"]), 200)["metadata"] == meta


def test_metadata_big_integer_is_refused_clearly(api):
    """docs/ledger.md: the JSON library has no integers beyond int64, so an
    integer like a 20-digit reference in metadata is a clear 400 (never
    silently rounded) and nothing is written; as a string it is stored."""
    a = api.funded(10)
    before = api.acct(a)
    data = ('{"amount":1,"metadata":{"ref":12345678901234567890}}').encode()
    p = assert_problem(api.post(f"/v1/accounts/{a}/debits", data=data), 400, "invalid_request")
    assert "too big integer" in p["detail"], p
    assert api.acct(a) == before
    t = _ok(api.post(f"/v1/accounts/{a}/debits", data=b'{"amount":1,"metadata":{"ref":"12345678901234567890"}}'))
    assert t["metadata"] == {"ref": "12345678901234567890"}


# ---------------------------------------------------------------------------
# 8. cross-tenant


def test_cross_tenant_isolation(daemon, api, cli):
    a = api.funded(500)
    a2 = api.account("USD")
    tid = _cid()
    t = _ok(api.transfer(a, a2, 100, id=tid))
    before = (api.acct(a), api.acct(a2))

    tb = cli.tenant_create()
    other = Api(daemon, cli.key_create(tb, "read,write"))
    own = other.funded(50)

    assert_problem(other.get_transfer(tid), 404, "transfer_not_found")
    assert other.get(f"/v1/accounts/{a}").status_code == 404

    p = assert_problem(other.transfer(a, own, 10), 404, "account_not_found")
    assert p.get("account") == a, p
    p = assert_problem(other.transfer(own, a, 10), 404, "account_not_found")
    assert p.get("account") == a, p
    for path in ("credits", "debits"):
        p = assert_problem(other.post(f"/v1/accounts/{a}/{path}", {"amount": 5}), 404, "account_not_found")
        assert p.get("account") == a, p
    p = assert_problem(other.batch([{"from": own, "to": a, "amount": 1, "currency": "USD"}]), 404,
                       "account_not_found")
    assert p.get("index") == 0

    # the same ids in tenant B are B's own: no clash with A's
    other.account("USD", id=a)
    t2 = _ok(other.credit(a, 7, id=tid))
    assert t2["id"] == tid and leg(t2, a)["balance_after"] == 7
    assert (api.acct(a), api.acct(a2)) == before
    assert _ok(api.get_transfer(tid), 200) == t
    assert other.bal(own)[0] == 50


# ---------------------------------------------------------------------------
# 9. scopes


def test_scopes(daemon, api, make_key):
    a = api.funded(100)
    b = api.account("USD")
    t = _ok(api.transfer(a, b, 10))
    ro = Api(daemon, make_key("read"))
    au = Api(daemon, make_key("audit"))
    k = _ik()
    for r in (ro.transfer(a, b, 1, idem=k), ro.credit(a, 1), ro.debit(a, 1),
              ro.batch([{"from": a, "to": b, "amount": 1, "currency": "USD"}]),
              au.transfer(a, b, 1), au.credit(a, 1)):
        assert_problem(r, 403, "forbidden")
    assert _ok(ro.get_transfer(t["id"]), 200) == t
    assert_problem(au.get_transfer(t["id"]), 403, "forbidden")
    assert_problem(au.get_transfer("nope"), 403, "forbidden")
    assert api.bal(a)[0] == 90 and api.bal(b)[0] == 10
    # a 403 is not saved: the key is free for a writer
    _ok(api.transfer(a, b, 1, idem=k))


# ---------------------------------------------------------------------------
# 10. concurrency


def _run_threads(n, fn):
    errors = []

    def wrap(i):
        try:
            fn(i)
        except BaseException as e:      # noqa: BLE001 - reported below
            errors.append(e)

    ths = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(300)
    assert not any(th.is_alive() for th in ths), "threads hang (deadlock?)"
    assert not errors, f"{len(errors)} thread(s) failed: {errors[:3]!r}"


def test_concurrent_debits_respect_the_guard(daemon, api):
    acc = api.account("USD", overdraft_limit=50)
    _ok(api.credit(acc, 500))
    results = []
    lock = threading.Lock()

    def worker(i):
        s = requests.Session()
        me = _SafeApi(daemon, api.key, s)
        for _ in range(20):
            r = me.debit(acc, 7)
            with lock:
                results.append((r.status_code, r.content))

    _run_threads(16, worker)
    assert len(results) == 320
    bad = [(s, c[:200]) for s, c in results if s not in (201, 402)]
    assert not bad, f"unexpected answers: {bad[:5]}"
    wins = [json.loads(c) for s, c in results if s == 201]
    n = len(wins)
    assert n * 7 <= 550, f"{n} debits of 7 succeeded: more than 550 spent"
    assert n == 550 // 7, f"{n} succeeded, expected exactly {550 // 7}"
    posted = api.bal(acc)[0]
    assert posted == 500 - 7 * n and posted >= -50, posted
    legs = sorted((leg(t, acc) for t in wins), key=lambda e: e["seq"])
    assert [e["seq"] for e in legs] == list(range(2, n + 2)), "seq not gapless / duplicated"
    assert [e["balance_after"] for e in legs] == [500 - 7 * (i + 1) for i in range(n)]
    assert_books_balance(api)
    for s, c in results:
        if s == 402:
            p = json.loads(c)
            assert p["code"] == "insufficient_funds" and p.get("account") == acc, p
            assert p["available"] + 50 < 7, p


def test_opposite_transfers_do_not_deadlock_and_conserve(daemon, api, make_key):
    a = api.funded(1_000_000)
    b = api.funded(1_000_000)
    per = 15
    results = []
    lock = threading.Lock()

    def worker(i):
        s = requests.Session()
        me = _SafeApi(daemon, api.key, s)
        frm, to = (a, b) if i % 2 == 0 else (b, a)
        for j in range(per):
            amt = 1 + (i * 31 + j * 17) % 97
            r = me.transfer(frm, to, amt)
            with lock:
                results.append((frm, to, amt, r.status_code, r.content))

    _run_threads(16, worker)
    bad = [(s, c[:300]) for _, _, _, s, c in results if s != 201]
    assert not bad, f"{len(bad)} of {len(results)} failed, e.g. {bad[:5]}"
    ab = sum(amt for f, _, amt, _, _ in results if f == a)
    ba = sum(amt for f, _, amt, _, _ in results if f == b)
    pa, pb = api.bal(a)[0], api.bal(b)[0]
    assert pa == 1_000_000 - ab + ba and pb == 1_000_000 - ba + ab, (pa, pb, ab, ba)
    assert pa + pb == 2_000_000
    for acc in (a, b):
        legs = sorted((leg(json.loads(c), acc) for *_, c in results), key=lambda e: e["seq"])
        assert [e["seq"] for e in legs] == list(range(2, len(results) + 2)), f"{acc}: seqs not gapless"
        run = 1_000_000
        for e in legs:
            run += e["amount"]
            assert e["balance_after"] == run, (acc, e, run)
        assert run == api.bal(acc)[0]
    # the audit view agrees: one entry per leg, seq = number of entries
    au = Api(daemon, make_key("audit"))
    for acc in (a, b):
        body = _ok(au.get(f"/v1/accounts/{acc}/entries", params={"limit": 1000}), 200)
        es = body["data"]
        assert len(es) == len(results) + 1, (acc, len(es))
        assert [e["seq"] for e in es] == list(range(1, len(es) + 1)), acc
        assert es[-1]["balance_after"] == api.bal(acc)[0]
    assert_books_balance(api)


def test_concurrent_same_client_id_identical_params(daemon, api):
    """12 racers, one client id, identical parameters, 12 idempotency keys:
    one 201, eleven 200 with the same object, money moved once."""
    a = api.funded(1000)
    b = api.account("USD")
    tid = _cid("race")
    results = []
    lock = threading.Lock()

    def worker(i):
        me = _SafeApi(daemon, api.key, requests.Session())
        r = me.transfer(a, b, 10, id=tid, description="race")
        with lock:
            results.append((r.status_code, r.content))

    _run_threads(12, worker)
    codes = sorted(s for s, _ in results)
    assert codes.count(201) == 1 and codes.count(200) == 11, \
        f"codes {codes}: {[c[:200] for s, c in results if s not in (200, 201)][:3]}"
    objs = [json.loads(c) for _, c in results]
    assert all(o == objs[0] for o in objs), objs
    check_transfer(objs[0], a, b, 10, "USD", tid=tid, description="race")
    assert api.bal(a)[0] == 990 and api.bal(b)[0] == 10
    assert api.bal(a)[3] == 3 and api.bal(b)[3] == 2


def test_concurrent_same_client_id_different_params(daemon, api):
    """12 racers, one client id, 12 amounts: one wins (201), the others 409
    transfer_exists; only the winner's amount moved."""
    a = api.funded(1000)
    b = api.account("USD")
    tid = _cid("race")
    results = []
    lock = threading.Lock()

    def worker(i):
        me = _SafeApi(daemon, api.key, requests.Session())
        r = me.transfer(a, b, 1 + i, id=tid)
        with lock:
            results.append((1 + i, r.status_code, r.content))

    _run_threads(12, worker)
    wins = [(amt, c) for amt, s, c in results if s == 201]
    assert len(wins) == 1, [(amt, s, c[:200]) for amt, s, c in results]
    for amt, s, c in results:
        if s != 201:
            assert s == 409 and json.loads(c)["code"] == "transfer_exists", (amt, s, c[:300])
            assert json.loads(c).get("transfer") == tid
    amt = wins[0][0]
    assert api.bal(a)[0] == 1000 - amt and api.bal(b)[0] == amt
    assert _ok(api.get_transfer(tid), 200)["amount"] == amt


def test_concurrent_same_idempotency_key(daemon, api):
    a = api.funded(1000)
    b = api.account("USD")
    k = _ik()
    results = []
    lock = threading.Lock()

    def worker(i):
        me = _SafeApi(daemon, api.key, requests.Session())
        r = me.transfer(a, b, 25, idem=k)
        with lock:
            results.append((r.status_code, r.content, _replayed(r)))

    _run_threads(10, worker)
    done = [(s, c, rep) for s, c, rep in results if s != 409]
    for s, c, _ in results:
        if s == 409:
            assert json.loads(c)["code"] == "idempotency_key_in_use", c
    assert done and all(s == 201 and c == done[0][1] for s, c, _ in done), [(s, c[:200]) for s, c, _ in done]
    assert sum(1 for *_, rep in done if not rep) <= 1
    assert api.bal(a)[0] == 975 and api.bal(b)[0] == 25


@pytest.mark.parametrize("shape", ["single", "disjoint", "repeating"])
def test_concurrent_batches_over_shared_accounts(daemon, api, shape):
    """8 threads post batches over 4 shared accounts in random orders:
    single: batches of one transfer; disjoint: two transfers over four
    distinct accounts; repeating: 2-6 transfers, accounts repeated in both
    directions within one batch. No deadlock or 5xx, money conserved, every
    account's seq gapless and balance_after running."""
    start = 100_000
    accs = [api.funded(start) for _ in range(4)]
    results = []
    lock = threading.Lock()

    def worker(i):
        rng = random.Random(1000 + i)
        me = _SafeApi(daemon, api.key, requests.Session())
        for _ in range(8):
            items = []
            if shape == "single":
                f, t = rng.sample(accs, 2)
                items.append({"from": f, "to": t, "amount": rng.randint(1, 50), "currency": "USD"})
            elif shape == "disjoint":
                p = rng.sample(accs, 4)
                items.append({"from": p[0], "to": p[1], "amount": rng.randint(1, 50), "currency": "USD"})
                items.append({"from": p[2], "to": p[3], "amount": rng.randint(1, 50), "currency": "USD"})
            else:
                for _ in range(rng.randint(2, 6)):
                    f, t = rng.sample(accs, 2)
                    items.append({"from": f, "to": t, "amount": rng.randint(1, 50), "currency": "USD"})
            r = me.batch(items)
            with lock:
                results.append((r.status_code, r.content))

    _run_threads(8, worker)
    bad = [(s, c[:300]) for s, c in results if s != 201]
    # first: whatever failed wrote nothing (the 201s alone explain every
    # account), then: nothing failed
    transfers = [t for s, c in results if s == 201 for t in json.loads(c)["transfers"]]
    total = 0
    for acc in accs:
        legs = sorted((leg(t, acc) for t in transfers if acc in (t["from"], t["to"])), key=lambda e: e["seq"])
        assert [e["seq"] for e in legs] == list(range(2, len(legs) + 2)), f"{acc}: seqs not gapless"
        run = start
        for e in legs:
            run += e["amount"]
            assert e["balance_after"] == run, (acc, e, run)
        posted, _, _, version = api.bal(acc)
        assert posted == run, f"{acc}: posted {posted} != {run} from the successful batches (partial write?)"
        assert version == 2 + len(legs), (acc, version, len(legs))
        total += posted
    assert total == 4 * start
    assert_books_balance(api)
    assert not bad, f"{len(bad)} of {len(results)} batches failed ({sorted(set(s for s, _ in bad))}), " \
                    f"e.g. {bad[:3]}"


def test_business_failures_are_saved_and_replayed(api):
    """Every executed answer is saved by the gate (docs/api.md §2), not only 201
    and 402: a retry replays it even when the world changed meanwhile."""
    a = api.funded(100)
    missing = "later-" + uuid.uuid4().hex[:8]

    k = _ik()
    r = api.transfer(a, missing, 10, idem=k)
    assert_problem(r, 404, "account_not_found")
    api.account("USD", id=missing)
    r2 = api.transfer(a, missing, 10, idem=k)
    assert r2.status_code == 404 and r2.content == r.content and _replayed(r2), _show(r2)

    api.freeze(a)
    k = _ik()
    r = api.debit(a, 1, idem=k)
    assert_problem(r, 409, "account_frozen")
    api.freeze(a, False)
    r2 = api.debit(a, 1, idem=k)
    assert r2.status_code == 409 and r2.content == r.content and _replayed(r2), _show(r2)

    tid = _cid()
    _ok(api.transfer(a, missing, 5, id=tid))
    k = _ik()
    r = api.transfer(a, missing, 6, id=tid, idem=k)
    assert_problem(r, 409, "transfer_exists")
    r2 = api.transfer(a, missing, 6, id=tid, idem=k)
    assert r2.status_code == 409 and r2.content == r.content and _replayed(r2), _show(r2)

    k = _ik()
    r = api.transfer(a, missing, 5, id=tid, idem=k)
    _ok(r, 200)
    assert r.headers.get("Idempotency-Expires"), r.headers
    r2 = api.transfer(a, missing, 5, id=tid, idem=k)
    assert r2.status_code == 200 and r2.content == r.content and _replayed(r2), _show(r2)

    assert api.bal(a)[0] == 95 and api.bal(missing)[0] == 5


def test_concurrent_credits_to_one_account(daemon, api):
    """No guard on credits, but seq and balance_after still serialize; the
    @world side takes no lock, so nothing fails."""
    acc = api.account("USD")
    results = []
    lock = threading.Lock()

    def worker(i):
        me = _SafeApi(daemon, api.key, requests.Session())
        for j in range(10):
            r = me.credit(acc, 1 + i)
            with lock:
                results.append((1 + i, r.status_code, r.content))

    _run_threads(16, worker)
    bad = [(s, c[:300]) for _, s, c in results if s != 201]
    assert not bad, bad[:5]
    total = sum(amt for amt, _, _ in results)
    legs = sorted((leg(json.loads(c), acc) for *_, c in results), key=lambda e: e["seq"])
    assert [e["seq"] for e in legs] == list(range(1, 161))
    run = 0
    for e in legs:
        run += e["amount"]
        assert e["balance_after"] == run, e
    assert api.bal(acc) == (total, 0, total, 161)
    assert_books_balance(api)


def test_concurrent_credits_respect_overflow(daemon, api):
    """16 racers each credit MAX // 4: exactly four fit, the rest are 422
    amount_overflow, the balance never wraps."""
    acc = api.account("USD")
    q = MAX // 4
    results = []
    lock = threading.Lock()

    def worker(i):
        me = _SafeApi(daemon, api.key, requests.Session())
        r = me.credit(acc, q)
        with lock:
            results.append((r.status_code, r.content))

    _run_threads(16, worker)
    codes = sorted(s for s, _ in results)
    assert codes.count(201) == 4 and codes.count(422) == 12, [(s, c[:200]) for s, c in results]
    for s, c in results:
        if s == 422:
            assert json.loads(c)["code"] == "amount_overflow", c
    assert api.bal(acc)[0] == 4 * q


def test_concurrent_debits_while_freezing(daemon, api):
    """Debits racing with freeze/unfreeze: each is 201 or 409 account_frozen,
    the books agree with the 201s."""
    acc = api.funded(10_000)
    results = []
    lock = threading.Lock()
    stop = threading.Event()

    def debiter(i):
        me = _SafeApi(daemon, api.key, requests.Session())
        for _ in range(15):
            r = me.debit(acc, 3)
            with lock:
                results.append((r.status_code, r.content))

    def toggler():
        me = _SafeApi(daemon, api.key, requests.Session())
        n = 0
        while not stop.is_set() and n < 40:
            r = me.post(f"/v1/accounts/{acc}/{'freeze' if n % 2 == 0 else 'unfreeze'}")
            with lock:
                results.append(("toggle", r.status_code))
            n += 1

    tog = threading.Thread(target=toggler, daemon=True)
    tog.start()
    try:
        _run_threads(6, debiter)
    finally:
        stop.set()
        tog.join(60)
    toggles = [s for k, s in results if k == "toggle"]
    assert all(s == 200 for s in toggles), toggles
    debits = [(s, c) for s, c in results if s != "toggle"]
    bad = [(s, c[:300]) for s, c in debits if s not in (201, 409)]
    assert not bad, bad[:5]
    for s, c in debits:
        if s == 409:
            assert json.loads(c)["code"] == "account_frozen", c
    wins = [json.loads(c) for s, c in debits if s == 201]
    legs = sorted((leg(t, acc) for t in wins), key=lambda e: e["seq"])
    assert [e["seq"] for e in legs] == list(range(2, len(legs) + 2))
    assert api.bal(acc)[0] == 10_000 - 3 * len(wins)
    # the version counts every debit and every toggle
    assert api.bal(acc)[3] == 2 + len(wins) + len(toggles)
    # whatever state the toggler left, unfreezing makes it debitable again
    if api.acct(acc)["status"] == "frozen":
        api.freeze(acc, False)
    _ok(api.debit(acc, 1))


def test_concurrent_batches_and_debits_share_the_guard(daemon, api):
    """Batches of two debits and single debits on one account funded with
    1000 (no overdraft): successes never spend more than 1000, and the books
    equal the successes."""
    acc = api.funded(1000)
    sink = api.account("USD")
    results = []
    lock = threading.Lock()

    def worker(i):
        me = _SafeApi(daemon, api.key, requests.Session())
        for j in range(12):
            if i % 2 == 0:
                r = me.batch([{"from": acc, "to": sink, "amount": 9, "currency": "USD"},
                              {"from": acc, "to": "@world:USD", "amount": 4, "currency": "USD"}])
                spent = 13
            else:
                r = me.debit(acc, 11)
                spent = 11
            with lock:
                results.append((spent, r.status_code, r.content))

    _run_threads(8, worker)
    bad = [(s, c[:300]) for _, s, c in results if s not in (201, 402)]
    assert not bad, bad[:5]
    for _, s, c in results:
        if s == 402:
            p = json.loads(c)
            assert p["code"] == "insufficient_funds" and p.get("account") == acc, p
    spent = sum(x for x, s, _ in results if s == 201)
    assert spent <= 1000
    assert api.bal(acc)[0] == 1000 - spent
    assert api.bal(sink)[0] == 9 * sum(1 for x, s, _ in results if s == 201 and x == 13)
    assert_books_balance(api)
    # at the end less than the cheapest operation can be left
    assert 1000 - spent < 13 or all(s == 201 for x, s, _ in results if x == 13), (spent, len(results))
    assert 1000 - spent < 11 or all(s == 201 for x, s, _ in results if x == 11), (spent, len(results))


@pytest.mark.controls_daemon
def test_guard_and_seqs_across_two_daemons(daemon_factory, cli):
    """Two instances (4 worker threads each) on one database: debits and
    opposite transfers spread over both keep the guard exact, seqs gapless
    and the books balanced."""
    d1 = daemon_factory(threads=4)
    d2 = daemon_factory(threads=4)
    tenant = cli.tenant_create()
    key = cli.key_create(tenant, "read,write,audit")
    api = Api(d1, key)
    acc = api.account("USD", overdraft_limit=50)
    _ok(api.credit(acc, 500))
    a = api.funded(100_000)
    b = api.funded(100_000)
    results = []
    lock = threading.Lock()

    def worker(i):
        me = _SafeApi(d1 if i % 2 == 0 else d2, key, requests.Session())
        for j in range(20):
            r = me.debit(acc, 7)
            frm, to = (a, b) if (i + j) % 2 == 0 else (b, a)
            r2 = me.transfer(frm, to, 1 + j)
            with lock:
                results.append(("debit", r.status_code, r.content))
                results.append(("transfer", r2.status_code, r2.content))

    _run_threads(16, worker)
    bad = [(k, s, c[:300]) for k, s, c in results
           if not (s == 201 or (k == "debit" and s == 402))]
    assert not bad, f"{len(bad)} unexpected answers, e.g. {bad[:3]}"
    wins = [json.loads(c) for k, s, c in results if k == "debit" and s == 201]
    assert len(wins) == 550 // 7, f"{len(wins)} debits of 7 succeeded, expected {550 // 7}"
    assert Api(d2, key).bal(acc)[0] == 500 - 7 * len(wins)
    legs = sorted((leg(t, acc) for t in wins), key=lambda e: e["seq"])
    assert [e["seq"] for e in legs] == list(range(2, len(legs) + 2))
    moves = [json.loads(c) for k, s, c in results if k == "transfer"]
    for acc2 in (a, b):
        ls = sorted((leg(t, acc2) for t in moves), key=lambda e: e["seq"])
        assert [e["seq"] for e in ls] == list(range(2, len(ls) + 2)), acc2
        assert ls[-1]["balance_after"] == api.bal(acc2)[0]
    assert api.bal(a)[0] + api.bal(b)[0] == 200_000
    assert_books_balance(Api(d2, key))


@pytest.mark.controls_daemon
def test_kill_9_mid_transfers_then_retries_move_money_exactly_once(daemon_factory, cli):
    """SIGKILL with transfers, debits and batches in flight (the second,
    deferred round trip of a transfer included), restart, retry every key:
    each gets its 201 (a byte-identical replay if it had one), and the books
    hold exactly one execution of each: balances, gapless seqs, verify ok."""
    n, nthreads = 160, 12
    d1 = daemon_factory()
    tenant = cli.tenant_create()
    key = cli.key_create(tenant, "read,write,audit")
    api1 = Api(d1, key)
    a = api1.funded(1_000_000)
    b = api1.account("USD")
    keys = [_ik() for _ in range(n)]
    reqs = []
    for i in range(n):
        amt = 1 + (i * 7) % 50
        if i % 4 == 3:
            reqs.append(("/v1/accounts/%s/debits" % a, {"amount": amt}, amt, 0))
        elif i % 4 == 2:
            reqs.append(("/v1/transfers/batch", {"transfers": [
                {"from": a, "to": b, "amount": amt, "currency": "USD"},
                {"from": a, "to": b, "amount": 1, "currency": "USD"}]}, amt + 1, amt + 1))
        else:
            reqs.append(("/v1/transfers", {"from": a, "to": b, "amount": amt, "currency": "USD"}, amt, amt))
    first = [None] * n
    work = queue.Queue()
    for i in range(n):
        work.put(i)
    done = [0]
    lock = threading.Lock()

    def client(d, out, retry_until=None):
        me = Api(d, key, requests.Session())
        while True:
            try:
                i = work.get_nowait()
            except queue.Empty:
                return
            path, body, _, _ = reqs[i]
            while True:
                try:
                    r = me.post(path, body, idem=keys[i], timeout=10)
                    res = ("resp", r.status_code, r.content, _replayed(r))
                except requests.RequestException as e:
                    res = ("error", repr(e)[:200])
                if retry_until is None or time.monotonic() >= retry_until:
                    break
                if res[0] == "resp" and (res[1] < 500 and not (res[1] == 409 and b"idempotency_key_in_use" in res[2])):
                    break
                time.sleep(0.2)
            out[i] = res
            with lock:
                done[0] += 1

    threads = [threading.Thread(target=client, args=(d1, first), daemon=True) for _ in range(nthreads)]
    for t in threads:
        t.start()
    assert poll(lambda: done[0] >= 25, 30, interval=0.002), f"only {done[0]} requests done in 30 s"
    d1.proc.kill()
    d1.proc.wait()
    for t in threads:
        t.join(timeout=60)
    assert all(f is not None for f in first)
    for i in range(n):
        if first[i][0] == "resp":
            assert first[i][1] == 201 or first[i][1] >= 500, f"request {i} before the kill: {first[i][:3]}"
    assert any(f[0] == "error" for f in first), "every request finished before the kill: nothing was in flight"

    d2 = daemon_factory()
    final = [None] * n
    work = queue.Queue()
    for i in range(n):
        work.put(i)
    until = time.monotonic() + 60
    threads = [threading.Thread(target=client, args=(d2, final, until), daemon=True) for _ in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    wrong = [(i, f[:2] if f and f[0] == "error" else (f[1], f[2][:200]) if f else None)
             for i, f in enumerate(final) if not (f and f[0] == "resp" and f[1] == 201)]
    assert not wrong, f"{len(wrong)} retries without a 201: {wrong[:5]}"
    for i in range(n):
        if first[i][0] == "resp" and first[i][1] == 201:
            assert final[i][3] and final[i][2] == first[i][2], \
                f"request {i}: 201 before the kill, retry not a byte-identical replay"

    api2 = Api(d2, key)
    out_a = sum(r[2] for r in reqs)
    in_b = sum(r[3] for r in reqs)
    assert api2.bal(a)[0] == 1_000_000 - out_a, "money moved a wrong number of times"
    assert api2.bal(b)[0] == in_b
    ids = []
    for f in final:
        body = json.loads(f[2])
        ids += [t["id"] for t in body["transfers"]] if "transfers" in body else [body["id"]]
    assert len(set(ids)) == len(ids)
    for tid in ids[:: max(1, len(ids) // 20)]:
        assert api2.get_transfer(tid).status_code == 200
    for acc in (a, b):
        es = _ok(api2.get(f"/v1/accounts/{acc}/entries", params={"limit": 1000}), 200)["data"]
        assert [e["seq"] for e in es] == list(range(1, len(es) + 1)), acc
        assert es[-1]["balance_after"] == api2.bal(acc)[0]
        v = _ok(api2.get(f"/v1/accounts/{acc}/verify"), 200)
        assert v.get("ok") is True and v.get("balance_matches") is True, v
    assert len(_ok(api2.get(f"/v1/accounts/{a}/entries", params={"limit": 1000}), 200)["data"]) == 1 + len(ids)
    assert_books_balance(api2)


# ---------------------------------------------------------------------------
# entries (audit, §7) agree with the transfers


def _check_chain(api, au, acc, transfers):
    """acc's entries (audit) are exactly its legs of these transfers, in
    order, with a hash chain an auditor can recompute (docs/ledger.md)."""
    r = au.get(f"/v1/accounts/{acc}/entries", params={"limit": 1000})
    body = _ok(r, 200)
    es = body["data"]
    assert body.get("next_cursor") is None, body
    mine = [leg(t, acc) | {"transfer_id": t["id"]} for t in transfers
            if any(e["account"] == acc for e in t["entries"])]
    assert len(es) == len(mine), (len(es), len(mine))
    prev = bytes(32)
    last_at = ""
    for e, m in zip(es, mine):
        assert set(e) == {"account", "seq", "transfer_id", "amount", "balance_after", "posted_at", "hash",
                          "prev_hash"}, e
        assert (e["account"], e["seq"], e["transfer_id"], e["amount"], e["balance_after"]) == \
               (acc, m["seq"], m["transfer_id"], m["amount"], m["balance_after"]), (e, m)
        assert TS_RE.fullmatch(e["posted_at"]), e
        assert e["posted_at"] > last_at, f"posted_at not increasing with seq: {e}"
        last_at = e["posted_at"]
        assert e["prev_hash"] == prev.hex(), e
        c = json.dumps({k: e[k] for k in ("account", "amount", "balance_after", "posted_at", "seq", "transfer_id")},
                       separators=(",", ":"), sort_keys=True).encode()
        h = hashlib.sha256(prev + c).hexdigest()
        assert h == e["hash"], e
        prev = bytes.fromhex(h)
    assert [e["seq"] for e in es] == list(range(1, len(es) + 1))
    assert (es[-1]["balance_after"] if es else 0) == api.bal(acc)[0]
    v = _ok(au.get(f"/v1/accounts/{acc}/verify"), 200)
    assert v.get("ok") is True and v.get("balance_matches") is True and v.get("entries") == len(es), v
    assert v.get("head") == (es[-1]["hash"] if es else "0" * 64), v
    return es


def test_entries_match_transfers(daemon, api, make_key):
    a = api.account("USD", overdraft_limit=10)
    b = api.account("USD")
    ts = [_ok(api.credit(a, 100)), _ok(api.transfer(a, b, 30)), _ok(api.debit(a, 75)),
          _ok(api.transfer(b, a, 5)), _ok(api.transfer("@world:USD", b, 2))]
    au = Api(daemon, make_key("audit"))
    es = _check_chain(api, au, a, ts)
    assert [e["seq"] for e in es] == [1, 2, 3, 4]
    assert es[-1]["balance_after"] == 100 - 30 - 75 + 5
    _check_chain(api, au, b, ts)


def test_entries_of_a_batch_chain_like_single_transfers(daemon, api, make_key):
    """A batch touching the same accounts several times writes its entries
    chained in memory (docs/ledger.md): the audit view must be identical in
    kind to that of single transfers."""
    a = api.account("USD")
    b = api.account("USD")
    c = api.account("USD")
    ts = [_ok(api.credit(a, 101))]
    body = _ok(api.batch([
        {"from": a, "to": b, "amount": 10, "currency": "USD"},
        {"from": b, "to": a, "amount": 3, "currency": "USD"},
        {"from": a, "to": c, "amount": 20, "currency": "USD"},
        {"from": c, "to": b, "amount": 5, "currency": "USD"},
        {"from": a, "to": "@world:USD", "amount": 1, "currency": "USD"},
        {"from": "@world:USD", "to": c, "amount": 7, "currency": "USD"},
    ]))
    ts += body["transfers"]
    ts.append(_ok(api.transfer(b, a, 1)))
    ts += _ok(api.batch([{"from": a, "to": b, "amount": 2, "currency": "USD"}] * 3))["transfers"]
    au = Api(daemon, make_key("audit"))
    for acc in (a, b, c):
        _check_chain(api, au, acc, ts)
    assert api.bal(a)[0] == 101 - 10 + 3 - 20 - 1 + 1 - 6
    assert_books_balance(api)
