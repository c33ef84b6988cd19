-- 008_items_set_calls: the slow paths of a single top-level SET as one
-- function call each (src/items/sql_update.c).
--
-- PostgreSQL initialises a statement's whole expression tree at every
-- execution, the branches it will not take included: a sub-SELECT becomes a
-- subplan started each time, every PL/pgSQL function in it is looked up,
-- and inlined SQL functions add their nodes. The guarded debit
-- (SET a = a - :n IF a >= :n) ran 26 % slower than the same UPDATE without
-- its never-taken fallback (pgbench -M prepared, 16 clients: 19.4 k vs
-- 24.0 k tps); with the fallback as one call it runs at 22.6 k.

-- SET <top-level path> = v on acc: a marker in v is raised, an item that
-- might exceed 400 KB goes through the general action (which measures
-- it), else one jsonb_set. v is evaluated once, as the argument.
CREATE OR REPLACE FUNCTION ol_it_set_top(acc jsonb, path text[], v jsonb, extra integer) RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
BEGIN
    IF jsonb_typeof(v) = 'array' THEN
        RETURN ol_it_fail(v);
    END IF;
    IF pg_column_size(acc) + pg_column_size(v) + extra > 409600 THEN
        RETURN ol_it_update_end(ol_it_act(acc, 'P', path, v, 0));
    END IF;
    RETURN jsonb_set(acc, path, v, true);
END $$;

-- SET a = a + n (minus: a - n) on acc, every case the inline fast path
-- does not cover: a missing or non-N attribute, a result that needs the
-- range check, an item near 400 KB.
CREATE OR REPLACE FUNCTION ol_it_set_counter(acc jsonb, path text[], n jsonb, minus boolean, extra integer)
RETURNS jsonb LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
BEGIN
    RETURN ol_it_set_top(acc, path, ol_it_arith(ol_it_need(acc #> path), n, minus), extra);
END $$;
