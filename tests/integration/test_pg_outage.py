"""PostgreSQL outage: readiness flips, requests that need the database fail
fast with 503 unavailable + Retry-After, and the daemon recovers by itself
when PostgreSQL is back (no restart)."""

import time

import pytest
import requests

from oltest import assert_problem, needs_control

pytestmark = needs_control


@pytest.fixture
def pg_restarter(stack):
    """Make sure PostgreSQL is running again after the test, whatever happens."""
    if not stack.controllable:
        pytest.skip("the stack directory is unknown")
    yield stack
    stack.run("pg-start")


def _status(d, path, key=None, timeout=5):
    try:
        return d.get(path, key=key, timeout=timeout).status_code
    except requests.RequestException as e:
        return repr(e)


def test_postgres_outage_and_recovery(daemon_factory, pg_restarter, cli):
    stack = pg_restarter
    d = daemon_factory()
    tenant = cli.tenant_create()
    used = cli.key_create(tenant, "read")
    unused = cli.key_create(tenant, "read")      # never presented before the outage
    assert d.get("/v1/whoami", key=used).status_code == 200
    assert d.get("/readyz").status_code == 200

    stack.run("pg-stop")
    t0 = time.monotonic()
    seen = []
    while time.monotonic() - t0 < 5.0:
        st = _status(d, "/readyz")
        seen.append(st)
        if st == 503:
            break
        time.sleep(0.1)
    assert seen and seen[-1] == 503, f"/readyz did not become 503 within 5 s: {seen[-5:]}"
    r = d.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert "postgres" in body and "redis" in body, body

    # The process still serves.
    assert d.get("/healthz").status_code == 200

    # A key the daemon has never seen needs the database: fast 503, no hang.
    t = time.monotonic()
    r = d.get("/v1/whoami", key=unused, timeout=10)
    took = time.monotonic() - t
    assert_problem(r, 503, "unavailable")
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.strip().isdigit() and int(ra) >= 1, f"Retry-After {ra!r}"
    assert took < 2.0, f"503 took {took:.2f}s"

    # ... and again (nothing got stuck in a queue).
    t = time.monotonic()
    r = d.get("/v1/whoami", key=unused, timeout=10)
    assert_problem(r, 503, "unavailable")
    assert time.monotonic() - t < 2.0

    stack.run("pg-start")
    t0 = time.monotonic()
    seen = []
    while time.monotonic() - t0 < 15.0:
        st = _status(d, "/readyz")
        seen.append(st)
        if st == 200:
            break
        time.sleep(0.2)
    assert seen and seen[-1] == 200, f"/readyz not 200 within 15 s of pg-start: {seen[-5:]}"
    assert d.alive(), "daemon died during the outage"

    # The unused key works now (a 503 during the outage must not have been
    # cached as an unknown key).  Allow a few seconds for the pool to refill.
    t0 = time.monotonic()
    statuses = []
    while time.monotonic() - t0 < 5.0:
        r = d.get("/v1/whoami", key=unused)
        statuses.append(r.status_code)
        if r.status_code == 200:
            break
        assert r.status_code != 401, f"key refused with 401 after the outage: {statuses}"
        time.sleep(0.2)
    assert statuses[-1] == 200, f"key does not work after recovery: {statuses}"
    assert d.get("/v1/whoami", key=used).status_code == 200


def test_redis_down_does_not_make_unready(daemon_factory, stack):
    if not stack.controllable:
        pytest.skip("the stack directory is unknown")
    d = daemon_factory()
    try:
        stack.run("redis-stop")
        time.sleep(1.5)
        r = d.get("/readyz")
        assert r.status_code == 200, r.text
        body = r.json()
        assert "redis" in body, body
        assert d.get("/healthz").status_code == 200
    finally:
        stack.run("redis-start")


def test_requests_at_start_wait_for_the_first_connection(stack, cli, tmp_path):
    """A daemon that has not connected yet queues requests until its pool's
    first connection is up (or its first attempt failed) instead of
    answering 503: the first requests after a (re)start succeed."""
    import os
    import socket
    import subprocess

    from oltest import DAEMON, TIME_FACTOR, daemon_env, events_key_file, free_port

    tenant = cli.tenant_create()
    key = cli.key_create(tenant, "read")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCELEDGER_")}
    env.update(daemon_env(stack))
    log = open(tmp_path / "d.log", "wb")
    proc = subprocess.Popen([str(DAEMON), "--listen", f"127.0.0.1:{port}", "--threads", "2", "--events-key-file",
                             events_key_file(stack) or str(tmp_path / "k")], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    try:
        deadline = time.monotonic() + 15 * TIME_FACTOR
        while time.monotonic() < deadline:   # the first moment the port accepts
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.005)
        codes = [requests.get(f"http://127.0.0.1:{port}/v1/whoami", headers={"Authorization": f"Bearer {key}"},
                              timeout=10 * TIME_FACTOR).status_code for _ in range(4)]
        assert codes == [200] * 4, codes
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
