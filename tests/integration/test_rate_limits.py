"""Per-key rate limits (issue #18.7; docs/operations.md "Rate limits"): a
token bucket per API key and daemon (`rate_limit_rps`, `rate_limit_burst`, a
tenant's override with `onceledger tenant update`), the RateLimit-Policy and
RateLimit fields of draft-ietf-httpapi-ratelimit-headers-10 on every
response while a limit applies, 429 `rate_limited` with Retry-After past it;
a 429 is never saved by the idempotency gate; counts per tenant in
/metrics; off by default."""

import json
import re
import time
import uuid

import requests

from oltest import assert_problem

POLICY_RE = re.compile(r'^"key";q=(\d+);w=(\d+)$')
LIMIT_RE = re.compile(r'^"key";r=(\d+);t=(\d+)$')


def _limit(r):
    m = LIMIT_RE.match(r.headers.get("RateLimit", ""))
    assert m, f"RateLimit {r.headers.get('RateLimit')!r}"
    return int(m.group(1)), int(m.group(2))


def _exhaust(d, key, n):
    """n requests at once: all allowed; returns their RateLimit (r, t)."""
    seen = []
    for _ in range(n):
        r = d.get("/v1/whoami", key=key)
        assert r.status_code == 200, r.text
        seen.append(_limit(r))
    return seen


def _metric(d, tenant, result):
    text = requests.get(d.url + "/metrics", timeout=10).text
    m = re.search(r'^onceledger_ratelimit_requests_total\{tenant="%s",result="%s"\} (\d+)$' % (tenant, result),
                  text, re.M)
    return int(m.group(1)) if m else 0


def test_off_by_default(daemon, cli):
    key = cli.key_create(cli.tenant_create(), "read")
    for _ in range(30):
        r = daemon.get("/v1/whoami", key=key)
        assert r.status_code == 200
        assert "RateLimit" not in r.headers and "RateLimit-Policy" not in r.headers


def test_bucket_headers_and_429(daemon_factory, cli):
    d = daemon_factory("--rate-limit-rps", "1", "--rate-limit-burst", "3")
    tenant = cli.tenant_create()
    key, other = cli.key_create(tenant, "read"), cli.key_create(tenant, "read")
    r = d.get("/v1/whoami", key=key)
    assert r.status_code == 200
    assert POLICY_RE.match(r.headers["RateLimit-Policy"]).groups() == ("3", "3"), r.headers
    assert _limit(r)[0] == 2
    assert [x[0] for x in _exhaust(d, key, 2)] == [1, 0]

    r = d.get("/v1/whoami", key=key)
    body = assert_problem(r, 429, "rate_limited")
    assert body["violated-policies"] == ["key"], body
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 1, r.headers  # one token a second
    remaining, reset = _limit(r)
    assert remaining == 0 and reset == retry, r.headers  # Retry-After not earlier than t (draft §6)
    assert POLICY_RE.match(r.headers["RateLimit-Policy"]), r.headers

    # Per key: the tenant's other key has its own bucket.
    assert d.get("/v1/whoami", key=other).status_code == 200
    # A 429 is about the key, not the route: the scope check comes after.
    assert_problem(d.get("/v1/accounts?owner=x", key=key), 429, "rate_limited")

    time.sleep(retry + 0.1)
    r = d.get("/v1/whoami", key=key)
    assert r.status_code == 200, r.text
    assert _metric(d, tenant, "limited") == 2 and _metric(d, tenant, "allowed") == 5, \
        requests.get(d.url + "/metrics").text[-800:]


def test_429_is_never_saved_by_the_idempotency_gate(daemon_factory, cli):
    d = daemon_factory("--rate-limit-rps", "1", "--rate-limit-burst", "2")
    key = cli.key_create(cli.tenant_create(), "read,write")
    _exhaust(d, key, 2)
    ik = uuid.uuid4().hex
    body = json.dumps({"id": "acc-" + uuid.uuid4().hex[:12], "currency": "USD"}).encode()
    h = {"Idempotency-Key": ik, "Content-Type": "application/json"}
    r = d.post("/v1/accounts", key=key, data=body, headers=h)
    assert_problem(r, 429, "rate_limited")
    time.sleep(int(r.headers["Retry-After"]) + 0.1)
    r = d.post("/v1/accounts", key=key, data=body, headers=h)
    assert r.status_code == 201, r.text  # the 429 was not saved under the key
    assert "Idempotent-Replayed" not in r.headers
    time.sleep(1.1)
    again = d.post("/v1/accounts", key=key, data=body, headers=h)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true", again.headers
    assert again.content == r.content
    # The replay carries this request's RateLimit fields, once, not saved ones.
    assert "," not in again.headers["RateLimit"] and "," not in again.headers["RateLimit-Policy"], again.headers


def test_tenant_override(daemon_factory, cli):
    d = daemon_factory("--rate-limit-rps", "1", "--rate-limit-burst", "1")
    exempt, strict = cli.tenant_create(), cli.tenant_create()
    cli.run("tenant", "update", exempt, "--rate-limit-rps", "0")
    cli.run("tenant", "update", strict, "--rate-limit-rps", "1", "--rate-limit-burst", "2")
    ek, sk = cli.key_create(exempt, "read"), cli.key_create(strict, "read")
    for _ in range(10):
        r = d.get("/v1/whoami", key=ek)
        assert r.status_code == 200 and "RateLimit" not in r.headers, r.headers
    r = d.get("/v1/whoami", key=sk)
    assert POLICY_RE.match(r.headers["RateLimit-Policy"]).groups() == ("2", "2"), r.headers
    assert d.get("/v1/whoami", key=sk).status_code == 200
    assert_problem(d.get("/v1/whoami", key=sk), 429, "rate_limited")
    # "default" clears the override: the server's (1, burst 1) applies to a
    # key looked up afresh.
    cli.run("tenant", "update", strict, "--rate-limit-rps", "default", "--rate-limit-burst", "default")
    fresh = cli.key_create(strict, "read")
    r = d.get("/v1/whoami", key=fresh)
    assert POLICY_RE.match(r.headers["RateLimit-Policy"]).groups() == ("1", "1"), r.headers


def test_cli_refuses_bad_rate_limits(cli):
    t = cli.tenant_create()
    for args in (("--rate-limit-rps", "-1"), ("--rate-limit-rps", "x"), ("--rate-limit-burst", "0"),
                 ("--rate-limit-rps", "1000001")):
        p = cli.run("tenant", "update", t, *args, check=False)
        assert p.returncode == 1 and "rate-limit" in p.stderr, (args, p.returncode, p.stderr)
    p = cli.run("tenant", "update", t, check=False)
    assert p.returncode == 1, "update without a setting is a usage error"
