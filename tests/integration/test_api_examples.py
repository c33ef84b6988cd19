"""The curl examples of docs/api.md work as printed.

Every ```sh block of docs/api.md (but the first, which says where OL and KEY
come from) runs, in the page's order, in one bash script against the
module's daemon with OL and KEY (read, write, audit) of a fresh tenant.
`curl` is wrapped so that each call's status, headers and body are kept:
every call must succeed (2xx) and conform to docs/openapi.yaml, and together
the calls must cover every route of the routing table (one example per
route at least).
"""

import re
import shutil
import subprocess
import textwrap

import pytest
from requests.structures import CaseInsensitiveDict

import openapi_check
from oltest import REPO, parse_routes

API_MD = REPO / "docs" / "api.md"

# the counter is a file: an example's curl may run in a subshell ($(...), |)
WRAPPER = r'''
set -eu
echo 0 > "$OUT/n"
curl() {
    local n=$(($(cat "$OUT/n") + 1))
    echo $n > "$OUT/n"
    command curl -D "$OUT/h$n" -o "$OUT/b$n" -w '%{http_code} %{method} %{url_effective}' "$@" > "$OUT/s$n"
    cat "$OUT/b$n"
}
'''


def _blocks():
    text = API_MD.read_text()
    blocks = [textwrap.dedent(b) for b in re.findall(r"^ *```sh\n(.*?)^ *```", text, flags=re.S | re.M)]
    assert blocks and "KEY=$(" in blocks[0], "the first sh block of docs/api.md should set OL and KEY"
    return blocks[1:]


def _headers(raw):
    h = CaseInsensitiveDict()
    for line in raw.splitlines()[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            h[name.strip()] = value.strip()
    return h


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (scripts/install-deps.sh)")
def test_every_curl_example_works_and_conforms(daemon, make_key, tmp_path):
    key = make_key("read,write,audit")
    script = WRAPPER + "\n".join(_blocks())
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "OL": daemon.url, "KEY": key, "OUT": str(tmp_path)})
    assert p.returncode == 0, f"the examples failed ({p.returncode}):\n{p.stderr}\n{p.stdout[-2000:]}"
    spec = openapi_check.spec()
    calls = sorted(tmp_path.glob("s[0-9]*"), key=lambda f: int(f.name[1:]))
    assert calls, "no curl call ran"
    covered = set()
    for s in calls:
        n = s.name[1:]
        status, method, url = s.read_text().split(" ", 2)
        status = int(status)
        headers = _headers((tmp_path / f"h{n}").read_text())
        body = (tmp_path / f"b{n}").read_bytes() if (tmp_path / f"b{n}").exists() else b""
        assert 200 <= status < 300, f"example {n}: {method} {url} -> {status} {body[:300]!r}"
        problems = spec.check(method, url, status, headers, body)
        assert not problems, problems
        path = url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        template, _item = spec._route("/" + path)
        covered.add((method, template))
    routes = {(r.method, r.pattern) for r in parse_routes()}
    missing = sorted(routes - covered)
    assert not missing, f"routes without a curl example in docs/api.md: {missing}"
