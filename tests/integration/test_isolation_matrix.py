"""Tenant isolation and scope matrix, generated from the routing table.

src/api/routes.c is parsed at test time; every /v1 route found there must
have an entry in EXERCISE below (how to call it, which scope docs/api.md §1 gives
it, which object its path names), so adding a route without teaching this
file how to exercise it fails `test_every_route_has_an_exercise` (and the
route's own parametrised cases).

For every /v1 route:
- no key (and an unknown key) -> 401 unauthenticated;
- every scope combination docs/api.md §1 does not grant -> 403 forbidden, and
  the tenant's data (API view and stored items) is unchanged; every
  combination it grants passes the scope check (200 / 404 / 400 of the
  route itself, never 401/403/5xx); a key with exactly the minimal scope
  performs the real operation (the "owner control");
- routes naming an object ({id}/{key}): tenant B calling them on tenant A's
  object gets the same 404 (status, code, members) as for an id that exists
  nowhere, and A's objects, balances, entries and events are unchanged;
- routes without an object: tenant B's view never includes A's data (lists,
  events, audit verify), references to A's accounts in B's bodies are
  account_not_found, and A's client-chosen ids / idempotency keys are free
  (and independent) in B.
"""

import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional
from urllib.parse import quote

import pytest

from oltest import assert_problem, parse_routes

# ---------------------------------------------------------------------------
# The routing table (parsed from src/api/routes.c by oltest.parse_routes)

ALL_ROUTES = parse_routes()
V1_ROUTES = [r for r in ALL_ROUTES if r.pattern.startswith("/v1/")]
ID_ROUTES = [r for r in V1_ROUTES if r.has_object]
PLAIN_ROUTES = [r for r in V1_ROUTES if not r.has_object]


def _rid(r):
    return r.name


# ---------------------------------------------------------------------------
# How to exercise each route


NOT_FOUND = {"account": "account_not_found", "transfer": "transfer_not_found", "hold": "hold_not_found",
             "order": "order_not_found", "idem": "not_found"}


@dataclass
class Ex:
    scope: str                    # as docs/api.md §1 documents it: read | write | audit | any
    ok: int                       # status of a successful call by the owner
    obj: Optional[str] = None     # kind of the object in the path (key of NOT_FOUND)
    target: Optional[str] = None  # World.ids key of tenant A's object this route acts on
    body: Optional[Callable] = None   # world -> body dict (None: no body)
    query: dict = field(default_factory=dict)
    bad_body: Optional[dict] = None   # an invalid body (harmless allowed call of a create route)
    cross: Optional[str] = None   # name of the cross-tenant check of a route without object


def _query_of(w, ex):
    return {k: (v(w) if callable(v) else v) for k, v in ex.query.items()}


def _lease(name):
    return lambda w: {"lease_token": w.tokens[name]}


EXERCISE = {
    "GET /v1/whoami": Ex("any", 200, cross="whoami"),
    # §3
    "POST /v1/accounts": Ex("write", 201, body=lambda w: {"currency": w.cur, "owner": w.owner},
                            bad_body={"bogus": 1}, cross="account_create"),
    "GET /v1/accounts": Ex("read", 200, query={"owner": lambda w: w.owner}, cross="account_list"),
    "GET /v1/accounts/{id}": Ex("read", 200, "account", "acc1"),
    "POST /v1/accounts/{id}/freeze": Ex("write", 200, "account", "acc_active"),
    "POST /v1/accounts/{id}/unfreeze": Ex("write", 200, "account", "acc_frozen"),
    "POST /v1/accounts/{id}/credits": Ex("write", 201, "account", "acc1", body=lambda w: {"amount": 7}),
    "POST /v1/accounts/{id}/debits": Ex("write", 201, "account", "acc1", body=lambda w: {"amount": 7}),
    # §7
    "GET /v1/accounts/{id}/entries": Ex("audit", 200, "account", "acc1"),
    "GET /v1/accounts/{id}/balance": Ex("audit", 200, "account", "acc1"),
    "GET /v1/accounts/{id}/statement": Ex("audit", 200, "account", "acc1"),
    "GET /v1/accounts/{id}/verify": Ex("audit", 200, "account", "acc1"),
    "GET /v1/audit/verify": Ex("audit", 200, query={"currency": lambda w: w.cur}, cross="audit_verify"),
    # §4
    "POST /v1/transfers": Ex("write", 201, body=lambda w: {"from": w.ids["acc1"], "to": w.ids["acc2"],
                                                           "amount": 3, "currency": w.cur},
                             bad_body={"bogus": 1}, cross="transfer_create"),
    "POST /v1/transfers/batch": Ex("write", 201, body=lambda w: {"transfers": [
        {"from": w.ids["acc1"], "to": w.ids["acc2"], "amount": 3, "currency": w.cur}]},
        bad_body={"transfers": []}, cross="batch"),
    "GET /v1/transfers/{id}": Ex("read", 200, "transfer", "tr"),
    # §5
    "POST /v1/holds": Ex("write", 201, body=lambda w: {"from": w.ids["acc1"], "to": w.ids["acc2"],
                                                       "amount": 3, "currency": w.cur},
                         bad_body={"bogus": 1}, cross="hold_create"),
    "GET /v1/holds/{id}": Ex("read", 200, "hold", "hold_get"),
    "POST /v1/holds/{id}/capture": Ex("write", 200, "hold", "hold_cap", body=lambda w: {"amount": 20}),
    "POST /v1/holds/{id}/void": Ex("write", 200, "hold", "hold_void"),
    # §6
    "POST /v1/orders": Ex("write", 201, body=lambda w: {"customer": w.ids["acc1"], "merchant": w.ids["acc2"],
                                                        "amount": 3, "currency": w.cur},
                          bad_body={"bogus": 1}, cross="order_create"),
    "GET /v1/orders": Ex("read", 200, cross="order_list"),
    "GET /v1/orders/{id}": Ex("read", 200, "order", "ord_get"),
    "POST /v1/orders/{id}/settle": Ex("write", 200, "order", "ord_settle"),
    "POST /v1/orders/{id}/cancel": Ex("write", 200, "order", "ord_cancel"),
    "POST /v1/orders/{id}/refund": Ex("write", 200, "order", "ord_paid", body=lambda w: {"amount": 5}),
    # §8
    "GET /v1/events": Ex("audit", 200, query={"limit": 1000}, cross="events"),
    "GET /v1/events/signing-key": Ex("audit", 200, cross="signing_key"),
    # §9
    "POST /v1/idempotency-keys": Ex("write", 201, body=lambda w: {"key": "fresh-" + uuid.uuid4().hex},
                                    bad_body={}, cross="idem_claim"),
    "GET /v1/idempotency-keys/{key}": Ex("read", 200, "idem", "idem_done"),
    "POST /v1/idempotency-keys/{key}/complete": Ex(
        "write", 200, "idem", "idem_c",
        body=lambda w: {"lease_token": w.tokens["idem_c"], "response": {"status": 201, "body": {"charged": 1}}}),
    "POST /v1/idempotency-keys/{key}/release": Ex("write", 204, "idem", "idem_r", body=_lease("idem_r")),
}


def exercise(route):
    ex = EXERCISE.get(route.name)
    if ex is None:
        pytest.fail(f"route {route.name} of src/api/routes.c has no entry in EXERCISE of "
                    f"{__file__}: teach the isolation matrix how to call it")
    return ex


# ---------------------------------------------------------------------------
# HTTP helpers


def _hex():
    return secrets.token_hex(5)


def _path(route, ident=None):
    p = route.pattern
    if ident is not None:
        p = p.replace("{id}", quote(ident, safe="")).replace("{key}", quote(ident, safe=""))
    assert "{" not in p, p
    return p


def call(d, route, key, ident=None, body=None, query=None, idem=None):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if route.needs_idem_header:
        headers["Idempotency-Key"] = idem or uuid.uuid4().hex
    return d.request(route.method, _path(route, ident), key=key, headers=headers, data=data,
                     params=query or None, timeout=20)


def _desc(r):
    req = r.request
    b = req.body.decode(errors="replace") if isinstance(req.body, (bytes, bytearray)) else req.body
    return f"{req.method} {req.path_url} {(b or '')[:200]} -> {r.status_code} {r.text[:400]}"


def _ok(r, status):
    assert r.status_code == status, f"expected {status}: {_desc(r)}"
    return r.json() if r.content else None


def _post(d, path, key, body=None):
    h = {"Idempotency-Key": uuid.uuid4().hex}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    return d.post(path, key=key, data=data, headers=h, timeout=20)


def _claim(d, key, name, **extra):
    body = {"key": name, **extra}
    return d.post("/v1/idempotency-keys", key=key, json=body, timeout=20)


# ---------------------------------------------------------------------------
# Tenant A's world


def _currency():
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "X" + "".join(secrets.choice(letters) for _ in range(2))


class World:
    """Tenant A's objects, one per route that acts on one (so an accidental
    success of one test cannot spoil another's target)."""

    def __init__(self, d, cli):
        self.d = d
        self.cli = cli
        self.tenant = cli.tenant_create()
        self.key = cli.key_create(self.tenant, "read,write,audit")
        self.cur = _currency()
        self.owner = "owner-" + _hex()
        self.ids = {}
        self.tokens = {}
        k = self.key
        for name in ("acc1", "acc2", "acc_active", "acc_frozen"):
            aid = f"{name}-{_hex()}"
            _ok(_post(d, "/v1/accounts", k, {"id": aid, "currency": self.cur, "owner": self.owner}), 201)
            self.ids[name] = aid
        a1, a2 = self.ids["acc1"], self.ids["acc2"]
        _ok(_post(d, f"/v1/accounts/{a1}/credits", k, {"amount": 100000}), 201)
        _ok(_post(d, f"/v1/accounts/{self.ids['acc_frozen']}/freeze", k), 200)
        self.ids["tr"] = "tr-" + _hex()
        _ok(_post(d, "/v1/transfers", k, {"id": self.ids["tr"], "from": a1, "to": a2, "amount": 100,
                                          "currency": self.cur}), 201)
        for name in ("hold_get", "hold_cap", "hold_void"):
            hid = f"{name}-{_hex()}"
            _ok(_post(d, "/v1/holds", k, {"id": hid, "from": a1, "to": a2, "amount": 50, "currency": self.cur,
                                          "expires_in": 86400}), 201)
            self.ids[name] = hid
        for name in ("ord_get", "ord_settle", "ord_cancel", "ord_paid"):
            oid = f"{name}-{_hex()}"
            _ok(_post(d, "/v1/orders", k, {"id": oid, "customer": a1, "merchant": a2, "amount": 40,
                                           "currency": self.cur, "expires_in": 86400}), 201)
            self.ids[name] = oid
        _ok(_post(d, f"/v1/orders/{self.ids['ord_paid']}/settle", k), 200)
        for name in ("idem_c", "idem_r", "idem_done"):
            ik = f"{name}-{_hex()}"
            body = _ok(_claim(d, k, ik, lease_seconds=3600, fingerprint="fp-" + name), 201)
            self.ids[name] = ik
            self.tokens[name] = body["lease_token"]
        _ok(d.post(f"/v1/idempotency-keys/{self.ids['idem_done']}/complete", key=k, timeout=20,
                   json={"lease_token": self.tokens["idem_done"],
                         "response": {"status": 200, "body": {"secret": "tenant-a"}}}), 200)
        self.events = [e["id"] for e in self.event_list()]
        assert self.events, "tenant A has no events (control)"

    def event_list(self):
        return _ok(self.d.get("/v1/events", key=self.key, params={"limit": 1000}), 200)["data"]

    def snapshot(self):
        """Everything of A the API shows (objects, balances, entries, events, lists)."""
        d, k = self.d, self.key
        s = {}
        for name, oid in self.ids.items():
            if name.startswith("acc"):
                s[name] = _ok(d.get(f"/v1/accounts/{oid}", key=k), 200)
                s[name + "/entries"] = _ok(d.get(f"/v1/accounts/{oid}/entries", key=k,
                                                 params={"limit": 1000}), 200)
            elif name == "tr":
                s[name] = _ok(d.get(f"/v1/transfers/{oid}", key=k), 200)
            elif name.startswith("hold"):
                s[name] = _ok(d.get(f"/v1/holds/{oid}", key=k), 200)
            elif name.startswith("ord"):
                s[name] = _ok(d.get(f"/v1/orders/{oid}", key=k), 200)
            elif name.startswith("idem"):
                s[name] = _ok(d.get(f"/v1/idempotency-keys/{oid}", key=k), 200)
        s["events"] = self.event_list()
        s["accounts"] = _ok(d.get("/v1/accounts", key=k, params={"owner": self.owner, "limit": 1000}), 200)
        s["orders"] = _ok(d.get("/v1/orders", key=k, params={"limit": 1000}), 200)
        s["audit"] = _ok(d.get("/v1/audit/verify", key=k, params={"currency": self.cur}), 200)
        return s


# The rows of a tenant in the ledger's tables (sql/012_ledger.sql), each
# as its text (ordered by that text).
LEDGER_ROWS = [
    "SELECT a::text FROM ledger.accounts a WHERE a.tenant = %(t)s",
    "SELECT e::text FROM ledger.entries e JOIN ledger.accounts a ON a.aid = e.account"
    " WHERE a.tenant = %(t)s",
    "SELECT x::text FROM ledger.transfers x WHERE x.tenant = %(t)s",
    "SELECT x::text FROM ledger.holds x WHERE x.tenant = %(t)s",
    "SELECT x::text FROM ledger.orders x WHERE x.tenant = %(t)s",
    "SELECT x::text FROM ledger.inbox x JOIN ledger.accounts a ON a.aid = x.account"
    " WHERE a.tenant = %(t)s",
]


def stored(db, tenant):
    """(items and ledger rows, digest of every stored item and ledger row of
    the tenant, outbox rows of the tenant)."""
    with db.cursor() as cur:
        cur.execute("SELECT count(*), md5(coalesce(string_agg(i.pk || chr(1) || i.sk || chr(1) || i.item::text,"
                    " chr(2) ORDER BY i.pk, i.sk), '')) FROM items i JOIN item_tables t ON t.id = i.table_id"
                    " WHERE t.tenant = %s", (tenant,))
        n, digest = cur.fetchone()
        for sql in LEDGER_ROWS:
            cur.execute(f"SELECT count(*), md5(coalesce(string_agg(r, chr(2) ORDER BY r), '')) FROM ({sql}) AS q (r)",
                        {"t": tenant})
            rows, d = cur.fetchone()
            n, digest = n + rows, digest + d
        cur.execute("SELECT count(*) FROM outbox WHERE tenant = %s", (tenant,))
        (ev,) = cur.fetchone()
    return n, digest, ev


@pytest.fixture(scope="module")
def world(daemon, cli):
    return World(daemon, cli)


@pytest.fixture(scope="module")
def intruder(cli):
    """Tenant B, with every scope."""
    t = cli.tenant_create()
    return t, cli.key_create(t, "read,write,audit")


SCOPE_SETS = [("read",), ("write",), ("audit",), ("read", "write"), ("read", "audit"), ("write", "audit"),
              ("read", "write", "audit"), ("dynamodb",)]
IMPLIES = {"read": {"read"}, "write": {"write", "read"}, "audit": {"audit"}, "dynamodb": {"dynamodb"}}


def grants(scopes, need):
    if need == "any":
        return True
    eff = set()
    for s in scopes:
        eff |= IMPLIES[s]
    return need in eff


@pytest.fixture(scope="module")
def scoped_keys(world, cli):
    return {s: cli.key_create(world.tenant, ",".join(s)) for s in SCOPE_SETS}


def _norm(body, ident):
    """A problem document with the id replaced, minus per-request members."""
    text = json.dumps({k: v for k, v in body.items() if k not in ("request_id", "instance")}, sort_keys=True)
    return text.replace(ident, "<ID>")


def _missing_like(ident):
    """An id of the same length and shape that exists in no tenant."""
    m = "zz" + secrets.token_hex(len(ident))
    return m[:len(ident)]


# ---------------------------------------------------------------------------
# The table itself


def test_routing_table_parses():
    names = {r.name for r in ALL_ROUTES}
    assert len(ALL_ROUTES) >= 30, names
    for must in ("GET /healthz", "POST /v1/transfers", "GET /v1/accounts/{id}", "GET /v1/events"):
        assert must in names, (must, names)
    assert len(names) == len(ALL_ROUTES), "a (method, pattern) appears twice in routes.c"
    for r in V1_ROUTES:
        assert "ROUTE_PUBLIC" not in r.flags, f"{r.name} is public: /v1 routes must authenticate"
        assert r.scopes or "ROUTE_ANY_SCOPE" in r.flags, f"{r.name} has neither a scope nor ROUTE_ANY_SCOPE"


def test_every_route_has_an_exercise():
    parsed = {r.name for r in V1_ROUTES}
    missing = sorted(parsed - set(EXERCISE))
    stale = sorted(set(EXERCISE) - parsed)
    assert not missing, f"routes of routes.c without an entry in EXERCISE: {missing}"
    assert not stale, f"EXERCISE entries for routes that routes.c no longer has: {stale}"


@pytest.mark.parametrize("route", V1_ROUTES, ids=_rid)
def test_routes_c_scope_is_the_documented_one(route):
    ex = exercise(route)
    if ex.scope == "any":
        assert "ROUTE_ANY_SCOPE" in route.flags and not route.scopes, route
    else:
        assert route.scopes == {ex.scope}, \
            f"{route.name}: routes.c requires {sorted(route.scopes)}, docs/api.md §1 says {ex.scope}"
    assert (ex.obj is not None) == route.has_object, f"{route.name}: EXERCISE obj/target disagree with the path"
    if route.method == "POST":
        assert ("ROUTE_NO_IDEM" in route.flags) == route.pattern.startswith("/v1/idempotency-keys"), \
            f"{route.name}: docs/api.md §2 requires Idempotency-Key on every POST but §9's"


# ---------------------------------------------------------------------------
# 401


@pytest.mark.parametrize("route", V1_ROUTES, ids=_rid)
def test_no_key_is_401(daemon, route):
    ident = "x-" + _hex() if route.has_object else None
    # a bare request: no headers, no body
    r = daemon.request(route.method, _path(route, ident), timeout=10)
    assert_problem(r, 401, "unauthenticated")
    assert r.headers.get("WWW-Authenticate", "").lower().startswith("bearer"), r.headers
    # a complete request, only the key missing; then unknown / malformed keys
    fake = "olk_%s_%s" % (secrets.token_hex(8), "A" * 43)
    for auth in (None, "Bearer " + fake, "Bearer nonsense", "Basic dXNlcjpwYXNz"):
        headers = {"Authorization": auth} if auth else {}
        if route.method == "POST":
            headers["Content-Type"] = "application/json"
            headers["Idempotency-Key"] = uuid.uuid4().hex
        r = daemon.request(route.method, _path(route, ident), headers=headers,
                           data=b"{}" if route.method == "POST" else None, timeout=10)
        assert_problem(r, 401, "unauthenticated")


# ---------------------------------------------------------------------------
# 403 and the scopes that are granted


@pytest.mark.parametrize("route", V1_ROUTES, ids=_rid)
def test_scope_matrix(daemon, world, scoped_keys, db, route):
    ex = exercise(route)
    w = world
    ident = w.ids[ex.target] if ex.target else None
    body = ex.body(w) if ex.body else None
    query = _query_of(w, ex)
    denied = [s for s in SCOPE_SETS if not grants(s, ex.scope)]
    allowed = [s for s in SCOPE_SETS if grants(s, ex.scope)]
    assert allowed, route.name

    before, before_db = w.snapshot(), stored(db, w.tenant)
    for s in denied:
        # the real object and a valid body: were the scope not enforced, this would act
        r = call(daemon, route, scoped_keys[s], ident, body, query)
        assert_problem(r, 403, "forbidden")
    assert stored(db, w.tenant) == before_db, f"{route.name}: a 403 changed tenant A's stored items"
    assert w.snapshot() == before, f"{route.name}: a 403 changed tenant A's data"

    for s in allowed:
        if route.method == "GET":
            r = call(daemon, route, scoped_keys[s], ident, None, query)
            assert r.status_code == ex.ok, f"scopes {s}: {_desc(r)}"
        elif route.has_object:
            # harmless: an object that does not exist
            r = call(daemon, route, scoped_keys[s], "nope-" + _hex(), body, query)
            assert_problem(r, 404, NOT_FOUND[ex.obj])
        else:
            r = call(daemon, route, scoped_keys[s], None, ex.bad_body, query)
            assert_problem(r, 400, "invalid_request")
    if route.method == "GET":
        assert w.snapshot() == before


def test_minimal_scope_performs_every_route(daemon, cli):
    """Owner control: a fresh world, every route called by a key with exactly
    its documented scope succeeds (so the 404s and 403s elsewhere are about
    tenants and scopes, not about dead targets or bad bodies)."""
    w = World(daemon, cli)
    keys = {s: cli.key_create(w.tenant, s) for s in ("read", "write", "audit")}
    keys["any"] = keys["read"]
    failures = []
    for route in V1_ROUTES:
        ex = exercise(route)
        ident = w.ids[ex.target] if ex.target else None
        r = call(daemon, route, keys[ex.scope], ident, ex.body(w) if ex.body else None, _query_of(w, ex))
        if r.status_code != ex.ok:
            failures.append(_desc(r))
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------
# Another tenant's objects


@pytest.mark.parametrize("route", ID_ROUTES, ids=_rid)
def test_other_tenants_object_is_not_found(daemon, world, intruder, db, route):
    ex = exercise(route)
    w = world
    b_tenant, kb = intruder
    ident = w.ids[ex.target]
    body = ex.body(w) if ex.body else None
    query = _query_of(w, ex)
    code = NOT_FOUND[ex.obj]

    before, before_db = w.snapshot(), stored(db, w.tenant)
    b_events = stored(db, b_tenant)[2]
    r = call(daemon, route, kb, ident, body, query)
    got = assert_problem(r, 404, code)
    # indistinguishable from an id that exists nowhere
    missing = _missing_like(ident)
    r2 = call(daemon, route, kb, missing, body, query)
    ref = assert_problem(r2, 404, code)
    assert _norm(got, ident) == _norm(ref, missing), \
        f"another tenant's object answers differently from a missing one:\n{got}\n{ref}"
    assert ident not in r.headers.get("Location", "")
    # and A is untouched
    assert stored(db, w.tenant) == before_db, f"{route.name} by tenant B changed tenant A's stored items"
    assert w.snapshot() == before, f"{route.name} by tenant B changed tenant A's data"
    assert stored(db, b_tenant)[2] == b_events, f"{route.name} by tenant B emitted events"
    # the owner still sees its object (control: the id is real)
    owner_get = {"account": "/v1/accounts/", "transfer": "/v1/transfers/", "hold": "/v1/holds/",
                 "order": "/v1/orders/", "idem": "/v1/idempotency-keys/"}[ex.obj]
    _ok(daemon.get(owner_get + quote(ident, safe=""), key=w.key), 200)


def test_lease_of_other_tenant_still_usable_by_owner(daemon, world, intruder):
    """After B's complete/release attempts with A's real lease tokens, A's
    leases are intact: A's token still completes its record."""
    w = world
    _b, kb = intruder
    name = f"lease-{_hex()}"
    tok = _ok(_claim(daemon, w.key, name, lease_seconds=3600), 201)["lease_token"]
    for suffix, body in (("release", {"lease_token": tok}),
                         ("complete", {"lease_token": tok, "response": {"status": 200, "body": {"b": 1}}})):
        r = daemon.post(f"/v1/idempotency-keys/{name}/{suffix}", key=kb, json=body, timeout=20)
        assert_problem(r, 404, "not_found")
    rec = _ok(daemon.get(f"/v1/idempotency-keys/{name}", key=w.key), 200)
    assert rec["status"] == "in_progress", rec
    assert_problem(_claim(daemon, w.key, name), 409, "idempotency_key_in_use")
    _ok(daemon.post(f"/v1/idempotency-keys/{name}/complete", key=w.key, timeout=20,
                    json={"lease_token": tok, "response": {"status": 200, "body": {"a": 1}}}), 200)


# ---------------------------------------------------------------------------
# Routes without an object: tenant B's view


def _b_world(d, key, cur, owner):
    """Tenant B's own accounts (so B's lists are not trivially empty)."""
    ids = []
    for _ in range(2):
        aid = "b-" + _hex()
        _ok(_post(d, "/v1/accounts", key, {"id": aid, "currency": cur, "owner": owner}), 201)
        ids.append(aid)
    _ok(_post(d, f"/v1/accounts/{ids[0]}/credits", key, {"amount": 1000}), 201)
    return ids


def cross_whoami(d, w, kb, b_tenant, db):
    body = _ok(d.get("/v1/whoami", key=kb), 200)
    assert body["tenant"] == b_tenant and body["tenant"] != w.tenant, body


def cross_account_create(d, w, kb, b_tenant, db):
    # A's account id is free in B, and B's account is B's
    a1 = w.ids["acc1"]
    acc = _ok(_post(d, "/v1/accounts", kb, {"id": a1, "currency": "EUR", "owner": w.owner}), 201)
    assert acc["id"] == a1 and acc["currency"] == "EUR" and acc["balance"]["posted"] == 0, acc
    assert _ok(d.get(f"/v1/accounts/{a1}", key=kb), 200) == acc
    mine = _ok(d.get(f"/v1/accounts/{a1}", key=w.key), 200)
    assert mine["currency"] == w.cur and mine["balance"]["posted"] > 0, mine
    # a credit to B's acc1 leaves A's alone
    _ok(_post(d, f"/v1/accounts/{a1}/credits", kb, {"amount": 11}), 201)
    assert _ok(d.get(f"/v1/accounts/{a1}", key=w.key), 200) == mine


def cross_account_list(d, w, kb, b_tenant, db):
    mine = _b_world(d, kb, w.cur, w.owner)
    got = _ok(d.get("/v1/accounts", key=kb, params={"owner": w.owner, "limit": 1000}), 200)
    assert sorted(a["id"] for a in got["data"]) == sorted(mine), got
    a_view = _ok(d.get("/v1/accounts", key=w.key, params={"owner": w.owner, "limit": 1000}), 200)
    a_ids = {a["id"] for a in a_view["data"]}
    assert {w.ids["acc1"], w.ids["acc2"]} <= a_ids, a_view   # control
    assert not (a_ids & set(mine)), a_view


def cross_audit_verify(d, w, kb, b_tenant, db):
    got = _ok(d.get("/v1/audit/verify", key=kb, params={"currency": w.cur}), 200)
    assert got.get("accounts") == 0 and got.get("sum") == 0 and got.get("ok") is True, got
    a = _ok(d.get("/v1/audit/verify", key=w.key, params={"currency": w.cur}), 200)
    assert a["ok"] is True and a["accounts"] >= 4, a     # control
    # B with its own accounts of A's currency counts only those
    _b_world(d, kb, w.cur, "o-" + _hex())
    got = _ok(d.get("/v1/audit/verify", key=kb, params={"currency": w.cur}), 200)
    assert got["ok"] is True and got["sum"] == 0 and 2 <= got["accounts"] <= 3, got
    assert _ok(d.get("/v1/audit/verify", key=w.key, params={"currency": w.cur}), 200) == a


def _a_state(d, w):
    return {n: _ok(d.get(f"/v1/accounts/{w.ids[n]}", key=w.key), 200) for n in ("acc1", "acc2")}


def cross_transfer_create(d, w, kb, b_tenant, db):
    b1, b2 = _b_world(d, kb, w.cur, "o-" + _hex())
    before = _a_state(d, w)
    a1, a2 = w.ids["acc1"], w.ids["acc2"]
    for frm, to, culprit in ((a1, b2, a1), (b1, a2, a2), (a1, a2, a1)):
        p = assert_problem(_post(d, "/v1/transfers", kb, {"from": frm, "to": to, "amount": 5, "currency": w.cur}),
                           404, "account_not_found")
        assert p.get("account") == culprit, p
    for path in (f"/v1/accounts/{a1}/credits", f"/v1/accounts/{a1}/debits"):
        assert_problem(_post(d, path, kb, {"amount": 5}), 404, "account_not_found")
    # A's transfer id is free in B
    t = _ok(_post(d, "/v1/transfers", kb, {"id": w.ids["tr"], "from": b1, "to": b2, "amount": 5,
                                           "currency": w.cur}), 201)
    assert t["from"] == b1, t
    assert _ok(d.get(f"/v1/transfers/{w.ids['tr']}", key=w.key), 200)["from"] == a1
    assert _a_state(d, w) == before


def cross_batch(d, w, kb, b_tenant, db):
    b1, b2 = _b_world(d, kb, w.cur, "o-" + _hex())
    before = _a_state(d, w)
    b_before = _ok(d.get(f"/v1/accounts/{b1}", key=kb), 200)
    p = assert_problem(_post(d, "/v1/transfers/batch", kb, {"transfers": [
        {"from": b1, "to": b2, "amount": 5, "currency": w.cur},
        {"from": b1, "to": w.ids["acc2"], "amount": 5, "currency": w.cur}]}), 404, "account_not_found")
    assert p.get("index") == 1 and p.get("account") == w.ids["acc2"], p
    assert _ok(d.get(f"/v1/accounts/{b1}", key=kb), 200) == b_before
    assert _a_state(d, w) == before
    # A's transfer id is free in a batch of B's
    got = _ok(_post(d, "/v1/transfers/batch", kb, {"transfers": [
        {"id": w.ids["tr"], "from": b1, "to": b2, "amount": 5, "currency": w.cur}]}), 201)
    assert got["transfers"][0]["id"] == w.ids["tr"]
    assert _a_state(d, w) == before


def cross_hold_create(d, w, kb, b_tenant, db):
    b1, b2 = _b_world(d, kb, w.cur, "o-" + _hex())
    before = _a_state(d, w)
    a1, a2 = w.ids["acc1"], w.ids["acc2"]
    for frm, to, culprit in ((a1, b2, a1), (b1, a2, a2)):
        p = assert_problem(_post(d, "/v1/holds", kb, {"from": frm, "to": to, "amount": 5, "currency": w.cur}),
                           404, "account_not_found")
        assert p.get("account") == culprit, p
    h = _ok(_post(d, "/v1/holds", kb, {"id": w.ids["hold_get"], "from": b1, "to": b2, "amount": 5,
                                       "currency": w.cur}), 201)
    assert h["from"] == b1
    assert _ok(d.get(f"/v1/holds/{w.ids['hold_get']}", key=w.key), 200)["from"] == a1
    assert _a_state(d, w) == before


def cross_order_create(d, w, kb, b_tenant, db):
    b1, b2 = _b_world(d, kb, w.cur, "o-" + _hex())
    a1, a2 = w.ids["acc1"], w.ids["acc2"]
    before = _a_state(d, w)
    for cust, merch, culprit in ((a1, b2, a1), (b1, a2, a2), (a1, a2, a1)):
        p = assert_problem(_post(d, "/v1/orders", kb, {"customer": cust, "merchant": merch, "amount": 5,
                                                       "currency": w.cur}), 404, "account_not_found")
        assert p.get("account") == culprit, p
    o = _ok(_post(d, "/v1/orders", kb, {"id": w.ids["ord_get"], "customer": b1, "merchant": b2, "amount": 5,
                                        "currency": w.cur}), 201)
    assert o["customer"] == b1
    _ok(_post(d, f"/v1/orders/{w.ids['ord_get']}/settle", kb), 200)
    assert _ok(d.get(f"/v1/orders/{w.ids['ord_get']}", key=w.key), 200)["status"] == "created"
    assert _a_state(d, w) == before


def cross_order_list(d, w, kb, b_tenant, db):
    b1, b2 = _b_world(d, kb, w.cur, "o-" + _hex())
    mine = _ok(_post(d, "/v1/orders", kb, {"customer": b1, "merchant": b2, "amount": 5, "currency": w.cur}),
               201)["id"]
    a_orders = {w.ids[n] for n in ("ord_get", "ord_settle", "ord_cancel", "ord_paid")}
    for params in ({}, {"customer": w.ids["acc1"]}, {"status": "created"}, {"status": "paid"}):
        got = _ok(d.get("/v1/orders", key=kb, params={**params, "limit": 1000}), 200)
        ids = {o["id"] for o in got["data"]}
        assert not (ids & a_orders), (params, got)
        assert ids <= {mine}, (params, got)
    a_view = {o["id"] for o in _ok(d.get("/v1/orders", key=w.key, params={"limit": 1000}), 200)["data"]}
    assert a_orders <= a_view and mine not in a_view   # control


def cross_events(d, w, kb, b_tenant, db):
    _b_world(d, kb, w.cur, "o-" + _hex())
    got = _ok(d.get("/v1/events", key=kb, params={"limit": 1000}), 200)["data"]
    assert got, "tenant B's own events are missing (control)"
    assert all(e.get("source") == f"onceledger/{b_tenant}" for e in got), got[:3]
    assert not ({e["id"] for e in got} & set(w.events)), "tenant B sees tenant A's events"
    a_ids = set(w.ids.values())
    assert not any(e.get("subject") in a_ids for e in got), got
    assert not any(w.tenant in json.dumps(e) for e in got)
    a = w.event_list()
    assert set(w.events) <= {e["id"] for e in a}   # control
    # paging from the start does not reach A either
    got0 = _ok(d.get("/v1/events", key=kb, params={"after": "0", "limit": 1000}), 200)["data"]
    assert {e["id"] for e in got0} == {e["id"] for e in got}


def cross_signing_key(d, w, kb, b_tenant, db):
    # the service's public key: the same answer for every tenant, nothing tenant-specific
    got = _ok(d.get("/v1/events/signing-key", key=kb), 200)
    assert got.get("alg") == "ed25519" and got.get("kid") and got.get("public_key"), got
    assert w.tenant not in json.dumps(got)


def cross_idem_claim(d, w, kb, b_tenant, db):
    # A's completed key and A's live lease are both new keys in B
    for name in ("idem_done", "idem_c"):
        r = _claim(d, kb, w.ids[name])
        body = _ok(r, 201)
        assert body["status"] == "in_progress" and "tenant-a" not in r.text, body
        assert body["lease_token"] != w.tokens[name]
    done = _ok(d.get(f"/v1/idempotency-keys/{w.ids['idem_done']}", key=w.key), 200)
    assert done["status"] == "completed" and done["response"]["body"] == {"secret": "tenant-a"}, done
    assert _ok(d.get(f"/v1/idempotency-keys/{w.ids['idem_c']}", key=w.key), 200)["status"] == "in_progress"
    assert_problem(_claim(d, w.key, w.ids["idem_c"]), 409, "idempotency_key_in_use")


CROSS = {name[len("cross_"):]: fn for name, fn in globals().items() if name.startswith("cross_")}


@pytest.mark.parametrize("route", PLAIN_ROUTES, ids=_rid)
def test_other_tenant_view_of_route_without_object(daemon, cli, db, route):
    ex = exercise(route)
    assert ex.cross in CROSS, f"{route.name}: EXERCISE names no cross-tenant check"
    # a fresh A and B per check: B's writes here (A's ids reused in B) must
    # not leak into the other tests
    w = World(daemon, cli)
    b_tenant = cli.tenant_create()
    kb = cli.key_create(b_tenant, "read,write,audit")
    before_db = stored(db, w.tenant)
    before = w.snapshot()
    CROSS[ex.cross](daemon, w, kb, b_tenant, db)
    assert w.snapshot() == before, f"{route.name} by tenant B changed tenant A's data"
    assert stored(db, w.tenant) == before_db, f"{route.name} by tenant B changed tenant A's stored items"


def test_same_idempotency_key_in_two_tenants_is_two_keys(daemon, cli):
    """docs/api.md §2: the scope of an Idempotency-Key is (tenant, key): tenant B
    reusing tenant A's key never gets A's saved response (a replay would hand
    B A's object) nor A's 422 for a different body."""
    d = daemon
    ta, tb = cli.tenant_create(), cli.tenant_create()
    ka, kb = cli.key_create(ta, "read,write"), cli.key_create(tb, "read,write")
    ik = uuid.uuid4().hex
    body = {"id": "shared-" + _hex(), "currency": "EUR", "metadata": {"who": "a"}}
    ra = d.post("/v1/accounts", key=ka, json=body, headers={"Idempotency-Key": ik}, timeout=20)
    acc_a = _ok(ra, 201)
    # the same key, path and body in B: executed for B, not replayed
    rb = d.post("/v1/accounts", key=kb, json=body, headers={"Idempotency-Key": ik}, timeout=20)
    acc_b = _ok(rb, 201)
    assert rb.headers.get("Idempotent-Replayed", "").lower() != "true", rb.headers
    assert _ok(d.get(f"/v1/accounts/{body['id']}", key=kb), 200) == acc_b
    # the same key with another body in B: a new key there too, not 422
    ik2 = uuid.uuid4().hex
    _ok(d.post("/v1/accounts", key=ka, json={"currency": "EUR"}, headers={"Idempotency-Key": ik2}, timeout=20), 201)
    r = d.post("/v1/accounts", key=kb, json={"currency": "USD", "owner": "b"}, headers={"Idempotency-Key": ik2},
               timeout=20)
    assert _ok(r, 201)["currency"] == "USD"
    # A's replay is still A's
    ra2 = d.post("/v1/accounts", key=ka, json=body, headers={"Idempotency-Key": ik}, timeout=20)
    assert ra2.status_code == 201 and ra2.headers.get("Idempotent-Replayed", "").lower() == "true", ra2.headers
    assert ra2.content == ra.content
    assert _ok(d.get(f"/v1/accounts/{body['id']}", key=ka), 200)["created_at"] == acc_a["created_at"]
