"""Operational endpoints, routing errors, problem documents, X-Request-Id
(docs/api.md §1, §10)."""

import re
import uuid

import requests

from oltest import assert_problem


def test_healthz(daemon):
    r = daemon.get("/healthz")
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").split(";")[0] == "application/json"
    assert r.json() == {"status": "ok"}


def test_readyz_reports_postgres_and_redis(daemon):
    r = daemon.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, dict), body
    for k in ("postgres", "redis"):
        assert k in body, f"/readyz body lacks {k!r}: {body}"
        assert body[k] not in (None, "", {}), f"/readyz {k} state empty: {body}"
    pg = body["postgres"]
    pg_state = pg.get("status", pg.get("state")) if isinstance(pg, dict) else pg
    assert str(pg_state).lower() in ("up", "ok", "ready", "true"), f"postgres not reported up: {body}"


def test_metrics_is_prometheus_text(daemon):
    r = daemon.get("/metrics")
    assert r.status_code == 200, r.text[:300]
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    assert "# TYPE " in r.text


def test_unknown_route_is_404_not_found(daemon):
    assert_problem(daemon.get("/nope"), 404, "not_found")
    assert_problem(daemon.get("/v1x"), 404, "not_found")


def test_unknown_v1_route_with_key_is_404(daemon, make_key):
    key = make_key("read,write,audit")
    assert_problem(daemon.get("/v1/no-such-thing", key=key), 404, "not_found")
    assert_problem(daemon.get("/v1/accounts/a/b/c/d/e", key=key), 404, "not_found")


def _allow_set(resp):
    allow = resp.headers.get("Allow")
    assert allow is not None, f"405 without an Allow header: {resp.headers}"
    return {m.strip().upper() for m in allow.split(",") if m.strip()}


def test_wrong_method_is_405_with_allow(daemon):
    for method in ("POST", "DELETE", "PUT"):
        r = daemon.request(method, "/healthz", data=b"{}" if method != "DELETE" else None,
                           headers={"Content-Type": "application/json"})
        assert_problem(r, 405, "method_not_allowed")
        assert "GET" in _allow_set(r), r.headers.get("Allow")


def test_wrong_method_on_v1_route(daemon, make_key):
    key = make_key("read,write,audit")
    r = daemon.request("DELETE", "/v1/accounts", key=key)
    assert_problem(r, 405, "method_not_allowed")
    allow = _allow_set(r)
    assert {"GET", "POST"} <= allow, allow
    assert "DELETE" not in allow
    r = daemon.request("PUT", "/v1/whoami", key=key, data=b"{}", headers={"Content-Type": "application/json"})
    assert_problem(r, 405, "method_not_allowed")
    assert "GET" in _allow_set(r)


def test_head_or_get_healthz_has_no_problem_body(daemon):
    # A successful response is plain JSON, not a problem document.
    r = daemon.get("/healthz")
    assert "problem" not in r.headers.get("Content-Type", "")


def test_request_id_generated_on_every_response(daemon, make_key):
    key = make_key("read")
    responses = [
        daemon.get("/healthz"),
        daemon.get("/readyz"),
        daemon.get("/nope"),
        daemon.get("/v1/whoami"),               # 401
        daemon.get("/v1/whoami", key=key),      # 200
        daemon.request("DELETE", "/healthz"),   # 405
    ]
    ids = []
    for r in responses:
        rid = r.headers.get("X-Request-Id")
        assert rid, f"{r.request.method} {r.request.path_url} -> {r.status_code} without X-Request-Id"
        assert re.fullmatch(r"[\x21-\x7e]{1,200}", rid), rid
        ids.append(rid)
    assert len(set(ids)) == len(ids), f"request ids repeat: {ids}"


def test_request_id_echoed(daemon, make_key):
    key = make_key("read")
    for path, k in (("/healthz", None), ("/nope", None), ("/v1/whoami", None), ("/v1/whoami", key)):
        rid = "it-" + uuid.uuid4().hex
        r = daemon.get(path, key=k, headers={"X-Request-Id": rid})
        assert r.headers.get("X-Request-Id") == rid, (path, r.status_code, r.headers.get("X-Request-Id"))


def test_keep_alive_serves_many_requests_on_one_connection(daemon):
    with requests.Session() as s:
        for _ in range(50):
            r = daemon.get("/healthz", session=s)
            assert r.status_code == 200
