"""The bank test (issue #6): money is conserved and moves exactly once under
concurrency (docs/api.md §1-§4, §7; docs/ledger.md).

Setup: 100 USD accounts of one fresh tenant (every 10th with an
overdraft_limit of 500), each funded by a credit from @world.

Run: 16 client threads, each with its own requests.Session, for
LEDGER_BANK_SECONDS seconds (default 60) doing
  - transfers between random distinct accounts with random amounts (server-
    generated or client-chosen ids, some with description/metadata): 201 or
    402 insufficient_funds;
  - transfers larger than all the money there is: must be 402;
  - retries with the same Idempotency-Key and body: the identical status and
    body, with Idempotent-Replayed: true (and a few with a changed body: 422
    idempotency_key_reused, nothing executed);
  - client-chosen transfer ids re-sent (by any thread) with a NEW
    Idempotency-Key: 200 with the same transfer (changed parameters:
    409 transfer_exists);
  - a small share of credits/debits against @world:USD.
Every acknowledged transfer (201, or the 200 of a re-sent id) is recorded with
its id, from, to, amount.

Afterwards, through the API (audit key for the history routes) and PostgreSQL:
  - the total over the 100 accounts changed exactly by the net of the
    acknowledged @world credits/debits; each account's posted balance is
    exactly its funding plus its acknowledged transfers;
  - no posted balance below -overdraft_limit; pending 0, available = posted;
  - every account's entries (paginated): seq 1..n gapless, balance_after the
    running sum, their sum = posted, posted_at strictly increasing, the hash
    chain recomputed as docs/ledger.md describes; /verify ok with
    balance_matches; /v1/audit/verify?currency=USD ok with sum 0;
  - every acknowledged transfer: GET /v1/transfers/{id} returns it (same
    from/to/amount, same object as acknowledged) and it appears exactly once in
    the entries of its from and to accounts (the @world side: exactly one
    transfer row with a NULL account in PostgreSQL); no entry, transfer row or
    @world leg refers to a
    transfer that was never acknowledged; no response was lost;
  - no 5xx during the run, no unexpected status, no client exception.
Throughput (acknowledged transfers per second) and the counts per status code
are printed; nothing about timing is asserted.
"""

import collections
import concurrent.futures
import hashlib
import itertools
import json
import os
import random
import secrets
import threading
import time
import traceback
import uuid

import pytest
import requests

from oltest import assert_problem, emit

SECONDS = float(os.environ.get("LEDGER_BANK_SECONDS", "") or 60)
N_ACCOUNTS = 100
N_THREADS = 16
CUR = "USD"
WORLD = "@world:" + CUR
OVERDRAFT = 500
REQ_TIMEOUT = 30
HUGE = 10 ** 13            # more than all the money in this test, by far
KEEP = 20                  # details kept per kind of finding


def _ik():
    return "bank-" + uuid.uuid4().hex


def _replayed(r):
    return r.headers.get("Idempotent-Replayed", "").strip().lower() == "true"


def _short(r):
    if r is None:
        return "no response"
    return f"{r.status_code} {r.text[:300]}"


class _Findings:
    """Thread-safe, capped lists of findings, counted in full."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = collections.defaultdict(list)
        self.counts = collections.Counter()

    def add(self, kind, text):
        with self.lock:
            self.counts[kind] += 1
            if len(self.items[kind]) < KEEP:
                self.items[kind].append(text)

    def report(self):
        out = []
        for kind in sorted(self.counts):
            out.append(f"--- {kind}: {self.counts[kind]}")
            out.extend("    " + t for t in self.items[kind])
            if self.counts[kind] > len(self.items[kind]):
                out.append(f"    ... {self.counts[kind] - len(self.items[kind])} more")
        return "\n".join(out)


class _Bank:
    def __init__(self, daemon, wkey, accounts, limits, seed):
        self.url = daemon.url
        self.wkey = wkey
        self.accounts = accounts
        self.limits = limits
        self.seed = seed
        self.tag = secrets.token_hex(3)
        self.lock = threading.Lock()
        self.status = collections.Counter()         # status code -> count (run phase)
        self.by_op = collections.Counter()          # (op, status) -> count (run phase)
        self.acked = {}                             # transfer id -> record
        self.resendable = []                        # acknowledged client-chosen ids
        self.bad = _Findings()                      # everything that fails the test
        self.n_exceptions = 0
        self.phase = "fund"
        self._ids = itertools.count(1)

    # -- requests ---------------------------------------------------------

    def new_id(self, i):
        return f"bt-{self.tag}-{i}-{next(self._ids)}"

    def send(self, sess, op, path, body, idem):
        """POST; on a transport error retries with the same key (the response
        was lost: that is reported, the retry tells what happened). Returns
        (response or None, number of transport errors)."""
        data = json.dumps(body, separators=(",", ":")).encode()
        h = {"Authorization": f"Bearer {self.wkey}", "Content-Type": "application/json",
             "Idempotency-Key": idem}
        errors = 0
        for attempt in range(6):
            try:
                r = sess.post(self.url + path, data=data, headers=h, timeout=REQ_TIMEOUT)
            except requests.RequestException as e:
                errors += 1
                self.exception(f"{op}: POST {path} {data[:200]!r} key {idem} attempt {attempt + 1}: {e!r}")
                time.sleep(0.2 * (attempt + 1))
                continue
            self.count(op, path, data, r)
            if errors and r.status_code == 409 and _code(r) == "idempotency_key_in_use":
                time.sleep(0.5)
                continue
            return r, errors
        self.bad.add("lost responses (no answer after retries)", f"{op}: POST {path} {data[:200]!r} key {idem}")
        return None, errors

    def count(self, op, path, data, r):
        with self.lock:
            if self.phase == "run":
                self.status[r.status_code] += 1
                self.by_op[(op, r.status_code)] += 1
        if r.status_code >= 500:
            where = path if path.startswith("GET ") else "POST " + path
            self.bad.add("5xx responses", f"{op}: {where} {data[:200]!r} -> {_short(r)}")

    def exception(self, text):
        with self.lock:
            self.n_exceptions += 1
        self.bad.add("client exceptions", text)

    # -- expectations ---------------------------------------------------------

    def sides(self, kind, path, body):
        if kind == "transfer":
            return body["from"], body["to"]
        acct = path.split("/")[3]
        return (WORLD, acct) if kind == "credit" else (acct, WORLD)

    def check_transfer(self, obj, kind, path, body):
        """Issues of a transfer object against the request that created it."""
        src, dst = self.sides(kind, path, body)
        amount = body["amount"]
        issues = []
        if not isinstance(obj, dict):
            return [f"not an object: {obj!r}"]
        if not isinstance(obj.get("id"), str) or not obj.get("id"):
            issues.append("no id")
        if "id" in body and obj.get("id") != body["id"]:
            issues.append(f"id {obj.get('id')!r} != chosen {body['id']!r}")
        for k, v in (("from", src), ("to", dst), ("currency", CUR), ("status", "posted")):
            if obj.get(k) != v:
                issues.append(f"{k} {obj.get(k)!r} != {v!r}")
        if obj.get("amount") != amount or type(obj.get("amount")) is not int:
            issues.append(f"amount {obj.get('amount')!r} != {amount}")
        for k in ("description", "metadata"):
            if k in body and obj.get(k) != body[k]:
                issues.append(f"{k} {obj.get(k)!r} != {body[k]!r}")
        ents = obj.get("entries")
        if not isinstance(ents, list) or len(ents) != 2:
            issues.append(f"entries {ents!r} (expected 2)")
            return issues
        legs = {}
        for e in ents:
            legs.setdefault(e.get("account"), []).append(e)
        for acct, sign in ((src, -1), (dst, 1)):
            es = legs.get(acct, [])
            if len(es) != 1:
                issues.append(f"{len(es)} entries for {acct} in {ents}")
                continue
            e = es[0]
            if e.get("amount") != sign * amount:
                issues.append(f"entry of {acct} amount {e.get('amount')!r} != {sign * amount}")
            if acct == WORLD:
                if e.get("seq") is not None or e.get("balance_after") is not None:
                    issues.append(f"@world leg with seq/balance_after: {e}")
            else:
                if type(e.get("seq")) is not int or e["seq"] < 1:
                    issues.append(f"entry of {acct} seq {e.get('seq')!r}")
                if type(e.get("balance_after")) is not int:
                    issues.append(f"entry of {acct} balance_after {e.get('balance_after')!r}")
                elif e["balance_after"] < -self.limits[acct]:
                    issues.append(f"{acct} balance_after {e['balance_after']} < -overdraft_limit "
                                  f"{-self.limits[acct]}")
        return issues

    def record_ack(self, obj, kind, path, body, op):
        tid = obj["id"]
        src, dst = self.sides(kind, path, body)
        rec = {"id": tid, "from": src, "to": dst, "amount": body["amount"], "kind": kind,
               "path": path, "body": body, "obj": obj, "phase": self.phase, "op": op}
        with self.lock:
            if tid in self.acked:
                dup = True
            else:
                dup = False
                self.acked[tid] = rec
                if "id" in body:
                    self.resendable.append(tid)
        if dup:
            self.bad.add("transfer acknowledged twice with 201 (money moved twice)",
                         f"{op}: {tid} {body}")

    def handle(self, op, r, errors, kind, path, body, allow_402=True):
        """Checks a first answer to a transfer/credit/debit; records 201s.
        Returns the transfer object of a 201, else None."""
        if r is None:
            return None
        where = f"{op}: POST {path} {json.dumps(body)}"
        if r.status_code == 201:
            if not errors and _replayed(r):
                self.bad.add("first execution marked Idempotent-Replayed", f"{where} -> {dict(r.headers)}")
            try:
                obj = r.json()
            except ValueError:
                self.bad.add("unparsable 201 bodies", f"{where} -> {_short(r)}")
                return None
            issues = self.check_transfer(obj, kind, path, body)
            if issues:
                self.bad.add("201 transfer objects that do not match the request", f"{where}: {issues}")
            if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                self.record_ack(obj, kind, path, body, op)
                return obj
            return None
        if r.status_code == 402 and allow_402:
            self.check_402(where, r, kind, path, body)
            return None
        if r.status_code >= 500:
            return None             # counted as 5xx already; nothing acknowledged
        self.bad.add("unexpected statuses", f"{where} -> {_short(r)}")
        return None

    def check_402(self, where, r, kind, path, body):
        try:
            p = assert_problem(r, 402, "insufficient_funds")
        except AssertionError as e:
            self.bad.add("malformed 402 problems", f"{where}: {e}")
            return
        debited, _ = self.sides(kind, path, body)
        if p.get("account") != debited:
            self.bad.add("402 naming the wrong account", f"{where}: {p}")
        avail = p.get("available")
        od = p.get("overdraft_limit", self.limits.get(debited, 0))
        if "overdraft_limit" in p and od != self.limits.get(debited):
            self.bad.add("402 with a wrong overdraft_limit", f"{where}: {p}")
        if type(avail) is not int:
            self.bad.add("402 without an integer available", f"{where}: {p}")
        elif type(od) is int and body["amount"] <= avail + od:
            self.bad.add("402 although amount <= available + overdraft_limit", f"{where}: {p}")

    # -- operations -----------------------------------------------------------

    def amount(self, rnd):
        x = rnd.random()
        if x < 0.80:
            return rnd.randint(1, 3000)
        if x < 0.95:
            return rnd.randint(3000, 40000)
        return rnd.randint(40000, 250000)

    def transfer_body(self, rnd, i, amount=None, client_id=None):
        a, b = rnd.sample(self.accounts, 2)
        body = {"from": a, "to": b, "amount": amount or self.amount(rnd), "currency": CUR}
        if client_id if client_id is not None else rnd.random() < 0.5:
            body["id"] = self.new_id(i)
        if rnd.random() < 0.2:
            body["description"] = f"bank test, thread {i}"
            body["metadata"] = {"thread": i, "test": "bank"}
        return body

    def op_transfer(self, sess, rnd, i, client_id=None):
        body = self.transfer_body(rnd, i, client_id=client_id)
        r, err = self.send(sess, "transfer", "/v1/transfers", body, _ik())
        self.handle("transfer", r, err, "transfer", "/v1/transfers", body)

    def op_oversized(self, sess, rnd, i):
        body = self.transfer_body(rnd, i, amount=HUGE + rnd.randrange(10 ** 9))
        r, err = self.send(sess, "oversized", "/v1/transfers", body, _ik())
        self.handle("oversized", r, err, "transfer", "/v1/transfers", body)
        if r is not None and r.status_code not in (402,) and r.status_code < 500:
            self.bad.add("transfer larger than all money not refused with 402",
                         f"{body} -> {_short(r)}")

    def op_drain(self, sess, rnd, i):
        """Moves exactly what the guard allows (or one more) out of an account:
        drives accounts to the boundary -overdraft_limit, where races show."""
        a, b = rnd.sample(self.accounts, 2)
        path = f"/v1/accounts/{a}"
        r = sess.get(self.url + path, headers={"Authorization": f"Bearer {self.wkey}"}, timeout=REQ_TIMEOUT)
        self.count("drain-get", "GET " + path, b"", r)
        if r.status_code != 200:
            if r.status_code < 500:
                self.bad.add("unexpected statuses", f"drain: GET {path} -> {_short(r)}")
            return
        bal = r.json()["balance"]
        amount = bal["available"] + self.limits[a] + (1 if rnd.random() < 0.25 else 0)
        if amount <= 0:
            return
        body = {"from": a, "to": b, "amount": amount, "currency": CUR}
        r, err = self.send(sess, "drain", "/v1/transfers", body, _ik())
        self.handle("drain", r, err, "transfer", "/v1/transfers", body)

    def op_world(self, sess, rnd, i):
        acct = rnd.choice(self.accounts)
        kind = "credit" if rnd.random() < 0.6 else "debit"
        path = f"/v1/accounts/{acct}/{kind}s"
        body = {"amount": rnd.randint(1, 20000)}
        if rnd.random() < 0.3:
            body["id"] = self.new_id(i)
        r, err = self.send(sess, kind, path, body, _ik())
        self.handle(kind, r, err, kind, path, body, allow_402=(kind == "debit"))

    def op_retry(self, sess, rnd, i):
        x = rnd.random()
        if x < 0.15:
            acct = rnd.choice(self.accounts)
            kind = "credit" if rnd.random() < 0.5 else "debit"
            path = f"/v1/accounts/{acct}/{kind}s"
            body = {"amount": rnd.randint(1, 20000)}
        else:
            kind, path = "transfer", "/v1/transfers"
            body = self.transfer_body(rnd, i, amount=(HUGE + rnd.randrange(10 ** 6)) if x > 0.8 else None)
        k = _ik()
        r1, err = self.send(sess, "retry", path, body, k)
        obj = self.handle("retry", r1, err, kind, path, body, allow_402=(kind != "credit"))
        if r1 is None:
            return
        if rnd.random() < 0.5:
            time.sleep(rnd.random() * 0.02)
        r2, err2 = self.send(sess, "retry-same-key", path, body, k)
        if r2 is None:
            return
        where = f"retry of POST {path} {json.dumps(body)} key {k}"
        if r1.status_code >= 500:
            # not saved: the key was free, the retry executed
            self.handle("retry-after-5xx", r2, err2, kind, path, body, allow_402=(kind != "credit"))
            return
        if r2.status_code != r1.status_code or r2.content != r1.content:
            self.bad.add("retries with the same key not answered identically",
                         f"{where}: first {_short(r1)} / retry {_short(r2)}")
            if r2.status_code == 201:
                try:
                    o2 = r2.json()
                except ValueError:
                    o2 = None
                if not (isinstance(obj, dict) and isinstance(o2, dict) and o2.get("id") == obj.get("id")):
                    self.handle("retry-same-key", r2, 1, kind, path, body)
        elif not _replayed(r2):
            self.bad.add("replays without Idempotent-Replayed: true", f"{where}: {dict(r2.headers)}")
        elif r2.headers.get("Content-Type") != r1.headers.get("Content-Type"):
            self.bad.add("replays with another Content-Type",
                         f"{where}: {r1.headers.get('Content-Type')} / {r2.headers.get('Content-Type')}")
        if rnd.random() < 0.15:
            changed = dict(body, amount=body["amount"] + 1)
            r3, err3 = self.send(sess, "retry-changed-body", path, changed, k)
            if r3 is None:
                return
            try:
                assert_problem(r3, 422, "idempotency_key_reused")
            except AssertionError as e:
                self.bad.add("same key, changed body not 422 idempotency_key_reused", f"{where}: {e}")
                if r3.status_code == 201:
                    self.handle("retry-changed-body", r3, 1, kind, path, changed)

    def op_resend(self, sess, rnd, i):
        with self.lock:
            tid = rnd.choice(self.resendable) if self.resendable else None
            rec = self.acked.get(tid) if tid else None
        if rec is None:
            self.op_transfer(sess, rnd, i, client_id=True)
            return
        path, body = rec["path"], rec["body"]
        where = f"re-sent id {tid}: POST {path} {json.dumps(body)}"
        r, err = self.send(sess, "resend-id", path, body, _ik())
        if r is None:
            return
        if r.status_code == 200:
            if not err and _replayed(r):
                self.bad.add("200 of a re-sent id marked Idempotent-Replayed (new key)", where)
            try:
                obj = r.json()
            except ValueError:
                obj = None
            issues = self.check_transfer(obj, rec["kind"], path, body)
            if issues:
                self.bad.add("200 of a re-sent id that does not match the transfer", f"{where}: {issues}")
            elif obj != rec["obj"]:
                diff = sorted(k for k in set(obj) | set(rec["obj"]) if obj.get(k) != rec["obj"].get(k))
                self.bad.add("200 of a re-sent id differs from the acknowledged object",
                             f"{where}: keys {diff}: {[(k, rec['obj'].get(k), obj.get(k)) for k in diff]}")
        elif r.status_code >= 500:
            pass
        else:
            self.bad.add("re-sent client id (same parameters, new key) not 200",
                         f"{where} -> {_short(r)}")
            if r.status_code == 201:
                self.handle("resend-id", r, 1, rec["kind"], path, body)
        if rnd.random() < 0.15:
            changed = dict(body, amount=body["amount"] + 1)
            r2, _ = self.send(sess, "resend-id-changed", path, changed, _ik())
            if r2 is None or r2.status_code >= 500:
                return
            try:
                p = assert_problem(r2, 409, "transfer_exists")
                if p.get("transfer") != tid:
                    self.bad.add("409 transfer_exists naming another transfer", f"{where}: {p}")
            except AssertionError as e:
                self.bad.add("re-sent client id with changed amount not 409 transfer_exists", f"{where}: {e}")
                if r2.status_code == 201:
                    self.handle("resend-id-changed", r2, 1, rec["kind"], path, changed)

    def worker(self, i, deadline):
        rnd = random.Random(self.seed * 1000 + i)
        sess = requests.Session()
        try:
            while time.monotonic() < deadline and self.n_exceptions < 500:
                x = rnd.random()
                try:
                    if x < 0.50:
                        self.op_transfer(sess, rnd, i)
                    elif x < 0.55:
                        self.op_drain(sess, rnd, i)
                    elif x < 0.62:
                        self.op_oversized(sess, rnd, i)
                    elif x < 0.77:
                        self.op_retry(sess, rnd, i)
                    elif x < 0.89:
                        self.op_resend(sess, rnd, i)
                    else:
                        self.op_world(sess, rnd, i)
                except Exception:          # noqa: BLE001 - reported by the test
                    self.exception(f"worker {i}: {traceback.format_exc()}")
                    time.sleep(0.05)
        finally:
            sess.close()


def _code(r):
    try:
        b = r.json()
    except ValueError:
        return None
    return b.get("code") if isinstance(b, dict) else None


# ---------------------------------------------------------------------------
# reading back


_local = threading.local()


def _sess():
    s = getattr(_local, "s", None)
    if s is None:
        s = _local.s = requests.Session()
    return s


def _get(url, key, path, params=None):
    return _sess().get(url + path, params=params, headers={"Authorization": f"Bearer {key}"},
                       timeout=REQ_TIMEOUT)


def _get_json(url, key, path, params=None):
    r = _get(url, key, path, params)
    if r.status_code != 200:
        raise AssertionError(f"GET {path} {params or ''}: {_short(r)}")
    return r.json()


def _all_entries(url, akey, acct):
    out, cursor, seen = [], None, set()
    while True:
        params = {"limit": 1000, "order": "asc"}
        if cursor:
            params["cursor"] = cursor
        page = _get_json(url, akey, f"/v1/accounts/{acct}/entries", params)
        data = page.get("data")
        assert isinstance(data, list), f"entries of {acct}: {page!r:.300}"
        out.extend(data)
        cursor = page.get("next_cursor")
        if not cursor:
            return out
        assert data and cursor not in seen, f"entries of {acct}: pagination does not advance ({cursor!r})"
        seen.add(cursor)


def _chain_issues(acct, entries):
    """docs/ledger.md, 'The hash chain: what an auditor recomputes'."""
    prev = bytes(32)
    for e in entries:
        if e.get("prev_hash") != prev.hex():
            return f"seq {e.get('seq')}: prev_hash {e.get('prev_hash')!r} != {prev.hex()}"
        c = json.dumps({k: e.get(k) for k in ("account", "amount", "balance_after", "posted_at", "seq",
                                               "transfer_id")},
                       separators=(",", ":"), sort_keys=True).encode()
        h = hashlib.sha256(prev + c).hexdigest()
        if h != e.get("hash"):
            return f"seq {e.get('seq')}: hash {e.get('hash')!r} != recomputed {h}"
        prev = bytes.fromhex(h)
    return None


def _parallel(fn, items, workers=N_THREADS):
    """Runs fn over items; returns {item: result or exception}."""
    out = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        futs = {ex.submit(fn, it): it for it in items}
        for f in concurrent.futures.as_completed(futs):
            try:
                out[futs[f]] = f.result()
            except Exception as e:          # noqa: BLE001
                out[futs[f]] = e
    return out


# ---------------------------------------------------------------------------


def test_bank(request, daemon, tenant, make_key, db):
    wkey = make_key("read,write")
    akey = make_key("audit")
    url = daemon.url
    seed = int(os.environ.get("LEDGER_BANK_SEED", "") or random.randrange(1, 10 ** 6))
    rnd = random.Random(seed)
    owner = "bank-" + secrets.token_hex(4)
    accounts = [f"{owner}-{i:03d}" for i in range(N_ACCOUNTS)]
    limits = {a: (OVERDRAFT if i % 10 == 0 else 0) for i, a in enumerate(accounts)}
    bank = _Bank(daemon, wkey, accounts, limits, seed)

    # -- setup: accounts and their funding credits --------------------------
    setup = requests.Session()
    funding = {}
    for a in accounts:
        body = {"id": a, "currency": CUR, "owner": owner}
        if limits[a]:
            body["overdraft_limit"] = limits[a]
        r, _ = bank.send(setup, "setup", "/v1/accounts", body, _ik())
        assert r is not None and r.status_code == 201, f"POST /v1/accounts {body}: {_short(r)}"
        acc = r.json()
        assert acc["id"] == a and acc["overdraft_limit"] == limits[a], acc
        assert acc["balance"] == {"posted": 0, "pending": 0, "available": 0}, acc
    for a in accounts:
        amount = rnd.randint(20_000, 100_000)
        path = f"/v1/accounts/{a}/credits"
        body = {"amount": amount}
        r, err = bank.send(setup, "fund", path, body, _ik())
        obj = bank.handle("fund", r, err, "credit", path, body, allow_402=False)
        assert obj is not None, f"funding credit POST {path} {body}: {_short(r)}\n{bank.bad.report()}"
        funding[a] = amount
    setup.close()
    listed = _get_json(url, wkey, "/v1/accounts", {"owner": owner, "limit": 1000})["data"]
    assert sorted(x["id"] for x in listed) == accounts, "GET /v1/accounts?owner= does not list the 100 accounts"
    before = {a: _get_json(url, wkey, f"/v1/accounts/{a}")["balance"]["posted"] for a in accounts}
    assert before == funding, "posted balances after funding != the funding credits"
    total_before = sum(before.values())
    assert not bank.bad.counts, "setup:\n" + bank.bad.report()

    # -- the run --------------------------------------------------------------
    bank.phase = "run"
    t0 = time.monotonic()
    deadline = t0 + SECONDS
    threads = [threading.Thread(target=bank.worker, args=(i, deadline), name=f"bank-{i}", daemon=True)
               for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline + 2 * REQ_TIMEOUT + 30 - time.monotonic()))
    elapsed = time.monotonic() - t0
    hung = [t.name for t in threads if t.is_alive()]
    bank.phase = "check"

    run = [rec for rec in bank.acked.values() if rec["phase"] == "run"]
    n_internal = sum(1 for rec in run if rec["kind"] == "transfer")
    world_net = sum(rec["amount"] if rec["kind"] == "credit" else -rec["amount"]
                    for rec in run if rec["kind"] != "transfer")
    report = [
        f"\n[bank] seed {seed}, {SECONDS:g} s requested, {elapsed:.1f} s elapsed, {N_THREADS} threads, "
        f"{N_ACCOUNTS} accounts",
        f"[bank] acknowledged during the run: {len(run)} ({n_internal} transfers, "
        f"{len(run) - n_internal} @world credits/debits): {len(run) / max(elapsed, 1e-9):.1f} per second; "
        f"{sum(bank.status.values())} requests: {sum(bank.status.values()) / max(elapsed, 1e-9):.1f} per second",
        "[bank] responses per status (the run): " + ", ".join(f"{s}: {n}" for s, n in sorted(bank.status.items())),
        "[bank] responses per operation and status: " + ", ".join(
            f"{op} {st}: {n}" for (op, st), n in sorted(bank.by_op.items())),
        f"[bank] @world net during the run: {world_net:+d}",
    ]
    emit(request, "\n".join(report) + "\n")
    if hung:
        pytest.fail(f"client threads still running {elapsed:.0f} s after the start: {hung}\n"
                    + bank.bad.report(), pytrace=False)

    found = _Findings()
    problem = found.add

    # -- balances -------------------------------------------------------------
    after = {}
    res = _parallel(lambda a: _get_json(url, wkey, f"/v1/accounts/{a}"), accounts)
    for a in accounts:
        acc = res[a]
        if isinstance(acc, Exception):
            problem("GET account", repr(acc))
            continue
        b = acc.get("balance", {})
        after[a] = b.get("posted")
        if b.get("pending") != 0 or b.get("available") != b.get("posted"):
            problem("balance", f"{a}: {b} (no holds: pending 0, available = posted)")
        if acc.get("overdraft_limit") != limits[a]:
            problem("overdraft_limit", f"{a}: {acc.get('overdraft_limit')} != {limits[a]}")
        if type(b.get("posted")) is int and b["posted"] < -limits[a]:
            problem("balance below -overdraft_limit", f"{a}: posted {b['posted']}, limit {limits[a]}")
    if len(after) == N_ACCOUNTS:
        total_after = sum(after.values())
        if total_after - total_before != world_net:
            problem("conservation", f"total {total_before} -> {total_after} (changed by "
                                    f"{total_after - total_before:+d}), acknowledged @world net {world_net:+d}")
    expected = {a: 0 for a in accounts}
    for rec in bank.acked.values():
        if rec["from"] in expected:
            expected[rec["from"]] -= rec["amount"]
        if rec["to"] in expected:
            expected[rec["to"]] += rec["amount"]
    for a in accounts:
        if a in after and after[a] != expected[a]:
            problem("posted != funding + acknowledged transfers",
                    f"{a}: posted {after[a]}, expected {expected[a]} ({after[a] - expected[a]:+d})")

    # -- entries, verify --------------------------------------------------------
    ents = _parallel(lambda a: _all_entries(url, akey, a), accounts)
    by_transfer = collections.defaultdict(list)      # transfer id -> [(account, amount)]
    by_seq = {}                                        # (account, seq) -> entry
    for a in accounts:
        es = ents[a]
        if isinstance(es, Exception):
            problem("entries", f"{a}: {es!r}")
            continue
        seqs = [e.get("seq") for e in es]
        if seqs != list(range(1, len(es) + 1)):
            problem("seq not 1..n", f"{a}: {seqs[:20]}... ({len(es)} entries)")
        running = 0
        last_at = None
        for e in es:
            by_transfer[e.get("transfer_id")].append((a, e.get("amount")))
            by_seq[(a, e.get("seq"))] = e
            if e.get("account") != a:
                problem("entry of another account", f"{a}: {e}")
            if type(e.get("amount")) is not int:
                problem("entry amount", f"{a}: {e}")
                continue
            running += e["amount"]
            if e.get("balance_after") != running:
                problem("balance_after not the running sum", f"{a} seq {e.get('seq')}: {e.get('balance_after')} "
                                                              f"!= {running}")
                break
            if last_at is not None and not (e.get("posted_at", "") > last_at):
                problem("posted_at not strictly increasing", f"{a} seq {e.get('seq')}: {e.get('posted_at')} "
                                                              f"after {last_at}")
            last_at = e.get("posted_at", "")
        if a in after and running != after[a]:
            problem("posted != sum of entries", f"{a}: posted {after[a]}, entries sum {running}")
        chain = _chain_issues(a, es)
        if chain:
            problem("hash chain", f"{a}: {chain}")
        ents[a] = es

    ver = _parallel(lambda a: _get_json(url, akey, f"/v1/accounts/{a}/verify"), accounts)
    for a in accounts:
        v = ver[a]
        if isinstance(v, Exception):
            problem("verify", f"{a}: {v!r}")
            continue
        n = len(ents[a]) if isinstance(ents[a], list) else None
        if v.get("ok") is not True or v.get("balance_matches") is not True or v.get("account") != a:
            problem("verify not ok", f"{a}: {v}")
        elif n is not None and (v.get("entries") != n or (n and v.get("head") != ents[a][-1].get("hash"))):
            problem("verify entries/head", f"{a}: {v}, {n} entries listed")
    try:
        av = _get_json(url, akey, "/v1/audit/verify", {"currency": CUR})
        if av.get("ok") is not True or av.get("sum") != 0 or type(av.get("sum")) is not int:
            problem("audit verify", f"{av}")
        if av.get("accounts") not in (N_ACCOUNTS, N_ACCOUNTS + 1):
            problem("audit verify accounts", f"{av} (the tenant has {N_ACCOUNTS} USD accounts)")
    except AssertionError as e:
        problem("audit verify", str(e))

    # -- every acknowledged transfer, exactly once ----------------------------------
    # (from the listed entries of the accounts whose /entries could be read;
    # the same again from the stored entry rows below)
    listed = {a for a in accounts if isinstance(ents.get(a), list)}
    for tid, rec in bank.acked.items():
        want = sorted([(x, s * rec["amount"]) for x, s in ((rec["from"], -1), (rec["to"], 1)) if x != WORLD])
        if all(x in listed for x, _ in want):
            got = sorted(by_transfer.get(tid, []))
            if got != want:
                problem("acknowledged transfer not exactly once in the entries",
                        f"{tid} {rec['from']}->{rec['to']} {rec['amount']}: {got}")
        for e in rec["obj"].get("entries", []):
            if e.get("account") == WORLD or e.get("account") not in listed:
                continue
            listed_e = by_seq.get((e.get("account"), e.get("seq")))
            if listed_e is None or listed_e.get("transfer_id") != tid or \
                    listed_e.get("balance_after") != e.get("balance_after") or \
                    listed_e.get("amount") != e.get("amount"):
                problem("entry in the 201 differs from the listed entries", f"{tid}: {e} vs {listed_e}")
    unknown = sorted(t for t in by_transfer if t not in bank.acked)
    if unknown:
        problem("entries of transfers never acknowledged",
                f"{len(unknown)}: " + ", ".join(f"{t} {by_transfer[t]}" for t in unknown[:20]))

    def get_transfer(tid):
        return _get(url, wkey, f"/v1/transfers/{tid}")
    got = _parallel(get_transfer, list(bank.acked))
    for tid, r in got.items():
        rec = bank.acked[tid]
        if isinstance(r, Exception):
            problem("GET transfer", f"{tid}: {r!r}")
            continue
        if r.status_code != 200:
            problem("GET transfer", f"{tid}: {_short(r)}")
            continue
        obj = r.json()
        if (obj.get("id"), obj.get("from"), obj.get("to"), obj.get("amount"), obj.get("currency")) != \
                (tid, rec["from"], rec["to"], rec["amount"], CUR):
            problem("GET transfer differs from the acknowledged one", f"{tid}: {rec['from']}->{rec['to']} "
                                                                      f"{rec['amount']}, got {obj}")
        elif obj != rec["obj"]:
            diff = sorted(k for k in set(obj) | set(rec["obj"]) if obj.get(k) != rec["obj"].get(k))
            problem("GET transfer is not the acknowledged object",
                    f"{tid}: {[(k, rec['obj'].get(k), obj.get(k)) for k in diff]}")

    # -- PostgreSQL: the stored rows (docs/ledger.md "Tables") -------------------------
    cur = db.cursor()
    cur.execute("SELECT id, posted, seq FROM ledger.accounts WHERE tenant = %s", (tenant,))
    stored = {a: (posted, seq) for a, posted, seq in cur.fetchall()}
    if sorted(stored) != accounts:
        problem("db accounts", f"{len(stored)} account rows, expected the {N_ACCOUNTS}")
    cur.execute("SELECT a.id, e.seq, e.transfer_id, e.amount, e.balance_after FROM ledger.entries e"
                " JOIN ledger.accounts a ON a.aid = e.account WHERE a.tenant = %s", (tenant,))
    db_entries = collections.defaultdict(list)
    for a, seq, tid, amount, balance_after in cur.fetchall():
        db_entries[a].append({"seq": seq, "transfer_id": tid, "amount": amount, "balance_after": balance_after})
    for a in accounts:
        if a not in stored:
            continue
        rows = db_entries.get(a, [])
        posted, seq = stored[a]
        if a in after and posted != after[a]:
            problem("db posted != API posted", f"{a}: {posted} vs {after[a]}")
        if seq != len(rows):
            problem("db account seq != number of entry rows", f"{a}: seq {seq}, {len(rows)} rows")
        if sorted(r["seq"] for r in rows) != list(range(1, len(rows) + 1)):
            problem("db entry seqs are not 1..n", f"{a}")
        if sum(r["amount"] for r in rows) != posted:
            problem("db posted != sum of entry rows", f"{a}")
        if isinstance(ents.get(a), list) and len(ents[a]) != len(rows):
            problem("db entry rows != listed entries", f"{a}: {len(rows)} rows, {len(ents[a])} listed")
    db_by_transfer = collections.defaultdict(list)
    db_by_seq = {}
    for a, rows in db_entries.items():
        for row in rows:
            db_by_transfer[row["transfer_id"]].append((a, row["amount"]))
            db_by_seq[(a, row["seq"])] = row
    for tid, rec in bank.acked.items():
        want = sorted([(x, s * rec["amount"]) for x, s in ((rec["from"], -1), (rec["to"], 1)) if x != WORLD])
        got = sorted(db_by_transfer.get(tid, []))
        if got != want:
            problem("acknowledged transfer not exactly once in the db entry rows",
                    f"{tid} {rec['from']}->{rec['to']} {rec['amount']}: {got}")
        for e in rec["obj"].get("entries", []):
            if e.get("account") == WORLD:
                continue
            row = db_by_seq.get((e.get("account"), e.get("seq")))
            if row is None or row["transfer_id"] != tid or row["amount"] != e.get("amount") or \
                    row["balance_after"] != e.get("balance_after"):
                problem("entry in the 201 differs from the db entry row", f"{tid}: {e} vs {row}")
    db_unknown = sorted(t for t in db_by_transfer if t not in bank.acked)
    if db_unknown:
        problem("db entry rows of transfers never acknowledged",
                f"{len(db_unknown)}: " + ", ".join(f"{t} {db_by_transfer[t]}" for t in db_unknown[:20]))
    cur.execute("SELECT id FROM ledger.transfers WHERE tenant = %s", (tenant,))
    txn_ids = [row[0] for row in cur.fetchall()]
    extra = sorted(set(txn_ids) - set(bank.acked))
    missing = sorted(set(bank.acked) - set(txn_ids))
    if extra:
        problem("db transfer rows never acknowledged", f"{len(extra)}: {extra[:20]}")
    if missing:
        problem("acknowledged transfers without a db transfer row", f"{len(missing)}: {missing[:20]}")
    # @world has no row: its leg is the transfer row with a NULL account
    # (credit: from NULL, @world's leg -amount; debit: to NULL, +amount).
    cur.execute("SELECT id, CASE WHEN from_account IS NULL THEN -amount ELSE amount END FROM ledger.transfers"
                " WHERE tenant = %s AND currency = %s AND (from_account IS NULL OR to_account IS NULL)", (tenant, CUR))
    legs = collections.defaultdict(list)
    for tid, amt in cur.fetchall():
        legs[tid].append(amt)
    world_acked = {tid: rec for tid, rec in bank.acked.items() if rec["kind"] != "transfer"}
    for tid, rec in world_acked.items():
        amts = legs.get(tid, [])
        if len(amts) != 1:
            problem("acknowledged credit/debit without exactly one @world leg", f"{tid}: {len(amts)} legs")
            continue
        want = -rec["amount"] if rec["kind"] == "credit" else rec["amount"]
        if amts[0] != want:
            problem("@world leg amount", f"{tid} ({rec['kind']} {rec['amount']}): leg amount {amts[0]}")
    extra_legs = sorted(set(legs) - set(world_acked))
    if extra_legs:
        problem("@world legs of transfers never acknowledged", f"{len(extra_legs)}: {extra_legs[:20]}")

    # -- what the run itself found ------------------------------------------------------
    during, after_run = bank.bad.report(), found.report()
    text = (("during the run:\n" + during + "\n") if during else "") + \
        (("after the run:\n" + after_run + "\n") if after_run else "")
    emit(request, "[bank] " + (text or "no findings\n"))
    if bank.bad.counts or found.counts:
        pytest.fail(text, pytrace=False)
