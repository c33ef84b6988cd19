-- 004_idempotency: the system table of every tenant, and the claim of an
-- idempotency key.
--
-- The domain keeps its items in one logical table per tenant, "ol:ledger"
-- (single-table layout, docs/idempotency.md and docs/items.md). Its name
-- has a ':' so that no DynamoDB request can reach it: DynamoDB table names
-- allow only [a-zA-Z0-9_.-]. Every tenant gets it when it is created.

CREATE FUNCTION ol_system_tables(t text) RETURNS void
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
    'AttributeDefinitions', (SELECT jsonb_agg(jsonb_build_object('AttributeName', a, 'AttributeType', 'S'))
                             FROM unnest(ARRAY['PK', 'SK', 'GSI1PK', 'GSI1SK', 'GSI2PK', 'GSI2SK',
                                               'GSI3PK', 'GSI3SK', 'GSI4PK', 'GSI4SK']) AS a),
    'GlobalSecondaryIndexes', (SELECT jsonb_agg(jsonb_build_object(
            '_slot', n, 'IndexName', name,
            'IndexArn', 'arn:aws:dynamodb:onceledger:' || t || ':table/ol:ledger/index/' || name,
            'IndexStatus', 'ACTIVE', 'ItemCount', 0, 'IndexSizeBytes', 0,
            'Projection', jsonb_build_object('ProjectionType', 'ALL'),
            'KeySchema', jsonb_build_array(
                jsonb_build_object('AttributeName', 'GSI' || n || 'PK', 'KeyType', 'HASH'),
                jsonb_build_object('AttributeName', 'GSI' || n || 'SK', 'KeyType', 'RANGE'))) ORDER BY n)
        FROM (VALUES (1, 'by_owner'), (2, 'by_transfer'), (3, 'open_by_expiry'), (4, 'by_customer')) AS g (n, name))),
    'ttl'
ON CONFLICT (tenant, name) DO NOTHING
$$;

SELECT ol_system_tables(name) FROM tenants;

CREATE FUNCTION ol_tenants_system_tables() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ol_system_tables(NEW.name);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tenants_system_tables AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION ol_tenants_system_tables();

-- The claim of an idempotency key (src/items/claim.c): writes rec at
-- (tid, pk, sk) when no live item is there, with its TTL attribute "ttl" and
-- its expiry computed from the database clock (now + ttl_s). Otherwise it
-- returns the live item without locking it: a replay only reads. A claim of
-- another transaction that has not committed yet is waited for, at most
-- wait_ms, then lock_not_available (55P03) is raised.
--
-- Returns outcome ('claimed', 'taken' or 'busy': still contended after a
-- few rounds), the item (the new one or the live one), its expiry and
-- whether this call had to wait for another claimer.
--
-- On 'claimed' it records the nonce in the transaction-local setting
-- ol.claim, which ol_it_claim_guard() checks right after: the guard fails
-- the pipeline unless this transaction holds the claim, so the request's
-- effects, sent in the same round trip, never run for a key already taken.
CREATE FUNCTION ol_it_claim(tid bigint, k_pk text, k_sk text, rec jsonb, ttl_s integer, wait_ms integer,
                            nonce text, OUT outcome text, OUT item jsonb, OUT expires bigint,
                            OUT waited boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_s bigint;
    cur record;
    have boolean;
    newrec jsonb;
    old_timeout text := current_setting('lock_timeout');
BEGIN
    waited := false;
    FOR round IN 1..4 LOOP
        now_s := floor(extract(epoch FROM clock_timestamp()))::bigint;
        SELECT i.item AS item, i.expires_at AS expires_at INTO cur
            FROM items i WHERE i.table_id = tid AND i.pk = k_pk AND i.sk = k_sk;
        have := FOUND;
        IF have AND (cur.expires_at IS NULL OR cur.expires_at > now_s) THEN
            outcome := 'taken';
            item := cur.item;
            expires := cur.expires_at;
            RETURN;
        END IF;
        expires := now_s + ttl_s;
        newrec := rec || jsonb_build_object('ttl', jsonb_build_object('N', expires::text));
        PERFORM set_config('lock_timeout', wait_ms || 'ms', true);
        IF have THEN
            -- An expired record: take it over unless someone else just did.
            UPDATE items i SET item = newrec, expires_at = expires
                WHERE i.table_id = tid AND i.pk = k_pk AND i.sk = k_sk AND i.expires_at <= now_s;
        ELSE
            INSERT INTO items (table_id, pk, sk, item, expires_at)
                VALUES (tid, k_pk, k_sk, newrec, expires) ON CONFLICT DO NOTHING;
        END IF;
        IF FOUND THEN
            PERFORM set_config('lock_timeout', old_timeout, true);
            PERFORM set_config('ol.claim', nonce, true);
            outcome := 'claimed';
            item := newrec;
            RETURN;
        END IF;
        PERFORM set_config('lock_timeout', old_timeout, true);
        -- Another claimer got there first (we may have waited for its
        -- commit): read again with a fresh snapshot.
        waited := true;
    END LOOP;
    outcome := 'busy';
    item := NULL;
    expires := NULL;
END;
$$;

CREATE FUNCTION ol_it_claim_guard(nonce text) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF current_setting('ol.claim', true) IS DISTINCT FROM nonce THEN
        RAISE EXCEPTION USING ERRCODE = 'OLC01', MESSAGE = 'idempotency key not claimed';
    END IF;
    RETURN 1;
END;
$$;
