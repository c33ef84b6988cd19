-- 011_streams: DynamoDB Streams for tenants' tables (docs/dynamodb.md
-- "Streams"). Every change of an item of a table with an enabled stream
-- writes a record into item_stream from a trigger, in the same transaction
-- as the change: no record without its change, no change without its record.
--
-- items.stream is a hint set by the item layer from the table's definition
-- (NULL: the table has no stream), so that the triggers of tables without a
-- stream cost only their WHEN test. The trigger function reads the table's
-- current definition for the truth (StreamSpecification, KeySchema): a hint
-- that is stale for a moment cannot put a record into a disabled stream.
--
-- Order. Readers take records in (ord, seq) order and only those with
-- ord < pg_snapshot_xmin(pg_current_snapshot()): every transaction that
-- could still add a record sorting before them has finished (the outbox
-- lesson: a sequence alone is taken at insert and commits reorder it).
-- ord is the writer's xid, or the ord of the item's previous record when
-- that is greater: a transaction with a lower xid that changes an item after
-- a higher-xid one committed a change to it sorts after that change, and both
-- become readable only once the lower xid has finished, so none is skipped.

ALTER TABLE items ADD COLUMN stream smallint;

CREATE SEQUENCE item_stream_seq;

CREATE TABLE item_stream (
    table_id   bigint NOT NULL REFERENCES item_tables (id) ON DELETE CASCADE,
    ord        xid8 NOT NULL,
    seq        bigint NOT NULL DEFAULT nextval('item_stream_seq'),
    event      text NOT NULL CHECK (event IN ('INSERT', 'MODIFY', 'REMOVE')),
    pk         text COLLATE "C" NOT NULL,
    sk         text COLLATE "C" NOT NULL,
    keys       jsonb NOT NULL,
    old_image  jsonb,
    new_image  jsonb,
    view_type  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    service    boolean NOT NULL DEFAULT false, -- a TTL deletion
    PRIMARY KEY (table_id, ord, seq)
);
-- The previous record of an item (its ord), and retention by age.
CREATE INDEX item_stream_item ON item_stream (table_id, pk, sk, ord DESC, seq DESC);
CREATE INDEX item_stream_age ON item_stream (created_at);

CREATE FUNCTION ol_item_stream_record() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r      record;
    d      jsonb;
    vt     text;
    item   jsonb;
    k      jsonb;
    ks     jsonb := '{}';
    prev   xid8;
    o      xid8 := pg_current_xact_id();
    ev     text;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; item := OLD.item; ev := 'REMOVE';
    ELSE r := NEW; item := NEW.item; ev := CASE WHEN TG_OP = 'INSERT' THEN 'INSERT' ELSE 'MODIFY' END;
    END IF;
    SELECT definition INTO d FROM item_tables WHERE id = r.table_id;
    IF d IS NULL OR NOT coalesce((d -> 'StreamSpecification' ->> 'StreamEnabled')::boolean, false) THEN
        RETURN NULL;
    END IF;
    vt := d -> 'StreamSpecification' ->> 'StreamViewType';
    FOR k IN SELECT value FROM jsonb_array_elements(d -> 'KeySchema') LOOP
        ks := ks || jsonb_build_object(k ->> 'AttributeName', item -> (k ->> 'AttributeName'));
    END LOOP;
    SELECT s.ord INTO prev FROM item_stream s
     WHERE s.table_id = r.table_id AND s.pk = r.pk AND s.sk = r.sk
     ORDER BY s.ord DESC, s.seq DESC LIMIT 1;
    IF prev IS NOT NULL AND prev > o THEN
        o := prev;
    END IF;
    INSERT INTO item_stream (table_id, ord, event, pk, sk, keys, old_image, new_image, view_type, service)
    VALUES (r.table_id, o, ev, r.pk, r.sk, ks,
            CASE WHEN TG_OP <> 'INSERT' AND vt IN ('OLD_IMAGE', 'NEW_AND_OLD_IMAGES') THEN OLD.item END,
            CASE WHEN TG_OP <> 'DELETE' AND vt IN ('NEW_IMAGE', 'NEW_AND_OLD_IMAGES') THEN NEW.item END,
            vt,
            TG_OP = 'DELETE' AND coalesce(current_setting('ol.stream_service', true), '') = 'true');
    RETURN NULL;
END;
$$;

CREATE TRIGGER items_stream_insert AFTER INSERT ON items
    FOR EACH ROW WHEN (NEW.stream IS NOT NULL) EXECUTE FUNCTION ol_item_stream_record();
-- DynamoDB writes no record for an update that changes nothing.
CREATE TRIGGER items_stream_update AFTER UPDATE ON items
    FOR EACH ROW WHEN ((NEW.stream IS NOT NULL OR OLD.stream IS NOT NULL) AND OLD.item IS DISTINCT FROM NEW.item)
    EXECUTE FUNCTION ol_item_stream_record();
CREATE TRIGGER items_stream_delete AFTER DELETE ON items
    FOR EACH ROW WHEN (OLD.stream IS NOT NULL) EXECUTE FUNCTION ol_item_stream_record();
