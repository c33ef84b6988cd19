-- bench/ledger_proto/transfer_fn.sql — the SQL-only reference of issue #16's
-- transfer (bench/run.sh pg_transfer_fn): one call per executed idempotent
-- transfer, ONE round trip, writing every row the daemon writes for it,
-- on the same tables and with the same ledger function:
--
--   SELECT * FROM ledger_proto.transfer(tid, tenant, key, fp, ttl_s, wait_ms,
--            id, from, to, amount, currency, description, metadata, params,
--            event_id)
--
-- In one transaction (autocommit: the call is its own transaction):
--   1. the claim of the Idempotency-Key, as the prototype of
--      docs/ledger-engine.md measured it: an advisory lock on the key (a
--      duplicate in flight is waited for, then replayed) and a read of the
--      record, an item of the tenant's system table (public.items,
--      table_id = tid) in the gate's shape (IDEM#<key> / METADATA, type,
--      fingerprint, status, ttl, response); a live record answers at once;
--   2. the money: ledger.transfer() of sql/013 (both accounts under the
--      guard in the global lock order, two chained entries, the transfer);
--   3. the transfer.posted event in public.outbox;
--   4. the record, claimed and completed with the response, in one write.
-- The daemon does the same in 2 round trips (the claim and the money in
-- the first, the event, the saved response and COMMIT in the second) plus
-- its HTTP, JSON and events relay: ledger_transfer / pg_transfer_fn is
-- what the daemon costs on top of its SQL.
--
-- Applied by bench/ledger.sh and tests/db/test_ledger_proto.py on a
-- database migrated by `onceledger migrate`. Idempotent: drops and
-- recreates the schema ledger_proto (functions only; no tables).

DROP SCHEMA IF EXISTS ledger_proto CASCADE;
CREATE SCHEMA ledger_proto;

-- The answer a live idempotency record gives to a new request with its key.
CREATE FUNCTION ledger_proto.claim_decided(rec jsonb, fp text, OUT outcome text, OUT status integer, OUT body text)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN rec #>> '{fingerprint,S}' IS DISTINCT FROM fp THEN 'mismatch'
                WHEN rec #>> '{status,S}' IS DISTINCT FROM 'completed' THEN 'in_use'
                ELSE 'replay' END,
           CASE WHEN rec #>> '{fingerprint,S}' IS DISTINCT FROM fp THEN 422
                WHEN rec #>> '{status,S}' IS DISTINCT FROM 'completed' THEN 409
                ELSE (rec #>> '{response,M,status,N}')::integer END,
           CASE WHEN rec #>> '{fingerprint,S}' IS NOT DISTINCT FROM fp
                     AND rec #>> '{status,S}' = 'completed' THEN rec #>> '{response,M,body,S}' END
$$;

-- The completed record, as the gate writes it (src/idem/gate.c).
CREATE FUNCTION ledger_proto.record(k_pk text, fp text, expires bigint, status integer, body text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('PK', jsonb_build_object('S', k_pk), 'SK', '{"S":"METADATA"}'::jsonb,
                              'type', '{"S":"idempotency"}'::jsonb, 'fingerprint', jsonb_build_object('S', fp),
                              'status', '{"S":"completed"}'::jsonb, 'ttl', jsonb_build_object('N', expires::text),
                              'response', jsonb_build_object('M', jsonb_build_object(
                                  'status', jsonb_build_object('N', status::text),
                                  'headers', jsonb_build_object('M', jsonb_build_object('Content-Type', jsonb_build_object(
                                      'S', CASE WHEN status < 300 THEN 'application/json'
                                                ELSE 'application/problem+json' END))),
                                  'body', jsonb_build_object('S', body))))
$$;

-- The HTTP status of ledger.transfer()'s outcome code.
CREATE FUNCTION ledger_proto.status_of(code text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE code WHEN 'ok' THEN 201 WHEN 'duplicate' THEN 200 WHEN 'insufficient' THEN 402
                     WHEN 'not_found' THEN 404 WHEN 'exists' THEN 409 WHEN 'frozen' THEN 409 ELSE 422 END
$$;

CREATE FUNCTION ledger_proto.transfer(p_tid bigint, p_tenant text, p_key text, p_fp text, p_ttl integer,
                                      p_wait_ms integer, p_id text, p_from text, p_to text, p_amount bigint,
                                      p_currency text, p_description text, p_metadata text, p_params text,
                                      p_event_id text,
                                      OUT outcome text, OUT status integer, OUT body text, OUT expires bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_s bigint := floor(extract(epoch FROM clock_timestamp()))::bigint;
    k_pk text := 'IDEM#' || p_key;
    cur record;
    old_timeout text := current_setting('lock_timeout');
    code text;
    ignored text;
BEGIN
    -- 1. the claim (set_config and the lock by assignment: a simple
    -- expression; PERFORM would run the executor)
    expires := now_s + p_ttl;
    ignored := set_config('lock_timeout', p_wait_ms || 'ms', true);
    ignored := pg_advisory_xact_lock(hashtextextended(k_pk, p_tid))::text;
    ignored := set_config('lock_timeout', old_timeout, true);
    SELECT i.item, i.expires_at INTO cur
      FROM public.items i WHERE i.table_id = p_tid AND i.pk = k_pk AND i.sk = 'METADATA';
    IF FOUND AND (cur.expires_at IS NULL OR cur.expires_at > now_s) THEN
        SELECT d.outcome, d.status, d.body INTO outcome, status, body FROM ledger_proto.claim_decided(cur.item, p_fp) d;
        expires := cur.expires_at;
        RETURN;
    END IF;
    -- 2. the money
    SELECT t.code, t.doc INTO code, body
      FROM ledger.transfer(p_tenant, p_id, p_from, p_to, p_amount, p_currency, p_description, p_metadata, p_params) t;
    status := ledger_proto.status_of(code);
    -- 3. the event (the daemon's ev_outbox_add), only for a posted transfer
    IF code = 'ok' THEN
        INSERT INTO public.outbox (n, tenant, id, type, subject, time, data)
            VALUES (0, p_tenant, p_event_id, 'transfer.posted', p_id,
                    to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), body);
    END IF;
    -- 4. the record's one write (an expired record is taken over)
    INSERT INTO public.items AS i (table_id, pk, sk, item, expires_at)
        VALUES (p_tid, k_pk, 'METADATA', ledger_proto.record(k_pk, p_fp, expires, status, body), expires)
        ON CONFLICT (table_id, pk, sk) DO UPDATE SET item = EXCLUDED.item, expires_at = EXCLUDED.expires_at
        WHERE i.expires_at <= now_s;
    outcome := 'executed';
END;
$$;
