"""The admin CLI (docs/api.md §11, docs/development.md): migrate, tenants, keys."""

import re
import subprocess

import pytest

from oltest import KEY_RE, key_id, key_secret, unique_tenant


def _schema_dump(stack):
    p = subprocess.run([stack.pg_bin("pg_dump"), "--schema-only", "--no-owner", "--no-privileges",
                        "-d", stack.database_url], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    # pg_dump >= 15.14 brackets the dump with \restrict/\unrestrict and a random key
    return "\n".join(line for line in p.stdout.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")))


def _migrations(db):
    with db.cursor() as c:
        c.execute("SELECT * FROM schema_migrations ORDER BY 1")
        return c.fetchall()


def test_migrate_twice_changes_nothing(stack, cli, db):
    # The session already migrated once; run it twice more.
    cli.run("migrate")
    before_rows = _migrations(db)
    before_schema = _schema_dump(stack)
    assert len(before_rows) >= 1
    p = cli.run("migrate")
    assert p.returncode == 0
    assert _migrations(db) == before_rows
    assert _schema_dump(stack) == before_schema
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('tenants','api_keys')")
        assert c.fetchone()[0] == 2


def test_migrate_without_database_url_is_usage_error(cli):
    p = cli.run("migrate", db=False, check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.strip()


def test_migrate_unreachable_database_is_runtime_error(cli):
    p = cli.run("migrate", "--database-url", "postgresql://postgres@127.0.0.1:1/onceledger",
                db=False, check=False, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.strip()


def test_tenant_create_prints_name(cli, db):
    name = unique_tenant()
    p = cli.run("tenant", "create", name)
    assert p.stdout.strip() == name
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM tenants WHERE name = %s", (name,))
        assert c.fetchone()[0] == 1


@pytest.mark.parametrize("name", ["Bad", "has space", "x" * 33, "", "t.dot", "t/slash", "é"])
def test_invalid_tenant_name_exits_1(cli, db, name):
    p = cli.run("tenant", "create", name, check=False)
    assert p.returncode == 1, (name, p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "no message on stderr"
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM tenants WHERE name = %s", (name,))
        assert c.fetchone()[0] == 0


def test_tenant_name_of_32_chars_is_fine(cli):
    name = "t-" + "a" * 18 + unique_tenant()[2:]
    assert len(name) == 32
    cli.run("tenant", "create", name)


def test_duplicate_tenant_fails(cli, tenant):
    p = cli.run("tenant", "create", tenant, check=False)
    assert p.returncode != 0


def test_key_create_prints_one_key_line(cli, tenant):
    p = cli.run("key", "create", "--tenant", tenant, "--scopes", "read,write,audit")
    assert p.stdout.endswith("\n")
    lines = p.stdout.splitlines()
    assert len(lines) == 1, f"stdout has {len(lines)} lines: {p.stdout!r}"
    assert re.fullmatch(KEY_RE, lines[0]), lines[0]


def test_keys_are_unique(cli, tenant):
    keys = {cli.key_create(tenant, "read") for _ in range(5)}
    assert len(keys) == 5
    assert len({key_id(k) for k in keys}) == 5


def test_key_text_is_not_in_the_database(stack, cli, tenant, db):
    key = cli.key_create(tenant, "read,write")
    secret = key_secret(key)
    with db.cursor() as c:
        c.execute("SELECT id, tenant, hash FROM api_keys WHERE id = %s", (key_id(key),))
        rows = c.fetchall()
    assert len(rows) == 1, rows
    assert rows[0][1] == tenant
    h = bytes(rows[0][2])
    assert secret.encode() not in h and h != key.encode()
    p = subprocess.run([stack.pg_bin("pg_dump"), "--data-only", "-d", stack.database_url],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert secret not in p.stdout, "the key's secret is stored in the database"
    assert key not in p.stdout
    # and not in any text form of api_keys either
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM api_keys k WHERE k::text LIKE %s", ("%" + secret[:20] + "%",))
        assert c.fetchone()[0] == 0


@pytest.mark.parametrize("scopes", ["admin", "read,admin", "", "READ"])
def test_key_create_bad_scopes_exits_1(cli, tenant, scopes):
    p = cli.run("key", "create", "--tenant", tenant, "--scopes", scopes, check=False)
    assert p.returncode == 1, (scopes, p.returncode, p.stdout, p.stderr)
    assert not re.search(r"olk_", p.stdout)


def test_key_create_unknown_tenant_fails(cli):
    p = cli.run("key", "create", "--tenant", unique_tenant(), "--scopes", "read", check=False)
    assert p.returncode in (1, 2), p.returncode
    assert "olk_" not in p.stdout


def test_key_revoke_by_id(cli, tenant, db):
    key = cli.key_create(tenant, "read")
    p = cli.run("key", "revoke", key_id(key))
    assert p.returncode == 0
    with db.cursor() as c:
        c.execute("SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = %s", (key_id(key),))
        assert c.fetchone()[0] is True


def test_key_revoke_unknown_fails(cli):
    p = cli.run("key", "revoke", "0123456789abcdef", check=False)
    assert p.returncode != 0
    assert p.stderr.strip()


def test_key_list_shows_ids_never_secrets(cli, tenant):
    k1, k2 = cli.key_create(tenant, "read"), cli.key_create(tenant, "audit")
    cli.key_revoke(key_id(k2))
    p = cli.run("key", "list", "--tenant", tenant)
    assert key_id(k1) in p.stdout and key_id(k2) in p.stdout
    assert key_secret(k1) not in p.stdout and key_secret(k2) not in p.stdout


def test_cli_reads_database_url_from_environment(stack, tenant):
    import os
    env = dict(os.environ, ONCELEDGER_DATABASE_URL=stack.database_url)
    from oltest import CLI
    p = subprocess.run([str(CLI), "key", "create", "--tenant", tenant, "--scopes", "read"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(KEY_RE, p.stdout.strip())
