-- 012_ledger: the relational ledger (issue #16, docs/ledger-engine.md).
-- The money moves in typed tables of the schema "ledger"; the idempotency
-- records stay items of the tenant's system table "ol:ledger" (public.items),
-- the events stay rows of public.outbox, written in the same transaction.
--
-- Pre-release: this migration does not convert ledger data of the item
-- layout of earlier versions; it refuses a database that holds some.
DO $$
DECLARE
    n_accounts bigint;
    n_other bigint;
BEGIN
    SELECT count(*) FILTER (WHERE i.pk LIKE 'ACCOUNT#%' AND i.sk = 'METADATA'),
           count(*) FILTER (WHERE i.pk LIKE 'TXN#%' OR i.pk LIKE 'HOLD#%' OR i.pk LIKE 'ORDER#%'
                            OR i.pk LIKE 'INBOX#%' OR i.pk LIKE 'WORLD#%' OR i.pk LIKE 'ACCOUNT#%')
      INTO n_accounts, n_other
      FROM public.items i JOIN public.item_tables t ON t.id = i.table_id
     WHERE t.name = 'ol:ledger';
    IF n_other > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'OLM01',
            MESSAGE = format('this database holds ledger data in the item layout of an earlier version (%s accounts, '
                             '%s ledger items in the system table "ol:ledger")', n_accounts, n_other),
            HINT = 'The relational ledger cannot take it over: migrate a fresh database, or keep the earlier '
                   'version for this one.';
    END IF;
END;
$$;

CREATE SCHEMA ledger;
-- Only for the CREATE statements below (the migration's transaction):
-- every function body names its tables with the schema.
SET LOCAL search_path = ledger, public;
-- Constraints on the money path (measured, docs/ledger-engine.md
-- "Constraints that cost"): PostgreSQL re-reads and prepares EVERY CHECK
-- constraint of a table for each INSERT or UPDATE statement, and runs each
-- foreign key check as a query of its own; with CHECKs and FKs on every
-- column they were 18 % and 9 % of the server's CPU per transfer. So the
-- rows written by every money request (accounts, entries, transfers) keep
-- one CHECK, the guard's invariant; the formats of columns that never
-- change are checked once, when the row is inserted (a trigger on
-- accounts; the daemon validates a request before any SQL and the money
-- functions check their amount); entries and transfers reference accounts
-- by the aid that the leg's own UPDATE returned, so they need no foreign
-- key. Tables written less often (holds, orders, inbox) keep theirs.
--
-- Accounts. aid is the surrogate the other tables reference (8 bytes in
-- every entry instead of tenant + text id); (tenant, id) is the API's key
-- and the GLOBAL LOCK ORDER: a request that changes several accounts
-- updates them in ascending (tenant, id) order (bytewise, COLLATE "C"),
-- which it knows from the request alone, before reading anything.
--
-- posted     sum of the account's entries
-- pending    sum of its open holds
-- seq, head  the last entry's seq and hash (the chain's head); prev_head
--            is the head before the last change, so that one UPDATE can
--            compute the new head from the old one and still return both
--            (RETURNING sees only new values in PostgreSQL 15)
-- last_at    posted_at of the last entry: the next is strictly later
-- inbox_granted  room handed to the inbox shards (hot merchant), that a
--            direct credit may not use (see inbox_shards)
CREATE TABLE accounts (
    aid             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant          text NOT NULL REFERENCES public.tenants (name),
    id              text COLLATE "C" NOT NULL,     -- ^[A-Za-z0-9_.:-]{1,64}$ (accounts_valid)
    currency        text NOT NULL,                  -- ^[A-Z]{3}$ (accounts_valid)
    owner           text,
    status          text NOT NULL DEFAULT 'active', -- active | frozen (accounts_valid)
    posted          bigint NOT NULL DEFAULT 0,
    pending         bigint NOT NULL DEFAULT 0,      -- >= 0 (accounts_valid)
    overdraft_limit bigint NOT NULL DEFAULT 0,      -- >= 0 (accounts_valid)
    inbox_granted   bigint NOT NULL DEFAULT 0,
    version         bigint NOT NULL DEFAULT 1,
    seq             bigint NOT NULL DEFAULT 0,
    head            bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000',
    prev_head       bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000',
    last_at         timestamptz NOT NULL DEFAULT '-infinity',
    metadata        text NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The guard, once more as a constraint: no committed state may break it.
    CHECK (posted - pending >= -overdraft_limit),
    UNIQUE (tenant, id)
);
CREATE INDEX accounts_by_owner ON accounts (tenant, owner, id) WHERE owner IS NOT NULL;

-- The formats, checked when a row is inserted or one of these columns is
-- named in an UPDATE's SET (freeze, holds): not on every transfer.
CREATE FUNCTION accounts_valid() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id !~ '^[A-Za-z0-9_.:-]{1,64}$' OR NEW.currency !~ '^[A-Z]{3}$'
       OR NEW.status NOT IN ('active', 'frozen') OR NEW.pending < 0 OR NEW.overdraft_limit < 0
       OR NEW.inbox_granted < 0 THEN
        RAISE EXCEPTION USING ERRCODE = '23514', MESSAGE = format('invalid account row (%s)', NEW.id);
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER accounts_valid BEFORE INSERT OR UPDATE OF id, currency, status, pending, overdraft_limit, inbox_granted
    ON accounts FOR EACH ROW EXECUTE FUNCTION accounts_valid();
-- /v1/audit/verify walks the accounts of a currency in pages that start
-- after the last id the previous page read ("id > $after ORDER BY id LIMIT
-- n"): the id as the last key column makes each page a range scan. The
-- index costs the money path nothing: its columns never change, so the
-- legs' updates stay HOT.
CREATE INDEX accounts_by_currency ON accounts (tenant, currency, id);

-- Entries: append-only, one per posting to a real account, chained per
-- account (docs/ledger-engine.md "The hash chain").
CREATE TABLE entries (
    account       bigint NOT NULL,                -- accounts.aid, as the leg's UPDATE returned it
    seq           bigint NOT NULL,
    transfer_id   text COLLATE "C" NOT NULL,
    amount        bigint NOT NULL,
    balance_after bigint NOT NULL,
    posted_at     timestamptz NOT NULL,
    hash          bytea NOT NULL,                 -- SHA-256: 32 bytes
    prev_hash     bytea NOT NULL,
    PRIMARY KEY (account, seq)
);
-- /entries?from=&to=, /balance?at=, /statement: time ranges of one account.
CREATE INDEX entries_by_time ON entries (account, posted_at);

CREATE FUNCTION entries_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'OLE01',
        MESSAGE = format('ledger entries are append-only (%s refused)', TG_OP);
END;
$$;
-- Statement-level: refuses the statement even when it matches no row, and
-- TRUNCATE too; costs nothing on INSERT.
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION entries_append_only();

-- Transfers. A NULL account is @world:<currency>: the @world side of a
-- credit or debit is this row itself (no account row, no entry, nothing
-- locked); @world's balance is derived from these rows (transfers_world).
CREATE TABLE transfers (
    tenant       text NOT NULL,
    id           text COLLATE "C" NOT NULL,
    -- accounts.aid as the legs returned them; NULL = @world:<currency>. At
    -- most one is NULL and they differ: the functions refuse anything else
    -- (from = to is 422 same_account before any SQL).
    from_account bigint,
    to_account   bigint,
    -- the seq of each leg's entry (NULL for @world, and for a credit that
    -- went to a hot account's inbox): the transfer's document reads its
    -- entries by primary key (account, seq)
    from_seq     bigint,
    to_seq       bigint,
    amount       bigint NOT NULL,                 -- > 0, checked by the functions
    currency     text NOT NULL,
    description  text,
    metadata     text NOT NULL DEFAULT '{}',
    hold_id      text,
    order_id     text,
    -- the parameters a reused client id is compared on (canonical JSON)
    params       text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);
-- /v1/audit/verify: the @world legs of a currency, summed from the index
-- in pages by id (as accounts_by_currency).
CREATE INDEX transfers_world ON transfers (tenant, currency, id) INCLUDE (amount, from_account)
    WHERE from_account IS NULL OR to_account IS NULL;

-- Holds: pending amounts of the from account.
CREATE TABLE holds (
    tenant       text NOT NULL,
    id           text COLLATE "C" NOT NULL,
    from_account bigint NOT NULL REFERENCES ledger.accounts (aid),
    to_account   bigint REFERENCES ledger.accounts (aid),
    amount       bigint NOT NULL CHECK (amount > 0),
    captured     bigint NOT NULL DEFAULT 0 CHECK (captured >= 0 AND captured <= amount),
    currency     text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'captured', 'voided', 'expired')),
    expires_at   timestamptz NOT NULL,
    transfer_id  text,
    metadata     text NOT NULL DEFAULT '{}',
    params       text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);
-- The sweeper's sparse index: only pending holds are in it.
CREATE INDEX holds_open_by_expiry ON holds (expires_at) WHERE status = 'pending';

-- Orders.
CREATE TABLE orders (
    tenant      text NOT NULL,
    id          text COLLATE "C" NOT NULL,
    customer    bigint NOT NULL REFERENCES ledger.accounts (aid),
    merchant    bigint NOT NULL REFERENCES ledger.accounts (aid),
    amount      bigint NOT NULL CHECK (amount > 0),
    refunded    bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= amount),
    currency    text NOT NULL,
    status      text NOT NULL DEFAULT 'created'
                CHECK (status IN ('created', 'paid', 'cancelled', 'expired', 'refunded', 'partially_refunded')),
    transfer_id text,
    expires_at  timestamptz NOT NULL,
    paid_at     timestamptz,
    metadata    text NOT NULL DEFAULT '{}',
    params      text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, id),
    CHECK (customer <> merchant)
);
CREATE INDEX orders_open_by_expiry ON orders (expires_at) WHERE status = 'created';
CREATE INDEX orders_by_customer ON orders (tenant, customer, created_at, id);
CREATE INDEX orders_by_status ON orders (tenant, status, created_at, id);
CREATE INDEX orders_by_created ON orders (tenant, created_at, id);

-- The hot merchant's inbox. A settlement whose merchant row is locked by
-- another transaction does not wait: it takes room in one of the
-- account's 16 shards (a row lock on the shard, not on the account) and
-- inserts its credit here; consolidation posts the credits as entries.
-- room: the headroom below 2^63-1 handed to the shard by the last
-- consolidation ((2^63-1 - posted) / 16 each, accounts.inbox_granted is the
-- sum), so the shards can never together overflow the account; a credit
-- that does not fit its shard's room goes the direct way instead (which
-- consolidates first, and answers 422 amount_overflow when even that
-- does not fit).
CREATE TABLE inbox_shards (
    account bigint NOT NULL REFERENCES ledger.accounts (aid),
    shard   smallint NOT NULL CHECK (shard BETWEEN 0 AND 15),
    total   bigint NOT NULL DEFAULT 0 CHECK (total >= 0),
    room    bigint NOT NULL DEFAULT 0 CHECK (room >= 0),
    PRIMARY KEY (account, shard),
    CHECK (total <= room)
);
CREATE TABLE inbox (
    account     bigint NOT NULL REFERENCES ledger.accounts (aid),
    n           bigint GENERATED ALWAYS AS IDENTITY,
    transfer_id text COLLATE "C" NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account, n)
);
-- The consolidation sweeper finds accounts with credits waiting.
CREATE INDEX inbox_by_at ON inbox (at);

-- ---------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------

-- RFC 3339 with microseconds in UTC, as the API writes times
-- (util_format_time): 2026-12-07T15:01:02.123456Z. Exact for the range of
-- timestamptz the ledger writes (years 1000-9999). These helpers are STABLE
-- (to_char is), not IMMUTABLE: a SQL function declared more strictly than
-- its body is not inlined, and a call that is not inlined costs more than
-- the whole expression.
CREATE FUNCTION rfc3339(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The canonical bytes of an entry (docs/ledger-engine.md): the same JSON
-- text the item-layer ledger of earlier versions hashed, keys sorted, no spaces.
-- Ids cannot contain characters that JSON escapes (accounts.id CHECK).
CREATE FUNCTION entry_canonical(account text, amount bigint, balance_after bigint, posted_at timestamptz,
                                seq bigint, transfer_id text) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT convert_to('{"account":"' || account || '","amount":' || amount || ',"balance_after":' || balance_after
                      || ',"posted_at":"' || ledger.rfc3339(posted_at) || '","seq":' || seq
                      || ',"transfer_id":"' || transfer_id || '"}', 'UTF8')
$$;

-- hash = SHA-256(prev_hash || canonical).
CREATE FUNCTION entry_hash(prev bytea, account text, amount bigint, balance_after bigint, posted_at timestamptz,
                           seq bigint, transfer_id text) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(prev || ledger.entry_canonical(account, amount, balance_after, posted_at, seq, transfer_id))
$$;

-- The time of an account's next entry: now, or 1 µs after its last one.
CREATE FUNCTION next_at(last_at timestamptz, now_at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT greatest(now_at, last_at + interval '1 microsecond')
$$;

-- Raises SQLSTATE code with a message: stops a pipeline from inside SQL.
CREATE FUNCTION fail(code text, msg text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = msg;
END;
$$;
