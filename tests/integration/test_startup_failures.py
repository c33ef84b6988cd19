"""Start-up failures (issue #19): every way start-up can fail ends in a clean
exit 1 with a `startup_failed` log line, having released what it took.

Real failures where they reach the paths (a listen address in use, for each
of the three listeners; a master key file of the wrong size; an events key
file that is a directory), and for the steps that only fail when memory or
threads run out, the test-only ONCELEDGER_TEST_FAIL_STEP=N (src/fault.h):
the Nth start-up step fails as if its allocation, event or thread had. The
test walks N = 1, 2, ... until the daemon starts, so a step added later is
covered without touching this file.

Leaks are what this is about: run it with the ASan build (scripts/test.sh's
asan suite: ASAN_OPTIONS=detect_leaks=1:abort_on_error=1, a leak aborts the
daemon) or under valgrind (make valgrind-check: a definite leak exits 99).
Either way the exit status must be exactly 1 and the output must carry no
sanitizer report; with a plain build the statuses and log lines are still
checked."""

import os
import secrets
import socket
import subprocess
import time

import pytest

from oltest import DAEMON, TIME_FACTOR, daemon_env, free_port, json_lines, needs_control

pytestmark = needs_control

# What a sanitizer or memcheck prints when it finds something.
REPORTS = ("ERROR: LeakSanitizer", "ERROR: AddressSanitizer", "runtime error:", "definitely lost in")

# The steps a daemon with every listener, a master key and the relay takes
# (src/onceledgerd.c, src/api/worker.c, src/http/server.c); two workers.
EXPECTED_STEPS = {"rate_limits", "workers", "http_worker", "main_loop", "worker", "db_pool", "auth_cache", "metrics",
                  "item_store", "idem_hints", "akid_cache", "sweepers", "worker_thread", "relay"}


def _master_key(tmp_path):
    path = tmp_path / "master.key"
    path.write_bytes(secrets.token_bytes(32))
    os.chmod(path, 0o600)
    return path


def _argv(tmp_path, *extra):
    return [str(DAEMON), "--listen", f"127.0.0.1:{free_port()}", "--threads", "2",
            "--metrics-listen", f"127.0.0.1:{free_port()}", "--dynamodb-listen", f"127.0.0.1:{free_port()}",
            "--master-key-file", str(_master_key(tmp_path)), "--events-key-file", str(tmp_path / "events.key"),
            *extra]


def _env(stack, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCELEDGER_")}
    # The valgrind wrapper's connect timeout, when it is the daemon.
    env.update({k: v for k, v in os.environ.items() if k == "ONCELEDGER_DB_CONNECT_TIMEOUT_MS"})
    env.update(daemon_env(stack))
    env.update(extra)
    return env


def _run(argv, env, cwd, timeout):
    """Runs the daemon until it exits or logs `listening`; -> (status, output,
    started). A daemon that started is stopped with SIGTERM (status then)."""
    log = cwd / f"daemon-{time.monotonic_ns()}.log"
    with open(log, "wb") as f:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env,
                             cwd=str(cwd))
    deadline = time.monotonic() + timeout
    started = False
    try:
        while p.poll() is None and time.monotonic() < deadline:
            if '"msg":"listening"' in log.read_text(errors="replace"):
                started = True
                p.terminate()
                break
            time.sleep(0.05)
        status = p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail(f"{argv}: neither exited nor started within {timeout} s:\n{log.read_text(errors='replace')}")
    return status, log.read_text(errors="replace"), started


def _assert_clean_failure(status, out, what):
    reports = [r for r in REPORTS if r in out]
    assert not reports, f"{what}: {reports} in the output:\n{out}"
    assert status == 1, f"{what}: exit status {status}, expected 1:\n{out}"
    failed = [line for line in json_lines(out)[0] if line.get("msg") == "startup_failed"]
    assert len(failed) == 1 and failed[0].get("level") == "error" and failed[0].get("error"), \
        f"{what}: no single startup_failed line with an error:\n{out}"
    assert '"msg":"listening"' not in out, f"{what}: the daemon said it was listening:\n{out}"
    return failed[0]["error"]


def test_each_start_up_step_failing_exits_1_and_frees_everything(stack, tmp_path):
    """ONCELEDGER_TEST_FAIL_STEP=N for N = 1, 2, ... until the daemon starts:
    each run exits 1 with injected_failure naming the step, then
    startup_failed; the steps seen include every kind listed above (on both
    workers where they are per worker, the second worker's thread failing
    after the first one's started); the run past the last step starts and
    stops with 0."""
    timeout = 20 * TIME_FACTOR
    seen = []
    for n in range(1, 200):
        status, out, started = _run(_argv(tmp_path), _env(stack, ONCELEDGER_TEST_FAIL_STEP=str(n)), tmp_path,
                                    timeout)
        injected = [line for line in json_lines(out)[0] if line.get("msg") == "injected_failure"]
        if started:
            assert not injected, f"step {n} was injected yet the daemon started:\n{out}"
            assert status == 0, f"the daemon past every step: SIGTERM exit status {status}:\n{out}"
            assert not [r for r in REPORTS if r in out], out
            break
        assert len(injected) == 1 and injected[0].get("n") == n, f"step {n}: no injected_failure line:\n{out}"
        step = injected[0]["step"]
        _assert_clean_failure(status, out, f"step {n} ({step})")
        seen.append(step)
    else:
        pytest.fail(f"the daemon never started; steps seen: {seen}")
    missing = EXPECTED_STEPS - set(seen)
    assert not missing, f"start-up steps never injected: {sorted(missing)} (seen: {seen})"
    # Per-worker steps come once per worker, the threads once per worker too.
    for step in ("http_worker", "worker", "db_pool", "metrics", "sweepers", "worker_thread"):
        assert seen.count(step) == 2, f"{step}: {seen.count(step)} times in {seen}, expected once per worker"


@pytest.mark.parametrize("which", ["--listen", "--metrics-listen", "--dynamodb-listen"])
def test_listen_address_in_use_exits_1_naming_it(stack, tmp_path, which):
    """A real failure: the port of one listener is taken (the listeners
    opened before it must be closed again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        addr = f"127.0.0.1:{busy.getsockname()[1]}"
        argv = _argv(tmp_path, which, addr)
        status, out, _ = _run(argv, _env(stack), tmp_path, 20 * TIME_FACTOR)
    error = _assert_clean_failure(status, out, f"{which} {addr} in use")
    assert "cannot listen on" in error and addr in error, error


def test_bad_key_files_exit_1(stack, tmp_path):
    """Real failures: a master key file of 31 bytes; an events key file that
    is a directory."""
    short = tmp_path / "short.key"
    short.write_bytes(secrets.token_bytes(31))
    os.chmod(short, 0o600)
    status, out, _ = _run(_argv(tmp_path, "--master-key-file", str(short)), _env(stack), tmp_path, 20 * TIME_FACTOR)
    error = _assert_clean_failure(status, out, "a 31-byte master key")
    assert str(short) in error, error

    keydir = tmp_path / "keydir"
    keydir.mkdir(mode=0o700)
    status, out, _ = _run(_argv(tmp_path, "--events-key-file", str(keydir)), _env(stack), tmp_path, 20 * TIME_FACTOR)
    _assert_clean_failure(status, out, "an events key file that is a directory")


@pytest.mark.parametrize("flag,value,needs", [
    ("--idle-timeout-ms", "2h", "from 100ms to 1h"),
    ("--outbox-retention-s", "1500ms", "from 1m to 3650d"),
    ("--threads", "many", "from 0 to 256"),
    ("--relay-enabled", "maybe", "true, false"),
    ("--log-level", "loud", "one of debug, info, warn, error"),
])
def test_a_bad_setting_value_exits_1_naming_the_setting_and_its_bounds(stack, tmp_path, flag, value, needs):
    """The settings are typed (src/config.c): a value not of its type or out
    of its bounds is refused before anything starts."""
    p = subprocess.run(_argv(tmp_path, flag, value), capture_output=True, text=True, timeout=20 * TIME_FACTOR,
                       env=_env(stack))
    name = flag[2:].replace("-", "_")
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert f"invalid value '{value}' for {name}: expected" in p.stderr and needs in p.stderr, p.stderr
    assert not [r for r in REPORTS if r in p.stdout + p.stderr], p.stderr


def test_durations_with_units_and_boolean_words_are_accepted(daemon_factory):
    """`1m`, `2s`, `off`: the daemon starts with them and serves."""
    d = daemon_factory("--idle-timeout-ms", "1m", "--read-timeout-ms", "2s", "--outbox-retention-s", "7d",
                       "--relay-enabled", "off", "--log-level", "warn")
    assert d.get("/healthz").status_code == 200
    log = d.log_text()
    assert '"level":"info"' not in log, "log_level warn still logs info lines"


def _run_to_exit(argv, env, cwd, timeout):
    """Runs the daemon until it exits by itself; -> (status, output)."""
    log = cwd / f"daemon-{time.monotonic_ns()}.log"
    with open(log, "wb") as f:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env,
                             cwd=str(cwd))
    try:
        status = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail(f"{argv}: still running after {timeout} s:\n{log.read_text(errors='replace')}")
    return status, log.read_text(errors="replace")


def _assert_stopped_by_statement(status, out, name, sqlstate):
    """Exit 1, statement_invalid naming the statement, one startup_failed,
    and no connection ever handed out (db_connected): nothing was served."""
    assert not [r for r in REPORTS if r in out], out
    assert status == 1, f"exit status {status}, expected 1:\n{out}"
    lines = json_lines(out)[0]
    invalid = [line for line in lines if line.get("msg") == "statement_invalid"]
    assert invalid, f"no statement_invalid line:\n{out}"
    assert all(line.get("level") == "error" and line.get("statement") == name and line.get("sqlstate") == sqlstate
               and line.get("message") for line in invalid), out
    assert len([line for line in lines if line.get("msg") == "startup_failed"]) == 1, out
    assert not [line for line in lines if line.get("msg") == "db_connected"], out
    return invalid[0]


@pytest.mark.parametrize("name", ["lg_transfer", "it_claim", "ev_outbox_add", "db_tx_begin"])
def test_an_invalid_statement_stops_the_daemon_at_start_up(stack, tmp_path, name):
    """The fixed statements (src/api/stmts.c, db/tx.c's) are prepared on each
    new connection before it serves anything: one whose text is wrong (here
    the test-only ONCELEDGER_TEST_BAD_STMT puts a typo in front of it) is a
    syntax error at start-up, not at the first request that runs it."""
    status, out = _run_to_exit(_argv(tmp_path), _env(stack, ONCELEDGER_TEST_BAD_STMT=name), tmp_path,
                               30 * TIME_FACTOR)
    line = _assert_stopped_by_statement(status, out, name, "42601")
    assert "typo" in line["message"], line


def test_a_database_not_migrated_stops_the_daemon_saying_to_migrate(stack, tmp_path):
    """An empty database (`onceledger migrate` not run): the first fixed
    statement that names a table is an undefined table (42P01), and the log
    says what to do."""
    import psycopg2
    db = f"ol_unmigrated_{secrets.token_hex(4)}"
    admin = psycopg2.connect(stack.database_url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {db}")
    try:
        url = stack.database_url.rsplit("/", 1)[0] + "/" + db
        env = _env(stack)
        env["ONCELEDGER_DATABASE_URL"] = url
        status, out = _run_to_exit(_argv(tmp_path, "--relay-enabled", "false"), env, tmp_path, 30 * TIME_FACTOR)
        invalid = [line for line in json_lines(out)[0] if line.get("msg") == "statement_invalid"]
        assert invalid, out
        line = _assert_stopped_by_statement(status, out, invalid[0].get("statement"), "42P01")
        assert "run `onceledger migrate`" in line.get("hint", ""), line
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()
