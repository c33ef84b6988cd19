-- 013_ledger_transfers: accounts and the money of transfers, credits,
-- debits and batches on the tables of 012_ledger (issue #16,
-- docs/ledger-engine.md, docs/ledger.md).
--
-- Each money operation is ONE call, run by the daemon in the request's
-- transaction (the Idempotency-Key claim rides on the same round trip, the
-- saved response, the event and COMMIT follow in the next one): these
-- functions do not claim keys. A refusal (402, 404, 409, 422) is RETURNED
-- as an outcome, never raised, so the request's transaction goes on and
-- saves it; only what cannot happen raises.
--
-- Outcomes (code):
--   ok         doc is the new object (its API document)
--   duplicate  the client id exists with identical parameters: doc is the
--              stored transfer (200)
--   exists     the id exists with other parameters: doc {"transfer": id}
--   not_found, currency_mismatch, frozen, insufficient, overflow:
--              doc holds the problem's members ({"account": ...}, ...)
--
-- Every name in a body is qualified (no search_path on the functions).

-- The API object of an account (docs/api.md §3).
CREATE FUNCTION ledger.account_json(a ledger.accounts) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":"' || a.id || '","currency":"' || a.currency || '","owner":'
           || coalesce(to_json(a.owner)::text, 'null') || ',"status":"' || a.status
           || '","balance":{"posted":' || a.posted || ',"pending":' || a.pending || ',"available":'
           || (a.posted - a.pending) || '},"overdraft_limit":' || a.overdraft_limit || ',"version":' || a.version
           || ',"metadata":' || a.metadata || ',"created_at":"' || ledger.rfc3339(a.created_at) || '"}'
$$;

-- Freeze or unfreeze (p_status 'frozen' or 'active'). changed: the status
-- changed (version + 1; the caller writes the event); false with the
-- account as it is when it was in that state already; doc NULL: no such
-- account.
CREATE FUNCTION ledger.account_set_status(p_tenant text, p_id text, p_status text,
                                          OUT changed boolean, OUT doc text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    a ledger.accounts;
BEGIN
    UPDATE ledger.accounts x SET status = p_status, version = x.version + 1
     WHERE x.tenant = p_tenant AND x.id = p_id AND x.status <> p_status
    RETURNING x.* INTO a;
    changed := FOUND;
    IF NOT changed THEN
        SELECT x.* INTO a FROM ledger.accounts x WHERE x.tenant = p_tenant AND x.id = p_id;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    doc := ledger.account_json(a);
END;
$$;

-- The hook of a hot account's inbox (docs/orders.md): posts the credits
-- waiting in the inbox of account p_aid into it and returns how many. A
-- debit refused for insufficient funds calls it once and tries again (inbox
-- money is never refused), and GET /v1/accounts/{id} calls it before
-- reading (the balance includes every committed credit). The inbox's
-- migration replaces this body; until then there is nothing to post.
CREATE FUNCTION ledger.inbox_post(p_aid bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN 0;
END;
$$;

-- The other hook (docs/orders.md): a direct credit refused by its overflow
-- guard while the account has room handed to its inbox shards
-- (inbox_granted) may fit once that room is taken back. Posts the inbox,
-- revokes the room and returns true when there was some (the credit is
-- then tried again). The inbox's migration replaces this body.
CREATE FUNCTION ledger.inbox_revoke(p_aid bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN false;
END;
$$;

-- GET /v1/accounts/{id}: the account's document (NULL: no such account),
-- its inbox posted first.
CREATE FUNCTION ledger.account_read(p_tenant text, p_id text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    a ledger.accounts;
    ignored bigint;
BEGIN
    SELECT x.* INTO a FROM ledger.accounts x WHERE x.tenant = p_tenant AND x.id = p_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM ledger.inbox i WHERE i.account = a.aid) THEN
        ignored := ledger.inbox_post(a.aid);
        SELECT x.* INTO a FROM ledger.accounts x WHERE x.aid = a.aid;
    END IF;
    RETURN ledger.account_json(a);
END;
$$;

-- One entry of a transfer document ("seq" and "balance_after" null for
-- @world, and for a credit waiting in a hot account's inbox).
CREATE FUNCTION ledger.entry_json(account text, seq bigint, amount bigint, balance_after bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"account":"' || account || '","seq":' || coalesce(seq::text, 'null') || ',"amount":' || amount
           || ',"balance_after":' || coalesce(balance_after::text, 'null') || '}'
$$;

-- The API document of a transfer (docs/api.md §4).
CREATE FUNCTION ledger.transfer_json(id text, from_ref text, to_ref text, amount bigint, currency text,
                                     description text, metadata text, hold_id text, order_id text,
                                     created_at timestamptz, entries text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":"' || id || '","from":"' || from_ref || '","to":"' || to_ref || '","amount":' || amount
           || ',"currency":"' || currency || '","status":"posted","description":'
           || coalesce(to_json(description)::text, 'null') || ',"metadata":' || metadata
           || ',"hold_id":' || coalesce(to_json(hold_id)::text, 'null')
           || ',"order_id":' || coalesce(to_json(order_id)::text, 'null')
           || ',"created_at":"' || ledger.rfc3339(created_at) || '","entries":[' || entries || ']}'
$$;

-- The document of a stored transfer (GET /v1/transfers/{id}, a reused id
-- with identical parameters): its entries by primary key.
CREATE FUNCTION ledger.stored_transfer_json(p_tenant text, p_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT ledger.transfer_json(t.id, coalesce(fa.id, '@world:' || t.currency), coalesce(ta.id, '@world:' || t.currency),
                                t.amount, t.currency, t.description, t.metadata, t.hold_id, t.order_id, t.created_at,
                                ledger.entry_json(coalesce(fa.id, '@world:' || t.currency), t.from_seq, -t.amount,
                                                  fe.balance_after)
                                || ',' ||
                                ledger.entry_json(coalesce(ta.id, '@world:' || t.currency), t.to_seq, t.amount,
                                                  te.balance_after))
      FROM ledger.transfers t
      LEFT JOIN ledger.accounts fa ON fa.aid = t.from_account
      LEFT JOIN ledger.accounts ta ON ta.aid = t.to_account
      LEFT JOIN ledger.entries fe ON fe.account = t.from_account AND fe.seq = t.from_seq
      LEFT JOIN ledger.entries te ON te.account = t.to_account AND te.seq = t.to_seq
     WHERE t.tenant = p_tenant AND t.id = p_id
$$;

-- Why a transfer was refused: the failure path only, after the caller undid
-- its own legs. Reads both accounts locked in the global order (the caller
-- holds at most rows that come first in it: no deadlock), so the answer is
-- exact. The first of (docs/ledger.md): the id taken (duplicate / exists),
-- 404 from before to, 422 currency_mismatch, 409 account_frozen (from),
-- 402 insufficient_funds (from), 422 amount_overflow (to). code NULL:
-- nothing is wrong (the state moved; the caller tries again).
-- from/to NULL = @world; currency NULL = the account's (credit, debit).
CREATE FUNCTION ledger.refused(p_tenant text, p_id text, p_params text, p_from text, p_to text, p_currency text,
                               p_amount bigint, OUT code text, OUT doc text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    have text;
    f ledger.accounts;
    t ledger.accounts;
BEGIN
    SELECT x.params INTO have FROM ledger.transfers x WHERE x.tenant = p_tenant AND x.id = p_id;
    IF FOUND THEN
        IF have = p_params THEN
            code := 'duplicate';
            doc := ledger.stored_transfer_json(p_tenant, p_id);
        ELSE
            code := 'exists';
            doc := json_build_object('transfer', p_id)::text;
        END IF;
        RETURN;
    END IF;
    PERFORM 1 FROM ledger.accounts a WHERE a.tenant = p_tenant AND a.id IN (p_from, p_to)
      ORDER BY a.id FOR NO KEY UPDATE;
    IF p_from IS NOT NULL THEN
        SELECT a.* INTO f FROM ledger.accounts a WHERE a.tenant = p_tenant AND a.id = p_from;
        IF NOT FOUND THEN
            code := 'not_found';
            doc := json_build_object('account', p_from)::text;
            RETURN;
        END IF;
    END IF;
    IF p_to IS NOT NULL THEN
        SELECT a.* INTO t FROM ledger.accounts a WHERE a.tenant = p_tenant AND a.id = p_to;
        IF NOT FOUND THEN
            code := 'not_found';
            doc := json_build_object('account', p_to)::text;
            RETURN;
        END IF;
    END IF;
    IF p_from IS NOT NULL AND f.currency <> coalesce(p_currency, f.currency) THEN
        code := 'currency_mismatch';
        doc := json_build_object('account', p_from, 'account_currency', f.currency)::text;
    ELSIF p_to IS NOT NULL AND t.currency <> coalesce(p_currency, t.currency) THEN
        code := 'currency_mismatch';
        doc := json_build_object('account', p_to, 'account_currency', t.currency)::text;
    ELSIF p_from IS NOT NULL AND f.status <> 'active' THEN
        code := 'frozen';
        doc := json_build_object('account', p_from)::text;
    ELSIF p_from IS NOT NULL AND f.posted - f.pending < p_amount - f.overdraft_limit THEN
        code := 'insufficient';
        doc := json_build_object('account', p_from, 'available', f.posted - f.pending,
                                 'overdraft_limit', f.overdraft_limit)::text;
    ELSIF p_to IS NOT NULL AND t.posted > 9223372036854775807 - p_amount - t.inbox_granted THEN
        code := 'overflow';
        doc := json_build_object('account', p_to)::text;
    END IF;
END;
$$;

-- One transfer: from -> to (NULL = @world:<currency>; currency NULL = the
-- account's, for credits and debits). The legs in the global lock order
-- (tenant, id), each the guarded UPDATE itself, which also advances seq
-- and the SHA-256 chain head; the transfer row (its id is unique per
-- tenant: client ids dedupe forever); the entries; the document. A refused
-- leg (no row) undoes what this call did and asks refused() why. p_now:
-- the batch's time (NULL: the clock).
CREATE FUNCTION ledger.transfer(p_tenant text, p_id text, p_from text, p_to text, p_amount bigint, p_currency text,
                                p_description text, p_metadata text, p_params text, p_now timestamptz DEFAULT NULL,
                                OUT code text, OUT doc text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := coalesce(p_now, clock_timestamp());
    from_first boolean := p_from IS NOT NULL AND (p_to IS NULL OR p_from COLLATE "C" < p_to COLLATE "C");
    ok boolean := false;
    posted_inbox boolean := false;
    revoked boolean := false;
    cur text;
    f_ref text;
    t_ref text;
    f_aid bigint; f_seq bigint; f_posted bigint; f_at timestamptz; f_head bytea; f_prev bytea; f_cur text;
    t_aid bigint; t_seq bigint; t_posted bigint; t_at timestamptz; t_head bytea; t_prev bytea; t_cur text;
BEGIN
    -- The daemon validated the request; what the tables do not check.
    IF p_amount IS NULL OR p_amount <= 0 OR (p_from IS NULL AND p_to IS NULL) OR p_from = p_to
       OR (p_currency IS NULL AND p_from IS NOT NULL AND p_to IS NOT NULL) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger.transfer: invalid amount, accounts or currency';
    END IF;
    -- 1 + an inbox posted for the debit + the room revoked for the credit
    -- + one more for a state that moved meanwhile.
    FOR attempt IN 1..4 LOOP
        ok := true;
        f_aid := NULL;
        t_aid := NULL;
        FOR pass IN 1..2 LOOP
            IF (pass = 1) = from_first THEN
                IF ok AND p_from IS NOT NULL THEN
                    UPDATE ledger.accounts a
                       SET posted = a.posted - p_amount, seq = a.seq + 1, version = a.version + 1, prev_head = a.head,
                           last_at = ledger.next_at(a.last_at, now_at),
                           head = ledger.entry_hash(a.head, a.id, -p_amount, a.posted - p_amount,
                                                    ledger.next_at(a.last_at, now_at), a.seq + 1, p_id)
                     WHERE a.tenant = p_tenant AND a.id = p_from AND a.currency = coalesce(p_currency, a.currency)
                       AND a.status = 'active' AND a.posted - a.pending >= p_amount - a.overdraft_limit
                    RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head, a.currency
                         INTO f_aid, f_seq, f_posted, f_at, f_head, f_prev, f_cur;
                    ok := FOUND;
                END IF;
            ELSIF ok AND p_to IS NOT NULL THEN
                -- A frozen account accepts credits; the room granted to the
                -- inbox shards is not the direct credit's.
                UPDATE ledger.accounts a
                   SET posted = a.posted + p_amount, seq = a.seq + 1, version = a.version + 1, prev_head = a.head,
                       last_at = ledger.next_at(a.last_at, now_at),
                       head = ledger.entry_hash(a.head, a.id, p_amount, a.posted + p_amount,
                                                ledger.next_at(a.last_at, now_at), a.seq + 1, p_id)
                 WHERE a.tenant = p_tenant AND a.id = p_to AND a.currency = coalesce(p_currency, a.currency)
                   AND a.posted <= 9223372036854775807 - p_amount - a.inbox_granted
                RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head, a.currency
                     INTO t_aid, t_seq, t_posted, t_at, t_head, t_prev, t_cur;
                ok := FOUND;
            END IF;
        END LOOP;
        cur := coalesce(p_currency, f_cur, t_cur);
        IF ok THEN
            INSERT INTO ledger.transfers (tenant, id, from_account, to_account, from_seq, to_seq, amount, currency,
                                          description, metadata, params, created_at)
                VALUES (p_tenant, p_id, f_aid, t_aid, f_seq, t_seq, p_amount, cur, p_description, p_metadata,
                        p_params, now_at)
                ON CONFLICT (tenant, id) DO NOTHING;
            ok := FOUND;
        END IF;
        EXIT WHEN ok;
        -- Refused: undo this call's legs (no entry is written yet), then
        -- find out why on locked rows. (last_at keeps the undone leg's
        -- time: the account's next entry is only later, which it may be.)
        IF f_aid IS NOT NULL THEN
            UPDATE ledger.accounts a SET posted = a.posted + p_amount, seq = a.seq - 1, version = a.version - 1,
                                         head = a.prev_head
             WHERE a.aid = f_aid;
        END IF;
        IF t_aid IS NOT NULL THEN
            UPDATE ledger.accounts a SET posted = a.posted - p_amount, seq = a.seq - 1, version = a.version - 1,
                                         head = a.prev_head
             WHERE a.aid = t_aid;
        END IF;
        SELECT r.code, r.doc INTO code, doc
          FROM ledger.refused(p_tenant, p_id, p_params, p_from, p_to, p_currency, p_amount) r;
        -- Money waiting in the payer's inbox may cover it: posted once,
        -- then the legs again.
        IF code = 'insufficient' AND NOT posted_inbox THEN
            posted_inbox := true;
            IF ledger.inbox_post((SELECT a.aid FROM ledger.accounts a
                                   WHERE a.tenant = p_tenant AND a.id = p_from)) > 0 THEN
                code := NULL;
                doc := NULL;
                CONTINUE;
            END IF;
        END IF;
        -- Room of the payee handed to its inbox shards may make room for
        -- it: taken back once, then the legs again.
        IF code = 'overflow' AND NOT revoked THEN
            revoked := true;
            IF ledger.inbox_revoke((SELECT a.aid FROM ledger.accounts a
                                     WHERE a.tenant = p_tenant AND a.id = p_to AND a.inbox_granted > 0)) THEN
                code := NULL;
                doc := NULL;
                CONTINUE;
            END IF;
        END IF;
        IF code IS NOT NULL THEN
            RETURN;
        END IF;
    END LOOP;
    IF NOT ok THEN
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'ledger.transfer: the accounts kept changing; retry';
    END IF;
    INSERT INTO ledger.entries (account, seq, transfer_id, amount, balance_after, posted_at, hash, prev_hash)
    SELECT v.* FROM (VALUES (f_aid, f_seq, p_id, -p_amount, f_posted, f_at, f_head, f_prev),
                            (t_aid, t_seq, p_id, p_amount, t_posted, t_at, t_head, t_prev)) AS v
     WHERE v.column1 IS NOT NULL;
    f_ref := coalesce(p_from, '@world:' || cur);
    t_ref := coalesce(p_to, '@world:' || cur);
    code := 'ok';
    doc := ledger.transfer_json(p_id, f_ref, t_ref, p_amount, cur, p_description, p_metadata, NULL, NULL, now_at,
                                ledger.entry_json(f_ref, f_seq, -p_amount, f_posted) || ','
                                || ledger.entry_json(t_ref, t_seq, p_amount, t_posted));
END;
$$;

-- POST /v1/transfers/batch: all or nothing. p_transfers is a JSON array of
-- {"id","from","to","amount","currency","description","metadata","params"}
-- (from/to null = @world; metadata the JSON text as a string). Every
-- account of the batch is locked first, in the global order (its transfers
-- then take them in any order without risking a deadlock with another
-- batch); the transfers run one after the other inside ONE exception
-- block (one subtransaction per batch). A transfer whose client id exists
-- with identical parameters is answered as stored (fresh false: no event).
-- The first refusal rolls every earlier transfer of the batch back: code
-- and doc are its problem, with "index" (0-based).
CREATE FUNCTION ledger.transfer_batch(p_tenant text, p_transfers json,
                                      OUT code text, OUT doc text, OUT fresh boolean[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    r record;
    one record;
    i integer := 0;
    docs text[] := '{}';
    msg text;
    detail text;
BEGIN
    fresh := '{}';
    BEGIN
        PERFORM 1 FROM ledger.accounts a
         WHERE a.tenant = p_tenant
           AND a.id IN (SELECT s.ref FROM json_array_elements(p_transfers) e,
                                          LATERAL (VALUES (e ->> 'from'), (e ->> 'to')) AS s (ref)
                         WHERE s.ref IS NOT NULL)
         ORDER BY a.id FOR NO KEY UPDATE;
        FOR r IN SELECT e ->> 'id' AS id, e ->> 'from' AS frm, e ->> 'to' AS dst, (e ->> 'amount')::bigint AS amount,
                        e ->> 'currency' AS currency, e ->> 'description' AS description,
                        e ->> 'metadata' AS metadata, e ->> 'params' AS params
                   FROM json_array_elements(p_transfers) e
        LOOP
            i := i + 1;
            SELECT x.code, x.doc INTO one
              FROM ledger.transfer(p_tenant, r.id, r.frm, r.dst, r.amount, r.currency, r.description, r.metadata,
                                   r.params, now_at) x;
            IF one.code NOT IN ('ok', 'duplicate') THEN
                RAISE EXCEPTION USING ERRCODE = 'OLB01', MESSAGE = one.code, DETAIL = one.doc;
            END IF;
            docs := docs || one.doc;
            fresh := fresh || (one.code = 'ok');
        END LOOP;
        code := 'ok';
        doc := '{"transfers":[' || array_to_string(docs, ',') || ']}';
    EXCEPTION WHEN SQLSTATE 'OLB01' THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
        code := msg;
        doc := (detail::jsonb || jsonb_build_object('index', i - 1))::text;
        fresh := NULL;
    END;
END;
$$;
