# bench/ledger.sh — the ledger's scenarios (issue #6), sourced by bench/run.sh.
#
# ledger_transfer  POST /v1/transfers between two of 1,000 random accounts, a
#                  fresh Idempotency-Key each (claim, guarded updates, entries
#                  with their hash chain, saved response: one transaction)
# ledger_credit    POST /v1/accounts/{random}/credits from @world
# ledger_half      ledger_transfer paced to half of its measured peak, for the
#                  latency at half load
# pgbench_tpcb     reference: pgbench's built-in tpcb-like, same PostgreSQL
# flash_sale_*     2,000 order settlements to one merchant / to 100 (issue #7)
# pg_transfer_fn   reference: one PL/pgSQL call per transfer that writes the
#                  same rows on plain tables (key, two guarded account updates
#                  in id order, two entries with a chained hash, the transfer,
#                  the saved response), driven by pgbench
# shellcheck shell=bash

LEDGER_ACCOUNTS=${BENCH_LEDGER_ACCOUNTS:-1000}

ledger_setup() {
    [ -n "${LEDGER_READY:-}" ] && return 0
    "$PY" bench/ledger_setup.py "$DAEMON_URL" "$API_KEY" "$LEDGER_ACCOUNTS" || return 1
    LEDGER_READY=1
}

ledger_transfer() {
    ledger_setup || return 1
    wrk_run daemon post_transfer.lua /v1/transfers BENCH_MODE=transfer BENCH_ACCOUNTS="$LEDGER_ACCOUNTS"
}

ledger_credit() {
    ledger_setup || return 1
    wrk_run daemon post_transfer.lua /v1/transfers BENCH_MODE=credit BENCH_ACCOUNTS="$LEDGER_ACCOUNTS"
}

# The rate of a scenario already run (its WRKJSON line), or nothing.
scenario_rps() {
    grep '^WRKJSON ' "$LOG_DIR/$1.log" 2>/dev/null | tail -n 1 |
        "$PY" -c 'import json, sys; print(json.loads(sys.stdin.read()[8:]).get("rps") or "")' 2>/dev/null
}

# Each connection pauses before each request so that the whole runs at half
# of ledger_transfer's peak: one probe run measures the latency at that pace
# and corrects the pause once.
ledger_half() {
    ledger_setup || return 1
    local peak
    peak=$(scenario_rps ledger_transfer)
    if [ -z "$peak" ]; then
        echo "ledger_half needs ledger_transfer to run first (in the same bench/run.sh)"
        return 1
    fi
    local delay probe
    delay=$("$PY" -c "print(max(0, int(1000 * $CONNECTIONS / ($peak / 2))))")
    probe=$(BENCH_KEY=$API_KEY BENCH_MODE=transfer BENCH_ACCOUNTS=$LEDGER_ACCOUNTS BENCH_DELAY_MS=$delay \
        wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d3s -s bench/wrk/post_transfer.lua "$DAEMON_URL/v1/transfers" |
        grep '^WRKJSON ' | tail -n 1)
    delay=$(PROBE=${probe#WRKJSON } "$PY" -c "
import json, os
r = json.loads(os.environ['PROBE'])
lat = max(0.0, 1000 * $CONNECTIONS / r['rps'] - $delay)   # ms per request spent waiting for the answer
print(max(0, int(round(1000 * $CONNECTIONS / ($peak / 2) - lat))))")
    echo "peak $peak req/s: each of $CONNECTIONS connections pauses ${delay} ms before a request"
    wrk_run daemon post_transfer.lua /v1/transfers BENCH_MODE=transfer BENCH_ACCOUNTS="$LEDGER_ACCOUNTS" \
        BENCH_DELAY_MS="$delay"
}

pgbench_db() {
    local -a conn=(-h 127.0.0.1 -p "$PGPORT" -U postgres)
    local pgbench=pgbench
    [ -x "${PG_BIN:-}/pgbench" ] && pgbench=$PG_BIN/pgbench
    if [ "$("${PG_BIN:+$PG_BIN/}psql" "${conn[@]}" -d postgres -XtAqc \
            "SELECT 1 FROM pg_database WHERE datname = 'pgbench'")" != 1 ]; then
        "${PG_BIN:+$PG_BIN/}psql" "${conn[@]}" -d postgres -Xqc 'CREATE DATABASE pgbench' || return 1
        echo "+ pgbench -i -s $PGBENCH_SCALE pgbench"
        "$pgbench" "${conn[@]}" -i -q -s "$PGBENCH_SCALE" pgbench 2>&1 | tail -n 2 || return 1
    fi
}

pgbench_tpcb() {
    pgbench_db || return 1
    ITEMS_CLIENTS=$CONNECTIONS pgbench_custom builtin:tpcb-like pgbench
}

pg_transfer_fn() {
    local script=$LOG_DIR/transfer_fn.sql
    "${PG_BIN:+$PG_BIN/}psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d onceledger -Xq <<SQL || return 1
CREATE TABLE IF NOT EXISTS bench_acct (id int PRIMARY KEY, balance bigint NOT NULL, seq bigint NOT NULL DEFAULT 0,
                                       head bytea NOT NULL DEFAULT '\x', version bigint NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS bench_entry (acct int, seq bigint, transfer text NOT NULL, amount bigint NOT NULL,
                                        balance_after bigint NOT NULL, posted_at timestamptz NOT NULL,
                                        hash bytea NOT NULL, prev_hash bytea NOT NULL, PRIMARY KEY (acct, seq));
CREATE INDEX IF NOT EXISTS bench_entry_at ON bench_entry (acct, posted_at);
CREATE TABLE IF NOT EXISTS bench_transfer (id text PRIMARY KEY, src int NOT NULL, dst int NOT NULL,
                                           amount bigint NOT NULL, created_at timestamptz NOT NULL, doc text);
CREATE TABLE IF NOT EXISTS bench_idem (key text PRIMARY KEY, response text, expires_at timestamptz NOT NULL);
INSERT INTO bench_acct (id, balance) SELECT g, 1000000000000 FROM generate_series(0, $((LEDGER_ACCOUNTS - 1))) g
    ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION bench_transfer(k text, a int, b int, amt bigint) RETURNS text
LANGUAGE plpgsql AS \$fn\$
DECLARE
    t text := 'tr_' || k;
    lo int := least(a, b);
    hi int := greatest(a, b);
    r1 record;
    r2 record;
    ra record;
    rb record;
    h bytea;
BEGIN
    INSERT INTO bench_idem (key, expires_at) VALUES (k, now() + interval '1 day');
    -- both rows in id order (no deadlock), the debit guarded
    UPDATE bench_acct SET balance = balance + CASE WHEN id = a THEN -amt ELSE amt END, seq = seq + 1, version = version + 1
        WHERE id = lo AND (id <> a OR balance >= amt) RETURNING id, seq, balance, head INTO r1;
    UPDATE bench_acct SET balance = balance + CASE WHEN id = a THEN -amt ELSE amt END, seq = seq + 1, version = version + 1
        WHERE id = hi AND (id <> a OR balance >= amt) RETURNING id, seq, balance, head INTO r2;
    IF r1.id IS NULL OR r2.id IS NULL THEN
        RAISE EXCEPTION 'insufficient funds';
    END IF;
    IF r1.id = a THEN ra := r1; rb := r2; ELSE ra := r2; rb := r1; END IF;
    h := sha256(ra.head || convert_to(a || ',' || ra.seq || ',' || t || ',' || -amt || ',' || ra.balance, 'UTF8'));
    INSERT INTO bench_entry VALUES (a, ra.seq, t, -amt, ra.balance, clock_timestamp(), h, ra.head);
    UPDATE bench_acct SET head = h WHERE id = a;
    h := sha256(rb.head || convert_to(b || ',' || rb.seq || ',' || t || ',' || amt || ',' || rb.balance, 'UTF8'));
    INSERT INTO bench_entry VALUES (b, rb.seq, t, amt, rb.balance, clock_timestamp(), h, rb.head);
    UPDATE bench_acct SET head = h WHERE id = b;
    INSERT INTO bench_transfer VALUES (t, a, b, amt, now(), '{"status":"posted"}');
    UPDATE bench_idem SET response = '{"status":201}' WHERE key = k;
    RETURN t;
END
\$fn\$;
SQL
    printf '%s\n' "\\set a random(0, $((LEDGER_ACCOUNTS - 1)))" "\\set b random(0, $((LEDGER_ACCOUNTS - 2)))" \
        '\set b :b + (case when :b >= :a then 1 else 0 end)' '\set r random(1, 9000000000000000000)' \
        "SELECT bench_transfer(:client_id || '-' || :r, :a, :b, 1);" >"$script"
    ITEMS_CLIENTS=$CONNECTIONS pgbench_custom "$script" onceledger
}

# The flash sale (issue #7): bench/flash_sale.py does the setup, the timed
# settlements over $CONNECTIONS connections and the checks.
flash_sale() {   # flash_sale MERCHANTS
    echo "+ bench/flash_sale.py URL KEY $1 ${BENCH_FLASH_CUSTOMERS:-2000} $CONNECTIONS"
    "$PY" bench/flash_sale.py "$DAEMON_URL" "$API_KEY" "$1" "${BENCH_FLASH_CUSTOMERS:-2000}" "$CONNECTIONS"
}
