"""Logs: one JSON object per line, and never an API key's secret."""

import secrets
import time
import uuid

import pytest

from oltest import REMOTE_URL, json_lines, key_secret

pytestmark = pytest.mark.skipif(bool(REMOTE_URL), reason="the daemon's log is not ours (ONCELEDGER_TEST_URL)")


def _traffic(daemon, keys):
    fake = "olk_%s_%s" % (secrets.token_hex(8), "Q" * 43)
    for k in keys + [fake]:
        daemon.get("/v1/whoami", key=k)
        daemon.get("/v1/whoami", headers={"Authorization": "Bearer " + k + "junk"})
        daemon.get("/v1/accounts/x", key=k)
        daemon.post("/v1/accounts", key=k, data=b'{"currency":', headers={
            "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex})
        daemon.get("/v1/nope?api_key=" + k)
    daemon.get("/healthz")
    daemon.get("/readyz")
    daemon.get("/metrics")
    return fake


def test_every_log_line_is_json_and_no_secret(daemon, make_key, cli):
    keys = [make_key("read"), make_key("read,write"), make_key("audit")]
    cli.key_revoke(keys[2].split("_")[1])
    fake = _traffic(daemon, keys)
    time.sleep(0.5)  # let the daemon flush its log
    text = daemon.log_text()
    assert text.strip(), "the daemon wrote no log at all"
    objs, bad = json_lines(text)
    assert not bad, f"{len(bad)} log lines are not JSON objects, e.g. {bad[:3]}"
    for k in keys + [fake]:
        assert key_secret(k) not in text, "an API key secret appears in the daemon log"
        assert k not in text


def test_log_lines_have_time_and_level(daemon):
    daemon.get("/healthz")
    objs, bad = json_lines(daemon.log_text())
    assert objs, "no log lines"
    for o in objs:
        keys = set(o)
        assert keys & {"ts", "time", "timestamp", "@timestamp"}, f"log line without a time: {o}"
        assert keys & {"level", "lvl", "severity"}, f"log line without a level: {o}"
