-- bench/ledger_proto/migration_guard.sql — the first statement of the
-- migration that will create the relational ledger (docs/ledger-engine.md
-- "Migration from the item layout"), prototyped: it refuses a database that
-- holds ledger data in the item layout of the current release, with a
-- message that says what to do. Idempotency records (IDEM#, IDEMSVC#) and
-- the tenants' own DynamoDB tables are not ledger data and do not count.
DO $$
DECLARE
    n_accounts bigint;
    n_other bigint;
BEGIN
    SELECT count(*) FILTER (WHERE i.pk LIKE 'ACCOUNT#%' AND i.sk = 'METADATA'),
           count(*) FILTER (WHERE i.pk LIKE 'TXN#%' OR i.pk LIKE 'HOLD#%' OR i.pk LIKE 'ORDER#%'
                            OR i.pk LIKE 'INBOX#%' OR i.pk LIKE 'WORLD#%' OR i.pk LIKE 'ACCOUNT#%')
      INTO n_accounts, n_other
      FROM items i JOIN item_tables t ON t.id = i.table_id
     WHERE t.name = 'ol:ledger';
    IF n_other > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'OLM01',
            MESSAGE = format('this database holds ledger data in the item layout of an earlier version (%s accounts, '
                             '%s ledger items in the system table "ol:ledger")', n_accounts, n_other),
            HINT = 'The relational ledger cannot take it over: migrate a fresh database, or keep the earlier '
                   'version for this one.';
    END IF;
END;
$$;
