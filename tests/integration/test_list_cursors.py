"""List cursors are opaque and tamper-evident (issue #18.5; docs/operations.md
"List cursors"): a cursor is accepted only by the list that issued it (same
tenant, route, path and filters), on any daemon sharing the events key file;
anything else — issue #18's unsigned `eyJhIjogMX0`, forged JSON, a truncated
or bit-flipped cursor, another tenant's, another list's, another account's,
another filter's — is `400 invalid_request` (field `cursor`), never a 5xx, and
logs no error."""

import base64
import json
import secrets
import uuid

import pytest

from oltest import assert_problem, json_lines, needs_control


def _post(d, path, key, body):
    return d.post(path, key=key, data=json.dumps(body).encode(),
                  headers={"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"})


def _b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


class Tenant:
    """A tenant with a read,write,audit key, three accounts of one owner, and
    entries on the first two."""

    def __init__(self, d, cli, owner):
        self.d = d
        self.name = cli.tenant_create()
        self.key = cli.key_create(self.name, "read,write,audit")
        self.owner = owner
        self.accounts = []
        for _ in range(3):
            acc = "acc-" + secrets.token_hex(6)
            r = _post(d, "/v1/accounts", self.key, {"id": acc, "currency": "USD", "owner": owner})
            assert r.status_code == 201, r.text
            self.accounts.append(acc)
        for acc in self.accounts[:2]:
            for amount in (10, 20, 30):
                r = _post(d, f"/v1/accounts/{acc}/credits", self.key, {"amount": amount})
                assert r.status_code == 201, r.text

    def get(self, path, params):
        return self.d.get(path, key=self.key, params=params)

    def first_cursor(self, path, params):
        r = self.get(path, dict(params, limit=1))
        assert r.status_code == 200, r.text
        cur = r.json()["next_cursor"]
        assert isinstance(cur, str) and cur, r.json()
        return cur


@pytest.fixture(scope="module")
def two(daemon, cli):
    owner = "owner-" + secrets.token_hex(4)
    return Tenant(daemon, cli, owner), Tenant(daemon, cli, owner)


def _lists(t):
    """(name, path, params) of the tenant's paged lists."""
    a0, a1 = t.accounts[0], t.accounts[1]
    return [
        ("accounts", "/v1/accounts", {"owner": t.owner}),
        ("entries", f"/v1/accounts/{a0}/entries", {}),
        ("entries-desc", f"/v1/accounts/{a0}/entries", {"order": "desc"}),
        ("entries-other-account", f"/v1/accounts/{a1}/entries", {}),
    ]


def _refused(r):
    body = assert_problem(r, 400, "invalid_request")
    assert body.get("field") == "cursor", body


def test_paging_follows_cursors_to_the_end(two):
    t = two[0]
    for name, path, params in _lists(t):
        seen, cur = [], None
        for _ in range(10):
            r = t.get(path, dict(params, limit=1, **({"cursor": cur} if cur else {})))
            assert r.status_code == 200, (name, r.text)
            page = r.json()
            seen += page["data"]
            cur = page["next_cursor"]
            if cur is None:
                break
        want = 3
        assert len(seen) == want, (name, seen)
        # the limit may change between pages: only cursor and limit may
        c = t.first_cursor(path, params)
        assert t.get(path, dict(params, limit=1000, cursor=c)).status_code == 200, name


def _crafted(good):
    """Cursors the server did not issue (good is one it did)."""
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
    flipped = []
    for i in (0, 1, len(raw) // 2, len(raw) - 17, len(raw) - 1):  # version, position, tag
        b = bytearray(raw)
        b[i] ^= 0x01
        flipped.append(base64.urlsafe_b64encode(bytes(b)).rstrip(b"=").decode())
    position = json.loads(raw[1:-16])
    return {
        "issue-18-example": "eyJhIjogMX0",
        "forged-position": _b64({"PK": {"S": "x"}, "SK": {"S": "y"}}),
        "the-position-unsigned": _b64(position),
        "the-position-resigned-garbage": base64.urlsafe_b64encode(raw[:-16] + b"\0" * 16).rstrip(b"=").decode(),
        "truncated-1": good[:-1],
        "truncated-half": good[:len(good) // 2],
        "truncated-to-4": good[:4],
        "extended": good + "A",
        "padded": good + "=" * (-len(good) % 4 or 2),
        "standard-alphabet": good.replace("-", "+").replace("_", "/") + ("+" if "-" not in good and "_" not in good else ""),
        **{f"bit-flip-{i}": f for i, f in enumerate(flipped)},
        "empty": "",
        "not-base64": "!!!",
        "long": "A" * 5000,
        "nul": good[:5] + "\0" + good[6:],
    }


@needs_control
def test_crafted_cursors_are_400_and_log_no_error(daemon, two):
    t = two[0]
    before = len(daemon.log_text().splitlines())
    bad = []
    for name, path, params in _lists(t)[:2]:
        good = t.first_cursor(path, params)
        for cname, cur in _crafted(good).items():
            r = t.get(path, dict(params, cursor=cur))
            if r.status_code != 400:
                bad.append(f"{name} {cname}: {r.status_code} {r.text[:200]}")
                continue
            _refused(r)
    assert not bad, "\n".join(bad)
    # The old code logged an error per crafted cursor (and answered 500).
    lines, _ = json_lines("\n".join(daemon.log_text().splitlines()[before:]))
    errors = [line for line in lines if line.get("level") in ("error", "fatal")]
    assert not errors, errors[:5]


def test_issue_example_on_accounts(two):
    t = two[0]
    _refused(t.get("/v1/accounts", {"owner": "x", "cursor": "eyJhIjogMX0"}))
    _refused(t.get(f"/v1/accounts/{t.accounts[0]}/entries", {"cursor": "eyJhIjogMX0"}))
    _refused(t.get("/v1/orders", {"cursor": "eyJhIjogMX0"}))


def test_another_tenants_cursor_is_refused(two):
    """Same owner name, same route: B's cursor is not A's."""
    a, b = two
    cur = b.first_cursor("/v1/accounts", {"owner": b.owner})
    _refused(a.get("/v1/accounts", {"owner": a.owner, "cursor": cur}))
    cur = b.first_cursor(f"/v1/accounts/{b.accounts[0]}/entries", {})
    _refused(a.get(f"/v1/accounts/{a.accounts[0]}/entries", {"cursor": cur}))


def test_another_lists_cursor_is_refused(two):
    """Every list's cursor on every other list (route, account, order, filter)."""
    t = two[0]
    lists = _lists(t) + [("accounts-other-owner", "/v1/accounts", {"owner": "someone-else"}),
                         ("orders", "/v1/orders", {})]
    cursors = {name: t.first_cursor(path, params) for name, path, params in _lists(t)}
    for cname, cur in cursors.items():
        for name, path, params in lists:
            r = t.get(path, dict(params, cursor=cur))
            if name == cname:
                assert r.status_code == 200, (name, r.text)
            else:
                _refused(r)


def test_events_cursor_is_strict(two):
    """GET /v1/events pages by sequence (`after`/`cursor`), strictly parsed."""
    t = two[0]
    for cur in ("eyJhIjogMX0", "-1", "1e3", "", "A" * 5000):
        _refused(t.get("/v1/events", {"cursor": cur}))


def test_a_cursor_is_accepted_by_another_daemon_with_the_same_key_file(daemon_factory, cli, tmp_path):
    """Behind a load balancer the next page may go to another instance: the
    cursor key comes from the events key file they share. A daemon with
    another key file (another deployment) refuses the cursor."""
    d1, d2 = daemon_factory(), daemon_factory()
    d3 = daemon_factory("--events-key-file", str(tmp_path / "other-events.key"))
    t = Tenant(d1, cli, "owner-" + secrets.token_hex(4))
    cur = t.first_cursor("/v1/accounts", {"owner": t.owner})
    r = d2.get("/v1/accounts", key=t.key, params={"owner": t.owner, "cursor": cur, "limit": 10})
    assert r.status_code == 200 and len(r.json()["data"]) == 2, r.text
    _refused(d3.get("/v1/accounts", key=t.key, params={"owner": t.owner, "cursor": cur}))
