"""The relay and GET /v1/events order events by their numeric position
(txid, n), across a change in the number of digits of txid (9 → 10,
99 → 100): an ORDER BY on the text of txid would publish "10" before "9",
and Redis would then refuse 9 as below the stream's top (docs/events.md).

Rows are written straight into the outbox with chosen txids below every
real one, and the relay's cursor is moved back to the start, as after a
restore; the daemon is started afterwards so its relay reads that cursor.
Every earlier event is offered again and refused by id (already there).
Uses only its own daemon: every running daemon competes for the relay."""

import json

import pytest
import redis

from oltest import poll

pytestmark = [pytest.mark.controls_daemon]

POSITIONS = [(9, 0), (10, 0), (99, 0), (99, 1), (100, 0)]


def test_numeric_order_across_digit_boundaries(stack, db, tenant, make_key, daemon_factory):
    with db.cursor() as cur:
        for txid, n in reversed(POSITIONS):  # inserted in another order on purpose
            # an account as the API shows it: GET /v1/events is checked
            # against docs/openapi.yaml like every response of the suite
            data = json.dumps({"id": f"x{txid}_{n}", "currency": "USD", "owner": None, "status": "active",
                               "balance": {"posted": 0, "pending": 0, "available": 0}, "overdraft_limit": 0,
                               "version": 1, "metadata": {}, "created_at": "2026-11-21T10:00:00.000000Z"})
            cur.execute("INSERT INTO outbox (txid, n, tenant, id, type, subject, time, data)"
                        " VALUES (%s::text::xid8, %s, %s, %s, 'account.created', %s, '2026-11-21T10:00:00.000000Z', %s)",
                        (str(txid), n, tenant, f"evt_order_{txid}_{n}", f"x{txid}_{n}", data))
        cur.execute("UPDATE relay_cursor SET txid = '0', n = 0")
    d = daemon_factory()
    r = redis.Redis.from_url(stack.redis_url)
    stream = f"onceledger:events:{tenant}"
    got = poll(lambda: len(r.xrange(stream)) >= len(POSITIONS) and r.xrange(stream), 30)
    assert got, f"the relay did not publish the rows: {r.xrange(stream)}"
    ids = [sid.decode() for sid, _ in got]
    assert ids == [f"{t}-{n}" for t, n in POSITIONS]
    seqs = [json.loads(f[b"event"])["sequence"] for _, f in got]
    assert seqs == [str(t * 1000000 + n) for t, n in POSITIONS]

    key = make_key("audit")
    page = d.get("/v1/events?limit=3", key=key).json()
    assert [e["sequence"] for e in page["data"]] == seqs[:3]
    rest = d.get(f"/v1/events?after={page['next_cursor']}", key=key).json()
    assert [e["sequence"] for e in rest["data"]] == seqs[3:]
    assert rest["next_cursor"] is None
    conflicts = [l for l in d.log_text().splitlines() if "relay_stream_conflict" in l and stream in l]
    assert conflicts == []


def test_key_rotation_with_the_cli(stack, tenant, make_key, daemon_factory, tmp_path):
    """`onceledger signing-key rotate` appends a key; the running daemon
    reloads the file and signs with it; the old key stays published."""
    import base64
    import subprocess

    import nacl.signing

    from oltest import CLI

    keyfile = tmp_path / "events.key"
    d = daemon_factory("--events-key-file", str(keyfile))
    akey, wkey = make_key("audit"), make_key("read,write")
    old = d.get("/v1/events/signing-key", key=akey).json()
    p = subprocess.run([str(CLI), "signing-key", "rotate", "--key-file", str(keyfile)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    new_kid = p.stdout.strip()
    assert len(new_kid) == 16 and new_kid != old["kid"]
    listed = subprocess.run([str(CLI), "signing-key", "list", "--key-file", str(keyfile)],
                            capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert [l.split()[0] for l in listed] == [old["kid"], new_kid] and listed[-1].endswith("signing")
    cur = poll(lambda: (lambda k: k if k["kid"] == new_kid else None)(
        d.get("/v1/events/signing-key", key=akey).json()), 10)
    assert cur, "the daemon did not pick up the rotated key"
    assert d.get(f"/v1/events/signing-key?kid={old['kid']}", key=akey).json() == old
    # an event written now is signed with the new key
    r = d.post("/v1/accounts", key=wkey, json={"currency": "EUR"}, headers={"Idempotency-Key": "rot-1"})
    assert r.status_code == 201, r.text
    rds = redis.Redis.from_url(stack.redis_url)
    got = poll(lambda: rds.xrange(f"onceledger:events:{tenant}"), 15)
    assert got, "no event published"
    f = got[-1][1]
    assert f[b"kid"].decode() == new_kid
    vk = nacl.signing.VerifyKey(base64.b64decode(cur["public_key"]))
    vk.verify(f[b"event"], base64.b64decode(f[b"signature"]))
