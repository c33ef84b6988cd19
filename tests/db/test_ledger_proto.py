#!/usr/bin/python3
"""db test of the SQL-only reference of issue #16's transfer
(bench/ledger_proto/transfer_fn.sql, bench/run.sh pg_transfer_fn): that it
writes every row the daemon writes for an executed idempotent transfer
(the idempotency record with its response, ledger.transfer()'s two
entries and transfer row, the outbox event), replays and refuses like the
gate, and executes a key once under concurrency — so that the ratio
ledger_transfer / pg_transfer_fn compares like with like. Also the
migration guard of sql/012_ledger.sql on a database of the old layout.

Runs against the PostgreSQL of $ONCELEDGER_TEST_DATABASE_URL (exit 77,
skipped, without it) in databases of its own, created from sql/*.sql,
dropped at the end. Prints TAP lines that scripts/test.sh's db suite counts.
"""
import json
import os
import sys
import threading

import psycopg2

import ledgerdb
from ledgerdb import connect, create_db, drop_db, q

ROOT = ledgerdb.ROOT
PROTO = os.path.join(ROOT, "bench", "ledger_proto")
TENANT = "t1"
FP = "f" * 64
DBNAME = ledgerdb.init("ledger_ref")
TID = None


def counts():
    """(records, entries, transfers, events) of the tenant."""
    return tuple(q(sql, (TENANT,))[0][0] for sql in (
        "SELECT count(*) FROM items i JOIN item_tables t ON t.id = i.table_id WHERE t.tenant = %s AND i.pk LIKE 'IDEM#%%'",
        "SELECT count(*) FROM ledger.entries e JOIN ledger.accounts a ON a.aid = e.account WHERE a.tenant = %s",
        "SELECT count(*) FROM ledger.transfers WHERE tenant = %s",
        "SELECT count(*) FROM outbox WHERE tenant = %s"))


def transfer(key, tr, frm, to, amount, fp=FP):
    params = json.dumps({"amount": amount, "from": frm, "to": to}, sort_keys=True)
    o, st, body, exp = q("SELECT outcome, status, body, expires FROM ledger_proto.transfer(%s, %s, %s, %s, 86400, 1000,"
                         " %s, %s, %s, %s, 'EUR', NULL, '{}', %s, %s)",
                         (TID, TENANT, key, fp, tr, frm, to, amount, params, "evt_" + tr))[0]
    return o, st, (json.loads(body) if body else None)


def test_executed_transfer_writes_every_row_the_daemon_writes():
    before = counts()
    o, st, body = transfer("k1", "tr_1", "a1", "a2", 30)
    assert (o, st) == ("executed", 201), (o, st, body)
    assert [(e["account"], e["amount"], e["balance_after"]) for e in body["entries"]] == \
        [("a1", -30, 970), ("a2", 30, 1030)], body
    assert counts() == tuple(b + d for b, d in zip(before, (1, 2, 1, 1))), (before, counts())
    rec = q("SELECT item FROM items WHERE table_id = %s AND pk = 'IDEM#k1'", (TID,))[0][0]
    assert rec["status"]["S"] == "completed" and rec["fingerprint"]["S"] == FP, rec
    assert json.loads(rec["response"]["M"]["body"]["S"]) == body and rec["response"]["M"]["status"]["N"] == "201"
    ev = q("SELECT type, subject, data FROM outbox WHERE tenant = %s AND id = 'evt_tr_1'", (TENANT,))[0]
    assert ev[0] == "transfer.posted" and ev[1] == "tr_1" and json.loads(ev[2]) == body, ev


def test_replay_and_mismatch_write_nothing():
    o, st, body = transfer("k2", "tr_2", "a1", "a2", 5)
    before = counts()
    assert transfer("k2", "tr_2", "a1", "a2", 5) == ("replay", 201, body)
    assert transfer("k2", "tr_2", "a1", "a2", 6, fp="e" * 64)[:2] == ("mismatch", 422)
    assert counts() == before


def test_refusal_is_saved_and_moves_nothing():
    before = counts()
    o, st, body = transfer("k3", "tr_3", "a1", "a2", 10**9)
    assert (o, st, body["account"]) == ("executed", 402, "a1"), (o, st, body)
    assert counts() == (before[0] + 1, before[1], before[2], before[3])
    assert transfer("k3", "tr_3", "a1", "a2", 10**9)[:2] == ("replay", 402)


def test_concurrent_duplicates_execute_once():
    before = counts()
    barrier = threading.Barrier(8)
    res, errs = [], []

    def one():
        try:
            barrier.wait()
            res.append(transfer("kdup", "tr_dup", "a3", "a4", 7))
        except Exception as e:  # noqa: BLE001 - reported as the failure
            errs.append(repr(e))

    ts = [threading.Thread(target=one) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errs, errs
    assert sorted(r[0] for r in res) == ["executed"] + ["replay"] * 7, [r[:2] for r in res]
    assert counts() == tuple(b + d for b, d in zip(before, (1, 2, 1, 1)))


def test_migration_012_refuses_a_database_of_the_old_layout():
    """sql/012_ledger.sql on a database holding ledger items of the item
    layout (an ACCOUNT# item of ol:ledger): OLM01 with the advice as hint,
    nothing created; idempotency records alone do not stop it."""
    name = DBNAME + "_old"
    create_db(name=name, upto="012")
    try:
        q("INSERT INTO tenants (name) VALUES ('old')", dbname=name)
        tid = q("SELECT id FROM item_tables WHERE tenant = 'old' AND name = 'ol:ledger'", dbname=name)[0][0]
        q("INSERT INTO items (table_id, pk, sk, item) VALUES (%s, 'IDEM#x', 'METADATA', '{}')", (tid,), dbname=name)
        m012 = open(os.path.join(ROOT, "sql", "012_ledger.sql")).read()
        c = connect(name)
        with c.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(m012)          # only an idempotency record: applies
            cur.execute("ROLLBACK")
            cur.execute("INSERT INTO items (table_id, pk, sk, item) VALUES (%s, 'ACCOUNT#old', 'METADATA', '{}')", (tid,))
            cur.execute("BEGIN")
            try:
                cur.execute(m012)
            except psycopg2.Error as e:
                cur.execute("ROLLBACK")
                assert e.pgcode == "OLM01", e.pgcode
                assert "item layout of an earlier version (1 accounts" in e.pgerror, e.pgerror
                assert "migrate a fresh database" in (e.diag.message_hint or ""), e.diag.message_hint
            else:
                raise AssertionError("012 applied over old ledger items")
            cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'ledger'")
            assert cur.fetchone()[0] == 0
        c.close()
    finally:
        drop_db(name)


TESTS = [test_executed_transfer_writes_every_row_the_daemon_writes, test_replay_and_mismatch_write_nothing,
         test_refusal_is_saved_and_moves_nothing, test_concurrent_duplicates_execute_once,
         test_migration_012_refuses_a_database_of_the_old_layout]


def setup():
    global TID
    create_db()
    q(open(os.path.join(PROTO, "transfer_fn.sql")).read())
    q("INSERT INTO tenants (name) VALUES (%s)", (TENANT,))
    TID = q("SELECT id FROM item_tables WHERE tenant = %s AND name = 'ol:ledger'", (TENANT,))[0][0]
    q("INSERT INTO ledger.accounts (tenant, id, currency, posted) SELECT %s, 'a' || g, 'EUR', 1000"
      " FROM generate_series(1, 4) g", (TENANT,))


if __name__ == "__main__":
    sys.exit(ledgerdb.tap_main(TESTS, setup))
