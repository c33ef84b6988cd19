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
# pg_transfer_fn   reference (issue #16): ledger_proto.transfer(), one
#                  PL/pgSQL call per executed idempotent transfer writing every
#                  row the daemon writes (the key record claimed and saved in
#                  items, ledger.transfer(): both accounts under the guard, two
#                  chained entries, the transfer; the outbox event), driven by
#                  pgbench
# hold_capture     POST /v1/holds then POST /v1/holds/{id}/capture (issue #16)
# order_settle     POST /v1/orders then POST /v1/orders/{id}/settle (issue #16)
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

# Two requests per operation, a create then its completion
# (bench/wrk/post_two_step.lua); rps counts both.
hold_capture() {
    ledger_setup || return 1
    wrk_run daemon post_two_step.lua /v1/holds BENCH_MODE=hold BENCH_ACCOUNTS="$LEDGER_ACCOUNTS"
}

order_settle() {
    ledger_setup || return 1
    wrk_run daemon post_two_step.lua /v1/orders BENCH_MODE=order BENCH_ACCOUNTS="$LEDGER_ACCOUNTS"
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

# The SQL-only reference of the transfer (issue #16, bench/ledger_proto/):
# the function and the funded accounts a10000.. of the tenant bench on the
# ledger tables. Sets PROTO_TID (the tenant's ol:ledger table id).
proto_setup() {
    local -a psql=("${PG_BIN:+$PG_BIN/}psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d onceledger -X -v ON_ERROR_STOP=1)
    "${psql[@]}" -q -c 'SET client_min_messages = warning' -f bench/ledger_proto/transfer_fn.sql >/dev/null || return 1
    PROTO_TID=$("${psql[@]}" -tAq -v tenant=bench -v naccounts="$LEDGER_ACCOUNTS" -f bench/ledger_proto/setup.sql) ||
        return 1
    echo "reference: tenant bench, ol:ledger table $PROTO_TID, $LEDGER_ACCOUNTS accounts"
}

pg_transfer_fn() {
    proto_setup || return 1
    ITEMS_CLIENTS=$CONNECTIONS pgbench_custom bench/ledger_proto/transfer_fn.pgbench onceledger -D tenant=bench \
        -D tid="$PROTO_TID" -D naccounts="$LEDGER_ACCOUNTS" -D fp="$(printf 'f%.0s' $(seq 1 64))" \
        -D params='{"amount":1,"currency":"EUR","description":null,"from":"a10001","kind":"transfer","metadata":{},"to":"a10002"}'
}

# The flash sale (issue #7): bench/flash_sale.py does the setup, the timed
# settlements over $CONNECTIONS connections and the checks.
flash_sale() {   # flash_sale MERCHANTS
    echo "+ bench/flash_sale.py URL KEY $1 ${BENCH_FLASH_CUSTOMERS:-2000} $CONNECTIONS"
    "$PY" bench/flash_sale.py "$DAEMON_URL" "$API_KEY" "$1" "${BENCH_FLASH_CUSTOMERS:-2000}" "$CONNECTIONS"
}
