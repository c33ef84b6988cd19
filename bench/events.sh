# bench/events.sh — the relay's scenarios (issue #8), sourced by bench/run.sh.
#
# events_lag    ledger_transfer's load (POST /v1/transfers, 32 connections):
#               the relay's commit-to-XADD lag, from the daemon's
#               onceledger_relay_lag_seconds histogram over the run
# events_drain  1,000,000 events committed while the daemon is stopped
#               (SIGSTOP), then the time the relay takes to publish them all
#               (SIGCONT until the stored cursor reaches the last one)
# xadd_raw      reference: redis-benchmark XADD of an event-sized entry,
#               pipelined (-P 100), on the same Redis: what Redis alone does
# shellcheck shell=bash

EVENTS_DRAIN=${BENCH_EVENTS_DRAIN:-1000000}

relay_hist() {   # the lag histogram's buckets as "le count" lines
    curl -s "$DAEMON_URL/metrics" | sed -n 's/^onceledger_relay_lag_seconds_bucket{le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p'
}

events_lag() {
    ledger_setup || return 1
    local before after out
    before=$(relay_hist)
    out=$(wrk_run daemon post_transfer.lua /v1/transfers BENCH_MODE=transfer BENCH_ACCOUNTS="$LEDGER_ACCOUNTS") ||
        { echo "$out"; return 1; }
    sleep 1 # the last events of the run
    after=$(relay_hist)
    grep -v '^WRKJSON ' <<<"$out" || true
    BEFORE=$before AFTER=$after LINE=$(grep '^WRKJSON ' <<<"$out" | tail -n 1) "$PY" - <<'PY'
import json, os
def parse(t):
    return [(float(le), int(c)) for le, c in (l.split() for l in t.splitlines() if l.strip())]
b, a = parse(os.environ["BEFORE"]), parse(os.environ["AFTER"])
counts = [(le, ca - cb) for (le, ca), (_, cb) in zip(a, b)]   # cumulative
total = counts[-1][1]
def q(p):
    want, prev_le, prev_c = p * total, 0.0, 0
    for le, c in counts:
        if c >= want:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((want - prev_c) / max(1, c - prev_c))
        prev_le, prev_c = le, c
    return prev_le
line = json.loads(os.environ["LINE"][8:])
line["events"] = total
line["lag_p50_ms"] = round(1000 * q(0.50), 2)
line["lag_p99_ms"] = round(1000 * q(0.99), 2)
print(f"relay lag over {total} events: p50 {line['lag_p50_ms']} ms, p99 {line['lag_p99_ms']} ms (commit to XADD confirmed)")
print("WRKJSON " + json.dumps(line))
PY
}

events_drain() {
    local -a psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres -d onceledger)
    [ -x "${PG_BIN:-}/psql" ] && psql[0]=$PG_BIN/psql
    local n=$EVENTS_DRAIN per=1000
    echo "+ SIGSTOP the daemon, commit $n events ($per per transaction), SIGCONT, wait for the relay's cursor"
    kill -STOP "$DAEMON_PID"
    # An event-sized row: a transfer.posted of ~600 bytes of data.
    "${psql[@]}" <<SQL || { kill -CONT "$DAEMON_PID"; return 1; }
DO \$\$
BEGIN
  FOR t IN 1..($n / $per) LOOP
    INSERT INTO outbox (n, tenant, id, type, subject, time, data)
    SELECT i, 'bench', 'evt_drain_' || t || '_' || i, 'transfer.posted', 'tr_drain_' || t || '_' || i,
           to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           '{"id":"tr_drain_' || t || '_' || i || '","from":"bacc-1","to":"bacc-2","amount":1,"currency":"EUR","status":"posted",'
           || '"description":null,"metadata":{},"hold_id":null,"order_id":null,"created_at":"2026-11-21T10:00:00.000000Z",'
           || '"entries":[{"account":"bacc-1","seq":1,"amount":-1,"balance_after":99},'
           || '{"account":"bacc-2","seq":1,"amount":1,"balance_after":101}]}'
    FROM generate_series(0, $per - 1) AS i;
    COMMIT;
  END LOOP;
END
\$\$;
SQL
    local last
    last=$("${psql[@]}" -At -c "SELECT txid::text || ' ' || n FROM outbox ORDER BY txid DESC, n DESC LIMIT 1")
    local t0 t1
    t0=$(date +%s.%N)
    kill -CONT "$DAEMON_PID"
    local done_=0 _
    for _ in $(seq 1 6000); do
        if [ "$("${psql[@]}" -At -c "SELECT (txid, n) >= ('${last% *}'::xid8, ${last#* }) FROM relay_cursor")" = t ]; then
            done_=1
            break
        fi
        sleep 0.05
    done
    t1=$(date +%s.%N)
    [ "$done_" = 1 ] || { echo "the relay did not publish $n events within 300 s"; return 1; }
    local secs rate
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    rate=$(awk -v s="$secs" -v n="$n" 'BEGIN { printf "%.0f", n / s }')
    echo "$n events published in $secs s: $rate events/s"
    echo "WRKJSON {\"rps\":$rate,\"p50_ms\":null,\"p99_ms\":null,\"non_2xx\":0,\"socket_errors\":0,\"events\":$n,\"duration_s\":$secs}"
}

xadd_raw() {
    local payload rb=redis-benchmark out rate
    payload=$(printf 'x%.0s' $(seq 1 900))
    echo "+ redis-benchmark -P 100 -c 1 -n 200000 XADD bench:xadd_raw MAXLEN ~ 1000000 * event <900 bytes>"
    # The stack's Redis wants its password; redis-benchmark reads it only
    # from -a (unlike redis-cli, not from REDISCLI_AUTH): it is on this
    # command line for the run, on the bench's own throwaway stack.
    out=$($rb -p "$REDIS_PORT" -a "$ONCELEDGER_STACK_PASSWORD" -c 1 -P 100 -n 200000 -q XADD bench:xadd_raw MAXLEN '~' 1000000 '*' event "$payload" 2>&1) ||
        { echo "$out"; return 1; }
    echo "$out" | tr '\r' '\n' | tail -n 2
    rate=$(echo "$out" | tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)
    [ -n "$rate" ] || return 1
    echo "WRKJSON {\"rps\":$rate,\"p50_ms\":null,\"p99_ms\":null,\"non_2xx\":0,\"socket_errors\":0}"
}
