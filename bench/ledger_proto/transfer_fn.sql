-- bench/ledger_proto/transfer_fn.sql — variant (a) of issue #16's transfer:
-- the whole executed idempotent transfer in ONE server-side call, so ONE
-- round trip (docs/ledger-engine.md). Prototype, applied after schema.sql.
--
--   SELECT * FROM ledger_proto.transfer(tid, tenant, key, fp, ttl_s, wait_ms,
--            id, from, to, amount, currency, description, metadata, params,
--            event_id, client_id)
--
-- In one transaction (autocommit: the call is its own transaction):
--   1. the claim of the Idempotency-Key: an advisory lock on the key
--      (a duplicate in flight is waited for, then replayed) and a read of
--      the record, an item of the tenant's system table (public.items,
--      table_id = tid) in today's shape (IDEM#<key> / METADATA, type,
--      fingerprint, status, ttl, response): a live record is answered at
--      once (replay, mismatch) without writing anything;
--   2. the two legs in the global lock order (tenant, id): each one guarded
--      UPDATE ... WHERE <guard> RETURNING, which also advances seq and the
--      hash chain's head (@world has no row: nothing is locked for it);
--   3. the transfer row (its id is unique per tenant: client ids dedupe
--      forever), the two entries in one INSERT, the event in the outbox;
--   4. the record, completed with the response: its only write.
-- A refused transfer (402, 404, 409, 422) undoes its legs in the same call
-- and saves its problem with the claim, as the contract asks; nothing else
-- is written.
--
-- Returns outcome ('executed': status/body are the response, saved;
-- 'replay': the saved status/body; 'mismatch': the key was used with
-- another request (422); 'in_use': a record without a response (409)),
-- and the record's expiry (epoch seconds) for Idempotency-Expires. Errors
-- the daemon maps: 55P03 (the key's first request still running after
-- wait_ms: 409 idempotency_key_in_use with Retry-After, as today), 40001
-- (the accounts kept changing, or another route claimed the key with a
-- row meanwhile: retried, once).

SET search_path = ledger_proto, public;

-- An RFC 9457 problem document, compact, with the members of extra.
CREATE FUNCTION problem_doc(code text, status integer, title text, extra jsonb DEFAULT '{}') RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"type":"urn:onceledger:problem:' || code || '","title":' || to_json(title)::text || ',"status":' || status
           || ',"code":"' || code || '"'
           || coalesce((SELECT string_agg(',' || to_json(k)::text || ':' || v::text, '' ORDER BY k)
                        FROM jsonb_each(extra) AS x (k, v)), '')
           || '}'
$$;

-- The answer a live idempotency record gives to a new request with its key.
CREATE FUNCTION claim_decided(rec jsonb, fp text, OUT outcome text, OUT status integer, OUT body text)
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

-- The claimed record's content, as the gate writes it (src/idem/gate.c).
CREATE FUNCTION claim_record(k_pk text, fp text, expires bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('PK', jsonb_build_object('S', k_pk), 'SK', '{"S":"METADATA"}'::jsonb,
                              'type', '{"S":"idempotency"}'::jsonb, 'fingerprint', jsonb_build_object('S', fp),
                              'status', '{"S":"in_progress"}'::jsonb, 'ttl', jsonb_build_object('N', expires::text))
$$;

-- What the saved response adds to the record.
CREATE FUNCTION saved_response(status integer, body text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('status', '{"S":"completed"}'::jsonb,
                              'response', jsonb_build_object('M', jsonb_build_object(
                                  'status', jsonb_build_object('N', status::text),
                                  'headers', jsonb_build_object('M', jsonb_build_object('Content-Type', jsonb_build_object(
                                      'S', CASE WHEN status < 300 THEN 'application/json'
                                                ELSE 'application/problem+json' END))),
                                  'body', jsonb_build_object('S', body))))
$$;

-- The record's one write, at the end of the request's transaction: the
-- claimed record with its response, inserted (or over an expired record,
-- which the claim found, taken over). Nothing to write means another
-- claimer that did not take the advisory lock (a request of a route whose
-- gate claims with a row, with the same key) got there first: the whole
-- call fails with 40001 and the daemon retries it, which then answers from
-- that record.
CREATE FUNCTION save_record(p_tid bigint, k_pk text, p_fp text, expires bigint, now_s bigint, status integer,
                            body text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO public.items AS i (table_id, pk, sk, item, expires_at)
        VALUES (p_tid, k_pk, 'METADATA',
                ledger_proto.claim_record(k_pk, p_fp, expires) || ledger_proto.saved_response(status, body), expires)
        ON CONFLICT (table_id, pk, sk) DO UPDATE SET item = EXCLUDED.item, expires_at = EXCLUDED.expires_at
        WHERE i.expires_at <= now_s;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'the idempotency key was claimed meanwhile; retry';
    END IF;
END;
$$;

-- One entry of a transfer document ("seq" and "balance_after" null for
-- @world and for a hot merchant's inbox credit).
CREATE FUNCTION entry_json(account text, seq bigint, amount bigint, balance_after bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"account":"' || account || '","seq":' || coalesce(seq::text, 'null') || ',"amount":' || amount
           || ',"balance_after":' || coalesce(balance_after::text, 'null') || '}'
$$;

-- The transfer document of the API (§4), as the daemon writes it.
CREATE FUNCTION transfer_json(id text, from_ref text, to_ref text, amount bigint, currency text, description text,
                              metadata text, hold_id text, order_id text, created_at timestamptz, entries text)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":"' || id || '","from":"' || from_ref || '","to":"' || to_ref || '","amount":' || amount
           || ',"currency":"' || currency || '","status":"posted","description":'
           || coalesce(to_json(description)::text, 'null') || ',"metadata":' || metadata
           || ',"hold_id":' || coalesce(to_json(hold_id)::text, 'null')
           || ',"order_id":' || coalesce(to_json(order_id)::text, 'null')
           || ',"created_at":"' || ledger_proto.rfc3339(created_at) || '","entries":[' || entries || ']}'
$$;

-- The document of a stored transfer (a reused client id with identical
-- parameters answers 200 with it).
CREATE FUNCTION stored_transfer_json(p_tenant text, p_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT ledger_proto.transfer_json(t.id, coalesce(fa.id, '@world:' || t.currency), coalesce(ta.id, '@world:' || t.currency),
                         t.amount, t.currency, t.description, t.metadata, t.hold_id, t.order_id, t.created_at,
                         ledger_proto.entry_json(coalesce(fa.id, '@world:' || t.currency), fe.seq, -t.amount, fe.balance_after)
                         || ',' ||
                         ledger_proto.entry_json(coalesce(ta.id, '@world:' || t.currency), te.seq, t.amount, te.balance_after))
      FROM ledger_proto.transfers t
      LEFT JOIN ledger_proto.accounts fa ON fa.aid = t.from_account
      LEFT JOIN ledger_proto.accounts ta ON ta.aid = t.to_account
      LEFT JOIN ledger_proto.entries fe ON fe.account = t.from_account AND fe.transfer_id = t.id AND fe.amount < 0
      LEFT JOIN ledger_proto.entries te ON te.account = t.to_account AND te.transfer_id = t.id AND te.amount > 0
     WHERE t.tenant = p_tenant AND t.id = p_id
$$;

-- Why a transfer was refused (the failure path only). Reads both accounts
-- locked, in the global order (the caller holds at most the lower one,
-- so this cannot deadlock), after the caller undid its own legs: the
-- answer is exact. The first of: 409 transfer_exists (or 200 with the
-- stored transfer), 404 account_not_found (from before to), 422
-- currency_mismatch, 409 account_frozen, 402 insufficient_funds, 422
-- amount_overflow. status 0: nothing is wrong (a race the caller retries).
CREATE FUNCTION refused(p_tenant text, p_id text, p_client_id boolean, p_params text, p_from text, p_to text,
                        p_currency text, p_amount bigint, OUT status integer, OUT body text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    have text;
    f ledger_proto.accounts;
    t ledger_proto.accounts;
    fw boolean := left(p_from, 7) = '@world:';
    tw boolean := left(p_to, 7) = '@world:';
BEGIN
    IF p_client_id THEN
        SELECT x.params INTO have FROM ledger_proto.transfers x WHERE x.tenant = p_tenant AND x.id = p_id;
        IF FOUND THEN
            IF have = p_params THEN
                status := 200;
                body := ledger_proto.stored_transfer_json(p_tenant, p_id);
            ELSE
                status := 409;
                body := ledger_proto.problem_doc('transfer_exists', 409, 'A transfer with this id exists with other parameters',
                                    jsonb_build_object('transfer', p_id));
            END IF;
            RETURN;
        END IF;
    END IF;
    -- Lock in the global order; absent rows simply stay NULL.
    PERFORM 1 FROM ledger_proto.accounts a WHERE a.tenant = p_tenant AND a.id IN (p_from, p_to) ORDER BY a.id FOR NO KEY UPDATE;
    IF NOT fw THEN
        SELECT * INTO f FROM ledger_proto.accounts a WHERE a.tenant = p_tenant AND a.id = p_from;
        IF NOT FOUND THEN
            status := 404;
            body := ledger_proto.problem_doc('account_not_found', 404, 'Account not found', jsonb_build_object('account', p_from));
            RETURN;
        END IF;
    END IF;
    IF NOT tw THEN
        SELECT * INTO t FROM ledger_proto.accounts a WHERE a.tenant = p_tenant AND a.id = p_to;
        IF NOT FOUND THEN
            status := 404;
            body := ledger_proto.problem_doc('account_not_found', 404, 'Account not found', jsonb_build_object('account', p_to));
            RETURN;
        END IF;
    END IF;
    IF (NOT fw AND f.currency <> p_currency) OR (NOT tw AND t.currency <> p_currency) THEN
        status := 422;
        body := ledger_proto.problem_doc('currency_mismatch', 422, 'Currency mismatch',
                            jsonb_build_object('account', CASE WHEN NOT fw AND f.currency <> p_currency THEN p_from
                                                               ELSE p_to END));
    ELSIF NOT fw AND f.status = 'frozen' THEN
        status := 409;
        body := ledger_proto.problem_doc('account_frozen', 409, 'Account frozen', jsonb_build_object('account', p_from));
    ELSIF NOT fw AND f.posted - f.pending < p_amount - f.overdraft_limit THEN
        status := 402;
        body := ledger_proto.problem_doc('insufficient_funds', 402, 'Insufficient funds',
                            jsonb_build_object('account', p_from, 'available', f.posted - f.pending,
                                               'overdraft_limit', f.overdraft_limit));
    ELSIF NOT tw AND t.posted > 9223372036854775807 - p_amount - t.inbox_granted THEN
        status := 422;
        body := ledger_proto.problem_doc('amount_overflow', 422, 'The balance would overflow', jsonb_build_object('account', p_to));
    ELSE
        status := 0;
    END IF;
END;
$$;

CREATE FUNCTION transfer(p_tid bigint, p_tenant text, p_key text, p_fp text, p_ttl integer, p_wait_ms integer,
                         p_id text, p_from text, p_to text, p_amount bigint, p_currency text, p_description text,
                         p_metadata text, p_params text, p_event_id text, p_client_id boolean,
                         OUT outcome text, OUT status integer, OUT body text, OUT expires bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    now_s bigint := floor(extract(epoch FROM now_at))::bigint;
    k_pk text := 'IDEM#' || p_key;
    cur record;
    old_timeout text;
    ignored text;
    fw boolean := left(p_from, 7) = '@world:';
    tw boolean := left(p_to, 7) = '@world:';
    from_first boolean := p_from COLLATE "C" < p_to COLLATE "C";
    ok boolean := true;
    done_f boolean := false;
    done_t boolean := false;
    f_aid bigint; f_seq bigint; f_posted bigint; f_at timestamptz; f_head bytea; f_prev bytea;
    t_aid bigint; t_seq bigint; t_posted bigint; t_at timestamptz; t_head bytea; t_prev bytea;
BEGIN
    -- The daemon validated the request; these are what the tables no longer
    -- check (schema.sql), at the cost of a comparison.
    IF p_amount IS NULL OR p_amount <= 0 OR p_from = p_to OR (fw AND tw) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'transfer: invalid amount or accounts';
    END IF;
    -- 1. The claim: a transaction-level advisory lock on the key (64-bit
    -- hash of the key, seeded with the table id), then a read of the
    -- record. A request with the same key in flight holds the lock: this
    -- one waits (at most wait_ms), then reads its committed record and
    -- replays it. A live record answers at once; only the lock is taken,
    -- no row is locked or written. The record itself is written once, with
    -- the response, at the end (4.): one tuple instead of an insert and an
    -- update. (set_config and the lock by assignment: a simple expression;
    -- PERFORM would run the executor.)
    expires := now_s + p_ttl;
    old_timeout := current_setting('lock_timeout');
    ignored := set_config('lock_timeout', p_wait_ms || 'ms', true);
    ignored := pg_advisory_xact_lock(hashtextextended(k_pk, p_tid))::text;
    ignored := set_config('lock_timeout', old_timeout, true);
    SELECT i.item, i.expires_at INTO cur
      FROM public.items i WHERE i.table_id = p_tid AND i.pk = k_pk AND i.sk = 'METADATA';
    IF FOUND AND (cur.expires_at IS NULL OR cur.expires_at > now_s) THEN
        SELECT d.outcome, d.status, d.body INTO outcome, status, body
          FROM ledger_proto.claim_decided(cur.item, p_fp) d;
        expires := cur.expires_at;
        RETURN;
    END IF;

    <<retry>>
    FOR attempt IN 1..3 LOOP
        -- 2. The legs, in the global lock order; each is the guard itself.
        ok := true;
        IF from_first THEN
            IF NOT fw THEN
                UPDATE ledger_proto.accounts a
                   SET posted = a.posted - p_amount, seq = a.seq + 1, version = a.version + 1, prev_head = a.head,
                       last_at = ledger_proto.next_at(a.last_at, now_at),
                       head = ledger_proto.entry_hash(a.head, a.id, -p_amount, a.posted - p_amount, ledger_proto.next_at(a.last_at, now_at),
                                         a.seq + 1, p_id)
                 WHERE a.tenant = p_tenant AND a.id = p_from AND a.currency = p_currency AND a.status = 'active'
                   AND a.posted - a.pending >= p_amount - a.overdraft_limit
                RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head
                     INTO f_aid, f_seq, f_posted, f_at, f_head, f_prev;
                ok := FOUND;
                done_f := ok;
            END IF;
            IF ok AND NOT tw THEN
                UPDATE ledger_proto.accounts a
                   SET posted = a.posted + p_amount, seq = a.seq + 1, version = a.version + 1, prev_head = a.head,
                       last_at = ledger_proto.next_at(a.last_at, now_at),
                       head = ledger_proto.entry_hash(a.head, a.id, p_amount, a.posted + p_amount, ledger_proto.next_at(a.last_at, now_at),
                                         a.seq + 1, p_id)
                 WHERE a.tenant = p_tenant AND a.id = p_to AND a.currency = p_currency
                   AND a.posted <= 9223372036854775807 - p_amount - a.inbox_granted
                RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head
                     INTO t_aid, t_seq, t_posted, t_at, t_head, t_prev;
                ok := FOUND;
                done_t := ok;
            END IF;
        ELSE
            IF NOT tw THEN
                UPDATE ledger_proto.accounts a
                   SET posted = a.posted + p_amount, seq = a.seq + 1, version = a.version + 1, prev_head = a.head,
                       last_at = ledger_proto.next_at(a.last_at, now_at),
                       head = ledger_proto.entry_hash(a.head, a.id, p_amount, a.posted + p_amount, ledger_proto.next_at(a.last_at, now_at),
                                         a.seq + 1, p_id)
                 WHERE a.tenant = p_tenant AND a.id = p_to AND a.currency = p_currency
                   AND a.posted <= 9223372036854775807 - p_amount - a.inbox_granted
                RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head
                     INTO t_aid, t_seq, t_posted, t_at, t_head, t_prev;
                ok := FOUND;
                done_t := ok;
            END IF;
            IF ok AND NOT fw THEN
                UPDATE ledger_proto.accounts a
                   SET posted = a.posted - p_amount, seq = a.seq + 1, version = a.version + 1, prev_head = a.head,
                       last_at = ledger_proto.next_at(a.last_at, now_at),
                       head = ledger_proto.entry_hash(a.head, a.id, -p_amount, a.posted - p_amount, ledger_proto.next_at(a.last_at, now_at),
                                         a.seq + 1, p_id)
                 WHERE a.tenant = p_tenant AND a.id = p_from AND a.currency = p_currency AND a.status = 'active'
                   AND a.posted - a.pending >= p_amount - a.overdraft_limit
                RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head
                     INTO f_aid, f_seq, f_posted, f_at, f_head, f_prev;
                ok := FOUND;
                done_f := ok;
            END IF;
        END IF;

        -- 3. The transfer row: its id is unique per tenant.
        IF ok THEN
            INSERT INTO ledger_proto.transfers (tenant, id, from_account, to_account, amount, currency, description, metadata,
                                   params, created_at)
                VALUES (p_tenant, p_id, f_aid, t_aid, p_amount, p_currency, p_description, p_metadata, p_params, now_at)
                ON CONFLICT (tenant, id) DO NOTHING;
            ok := FOUND;
        END IF;
        EXIT retry WHEN ok;

        -- Refused: undo the legs this call made (the failure path only;
        -- no entry was written yet), then find out why, on locked rows.
        IF done_f THEN
            UPDATE ledger_proto.accounts a SET posted = a.posted + p_amount, seq = a.seq - 1, version = a.version - 1,
                                  head = a.prev_head
             WHERE a.aid = f_aid;
            done_f := false;
        END IF;
        IF done_t THEN
            UPDATE ledger_proto.accounts a SET posted = a.posted - p_amount, seq = a.seq - 1, version = a.version - 1,
                                  head = a.prev_head
             WHERE a.aid = t_aid;
            done_t := false;
        END IF;
        SELECT r.status, r.body INTO status, body
          FROM ledger_proto.refused(p_tenant, p_id, p_client_id, p_params, p_from, p_to, p_currency, p_amount) r;
        IF status <> 0 THEN
            outcome := 'executed';
            PERFORM ledger_proto.save_record(p_tid, k_pk, p_fp, expires, now_s, status, body);
            RETURN;
        END IF;
        -- Nothing wrong any more (the state moved between the guard and
        -- the check): try again.
    END LOOP;
    IF NOT ok THEN
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'transfer: the accounts kept changing; retry';
    END IF;

    -- The entries of the real accounts, in one statement.
    INSERT INTO ledger_proto.entries (account, seq, transfer_id, amount, balance_after, posted_at, hash, prev_hash)
    SELECT v.* FROM (VALUES (f_aid, f_seq, p_id, -p_amount, f_posted, f_at, f_head, f_prev),
                            (t_aid, t_seq, p_id, p_amount, t_posted, t_at, t_head, t_prev)) AS v
     WHERE v.column1 IS NOT NULL;

    status := 201;
    body := ledger_proto.transfer_json(p_id, p_from, p_to, p_amount, p_currency, p_description, p_metadata, NULL, NULL, now_at,
                          ledger_proto.entry_json(p_from, f_seq, -p_amount, f_posted) || ',' ||
                          ledger_proto.entry_json(p_to, t_seq, p_amount, t_posted));
    -- The event, the first (n = 0) of this transaction.
    INSERT INTO public.outbox (n, tenant, id, type, subject, time, data)
        VALUES (0, p_tenant, p_event_id, 'transfer.posted', p_id, ledger_proto.rfc3339(now_at), body);
    -- 4. The record, claimed and with its response, in one write.
    INSERT INTO public.items AS i (table_id, pk, sk, item, expires_at)
        VALUES (p_tid, k_pk, 'METADATA',
                ledger_proto.claim_record(k_pk, p_fp, expires) || ledger_proto.saved_response(status, body), expires)
        ON CONFLICT (table_id, pk, sk) DO UPDATE SET item = EXCLUDED.item, expires_at = EXCLUDED.expires_at
        WHERE i.expires_at <= now_s;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'transfer: the idempotency key was claimed meanwhile; retry';
    END IF;
    outcome := 'executed';
END;
$$;

-- One transfer of a batch: the legs in the global lock order, the transfer
-- row and the entries, exactly as transfer() does inline. A refused
-- transfer undoes its own legs, finds out why, and raises OLB01 with the
-- status as MESSAGE and the problem (or the stored transfer) as DETAIL:
-- the batch's exception block then rolls back every earlier transfer of
-- the batch. Returns the two entries' seq and balance_after (NULL for
-- @world).
CREATE FUNCTION post(p_tenant text, p_id text, p_from text, p_to text, p_amount bigint, p_currency text,
                     p_params text, p_client_id boolean, now_at timestamptz,
                     OUT f_seq bigint, OUT f_posted bigint, OUT t_seq bigint, OUT t_posted bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    fw boolean := left(p_from, 7) = '@world:';
    tw boolean := left(p_to, 7) = '@world:';
    ok boolean := true;
    st integer;
    doc text;
    f_aid bigint; f_at timestamptz; f_head bytea; f_prev bytea;
    t_aid bigint; t_at timestamptz; t_head bytea; t_prev bytea;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 OR p_from = p_to OR (fw AND tw) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'post: invalid amount or accounts';
    END IF;
    FOR pass IN 1..2 LOOP
        -- pass 1 takes the lower id of the two, pass 2 the other
        IF (pass = 1) = (p_from COLLATE "C" < p_to COLLATE "C") THEN
            IF ok AND NOT fw THEN
                UPDATE ledger_proto.accounts a
                   SET posted = a.posted - p_amount, seq = a.seq + 1, version = a.version + 1, prev_head = a.head,
                       last_at = ledger_proto.next_at(a.last_at, now_at),
                       head = ledger_proto.entry_hash(a.head, a.id, -p_amount, a.posted - p_amount, ledger_proto.next_at(a.last_at, now_at),
                                         a.seq + 1, p_id)
                 WHERE a.tenant = p_tenant AND a.id = p_from AND a.currency = p_currency AND a.status = 'active'
                   AND a.posted - a.pending >= p_amount - a.overdraft_limit
                RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head
                     INTO f_aid, f_seq, f_posted, f_at, f_head, f_prev;
                ok := FOUND;
            END IF;
        ELSIF ok AND NOT tw THEN
            UPDATE ledger_proto.accounts a
               SET posted = a.posted + p_amount, seq = a.seq + 1, version = a.version + 1, prev_head = a.head,
                   last_at = ledger_proto.next_at(a.last_at, now_at),
                   head = ledger_proto.entry_hash(a.head, a.id, p_amount, a.posted + p_amount, ledger_proto.next_at(a.last_at, now_at),
                                     a.seq + 1, p_id)
             WHERE a.tenant = p_tenant AND a.id = p_to AND a.currency = p_currency
               AND a.posted <= 9223372036854775807 - p_amount - a.inbox_granted
            RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head
                 INTO t_aid, t_seq, t_posted, t_at, t_head, t_prev;
            ok := FOUND;
        END IF;
    END LOOP;
    IF ok THEN
        INSERT INTO ledger_proto.transfers (tenant, id, from_account, to_account, amount, currency, metadata, params, created_at)
            VALUES (p_tenant, p_id, f_aid, t_aid, p_amount, p_currency, '{}', p_params, now_at)
            ON CONFLICT (tenant, id) DO NOTHING;
        ok := FOUND;
    END IF;
    IF NOT ok THEN
        IF f_aid IS NOT NULL THEN
            UPDATE ledger_proto.accounts a SET posted = a.posted + p_amount, seq = a.seq - 1, version = a.version - 1,
                                  head = a.prev_head WHERE a.aid = f_aid;
        END IF;
        IF t_aid IS NOT NULL THEN
            UPDATE ledger_proto.accounts a SET posted = a.posted - p_amount, seq = a.seq - 1, version = a.version - 1,
                                  head = a.prev_head WHERE a.aid = t_aid;
        END IF;
        SELECT r.status, r.body INTO st, doc
          FROM ledger_proto.refused(p_tenant, p_id, p_client_id, p_params, p_from, p_to, p_currency, p_amount) r;
        IF st = 0 THEN
            RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'post: the accounts kept changing; retry';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'OLB01', MESSAGE = st::text, DETAIL = doc;
    END IF;
    INSERT INTO ledger_proto.entries (account, seq, transfer_id, amount, balance_after, posted_at, hash, prev_hash)
    SELECT v.* FROM (VALUES (f_aid, f_seq, p_id, -p_amount, f_posted, f_at, f_head, f_prev),
                            (t_aid, t_seq, p_id, p_amount, t_posted, t_at, t_head, t_prev)) AS v
     WHERE v.column1 IS NOT NULL;
END;
$$;

-- The claim of transfer(), for the other operations: the advisory lock
-- and the read. outcome 'claimed': go on, and save with save_record().
CREATE FUNCTION claim(p_tid bigint, k_pk text, p_fp text, p_ttl integer, p_wait_ms integer, now_s bigint,
                      OUT outcome text, OUT status integer, OUT body text, OUT expires bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    cur record;
    old_timeout text := current_setting('lock_timeout');
    ignored text;
BEGIN
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
    outcome := 'claimed';
    expires := now_s + p_ttl;
END;
$$;

-- POST /v1/transfers/batch: all or nothing. Its accounts are locked first,
-- in the global order. The transfers run one after
-- the other in ONE subtransaction (the exception block: one per batch,
-- not one per transfer); the first refused one rolls all of them back, and
-- its problem, with "index" (0-based), is saved with the claim.
CREATE FUNCTION transfer_batch(p_tid bigint, p_tenant text, p_key text, p_fp text, p_ttl integer, p_wait_ms integer,
                               p_ids text[], p_froms text[], p_tos text[], p_amounts bigint[], p_currencies text[],
                               p_params text[], p_event_ids text[], p_client_ids boolean[],
                               OUT outcome text, OUT status integer, OUT body text, OUT expires bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    k_pk text := 'IDEM#' || p_key;
    n integer := cardinality(p_ids);
    i integer;
    r record;
    docs text[] := '{}';
    doc text;
    msg text;
    detail text;
BEGIN
    SELECT * INTO outcome, status, body, expires
      FROM ledger_proto.claim(p_tid, k_pk, p_fp, p_ttl, p_wait_ms, floor(extract(epoch FROM now_at))::bigint);
    IF outcome <> 'claimed' THEN
        RETURN;
    END IF;
    BEGIN
        -- Every account of the batch, locked in the global order first: its
        -- transfers then take them in any order without risking a deadlock
        -- with another batch.
        PERFORM 1 FROM ledger_proto.accounts a WHERE a.tenant = p_tenant AND a.id = ANY (p_froms || p_tos)
          ORDER BY a.id FOR NO KEY UPDATE;
        FOR j IN 1..n LOOP
            i := j;
            SELECT * INTO r FROM ledger_proto.post(p_tenant, p_ids[j], p_froms[j], p_tos[j], p_amounts[j], p_currencies[j],
                                      p_params[j], p_client_ids[j], now_at);
            doc := ledger_proto.transfer_json(p_ids[j], p_froms[j], p_tos[j], p_amounts[j], p_currencies[j], NULL, '{}', NULL,
                                 NULL, now_at,
                                 ledger_proto.entry_json(p_froms[j], r.f_seq, -p_amounts[j], r.f_posted) || ','
                                 || ledger_proto.entry_json(p_tos[j], r.t_seq, p_amounts[j], r.t_posted));
            docs := docs || doc;
            INSERT INTO public.outbox (n, tenant, id, type, subject, time, data)
                VALUES (j - 1, p_tenant, p_event_ids[j], 'transfer.posted', p_ids[j], ledger_proto.rfc3339(now_at), doc);
        END LOOP;
        status := 201;
        body := '{"transfers":[' || array_to_string(docs, ',') || ']}';
    EXCEPTION WHEN SQLSTATE 'OLB01' THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
        status := msg::integer;
        -- the problem with its index (a stored transfer reused with the
        -- same parameters is not a failure in a batch: not modelled here)
        body := left(detail, length(detail) - 1) || ',"index":' || (i - 1) || '}';
    END;
    PERFORM ledger_proto.save_record(p_tid, k_pk, p_fp, expires, floor(extract(epoch FROM now_at))::bigint, status,
                                     body);
    outcome := 'executed';
END;
$$;
