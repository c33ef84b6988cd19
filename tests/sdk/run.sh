#!/bin/bash
# Runs the AWS SDK v3 (JavaScript) suite against onceledger's DynamoDB-compatible
# endpoint: a throwaway stack (scripts/stack.sh) under var/, migrations, two
# tenants with a SigV4 key each, a master key file, a daemon with
# --dynamodb-listen on free ports, then `node --test` over tests/sdk/*.test.mjs.
#
#   tests/sdk/run.sh                # from anywhere; builds nothing (run make first)
#
# Environment:
#   ONCELEDGER_DAEMON, ONCELEDGER_CLI  binaries (default src/onceledgerd, src/onceledger)
#   ONCELEDGER_SDK_KEEP=1              keep the stack directory (var/sdk-*) afterwards
#   NODE_TEST_ARGS                     extra arguments for node --test
#                                      (e.g. --test-name-pattern=TTL)
#
# Output contains node's TAP summary (`# pass N`, `# fail N`); the exit status
# is node's.  The daemon's log is printed when a test fails.  When node or npm
# is not installed: prints `# skipped: ...` and exits 0.
set -uo pipefail

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "# skipped: node and npm are needed for the AWS SDK suite (apt-get install nodejs npm)"
    exit 0
fi

SDK_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SDK_DIR/../.." && pwd -P)
DAEMON=${ONCELEDGER_DAEMON:-$REPO/src/onceledgerd}
CLI=${ONCELEDGER_CLI:-$REPO/src/onceledger}

log() { echo "sdk/run.sh: $*" >&2; }
die() { log "$*"; exit 2; }

[ -x "$DAEMON" ] || die "$DAEMON not found: build first (make -j2)"
[ -x "$CLI" ] || die "$CLI not found: build first (make -j2)"

# --- dependencies: npm ci when node_modules is missing or older than the lock
cd "$SDK_DIR" || die "cannot cd to $SDK_DIR"
if [ ! -f node_modules/.package-lock.json ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ package.json -nt node_modules/.package-lock.json ]; then
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error 2>&1 | grep -v 'Unknown user config' >&2
    [ "${PIPESTATUS[0]}" -eq 0 ] || die "npm ci failed"
    touch node_modules/.package-lock.json
fi
cd "$REPO" || die "cannot cd to $REPO"

# --- throwaway stack and daemon; everything is undone by the trap
mkdir -p "$REPO/var"
WORK=$(mktemp -d "$REPO/var/sdk-XXXXXX") || die "mktemp failed"
chmod 755 "$WORK"       # PostgreSQL runs as `postgres` when we are root
DAEMON_PID=
DAEMON_LOG=$WORK/onceledgerd.log

# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    "$REPO/scripts/stack.sh" stop "$WORK" >/dev/null 2>&1
    if [ "${ONCELEDGER_SDK_KEEP:-0}" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf -- "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

"$REPO/scripts/stack.sh" start "$WORK" >"$WORK/stack.log" 2>&1 \
    || { cat "$WORK/stack.log" >&2; die "scripts/stack.sh start failed"; }
DATABASE_URL=$(sed -n 's/^ONCELEDGER_DATABASE_URL=//p' "$WORK/env")
REDIS_URL=$(sed -n 's/^ONCELEDGER_REDIS_URL=//p' "$WORK/env")
if [ -z "$DATABASE_URL" ] || [ -z "$REDIS_URL" ]; then die "no URLs in $WORK/env"; fi

# The CLI and daemon get everything from flags, nothing from the caller's
# environment, except the stack's URLs: they carry its password, which must
# not be on a command line (readable by every local user), so they travel in
# ONCELEDGER_DATABASE_URL / ONCELEDGER_REDIS_URL.
unset ONCELEDGER_DATABASE_URL ONCELEDGER_REDIS_URL ONCELEDGER_MASTER_KEY_FILE ONCELEDGER_DYNAMODB_LISTEN
cli() { ONCELEDGER_DATABASE_URL=$DATABASE_URL "$CLI" "$@"; }

MASTER_KEY=$WORK/master.key
(umask 077; head -c 32 /dev/urandom >"$MASTER_KEY")
chmod 600 "$MASTER_KEY"

cli migrate >"$WORK/cli.log" 2>&1 || { cat "$WORK/cli.log" >&2; die "onceledger migrate failed"; }
suffix=$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')
T1=sdk1_$suffix
T2=sdk2_$suffix
for t in "$T1" "$T2"; do
    cli tenant create "$t" >>"$WORK/cli.log" 2>&1 || { cat "$WORK/cli.log" >&2; die "tenant create $t failed"; }
done
sigv4_key() {
    local out
    out=$(cli key create --tenant "$1" --scopes dynamodb --sigv4 --master-key-file "$MASTER_KEY" 2>>"$WORK/cli.log") \
        || { cat "$WORK/cli.log" >&2; die "key create --sigv4 for $1 failed"; }
    if [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ] || ! [[ $out =~ ^[^[:space:]]+\ [^[:space:]]+$ ]]; then
        die "key create --sigv4 printed an unexpected line: '$out'"
    fi
    printf '%s\n' "$out"
}
read -r KEY_ID_1 SECRET_1 <<<"$(sigv4_key "$T1")" || exit 2
read -r KEY_ID_2 SECRET_2 <<<"$(sigv4_key "$T2")" || exit 2
[ -n "$KEY_ID_1" ] && [ -n "$KEY_ID_2" ] || exit 2

HTTP_PORT=$(free_port)
DDB_PORT=$(free_port)
while [ "$DDB_PORT" = "$HTTP_PORT" ]; do DDB_PORT=$(free_port); done
(cd "$WORK" && ONCELEDGER_DATABASE_URL=$DATABASE_URL ONCELEDGER_REDIS_URL=$REDIS_URL \
    exec "$DAEMON" --listen "127.0.0.1:$HTTP_PORT" --dynamodb-listen "127.0.0.1:$DDB_PORT" \
    --master-key-file "$MASTER_KEY" --threads 2 </dev/null >"$DAEMON_LOG" 2>&1) &
DAEMON_PID=$!

print_daemon_log() {
    echo "----- daemon log ($DAEMON_LOG, last 300 lines) -----"
    tail -n 300 "$DAEMON_LOG"
    echo "----- end of daemon log -----"
}

http_up=0 ddb_up=0
for _ in $(seq 150); do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        print_daemon_log; die "the daemon exited during startup"
    fi
    [ "$http_up" = 1 ] || ! curl -fsS -o /dev/null "http://127.0.0.1:$HTTP_PORT/healthz" 2>/dev/null || http_up=1
    [ "$ddb_up" = 1 ] || ! curl -fsS -o /dev/null "http://127.0.0.1:$DDB_PORT/" 2>/dev/null || ddb_up=1
    if [ "$http_up" = 1 ] && [ "$ddb_up" = 1 ]; then break; fi
    sleep 0.1
done
if [ "$http_up" != 1 ]; then print_daemon_log; die "GET http://127.0.0.1:$HTTP_PORT/healthz not 200 after 15 s"; fi
if [ "$ddb_up" != 1 ]; then
    print_daemon_log
    curl -sS -i "http://127.0.0.1:$DDB_PORT/" >&2
    die "GET http://127.0.0.1:$DDB_PORT/ (--dynamodb-listen) not 200 after 15 s"
fi
log "daemon pid $DAEMON_PID, HTTP :$HTTP_PORT, DynamoDB :$DDB_PORT, tenants $T1 $T2"

# --- the suite
export ONCELEDGER_DYNAMODB_URL="http://127.0.0.1:$DDB_PORT"
export ONCELEDGER_SDK_KEY_ID=$KEY_ID_1 ONCELEDGER_SDK_SECRET=$SECRET_1
export ONCELEDGER_SDK_KEY_ID_2=$KEY_ID_2 ONCELEDGER_SDK_SECRET_2=$SECRET_2
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true   # node 20 is fine for this SDK version
# shellcheck disable=SC2086
node --test --test-reporter=tap ${NODE_TEST_ARGS:-} "$SDK_DIR"/*.test.mjs
status=$?

if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
    log "the daemon died during the tests"
    [ "$status" -ne 0 ] || status=1
else
    # A clean stop exits 0; a sanitizer build reports leaks and errors
    # through its exit status here (scripts/test.sh runs this on ASan too).
    kill -TERM "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID"
    daemon_status=$?
    DAEMON_PID=
    if [ "$daemon_status" -ne 0 ]; then
        log "the daemon exited with status $daemon_status at SIGTERM"
        [ "$status" -ne 0 ] || status=1
    fi
fi
if [ "$status" -ne 0 ]; then
    print_daemon_log
fi
exit "$status"
