#!/bin/bash
# bench/run.sh — the benchmark harness (docs/performance.md).
#
#   bench/run.sh [--list] [SCENARIO...]      # no SCENARIO: all of them (but soak), in table order
#
# Builds what is missing, starts a throwaway stack (scripts/stack.sh start
# var/bench), the daemon and bench/hello as the scenarios need them, runs each
# scenario for BENCH_DURATION seconds, prints a table and the ratio lines, and
# writes bench/results/latest.json. Everything it started is stopped on exit,
# on error and on Ctrl-C.
#
# Environment (defaults in brackets):
#   BENCH_DURATION [10]        seconds per scenario (after the warm-up)
#   BENCH_WARMUP [2]           seconds of discarded warm-up run before each scenario
#   BENCH_CONNECTIONS [32]     wrk connections
#   BENCH_WRK_THREADS [2]      wrk threads
#   BENCH_THREADS [nproc]      --threads of the daemon and of bench/hello
#   BENCH_PGBENCH_SCALE [10]   pgbench -i -s
#   BENCH_PGBENCH_CLIENTS [16] pgbench -c (with -j BENCH_WRK_THREADS)
#   BENCH_STACK_DIR [var/bench]  stack directory (wiped at start: a fresh database every run)
#   BENCH_DAEMON_ARGS []       extra arguments for onceledgerd (word-split)
#   BENCH_STRICT [0]           1: exit 1 when a ratio misses its target
#   BENCH_DURABLE [0]          1: PostgreSQL durable (fsync, synchronous_commit,
#                              full_page_writes on), as production runs it
#   BENCH_RESULTS [bench/results/latest.json]
#   BENCH_SCENARIOS_FILE []    a bash file with more `scenario`/`ratio` lines (trials)
#
# Adding a scenario: one `scenario` line in the table below (and a `ratio`
# line if it has a target). A scenario's command prints anything it likes and
# one line "WRKJSON {...}" with at least rps, p50_ms, p99_ms, non_2xx and
# socket_errors (bench/wrk/report.lua prints exactly that for wrk).
#
# Functions run from traps and from the scenario table (eval):
# shellcheck disable=SC2317
set -euo pipefail

cd "$(dirname "$0")/.."
PY=/usr/bin/python3

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
SERVER_THREADS=${BENCH_THREADS:-$(nproc)}
PGBENCH_SCALE=${BENCH_PGBENCH_SCALE:-10}
PGBENCH_CLIENTS=${BENCH_PGBENCH_CLIENTS:-16}
STACK_DIR=${BENCH_STACK_DIR:-var/bench}
RESULTS=${BENCH_RESULTS:-bench/results/latest.json}
STRICT=${BENCH_STRICT:-0}
DURABLE=${BENCH_DURABLE:-0}
COMMAND_LINE="bench/run.sh${*:+ $*}"

# ---------------------------------------------------------------------------
# Scenario table.
#
#   scenario NAME NEEDS DESCRIPTION COMMAND [ARGS...]
#     NEEDS: comma-separated subset of stack, db (the stack, migrated, with
#     the tenant bench: no daemon), daemon, hello; started lazily,
#     so `bench/run.sh hello` needs neither the daemon nor the database.
#     COMMAND runs when the scenario runs (not when it is declared), so it may
#     use API_KEY, DAEMON_URL, HELLO_URL, PGPORT... set up by NEEDS.
#   ratio A B TARGET    prints "A/B = X.XX (target >= TARGET)"; TARGET "-": informative
#
#   wrk_run TARGET SCRIPT PATH [VAR=VALUE...]
#     TARGET daemon or hello; SCRIPT a file in bench/wrk/; VAR=VALUE extra
#     environment for the script (BENCH_BODY=..., ...). BENCH_KEY is the
#     benchmark tenant's read,write,audit key.
# ---------------------------------------------------------------------------
SC_NAMES=()
RATIOS=()
declare -A SC_NEEDS=() SC_DESC=() SC_CMD=()

scenario() {
    local name=$1 needs=$2 desc=$3
    shift 3
    SC_NAMES+=("$name")
    SC_NEEDS[$name]=$needs
    SC_DESC[$name]=$desc
    SC_CMD[$name]=$(printf '%q ' "$@")
}
ratio() { RATIOS+=("$1 $2 $3"); }

scenario hello          hello  "reference: bench/hello, the minimal libevent server (GET, 200 {\"status\":\"ok\"})" \
    wrk_run hello get_auth.lua /
scenario whoami         daemon "GET /v1/whoami with a key: HTTP parsing, routing, auth (cache), JSON; no database" \
    wrk_run daemon get_auth.lua /v1/whoami
scenario pgbench_select stack  "reference: pgbench -S, primary-key SELECT on the same PostgreSQL (TCP 127.0.0.1)" \
    pgbench_select

ratio whoami hello 0.50
ratio whoami pgbench_select -

# Issue #3: the item layer's conditional UpdateItem (guarded debit on random
# items, 16 concurrent clients, no HTTP) against the same statement written by
# hand and run by pgbench on the same rows; a plain relational table for scale.
scenario items_update   stack  "item layer: conditional UpdateItem (SET balance = balance - :amt IF balance >= :amt) on random of 10k items" \
    items_update
scenario pgbench_items_update stack "reference: the same guarded debit as hand-written SQL on the same jsonb rows (pgbench -M prepared)" \
    pgbench_items_update
scenario pgbench_plain_update stack "reference: UPDATE ... SET balance = balance - 1 WHERE id = :k AND balance >= 1 RETURNING, plain table" \
    pgbench_plain_update
ratio items_update pgbench_items_update 0.70
ratio items_update pgbench_plain_update -

# Issue #5: the Idempotency-Key gate. Replaying one completed key from 32
# connections (one round trip: the claim finds the record and returns it)
# against pgbench -S; and a fresh key per request (claim + effect in one
# round trip, saved response + COMMIT in a second).
scenario idem_replay    daemon "POST /v1/accounts with one Idempotency-Key: every request a replay of the saved 201" \
    idem_replay
scenario account_create daemon "POST /v1/accounts, a fresh Idempotency-Key and a new account per request" \
    wrk_run daemon post_idem.lua /v1/accounts BENCH_BODY='{"id":"{{id}}","currency":"EUR"}'
ratio idem_replay pgbench_select 0.50
ratio account_create pgbench_select -

# Issue #6: the ledger. Idempotent transfers between 1,000 random accounts
# over HTTP (32 connections) against pgbench's tpcb-like and against one
# PL/pgSQL call writing the same rows; credits from @world (no hot row)
# against transfers; the latency at half of the transfers' peak.
scenario ledger_transfer daemon "POST /v1/transfers between 2 of 1,000 random accounts, a fresh Idempotency-Key each" \
    ledger_transfer
scenario ledger_credit  daemon "POST /v1/accounts/{random of 1,000}/credits: transfers from @world" \
    ledger_credit
scenario ledger_half    daemon "ledger_transfer paced to half of its peak (latency at half load)" \
    ledger_half
scenario pgbench_tpcb   stack  "reference: pgbench -b tpcb-like -M prepared, 32 clients, same PostgreSQL" \
    pgbench_tpcb
ratio ledger_transfer pgbench_tpcb 1.00
ratio ledger_credit ledger_transfer 0.90
scenario hold_capture   daemon "POST /v1/holds then POST /v1/holds/{id}/capture, 2 of 1,000 random accounts (rps: both requests)" \
    hold_capture
scenario order_settle   daemon "POST /v1/orders then POST /v1/orders/{id}/settle, 2 of 1,000 random accounts (rps: both requests)" \
    order_settle
ratio hold_capture ledger_transfer 0.40
ratio order_settle ledger_transfer 0.40

# Issue #16: the SQL-only reference of the transfer (bench/ledger_proto/,
# docs/ledger-engine.md), 1,000 accounts, 32 pgbench clients: the executed
# idempotent transfer (key record claimed and saved in items, the ledger's
# own ledger.transfer(), the outbox event) as one server-side call. (The
# prepared-statement pipeline it was chosen over: docs/performance.md.)
scenario pg_transfer_fn db     "reference: ledger_proto.transfer(), one PL/pgSQL call writing every row of a transfer (pgbench, 32 clients)" \
    pg_transfer_fn
ratio ledger_transfer pg_transfer_fn 0.70
ratio pg_transfer_fn pgbench_tpcb -

# Issue #7: the flash sale. 2,000 customers each settle one order to ONE
# merchant (its account row is every settlement's hot row) against the same
# settlements spread over 100 merchants (bench/flash_sale.py checks that all
# are paid, the sums and the merchants' chains).
scenario flash_sale_one    daemon "2,000 order settlements to one merchant, 32 connections (the hot merchant)" \
    flash_sale 1
scenario flash_sale_spread daemon "the same 2,000 settlements spread over 100 merchants" \
    flash_sale 100
ratio flash_sale_one flash_sale_spread 0.50

# Issue #8: events. The relay's lag at the transfer load of #6, and how
# fast it drains a backlog of 1,000,000 committed events, next to what
# Redis alone takes (XADD of the same size, pipelined, one connection).
scenario events_lag     daemon "ledger_transfer's load; the relay's commit-to-XADD lag from its histogram" \
    events_lag
scenario events_drain   daemon "1,000,000 events committed while the daemon is stopped, then published by the relay" \
    events_drain
scenario xadd_raw       stack  "reference: redis-benchmark XADD of a 900-byte entry, pipelined (-P 100), one connection" \
    xadd_raw
ratio events_drain xadd_raw -

# Issue #9: the soak. Half of ledger_transfer's peak for 10 minutes: RSS
# stable after warm-up, no errors, the relay's lag bounded. Not in the
# default set (it takes BENCH_SOAK_SECONDS): bench/run.sh ledger_transfer soak
scenario soak           daemon "transfers at half of ledger_transfer's peak for BENCH_SOAK_SECONDS (600): RSS, errors, relay lag" \
    soak

# Later issues add their lines here. A scenario that needs data first uses
# its own function as COMMAND, which prepares (API calls, psql) and then
# calls wrk_run.

# Scenarios under trial, without editing this file: BENCH_SCENARIOS_FILE=FILE
# is sourced here and may call `scenario` and `ratio` (and define functions).
if [ -n "${BENCH_SCENARIOS_FILE:-}" ]; then
    # shellcheck disable=SC1090
    . "$BENCH_SCENARIOS_FILE"
fi

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

LOG_DIR=""          # $STACK_DIR/bench: logs of this run
STACK_UP=0
DB_READY=0
DAEMON_PID=""
HELLO_PID=""
API_KEY=""
DAEMON_URL=""
HELLO_URL=""
CLEANED=0

stop_pid() {        # stop_pid NAME PID: SIGTERM, wait, SIGKILL
    local name=$1 pid=$2 _
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for 15 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    [ "$CLEANED" = 1 ] && return 0
    CLEANED=1
    stop_pid onceledgerd "$DAEMON_PID"
    DAEMON_PID=""
    stop_pid hello "$HELLO_PID"
    HELLO_PID=""
    if [ "$STACK_UP" = 1 ]; then
        stack_stop || log "could not stop the stack in $STACK_DIR"
        STACK_UP=0
    fi
}

# scripts/stack.sh stop, or, when its lock is held (early versions of
# stack.sh let the servers inherit the lock's descriptor), the same thing done
# directly, so that we do not wait 120 s for a lock that is never released.
stack_stop() {
    [ -d "$STACK_DIR" ] || return 0
    local lock held=0
    for lock in "$STACK_DIR/.stack.lock" "$STACK_DIR/.lock"; do
        if [ -e "$lock" ] && ! flock -n "$lock" true 2>/dev/null; then held=1; fi
    done
    if [ "$held" = 0 ]; then
        scripts/stack.sh stop "$STACK_DIR" >/dev/null 2>&1 && return 0
    fi
    local pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin} pid rc=0
    if [ -f "$STACK_DIR/pgdata/postmaster.pid" ]; then
        if [ "$(id -u)" = 0 ]; then
            runuser -u postgres -- "$pg_bin/pg_ctl" -D "$STACK_DIR/pgdata" -m fast -w -t 60 stop >/dev/null 2>&1 || rc=1
        else
            "$pg_bin/pg_ctl" -D "$STACK_DIR/pgdata" -m fast -w -t 60 stop >/dev/null 2>&1 || rc=1
        fi
    fi
    pid=$(cat "$STACK_DIR/redis.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || rc=1
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    return $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cpu_ticks() {       # user+system clock ticks of a process (all its threads)
    local pid=$1
    if [ -z "$pid" ] || [ ! -r "/proc/$pid/stat" ]; then echo 0; return; fi
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat"
}

# user+system ticks of the stack's PostgreSQL: the postmaster, its live
# processes and the ones that ended (reaped: cutime/cstime), so backends of
# a pgbench run that has exited are counted.
pg_cpu_ticks() {
    local pm c t
    pm=$(head -n 1 "$STACK_DIR/pgdata/postmaster.pid" 2>/dev/null) || { echo 0; return; }
    [ -r "/proc/$pm/stat" ] || { echo 0; return; }
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pm/stat")
    for c in $(pgrep -P "$pm" 2>/dev/null); do
        t=$((t + $(cpu_ticks "$c")))
    done
    echo "$t"
}

# True when src/onceledgerd is missing or older than a source it is built from.
daemon_stale() {
    [ -x src/onceledgerd ] && [ -x src/onceledger ] || return 0
    [ -n "$(find src configure.ac Makefile.am sql -newer src/onceledgerd \
            \( -name '*.c' -o -name '*.h' -o -name '*.am' -o -name '*.sql' -o -name configure.ac \) \
            -print -quit 2>/dev/null)" ]
}

# True when a `make` that is not one of our ancestors is running (e.g. the
# developer building in another terminal): two makes in one tree clash.
other_make_running() {
    local p=$$ ancestors=" $$ " pid
    while [ "$p" -gt 1 ] 2>/dev/null; do
        p=$(awk '{ sub(/^.*\) /, ""); print $2 }' "/proc/$p/stat" 2>/dev/null) || break
        [ -n "$p" ] || break
        ancestors+="$p "
    done
    for pid in $(pgrep -x make || true); do
        [[ "$ancestors" == *" $pid "* ]] || return 0
    done
    return 1
}

build_daemon() {
    local waited=0
    # Another make (this tree's or another's) is only waited for when this
    # one has something to build.
    daemon_stale || waited=600
    while [ "$waited" -lt 600 ] && other_make_running; do
        [ "$waited" = 0 ] && log "another make is running: waiting for it (at most 10 min)"
        sleep 5
        waited=$((waited + 5))
    done
    if daemon_stale; then
        log "building the project (src/onceledgerd missing or older than its sources)"
        if [ ! -f Makefile ]; then
            ./autogen.sh >"$LOG_DIR/build.log" 2>&1 || { tail -n 30 "$LOG_DIR/build.log" >&2; die "autogen.sh failed"; }
            ./configure >>"$LOG_DIR/build.log" 2>&1 || { tail -n 30 "$LOG_DIR/build.log" >&2; die "configure failed"; }
        fi
        make -j2 >>"$LOG_DIR/build.log" 2>&1 || { tail -n 40 "$LOG_DIR/build.log" >&2; die "make failed (log: $LOG_DIR/build.log)"; }
    fi
    [ -x src/onceledgerd ] || die "src/onceledgerd was not built"
    if [ -f config.status ] && grep -Eq -- '--enable-(asan|coverage|fuzzing)' config.status; then
        log "WARNING: the build is configured with $(grep -Eo -- '--enable-(asan|coverage|fuzzing)' config.status | sort -u | tr '\n' ' ')- figures are not representative"
    fi
}

build_hello() {
    if [ ! -x bench/hello ] || [ bench/hello.c -nt bench/hello ]; then
        log "building bench/hello"
        # shellcheck disable=SC2046
        cc -O2 -Wall -Wextra bench/hello.c $(pkg-config --cflags --libs libevent) -lpthread -o bench/hello ||
            die "cannot build bench/hello"
    fi
}

ensure_stack() {
    [ "$STACK_UP" = 1 ] && return 0
    log "starting a fresh stack in $STACK_DIR"
    stack_stop || true
    # Everything but this run's logs: a fresh cluster and Redis every run.
    find "$STACK_DIR" -mindepth 1 -maxdepth 1 ! -name bench -exec rm -rf -- {} +
    STACK_UP=1
    scripts/stack.sh start "$STACK_DIR" >"$LOG_DIR/stack.log" 2>&1 ||
        { cat "$LOG_DIR/stack.log" >&2; die "scripts/stack.sh start $STACK_DIR failed"; }
    # Exported: the stack's URLs, PGPASSWORD (psql and pgbench connect to
    # 127.0.0.1, which wants the stack's password) and the password itself.
    set -a
    # shellcheck disable=SC1090,SC1091
    . "$STACK_DIR/env"
    set +a
    [ -n "${PGPASSWORD:-}" ] && [ -n "${ONCELEDGER_STACK_PASSWORD:-}" ] ||
        die "$STACK_DIR/env has no password (an old scripts/stack.sh?)"
    if [ "$DURABLE" = 1 ]; then
        # scripts/stack.sh's cluster is fast and not crash-safe (fsync,
        # synchronous_commit and full_page_writes off); postgresql.auto.conf
        # overrides its stack.conf for this run's fresh cluster.
        log "PostgreSQL durable: fsync, synchronous_commit, full_page_writes on"
        "${PG_BIN:+$PG_BIN/}psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -Xq \
            -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET synchronous_commit = on" \
            -c "ALTER SYSTEM SET full_page_writes = on" -c "SELECT pg_reload_conf()" -c "CHECKPOINT" >/dev/null ||
            die "cannot make PostgreSQL durable"
        sleep 0.5
        local conf
        conf=$("${PG_BIN:+$PG_BIN/}psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -XtAq \
            -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
                WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')")
        log "PostgreSQL: $conf"
        [ "$conf" = "fsync=on full_page_writes=on synchronous_commit=on" ] || die "PostgreSQL is not durable: $conf"
    fi
}

# The stack's database migrated, with the tenant bench (once per run).
ensure_db() {
    [ "$DB_READY" = 1 ] && return 0
    build_daemon
    ensure_stack
    # The CLI, the daemon and items_bench read the stack's URLs from the
    # environment (exported by ensure_stack): they carry its password, which
    # must not be on a command line.
    log "migrating, creating tenant 'bench'"
    src/onceledger migrate >>"$LOG_DIR/cli.log" 2>&1 ||
        { tail -n 20 "$LOG_DIR/cli.log" >&2; die "onceledger migrate failed"; }
    src/onceledger tenant create bench >>"$LOG_DIR/cli.log" 2>&1 ||
        { tail -n 20 "$LOG_DIR/cli.log" >&2; die "onceledger tenant create failed"; }
    DB_READY=1
}

ensure_daemon() {
    [ -n "$DAEMON_PID" ] && return 0
    ensure_db
    log "creating a read,write,audit key"
    API_KEY=$(src/onceledger key create --tenant bench --scopes read,write,audit 2>>"$LOG_DIR/cli.log") ||
        { tail -n 20 "$LOG_DIR/cli.log" >&2; die "onceledger key create failed"; }
    API_KEY=$(printf '%s' "$API_KEY" | tr -d '[:space:]')
    [[ "$API_KEY" == olk_* ]] || die "onceledger key create printed '$API_KEY', not a key"

    local port=${BENCH_PORT:-$(free_port)}
    DAEMON_URL=http://127.0.0.1:$port
    log "starting src/onceledgerd --listen 127.0.0.1:$port --threads $SERVER_THREADS ${BENCH_DAEMON_ARGS:-}"
    # shellcheck disable=SC2086
    src/onceledgerd --listen "127.0.0.1:$port" --threads "$SERVER_THREADS" \
        --events-key-file "$(cd "$STACK_DIR" && pwd -P)/events.key" ${BENCH_DAEMON_ARGS:-} \
        >"$LOG_DIR/onceledgerd.out" 2>"$LOG_DIR/onceledgerd.log" &
    DAEMON_PID=$!
    local _ code=000
    for _ in $(seq 1 300); do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            tail -n 30 "$LOG_DIR/onceledgerd.log" >&2
            DAEMON_PID=""
            die "onceledgerd exited during start-up"
        fi
        code=$(curl -s -o "$LOG_DIR/whoami.json" -w '%{http_code}' --max-time 2 \
            -H "Authorization: Bearer $API_KEY" "$DAEMON_URL/v1/whoami" || true)
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    [ "$code" = 200 ] || { tail -n 30 "$LOG_DIR/onceledgerd.log" >&2; die "GET /v1/whoami answers $code, not 200, after 30 s"; }
    log "daemon ready (pid $DAEMON_PID): whoami $(head -c 200 "$LOG_DIR/whoami.json")"
}

ensure_hello() {
    [ -n "$HELLO_PID" ] && return 0
    build_hello
    mkdir -p "$LOG_DIR"
    bench/hello --listen 127.0.0.1:0 --threads "$SERVER_THREADS" >"$LOG_DIR/hello.out" 2>"$LOG_DIR/hello.log" &
    HELLO_PID=$!
    local _ port=""
    for _ in $(seq 1 100); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG_DIR/hello.out")
        [ -n "$port" ] && break
        kill -0 "$HELLO_PID" 2>/dev/null || { cat "$LOG_DIR/hello.log" >&2; HELLO_PID=""; die "bench/hello exited"; }
        sleep 0.05
    done
    [ -n "$port" ] || die "bench/hello did not report its port"
    HELLO_URL=http://127.0.0.1:$port
    log "bench/hello ready on $HELLO_URL (pid $HELLO_PID, --threads $SERVER_THREADS)"
}

ensure_needs() {
    local need
    IFS=, read -r -a _needs <<<"$1"
    for need in "${_needs[@]}"; do
        case "$need" in
            stack) ensure_stack ;;
            db) ensure_db ;;
            daemon) ensure_daemon ;;
            hello) ensure_hello ;;
            "") ;;
            *) die "unknown need '$need'" ;;
        esac
    done
}

# ---------------------------------------------------------------------------
# Scenario commands
# ---------------------------------------------------------------------------

# wrk_run TARGET SCRIPT PATH [VAR=VALUE...]: warm-up, then the measured run;
# adds the server's CPU use (percent of one core) to the WRKJSON line.
wrk_run() {
    local target=$1 script=$2 path=$3 url pid
    shift 3
    case "$target" in
        daemon) url=$DAEMON_URL pid=$DAEMON_PID ;;
        hello) url=$HELLO_URL pid=$HELLO_PID ;;
        *) die "wrk_run: unknown target $target" ;;
    esac
    # Without the daemon (e.g. `bench/run.sh hello`), a dummy key of the same
    # shape keeps the request bytes identical.
    local key=${API_KEY:-olk_0123456789abcdef_$(printf 'A%.0s' $(seq 1 43))}
    local -a envs=(BENCH_KEY="$key" BENCH_PATH="$path" "$@")
    local -a cmd=(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" --timeout 10s -s "bench/wrk/$script" "$url$path")
    if [ "$WARMUP" != 0 ]; then
        env "${envs[@]}" "${cmd[@]}" -d"${WARMUP}s" >/dev/null || return 1
    fi
    echo "+ ${envs[*]:1} ${cmd[*]} -d${DURATION}s"
    local t0 t1 out
    t0=$(cpu_ticks "$pid")
    out=$(env "${envs[@]}" "${cmd[@]}" -d"${DURATION}s") || { echo "$out"; return 1; }
    t1=$(cpu_ticks "$pid")
    grep -v '^WRKJSON ' <<<"$out" || true
    local line cpu
    line=$(grep '^WRKJSON ' <<<"$out" | tail -n 1)
    [ -n "$line" ] || return 1
    # wrk stops early, and prints its results, on SIGINT: that is a Ctrl-C.
    if awk -v l="$line" -v d="$DURATION" 'BEGIN { match(l, /"duration_s":[0-9.]+/);
            exit !(substr(l, RSTART + 13, RLENGTH - 13) + 0 < d * 0.9) }'; then
        echo "wrk stopped early: interrupted"
        return 130
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "the $target server (pid $pid) died during the run"
        return 1
    fi
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v d="$DURATION" \
        'BEGIN { printf "%.1f", (b - a) / hz / d * 100 }')
    echo "${line%\}},\"server_cpu_pct\":$cpu}"
}

# pgbench -S on the stack's PostgreSQL over TCP, like the daemon connects;
# per-transaction log (-l) for the latency percentiles.
idem_replay() {
    local key body
    key="bench-replay-$(date +%s%N)"
    body='{"currency":"EUR","owner":"bench-replay"}'
    # The first request executes; wrk's are all replays of it.
    curl -fsS -o /dev/null -X POST "$DAEMON_URL/v1/accounts" -H "Authorization: Bearer $API_KEY" \
        -H 'Content-Type: application/json' -H "Idempotency-Key: $key" -d "$body" || return 1
    wrk_run daemon post_replay.lua /v1/accounts BENCH_BODY="$body" BENCH_IDEM_KEY="$key"
}

pgbench_select() {
    local pgbench=pgbench
    [ -x "${PG_BIN:-}/pgbench" ] && pgbench=$PG_BIN/pgbench
    local -a conn=(-h 127.0.0.1 -p "$PGPORT" -U postgres)
    if [ "$("${PG_BIN:+$PG_BIN/}psql" "${conn[@]}" -d postgres -XtAqc \
            "SELECT 1 FROM pg_database WHERE datname = 'pgbench'")" != 1 ]; then
        "${PG_BIN:+$PG_BIN/}psql" "${conn[@]}" -d postgres -Xqc 'CREATE DATABASE pgbench' || return 1
        echo "+ pgbench -i -s $PGBENCH_SCALE pgbench"
        "$pgbench" "${conn[@]}" -i -q -s "$PGBENCH_SCALE" pgbench 2>&1 | tail -n 2 || return 1
    fi
    local -a run=("$pgbench" "${conn[@]}" -S -n -c "$PGBENCH_CLIENTS" -j "$WRK_THREADS")
    if [ "$WARMUP" != 0 ]; then
        "${run[@]}" -T "$WARMUP" pgbench >/dev/null 2>&1 || return 1
    fi
    local logp=$LOG_DIR/pgbench_log
    rm -f "$logp".*
    echo "+ pgbench -S -n -c $PGBENCH_CLIENTS -j $WRK_THREADS -T $DURATION -l pgbench"
    local out
    out=$("${run[@]}" -T "$DURATION" -l --log-prefix="$logp" pgbench 2>&1) || { echo "$out"; return 1; }
    echo "$out" | grep -E '^(tps|latency|number of)' || true
    PGB_OUT=$out "$PY" - "$logp" <<'EOF'
import glob, json, os, re, sys
out = os.environ["PGB_OUT"]
lat = []
for path in glob.glob(sys.argv[1] + ".*"):
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 3 and p[2].isdigit():
                lat.append(int(p[2]))
lat.sort()
def pct(q):
    if not lat:
        return None
    return lat[min(len(lat) - 1, int(q / 100.0 * len(lat)))] / 1000.0
m = re.search(r"^tps = ([0-9.]+)", out, re.M)
n = re.search(r"number of transactions actually processed: (\d+)", out)
fail = re.search(r"number of failed transactions: (\d+)", out)
r = {
    "requests": int(n.group(1)) if n else len(lat),
    "rps": float(m.group(1)) if m else None,
    "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
    "max_ms": lat[-1] / 1000.0 if lat else None,
    "mean_ms": round(sum(lat) / len(lat) / 1000.0, 3) if lat else None,
    "non_2xx": 0,
    "socket_errors": int(fail.group(1)) if fail else 0,
    "server_cpu_pct": None,
}
print("WRKJSON " + json.dumps(r))
for path in glob.glob(sys.argv[1] + ".*"):
    os.unlink(path)
EOF
}

# Item layer scenarios (issue #3).
ITEMS_CLIENTS=${BENCH_ITEMS_CLIENTS:-16}
items_setup() {
    [ -x bench/items_bench ] || make -j2 bench/items_bench >/dev/null || return 1
    bench/items_bench --setup-only
}

items_update() {
    items_setup || return 1
    echo "+ bench/items_bench --clients $ITEMS_CLIENTS --threads $WRK_THREADS --seconds $DURATION"
    bench/items_bench --clients "$ITEMS_CLIENTS" --threads "$WRK_THREADS" \
        --seconds "$DURATION"
}

# Runs a pgbench custom script (-M prepared; builtin:NAME for a built-in
# one) and prints its WRKJSON line.
pgbench_custom() {   # pgbench_custom SCRIPT DB [PGBENCH-ARGS...] (e.g. -D name=value)
    local script=$1 db=$2 pgbench=pgbench
    shift 2
    [ -x "${PG_BIN:-}/pgbench" ] && pgbench=$PG_BIN/pgbench
    local -a src=(-f "$script")
    [[ $script == builtin:* ]] && src=(-b "${script#builtin:}")   # e.g. builtin:tpcb-like
    local -a run=("$pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -n -M prepared -c "$ITEMS_CLIENTS" -j "$WRK_THREADS" "${src[@]}" "$@")
    if [ "$DURABLE" = 1 ]; then
        # Durable: the previous scenario's dirty pages (pgbench -i's million
        # rows...) are written now, not during this one's fsyncs.
        "${PG_BIN:+$PG_BIN/}psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -Xqc CHECKPOINT || return 1
    fi
    if [ "$WARMUP" != 0 ]; then
        "${run[@]}" -T "$WARMUP" "$db" >/dev/null 2>&1 || return 1
    fi
    echo "+ pgbench -n -M prepared -c $ITEMS_CLIENTS -j $WRK_THREADS -T $DURATION -f $(basename "$script")"
    local out t0 t1
    sleep 0.5   # the warm-up's backends are reaped before the count starts
    t0=$(pg_cpu_ticks)
    out=$("${run[@]}" -T "$DURATION" "$db" 2>&1) || { echo "$out"; return 1; }
    sleep 0.2   # the backends' exit is reaped
    t1=$(pg_cpu_ticks)
    local cpu
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v d="$DURATION" \
        'BEGIN { printf "%.1f", (b - a) / hz / d * 100 }')
    echo "$out" | grep -E '^(tps|latency)' || true
    PGB_OUT=$out PGB_CPU=$cpu "$PY" -c '
import json, os, re
out = os.environ["PGB_OUT"]
m = re.search(r"^tps = ([0-9.]+)", out, re.M)
lat = re.search(r"latency average = ([0-9.]+) ms", out)
n = re.search(r"number of transactions actually processed: (\d+)", out)
print("WRKJSON " + json.dumps({"requests": int(n.group(1)) if n else None, "rps": float(m.group(1)) if m else None,
      "p50_ms": None, "p99_ms": None, "mean_ms": float(lat.group(1)) if lat else None,
      "non_2xx": 0, "socket_errors": 0, "server_cpu_pct": float(os.environ["PGB_CPU"])}))'
}

pgbench_items_update() {
    items_setup || return 1
    local tid script=$LOG_DIR/items_update.sql
    tid=$("${PG_BIN:+$PG_BIN/}psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d onceledger -XtAqc \
        "SELECT id FROM item_tables WHERE tenant = 'bench' AND name = 'bench'")
    printf '%s\n' '\set k random(1, 10000)' \
        "UPDATE items SET item = jsonb_set(item, '{balance,N}', to_jsonb(((item->'balance'->>'N')::numeric - 1)::text)) WHERE table_id = $tid AND pk = 'acct' || :k AND sk = '' AND (item->'balance'->>'N')::numeric >= 1 RETURNING item;" \
        >"$script"
    pgbench_custom "$script" onceledger
}

pgbench_plain_update() {
    local script=$LOG_DIR/plain_update.sql
    "${PG_BIN:+$PG_BIN/}psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d onceledger -Xqc \
        "CREATE TABLE IF NOT EXISTS bench_plain (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO bench_plain SELECT g, 1000000000000 FROM generate_series(1, 10000) g ON CONFLICT DO NOTHING" || return 1
    printf '%s\n' '\set k random(1, 10000)' \
        'UPDATE bench_plain SET balance = balance - 1 WHERE id = :k AND balance >= 1 RETURNING balance;' >"$script"
    pgbench_custom "$script" onceledger
}

# shellcheck source=bench/ledger.sh
. bench/ledger.sh
# shellcheck source=bench/events.sh
. bench/events.sh
# shellcheck source=bench/soak.sh
. bench/soak.sh

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
SELECTED=()
for arg in "$@"; do
    case "$arg" in
        --list)
            for n in "${SC_NAMES[@]}"; do printf '%-16s [%s] %s\n' "$n" "${SC_NEEDS[$n]}" "${SC_DESC[$n]}"; done
            exit 0 ;;
        -h|--help)
            sed -n '2,/^# Functions run from/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0 ;;
        -*) die "unknown option $arg (try --help)" ;;
        *)
            [ -n "${SC_NEEDS[$arg]+x}" ] || die "unknown scenario '$arg'; known: ${SC_NAMES[*]}"
            SELECTED+=("$arg") ;;
    esac
done
if [ ${#SELECTED[@]} -eq 0 ]; then
    # everything but the long runs, which are asked for by name
    for n in "${SC_NAMES[@]}"; do
        [ "$n" = soak ] || SELECTED+=("$n")
    done
fi

command -v wrk >/dev/null || die "wrk not found: apt-get install -y wrk"
command -v curl >/dev/null || die "curl not found: apt-get install -y curl"
LOG_DIR=$STACK_DIR/bench
rm -rf -- "$LOG_DIR"
mkdir -p "$LOG_DIR" "$(dirname "$RESULTS")"
RAW=$(mktemp)
trap 'cleanup; rm -f "$RAW"' EXIT

log "scenarios: ${SELECTED[*]}; ${DURATION}s each (+${WARMUP}s warm-up), wrk -t$WRK_THREADS -c$CONNECTIONS, server --threads $SERVER_THREADS, nproc $(nproc), durable $DURABLE"
FAILED=0
for name in "${SELECTED[@]}"; do
    ensure_needs "${SC_NEEDS[$name]}"
    load=$(cut -d' ' -f1 /proc/loadavg)
    printf '\n=== %s: %s (load %s)\n' "$name" "${SC_DESC[$name]}" "$load"
    set +e
    eval "${SC_CMD[$name]}" 2>&1 | tee "$LOG_DIR/$name.log" | grep --line-buffered -v '^WRKJSON '
    rc=${PIPESTATUS[0]}
    set -e
    if [ "$rc" = 130 ] || [ "$rc" -gt 128 ]; then
        log "interrupted"
        exit 130
    fi
    line=$(grep '^WRKJSON ' "$LOG_DIR/$name.log" | tail -n 1 || true)
    if [ "$rc" != 0 ] || [ -z "$line" ]; then
        log "scenario $name FAILED (exit $rc; log $LOG_DIR/$name.log)"
        FAILED=1
        line='WRKJSON {"failed":true}'
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$load" "${SC_DESC[$name]}" "${line#WRKJSON }" >>"$RAW"
done

# Table, ratios and JSON.
printf '%s\n' "${RATIOS[@]}" >"$RAW.ratios"
set +e
M_COMMAND=$COMMAND_LINE M_DURATION=$DURATION M_WARMUP=$WARMUP M_CONNECTIONS=$CONNECTIONS \
M_WRK_THREADS=$WRK_THREADS M_SERVER_THREADS=$SERVER_THREADS M_PGBENCH_CLIENTS=$PGBENCH_CLIENTS \
M_PGBENCH_SCALE=$PGBENCH_SCALE M_DAEMON_ARGS=${BENCH_DAEMON_ARGS:-} M_DURABLE=$DURABLE \
"$PY" - "$RAW" "$RAW.ratios" "$RESULTS" <<'EOF'
import datetime, json, os, socket, subprocess, sys
raw, ratios_file, results = sys.argv[1:4]
m = os.environ
rows = {}
order = []
for line in open(raw):
    name, load, desc, js = line.rstrip("\n").split("\t", 3)
    r = json.loads(js)
    r["description"] = desc
    r["loadavg_1m"] = float(load)
    rows[name] = r
    order.append(name)

def f(x, fmt):
    return "-" if x is None else fmt % x

print()
print("%-16s %10s %9s %9s %9s %8s %8s %9s" % ("scenario", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "srv cpu%",
                                              "srv us/req"))
for name in order:
    r = rows[name]
    if r.get("failed"):
        print("%-16s %10s" % (name, "FAILED"))
        continue
    errors = (r.get("non_2xx") or 0) + (r.get("socket_errors") or 0)
    r["errors"] = errors
    # The server's CPU per request (the daemon's, or PostgreSQL's for the
    # pgbench references): CPU % of one core x 10,000 / requests per second.
    us = None
    if r.get("server_cpu_pct") is not None and r.get("rps"):
        us = r["server_cpu_pct"] * 10000.0 / r["rps"]
        r["server_us_per_request"] = round(us, 1)
    print("%-16s %10s %9s %9s %9s %8d %8s %9s" % (name, f(r.get("rps"), "%.0f"), f(r.get("p50_ms"), "%.2f"),
          f(r.get("p90_ms"), "%.2f"), f(r.get("p99_ms"), "%.2f"), errors, f(r.get("server_cpu_pct"), "%.0f"),
          f(us, "%.0f")))

ratios = []
missed = False
print()
for spec in open(ratios_file):
    spec = spec.split()
    if len(spec) != 3:
        continue
    a, b, target = spec
    ra, rb = rows.get(a), rows.get(b)
    if not ra or not rb or not ra.get("rps") or not rb.get("rps"):
        continue
    value = ra["rps"] / rb["rps"]
    item = {"name": "%s/%s" % (a, b), "value": round(value, 4)}
    if target == "-":
        print("%s/%s = %.2f" % (a, b, value))
    else:
        t = float(target)
        ok = value >= t
        missed = missed or not ok
        item.update(target=t, ok=ok)
        print("%s/%s = %.2f (target >= %.2f) %s" % (a, b, value, t, "ok" if ok else "MISSED"))
    ratios.append(item)

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return None

doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "host": socket.gethostname(),
    "nproc": os.cpu_count(),
    "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None),
    "command": m["M_COMMAND"],
    "git_commit": sh("git", "rev-parse", "--short", "HEAD") or None,
    "settings": {
        "duration_s": int(m["M_DURATION"]), "warmup_s": int(m["M_WARMUP"]),
        "connections": int(m["M_CONNECTIONS"]), "wrk_threads": int(m["M_WRK_THREADS"]),
        "server_threads": int(m["M_SERVER_THREADS"]), "pgbench_clients": int(m["M_PGBENCH_CLIENTS"]),
        "pgbench_scale": int(m["M_PGBENCH_SCALE"]), "daemon_args": m["M_DAEMON_ARGS"],
        "durable": m["M_DURABLE"] == "1",
    },
    "scenarios": rows,
    "ratios": ratios,
}
with open(results, "w") as out:
    json.dump(doc, out, indent=2)
    out.write("\n")
print("\nresults: %s" % results)
sys.exit(3 if missed else 0)
EOF
prc=$?
set -e
rm -f "$RAW.ratios"
if [ "$FAILED" = 1 ]; then
    exit 1
fi
if [ "$prc" = 3 ] && [ "$STRICT" = 1 ]; then
    exit 1
fi
[ "$prc" = 0 ] || [ "$prc" = 3 ] || exit 2
exit 0
