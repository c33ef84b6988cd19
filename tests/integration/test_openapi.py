"""docs/openapi.yaml is the daemon's API, checked in both directions.

- the spec is a well-formed OpenAPI 3.1 document: every reference resolves,
  every schema is a valid JSON Schema 2020-12, every operation has an id,
  its responses and its security;
- the spec's routes are exactly the routing table's (src/api/routes.c), with
  the table's scopes and the Idempotency-Key header on exactly the routes the
  gate guards;
- the spec's problem codes are exactly those of src/http/problem.c and
  src/api/problem.c, and each
  is in docs/errors.md;
- the response hook (conftest.py, openapi_check.py) that validates every
  response of the suite catches an undocumented field, an undocumented
  status and a problem whose `status` is not the HTTP status.
"""

import re
import uuid

from jsonschema import Draft202012Validator

import openapi_check
from oltest import REPO, parse_routes

SPEC = openapi_check.spec()
DOC = SPEC.doc


def _refs(node, out):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            out.append(node["$ref"])
        for v in node.values():
            _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)
    return out


def test_spec_is_an_openapi_3_1_document():
    assert DOC["openapi"].startswith("3.1."), DOC["openapi"]
    for ref in _refs(DOC, []):
        openapi_check._pointer(DOC, ref)  # raises when it does not resolve
    for name, schema in DOC["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    ids = []
    for method, template, op in SPEC.operations():
        where = f"{method} {template}"
        assert op.get("operationId"), f"{where}: no operationId"
        ids.append(op["operationId"])
        assert op.get("responses"), f"{where}: no responses"
        assert "security" in op, f"{where}: no security (use [] for a public route)"
        for status, resp in op["responses"].items():
            assert re.fullmatch(r"[1-5][0-9][0-9]", status), f"{where}: status {status!r}"
            resp = SPEC.deref(resp)
            assert resp.get("description"), f"{where} {status}: no description"
            assert "X-Request-Id" in (resp.get("headers") or {}), f"{where} {status}: no X-Request-Id header"
        params = [SPEC.deref(p) for p in SPEC.doc["paths"][template].get("parameters", []) + op.get("parameters", [])]
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"\{([^}]+)\}", template)), f"{where}: path parameters {in_path}"
    assert len(ids) == len(set(ids)), "operationIds are not unique"


def test_spec_routes_are_the_routing_table():
    table = {(r.method, r.pattern) for r in parse_routes()}
    spec = {(m, t) for m, t, _op in SPEC.operations()}
    missing = sorted(table - spec)
    extra = sorted(spec - table)
    assert not missing, f"routes of src/api/routes.c missing from docs/openapi.yaml: {missing}"
    assert not extra, f"docs/openapi.yaml names routes the daemon does not have: {extra}"


def test_spec_scopes_and_idempotency_headers_are_the_tables():
    ops = {(m, t): op for m, t, op in SPEC.operations()}
    for r in parse_routes():
        op = ops[(r.method, r.pattern)]
        security = op["security"]
        if "ROUTE_PUBLIC" in r.flags:
            assert security == [], f"{r.name} is public in routes.c: security {security}"
        else:
            assert len(security) == 1 and list(security[0]) == ["apiKey"], f"{r.name}: security {security}"
            assert set(security[0]["apiKey"]) == set(r.scopes), \
                f"{r.name}: spec scopes {security[0]['apiKey']}, routes.c {sorted(r.scopes)}"
        params = [SPEC.deref(p) for p in op.get("parameters", [])]
        idem = [p for p in params if p["in"] == "header" and p["name"] == "Idempotency-Key"]
        if r.needs_idem_header:
            assert idem and idem[0].get("required"), f"{r.name}: the gate needs Idempotency-Key; spec lacks it"
        else:
            assert not idem, f"{r.name} takes no Idempotency-Key, the spec says it does"


def _problem_schemas():
    out = {}
    for name, schema in DOC["components"]["schemas"].items():
        code = schema.get("properties", {}).get("code", {}).get("const")
        if code is not None:
            out[code] = (name, schema)
    return out


def test_spec_problem_codes_are_the_daemons():
    daemon = set()
    for layer in ("http", "api"):  # the HTTP layer's own codes, then the API's
        text = (REPO / "src" / layer / "problem.c").read_text()
        table = text[text.index("titles[] = {"):text.index("};", text.index("titles[] = {"))]
        daemon |= set(re.findall(r'\{"([a-z_]+)",\s*"', table))
    assert len(daemon) > 20, daemon
    spec = _problem_schemas()
    assert set(spec) == daemon, \
        f"only in problem.c: {sorted(daemon - set(spec))}; only in the spec: {sorted(set(spec) - daemon)}"
    errors_md = (REPO / "docs" / "errors.md").read_text()
    for code, (name, schema) in spec.items():
        assert f"`{code}`" in errors_md, f"{code} is not in docs/errors.md"
        props = schema["properties"]
        assert props["type"]["const"] == f"urn:onceledger:problem:{code}", name
        assert isinstance(props["status"]["const"], int), name
        assert schema.get("unevaluatedProperties") is False, f"{name} is not closed"


def _create_account(daemon, key):
    return daemon.post("/v1/accounts", key=key, json={"currency": "USD"},
                       headers={"Idempotency-Key": uuid.uuid4().hex})


def test_hook_refuses_an_undocumented_field(daemon, make_key):
    key = make_key("read,write")
    r = _create_account(daemon, key)
    assert r.status_code == 201, r.text
    assert SPEC.check("POST", r.request.url, r.status_code, r.headers, r.content) == []
    without = openapi_check.spec_without("#/components/schemas/Account/properties", "version")
    problems = without.check("POST", r.request.url, r.status_code, r.headers, r.content)
    assert problems and "version" in problems[0], problems


def test_hook_refuses_an_undocumented_status_and_problem_code(daemon, make_key):
    key = make_key("read,write")
    r = _create_account(daemon, key)
    acc = r.json()["id"]
    r = daemon.post("/v1/accounts", key=key, json={"id": acc, "currency": "USD"},
                    headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 409, r.text
    assert SPEC.check("POST", r.request.url, 409, r.headers, r.content) == []
    no_409 = openapi_check.spec_without("#/paths/~1v1~1accounts/post/responses", "409")
    problems = no_409.check("POST", r.request.url, 409, r.headers, r.content)
    assert problems and "status 409 is not documented" in problems[0], problems
    no_code = openapi_check.spec_without(
        "#/paths/~1v1~1accounts/post/responses/409/content/application~1problem+json/schema/anyOf", 0)
    problems = no_code.check("POST", r.request.url, 409, r.headers, r.content)
    assert problems and "account_exists" in problems[0], problems


