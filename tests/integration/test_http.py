"""HTTP/1.1 framing: chunked bodies, ambiguous lengths, pipelining,
HTTP/1.0, HEAD.  Raw sockets, so that the client library cannot paper over
anything."""

import json
import uuid

import pytest

from oltest import parse_raw_response, raw_exchange


@pytest.fixture
def wkey(make_key):
    return make_key("read,write")


def _post(key, extra_headers, body=b""):
    return (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + key.encode() +
            b"\r\nContent-Type: application/json\r\nIdempotency-Key: \"" + uuid.uuid4().hex.encode() +
            b"\"\r\n" + extra_headers + b"\r\n" + body)


def _problem_code(body):
    return json.loads(body)["code"]


def test_small_chunked_body_passes_body_checks(daemon, wkey):
    req = _post(wkey, b"Transfer-Encoding: chunked\r\nConnection: close\r\n",
                b"5\r\n{\"cur\r\n10\r\nrency\":\"EUR\"}   \r\n0\r\n\r\n")
    data, err = raw_exchange(daemon.host, daemon.tcp_port, req)
    assert data, err
    status, headers, body = parse_raw_response(data)
    assert status not in (400, 411, 413, 415), data[:300]


def test_chunked_body_over_limit_is_413(daemon, wkey):
    big = b"x" * 70000
    req = _post(wkey, b"Transfer-Encoding: chunked\r\nConnection: close\r\n",
                b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n")
    data, err = raw_exchange(daemon.host, daemon.tcp_port, req)
    assert data, err
    status, headers, body = parse_raw_response(data)
    assert status == 413, data[:300]
    assert _problem_code(body) == "payload_too_large"


@pytest.mark.parametrize("framing", [
    b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",      # smuggling shape
    b"Content-Length: 2\r\nContent-Length: 3\r\n",               # conflicting lengths
    b"Content-Length: -1\r\n",
    b"Content-Length: abc\r\n",
    b"Transfer-Encoding: gzip\r\n",
])
def test_ambiguous_or_bad_framing_is_400(daemon, wkey, framing):
    data, err = raw_exchange(daemon.host, daemon.tcp_port, _post(wkey, framing, b"{}"))
    assert data, err
    status, headers, body = parse_raw_response(data)
    assert status in (400, 501), data[:300]
    assert headers.get("content-type", "").startswith("application/problem+json")
    assert daemon.get("/healthz").status_code == 200


def test_pipelined_requests_answered_in_order(daemon):
    req = (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: first\r\n\r\n"
           b"GET /nope HTTP/1.1\r\nHost: t\r\nX-Request-Id: second\r\n\r\n"
           b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: third\r\nConnection: close\r\n\r\n")
    data, err = raw_exchange(daemon.host, daemon.tcp_port, req)
    rest = data
    seen = []
    while rest:
        status, headers, body = parse_raw_response(rest)
        seen.append((status, headers.get("x-request-id")))
        head_len = rest.index(b"\r\n\r\n") + 4
        rest = rest[head_len + int(headers.get("content-length", 0)):]
    assert seen == [(200, "first"), (404, "second"), (200, "third")], (seen, err)


def test_http10_is_served_and_closed(daemon):
    data, err = raw_exchange(daemon.host, daemon.tcp_port, b"GET /healthz HTTP/1.0\r\n\r\n")
    status, headers, body = parse_raw_response(data)
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_head_has_no_body(daemon):
    data, err = raw_exchange(daemon.host, daemon.tcp_port,
                             b"HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert data.endswith(b"\r\n\r\n"), f"HEAD response carries a body: {data!r}"
