-- 005_ledger: what the ledger (docs/ledger.md) adds to the system table
-- "ol:ledger": two more sparse indexes, the guard operand of the accounts
-- created before it existed, and append-only ledger entries.
--
--   slot 5  entries_by_time        GSI5PK "ACCOUNT#<id>" / GSI5SK "<at µs, 16 digits>"
--           (time ranges of an account's entries: /entries, /balance, /statement)
--   slot 6  accounts_by_currency   GSI6PK "CUR#<CUR>"    / GSI6SK "ACCOUNT#<id>"
--           (every account of a currency: /v1/audit/verify)

CREATE FUNCTION ol_system_attribute_definitions() RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
SELECT jsonb_agg(jsonb_build_object('AttributeName', a, 'AttributeType', 'S') ORDER BY o)
FROM unnest(ARRAY['PK', 'SK', 'GSI1PK', 'GSI1SK', 'GSI2PK', 'GSI2SK', 'GSI3PK', 'GSI3SK', 'GSI4PK', 'GSI4SK',
                  'GSI5PK', 'GSI5SK', 'GSI6PK', 'GSI6SK']) WITH ORDINALITY AS x (a, o)
$$;

CREATE FUNCTION ol_system_indexes(t text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
SELECT jsonb_agg(jsonb_build_object(
        '_slot', n, 'IndexName', name,
        'IndexArn', 'arn:aws:dynamodb:onceledger:' || t || ':table/ol:ledger/index/' || name,
        'IndexStatus', 'ACTIVE', 'ItemCount', 0, 'IndexSizeBytes', 0,
        'Projection', jsonb_build_object('ProjectionType', 'ALL'),
        'KeySchema', jsonb_build_array(
            jsonb_build_object('AttributeName', 'GSI' || n || 'PK', 'KeyType', 'HASH'),
            jsonb_build_object('AttributeName', 'GSI' || n || 'SK', 'KeyType', 'RANGE'))) ORDER BY n)
FROM (VALUES (1, 'by_owner'), (2, 'by_transfer'), (3, 'open_by_expiry'), (4, 'by_customer'),
             (5, 'entries_by_time'), (6, 'accounts_by_currency')) AS g (n, name)
$$;

CREATE OR REPLACE FUNCTION ol_system_tables(t text) RETURNS void
LANGUAGE sql VOLATILE AS $$
INSERT INTO item_tables (tenant, name, definition, ttl_attribute)
SELECT t, 'ol:ledger', jsonb_build_object(
    'TableName', 'ol:ledger',
    'TableArn', 'arn:aws:dynamodb:onceledger:' || t || ':table/ol:ledger',
    'TableStatus', 'ACTIVE',
    'ItemCount', 0, 'TableSizeBytes', 0,
    'CreationDateTime', extract(epoch FROM now())::numeric(20, 3),
    'BillingModeSummary', jsonb_build_object('BillingMode', 'PAY_PER_REQUEST'),
    'KeySchema', jsonb_build_array(
        jsonb_build_object('AttributeName', 'PK', 'KeyType', 'HASH'),
        jsonb_build_object('AttributeName', 'SK', 'KeyType', 'RANGE')),
    'AttributeDefinitions', ol_system_attribute_definitions(),
    'GlobalSecondaryIndexes', ol_system_indexes(t)),
    'ttl'
ON CONFLICT (tenant, name) DO NOTHING
$$;

UPDATE item_tables
   SET definition = definition || jsonb_build_object('AttributeDefinitions', ol_system_attribute_definitions(),
                                                     'GlobalSecondaryIndexes', ol_system_indexes(tenant))
 WHERE name = 'ol:ledger';

-- Accounts written before this migration: the guard operand "spendable"
-- (posted - pending + overdraft_limit), the time of the last entry, and
-- their place in accounts_by_currency.
UPDATE items i
   SET item = i.item || jsonb_build_object(
           'spendable', jsonb_build_object('N', ((i.item #>> '{posted,N}')::numeric - (i.item #>> '{pending,N}')::numeric
                                                 + (i.item #>> '{overdraft_limit,N}')::numeric)::text),
           'last_at', jsonb_build_object('N', '0'),
           'GSI6PK', jsonb_build_object('S', 'CUR#' || (i.item #>> '{currency,S}')),
           'GSI6SK', jsonb_build_object('S', i.pk)),
       x6pk = 'CUR#' || (i.item #>> '{currency,S}'),
       x6sk = i.pk
  FROM item_tables t
 WHERE t.id = i.table_id AND t.name = 'ol:ledger' AND i.pk LIKE 'ACCOUNT#%' AND i.sk = 'METADATA'
   AND NOT i.item ? 'spendable';

-- Ledger entries are append-only: corrections are new transfers. Rows of
-- the system table whose sort key is an entry's ("ENTRY#...") cannot be
-- changed or deleted, not even by a buggy release of this program. A
-- superuser can still disable the trigger; the hash chain (verify) is what
-- catches that.
CREATE FUNCTION ol_entries_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM item_tables t WHERE t.id = OLD.table_id AND t.name = 'ol:ledger') THEN
        RAISE EXCEPTION USING ERRCODE = 'OLE01',
            MESSAGE = format('ledger entries are append-only (%s %s)', OLD.pk, OLD.sk);
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END;
$$;

CREATE TRIGGER items_entries_append_only BEFORE UPDATE OR DELETE ON items
    FOR EACH ROW WHEN (OLD.sk LIKE 'ENTRY#%')
    EXECUTE FUNCTION ol_entries_append_only();
