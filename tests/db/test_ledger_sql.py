#!/usr/bin/python3
"""db test of the ledger's money SQL (sql/012_ledger.sql,
sql/013_ledger_transfers.sql; issue #16, docs/ledger-engine.md): the guard
under concurrency, the lock order, the append-only entries, overflow at
2^63-1, batches that write all or nothing, the SHA-256 chain.

Runs against the PostgreSQL of $ONCELEDGER_TEST_DATABASE_URL (exit 77,
skipped, without it) in a database of its own, created from the real
migrations sql/*.sql, dropped at the end. Prints TAP lines ("ok N - name")
that scripts/test.sh's db suite counts.

    ONCELEDGER_TEST_DATABASE_URL=postgresql://... tests/db/test_ledger_sql.py
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import psycopg2
import psycopg2.extensions

import ledgerdb
from ledgerdb import connect, q, rfc3339, run_threads

ROOT = ledgerdb.ROOT
DBNAME = ledgerdb.init("ledger_sql")
MAX = 2**63 - 1
TENANT = "t1"


_seq = [0]
_seq_lock = threading.Lock()


def fresh(prefix):
    with _seq_lock:
        _seq[0] += 1
        return "%s%d" % (prefix, _seq[0])


def account(aid, currency="EUR", overdraft=0):
    q("INSERT INTO ledger.accounts (tenant, id, currency, overdraft_limit) VALUES (%s, %s, %s, %s)",
      (TENANT, aid, currency, overdraft))


def params(frm, to, amount):
    return json.dumps({"amount": amount, "from": frm, "to": to}, sort_keys=True)


def transfer(frm, to, amount, conn=None, tr=None, currency="EUR", prm=None):
    """ledger.transfer(): (code, doc as a dict). frm/to None: @world."""
    tr = tr or fresh("tr_")
    rows = q("SELECT code, doc FROM ledger.transfer(%s, %s, %s, %s, %s, %s, NULL, '{}', %s)",
             (TENANT, tr, frm, to, amount, currency, prm or params(frm, to, amount)), conn)
    code, doc = rows[0]
    return code, json.loads(doc)


def credit(acct, amount, conn=None):
    return transfer(None, acct, amount, conn, currency=None)


def state(acct):
    return q("SELECT posted, pending, seq, version, head FROM ledger.accounts WHERE tenant = %s AND id = %s",
             (TENANT, acct))[0]


def counts():
    return q("SELECT (SELECT count(*) FROM ledger.entries), (SELECT count(*) FROM ledger.transfers)")[0]


def entries(acct):
    rows = q("SELECT e.seq, e.transfer_id, e.amount, e.balance_after, e.posted_at, encode(e.hash, 'hex'),"
             " encode(e.prev_hash, 'hex') FROM ledger.entries e JOIN ledger.accounts a ON a.aid = e.account"
             " WHERE a.tenant = %s AND a.id = %s ORDER BY e.seq", (TENANT, acct))
    return [{"account": acct, "seq": s, "transfer_id": t, "amount": am, "balance_after": b, "posted_at": rfc3339(p),
             "hash": h, "prev_hash": ph} for s, t, am, b, p, h, ph in rows]


def verify(acct):
    """The chain recomputed with hashlib.sha256 (docs/ledger.md): [] or
    what is wrong."""
    bad = []
    prev, bal, last = "0" * 64, 0, ""
    es = entries(acct)
    for i, e in enumerate(es, 1):
        c = json.dumps({k: e[k] for k in ("account", "amount", "balance_after", "posted_at", "seq", "transfer_id")},
                       separators=(",", ":"), sort_keys=True).encode()
        h = hashlib.sha256(bytes.fromhex(prev) + c).hexdigest()
        bal += e["amount"]
        if e["seq"] != i or e["prev_hash"] != prev or e["hash"] != h or e["balance_after"] != bal \
                or e["posted_at"] <= last:
            bad.append(e)
        prev, last = e["hash"], e["posted_at"]
    posted, _, seq, _, head = state(acct)
    if posted != bal or bytes(head).hex() != prev or seq != len(es):
        bad.append({"account": acct, "posted": posted, "sum": bal, "head": bytes(head).hex(), "last": prev})
    return bad


# ---- tests ------------------------------------------------------------------

def test_transfer_document_and_refusals_in_order():
    account("a"), account("b"), account("u", "USD"), account("fz")
    assert credit("a", 100)[0] == "ok"
    code, doc = transfer("a", "b", 30, tr="tr_one")
    assert code == "ok", doc
    assert [(e["account"], e["seq"], e["amount"], e["balance_after"]) for e in doc["entries"]] == \
        [("a", 2, -30, 70), ("b", 1, 30, 30)], doc
    assert (doc["id"], doc["from"], doc["to"], doc["currency"], doc["status"]) == ("tr_one", "a", "b", "EUR", "posted")
    # the same id: identical parameters answer the stored transfer, others 409
    before = (state("a"), state("b"), counts())
    assert transfer("a", "b", 30, tr="tr_one") == ("duplicate", doc)
    assert transfer("a", "b", 31, tr="tr_one") == ("exists", {"transfer": "tr_one"})
    assert (state("a"), state("b"), counts()) == before
    assert json.loads(q("SELECT ledger.stored_transfer_json(%s, 'tr_one')", (TENANT,))[0][0]) == doc
    # the order of precedence: 404 from before to, currency, frozen, funds, overflow
    q("UPDATE ledger.accounts SET status = 'frozen' WHERE tenant = %s AND id = 'fz'", (TENANT,))
    assert transfer("nx1", "nx2", 1) == ("not_found", {"account": "nx1"})
    assert transfer("a", "nx2", 1000) == ("not_found", {"account": "nx2"})
    assert transfer("u", "b", 1)[0] == "currency_mismatch" and transfer("u", "b", 1)[1]["account"] == "u"
    assert transfer("fz", "u", 10**6) == ("currency_mismatch", {"account": "u", "account_currency": "USD"})
    assert transfer("fz", "b", 10**6) == ("frozen", {"account": "fz"})
    assert transfer("a", "b", 71) == ("insufficient", {"account": "a", "available": 70, "overdraft_limit": 0})
    assert credit("fz", 5)[0] == "ok"            # a frozen account accepts credits
    code, doc = transfer("b", None, 5, currency=None)   # a debit: @world, no row, seq null
    assert code == "ok" and doc["to"] == "@world:EUR" and doc["entries"][1] == \
        {"account": "@world:EUR", "seq": None, "amount": 5, "balance_after": None}, doc
    assert (state("a"), state("b")) != before[:2]
    for x in ("a", "b", "fz"):
        assert verify(x) == [], x


def test_guard_16_concurrent_debits():
    """16 debits of 20 at once from 100 with an overdraft of 50: exactly 7
    pass, the balance never goes below -50."""
    account("g", overdraft=50)
    account("sink")
    credit("g", 100)
    res, errs = run_threads(16, lambda i: transfer("g", "sink", 20))
    assert not errs, errs
    ok = [r for r in res if r[0] == "ok"]
    refused = [r for r in res if r[0] == "insufficient"]
    assert len(ok) == 7 and len(refused) == 9, res
    assert all(r[1]["account"] == "g" and r[1]["overdraft_limit"] == 50 for r in refused)
    posted = state("g")[0]
    assert posted == 100 - 7 * 20 == -40 and posted >= -50
    assert verify("g") == [] and verify("sink") == []


def test_opposite_transfers_do_not_deadlock():
    """A->B and B->A at once from 16 workers: no deadlock (40P01), exact
    balances, unbroken chains."""
    account("x1")
    account("x2")
    credit("x1", 10000)
    credit("x2", 10000)
    conns = [connect() for _ in range(16)]

    def worker(i):
        bad = []
        for _ in range(25):
            r = transfer("x1", "x2", 1, conn=conns[i]) if i % 2 == 0 else transfer("x2", "x1", 1, conn=conns[i])
            if r[0] != "ok":
                bad.append(r)
        return bad

    try:
        res, errs = run_threads(16, worker)
    finally:
        for c in conns:
            c.close()
    assert not errs, errs
    assert all(r == [] for r in res), res
    assert state("x1")[0] == 10000 and state("x2")[0] == 10000
    assert state("x1")[2] == 1 + 400 and state("x2")[2] == 1 + 400
    assert verify("x1") == [] and verify("x2") == []


def test_entries_are_append_only():
    account("ap")
    credit("ap", 5)
    before = q("SELECT count(*), sum(amount) FROM ledger.entries")[0]
    for sql in ("UPDATE ledger.entries SET amount = amount + 1",
                "UPDATE ledger.entries SET amount = 1 WHERE false",
                "DELETE FROM ledger.entries",
                "DELETE FROM ledger.entries WHERE false",
                "TRUNCATE ledger.entries"):
        try:
            q(sql)
        except psycopg2.Error as e:
            assert e.pgcode == "OLE01" and "append-only" in e.pgerror, (sql, e.pgcode, e.pgerror)
        else:
            raise AssertionError("%s was accepted" % sql)
    assert q("SELECT count(*), sum(amount) FROM ledger.entries")[0] == before


def test_overflow_at_2_63_minus_1():
    account("big")
    account("aa")       # 'aa' < 'big': its debit is the first leg, undone
    credit("aa", 10)
    assert credit("big", MAX - 5)[0] == "ok"
    snap = (state("big"), state("aa"), counts())
    for frm, amount in ((None, 6), ("aa", 6), (None, MAX)):
        code, doc = transfer(frm, "big", amount)
        assert (code, doc) == ("overflow", {"account": "big"}), (code, doc)
        assert (state("big"), state("aa"), counts()) == snap
    # up to 2^63-1 exactly is fine, one more is not
    assert transfer("aa", "big", 5)[0] == "ok" and state("big")[0] == MAX
    assert credit("big", 1) == ("overflow", {"account": "big"}) and state("big")[0] == MAX
    assert verify("big") == [] and verify("aa") == []


def batch(ts):
    """ledger.transfer_batch(): (code, doc, fresh)."""
    items = [{"id": t[3] if len(t) > 3 else fresh("tr_"), "from": t[0], "to": t[1], "amount": t[2],
              "currency": "EUR", "description": None, "metadata": "{}", "params": params(t[0], t[1], t[2])}
             for t in ts]
    code, doc, fr = q("SELECT code, doc, fresh FROM ledger.transfer_batch(%s, %s)", (TENANT, json.dumps(items)))[0]
    return code, json.loads(doc), fr


def test_batch_failing_at_57th_writes_nothing():
    for a in ("b1", "b2", "b3"):
        account(a)
    credit("b1", 1000)
    credit("b2", 1000)
    snap = ([state(a) for a in ("b1", "b2", "b3")], counts())
    ts = [("b1", "b2", 1), ("b2", "b3", 1), ("b3", "b1", 1), ("b2", "b1", 2)] * 25   # 100 transfers
    ts[56] = ("b3", "b2", 10**6)                                                        # the 57th cannot be paid
    code, doc, fr = batch(ts)
    assert (code, doc["index"], doc["account"]) == ("insufficient", 56, "b3"), doc
    assert fr is None
    assert ([state(a) for a in ("b1", "b2", "b3")], counts()) == snap
    # the same batch without the bad transfer is all written, chained
    ts[56] = ("b1", "b2", 1)
    code, doc, fr = batch(ts)
    assert (code, len(doc["transfers"]), fr) == ("ok", 100, [True] * 100), (code, doc)
    assert counts() == (snap[1][0] + 200, snap[1][1] + 100)
    for a in ("b1", "b2", "b3"):
        assert verify(a) == []
    # a transfer whose id exists with identical parameters is answered as
    # stored (not fresh), with other parameters it fails the batch
    stored = doc["transfers"][0]
    code, doc2, fr = batch([("b1", "b2", 1, stored["id"]), ("b2", "b1", 1)])
    assert code == "ok" and doc2["transfers"][0] == stored and fr == [False, True], (code, doc2, fr)
    code, doc3, fr = batch([("b2", "b1", 1), ("b1", "b2", 2, stored["id"])])
    assert (code, doc3) == ("exists", {"transfer": stored["id"], "index": 1}), (code, doc3)


def test_concurrent_batches_over_shared_accounts():
    """Batches naming the same accounts in opposite orders, 8 at once: each
    locks all its accounts in the global order first, none deadlocks."""
    for a in ("c1", "c2", "c3", "c4"):
        account(a)
        credit(a, 1000)
    one = [("c1", "c2", 1), ("c3", "c4", 1), ("c2", "c1", 1), ("c4", "c3", 1)] * 5
    other = [("c3", "c4", 1), ("c1", "c2", 1), ("c4", "c3", 1), ("c2", "c1", 1)] * 5
    res, errs = run_threads(8, lambda i: batch(one if i % 2 == 0 else other)[0])
    assert not errs, errs
    assert res == ["ok"] * 8, res
    for a in ("c1", "c2", "c3", "c4"):
        assert state(a)[0] == 1000 and state(a)[2] == 1 + 8 * 10, (a, state(a))
        assert verify(a) == []


def test_tampering_is_found_by_the_chain():
    """An entry changed with the trigger disabled (as a superuser could):
    the recomputed chain is wrong from that entry on."""
    c = connect()
    with c.cursor() as cur:
        cur.execute("ALTER TABLE ledger.entries DISABLE TRIGGER entries_append_only")
        cur.execute("UPDATE ledger.entries e SET amount = e.amount * 2 FROM ledger.accounts a"
                    " WHERE a.aid = e.account AND a.id = 'b2' AND e.seq = 3")
        cur.execute("ALTER TABLE ledger.entries ENABLE TRIGGER entries_append_only")
    c.close()
    bad = verify("b2")
    assert bad and bad[0]["seq"] == 3, bad


def test_hash_chain_recomputes():
    """Every chain so far, recomputed with hashlib.sha256; the shell
    one-liner of docs/ledger.md (taken from the page) agrees, and notices a
    changed entry."""
    rows = q("SELECT id FROM ledger.accounts WHERE tenant = %s AND seq > 0 ORDER BY id", (TENANT,))
    assert len(rows) >= 10
    for (a,) in rows:
        if a != "b2":              # tampered with above
            assert verify(a) == [], a
    if not (shutil.which("jq") and shutil.which("xxd") and shutil.which("sha256sum")):
        print("# the one-liner needs jq, xxd and sha256sum: not run")
        return
    lines = "".join(json.dumps(e) + "\n" for e in entries("b1"))
    doc = open(os.path.join(ROOT, "docs", "ledger.md")).read()
    m = re.search(r"<!-- one-liner -->\n```sh\n(.*?)```", doc, re.S)
    assert m, "the one-liner is not in docs/ledger.md"
    out = subprocess.run(["bash", "-c", m.group(1)], input=lines, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), (out.stdout[-500:], out.stderr[-500:])
    bad = lines.replace('"amount": -1,', '"amount": -2,', 1)
    assert bad != lines
    out = subprocess.run(["bash", "-c", m.group(1)], input=bad, capture_output=True, text=True, timeout=60)
    assert "BAD" in out.stdout, out.stdout[-500:]


def test_account_status_and_json():
    account("s1")
    changed, doc = q("SELECT changed, doc FROM ledger.account_set_status(%s, 's1', 'frozen')", (TENANT,))[0]
    doc = json.loads(doc)
    assert changed and doc["status"] == "frozen" and doc["version"] == 2, doc
    changed, doc = q("SELECT changed, doc FROM ledger.account_set_status(%s, 's1', 'frozen')", (TENANT,))[0]
    assert not changed and json.loads(doc)["version"] == 2
    assert q("SELECT changed, doc FROM ledger.account_set_status(%s, 'nope', 'frozen')", (TENANT,))[0] == (False, None)
    assert json.loads(doc)["balance"] == {"posted": 0, "pending": 0, "available": 0}


def test_inbox_hook():
    """ledger.inbox_post (a stub here; the inbox's migration gives it a
    body) is called once when a debit is refused for insufficient funds,
    and the legs are tried again; and by ledger.account_read when the
    account has inbox rows. Shown with a stand-in that grants overdraft."""
    account("h1")
    account("h2")
    assert transfer("h1", "h2", 50)[0] == "insufficient"          # the stub posts nothing
    q("CREATE OR REPLACE FUNCTION ledger.inbox_post(p_aid bigint) RETURNS bigint LANGUAGE plpgsql AS $$"
      " BEGIN UPDATE ledger.accounts SET overdraft_limit = overdraft_limit + 1000 WHERE aid = p_aid;"
      " DELETE FROM ledger.inbox WHERE account = p_aid; RETURN 1; END; $$")
    try:
        code, doc = transfer("h1", "h2", 50)
        assert code == "ok" and doc["entries"][0]["balance_after"] == -50, (code, doc)
        # once per call: 2000 more than it can pay is refused after one post
        code, doc = transfer("h1", "h2", 3000)
        assert (code, doc["overdraft_limit"]) == ("insufficient", 2000), (code, doc)
        # the read posts the inbox first, only when there is something in it
        read = lambda: json.loads(q("SELECT ledger.account_read(%s, 'h2')", (TENANT,))[0][0])
        assert read()["overdraft_limit"] == 0
        q("INSERT INTO ledger.inbox (account, transfer_id, amount) SELECT aid, 'tr_x', 5 FROM ledger.accounts"
          " WHERE tenant = %s AND id = 'h2'", (TENANT,))
        assert read()["overdraft_limit"] == 1000
        assert q("SELECT count(*) FROM ledger.inbox")[0][0] == 0
        assert q("SELECT ledger.account_read(%s, 'nope')", (TENANT,))[0][0] is None
    finally:
        q("CREATE OR REPLACE FUNCTION ledger.inbox_post(p_aid bigint) RETURNS bigint LANGUAGE plpgsql AS $$"
          " BEGIN RETURN 0; END; $$")
    assert verify("h1") == [] and verify("h2") == []


def test_outbox_next_n():
    """ol_outbox_next_n numbers the events of a transaction 0, 1, 2, ... and
    starts again at 0 in the next one; it is PL/pgSQL (sql/017): as an
    un-inlinable LANGUAGE sql function its body was planned again at every
    call, a fifth of a transfer's database time."""
    lang = q("SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
             " WHERE p.proname = 'ol_outbox_next_n'")
    assert lang == [("plpgsql",)], lang
    c = connect(autocommit=False)
    try:
        with c.cursor() as cur:
            for tx in range(2):
                ns = []
                for i in range(3):
                    cur.execute("INSERT INTO outbox (n, tenant, id, type, subject, time, data)"
                                " VALUES (ol_outbox_next_n(), %s, %s, 't', 's', 'now', '{}') RETURNING n",
                                (TENANT, "evt_n_%d_%d" % (tx, i)))
                    ns.append(cur.fetchone()[0])
                assert ns == [0, 1, 2], ns
                c.commit()
    finally:
        c.close()


TESTS = [test_transfer_document_and_refusals_in_order, test_guard_16_concurrent_debits,
         test_opposite_transfers_do_not_deadlock, test_entries_are_append_only, test_overflow_at_2_63_minus_1,
         test_batch_failing_at_57th_writes_nothing, test_concurrent_batches_over_shared_accounts,
         test_tampering_is_found_by_the_chain, test_hash_chain_recomputes, test_account_status_and_json,
         test_inbox_hook, test_outbox_next_n]


def create_db():
    ledgerdb.create_db([TENANT])


if __name__ == "__main__":
    sys.exit(ledgerdb.tap_main(TESTS, create_db))
