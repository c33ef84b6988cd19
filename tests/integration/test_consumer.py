"""The reference event consumer contrib/consumer/onceledger-consume
(contrib/consumer/README.md, docs/events.md "Consuming").

Most tests feed it hand-made entries signed with a key generated here
(python3-nacl), on a stream of their own: each event printed once, acked,
a second group sees everything again; forged, unknown-key, malformed and
mismatching entries end in `<stream>:dead`; a duplicate event id is not
handled twice; a type that keeps failing is dead-lettered after
--max-deliveries; XAUTOCLAIM takes over what another consumer left pending;
--count, usage errors, Redis down, a stream deleted under the consumer.

The end-to-end tests run the consumer on what the daemon's relay published
for a tenant, with the key from GET /v1/events/signing-key, and compare
with GET /v1/events like an auditor would.  They skip while the daemon does
not implement the signing-key route (501).

The whole module skips when the consumer was not built."""

import base64
import hashlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from oltest import REPO, free_port, poll

CONSUMER = Path(os.environ.get("ONCELEDGER_CONSUMER", REPO / "contrib" / "consumer" / "onceledger-consume"))
if not CONSUMER.exists():
    pytest.skip(f"{CONSUMER} was not built (make -j2)", allow_module_level=True)
nacl_signing = pytest.importorskip("nacl.signing", reason="python3-nacl is needed to sign test events")
redis_mod = pytest.importorskip("redis", reason="python3-redis is needed")


# ---------------------------------------------------------------------------
# helpers

class Signer:
    """An Ed25519 key like the daemon's: signs event texts, names itself."""

    def __init__(self, kid=None):
        self.sk = nacl_signing.SigningKey.generate()
        # onceledger's kid: 16 hex digits of BLAKE2b-64 of the public key
        self.kid = kid or hashlib.blake2b(bytes(self.sk.verify_key), digest_size=8).hexdigest()
        self.public_b64 = base64.b64encode(bytes(self.sk.verify_key)).decode()

    @property
    def arg(self):
        return f"{self.kid}:{self.public_b64}"

    def sign(self, text):
        data = text.encode() if isinstance(text, str) else text
        return base64.b64encode(self.sk.sign(data).signature).decode()

    def fields(self, text, id=None, type=None):
        """The five stream fields the relay writes for an event text."""
        ev = json.loads(text) if id is None or type is None else {}
        return {"id": id or ev["id"], "type": type or ev["type"], "event": text,
                "signature": self.sign(text), "kid": self.kid}


# The hand-made entries' tenant: their streams are oltest:consumer:<hex>:t_test,
# read with --stream-prefix oltest:consumer:<hex>: (the consumer checks that
# every event's source is the stream's tenant's).
TEST_TENANT = "t_test"


def prefix_args(stream):
    """--stream-prefix for a test stream; none (the default) for a tenant's."""
    if stream.startswith("oltest:consumer:"):
        assert stream.endswith(":" + TEST_TENANT), stream
        return ["--stream-prefix", stream[:-len(TEST_TENANT)]]
    return []


def event_text(n, type="transfer.posted", eid=None, tenant=TEST_TENANT):
    """A CloudEvent as the relay writes it: compact, members in order."""
    ev = {"specversion": "1.0", "id": eid or f"evt_{uuid.uuid4().hex[:20]}", "source": f"onceledger/{tenant}",
          "type": type, "subject": f"obj_{n}", "time": "2026-11-21T10:00:00.123456Z",
          "datacontenttype": "application/json", "sequence": str(1000000 * (100 + n)),
          "data": {"id": f"obj_{n}", "amount": 100 + n}}
    return json.dumps(ev, separators=(",", ":"))


def run(redis_url, stream, group, keys, *extra, consumer="c1", idle_exit_ms=800, timeout=60):
    """Runs the consumer to its end; returns (exit code, stdout lines, stderr).
    The URL (with the stack's password) goes in ONCELEDGER_REDIS_URL, as the
    README advises, not on the command line."""
    argv = [str(CONSUMER), "--stream", stream, *prefix_args(stream), "--group", group,
            "--consumer", consumer]
    for k in keys:
        argv += ["--key", k.arg if isinstance(k, Signer) else k]
    if idle_exit_ms is not None:
        argv += ["--idle-exit-ms", str(idle_exit_ms)]
    argv += [str(a) for a in extra]
    env = dict(os.environ, ONCELEDGER_REDIS_URL=redis_url)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout.splitlines(), p.stderr


def pending(r, stream, group):
    return r.xpending(stream, group)["pending"]


def dead_entries(r, stream):
    """[(id, {field: value})] of <stream>:dead, decoded."""
    out = []
    for sid, fields in r.xrange(stream + ":dead"):
        out.append((sid.decode(), {k.decode(): v.decode(errors="replace") for k, v in fields.items()}))
    return out


@pytest.fixture(scope="module")
def redis_url(stack):
    if not stack.redis_url:
        pytest.skip("no Redis URL (ONCELEDGER_REDIS_URL)")
    return stack.redis_url


@pytest.fixture
def r(redis_url):
    c = redis_mod.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def stream(r):
    """A stream of this test's own (not a tenant's: the relay never writes
    it), deleted afterwards with its dead letters and done markers."""
    name = f"oltest:consumer:{uuid.uuid4().hex[:12]}:{TEST_TENANT}"
    yield name
    keys = [name, name + ":dead"] + list(r.scan_iter(match=name + ":*:done:*", count=1000))
    r.delete(*keys)


@pytest.fixture
def signer():
    return Signer()


def add(r, stream, signer, texts, ids=None):
    """XADDs signed entries; returns the texts."""
    for i, t in enumerate(texts):
        r.xadd(stream, signer.fields(t), id=ids[i] if ids else "*")
    return texts


# ---------------------------------------------------------------------------
# hand-made entries

def test_prints_each_event_once_and_acks(r, redis_url, stream, signer):
    texts = add(r, stream, signer, [event_text(i) for i in range(5)])
    code, out, err = run(redis_url, stream, "g1", [signer])
    assert code == 0, err
    assert out == texts, err
    assert pending(r, stream, "g1") == 0
    # one done marker per event, with the default TTL (7 days)
    for t in texts:
        ttl = r.ttl(f"{stream}:g1:done:{json.loads(t)['id']}")
        assert 7 * 86400 - 60 < ttl <= 7 * 86400, ttl

    code, out, err = run(redis_url, stream, "g1", [signer], consumer="c2")
    assert code == 0 and out == [], f"everything was acked, yet: {out}\n{err}"

    code, out, err = run(redis_url, stream, "g2", [signer])
    assert code == 0 and out == texts, err
    assert r.xlen(stream + ":dead") == 0


def test_forged_and_malformed_entries_go_to_dead_letter(r, redis_url, stream, signer):
    good1, good2 = event_text(1), event_text(2)
    forged = event_text(3)
    forged_fields = signer.fields(forged)
    # one byte of the signed text changed: amount 103 -> 903
    tampered = forged.replace('"amount":103', '"amount":903')
    assert tampered != forged and len(tampered) == len(forged)
    forged_fields["event"] = tampered
    stranger = Signer(kid="feedfacefeedface")
    mismatch = event_text(4)
    not_json = '{"id":"evt_x","type":"transfer.posted"'
    bad = [
        ("forged", forged_fields, "bad signature"),
        ("unknown kid", stranger.fields(event_text(5)), "unknown kid feedfacefeedface"),
        ("another key, our kid", dict(stranger.fields(event_text(6)), kid=signer.kid), "bad signature"),
        ("no signature", {k: v for k, v in signer.fields(event_text(7)).items() if k != "signature"},
         "field signature missing"),
        ("signature not base64", dict(signer.fields(event_text(8)), signature="not base64!"),
         "malformed signature"),
        ("short signature", dict(signer.fields(event_text(9)), signature=base64.b64encode(b"x" * 63).decode()),
         "malformed signature"),
        ("id mismatch", signer.fields(mismatch, id="evt_someone_else"), "event id does not match"),
        ("type mismatch", signer.fields(event_text(10), type="account.created"), "event type does not match"),
        ("signed but not JSON", signer.fields(not_json, id="evt_x", type="transfer.posted"), "not JSON"),
        ("signed with a newline", signer.fields(event_text(11).replace(",", ",\n", 1)), "newline"),
        # validly signed, but another tenant's event (one key signs for all)
        ("another tenant's event", signer.fields(event_text(12, tenant="t_other")),
         "event source onceledger/t_other is not this stream's tenant (onceledger/" + TEST_TENANT + ")"),
        ("a tenant's name as a prefix", signer.fields(event_text(13, tenant=TEST_TENANT + "x")),
         "is not this stream's tenant"),
        ("no source", signer.fields(event_text(14).replace(f'"source":"onceledger/{TEST_TENANT}",', "", 1)),
         "string id, type and source"),
    ]
    r.xadd(stream, signer.fields(good1))
    for _, fields, _ in bad:
        r.xadd(stream, fields)
    r.xadd(stream, signer.fields(good2))
    ids = [sid.decode() for sid, _ in r.xrange(stream)]

    code, out, err = run(redis_url, stream, "g", [signer])
    assert code == 0, err
    assert out == [good1, good2], err
    assert pending(r, stream, "g") == 0
    dead = dead_entries(r, stream)
    assert len(dead) == len(bad), dead
    for (name, fields, reason), (_, d), sid in zip(bad, dead, ids[1:-1]):
        assert reason in d["reason"], (name, d)
        assert d["deliveries"] == "1" and d["stream_id"] == sid and d["consumer"] == "c1", (name, d)
        for k, v in fields.items():  # the original fields travel with it
            assert d[k] == v, (name, k)
    # the forged text is kept byte for byte, for the investigation
    assert dead[0][1]["event"] == tampered


def test_dead_letter_that_cannot_be_written_keeps_the_entry(r, redis_url, stream, signer):
    """XADD to :dead fails (a key of another type there): the entry must not
    be acknowledged, else it would be lost; the consumer stops with 1."""
    r.set(stream + ":dead", "not a stream")
    r.xadd(stream, dict(signer.fields(event_text(1)), signature="AA=="))
    code, out, err = run(redis_url, stream, "g", [signer])
    assert code == 1 and out == [], err
    assert "WRONGTYPE" in err
    assert pending(r, stream, "g") == 1


def test_duplicate_event_id_is_not_handled_twice(r, redis_url, stream, signer):
    a, b = event_text(1), event_text(2)
    fa = signer.fields(a)
    r.xadd(stream, fa, id="5-0")
    r.xadd(stream, fa, id="6-0")           # the same event again, higher id
    r.xadd(stream, signer.fields(b), id="7-0")
    code, out, err = run(redis_url, stream, "g", [signer], "--dedupe-ttl-s", 60)
    assert code == 0, err
    assert out == [a, b], err
    assert "already handled" in err
    assert pending(r, stream, "g") == 0
    assert 0 < r.ttl(f"{stream}:g:done:{json.loads(a)['id']}") <= 60

    # a later run of the same group: the replay is acked, not handled
    r.xadd(stream, fa, id="8-0")
    code, out, err = run(redis_url, stream, "g", [signer])
    assert code == 0 and out == [], err
    assert pending(r, stream, "g") == 0
    assert r.xlen(stream + ":dead") == 0


def test_fail_type_is_retried_then_dead_lettered(r, redis_url, stream, signer):
    t1, a1, t2 = event_text(1), event_text(2, "account.created"), event_text(3)
    add(r, stream, signer, [t1, a1, t2])
    a1_sid = [sid.decode() for sid, _ in r.xrange(stream)][1]
    code, out, err = run(redis_url, stream, "g", [signer], "--fail-type", "account.created",
                         "--max-deliveries", 2, "--claim-idle-ms", 100, idle_exit_ms=1500)
    assert code == 0, err
    assert out == [t1, t2], err
    # delivered by XREADGROUP, claimed once more (delivery 2), claimed a
    # third time: more than --max-deliveries 2, so dead-lettered
    assert err.count("not handling a account.created event") == 2, err
    dead = dead_entries(r, stream)
    assert len(dead) == 1, dead
    d = dead[0][1]
    assert d["event"] == a1 and d["stream_id"] == a1_sid and d["deliveries"] == "3", d
    assert "delivered 3 times" in d["reason"], d
    assert pending(r, stream, "g") == 0
    assert not r.exists(f"{stream}:g:done:{json.loads(a1)['id']}")


def test_autoclaim_takes_over_another_consumers_pending_entries(r, redis_url, stream, signer):
    texts = add(r, stream, signer, [event_text(i) for i in range(3)])
    r.xgroup_create(stream, "g", id="0")
    # "crashed" read two entries and died before acking them
    got = r.xreadgroup("g", "crashed", {stream: ">"}, count=2)
    assert len(got[0][1]) == 2

    # not idle long enough yet: only the third (new) entry
    code, out, err = run(redis_url, stream, "g", [signer], "--claim-idle-ms", 60000, consumer="c2")
    assert code == 0 and out == texts[2:], err
    p = r.xpending_range(stream, "g", "-", "+", 10)
    assert [(x["consumer"], x["times_delivered"]) for x in p] == [(b"crashed", 1), (b"crashed", 1)], p

    time.sleep(0.3)
    code, out, err = run(redis_url, stream, "g", [signer], "--claim-idle-ms", 200, consumer="c2")
    assert code == 0 and out == texts[:2], err
    assert pending(r, stream, "g") == 0


def test_count_reads_no_more_than_it_handles(r, redis_url, stream, signer):
    texts = add(r, stream, signer, [event_text(i) for i in range(5)])
    code, out, err = run(redis_url, stream, "g", [signer], "--count", 2, idle_exit_ms=None, timeout=20)
    assert code == 0 and out == texts[:2], err
    # nothing was delivered beyond the two: no pending entry waits to be claimed
    assert pending(r, stream, "g") == 0
    code, out, err = run(redis_url, stream, "g", [signer])
    assert code == 0 and out == texts[2:], err


def test_waits_for_entries_added_while_running(r, redis_url, stream, signer):
    """A consumer blocked in XREADGROUP picks entries up as they arrive,
    also after the stream was deleted under it (a Redis that lost its data:
    the group is recreated)."""
    argv = [str(CONSUMER), "--redis-url", redis_url, "--stream", stream, *prefix_args(stream), "--group", "g",
            "--consumer", "c1", "--key", signer.arg, "--count", "3", "--claim-idle-ms", "500"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert poll(lambda: r.exists(stream), 10), "the group (MKSTREAM) was not created"
        a = add(r, stream, signer, [event_text(1)])
        assert poll(lambda: pending(r, stream, "g") == 0 and r.exists(f"{stream}:g:done:{json.loads(a[0])['id']}"), 10)
        time.sleep(0.2)  # back in XREADGROUP ... BLOCK
        r.delete(stream)
        time.sleep(0.3)
        # the relay refills: the old event again (deduplicated) and new ones
        b = add(r, stream, signer, [a[0], event_text(2), event_text(3)], ids=["1-0", "2-0", "3-0"])
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert out.splitlines() == [a[0]] + b[1:], err
    assert "recreating the group" in err, err


def test_usage_errors_exit_2(redis_url, signer):
    base = ["--stream", "onceledger:events:t_test", "--group", "g", "--consumer", "c"]
    cases = [
        [],
        base,                                                   # no --key
        base + ["--key", "nokid"],
        base + ["--key", "k:not-base64!"],
        base + ["--key", "k:" + base64.b64encode(b"x" * 31).decode()],
        base + ["--key", signer.arg, "--key", signer.kid + ":" + Signer().public_b64],
        base + ["--key", signer.arg, "--max-deliveries", "0"],
        base + ["--key", signer.arg, "--claim-idle-ms", "soon"],
        base + ["--key", signer.arg, "--count", "-1"],
        base + ["--key", signer.arg, "--redis-url", "http://localhost"],
        base + ["--key", signer.arg, "--frobnicate"],
        base + ["--key", signer.arg, "extra"],
        ["--group", "g", "--consumer", "c", "--key", signer.arg],
        # no tenant to check the events' source against
        base[:1] + ["oltest:s"] + base[2:] + ["--key", signer.arg],
        base[:1] + ["onceledger:events:"] + base[2:] + ["--key", signer.arg],
        base[:1] + ["onceledger:events:Acme"] + base[2:] + ["--key", signer.arg],
        base[:1] + ["onceledger:events:" + "a" * 33] + base[2:] + ["--key", signer.arg],
        base + ["--key", signer.arg, "--stream-prefix", "other:"],
    ]
    for args in cases:
        p = subprocess.run([str(CONSUMER), *args], capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stdout == "" and p.stderr, args
    p = subprocess.run([str(CONSUMER), "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and "--max-deliveries" in p.stdout


def test_redis_unreachable_exits_1(redis_url, signer):
    """(--redis-url beats ONCELEDGER_REDIS_URL, here a reachable one.)"""
    url = f"redis://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    p = subprocess.run([str(CONSUMER), "--redis-url", url, "--stream", "onceledger:events:t_test", "--group", "g",
                        "--consumer", "c",
                        "--key", signer.arg, "--redis-retries", "2"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, ONCELEDGER_REDIS_URL=redis_url))
    assert p.returncode == 1, p.stderr
    assert "giving up after 2 retries" in p.stderr
    assert time.monotonic() - t0 < 10


def test_sigterm_exits_0(redis_url, stream, signer):
    p = subprocess.Popen([str(CONSUMER), "--redis-url", redis_url, "--stream", stream, *prefix_args(stream), "--group", "g",
                          "--consumer", "c", "--key", signer.arg], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    p.terminate()
    try:
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert out == ""


# ---------------------------------------------------------------------------
# end to end: what the daemon's relay published

def _signing_key(daemon, akey, kid=None):
    r = daemon.get("/v1/events/signing-key", key=akey, params={"kid": kid} if kid else None)
    if r.status_code == 501:
        pytest.skip("GET /v1/events/signing-key is not implemented yet (501)")
    assert r.status_code == 200, r.text
    k = r.json()
    assert k["alg"] == "ed25519" and set(k) == {"kid", "alg", "public_key"}, k
    pk = base64.b64decode(k["public_key"], validate=True)
    assert len(pk) == 32, k
    assert k["kid"] == hashlib.blake2b(pk, digest_size=8).hexdigest(), k
    return k


def _post(daemon, key, path, body):
    r = daemon.post(path, key=key, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, f"POST {path}: {r.status_code} {r.text}"
    return r.json()


def _all_events(daemon, akey):
    """GET /v1/events page by page: what an auditor replays."""
    out, after = [], None
    while True:
        params = {"limit": 2}
        if after is not None:
            params["after"] = after
        r = daemon.get("/v1/events", key=akey, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["data"]
        after = page["next_cursor"]
        if after is None:
            return out


@pytest.fixture
def relay_events(daemon, tenant, make_key, r):
    """A tenant with a few events, once the relay published them all:
    (stream key, key dict, [(stream id, fields)], audit key, read-write key)."""
    wkey, akey = make_key("read,write"), make_key("audit")
    key = _signing_key(daemon, akey)
    a = _post(daemon, wkey, "/v1/accounts", {"currency": "USD"})["id"]
    b = _post(daemon, wkey, "/v1/accounts", {"currency": "USD"})["id"]
    _post(daemon, wkey, f"/v1/accounts/{a}/credits", {"amount": 500})
    _post(daemon, wkey, "/v1/transfers", {"from": a, "to": b, "amount": 200, "currency": "USD"})
    stream = f"onceledger:events:{tenant}"
    assert poll(lambda: r.xlen(stream) >= 4, 20), f"the relay published {r.xlen(stream)} of 4 events"
    time.sleep(0.3)
    entries = [(sid.decode(), {k.decode(): v.decode() for k, v in f.items()}) for sid, f in r.xrange(stream)]
    yield stream, key, entries, akey, wkey
    r.delete(stream + ":dead", *r.scan_iter(match=stream + ":*:done:*", count=1000))
    for g in r.xinfo_groups(stream):
        r.xgroup_destroy(stream, g["name"])


def test_end_to_end_relay_events_verify_and_print_once(daemon, r, redis_url, relay_events):
    stream, key, entries, akey, ev_wkey = relay_events
    assert [f["type"] for _, f in entries] == ["account.created", "account.created", "transfer.posted",
                                               "transfer.posted"], entries
    # what an auditor checks on its own (README): signatures, ids, order
    seqs = []
    for sid, f in entries:
        assert set(f) == {"id", "type", "event", "signature", "kid"}, f
        k = key if f["kid"] == key["kid"] else _signing_key(daemon, akey, f["kid"])
        nacl_signing.VerifyKey(base64.b64decode(k["public_key"])).verify(
            f["event"].encode(), base64.b64decode(f["signature"]))
        ev = json.loads(f["event"])
        assert ev["id"] == f["id"] and ev["type"] == f["type"], (f, ev)
        seqs.append(int(ev["sequence"]))
        txid, n = (int(x) for x in sid.split("-"))
        assert int(ev["sequence"]) == txid * 1000000 + n, (sid, ev["sequence"])
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    # data is the API object after the change: a transfer never changes again
    for _, f in entries:
        ev = json.loads(f["event"])
        if ev["type"] == "transfer.posted":
            got = daemon.get(f"/v1/transfers/{ev['subject']}", key=ev_wkey)
            assert got.status_code == 200 and got.json() == ev["data"], (got.text, ev["data"])
    r404 = daemon.get("/v1/events/signing-key", key=akey, params={"kid": "0000000000000000"})
    assert r404.status_code == 404, r404.text
    replay = _all_events(daemon, akey)
    assert replay == [json.loads(f["event"]) for _, f in entries]

    code, out, err = run(redis_url, stream, "notifier", [f"{key['kid']}:{key['public_key']}"])
    assert code == 0, err
    assert out == [f["event"] for _, f in entries], err
    assert pending(r, stream, "notifier") == 0
    code, out, err = run(redis_url, stream, "notifier", [f"{key['kid']}:{key['public_key']}"])
    assert code == 0 and out == [], err
    code, out, err = run(redis_url, stream, "auditor", [f"{key['kid']}:{key['public_key']}"])
    assert code == 0 and out == [f["event"] for _, f in entries], err


def test_end_to_end_forged_and_duplicate_entries(daemon, r, redis_url, relay_events):
    stream, key, entries, _, _ = relay_events
    karg = [f"{key['kid']}:{key['public_key']}"]
    code, out, err = run(redis_url, stream, "g", karg)
    assert code == 0 and len(out) == len(entries), err
    # Above the relay's ids but in its own id space (txid-n): an XADD with
    # "*" would put a millisecond id above every future relay id and make
    # the relay take new events of this tenant for already published.
    last = entries[-1][0]
    txid, n = (int(x) for x in last.split("-"))
    forged = dict(entries[-1][1])
    subject = json.loads(forged["event"])["subject"]
    other = subject[:-1] + ("0" if subject[-1] != "0" else "1")
    forged["event"] = forged["event"].replace(f'"subject":"{subject}"', f'"subject":"{other}"', 1)
    assert forged["event"] != entries[-1][1]["event"] and len(forged["event"]) == len(entries[-1][1]["event"])
    r.xadd(stream, forged, id=f"{txid}-{n + 500000}")
    r.xadd(stream, entries[0][1], id=f"{txid}-{n + 500001}")  # a replay of the first event
    code, out, err = run(redis_url, stream, "g", karg)
    assert code == 0 and out == [], err
    dead = dead_entries(r, stream)
    assert len(dead) == 1 and "bad signature" in dead[0][1]["reason"], dead
    assert "already handled" in err
    # a new group sees every event once: the replayed one is skipped
    code, out, err = run(redis_url, stream, "g2", karg)
    assert code == 0 and out == [f["event"] for _, f in entries], err
    assert len(dead_entries(r, stream)) == 2


def test_end_to_end_another_tenants_event_is_dead_lettered(daemon, cli, r, redis_url, relay_events):
    """One key signs every tenant's events: alpha's validly signed entry
    copied into beta's stream verifies, so the consumer of beta's stream
    must check the event's source against the stream's tenant
    (onceledger:events:<tenant>) and dead-letter it, not print alpha's
    event as beta's. On alpha's own stream the same entry is fine."""
    alpha_stream, key, entries, _, _ = relay_events
    karg = [f"{key['kid']}:{key['public_key']}"]
    beta = cli.tenant_create()
    bkey = cli.key_create(beta, "read,write")
    _post(daemon, bkey, "/v1/accounts", {"currency": "USD"})
    beta_stream = f"onceledger:events:{beta}"
    assert poll(lambda: r.xlen(beta_stream) >= 1, 20), "the relay did not publish beta's event"
    beta_entries = [(sid.decode(), {k.decode(): v.decode() for k, v in f.items()}) for sid, f in r.xrange(beta_stream)]
    copied = entries[-1][1]  # alpha's transfer.posted, as the relay signed it
    assert json.loads(copied["event"])["source"] != f"onceledger/{beta}"
    try:
        # in the relay's id space above beta's last event (see the forged test)
        txid, n = (int(x) for x in beta_entries[-1][0].split("-"))
        r.xadd(beta_stream, copied, id=f"{txid}-{n + 500000}")
        code, out, err = run(redis_url, beta_stream, "g", karg)
        assert code == 0, err
        assert out == [f["event"] for _, f in beta_entries], f"alpha's event printed on beta's stream:\n{out}\n{err}"
        dead = dead_entries(r, beta_stream)
        assert len(dead) == 1, dead
        assert dead[0][1]["reason"] == (f"event source {json.loads(copied['event'])['source']} is not this "
                                        f"stream's tenant (onceledger/{beta})"), dead
        assert dead[0][1]["event"] == copied["event"] and dead[0][1]["signature"] == copied["signature"]
        assert pending(r, beta_stream, "g") == 0
        # the same entry on its own tenant's stream is printed
        code, out, err = run(redis_url, alpha_stream, "g-alpha", karg)
        assert code == 0 and copied["event"] in out and not dead_entries(r, alpha_stream), err
    finally:
        r.delete(beta_stream + ":dead", *r.scan_iter(match=beta_stream + ":*:done:*", count=1000))
        for g in r.xinfo_groups(beta_stream):
            r.xgroup_destroy(beta_stream, g["name"])
