-- 017_outbox_next_n: ol_outbox_next_n() (sql/007) in PL/pgSQL. As a
-- LANGUAGE sql function that cannot be inlined (it is VOLATILE and called
-- in an INSERT's VALUES), its body was parsed and planned again at every
-- call: about 120 µs of PostgreSQL CPU per event, a fifth of a transfer's
-- database time (docs/performance.md, "The outbox's n"). PL/pgSQL keeps
-- the plan of its query for the session. Same answer: the next n of the
-- current transaction, from 0.

CREATE OR REPLACE FUNCTION ol_outbox_next_n() RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT coalesce(max(o.n) + 1, 0) FROM outbox o WHERE o.txid = pg_current_xact_id());
END;
$$;
