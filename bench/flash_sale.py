#!/usr/bin/python3
"""bench/flash_sale.py URL KEY MERCHANTS [CUSTOMERS] [CONNECTIONS]

The flash sale of issue #7: CUSTOMERS customers (default 2,000) each settle
one order to one of MERCHANTS merchants (1: every checkout credits the same
merchant, the hot row; 100: the same load spread), over CONNECTIONS
concurrent connections (default 32). Setup (accounts, funding, orders) is
not timed. Afterwards it checks that every order is paid, that the merchants
received exactly the sum, and that their hash chains verify, and prints one
line "WRKJSON {...}" for bench/run.sh (rps = settlements per second)."""
import http.client
import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

url, key, merchants = sys.argv[1], sys.argv[2], int(sys.argv[3])
customers = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
conns = int(sys.argv[5]) if len(sys.argv) > 5 else 32
AMOUNT = 10
u = urlparse(url)
run = uuid.uuid4().hex[:8]
local = threading.local()


def request(method, path, body=None):
    c = getattr(local, "conn", None)
    if c is None:
        c = local.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    headers = {"Authorization": "Bearer " + key}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    if method == "POST":
        headers["Idempotency-Key"] = uuid.uuid4().hex
    try:
        c.request(method, path, data, headers)
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException):
        local.conn = None
        raise


def must(status, body, ok=(200, 201)):
    if status not in ok:
        raise SystemExit(f"flash_sale: unexpected {status}: {body[:300]!r}")


def merchant(j):
    return f"fs{run}-m{j}"


def customer(i):
    return f"fs{run}-c{i}"


def order(i):
    return f"fs{run}-o{i}"


def setup():
    with ThreadPoolExecutor(8) as ex:
        for s, b in ex.map(lambda j: request("POST", "/v1/accounts", {"id": merchant(j), "currency": "USD"}), range(merchants)):
            must(s, b)
        for s, b in ex.map(lambda i: request("POST", "/v1/accounts", {"id": customer(i), "currency": "USD"}), range(customers)):
            must(s, b)
        batches = [{"transfers": [{"from": "@world:USD", "to": customer(i), "amount": AMOUNT, "currency": "USD"}
                                  for i in range(lo, min(lo + 100, customers))]} for lo in range(0, customers, 100)]
        for s, b in ex.map(lambda t: request("POST", "/v1/transfers/batch", t), batches):
            must(s, b)
        for s, b in ex.map(lambda i: request("POST", "/v1/orders", {"id": order(i), "customer": customer(i),
                                                                     "merchant": merchant(i % merchants),
                                                                     "amount": AMOUNT, "currency": "USD",
                                                                     "expires_in": 3600}), range(customers)):
            must(s, b)


def settle(i):
    t0 = time.perf_counter()
    s, b = request("POST", f"/v1/orders/{order(i)}/settle", {})
    return s, b, time.perf_counter() - t0


setup()
t0 = time.perf_counter()
with ThreadPoolExecutor(conns) as ex:
    results = list(ex.map(settle, range(customers)))
elapsed = time.perf_counter() - t0
lat = sorted(r[2] for r in results)
bad = [(s, b[:200]) for s, b, _ in results if s != 200]


def pct(q):
    return round(lat[min(len(lat) - 1, int(q / 100.0 * len(lat)))] * 1000, 2)


# The checks: every order paid, the merchants got exactly the sum, chains verify.
total = 0
chains_ok = True
for j in range(merchants):
    s, b = request("GET", f"/v1/accounts/{merchant(j)}")
    must(s, b, (200,))
    total += json.loads(b)["balance"]["posted"]
    s, b = request("GET", f"/v1/accounts/{merchant(j)}/verify")
    chains_ok = chains_ok and s == 200 and json.loads(b).get("ok") is True
paid = sum(1 for i in range(0, customers, max(1, customers // 50))
           if json.loads(request("GET", f"/v1/orders/{order(i)}")[1])["status"] == "paid")
ok = not bad and total == customers * AMOUNT and chains_ok
print(f"flash_sale: {customers} settlements to {merchants} merchant(s) over {conns} connections in {elapsed:.2f}s; "
      f"merchants received {total} (expected {customers * AMOUNT}); chains verify: {chains_ok}; "
      f"sampled orders paid: {paid}; failures: {len(bad)} {bad[:2]}")
if not ok:
    sys.exit(1)
print("WRKJSON " + json.dumps({"requests": customers, "rps": round(customers / elapsed, 1), "p50_ms": pct(50),
                               "p90_ms": pct(90), "p99_ms": pct(99), "non_2xx": len(bad), "socket_errors": 0,
                               "server_cpu_pct": None}))
