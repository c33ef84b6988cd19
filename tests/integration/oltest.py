"""Helpers shared by the onceledger integration tests (conftest.py and the
test modules): paths, the stack, the CLI, the daemon, problem assertions."""

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
DAEMON = Path(os.environ.get("ONCELEDGER_DAEMON", REPO / "src" / "onceledgerd"))
CLI = Path(os.environ.get("ONCELEDGER_CLI", REPO / "src" / "onceledger"))
STACK_SH = REPO / "scripts" / "stack.sh"

REMOTE_URL = os.environ.get("ONCELEDGER_TEST_URL", "").rstrip("/")
# A daemon under valgrind runs 10-50x slower: latency bounds that say "not
# blocked" (not "fast") are multiplied by this (make valgrind-check sets 5).
TIME_FACTOR = float(os.environ.get("ONCELEDGER_TEST_TIME_FACTOR", "1"))
KEY_RE = r"^olk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$"

# Tests that must signal the daemon or stop the database skip against a
# daemon we did not start.
needs_control = pytest.mark.skipif(
    bool(REMOTE_URL), reason="needs control of the daemon and the stack (ONCELEDGER_TEST_URL is set)")


def emit(request, text):
    """Write to the terminal even while output is captured."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        with capman.global_and_fixture_disabled():
            sys.stderr.write(text)
            sys.stderr.flush()
    else:
        sys.stderr.write(text)



# ---------------------------------------------------------------------------
# Stack

def parse_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            env[k] = v
    return env


class Stack:
    """The database and Redis the tests run against."""

    def __init__(self, directory, env, database_url, redis_url, owned):
        self.dir = directory          # None when unknown (remote mode)
        self.env = env
        self.database_url = database_url
        self.redis_url = redis_url
        self.owned = owned            # we created it: stop + remove at the end

    @property
    def controllable(self):
        return self.dir is not None and not REMOTE_URL

    def run(self, cmd, check=True):
        assert self.dir is not None, "no stack directory"
        p = subprocess.run([str(STACK_SH), cmd, str(self.dir)], capture_output=True, text=True,
                           timeout=180)
        if check and p.returncode != 0:
            raise AssertionError(f"stack.sh {cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def pg_bin(self, name):
        for d in (self.env.get("PG_BIN"), "/usr/lib/postgresql/15/bin"):
            if d and Path(d, name).exists():
                return str(Path(d, name))
        return shutil.which(name) or name


# ---------------------------------------------------------------------------
# CLI

class Cli:
    def __init__(self, database_url):
        self.database_url = database_url

    def run(self, *args, check=True, db=True, timeout=60):
        # The URL carries the stack's password: in the environment, not on
        # a command line every local user can read (/proc/PID/cmdline).
        argv = [str(CLI), *args]
        env = dict(os.environ)
        env.pop("ONCELEDGER_DATABASE_URL", None)
        if db:
            env["ONCELEDGER_DATABASE_URL"] = self.database_url
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def tenant_create(self, name=None):
        name = name or unique_tenant()
        self.run("tenant", "create", name)
        return name

    def key_create(self, tenant, scopes="read,write"):
        p = self.run("key", "create", "--tenant", tenant, "--scopes", scopes)
        lines = p.stdout.splitlines()
        assert len(lines) == 1, f"key create printed {lines!r}"
        return lines[0].strip()

    def key_revoke(self, ident):
        return self.run("key", "revoke", ident)


def unique_tenant():
    return "t_" + secrets.token_hex(6)


def key_id(key):
    """olk_<16 hex id>_<secret> -> the 16 hex id."""
    return key.split("_")[1]


def key_secret(key):
    return key.split("_", 2)[2]


# ---------------------------------------------------------------------------
# Daemon

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# host:port of every API listener the suite talks to: the responses from
# these are checked against docs/openapi.yaml (conftest.py).
API_LISTENERS = set()


class Daemon:
    """A daemon the tests talk to: one we started, or a remote one."""

    def __init__(self, url, proc=None, log_path=None, port=None):
        self.url = url
        API_LISTENERS.add(urlsplit(url).netloc)
        self.proc = proc
        self.log_path = log_path
        self.port = port

    @property
    def controllable(self):
        return self.proc is not None

    @property
    def host(self):
        return self.url.split("//", 1)[1].rsplit(":", 1)[0]

    @property
    def tcp_port(self):
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def get(self, path, key=None, headers=None, **kw):
        return self.request("GET", path, key=key, headers=headers, **kw)

    def post(self, path, key=None, headers=None, **kw):
        return self.request("POST", path, key=key, headers=headers, **kw)

    def request(self, method, path, key=None, headers=None, session=None, **kw):
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        kw.setdefault("timeout", 10)
        return (session or requests).request(method, self.url + path, headers=h, **kw)

    def log_text(self):
        if self.log_path is None:
            return ""
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _pools_connected(self):
        """Every worker's pool has all its connections: /readyz answers from
        one worker, and a worker still opening connections spends its event
        loop on libpq's SCRAM handshakes (seconds under valgrind), which
        skews the timing a test then measures. True when /metrics is not on
        the API listener (--metrics-listen)."""
        r = requests.get(self.url + "/metrics", timeout=2)
        if r.status_code != 200:
            return True
        got = {}
        for line in r.text.splitlines():
            for state in ("configured", "up"):
                if line.startswith(f'onceledger_db_pool_connections{{state="{state}"}} '):
                    got[state] = float(line.split()[-1])
        return got.get("up", 0) >= got.get("configured", 0)

    def wait_healthy(self, timeout=None):
        # A slow start (valgrind, sanitizers) may need more: ONCELEDGER_TEST_START_TIMEOUT.
        timeout = timeout or float(os.environ.get("ONCELEDGER_TEST_START_TIMEOUT", "15"))
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode} during startup:\n"
                                     f"{self.log_text()}")
            try:
                # Ready, not only alive: until its pool has connected, a
                # fresh daemon answers 503 to anything needing PostgreSQL
                # (even the API key lookup), as documented for /readyz.
                r = requests.get(self.url + "/healthz", timeout=1)
                if r.status_code == 200:
                    r = requests.get(self.url + "/readyz", timeout=1)
                    if r.status_code == 200 and self._pools_connected():
                        return
                last = f"status {r.status_code} ({r.url.rsplit('/', 1)[-1]})"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(f"daemon not healthy after {timeout}s ({last}):\n{self.log_text()}")

    def terminate(self, timeout=None):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        timeout = timeout or float(os.environ.get("ONCELEDGER_TEST_STOP_TIMEOUT", "15"))
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def events_key_file(stack):
    """The Ed25519 key file every daemon of the stack signs events with (they
    must share one: any of them may be the relay, docs/events.md)."""
    return str(Path(stack.dir) / "events.key") if stack.dir is not None else None


def daemon_env(stack):
    """The stack's URLs for a daemon's environment: they carry the stack's
    password, which must not be on a command line (/proc/PID/cmdline is
    readable by every local user). Flags in extra_args still win."""
    return {"ONCELEDGER_DATABASE_URL": stack.database_url, "ONCELEDGER_REDIS_URL": stack.redis_url}


def start_daemon(stack, log_dir, extra_args=(), threads=2, name="onceledgerd", env_extra=None):
    """env_extra: variables added to the daemon's environment (e.g.
    {"ONCELEDGER_FAILPOINT": "relay_after_xadd"})."""
    if not DAEMON.exists():
        pytest.fail(f"{DAEMON} does not exist: build first (make -j2)")
    port = free_port()
    log_path = Path(log_dir) / f"{name}-{port}.log"
    argv = [str(DAEMON), "--listen", f"127.0.0.1:{port}", "--threads", str(threads),
            *(["--events-key-file", events_key_file(stack)] if stack.dir is not None else []),
            *shlex.split(os.environ.get("ONCELEDGER_TEST_DAEMON_ARGS", "")), *extra_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCELEDGER_")}
    env.update(daemon_env(stack))
    env.update(env_extra or {})
    logf = open(log_path, "wb")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                env=env, cwd=str(log_dir))
    finally:
        logf.close()
    d = Daemon(f"http://127.0.0.1:{port}", proc, log_path, port)
    d.argv = argv
    try:
        d.wait_healthy()
    except BaseException:
        d.kill()
        raise
    return d


class DynamoDaemon:
    """A daemon with a DynamoDB listener and a master key (sigv4 keys):
    url, daemon, tenant_keys(), boto3_kw(); finish() checks that it is alive
    and exits 0 (also under valgrind, whose error exit is 99)."""

    def __init__(self, stack, cli, log_dir, extra_args=(), name="ddb", threads=2):
        if not stack.controllable:
            pytest.skip("needs its own daemon")
        self.cli = cli
        self.master_key_file = Path(log_dir) / "master.key"
        self.master_key_file.write_bytes(secrets.token_bytes(32))
        os.chmod(self.master_key_file, 0o600)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.daemon = start_daemon(stack, log_dir, ["--dynamodb-listen", f"127.0.0.1:{port}", "--master-key-file",
                                                    str(self.master_key_file), *extra_args], name=name,
                                   threads=threads)

    def tenant_keys(self):
        """A new tenant and a sigv4 key of it with the dynamodb scope:
        (tenant, access key id, secret)."""
        tenant = self.cli.tenant_create()
        out = self.cli.run("key", "create", "--tenant", tenant, "--scopes", "dynamodb", "--sigv4",
                           "--master-key-file", str(self.master_key_file)).stdout.split()
        return tenant, out[0], out[1]

    def boto3_kw(self, akid, secret):
        """boto3.client() arguments for this endpoint: one attempt (a retry
        would hide the error under test), a generous read timeout."""
        from botocore.config import Config
        return dict(endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=akid,
                    aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}, read_timeout=60))

    def finish(self):
        assert self.daemon.alive(), "the daemon died:\n" + self.daemon.log_text()[-4000:]
        st = self.daemon.terminate()
        assert st == 0, f"the daemon exited {st}:\n" + self.daemon.log_text()[-4000:]


# ---------------------------------------------------------------------------
# The domain's storage: the idempotency records are items of every tenant's
# system item table "ol:ledger" (docs/idempotency.md; pk/sk of S keys are
# stored as the strings themselves); the ledger's money is in the tables of
# the schema "ledger" (docs/ledger.md).

SYSTEM_TABLE = "ol:ledger"


def lock_account(database_url, tenant, acc_id):
    """Opens a transaction holding FOR NO KEY UPDATE on the account's row
    of ledger.accounts (sql/012_ledger.sql), the lock another transaction
    writing the account holds, so that a request writing the account
    blocks in PostgreSQL (foreign key checks, FOR KEY SHARE, do not: an
    inbox credit of a busy merchant goes through). Returns the connection
    (rollback() or close() releases it)."""
    import psycopg2
    conn = psycopg2.connect(database_url)
    cur = conn.cursor()
    cur.execute("SET lock_timeout = '10s'")
    cur.execute("SELECT aid FROM ledger.accounts WHERE tenant = %s AND id = %s FOR NO KEY UPDATE", (tenant, acc_id))
    if not cur.fetchall():
        conn.rollback()
        conn.close()
        raise AssertionError(f"no stored row for account {acc_id!r} of tenant {tenant}")
    return conn

# ---------------------------------------------------------------------------
# Assertions

# ---------------------------------------------------------------------------
# The routing table, parsed from src/api/routes.c (the isolation matrix and
# the OpenAPI test both check the daemon's routes from it)

ROUTES_C = REPO / "src" / "api" / "routes.c"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    scopes: frozenset      # SCOPE_* names, lower case, without the prefix; empty for 0
    flags: frozenset       # ROUTE_* names

    @property
    def name(self):
        return f"{self.method} {self.pattern}"

    @property
    def has_object(self):
        return "{" in self.pattern

    @property
    def needs_idem_header(self):
        return self.method == "POST" and "ROUTE_NO_IDEM" not in self.flags and "ROUTE_PUBLIC" not in self.flags


_ENTRY_RE = re.compile(
    r'\{\s*HTTP_M_([A-Z]+)\s*,\s*"([^"]*)"\s*,\s*([^,{}]+?)\s*,\s*([^,{}]+?)\s*,\s*([A-Za-z_]\w*)\s*\}')


def _names(expr, prefix):
    expr = expr.strip()
    if expr == "0":
        return frozenset()
    out = set()
    for part in expr.split("|"):
        part = part.strip()
        assert part.startswith(prefix), f"unexpected token {part!r} in routes.c (wanted {prefix}*)"
        out.add(part[len(prefix):].lower() if prefix == "SCOPE_" else part)
    return frozenset(out)


def parse_routes():
    text = ROUTES_C.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    found = _ENTRY_RE.findall(text)
    # every `{HTTP_M_` of the file must have been understood, so a route in
    # an unexpected shape cannot silently escape the matrix
    assert len(found) == len(re.findall(r"\{\s*HTTP_M_", text)), \
        "routes.c has route entries the parser did not understand"
    routes = [Route(m, p, _names(s, "SCOPE_"), _names(f, "ROUTE_")) for m, p, s, f, _h in found]
    return routes


def assert_problem(resp, status, code):
    """resp is an RFC 9457 problem document with this status and code."""
    body_text = resp.text[:500]
    assert resp.status_code == status, \
        f"expected {status} {code}, got {resp.status_code}: {body_text}"
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/problem+json", \
        f"Content-Type {ctype!r}, body {body_text}"
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"problem body is not JSON: {body_text!r}")
    assert isinstance(body, dict), body
    assert body.get("type") == f"urn:onceledger:problem:{code}", body
    assert body.get("code") == code, body
    assert body.get("status") == status and type(body.get("status")) is int, body
    assert isinstance(body.get("title"), str) and body["title"], body
    assert isinstance(body.get("detail"), str) and body["detail"], f"missing detail: {body}"
    assert resp.headers.get("X-Request-Id"), "problem response without X-Request-Id"
    return body


def json_lines(text):
    """Parse every non-empty line as a JSON object; returns (objects, bad lines)."""
    objs, bad = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            o = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if isinstance(o, dict):
            objs.append(o)
        else:
            bad.append(line)
    return objs, bad


def raw_exchange(host, port, data, timeout=5.0):
    """Send raw bytes, read until EOF/timeout.  Returns (bytes, error or None)."""
    chunks = []
    err = None
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        s.settimeout(timeout)
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
            # one response is enough when the server keeps the connection open
            buf = b"".join(chunks)
            if b"\r\n\r\n" in buf:
                head, _, body = buf.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length" and len(body) >= int(v.strip()):
                        return buf, None
    except OSError as e:
        err = e
    finally:
        s.close()
    return b"".join(chunks), err


def parse_raw_response(data):
    """-> (status, {lower-case header: value}, body bytes) of the first response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", len(body)))
    return status, headers, body[:n]


def poll(fn, timeout, interval=0.1):
    """Call fn() until it returns a truthy value or timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
