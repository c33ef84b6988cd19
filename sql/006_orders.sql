-- 006_orders: the indexes orders use (docs/orders.md). Slot 2, reserved
-- as "by_transfer" and never used, becomes orders_by_status; slot 7 is new.
--
--   slot 2  orders_by_status    GSI2PK "ORDERS#<status>" / GSI2SK "<created µs>#<id>"
--   slot 4  by_customer         GSI4PK "CUSTOMER#<customer>" / GSI4SK "<created µs>#<id>"
--   slot 7  orders_by_created   GSI7PK "ORDERS" / GSI7SK "<created µs>#<id>"

CREATE OR REPLACE FUNCTION ol_system_attribute_definitions() RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
SELECT jsonb_agg(jsonb_build_object('AttributeName', a, 'AttributeType', 'S') ORDER BY o)
FROM unnest(ARRAY['PK', 'SK', 'GSI1PK', 'GSI1SK', 'GSI2PK', 'GSI2SK', 'GSI3PK', 'GSI3SK', 'GSI4PK', 'GSI4SK',
                  'GSI5PK', 'GSI5SK', 'GSI6PK', 'GSI6SK', 'GSI7PK', 'GSI7SK']) WITH ORDINALITY AS x (a, o)
$$;

CREATE OR REPLACE FUNCTION ol_system_indexes(t text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
SELECT jsonb_agg(jsonb_build_object(
        '_slot', n, 'IndexName', name,
        'IndexArn', 'arn:aws:dynamodb:onceledger:' || t || ':table/ol:ledger/index/' || name,
        'IndexStatus', 'ACTIVE', 'ItemCount', 0, 'IndexSizeBytes', 0,
        'Projection', jsonb_build_object('ProjectionType', 'ALL'),
        'KeySchema', jsonb_build_array(
            jsonb_build_object('AttributeName', 'GSI' || n || 'PK', 'KeyType', 'HASH'),
            jsonb_build_object('AttributeName', 'GSI' || n || 'SK', 'KeyType', 'RANGE'))) ORDER BY n)
FROM (VALUES (1, 'by_owner'), (2, 'orders_by_status'), (3, 'open_by_expiry'), (4, 'by_customer'),
             (5, 'entries_by_time'), (6, 'accounts_by_currency'), (7, 'orders_by_created')) AS g (n, name)
$$;

UPDATE item_tables
   SET definition = definition || jsonb_build_object('AttributeDefinitions', ol_system_attribute_definitions(),
                                                     'GlobalSecondaryIndexes', ol_system_indexes(tenant))
 WHERE name = 'ol:ledger';
