"""Secret key files (issue #18.11): the master key file and the events signing
key file are refused at start-up when their group or other users may access
them, as ssh refuses such a private key, with a message naming the file and
the fix; the CLI refuses them the same way."""

import os
import secrets
import subprocess

import pytest

from oltest import CLI, DAEMON, free_port, needs_control

pytestmark = needs_control


def _start(stack, tmp_path, *args):
    """Runs the daemon until it exits (at most 20 s); -> (status, output)."""
    argv = [str(DAEMON), "--listen", f"127.0.0.1:{free_port()}", "--database-url", stack.database_url,
            "--redis-url", stack.redis_url, "--threads", "1", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCELEDGER_")}
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=env, cwd=str(tmp_path))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the daemon did not refuse to start: {e.stdout} {e.stderr}")
    return p.returncode, p.stdout + p.stderr


def _master_key(tmp_path, mode):
    path = tmp_path / "master.key"
    path.write_bytes(secrets.token_bytes(32))
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_daemon_refuses_master_key_file_others_can_read(stack, tmp_path, mode):
    key = _master_key(tmp_path, mode)
    status, out = _start(stack, tmp_path, "--master-key-file", str(key),
                         "--events-key-file", str(tmp_path / "events.key"))
    assert status != 0, out
    assert str(key) in out and "group or others" in out and f"mode {mode:04o}" in out and "chmod 600" in out, out


def test_daemon_refuses_events_key_file_others_can_read(stack, tmp_path):
    keyfile = tmp_path / "events.key"
    # A valid key file, made by the CLI (mode 0600), then opened up.
    subprocess.run([str(CLI), "signing-key", "rotate", "--key-file", str(keyfile)], check=True,
                   capture_output=True, timeout=30)
    assert keyfile.stat().st_mode & 0o777 == 0o600, "the CLI creates a private key file"
    os.chmod(keyfile, 0o644)
    status, out = _start(stack, tmp_path, "--events-key-file", str(keyfile))
    assert status != 0, out
    assert str(keyfile) in out and "group or others" in out and "chmod 600" in out, out
    p = subprocess.run([str(CLI), "signing-key", "rotate", "--key-file", str(keyfile)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "chmod 600" in p.stderr, (p.returncode, p.stderr)


def test_daemon_creates_its_events_key_file_private(daemon_factory, tmp_path):
    """Under a permissive umask the key file the daemon creates is still 0600,
    so the next start (or another daemon) accepts it."""
    keyfile = tmp_path / "events.key"
    old = os.umask(0)
    try:
        daemon_factory("--events-key-file", str(keyfile))
    finally:
        os.umask(old)
    assert keyfile.stat().st_mode & 0o777 == 0o600


def test_cli_refuses_master_key_file_others_can_read(cli, tenant, tmp_path):
    key = _master_key(tmp_path, 0o644)
    p = cli.run("key", "create", "--tenant", tenant, "--scopes", "dynamodb", "--sigv4",
                "--master-key-file", str(key), check=False)
    assert p.returncode != 0 and str(key) in p.stderr and "chmod 600" in p.stderr, (p.returncode, p.stderr)
    assert not p.stdout.strip(), "no key printed"
    os.chmod(key, 0o600)
    p = cli.run("key", "create", "--tenant", tenant, "--scopes", "dynamodb", "--sigv4", "--master-key-file", str(key))
    assert p.stdout.strip().startswith("OLAK")
