#!/usr/bin/env bash
# Compares `shout server` with naive baselines (std, tokio, Python) on loopback,
# measured by `shout bench`. The server runs on core 0, the bench on core 1.
#
#   scripts/bench-compare.sh              # full run, about 10 minutes
#   QUICK=1 scripts/bench-compare.sh      # smoke run, about 1 minute
#
# Environment: DURATION (per measurement, default 5s), RUNS (default 3; the
# table shows medians), WARMUP (default 250ms, not counted), SIZES, FLOOD_WINDOW
# (default 64), GSO_WINDOW (default 256), GSO_SIZES (default 32), SERVERS (the
# servers of every cell, default "shout naive_std naive_tokio python"; add
# shout_stamp for the STAMP reflector, measured by `shout bench --stamp` in the
# cells of 44 B and more, STAMP's smallest packet), RSS_FLOOD (default 60s),
# PACED_RATE (probes/s: adds a "paced" cell per size, open loop at that rate,
# the same offered load for every server; off by default).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-1s}
    RUNS=${RUNS:-1}
    SIZES=${SIZES:-"32 1400"}
else
    DURATION=${DURATION:-5s}
    RUNS=${RUNS:-3}
    SIZES=${SIZES:-"32 512 1400 8192"}
fi
WARMUP=${WARMUP:-250ms}
FLOOD_WINDOW=${FLOOD_WINDOW:-64}
GSO_WINDOW=${GSO_WINDOW:-256}
GSO_SIZES=${GSO_SIZES:-32}
read -r -a SERVERS <<<"${SERVERS:-shout naive_std naive_tokio python}"
STAMP_MIN=44
PACED_RATE=${PACED_RATE:-}

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Seconds as a decimal number, from `250ms`, `5s`, `1.5`.
seconds() {
    case $1 in
        *ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;;
        *s) echo "${1%s}" ;;
        *) echo "$1" ;;
    esac
}

echo "building (release)..." >&2
cargo build --release --quiet --bin shout --example naive_std --example naive_tokio
BIN=target/release
SHOUT=$BIN/shout
command -v python3 >/dev/null || { echo "python3 is needed (baseline and tables)" >&2; exit 1; }

PIN_SERVER=()
PIN_BENCH=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    PIN_SERVER=(taskset -c 0)
    PIN_BENCH=(taskset -c 1)
else
    echo "note: fewer than 2 cores or no taskset: server and bench are not pinned" >&2
fi
TICKS=$(getconf CLK_TCK)

# Starts server $1 pinned; sets SERVER_PID and SERVER_ADDR from its `listening on` line.
start_server() {
    local cmd
    case $1 in
        shout) cmd=("$SHOUT" server --bind 127.0.0.1:0 --workers 1 --quiet) ;;
        shout_busy) cmd=("$SHOUT" server --bind 127.0.0.1:0 --workers 1 --quiet --busy-poll) ;;
        shout_stamp) cmd=("$SHOUT" server --mode stamp --bind 127.0.0.1:0 --workers 1 --quiet) ;;
        naive_spin) cmd=("$BIN/examples/naive_std" 127.0.0.1:0 --spin) ;;
        naive_std) cmd=("$BIN/examples/naive_std" 127.0.0.1:0) ;;
        naive_tokio) cmd=("$BIN/examples/naive_tokio" 127.0.0.1:0) ;;
        python) cmd=(python3 scripts/naive_server.py 0) ;;
    esac
    : >"$TMP/server.out"
    # taskset execs the server, so $! is the server's own PID.
    "${PIN_SERVER[@]}" "${cmd[@]}" >"$TMP/server.out" 2>"$TMP/server.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    local i
    for i in $(seq 200); do
        SERVER_ADDR=$(sed -n 's/^listening on //p' "$TMP/server.out" | head -n 1)
        [[ -n $SERVER_ADDR ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.025
    done
    echo "server $1 did not start:" >&2
    cat "$TMP/server.err" >&2
    exit 1
}

# Drops a PID that has been reaped from the cleanup list.
forget() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do
        if [[ $pid != "$1" ]]; then
            keep+=("$pid")
        fi
    done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    forget "$SERVER_PID"
}

# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat,
# counted after the command name, which may hold spaces).
cpu_ticks() {
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

now() { date +%s.%N; }

# Runs one bench against the running server with args "$@"; appends
# "cell server answers/s p50_us cpu% loss%" to $TMP/results.
measure() {
    local cell=$1 server=$2 target=("$SERVER_ADDR")
    shift 2
    [[ $server == shout_stamp ]] && target=(--stamp "$SERVER_ADDR")
    "${PIN_BENCH[@]}" "$SHOUT" bench "${target[@]}" --warmup "$WARMUP" --duration "$DURATION" \
        --json "$@" >"$TMP/bench.json" 2>"$TMP/bench.err" &
    local bench=$!
    PIDS+=("$bench")
    # Server CPU over the measured part only: after the warmup, for the duration.
    sleep "$(seconds "$WARMUP")"
    local c0 t0 c1 t1
    c0=$(cpu_ticks "$SERVER_PID")
    t0=$(now)
    sleep "$(seconds "$DURATION")"
    c1=$(cpu_ticks "$SERVER_PID")
    t1=$(now)
    if ! wait "$bench"; then
        echo "bench failed ($cell, $server):" >&2
        cat "$TMP/bench.err" >&2
        exit 1
    fi
    forget "$bench"
    python3 - "$cell" "$server" "$c0" "$c1" "$t0" "$t1" "$TICKS" "$TMP/bench.json" >>"$TMP/results" <<'PY'
import json, sys
cell, server, c0, c1, t0, t1, ticks, path = sys.argv[1:]
r = json.load(open(path))
cpu = (float(c1) - float(c0)) / float(ticks) / (float(t1) - float(t0)) * 100
p50 = r["rtt_us"]["p50"] if r["rtt_us"] else float("nan")
print(f"{cell}\t{server}\t{r['answers_per_s']:.0f}\t{p50:.1f}\t{cpu:.1f}\t{r['loss_pct']:.3f}")
PY
}

: >"$TMP/results"
CELLS=()
for size in $SIZES; do
    CELLS+=("$size flood")
    CELLS+=("$size pingpong")
    [[ -n $PACED_RATE ]] && CELLS+=("$size paced")
    for g in $GSO_SIZES; do
        [[ $g == "$size" ]] && CELLS+=("$size gso")
    done
done

# The servers measured in a cell.
cell_servers() {
    local size=$1 mode=$2 s
    for s in "${SERVERS[@]}"; do
        # A STAMP test packet is 44 B at least; GSO probes are not STAMP packets.
        if [[ $s == shout_stamp ]] && { ((size < STAMP_MIN)) || [[ $mode == gso ]]; }; then
            continue
        fi
        echo "$s"
    done
    # Busy polling is for latency: it only has a ping-pong row.
    # naive_spin, the bare loop polling without sleeping, is the floor for it.
    if [[ $mode == pingpong ]]; then echo shout_busy; echo naive_spin; fi
}

total=0
for cell in "${CELLS[@]}"; do
    total=$((total + $(cell_servers $cell | wc -l) * RUNS))
done
done_runs=0
for cell in "${CELLS[@]}"; do
    read -r size mode <<<"$cell"
    case $mode in
        flood) args=(--size "$size" --window "$FLOOD_WINDOW"); name="$size B flood w$FLOOD_WINDOW" ;;
        # The bench spins too, so its own wake-ups do not blur the servers' latency.
        pingpong) args=(--size "$size" --window 1 --busy-poll); name="$size B pingpong" ;;
        gso) args=(--size "$size" --window "$GSO_WINDOW" --gso); name="$size B gso w$GSO_WINDOW" ;;
        # The same offered load for every server: CPU per answer compares at
        # equal batching, whatever each bench mode's own ceiling is.
        paced) args=(--size "$size" --rate "$PACED_RATE"); name="$size B paced ${PACED_RATE}/s" ;;
    esac
    mapfile -t servers < <(cell_servers "$size" "$mode")
    for run in $(seq "$RUNS"); do
        # Rotate the order each run, so drift over time hits every server alike.
        for i in "${!servers[@]}"; do
            server=${servers[$(( (i + run - 1) % ${#servers[@]} ))]}
            done_runs=$((done_runs + 1))
            printf '\r[%d/%d] %-22s %-12s' "$done_runs" "$total" "$name" "$server" >&2
            start_server "$server"
            measure "$name" "$server" "${args[@]}"
            stop_server
        done
    done
done
printf '\r\033[K' >&2

# Memory: shout idle, then after floods (plain, and GSO/GRO which fills 64 KiB
# buffers), and whether a long flood grows it.
RSS_FLOOD=${RSS_FLOOD:-$([[ ${QUICK:-0} == 1 ]] && echo 2s || echo 60s)}
start_server shout
sleep 0.2
rss_idle=$(rss_kib "$SERVER_PID")
"${PIN_BENCH[@]}" "$SHOUT" bench "$SERVER_ADDR" --duration 2s --size 1400 --window "$FLOOD_WINDOW" --json >/dev/null
rss_flood=$(rss_kib "$SERVER_PID")
"${PIN_BENCH[@]}" "$SHOUT" bench "$SERVER_ADDR" --duration "$RSS_FLOOD" --size 1400 --window "$FLOOD_WINDOW" --json >/dev/null
rss_long=$(rss_kib "$SERVER_PID")
"${PIN_BENCH[@]}" "$SHOUT" bench "$SERVER_ADDR" --duration 2s --size 32 --window "$GSO_WINDOW" --gso --json >/dev/null
rss_gso=$(rss_kib "$SERVER_PID")
stop_server

echo "loopback, $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r)"
echo "server pinned to core 0, bench to core 1; median of $RUNS run(s) of $DURATION after $WARMUP warmup"
echo
python3 - "$TMP/results" <<'PY'
import statistics, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    cell, server, answers, p50, cpu, loss = line.rstrip("\n").split("\t")
    key = (cell, server)
    if key not in rows:
        rows[key] = []
        order.append(key)
    rows[key].append((float(answers), float(p50), float(cpu), float(loss)))
med = {k: [statistics.median(col) for col in zip(*v)] for k, v in rows.items()}
# CPU µs/ans: server CPU time per answer, what each answer costs the server
# whatever the load generator manages (meaningless for a spinning server).
head = f"{'cell':<20} {'server':<12} {'answers/s':>10} {'vs std':>7} {'p50 µs':>8} {'vs std':>7} {'srv CPU':>8} {'CPU µs/ans':>11} {'loss %':>7}"
print(head)
print("-" * len(head))
last = None
for cell, server in order:
    if last is not None and cell != last:
        print()
    last = cell
    answers, p50, cpu, loss = med[(cell, server)]
    base = med.get((cell, "naive_std"))
    ra = f"{answers / base[0]:.2f}x" if base and base[0] else "-"
    rp = f"{p50 / base[1]:.2f}x" if base and base[1] == base[1] and base[1] else "-"
    cost = f"{cpu / 100 / answers * 1e6:.2f}" if answers else "-"
    print(f"{cell:<20} {server:<12} {answers:>10.0f} {ra:>7} {p50:>8.1f} {rp:>7} {cpu:>7.0f}% {cost:>11} {loss:>7.3f}")
# The STAMP reflector against upper mode in the same cells (issue 9's budget:
# CPU per answer at most 1.15x, ping-pong p50 at most 1.05x).
stamp = [c for c, s in order if s == "shout_stamp"]
if stamp:
    print()
    print(f"{'cell':<20} {'stamp/upper CPU µs/ans':>23} {'stamp/upper p50':>16}")
    for cell in stamp:
        st, up = med[(cell, "shout_stamp")], med.get((cell, "shout"))
        if not up or not st[0] or not up[0]:
            continue
        cost = lambda m: m[2] / 100 / m[0]
        print(f"{cell:<20} {cost(st) / cost(up):>22.2f}x {st[1] / up[1]:>15.2f}x")
PY
echo
echo "shout server --workers 1 RSS: idle ${rss_idle} KiB; after a 2 s 1400 B flood ${rss_flood} KiB; after $RSS_FLOOD more ${rss_long} KiB; after a 32 B GSO flood ${rss_gso} KiB"
