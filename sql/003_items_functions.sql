-- 003_items_functions: SQL support functions for the item layer's compiled
-- expressions (src/items/sql.c, docs/items.md "How expressions become SQL").
-- Functions only. An item is the jsonb of it_item_to_json: every value is an
-- AttributeValue object with exactly one type key ({"N":"1.5"}, {"SS":[..]}),
-- N strings canonical, B canonical base64, set members sorted and unique.
--
-- Conditions never raise. Update values and update steps never raise either:
-- a DynamoDB runtime error travels as an error marker, a two-element jsonb
-- array [rank, message] (items and AttributeValues are always objects, so an
-- array cannot be mistaken for either), and only ol_it_update_end raises it,
-- once, with the error DynamoDB reports first. ol_it_update_end is VOLATILE
-- on purpose: the planner never pre-evaluates it, so an update whose row the
-- WHERE clause rejects never raises, even when all its inputs are constants.
--
-- Errors raised: SQLSTATE OLV01 = ValidationException, MESSAGE = DynamoDB's
-- exact text.

-- ---- conditions ----

-- Orders two AttributeValues of the same scalar type (N numerically, S by
-- UTF-8 bytes, B by bytes): -1, 0, 1; NULL when they cannot be ordered.
CREATE OR REPLACE FUNCTION ol_it_cmp(a jsonb, b jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE
    WHEN a ? 'N' AND b ? 'N' THEN
        sign((a->>'N')::numeric - (b->>'N')::numeric)::integer
    WHEN a ? 'S' AND b ? 'S' THEN
        CASE WHEN (a->>'S') COLLATE "C" < (b->>'S') THEN -1
             WHEN (a->>'S') COLLATE "C" > (b->>'S') THEN 1 ELSE 0 END
    WHEN a ? 'B' AND b ? 'B' THEN
        CASE WHEN decode(a->>'B', 'base64') < decode(b->>'B', 'base64') THEN -1
             WHEN decode(a->>'B', 'base64') > decode(b->>'B', 'base64') THEN 1
             ELSE 0 END
END
$$;

-- Java's String.length() of a string: UTF-16 code units (characters outside
-- the BMP count twice), as DynamoDB's size() counts S.
CREATE OR REPLACE FUNCTION ol_it_utf16_length(s text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE WHEN octet_length(s) = length(s) THEN length(s)
    ELSE 2 * length(s) - length(regexp_replace(s, E'[\\U00010000-\\U0010FFFF]', '', 'g'))
END
$$;

-- size(): characters of S, bytes of B, members of sets, elements of L and
-- M; NULL (no size) for N, BOOL and NULL.
CREATE OR REPLACE FUNCTION ol_it_size(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE
    WHEN v ? 'S' THEN ol_it_utf16_length(v->>'S')
    WHEN v ? 'B' THEN length(decode(v->>'B', 'base64'))
    WHEN v ? 'M' THEN (SELECT count(*) FROM jsonb_object_keys(v->'M'))
    WHEN v ? 'L' THEN jsonb_array_length(v->'L')
    WHEN v ? 'SS' THEN jsonb_array_length(v->'SS')
    WHEN v ? 'NS' THEN jsonb_array_length(v->'NS')
    WHEN v ? 'BS' THEN jsonb_array_length(v->'BS')
END::numeric
$$;

-- size() as an AttributeValue ({"N":"3"}), NULL when there is no size.
CREATE OR REPLACE FUNCTION ol_it_size_av(v jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE WHEN s IS NOT NULL THEN jsonb_build_object('N', s::text) END
FROM ol_it_size(v) AS s
$$;

-- begins_with(a, b): same type, S or B, b a byte prefix of a.
CREATE OR REPLACE FUNCTION ol_it_begins_with(a jsonb, b jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE
    WHEN a ? 'S' AND b ? 'S' THEN starts_with((a->>'S') COLLATE "C", b->>'S')
    WHEN a ? 'B' AND b ? 'B' THEN
        substring(decode(a->>'B', 'base64') FROM 1
                  FOR length(decode(b->>'B', 'base64'))) = decode(b->>'B', 'base64')
    ELSE false
END
$$;

-- contains(a, b): substring of S / B, member of SS / NS / BS (members are
-- canonical, so text equality is value equality), element of L.
CREATE OR REPLACE FUNCTION ol_it_contains(a jsonb, b jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE
    WHEN a ? 'S' THEN b ? 'S' AND strpos((a->>'S') COLLATE "C", b->>'S') > 0
    WHEN a ? 'B' THEN b ? 'B' AND
        position(decode(b->>'B', 'base64') IN decode(a->>'B', 'base64')) > 0
    WHEN a ? 'SS' THEN b ? 'S' AND (a->'SS') ? (b->>'S')
    WHEN a ? 'NS' THEN b ? 'N' AND (a->'NS') ? (b->>'N')
    WHEN a ? 'BS' THEN b ? 'B' AND (a->'BS') ? (b->>'B')
    WHEN a ? 'L' THEN EXISTS (SELECT 1 FROM jsonb_array_elements(a->'L') AS e
                              WHERE e = b)
    ELSE false
END
$$;

-- attribute_type(a, t): t is an S naming a DynamoDB type and a has it.
CREATE OR REPLACE FUNCTION ol_it_is_type(a jsonb, t jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT t ? 'S' AND (t->>'S') IN ('S', 'N', 'B', 'BOOL', 'NULL', 'M', 'L',
                                 'SS', 'NS', 'BS')
       AND a ? (t->>'S')
$$;

-- ---- numbers ----

-- The canonical DynamoDB form of a numeric (no exponent, no trailing zeros,
-- "0" for zero) as {"N":"..."}, or an error marker when it needs more than 38
-- significant digits or leaves 1E-130 .. 9.99..E+125 (checked in DynamoDB's
-- order: overflow, underflow, precision).
CREATE OR REPLACE FUNCTION ol_it_num_av_slow(r numeric) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    t text;
    ip text;
    fp text;
    lead integer;
    nd integer;
BEGIN
    IF r = 0 THEN
        RETURN '{"N":"0"}';
    END IF;
    t := trim_scale(abs(r))::text;
    ip := split_part(t, '.', 1);
    fp := split_part(t, '.', 2);
    IF ip <> '0' THEN
        lead := length(ip) - 1;
        nd := length(rtrim(ip || fp, '0'));
    ELSE
        nd := length(ltrim(fp, '0'));
        lead := -(length(fp) - nd) - 1;
    END IF;
    IF lead > 125 THEN
        RETURN jsonb_build_array(-1, 'Number overflow. Attempting to store a number with magnitude larger than supported range');
    ELSIF lead < -130 THEN
        RETURN jsonb_build_array(-1, 'Number underflow. Attempting to store a number with magnitude smaller than supported range');
    ELSIF nd > 38 THEN
        RETURN jsonb_build_array(-1, 'Attempting to store more than 38 significant digits in a Number');
    END IF;
    RETURN jsonb_build_object('N', CASE WHEN r < 0 THEN '-' ELSE '' END || t);
END
$$;

-- The fast path, inlined into the caller's statement: below 1E+20 with at
-- most 18 decimals a value has at most 38 significant digits and is within
-- range, so trim_scale() gives the canonical form directly. Not STRICT and
-- declared STABLE on purpose: PostgreSQL inlines a SQL function only when its
-- body is no more volatile than its declaration (jsonb_build_object is
-- STABLE) and, for a STRICT one, only when the body is strict (a CASE is not).
CREATE OR REPLACE FUNCTION ol_it_num_av(r numeric) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE WHEN r IS NULL THEN NULL
            WHEN abs(r) < 1e20 AND scale(r) <= 18 THEN jsonb_build_object('N', trim_scale(r)::text)
            ELSE ol_it_num_av_slow(r) END
$$;

-- The same as a raising function for other callers: the canonical text of
-- r, or OLV01 with DynamoDB's message.
CREATE OR REPLACE FUNCTION ol_it_num(r numeric) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    v jsonb := ol_it_num_av(r);
BEGIN
    IF jsonb_typeof(v) = 'array' THEN
        RAISE EXCEPTION USING ERRCODE = 'OLV01', MESSAGE = v->>1;
    END IF;
    RETURN v->>'N';
END
$$;

-- ---- update values (error markers instead of errors) ----

-- An operand read from the old item: the value, or the "does not exist"
-- marker.
CREATE OR REPLACE FUNCTION ol_it_need(v jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT coalesce(v, jsonb_build_array(-1, 'The provided expression refers to an attribute that does not exist in the item'))
$$;

CREATE OR REPLACE FUNCTION ol_it_type_error() RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT jsonb_build_array(-1, 'An operand in the update expression has an incorrect data type')
$$;

-- a + b or a - b: markers pass through (left first), both must be N, the
-- result is exact and checked.
-- Not STRICT so that it is inlined (see ol_it_num_av).
CREATE OR REPLACE FUNCTION ol_it_arith(a jsonb, b jsonb, minus boolean)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN a IS NULL OR b IS NULL OR minus IS NULL THEN NULL
    WHEN jsonb_typeof(a) = 'array' THEN a
    WHEN jsonb_typeof(b) = 'array' THEN b
    WHEN NOT (a ? 'N' AND b ? 'N') THEN ol_it_type_error()
    WHEN minus THEN ol_it_num_av((a->>'N')::numeric - (b->>'N')::numeric)
    ELSE ol_it_num_av((a->>'N')::numeric + (b->>'N')::numeric)
END
$$;

-- list_append(a, b): both L.
CREATE OR REPLACE FUNCTION ol_it_list_append(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE
    WHEN jsonb_typeof(a) = 'array' THEN a
    WHEN jsonb_typeof(b) = 'array' THEN b
    WHEN NOT (a ? 'L' AND b ? 'L') THEN ol_it_type_error()
    ELSE jsonb_build_object('L', (a->'L') || (b->'L'))
END
$$;

-- Union (minus = false) or difference of two member arrays of set type t,
-- sorted as value.c sorts sets: SS by bytes, NS numerically, BS by bytes.
CREATE OR REPLACE FUNCTION ol_it_set_merge(t text, a jsonb, b jsonb, minus boolean)
RETURNS jsonb LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY
        CASE WHEN t = 'NS' THEN m::numeric END,
        CASE WHEN t = 'BS' THEN decode(m, 'base64') END,
        m COLLATE "C"), '[]'::jsonb)
FROM (
    SELECT x AS m FROM jsonb_array_elements_text(a) AS x
    WHERE NOT minus OR NOT (b ? x)
    UNION
    SELECT y FROM jsonb_array_elements_text(b) AS y WHERE NOT minus
) AS s
$$;

-- ADD's new value from the old one (cur, NULL when absent) and the operand:
-- absent takes v, N adds, sets unite, anything else is a type error.
CREATE OR REPLACE FUNCTION ol_it_add_value(cur jsonb, v jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    t text;
BEGIN
    IF cur IS NULL THEN
        RETURN v;
    END IF;
    FOR t IN SELECT jsonb_object_keys(v) LOOP
        IF NOT cur ? t THEN
            RETURN ol_it_type_error();
        END IF;
        IF t = 'N' THEN
            RETURN ol_it_num_av((cur->>'N')::numeric + (v->>'N')::numeric);
        ELSIF t IN ('SS', 'NS', 'BS') THEN
            RETURN jsonb_build_object(t, ol_it_set_merge(t, cur->t, v->t, false));
        END IF;
    END LOOP;
    RETURN ol_it_type_error();
END
$$;

-- DELETE's new value: NULL when the attribute is absent (nothing to do),
-- '{}' when the set becomes empty (the attribute is removed), the smaller
-- set, or a type error.
CREATE OR REPLACE FUNCTION ol_it_delete_value(cur jsonb, v jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    t text;
    r jsonb;
BEGIN
    IF cur IS NULL THEN
        RETURN NULL;
    END IF;
    FOR t IN SELECT jsonb_object_keys(v) LOOP
        IF t NOT IN ('SS', 'NS', 'BS') OR NOT cur ? t THEN
            RETURN ol_it_type_error();
        END IF;
        r := ol_it_set_merge(t, cur->t, v->t, true);
        IF jsonb_array_length(r) = 0 THEN
            RETURN '{}'::jsonb;
        END IF;
        RETURN jsonb_build_object(t, r);
    END LOOP;
    RETURN ol_it_type_error();
END
$$;

-- ---- update steps ----

-- One step of an update applied to acc (the item so far, or the error marker
-- so far). op: 'P' puts v at path, 'R' removes path, 'D' is DELETE's step (v
-- NULL: nothing, '{}': remove, else put). path is the #> path of the
-- attribute ({a,M,b,L,2}). rank is the action's position in the expression:
-- a value error keeps the lowest rank (DynamoDB evaluates every operand
-- before it writes anything), a path error ranks after every value error.
CREATE OR REPLACE FUNCTION ol_it_act(acc jsonb, op "char", path text[], v jsonb,
    rank integer) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n integer := cardinality(path);
    want text;
BEGIN
    IF jsonb_typeof(v) = 'array' THEN
        IF jsonb_typeof(acc) = 'array' AND (acc->>0)::integer < rank THEN
            RETURN acc;
        END IF;
        RETURN jsonb_build_array(rank, v->>1);
    END IF;
    IF jsonb_typeof(acc) = 'array' THEN
        RETURN acc;
    END IF;
    IF op = 'D' THEN
        IF v IS NULL THEN
            RETURN acc;
        END IF;
        IF v = '{}'::jsonb THEN
            op := 'R';
        END IF;
    END IF;
    IF n > 1 THEN
        want := CASE path[n - 1] WHEN 'L' THEN 'array' ELSE 'object' END;
        IF jsonb_typeof(acc #> path[1:n - 1]) IS DISTINCT FROM want THEN
            RETURN jsonb_build_array(1000000 + rank, 'The document path provided in the update expression is invalid for update');
        END IF;
    END IF;
    IF op = 'R' THEN
        RETURN acc #- path;
    END IF;
    RETURN jsonb_set(acc, path, v, true);
END
$$;

-- Sizes as DynamoDB counts them (value.c it_value_size / it_item_size).
CREATE OR REPLACE FUNCTION ol_it_num_size(n text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT (length(trim(BOTH '0' FROM translate(n, '-.', ''))) + 1) / 2 + 1
$$;

CREATE OR REPLACE FUNCTION ol_it_value_size(v jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE
    WHEN v ? 'S' THEN octet_length(v->>'S')::bigint
    WHEN v ? 'N' THEN ol_it_num_size(v->>'N')
    WHEN v ? 'B' THEN length(decode(v->>'B', 'base64'))::bigint
    WHEN v ? 'BOOL' OR v ? 'NULL' THEN 1::bigint
    WHEN v ? 'M' THEN 3 + coalesce((SELECT sum(1 + octet_length(k) + ol_it_value_size(x))
                                    FROM jsonb_each(v->'M') AS e(k, x)), 0)::bigint
    WHEN v ? 'L' THEN 3 + coalesce((SELECT sum(1 + ol_it_value_size(x))
                                    FROM jsonb_array_elements(v->'L') AS x), 0)::bigint
    WHEN v ? 'SS' THEN (SELECT sum(octet_length(m)) FROM jsonb_array_elements_text(v->'SS') AS m)::bigint
    WHEN v ? 'NS' THEN (SELECT sum(ol_it_num_size(m)) FROM jsonb_array_elements_text(v->'NS') AS m)::bigint
    WHEN v ? 'BS' THEN (SELECT sum(length(decode(m, 'base64'))) FROM jsonb_array_elements_text(v->'BS') AS m)::bigint
    ELSE 0::bigint
END
$$;

CREATE OR REPLACE FUNCTION ol_it_item_size(item jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT coalesce(sum(octet_length(k) + ol_it_value_size(x)), 0)::bigint
FROM jsonb_each(item) AS e(k, x)
$$;

-- The end of an update: raises the error marker (OLV01), checks the 400 KB
-- limit, returns the new item. The text form of an item is never shorter
-- than its DynamoDB size, so the exact count runs only for large items.
CREATE OR REPLACE FUNCTION ol_it_update_end(acc jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
BEGIN
    IF jsonb_typeof(acc) = 'array' THEN
        RAISE EXCEPTION USING ERRCODE = 'OLV01', MESSAGE = acc->>1;
    END IF;
    IF octet_length(acc::text) > 409600 AND ol_it_item_size(acc) > 409600 THEN
        RAISE EXCEPTION USING ERRCODE = 'OLV01',
            MESSAGE = 'Item size to update has exceeded the maximum allowed size';
    END IF;
    RETURN acc;
END
$$;

-- Raises an error marker ([rank, message]) as OLV01; the single-SET fast
-- path of sql_update.c calls it only when its value is a marker. VOLATILE so
-- that the planner never evaluates it ahead of the rows it applies to.
CREATE OR REPLACE FUNCTION ol_it_fail(marker jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'OLV01', MESSAGE = marker->>1;
END
$$;
