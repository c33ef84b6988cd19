"""The hot merchant (docs/orders.md "The hot merchant"): a settlement that
finds the merchant's row locked credits the merchant's inbox instead of
waiting, and consolidation posts the inbox into the account as ordinary
entries (seq gapless, balance_after, hash chain). Checked here:

- many concurrent settlements to one merchant: all paid, the balance read
  afterwards is exactly the sum, the entries are gapless with every
  settlement exactly once, the chain and the audit verify;
- deterministically (the merchant's row held by another transaction, no
  sweeper): the settlement does not wait, its merchant leg has no seq yet,
  the audit counts the inbox, and a refund / debit / hold that only the
  inbox money covers consolidates first and succeeds;
- the sweeper consolidates on its own."""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from oltest import assert_problem, lock_account, poll

CUR = "EUR"


def _ik():
    return uuid.uuid4().hex


def post(d, path, key, body=None, session=None):
    return d.post(path, key=key, json=body or {}, headers={"Idempotency-Key": _ik()}, session=session, timeout=30)


def account(d, key, funded=0):
    r = post(d, "/v1/accounts", key, {"currency": CUR})
    assert r.status_code == 201, r.text
    acc = r.json()["id"]
    if funded:
        r = post(d, f"/v1/accounts/{acc}/credits", key, {"amount": funded})
        assert r.status_code == 201, r.text
    return acc


def order(d, key, customer, merchant, amount):
    r = post(d, "/v1/orders", key, {"customer": customer, "merchant": merchant, "amount": amount, "currency": CUR})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def entries(d, akey, acc):
    out, params = [], {"order": "asc", "limit": 1000}
    while True:
        r = d.get(f"/v1/accounts/{acc}/entries", key=akey, params=params)
        assert r.status_code == 200, r.text
        out.extend(r.json()["data"])
        if not r.json()["next_cursor"]:
            return out
        params["cursor"] = r.json()["next_cursor"]


def posted(d, key, acc):
    r = d.get(f"/v1/accounts/{acc}", key=key)
    assert r.status_code == 200, r.text
    return r.json()["balance"]["posted"]


def check_chain(d, akey, acc, expect_posted):
    es = entries(d, akey, acc)
    assert [e["seq"] for e in es] == list(range(1, len(es) + 1)), es
    assert sum(e["amount"] for e in es) == expect_posted
    v = d.get(f"/v1/accounts/{acc}/verify", key=akey).json()
    assert v["ok"] is True and v["balance_matches"] is True, v
    return es


@pytest.fixture
def keys(make_key):
    return make_key("read,write"), make_key("audit")


# Every test here uses its own daemons (daemon_factory), never the module's:
# the sweeper consolidates inboxes of every tenant, so one running daemon
# with a sweeper would race the tests that need a merchant's inbox left
# alone (seen under ASan: a refund's entries read while a sweeper's
# consolidation of the third credit was still uncommitted).
def test_flash_sale_to_one_merchant(daemon_factory, keys):
    d = daemon_factory("--hold-sweep-interval-ms", "0")
    wkey, akey = keys
    n = 96
    m = account(d, wkey)
    customers = [account(d, wkey, funded=100) for _ in range(n)]
    orders = [order(d, wkey, c, m, 10) for c in customers]
    local = threading.local()

    def settle(oid):
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        return post(d, f"/v1/orders/{oid}/settle", wkey, session=s)

    with ThreadPoolExecutor(32) as ex:
        rs = list(ex.map(settle, orders))
    assert [r.status_code for r in rs] == [200] * n, [r.text for r in rs if r.status_code != 200][:3]
    tids = [r.json()["transfer_id"] for r in rs]
    # the balance read afterwards is exact (a GET posts the inbox first)
    assert posted(d, wkey, m) == 10 * n
    es = check_chain(d, akey, m, 10 * n)
    assert sorted(e["transfer_id"] for e in es) == sorted(tids)
    for c in customers:
        assert posted(d, wkey, c) == 90
    a = d.get("/v1/audit/verify", key=akey, params={"currency": CUR}).json()
    assert a["ok"] is True and a["sum"] == 0, a


def test_locked_merchant_is_credited_through_its_inbox(stack, tenant, make_key, daemon_factory):
    d = daemon_factory("--hold-sweep-interval-ms", "0")
    wkey, akey = make_key("read,write"), make_key("audit")
    m = account(d, wkey)
    c = account(d, wkey, funded=500)
    o1, o2, o3 = order(d, wkey, c, m, 100), order(d, wkey, c, m, 150), order(d, wkey, c, m, 50)
    conn = lock_account(stack.database_url, tenant, m)
    try:
        t0 = time.monotonic()
        r = post(d, f"/v1/orders/{o1}/settle", wkey)
        assert r.status_code == 200, r.text
        assert time.monotonic() - t0 < 5, "the settlement waited for the merchant's lock"
        r2 = post(d, f"/v1/orders/{o2}/settle", wkey)   # the merchant is hot now: straight to the inbox
        assert r2.status_code == 200, r2.text
        r3 = post(d, f"/v1/orders/{o3}/settle", wkey)
        assert r3.status_code == 200, r3.text
        t = d.get(f"/v1/transfers/{r.json()['transfer_id']}", key=wkey).json()
        leg = [e for e in t["entries"] if e["account"] == m][0]
        assert leg == {"account": m, "seq": None, "amount": 100, "balance_after": None}, t
        cust = [e for e in t["entries"] if e["account"] == c][0]
        assert cust["seq"] == 2 and cust["balance_after"] == 400, t
        # the audit counts the inbox as money: the sum is still 0
        a = d.get("/v1/audit/verify", key=akey, params={"currency": CUR}).json()
        assert a["ok"] is True and a["sum"] == 0, a
    finally:
        conn.rollback()
        conn.close()
    # nothing consolidated yet (no sweeper, no GET): the chain is empty
    assert entries(d, akey, m) == []
    # a refund only the inbox covers: consolidated first, then paid out
    r = post(d, f"/v1/orders/{o1}/refund", wkey)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refunded"
    es = check_chain(d, akey, m, 300 - 100)
    assert [e["amount"] for e in es] == [100, 150, 50, -100], es
    assert [e["balance_after"] for e in es] == [100, 250, 300, 200], es
    assert posted(d, wkey, m) == 200 and posted(d, wkey, c) == 300


def test_debit_and_hold_consolidate_the_inbox_first(stack, tenant, make_key, daemon_factory):
    d = daemon_factory("--hold-sweep-interval-ms", "0")
    wkey, akey = make_key("read,write"), make_key("audit")
    m = account(d, wkey)
    c = account(d, wkey, funded=300)
    o1, o2 = order(d, wkey, c, m, 120), order(d, wkey, c, m, 80)
    conn = lock_account(stack.database_url, tenant, m)
    try:
        assert post(d, f"/v1/orders/{o1}/settle", wkey).status_code == 200
    finally:
        conn.rollback()
        conn.close()
    # a debit the inbox alone covers
    r = post(d, f"/v1/accounts/{m}/debits", wkey, {"amount": 100})
    assert r.status_code == 201, r.text
    # the merchant is still hot (2 s): the next settlement goes to the inbox
    assert post(d, f"/v1/orders/{o2}/settle", wkey).status_code == 200
    r = post(d, "/v1/holds", wkey, {"from": m, "to": c, "amount": 90, "currency": CUR})
    assert r.status_code == 201, r.text
    # and what nothing covers is still refused
    body = assert_problem(post(d, f"/v1/accounts/{m}/debits", wkey, {"amount": 11}), 402, "insufficient_funds")
    assert body["account"] == m
    assert posted(d, wkey, m) == 100
    check_chain(d, akey, m, 100)


def test_the_sweeper_consolidates(stack, tenant, make_key, daemon_factory):
    d = daemon_factory("--hold-sweep-interval-ms", "200")
    wkey, akey = make_key("read,write"), make_key("audit")
    m = account(d, wkey)
    c = account(d, wkey, funded=50)
    o = order(d, wkey, c, m, 50)
    conn = lock_account(stack.database_url, tenant, m)
    try:
        assert post(d, f"/v1/orders/{o}/settle", wkey).status_code == 200
    finally:
        conn.rollback()
        conn.close()
    es = poll(lambda: entries(d, akey, m), 10)
    assert [(e["seq"], e["amount"], e["balance_after"]) for e in es] == [(1, 50, 50)], es
    check_chain(d, akey, m, 50)
