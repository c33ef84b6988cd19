#!/bin/bash
# Throwaway PostgreSQL cluster + Redis for development, tests and benchmarks.
#
#   scripts/stack.sh start|stop|pg-stop|pg-start|redis-stop|redis-start DIR
#
# Everything lives under DIR: pgdata/ (the cluster), run/ (unix sockets of
# both servers), redis/ (Redis working dir), log/, ports (the TCP ports chosen
# the first time, so they stay stable across restarts), secret (the stack's
# password, mode 0600), redis.conf (0600) and env (shell KEY=value lines for
# clients, mode 0600, see docs/development.md).  Both servers listen on their
# private socket and on 127.0.0.1 only, and both want the stack's password,
# generated the first time: SCRAM-SHA-256 for PostgreSQL (socket and TCP
# alike), `requirepass` for Redis.  DIR is 0711: other users may pass through
# it (PostgreSQL's user must) but not list it, and cannot read the secrets.
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
SECRET_FILE=$DIR/secret
REDIS_CONF=$DIR/redis.conf
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

# The stack's password: made the first time a server of DIR starts, kept in
# DIR/secret (0600).  URL-safe base64 ([A-Za-z0-9_-]), so it goes into URLs,
# conninfo strings and config files as it is.  NEW_SECRET=1 when this run
# made it: servers of an older stack (no password) must get it.
load_secret() {
    STACK_PASSWORD=""
    NEW_SECRET=0
    if [ -f "$SECRET_FILE" ]; then
        # shellcheck disable=SC1090
        . "$SECRET_FILE"
    fi
    if [ -z "$STACK_PASSWORD" ]; then
        STACK_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [ ${#STACK_PASSWORD} -eq 32 ] || die "cannot generate a password"
        (umask 077 && printf 'STACK_PASSWORD=%s\n' "$STACK_PASSWORD" >"$SECRET_FILE.tmp")
        mv -f "$SECRET_FILE.tmp" "$SECRET_FILE"
        NEW_SECRET=1
    fi
    chmod 0600 "$SECRET_FILE"
}

# Clients of the stack: libpq (PGPASSWORD), redis-cli (REDISCLI_AUTH) and the
# URLs carry the password; hence mode 0600.
write_env() {
    (umask 077 && cat >"$ENV_FILE.tmp" <<EOF
PGHOST=$RUN_DIR
PGPORT=$PG_PORT
PGDATABASE=onceledger
PGUSER=postgres
PGPASSWORD=$STACK_PASSWORD
ONCELEDGER_DATABASE_URL=postgresql://postgres:$STACK_PASSWORD@127.0.0.1:$PG_PORT/onceledger
ONCELEDGER_REDIS_URL=redis://:$STACK_PASSWORD@127.0.0.1:$REDIS_PORT
ONCELEDGER_STACK_PASSWORD=$STACK_PASSWORD
REDIS_PORT=$REDIS_PORT
REDIS_SOCKET=$REDIS_SOCK
REDISCLI_AUTH=$STACK_PASSWORD
ONCELEDGER_STACK_DIR=$DIR
PG_BIN=$PG_BIN
EOF
    )
    chmod 0600 "$ENV_FILE.tmp"
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

prepare_dirs() {
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$REDIS_DIR"
    # The postgres user must be able to reach DIR and write run/ and log/;
    # nobody else needs to list it (env and secret are 0600 besides).
    chmod 0711 "$DIR"
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
    # initdb reads the superuser's password from a file PG_USER can read:
    # 0600, PG_USER's, in run/ (initdb wants an empty data directory),
    # removed right after.
    local pwfile=$RUN_DIR/.initdb-password
    as_pg sh -c "umask 077 && cat > '$pwfile'" <<<"$STACK_PASSWORD"
    local rc=0
    as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
        --pwfile="$pwfile" -E UTF8 --locale=C --no-sync >"$LOG_DIR/initdb.log" 2>&1 || rc=$?
    rm -f "$pwfile"
    [ $rc -eq 0 ] || { cat "$LOG_DIR/initdb.log" >&2; die "initdb failed"; }
    as_pg sh -c "cat >> '$PGDATA_DIR/postgresql.conf'" <<EOF

# --- onceledger throwaway cluster (scripts/stack.sh) ---
include_if_exists = 'stack.conf'
EOF
}

# Sets the superuser's password of a cluster that is not running (an older
# stack made before the password, with `trust`), in single-user mode.
pg_set_password_offline() {
    as_pg "$PG_BIN/postgres" --single -D "$PGDATA_DIR" postgres >>"$LOG_DIR/initdb.log" 2>&1 <<EOF ||
SET password_encryption = 'scram-sha-256';
ALTER ROLE postgres PASSWORD '$STACK_PASSWORD';
EOF
        die "could not set the password of the existing cluster (see $LOG_DIR/initdb.log)"
}

pg_write_conf() {
    # STACK_DURABLE=1: fsync, synchronous_commit and full_page_writes on, as
    # a payments database runs (benchmarks); else off (tests, the demo).
    local durable=off
    [ "${STACK_DURABLE:-0}" = 1 ] && durable=on
    # Rewritten on every start: an older stack's `trust` lines go too.
    as_pg sh -c "cat > '$PGDATA_DIR/pg_hba.conf'" <<EOF
# scripts/stack.sh: the private socket and 127.0.0.1 only, and always the
# stack's password (DIR/secret): other local users must not get in.
local   all   all                 scram-sha-256
host    all   all   127.0.0.1/32  scram-sha-256
EOF
    as_pg sh -c "cat > '$PGDATA_DIR/stack.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$RUN_DIR'
password_encryption = 'scram-sha-256'
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
    have=$(PGPASSWORD=$STACK_PASSWORD "$PG_BIN/psql" -h "$RUN_DIR" -p "$PG_PORT" -U postgres -d postgres -XtAq \
        -c "SELECT 1 FROM pg_database WHERE datname = 'onceledger'")
    if [ "$have" != "1" ]; then
        PGPASSWORD=$STACK_PASSWORD "$PG_BIN/psql" -h "$RUN_DIR" -p "$PG_PORT" -U postgres -d postgres -Xq \
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
        # A config file, not flags: a command line is readable by every
        # local user (/proc/PID/cmdline), and requirepass is the secret.
        (umask 077 && cat >"$REDIS_CONF" <<EOF
daemonize yes
port $REDIS_PORT
bind 127.0.0.1
protected-mode yes
unixsocket $REDIS_SOCK
unixsocketperm 770
pidfile $REDIS_PID
logfile $LOG_DIR/redis.log
dir $REDIS_DIR
save ""
appendonly no
requirepass $STACK_PASSWORD
EOF
        )
        chmod 0600 "$REDIS_CONF"
        "$REDIS_SERVER" "$REDIS_CONF" >/dev/null 9>&- || die "redis-server failed to start"
    fi
    local _
    for _ in $(seq 1 100); do
        if [ -n "$REDIS_CLI" ]; then
            [ "$(REDISCLI_AUTH=$STACK_PASSWORD "$REDIS_CLI" -s "$REDIS_SOCK" ping 2>/dev/null)" = "PONG" ] && return 0
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

# An older stack (before the password) gets one at its next start: its
# running servers are stopped, the cluster's superuser gets the password,
# and whatever was running starts again with it.
adopt_secret() {
    [ "$NEW_SECRET" = 1 ] || return 0
    [ -f "$PGDATA_DIR/PG_VERSION" ] || [ -n "$(redis_pid || true)" ] || return 0
    log "no password yet in $DIR: setting one (servers restart)"
    local pg_was=0 redis_was=0
    if [ -f "$PGDATA_DIR/PG_VERSION" ]; then
        pg_running && pg_was=1
        pg_stop
        prepare_dirs
        pg_set_password_offline
    fi
    redis_pid >/dev/null && redis_was=1
    redis_stop
    if [ "$pg_was" = 1 ]; then pg_start; fi
    if [ "$redis_was" = 1 ]; then redis_start; fi
    return 0
}

load_ports
case "$cmd" in
    start|pg-start|redis-start)
        load_secret
        adopt_secret
        ;;
esac
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
