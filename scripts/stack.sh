#!/bin/bash
# Throwaway PostgreSQL cluster + Redis for development, tests and benchmarks.
#
#   scripts/stack.sh start|stop|pg-stop|pg-start|redis-stop|redis-start DIR
#
# Everything lives under DIR: pgdata/ (the cluster), run/ (unix sockets of
# both servers), redis/ (Redis working dir), log/, ports (the TCP ports chosen
# the first time, so they stay stable across restarts) and env (shell
# KEY=value lines for clients, see docs/development.md).  Both servers listen
# on their private socket and on 127.0.0.1 only; authentication is `trust`.
# When run as root, PostgreSQL runs as the `postgres` user (it refuses root).
set -euo pipefail

usage() {
    echo "usage: $0 start|stop|pg-stop|pg-start|redis-stop|redis-start DIR" >&2
    exit 1
}

[ $# -eq 2 ] || usage
cmd=$1
case "$cmd" in
    start|stop|pg-stop|pg-start|redis-stop|redis-start) ;;
    *) usage ;;
esac

case "$cmd" in
    stop|pg-stop|redis-stop)
        # nothing to stop in a directory that does not exist
        [ -d "$2" ] || exit 0 ;;
esac
mkdir -p -- "$2"
DIR=$(cd -- "$2" && pwd -P)
PGDATA_DIR=$DIR/pgdata
RUN_DIR=$DIR/run
LOG_DIR=$DIR/log
REDIS_DIR=$DIR/redis
PORTS_FILE=$DIR/ports
ENV_FILE=$DIR/env
REDIS_PID=$DIR/redis.pid
REDIS_SOCK=$RUN_DIR/redis.sock

PG_BIN=${PG_BIN:-}
if [ -z "$PG_BIN" ]; then
    if [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
        PG_BIN=/usr/lib/postgresql/15/bin
    elif command -v pg_config >/dev/null 2>&1; then
        PG_BIN=$(pg_config --bindir)
    else
        PG_BIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
    fi
fi
[ -x "$PG_BIN/pg_ctl" ] || { echo "stack.sh: PostgreSQL binaries not found (set PG_BIN)" >&2; exit 2; }
REDIS_SERVER=$(command -v redis-server || true)
REDIS_CLI=$(command -v redis-cli || true)

log() { echo "stack.sh: $*" >&2; }
die() { log "$*"; exit 2; }

# PostgreSQL refuses to run as root: run its programs as `postgres` then.
if [ "$(id -u)" -eq 0 ]; then
    PG_USER=postgres
    id "$PG_USER" >/dev/null 2>&1 || die "user $PG_USER does not exist"
    as_pg() { runuser -u "$PG_USER" -- "$@"; }
else
    PG_USER=$(id -un)
    as_pg() { "$@"; }
fi

# Serialise concurrent invocations on the same DIR.  The servers we start
# must not inherit fd 9 (they would hold the lock forever): see `9>&-`.
exec 9>"$DIR/.stack.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 120 9 || die "could not lock $DIR/.lock"
fi

port_in_use() {
    local p=$1
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
    fi
}

# A free TCP port below the ephemeral range, so that outgoing connections do
# not grab it while a server is stopped.
pick_port() {
    local avoid=${1:-0} p _
    for _ in $(seq 1 200); do
        p=$(( 15000 + (RANDOM * 32768 + RANDOM) % 17000 ))
        [ "$p" -eq "$avoid" ] && continue
        port_in_use "$p" && continue
        echo "$p"
        return 0
    done
    die "no free TCP port found"
}

load_ports() {
    PG_PORT=""
    REDIS_PORT=""
    if [ -f "$PORTS_FILE" ]; then
        # shellcheck disable=SC1090
        . "$PORTS_FILE"
    fi
    if [ -z "$PG_PORT" ]; then
        PG_PORT=$(pick_port)
    fi
    if [ -z "$REDIS_PORT" ]; then
        REDIS_PORT=$(pick_port "$PG_PORT")
    fi
    printf 'PG_PORT=%s\nREDIS_PORT=%s\n' "$PG_PORT" "$REDIS_PORT" >"$PORTS_FILE.tmp"
    mv -f "$PORTS_FILE.tmp" "$PORTS_FILE"
}

write_env() {
    cat >"$ENV_FILE.tmp" <<EOF
PGHOST=$RUN_DIR
PGPORT=$PG_PORT
PGDATABASE=onceledger
PGUSER=postgres
ONCELEDGER_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/onceledger
ONCELEDGER_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
REDIS_PORT=$REDIS_PORT
REDIS_SOCKET=$REDIS_SOCK
ONCELEDGER_STACK_DIR=$DIR
PG_BIN=$PG_BIN
EOF
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

prepare_dirs() {
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$REDIS_DIR"
    # The postgres user must be able to reach DIR and write run/ and log/.
    chmod 0755 "$DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$PG_USER" "$RUN_DIR" "$LOG_DIR"
        [ -d "$PGDATA_DIR" ] && chown -R "$PG_USER" "$PGDATA_DIR"
        as_pg test -x "$DIR" -a -w "$RUN_DIR" ||
            die "user $PG_USER cannot reach $DIR (a parent directory is not searchable?)"
    fi
    touch "$LOG_DIR/postgres.log"
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$LOG_DIR/postgres.log"
    return 0
}

pg_running() {
    [ -f "$PGDATA_DIR/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

pg_init() {
    [ -f "$PGDATA_DIR/PG_VERSION" ] && return 0
    rm -rf "$PGDATA_DIR"
    mkdir -p "$PGDATA_DIR"
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$PGDATA_DIR"
    chmod 0700 "$PGDATA_DIR"
    as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 \
        --locale=C --no-sync >"$LOG_DIR/initdb.log" 2>&1 ||
        { cat "$LOG_DIR/initdb.log" >&2; die "initdb failed"; }
    as_pg sh -c "cat > '$PGDATA_DIR/pg_hba.conf'" <<EOF
# throwaway cluster: trust on the private socket and on 127.0.0.1 only
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
EOF
    as_pg sh -c "cat >> '$PGDATA_DIR/postgresql.conf'" <<EOF

# --- onceledger throwaway cluster (scripts/stack.sh) ---
include_if_exists = 'stack.conf'
EOF
}

pg_write_conf() {
    # STACK_DURABLE=1: fsync, synchronous_commit and full_page_writes on, as
    # a payments database runs (benchmarks); else off (tests, the demo).
    local durable=off
    [ "${STACK_DURABLE:-0}" = 1 ] && durable=on
    as_pg sh -c "cat > '$PGDATA_DIR/stack.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$RUN_DIR'
max_connections = 200
shared_buffers = 64MB
fsync = $durable
synchronous_commit = $durable
full_page_writes = $durable
wal_level = minimal
max_wal_senders = 0
max_wal_size = 1GB
log_min_messages = warning
log_line_prefix = '%m [%p] '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
}

pg_start() {
    prepare_dirs
    pg_init
    pg_write_conf
    if ! pg_running; then
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$LOG_DIR/postgres.log" \
            -w -t 60 start >/dev/null 9>&- ||
            { tail -n 30 "$LOG_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
    fi
    local _
    for _ in $(seq 1 100); do
        "$PG_BIN/pg_isready" -q -h "$RUN_DIR" -p "$PG_PORT" && break
        sleep 0.1
    done
    "$PG_BIN/pg_isready" -q -h "$RUN_DIR" -p "$PG_PORT" || die "PostgreSQL is not accepting connections"
    local have
    have=$("$PG_BIN/psql" -h "$RUN_DIR" -p "$PG_PORT" -U postgres -d postgres -XtAq \
        -c "SELECT 1 FROM pg_database WHERE datname = 'onceledger'")
    if [ "$have" != "1" ]; then
        "$PG_BIN/psql" -h "$RUN_DIR" -p "$PG_PORT" -U postgres -d postgres -Xq \
            -v ON_ERROR_STOP=1 -c "CREATE DATABASE onceledger" >/dev/null
    fi
}

pg_stop() {
    if pg_running; then
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null ||
            die "PostgreSQL did not stop"
    fi
}

redis_pid() {
    [ -f "$REDIS_PID" ] || return 1
    local pid
    pid=$(cat "$REDIS_PID" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    grep -q redis "/proc/$pid/comm" 2>/dev/null || [ ! -d /proc/self ] || return 1
    echo "$pid"
}

redis_start() {
    [ -n "$REDIS_SERVER" ] || die "redis-server not found"
    prepare_dirs
    if ! redis_pid >/dev/null; then
        rm -f "$REDIS_PID" "$REDIS_SOCK"
        "$REDIS_SERVER" --daemonize yes --port "$REDIS_PORT" --bind 127.0.0.1 \
            --unixsocket "$REDIS_SOCK" --unixsocketperm 770 \
            --pidfile "$REDIS_PID" --logfile "$LOG_DIR/redis.log" --dir "$REDIS_DIR" \
            --save '' --appendonly no --protected-mode yes >/dev/null 9>&- ||
            die "redis-server failed to start"
    fi
    local _
    for _ in $(seq 1 100); do
        if [ -n "$REDIS_CLI" ]; then
            [ "$("$REDIS_CLI" -s "$REDIS_SOCK" ping 2>/dev/null)" = "PONG" ] && return 0
        else
            [ -S "$REDIS_SOCK" ] && return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$LOG_DIR/redis.log" >&2 || true
    die "Redis is not answering"
}

redis_stop() {
    local pid _
    pid=$(redis_pid) || { rm -f "$REDIS_PID"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$REDIS_PID" "$REDIS_SOCK"
}

load_ports
case "$cmd" in
    start)
        pg_start
        redis_start
        write_env
        ;;
    stop)
        redis_stop
        pg_stop
        ;;
    pg-start)
        pg_start
        write_env
        ;;
    pg-stop)
        pg_stop
        ;;
    redis-start)
        redis_start
        write_env
        ;;
    redis-stop)
        redis_stop
        ;;
esac
