-- 015_ledger_reads: what the ledger's reads need besides plain statements
-- (issue #16, docs/ledger.md "Reads"): the hash chain's check, run by the
-- server next to the entries, and one page of the audit of a currency as
-- one call. Everything here only reads.

-- The check of an account's chain (docs/ledger.md "The hash chain"), walking
-- its entries by the primary key (account, seq) in one pass, p_limit entries
-- at most (NULL: all) after seq p_after, whose hash was p_prev and after which
-- the balance was p_sum (0, 32 zero bytes, 0 from the start): the k-th entry
-- of the walk must have seq p_after + k, prev_hash the previous entry's hash
-- (p_prev for the first), balance_after p_sum + the amounts so far, and
-- hash = SHA-256(prev_hash || canonical bytes) (ledger.entry_hash). Returns
-- how many entries it read, the seq the first wrong one should have had
-- (NULL: none), the balance after the last one (numeric: a tampered amount
-- cannot overflow the check) and the last hash. The daemon's verify calls it
-- for one part of a long chain at a time, in one snapshot (src/ledger/history.c);
-- verify_chain below for all of it.
-- STABLE: called from a statement, it reads that statement's snapshot.
-- PL/pgSQL, not SQL, although the body is one query: PL/pgSQL keeps the
-- query's plan for the session, where a SQL function called from FROM is
-- planned again at each call; the audit's page calls it once per account
-- (measured: a page of 1,000 accounts of 3 entries, 410 ms as SQL functions,
-- 110 ms as PL/pgSQL).
CREATE FUNCTION ledger.chain_part(p_aid bigint, p_id text, p_after bigint, p_prev bytea, p_sum numeric, p_limit bigint,
                                  OUT entries bigint, OUT first_bad_seq bigint, OUT balance numeric, OUT last_hash bytea)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    WITH walk AS (
        SELECT e.hash, e.amount,
               row_number() OVER w AS pos,
               e.seq = p_after + row_number() OVER w
               AND e.prev_hash = coalesce(lag(e.hash) OVER w, p_prev)
               AND e.balance_after = p_sum + sum(e.amount) OVER w
               AND e.hash = ledger.entry_hash(e.prev_hash, p_id, e.amount, e.balance_after, e.posted_at, e.seq, e.transfer_id)
                   AS good
          FROM (SELECT * FROM ledger.entries x WHERE x.account = p_aid AND x.seq > p_after
                 ORDER BY x.seq LIMIT p_limit) e
        WINDOW w AS (ORDER BY e.seq ROWS UNBOUNDED PRECEDING)
    )
    SELECT count(*), p_after + min(pos) FILTER (WHERE NOT good), p_sum + coalesce(sum(amount), 0),
           coalesce((array_agg(hash ORDER BY pos DESC))[1], p_prev)
      INTO entries, first_bad_seq, balance, last_hash
      FROM walk;
END;
$$;

-- The whole chain of an account, and the account row against it: seq = the
-- number of entries, head = the last hash. first_bad_seq is the first wrong
-- entry's, or, when every entry is right and the row disagrees, one past the
-- shorter of the two (NULL: all good); balance_matches: no bad entry and
-- posted = the sum of the amounts. (The daemon's verify judges the row the
-- same way after walking the chain in parts.)
CREATE FUNCTION ledger.verify_chain(p_aid bigint, p_id text, p_seq bigint, p_head bytea, p_posted bigint,
                                    OUT entries bigint, OUT first_bad_seq bigint, OUT balance_matches boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    c record;
BEGIN
    c := ledger.chain_part(p_aid, p_id, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea,
                           0, NULL);
    entries := c.entries;
    first_bad_seq := coalesce(c.first_bad_seq, CASE WHEN p_seq <> c.entries OR p_head <> c.last_hash
                                                    THEN least(c.entries, p_seq) + 1 END);
    balance_matches := first_bad_seq IS NULL AND c.balance = p_posted;
END;
$$;

-- One page of the audit of a currency (docs/ledger.md "Auditing a
-- currency"), or the part of it up to a long chain. A pass reads the
-- currency's accounts in id order (accounts_by_currency), each one's chain
-- checked (verify_chain), its posted balance and its inbox credits not yet
-- consolidated summed; then the @world legs (transfers with a NULL side,
-- transfers_world) in id order. A page takes at most p_limit accounts, and
-- stops after the account whose chain took it to p_max entries; the @world
-- legs are read at most p_max (less what the page read) at a time.
--
-- An account whose row says its chain is longer than p_part entries is not
-- walked here: the call stops before it and names it (long_id, with its
-- balance and inbox credits in long_balance), the daemon walks that chain
-- in parts as GET /v1/accounts/{id}/verify does, then calls again after it
-- with what is left of p_limit and p_max. The daemon makes these calls in
-- one REPEATABLE READ READ ONLY transaction: one snapshot for the page.
-- (STABLE: every query here reads the calling statement's snapshot.)
--
-- p_world, p_after: where the pass is (the accounts after p_after; the
-- @world legs after p_after; NULL: from the start). p_snap: the first page's
-- snapshot (NULL on the first page).
-- Out: accounts verified by this call, the entries and legs it read, the sum
-- of their balances (posted and inbox) and of the @world legs, the ids of
-- the accounts that did not verify (a JSON array), where the next call
-- starts, whether the pass is done, the snapshot to carry (first page of
-- several), and on the last page of several whether the tenant's ledger
-- moved since p_snap: a change writes its event (public.outbox) in its own
-- transaction, so a row of the tenant that p_snap did not see and this
-- page's snapshot does.
CREATE FUNCTION ledger.audit_page(p_tenant text, p_currency text, p_world boolean, p_after text, p_limit integer,
                                  p_max bigint, p_snap text, p_part bigint,
                                  OUT accounts integer, OUT n_read bigint, OUT balances numeric, OUT world numeric,
                                  OUT failed text, OUT next_world boolean, OUT next_after text, OUT done boolean,
                                  OUT snap text, OUT moved boolean, OUT long_id text, OUT long_balance numeric)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r record;
    v record;
    more boolean := false;
    bad text[] := '{}';
    n_legs bigint;
    last_id text;
BEGIN
    accounts := 0;
    n_read := 0;
    balances := 0;
    world := 0;
    next_world := p_world;
    next_after := p_after;
    done := false;
    IF NOT p_world THEN
        FOR r IN SELECT a.aid, a.id, a.seq, a.head, a.posted,
                        (SELECT coalesce(sum(i.amount), 0) FROM ledger.inbox i WHERE i.account = a.aid) AS inbox
                   FROM ledger.accounts a
                  WHERE a.tenant = p_tenant AND a.currency = p_currency AND a.id > coalesce(p_after, '') COLLATE "C"
                  ORDER BY a.id
                  LIMIT p_limit + 1
        LOOP
            IF accounts >= p_limit OR n_read >= p_max THEN
                more := true;
                EXIT;
            END IF;
            IF r.seq > p_part THEN
                -- a long chain: the daemon walks it in parts
                long_id := r.id;
                long_balance := r.posted + r.inbox;
                failed := to_json(bad)::text;
                RETURN;
            END IF;
            SELECT * INTO v FROM ledger.verify_chain(r.aid, r.id, r.seq, r.head, r.posted);
            accounts := accounts + 1;
            n_read := n_read + v.entries;
            balances := balances + r.posted + r.inbox;
            IF NOT v.balance_matches THEN
                bad := bad || r.id::text;
            END IF;
            next_after := r.id;
        END LOOP;
        IF NOT more THEN
            next_world := true;
            next_after := NULL;
        END IF;
    END IF;
    IF next_world AND n_read < p_max THEN
        -- @world: -amount for a credit (from @world), +amount for a debit
        SELECT count(*), coalesce(sum(CASE WHEN t.from_account IS NULL THEN -t.amount ELSE t.amount END), 0), max(t.id)
          INTO n_legs, world, last_id
          FROM (SELECT w.id, w.amount, w.from_account
                  FROM ledger.transfers w
                 WHERE w.tenant = p_tenant AND w.currency = p_currency
                   AND (w.from_account IS NULL OR w.to_account IS NULL)
                   AND w.id > coalesce(next_after, '') COLLATE "C"
                 ORDER BY w.id
                 LIMIT p_max - n_read) t;
        IF n_legs < p_max - n_read THEN
            done := true;
            next_after := NULL;
        ELSE
            next_after := last_id;
        END IF;
        n_read := n_read + n_legs;
    END IF;
    failed := to_json(bad)::text;
    IF done THEN
        IF p_snap IS NOT NULL THEN
            moved := EXISTS (SELECT 1 FROM public.outbox o
                              WHERE o.tenant = p_tenant AND o.txid >= pg_snapshot_xmin(p_snap::pg_snapshot)
                                AND NOT pg_visible_in_snapshot(o.txid, p_snap::pg_snapshot));
        END IF;
    ELSIF p_snap IS NULL THEN
        snap := pg_current_snapshot()::text;
    END IF;
END;
$$;
