-- 016_ledger_cleanup: what the item-layer ledger of earlier versions left
-- on the item tables (issue #16). The ledger's money is in the schema
-- "ledger" (sql/012-015); the system table "ol:ledger" keeps only the
-- idempotency records (docs/idempotency.md), read and written by their key
-- (PK, SK) and expired by their TTL attribute: none of its indexes has a
-- reader any more (sql/004, 005, 006 defined them for accounts, transfers,
-- holds, orders and entries). sql/012 refused a database holding ledger
-- items, so no item of the system table has an index attribute.

-- Entries are rows of ledger.entries, append-only by their own trigger
-- (sql/012); no item is an entry now.
DROP TRIGGER items_entries_append_only ON items;
DROP FUNCTION ol_entries_append_only();

-- The system table of a tenant: its key and TTL, no secondary index.
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
    'AttributeDefinitions', jsonb_build_array(
        jsonb_build_object('AttributeName', 'PK', 'AttributeType', 'S'),
        jsonb_build_object('AttributeName', 'SK', 'AttributeType', 'S'))),
    'ttl'
ON CONFLICT (tenant, name) DO NOTHING
$$;

UPDATE item_tables
   SET definition = (definition - 'GlobalSecondaryIndexes')
                    || jsonb_build_object('AttributeDefinitions', jsonb_build_array(
                           jsonb_build_object('AttributeName', 'PK', 'AttributeType', 'S'),
                           jsonb_build_object('AttributeName', 'SK', 'AttributeType', 'S')))
 WHERE name = 'ol:ledger';

DROP FUNCTION ol_system_indexes(text);
DROP FUNCTION ol_system_attribute_definitions();
