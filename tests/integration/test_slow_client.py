"""Slow-client defence: --read-timeout-ms bounds how long a request may take
to arrive; stalled clients do not hold up others."""

import socket
import threading
import time

import pytest
import requests

from oltest import needs_control, parse_raw_response

pytestmark = [needs_control, pytest.mark.timing]

READ_TIMEOUT_MS = 1000


@pytest.fixture
def slow_daemon(daemon_factory):
    return daemon_factory("--read-timeout-ms", str(READ_TIMEOUT_MS))


def _wait_closed(sock, limit):
    """Read until the server closes; -> (seconds waited, bytes received, closed?)."""
    t0 = time.monotonic()
    got = b""
    sock.settimeout(0.2)
    while time.monotonic() - t0 < limit:
        try:
            b = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:  # reset counts as closed
            return time.monotonic() - t0, got, True
        if not b:
            return time.monotonic() - t0, got, True
        got += b
    return time.monotonic() - t0, got, False


def _check_close_response(got):
    if got:  # a 408 problem is allowed before the close
        status, headers, body = parse_raw_response(got)
        assert status == 408, got[:200]
        assert headers.get("content-type", "").startswith("application/problem+json"), got[:300]


def test_stalled_headers_are_closed_while_others_are_served(slow_daemon):
    d = slow_daemon
    slow = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Half: ")   # half the headers, then stall
    t0 = time.monotonic()

    latencies = []
    errors = []
    stop = threading.Event()

    def normal_client():
        with requests.Session() as s:
            while not stop.is_set():
                t = time.monotonic()
                try:
                    r = s.get(d.url + "/healthz", timeout=2)
                    latencies.append((time.monotonic() - t, r.status_code))
                except requests.RequestException as e:
                    errors.append(repr(e))
                time.sleep(0.05)

    th = threading.Thread(target=normal_client)
    th.start()
    try:
        waited, got, closed = _wait_closed(slow, limit=READ_TIMEOUT_MS / 1000 + 3.0)
    finally:
        stop.set()
        th.join()
        slow.close()
    assert closed, f"stalled connection still open {waited:.1f}s after its first byte"
    assert waited >= READ_TIMEOUT_MS / 1000 * 0.5, f"closed after only {waited:.2f}s"
    _check_close_response(got)
    assert not errors, errors[:3]
    assert len(latencies) >= 5, latencies
    assert all(st == 200 for _, st in latencies), latencies
    worst = max(l for l, _ in latencies)
    assert worst < 0.6, f"a normal request took {worst:.2f}s while a client stalled"
    assert time.monotonic() - t0 < 10


def test_trickling_client_is_closed(slow_daemon):
    # One header byte every 200 ms: each read makes progress, but the request
    # as a whole must arrive within the read timeout of its first byte.
    d = slow_daemon
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    payload = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"z" * 100
    t0 = time.monotonic()
    closed_at = None
    try:
        for i in range(len(payload)):
            try:
                s.sendall(payload[i:i + 1])
            except OSError:
                closed_at = time.monotonic() - t0
                break
            time.sleep(0.2)
            if time.monotonic() - t0 > READ_TIMEOUT_MS / 1000 + 4.0:
                break
            s.settimeout(0.001)
            try:
                b = s.recv(4096)
                if not b or b.startswith(b"HTTP/1.1 408"):
                    closed_at = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                closed_at = time.monotonic() - t0
                break
    finally:
        s.close()
    assert closed_at is not None, "a trickling client kept its connection past the read timeout"
    assert closed_at < READ_TIMEOUT_MS / 1000 + 2.5, f"closed only after {closed_at:.1f}s"
    assert d.get("/healthz").status_code == 200


def test_many_stalled_clients_do_not_block_service(slow_daemon):
    d = slow_daemon
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            socks.append(s)
        for _ in range(10):
            t = time.monotonic()
            r = requests.get(d.url + "/healthz", timeout=2)
            assert r.status_code == 200
            assert time.monotonic() - t < 0.6, "a normal request waited behind stalled clients"
        time.sleep(READ_TIMEOUT_MS / 1000 + 1.0)
        still_open = 0
        for s in socks:
            waited, got, closed = _wait_closed(s, limit=1.5)
            if not closed:
                still_open += 1
        assert still_open == 0, f"{still_open} of {len(socks)} stalled connections still open"
    finally:
        for s in socks:
            s.close()
    assert d.get("/healthz").status_code == 200


def test_idle_keepalive_is_not_a_read_timeout(slow_daemon):
    # An idle keep-alive connection between requests is governed by the idle
    # timeout (60 s), not the read timeout.
    d = slow_daemon
    req = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    try:
        for _ in range(2):
            s.sendall(req)
            got = b""
            while b'{"status":"ok"}' not in got:
                b = s.recv(4096)
                assert b, f"connection closed; got {got!r}"
                got += b
            assert got.startswith(b"HTTP/1.1 200"), got[:200]
            time.sleep(READ_TIMEOUT_MS / 1000 + 0.5)
    finally:
        s.close()
