#!/usr/bin/env bash
# bench-probe.sh: the performance figures of `shout probe` (issue 16, "Performance"), and
# prometheus-smokeping-prober measured beside it on the same machine.
#
# Everything runs in a network namespace of its own (its loopback holds all of 127/8), so the
# reflector's wildcard bind, port 862 and the ICMP sysctl stay inside it.
#   1. `shout server --mode stamp --bind 0.0.0.0:862` on core 0 answers on every 127/8 address.
#   2. Reference alone: `shout probe` on core 1 with one target, 127.0.0.1, every REF_INTERVAL,
#      for REF_DURATION: its median and p99 RTT.
#   3. Full load: the same agent config plus TARGETS targets 127.1.x.y at 1 probe/s each. After
#      WARMUP, for DURATION: agent CPU (utime + stime from /proc) per probe sent
#      (shout_probe_probes_sent_total), peak RSS (VmHWM), loss, socket drops, scheduling lag p99
#      (shout_probe_scheduling_lag_seconds), the time of a full /metrics scrape (every SCRAPE_EVERY,
#      every other one in the protobuf exposition as a native-histogram Prometheus asks; included
#      in the CPU and the peak RSS), and the reference target's median and p99 again.
#   4. prometheus-smokeping-prober (ICMP; the kernel answers) with SMOKEPING_TARGETS targets on
#      127.2.x.y plus 127.0.0.1, 1 ping/s each, for DURATION: its CPU per ping and the
#      reference target's median (from its histogram).
# Then a table of the figures, the issue's budgets and the ratios.
#
#   bash scripts/bench-probe.sh                    # about 3 minutes, both cores busy
#   DURATION=20 TARGETS=2000 bash scripts/bench-probe.sh   # a quick look
# Environment: SHOUT (default target/release/shout), DURATION (s, default 60), WARMUP (s, 5),
# TARGETS (10000), REF_INTERVAL (reference probe interval, default 10ms: enough samples for a
# p99, and a path kept warm as the loaded run keeps it), REF_DURATION (s, 20), SCRAPE_EVERY (s,
# 10), SMOKEPING_TARGETS (1000; 0 skips it), SMOKEPING_PROTOCOL (the modes to run, default
# "udp icmp": udp is unprivileged ICMP datagram sockets, its cheaper mode; icmp is raw sockets,
# the package's example config), SMOKEPING_CPUS (taskset list, default: unpinned, as the issue's
# figure was taken), REFLECTOR_ARGS (`shout server` flags, default --busy-poll: an idle
# reflector's own wake-up adds 30-100 µs to the reference's RTT when it is probed alone, and the
# load hides it by keeping the reflector awake, so the comparison would measure the reflector,
# not the agent; REFLECTOR_ARGS= runs a sleeping reflector), ONLY (shout or smokeping: run one
# side only), KEEP=1 keeps the scratch directory. The reflector is stopped before smokeping runs.
# Needs root (a network namespace), ip, taskset, curl, python3; prometheus-smokeping-prober for
# step 4. Exit status: 0 when it ran (the figures are for reading, not a pass/fail), 1 if a step
# failed, 2 on a setup problem.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "bench-probe: $*" >&2
    exit 2
}
note() { echo "bench-probe: $*" >&2; }

SHOUT=${SHOUT:-target/release/shout}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-5}
TARGETS=${TARGETS:-10000}
REF_INTERVAL=${REF_INTERVAL:-10ms}
REF_DURATION=${REF_DURATION:-20}
SCRAPE_EVERY=${SCRAPE_EVERY:-10}
SMOKEPING_TARGETS=${SMOKEPING_TARGETS:-1000}
SMOKEPING_PROTOCOL=${SMOKEPING_PROTOCOL:-udp icmp}
SMOKEPING_CPUS=${SMOKEPING_CPUS:-}
read -r -a REFLECTOR_ARGS <<<"${REFLECTOR_ARGS---busy-poll}"
ONLY=${ONLY:-}
[[ -z $ONLY || $ONLY == shout || $ONLY == smokeping ]] || die "ONLY must be shout or smokeping"
[[ $ONLY == shout ]] && SMOKEPING_TARGETS=0
RUN_SHOUT=1
[[ $ONLY == smokeping ]] && RUN_SHOUT=0
NS="shb$$"
METRICS=127.0.0.1:9100

[[ $(id -u) -eq 0 ]] || die "needs root (a network namespace of its own)"
for tool in ip taskset curl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
for proto in $SMOKEPING_PROTOCOL; do
    [[ $proto == udp || $proto == icmp ]] || die "SMOKEPING_PROTOCOL: udp and/or icmp, not '$proto'"
done
for v in DURATION WARMUP TARGETS REF_DURATION SCRAPE_EVERY SMOKEPING_TARGETS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number"
done
((TARGETS >= 1 && TARGETS <= 62500)) || die "TARGETS must be 1..62500 (127.1.0.1 to 127.250.250.250 at 250 a /24)"
((SMOKEPING_TARGETS <= 62500)) || die "SMOKEPING_TARGETS must be at most 62500"
((DURATION >= 5)) || die "DURATION must be at least 5 s"
[[ -x $SHOUT ]] || die "no shout binary at $SHOUT (cargo build --release, or set SHOUT)"
SHOUT=$(realpath "$SHOUT")
((RUN_SHOUT == 0)) || "$SHOUT" probe --help >/dev/null 2>&1 || die "$SHOUT has no 'probe' subcommand"
if ((SMOKEPING_TARGETS > 0)) && ! command -v prometheus-smokeping-prober >/dev/null; then
    die "prometheus-smokeping-prober is missing (apt-get install prometheus-smokeping-prober, or SMOKEPING_TARGETS=0)"
fi
if [[ $(nproc) -ge 2 ]]; then
    PIN_SERVER=(taskset -c 0)
    PIN_AGENT=(taskset -c 1)
else
    PIN_SERVER=()
    PIN_AGENT=()
    note "one core: nothing pinned, server and agent share it"
fi
PIN_SMOKEPING=()
[[ -n $SMOKEPING_CPUS ]] && PIN_SMOKEPING=(taskset -c "$SMOKEPING_CPUS")
TICKS=$(getconf CLK_TCK)

# ------------------------------------------------------------------------------- cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/shout-bench-probe.XXXXXX")
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
    # Anything still inside our namespace was started by this run (a child of one of ours).
    for pid in $(ip netns pids "$NS" 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns del "$NS" 2>/dev/null || true
    if [[ $status -ne 0 ]]; then
        for f in server agent-ref agent-full smokeping; do
            [[ -s $TMP/$f.err ]] || continue
            echo "--- $f stderr (last 15 lines)" >&2
            tail -n 15 "$TMP/$f.err" >&2
        done
    fi
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "bench-probe: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do
        [[ $pid == "$1" ]] || keep+=("$pid")
    done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# Stops PID $1 with SIGTERM (up to 20 s: a final summary of 10,000 targets); sets STOPPED to its
# exit status (not a command substitution: a subshell cannot wait for our children).
stop() {
    local pid=$1 rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    forget "$pid"
    STOPPED=$rc
}

# For short commands only: a process started in the background must be `ip netns exec ... &`
# itself (ip execs the program, so $! is its PID), not this function (a subshell's PID).
in_ns() { ip netns exec "$NS" "$@"; }

# utime + stime of a process, in clock ticks (after the command name, which may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
now() { date +%s.%N; }

# Waits until file $2 has a `listening on` line from PID $1.
wait_listening() {
    for _ in $(seq 400); do
        grep -q '^listening on ' "$2" 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# Scrapes $1 into file $2; prints the seconds it took.
scrape() {
    in_ns curl -sf --max-time 30 -o "$2" -w '%{time_total}\n' "http://$1/metrics" || echo "failed"
}
# As Prometheus with native histograms asks: the protobuf exposition. Prints "TIME BYTES".
PROTOBUF_ACCEPT='application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3'
scrape_protobuf() {
    in_ns curl -sf --max-time 30 -H "Accept: $PROTOBUF_ACCEPT" -o /dev/null \
        -w '%{time_total} %{size_download}\n' "http://$1/metrics" || echo "failed 0"
}

# ------------------------------------------------------------------------------- namespace
ip netns add "$NS" || die "ip netns add failed"
in_ns ip link set lo up
# Unprivileged ICMP for smokeping's udp mode; this sysctl is per namespace.
in_ns sysctl -qw net.ipv4.ping_group_range="0 2147483647"

# A reflector on every address of the namespace's loopback; it answers from the address it
# was reached on. The rate limit exempts loopback sources.
ip netns exec "$NS" "${PIN_SERVER[@]}" "$SHOUT" server --mode stamp --bind 0.0.0.0:862 --workers 1 --quiet \
    "${REFLECTOR_ARGS[@]+"${REFLECTOR_ARGS[@]}"}" >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_listening "$SERVER_PID" "$TMP/server.out" || die "the reflector did not start"

# Config files: the reference alone, and the reference with TARGETS others.
python3 - "$TMP" "$TARGETS" "$REF_INTERVAL" "$SMOKEPING_TARGETS" $SMOKEPING_PROTOCOL <<'PY'
import sys
tmp, n, ref_interval, sp, protos = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:]
def hosts(second, count):
    # second.x.y with y in 1..250: never .0 or .255
    return [f"127.{second + i // 62500}.{i % 62500 // 250}.{i % 250 + 1}" for i in range(count)]
ref = f"  - address: 127.0.0.1\n    interval: {ref_interval}\n    labels: {{role: reference}}\n"
head = "defaults:\n  interval: 1s\n  timeout: 1s\ntargets:\n"
with open(f"{tmp}/ref.yml", "w") as f:
    f.write(head + ref)
with open(f"{tmp}/full.yml", "w") as f:
    f.write(head + ref)
    for h in hosts(1, n):
        f.write(f"  - address: {h}\n")
for proto in protos:
    with open(f"{tmp}/smokeping-{proto}.yml", "w") as f:
        f.write("targets:\n  - hosts:\n      - 127.0.0.1\n")
        for h in hosts(2, sp):
            f.write(f"      - {h}\n")
        f.write(f"    interval: 1s\n    network: ip4\n    protocol: {proto}\n")
PY

# Starts the agent with config $1, output to $TMP/$2.*; sets AGENT_PID.
start_agent() {
    ip netns exec "$NS" "${PIN_AGENT[@]}" "$SHOUT" probe --config "$1" --metrics "$METRICS" --quiet \
        >"$TMP/$2.out" 2>"$TMP/$2.err" &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
    wait_listening "$AGENT_PID" "$TMP/$2.out" || die "the agent did not start with $1"
}

# ------------------------------------------------------------------------------- reference alone
c0=0 c1=0 t0=0 t1=1 s0=0 s1=0 hwm=0 rss=0 metrics_bytes=0
touch "$TMP/ref0.prom" "$TMP/ref1.prom" "$TMP/full0.prom" "$TMP/full1.prom" "$TMP/scrapes.txt" "$TMP/scrapes-protobuf.txt"
if ((RUN_SHOUT)); then
note "reference alone: 127.0.0.1 every $REF_INTERVAL for ${REF_DURATION}s"
start_agent "$TMP/ref.yml" agent-ref
sleep 2
scrape "$METRICS" "$TMP/ref0.prom" >/dev/null
sleep "$REF_DURATION"
scrape "$METRICS" "$TMP/ref1.prom" >/dev/null
stop "$AGENT_PID"
[[ $STOPPED == 0 ]] || note "the reference agent exited $STOPPED on SIGTERM"

# ------------------------------------------------------------------------------- full load
note "full load: $TARGETS targets at 1/s + the reference, ${WARMUP}s warmup, ${DURATION}s measured"
start_agent "$TMP/full.yml" agent-full
sleep "$WARMUP"
s0=$(cpu_ticks "$SERVER_PID")
c0=$(cpu_ticks "$AGENT_PID")
t0=$(now)
scrapes=("$(scrape "$METRICS" "$TMP/full0.prom")")
n_scrape=0
end=$(python3 -c "print($t0 + $DURATION)")
while :; do
    left=$(python3 -c "print(max(0.0, min($SCRAPE_EVERY, $end - $(now))))")
    [[ $left == 0.0 ]] && break
    sleep "$left"
    [[ $(python3 -c "print(int($(now) >= $end))") == 1 ]] && break
    # Every other scrape in protobuf, as a native-histogram Prometheus scrapes.
    n_scrape=$((n_scrape + 1))
    if ((n_scrape % 2)); then
        scrape_protobuf "$METRICS" >>"$TMP/scrapes-protobuf.txt"
    else
        scrapes+=("$(scrape "$METRICS" /dev/null)")
    fi
done
scrapes+=("$(scrape "$METRICS" "$TMP/full1.prom")")
c1=$(cpu_ticks "$AGENT_PID")
s1=$(cpu_ticks "$SERVER_PID")
t1=$(now)
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$AGENT_PID/status")
rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT_PID/status")
metrics_bytes=$(stat -c %s "$TMP/full1.prom")
stop "$AGENT_PID"
[[ $STOPPED == 0 ]] || note "the full agent exited $STOPPED on SIGTERM"
echo "${scrapes[*]}" >"$TMP/scrapes.txt"
fi
# smokeping pings the kernel's ICMP responder: the reflector (perhaps spinning on core 0) goes first.
stop "$SERVER_PID"
server_rc=$STOPPED

# ------------------------------------------------------------------------------- smokeping
SP_RUN=()
((SMOKEPING_TARGETS > 0)) && read -r -a SP_RUN <<<"$SMOKEPING_PROTOCOL"
for proto in "${SP_RUN[@]+"${SP_RUN[@]}"}"; do
    note "prometheus-smokeping-prober: $SMOKEPING_TARGETS targets + 127.0.0.1 at 1/s (protocol $proto), ${WARMUP}s warmup, ${DURATION}s measured"
    ip netns exec "$NS" "${PIN_SMOKEPING[@]}" prometheus-smokeping-prober --config.file="$TMP/smokeping-$proto.yml" \
        --web.listen-address=127.0.0.1:9374 >"$TMP/smokeping.out" 2>"$TMP/smokeping.err" &
    SP_PID=$!
    PIDS+=("$SP_PID")
    for _ in $(seq 100); do
        in_ns curl -sf --max-time 5 -o /dev/null http://127.0.0.1:9374/metrics && break
        kill -0 "$SP_PID" 2>/dev/null || die "prometheus-smokeping-prober exited at start"
        sleep 0.1
    done
    sleep "$WARMUP"
    spc0=$(cpu_ticks "$SP_PID")
    spt0=$(now)
    sp_scrape0=$(scrape 127.0.0.1:9374 "$TMP/sp0-$proto.prom")
    sleep "$DURATION"
    sp_scrape1=$(scrape 127.0.0.1:9374 "$TMP/sp1-$proto.prom")
    spc1=$(cpu_ticks "$SP_PID")
    spt1=$(now)
    sp_hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SP_PID/status")
    stop "$SP_PID"
    echo "$spc0 $spc1 $spt0 $spt1 $sp_hwm $sp_scrape0 $sp_scrape1" >"$TMP/sp-$proto.txt"
done

# ------------------------------------------------------------------------------- report
echo
echo "shout probe benchmark: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r)"
echo "reflector: shout server --mode stamp --bind 0.0.0.0:862 --workers 1${REFLECTOR_ARGS[*]:+ ${REFLECTOR_ARGS[*]}} (core 0); agent on core 1; own network namespace"
echo "command: REFLECTOR_ARGS=\"${REFLECTOR_ARGS[*]-}\" DURATION=$DURATION TARGETS=$TARGETS REF_INTERVAL=$REF_INTERVAL SMOKEPING_TARGETS=$SMOKEPING_TARGETS SMOKEPING_PROTOCOL=\"$SMOKEPING_PROTOCOL\"${SMOKEPING_CPUS:+ SMOKEPING_CPUS=$SMOKEPING_CPUS} scripts/bench-probe.sh"
echo
BUSY=0
[[ " ${REFLECTOR_ARGS[*]-} " == *" --busy-poll "* ]] && BUSY=1
python3 - "$TMP" "$TICKS" "$c0" "$c1" "$t0" "$t1" "$s0" "$s1" "$hwm" "$rss" "$metrics_bytes" \
    "$TARGETS" "$SMOKEPING_TARGETS" "$server_rc" "$BUSY" "${SP_RUN[@]+"${SP_RUN[@]}"}" <<'PY'
import math, re, statistics, sys
from collections import defaultdict

(tmp, ticks, c0, c1, t0, t1, s0, s1, hwm, rss, mbytes, ntargets, nsp, server_rc, busy) = sys.argv[1:16]
busy = busy == "1"
sp_protos = sys.argv[16:]
ticks = float(ticks)
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

def parse(path, want):
    """{(name, frozenset(labels)): value} for the metric names in `want` (prefix match)."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            m = LINE.match(line)
            if not m or not m.group(1).startswith(want):
                continue
            labels = frozenset(LABEL.findall(m.group(2) or ""))
            try:
                out[(m.group(1), labels)] = float(m.group(3))
            except ValueError:
                pass
    return out

def total(d, name, **match):
    return sum(v for (n, l), v in d.items() if n == name and all((k, x) in l for k, x in match.items()))

def buckets(d, name, **match):
    """{le: count} summed over the series matching `match`."""
    b = defaultdict(float)
    for (n, l), v in d.items():
        if n != name + "_bucket" or not all((k, x) in l for k, x in match.items()):
            continue
        le = dict(l)["le"]
        b[math.inf if le == "+Inf" else float(le)] += v
    return b

def delta_buckets(b0, b1):
    return {le: b1[le] - b0.get(le, 0) for le in b1}

def quantile(q, b):
    """histogram_quantile: linear interpolation inside the bucket, as Prometheus does."""
    les = sorted(b)
    if not les or b[les[-1]] <= 0:
        return None
    rank = q * b[les[-1]]
    prev_le, prev_c = 0.0, 0.0
    for le in les:
        if b[le] >= rank:
            if le == math.inf:
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(b[le] - prev_c, 1e-12)
        prev_le, prev_c = le, b[le]
    return None

def us(x):
    return "n/a" if x is None else f"{x * 1e6:.1f} µs"

SUMMARY = re.compile(r'^127\.0\.0\.1\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+([\d.]+ (?:ms|s)|-)\s+([\d.]+ (?:ms|s)|-)')

def seconds(text):
    if text == "-":
        return None
    v, unit = text.split()
    return float(v) / (1000 if unit == "ms" else 1)

def summary(path):
    """(p50, p99, sent, line) of the reference from the agent's final summary on SIGTERM
    (TARGET SENT ANSWERED LOST LOSS P50 P99 ..., times as "0.043 ms"): the agent's own
    HdrHistogram over its whole run, finer than the Prometheus buckets."""
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return None, None, None, None
    for line in lines:
        m = SUMMARY.match(line)
        if m:
            return seconds(m.group(4)), seconds(m.group(5)), int(m.group(1)), line.strip()
    return None, None, None, None

ref0 = parse(f"{tmp}/ref0.prom", "shout_probe_")
ref1 = parse(f"{tmp}/ref1.prom", "shout_probe_")
f0 = parse(f"{tmp}/full0.prom", "shout_probe_")
f1 = parse(f"{tmp}/full1.prom", "shout_probe_")
REF = {"target": "127.0.0.1"}

def ref_quantiles(a, b):
    d = delta_buckets(buckets(a, "shout_probe_rtt_seconds", **REF), buckets(b, "shout_probe_rtt_seconds", **REF))
    n = d.get(math.inf, 0)
    return quantile(0.5, d), quantile(0.99, d), n, sorted(le for le in d if le != math.inf)

alone50, alone99, alone_n, les = ref_quantiles(ref0, ref1)
load50, load99, load_n, _ = ref_quantiles(f0, f1)

wall = float(t1) - float(t0)
cpu = (float(c1) - float(c0)) / ticks
probes = total(f1, "shout_probe_probes_sent_total") - total(f0, "shout_probe_probes_sent_total")
sent = total(f1, "shout_probe_sent_total") - total(f0, "shout_probe_sent_total")
answered = total(f1, "shout_probe_answered_total") - total(f0, "shout_probe_answered_total")
lost = {d: total(f1, "shout_probe_lost_total", direction=d) - total(f0, "shout_probe_lost_total", direction=d)
        for d in ("forward", "backward", "unknown")}
drops = total(f1, "shout_probe_socket_drops_total") - total(f0, "shout_probe_socket_drops_total")
late = total(f1, "shout_probe_late_total") - total(f0, "shout_probe_late_total")
lag = delta_buckets(buckets(f0, "shout_probe_scheduling_lag_seconds"), buckets(f1, "shout_probe_scheduling_lag_seconds"))
lag99 = quantile(0.99, lag)
lag_bound = next((le for le in sorted(lag) if lag[le] >= 0.99 * lag.get(math.inf, 0)), None) if lag else None
all_rtt = delta_buckets(buckets(f0, "shout_probe_rtt_seconds"), buckets(f1, "shout_probe_rtt_seconds"))
targets = total(f1, "shout_probe_targets")
server_cpu = (float(s1) - float(s0)) / ticks
scr = [float(x) for x in open(f"{tmp}/scrapes.txt").read().split() if x != "failed"]
scr_failed = open(f"{tmp}/scrapes.txt").read().split().count("failed")

per_probe = cpu / probes * 1e6 if probes else None
rows = []
def row(what, value, budget="", ok=None):
    mark = "" if ok is None else ("ok" if ok else "OVER")
    rows.append((what, value, budget, mark))

row("targets (agent's own gauge)", f"{targets:.0f}", f"{int(ntargets) + 1}", targets == int(ntargets) + 1)
row("window", f"{wall:.1f} s")
row("probes sent (probes_sent_total)", f"{probes:.0f} ({probes / wall:.0f}/s)", f"~{(int(ntargets) + 10) * wall:.0f}")
row("agent CPU", f"{cpu:.2f} s = {cpu / wall * 100:.1f} % of a core", "<= 10 %", cpu / wall <= 0.10)
row("agent CPU per probe (metrics incl.)", "n/a" if per_probe is None else f"{per_probe:.2f} µs", "<= 10 µs",
    None if per_probe is None else per_probe <= 10)
row("agent peak RSS (VmHWM)", f"{int(hwm) / 1024:.1f} MiB (now {int(rss) / 1024:.1f})", "<= 64 MiB", int(hwm) <= 64 * 1024)
row("answered / sent (per-target counters)", f"{answered:.0f} / {sent:.0f}")
row("lost fwd / back / unknown", f"{lost['forward']:.0f} / {lost['backward']:.0f} / {lost['unknown']:.0f}", "0", sum(lost.values()) == 0)
row("late / socket drops", f"{late:.0f} / {drops:.0f}")
row("scheduling lag p99", f"{us(lag99)} (bucket <= {us(lag_bound)})", "<= 1 ms",
    None if lag99 is None else lag99 <= 0.001)
if lag:
    n_lag = lag.get(math.inf, 0)
    over = lambda t: n_lag - max((c for le, c in lag.items() if le <= t), default=0)
    row("probes late by > 1 ms / > 1 s (lag buckets)", f"{over(0.001):.0f} / {over(1.0):.0f} of {n_lag:.0f}")
row("RTT p50 / p99, all targets (buckets)", f"{us(quantile(0.5, all_rtt))} / {us(quantile(0.99, all_rtt))}")
if scr:
    row("/metrics scrape time (n, median, max)", f"{len(scr)}, {statistics.median(scr) * 1000:.0f} ms, {max(scr) * 1000:.0f} ms"
        + (f", {scr_failed} failed" if scr_failed else ""), "<= 1 s", max(scr) <= 1.0 and not scr_failed)
row("/metrics size", f"{int(mbytes) / 1e6:.1f} MB")
pb = [l.split() for l in open(f"{tmp}/scrapes-protobuf.txt") if l.strip()]
pb_ok = [(float(t), int(float(n))) for t, n in pb if t != "failed"]
if pb:
    times = [t for t, _ in pb_ok]
    row("protobuf scrape (n, median, max, size)",
        f"{len(pb)}, {statistics.median(times) * 1000:.0f} ms, {max(times) * 1000:.0f} ms, {pb_ok[-1][1] / 1e6:.1f} MB"
        if pb_ok else f"{len(pb)}, all failed", "<= 1 s", bool(pb_ok) and len(pb_ok) == len(pb) and max(times) <= 1.0)
row("reflector CPU per probe", (f"{server_cpu / probes * 1e6:.2f} µs" if probes else "n/a") + (" (busy-polling)" if busy else ""))
row("reflector exit status", server_rc)
# 10 µs, with room for the float error of figures read in whole µs (28e-6 - 18e-6 > 10e-6).
WITHIN = 10e-6 + 1e-9
sa50, sa99, sa_n, _ = summary(f"{tmp}/agent-ref.out")
sl50, sl99, sl_n, _ = summary(f"{tmp}/agent-full.out")
if sa50 is not None and sl50 is not None:
    row("reference p50 alone / loaded (summary)", f"{us(sa50)} / {us(sl50)}", "within 10 µs", abs(sl50 - sa50) <= WITHIN)
    row("reference p99 alone / loaded (summary)", f"{us(sa99)} / {us(sl99)}", "within 10 µs",
        None if sa99 is None or sl99 is None else abs(sl99 - sa99) <= WITHIN)
    row("reference probes alone / loaded (summary)", f"{sa_n} / {sl_n}")
    load50_best = sl50
else:
    load50_best = load50
row("reference p50 alone / loaded (buckets)", f"{us(alone50)} / {us(load50)}",
    "within 10 µs" if sa50 is None else "", None if sa50 is not None or alone50 is None or load50 is None
    else abs(load50 - alone50) <= WITHIN)
row("reference p99 alone / loaded (buckets)", f"{us(alone99)} / {us(load99)}",
    "within 10 µs" if sa50 is None else "", None if sa50 is not None or alone99 is None or load99 is None
    else abs(load99 - alone99) <= WITHIN)
row("reference answers in the windows (buckets)", f"{alone_n:.0f} / {load_n:.0f}")
if not f1:
    rows.clear()  # ONLY=smokeping

sp_n = int(nsp)
for proto in sp_protos:
    spc0, spc1, spt0, spt1, sp_hwm, *sp_scrapes = open(f"{tmp}/sp-{proto}.txt").read().split()
    p0 = parse(f"{tmp}/sp0-{proto}.prom", "smokeping_")
    p1 = parse(f"{tmp}/sp1-{proto}.prom", "smokeping_")
    sp_wall = float(spt1) - float(spt0)
    sp_cpu = (float(spc1) - float(spc0)) / ticks
    sp_req = total(p1, "smokeping_requests_total") - total(p0, "smokeping_requests_total")
    sp_b = delta_buckets(buckets(p0, "smokeping_response_duration_seconds", host="127.0.0.1"),
                         buckets(p1, "smokeping_response_duration_seconds", host="127.0.0.1"))
    sp_ref_req = (total(p1, "smokeping_requests_total", host="127.0.0.1")
                  - total(p0, "smokeping_requests_total", host="127.0.0.1"))
    sp_all = delta_buckets(buckets(p0, "smokeping_response_duration_seconds"), buckets(p1, "smokeping_response_duration_seconds"))
    sp_per = sp_cpu / sp_req * 1e6 if sp_req else None
    if rows:
        rows.append(("", "", "", ""))
    sp = f"smokeping {proto}"
    row(f"{sp}: window", f"{sp_wall:.1f} s")
    row(f"{sp}: pings sent ({sp_n} + ref)", f"{sp_req:.0f} ({sp_req / sp_wall:.0f}/s)", f"~{(sp_n + 1) * sp_wall:.0f}")
    row(f"{sp}: CPU", f"{sp_cpu:.2f} s = {sp_cpu / sp_wall * 100:.0f} % of a core")
    row(f"{sp}: CPU per ping", "n/a" if sp_per is None else f"{sp_per:.2f} µs")
    row(f"{sp}: answered / sent", f"{sp_all.get(math.inf, 0):.0f} / {sp_req:.0f}")
    row(f"{sp}: peak RSS", f"{int(sp_hwm) / 1024:.1f} MiB")
    row(f"{sp}: ref answered / sent", f"{sp_b.get(math.inf, 0):.0f} / {sp_ref_req:.0f}")
    row(f"{sp}: ref median (buckets)", us(quantile(0.5, sp_b)))
    row(f"{sp}: /metrics scrape", " / ".join(f"{float(x) * 1000:.0f} ms" for x in sp_scrapes if x != "failed"))
    if sp_per and per_probe:
        row(f"CPU per probe: {sp} / shout", f"{sp_per / per_probe:.0f}x")
    sm = quantile(0.5, sp_b)
    if sm is not None and load50_best is not None:
        row(f"ref median: {sp} / shout (loaded)", f"{us(sm)} / {us(load50_best)}")

w = max(len(r[0]) for r in rows)
v = max(len(r[1]) for r in rows)
b = max(len(r[2]) for r in rows)
print(f"{'figure':<{w}}  {'measured':<{v}}  {'budget':<{b}}  check")
print("-" * (w + v + b + 11))
for what, value, budget, mark in rows:
    print(f"{what:<{w}}  {value:<{v}}  {budget:<{b}}  {mark}".rstrip())
print()
if f1:
    print(f"reference quantiles interpolate inside the agent's rtt buckets (upper bounds {', '.join(f'{x:g}' for x in les[:8])}{'...' if len(les) > 8 else ''} s)")
for name in ("agent-ref", "agent-full"):
    line = summary(f"{tmp}/{name}.out")[3]
    if line:
        print(f"{name} final summary, reference line: {line}")
PY
