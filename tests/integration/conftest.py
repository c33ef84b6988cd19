"""Black-box integration harness for onceledger.

Starts a throwaway PostgreSQL + Redis once per session (scripts/stack.sh),
migrates it with the real CLI, and a fresh daemon (src/onceledgerd) per test
module.  When a test of a module fails, the daemon's log is printed at the
module's teardown.

Environment:
  ONCELEDGER_TEST_URL=http://HOST:PORT   use an already running daemon instead
                                         of starting one (its database comes
                                         from ONCELEDGER_DATABASE_URL); tests
                                         that must control the daemon or the
                                         database are skipped.
  ONCELEDGER_TEST_STACK=DIR              reuse (start if needed, never stop)
                                         the stack in DIR instead of a
                                         temporary one.
  ONCELEDGER_TEST_KEEP=1                 keep the temporary stack directory.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

import openapi_check
from oltest import (API_LISTENERS, CLI, REMOTE_URL, STACK_SH, Cli, Daemon, Stack, emit, parse_env_file,
                    start_daemon)


def pytest_configure(config):
    config.addinivalue_line("markers", "controls_daemon: test starts/stops its own daemon")
    config.addinivalue_line("markers", "controls_stack: test stops/starts PostgreSQL or Redis")
    config.addinivalue_line("markers", "timing: asserts time or latency bounds; not run under valgrind (make "
                            "valgrind-check), whose 10-50x slowdown on a busy machine breaks them; the ASan "
                            "suite runs them on an instrumented daemon")
    _install_spec_check()


# ---------------------------------------------------------------------------
# Every response of a daemon's API listener is checked against
# docs/openapi.yaml (tests/integration/openapi_check.py). A response that
# does not conform is recorded, not raised where it arrives (a test may
# catch broad exceptions, or receive it on another thread), and fails the
# test that received it at its teardown; one received outside any test fails
# the session.


def _install_spec_check():
    if getattr(requests.Session.send, "_ol_spec_check", False):
        return
    original = requests.Session.send

    def send(self, request, **kw):
        resp = original(self, request, **kw)
        if not kw.get("stream") and urlsplit(request.url).netloc in API_LISTENERS:
            openapi_check.record(request.method, request.url, resp.status_code, resp.headers, resp.content)
        return resp

    send._ol_spec_check = True
    requests.Session.send = send


@pytest.fixture(autouse=True)
def _responses_conform_to_spec():
    start = openapi_check.mark()
    yield
    new = openapi_check.take(start)
    if new:
        shown = "\n  ".join(new[:10])
        more = f"\n  ... and {len(new) - 10} more" if len(new) > 10 else ""
        pytest.fail(f"{len(new)} response(s) not as docs/openapi.yaml documents them:\n  {shown}{more}",
                    pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    left = openapi_check.take(0)
    if left:
        emit_text = "\n  ".join(left[:20])
        session.config.get_terminal_writer().line(
            f"\n{len(left)} response(s) outside tests not as docs/openapi.yaml documents them:\n  {emit_text}",
            red=True)
        session.exitstatus = 1


# ---------------------------------------------------------------------------
# Failure bookkeeping: a test's outcome is stored on the item (item.rep_setup,
# item.rep_call, ...) and a failure is remembered on its module, so fixtures
# can print the daemon's log at teardown.

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        mod = getattr(item, "module", None)
        if mod is not None:
            mod._ol_failed = True


def _test_failed(item):
    for when in ("setup", "call"):
        rep = getattr(item, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


# ---------------------------------------------------------------------------
# Stack (PostgreSQL + Redis)

def _start_stack(directory):
    p = subprocess.run([str(STACK_SH), "start", str(directory)], capture_output=True, text=True,
                       timeout=180)
    if p.returncode != 0:
        pytest.exit(f"scripts/stack.sh start {directory} failed:\n{p.stdout}\n{p.stderr}", returncode=3)
    return parse_env_file(Path(directory) / "env")


@pytest.fixture(scope="session")
def stack():
    if REMOTE_URL:
        db = os.environ.get("ONCELEDGER_DATABASE_URL")
        if not db:
            pytest.exit("ONCELEDGER_TEST_URL needs ONCELEDGER_DATABASE_URL (for the CLI)", returncode=3)
        st = Stack(None, {}, db, os.environ.get("ONCELEDGER_REDIS_URL", ""), owned=False)
        _migrate(st)
        yield st
        return

    reuse = os.environ.get("ONCELEDGER_TEST_STACK")
    if reuse:
        directory = Path(reuse).resolve()
        env = _start_stack(directory)
        owned = False
    else:
        directory = Path(tempfile.mkdtemp(prefix="onceledger-it-"))
        os.chmod(directory, 0o711)  # PostgreSQL runs as `postgres` when we are root: it must pass through
        env = _start_stack(directory)
        owned = True
    st = Stack(directory, env, env["ONCELEDGER_DATABASE_URL"], env["ONCELEDGER_REDIS_URL"], owned)
    try:
        _migrate(st)
        yield st
    finally:
        if owned:
            # pg may have been left stopped by a failed outage test: stop is idempotent.
            subprocess.run([str(STACK_SH), "stop", str(directory)], capture_output=True, timeout=180)
            if not os.environ.get("ONCELEDGER_TEST_KEEP"):
                shutil.rmtree(directory, ignore_errors=True)


def _migrate(st):
    if not CLI.exists():
        pytest.exit(f"{CLI} does not exist: build first (make -j2)", returncode=3)
    p = subprocess.run([str(CLI), "migrate", "--database-url", st.database_url],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        pytest.exit(f"onceledger migrate failed ({p.returncode}):\n{p.stdout}\n{p.stderr}", returncode=3)


# ---------------------------------------------------------------------------
# CLI helpers

@pytest.fixture(scope="session")
def cli(stack):
    return Cli(stack.database_url)


@pytest.fixture
def tenant(cli):
    """A fresh tenant name for this test."""
    return cli.tenant_create()


@pytest.fixture
def make_key(cli, tenant):
    """make_key(scopes="read,write", tenant=None) -> API key text."""
    def make(scopes="read,write", tenant_name=None):
        return cli.key_create(tenant_name or tenant, scopes)
    return make


@pytest.fixture
def db(stack):
    """A psycopg2 connection (autocommit) to the test database."""
    import psycopg2
    conn = psycopg2.connect(stack.database_url)
    conn.autocommit = True
    yield conn
    conn.close()


# ---------------------------------------------------------------------------
# Daemon

def _print_log(request, d, title):
    text = d.log_text()
    lines = text.splitlines()
    if len(lines) > 400:
        text = "\n".join(["... (%d earlier lines in %s)" % (len(lines) - 400, d.log_path)] + lines[-400:])
    emit(request, f"\n===== {title}: daemon log {d.log_path} =====\n{text}\n===== end of daemon log =====\n")


@pytest.fixture(scope="session")
def log_root(request):
    """Directory for daemon logs.  Not pytest's tmp_path: pytest prunes old
    basetemp directories, which concurrent runs would do under our feet.
    Removed at the end when every test passed, else kept (path printed)."""
    d = Path(tempfile.mkdtemp(prefix="onceledger-it-logs-"))
    yield d
    if request.session.testsfailed:
        emit(request, f"\ndaemon logs kept in {d}\n")
    elif not os.environ.get("ONCELEDGER_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(request, stack, log_root):
    """The module's daemon: fresh per module, or ONCELEDGER_TEST_URL."""
    if REMOTE_URL:
        yield Daemon(REMOTE_URL)
        return
    log_dir = log_root / request.module.__name__
    log_dir.mkdir(exist_ok=True)
    d = start_daemon(stack, log_dir)
    yield d
    status = d.terminate()
    if getattr(request.module, "_ol_failed", False) or status != 0:
        _print_log(request, d, request.module.__name__)
    assert status == 0, f"daemon exited with {status} on SIGTERM (expected 0)"


@pytest.fixture
def daemon_factory(request, stack, log_root):
    """Start extra daemons controlled by one test; logs printed if it fails."""
    if REMOTE_URL:
        pytest.skip("needs control of the daemon (ONCELEDGER_TEST_URL is set)")
    started = []
    log_dir = log_root / request.node.name.replace("/", "_")[:100]
    log_dir.mkdir(exist_ok=True)

    def factory(*extra_args, threads=2, env_extra=None):
        d = start_daemon(stack, log_dir, extra_args, threads=threads, env_extra=env_extra)
        started.append(d)
        return d

    yield factory
    failed = _test_failed(request.node)
    bad = []
    for d in started:
        if d.alive():
            st = d.terminate()
            if st != 0:
                failed = True
                bad.append(f"{d.url}: {st}")
        if failed:
            _print_log(request, d, request.node.nodeid)
    # A daemon the test left running must exit 0 on SIGTERM (also: clean
    # under valgrind, which exits 99 on an error, make valgrind-check).
    assert not bad, f"daemon(s) did not exit 0 on SIGTERM: {bad}"




@pytest.fixture(autouse=True)
def _daemon_survives(request):
    """A test that uses the module's daemon fails if the daemon died during it
    (so a crash is pinned on the request that caused it)."""
    yield
    if "daemon" not in request.fixturenames or REMOTE_URL:
        return
    d = request.getfixturevalue("daemon")
    if d.proc is not None and d.proc.poll() is not None:
        pytest.fail(f"the daemon died during this test (exit status {d.proc.returncode}); "
                    f"log: {d.log_path}", pytrace=False)
