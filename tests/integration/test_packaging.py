"""Packaging (docs/operations.md "Installing" and "Running as a service"):
`make install` puts the documented files in place under prefix and DESTDIR
and `make uninstall` removes them; the systemd unit of contrib/systemd passes
`systemd-analyze verify` (skipped with a message where the tool is missing)
and keeps its hardening; every setting the unit and the environment file
example name is one the daemon has.

These tests need no database: they use the build tree (a Makefile at the
repository root, i.e. the in-tree build of scripts/test.sh)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from oltest import DAEMON, REPO

UNIT = REPO / "contrib" / "systemd" / "onceledgerd.service"
ENV_EXAMPLE = REPO / "contrib" / "systemd" / "onceledgerd.env.example"
PREFIX = "/opt/onceledger"


def _daemon_settings():
    out = subprocess.run([str(DAEMON), "--help"], capture_output=True, text=True, timeout=10).stdout
    return set(re.findall(r"^\s+--[a-z0-9-]+\s+(ONCELEDGER_[A-Z0-9_]+)\s", out, re.M))


def _systemd_analyze():
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd): the unit was not verified")
    return tool


def _verify(unit_text, tmp_path, manpath):
    """systemd-analyze verify on unit_text; returns its complaints ('' when
    none). verify exits 0 on unknown keys or bad values and only warns, so
    any output on stderr counts."""
    tool = _systemd_analyze()
    path = tmp_path / "onceledgerd.service"
    path.write_text(unit_text)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MANPATH": str(manpath), "SYSTEMD_LOG_LEVEL": "notice"}
    p = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, env=env, timeout=60)
    return (p.stderr + ("" if p.returncode == 0 else f"\n(exit status {p.returncode})")).strip()


def _man_tree(tmp_path):
    """A MANPATH holding the repository's pages (verify runs man for the
    unit's Documentation= entries)."""
    root = tmp_path / "man"
    for page in (REPO / "man").glob("*.[0-9]"):
        d = root / f"man{page.suffix[1:]}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(page, d / page.name)
    return root


def _unit_with_daemon(path):
    return UNIT.read_text().replace("/usr/bin/onceledgerd", str(path))


def test_systemd_unit_verifies(tmp_path):
    complaints = _verify(_unit_with_daemon(DAEMON), tmp_path, _man_tree(tmp_path))
    assert complaints == "", f"systemd-analyze verify {UNIT}:\n{complaints}"


def test_systemd_verify_catches_a_mistake(tmp_path):
    """The check above is not vacuous: a misspelt directive is reported."""
    text = _unit_with_daemon(DAEMON).replace("ProtectSystem=strict", "ProtectSystm=strict")
    assert "ProtectSystm" in _verify(text, tmp_path, _man_tree(tmp_path))


def test_systemd_unit_hardening(tmp_path):
    text = UNIT.read_text()
    directives = dict(re.findall(r"^([A-Za-z]+)=(.*)$", text, re.M))
    for key, value in {"User": "onceledger", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
                       "StateDirectory": "onceledger", "PrivateTmp": "yes", "ProtectHome": "yes",
                       "CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX"}.items():
        assert directives.get(key) == value, f"{UNIT.name}: expected {key}={value}, found {directives.get(key)!r}"
    assert "EnvironmentFile=-/etc/onceledger/onceledgerd.env" in text
    # ExecReload only for a daemon that reloads: onceledgerd handles no SIGHUP.
    daemon_src = (REPO / "src" / "onceledgerd.c").read_text()
    assert ("ExecReload=" in text) == ("SIGHUP" in daemon_src), \
        "ExecReload= must be there exactly when the daemon handles SIGHUP"
    tool = _systemd_analyze()
    path = tmp_path / "onceledgerd.service"
    path.write_text(_unit_with_daemon(DAEMON))
    # systemd's own exposure score (0 safest, 10 worst; the threshold is
    # in tenths): at most 2.0, "OK".
    p = subprocess.run([tool, "security", "--offline=yes", "--threshold=20", str(path)], capture_output=True,
                       text=True, timeout=60)
    if "--offline" in p.stderr and "unrecognized" in p.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250): the exposure was not scored")
    assert p.returncode == 0, f"exposure above 2.0:\n{p.stdout[-3000:]}{p.stderr}"


def test_unit_and_env_example_name_real_settings():
    settings = _daemon_settings()
    assert len(settings) > 30
    for f in (UNIT, ENV_EXAMPLE):
        named = set(re.findall(r"\b(ONCELEDGER_[A-Z0-9_]+)=", f.read_text()))
        assert named, f"{f.name} names no setting"
        assert named <= settings, f"{f.name} names settings the daemon does not have: {named - settings}"


def _make(*args, cwd=REPO):
    if shutil.which("make") is None or not (REPO / "Makefile").exists():
        pytest.skip("no configured build tree at the repository root (./configure first)")
    p = subprocess.run(["make", "-s", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"make {' '.join(args)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


def test_make_install_and_uninstall(tmp_path):
    dest = tmp_path / "root"
    _make("install", f"prefix={PREFIX}", f"DESTDIR={dest}")
    top = dest / PREFIX.lstrip("/")
    expected = [
        "bin/onceledgerd", "bin/onceledger",
        "share/man/man8/onceledgerd.8", "share/man/man1/onceledger.1",
        "etc/onceledger/onceledgerd.conf",
        "share/doc/onceledger/examples/onceledgerd.conf.example",
        "share/doc/onceledger/examples/onceledgerd.env.example",
        "share/doc/onceledger/examples/alerts.yml",
        "share/doc/onceledger/examples/prometheus.yml",
        "share/doc/onceledger/examples/onceledger.conf",
        "lib/systemd/system/onceledgerd.service",
        "lib/sysusers.d/onceledger.conf",
    ]
    missing = [f for f in expected if not (top / f).is_file()]
    assert not missing, f"make install did not install {missing}"
    sql = sorted(p.name for p in (REPO / "sql").glob("*.sql"))
    assert sorted(p.name for p in (top / "share/onceledger/sql").glob("*.sql")) == sql
    # The installed programs run.
    v = subprocess.run([str(top / "bin/onceledgerd"), "--version"], capture_output=True, text=True, timeout=10)
    assert v.returncode == 0 and v.stdout.startswith("onceledgerd "), v
    h = subprocess.run([str(top / "bin/onceledger"), "--help"], capture_output=True, text=True, timeout=10)
    assert h.returncode == 0 and "migrate" in h.stderr, h
    # The installed unit names the installed paths, and verifies with them.
    unit = (top / "lib/systemd/system/onceledgerd.service").read_text()
    assert f"ExecStart={PREFIX}/bin/onceledgerd --config {PREFIX}/etc/onceledger/onceledgerd.conf" in unit
    assert f"EnvironmentFile=-{PREFIX}/etc/onceledger/onceledgerd.env" in unit
    if shutil.which("systemd-analyze") is not None:
        complaints = _verify(unit.replace(f"{PREFIX}/bin/", f"{top}/bin/"), tmp_path, top / "share/man")
        assert complaints == "", f"the installed unit:\n{complaints}"
    # An edited configuration survives a second install and the uninstall.
    conf = top / "etc/onceledger/onceledgerd.conf"
    conf.write_text(conf.read_text() + "threads = 4\n")
    _make("install", f"prefix={PREFIX}", f"DESTDIR={dest}")
    assert conf.read_text().endswith("threads = 4\n")
    _make("uninstall", f"prefix={PREFIX}", f"DESTDIR={dest}")
    left = sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_file())
    assert left == ["etc/onceledger/onceledgerd.conf"], f"make uninstall left {left}"
