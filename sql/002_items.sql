-- 002_items: the item layer's storage (DynamoDB semantics on PostgreSQL).
--
-- Logical tables belong to a tenant; items of every table live in one
-- physical table keyed by (table_id, pk, sk), where pk/sk are order-preserving
-- text encodings of the key values (S as is, N in a sortable decimal form, B
-- as hex) compared bytewise (COLLATE "C"), so a range over a sort key is a
-- btree range scan. Secondary indexes (GSIs and LSIs) use fixed index slots:
-- each slot is a pair of encoded key columns, filled only when the item has
-- the index's key attributes, and covered by a partial index — an item
-- without them is simply absent from the index (sparse).

CREATE TABLE item_tables (
    id          bigserial PRIMARY KEY,
    tenant      text NOT NULL REFERENCES tenants (name),
    name        text NOT NULL,
    -- The table description in DynamoDB's shape (KeySchema,
    -- AttributeDefinitions, GlobalSecondaryIndexes with their slot numbers, ...).
    definition  jsonb NOT NULL,
    ttl_attribute text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, name)
);

CREATE TABLE items (
    table_id    bigint NOT NULL REFERENCES item_tables (id) ON DELETE CASCADE,
    pk          text COLLATE "C" NOT NULL,
    sk          text COLLATE "C" NOT NULL DEFAULT '',
    item        jsonb NOT NULL,
    -- TTL: the table's TTL attribute when it is a number (epoch seconds).
    expires_at  bigint,
    x1pk text COLLATE "C", x1sk text COLLATE "C",
    x2pk text COLLATE "C", x2sk text COLLATE "C",
    x3pk text COLLATE "C", x3sk text COLLATE "C",
    x4pk text COLLATE "C", x4sk text COLLATE "C",
    x5pk text COLLATE "C", x5sk text COLLATE "C",
    x6pk text COLLATE "C", x6sk text COLLATE "C",
    x7pk text COLLATE "C", x7sk text COLLATE "C",
    x8pk text COLLATE "C", x8sk text COLLATE "C",
    PRIMARY KEY (table_id, pk, sk)
);
CREATE INDEX items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX items_x1 ON items (table_id, x1pk, x1sk, pk, sk) WHERE x1pk IS NOT NULL;
CREATE INDEX items_x2 ON items (table_id, x2pk, x2sk, pk, sk) WHERE x2pk IS NOT NULL;
CREATE INDEX items_x3 ON items (table_id, x3pk, x3sk, pk, sk) WHERE x3pk IS NOT NULL;
CREATE INDEX items_x4 ON items (table_id, x4pk, x4sk, pk, sk) WHERE x4pk IS NOT NULL;
CREATE INDEX items_x5 ON items (table_id, x5pk, x5sk, pk, sk) WHERE x5pk IS NOT NULL;
CREATE INDEX items_x6 ON items (table_id, x6pk, x6sk, pk, sk) WHERE x6pk IS NOT NULL;
CREATE INDEX items_x7 ON items (table_id, x7pk, x7sk, pk, sk) WHERE x7pk IS NOT NULL;
CREATE INDEX items_x8 ON items (table_id, x8pk, x8sk, pk, sk) WHERE x8pk IS NOT NULL;

-- TransactWriteItems ClientRequestToken: idempotent for 10 minutes.
CREATE TABLE item_txn_tokens (
    tenant      text NOT NULL REFERENCES tenants (name),
    token       text NOT NULL,
    fingerprint bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, token)
);

-- Encodes a key AttributeValue ({"S":..}, {"N":..}, {"B":..}) of the given
-- type into the order-preserving text form used by pk/sk and the index
-- slots; NULL when the attribute is absent or of another type (so the item
-- stays out of a sparse index). Must agree byte for byte with
-- it_key_encode() in src/items/keyenc.c (a test checks both).
CREATE FUNCTION ol_key_enc(av jsonb, typ text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    s text;
    neg boolean;
    digits text;
    intpart text;
    frac text;
    e integer;
    i integer;
    out text;
BEGIN
    IF av IS NULL OR jsonb_typeof(av) <> 'object' OR NOT av ? typ THEN
        RETURN NULL;
    END IF;
    s := av ->> typ;
    IF typ = 'S' THEN
        RETURN s;
    ELSIF typ = 'B' THEN
        RETURN encode(decode(s, 'base64'), 'hex');
    ELSIF typ <> 'N' THEN
        RETURN NULL;
    END IF;
    -- N: canonical decimal (no exponent, no trailing fractional zeros).
    neg := left(s, 1) = '-';
    IF neg THEN s := substr(s, 2); END IF;
    IF position('.' IN s) > 0 THEN
        intpart := split_part(s, '.', 1);
        frac := split_part(s, '.', 2);
    ELSE
        intpart := s;
        frac := '';
    END IF;
    intpart := ltrim(intpart, '0');
    IF intpart = '' AND rtrim(frac, '0') = '' THEN
        RETURN '1';                         -- zero
    END IF;
    IF intpart <> '' THEN
        e := length(intpart);               -- value = 0.d1d2... x 10^e
        digits := rtrim(intpart || frac, '0');
    ELSE
        i := length(frac) - length(ltrim(frac, '0'));
        e := -i;
        digits := rtrim(ltrim(frac, '0'), '0');
    END IF;
    IF NOT neg THEN
        RETURN '2' || lpad((e + 500)::text, 4, '0') || digits;
    END IF;
    out := '';
    FOR i IN 1 .. length(digits) LOOP
        out := out || (9 - substr(digits, i, 1)::integer)::text;
    END LOOP;
    RETURN '0' || lpad((9999 - (e + 500))::text, 4, '0') || out || '~';
END;
$$;

-- The TTL value of an item: its TTL attribute when that is a number (epoch
-- seconds), else NULL (the item never expires), as DynamoDB does.
CREATE FUNCTION ol_ttl_value(item jsonb, attr text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN attr IS NOT NULL AND item -> attr ? 'N'
                THEN floor(least(greatest((item -> attr ->> 'N')::numeric, -9e18), 9e18))::bigint END
$$;

-- Raises an error with the given SQLSTATE and message (used to abort a
-- pipelined transaction from inside SQL).
CREATE FUNCTION ol_fail(code text, msg text) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = msg;
END;
$$;

-- TransactWriteItems: each action records its outcome in the transaction-
-- local setting ol.txn_failed; the last statement of the pipeline aborts the
-- whole implicit transaction when any action failed.
CREATE FUNCTION ol_txn_mark(ok boolean) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN ok THEN true
                ELSE set_config('ol.txn_failed', 'true', true) IS NULL END
$$;

CREATE FUNCTION ol_txn_finish() RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF current_setting('ol.txn_failed', true) = 'true' THEN
        RAISE EXCEPTION USING ERRCODE = 'OLT01', MESSAGE = 'transaction cancelled';
    END IF;
    RETURN 1;
END;
$$;
