# bench/soak.sh — the soak (issue #9), sourced by bench/run.sh.
#
# soak  transfers paced to half of ledger_transfer's peak for
#       BENCH_SOAK_SECONDS (600), sampling every 10 s the daemon's RSS, the
#       relay's backlog and lag histogram. After a warm-up (the first fifth)
#       the RSS must stay within ±10 % of its mean, no request may fail, the
#       relay's lag p99 over each window stays bounded (≤ 1 s) and its
#       backlog returns to 0. Prints the samples, a verdict line and WRKJSON.
# shellcheck shell=bash

SOAK_SECONDS=${BENCH_SOAK_SECONDS:-600}

soak() {
    ledger_setup || return 1
    local peak
    peak=$(scenario_rps ledger_transfer)
    if [ -z "$peak" ]; then
        echo "soak needs ledger_transfer to run first (in the same bench/run.sh)"
        return 1
    fi
    local delay
    delay=$("$PY" -c "print(max(0, int(1000 * $CONNECTIONS / ($peak / 2))))")
    echo "+ half of $peak req/s for ${SOAK_SECONDS}s: each of $CONNECTIONS connections pauses ${delay} ms (latency not subtracted: a little under half)"
    local samples="$LOG_DIR/soak-samples.txt"
    : >"$samples"
    BENCH_KEY=$API_KEY BENCH_MODE=transfer BENCH_ACCOUNTS=$LEDGER_ACCOUNTS BENCH_DELAY_MS=$delay \
        wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${SOAK_SECONDS}s" --timeout 10s -s bench/wrk/post_transfer.lua \
        "$DAEMON_URL/v1/transfers" >"$LOG_DIR/soak-wrk.txt" 2>&1 &
    local wrk_pid=$! t=0
    while kill -0 "$wrk_pid" 2>/dev/null; do
        sleep 10
        t=$((t + 10))
        local rss backlog buckets
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status" 2>/dev/null || echo 0)
        backlog=$(curl -s "$DAEMON_URL/metrics" | awk '/^onceledger_relay_backlog / { print $2 }')
        buckets=$(curl -s "$DAEMON_URL/metrics" | sed -n 's/^onceledger_relay_lag_seconds_bucket{le="\([^"]*\)"} \([0-9]*\)$/\1=\2/p' | tr '\n' ' ')
        echo "$t $rss ${backlog:-?} $buckets" >>"$samples"
    done
    wait "$wrk_pid" || { cat "$LOG_DIR/soak-wrk.txt"; return 1; }
    grep -v '^WRKJSON ' "$LOG_DIR/soak-wrk.txt" || true
    sleep 2
    local final_backlog
    final_backlog=$(curl -s "$DAEMON_URL/metrics" | awk '/^onceledger_relay_backlog / { print $2 }')
    SAMPLES=$samples LINE=$(grep '^WRKJSON ' "$LOG_DIR/soak-wrk.txt" | tail -n 1) FINAL_BACKLOG=${final_backlog:-0} \
        WARM=$((SOAK_SECONDS / 5)) "$PY" - <<'PY'
import json, os
rows = []
for line in open(os.environ["SAMPLES"]):
    p = line.split()
    if len(p) < 3:
        continue
    buckets = [(float(le), int(c)) for le, c in (x.split("=") for x in p[3:])]
    rows.append((int(p[0]), int(p[1]), p[2], buckets))
warm = int(os.environ["WARM"])
after = [r for r in rows if r[0] > warm]
rss = [r[1] for r in after]
mean = sum(rss) / len(rss)
lo, hi = min(rss) / mean - 1, max(rss) / mean - 1

def p99(b0, b1):
    counts = [(le, c1 - c0) for (le, c1), (_, c0) in zip(b1, b0)]
    total = counts[-1][1]
    if total == 0:
        return 0.0
    for le, c in counts:
        if c >= 0.99 * total:
            return le
    return float("inf")

lags = [p99(a[3], b[3]) for a, b in zip(rows, rows[1:]) if a[3] and b[3]]
worst = max(lags) if lags else 0.0
line = json.loads(os.environ["LINE"][8:])
errors = line.get("non_2xx", 0) + line.get("socket_errors", 0)
for t, r, bl, _ in rows:
    print(f"  t={t:4d}s rss={r / 1024:7.1f} MiB backlog={bl}")
ok = abs(lo) <= 0.10 and abs(hi) <= 0.10 and errors == 0 and worst <= 1.0 and os.environ["FINAL_BACKLOG"] in ("0", "")
print(f"soak: RSS after warm-up {mean / 1024:.1f} MiB, range {lo:+.1%} .. {hi:+.1%} (±10 %); errors {errors}; "
      f"relay lag p99 per 10 s window ≤ {worst * 1000:.0f} ms (bucket bound); final backlog {os.environ['FINAL_BACKLOG']}: "
      f"{'ok' if ok else 'FAILED'}")
line.update({"rss_mib": round(mean / 1024, 1), "rss_range": [round(lo, 4), round(hi, 4)], "lag_p99_max_ms": worst * 1000,
             "soak_ok": ok})
print("WRKJSON " + json.dumps(line))
PY
}
