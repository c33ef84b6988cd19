#!/usr/bin/python3
"""db test of the ledger's reads on the tables of sql/012_ledger.sql
(issue #16): the SQL of sql/015_ledger_reads.sql — the chain check
ledger.verify_chain() and one page of the currency audit
ledger.audit_page() — on rows written directly into ledger.accounts,
ledger.entries, ledger.transfers and ledger.inbox (no money function
needed), each chain built with ledger.entry_hash and recomputed here with
hashlib.sha256. A tampered entry (the append-only trigger disabled, as a
superuser could) is found, with its seq.

Runs against the PostgreSQL of $ONCELEDGER_TEST_DATABASE_URL (exit 77,
skipped, without it) in a database of its own, created from sql/*.sql and
dropped at the end. Prints TAP lines ("ok N - name") that scripts/test.sh's
db suite counts.

    ONCELEDGER_TEST_DATABASE_URL=postgresql://... tests/db/test_ledger_reads.py
"""
import hashlib
import json
import sys

import ledgerdb
from ledgerdb import connect, q, rfc3339

DBNAME = ledgerdb.init("ledger_reads")
TENANT = "t1"
OTHER = "t2"
ZERO = "0" * 64


# ---- writing a ledger by hand ---------------------------------------------

_n = [0]


def fresh(prefix):
    _n[0] += 1
    return "%s%04d" % (prefix, _n[0])


def account(aid, currency="EUR", tenant=TENANT):
    q("INSERT INTO ledger.accounts (tenant, id, currency) VALUES (%s, %s, %s)", (tenant, aid, currency))


# One leg on a real account: the next entry of its chain (hash by
# ledger.entry_hash over the account's head) and the account row advanced,
# as the money functions do.
_LEG = """
WITH a AS (
    UPDATE ledger.accounts SET posted = posted + %(amt)s, seq = seq + 1, version = version + 1, prev_head = head,
           last_at = ledger.next_at(last_at, now()),
           head = ledger.entry_hash(head, id, %(amt)s, posted + %(amt)s, ledger.next_at(last_at, now()), seq + 1, %(tr)s)
     WHERE tenant = %(tenant)s AND id = %(acct)s
    RETURNING aid, seq, posted, last_at, head, prev_head)
INSERT INTO ledger.entries (account, seq, transfer_id, amount, balance_after, posted_at, hash, prev_hash)
SELECT aid, seq, %(tr)s, %(amt)s, posted, last_at, head, prev_head FROM a
RETURNING account
"""


def leg(acct, amount, tr, tenant=TENANT, conn=None):
    rows = q(_LEG, {"amt": amount, "tr": tr, "tenant": tenant, "acct": acct}, conn)
    assert rows and len(rows) == 1, (acct, rows)
    return rows[0][0]


def aid(acct, tenant=TENANT):
    return q("SELECT aid FROM ledger.accounts WHERE tenant = %s AND id = %s", (tenant, acct))[0][0]


def move(frm, to, amount, currency="EUR", tenant=TENANT):
    """A transfer: frm/to account ids, None for @world."""
    tr = fresh("tr_")
    c = connect(autocommit=False)
    try:
        f = leg(frm, -amount, tr, tenant, c) if frm else None
        t = leg(to, amount, tr, tenant, c) if to else None
        q("INSERT INTO ledger.transfers (tenant, id, from_account, to_account, amount, currency, params, created_at)"
          " VALUES (%s, %s, %s, %s, %s, %s, '{}', now())", (tenant, tr, f, t, amount, currency), c)
        # the change's event, as every ledger change writes one
        q("INSERT INTO outbox (tenant, n, id, type, subject, time, data) VALUES (%s, 0, %s, 'transfer.posted', %s, '', '{}')",
          (tenant, fresh("evt_"), tr), c)
        c.commit()
    finally:
        c.close()
    return tr


def tamper(sql, args):
    """As a superuser: the append-only trigger off for one statement."""
    c = connect(autocommit=False)
    with c.cursor() as cur:
        cur.execute("ALTER TABLE ledger.entries DISABLE TRIGGER entries_append_only")
        cur.execute(sql, args)
        assert cur.rowcount == 1, cur.rowcount
        cur.execute("ALTER TABLE ledger.entries ENABLE TRIGGER entries_append_only")
    c.commit()
    c.close()


# ---- reading it back ------------------------------------------------------


def entries(acct):
    rows = q("SELECT e.seq, e.transfer_id, e.amount, e.balance_after, e.posted_at, encode(e.hash, 'hex'),"
             " encode(e.prev_hash, 'hex') FROM ledger.entries e WHERE e.account = %s ORDER BY e.seq", (aid(acct),))
    return [{"account": acct, "seq": s, "transfer_id": t, "amount": am, "balance_after": b, "posted_at": rfc3339(p),
             "hash": h, "prev_hash": ph} for s, t, am, b, p, h, ph in rows]


def recompute(acct):
    """docs/ledger.md "The hash chain", in Python: the seq of the first bad
    entry, or None."""
    prev, bal = ZERO, 0
    for i, e in enumerate(entries(acct), 1):
        c = json.dumps({k: e[k] for k in ("account", "amount", "balance_after", "posted_at", "seq", "transfer_id")},
                       separators=(",", ":"), sort_keys=True).encode()
        bal += e["amount"]
        if e["seq"] != i or e["prev_hash"] != prev or e["balance_after"] != bal or \
                e["hash"] != hashlib.sha256(bytes.fromhex(prev) + c).hexdigest():
            return i
        prev = e["hash"]
    return None


def verify(acct, tenant=TENANT):
    """(entries, first_bad_seq, balance_matches) from ledger.verify_chain."""
    rows = q("SELECT v.entries, v.first_bad_seq, v.balance_matches FROM ledger.accounts a,"
             " ledger.verify_chain(a.aid, a.id, a.seq, a.head, a.posted) v WHERE a.tenant = %s AND a.id = %s",
             (tenant, acct))
    assert len(rows) == 1, rows
    return rows[0]


def verify_in_parts(acct, part, tenant=TENANT):
    """The chain walked part entries at a time with ledger.chain_part (as the
    daemon's verify does), in one REPEATABLE READ snapshot: (entries,
    first_bad_seq as chain_part found it, the balance, the last hash)."""
    c = connect(autocommit=False)
    try:
        with c.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute("SELECT aid FROM ledger.accounts WHERE tenant = %s AND id = %s", (tenant, acct))
            a = cur.fetchone()[0]
            n, bad, bal, last = 0, None, 0, bytes(32)
            while True:
                cur.execute("SELECT * FROM ledger.chain_part(%s, %s, %s, %s, %s, %s)", (a, acct, n, last, bal, part))
                k, bad, bal, last = cur.fetchone()
                n += k
                last = bytes(last)
                if bad is not None or k < part:
                    return n, bad, int(bal), last.hex()
    finally:
        c.rollback()
        c.close()


_PAGE = ("SELECT accounts, n_read, balances, world, failed, next_world, next_after, done, snap, moved, long_id,"
         " long_balance FROM ledger.audit_page(%s, %s, %s, %s, %s, %s, %s, %s)")
_COLS = ("accounts", "n_read", "balances", "world", "failed", "next_world", "next_after", "done", "snap", "moved",
         "long_id", "long_balance")


def audit(currency, limit=1000, max_entries=100000, tenant=TENANT, between=None, part=50000):
    """A whole pass as the daemon runs it (src/ledger/audit.c): each page in
    one REPEATABLE READ snapshot, a long chain (longer than part) walked
    outside ledger.audit_page (here by verify_chain) and the page going on
    after it. Returns the pages (each the list of its calls' rows) and the
    totals (accounts, sum, world, ok, failed, consistent)."""
    world, after, snap = False, None, None
    pages = []
    tot = {"accounts": 0, "sum": 0, "world": 0, "ok": True, "failed": []}
    while True:
        c = connect(autocommit=False)
        calls, lim, budget = [], limit, max_entries
        try:
            with c.cursor() as cur:
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                while True:
                    cur.execute(_PAGE, (tenant, currency, world, after, lim, budget, snap, part))
                    p = dict(zip(_COLS, cur.fetchone()))
                    calls.append(p)
                    tot["accounts"] += p["accounts"]
                    tot["sum"] += int(p["balances"]) + int(p["world"])
                    tot["world"] += int(p["world"])
                    tot["failed"] += json.loads(p["failed"])
                    lim -= p["accounts"]
                    budget -= min(p["n_read"], budget)
                    if p["long_id"] is None:
                        break
                    cur.execute("SELECT v.entries, v.balance_matches FROM ledger.accounts a,"
                                " ledger.verify_chain(a.aid, a.id, a.seq, a.head, a.posted) v"
                                " WHERE a.tenant = %s AND a.id = %s", (tenant, p["long_id"]))
                    n, good = cur.fetchone()
                    tot["accounts"] += 1
                    tot["sum"] += int(p["long_balance"])
                    if not good:
                        tot["failed"].append(p["long_id"])
                    lim -= 1
                    budget -= min(n, budget)
                    after = p["long_id"]
        finally:
            c.rollback()
            c.close()
        pages.append(calls)
        last = calls[-1]
        if last["done"]:
            tot["consistent"] = snap is None or not last["moved"]
            tot["ok"] = not tot["failed"] and tot["sum"] == 0
            return pages, tot
        assert len(pages) < 200, "the pass does not end"
        snap = snap or last["snap"]
        assert snap, last
        world, after = last["next_world"], last["next_after"]
        if between:
            between(len(pages))
            between = None


def page_accounts(page):
    """Accounts a page verified (its calls', and a long chain's between them)."""
    return sum(c["accounts"] for c in page) + sum(1 for c in page if c["long_id"] is not None)


# ---- tests ----------------------------------------------------------------

def test_chain_is_sha256_of_the_documented_bytes():
    """Chains written with ledger.entry_hash recompute with hashlib.sha256
    over the documented canonical bytes, and verify_chain agrees."""
    for a in ("c1", "c2", "c3"):
        account(a)
    move(None, "c1", 1000)
    move("c1", "c2", 150)
    move("c2", "c1", 50)
    move("c1", None, 25)
    move(None, "c2", 2 ** 62)
    for a, n in (("c1", 3 + 0 + 1), ("c2", 3), ("c3", 0)):
        es = entries(a)
        assert len(es) == n, (a, es)
        assert recompute(a) is None, a
        assert verify(a) == (n, None, True), (a, verify(a))
    assert entries("c1")[0]["prev_hash"] == ZERO


def test_chain_in_parts_agrees():
    """ledger.chain_part walks a chain in parts of any size with the same
    result, and finds a tampered entry whichever part it falls in."""
    account("p1")
    for amt in range(1, 11):
        move(None, "p1", amt)
    head = q("SELECT encode(head, 'hex') FROM ledger.accounts WHERE id = 'p1'")[0][0]
    for part in (1, 2, 3, 10, 11, 1000):
        assert verify_in_parts("p1", part) == (10, None, 55, head), part
    tamper("UPDATE ledger.entries SET amount = amount + 1 WHERE account = %s AND seq = 7", (aid("p1"),))
    for part in (1, 3, 6, 7, 1000):
        n, bad, _, _ = verify_in_parts("p1", part)
        assert bad == 7, (part, n, bad)
    assert verify("p1") == (10, 7, False)


def test_verify_finds_a_tampered_amount():
    account("d1")
    for amt in (10, 20, 30, 40):
        move(None, "d1", amt)
    tamper("UPDATE ledger.entries SET amount = amount + 1 WHERE account = %s AND seq = 3", (aid("d1"),))
    assert recompute("d1") == 3
    assert verify("d1") == (4, 3, False), verify("d1")


def test_verify_finds_a_tampered_balance_after_and_hash():
    account("d2")
    account("d3")
    for amt in (10, 20, 30):
        move(None, "d2", amt)
        move(None, "d3", amt)
    tamper("UPDATE ledger.entries SET balance_after = balance_after - 5 WHERE account = %s AND seq = 3", (aid("d2"),))
    assert verify("d2") == (3, 3, False), verify("d2")
    # a hash recomputed over the changed bytes breaks the next link
    tamper("UPDATE ledger.entries SET amount = 11, balance_after = 11,"
           " hash = ledger.entry_hash(prev_hash, 'd3', 11, 11, posted_at, seq, transfer_id)"
           " WHERE account = %s AND seq = 1", (aid("d3"),))
    assert recompute("d3") == 2
    assert verify("d3")[1] == 2, verify("d3")


def test_verify_checks_the_account_row():
    """The row must agree with its chain: seq and head (an entry deleted at
    the end, or the row's posted changed)."""
    account("d4")
    account("d5")
    for amt in (5, 6, 7):
        move(None, "d4", amt)
        move(None, "d5", amt)
    tamper("DELETE FROM ledger.entries WHERE account = %s AND seq = 3", (aid("d4"),))
    assert verify("d4") == (2, 3, False), verify("d4")
    q("UPDATE ledger.accounts SET posted = posted + 1 WHERE id = 'd5'")
    assert verify("d5") == (3, None, False), verify("d5")


def test_audit_sums_to_zero_with_world_and_inbox():
    for a in ("u1", "u2", "u3", "u4"):
        account(a, "USD")
    account("e1", "SEK", OTHER)
    move(None, "u1", 1000, "USD")
    move(None, "u2", 300, "USD")
    move("u1", None, 100, "USD")
    move("u1", "u2", 250, "USD")
    move("u2", "u3", 75, "USD")
    move(None, "e1", 70, "SEK", OTHER)
    # a credit waiting in u3's inbox: the customer's side is posted, u3's not yet
    # (the settlement of an order whose merchant was busy: docs/ledger-engine.md)
    leg("u1", -40, "tr_inbox")
    q("INSERT INTO ledger.transfers (tenant, id, from_account, to_account, amount, currency, params, created_at)"
      " VALUES (%s, 'tr_inbox', %s, %s, 40, 'USD', '{}', now())", (TENANT, aid("u1"), aid("u3")))
    q("INSERT INTO ledger.inbox (account, transfer_id, amount) VALUES (%s, 'tr_inbox', 40)", (aid("u3"),))
    # as one page
    pages, t = audit("USD")
    assert len(pages) == 1 and t["ok"] and t["sum"] == 0 and t["accounts"] == 4 and t["consistent"], (pages, t)
    assert t["world"] == -1300 + 100, t
    # in pages of one account, of a few entries
    for limit, max_entries in ((1, 100000), (2, 100000), (1000, 1), (1000, 2), (1, 1)):
        pages, t2 = audit("USD", limit, max_entries)
        assert len(pages) > 1, (limit, max_entries)
        assert {k: t2[k] for k in ("ok", "sum", "world", "accounts", "consistent")} == \
            {k: t[k] for k in ("ok", "sum", "world", "accounts", "consistent")}, (limit, max_entries, pages, t2)
        assert all(page_accounts(p) <= limit for p in pages), pages
    pages, _ = audit("USD", 1)
    assert [page_accounts(p) for p in pages] == [1, 1, 1, 1] and pages[-1][-1]["world"] == -1200, pages
    # chains longer than a part are walked outside the page's call: the same
    for part in (0, 1, 2):
        for limit, max_entries in ((1000, 100000), (1, 100000), (1000, 1)):
            pages, t2 = audit("USD", limit, max_entries, part=part)
            assert {k: t2[k] for k in ("ok", "sum", "world", "accounts", "consistent")} == \
                {k: t[k] for k in ("ok", "sum", "world", "accounts", "consistent")}, (part, limit, pages, t2)
            assert all(page_accounts(p) <= limit for p in pages), pages
    # another tenant's money is not in it; a currency without accounts is empty
    _, t = audit("SEK")
    assert t["accounts"] == 0 and t["sum"] == 0, t
    _, t = audit("SEK", tenant=OTHER)
    assert t["accounts"] == 1 and t["sum"] == 0 and t["world"] == -70 and t["ok"], t
    _, t = audit("GBP")
    assert t["accounts"] == 0 and t["ok"], t


def test_audit_finds_a_tampered_chain():
    for a in ("g1", "g2", "g3"):
        account(a, "GBP")
    move(None, "g1", 100, "GBP")
    move("g1", "g2", 30, "GBP")
    move("g2", "g3", 10, "GBP")
    tamper("UPDATE ledger.entries SET amount = amount + 7 WHERE account = %s AND seq = 1", (aid("g2"),))
    pages, t = audit("GBP", 1)
    assert not t["ok"] and t["failed"] == ["g2"], (pages, t)
    assert [json.loads(p[0]["failed"]) for p in pages][:3] == [[], ["g2"], []], pages
    _, t = audit("GBP", 1, part=0)  # every chain walked outside the page's call
    assert not t["ok"] and t["failed"] == ["g2"], t
    assert t["sum"] == 0, t  # posted was not changed: the sum still holds


def test_audit_pass_tells_when_money_moved():
    """Money moved between an account read on page 1 and one read later: the
    total is off, and the last page says the ledger moved since the first
    page's snapshot; a quiet pass is consistent again."""
    for a in ("m1", "m2", "m3"):
        account(a, "CHF")
    move(None, "m1", 100, "CHF")
    pages, t = audit("CHF", 1, between=lambda n: move("m1", "m3", 30, "CHF"))
    assert t["sum"] == 30 and not t["ok"] and t["consistent"] is False, (pages, t)
    _, t = audit("CHF", 1)
    assert t["sum"] == 0 and t["ok"] and t["consistent"] is True, t


def test_reads_use_their_indexes():
    """What docs/ledger.md says each read costs: index scans, no sort."""
    c = connect()
    with c.cursor() as cur:
        cur.execute("SET enable_seqscan = off")  # small tables: ask which index the planner can use
        cur.execute("EXPLAIN SELECT a.id FROM ledger.accounts a WHERE a.tenant = 't1' AND a.currency = 'USD'"
                    " AND a.id > 'u1' ORDER BY a.id LIMIT 3")
        plan = "\n".join(r[0] for r in cur.fetchall())
        assert "accounts_by_currency" in plan and "Sort" not in plan, plan
        cur.execute("EXPLAIN SELECT w.id, w.amount, w.from_account FROM ledger.transfers w WHERE w.tenant = 't1'"
                    " AND w.currency = 'USD' AND (w.from_account IS NULL OR w.to_account IS NULL) AND w.id > ''"
                    " ORDER BY w.id LIMIT 10")
        plan = "\n".join(r[0] for r in cur.fetchall())
        assert "Index Only Scan using transfers_world" in plan and "Sort" not in plan, plan
    c.close()


TESTS = [test_chain_is_sha256_of_the_documented_bytes, test_chain_in_parts_agrees, test_verify_finds_a_tampered_amount,
         test_verify_finds_a_tampered_balance_after_and_hash, test_verify_checks_the_account_row,
         test_audit_sums_to_zero_with_world_and_inbox, test_audit_finds_a_tampered_chain,
         test_audit_pass_tells_when_money_moved, test_reads_use_their_indexes]


def create_db():
    ledgerdb.create_db([TENANT, OTHER])


if __name__ == "__main__":
    sys.exit(ledgerdb.tap_main(TESTS, create_db))
