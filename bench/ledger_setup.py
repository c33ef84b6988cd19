#!/usr/bin/python3
"""bench/ledger_setup.py URL KEY N: creates accounts bacc-0..bacc-N-1 (USD)
and funds each with 10^12 from @world in batches of 100, 8 requests in
parallel. Accounts that exist already are kept (a rerun is cheap)."""
import json
import sys
import uuid
import urllib.request
from concurrent.futures import ThreadPoolExecutor

url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])


def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": "Bearer " + key, "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def create(i):
    s = post("/v1/accounts", {"id": f"bacc-{i}", "currency": "USD"})
    if s not in (201, 409):
        raise SystemExit(f"creating bacc-{i}: {s}")
    return s


def fund(lo):
    body = {"transfers": [{"id": f"fund-bacc-{i}", "from": "@world:USD", "to": f"bacc-{i}", "amount": 10 ** 12,
                           "currency": "USD"} for i in range(lo, min(lo + 100, n))]}
    s = post("/v1/transfers/batch", body)
    if s != 201:
        raise SystemExit(f"funding from bacc-{lo}: {s}")


with ThreadPoolExecutor(8) as ex:
    created = sum(1 for s in ex.map(create, range(n)) if s == 201)
    list(ex.map(fund, range(0, n, 100)))
print(f"ledger_setup: {n} accounts ({created} new), funded")
