"""Monitoring files (docs/operations.md "Alerts to set"): contrib/prometheus
passes `promtool check rules`, `promtool check config` and its own rule unit
tests (`promtool test rules`; all skipped with a message where promtool,
Debian's package prometheus, is missing); every alert of the docs' table is
in alerts.yml and back; and every metric an alert uses is exported by the
daemon, scraped from its separate metrics listener (metrics_listen) as
Prometheus would."""

import re
import shutil
import subprocess

import pytest
import requests
import yaml

from oltest import REPO, free_port

PROM = REPO / "contrib" / "prometheus"
ALERTS = PROM / "alerts.yml"
OPERATIONS = REPO / "docs" / "operations.md"

# Series Prometheus makes itself rather than scraping them.
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "bool", "offset", "inf", "nan"}


def _promtool(*args):
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed (Debian package prometheus): the alert rules were not checked")
    return subprocess.run([tool, *args], cwd=PROM, capture_output=True, text=True, timeout=120)


def _rules():
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def promql_metric_names(expr):
    """The metric names an expression selects: what is left of it without
    strings, label matchers, ranges, grouping clauses, function calls,
    keywords and numbers."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        if m.group(2) is None and m.group(1).lower() not in PROMQL_WORDS:
            names.add(m.group(1))
    return names


def test_promql_metric_names_parser():
    assert promql_metric_names('sum by (job, le) (rate(a_bucket{x="y"}[5m])) > 1 and up == 0') == \
        {"a_bucket", "up"}
    assert promql_metric_names("histogram_quantile(0.99, b) / c offset 5m > 1e3") == {"b", "c"}


def test_promtool_check_rules():
    p = _promtool("check", "rules", "alerts.yml")
    assert p.returncode == 0, p.stdout + p.stderr


def test_promtool_check_config():
    p = _promtool("check", "config", "prometheus.yml")
    assert p.returncode == 0, p.stdout + p.stderr


def test_promtool_rule_unit_tests():
    """alerts_test.yml: each alert fires on a series that should page and
    stays quiet on a healthy deployment."""
    p = _promtool("test", "rules", "alerts_test.yml")
    assert p.returncode == 0, p.stdout + p.stderr
    tested = set(re.findall(r"alertname: (\w+)", (PROM / "alerts_test.yml").read_text()))
    untested = {r["alert"] for r in _rules()} - tested
    assert not untested, f"alerts without a case in alerts_test.yml: {untested}"


def test_alerts_are_the_documented_ones():
    text = OPERATIONS.read_text()
    section = text.split("## Alerts to set", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(Onceledger\w+)` \|", section, re.M))
    in_file = {r["alert"] for r in _rules()}
    assert documented, "no alert names in the table of docs/operations.md"
    assert documented == in_file, (f"only in docs/operations.md: {documented - in_file}; "
                                   f"only in alerts.yml: {in_file - documented}")


def _exported(text):
    return {m.group(0) for line in text.splitlines() if not line.startswith("#")
            for m in [re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)] if m}


def test_every_alert_metric_is_exported(daemon_factory, make_key):
    mport = free_port()
    d = daemon_factory("--metrics-listen", f"127.0.0.1:{mport}")
    # A request of each kind the 5xx alert divides, so that the request
    # counter has series to show.
    key = make_key("read,write")
    assert d.get("/v1/whoami", key=key).status_code == 200
    assert d.get("/v1/transfers/nope", key=key).status_code == 404
    r = requests.get(f"http://127.0.0.1:{mport}/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain"), r.text[:300]
    exported = _exported(r.text)
    # the metrics listener serves the operational routes only
    assert requests.get(f"http://127.0.0.1:{mport}/readyz", timeout=10).status_code == 200
    assert requests.get(f"http://127.0.0.1:{mport}/v1/accounts", timeout=10).status_code == 404
    used = {}
    for rule in _rules():
        for name in promql_metric_names(rule["expr"]):
            used.setdefault(name, []).append(rule["alert"])
    assert len(used) >= 8, used
    missing = {n: a for n, a in used.items() if n not in exported and n not in PROMETHEUS_OWN}
    assert not missing, f"metrics alerts.yml uses that /metrics does not export: {missing}"
