"""The development stack is closed to other local users (scripts/stack.sh,
docs/development.md "The stack's password"): PostgreSQL wants the stack's
password (SCRAM-SHA-256) over TCP and on its socket, Redis answers NOAUTH
without it, and the password lives only in files of mode 0600 inside a
directory nobody else can list (the env file, DIR/secret, DIR/redis.conf),
never on a command line.

A stack made before the password gets one at its next start.

Before the password, the cluster trusted every local user on 127.0.0.1 (a
`nobody` shell connected as the superuser) and Redis had no password."""

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest

from oltest import STACK_SH, needs_control, parse_env_file

pytestmark = needs_control


@pytest.fixture(scope="module")
def env(stack):
    if stack.dir is None:
        pytest.skip("needs the stack's directory")
    return parse_env_file(Path(stack.dir) / "env")


def _pg(env, **kw):
    args = dict(host="127.0.0.1", port=int(env["PGPORT"]), user="postgres", dbname="onceledger",
                connect_timeout=10)
    args.update(kw)
    return psycopg2.connect(**args)


def _redis_raw(command, port=None, path=None):
    """One RESP inline command on a fresh connection; the first reply line."""
    fam = socket.AF_UNIX if path else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path if path else ("127.0.0.1", port))
        s.sendall(command.encode() + b"\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_env_file_and_secrets_are_private(stack, env):
    d = Path(stack.dir)
    for name in ("env", "secret", "redis.conf"):
        assert _mode(d / name) == 0o600, f"{name} has mode {oct(_mode(d / name))}"
    assert _mode(d) & 0o044 == 0, f"{d} is readable by others: {oct(_mode(d))}"
    pw = env["ONCELEDGER_STACK_PASSWORD"]
    assert len(pw) >= 32, "a short password"
    assert f":{pw}@" in env["ONCELEDGER_DATABASE_URL"] and f":{pw}@" in env["ONCELEDGER_REDIS_URL"]
    assert env["PGPASSWORD"] == pw and env["REDISCLI_AUTH"] == pw
    hba = (d / "pgdata" / "pg_hba.conf").read_text() if os.access(d / "pgdata" / "pg_hba.conf", os.R_OK) else ""
    lines = [l.split() for l in hba.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    if lines:  # readable as root; pgdata is PostgreSQL's 0700 directory
        assert all(l[-1] == "scram-sha-256" for l in lines), lines


def test_postgres_over_tcp_needs_the_password(env):
    pw = env["ONCELEDGER_STACK_PASSWORD"]
    for kw in ({}, {"password": ""}, {"password": "wrong-" + pw}):
        with pytest.raises(psycopg2.OperationalError) as e:
            _pg(env, **kw).close()
        msg = str(e.value)
        assert "password" in msg, msg
    with _pg(env, password=pw) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == "postgres"
    conn.close()


def test_postgres_socket_needs_the_password_too(env):
    """The private socket is not trusted either (the stack's scripts use
    the password everywhere)."""
    with pytest.raises(psycopg2.OperationalError) as e:
        _pg(env, host=env["PGHOST"]).close()
    assert "password" in str(e.value)
    _pg(env, host=env["PGHOST"], password=env["ONCELEDGER_STACK_PASSWORD"]).close()


def test_redis_without_auth_is_noauth(env):
    port = int(env["REDIS_PORT"])
    assert _redis_raw("PING", port=port).startswith("-NOAUTH"), "Redis answers without AUTH over TCP"
    assert _redis_raw("XRANGE onceledger:events:x - +", port=port).startswith("-NOAUTH")
    assert _redis_raw("PING", path=env["REDIS_SOCKET"]).startswith("-NOAUTH"), "... or on its socket"
    assert _redis_raw("AUTH wrong-password", port=port).startswith("-WRONGPASS")
    assert _redis_raw("AUTH " + env["ONCELEDGER_STACK_PASSWORD"], port=port) == "+OK"


def test_password_is_on_no_command_line(stack, env, daemon):
    """Every local user can read /proc/PID/cmdline: the servers get the
    password from files, and the daemons the tests start (the module's is
    running) and the CLI get the URLs in their environment."""
    assert daemon.get("/readyz").json().get("redis") == "up", "the daemon cannot use the stack's Redis"
    pw = env["ONCELEDGER_STACK_PASSWORD"].encode()
    seen = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if pw in cmd:
            seen.append(cmd.replace(b"\0", b" ").decode(errors="replace").replace(pw.decode(), "<password>"))
    assert not seen, f"the stack's password is on a command line: {seen}"


def test_another_local_user_gets_nothing(stack, env):
    """What the review did: a `nobody` shell. It cannot read the env file,
    list the directory, or log in to PostgreSQL without the password."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as nobody")
    psql = stack.pg_bin("psql")
    as_nobody = ["runuser", "-u", "nobody", "--"]
    p = subprocess.run(as_nobody + ["cat", str(Path(stack.dir) / "env")], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "Permission denied" in p.stderr, p
    p = subprocess.run(as_nobody + ["ls", str(stack.dir)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, p
    p = subprocess.run(as_nobody + [psql, "-w", "-h", "127.0.0.1", "-p", env["PGPORT"], "-U", "postgres",
                                    "-d", "onceledger", "-Xtc", "SELECT 1"],
                       capture_output=True, text=True, timeout=30, env={"PATH": os.environ.get("PATH", "")})
    assert p.returncode != 0 and "password" in p.stderr, p


def test_an_older_stack_gets_a_password_at_its_next_start():
    """A stack directory made before the password (no DIR/secret; a cluster
    whose superuser password is not the one about to be generated, as with
    `trust`): its next `start` generates one, sets it on the running
    cluster's superuser (restarting it) and on Redis, and the env file
    carries it."""
    d = Path(tempfile.mkdtemp(prefix="onceledger-stack-"))
    os.chmod(d, 0o711)

    def run(cmd):
        p = subprocess.run([str(STACK_SH), cmd, str(d)], capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, (cmd, p.stdout, p.stderr)
        return p

    try:
        run("start")
        old = parse_env_file(d / "env")["ONCELEDGER_STACK_PASSWORD"]
        (d / "secret").unlink()  # what an older stack.sh left: no secret
        p = run("start")         # still running: it is restarted with a new password
        assert "setting one" in p.stderr, p.stderr
        env = parse_env_file(d / "env")
        new = env["ONCELEDGER_STACK_PASSWORD"]
        assert new != old and _mode(d / "secret") == 0o600 and _mode(d / "env") == 0o600
        with pytest.raises(psycopg2.OperationalError):
            _pg(env, password=old).close()
        _pg(env, password=new).close()
        assert _redis_raw("AUTH " + old, port=int(env["REDIS_PORT"])).startswith("-WRONGPASS")
        assert _redis_raw("AUTH " + new, port=int(env["REDIS_PORT"])) == "+OK"
    finally:
        subprocess.run([str(STACK_SH), "stop", str(d)], capture_output=True, timeout=180)
        shutil.rmtree(d, ignore_errors=True)
