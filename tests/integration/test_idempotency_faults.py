"""Idempotency under faults (docs/api.md §2: the claim, the effects and the saved
response commit in one transaction, so a crash leaves either nothing — the
retry executes — or everything — the retry replays):

- kill -9 of the daemon while 200 account creations are in flight, restart,
  retry every request with its key: exactly one account per request;
- PostgreSQL stopped while a request waits on a row lock: the client gets a
  5xx, and after recovery the retry executes exactly once.

The request's own backend is terminated (while our lock still holds it)
right before `stack.sh pg-stop`: a fast shutdown signals every backend at
once, and when the lock holder happens to die first the request may commit
just before the stop (the "everything" branch, not the one tested here)."""

import json
import queue
import secrets
import threading
import time
import uuid

import pytest
import requests

from oltest import assert_problem, lock_account, needs_control, poll

pytestmark = [needs_control, pytest.mark.controls_daemon]


def _ik():
    return "crash-" + uuid.uuid4().hex


def _replayed(r):
    return r.headers.get("Idempotent-Replayed", "").strip().lower() == "true"


def _post(d, path, key, body, idem, session=None, timeout=10):
    h = {"Idempotency-Key": '"' + idem + '"'}
    data = None
    if body is not None:
        h["Content-Type"] = "application/json"
        data = json.dumps(body, separators=(",", ":")).encode()
    return d.post(path, key=key, data=data, headers=h, session=session, timeout=timeout)


def _accounts_of(d, key, owner, session=None):
    r = d.get("/v1/accounts", key=key, params={"owner": owner, "limit": 1000}, session=session)
    assert r.status_code == 200, f"GET /v1/accounts?owner={owner}: {r.status_code} {r.text[:300]}"
    return r.json()["data"]


# ---------------------------------------------------------------------------


def test_kill_9_under_load_then_retries_execute_exactly_once(daemon_factory, cli):
    n, nthreads = 200, 16
    d1 = daemon_factory()
    tenant = cli.tenant_create()
    key = cli.key_create(tenant, "read,write")
    keys = [_ik() for _ in range(n)]
    bodies = [{"currency": "EUR", "owner": f"crash-{i}"} for i in range(n)]
    first = [None] * n            # ("resp", status, content) | ("error", text)
    work = queue.Queue()
    for i in range(n):
        work.put(i)
    done = [0]
    lock = threading.Lock()

    def client():
        with requests.Session() as s:
            while True:
                try:
                    i = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    r = _post(d1, "/v1/accounts", key, bodies[i], keys[i], session=s, timeout=10)
                    first[i] = ("resp", r.status_code, r.content)
                except requests.RequestException as e:
                    first[i] = ("error", repr(e)[:200])
                with lock:
                    done[0] += 1

    threads = [threading.Thread(target=client) for _ in range(nthreads)]
    for t in threads:
        t.start()
    # let some complete, then SIGKILL with requests in flight
    assert poll(lambda: done[0] >= 30, 20, interval=0.002), f"only {done[0]} requests done in 20 s"
    d1.proc.kill()
    d1.proc.wait()
    for t in threads:
        t.join(timeout=30)
    assert all(f is not None for f in first)
    ok_before = [i for i in range(n) if first[i][0] == "resp" and first[i][1] == 201]
    errors = [i for i in range(n) if first[i][0] == "error"]
    assert errors, "every request finished before the kill: nothing was in flight"
    for i in range(n):
        if first[i][0] == "resp":
            assert first[i][1] == 201 or first[i][1] >= 500, f"request {i} before the kill: {first[i]}"

    d2 = daemon_factory()
    final = [None] * n
    unexpected = []
    work = queue.Queue()
    for i in range(n):
        work.put(i)
    deadline = time.monotonic() + 45

    def retrier():
        with requests.Session() as s:
            while True:
                try:
                    i = work.get_nowait()
                except queue.Empty:
                    return
                while time.monotonic() < deadline:
                    try:
                        r = _post(d2, "/v1/accounts", key, bodies[i], keys[i], session=s, timeout=10)
                    except requests.RequestException:
                        time.sleep(0.2)
                        continue
                    if r.status_code == 201:
                        final[i] = r
                        break
                    if r.status_code == 409 and r.headers.get("Content-Type", "").startswith(
                            "application/problem+json") and r.json().get("code") == "idempotency_key_in_use":
                        time.sleep(0.2)
                        continue
                    if r.status_code >= 500:
                        time.sleep(0.2)
                        continue
                    with lock:
                        unexpected.append((i, r.status_code, r.text[:200]))
                    break

    threads = [threading.Thread(target=retrier) for _ in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not unexpected, f"unexpected answers to retries: {unexpected[:5]}"
    missing = [i for i in range(n) if final[i] is None]
    assert not missing, f"{len(missing)} requests never got a 201 after the restart: {missing[:10]}"

    for i in ok_before:
        r = final[i]
        assert _replayed(r) and r.content == first[i][2], \
            f"request {i} got 201 before the kill but its retry was not a byte-identical replay: " \
            f"{first[i][2][:200]!r} vs {r.content[:200]!r} (replayed: {_replayed(r)})"

    wrong = []
    with requests.Session() as s:
        for i in range(n):
            accounts = _accounts_of(d2, key, f"crash-{i}", session=s)
            ids = [a["id"] for a in accounts]
            if ids != [final[i].json()["id"]]:
                wrong.append((i, ids, final[i].json()["id"]))
    assert not wrong, f"{len(wrong)} owners without exactly the one account of their 201: {wrong[:5]}"


# ---------------------------------------------------------------------------


@pytest.fixture
def pg_restarter(stack):
    """Make sure PostgreSQL is running again after the test, whatever happens."""
    if not stack.controllable:
        pytest.skip("the stack directory is unknown")
    yield stack
    stack.run("pg-start")


@pytest.mark.controls_stack
def test_postgres_stopped_mid_request_then_retry_executes_once(daemon_factory, pg_restarter, cli):
    stack = pg_restarter
    d = daemon_factory()
    tenant = cli.tenant_create()
    key = cli.key_create(tenant, "read,write")
    acc_id = "acc-" + secrets.token_hex(6)
    r = _post(d, "/v1/accounts", key, {"id": acc_id, "currency": "EUR"}, _ik())
    assert r.status_code == 201, r.text[:300]
    idem = _ik()
    path = f"/v1/accounts/{acc_id}/freeze"
    result = {}

    def inflight():
        try:
            result["r"] = _post(d, path, key, None, idem, timeout=20)
        except requests.RequestException as e:
            result["r"] = e

    lock = lock_account(stack.database_url, tenant, acc_id)
    th = threading.Thread(target=inflight)
    try:
        th.start()
        time.sleep(0.5)
        assert th.is_alive(), f"the row lock did not hold the freeze in flight: {result}"
        cur = lock.cursor()
        cur.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                    "WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))")
        killed = cur.fetchall()
        assert killed and all(k[0] for k in killed), f"the blocked backend was not terminated: {killed}"
        stack.run("pg-stop")
        th.join(timeout=15)
        assert not th.is_alive(), "the request hung after PostgreSQL stopped"
    finally:
        try:
            lock.close()
        except Exception:       # noqa: BLE001 - the server is gone
            pass
    r = result["r"]
    assert isinstance(r, requests.Response), f"no HTTP answer: {r!r}"
    assert r.status_code >= 500, f"expected a 5xx while PostgreSQL is down, got {r.status_code}: {r.text[:300]}"
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), r.headers
    assert not _replayed(r)
    # during the outage retries fail fast (503, docs/architecture.md: "never
    # a hang") and are not saved either; several new connections, so that
    # every worker answers some
    for attempt in range(4):
        t = time.monotonic()
        try:
            r = _post(d, path, key, None, idem, timeout=5)
        except requests.RequestException as e:
            pytest.fail(f"retry {attempt} while PostgreSQL is down got no answer in 5 s ({e!r}); "
                        f"expected a fast 503 unavailable")
        assert_problem(r, 503, "unavailable")
        assert time.monotonic() - t < 2.0, f"503 took {time.monotonic() - t:.1f}s"
        assert not _replayed(r)

    stack.run("pg-start")

    def ready():
        try:
            return d.get("/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False
    assert poll(ready, 20, interval=0.2), "/readyz not 200 within 20 s of pg-start"

    # The interrupted freeze left nothing behind.
    def account():
        r = d.get(f"/v1/accounts/{acc_id}", key=key)
        return r if r.status_code == 200 else None
    ra = poll(account, 10, interval=0.2)
    assert ra, "GET account does not answer 200 after recovery"
    assert ra.json()["status"] == "active", f"the failed freeze had an effect: {ra.text}"

    # The retry executes (no replay of the 5xx) ...
    end = time.monotonic() + 10
    while True:
        r1 = _post(d, path, key, None, idem)
        if r1.status_code != 503 or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert r1.status_code == 200, f"retry after recovery: {r1.status_code} {r1.text[:300]}"
    assert not _replayed(r1), "the retry was a replay: the failed attempt was saved"
    assert r1.json()["status"] == "frozen", r1.text
    # ... exactly once: the next retry replays it
    r2 = _post(d, path, key, None, idem)
    assert r2.status_code == 200 and _replayed(r2) and r2.content == r1.content, \
        f"second retry: {r2.status_code} replayed={_replayed(r2)} {r2.text[:300]}"
    assert d.get(f"/v1/accounts/{acc_id}", key=key).json()["status"] == "frozen"
    # a different request with the key is still a mismatch (the record is the freeze's)
    assert_problem(_post(d, f"/v1/accounts/{acc_id}/unfreeze", key, None, idem), 422, "idempotency_key_reused")
