"""TLS in front of the daemon (docs/operations.md "TLS in front of the
daemon"): contrib/nginx/onceledger.conf run by a real nginx (Debian's
package nginx) with a self-signed certificate made by openssl, in front of
a test daemon with its API and its DynamoDB endpoint. Through it: the curl
example of the docs, a POST and its replay with every idempotency and
request-id header intact, a problem document, the internal routes kept
internal, and the AWS SDK for Python (boto3) on the DynamoDB endpoint with
SigV4 over the proxy. Skipped with a message without nginx or openssl.

(The AWS SDK v3 for JavaScript suite, tests/sdk, is not run through the
proxy: it needs its own stack and npm; boto3 exercises the same SigV4 path.)"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid

import pytest
import requests

from oltest import REPO, free_port

SNIPPET = REPO / "contrib" / "nginx" / "onceledger.conf"
OPERATIONS = REPO / "docs" / "operations.md"
HOSTNAME = "ledger.example.com"


def _nginx():
    for c in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if c and os.access(c, os.X_OK):
            return c
    pytest.skip("nginx not installed (Debian package nginx): the TLS proxy example was not tested")


def _self_signed(tmp):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: no certificate for the TLS proxy test")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={HOSTNAME}",
                    "-addext", f"subjectAltName=DNS:{HOSTNAME},DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def _render(api_port, ddb_port, tls_port, tls_ddb_port, cert, key):
    """The contrib file with the test's ports and paths; each placeholder
    must be found as often as expected, so the test follows the file."""
    text = SNIPPET.read_text()
    for old, new, count in [
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{api_port};", 1),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{ddb_port};", 1),
        ("listen 443 ssl", f"listen 127.0.0.1:{tls_port} ssl", 1),
        ("listen 8443 ssl", f"listen 127.0.0.1:{tls_ddb_port} ssl", 1),
        (f"/etc/ssl/certs/{HOSTNAME}.pem", str(cert), 2),
        (f"/etc/ssl/private/{HOSTNAME}.key", str(key), 2),
    ]:
        assert text.count(old) == count, f"{SNIPPET.name}: expected {count}x {old!r}"
        text = text.replace(old, new)
    return text


def _wait_port(port, proc, log, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nginx not listening on {port}:\n{log.read_text(errors='replace')}")


@pytest.fixture
def proxied(tmp_path, daemon_factory, cli, tenant):
    nginx = _nginx()
    cert, key = _self_signed(tmp_path)
    master = tmp_path / "master.key"
    master.write_bytes(os.urandom(32))
    master.chmod(0o600)
    ddb_port = free_port()
    d = daemon_factory("--dynamodb-listen", f"127.0.0.1:{ddb_port}", "--master-key-file", str(master))
    tls_port, tls_ddb_port = free_port(), free_port()
    conf_dir = tmp_path / "nginx"
    conf_dir.mkdir()
    (conf_dir / "onceledger.conf").write_text(_render(d.port, ddb_port, tls_port, tls_ddb_port, cert, key))
    temp_paths = "\n".join(f"  {k}_temp_path {conf_dir / k};" for k in
                           ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root the workers would run as nobody, which cannot read a private
    # temporary directory; keep them as the caller.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (conf_dir / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {conf_dir}/nginx.pid;\nerror_log {conf_dir}/error.log notice;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{\n  access_log {conf_dir}/access.log;\n{temp_paths}\n  include {conf_dir}/onceledger.conf;\n}}\n")
    argv = [nginx, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf"), "-e", str(conf_dir / "error.log")]
    t = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
    assert t.returncode == 0, f"nginx -t refused {SNIPPET.name}:\n{t.stderr}"
    log = conf_dir / "error.log"
    proc = subprocess.Popen([*argv, "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(tls_port, proc, log)
        _wait_port(tls_ddb_port, proc, log)
        yield {"daemon": d, "cert": cert, "master": master, "tls_port": tls_port, "tls_ddb_port": tls_ddb_port,
               "cli": cli, "tenant": tenant, "log": log}
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_docs_curl_example_through_tls(proxied):
    """The curl example of docs/operations.md, with the test's port and CA
    file, creates an account through the proxy."""
    section = OPERATIONS.read_text().split("## TLS in front of the daemon", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"^    (curl .*?)$(?!\n    )", section, re.M | re.S)
    assert m, "no curl example in the TLS section of docs/operations.md"
    example = m.group(1).replace("\\\n", " ")
    key = proxied["cli"].key_create(proxied["tenant"], "read,write")
    assert f"https://{HOSTNAME}/" in example and "$ONCELEDGER_KEY" in example, example
    port = proxied["tls_port"]
    cmd = (example.replace(f"https://{HOSTNAME}/", f"https://{HOSTNAME}:{port}/")
           .replace("/etc/ssl/certs/ca.pem", str(proxied["cert"])))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ONCELEDGER_KEY": key}
    p = subprocess.run(["bash", "-c", cmd + f" --resolve {HOSTNAME}:{port}:127.0.0.1 -i"], capture_output=True,
                       text=True, timeout=30, env=env)
    assert p.returncode == 0, f"{cmd}\n{p.stderr}"
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    assert re.match(r"HTTP/\S+ 201", head), p.stdout
    assert re.search(r"(?im)^x-request-id: \S+", head), head
    assert json.loads(body)["currency"] == "EUR", body


def test_requests_and_headers_through_tls(proxied):
    key = proxied["cli"].key_create(proxied["tenant"], "read,write")
    base = f"https://localhost:{proxied['tls_port']}"
    s = requests.Session()
    s.trust_env = False
    s.verify = str(proxied["cert"])
    h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
         "Idempotency-Key": '"' + uuid.uuid4().hex + '"', "X-Request-Id": "tls-proxy-test-1"}
    first = s.post(base + "/v1/accounts", headers=h, data=b'{"currency":"EUR"}', timeout=10)
    assert first.status_code == 201, first.text
    assert first.headers.get("X-Request-Id") == "tls-proxy-test-1", first.headers
    assert "Idempotency-Expires" in first.headers, first.headers
    again = s.post(base + "/v1/accounts", headers=h, data=b'{"currency":"EUR"}', timeout=10)
    assert again.status_code == 201 and again.json() == first.json(), again.text
    assert again.headers.get("Idempotent-Replayed", "").lower() == "true", again.headers
    # without a request id of its own, the client gets nginx's
    r = s.get(base + "/v1/whoami", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", r.headers.get("X-Request-Id", "")), r.headers
    # a client mistake arrives as the daemon's problem document
    bad = s.post(base + "/v1/accounts", headers=dict(h, **{"Idempotency-Key": '"' + uuid.uuid4().hex + '"'}),
                 data=b'{"currency":', timeout=10)
    assert bad.status_code == 400 and bad.headers["Content-Type"].startswith("application/problem+json"), bad.text
    # the daemon's own body limit (max_body_bytes, 64 KiB) answers, not nginx's
    big = s.post(base + "/v1/accounts", headers=dict(h, **{"Idempotency-Key": '"' + uuid.uuid4().hex + '"'}),
                 data=b"{" + b" " * 70000 + b"}", timeout=10)
    assert big.status_code == 413 and big.headers["Content-Type"].startswith("application/problem+json"), big.text
    # the internal routes are not published
    for path in ("/metrics", "/readyz", "/healthz"):
        assert s.get(base + path, timeout=10).status_code == 404, path
    assert requests.get(proxied["daemon"].url + "/metrics", timeout=10).status_code == 200
    # plain HTTP to the TLS port is refused by nginx, not passed on
    assert requests.get(f"http://127.0.0.1:{proxied['tls_port']}/v1/whoami", timeout=10).status_code == 400


def test_aws_sdk_through_tls(proxied):
    boto3 = pytest.importorskip("boto3", reason="python3-boto3 not installed: the SDK was not tried through TLS")
    p = proxied["cli"].run("key", "create", "--tenant", proxied["tenant"], "--scopes", "dynamodb", "--sigv4",
                           "--master-key-file", str(proxied["master"]))
    akid, secret = p.stdout.split()
    ddb = boto3.client("dynamodb", endpoint_url=f"https://localhost:{proxied['tls_ddb_port']}",
                       region_name="us-east-1", aws_access_key_id=akid, aws_secret_access_key=secret,
                       verify=str(proxied["cert"]))
    table = "tls_" + uuid.uuid4().hex[:8]
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName=table, Item={"pk": {"S": "order-1"}, "amount": {"N": "1250"}})
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "order-1"}}, ConsistentRead=True)
    assert got["Item"]["amount"] == {"N": "1250"}, got
    assert table in ddb.list_tables()["TableNames"]
