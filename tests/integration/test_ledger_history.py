"""Ledger history for auditors (docs/api.md §7; docs/ledger.md "The hash chain" and
"Choices where the contract is silent"): entries (seq, order, pagination,
from/to ranges), the hash chain recomputed in Python exactly as documented,
balance at a time, statements, per-account verification (and tampering with
an entry row as a superuser, the append-only trigger), the currency-wide
audit, bad input, tenants and scopes.

History routes use an `audit` key; money moves with a `read,write` key
(credits, debits, transfers, a captured hold)."""

import base64
import calendar
import hashlib
import json
import os
import re
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from oltest import assert_problem

CUR = "USD"
ENTRY_KEYS = {"account", "seq", "transfer_id", "amount", "balance_after", "posted_at", "hash", "prev_hash"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")
ZERO_HASH = "0" * 64

# The history every test builds on account A (see _history): amounts as seen by A.
A_AMOUNTS = [1000, -200, -150, 50, 25, -60, -15, 40]
A_BALANCES = [1000, 800, 650, 700, 725, 665, 650, 690]
B_AMOUNTS = [150, -50, 60, -40]
B_BALANCES = [150, 100, 160, 120]

# ---------------------------------------------------------------------------
# helpers


def _ik():
    return uuid.uuid4().hex


def _hex():
    return secrets.token_hex(6)


def _post(d, path, key, body=None):
    h = {"Idempotency-Key": _ik()}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    return d.post(path, key=key, data=data, headers=h)


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
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _us(ts):
    """RFC 3339 UTC with microseconds (docs/api.md §1) -> integer microseconds since the epoch."""
    assert isinstance(ts, str), f"timestamp is not a string: {ts!r}"
    m = _TS.match(ts)
    assert m, f"not an RFC 3339 UTC timestamp with microseconds: {ts!r}"
    secs = calendar.timegm(tuple(int(m.group(i)) for i in range(1, 7)))
    return secs * 1_000_000 + int(m.group(7))


def _ts(us, offset_minutes=None):
    """Microseconds since the epoch -> RFC 3339 (UTC 'Z', or the given offset)."""
    dt = _EPOCH + timedelta(microseconds=us)
    if offset_minutes is None:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.astimezone(timezone(timedelta(minutes=offset_minutes))).isoformat(timespec="microseconds")


def _account(d, key, currency=CUR):
    acc = "acc-" + _hex()
    _expect(_post(d, "/v1/accounts", key, {"id": acc, "currency": currency}), 201)
    return acc


def _credit(d, key, acc, amount):
    return _expect(_post(d, f"/v1/accounts/{acc}/credits", key, {"amount": amount}), 201)


def _debit(d, key, acc, amount):
    return _expect(_post(d, f"/v1/accounts/{acc}/debits", key, {"amount": amount}), 201)


def _transfer(d, key, frm, to, amount, currency=CUR):
    return _expect(_post(d, "/v1/transfers", key,
                         {"from": frm, "to": to, "amount": amount, "currency": currency}), 201)


def _posted(d, wkey, acc):
    return _expect(d.get(f"/v1/accounts/{acc}", key=wkey), 200)["balance"]["posted"]


def _history(d, wkey):
    """Accounts A and B (USD) with 8 entries on A and 4 on B.
    Returns (A, B, [(transfer_id, amount on A, transfer response or None)])."""
    a, b = _account(d, wkey), _account(d, wkey)
    ops = []

    def rec(t, amt):
        ops.append((t["id"], amt, t))

    rec(_credit(d, wkey, a, 1000), 1000)
    rec(_debit(d, wkey, a, 200), -200)
    rec(_transfer(d, wkey, a, b, 150), -150)
    rec(_transfer(d, wkey, b, a, 50), 50)
    rec(_credit(d, wkey, a, 25), 25)
    # a hold writes no entry; its capture of 60 does
    h = _expect(_post(d, "/v1/holds", wkey, {"from": a, "to": b, "amount": 100, "currency": CUR}), 201)
    c = _expect(_post(d, f"/v1/holds/{h['id']}/capture", wkey, {"amount": 60}), 200)
    ops.append((c["transfer_id"], -60, None))
    rec(_debit(d, wkey, a, 15), -15)
    rec(_transfer(d, wkey, b, a, 40), 40)
    assert [o[1] for o in ops] == A_AMOUNTS
    return a, b, ops


def _aget(d, akey, path, params=None):
    return d.get(path, key=akey, params=params or {})


def _page(d, akey, acc, params=None):
    body = _expect(_aget(d, akey, f"/v1/accounts/{acc}/entries", params), 200)
    assert set(body) >= {"data", "next_cursor"}, body
    assert isinstance(body["data"], list), body
    return body


def _all_entries(d, akey, acc, params=None, limit=None):
    """Every entry, following next_cursor; asserts each page is at most limit."""
    params = dict(params or {})
    if limit is not None:
        params["limit"] = limit
    out, pages = [], []
    for _ in range(1000):
        body = _page(d, akey, acc, params)
        if limit is not None:
            assert len(body["data"]) <= limit, body
        out += body["data"]
        pages.append(len(body["data"]))
        if body["next_cursor"] is None:
            return out, pages
        assert isinstance(body["next_cursor"], str) and body["next_cursor"], body
        params["cursor"] = body["next_cursor"]
    raise AssertionError("more than 1000 pages")


def _asc(d, akey, acc):
    es = _page(d, akey, acc, {"order": "asc", "limit": 1000})["data"]
    return es


def _seqs(es):
    return [e["seq"] for e in es]


def _chain(entries):
    """docs/ledger.md, "The hash chain": recompute every hash (SHA-256); returns the list."""
    prev = bytes(32)
    out = []
    for e in entries:
        c = json.dumps({k: e[k] for k in ("account", "amount", "balance_after", "posted_at", "seq", "transfer_id")},
                       separators=(",", ":"), sort_keys=True).encode()
        h = hashlib.sha256(prev + c).hexdigest()
        out.append(h)
        prev = bytes.fromhex(h)
    return out


# An entry row of ledger.entries (sql/012_ledger.sql): the account's aid and the seq.
_ENTRY_WHERE = "account = (SELECT aid FROM ledger.accounts WHERE tenant = %s AND id = %s) AND seq = %s"


def _tamper(database_url, tenant, acc, seq, field, delta):
    """As a superuser with the append-only trigger disabled for this session
    (session_replication_role = replica), add delta to a column of an entry
    row."""
    import psycopg2
    assert field in ("amount", "balance_after"), field
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute("SET session_replication_role = replica")
        cur.execute(f"UPDATE ledger.entries SET {field} = {field} + %s WHERE " + _ENTRY_WHERE, (delta, tenant, acc, seq))
        assert cur.rowcount == 1, f"entry row {(tenant, acc, seq)} not found"
        cur.execute("SET session_replication_role = DEFAULT")
    finally:
        conn.close()


@pytest.fixture
def wkey(make_key):
    return make_key("read,write")


@pytest.fixture
def akey(make_key):
    return make_key("audit")


# ---------------------------------------------------------------------------
# 1. entries


def test_entries_are_gapless_with_all_fields(daemon, wkey, akey):
    d = daemon
    a, b, ops = _history(d, wkey)
    body = _page(d, akey, a, {"order": "asc"})
    es = body["data"]
    assert body["next_cursor"] is None, body
    assert _seqs(es) == list(range(1, 9)), es
    for i, e in enumerate(es):
        assert set(e) >= ENTRY_KEYS, f"entry lacks {ENTRY_KEYS - set(e)}: {e}"
        assert e["account"] == a, e
        assert type(e["seq"]) is int and type(e["amount"]) is int and type(e["balance_after"]) is int, e
        assert e["transfer_id"] == ops[i][0], (i, e, ops[i][0])
        assert e["amount"] == A_AMOUNTS[i] and e["balance_after"] == A_BALANCES[i], (i, e)
        assert HEX64.match(e["hash"]) and HEX64.match(e["prev_hash"]), e
        _us(e["posted_at"])
        t = ops[i][2]
        if t is not None:       # the transfer's own entry for A agrees
            leg = [x for x in t["entries"] if x["account"] == a]
            assert len(leg) == 1, t
            assert leg[0]["seq"] == e["seq"] and leg[0]["amount"] == e["amount"] \
                and leg[0]["balance_after"] == e["balance_after"], (leg, e)
    times = [_us(e["posted_at"]) for e in es]
    assert all(x < y for x, y in zip(times, times[1:])), \
        f"docs/ledger.md: posted_at strictly increases with seq: {[e['posted_at'] for e in es]}"
    assert es[-1]["balance_after"] == _posted(d, wkey, a)

    desc = _page(d, akey, a, {"order": "desc"})["data"]
    assert desc == list(reversed(es))
    # the default order is not written down: it must be one of the two
    dflt = _page(d, akey, a)["data"]
    assert dflt in (es, desc), _seqs(dflt)
    assert _page(d, akey, a, {"limit": 1000, "order": "asc"})["data"] == es

    eb = _asc(d, akey, b)
    assert _seqs(eb) == [1, 2, 3, 4]
    assert [e["amount"] for e in eb] == B_AMOUNTS and [e["balance_after"] for e in eb] == B_BALANCES, eb
    assert all(e["account"] == b for e in eb)


def test_entries_pagination(daemon, wkey, akey):
    d = daemon
    a, _, _ = _history(d, wkey)
    es = _asc(d, akey, a)
    for order, want in (("asc", es), ("desc", list(reversed(es)))):
        got, pages = _all_entries(d, akey, a, {"order": order}, limit=3)
        assert pages == [3, 3, 2], f"order={order}: pages {pages}"
        assert got == want, f"order={order}: {_seqs(got)}"
        got, pages = _all_entries(d, akey, a, {"order": order}, limit=1)
        assert _seqs(got) == _seqs(want), f"order={order} limit=1: {_seqs(got)}"
        assert len(set(_seqs(got))) == 8
    # pagination inside a range: seq 3..7, limit 2
    params = {"from": es[2]["posted_at"], "to": es[7]["posted_at"], "order": "asc"}
    got, pages = _all_entries(d, akey, a, params, limit=2)
    assert _seqs(got) == [3, 4, 5, 6, 7] and pages == [2, 2, 1], (pages, _seqs(got))
    params["order"] = "desc"
    got, pages = _all_entries(d, akey, a, params, limit=2)
    assert _seqs(got) == [7, 6, 5, 4, 3] and pages == [2, 2, 1], (pages, _seqs(got))


def test_entries_time_ranges(daemon, wkey, akey):
    d = daemon
    a, _, _ = _history(d, wkey)
    es = _asc(d, akey, a)
    t = [e["posted_at"] for e in es]
    u = [_us(x) for x in t]

    def seqs(**p):
        p = {("from" if k == "frm" else k): v for k, v in p.items()}
        p.setdefault("order", "asc")
        got, _ = _all_entries(d, akey, a, p)
        return _seqs(got)

    assert seqs(frm=t[2], to=t[5]) == [3, 4, 5]            # from inclusive, to exclusive
    assert seqs(frm=t[2]) == [3, 4, 5, 6, 7, 8]
    assert seqs(to=t[2]) == [1, 2]
    assert seqs(frm=t[2], to=t[2]) == []
    assert seqs(frm=t[0], to=t[7]) == [1, 2, 3, 4, 5, 6, 7]
    assert seqs(frm=_ts(u[2] + 1), to=_ts(u[5] + 1)) == [4, 5, 6]
    assert seqs(frm=_ts(u[2] - 1), to=_ts(u[5] - 1)) == [3, 4, 5]
    assert seqs(frm=t[7]) == [8]
    assert seqs(frm=_ts(u[7] + 1)) == []
    assert seqs(to=t[0]) == []
    r = _aget(d, akey, f"/v1/accounts/{a}/entries", {"from": t[5], "to": t[2]})
    if r.status_code != 400:                               # inverted range: empty, or a 400
        assert _expect(r, 200)["data"] == [], _desc(r)
    assert seqs(frm=t[2], to=t[5], order="desc") == [5, 4, 3]
    # any offset (docs/ledger.md): the same instants written in +02:00 and -05:30
    assert seqs(frm=_ts(u[2], 120), to=_ts(u[5], -330)) == [3, 4, 5]
    assert seqs(frm="2000-01-01T00:00:00Z", to="2999-01-01T00:00:00Z") == list(range(1, 9))


# ---------------------------------------------------------------------------
# 2. the hash chain


def test_hash_chain_recomputes(daemon, wkey, akey):
    d = daemon
    a, b, _ = _history(d, wkey)
    for acc, n in ((a, 8), (b, 4)):
        es = _asc(d, akey, acc)
        assert _seqs(es) == list(range(1, n + 1))
        want = _chain(es)
        assert es[0]["prev_hash"] == ZERO_HASH, es[0]
        for i, e in enumerate(es):
            assert e["hash"] == want[i], \
                f"{acc} seq {e['seq']}: hash {e['hash']} != recomputed {want[i]} (entry {e})"
            if i:
                assert e["prev_hash"] == es[i - 1]["hash"], (es[i - 1], e)
        running = 0
        for e in es:
            running += e["amount"]
            assert e["balance_after"] == running, e


def _one_liner():
    """The auditor's shell check, taken from docs/ledger.md "The hash chain"
    (and the same block of docs/ledger-engine.md: the two must not drift)."""
    blocks = []
    for name in ("ledger.md", "ledger-engine.md"):
        doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", name)).read()
        m = re.search(r"<!-- one-liner -->\n```sh\n(.*?)```", doc, re.S)
        assert m, f"the one-liner is not in docs/{name}"
        blocks.append(m.group(1))
    assert blocks[0] == blocks[1], "docs/ledger.md and docs/ledger-engine.md show different one-liners"
    return blocks[0]


def test_auditor_one_liner_on_the_entries_endpoint(daemon, stack, tenant, wkey, akey):
    """The auditor's shell one-liner (jq, xxd, sha256sum; docs/ledger.md), fed as
    documented with `jq -c '.data[]'` of the entries endpoint's pages (following
    next_cursor), says ok for a real chain and BAD for a tampered entry."""
    import shutil
    import subprocess
    missing = [t for t in ("bash", "jq", "xxd", "sha256sum") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {' '.join(missing)} (scripts/install-deps.sh installs them)")
    d = daemon
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 1000)
    for i in range(6):
        _transfer(d, wkey, a, b, 10 + i)
    _debit(d, wkey, b, 7)

    def lines(acc):
        out, params = "", {"order": "asc", "limit": 3}
        while True:
            r = _aget(d, akey, f"/v1/accounts/{acc}/entries", params)
            body = _expect(r, 200)
            jq = subprocess.run(["jq", "-c", ".data[]"], input=r.text, capture_output=True, text=True, timeout=60)
            assert jq.returncode == 0, jq.stderr
            out += jq.stdout
            if body["next_cursor"] is None:
                return out
            params["cursor"] = body["next_cursor"]

    def check(acc):
        run = subprocess.run(["bash", "-c", _one_liner()], input=lines(acc), capture_output=True, text=True, timeout=60)
        return run.stdout.strip().splitlines()

    assert check(a) == ["ok"], check(a)
    assert check(b) == ["ok"], check(b)
    _tamper(stack.database_url, tenant, a, 4, "amount", 1)
    got = check(a)
    assert got and all(x.startswith("BAD ") for x in got) and '"seq":4,' in got[0], got


# ---------------------------------------------------------------------------
# 3. balance at a time


def test_balance_at(daemon, wkey, akey):
    d = daemon
    a, _, _ = _history(d, wkey)
    es = _asc(d, akey, a)
    path = f"/v1/accounts/{a}/balance"

    def at(when):
        body = _expect(_aget(d, akey, path, {"at": when} if when is not None else None), 200)
        assert set(body) >= {"account", "at", "posted", "seq"}, body
        assert body["account"] == a, body
        return body

    first = _us(es[0]["posted_at"])
    for when in (_ts(first - 1), "2000-01-01T00:00:00Z"):
        body = at(when)
        assert body["posted"] == 0 and body["seq"] == 0, (when, body)
    assert _us(at(_ts(first - 1))["at"]) == first - 1

    running = 0
    for i, e in enumerate(es):
        u = _us(e["posted_at"])
        before = at(_ts(u - 1))
        assert (before["posted"], before["seq"]) == (running, i), (e, before)
        running += e["amount"]
        body = at(e["posted_at"])                       # at an entry's time: it is included
        assert (body["posted"], body["seq"]) == (running, e["seq"]), (e, body)
        assert _us(body["at"]) == u, body
        assert body["posted"] == e["balance_after"]

    now = at(None)                                      # default: now
    assert (now["posted"], now["seq"]) == (A_BALANCES[-1], 8), now
    assert abs(_us(now["at"]) / 1e6 - time.time()) < 60, now
    assert now["posted"] == _posted(d, wkey, a)
    assert (at("2999-01-01T00:00:00Z")["posted"], at("2999-01-01T00:00:00Z")["seq"]) == (A_BALANCES[-1], 8)
    # any offset
    body = at(_ts(_us(es[3]["posted_at"]), 120))
    assert (body["posted"], body["seq"]) == (A_BALANCES[3], 4), body


# ---------------------------------------------------------------------------
# 4. statements


def test_statement(daemon, wkey, akey):
    d = daemon
    a, _, _ = _history(d, wkey)
    es = _asc(d, akey, a)
    t = [e["posted_at"] for e in es]
    path = f"/v1/accounts/{a}/statement"

    def stmt(params, lo, hi):
        """the statement of es[lo:hi], checked against a recomputation"""
        body = _expect(_aget(d, akey, path, params), 200)
        keys = {"account", "currency", "from", "to", "opening_balance", "closing_balance", "debits",
                "credits", "count"}
        assert set(body) >= keys, f"statement lacks {keys - set(body)}: {body}"
        assert body["account"] == a and body["currency"] == CUR, body
        part = es[lo:hi]
        opening = es[lo - 1]["balance_after"] if lo > 0 else 0
        debits = sum(-e["amount"] for e in part if e["amount"] < 0)
        credits = sum(e["amount"] for e in part if e["amount"] > 0)
        closing = part[-1]["balance_after"] if part else opening
        want = {"opening_balance": opening, "closing_balance": closing, "debits": debits,
                "credits": credits, "count": len(part)}
        assert {k: body[k] for k in want} == want, (params, body)
        assert body["opening_balance"] + body["credits"] - body["debits"] == body["closing_balance"], body
        assert body["debits"] >= 0 and body["credits"] >= 0, body
        for k in ("from", "to"):
            if k in params:
                assert _us(body[k]) == _us(params[k]), (k, params, body)
        return body

    whole = stmt({}, 0, 8)                                   # defaults: the whole history
    assert (whole["credits"], whole["debits"], whole["closing_balance"]) == (1115, 425, 690), whole
    stmt({"from": t[2], "to": t[5]}, 2, 5)
    stmt({"from": t[5]}, 5, 8)
    stmt({"to": t[1]}, 0, 1)
    stmt({"from": _ts(_us(t[2]) + 1), "to": _ts(_us(t[6]) + 1)}, 3, 7)
    stmt({"from": "2000-01-01T00:00:00.000000Z", "to": "2999-01-01T00:00:00.000000Z"}, 0, 8)
    # a range without entries (none before the first one, none after the last)
    stmt({"from": "2000-01-01T00:00:00.000000Z", "to": _ts(_us(t[0]) - 1)}, 0, 0)
    stmt({"from": _ts(_us(t[7]) + 1)}, 8, 8)


# ---------------------------------------------------------------------------
# 5. verify, tampering, the append-only trigger


def test_verify_ok(daemon, wkey, akey):
    d = daemon
    a, b, _ = _history(d, wkey)
    for acc, n in ((a, 8), (b, 4)):
        es = _asc(d, akey, acc)
        v = _expect(_aget(d, akey, f"/v1/accounts/{acc}/verify"), 200)
        assert set(v) >= {"account", "ok", "entries", "head", "balance_matches"}, v
        assert v["account"] == acc and v["ok"] is True and v["entries"] == n, v
        assert v["head"] == es[-1]["hash"] and v["balance_matches"] is True, v
        assert v.get("first_bad_seq") is None, v
    empty = _account(d, wkey)
    v = _expect(_aget(d, akey, f"/v1/accounts/{empty}/verify"), 200)
    assert v["ok"] is True and v["entries"] == 0 and v["balance_matches"] is True, v
    # an account without entries has an empty history everywhere
    assert _page(d, akey, empty) == {"data": [], "next_cursor": None}
    bal = _expect(_aget(d, akey, f"/v1/accounts/{empty}/balance"), 200)
    assert (bal["posted"], bal["seq"]) == (0, 0), bal
    st = _expect(_aget(d, akey, f"/v1/accounts/{empty}/statement"), 200)
    assert [st[k] for k in ("opening_balance", "closing_balance", "debits", "credits", "count")] == [0] * 5, st


def test_verify_detects_a_changed_amount(daemon, stack, tenant, wkey, akey):
    d = daemon
    a, b, _ = _history(d, wkey)
    before = _asc(d, akey, a)
    _tamper(stack.database_url, tenant, a, 3, "amount", 1)
    v = _expect(_aget(d, akey, f"/v1/accounts/{a}/verify"), 200)
    assert v["ok"] is False and v.get("first_bad_seq") == 3, v
    # docs/ledger.md: balance_matches = posted equals the sum of the amounts (now off by one)
    assert v["balance_matches"] is False, v
    after = _asc(d, akey, a)
    assert after[2]["amount"] == before[2]["amount"] + 1, "the tampered amount is not what /entries shows"
    # the other account is not affected
    v = _expect(_aget(d, akey, f"/v1/accounts/{b}/verify"), 200)
    assert v["ok"] is True, v


def test_verify_detects_a_changed_balance_after(daemon, stack, tenant, wkey, akey):
    d = daemon
    a, _, _ = _history(d, wkey)
    _tamper(stack.database_url, tenant, a, 8, "balance_after", -5)
    v = _expect(_aget(d, akey, f"/v1/accounts/{a}/verify"), 200)
    assert v["ok"] is False and v.get("first_bad_seq") == 8, v
    # balance_matches is not asserted: the amounts still sum to posted, but
    # whether balance_matches may be true on a broken chain is not written down
    assert isinstance(v["balance_matches"], bool), v


def test_verify_walks_a_long_chain_in_parts(daemon, db, tenant, wkey, akey):
    """/verify walks a chain longer than one statement's part (50,000
    entries, src/ledger/history.c) part by part in one snapshot: the whole
    chain verifies, and an entry tampered in the second part is found with
    its seq; /v1/audit/verify walks it the same way. The entries are written in SQL (ledger.entry_hash, as the money
    functions chain them): 50,001 requests would take too long."""
    d = daemon
    a = _account(d, wkey)
    _credit(d, wkey, a, 1)
    n = 50001
    cur = db.cursor()
    # the chain continued from the credit's entry, 1 µs apart, in one statement
    cur.execute("""
        WITH RECURSIVE acc AS (
            SELECT aid, id, seq, posted, head, last_at FROM ledger.accounts WHERE tenant = %(t)s AND id = %(a)s
        ), chain (seq, bal, at, hash, prev) AS (
            SELECT acc.seq + 1, acc.posted + 1, acc.last_at + interval '1 microsecond',
                   ledger.entry_hash(acc.head, acc.id, 1, acc.posted + 1, acc.last_at + interval '1 microsecond',
                                     acc.seq + 1, 'tr_many'), acc.head
              FROM acc
            UNION ALL
            SELECT c.seq + 1, c.bal + 1, c.at + interval '1 microsecond',
                   ledger.entry_hash(c.hash, acc.id, 1, c.bal + 1, c.at + interval '1 microsecond', c.seq + 1, 'tr_many'),
                   c.hash
              FROM chain c, acc WHERE c.seq < %(n)s
        ), ins AS (
            INSERT INTO ledger.entries (account, seq, transfer_id, amount, balance_after, posted_at, hash, prev_hash)
            SELECT acc.aid, c.seq, 'tr_many', 1, c.bal, c.at, c.hash, c.prev FROM chain c, acc
            RETURNING seq, balance_after, posted_at, hash, prev_hash
        )
        UPDATE ledger.accounts a SET seq = l.seq, posted = l.balance_after, last_at = l.posted_at, head = l.hash,
               prev_head = l.prev_hash, version = a.version + 1
          FROM (SELECT * FROM ins ORDER BY seq DESC LIMIT 1) l
         WHERE a.tenant = %(t)s AND a.id = %(a)s""", {"t": tenant, "a": a, "n": n})
    assert cur.rowcount == 1
    # and the money came from @world, so that the currency still sums to 0
    cur.execute("INSERT INTO ledger.transfers (tenant, id, from_account, to_account, amount, currency, params, created_at)"
                " SELECT %s, 'tr_many', NULL, aid, %s, %s, '{}', now() FROM ledger.accounts WHERE tenant = %s AND id = %s",
                (tenant, n - 1, CUR, tenant, a))
    v = _expect(_aget(d, akey, f"/v1/accounts/{a}/verify"), 200)
    assert v["ok"] is True and v["entries"] == n and v["balance_matches"] is True and v["alg"] == "sha256", v
    last = _page(d, akey, a, {"order": "desc", "limit": 1})["data"][0]
    assert last["seq"] == n and v["head"] == last["hash"], (v, last)
    audit_before = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": CUR}), 200)
    cur.execute("SET session_replication_role = replica")
    cur.execute("UPDATE ledger.entries SET amount = 2 WHERE " + _ENTRY_WHERE, (tenant, a, 50001))
    cur.execute("SET session_replication_role = DEFAULT")
    v = _expect(_aget(d, akey, f"/v1/accounts/{a}/verify"), 200)
    assert v["ok"] is False and v["first_bad_seq"] == 50001 and v["entries"] == n, v
    # the audit's page walks such a chain the same way (in parts, in the page's snapshot)
    assert audit_before["ok"] is True and audit_before["sum"] == 0 and audit_before["accounts"] == 1, audit_before
    v = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": CUR}), 200)
    assert v["ok"] is False and v["failed_accounts"] == [a] and v["accounts"] == 1, v


def test_entry_rows_are_append_only(daemon, db, tenant, wkey, akey):
    import psycopg2
    d = daemon
    a, _, ops = _history(d, wkey)
    key = (tenant, a, 2)
    cur = db.cursor()
    cur.execute("SELECT e::text FROM ledger.entries e WHERE " + _ENTRY_WHERE, key)
    rows = cur.fetchall()
    assert len(rows) == 1, f"no entry row {key}"
    original = rows[0][0]
    with pytest.raises(psycopg2.Error) as ei:
        cur.execute("UPDATE ledger.entries SET amount = amount + 1 WHERE " + _ENTRY_WHERE, key)
    assert "append-only" in str(ei.value), str(ei.value)
    with pytest.raises(psycopg2.Error):
        cur.execute("DELETE FROM ledger.entries WHERE " + _ENTRY_WHERE, key)
    # the @world leg of a credit is its transfer row, with a NULL side
    # (docs/ledger-engine.md: @world has no account row and no entries)
    cur.execute("SELECT from_account IS NULL, to_account IS NOT NULL FROM ledger.transfers WHERE tenant = %s AND id = %s",
                (tenant, ops[0][0]))
    assert cur.fetchall() == [(True, True)], f"the credit {ops[0][0]} is not a transfer from @world"
    cur.execute("SELECT e::text FROM ledger.entries e WHERE " + _ENTRY_WHERE, key)
    assert cur.fetchall() == [(original,)]
    v = _expect(_aget(d, akey, f"/v1/accounts/{a}/verify"), 200)
    assert v["ok"] is True and v["entries"] == 8, v
    assert _expect(_aget(d, akey, "/v1/audit/verify", {"currency": CUR}), 200)["ok"] is True


def test_concurrent_postings_keep_seq_and_chain(daemon_factory, cli):
    """16 clients move money between two accounts (and in from @world) at
    once: every account's seq stays gapless, posted_at strictly increasing,
    the chain recomputes and both verifications pass."""
    import threading
    import requests
    d = daemon_factory(threads=8)
    tenant = cli.tenant_create()
    wkey, akey = cli.key_create(tenant, "read,write"), cli.key_create(tenant, "audit")
    a, b = _account(d, wkey), _account(d, wkey)
    _credit(d, wkey, a, 100000)
    _credit(d, wkey, b, 100000)
    codes, lock = [], threading.Lock()

    def worker(i):
        s = requests.Session()
        for j in range(10):
            kind = (i + j) % 3
            if kind == 0:
                path, body = "/v1/transfers", {"from": a, "to": b, "amount": 1 + j, "currency": CUR}
            elif kind == 1:
                path, body = "/v1/transfers", {"from": b, "to": a, "amount": 2 + j, "currency": CUR}
            else:
                path, body = f"/v1/accounts/{a}/credits", {"amount": 3 + j}
            r = d.post(path, key=wkey, data=json.dumps(body).encode(), session=s,
                       headers={"Content-Type": "application/json", "Idempotency-Key": _ik()})
            with lock:
                codes.append((r.status_code, r.text[:200]))

    # docs/ledger.md "Reads that must agree": verify and the audit read one
    # snapshot, so they hold while the money moves
    audits, done = [], threading.Event()

    def auditor():
        s = requests.Session()
        while not done.is_set():
            for path, params in (("/v1/audit/verify", {"currency": CUR}), (f"/v1/accounts/{a}/verify", None)):
                r = d.get(path, key=akey, params=params, session=s)
                ok = r.status_code == 200 and r.json().get("ok") is True and r.json().get("sum", 0) == 0
                audits.append((path, ok, r.status_code, r.text[:300]))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(16)]
    aud = threading.Thread(target=auditor, daemon=True)
    aud.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    aud.join(30)
    assert not any(t.is_alive() for t in threads) and not aud.is_alive()
    bad = [c for c in codes if c[0] != 201]
    assert not bad, bad[:5]
    assert audits, "no audit ran"
    wrong = [x for x in audits if not x[1]]
    assert not wrong, f"{len(wrong)} of {len(audits)} audits under load were not ok: {wrong[:3]}"
    for acc in (a, b):
        es, _ = _all_entries(d, akey, acc, {"order": "asc"}, limit=37)
        assert _seqs(es) == list(range(1, len(es) + 1)), _seqs(es)
        times = [_us(e["posted_at"]) for e in es]
        assert all(x < y for x, y in zip(times, times[1:])), "posted_at does not strictly increase with seq"
        running = 0
        for e, h in zip(es, _chain(es)):
            running += e["amount"]
            assert e["balance_after"] == running and e["hash"] == h, e
        assert running == _posted(d, wkey, acc)
        v = _expect(_aget(d, akey, f"/v1/accounts/{acc}/verify"), 200)
        assert v["ok"] is True and v["entries"] == len(es) and v["head"] == es[-1]["hash"], v
    n_a = len(_asc(d, akey, a))
    assert n_a == 1 + 160, f"A has {n_a} entries, expected 161"
    v = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": CUR}), 200)
    assert v["ok"] is True and v["sum"] == 0 and v["accounts"] == 2, v


# ---------------------------------------------------------------------------
# 6. the currency-wide audit


def test_audit_verify(daemon, stack, tenant, wkey, akey):
    d = daemon
    x, y, z = _account(d, wkey), _account(d, wkey), _account(d, wkey)
    idle = _account(d, wkey)
    e = _account(d, wkey, currency="EUR")
    _credit(d, wkey, x, 1000)
    _credit(d, wkey, y, 300)
    _debit(d, wkey, x, 100)
    _transfer(d, wkey, x, y, 250)
    _transfer(d, wkey, y, z, 75)
    _debit(d, wkey, z, 5)
    h = _expect(_post(d, "/v1/holds", wkey, {"from": x, "to": z, "amount": 50, "currency": CUR}), 201)
    _expect(_post(d, f"/v1/holds/{h['id']}/capture", wkey, {"amount": 20}), 200)
    _expect(_post(d, "/v1/holds", wkey, {"from": y, "to": z, "amount": 30, "currency": CUR}), 201)  # stays open
    _credit(d, wkey, e, 70)
    posted = {acc: _posted(d, wkey, acc) for acc in (x, y, z, idle)}
    assert posted == {x: 630, y: 475, z: 90, idle: 0}, posted
    assert sum(posted.values()) == 1000 + 300 - 100 - 5        # credits - debits: minus @world

    v = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": CUR}), 200)
    assert set(v) >= {"ok", "accounts", "sum"}, v
    # "accounts": the USD accounts (docs/ledger.md: @world is not an account object)
    assert v["ok"] is True and v["sum"] == 0 and v["accounts"] == 4, v
    v = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": "EUR"}), 200)
    assert v["ok"] is True and v["sum"] == 0 and v["accounts"] == 1, v
    v = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": "GBP"}), 200)
    assert v["ok"] is True and v["sum"] == 0 and v["accounts"] == 0, v

    _tamper(stack.database_url, tenant, y, 2, "amount", 7)
    v = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": CUR}), 200)
    assert v["ok"] is False, v
    v = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": "EUR"}), 200)
    assert v["ok"] is True and v["sum"] == 0, v


def test_audit_verify_with_balances_near_the_limit(daemon, cli):
    """@world of a currency may go below -(2^63-1) (two accounts near the
    limit); the audit still sums to 0 and answers ok."""
    tenant = cli.tenant_create()
    wkey, akey = cli.key_create(tenant, "read,write"), cli.key_create(tenant, "audit")
    big = 2 ** 63 - 1
    x, y = _account(daemon, wkey), _account(daemon, wkey)
    _credit(daemon, wkey, x, big)
    _credit(daemon, wkey, y, big - 1)
    v = _expect(_aget(daemon, akey, "/v1/audit/verify", {"currency": CUR}), 200)
    assert v["ok"] is True and v["sum"] == 0 and v["accounts"] == 2, v
    for acc, n in ((x, big), (y, big - 1)):
        v = _expect(_aget(daemon, akey, f"/v1/accounts/{acc}/verify"), 200)
        assert v["ok"] is True and v["balance_matches"] is True, v
        st = _expect(_aget(daemon, akey, f"/v1/accounts/{acc}/statement"), 200)
        assert (st["credits"], st["closing_balance"], st["count"]) == (n, n, 1), st


@pytest.mark.parametrize("params", [{}, {"currency": ""}, {"currency": "usd"}, {"currency": "US"},
                                    {"currency": "USDX"}, {"currency": "U$D"}, {"currency": "123"}],
                         ids=["missing", "empty", "lower", "short", "long", "symbol", "digits"])
def test_audit_verify_bad_currency_is_400(daemon, akey, params):
    assert_problem(_aget(daemon, akey, "/v1/audit/verify", params), 400, "invalid_request")


# ---------------------------------------------------------------------------
# 6b. the audit, bounded per request (docs/ledger.md "Auditing a currency")


def _audit_pass(d, akey, currency=CUR, limit=None, first_params=None):
    """Follows next_cursor to the end; returns the pages."""
    pages, cursor = [], None
    while True:
        params = {"currency": currency}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        v = _expect(_aget(d, akey, "/v1/audit/verify", params), 200)
        pages.append(v)
        assert len(pages) < 100, "the audit does not end"
        cursor = v["next_cursor"]
        if cursor is None:
            return pages
        assert isinstance(cursor, str) and cursor, v
        assert v["ok"] is None and v["consistent"] is None, f"a verdict before the last page: {v}"


def _money(d, wkey, n_accounts, credits_each=1):
    accs = [_account(d, wkey) for _ in range(n_accounts)]
    for i, a in enumerate(accs):
        for _ in range(credits_each):
            _credit(d, wkey, a, 100 + i)
    for a, b in zip(accs, accs[1:]):
        _transfer(d, wkey, a, b, 7)
    _debit(d, wkey, accs[0], 3)
    return accs


def test_audit_verify_pages_over_accounts(daemon, stack, tenant, wkey, akey):
    """More accounts than one page (limit=2): the pass takes several
    requests, each bounded, and the last answers for the whole currency
    exactly as the single-page audit does."""
    d = daemon
    accs = _money(d, wkey, 5)
    whole = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": CUR}), 200)
    assert whole["next_cursor"] is None and whole["ok"] is True and whole["accounts"] == 5 and whole["sum"] == 0, whole
    pages = _audit_pass(d, akey, limit=2)
    assert len(pages) >= 3, pages
    assert [p["accounts"] for p in pages] == [2, 4, 5], pages  # counts so far
    last = pages[-1]
    for k in ("ok", "accounts", "sum", "world", "failed_accounts", "consistent"):
        assert last[k] == whole[k], (k, last, whole)
    assert last["consistent"] is True, last
    assert all(p["failed_accounts"] == [] for p in pages), pages
    # a failed chain on the first page: the verdict at the end is false,
    # and the page that verified it names it
    first = sorted(accs)[0]
    _tamper(stack.database_url, tenant, first, 1, "amount", 5)
    pages = _audit_pass(d, akey, limit=2)
    assert pages[-1]["ok"] is False, pages[-1]
    assert [a for p in pages for a in p["failed_accounts"]] == [first], pages


def test_audit_verify_pages_over_entries(daemon_factory, cli):
    """A page also stops after `audit_page_entries` chain entries (finishing
    the chain it started) and reads the @world legs that many at a time: the
    pass is still exact."""
    tenant = cli.tenant_create()
    wkey, akey = cli.key_create(tenant, "read,write"), cli.key_create(tenant, "audit")
    d = daemon_factory("--audit-page-entries", "4")
    _money(d, wkey, 3, credits_each=3)  # 3 accounts of 4-5 entries, 10 @world legs
    pages = _audit_pass(d, akey)
    assert len(pages) >= 5, [(p["accounts"], p["world"]) for p in pages]
    assert [p["accounts"] for p in pages[:3]] == [1, 2, 3], pages
    last = pages[-1]
    assert last["ok"] is True and last["sum"] == 0 and last["accounts"] == 3, last
    assert last["world"] == -sum(3 * (100 + i) for i in range(3)) + 3, last
    # a bigger page (the default) answers the same at once
    d2 = daemon_factory()
    whole = _expect(_aget(d2, akey, "/v1/audit/verify", {"currency": CUR}), 200)
    assert whole["next_cursor"] is None and {k: whole[k] for k in ("ok", "accounts", "sum", "world")} == \
        {k: last[k] for k in ("ok", "accounts", "sum", "world")}, (whole, last)


def test_audit_verify_pass_tells_when_money_moved(daemon, wkey, akey):
    """Each page reads in its own snapshot: money that moves between an
    account of an earlier page and one of a later page while the pass runs
    makes the total differ from 0. The last page says so ("consistent":
    false: the tenant's ledger changed between the first page's snapshot and
    its own), and a pass over the quiet ledger is clean again."""
    d = daemon
    stem = "mv-" + _hex()
    a, b, c = (f"{stem}-{i}" for i in range(3))  # index order: a, b, c
    for acc in (a, b, c):
        _expect(_post(d, "/v1/accounts", wkey, {"id": acc, "currency": "CHF"}), 201)
    _credit(d, wkey, a, 100)
    p1 = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": "CHF", "limit": 1}), 200)
    assert p1["accounts"] == 1 and p1["sum"] == 100 and p1["next_cursor"], p1  # a, read
    _transfer(d, wkey, a, c, 30, currency="CHF")  # a was read before, c will be after
    cursor, pages = p1["next_cursor"], [p1]
    while cursor:
        pages.append(_expect(_aget(d, akey, "/v1/audit/verify", {"currency": "CHF", "limit": 1, "cursor": cursor}), 200))
        cursor = pages[-1]["next_cursor"]
    last = pages[-1]
    assert last["sum"] == 30 and last["ok"] is False and last["consistent"] is False, last
    assert all(p["failed_accounts"] == [] for p in pages), pages  # every chain verified
    again = _audit_pass(d, akey, currency="CHF", limit=1)
    assert again[-1]["ok"] is True and again[-1]["sum"] == 0 and again[-1]["consistent"] is True, again[-1]


def test_audit_verify_bad_cursor_is_400(daemon, wkey, akey):
    """A cursor the audit did not issue for this currency is 400
    invalid_request naming the field, never a 500: malformed, made up in the
    old unsigned JSON form, another currency's, another list's, truncated,
    or with a byte changed (the cursor carries a MAC, docs/api.md)."""
    d = daemon
    accs = _money(d, wkey, 3)
    _account(d, wkey, currency="EUR")
    _account(d, wkey, currency="EUR")
    p1 = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": CUR, "limit": 1}), 200)
    good = p1["next_cursor"]
    eur = _expect(_aget(d, akey, "/v1/audit/verify", {"currency": "EUR", "limit": 1}), 200)["next_cursor"]
    entries_cursor = _expect(_aget(d, akey, f"/v1/accounts/{accs[0]}/entries", {"limit": 1}), 200)
    raw = bytearray(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))
    raw[len(raw) // 2] ^= 1
    flipped = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    bad = {
        "garbage": "not a cursor!",
        "not json": base64.urlsafe_b64encode(b"{nope").decode().rstrip("="),
        "a made-up object": "eyJhIjogMX0",
        "the old unsigned form": base64.urlsafe_b64encode(
            json.dumps({"ph": "a", "s": "0", "w": "0", "n": 0}).encode()).decode().rstrip("="),
        "another currency": eur,
        "a page of entries": entries_cursor["next_cursor"],
        "truncated": good[:-4],
        "one bit changed": flipped,
    }
    for name, cur in bad.items():
        if cur is None:
            continue
        r = _aget(d, akey, "/v1/audit/verify", {"currency": CUR, "cursor": cur})
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert assert_problem(r, 400, "invalid_request").get("field") == "cursor", (name, r.json())
    # the cursor still works afterwards, and a limit out of range is 400 too
    assert _expect(_aget(d, akey, "/v1/audit/verify", {"currency": CUR, "cursor": good}), 200)["accounts"] >= 1
    for lim in ("0", "1001", "x"):
        r = _aget(d, akey, "/v1/audit/verify", {"currency": CUR, "limit": lim})
        assert_problem(r, 400, "invalid_request")


# ---------------------------------------------------------------------------
# 7. bad input, tenants, scopes

# (RFC 3339 §5.6 lets applications use a space instead of "T", so that is not here)
_BAD_TIMES = ["yesterday", "2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z",
              "1700000000", "2026-02-30T00:00:00Z", "2026-01-01T25:00:00Z", "2026-01-01T00:60:00Z", ""]

_BAD_QUERIES = (
    [("entries", {k: v}) for k in ("from", "to") for v in _BAD_TIMES]
    + [("entries", {"order": v}) for v in ("sideways", "", "ascending", "1")]
    + [("entries", {"limit": v}) for v in ("0", "1001", "-1", "abc", "1.5", "", "99999999999999999999")]
    + [("entries", {"cursor": v}) for v in ("!!notacursor!!", "abc", "%%%", "")]
    + [("balance", {"at": v}) for v in _BAD_TIMES]
    + [("statement", {k: v}) for k in ("from", "to") for v in _BAD_TIMES]
)


@pytest.fixture
def small_history(daemon, wkey):
    a = _account(daemon, wkey)
    for amt in (10, 20, 30):
        _credit(daemon, wkey, a, amt)
    return a


@pytest.mark.parametrize("route,params", _BAD_QUERIES,
                         ids=[f"{r}-{'&'.join(f'{k}={v}' for k, v in p.items())}" for r, p in _BAD_QUERIES])
def test_bad_query_is_400(daemon, akey, small_history, route, params):
    r = _aget(daemon, akey, f"/v1/accounts/{small_history}/{route}", params)
    assert_problem(r, 400, "invalid_request")


def test_limits_at_the_bounds_are_accepted(daemon, akey, small_history):
    for limit, n in (("1", 1), ("1000", 3)):
        body = _page(daemon, akey, small_history, {"limit": limit, "order": "asc"})
        assert len(body["data"]) == n, body


_ROUTES = ["entries", "balance", "statement", "verify"]


def test_unknown_and_foreign_accounts_are_404(daemon, cli, wkey, akey, make_key, small_history):
    d = daemon
    for route in _ROUTES:
        body = assert_problem(_aget(d, akey, f"/v1/accounts/nope-{_hex()}/{route}"), 404, "account_not_found")
    other = cli.tenant_create()
    okey = make_key("audit", tenant_name=other)
    for route in _ROUTES:
        body = assert_problem(_aget(d, okey, f"/v1/accounts/{small_history}/{route}"), 404, "account_not_found")
        assert body.get("account") in (None, small_history), body
    # the other tenant's audit sees none of this tenant's money
    v = _expect(_aget(d, okey, "/v1/audit/verify", {"currency": CUR}), 200)
    assert v["ok"] is True and v["accounts"] == 0 and v["sum"] == 0, v
    # @world is not an account (docs/ledger.md)
    assert _aget(d, akey, "/v1/accounts/@world:USD/verify").status_code in (400, 404)


def test_audit_routes_need_the_audit_scope(daemon, wkey, akey, make_key, small_history):
    d = daemon
    rkey = make_key("read")
    paths = [f"/v1/accounts/{small_history}/{r}" for r in _ROUTES] + ["/v1/audit/verify?currency=USD"]
    for key in (wkey, rkey):
        for p in paths:
            assert_problem(d.get(p, key=key), 403, "forbidden")
    for p in paths:
        assert_problem(d.get(p), 401, "unauthenticated")
        _expect(d.get(p, key=akey), 200)
    both = make_key("read,write,audit")
    for p in paths:
        _expect(d.get(p, key=both), 200)
    # audit implies nothing else
    assert_problem(d.get(f"/v1/accounts/{small_history}", key=akey), 403, "forbidden")
    assert_problem(_post(d, f"/v1/accounts/{small_history}/credits", akey, {"amount": 1}), 403, "forbidden")


# ---------------------------------------------------------------------------
# Last in the module on purpose: an empty or inverted statement range once
# crashed the daemon, which took every later test of the module with it.


def test_statement_of_an_empty_range(daemon, wkey, akey):
    d = daemon
    a, _, _ = _history(d, wkey)
    es = _asc(d, akey, a)
    t = [e["posted_at"] for e in es]
    path = f"/v1/accounts/{a}/statement"
    # from == to: nothing is in [from, from); opening = closing = balance before from
    body = _expect(_aget(d, akey, path, {"from": t[2], "to": t[2]}), 200)
    want = {"opening_balance": A_BALANCES[1], "closing_balance": A_BALANCES[1], "debits": 0, "credits": 0,
            "count": 0}
    assert {k: body.get(k) for k in want} == want, body
    # to before from: an empty statement or a 400, never a crash
    r = _aget(d, akey, path, {"from": t[5], "to": t[2]})
    if r.status_code == 400:
        assert_problem(r, 400, "invalid_request")
    else:
        body = _expect(r, 200)
        assert body["count"] == 0 and body["debits"] == 0 and body["credits"] == 0, body
        assert body["opening_balance"] == body["closing_balance"], body
