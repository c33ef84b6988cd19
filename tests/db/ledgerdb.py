"""ledgerdb — what the Python db tests of the ledger's SQL share
(tests/db/test_ledger_*.py): a database of their own created from sql/*.sql
on the PostgreSQL of $ONCELEDGER_TEST_DATABASE_URL (exit 77, skipped,
without it) and dropped at the end, queries, threads started together, and
the TAP lines scripts/test.sh's db suite counts. Not a test itself (the
suite runs tests/db/test_*)."""
import datetime
import glob
import os
import sys
import threading
import traceback

import psycopg2
import psycopg2.extensions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
URL = os.environ.get("ONCELEDGER_TEST_DATABASE_URL", "")
if not URL:
    print("1..0 # SKIP ONCELEDGER_TEST_DATABASE_URL not set")
    sys.exit(77)
_dsn = psycopg2.extensions.parse_dsn(URL)
DBNAME = None
# Settings of every connection to the test's database ("-c lock_timeout=..."),
# so that a lock wait that should not happen fails the test instead of
# hanging the suite.
OPTIONS = None


def init(prefix):
    """Names this process's database "<prefix>_<pid>"; returns the name."""
    global DBNAME
    DBNAME = "%s_%d" % (prefix, os.getpid())
    return DBNAME


def connect(dbname=None, autocommit=True):
    kw = dict(_dsn, dbname=dbname or DBNAME)
    if OPTIONS and dbname is None:
        kw["options"] = OPTIONS
    c = psycopg2.connect(**kw)
    c.autocommit = autocommit
    return c


def q(sql, args=None, conn=None, dbname=None):
    """Runs sql (on conn, else a connection of its own): the rows, or None."""
    c = conn or connect(dbname)
    try:
        with c.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None
    finally:
        if conn is None:
            c.close()


def create_db(tenants=(), name=None, upto=None):
    """A fresh database migrated with sql/*.sql (those before the file
    name upto, if given), with the tenants."""
    name = name or DBNAME
    admin = connect(_dsn.get("dbname", "postgres"))
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s" % name)
        cur.execute("CREATE DATABASE %s" % name)
    admin.close()
    c = connect(name)
    with c.cursor() as cur:
        cur.execute("SET client_min_messages = warning")
        for f in sorted(glob.glob(os.path.join(ROOT, "sql", "[0-9]*.sql"))):
            if upto is not None and os.path.basename(f) >= upto:
                break
            cur.execute("BEGIN")
            cur.execute(open(f).read())
            cur.execute("COMMIT")
        for t in tenants:
            cur.execute("INSERT INTO tenants (name) VALUES (%s)", (t,))
    c.close()


def drop_db(name=None):
    admin = connect(_dsn.get("dbname", "postgres"))
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % (name or DBNAME))
    admin.close()


def rfc3339(t):
    """A time as the API writes it: UTC, 6 fraction digits, Z."""
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run_threads(n, fn):
    """fn(i) for i in 0..n-1 in n threads released together: (results, errors)."""
    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def one(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported as the test's failure
            errors.append("%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return results, errors


def tap_main(tests, setup):
    """Runs setup() then each test, printing TAP lines; drops the database
    at the end. Returns the exit status."""
    failed = 0
    print("1..%d" % len(tests))
    try:
        setup()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        for i, t in enumerate(tests, 1):
            print("not ok %d - %s # setup failed" % (i, t.__name__))
        drop_db()
        return 1
    try:
        for i, t in enumerate(tests, 1):
            try:
                t()
                print("ok %d - %s" % (i, t.__name__))
            except Exception:  # noqa: BLE001
                failed += 1
                print("not ok %d - %s" % (i, t.__name__))
                for line in traceback.format_exc().splitlines():
                    print("# " + line)
            sys.stdout.flush()
    finally:
        drop_db()
    return 1 if failed else 0
