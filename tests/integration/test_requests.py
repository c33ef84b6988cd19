"""Request limits and body checks (docs/api.md §1): body size, media type, JSON
shape, header block size."""

import json
import uuid

import pytest
import requests

from oltest import assert_problem, parse_raw_response, raw_exchange


@pytest.fixture
def wkey(make_key):
    return make_key("read,write")


def _h(ctype="application/json"):
    h = {"Idempotency-Key": '"' + uuid.uuid4().hex + '"'}
    if ctype is not None:
        h["Content-Type"] = ctype
    return h


def test_body_over_64k_is_413(daemon, wkey):
    pad = 65536  # the body is {"metadata":{"p":"xxx..."}} > 65536 bytes
    body = json.dumps({"currency": "EUR", "metadata": {"p": "x" * pad}}).encode()
    assert len(body) > 65536
    r = daemon.post("/v1/accounts", key=wkey, data=body, headers=_h())
    assert_problem(r, 413, "payload_too_large")


def test_body_of_exactly_64k_is_not_413(daemon, wkey):
    prefix = b'{"currency":"EUR","metadata":{"p":"'
    suffix = b'"}}'
    body = prefix + b"x" * (65536 - len(prefix) - len(suffix)) + suffix
    assert len(body) == 65536
    r = daemon.post("/v1/accounts", key=wkey, data=body, headers=_h())
    assert r.status_code != 413, r.text[:300]


def test_huge_body_is_413_and_no_crash(daemon, wkey):
    body = b"[" + b"1," * (2 * 1024 * 1024) + b"1]"
    try:
        r = daemon.post("/v1/accounts", key=wkey, data=body, headers=_h())
        assert_problem(r, 413, "payload_too_large")
    except requests.ConnectionError:
        # Closing early on a huge body is acceptable; the daemon must live on.
        pass
    assert daemon.get("/healthz").status_code == 200


def test_declared_content_length_over_limit_is_413(daemon, wkey):
    # The daemon can refuse on Content-Length alone without reading the body.
    req = (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + wkey.encode() +
           b"\r\nContent-Type: application/json\r\nIdempotency-Key: \"" + uuid.uuid4().hex.encode() +
           b"\"\r\nContent-Length: 10000000\r\n\r\n{")
    data, err = raw_exchange(daemon.host, daemon.tcp_port, req, timeout=5)
    assert data, f"no response ({err!r})"
    status, headers, body = parse_raw_response(data)
    assert status == 413, data[:300]
    assert headers.get("content-type", "").startswith("application/problem+json")
    assert json.loads(body)["code"] == "payload_too_large"
    assert daemon.get("/healthz").status_code == 200


def test_text_plain_body_is_415(daemon, wkey):
    r = daemon.post("/v1/accounts", key=wkey, data=b'{"currency":"EUR"}', headers=_h("text/plain"))
    assert_problem(r, 415, "unsupported_media_type")


def test_missing_content_type_with_body_is_415(daemon, wkey):
    r = daemon.post("/v1/accounts", key=wkey, data=b'{"currency":"EUR"}', headers=_h(None))
    # requests sends no Content-Type for bytes bodies
    assert "Content-Type" not in r.request.headers
    assert_problem(r, 415, "unsupported_media_type")


def test_json_content_type_with_charset_is_accepted(daemon, wkey):
    r = daemon.post("/v1/accounts", key=wkey, data=b'{"currency":"EUR"}',
                    headers=_h("application/json; charset=utf-8"))
    assert r.status_code not in (400, 413, 415), r.text


@pytest.mark.parametrize("body", [
    b'{"currency":',
    b'{"currency":"EUR"',
    b"{currency: 'EUR'}",
    b'{"currency":"EUR"} trailing',
    b"\xff\xfe{}",
])
def test_malformed_json_is_400(daemon, wkey, body):
    r = daemon.post("/v1/accounts", key=wkey, data=body, headers=_h())
    assert_problem(r, 400, "invalid_request")


@pytest.mark.parametrize("body", [b"[]", b'[{"currency":"EUR"}]', b'"EUR"', b"42", b"null", b"true"])
def test_non_object_json_is_400(daemon, wkey, body):
    r = daemon.post("/v1/accounts", key=wkey, data=body, headers=_h())
    assert_problem(r, 400, "invalid_request")


def test_valid_json_object_passes_body_checks(daemon, wkey):
    # Control for the tests above: a well-formed body is not refused by them.
    r = daemon.post("/v1/accounts", key=wkey, data=b'{"currency":"EUR"}', headers=_h())
    assert r.status_code not in (400, 401, 403, 413, 415), r.text


def test_header_block_over_limit_is_431_and_no_crash(daemon):
    big = "a" * 1000
    req = "GET /healthz HTTP/1.1\r\nHost: t\r\n" + "".join(
        f"X-Big-{i}: {big}\r\n" for i in range(40)) + "\r\n"
    assert len(req) > 32768
    data, err = raw_exchange(daemon.host, daemon.tcp_port, req.encode(), timeout=5)
    assert data, f"no response to an oversized header block ({err!r})"
    status, headers, body = parse_raw_response(data)
    assert status in (431, 400), data[:300]
    assert headers.get("content-type", "").startswith("application/problem+json"), headers
    p = json.loads(body)
    assert p["status"] == status
    assert p["type"] == "urn:onceledger:problem:" + p["code"]
    assert daemon.get("/healthz").status_code == 200


def test_single_huge_header_via_requests(daemon):
    try:
        r = daemon.get("/healthz", headers={"X-Huge": "b" * 100000})
        assert r.status_code in (431, 400), r.status_code
        assert r.headers.get("Content-Type", "").startswith("application/problem+json")
    except requests.ConnectionError:
        pass  # closing on a 100 KB header is acceptable
    assert daemon.get("/healthz").status_code == 200


def test_header_block_under_limit_is_fine(daemon):
    r = daemon.get("/healthz", headers={f"X-Pad-{i}": "c" * 500 for i in range(16)})  # ~8.5 KB
    assert r.status_code == 200, r.text


def test_garbage_request_line_is_400_and_no_crash(daemon):
    for junk in (b"\x00\x01\x02 garbage\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"):
        data, err = raw_exchange(daemon.host, daemon.tcp_port, junk, timeout=5)
        if data:
            status, _, _ = parse_raw_response(data)
            assert 400 <= status < 600 and status not in (500, 502, 503), data[:200]
    assert daemon.get("/healthz").status_code == 200
