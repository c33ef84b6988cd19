"""The chaos test (issue #9): three daemons on one PostgreSQL and one Redis;
clients doing transfers, holds and order settlements with retries that
reuse their Idempotency-Key and client id; during the run a random daemon
is killed (-9) and restarted every few seconds, PostgreSQL is restarted
once (fast shutdown) and Redis once (it comes back empty: no persistence).

Afterwards:
- every acknowledged operation exists exactly once (GET by its client id;
  its entries appear once in each account's history), and every operation
  acknowledged with a refusal (402) does not exist;
- the ledger's invariants: every account's chain verifies and its posted
  balance equals the sum of its entries, no balance below its overdraft
  limit (0), /v1/audit/verify is ok (the currency sums to 0);
- every event of the tenant's outbox is in its stream exactly once, in
  order (the relay caught up, refilling what Redis lost).

CHAOS_SECONDS (default 90) is the length of the chaotic part. Runs on its
own stack (scripts/stack.sh) in a temporary directory."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from oltest import CLI, DAEMON, STACK_SH, free_port, parse_env_file  # noqa: E402

SECONDS = float(os.environ.get("CHAOS_SECONDS", "90"))
CUR = "EUR"
NACCOUNTS = 40
FUND = 10_000


class Node:
    """One daemon, restartable on its port."""

    def __init__(self, env, workdir, i):
        self.env, self.i = env, i
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(workdir) / f"daemon-{i}.log"
        self.keyfile = Path(workdir) / "events.key"
        self.proc = None
        self.starts = 0

    def start(self):
        # The URLs carry the stack's password: in the environment, not on a
        # command line (readable by every local user).
        argv = [str(DAEMON), "--listen", f"127.0.0.1:{self.port}", "--threads", "2", "--events-key-file", str(self.keyfile),
                "--hold-sweep-interval-ms", "500", "--db-pool-size", "4"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONCELEDGER_")}
        env["ONCELEDGER_DATABASE_URL"] = self.env["ONCELEDGER_DATABASE_URL"]
        env["ONCELEDGER_REDIS_URL"] = self.env["ONCELEDGER_REDIS_URL"]
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self.starts += 1
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon {self.i} exited at start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"daemon {self.i} not healthy")

    def kill9(self):
        """kill -9; the daemon must have been running (a daemon that ended
        on its own, e.g. a sanitizer's abort, fails the test)."""
        assert self.proc is not None and self.proc.poll() is None, \
            f"daemon {self.i} ended on its own (status {self.proc.returncode if self.proc else None}):\n" \
            f"{self.log.read_text()[-3000:]}"
        self.proc.kill()
        self.proc.wait()

    def terminate(self):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


@pytest.fixture(scope="module")
def world():
    d = Path(tempfile.mkdtemp(prefix="onceledger-chaos-"))
    os.chmod(d, 0o755)
    p = subprocess.run([str(STACK_SH), "start", str(d / "stack")], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    env = parse_env_file(d / "stack" / "env")
    db = env["ONCELEDGER_DATABASE_URL"]
    cli_env = dict(os.environ, ONCELEDGER_DATABASE_URL=db)  # the URL has the password: not in argv
    for args in (["migrate"], ["tenant", "create", "chaos"]):
        p = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=60, env=cli_env)
        assert p.returncode == 0, p.stderr
    key = subprocess.run([str(CLI), "key", "create", "--tenant", "chaos", "--scopes", "read,write,audit"],
                         capture_output=True, text=True, timeout=60, env=cli_env).stdout.strip()
    nodes = [Node(env, d, i) for i in range(3)]
    for n in nodes:
        n.start()
    ok = False
    try:
        yield {"dir": d, "env": env, "key": key, "nodes": nodes}
        ok = True
    finally:
        # a clean stop exits 0: on an ASan build, leaks and errors show here
        codes = [n.terminate() for n in nodes]
        ok = ok and all(c == 0 for c in codes)
        subprocess.run([str(STACK_SH), "stop", str(d / "stack")], capture_output=True, timeout=180)
        if ok and not os.environ.get("ONCELEDGER_TEST_KEEP"):
            shutil.rmtree(d, ignore_errors=True)
        else:
            sys.stderr.write(f"\nchaos: logs kept in {d}\n")
    assert all(c == 0 for c in codes), f"daemon exit statuses at SIGTERM: {codes} (logs in {d})"


class Client:
    """Requests with retries: the same Idempotency-Key and body until a
    definite answer (2xx or 4xx), across the daemons."""

    def __init__(self, nodes, key):
        self.nodes, self.key = nodes, key
        self.s = requests.Session()

    def call(self, method, path, body=None, deadline_s=60):
        ik = uuid.uuid4().hex
        end = time.monotonic() + deadline_s
        delay = 0.05
        while time.monotonic() < end:
            node = random.choice(self.nodes)
            h = {"Authorization": f"Bearer {self.key}"}
            if method == "POST":
                h["Idempotency-Key"] = ik
            try:
                r = self.s.request(method, node.url + path, json=body if method == "POST" else None, headers=h, timeout=10)
            except requests.RequestException:
                self.s = requests.Session()
                time.sleep(delay)
                delay = min(1.0, delay * 2)
                continue
            # 409 idempotency_key_in_use: the first attempt is still running
            # (or its daemon died holding the lease): try again later.
            if r.status_code >= 500 or (r.status_code == 409 and r.json().get("code") == "idempotency_key_in_use"):
                time.sleep(delay)
                delay = min(1.0, delay * 2)
                continue
            return r
        return None  # gave up: unknown outcome


def test_chaos(world):
    nodes, key = world["nodes"], world["key"]
    setup = Client(nodes, key)
    accounts = [f"acc{i}" for i in range(NACCOUNTS)]
    for a in accounts:
        r = setup.call("POST", "/v1/accounts", {"id": a, "currency": CUR})
        assert r is not None and r.status_code in (200, 201), r and r.text
        r = setup.call("POST", f"/v1/accounts/{a}/credits", {"id": f"fund-{a}", "amount": FUND})
        assert r is not None and r.status_code in (200, 201), r and r.text

    acked = {"transfer": {}, "hold": {}, "order": {}}  # id -> what it must be
    refused = []                                       # transfer ids answered 402
    unknown = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(seed):
        rnd = random.Random(seed)
        c = Client(nodes, key)
        n = 0
        while not stop.is_set():
            n += 1
            a, b = rnd.sample(accounts, 2)
            op = rnd.random()
            if op < 0.6:
                tid = f"t{seed}-{n}"
                amount = rnd.choice([1, 5, 50, 500, 20_000])  # some above any balance
                r = c.call("POST", "/v1/transfers", {"id": tid, "from": a, "to": b, "amount": amount, "currency": CUR})
                with lock:
                    if r is None:
                        unknown.append(tid)
                    elif r.status_code in (200, 201):
                        acked["transfer"][tid] = (a, b, amount)
                    elif r.status_code == 402:
                        refused.append(tid)
                    else:
                        raise AssertionError(f"transfer {tid}: {r.status_code} {r.text}")
            elif op < 0.8:
                hid = f"h{seed}-{n}"
                r = c.call("POST", "/v1/holds", {"id": hid, "from": a, "to": b, "amount": 7, "currency": CUR,
                                                 "expires_in": 3600})
                if r is None or r.status_code != 201 and r.status_code != 200:
                    continue
                action = rnd.choice(["capture", "void"])
                r = c.call("POST", f"/v1/holds/{hid}/{action}", {})
                if r is not None and r.status_code == 200:
                    with lock:
                        acked["hold"][hid] = r.json()["status"]
            else:
                oid = f"o{seed}-{n}"
                r = c.call("POST", "/v1/orders", {"id": oid, "customer": a, "merchant": b, "amount": 3, "currency": CUR,
                                                  "expires_in": 3600})
                if r is None or r.status_code not in (200, 201):
                    continue
                r = c.call("POST", f"/v1/orders/{oid}/settle", {})
                if r is not None and r.status_code == 200:
                    with lock:
                        acked["order"][oid] = r.json()["transfer_id"]

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in range(8)]
    for t in threads:
        t.start()

    # The chaos: a kill -9 every few seconds; PostgreSQL and Redis restarted
    # once each, a third and two thirds of the way through.
    t0 = time.monotonic()
    pg_done = redis_done = False
    kills = 0
    while time.monotonic() - t0 < SECONDS:
        time.sleep(random.uniform(2, 5))
        n = random.choice(nodes)
        n.kill9()
        kills += 1
        time.sleep(0.3)
        n.start()
        el = time.monotonic() - t0
        if not pg_done and el > SECONDS / 3:
            pg_done = True
            p = subprocess.run([str(STACK_SH), "pg-stop", str(world["dir"] / "stack")], capture_output=True, text=True,
                               timeout=120)
            assert p.returncode == 0, p.stderr
            time.sleep(1)
            p = subprocess.run([str(STACK_SH), "pg-start", str(world["dir"] / "stack")], capture_output=True, text=True,
                               timeout=120)
            assert p.returncode == 0, p.stderr
        if not redis_done and el > 2 * SECONDS / 3:
            redis_done = True
            subprocess.run([str(STACK_SH), "redis-stop", str(world["dir"] / "stack")], capture_output=True, timeout=60)
            time.sleep(2)
            p = subprocess.run([str(STACK_SH), "redis-start", str(world["dir"] / "stack")], capture_output=True,
                               text=True, timeout=60)
            assert p.returncode == 0, p.stderr
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert pg_done and redis_done and kills >= 3
    sys.stderr.write(f"\nchaos: {kills} kills; acked {len(acked['transfer'])} transfers, {len(acked['hold'])} holds, "
                     f"{len(acked['order'])} orders; {len(refused)} refused; {len(unknown)} unknown\n")
    assert len(acked["transfer"]) > 50, "too little got through to mean anything"

    c = Client(nodes, key)

    def get(path, params=None):
        for _ in range(50):
            try:
                r = c.s.get(random.choice(nodes).url + path, params=params, headers={"Authorization": f"Bearer {key}"},
                            timeout=10)
                if r.status_code < 500:
                    return r
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"GET {path}: no answer")

    # every acknowledged transfer exists, as acknowledged
    for tid, (a, b, amount) in acked["transfer"].items():
        t = get(f"/v1/transfers/{tid}").json()
        assert (t["from"], t["to"], t["amount"]) == (a, b, amount), t
    for tid in refused:
        assert get(f"/v1/transfers/{tid}").status_code == 404, tid
    for hid, status in acked["hold"].items():
        assert get(f"/v1/holds/{hid}").json()["status"] == status
    for oid, tr in acked["order"].items():
        o = get(f"/v1/orders/{oid}").json()
        assert o["status"] == "paid" and o["transfer_id"] == tr, o

    # the ledger's invariants; every entry's transfer exactly once per account
    total = 0
    for a in accounts:
        acc = get(f"/v1/accounts/{a}").json()   # also posts a hot account's inbox
        assert acc["balance"]["posted"] >= -acc["overdraft_limit"], acc
        v = get(f"/v1/accounts/{a}/verify").json()
        assert v["ok"] is True and v["balance_matches"] is True, v
        es, params = [], {"limit": 1000}
        while True:
            page = get(f"/v1/accounts/{a}/entries", params).json()
            es.extend(page["data"])
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
        tids = [e["transfer_id"] for e in es]
        assert len(tids) == len(set(tids)), f"{a}: a transfer posted twice"
        assert [e["seq"] for e in es] == list(range(1, len(es) + 1))
        for tid, (x, y, _) in acked["transfer"].items():
            if a in (x, y):
                assert tid in tids, f"{tid} acknowledged but not in {a}'s entries"
        total += acc["balance"]["posted"]
    audit = get("/v1/audit/verify", {"currency": CUR}).json()
    assert audit["ok"] is True and audit["sum"] == 0, audit

    # every event of the outbox in the stream exactly once, in order
    import psycopg2
    pg = psycopg2.connect(world["env"]["ONCELEDGER_DATABASE_URL"])
    pg.autocommit = True
    cur = pg.cursor()
    cur.execute("SELECT txid::text, n, id FROM outbox WHERE tenant = 'chaos' ORDER BY outbox.txid, outbox.n")
    outbox = [(f"{t}-{n}", i) for t, n, i in cur.fetchall()]
    r = redis.Redis.from_url(world["env"]["ONCELEDGER_REDIS_URL"])
    stream = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stream = [(sid.decode(), f[b"id"].decode()) for sid, f in r.xrange("onceledger:events:chaos")]
        if len(stream) >= len(outbox):
            break
        time.sleep(0.5)
    ids = [i for _, i in stream]
    assert len(ids) == len(set(ids)), "an event id twice in the stream"
    assert stream == outbox, f"stream {len(stream)} entries vs outbox {len(outbox)}"
    for n in nodes:
        assert n.proc.poll() is None, f"daemon {n.i} died:\n{n.log.read_text()[-3000:]}"
