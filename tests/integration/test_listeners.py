"""Out of file descriptors (docs/operations.md "Out of file descriptors"):
when accept(2) fails with EMFILE, every listener of the daemon (the API, the
DynamoDB endpoint and the metrics listener) stops accepting for a moment
instead of retrying in a loop, logs it once, and serves again as soon as
descriptors are free, including the clients that queued in the meantime.

The test lowers a running daemon's RLIMIT_NOFILE (prlimit(2), as
`prlimit --pid` does) to a few above what it has open, fills the gap with
idle connections to the API, queues one request on each listener, checks the
daemon's CPU time stays low while it cannot accept, then closes the
connections and checks that every queued request is answered and that each
listener serves fresh connections."""

import os
import resource
import secrets
import socket
import time

import requests

from oltest import free_port, json_lines, poll

# Descriptors the daemon may open beyond what it holds when the limit is set.
HEADROOM = 16
# How long the CPU time is sampled while the daemon is out of descriptors,
# and how much of it the daemon may use: one thread retrying accept() in a
# loop uses the whole window; backing off uses a few milliseconds.
CPU_WINDOW_S = 2.0
CPU_LIMIT_S = 0.4


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled_fds(pid):
    """The daemon's descriptor count once it stopped changing."""
    prev = -1
    for _ in range(50):
        n = open_fds(pid)
        if n == prev:
            return n
        prev = n
        time.sleep(0.2)
    return prev


def log_events(d, msg):
    return [o for o in json_lines(d.log_text())[0] if o.get("msg") == msg]


def recv_response(sock, timeout):
    """Reads one HTTP response head (and what follows it) from sock."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_every_listener_recovers_from_descriptor_exhaustion(daemon_factory, tmp_path):
    master = tmp_path / "master.key"
    master.write_bytes(secrets.token_bytes(32))
    os.chmod(master, 0o600)
    dport, mport = free_port(), free_port()
    d = daemon_factory("--dynamodb-listen", f"127.0.0.1:{dport}", "--master-key-file", str(master),
                       "--metrics-listen", f"127.0.0.1:{mport}")
    listeners = {"api": (d.tcp_port, "/healthz"), "dynamodb": (dport, "/"), "metrics": (mport, "/metrics")}
    for name, (port, path) in listeners.items():
        r = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert r.status_code == 200, (name, r.status_code, r.text[:200])

    pid = d.proc.pid
    # The requests above closed their connections; once the daemon closed
    # its side too, the count is its resting state.
    base = settled_fds(pid)
    limit = base + HEADROOM
    # The soft limit only: raising it back needs no privilege.
    old_limit = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, old_limit[1]))
    flood = []
    probes = {}
    try:
        # More connections than the daemon can take: the rest wait in the
        # listen backlog, and accept() fails with EMFILE.
        for _ in range(HEADROOM + 32):
            flood.append(socket.create_connection(("127.0.0.1", d.tcp_port), timeout=5))
        assert poll(lambda: open_fds(pid) >= limit, 10), \
            f"the daemon holds {open_fds(pid)} descriptors, expected its limit {limit}"
        # One request queued on each listener: none can be accepted now.
        for name, (port, path) in listeners.items():
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            probes[name] = s
        time.sleep(0.5)
        for name, s in probes.items():
            s.settimeout(0)
            try:
                got = s.recv(1)
            except BlockingIOError:
                got = None
            assert got is None, f"{name} answered although the daemon has no descriptor left"

        # No listener retries accept() in a loop.
        before = cpu_seconds(pid)
        time.sleep(CPU_WINDOW_S)
        spent = cpu_seconds(pid) - before
        assert d.alive(), d.log_text()[-4000:]
        assert spent < CPU_LIMIT_S, \
            f"the daemon used {spent:.2f} s of CPU in {CPU_WINDOW_S} s without descriptors (spinning on accept?)"
        # Logged once per pause, not once per attempt: at most one line per
        # listener and worker (2 workers) so far.
        paused = log_events(d, "accept_paused")
        assert paused, "no accept_paused line in the log:\n" + d.log_text()[-4000:]
        assert len(paused) <= 3 * 2, paused[:20]
        logged = {o.get("listener") for o in paused}
        assert logged == set(listeners), f"paused listeners logged: {paused}"
    finally:
        for s in flood:
            s.close()

    try:
        # The queued requests are served once descriptors are free again.
        for name, s in probes.items():
            data = recv_response(s, 10)
            assert data.startswith(b"HTTP/1.1 200 "), (name, data[:200], d.log_text()[-4000:])
    finally:
        for s in probes.values():
            s.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, old_limit)
    # And every listener takes fresh connections.
    for name, (port, path) in listeners.items():
        r = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert r.status_code == 200, (name, r.status_code, r.text[:200])
    assert log_events(d, "accept_resumed"), d.log_text()[-4000:]


def test_connection_cap_pauses_api_and_dynamodb_not_metrics(daemon_factory, tmp_path):
    """docs/configuration.md max_connections: a worker at its share stops
    accepting on the API and DynamoDB listeners until a connection closes;
    the metrics listener keeps accepting."""
    master = tmp_path / "master.key"
    master.write_bytes(secrets.token_bytes(32))
    os.chmod(master, 0o600)
    dport, mport = free_port(), free_port()
    cap = 16
    d = daemon_factory("--dynamodb-listen", f"127.0.0.1:{dport}", "--master-key-file", str(master),
                       "--metrics-listen", f"127.0.0.1:{mport}", "--max-connections", str(cap), threads=1)
    held = [socket.create_connection(("127.0.0.1", d.tcp_port), timeout=5) for _ in range(cap)]
    queued = {}
    try:
        # Until the daemon accepted all of them, another could still get in.
        assert poll(lambda: '"max_connections_reached"' in d.log_text(), 10), d.log_text()[-4000:]
        for name, port, path in (("api", d.tcp_port, "/healthz"), ("dynamodb", dport, "/")):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            queued[name] = s
        r = requests.get(f"http://127.0.0.1:{mport}/metrics", timeout=10)
        assert r.status_code == 200, r.text[:200]
        time.sleep(0.3)
        for name, s in queued.items():
            s.settimeout(0)
            try:
                got = s.recv(1)
            except BlockingIOError:
                got = None
            assert got is None, f"{name} answered although the worker is at its connection cap"
        held.pop().close()
        for name, s in queued.items():
            data = recv_response(s, 10)
            assert data.startswith(b"HTTP/1.1 200 "), (name, data[:200])
    finally:
        for s in held + list(queued.values()):
            s.close()
