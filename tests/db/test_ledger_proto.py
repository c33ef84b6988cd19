#!/usr/bin/python3
"""db test of issue #16's prototype SQL (bench/ledger_proto/): the typed
money tables and the transfer written two ways, the server-side function
(transfer_fn.sql) and the statements of the pgbench pipeline
(transfer_pipe.pgbench, run here one by one with the same text).

Runs against the PostgreSQL of $ONCELEDGER_TEST_DATABASE_URL (exit 77,
skipped, without it) in a database of its own, created from sql/*.sql (the
real migrations: items, tenants, outbox) and the prototype, dropped at the
end. Prints TAP lines ("ok N - name") that scripts/test.sh's db suite counts.

    ONCELEDGER_TEST_DATABASE_URL=postgresql://... tests/db/test_ledger_proto.py
"""
import datetime
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import traceback

import psycopg2
import psycopg2.extensions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO = os.path.join(ROOT, "bench", "ledger_proto")
MAX = 2**63 - 1
TENANT = "t1"
FP = "f" * 64

URL = os.environ.get("ONCELEDGER_TEST_DATABASE_URL", "")
if not URL:
    print("1..0 # SKIP ONCELEDGER_TEST_DATABASE_URL not set")
    sys.exit(77)

DBNAME = "ledger_proto_%d" % os.getpid()
_dsn = psycopg2.extensions.parse_dsn(URL)


def connect(dbname=DBNAME, autocommit=True):
    c = psycopg2.connect(**dict(_dsn, dbname=dbname))
    c.autocommit = autocommit
    return c


def create_db():
    admin = connect(_dsn.get("dbname", "postgres"))
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s" % DBNAME)
        cur.execute("CREATE DATABASE %s" % DBNAME)
    admin.close()
    c = connect()
    with c.cursor() as cur:
        cur.execute("SET client_min_messages = warning")
        for f in sorted(glob.glob(os.path.join(ROOT, "sql", "[0-9]*.sql"))):
            cur.execute("BEGIN")
            cur.execute(open(f).read())
            cur.execute("COMMIT")
        cur.execute(open(os.path.join(PROTO, "schema.sql")).read())
        cur.execute(open(os.path.join(PROTO, "transfer_fn.sql")).read())
        cur.execute("INSERT INTO tenants (name) VALUES (%s)", (TENANT,))
        cur.execute("SELECT id FROM item_tables WHERE tenant = %s AND name = 'ol:ledger'", (TENANT,))
        tid = cur.fetchone()[0]
    c.close()
    return tid


def drop_db():
    admin = connect(_dsn.get("dbname", "postgres"))
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DBNAME)
    admin.close()


TID = None
_seq = [0]
_seq_lock = threading.Lock()


def fresh(prefix):
    with _seq_lock:
        _seq[0] += 1
        return "%s%d" % (prefix, _seq[0])


def q(sql, args=None, conn=None):
    c = conn or connect()
    try:
        with c.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None
    finally:
        if conn is None:
            c.close()


def account(aid, currency="EUR", overdraft=0):
    q("INSERT INTO ledger_proto.accounts (tenant, id, currency, overdraft_limit) VALUES (%s, %s, %s, %s)",
      (TENANT, aid, currency, overdraft))


def transfer(frm, to, amount, conn=None, key=None, tr=None, fp=FP, client_id=False):
    """ledger_proto.transfer(): (outcome, status, body dict or None)."""
    key = key or fresh("k")
    tr = tr or fresh("tr_")
    params = json.dumps({"amount": amount, "from": frm, "to": to}, sort_keys=True)
    rows = q("SELECT outcome, status, body FROM ledger_proto.transfer(%s, %s, %s, %s, 86400, 1000, %s, %s, %s, %s,"
             " 'EUR', NULL, '{}', %s, %s, %s)",
             (TID, TENANT, key, fp, tr, frm, to, amount, params, fresh("evt_"), client_id), conn)
    o, st, body = rows[0]
    return o, st, (json.loads(body) if body else None)


def credit(acct, amount, conn=None):
    return transfer("@world:EUR", acct, amount, conn)


# ---- the pipeline's statements, read from the pgbench script ------------

def pipe_statements():
    """The SQL lines of transfer_pipe.pgbench with their \\if branches."""
    out = []
    for line in open(os.path.join(PROTO, "transfer_pipe.pgbench")):
        line = line.rstrip("\n")
        if not line or line.startswith("--") or line.startswith("\\set") or "pipeline" in line:
            continue
        out.append(line)
    return out


PIPE = None


def pipe_transfer(conn, frm_n, to_n, r):
    """Runs the pipeline variant's statements (ids a<10000+n>, amount 1) in
    one transaction of conn (autocommit: the script has its own BEGIN
    and COMMIT). Returns None, "refused" (a leg's guarded UPDATE returned no
    row: rolled back) or the SQLSTATE that stopped it."""
    body = '{"id":"tr_%d"}' % r
    v = {"tid": TID, "tenant": TENANT, "fp": FP, "params": "{}", "body": body, "r": r,
         "fa": 10000 + frm_n, "fb": 10000 + to_n}
    take = True
    with conn.cursor() as cur:
        try:
            for line in PIPE:
                if line.startswith("\\if"):
                    take = v["fa"] < v["fb"]   # the script's only condition
                elif line == "\\else":
                    take = not take
                elif line == "\\endif":
                    take = True
                elif take:
                    cur.execute(re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", line.rstrip(";")), v)
                    if line.startswith("UPDATE ledger_proto.accounts") and cur.rowcount != 1:
                        # a refused leg: the daemon rolls back (and saves the problem)
                        cur.execute("ROLLBACK")
                        return "refused"
            return None
        except psycopg2.Error as e:
            cur.execute("ROLLBACK")
            return e.pgcode


# ---- checks ---------------------------------------------------------------

def state(acct):
    return q("SELECT posted, pending, seq, version, head FROM ledger_proto.accounts WHERE tenant = %s AND id = %s",
             (TENANT, acct))[0]


def counts():
    return q("SELECT (SELECT count(*) FROM ledger_proto.entries), (SELECT count(*) FROM ledger_proto.transfers),"
             " (SELECT count(*) FROM outbox)")[0]


def rfc3339(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(acct, e):
    return json.dumps({"account": acct, "amount": e["amount"], "balance_after": e["balance_after"],
                       "posted_at": e["posted_at"], "seq": e["seq"], "transfer_id": e["transfer_id"]},
                      separators=(",", ":"), sort_keys=True).encode()


def api_entries(acct):
    """The account's entries as GET /v1/accounts/{id}/entries would give them."""
    rows = q("SELECT e.seq, e.transfer_id, e.amount, e.balance_after, e.posted_at, encode(e.hash, 'hex'),"
             " encode(e.prev_hash, 'hex') FROM ledger_proto.entries e JOIN ledger_proto.accounts a ON a.aid = e.account"
             " WHERE a.tenant = %s AND a.id = %s ORDER BY e.seq", (TENANT, acct))
    return [{"account": acct, "seq": s, "transfer_id": t, "amount": am, "balance_after": b, "posted_at": rfc3339(p),
             "hash": h, "prev_hash": ph} for s, t, am, b, p, h, ph in rows]


def verify(acct):
    """Recomputes the chain with Python's hashlib: [] or what is wrong."""
    bad = []
    prev, bal = "0" * 64, 0
    for i, e in enumerate(api_entries(acct), 1):
        h = hashlib.sha256(bytes.fromhex(prev) + canonical(acct, e)).hexdigest()
        bal += e["amount"]
        if e["seq"] != i or e["prev_hash"] != prev or e["hash"] != h or e["balance_after"] != bal:
            bad.append(e)
        prev = e["hash"]
    posted, _, seq, _, head = state(acct)
    if posted != bal or bytes(head).hex() != prev or seq != len(api_entries(acct)):
        bad.append({"account": acct, "posted": posted, "sum": bal, "head": bytes(head).hex(), "last": prev})
    return bad


def run_threads(n, fn):
    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def one(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported as the test's failure
            errors.append("%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return results, errors


# ---- tests ------------------------------------------------------------------

def test_transfer_executes_and_replays():
    account("a"), account("b")
    assert credit("a", 100)[:2] == ("executed", 201)
    before = counts()
    o, st, body = transfer("a", "b", 30, key="kr1", tr="tr_r1")
    assert (o, st) == ("executed", 201), (o, st, body)
    assert [(e["account"], e["seq"], e["amount"], e["balance_after"]) for e in body["entries"]] == \
        [("a", 2, -30, 70), ("b", 1, 30, 30)], body
    assert counts() == (before[0] + 2, before[1] + 1, before[2] + 1)
    # the same key again: the saved response, nothing written
    o2, st2, body2 = transfer("a", "b", 30, key="kr1", tr="tr_r1")
    assert (o2, st2, body2) == ("replay", 201, body) and counts() == (before[0] + 2, before[1] + 1, before[2] + 1)
    # the same key with another request: a mismatch
    assert transfer("a", "b", 31, key="kr1", fp="e" * 64)[:2] == ("mismatch", 422)
    rec = q("SELECT item FROM items WHERE table_id = %s AND pk = 'IDEM#kr1'", (TID,))[0][0]
    assert rec["status"]["S"] == "completed" and json.loads(rec["response"]["M"]["body"]["S"]) == body, rec
    # an expired record is a new key: taken over, the request executes again
    q("UPDATE items SET expires_at = 1 WHERE table_id = %s AND pk = 'IDEM#kr1'", (TID,))
    o3, st3, body3 = transfer("a", "b", 5, key="kr1", tr="tr_r3")
    assert (o3, st3, body3["id"]) == ("executed", 201, "tr_r3"), (o3, st3, body3)
    assert transfer("a", "b", 5, key="kr1", tr="tr_r3")[:3] == ("replay", 201, body3)
    assert verify("a") == [] and verify("b") == []


def test_concurrent_duplicates_execute_once():
    """8 requests with one key at once: one executes, the others wait for
    it on the key's advisory lock and replay its response; both variants."""
    account("d1")
    account("d2")
    credit("d1", 100)
    before = counts()
    res, errs = run_threads(8, lambda i: transfer("d1", "d2", 7, key="kdup", tr="tr_dup"))
    assert not errs, errs
    assert sorted(r[0] for r in res) == ["executed"] + ["replay"] * 7, [r[:2] for r in res]
    assert all(r[1:] == res[0][1:] for r in res)
    assert counts() == (before[0] + 2, before[1] + 1, before[2] + 1)
    assert state("d1")[0] == 93 and verify("d1") == [] and verify("d2") == []
    account("a10007")
    account("a10008")
    credit("a10007", 100)
    conns = [connect() for _ in range(8)]
    try:
        res, errs = run_threads(8, lambda i: pipe_transfer(conns[i], 7, 8, 4 * 10**12))
    finally:
        for c in conns:
            c.close()
    assert not errs, errs
    assert sorted(res, key=str) == [None] + ["OLC01"] * 7, res
    assert state("a10007")[0] == 99 and verify("a10007") == []


def test_guard_16_concurrent_debits():
    """16 debits of 20 at once from 100 with an overdraft of 50: exactly 7
    pass, the balance never goes below -50; both variants."""
    account("g", overdraft=50)
    account("sink")
    credit("g", 100)
    res, errs = run_threads(16, lambda i: transfer("g", "sink", 20))
    assert not errs, errs
    ok = [r for r in res if r[1] == 201]
    refused = [r for r in res if r[1] == 402]
    assert len(ok) == 7 and len(refused) == 9, [r[:2] for r in res]
    assert all(r[2]["code"] == "insufficient_funds" and r[2]["account"] == "g" for r in refused)
    posted = state("g")[0]
    assert posted == 100 - 7 * 20 == -40 and posted >= -50
    assert verify("g") == [] and verify("sink") == []

    # the pipeline's statements: a<10000+n> accounts, debits of 1
    account("a10001", overdraft=3)
    account("a10002")
    conns = [connect() for _ in range(16)]
    try:
        res, errs = run_threads(16, lambda i: pipe_transfer(conns[i], 1, 2, 10**12 + i))
    finally:
        for c in conns:
            c.close()
    assert not errs, errs
    assert res.count(None) == 3 and res.count("refused") == 13, res
    assert state("a10001")[0] == -3
    assert verify("a10001") == [] and verify("a10002") == []


def test_opposite_transfers_do_not_deadlock():
    """A->B and B->A at once, both variants mixed: no deadlock (40P01),
    exact balances, unbroken chains."""
    account("a10003")
    account("a10004")
    credit("a10003", 10000)
    credit("a10004", 10000)
    conns = [connect() for _ in range(16)]

    def worker(i):
        bad = []
        for j in range(25):
            if i < 8:      # the function; even workers A->B, odd B->A
                r = transfer("a10003", "a10004", 1, conn=conns[i]) if i % 2 == 0 else \
                    transfer("a10004", "a10003", 1, conn=conns[i])
                if r[1] != 201:
                    bad.append(r)
            else:          # the pipeline's statements
                code = pipe_transfer(conns[i], 3, 4, 2 * 10**12 + i * 1000 + j) if i % 2 == 0 else \
                    pipe_transfer(conns[i], 4, 3, 2 * 10**12 + i * 1000 + j)
                if code is not None:
                    bad.append(code)
        return bad

    try:
        res, errs = run_threads(16, worker)
    finally:
        for c in conns:
            c.close()
    assert not errs, errs
    assert all(r == [] for r in res), res
    assert state("a10003")[0] == 10000 and state("a10004")[0] == 10000
    assert state("a10003")[2] == 1 + 400 and state("a10004")[2] == 1 + 400   # 16 x 25 transfers, each on both
    assert verify("a10003") == [] and verify("a10004") == []


def test_entries_are_append_only():
    account("ap")
    credit("ap", 5)
    before = q("SELECT count(*), sum(amount) FROM ledger_proto.entries")[0]
    for sql in ("UPDATE ledger_proto.entries SET amount = amount + 1",
                "UPDATE ledger_proto.entries SET amount = 1 WHERE false",
                "DELETE FROM ledger_proto.entries",
                "TRUNCATE ledger_proto.entries CASCADE"):
        try:
            q(sql)
        except psycopg2.Error as e:
            assert e.pgcode == "OLE01" and "append-only" in e.pgerror, (sql, e.pgcode, e.pgerror)
        else:
            raise AssertionError("%s was accepted" % sql)
    assert q("SELECT count(*), sum(amount) FROM ledger_proto.entries")[0] == before


def test_overflow_refused_and_nothing_changes():
    account("big")
    account("aa")       # 'aa' < 'big': its debit is the first leg, undone
    credit("aa", 10)
    assert credit("big", MAX - 5)[1] == 201
    snap = (state("big"), state("aa"), counts())
    for frm, amount in (("@world:EUR", 6), ("aa", 6), ("@world:EUR", MAX)):
        o, st, body = transfer(frm, "big", amount)
        assert (o, st, body["code"], body["account"]) == ("executed", 422, "amount_overflow", "big"), body
        assert (state("big"), state("aa"), counts()) == snap
    # up to 2^63-1 exactly is fine, one more is not
    assert transfer("aa", "big", 5)[1] == 201 and state("big")[0] == MAX
    assert credit("big", 1)[2]["code"] == "amount_overflow" and state("big")[0] == MAX
    # the pipeline's credit leg refuses it too
    account("a10005")
    account("a10006")
    credit("a10005", 10)
    credit("a10006", MAX)
    snap = (state("a10005"), state("a10006"), counts())
    c = connect()
    try:
        assert pipe_transfer(c, 5, 6, 3 * 10**12) == "refused"
    finally:
        c.close()
    assert (state("a10005"), state("a10006"), counts()) == snap
    for a in ("big", "aa", "a10005", "a10006"):
        assert verify(a) == []


def batch(transfers, key=None):
    key = key or fresh("kb")
    n = len(transfers)
    rows = q("SELECT outcome, status, body FROM ledger_proto.transfer_batch(%s, %s, %s, %s, 86400, 1000, %s, %s, %s,"
             " %s::bigint[], %s, %s, %s, %s)",
             (TID, TENANT, key, FP, [fresh("tr_") for _ in range(n)], [t[0] for t in transfers],
              [t[1] for t in transfers], [t[2] for t in transfers], ["EUR"] * n, ["{}"] * n,
              [fresh("evt_") for _ in range(n)], [False] * n))
    o, st, body = rows[0]
    return o, st, json.loads(body)


def test_batch_failing_at_57th_writes_nothing():
    for a in ("b1", "b2", "b3"):
        account(a)
    credit("b1", 1000)
    credit("b2", 1000)
    snap = ([state(a) for a in ("b1", "b2", "b3")], counts())
    ts = [("b1", "b2", 1), ("b2", "b3", 1), ("b3", "b1", 1), ("b2", "b1", 2)] * 25   # 100 transfers
    ts[56] = ("b3", "b2", 10**6)                                                        # the 57th cannot be paid
    o, st, body = batch(ts, key="kb57")
    assert (o, st, body["code"], body["index"], body["account"]) == ("executed", 402, "insufficient_funds", 56, "b3"), body
    assert ([state(a) for a in ("b1", "b2", "b3")], counts()) == snap
    rec = q("SELECT item FROM items WHERE table_id = %s AND pk = 'IDEM#kb57'", (TID,))[0][0]
    assert rec["status"]["S"] == "completed" and rec["response"]["M"]["status"]["N"] == "402", rec
    # the same batch without the bad transfer is all written, chained
    ts[56] = ("b1", "b2", 1)
    o, st, body = batch(ts)
    assert (o, st, len(body["transfers"])) == ("executed", 201, 100), (o, st)
    assert counts() == (snap[1][0] + 200, snap[1][1] + 100, snap[1][2] + 100)
    for a in ("b1", "b2", "b3"):
        assert verify(a) == []


def test_hash_chain_recomputes():
    """Every chain so far, recomputed with hashlib; a tampered entry (the
    trigger disabled, as a superuser could) is found; the documented shell
    one-liner (docs/ledger-engine.md) agrees."""
    rows = q("SELECT id FROM ledger_proto.accounts WHERE seq > 0 ORDER BY id")
    assert len(rows) >= 10
    for (a,) in rows:
        assert verify(a) == [], a
    # the shell one-liner over the API's JSON lines
    if shutil.which("jq") and shutil.which("xxd") and shutil.which("sha256sum"):
        lines = "".join(json.dumps(e) + "\n" for e in api_entries("b1"))
        doc = open(os.path.join(ROOT, "docs", "ledger-engine.md")).read()
        m = re.search(r"<!-- one-liner -->\n```sh\n(.*?)```", doc, re.S)
        assert m, "the one-liner is not in docs/ledger-engine.md"
        out = subprocess.run(["bash", "-c", m.group(1)], input=lines, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.strip().endswith("ok"), (out.stdout[-500:], out.stderr[-500:])
        # and it notices a wrong hash
        bad = lines.replace('"amount": -1,', '"amount": -2,', 1)
        out = subprocess.run(["bash", "-c", m.group(1)], input=bad, capture_output=True, text=True, timeout=60)
        assert "BAD" in out.stdout, out.stdout[-500:]
    c = connect()
    with c.cursor() as cur:
        cur.execute("ALTER TABLE ledger_proto.entries DISABLE TRIGGER entries_append_only")
        cur.execute("UPDATE ledger_proto.entries e SET amount = e.amount * 2 FROM ledger_proto.accounts a"
                    " WHERE a.aid = e.account AND a.id = 'b2' AND e.seq = 3")
        cur.execute("ALTER TABLE ledger_proto.entries ENABLE TRIGGER entries_append_only")
    c.close()
    bad = verify("b2")
    assert bad and bad[0]["seq"] == 3, bad


def test_concurrent_batches_over_shared_accounts():
    """Batches naming the same accounts in opposite orders, 8 at once:
    each locks all its accounts in the global order first, so none
    deadlocks, and all are applied."""
    for a in ("c1", "c2", "c3", "c4"):
        account(a)
        credit(a, 1000)
    # one starts with c1/c2 and then needs c3/c4, the other the reverse
    one = [("c1", "c2", 1), ("c3", "c4", 1), ("c2", "c1", 1), ("c4", "c3", 1)] * 5
    other = [("c3", "c4", 1), ("c1", "c2", 1), ("c4", "c3", 1), ("c2", "c1", 1)] * 5
    res, errs = run_threads(8, lambda i: batch(one if i % 2 == 0 else other)[:2])
    assert not errs, errs
    assert res == [("executed", 201)] * 8, res
    for a in ("c1", "c2", "c3", "c4"):
        assert state(a)[0] == 1000 and state(a)[2] == 1 + 8 * 10, (a, state(a))
        assert verify(a) == []


def test_migration_guard_refuses_old_ledger_items():
    """bench/ledger_proto/migration_guard.sql: passes on a database with
    only idempotency records (twice in a row), refuses one with an account
    item of the old layout, with the message and nothing changed."""
    guard = open(os.path.join(PROTO, "migration_guard.sql")).read()
    q(guard)
    q(guard)
    q("INSERT INTO items (table_id, pk, sk, item) VALUES (%s, 'ACCOUNT#old', 'METADATA', '{}')", (TID,))
    try:
        q(guard)
    except psycopg2.Error as e:
        assert e.pgcode == "OLM01", e.pgcode
        assert "item layout of an earlier version (1 accounts" in e.pgerror, e.pgerror
        assert "migrate a fresh database" in (e.diag.message_hint or ""), e.diag.message_hint
    else:
        raise AssertionError("the guard accepted old ledger items")
    finally:
        q("DELETE FROM items WHERE table_id = %s AND pk = 'ACCOUNT#old'", (TID,))
    q(guard)


TESTS = [test_transfer_executes_and_replays, test_concurrent_duplicates_execute_once, test_guard_16_concurrent_debits,
         test_opposite_transfers_do_not_deadlock, test_entries_are_append_only,
         test_overflow_refused_and_nothing_changes, test_batch_failing_at_57th_writes_nothing,
         test_hash_chain_recomputes, test_concurrent_batches_over_shared_accounts,
         test_migration_guard_refuses_old_ledger_items]


def main():
    global TID, PIPE
    PIPE = pipe_statements()
    failed = 0
    print("1..%d" % len(TESTS))
    try:
        TID = create_db()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        for i, t in enumerate(TESTS, 1):
            print("not ok %d - %s # setup failed" % (i, t.__name__))
        return 1
    try:
        for i, t in enumerate(TESTS, 1):
            try:
                t()
                print("ok %d - %s" % (i, t.__name__))
            except Exception:  # noqa: BLE001
                failed += 1
                print("not ok %d - %s" % (i, t.__name__))
                for line in traceback.format_exc().splitlines():
                    print("# " + line)
            sys.stdout.flush()
    finally:
        drop_db()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
