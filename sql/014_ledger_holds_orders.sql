-- 014_ledger_holds_orders: holds, orders and the hot merchant's inbox on the
-- typed tables of 012 (issue #16; docs/ledger.md "Holds", docs/orders.md,
-- docs/ledger-engine.md). One function call per operation, run in the
-- request's transaction (the Idempotency-Key's claim rides on the same
-- round trip; nothing here claims keys). Refusals are RETURNED, never
-- raised (a raise would abort the request's transaction):
--
--   (outcome text, doc text)
--   outcome 'ok'          doc: the object's API document (compact JSON)
--           'duplicate'   a client id reused with identical parameters: doc the object
--           'exists'      a client id reused with other parameters: doc {"hold"|"order": id}
--           'not_found'   doc NULL (the object) or {"account": id}
--           'currency_mismatch', 'frozen', 'insufficient', 'overflow': doc the problem's members
--           'not_pending' doc {"hold_status": s} / {"order_status": s}
--           'too_much'    doc {"hold_amount": n} / {"refundable": n}
--
-- and a third column, events: the events of the change (ho_ev), returned
-- to the daemon in a request (p_emit false: it queues them with the one
-- writer of outbox rows, src/events/outbox.c, to go out with the saved
-- response and COMMIT), or written here when there is no request
-- transaction (p_emit true: sweepers, a GET that expires lazily).
--
-- Lock order: a hold or order row first (the conditional UPDATE that
-- decides which transition wins), then accounts in ascending (tenant, id)
-- order (bytewise). Every name is qualified (no search_path on functions).

-- ---------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------

-- A new id as lg_new_id writes them: prefix, 12 hex digits of the epoch
-- milliseconds, 20 random hex digits (from gen_random_uuid's 122 random
-- bits, a strong source, through md5 so that its fixed version bits do not
-- show).
CREATE FUNCTION ledger.ho_new_id(prefix text) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT prefix || lpad(to_hex((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) & 281474976710655), 12, '0')
           || substr(md5(gen_random_uuid()::text), 1, 20)
$$;

-- A JSON string, or null.
CREATE FUNCTION ledger.ho_js(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(to_json(t)::text, 'null')
$$;

-- An event of the change. In a request (p_emit false) it is returned to
-- the daemon, which queues the outbox row with its one writer
-- (src/events/outbox.c, ev_outbox_add) to go out with the saved response
-- and COMMIT: evs is a JSON array of [type, subject, data text]. Without a
-- request's transaction (the sweepers, a read that expires lazily) the row
-- is written here, in the caller's transaction, in the same shape:
-- {n, tenant, id "evt_...", type, subject, time (RFC 3339 µs), data}.
CREATE FUNCTION ledger.ho_ev(evs text, p_emit boolean, p_tenant text, p_type text, p_subject text, p_data text)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_data IS NULL THEN
        RETURN evs;
    END IF;
    IF p_emit THEN
        INSERT INTO public.outbox (n, tenant, id, type, subject, time, data)
            VALUES (public.ol_outbox_next_n(), p_tenant, ledger.ho_new_id('evt_'), p_type, p_subject,
                    ledger.rfc3339(clock_timestamp()), p_data);
        RETURN evs;
    END IF;
    RETURN coalesce(left(evs, -1) || ',', '[') || json_build_array(p_type, p_subject, p_data)::text || ']';
END;
$$;

-- The position of a leg: what the account's guarded UPDATE returned.
CREATE TYPE ledger.ho_leg AS (aid bigint, seq bigint, posted bigint, at timestamptz, head bytea, prev bytea);

-- A posting leg: posted += delta (an entry, chained), pending += dpending.
-- guard: the account must be active and cover what leaves its available
-- balance (the debit's guard); a credit (delta > 0) must leave the room
-- handed to the inbox shards (inbox_granted) alone. NULL aid: refused.
-- The same UPDATE as lg-core's transfer legs (docs/ledger-engine.md).
CREATE FUNCTION ledger.ho_post(p_tenant text, p_account text, p_currency text, p_tid text, p_delta bigint,
                               p_dpending bigint, p_guard boolean, p_now timestamptz) RETURNS ledger.ho_leg
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r ledger.ho_leg;
BEGIN
    IF p_dpending = 0 THEN
        UPDATE ledger.accounts a
           SET posted = a.posted + p_delta, seq = a.seq + 1, version = a.version + 1, prev_head = a.head,
               last_at = ledger.next_at(a.last_at, p_now),
               head = ledger.entry_hash(a.head, a.id, p_delta, a.posted + p_delta, ledger.next_at(a.last_at, p_now),
                                        a.seq + 1, p_tid)
         WHERE a.tenant = p_tenant AND a.id = p_account AND a.currency = p_currency
           AND (NOT p_guard OR (a.status = 'active' AND a.posted - a.pending >= -p_delta - a.overdraft_limit))
           AND (p_delta < 0 OR a.posted <= 9223372036854775807 - p_delta - a.inbox_granted)
        RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head INTO r;
    ELSE
        -- a capture's payer: the reserved amount leaves pending, the
        -- captured part leaves posted (no guard: it was reserved)
        UPDATE ledger.accounts a
           SET posted = a.posted + p_delta, pending = a.pending + p_dpending, seq = a.seq + 1, version = a.version + 1,
               prev_head = a.head, last_at = ledger.next_at(a.last_at, p_now),
               head = ledger.entry_hash(a.head, a.id, p_delta, a.posted + p_delta, ledger.next_at(a.last_at, p_now),
                                        a.seq + 1, p_tid)
         WHERE a.tenant = p_tenant AND a.id = p_account AND a.currency = p_currency
        RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head INTO r;
    END IF;
    RETURN r;
END;
$$;

-- Undoes a posting leg of this transaction (the failure path only: no
-- entry was written for it yet).
CREATE FUNCTION ledger.ho_unpost(p_aid bigint, p_delta bigint, p_dpending bigint) RETURNS void
LANGUAGE sql VOLATILE AS $$
    UPDATE ledger.accounts a SET posted = a.posted - p_delta, seq = a.seq - 1, version = a.version - 1, head = a.prev_head
     WHERE a.aid = p_aid AND p_dpending = 0;
    UPDATE ledger.accounts a SET posted = a.posted - p_delta, pending = a.pending - p_dpending, seq = a.seq - 1,
                                 version = a.version - 1, head = a.prev_head
     WHERE a.aid = p_aid AND p_dpending <> 0;
$$;

-- The entries of up to two legs, in one statement.
CREATE FUNCTION ledger.ho_entries(p_tid text, a ledger.ho_leg, a_amount bigint, b ledger.ho_leg, b_amount bigint)
RETURNS void
LANGUAGE sql VOLATILE AS $$
    INSERT INTO ledger.entries (account, seq, transfer_id, amount, balance_after, posted_at, hash, prev_hash)
    SELECT v.* FROM (VALUES ((a).aid, (a).seq, p_tid, a_amount, (a).posted, (a).at, (a).head, (a).prev),
                            ((b).aid, (b).seq, p_tid, b_amount, (b).posted, (b).at, (b).head, (b).prev)) AS v
     WHERE v.column1 IS NOT NULL;
$$;

-- What is wrong with one account for a movement (the failure path only,
-- after the caller locked the accounts in the global order): the problem
-- ranked as the contract orders them (1 account_not_found, 2
-- currency_mismatch, 3 account_frozen, 4 insufficient_funds, 5
-- amount_overflow; 9 nothing visible). need: what the movement takes from
-- the available balance (0: no guard); active: a frozen account refuses
-- it; credit: added to posted; hold: added to pending.
CREATE FUNCTION ledger.ho_leg_problem(p_tenant text, p_account text, p_currency text, p_need bigint, p_active boolean,
                                      p_credit bigint, p_hold bigint, OUT rank integer, OUT code text, OUT extra text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    a ledger.accounts;
BEGIN
    SELECT * INTO a FROM ledger.accounts x WHERE x.tenant = p_tenant AND x.id = p_account;
    extra := '{"account":' || to_json(p_account)::text || '}';
    IF NOT FOUND THEN
        rank := 1; code := 'not_found';
    ELSIF a.currency <> p_currency THEN
        rank := 2; code := 'currency_mismatch';
        extra := '{"account":' || to_json(p_account)::text || ',"account_currency":"' || a.currency || '"}';
    ELSIF p_active AND a.status <> 'active' THEN
        rank := 3; code := 'frozen';
    ELSIF p_need > 0 AND a.posted - a.pending < p_need - a.overdraft_limit THEN
        rank := 4; code := 'insufficient';
        extra := '{"account":' || to_json(p_account)::text || ',"available":' || (a.posted - a.pending)
                 || ',"overdraft_limit":' || a.overdraft_limit || '}';
    ELSIF (p_credit > 0 AND a.posted > 9223372036854775807 - p_credit - a.inbox_granted)
          OR (p_hold > 0 AND a.pending > 9223372036854775807 - p_hold) THEN
        rank := 5; code := 'overflow';
    ELSE
        rank := 9; code := NULL; extra := NULL;
    END IF;
END;
$$;

-- ---------------------------------------------------------------------
-- The hot merchant's inbox (docs/ledger-engine.md, docs/orders.md)
-- ---------------------------------------------------------------------

-- Consolidation: posts every inbox credit of the account as chained
-- entries (oldest first), resets its shards and hands out room again:
-- (2^63-1 - posted) / 32 per shard, so that the shards together hold at
-- most half the account's headroom and a direct credit keeps the other
-- half (with / 16, as first designed, every direct credit would fail its
-- guard and revoke the room first). p_room: 1 hand room out (a busy
-- merchant's first wait), -1 revoke it (a direct credit that needs the
-- whole headroom), 0 hand it out again only to an account that had room or
-- credits waiting (a hot account; any other account gets no shards).
-- wait false: an account whose row is locked is skipped (-1). Returns how
-- many credits it posted.
CREATE FUNCTION ledger.inbox_consolidate(p_aid bigint, p_wait boolean, p_room integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    a ledger.accounts;
    r record;
    now_at timestamptz := clock_timestamp();
    k bigint := 0;
    v_seq bigint; v_posted bigint; v_at timestamptz; v_head bytea; v_prev bytea;
    ns bigint[] := '{}'; seqs bigint[] := '{}'; tids text[] := '{}'; amts bigint[] := '{}'; bals bigint[] := '{}';
    ats timestamptz[] := '{}'; hs bytea[] := '{}'; ps bytea[] := '{}';
    room bigint;
BEGIN
    IF p_wait THEN
        SELECT * INTO a FROM ledger.accounts x WHERE x.aid = p_aid FOR NO KEY UPDATE;
    ELSE
        SELECT * INTO a FROM ledger.accounts x WHERE x.aid = p_aid FOR NO KEY UPDATE SKIP LOCKED;
    END IF;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    -- Every shard, so that no settlement adds a credit meanwhile (each
    -- takes its shard's lock before its inbox row).
    IF p_wait THEN
        PERFORM 1 FROM ledger.inbox_shards s WHERE s.account = p_aid ORDER BY s.shard FOR NO KEY UPDATE;
    ELSIF (SELECT count(*) FROM (SELECT 1 FROM ledger.inbox_shards s WHERE s.account = p_aid
                                  ORDER BY s.shard FOR NO KEY UPDATE SKIP LOCKED) l)
          < (SELECT count(*) FROM ledger.inbox_shards s WHERE s.account = p_aid) THEN
        -- a settlement holds a shard: the sweeper never waits (next round)
        RETURN -1;
    END IF;
    v_seq := a.seq; v_posted := a.posted; v_at := a.last_at; v_head := a.head; v_prev := a.prev_head;
    FOR r IN SELECT i.n, i.transfer_id, i.amount FROM ledger.inbox i WHERE i.account = p_aid ORDER BY i.n LOOP
        k := k + 1;
        v_seq := v_seq + 1;
        v_posted := v_posted + r.amount;
        v_at := ledger.next_at(v_at, now_at);
        v_prev := v_head;
        v_head := ledger.entry_hash(v_prev, a.id, r.amount, v_posted, v_at, v_seq, r.transfer_id);
        ns := ns || r.n; seqs := seqs || v_seq; tids := tids || r.transfer_id::text; amts := amts || r.amount;
        bals := bals || v_posted; ats := ats || v_at; hs := hs || v_head; ps := ps || v_prev;
    END LOOP;
    IF k > 0 THEN
        INSERT INTO ledger.entries (account, seq, transfer_id, amount, balance_after, posted_at, hash, prev_hash)
        SELECT p_aid, u.s, u.t, u.am, u.b, u.at, u.h, u.p
          FROM unnest(seqs, tids, amts, bals, ats, hs, ps) AS u (s, t, am, b, at, h, p);
        DELETE FROM ledger.inbox i WHERE i.account = p_aid AND i.n = ANY (ns);
    END IF;
    IF p_room < 0 OR (p_room = 0 AND k = 0 AND a.inbox_granted = 0) THEN
        room := 0;
    ELSE
        room := (9223372036854775807 - v_posted) / 32;
    END IF;
    IF room > 0 THEN
        INSERT INTO ledger.inbox_shards AS s (account, shard, total, room)
        SELECT p_aid, g, 0, room FROM generate_series(0, 15) AS g
            ON CONFLICT (account, shard) DO UPDATE SET total = 0, room = EXCLUDED.room;
    ELSIF a.inbox_granted > 0 OR k > 0 THEN
        UPDATE ledger.inbox_shards s SET total = 0, room = 0 WHERE s.account = p_aid;
    END IF;
    IF k > 0 THEN
        UPDATE ledger.accounts x SET posted = v_posted, seq = v_seq, head = v_head, prev_head = v_prev, last_at = v_at,
                                     version = x.version + 1, inbox_granted = 16 * room
         WHERE x.aid = p_aid;
    ELSIF a.inbox_granted <> 16 * room THEN
        UPDATE ledger.accounts x SET inbox_granted = 16 * room, version = x.version + 1 WHERE x.aid = p_aid;
    END IF;
    RETURN k;
END;
$$;

-- Consolidates the account's inbox when it has credits waiting (a debit
-- the consolidated balance may cover; GET of the account). By id.
CREATE FUNCTION ledger.inbox_settle(p_tenant text, p_account text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_aid bigint;
BEGIN
    SELECT a.aid INTO v_aid FROM ledger.accounts a WHERE a.tenant = p_tenant AND a.id = p_account;
    IF v_aid IS NULL OR NOT EXISTS (SELECT 1 FROM ledger.inbox i WHERE i.account = v_aid) THEN
        RETURN 0;
    END IF;
    RETURN ledger.inbox_consolidate(v_aid, true, 0);
END;
$$;

-- A debit leg (guarded), and when the guard refuses it while credits wait
-- in the account's inbox, the inbox consolidated and the leg tried once
-- more: inbox money is never refused.
CREATE FUNCTION ledger.ho_debit(p_tenant text, p_account text, p_currency text, p_tid text, p_amount bigint,
                                p_now timestamptz) RETURNS ledger.ho_leg
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r ledger.ho_leg;
BEGIN
    r := ledger.ho_post(p_tenant, p_account, p_currency, p_tid, -p_amount, 0, true, p_now);
    IF r.aid IS NULL AND ledger.inbox_settle(p_tenant, p_account) > 0 THEN
        r := ledger.ho_post(p_tenant, p_account, p_currency, p_tid, -p_amount, 0, true, p_now);
    END IF;
    RETURN r;
END;
$$;

-- A credit leg (waits for the row). Refused while the account has room
-- handed to its inbox shards: consolidated without room, tried once more;
-- only a credit that does not fit even then is refused (overflow).
CREATE FUNCTION ledger.ho_credit(p_tenant text, p_account text, p_currency text, p_tid text, p_amount bigint,
                                 p_now timestamptz) RETURNS ledger.ho_leg
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r ledger.ho_leg;
    v_aid bigint;
BEGIN
    r := ledger.ho_post(p_tenant, p_account, p_currency, p_tid, p_amount, 0, false, p_now);
    IF r.aid IS NULL THEN
        SELECT a.aid INTO v_aid FROM ledger.accounts a
         WHERE a.tenant = p_tenant AND a.id = p_account AND a.currency = p_currency AND a.inbox_granted > 0;
        IF v_aid IS NOT NULL THEN
            PERFORM ledger.inbox_consolidate(v_aid, true, -1);
            r := ledger.ho_post(p_tenant, p_account, p_currency, p_tid, p_amount, 0, false, p_now);
        END IF;
    END IF;
    RETURN r;
END;
$$;

-- 013's hook for its credit legs (ledger.transfer): a direct credit
-- refused by its overflow guard while the account has room handed to its
-- inbox shards may still fit once the room is taken back. Posts the inbox
-- and revokes the room (waits for the row); true when there was room, so
-- that trying the credit again can change the answer.
CREATE OR REPLACE FUNCTION ledger.inbox_revoke(p_aid bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF (SELECT a.inbox_granted FROM ledger.accounts a WHERE a.aid = p_aid) > 0 THEN
        PERFORM ledger.inbox_consolidate(p_aid, true, -1);
        RETURN true;
    END IF;
    RETURN false;
END;
$$;

-- The consolidation sweeper: the accounts with the oldest waiting
-- credits, any tenant, up to p_limit accounts; an account whose row is
-- locked is left for the next round. Returns how many credits it posted.
CREATE FUNCTION ledger.inbox_sweep(p_limit integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r record;
    k bigint;
    total bigint := 0;
BEGIN
    FOR r IN SELECT d.account FROM (SELECT i.account, min(i.at) AS at FROM ledger.inbox i GROUP BY i.account) d
              JOIN ledger.accounts a ON a.aid = d.account
             ORDER BY d.at LIMIT p_limit LOOP
        k := ledger.inbox_consolidate(r.account, false, 0);
        IF k > 0 THEN
            total := total + k;
        END IF;
    END LOOP;
    RETURN total;
END;
$$;

-- ---------------------------------------------------------------------
-- Holds (docs/ledger.md "Holds")
-- ---------------------------------------------------------------------

-- The hold document of the API (§5).
CREATE FUNCTION ledger.hold_json(h ledger.holds, from_id text, to_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || to_json(h.id)::text || ',"from":' || to_json(from_id)::text
           || ',"to":' || to_json(coalesce(to_id, '@world:' || h.currency))::text || ',"amount":' || h.amount
           || ',"captured":' || h.captured || ',"currency":"' || h.currency || '","status":"' || h.status
           || '","expires_at":"' || ledger.rfc3339(h.expires_at) || '","transfer_id":' || ledger.ho_js(h.transfer_id)
           || ',"metadata":' || h.metadata || ',"created_at":"' || ledger.rfc3339(h.created_at) || '"}'
$$;

-- The document of a stored hold (NULL: none).
CREATE FUNCTION ledger.hold_doc(p_tenant text, p_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT ledger.hold_json(h, f.id, t.id)
      FROM ledger.holds h JOIN ledger.accounts f ON f.aid = h.from_account
      LEFT JOIN ledger.accounts t ON t.aid = h.to_account
     WHERE h.tenant = p_tenant AND h.id = p_id
$$;

-- A pending hold past its time becomes expired: its amount leaves the
-- payer's pending. Returns its document (the caller emits hold.expired),
-- or NULL when it was not pending or not past its time (someone else
-- decided it first).
CREATE FUNCTION ledger.hold_expire(p_tenant text, p_id text, p_now timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    h ledger.holds;
    doc text;
BEGIN
    UPDATE ledger.holds x SET status = 'expired'
     WHERE x.tenant = p_tenant AND x.id = p_id AND x.status = 'pending' AND x.expires_at <= p_now
    RETURNING x.* INTO h;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE ledger.accounts a SET pending = a.pending - h.amount, version = a.version + 1 WHERE a.aid = h.from_account;
    RETURN ledger.hold_doc(p_tenant, p_id);
END;
$$;

-- Why a capture or void found no pending hold to change: not_found, a
-- hold past its time (expired now, lazily: that write commits with the
-- answer), not_pending with its status, or for a capture an amount above
-- the hold's (too_much). outcome NULL: it is pending again (retry).
CREATE FUNCTION ledger.hold_refused(p_tenant text, p_id text, p_amount bigint, p_now timestamptz,
                                    OUT outcome text, OUT doc text, OUT expired text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    h ledger.holds;
BEGIN
    SELECT * INTO h FROM ledger.holds x WHERE x.tenant = p_tenant AND x.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'not_found';
    ELSIF h.status = 'pending' AND h.expires_at <= p_now THEN
        expired := ledger.hold_expire(p_tenant, p_id, p_now);
        outcome := 'not_pending'; doc := '{"hold_status":"expired"}';
    ELSIF h.status <> 'pending' THEN
        outcome := 'not_pending'; doc := '{"hold_status":"' || h.status || '"}';
    ELSIF p_amount > h.amount THEN
        outcome := 'too_much'; doc := '{"hold_amount":' || h.amount || '}';
    END IF;
END;
$$;

-- POST /v1/holds: the payer's pending += amount under the debit's guard,
-- the payee must exist in the currency (to NULL: @world), the hold row
-- (its id is unique per tenant: a client id reused with the same
-- parameters answers the stored hold), the event hold.created.
CREATE FUNCTION ledger.hold_create(p_tenant text, p_id text, p_from text, p_to text, p_amount bigint, p_currency text,
                                   p_expires_in bigint, p_metadata text, p_params text, p_emit boolean,
                                   OUT outcome text, OUT doc text, OUT events text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    v_from bigint;
    v_to bigint;
    h ledger.holds;
    have text;
    p record;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 OR p_from = p_to THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'hold_create: invalid amount or accounts';
    END IF;
    FOR attempt IN 1..3 LOOP
        UPDATE ledger.accounts a SET pending = a.pending + p_amount, version = a.version + 1
         WHERE a.tenant = p_tenant AND a.id = p_from AND a.currency = p_currency AND a.status = 'active'
           AND a.posted - a.pending >= p_amount - a.overdraft_limit AND a.pending <= 9223372036854775807 - p_amount
        RETURNING a.aid INTO v_from;
        IF v_from IS NULL AND ledger.inbox_settle(p_tenant, p_from) > 0 THEN
            UPDATE ledger.accounts a SET pending = a.pending + p_amount, version = a.version + 1
             WHERE a.tenant = p_tenant AND a.id = p_from AND a.currency = p_currency AND a.status = 'active'
               AND a.posted - a.pending >= p_amount - a.overdraft_limit AND a.pending <= 9223372036854775807 - p_amount
            RETURNING a.aid INTO v_from;
        END IF;
        v_to := NULL;
        IF p_to IS NOT NULL THEN
            SELECT a.aid INTO v_to FROM ledger.accounts a WHERE a.tenant = p_tenant AND a.id = p_to AND a.currency = p_currency;
        END IF;
        IF v_from IS NOT NULL AND (p_to IS NULL OR v_to IS NOT NULL) THEN
            INSERT INTO ledger.holds AS x (tenant, id, from_account, to_account, amount, currency, expires_at, metadata,
                                           params, created_at)
                VALUES (p_tenant, p_id, v_from, v_to, p_amount, p_currency, now_at + make_interval(secs => p_expires_in),
                        p_metadata, p_params, now_at)
                ON CONFLICT (tenant, id) DO NOTHING
            RETURNING x.* INTO h;
            IF FOUND THEN
                doc := ledger.hold_json(h, p_from, p_to);
                events := ledger.ho_ev(events, p_emit, p_tenant, 'hold.created', p_id, doc);
                outcome := 'ok';
                RETURN;
            END IF;
        END IF;
        -- Refused: undo the guard's update, then find out why.
        IF v_from IS NOT NULL THEN
            UPDATE ledger.accounts a SET pending = a.pending - p_amount, version = a.version - 1 WHERE a.aid = v_from;
        END IF;
        SELECT x.params INTO have FROM ledger.holds x WHERE x.tenant = p_tenant AND x.id = p_id;
        IF FOUND THEN
            IF have = p_params THEN
                outcome := 'duplicate'; doc := ledger.hold_doc(p_tenant, p_id);
            ELSE
                outcome := 'exists'; doc := '{"hold":' || to_json(p_id)::text || '}';
            END IF;
            RETURN;
        END IF;
        -- the payer locked (the payee is only read: a hold takes no lock on it)
        PERFORM 1 FROM ledger.accounts a WHERE a.tenant = p_tenant AND a.id = p_from FOR NO KEY UPDATE;
        SELECT x.code, x.extra INTO p FROM (
            SELECT 0 AS ord, l.* FROM ledger.ho_leg_problem(p_tenant, p_from, p_currency, p_amount, true, 0, p_amount) l
            UNION ALL
            SELECT 1, l.* FROM ledger.ho_leg_problem(p_tenant, p_to, p_currency, 0, false, 0, 0) l WHERE p_to IS NOT NULL
        ) x WHERE x.rank < 9 ORDER BY x.rank, x.ord LIMIT 1;
        IF FOUND THEN
            outcome := p.code; doc := p.extra;
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'hold_create: the accounts kept changing; retry';
END;
$$;

-- GET /v1/holds/{id}: a pending hold past its time is expired first.
CREATE FUNCTION ledger.hold_get(p_tenant text, p_id text, p_emit boolean, OUT outcome text, OUT doc text,
                                OUT events text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
BEGIN
    IF EXISTS (SELECT 1 FROM ledger.holds x WHERE x.tenant = p_tenant AND x.id = p_id AND x.status = 'pending'
                                             AND x.expires_at <= now_at) THEN
        events := ledger.ho_ev(events, p_emit, p_tenant, 'hold.expired', p_id, ledger.hold_expire(p_tenant, p_id, now_at));
    END IF;
    doc := ledger.hold_doc(p_tenant, p_id);
    outcome := CASE WHEN doc IS NULL THEN 'not_found' ELSE 'ok' END;
END;
$$;

-- capture: the hold -> captured first (status pending, not past its time,
-- amount within it: exactly one of capture, void and expiry wins), then
-- the legs in the global order: the payer's pending -= amount and posted
-- -= captured, the payee's posted += captured (an overflow there undoes
-- everything: 422), two chained entries, the transfer with hold_id, the
-- events transfer.posted and hold.captured. p_amount 0: all of it.
CREATE FUNCTION ledger.hold_capture(p_tenant text, p_id text, p_amount bigint, p_emit boolean,
                                    OUT outcome text, OUT doc text, OUT events text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    tid text := ledger.ho_new_id('tr_');
    h ledger.holds;
    from_id text;
    to_id text;
    f ledger.ho_leg;
    t ledger.ho_leg;
    c bigint;
BEGIN
    FOR attempt IN 1..3 LOOP
        UPDATE ledger.holds x
           SET status = 'captured', captured = CASE WHEN p_amount > 0 THEN p_amount ELSE x.amount END, transfer_id = tid
         WHERE x.tenant = p_tenant AND x.id = p_id AND x.status = 'pending' AND x.expires_at > now_at
           AND p_amount <= x.amount
        RETURNING x.* INTO h;
        EXIT WHEN FOUND;
        SELECT r.outcome, r.doc, ledger.ho_ev(events, p_emit, p_tenant, 'hold.expired', p_id, r.expired)
          INTO outcome, doc, events FROM ledger.hold_refused(p_tenant, p_id, p_amount, now_at) r;
        IF outcome IS NOT NULL THEN
            RETURN;
        END IF;
    END LOOP;
    IF h.id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'hold_capture: the hold kept changing; retry';
    END IF;
    c := h.captured;
    SELECT fa.id, ta.id INTO from_id, to_id
      FROM ledger.accounts fa LEFT JOIN ledger.accounts ta ON ta.aid = h.to_account WHERE fa.aid = h.from_account;
    -- the legs in the global order (to NULL: @world, no leg)
    IF to_id IS NOT NULL AND to_id COLLATE "C" < from_id COLLATE "C" THEN
        t := ledger.ho_credit(p_tenant, to_id, h.currency, tid, c, now_at);
        IF t.aid IS NOT NULL THEN
            f := ledger.ho_post(p_tenant, from_id, h.currency, tid, -c, -h.amount, false, now_at);
        END IF;
    ELSE
        f := ledger.ho_post(p_tenant, from_id, h.currency, tid, -c, -h.amount, false, now_at);
        IF to_id IS NOT NULL THEN
            t := ledger.ho_credit(p_tenant, to_id, h.currency, tid, c, now_at);
        END IF;
    END IF;
    IF to_id IS NOT NULL AND t.aid IS NULL THEN
        -- the payee's balance would overflow: nothing happens
        IF f.aid IS NOT NULL THEN
            PERFORM ledger.ho_unpost(f.aid, -c, -h.amount);
        END IF;
        UPDATE ledger.holds x SET status = 'pending', captured = 0, transfer_id = NULL
         WHERE x.tenant = p_tenant AND x.id = p_id;
        outcome := 'overflow'; doc := '{"account":' || to_json(to_id)::text || '}';
        RETURN;
    END IF;
    IF f.aid IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'hold_capture: the payer changed; retry';
    END IF;
    INSERT INTO ledger.transfers (tenant, id, from_account, to_account, from_seq, to_seq, amount, currency, metadata,
                                  hold_id, params, created_at)
        VALUES (p_tenant, tid, f.aid, t.aid, f.seq, t.seq, c, h.currency, h.metadata, p_id, '{"kind":"capture"}', now_at);
    PERFORM ledger.ho_entries(tid, f, -c, t, c);
    events := ledger.ho_ev(events, p_emit, p_tenant, 'transfer.posted', tid,
                            ledger.transfer_json(tid, from_id, coalesce(to_id, '@world:' || h.currency), c, h.currency, NULL,
                                                    h.metadata, p_id, NULL, now_at,
                                                    ledger.entry_json(from_id, f.seq, -c, f.posted) || ','
                                                    || ledger.entry_json(coalesce(to_id, '@world:' || h.currency),
                                                                            t.seq, c, t.posted)));
    doc := ledger.hold_json(h, from_id, to_id);
    events := ledger.ho_ev(events, p_emit, p_tenant, 'hold.captured', p_id, doc);
    outcome := 'ok';
END;
$$;

-- void: the hold -> voided (pending, not past its time), its amount
-- leaves the payer's pending, the event hold.voided.
CREATE FUNCTION ledger.hold_void(p_tenant text, p_id text, p_emit boolean, OUT outcome text, OUT doc text,
                                 OUT events text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    h ledger.holds;
BEGIN
    FOR attempt IN 1..3 LOOP
        UPDATE ledger.holds x SET status = 'voided'
         WHERE x.tenant = p_tenant AND x.id = p_id AND x.status = 'pending' AND x.expires_at > now_at
        RETURNING x.* INTO h;
        EXIT WHEN FOUND;
        SELECT r.outcome, r.doc, ledger.ho_ev(events, p_emit, p_tenant, 'hold.expired', p_id, r.expired)
          INTO outcome, doc, events FROM ledger.hold_refused(p_tenant, p_id, 0, now_at) r;
        IF outcome IS NOT NULL THEN
            RETURN;
        END IF;
    END LOOP;
    IF h.id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'hold_void: the hold kept changing; retry';
    END IF;
    UPDATE ledger.accounts a SET pending = a.pending - h.amount, version = a.version + 1 WHERE a.aid = h.from_account;
    doc := ledger.hold_doc(p_tenant, p_id);
    events := ledger.ho_ev(events, p_emit, p_tenant, 'hold.voided', p_id, doc);
    outcome := 'ok';
END;
$$;

-- The expiry sweeper: up to p_limit pending holds past their time, of any
-- tenant, taken from the sparse index holds_open_by_expiry; a hold another
-- transaction is deciding is skipped (SKIP LOCKED). The payers' rows are
-- then changed in the global order (tenant, id). Returns how many.
CREATE FUNCTION ledger.holds_sweep(p_limit integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    r record;
    k bigint := 0;
    doc text;
BEGIN
    FOR r IN WITH due AS (
                 SELECT x.tenant, x.id FROM ledger.holds x WHERE x.status = 'pending' AND x.expires_at <= now_at
                  ORDER BY x.expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
             SELECT due.tenant, due.id FROM due JOIN ledger.holds h ON h.tenant = due.tenant AND h.id = due.id
               JOIN ledger.accounts a ON a.aid = h.from_account
              ORDER BY a.tenant, a.id LOOP
        doc := ledger.hold_expire(r.tenant, r.id, now_at);
        IF doc IS NOT NULL THEN
            PERFORM ledger.ho_ev(NULL, true, r.tenant, 'hold.expired', r.id, doc);
            k := k + 1;
        END IF;
    END LOOP;
    RETURN k;
END;
$$;

-- ---------------------------------------------------------------------
-- Orders (docs/orders.md)
-- ---------------------------------------------------------------------

-- The order document of the API (§6), with status (a list shows a
-- created order past its time as expired).
CREATE FUNCTION ledger.order_json(o ledger.orders, customer_id text, merchant_id text, status text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || to_json(o.id)::text || ',"customer":' || to_json(customer_id)::text
           || ',"merchant":' || to_json(merchant_id)::text || ',"amount":' || o.amount || ',"refunded":' || o.refunded
           || ',"currency":"' || o.currency || '","status":"' || status || '","transfer_id":' || ledger.ho_js(o.transfer_id)
           || ',"expires_at":"' || ledger.rfc3339(o.expires_at) || '","paid_at":'
           || coalesce('"' || ledger.rfc3339(o.paid_at) || '"', 'null') || ',"metadata":' || o.metadata
           || ',"created_at":"' || ledger.rfc3339(o.created_at) || '"}'
$$;

CREATE FUNCTION ledger.order_doc(p_tenant text, p_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT ledger.order_json(o, c.id, m.id, o.status)
      FROM ledger.orders o JOIN ledger.accounts c ON c.aid = o.customer JOIN ledger.accounts m ON m.aid = o.merchant
     WHERE o.tenant = p_tenant AND o.id = p_id
$$;

-- created -> expired for an order past its time; its document (the caller
-- emits order.expired), or NULL when it was not created or not past its
-- time.
CREATE FUNCTION ledger.order_expire(p_tenant text, p_id text, p_now timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    doc text;
BEGIN
    UPDATE ledger.orders o SET status = 'expired'
     WHERE o.tenant = p_tenant AND o.id = p_id AND o.status = 'created' AND o.expires_at <= p_now;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN ledger.order_doc(p_tenant, p_id);
END;
$$;

-- Why a transition found no order in the state it needs (want: created,
-- or paid for a refund): not_found, an order past its time (expired now,
-- lazily), or not_pending with its status. NULL: it is in that state
-- (retry).
CREATE FUNCTION ledger.order_refused(p_tenant text, p_id text, p_want text, p_now timestamptz,
                                     OUT outcome text, OUT doc text, OUT expired text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    o ledger.orders;
BEGIN
    SELECT * INTO o FROM ledger.orders x WHERE x.tenant = p_tenant AND x.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'not_found';
    ELSIF o.status = 'created' AND o.expires_at <= p_now THEN
        expired := ledger.order_expire(p_tenant, p_id, p_now);
        outcome := 'not_pending'; doc := '{"order_status":"expired"}';
    ELSIF NOT (o.status = p_want OR (p_want = 'paid' AND o.status = 'partially_refunded')) THEN
        outcome := 'not_pending'; doc := '{"order_status":"' || o.status || '"}';
    END IF;
END;
$$;

-- POST /v1/orders: both accounts must exist in the currency (customer
-- first); the order row (a client id reused with the same parameters
-- answers the stored order), the event order.created.
CREATE FUNCTION ledger.order_create(p_tenant text, p_id text, p_customer text, p_merchant text, p_amount bigint,
                                    p_currency text, p_expires_in bigint, p_metadata text, p_params text, p_emit boolean,
                                    OUT outcome text, OUT doc text, OUT events text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    v_c bigint;
    v_m bigint;
    o ledger.orders;
    have text;
    p record;
BEGIN
    FOR attempt IN 1..3 LOOP
        SELECT a.aid INTO v_c FROM ledger.accounts a WHERE a.tenant = p_tenant AND a.id = p_customer AND a.currency = p_currency;
        SELECT a.aid INTO v_m FROM ledger.accounts a WHERE a.tenant = p_tenant AND a.id = p_merchant AND a.currency = p_currency;
        IF v_c IS NOT NULL AND v_m IS NOT NULL THEN
            INSERT INTO ledger.orders AS x (tenant, id, customer, merchant, amount, currency, expires_at, metadata, params,
                                            created_at)
                VALUES (p_tenant, p_id, v_c, v_m, p_amount, p_currency, now_at + make_interval(secs => p_expires_in),
                        p_metadata, p_params, now_at)
                ON CONFLICT (tenant, id) DO NOTHING
            RETURNING x.* INTO o;
            IF FOUND THEN
                -- A merchant's first order hands room out to its inbox
                -- shards, so that a settlement that finds its row busy
                -- never waits (not even the first one); when the row is
                -- busy now, the next order tries again.
                IF (SELECT a.inbox_granted FROM ledger.accounts a WHERE a.aid = v_m) = 0 THEN
                    PERFORM ledger.inbox_consolidate(v_m, false, 1);
                END IF;
                doc := ledger.order_json(o, p_customer, p_merchant, o.status);
                events := ledger.ho_ev(events, p_emit, p_tenant, 'order.created', p_id, doc);
                outcome := 'ok';
                RETURN;
            END IF;
        END IF;
        SELECT x.params INTO have FROM ledger.orders x WHERE x.tenant = p_tenant AND x.id = p_id;
        IF FOUND THEN
            IF have = p_params THEN
                outcome := 'duplicate'; doc := ledger.order_doc(p_tenant, p_id);
            ELSE
                outcome := 'exists'; doc := '{"order":' || to_json(p_id)::text || '}';
            END IF;
            RETURN;
        END IF;
        SELECT x.code, x.extra INTO p FROM (
            SELECT 0 AS ord, l.* FROM ledger.ho_leg_problem(p_tenant, p_customer, p_currency, 0, false, 0, 0) l
            UNION ALL
            SELECT 1, l.* FROM ledger.ho_leg_problem(p_tenant, p_merchant, p_currency, 0, false, 0, 0) l
        ) x WHERE x.rank < 9 ORDER BY x.rank, x.ord LIMIT 1;
        IF FOUND THEN
            outcome := p.code; doc := p.extra;
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'order_create: the accounts kept changing; retry';
END;
$$;

-- GET /v1/orders/{id}: a created order past its time is expired first.
CREATE FUNCTION ledger.order_get(p_tenant text, p_id text, p_emit boolean, OUT outcome text, OUT doc text,
                                 OUT events text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
BEGIN
    IF EXISTS (SELECT 1 FROM ledger.orders x WHERE x.tenant = p_tenant AND x.id = p_id AND x.status = 'created'
                                              AND x.expires_at <= now_at) THEN
        events := ledger.ho_ev(events, p_emit, p_tenant, 'order.expired', p_id, ledger.order_expire(p_tenant, p_id, now_at));
    END IF;
    doc := ledger.order_doc(p_tenant, p_id);
    outcome := CASE WHEN doc IS NULL THEN 'not_found' ELSE 'ok' END;
END;
$$;

-- The merchant's leg of a settlement. Its row is taken only when no other
-- transaction holds it (FOR NO KEY UPDATE SKIP LOCKED: no wait); when it
-- is busy, the credit goes to one of its inbox shards that has room and
-- that no other settlement holds (shard >= 0: leg is NULL, the credit is
-- the inbox row n). When every shard with room is held by another
-- settlement, it waits for one of them, not for the merchant's row: a
-- shard's holder never waits for that row, while the row's holder may wait
-- for the shards (a consolidation) or for a client that holds it, so with
-- more settlements at once than shards the others would queue behind it
-- (and hang behind an idle holder). Only with no shard with room left (or
-- the shard it waited for filled up three times): the direct way, which
-- waits for the row (ho_credit: consolidates and checks exactly); the
-- first such wait of a busy merchant hands room out to its shards.
CREATE FUNCTION ledger.ho_merchant_credit(p_tenant text, p_aid bigint, p_id text, p_currency text, p_tid text,
                                          p_amount bigint, p_now timestamptz,
                                          OUT leg ledger.ho_leg, OUT shard smallint, OUT n bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s smallint;
BEGIN
    FOR attempt IN 1..3 LOOP
        UPDATE ledger.accounts a
           SET posted = a.posted + p_amount, seq = a.seq + 1, version = a.version + 1, prev_head = a.head,
               last_at = ledger.next_at(a.last_at, p_now),
               head = ledger.entry_hash(a.head, a.id, p_amount, a.posted + p_amount, ledger.next_at(a.last_at, p_now),
                                        a.seq + 1, p_tid)
         WHERE a.aid = (SELECT x.aid FROM ledger.accounts x
                         WHERE x.aid = p_aid AND x.currency = p_currency
                           AND x.posted <= 9223372036854775807 - p_amount - x.inbox_granted
                           FOR NO KEY UPDATE SKIP LOCKED)
           AND a.currency = p_currency AND a.posted <= 9223372036854775807 - p_amount - a.inbox_granted
        RETURNING a.aid, a.seq, a.posted, a.last_at, a.head, a.prev_head INTO leg;
        IF leg.aid IS NOT NULL THEN
            RETURN;
        END IF;
        -- (the guard in the sub-select: a credit that does not fit beside
        -- the room does not lock the row it will not change, so that it
        -- holds nothing of the merchant's while it may wait for a shard)
        UPDATE ledger.inbox_shards x SET total = x.total + p_amount
         WHERE (x.account, x.shard) = (SELECT y.account, y.shard FROM ledger.inbox_shards y
                                        WHERE y.account = p_aid AND y.total <= y.room - p_amount
                                        ORDER BY (y.shard + pg_backend_pid()) % 16 LIMIT 1
                                        FOR NO KEY UPDATE SKIP LOCKED)
        RETURNING x.shard INTO shard;
        IF shard IS NULL THEN
            -- every shard with room is held: wait for one (the update
            -- checks its room again once its holder is done)
            SELECT y.shard INTO s FROM ledger.inbox_shards y
             WHERE y.account = p_aid AND y.total <= y.room - p_amount
             ORDER BY (y.shard + pg_backend_pid()) % 16 LIMIT 1;
            EXIT WHEN s IS NULL;
            UPDATE ledger.inbox_shards x SET total = x.total + p_amount
             WHERE x.account = p_aid AND x.shard = s AND x.total <= x.room - p_amount
            RETURNING x.shard INTO shard;
        END IF;
        IF shard IS NOT NULL THEN
            INSERT INTO ledger.inbox AS i (account, transfer_id, amount) VALUES (p_aid, p_tid, p_amount)
            RETURNING i.n INTO n;
            RETURN;
        END IF;
    END LOOP;
    leg := ledger.ho_credit(p_tenant, p_id, p_currency, p_tid, p_amount, p_now);
    IF leg.aid IS NOT NULL AND (SELECT a.inbox_granted FROM ledger.accounts a WHERE a.aid = p_aid) = 0 THEN
        PERFORM ledger.inbox_consolidate(p_aid, true, 1);
    END IF;
END;
$$;

-- settle: the order created -> paid first (not past its time: exactly one
-- of settle, cancel and expiry wins), then the transfer customer ->
-- merchant of the amount with order_id, its legs in the global order: the
-- customer's under the debit's guard (402 leaves the order created), the
-- merchant's through ho_merchant_credit (its inbox when busy); the
-- events transfer.posted and order.paid.
CREATE FUNCTION ledger.order_settle(p_tenant text, p_id text, p_emit boolean, OUT outcome text, OUT doc text,
                                    OUT events text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    tid text := ledger.ho_new_id('tr_');
    o ledger.orders;
    cust_id text;
    merch_id text;
    c ledger.ho_leg;
    m record;
    p record;
BEGIN
    FOR attempt IN 1..3 LOOP
        UPDATE ledger.orders x SET status = 'paid', transfer_id = tid, paid_at = now_at
         WHERE x.tenant = p_tenant AND x.id = p_id AND x.status = 'created' AND x.expires_at > now_at
        RETURNING x.* INTO o;
        EXIT WHEN FOUND;
        SELECT r.outcome, r.doc, ledger.ho_ev(events, p_emit, p_tenant, 'order.expired', p_id, r.expired)
          INTO outcome, doc, events FROM ledger.order_refused(p_tenant, p_id, 'created', now_at) r;
        IF outcome IS NOT NULL THEN
            RETURN;
        END IF;
    END LOOP;
    IF o.id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'order_settle: the order kept changing; retry';
    END IF;
    SELECT NULL::ledger.ho_leg AS leg, NULL::smallint AS shard, NULL::bigint AS n INTO m;
    SELECT ca.id, ma.id INTO cust_id, merch_id FROM ledger.accounts ca, ledger.accounts ma
     WHERE ca.aid = o.customer AND ma.aid = o.merchant;
    IF merch_id COLLATE "C" < cust_id COLLATE "C" THEN
        SELECT * INTO m FROM ledger.ho_merchant_credit(p_tenant, o.merchant, merch_id, o.currency, tid, o.amount, now_at);
        IF (m.leg).aid IS NOT NULL OR m.shard IS NOT NULL THEN
            c := ledger.ho_debit(p_tenant, cust_id, o.currency, tid, o.amount, now_at);
        END IF;
    ELSE
        c := ledger.ho_debit(p_tenant, cust_id, o.currency, tid, o.amount, now_at);
        IF c.aid IS NOT NULL THEN
            SELECT * INTO m FROM ledger.ho_merchant_credit(p_tenant, o.merchant, merch_id, o.currency, tid, o.amount, now_at);
        END IF;
    END IF;
    IF c.aid IS NULL OR ((m.leg).aid IS NULL AND m.shard IS NULL) THEN
        -- Refused: undo what was done, the order stays created.
        IF c.aid IS NOT NULL THEN
            PERFORM ledger.ho_unpost(c.aid, -o.amount, 0);
        END IF;
        IF (m.leg).aid IS NOT NULL THEN
            PERFORM ledger.ho_unpost((m.leg).aid, o.amount, 0);
        ELSIF m.shard IS NOT NULL THEN
            UPDATE ledger.inbox_shards s SET total = s.total - o.amount WHERE s.account = o.merchant AND s.shard = m.shard;
            DELETE FROM ledger.inbox i WHERE i.account = o.merchant AND i.n = m.n;
        END IF;
        UPDATE ledger.orders x SET status = 'created', transfer_id = NULL, paid_at = NULL
         WHERE x.tenant = p_tenant AND x.id = p_id;
        -- The accounts whose answer must stay put while it is ranked. When
        -- the customer's leg was refused, only the customer: the merchant
        -- (its leg may have taken a shard, its row may be busy for long)
        -- is only read, since a refused customer's problem (frozen,
        -- insufficient) ranks before the merchant's (an overflow); waiting
        -- for its row here, holding a shard, is what a consolidation that
        -- holds the row would wait for.
        IF (m.leg).aid IS NOT NULL OR m.shard IS NOT NULL
           OR (c.aid IS NULL AND NOT merch_id COLLATE "C" < cust_id COLLATE "C") THEN
            PERFORM 1 FROM ledger.accounts a WHERE a.aid = o.customer FOR NO KEY UPDATE;
        ELSE
            PERFORM 1 FROM ledger.accounts a WHERE a.aid IN (o.customer, o.merchant) ORDER BY a.tenant, a.id
               FOR NO KEY UPDATE;
        END IF;
        SELECT x.code, x.extra INTO p FROM (
            SELECT 0 AS ord, l.* FROM ledger.ho_leg_problem(p_tenant, cust_id, o.currency, o.amount, true, 0, 0) l
            UNION ALL
            SELECT 1, l.* FROM ledger.ho_leg_problem(p_tenant, merch_id, o.currency, 0, false, o.amount, 0) l
        ) x WHERE x.rank < 9 ORDER BY x.rank, x.ord LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'order_settle: the accounts kept changing; retry';
        END IF;
        outcome := p.code; doc := p.extra;
        RETURN;
    END IF;
    INSERT INTO ledger.transfers (tenant, id, from_account, to_account, from_seq, to_seq, amount, currency, metadata,
                                  order_id, params, created_at)
        VALUES (p_tenant, tid, o.customer, o.merchant, c.seq, (m.leg).seq, o.amount, o.currency, '{}', p_id,
                '{"kind":"order"}', now_at);
    PERFORM ledger.ho_entries(tid, c, -o.amount, m.leg, o.amount);
    events := ledger.ho_ev(events, p_emit, p_tenant, 'transfer.posted', tid,
                            ledger.transfer_json(tid, cust_id, merch_id, o.amount, o.currency, NULL, '{}', NULL, p_id, now_at,
                                                    ledger.entry_json(cust_id, c.seq, -o.amount, c.posted) || ','
                                                    || ledger.entry_json(merch_id, (m.leg).seq, o.amount,
                                                                            (m.leg).posted)));
    doc := ledger.order_json(o, cust_id, merch_id, o.status);
    events := ledger.ho_ev(events, p_emit, p_tenant, 'order.paid', p_id, doc);
    outcome := 'ok';
END;
$$;

-- cancel: created -> cancelled (not past its time), the event order.cancelled.
CREATE FUNCTION ledger.order_cancel(p_tenant text, p_id text, p_emit boolean, OUT outcome text, OUT doc text,
                                    OUT events text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
BEGIN
    FOR attempt IN 1..3 LOOP
        UPDATE ledger.orders x SET status = 'cancelled'
         WHERE x.tenant = p_tenant AND x.id = p_id AND x.status = 'created' AND x.expires_at > now_at;
        IF FOUND THEN
            doc := ledger.order_doc(p_tenant, p_id);
            events := ledger.ho_ev(events, p_emit, p_tenant, 'order.cancelled', p_id, doc);
            outcome := 'ok';
            RETURN;
        END IF;
        SELECT r.outcome, r.doc, ledger.ho_ev(events, p_emit, p_tenant, 'order.expired', p_id, r.expired)
          INTO outcome, doc, events FROM ledger.order_refused(p_tenant, p_id, 'created', now_at) r;
        IF outcome IS NOT NULL THEN
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'order_cancel: the order kept changing; retry';
END;
$$;

-- refund: the order read locked (concurrent refunds queue on its row),
-- paid or partially_refunded, amount within what is left (p_amount 0: all
-- of it); the transfer merchant -> customer with order_id (the merchant
-- under the debit's guard), legs in the global order; refunded += amount,
-- status partially_refunded or refunded; events transfer.posted and
-- order.refunded.
CREATE FUNCTION ledger.order_refund(p_tenant text, p_id text, p_amount bigint, p_emit boolean,
                                    OUT outcome text, OUT doc text, OUT events text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    tid text := ledger.ho_new_id('tr_');
    o ledger.orders;
    cust_id text;
    merch_id text;
    rest bigint;
    amt bigint;
    mg ledger.ho_leg;
    cl ledger.ho_leg;
    p record;
BEGIN
    SELECT * INTO o FROM ledger.orders x WHERE x.tenant = p_tenant AND x.id = p_id FOR UPDATE;
    IF NOT FOUND OR o.status NOT IN ('paid', 'partially_refunded') THEN
        SELECT r.outcome, r.doc, ledger.ho_ev(events, p_emit, p_tenant, 'order.expired', p_id, r.expired)
          INTO outcome, doc, events FROM ledger.order_refused(p_tenant, p_id, 'paid', now_at) r;
        RETURN;
    END IF;
    rest := o.amount - o.refunded;
    amt := CASE WHEN p_amount > 0 THEN p_amount ELSE rest END;
    IF amt > rest OR amt <= 0 THEN
        outcome := 'too_much'; doc := '{"refundable":' || rest || '}';
        RETURN;
    END IF;
    SELECT ca.id, ma.id INTO cust_id, merch_id FROM ledger.accounts ca, ledger.accounts ma
     WHERE ca.aid = o.customer AND ma.aid = o.merchant;
    IF merch_id COLLATE "C" < cust_id COLLATE "C" THEN
        mg := ledger.ho_debit(p_tenant, merch_id, o.currency, tid, amt, now_at);
        IF mg.aid IS NOT NULL THEN
            cl := ledger.ho_credit(p_tenant, cust_id, o.currency, tid, amt, now_at);
        END IF;
    ELSE
        cl := ledger.ho_credit(p_tenant, cust_id, o.currency, tid, amt, now_at);
        IF cl.aid IS NOT NULL THEN
            mg := ledger.ho_debit(p_tenant, merch_id, o.currency, tid, amt, now_at);
        END IF;
    END IF;
    IF mg.aid IS NULL OR cl.aid IS NULL THEN
        IF mg.aid IS NOT NULL THEN
            PERFORM ledger.ho_unpost(mg.aid, -amt, 0);
        END IF;
        IF cl.aid IS NOT NULL THEN
            PERFORM ledger.ho_unpost(cl.aid, amt, 0);
        END IF;
        PERFORM 1 FROM ledger.accounts a WHERE a.aid IN (o.customer, o.merchant) ORDER BY a.tenant, a.id FOR NO KEY UPDATE;
        SELECT x.code, x.extra INTO p FROM (
            SELECT 0 AS ord, l.* FROM ledger.ho_leg_problem(p_tenant, merch_id, o.currency, amt, true, 0, 0) l
            UNION ALL
            SELECT 1, l.* FROM ledger.ho_leg_problem(p_tenant, cust_id, o.currency, 0, false, amt, 0) l
        ) x WHERE x.rank < 9 ORDER BY x.rank, x.ord LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'order_refund: the accounts kept changing; retry';
        END IF;
        outcome := p.code; doc := p.extra;
        RETURN;
    END IF;
    UPDATE ledger.orders x SET refunded = x.refunded + amt,
                               status = CASE WHEN x.refunded + amt = x.amount THEN 'refunded' ELSE 'partially_refunded' END
     WHERE x.tenant = p_tenant AND x.id = p_id
    RETURNING x.* INTO o;
    INSERT INTO ledger.transfers (tenant, id, from_account, to_account, from_seq, to_seq, amount, currency, metadata,
                                  order_id, params, created_at)
        VALUES (p_tenant, tid, o.merchant, o.customer, mg.seq, cl.seq, amt, o.currency, '{}', p_id, '{"kind":"order"}',
                now_at);
    PERFORM ledger.ho_entries(tid, mg, -amt, cl, amt);
    events := ledger.ho_ev(events, p_emit, p_tenant, 'transfer.posted', tid,
                            ledger.transfer_json(tid, merch_id, cust_id, amt, o.currency, NULL, '{}', NULL, p_id, now_at,
                                                    ledger.entry_json(merch_id, mg.seq, -amt, mg.posted) || ','
                                                    || ledger.entry_json(cust_id, cl.seq, amt, cl.posted)));
    doc := ledger.order_json(o, cust_id, merch_id, o.status);
    events := ledger.ho_ev(events, p_emit, p_tenant, 'order.refunded', p_id, doc);
    outcome := 'ok';
END;
$$;

-- GET /v1/orders: newest first, by status and/or customer; after: the
-- position (created_at in µs since the epoch, id) of the previous page's
-- last order. A created order past its time is shown as expired.
CREATE FUNCTION ledger.orders_list(p_tenant text, p_status text, p_customer text, p_limit integer, p_after_us bigint,
                                   p_after_id text)
RETURNS TABLE (doc text, created_us bigint, id text)
LANGUAGE sql STABLE AS $$
    SELECT ledger.order_json(o, c.id, m.id,
                             CASE WHEN o.status = 'created' AND o.expires_at <= clock_timestamp() THEN 'expired'
                                  ELSE o.status END),
           (extract(epoch FROM o.created_at) * 1000000)::bigint, o.id
      FROM ledger.orders o JOIN ledger.accounts c ON c.aid = o.customer JOIN ledger.accounts m ON m.aid = o.merchant
     WHERE o.tenant = p_tenant
       AND (p_status IS NULL OR o.status = p_status)
       AND (p_customer IS NULL
            OR o.customer = (SELECT a.aid FROM ledger.accounts a WHERE a.tenant = p_tenant AND a.id = p_customer))
       AND (p_after_id IS NULL
            OR (o.created_at, o.id) < (timestamptz 'epoch' + p_after_us * interval '1 microsecond', p_after_id))
     ORDER BY o.created_at DESC, o.id DESC
     LIMIT p_limit
$$;

-- The expiry sweeper: up to p_limit created orders past their time, of
-- any tenant (orders_open_by_expiry), SKIP LOCKED. Returns how many.
CREATE FUNCTION ledger.orders_sweep(p_limit integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    r record;
    k bigint := 0;
    doc text;
BEGIN
    FOR r IN SELECT x.tenant, x.id FROM ledger.orders x WHERE x.status = 'created' AND x.expires_at <= now_at
              ORDER BY x.expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED LOOP
        doc := ledger.order_expire(r.tenant, r.id, now_at);
        IF doc IS NOT NULL THEN
            PERFORM ledger.ho_ev(NULL, true, r.tenant, 'order.expired', r.id, doc);
            k := k + 1;
        END IF;
    END LOOP;
    RETURN k;
END;
$$;

-- 013's hook of a hot account's inbox (a debit refused for insufficient
-- funds, GET of the account): the consolidation.
CREATE OR REPLACE FUNCTION ledger.inbox_post(p_aid bigint) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN EXISTS (SELECT 1 FROM ledger.inbox i WHERE i.account = p_aid)
                THEN greatest(ledger.inbox_consolidate(p_aid, true, 0), 0) ELSE 0 END
$$;
