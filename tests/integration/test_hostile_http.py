"""Hostile input (docs/api.md §1, docs/errors.md, docs/configuration.md): each
hostile request is answered with a clear 4xx problem document (or, for slow
and idle clients, its connection is closed by a timeout), never a 5xx or a
crash, while a well-behaved client running alongside keeps normal latency.

Covered: slow headers, slow and trickling bodies (--read-timeout-ms 1000),
10,000 idle connections, oversized heads (431), invalid UTF-8 in JSON,
JSON nested 10,000 deep, 400-digit amounts, duplicate keys (docs/errors.md:
400 invalid_request), NUL bytes in bodies / headers / paths, hostile framing,
and percent-encoded garbage in path ids (%00, %ff, %2e%2e, overlong UTF-8,
10 KB ids).

Every case runs inside `keeps_serving(daemon)`: a background client sends
GET /healthz and an authenticated GET (one database lookup) every 20 ms on a
keep-alive connection and on fresh ones; afterwards the daemon must be alive,
answer /healthz, and that client must have seen no error and p99 < 1 s.
These are generous bounds, not benchmarks."""

import json
import resource
import select
import socket
import threading
import time
import uuid

import pytest
import requests

from oltest import TIME_FACTOR, assert_problem, needs_control, parse_raw_response

READ_TIMEOUT_MS = 1000
P99_LIMIT = 1.0 * TIME_FACTOR
MAX_LIMIT = 2.0 * TIME_FACTOR


# ---------------------------------------------------------------------------
# The well-behaved client


class keeps_serving:
    """Context manager: a concurrent well-behaved client measures latency."""

    def __init__(self, d, key=None, min_seconds=0.4, min_samples=8):
        self.d = d
        self.key = key
        self.min_seconds = min_seconds
        self.min_samples = min_samples
        self.lat = []
        self.errors = []
        self.stop = threading.Event()

    def _run(self):
        d = self.d
        missing = "/v1/accounts/watch-" + uuid.uuid4().hex[:12]
        i = 0
        with requests.Session() as s:
            while not self.stop.is_set():
                i += 1
                fresh = i % 3 == 0
                if self.key and i % 2 == 0:
                    path, headers, want = missing, {"Authorization": f"Bearer {self.key}"}, 404
                else:
                    path, headers, want = "/healthz", {}, 200
                t = time.monotonic()
                try:
                    r = (requests if fresh else s).get(d.url + path, headers=headers, timeout=5)
                    dt = time.monotonic() - t
                    self.lat.append(dt)
                    if r.status_code != want:
                        self.errors.append(f"{path}: {r.status_code} {r.text[:200]}")
                except requests.RequestException as e:
                    self.errors.append(f"{path}: {e!r} after {time.monotonic() - t:.2f}s")
                self.stop.wait(0.02)

    def __enter__(self):
        self.t0 = time.monotonic()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()
        return self

    def __exit__(self, et, ev, tb):
        while (time.monotonic() - self.t0 < self.min_seconds or len(self.lat) < self.min_samples) \
                and time.monotonic() - self.t0 < 30 and self.th.is_alive():
            time.sleep(0.02)
        self.stop.set()
        self.th.join(10)
        if et is not None:
            return False
        d = self.d
        if d.proc is not None:
            assert d.proc.poll() is None, f"the daemon died (exit {d.proc.returncode}); log {d.log_path}"
        r = requests.get(d.url + "/healthz", timeout=2)
        assert r.status_code == 200, r.text
        assert not self.errors, f"the well-behaved client failed: {self.errors[:5]}"
        assert len(self.lat) >= self.min_samples, f"only {len(self.lat)} requests of the well-behaved client"
        lat = sorted(self.lat)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        assert p99 < P99_LIMIT, f"well-behaved client p99 {p99:.3f}s (n={len(lat)}, max {lat[-1]:.3f}s)"
        assert lat[-1] < MAX_LIMIT, f"well-behaved client max {lat[-1]:.3f}s"
        return False


# ---------------------------------------------------------------------------
# Raw HTTP


def build(method, target, headers=(), body=b"", host=True):
    """A request as bytes; headers: (name, value) pairs of str or bytes."""
    def b(x):
        return x if isinstance(x, bytes) else x.encode("latin-1")
    lines = [b(method) + b" " + b(target) + b" HTTP/1.1"]
    if host:
        lines.append(b"Host: t")
    for k, v in headers:
        lines.append(b(k) + b": " + b(v))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def exchange(d, data, timeout=5.0):
    """Send raw bytes, read one response (or until close). -> (bytes, closed_without_answer)."""
    s = socket.create_connection((d.host, d.tcp_port), timeout=timeout)
    got = b""
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close before all of a huge request is sent
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            got += chunk
            if b"\r\n\r\n" in got:
                head, _, rest = got.partition(b"\r\n\r\n")
                n = None
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v.strip())
                if n is not None and len(rest) >= n:
                    break
    finally:
        s.close()
    return got


def problem_of(got, statuses, codes=None):
    """got is one HTTP response: a problem+json with one of these statuses
    (and codes); returns (status, problem)."""
    assert got, "the server closed the connection without an answer"
    status, headers, body = parse_raw_response(got)
    assert status in statuses, f"status {status}, wanted {statuses}: {got[:400]!r}"
    assert headers.get("content-type", "").split(";")[0].strip() == "application/problem+json", got[:400]
    text = body.decode("utf-8")          # valid UTF-8, whatever the input was
    p = json.loads(text)
    assert p.get("status") == status, p
    assert p.get("type") == "urn:onceledger:problem:" + str(p.get("code")), p
    if codes is not None:
        assert p.get("code") in codes, f"code {p.get('code')!r}, wanted {codes}: {p}"
    assert headers.get("x-request-id"), got[:400]
    return status, p


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def tkeys(cli):
    t = cli.tenant_create()
    return t, cli.key_create(t, "read,write,audit")


@pytest.fixture(scope="module")
def acct(daemon, tkeys):
    """An account of the module's tenant (funded with 1000)."""
    _t, k = tkeys
    aid = "hostile-" + uuid.uuid4().hex[:10]
    r = daemon.post("/v1/accounts", key=k, json={"id": aid, "currency": "EUR"},
                    headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    r = daemon.post(f"/v1/accounts/{aid}/credits", key=k, json={"amount": 1000},
                    headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return aid


def _posted(d, key, aid):
    r = d.get(f"/v1/accounts/{aid}", key=key)
    assert r.status_code == 200, r.text
    return r.json()["balance"]["posted"], r.json()["version"]


def post_raw_body(d, key, path, body, extra_headers=()):
    headers = [("Authorization", "Bearer " + key), ("Content-Type", "application/json"),
               ("Idempotency-Key", uuid.uuid4().hex), ("Content-Length", str(len(body))), *extra_headers]
    return exchange(d, build("POST", path, headers, body))


# ---------------------------------------------------------------------------
# Slow clients (their own daemon with a 1 s read timeout)


@pytest.fixture
def slow_daemon(daemon_factory):
    return daemon_factory("--read-timeout-ms", str(READ_TIMEOUT_MS))


def _wait_closed(sock, limit):
    """Read until the server closes -> (seconds, bytes received, closed?)."""
    t0 = time.monotonic()
    got = b""
    sock.settimeout(0.1)
    while time.monotonic() - t0 < limit:
        try:
            b = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0, got, True
        if not b:
            return time.monotonic() - t0, got, True
        got += b
    return time.monotonic() - t0, got, False


def _closed_by_timeout(got):
    if got:  # a 408 problem may precede the close
        problem_of(got, {408}, {"request_timeout"})


def _slow_post_head(key, aid, length):
    return build("POST", "/v1/accounts", [("Authorization", "Bearer " + key), ("Content-Type", "application/json"),
                                          ("Idempotency-Key", uuid.uuid4().hex), ("Content-Length", str(length))])


@pytest.mark.timing
@needs_control
def test_slow_headers_closed_by_read_timeout(slow_daemon, cli):
    d = slow_daemon
    t = cli.tenant_create()
    k = cli.key_create(t, "read,write")
    socks = []
    with keeps_serving(d, k, min_seconds=1.0):
        for _ in range(20):
            s = socket.create_connection((d.host, d.tcp_port), timeout=5)
            s.sendall(b"GET /v1/whoami HTTP/1.1\r\nHost: t\r\nAuthorization: Bea")
            socks.append(s)
        t0 = time.monotonic()
        waited, got, closed = _wait_closed(socks[0], READ_TIMEOUT_MS / 1000 + 3)
        for s in socks[1:]:
            _, g, c = _wait_closed(s, max(0.5, READ_TIMEOUT_MS / 1000 + 3 - (time.monotonic() - t0)))
            assert c, "a stalled head was not closed"
            _closed_by_timeout(g)
        for s in socks:
            s.close()
    assert closed, "stalled headers kept the connection open"
    assert 0.4 <= waited <= READ_TIMEOUT_MS / 1000 + 2.5, f"closed after {waited:.2f}s"
    _closed_by_timeout(got)


@pytest.mark.timing
@needs_control
@pytest.mark.parametrize("mode", ["stall", "trickle"])
def test_slow_body_closed_by_read_timeout(slow_daemon, cli, mode):
    d = slow_daemon
    t = cli.tenant_create()
    k = cli.key_create(t, "read,write")
    aid = "slow-" + uuid.uuid4().hex[:10]
    body = json.dumps({"id": aid, "currency": "EUR", "metadata": {"pad": "p" * 60}}).encode()
    with keeps_serving(d, k, min_seconds=1.0):
        s = socket.create_connection((d.host, d.tcp_port), timeout=5)
        t0 = time.monotonic()
        s.sendall(_slow_post_head(k, aid, len(body)))
        closed_at, got = None, b""
        if mode == "stall":
            s.sendall(body[:10])
            waited, got, closed = _wait_closed(s, READ_TIMEOUT_MS / 1000 + 3)
            closed_at = waited if closed else None
        else:
            # one byte every 100 ms: progress all the time, but the whole
            # request would take 10 s > the read timeout
            s.settimeout(0.001)
            for i in range(len(body) - 1):   # never complete the body
                try:
                    s.sendall(body[i:i + 1])
                    chunk = s.recv(4096)
                    if not chunk:
                        closed_at = time.monotonic() - t0
                        break
                    got += chunk
                except socket.timeout:
                    pass
                except OSError:
                    closed_at = time.monotonic() - t0
                    break
                if time.monotonic() - t0 > READ_TIMEOUT_MS / 1000 + 4:
                    break
                time.sleep(0.1)
        s.close()
    assert closed_at is not None, f"a {mode} body kept its connection past the read timeout"
    assert closed_at <= READ_TIMEOUT_MS / 1000 + 2.5, f"closed only after {closed_at:.2f}s"
    _closed_by_timeout(got)
    # the half-sent request had no effect
    assert_problem(d.get(f"/v1/accounts/{aid}", key=k), 404, "account_not_found")


@pytest.mark.timing
@needs_control
def test_many_trickling_clients_do_not_slow_others(slow_daemon, cli):
    d = slow_daemon
    t = cli.tenant_create()
    k = cli.key_create(t, "read,write")
    socks = []
    with keeps_serving(d, k, min_seconds=2.0):
        for i in range(300):
            s = socket.create_connection((d.host, d.tcp_port), timeout=5)
            s.sendall(_slow_post_head(k, "x", 500) + b'{"currency"')
            socks.append(s)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:   # keep them dripping
            for s in socks:
                try:
                    s.send(b" ")
                except OSError:
                    pass
            time.sleep(0.1)
    time.sleep(1.0)
    open_ = 0
    for s in socks:
        _, g, closed = _wait_closed(s, 0.3)
        open_ += 0 if closed else 1
        s.close()
    assert open_ == 0, f"{open_} of {len(socks)} trickling connections still open after the read timeout"


# ---------------------------------------------------------------------------
# Many idle connections


def _raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@pytest.mark.timing
@needs_control
def test_thousands_of_idle_connections(daemon_factory, cli):
    # raise our limit first: the daemon inherits it
    # the 10,000 (#9); a machine whose hard limit is lower gets
    # what it allows, and fewer than 1,000 is a skip
    soft = _raise_nofile(20000)
    n = min(10000, soft - 400)
    if n < 1000:
        pytest.skip(f"RLIMIT_NOFILE {soft} too small for an idle-connection flood")
    idle_timeout_s = 4.0
    d = daemon_factory("--read-timeout-ms", str(int(idle_timeout_s * 1000)))
    t = cli.tenant_create()
    k = cli.key_create(t, "read,write")
    socks = []
    try:
        with keeps_serving(d, k, min_seconds=1.5) as w:
            t_open = time.monotonic()
            for i in range(n):
                try:
                    s = socket.create_connection((d.host, d.tcp_port), timeout=5)
                except OSError as e:
                    pytest.fail(f"connection {i} of {n} refused: {e!r}")
                socks.append(s)
            opened = time.monotonic() - t_open
            # while all of them sit there, fresh clients are served fast
            for _ in range(20):
                t0 = time.monotonic()
                r = requests.get(d.url + "/v1/whoami", headers={"Authorization": f"Bearer {k}"}, timeout=5)
                assert r.status_code == 200, r.text
                w.lat.append(time.monotonic() - t0)
        # the server does not keep idle connections forever: each is closed
        # within the read timeout of its opening
        p = select.poll()
        fds = {}
        for s in socks:
            p.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
            fds[s.fileno()] = s
        pending = set(fds)
        deadline = time.monotonic() + idle_timeout_s + opened + 4.0
        while pending and time.monotonic() < deadline:
            for fd, _ev in p.poll(200):
                if fd in pending:
                    pending.discard(fd)
                    p.unregister(fd)
        assert not pending, f"{len(pending)} of {n} idle connections still open " \
                            f"{idle_timeout_s + opened + 4:.1f}s after opening"
        # a connection closed for idleness says at most 408
        for s in socks[:50]:
            s.settimeout(0.5)
            try:
                got = s.recv(4096)
            except OSError:
                got = b""
            _closed_by_timeout(got)
    finally:
        for s in socks:
            s.close()
    assert requests.get(d.url + "/healthz", timeout=2).status_code == 200


@pytest.mark.timing
@needs_control
def test_listen_queue_holds_a_connection_burst(daemon_factory):
    """A burst of connects while no worker is accepting (the daemon stopped
    with SIGSTOP, as a busy event loop would be) must all complete: the
    listening socket's queue is deep (4096, capped by somaxconn).  A shallow
    queue (libevent's default 128) drops SYNs, and the client only retries
    after 1 s; that is how the idle-connection flood once cost a
    well-behaved client a 1 s request."""
    import signal
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())
    n = min(1000, somaxconn - 16)
    if n < 256:
        pytest.skip(f"net.core.somaxconn {somaxconn} too small for a burst test")
    d = daemon_factory()
    socks = []
    d.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(n):
            try:
                # loopback handshakes complete in microseconds; only a
                # dropped SYN (queue full) waits for the 1 s retransmission
                socks.append(socket.create_connection((d.host, d.tcp_port), timeout=0.8))
            except OSError as e:
                pytest.fail(f"connect {i} of {n} failed while the daemon was not accepting: {e!r}")
    finally:
        d.proc.send_signal(signal.SIGCONT)
        for s in socks:
            s.close()
    assert requests.get(d.url + "/healthz", timeout=5).status_code == 200


# ---------------------------------------------------------------------------
# Oversized heads (431)


def _head_cases():
    pad = "h" * 1000
    return {
        "one_20k_header": [("X-Big", "a" * 20000)],
        "many_headers_over_16k": [(f"X-P{i}", pad) for i in range(20)],
        "101_small_fields": [(f"X-F{i}", "v") for i in range(101)],
        "500_small_fields": [(f"X-F{i}", "v") for i in range(500)],
        "huge_cookie": [("Cookie", "; ".join(f"c{i}={pad}" for i in range(30)))],
        "huge_authorization": [("Authorization", "Bearer " + "x" * 40000)],
    }


@pytest.mark.parametrize("case", list(_head_cases()))
def test_oversized_head_is_431(daemon, tkeys, case):
    headers = _head_cases()[case]
    with keeps_serving(daemon, tkeys[1]):
        for target in ("/healthz", "/v1/whoami"):
            got = exchange(daemon, build("GET", target, headers))
            problem_of(got, {431}, {"request_header_too_large"})


def test_oversized_request_line_is_431(daemon, tkeys):
    with keeps_serving(daemon, tkeys[1]):
        got = exchange(daemon, build("GET", "/v1/accounts/" + "a" * 20000,
                                     [("Authorization", "Bearer " + tkeys[1])]))
        problem_of(got, {414, 431}, {"request_header_too_large", "uri_too_long"})


def test_head_just_under_limit_is_served(daemon, tkeys):
    # control for the 431s: 15 x 1000 bytes fits the 16 KiB head limit
    headers = [(f"X-P{i}", "h" * 1000) for i in range(15)] + [("Authorization", "Bearer " + tkeys[1])]
    got = exchange(daemon, build("GET", "/v1/whoami", headers))
    assert parse_raw_response(got)[0] == 200, got[:300]


# ---------------------------------------------------------------------------
# Hostile JSON


INVALID_UTF8 = {
    "lone_ff": b'{"currency":"EUR","owner":"a\xffb"}',
    "lone_continuation": b'{"currency":"EUR","owner":"\x80"}',
    "overlong_slash": b'{"currency":"EUR","owner":"\xc0\xaf"}',
    "overlong_nul": b'{"currency":"EUR","owner":"\xc0\x80"}',
    "surrogate_utf8": b'{"currency":"EUR","owner":"\xed\xa0\x80"}',
    "beyond_10ffff": b'{"currency":"EUR","owner":"\xf4\x90\x80\x80"}',
    "truncated_seq": b'{"currency":"EUR","owner":"\xe2\x82"}',
    "in_key": b'{"currency":"EUR","own\xfeer":"x"}',
    "lone_high_surrogate_escape": b'{"currency":"EUR","owner":"\\ud800"}',
    "lone_low_surrogate_escape": b'{"currency":"EUR","owner":"\\udc00x"}',
    "latin1_body": '{"currency":"EUR","owner":"caf\xe9"}'.encode("latin-1"),
    "utf16_body": '{"currency":"EUR"}'.encode("utf-16"),
}


@pytest.mark.parametrize("case", list(INVALID_UTF8))
def test_invalid_utf8_json_is_400(daemon, tkeys, case):
    _t, k = tkeys
    body = INVALID_UTF8[case]
    with keeps_serving(daemon, k):
        for _ in range(3):
            got = post_raw_body(daemon, k, "/v1/accounts", body)
            problem_of(got, {400}, {"invalid_request"})


def test_valid_utf8_owner_is_accepted(daemon, tkeys):
    # control for the invalid UTF-8 cases: the same body with valid UTF-8
    _t, k = tkeys
    got = post_raw_body(daemon, k, "/v1/accounts", '{"currency":"EUR","owner":"café €😀"}'.encode())
    assert parse_raw_response(got)[0] == 201, got[:300]


DEEP = 10000


def _deep_bodies():
    return {
        "arrays_in_metadata": b'{"currency":"EUR","metadata":{"a":' + b"[" * DEEP + b"]" * DEEP + b"}}",
        "objects_in_metadata": b'{"currency":"EUR","metadata":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
        "unclosed_arrays": b'{"currency":"EUR","metadata":{"a":' + b"[" * 30000,
        "top_level_arrays": b"[" * 30000 + b"]" * 30000,
    }


@pytest.mark.parametrize("case", list(_deep_bodies()))
def test_json_nested_10000_deep_is_400(daemon, tkeys, case):
    _t, k = tkeys
    body = _deep_bodies()[case]
    assert len(body) <= 65536
    with keeps_serving(daemon, k):
        for path in ("/v1/accounts", "/v1/transfers"):
            got = post_raw_body(daemon, k, path, body)
            problem_of(got, {400}, {"invalid_request"})


BIG = "9" * 400


@pytest.mark.parametrize("amount", [
    "1" + "0" * 399, BIG, "-" + BIG, "0." + "0" * 398 + "1", BIG + ".5", "1e400", "1E+400", "-1e-400",
    "9223372036854775808", "18446744073709551616", "9223372036854775807.0", "1.0", "01", "+1",
    "NaN", "Infinity", "-Infinity", "0x10",
])
def test_huge_or_odd_number_as_amount_is_400(daemon, tkeys, acct, amount):
    _t, k = tkeys
    before = _posted(daemon, k, acct)
    with keeps_serving(daemon, k):
        for path in (f"/v1/accounts/{acct}/credits", f"/v1/accounts/{acct}/debits"):
            got = post_raw_body(daemon, k, path, b'{"amount":' + amount.encode() + b"}")
            problem_of(got, {400}, {"invalid_request"})
        got = post_raw_body(daemon, k, "/v1/transfers",
                            b'{"from":"' + acct.encode() + b'","to":"@world:EUR","currency":"EUR","amount":'
                            + amount.encode() + b"}")
        problem_of(got, {400}, {"invalid_request"})
    assert _posted(daemon, k, acct) == before


def test_max_amount_is_not_400(daemon, tkeys):
    # control for the number cases: 2^63-1 passes validation (a fresh account)
    _t, k = tkeys
    aid = "max-" + uuid.uuid4().hex[:10]
    r = daemon.post("/v1/accounts", key=k, json={"id": aid, "currency": "EUR"},
                    headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    got = post_raw_body(daemon, k, f"/v1/accounts/{aid}/credits", b'{"amount":9223372036854775807}')
    assert parse_raw_response(got)[0] == 201, got[:400]


DUPLICATES = {
    "top_level": b'{"currency":"EUR","currency":"USD"}',
    "same_value": b'{"currency":"EUR","currency":"EUR"}',
    "escaped_spelling": b'{"currency":"EUR","\\u0063urrency":"USD"}',
    "in_metadata": b'{"currency":"EUR","metadata":{"a":1,"a":2}}',
    "deep_in_metadata": b'{"currency":"EUR","metadata":{"x":[{"k":1,"k":1}]}}',
}


@pytest.mark.parametrize("case", list(DUPLICATES))
def test_duplicate_keys_are_400(daemon, tkeys, case):
    # docs/errors.md: "400 invalid_request ... duplicate keys" (architecture.md:
    # the body must be a JSON object without duplicate keys)
    _t, k = tkeys
    with keeps_serving(daemon, k):
        got = post_raw_body(daemon, k, "/v1/accounts", DUPLICATES[case])
        problem_of(got, {400}, {"invalid_request"})


def test_duplicate_amount_moves_no_money(daemon, tkeys, acct):
    _t, k = tkeys
    before = _posted(daemon, k, acct)
    for body in (b'{"amount":1,"amount":100000}', b'{"amount":100000,"\\u0061mount":1}'):
        for path in (f"/v1/accounts/{acct}/credits", f"/v1/accounts/{acct}/debits"):
            problem_of(post_raw_body(daemon, k, path, body), {400}, {"invalid_request"})
    assert _posted(daemon, k, acct) == before


# ---------------------------------------------------------------------------
# NUL bytes


NUL_BODIES = {
    "raw_nul_after_object": b'{"currency":"EUR"}\x00',
    "raw_nul_before_object": b'\x00{"currency":"EUR"}',
    "raw_nul_in_string": b'{"currency":"EUR","owner":"a\x00b"}',
    "raw_nul_in_key": b'{"currency":"EUR","own\x00er":"x"}',
    "escaped_nul_in_owner": b'{"currency":"EUR","owner":"a\\u0000b"}',
    "escaped_nul_in_id": b'{"currency":"EUR","id":"a\\u0000b"}',
    "escaped_nul_in_currency": b'{"currency":"EU\\u0000"}',
    "escaped_nul_in_key_name": b'{"currency":"EUR","own\\u0000er":"x"}',
    "only_nuls": b"\x00" * 64,
}


@pytest.mark.parametrize("case", list(NUL_BODIES))
def test_nul_in_body_is_400(daemon, tkeys, case):
    _t, k = tkeys
    with keeps_serving(daemon, k):
        got = post_raw_body(daemon, k, "/v1/accounts", NUL_BODIES[case])
        problem_of(got, {400}, {"invalid_request"})


def test_nul_in_metadata_value_is_400_or_stored_exactly(daemon, tkeys):
    # metadata is "stored and returned as is": a NUL in it must either be
    # refused (400) or come back unchanged, never truncated.
    _t, k = tkeys
    aid = "nulmeta-" + uuid.uuid4().hex[:8]
    got = post_raw_body(daemon, k, "/v1/accounts",
                        b'{"id":"' + aid.encode() + b'","currency":"EUR","metadata":{"m":"a\\u0000b"}}')
    status = parse_raw_response(got)[0]
    if status == 201:
        acc = daemon.get(f"/v1/accounts/{aid}", key=k).json()
        assert acc["metadata"] == {"m": "a\x00b"}, acc
    else:
        problem_of(got, {400}, {"invalid_request"})


NUL_HEADERS = {
    "in_custom_value": ("X-Note", b"a\x00b"),
    "in_authorization": ("Authorization", None),          # filled with the key + NUL
    "in_idempotency_key": ("Idempotency-Key", b"abc\x00def"),
    "in_content_type": ("Content-Type", b"application/json\x00text/html"),
    "in_request_id": ("X-Request-Id", b"rid\x00evil"),
    "in_name": (b"X-N\x00ame", b"v"),
}


@pytest.mark.parametrize("case", list(NUL_HEADERS))
def test_nul_in_header_is_4xx(daemon, tkeys, case):
    _t, k = tkeys
    name, value = NUL_HEADERS[case]
    if value is None:
        value = b"Bearer " + k.encode()[:20] + b"\x00" + k.encode()[20:]
    base = {"Authorization": b"Bearer " + k.encode(), "Content-Type": b"application/json",
            "Idempotency-Key": uuid.uuid4().hex.encode()}
    base_l = {kk.lower(): kk for kk in base}
    key_name = name.decode() if isinstance(name, bytes) else name
    if key_name.lower() in base_l:
        base.pop(base_l[key_name.lower()])
    headers = list(base.items()) + [(name, value)]
    body = b'{"currency":"EUR"}'
    with keeps_serving(daemon, k):
        got = exchange(daemon, build("POST", "/v1/accounts", headers + [("Content-Length", str(len(body)))], body))
        # RFC 9110 §5.5: a NUL in a field must be refused; docs/errors.md:
        # malformed framing is 400 invalid_request
        problem_of(got, {400}, {"invalid_request"})
        assert b"\x00" not in got, got[:300]


NUL_TARGETS = [b"/v1/accounts/a\x00b", b"/v1/whoami\x00", b"/healthz\x00/x", b"/v1/\x00", b"\x00"]


@pytest.mark.parametrize("target", NUL_TARGETS, ids=lambda t: t.decode("latin-1").replace("\x00", "NUL"))
def test_raw_nul_in_path_is_400(daemon, tkeys, target):
    _t, k = tkeys
    with keeps_serving(daemon, k):
        got = exchange(daemon, build("GET", target, [("Authorization", "Bearer " + k)]))
        problem_of(got, {400}, {"invalid_request"})


# ---------------------------------------------------------------------------
# Hostile framing


FRAMING = {
    "cl_and_te": (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "two_content_lengths": b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "negative_content_length": b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    "garbage_content_length": b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n{",
    "content_length_overflow": (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Length: "
                                b"99999999999999999999999999999\r\n\r\n{"),
    "chunk_size_overflow": (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"ffffffffffffffffffffff\r\n{}\r\n0\r\n\r\n"),
    "chunk_size_garbage": (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"zz\r\n{}\r\n0\r\n\r\n"),
    "obs_fold": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n",
    "space_before_colon": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A : a\r\n\r\n",
    "bare_lf_garbage": b"GET /healthz HTTP/1.1\nHost: t\nX\x01: \x7f\n\n",
    "header_without_colon": b"GET /healthz HTTP/1.1\r\nHost: t\r\nnocolon\r\n\r\n",
    "control_in_method": b"G\x01T /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    "binary_junk": bytes(range(256)) + b"\r\n\r\n",
}


@pytest.mark.parametrize("case", list(FRAMING))
def test_hostile_framing_is_4xx(daemon, tkeys, case):
    with keeps_serving(daemon, tkeys[1]):
        got = exchange(daemon, FRAMING[case])
        # docs/errors.md: malformed HTTP framing is 400 invalid_request (a
        # length past every limit may also be 413)
        if case in ("content_length_overflow", "chunk_size_overflow"):
            problem_of(got, {400, 413}, {"invalid_request", "payload_too_large"})
        else:
            problem_of(got, {400}, {"invalid_request"})


# ---------------------------------------------------------------------------
# Percent-encoded garbage in path ids


ID_ROUTES = [
    ("GET", "/v1/accounts/{}", "account_not_found"),
    ("GET", "/v1/accounts/{}/entries", "account_not_found"),
    ("POST", "/v1/accounts/{}/freeze", "account_not_found"),
    ("POST", "/v1/accounts/{}/credits", "account_not_found"),
    ("GET", "/v1/transfers/{}", "transfer_not_found"),
    ("GET", "/v1/holds/{}", "hold_not_found"),
    ("POST", "/v1/holds/{}/void", "hold_not_found"),
    ("GET", "/v1/orders/{}", "order_not_found"),
    ("POST", "/v1/orders/{}/settle", "order_not_found"),
]
IDEM_ROUTES = [
    ("GET", "/v1/idempotency-keys/{}", "not_found"),
    ("POST", "/v1/idempotency-keys/{}/complete", "not_found"),
    ("POST", "/v1/idempotency-keys/{}/release", "not_found"),
]

# segment -> the statuses allowed (400 invalid_request: not valid percent-
# encoded text per docs/errors.md; 404 <kind>_not_found: no such object)
GARBAGE = {
    "pct00": ("%00", {400}),
    "pct00_mid": ("a%00b", {400}),
    "pct01": ("%01", {400}),
    "pct7f": ("%7f", {400}),
    "pct0d0a": ("a%0d%0aX-Injected:%20yes", {400}),
    "pctff": ("%ff", {400, 404}),
    "pctfe_ff": ("%fe%ff", {400, 404}),
    "dotdot": ("%2e%2e", {400, 404}),
    "dotdot_slash": ("%2e%2e%2f%2e%2e%2fhealthz", {400, 404}),
    "encoded_slash": ("a%2fb", {400, 404}),
    "overlong_dot": ("%c0%ae%c0%ae", {400, 404}),
    "overlong_nul": ("%c0%80", {400, 404}),
    "surrogate": ("%ed%a0%80", {400, 404}),
    "truncated_pct": ("abc%4", {400}),
    "bare_pct": ("%", {400}),
    "bad_hex": ("%zz", {400}),
    "double_encoded_nul": ("%2500", {400, 404}),
    "euro_sign": ("%e2%82%ac", {400, 404}),
    "id_10k": ("a" * 10240, {400, 404, 414, 431}),
    "pct_id_5k": ("%41" * 5000, {400, 404, 414, 431}),
    "pctff_5k": ("%ff" * 5000, {400, 404, 414, 431}),
    "reserved_at": ("%40world:EUR", {400, 404}),
}

# Path segments that decode to bytes that are not UTF-8.
NOT_UTF8 = {"pctff", "pctfe_ff", "overlong_dot", "overlong_nul", "surrogate"}


def _garbage(daemon, k, routes, case):
    seg, allowed = GARBAGE[case]
    with keeps_serving(daemon, k):
        for method, pattern, nf in routes:
            target = pattern.format(seg)
            headers = [("Authorization", "Bearer " + k)]
            body = b""
            if method == "POST":
                body = b"{}"
                if "credits" in pattern:
                    body = b'{"amount":1}'
                elif "complete" in pattern:
                    body = b'{"lease_token":"t","response":{"status":200}}'
                elif "release" in pattern:
                    body = b'{"lease_token":"t"}'
                if "/idempotency-keys/" not in pattern:
                    headers.append(("Idempotency-Key", uuid.uuid4().hex))
                headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            got = exchange(daemon, build(method, target, headers, body))
            try:
                status, p = problem_of(got, allowed)
            except AssertionError as e:
                raise AssertionError(f"{method} {target[:100]}: {e}") from None
            if status == 400:
                assert p["code"] == "invalid_request", (target[:80], p)
            elif status == 404:
                assert p["code"] in (nf, "not_found"), (target[:80], p)
            else:
                assert p["code"] in ("request_header_too_large", "uri_too_long"), (target[:80], p)
            assert b"X-Injected" not in got.partition(b"\r\n\r\n")[0], got[:300]


@pytest.mark.parametrize("case", list(GARBAGE))
def test_percent_encoded_garbage_in_path_id(daemon, tkeys, case):
    _garbage(daemon, tkeys[1], ID_ROUTES, case)


# Keys that percent-decode to invalid UTF-8 (%ff, overlong forms, surrogates)
# once answered 500 (key_ok only checked control bytes); now 400.
@pytest.mark.parametrize("case", list(GARBAGE))
def test_percent_encoded_garbage_in_idempotency_key_path(daemon, tkeys, case):
    _garbage(daemon, tkeys[1], IDEM_ROUTES, case)


@pytest.mark.parametrize("value", [b"\xff", b'"\xc3\xa9"', b"a b", b'"a\tb"', b'"a\\\x00"'])
def test_non_ascii_idempotency_key_header_is_400(daemon, tkeys, value):
    _t, k = tkeys
    body = b'{"currency":"EUR"}'
    got = exchange(daemon, build("POST", "/v1/accounts", [
        ("Authorization", "Bearer " + k), ("Content-Type", "application/json"), ("Idempotency-Key", value),
        ("Content-Length", str(len(body)))], body))
    problem_of(got, {400}, {"idempotency_key_invalid", "invalid_request"})


def test_dotdot_does_not_reach_another_route(daemon, tkeys, acct):
    # /v1/accounts/{acct}/%2e%2e must not be normalised to /v1/accounts/{acct}
    _t, k = tkeys
    for target in (f"/v1/accounts/{acct}/%2e%2e", f"/v1/accounts/{acct}/..", f"/v1/accounts/x/%2e%2e/{acct}",
                   f"/v1/transfers/%2e%2e/accounts/{acct}"):
        got = exchange(daemon, build("GET", target, [("Authorization", "Bearer " + k)]))
        problem_of(got, {400, 404, 405})   # a problem, never the account
    # control: the plain path is served
    assert daemon.get(f"/v1/accounts/{acct}", key=k).status_code == 200


# Query parameters that percent-decode to garbage. Each answer is a 400
# naming the parameter, or what an unknown but well-formed value gets (an
# empty page, a 404 for a signing key), never a 5xx; the bytes never reach
# the ledger as text. GET /v1/accounts?owner=%ff once did (found by
# fuzz/fuzz_api_decode): the owner is now checked as UTF-8 text like the
# owner of POST /v1/accounts, and a customer filter must be an account id.
QUERY_ROUTES = [
    ("/v1/accounts?owner={v}", "owner", {400}),
    ("/v1/accounts?owner=x&limit={v}", "limit", {400}),
    ("/v1/accounts?owner=x&cursor={v}", "cursor", {400}),
    ("/v1/orders?customer={v}", "customer", {400}),
    ("/v1/orders?status={v}", "status", {400}),
    ("/v1/accounts/{acct}/entries?order={v}", "order", {400}),
    ("/v1/accounts/{acct}/entries?from={v}", "from", {400}),
    ("/v1/accounts/{acct}/balance?at={v}", "at", {400}),
    ("/v1/accounts/{acct}/statement?to={v}", "to", {400}),
    ("/v1/audit/verify?currency={v}", "currency", {400}),
    ("/v1/events?after={v}", "after", {400}),
    ("/v1/events/signing-key?kid={v}", None, {404}),
]
QUERY_GARBAGE = ["%ff", "%fe%ff", "%c0%80", "%ed%a0%80", "a%00b", "%01", "%7f", "a%0d%0ab", "%e2%82%ac" * 200,
                 "%ff" * 3000]


@pytest.mark.parametrize("value", QUERY_GARBAGE, ids=lambda v: v[:24])
def test_percent_encoded_garbage_in_query(daemon, tkeys, acct, value):
    _t, k = tkeys
    with keeps_serving(daemon, k):
        for pattern, field, allowed in QUERY_ROUTES:
            target = pattern.format(v=value, acct=acct)
            got = exchange(daemon, build("GET", target, [("Authorization", "Bearer " + k)]))
            try:
                status, p = problem_of(got, allowed | {431, 414})
            except AssertionError as e:
                raise AssertionError(f"GET {target[:100]}: {e}") from None
            if status == 400:
                assert p["code"] == "invalid_request" and p.get("field") == field, (target[:80], p)
