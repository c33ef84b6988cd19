#!/usr/bin/python3
"""db test of issue #16's holds, orders and hot merchant's inbox
(sql/014_ledger_holds_orders.sql) on the typed tables of sql/012_ledger.sql:
the guard under concurrent holds, capture vs void vs expiry (exactly one
wins), concurrent partial refunds, settlements of a busy merchant through
its inbox, the inbox's overflow guard at 2^63-1, and a direct credit taking
back the room handed to the inbox.

Runs against the PostgreSQL of $ONCELEDGER_TEST_DATABASE_URL (exit 77,
skipped, without it) in a database of its own, created from sql/*.sql and
dropped at the end. Prints TAP lines that scripts/test.sh's db suite counts.

    ONCELEDGER_TEST_DATABASE_URL=postgresql://... tests/db/test_ledger_holds_orders.py
"""
import hashlib
import json
import sys
import threading
import time

import psycopg2
import psycopg2.extensions

import ledgerdb
from ledgerdb import connect, q, rfc3339, run_threads

DBNAME = ledgerdb.init("ledger_ho")
# A lock wait that should end does within seconds; one that should not
# happen (a settlement waiting for a merchant row the test holds) fails its
# test with LockNotAvailable instead of hanging the suite.
ledgerdb.OPTIONS = "-c lock_timeout=20s -c statement_timeout=60s"
MAX = 2**63 - 1
TENANT = "t1"


_seq = [0]
_seq_lock = threading.Lock()


def fresh(prefix):
    with _seq_lock:
        _seq[0] += 1
        return "%s%d" % (prefix, _seq[0])


def fn(name, *args, conn=None):
    """A ledger function returning (outcome, doc): (outcome, dict or None).
    p_emit true: the function writes its events in the outbox itself."""
    marks = ", ".join(["%s"] * (len(args) + 1))
    o, doc = q("SELECT outcome, doc FROM ledger.%s(%s, %s)" % (name, "%s", marks), (TENANT,) + args + (True,), conn)[0]
    return o, (json.loads(doc) if doc else None)


def account(aid, currency="EUR", overdraft=0):
    q("INSERT INTO ledger.accounts (tenant, id, currency, overdraft_limit) VALUES (%s, %s, %s, %s)",
      (TENANT, aid, currency, overdraft))


def credit(acct, amount, currency="EUR"):
    """@world -> acct (013's ledger.transfer: test setup)."""
    code, doc = q("SELECT code, doc FROM ledger.transfer(%s, %s, NULL, %s, %s, %s, NULL, '{}', '{}')",
                  (TENANT, fresh("trc_"), acct, amount, currency))[0]
    assert code == "ok", (code, doc)


def state(acct):
    return q("SELECT posted, pending, seq, inbox_granted FROM ledger.accounts WHERE tenant = %s AND id = %s",
             (TENANT, acct))[0]


def aid_of(acct):
    return q("SELECT aid FROM ledger.accounts WHERE tenant = %s AND id = %s", (TENANT, acct))[0][0]


def verify(acct):
    """The account's chain recomputed with hashlib, and posted = the sum:
    [] or what is wrong."""
    rows = q("SELECT e.seq, e.transfer_id, e.amount, e.balance_after, e.posted_at, encode(e.hash, 'hex'),"
             " encode(e.prev_hash, 'hex') FROM ledger.entries e JOIN ledger.accounts a ON a.aid = e.account"
             " WHERE a.tenant = %s AND a.id = %s ORDER BY e.seq", (TENANT, acct))
    bad = []
    prev, bal = "0" * 64, 0
    for i, (s, t, am, b, p, h, ph) in enumerate(rows, 1):
        c = json.dumps({"account": acct, "amount": am, "balance_after": b, "posted_at": rfc3339(p), "seq": s,
                        "transfer_id": t}, separators=(",", ":"), sort_keys=True).encode()
        bal += am
        if s != i or ph != prev or h != hashlib.sha256(bytes.fromhex(prev) + c).hexdigest() or b != bal:
            bad.append((s, t))
        prev = h
    posted, _, seq, _ = state(acct)
    if posted != bal or seq != len(rows):
        bad.append(("posted", posted, bal, seq, len(rows)))
    return bad


def outbox(type_, subject):
    return q("SELECT data FROM outbox WHERE type = %s AND subject = %s", (type_, subject))


def hold(frm, to, amount, hid=None, expires_in=3600, currency="EUR", metadata="{}", conn=None):
    hid = hid or fresh("hold_")
    params = json.dumps({"from": frm, "to": to, "amount": amount, "expires_in": expires_in}, sort_keys=True)
    return fn("hold_create", hid, frm, to, amount, currency, expires_in, metadata, params, conn=conn)


def order(cust, merch, amount, oid=None, expires_in=900, currency="EUR"):
    oid = oid or fresh("ord_")
    params = json.dumps({"customer": cust, "merchant": merch, "amount": amount}, sort_keys=True)
    return fn("order_create", oid, cust, merch, amount, currency, expires_in, "{}", params)


# ---- tests ------------------------------------------------------------------

def test_hold_lifecycle_and_problems():
    account("ha"), account("hb"), account("hz", currency="USD"), account("hf")
    credit("ha", 100)
    credit("hf", 100)
    q("UPDATE ledger.accounts SET status = 'frozen' WHERE tenant = %s AND id = 'hf'", (TENANT,))
    o, h = hold("ha", "hb", 60, hid="h1", metadata='{"k":1}')
    assert o == "ok" and h["status"] == "pending" and h["to"] == "hb" and h["metadata"] == {"k": 1}, (o, h)
    assert state("ha")[:2] == (100, 60)
    assert len(outbox("hold.created", "h1")) == 1
    # a reused id: identical parameters answer the hold, others are 409
    assert hold("ha", "hb", 60, hid="h1", metadata='{"k":1}')[0] == "duplicate"
    assert hold("ha", "hb", 61, hid="h1") == ("exists", {"hold": "h1"})
    assert state("ha")[:2] == (100, 60)
    # the contract's order: 404 from before to, currency, frozen, 402
    assert hold("nope", "nope2", 1) == ("not_found", {"account": "nope"})
    assert hold("ha", "nope2", 1) == ("not_found", {"account": "nope2"})
    assert hold("ha", "hz", 1) == ("currency_mismatch", {"account": "hz", "account_currency": "USD"})
    assert hold("hf", "hb", 1) == ("frozen", {"account": "hf"})
    assert hold("ha", "hb", 41) == ("insufficient", {"account": "ha", "available": 40, "overdraft_limit": 0})
    assert state("ha")[:2] == (100, 60)
    # capture above the hold: too_much; partial capture
    assert fn("hold_capture", "h1", 61) == ("too_much", {"hold_amount": 60})
    o, h = fn("hold_capture", "h1", 25)
    assert o == "ok" and h["status"] == "captured" and h["captured"] == 25 and h["transfer_id"], (o, h)
    assert state("ha")[:2] == (75, 0) and state("hb")[:2] == (25, 0)
    t = q("SELECT hold_id, amount, metadata FROM ledger.transfers WHERE tenant = %s AND id = %s", (TENANT, h["transfer_id"]))
    assert t == [("h1", 25, '{"k":1}')], t
    ev = json.loads(outbox("transfer.posted", h["transfer_id"])[0][0])
    assert ev["hold_id"] == "h1" and [e["seq"] for e in ev["entries"]] == [2, 1], ev
    assert len(outbox("hold.captured", "h1")) == 1
    assert fn("hold_capture", "h1", 0) == ("not_pending", {"hold_status": "captured"})
    assert fn("hold_void", "h1") == ("not_pending", {"hold_status": "captured"})
    # void; @world payee; a frozen payer may still be captured
    assert hold("ha", None, 10, hid="h2")[1]["to"] == "@world:EUR"
    assert fn("hold_void", "h2")[1]["status"] == "voided" and state("ha")[:2] == (75, 0)
    assert hold("ha", None, 10, hid="h3")[0] == "ok"
    q("UPDATE ledger.accounts SET status = 'frozen' WHERE tenant = %s AND id = 'ha'", (TENANT,))
    assert fn("hold_capture", "h3", 0)[1]["captured"] == 10 and state("ha")[:2] == (65, 0)
    assert fn("hold_get", "nope") == ("not_found", None)
    assert verify("ha") == [] and verify("hb") == []


def test_lazy_expiry_and_sweeper():
    account("ea"), account("eb")
    credit("ea", 100)
    for hid in ("he1", "he2", "he3"):
        assert hold("ea", "eb", 10, hid=hid)[0] == "ok"
    q("UPDATE ledger.holds SET expires_at = now() - interval '1 second' WHERE tenant = %s AND id IN ('he1','he2','he3')",
      (TENANT,))
    # a capture of a hold past its time expires it and says so
    assert fn("hold_capture", "he1", 0) == ("not_pending", {"hold_status": "expired"})
    assert fn("hold_get", "he2")[1]["status"] == "expired"
    assert q("SELECT ledger.holds_sweep(100)")[0][0] == 1
    assert q("SELECT ledger.holds_sweep(100)")[0][0] == 0
    assert state("ea")[:2] == (100, 0)
    assert len(q("SELECT 1 FROM outbox WHERE type = 'hold.expired' AND subject IN ('he1','he2','he3')")) == 3


def test_guard_under_concurrent_holds():
    """32 holds of 20 at once on 300 with an overdraft of 50: exactly 17
    pass; available + overdraft never goes below 0."""
    account("gh", overdraft=50)
    account("gp")
    credit("gh", 300)
    res, errs = run_threads(32, lambda i: hold("gh", "gp", 20))
    assert not errs, errs
    assert [r[0] for r in res].count("ok") == 17, [r[0] for r in res]
    assert all(r[0] == "insufficient" for r in res if r[0] != "ok")
    posted, pending, _, granted = state("gh")
    assert (posted, pending) == (300, 340) and posted - pending >= -50
    # refused holds and a refused debit (013's, which posts the payer's
    # inbox first) give an account that is no merchant no inbox shards
    code, _ = q("SELECT code, doc FROM ledger.transfer(%s, %s, 'gh', NULL, 1000, 'EUR', NULL, '{}', '{}')",
                (TENANT, fresh("trd_")))[0]
    assert code == "insufficient" and state("gh")[3] == granted == 0
    assert not q("SELECT 1 FROM ledger.inbox_shards WHERE account = %s", (aid_of("gh"),))


def test_capture_void_expiry_race_exactly_one_wins():
    """Capture, void and the sweeper on one hold at its expiry time, 20
    rounds: exactly one of them changes it, and the accounts agree."""
    account("ra"), account("rb")
    credit("ra", 10000)
    wins = {"capture": 0, "void": 0, "expiry": 0}
    for r in range(20):
        hid = fresh("hr_")
        assert hold("ra", "rb", 10, hid=hid)[0] == "ok"
        q("UPDATE ledger.holds SET expires_at = clock_timestamp() + interval '30 milliseconds' WHERE tenant = %s AND id = %s",
          (TENANT, hid))
        time.sleep(0.03 if r % 2 else 0.0)

        def one(i):
            if i == 0:
                return "capture", fn("hold_capture", hid, 0)[0]
            if i == 1:
                return "void", fn("hold_void", hid)[0]
            return "expiry", "ok" if q("SELECT ledger.holds_sweep(10)")[0][0] else "none"
        res, errs = run_threads(3, one)
        assert not errs, errs
        status = q("SELECT status FROM ledger.holds WHERE tenant = %s AND id = %s", (TENANT, hid))[0][0]
        winners = [who for who, o in res if o == "ok"]
        assert len(winners) <= 1, res
        if winners:
            wins[winners[0]] += 1
            assert status == {"capture": "captured", "void": "voided", "expiry": "expired"}[winners[0]], (res, status)
        else:
            assert status == "expired", (res, status)   # expired lazily by the capture or void
        assert state("ra")[1] == 0, state("ra")
    captured = q("SELECT count(*) FROM ledger.holds WHERE tenant = %s AND from_account = %s AND status = 'captured'",
                 (TENANT, aid_of("ra")))[0][0]
    assert state("ra")[0] == 10000 - 10 * captured and state("rb")[0] == 10 * captured
    assert verify("ra") == [] and verify("rb") == []


def test_order_lifecycle():
    account("oc"), account("om"), account("ox", currency="USD")
    credit("oc", 100)
    assert order("nope", "om", 5) == ("not_found", {"account": "nope"})
    assert order("oc", "nope", 5) == ("not_found", {"account": "nope"})
    assert order("oc", "ox", 5) == ("currency_mismatch", {"account": "ox", "account_currency": "USD"})
    o, d = order("oc", "om", 70, oid="o1")
    assert o == "ok" and d["status"] == "created" and d["paid_at"] is None, d
    assert order("oc", "om", 70, oid="o1")[0] == "duplicate"
    assert order("oc", "om", 71, oid="o1") == ("exists", {"order": "o1"})
    assert order("oc", "om", 50, oid="o2")[0] == "ok"
    assert fn("order_refund", "o1", 0) == ("not_pending", {"order_status": "created"})
    o, d = fn("order_settle", "o1")
    assert o == "ok" and d["status"] == "paid" and d["transfer_id"] and d["paid_at"], d
    assert fn("order_settle", "o1") == ("not_pending", {"order_status": "paid"})
    # 402 leaves the order created and changes nothing
    assert fn("order_settle", "o2") == ("insufficient", {"account": "oc", "available": 30, "overdraft_limit": 0})
    assert fn("order_get", "o2")[1]["status"] == "created" and state("oc")[0] == 30
    assert fn("order_cancel", "o2")[1]["status"] == "cancelled"
    assert fn("order_refund", "o1", 71) == ("too_much", {"refundable": 70})
    assert fn("order_refund", "o1", 20)[1] == fn("order_get", "o1")[1]
    assert fn("order_get", "o1")[1]["status"] == "partially_refunded"
    o, d = fn("order_refund", "o1", 0)
    assert d["status"] == "refunded" and d["refunded"] == 70, d
    assert state("oc")[0] == 100 and state("om")[0] == 0
    # expiry: lazily by a settle, by the sweeper
    assert order("oc", "om", 5, oid="o3")[0] == "ok" and order("oc", "om", 5, oid="o4")[0] == "ok"
    q("UPDATE ledger.orders SET expires_at = now() - interval '1 second' WHERE tenant = %s AND id IN ('o3', 'o4')",
      (TENANT,))
    assert fn("order_settle", "o3") == ("not_pending", {"order_status": "expired"})
    assert q("SELECT ledger.orders_sweep(10)")[0][0] == 1
    assert fn("order_get", "o4")[1]["status"] == "expired"
    # the list: newest first, with positions
    rows = q("SELECT doc, created_us, id FROM ledger.orders_list(%s, NULL, 'oc', 2, NULL, NULL)", (TENANT,))
    assert [r[2] for r in rows] == ["o4", "o3"], rows
    rows = q("SELECT id FROM ledger.orders_list(%s, NULL, 'oc', 10, %s, %s)", (TENANT, rows[1][1], rows[1][2]))
    assert [r[0] for r in rows] == ["o2", "o1"], rows
    assert [r[0] for r in q("SELECT id FROM ledger.orders_list(%s, 'refunded', NULL, 10, NULL, NULL)", (TENANT,))] == ["o1"]
    assert verify("oc") == [] and verify("om") == []


def test_settle_cancel_expiry_race_exactly_one_wins():
    """Settle, cancel and the sweeper on one order at its expiry time, 20
    rounds: exactly one changes it; money moved only for a settlement."""
    account("sc"), account("sm")
    credit("sc", 10000)
    paid = 0
    for r in range(20):
        oid = fresh("os_")
        assert order("sc", "sm", 10, oid=oid)[0] == "ok"
        q("UPDATE ledger.orders SET expires_at = clock_timestamp() + interval '30 milliseconds'"
          " WHERE tenant = %s AND id = %s", (TENANT, oid))
        time.sleep(0.03 if r % 2 else 0.0)

        def one(i):
            if i == 0:
                return "settle", fn("order_settle", oid)[0]
            if i == 1:
                return "cancel", fn("order_cancel", oid)[0]
            return "expiry", "ok" if q("SELECT ledger.orders_sweep(10)")[0][0] else "none"
        res, errs = run_threads(3, one)
        assert not errs, errs
        status = fn("order_get", oid)[1]["status"]
        winners = [who for who, o in res if o == "ok"]
        assert len(winners) <= 1, res
        if winners:
            assert status == {"settle": "paid", "cancel": "cancelled", "expiry": "expired"}[winners[0]], (res, status)
        else:
            assert status == "expired", (res, status)
        paid += status == "paid"
    assert state("sc")[0] == 10000 - 10 * paid and state("sm")[0] == 10 * paid
    assert verify("sc") == [] and verify("sm") == []


def test_concurrent_partial_refunds_never_exceed_the_amount():
    account("pc"), account("pm")
    credit("pc", 100)
    assert order("pc", "pm", 100, oid="pr1")[0] == "ok"
    assert fn("order_settle", "pr1")[0] == "ok"
    res, errs = run_threads(16, lambda i: fn("order_refund", "pr1", 9)[0])
    assert not errs, errs
    assert res.count("ok") == 11 and res.count("too_much") == 5, res
    d = fn("order_get", "pr1")[1]
    assert d["refunded"] == 99 and d["status"] == "partially_refunded", d
    assert state("pm")[0] == 1 and state("pc")[0] == 99
    assert len(q("SELECT 1 FROM ledger.transfers WHERE tenant = %s AND order_id = 'pr1'", (TENANT,))) == 12
    assert verify("pm") == [] and verify("pc") == []


def _sweep_all():
    """Sweeps until the inbox is empty: how many credits were posted. The
    sweeper skips an account another transaction holds, so a bounded number
    of rounds: a stuck inbox fails the test instead of looping."""
    n = 0
    for _ in range(2000):
        k = q("SELECT ledger.inbox_sweep(100)")[0][0]
        n += k
        if k == 0 and not q("SELECT 1 FROM ledger.inbox LIMIT 1"):
            return n
        time.sleep(0.005)
    raise AssertionError("the inbox is still not empty after 2000 sweeps (%d credits posted)" % n)


def test_inbox_under_a_busy_merchant():
    """The merchant's row held by another transaction: settlements do not
    wait, their credits go to the inbox; consolidation posts them as
    chained entries; then 64 concurrent settlements to one merchant."""
    account("bm")
    custs = ["bc%02d" % i for i in range(24)]
    for c in custs:
        account(c)
        credit(c, 1000)
    # no shards before the merchant's first order; that order hands room out
    assert state("bm")[3] == 0 and not q("SELECT 1 FROM ledger.inbox_shards WHERE account = %s", (aid_of("bm"),))
    orders = []
    for c in custs:
        oid = fresh("ob_")
        assert order(c, "bm", 10, oid=oid)[0] == "ok"
        orders.append(oid)
    assert state("bm")[3] == 16 * (MAX // 32)
    assert q("SELECT count(*), sum(total) FROM ledger.inbox_shards WHERE account = %s", (aid_of("bm"),))[0] == (16, 0)
    locker = connect(autocommit=False)
    with locker.cursor() as cur:
        cur.execute("SELECT 1 FROM ledger.accounts WHERE tenant = %s AND id = 'bm' FOR NO KEY UPDATE", (TENANT,))
    try:
        # all 24 answer while the merchant's row is still held: none waited for it
        res, errs = run_threads(24, lambda i: fn("order_settle", orders[i])[0])
    finally:
        locker.rollback()
        locker.close()
    assert not errs, errs
    assert res == ["ok"] * 24, res
    assert state("bm")[0] == 0 and q("SELECT count(*), sum(amount) FROM ledger.inbox")[0] == (24, 240)
    ev = json.loads(outbox("transfer.posted", fn("order_get", orders[0])[1]["transfer_id"])[0][0])
    assert ev["entries"][1] == {"account": "bm", "seq": None, "amount": 10, "balance_after": None}, ev
    assert _sweep_all() == 24
    assert state("bm")[:3] == (240, 0, 24) and verify("bm") == []
    # 64 at once, nothing held: all paid, exact balance, gapless chain
    account("bm2")
    cs = ["bd%02d" % i for i in range(64)]
    oids = []
    for c in cs:
        account(c)
        credit(c, 50)
        oid = fresh("ob_")
        assert order(c, "bm2", 7, oid=oid)[0] == "ok"
        oids.append(oid)
    res, errs = run_threads(64, lambda i: fn("order_settle", oids[i])[0])
    assert not errs, errs
    assert res == ["ok"] * 64, res
    _sweep_all()
    assert state("bm2")[0] == 7 * 64 and verify("bm2") == []
    tids = {r[0] for r in q("SELECT e.transfer_id FROM ledger.entries e WHERE e.account = %s", (aid_of("bm2"),))}
    assert len(tids) == 64
    assert all(verify(c) == [] for c in cs)


def _blockers(pid):
    return q("SELECT pg_blocking_pids(%s)", (pid,))[0][0]


def test_busy_shards_never_make_a_settlement_wait_for_the_merchant():
    """The merchant's row held by another transaction and all 16 shards
    held by settlements that have not committed yet: a 17th settlement
    waits for a shard (it has room), never for the merchant's row, and
    settles through the inbox as soon as a shard is free, while the row is
    still held. (It used to wait for the row: with more settlements at once
    than shards, test_inbox_under_a_busy_merchant hung.) A settlement that
    took a shard never waits for the merchant's row either."""
    account("wm")
    custs = ["wc%02d" % i for i in range(17)]
    oids = []
    for c in custs:
        account(c)
        credit(c, 100)
        oid = fresh("ow_")
        assert order(c, "wm", 10, oid=oid)[0] == "ok"
        oids.append(oid)
    m = aid_of("wm")
    locker = connect(autocommit=False)
    lpid = locker.get_backend_pid()
    holders = []
    waiter = connect()
    wpid = waiter.get_backend_pid()
    box = {}

    def settle17():
        try:
            box["res"] = fn("order_settle", oids[16], conn=waiter)[0]
        except Exception as e:  # noqa: BLE001 - reported below
            box["res"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0])
    t = threading.Thread(target=settle17)
    blocked_by = []
    try:
        with locker.cursor() as cur:
            cur.execute("SELECT 1 FROM ledger.accounts WHERE aid = %s FOR NO KEY UPDATE", (m,))
        for oid in oids[:16]:
            h = connect(autocommit=False)
            holders.append(h)
            assert fn("order_settle", oid, conn=h)[0] == "ok"
        assert len(q("SELECT shard FROM ledger.inbox_shards WHERE account = %s FOR NO KEY UPDATE SKIP LOCKED",
                     (m,))) == 0
        t.start()
        deadline = time.monotonic() + 30
        while t.is_alive() and not blocked_by and time.monotonic() < deadline:
            blocked_by = _blockers(wpid)
            time.sleep(0.01)
        for h in holders:
            h.commit()
        hpids = [h.get_backend_pid() for h in holders]
        t.join(60)
        assert set(blocked_by) <= set(hpids), (blocked_by, hpids, lpid)
        # the 17th has answered while the merchant's row is still held
        assert not t.is_alive(), "the 17th settlement still waits"
        assert q("SELECT count(*) FROM ledger.inbox WHERE account = %s", (m,))[0][0] == 17
    finally:
        for h in holders:
            h.close()
        locker.rollback()
        locker.close()
        if t.ident:
            t.join(60)
        waiter.close()
    # it waited for a settlement's shard, not for the merchant's row
    assert blocked_by and lpid not in blocked_by, (blocked_by, lpid)
    assert box.get("res") == "ok", box
    assert _sweep_all() == 17
    assert state("wm")[:3] == (170, 0, 17) and verify("wm") == []
    assert all(state(c)[0] == 90 and verify(c) == [] for c in custs)


def test_refused_customer_never_waits_for_a_busy_merchant():
    """A settlement refused for the customer's balance while another
    transaction holds the merchant's row answers 402 at once (it used to
    lock both accounts to rank the problems, and waited for the merchant),
    whichever of the two accounts comes first in the lock order."""
    account("nm")
    account("aa_poor")                  # before the merchant: its debit comes first
    account("zz_poor")                  # after it: the merchant's leg (a shard) comes first
    credit("aa_poor", 5)
    credit("zz_poor", 5)
    oa, oz = fresh("on_"), fresh("on_")
    assert order("aa_poor", "nm", 10, oid=oa)[0] == "ok" and order("zz_poor", "nm", 10, oid=oz)[0] == "ok"
    locker = connect(autocommit=False)
    try:
        with locker.cursor() as cur:
            cur.execute("SELECT 1 FROM ledger.accounts WHERE tenant = %s AND id = 'nm' FOR NO KEY UPDATE", (TENANT,))
        c = connect()
        try:
            with c.cursor() as cur:
                cur.execute("SET lock_timeout = '2s'")
            ra = fn("order_settle", oa, conn=c)
            rz = fn("order_settle", oz, conn=c)
        finally:
            c.close()
    finally:
        locker.rollback()
        locker.close()
    assert ra == ("insufficient", {"account": "aa_poor", "available": 5, "overdraft_limit": 0}), ra
    assert rz == ("insufficient", {"account": "zz_poor", "available": 5, "overdraft_limit": 0}), rz
    assert fn("order_get", oa)[1]["status"] == "created" and fn("order_get", oz)[1]["status"] == "created"
    assert state("aa_poor")[0] == 5 and state("zz_poor")[0] == 5
    m = aid_of("nm")
    assert q("SELECT count(*) FROM ledger.inbox WHERE account = %s", (m,))[0][0] == 0
    assert q("SELECT sum(total) FROM ledger.inbox_shards WHERE account = %s", (m,))[0][0] == 0
    assert state("nm")[:3] == (0, 0, 0)


def test_credit_beside_the_room_takes_a_shard_without_the_row():
    """A settlement whose credit does not fit beside the room handed to the
    shards (the direct leg's guard) but fits a shard's room goes to the
    shard and leaves the merchant's row unlocked: it holds nothing of the
    merchant's while it might wait for a shard."""
    account("gm")
    account("gc")
    credit("gc", 1000)
    credit("gm", MAX - 320)
    m = aid_of("gm")
    assert q("SELECT ledger.inbox_consolidate(%s, true, 1)", (m,))[0][0] == 0
    assert state("gm")[3] == 160      # room 10 per shard
    credit("gm", 155)                 # a direct credit: 5 left beside the room
    oid = fresh("og_")
    assert order("gc", "gm", 10, oid=oid)[0] == "ok"
    c = connect(autocommit=False)
    try:
        assert fn("order_settle", oid, conn=c)[0] == "ok"
        free = q("SELECT 1 FROM ledger.accounts WHERE aid = %s FOR NO KEY UPDATE SKIP LOCKED", (m,))
        c.commit()
    finally:
        c.close()
    assert free == [(1,)], "the settlement kept the merchant's row locked"
    assert q("SELECT sum(amount) FROM ledger.inbox WHERE account = %s", (m,))[0][0] == 10
    assert q("SELECT ledger.inbox_settle(%s, 'gm')", (TENANT,))[0][0] == 1
    assert state("gm")[0] == MAX - 155 and verify("gm") == []


def test_inbox_overflow_guard_at_max():
    """Shards hold at most the headroom they were handed; a credit that
    does not fit goes the direct way, which consolidates and checks
    exactly: posted may reach 2^63-1, one more is 422 amount_overflow,
    nothing is lost or stuck."""
    _sweep_all()        # what an earlier test may have left (it counts the inbox)
    account("vm")
    account("vc")
    credit("vc", 10**6)
    credit("vm", MAX - 320)
    assert q("SELECT ledger.inbox_consolidate(%s, true, 1)", (aid_of("vm"),))[0][0] == 0
    assert state("vm")[3] == 160      # room 10 per shard
    oids = []
    for i in range(16):
        oid = fresh("ov_")
        assert order("vc", "vm", 10, oid=oid)[0] == "ok"
        oids.append(oid)
    locker = connect(autocommit=False)
    with locker.cursor() as cur:
        cur.execute("SELECT 1 FROM ledger.accounts WHERE tenant = %s AND id = 'vm' FOR NO KEY UPDATE", (TENANT,))
    try:
        res = [fn("order_settle", oid)[0] for oid in oids]      # one connection each: shards in turn
        assert res == ["ok"] * 16, res
        assert q("SELECT sum(total), sum(room) FROM ledger.inbox_shards WHERE account = %s", (aid_of("vm"),))[0] == \
            (160, 160)
        # a 17th finds no room: the direct way waits for the row
        oid = fresh("ov_")
        assert order("vc", "vm", 10, oid=oid)[0] == "ok"
        c = connect(autocommit=False)
        try:
            with c.cursor() as cur:
                cur.execute("SET lock_timeout = '300ms'")
                try:
                    cur.execute("SELECT outcome FROM ledger.order_settle(%s, %s, true)", (TENANT, oid))
                    raise AssertionError("settled without room")
                except psycopg2.errors.LockNotAvailable:
                    pass
            c.rollback()
        finally:
            c.close()
    finally:
        locker.rollback()
        locker.close()
    assert _sweep_all() == 16
    assert state("vm")[0] == MAX - 160 and verify("vm") == []
    # the rest of the headroom, directly: the granted room is revoked first
    big = fresh("ov_")
    assert order("vc", "vm", 160, oid=big)[0] == "ok"
    assert fn("order_settle", big)[0] == "ok"
    assert state("vm")[0] == MAX and state("vm")[3] == 0
    one = fresh("ov_")
    assert order("vc", "vm", 1, oid=one)[0] == "ok"
    before = state("vc")
    assert fn("order_settle", one) == ("overflow", {"account": "vm"})
    assert state("vc") == before and fn("order_get", one)[1]["status"] == "created"
    assert q("SELECT count(*) FROM ledger.inbox")[0][0] == 0
    assert verify("vm") == [] and verify("vc") == []


def test_direct_credit_takes_back_the_inbox_room():
    """013's transfer to a merchant whose inbox shards hold room (half of
    its headroom once it has orders): a credit that fits the account but
    not beside that room takes the room back (ledger.inbox_revoke, which
    posts the waiting credits first) and goes through; one that does not
    fit even then is 422 amount_overflow and moves nothing."""
    account("rm")
    account("rc")
    credit("rc", 1000)
    oid = fresh("or_")
    assert order("rc", "rm", 7, oid=oid)[0] == "ok" and state("rm")[3] == 16 * (MAX // 32)
    locker = connect(autocommit=False)
    with locker.cursor() as cur:
        cur.execute("SELECT 1 FROM ledger.accounts WHERE tenant = %s AND id = 'rm' FOR NO KEY UPDATE", (TENANT,))
    try:
        assert fn("order_settle", oid)[0] == "ok"      # the merchant is busy: its credit waits in the inbox
    finally:
        locker.rollback()
        locker.close()
    assert state("rm")[0] == 0 and q("SELECT sum(amount) FROM ledger.inbox WHERE account = %s", (aid_of("rm"),))[0][0] == 7

    def direct(amount):
        tid = fresh("trr_")
        code, doc = q("SELECT code, doc FROM ledger.transfer(%s, %s, NULL, 'rm', %s, 'EUR', NULL, '{}', '{}')",
                      (TENANT, tid, amount))[0]
        return code, json.loads(doc) if doc else None

    big = MAX - MAX // 4            # above the headroom the shards leave (MAX / 2)
    code, doc = direct(big)
    assert code == "ok", (code, doc)
    assert doc["entries"][1] == {"account": "rm", "seq": 2, "amount": big, "balance_after": big + 7}, doc
    assert state("rm") == (big + 7, 0, 2, 0)
    assert q("SELECT count(*) FROM ledger.inbox WHERE account = %s", (aid_of("rm"),))[0][0] == 0
    assert verify("rm") == []
    # no room left to take back: what does not fit is refused, nothing moves
    assert direct(MAX - big - 7 + 1) == ("overflow", {"account": "rm"})
    assert state("rm") == (big + 7, 0, 2, 0)
    assert direct(MAX - big - 7)[0] == "ok" and state("rm")[0] == MAX and verify("rm") == []


def test_capture_overflow_undoes_everything():
    account("cf"), account("ct")
    credit("cf", 100)
    credit("ct", MAX - 5)
    assert hold("cf", "ct", 10, hid="hov")[0] == "ok"
    assert fn("hold_capture", "hov", 6) == ("overflow", {"account": "ct"})
    assert fn("hold_get", "hov")[1]["status"] == "pending" and state("cf")[:2] == (100, 10)
    assert fn("hold_capture", "hov", 5)[0] == "ok" and state("ct")[0] == MAX
    assert verify("cf") == [] and verify("ct") == []


TESTS = [test_hold_lifecycle_and_problems, test_lazy_expiry_and_sweeper, test_guard_under_concurrent_holds,
         test_capture_void_expiry_race_exactly_one_wins, test_order_lifecycle,
         test_settle_cancel_expiry_race_exactly_one_wins,
         test_concurrent_partial_refunds_never_exceed_the_amount, test_inbox_under_a_busy_merchant,
         test_busy_shards_never_make_a_settlement_wait_for_the_merchant,
         test_refused_customer_never_waits_for_a_busy_merchant,
         test_credit_beside_the_room_takes_a_shard_without_the_row,
         test_inbox_overflow_guard_at_max, test_direct_credit_takes_back_the_inbox_room,
         test_capture_overflow_undoes_everything]


def create_db():
    ledgerdb.create_db([TENANT])


if __name__ == "__main__":
    sys.exit(ledgerdb.tap_main(TESTS, create_db))
