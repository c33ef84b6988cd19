"""The daemon's TTL sweeper (issue #3): expired items are deleted in the
background, in batches, and counted in /metrics; unexpired ones stay."""
import json
import re
import time

from oltest import poll, unique_tenant


def _metric(d, name):
    text = d.get("/metrics").text
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def test_sweeper_deletes_expired_items_in_batches(daemon_factory, cli, db):
    tenant = cli.tenant_create(unique_tenant())
    cur = db.cursor()
    cur.execute(
        "INSERT INTO item_tables (tenant, name, definition, ttl_attribute) VALUES (%s, 'sweep', %s, 'exp') RETURNING id",
        (tenant, json.dumps({"TableName": "sweep",
                             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                             "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})))
    table_id = cur.fetchone()[0]
    now = int(time.time())
    # 25 expired items (more than one batch of 10) and 5 that expire in an hour
    rows = [(table_id, "old%d" % i, json.dumps({"pk": {"S": "old%d" % i}, "exp": {"N": str(now - 60)}}), now - 60)
            for i in range(25)]
    rows += [(table_id, "new%d" % i, json.dumps({"pk": {"S": "new%d" % i}, "exp": {"N": str(now + 3600)}}), now + 3600)
             for i in range(5)]
    cur.executemany("INSERT INTO items (table_id, pk, sk, item, expires_at) VALUES (%s, %s, '', %s::jsonb, %s)", rows)

    d = daemon_factory("--ttl-sweep-interval-ms", "200", "--ttl-sweep-batch", "10")

    def remaining():
        cur.execute("SELECT count(*) FILTER (WHERE expires_at <= %s), count(*) FROM items WHERE table_id = %s",
                    (now, table_id))
        return cur.fetchone()

    assert poll(lambda: remaining()[0] == 0, 10), "expired items still stored: %r" % (remaining(),)
    assert remaining()[1] == 5, "unexpired items must stay"
    # the worker counts a batch when its DELETE's answer arrives, just
    # after the rows are gone: poll the counter too
    assert poll(lambda: _metric(d, "onceledger_items_expired_deleted_total") >= 25, 10), \
        _metric(d, "onceledger_items_expired_deleted_total")


def test_sweeper_can_be_disabled(daemon_factory, cli, db):
    tenant = cli.tenant_create(unique_tenant())
    cur = db.cursor()
    cur.execute(
        "INSERT INTO item_tables (tenant, name, definition, ttl_attribute) VALUES (%s, 'nosweep', '{}', 'exp') RETURNING id",
        (tenant,))
    table_id = cur.fetchone()[0]
    cur.execute("INSERT INTO items (table_id, pk, sk, item, expires_at) VALUES (%s, 'x', '', '{}', 1)", (table_id,))
    d = daemon_factory("--ttl-sweep-interval-ms", "0")
    time.sleep(1.0)
    cur.execute("SELECT count(*) FROM items WHERE table_id = %s", (table_id,))
    assert cur.fetchone()[0] == 1
    assert _metric(d, "onceledger_items_expired_deleted_total") == 0
