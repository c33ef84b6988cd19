"""Made-up bearer keys (issue #18.6; docs/operations.md "API key lookups"):
they cost a bounded number of PostgreSQL lookups (a token bucket per worker,
`auth_lookup_rate`; past it 503 unavailable with Retry-After and no query),
and they cannot flush a valid key out of the cache (one least recently used
entry evicted at a time, and none for a throttled id)."""

import re
import secrets
import time

import requests

from oltest import assert_problem, json_lines

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _random_key():
    return "olk_" + secrets.token_hex(8) + "_" + "".join(secrets.choice(B64URL) for _ in range(43))


def _metrics(d):
    text = requests.get(d.url + "/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def _counters(d):
    m = _metrics(d)
    return {
        "queries": m["onceledger_auth_key_queries_total"],
        "throttled": m["onceledger_auth_lookups_throttled_total"],
        "evictions": m["onceledger_auth_cache_evictions_total"],
        "entries": m["onceledger_auth_cache_entries"],
        "hits": m['onceledger_auth_cache_lookups_total{result="hit"}'],
        "misses": m['onceledger_auth_cache_lookups_total{result="miss"}'],
    }


def test_random_keys_cost_bounded_lookups_and_keep_valid_keys_cached(daemon_factory, cli):
    # A low rate, so that the bucket bounds the flood even when the daemon
    # is slow (valgrind: 200 requests take seconds); the smallest cache, so
    # that the flood overflows it and evicts.
    rate, size = 20, 16
    d = daemon_factory("--auth-lookup-rate", str(rate), "--auth-cache-size", str(size),
                       "--auth-cache-ttl-ms", "5000", threads=1)
    tenant = cli.tenant_create()
    valid = cli.key_create(tenant, "read")
    s = requests.Session()
    assert d.get("/v1/whoami", key=valid, session=s).status_code == 200
    before = _counters(d)

    statuses = {}
    valid_statuses = []
    t0 = time.monotonic()
    for i in range(200):
        r = d.get("/v1/whoami", key=_random_key(), session=s)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        if r.status_code == 503:
            body = assert_problem(r, 503, "unavailable")
            assert r.headers.get("Retry-After", "").isdigit(), r.headers
            assert body
        else:
            assert_problem(r, 401, "unauthenticated")
        if i % 10 == 9:  # the valid client keeps working during the flood (at most 10 new entries between its uses)
            valid_statuses.append(d.get("/v1/whoami", key=valid, session=s).status_code)
    elapsed = time.monotonic() - t0
    after = _counters(d)
    delta = {k: after[k] - before[k] for k in after}

    assert set(statuses) <= {401, 503}, statuses
    assert valid_statuses == [200] * 20, valid_statuses
    # Bounded: the burst plus the refill over the flood's duration, not 200.
    assert delta["queries"] <= rate + rate * elapsed + 1, (delta, elapsed)
    assert delta["queries"] < 200, delta
    assert statuses.get(503, 0) == delta["throttled"] > 0, (statuses, delta)
    # Every query answered one made-up key (401); the valid key cost none:
    # its 20 requests were all cache hits even though the table overflowed.
    assert statuses.get(401, 0) == delta["queries"], (statuses, delta)
    assert delta["misses"] == 200 and delta["hits"] == 20, delta
    assert delta["evictions"] > 0 and after["entries"] <= size, (delta, after)
    # The flood's 503s are counted, not logged one warn line each.
    lines, _ = json_lines(d.log_text())
    warned = [x for x in lines if x.get("level") in ("warn", "error") and x.get("status") == 503]
    assert not warned, warned[:3]

    # Once the bucket has refilled, a key the worker never saw is looked up.
    time.sleep(1.2)
    other = cli.key_create(tenant, "read")
    assert d.get("/v1/whoami", key=other, session=s).status_code == 200


def test_a_made_up_key_is_cached_as_unknown(daemon_factory, cli):
    """The same unknown id again within the cache TTL costs no query."""
    d = daemon_factory("--auth-cache-ttl-ms", "5000", threads=1)
    key = _random_key()
    assert d.get("/v1/whoami", key=key).status_code == 401
    before = _counters(d)
    for _ in range(20):
        assert_problem(d.get("/v1/whoami", key=key), 401, "unauthenticated")
    after = _counters(d)
    assert after["queries"] == before["queries"], (before, after)
