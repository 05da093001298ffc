#!/usr/bin/env bash
# probe-native-test.sh: a real Prometheus with native histograms enabled scrapes `shout probe`
# over loopback and stores its round-trip histogram as a native histogram (issue 16, "native
# histograms where the scraper asks for them").
#
# Runs as any user, all on 127.0.0.1: a STAMP reflector (`shout server --mode stamp`), an agent
# (`shout probe --metrics`), and Prometheus with `--enable-feature=native-histograms`, its own
# config and a scratch data directory, on a free port. Checks, each PASS or FAIL (exit 1 if one
# failed, 2 on a setup problem):
#   1. `shout_probe_rtt_seconds` comes back from /api/v1/query as a native histogram (a
#      "histogram" field, not a "value"): Prometheus asked for protobuf and got native buckets;
#   2. histogram_quantile(0.5 and 0.99, rate(shout_probe_rtt_seconds[1m])) on it gives
#      0 < p50 <= p99 < 50 ms (loopback);
#   3. the scheduling-lag histogram is native too, the one-way delays classic (2 x 11
#      `_bucket` series), and the counters and gauges arrive (sent_total > 0, up == 1);
#   4. histogram_count() of the round trips, from the same scrape, is within 2 of
#      shout_probe_answered_total: the native buckets hold every answer;
#   5. a second agent of 150 targets, whose protobuf page sends each per-target family in
#      several messages (64 targets each), arrives whole: 150 series of each.
#
#   SHOUT=target/release/shout bash scripts/probe-native-test.sh   # about 10 s
# Environment: SHOUT (default target/release/shout), KEEP=1 keeps the scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."

SHOUT=${SHOUT:-target/release/shout}
BUDGET=60 # seconds: every wait gives up before the run reaches this

note() { echo "probe-native: $*"; }
die() {
    echo "probe-native: SETUP FAILED: $*" >&2
    exit 2
}
FAILED=0
pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    FAILED=1
}

for tool in prometheus python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
[[ -x $SHOUT ]] || die "no shout binary at $SHOUT (cargo build --release, or set SHOUT)"
SHOUT=$(realpath "$SHOUT")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/shout-native.XXXXXX")
PIDS=()
cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $status -ne 0 ]]; then
        for f in server agent prometheus; do
            [[ -s $TMP/$f.err ]] || continue
            echo "--- $f stderr (last 10 lines)" >&2
            tail -n 10 "$TMP/$f.err" >&2
        done
    fi
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "probe-native: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

budget() {
    ((SECONDS < BUDGET)) || die "out of time (${SECONDS}s) while $1"
}

# The address of the first `listening on ADDR` line of FILE, waiting at most 10 s for it.
listening() {
    local addr
    for _ in $(seq 100); do
        addr=$(sed -n '1s/^listening on //p' "$1")
        [[ -n $addr ]] && {
            echo "$addr"
            return 0
        }
        kill -0 "$2" 2>/dev/null || die "$(basename "$1" .out) exited at start"
        sleep 0.1
    done
    die "no 'listening on' line in $1 after 10 s"
}

"$SHOUT" server --mode stamp --bind 127.0.0.1:0 --quiet >"$TMP/server.out" 2>"$TMP/server.err" &
PIDS+=($!)
REFLECTOR=$(listening "$TMP/server.out" $!)
"$SHOUT" probe "$REFLECTOR" --interval 50ms --timeout 1s --metrics 127.0.0.1:0 --quiet \
    >"$TMP/agent.out" 2>"$TMP/agent.err" &
PIDS+=($!)
AGENT=$(listening "$TMP/agent.out" $!)
note "reflector $REFLECTOR, agent /metrics on $AGENT"
# A second agent with more targets than one group of the protobuf page (GROUP, 64), so each
# per-target family comes in several messages: Prometheus must take every series of them.
CROWD_N=150
python3 - "$REFLECTOR" "$CROWD_N" >"$TMP/crowd.yml" <<'PY'
import sys
print("defaults: {interval: 1s, timeout: 1s}\ntargets:")
for i in range(int(sys.argv[2])):
    print(f"  - {{address: '{sys.argv[1]}', labels: {{n: '{i}'}}}}")
PY
"$SHOUT" probe --config "$TMP/crowd.yml" --metrics 127.0.0.1:0 --quiet \
    >"$TMP/crowd.out" 2>"$TMP/crowd.err" &
PIDS+=($!)
CROWD=$(listening "$TMP/crowd.out" $!)

# A free port for Prometheus (the kernel's pick, released for it: a tiny race on a busy host).
PROM_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$TMP/prometheus.yml" <<EOF
global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: shout-probe
    static_configs: [{targets: ['$AGENT']}]
  - job_name: crowd
    static_configs: [{targets: ['$CROWD']}]
EOF
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
    --enable-feature=native-histograms --web.listen-address="127.0.0.1:$PROM_PORT" \
    --log.level=warn >"$TMP/prometheus.out" 2>"$TMP/prometheus.err" &
PROM_PID=$!
PIDS+=("$PROM_PID")
PROM="http://127.0.0.1:$PROM_PORT"
for _ in $(seq 200); do
    curl -sf --max-time 2 "$PROM/-/ready" >/dev/null 2>&1 && break
    kill -0 "$PROM_PID" 2>/dev/null || die "prometheus exited at start"
    sleep 0.1
done
curl -sf --max-time 2 "$PROM/-/ready" >/dev/null || die "prometheus not ready in 20 s"
note "prometheus $(prometheus --version 2>&1 | sed -n '1s/^prometheus, version \([^ ]*\).*/\1/p') on 127.0.0.1:$PROM_PORT, native histograms on"

# Instant query EXPR: one line per series, "value V" for a float or "histogram COUNT SUM
# BUCKETS" for a native histogram.
query() {
    curl -sf --max-time 5 --get --data-urlencode "query=$1" "$PROM/api/v1/query" >"$TMP/q.json" ||
        die "query failed: $1"
    python3 - "$TMP/q.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if r.get("status") != "success":
    sys.exit("prometheus: " + r.get("error", "query failed"))
for s in r["data"]["result"]:
    if "histogram" in s:
        h = s["histogram"][1]
        print("histogram", h["count"], h["sum"], len(h.get("buckets", [])))
    else:
        print("value", s["value"][1])
PY
}

# Waits (bounded by the budget) until query EXPR prints something.
wait_for() {
    local out
    while :; do
        out=$(query "$1")
        [[ -n $out ]] && {
            echo "$out"
            return 0
        }
        budget "waiting for $1"
        sleep 0.5
    done
}

rtt=$(wait_for 'shout_probe_rtt_seconds{job="shout-probe"}')
note "shout_probe_rtt_seconds: $rtt"
read -r kind count _ buckets <<<"$rtt"
if [[ $kind == histogram ]] && ((buckets > 0)); then
    pass "shout_probe_rtt_seconds is stored as a native histogram ($count answers in $buckets buckets)"
else
    fail "shout_probe_rtt_seconds is not a native histogram: $rtt"
fi

# rate() needs two scrapes of the histogram.
for _ in $(seq 20); do
    [[ -n $(query 'histogram_quantile(0.5, rate(shout_probe_rtt_seconds{job="shout-probe"}[1m]))') ]] && break
    budget "waiting for a rate"
    sleep 0.5
done
p50=$(wait_for 'histogram_quantile(0.5, rate(shout_probe_rtt_seconds{job="shout-probe"}[1m]))' | awk '{print $2}')
p99=$(wait_for 'histogram_quantile(0.99, rate(shout_probe_rtt_seconds{job="shout-probe"}[1m]))' | awk '{print $2}')
note "histogram_quantile over rate(shout_probe_rtt_seconds[1m]): p50 $p50 s, p99 $p99 s"
if python3 -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(not (0 < a <= b < 0.05))" "$p50" "$p99"; then
    pass "histogram_quantile(0.5 / 0.99, rate(shout_probe_rtt_seconds[1m])): 0 < $p50 <= $p99 < 50 ms"
else
    fail "p50 $p50, p99 $p99: want 0 < p50 <= p99 < 0.05"
fi

lag=$(wait_for 'shout_probe_scheduling_lag_seconds{job="shout-probe"}')
delays=$(wait_for 'count(shout_probe_one_way_delay_seconds_bucket{job="shout-probe"})' | awk '{print $2}')
classic=$(query 'count(shout_probe_rtt_seconds_bucket{job="shout-probe"})' | awk '{print $2}')
note "classic series: ${delays} one-way delay buckets; ${classic:-no} round-trip buckets (Prometheus 2.42 keeps only the native one when both are sent)"
sent=$(wait_for 'shout_probe_sent_total{job="shout-probe"}' | awk '{print $2}')
up=$(wait_for 'shout_probe_up{job="shout-probe"}' | awk '{print $2}')
if [[ $lag == histogram* ]] && ((delays == 22)) && python3 -c "import sys; sys.exit(not float(sys.argv[1]) > 0)" "$sent" && [[ $up == 1 ]]; then
    pass "the lag histogram is native too, the delays classic ($delays buckets); shout_probe_sent_total $sent, shout_probe_up $up"
else
    fail "lag: $lag; one-way delay buckets: $delays (want 2 x 11); sent_total: $sent; up: $up"
fi

diff=$(wait_for 'histogram_count(shout_probe_rtt_seconds{job="shout-probe"}) - on(target) shout_probe_answered_total{job="shout-probe"}' | awk '{print $2}')
if python3 -c "import sys; sys.exit(not abs(float(sys.argv[1])) <= 2)" "$diff"; then
    pass "histogram_count(shout_probe_rtt_seconds) - shout_probe_answered_total = $diff"
else
    fail "histogram_count(shout_probe_rtt_seconds) - shout_probe_answered_total = $diff, want within 2"
fi

# The crowd: every target's counters and native round-trip histogram, each once.
crowd=""
while :; do
    crowd=$(query 'count(shout_probe_sent_total{job="crowd"}) * 1000 + count(histogram_count(shout_probe_rtt_seconds{job="crowd"}))' | awk '{print $2}')
    [[ $crowd == "$((CROWD_N * 1000 + CROWD_N))" ]] && break
    ((SECONDS < BUDGET - 5)) || break
    sleep 0.5
done
if [[ $crowd == "$((CROWD_N * 1000 + CROWD_N))" ]]; then
    pass "an agent of $CROWD_N targets (its families in groups of 64): $CROWD_N sent_total series and $CROWD_N native round-trip histograms"
else
    fail "the crowd agent: count(sent_total) * 1000 + count(native rtt) = ${crowd:-nothing}, want $((CROWD_N * 1000 + CROWD_N))"
fi

note "done in ${SECONDS}s"
exit "$FAILED"
