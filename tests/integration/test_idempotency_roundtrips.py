"""How many PostgreSQL round trips the Idempotency-Key gate costs.

onceledger_db_round_trips_total counts pipeline Syncs of every pool. With the
TTL sweeper off and the API key cached, a request that executes costs the
handler's own round trip (PutItem, with the claim riding on it) plus one for
the saved response and COMMIT: the gate adds one. A replay costs one.
"""
import re
import uuid

import pytest

from oltest import start_daemon

pytestmark = pytest.mark.controls_daemon


def round_trips(d):
    text = d.get("/metrics").text
    return int(re.search(r"^onceledger_db_round_trips_total (\d+)$", text, re.M).group(1))


def test_gate_adds_one_round_trip(stack, cli, tmp_path):
    d = start_daemon(stack, tmp_path, extra_args=["--ttl-sweep-interval-ms", "0", "--hold-sweep-interval-ms", "0"], threads=1)
    try:
        tenant = cli.tenant_create()
        key = cli.key_create(tenant, "read,write")
        h = {"Authorization": "Bearer " + key}
        # Warm the key cache and the table cache.
        r = d.post("/v1/accounts", json={"currency": "EUR"}, headers={**h, "Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 201
        # Per request, the counter's step. A table-definition reload (cached
        # 1 s) or an API key cache refresh occasionally adds one: most steps
        # must be exact and none may be smaller.
        n = 20
        keys = [uuid.uuid4().hex for _ in range(n)]
        executed, replayed = [], []
        for k in keys:
            before = round_trips(d)
            r = d.post("/v1/accounts", json={"currency": "EUR"}, headers={**h, "Idempotency-Key": k})
            assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
            executed.append(round_trips(d) - before)
        for k in keys:
            before = round_trips(d)
            r = d.post("/v1/accounts", json={"currency": "EUR"}, headers={**h, "Idempotency-Key": k})
            assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true"
            replayed.append(round_trips(d) - before)
        assert min(executed) == 2 and executed.count(2) >= n * 3 // 4, executed
        assert min(replayed) == 1 and replayed.count(1) >= n * 3 // 4, replayed
    finally:
        d.terminate()


def test_transfer_and_credit_cost_two_round_trips(stack, cli, tmp_path):
    """The ledger's money in one call of its SQL function, with the claim on
    the same round trip (docs/ledger.md "Round trips"): an executed transfer
    or credit is 2 round trips (the call; the saved response, the event and
    COMMIT), a replay 1."""
    d = start_daemon(stack, tmp_path, extra_args=["--ttl-sweep-interval-ms", "0", "--hold-sweep-interval-ms", "0"], threads=1)
    try:
        tenant = cli.tenant_create()
        key = cli.key_create(tenant, "read,write")
        h = {"Authorization": "Bearer " + key}
        accs = []
        for _ in range(2):
            r = d.post("/v1/accounts", json={"currency": "EUR"}, headers={**h, "Idempotency-Key": uuid.uuid4().hex})
            assert r.status_code == 201
            accs.append(r.json()["id"])
        a, b = accs
        r = d.post(f"/v1/accounts/{a}/credits", json={"amount": 10**9},
                   headers={**h, "Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 201
        n = 20
        for path, body in ((f"/v1/accounts/{b}/credits", {"amount": 5}),
                           ("/v1/transfers", {"from": a, "to": b, "amount": 7, "currency": "EUR"})):
            keys = [uuid.uuid4().hex for _ in range(n)]
            executed, replayed = [], []
            for k in keys:
                before = round_trips(d)
                r = d.post(path, json=body, headers={**h, "Idempotency-Key": k})
                assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers, r.text
                executed.append(round_trips(d) - before)
            for k in keys:
                before = round_trips(d)
                r = d.post(path, json=body, headers={**h, "Idempotency-Key": k})
                assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true"
                replayed.append(round_trips(d) - before)
            assert min(executed) == 2 and executed.count(2) >= n * 3 // 4, (path, executed)
            assert min(replayed) == 1 and replayed.count(1) >= n * 3 // 4, (path, replayed)
    finally:
        d.terminate()


def test_hold_create_capture_and_settle_cost_two_round_trips(stack, cli, tmp_path):
    """Holds and orders in one call of their SQL function each
    (sql/014_ledger_holds_orders.sql), the claim on the same round trip:
    an executed hold create, capture or settle is 2 round trips (the call;
    the saved response, the events and COMMIT), a replay 1."""
    d = start_daemon(stack, tmp_path, extra_args=["--ttl-sweep-interval-ms", "0", "--hold-sweep-interval-ms", "0"],
                     threads=1)
    try:
        tenant = cli.tenant_create()
        key = cli.key_create(tenant, "read,write")
        h = {"Authorization": "Bearer " + key}

        def post(path, body, k=None):
            return d.post(path, json=body, headers={**h, "Idempotency-Key": k or uuid.uuid4().hex})
        accs = []
        for _ in range(2):
            r = post("/v1/accounts", {"currency": "EUR"})
            assert r.status_code == 201
            accs.append(r.json()["id"])
        a, b = accs
        assert post(f"/v1/accounts/{a}/credits", {"amount": 10**9}).status_code == 201
        n = 12
        holds = []
        orders = []
        for _ in range(n):
            r = post("/v1/holds", {"from": a, "to": b, "amount": 3, "currency": "EUR"})
            assert r.status_code == 201, r.text
            holds.append(r.json()["id"])
            r = post("/v1/orders", {"customer": a, "merchant": b, "amount": 4, "currency": "EUR"})
            assert r.status_code == 201, r.text
            orders.append(r.json()["id"])
        cases = (("hold create", [("/v1/holds", {"from": a, "to": b, "amount": 2, "currency": "EUR"}, 201)] * n),
                 ("capture", [(f"/v1/holds/{x}/capture", {}, 200) for x in holds]),
                 ("settle", [(f"/v1/orders/{x}/settle", {}, 200) for x in orders]))
        for name, calls in cases:
            keys = [uuid.uuid4().hex for _ in calls]
            executed, replayed = [], []
            for k, (path, body, status) in zip(keys, calls):
                before = round_trips(d)
                r = post(path, body, k)
                assert r.status_code == status and "Idempotent-Replayed" not in r.headers, (name, r.text)
                executed.append(round_trips(d) - before)
            for k, (path, body, status) in zip(keys, calls):
                before = round_trips(d)
                r = post(path, body, k)
                assert r.status_code == status and r.headers.get("Idempotent-Replayed") == "true", (name, r.text)
                replayed.append(round_trips(d) - before)
            assert min(executed) == 2 and executed.count(2) >= n * 3 // 4, (name, executed)
            assert min(replayed) == 1 and replayed.count(1) >= n * 3 // 4, (name, replayed)
    finally:
        d.terminate()
