-- 007_events: the transactional outbox and the relay's cursor (docs/events.md).
--
-- A row is written in the transaction of the change it describes. Its
-- position (txid, n) orders events: txid is the writing transaction's id,
-- n numbers that transaction's events from 0. The relay only reads rows
-- whose txid is below the snapshot's xmin, so no row can later appear
-- below a position it has passed (a plain sequence can: values are taken
-- at insert, commits happen in another order).

CREATE TABLE outbox (
    txid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    n          integer NOT NULL CHECK (n >= 0 AND n < 1000000),
    -- Insertion order; not used for relaying (see above), kept for
    -- diagnostics and for the test that shows why it must not be.
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    tenant     text NOT NULL,
    id         text NOT NULL,
    type       text NOT NULL,
    subject    text NOT NULL,
    time       text NOT NULL,
    data       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (txid, n)
);
CREATE INDEX outbox_by_tenant ON outbox (tenant, txid, n);

-- Everything at or below (txid, n) is in Redis.
CREATE TABLE relay_cursor (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    txid       xid8 NOT NULL,
    n          integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO relay_cursor (txid, n) VALUES ('0', 0);

-- The next n of the current transaction: its events so far, counted on
-- the primary key (a transaction writes few).
CREATE FUNCTION ol_outbox_next_n() RETURNS integer
LANGUAGE sql VOLATILE AS $$
SELECT coalesce(max(n) + 1, 0) FROM outbox WHERE txid = pg_current_xact_id()
$$;
