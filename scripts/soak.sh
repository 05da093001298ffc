#!/usr/bin/env bash
# Soak test: a `shout server` pinned to core 0 under a steady open-loop load at half the
# rate it holds, for DURATION seconds. Samples the server's RSS, open file descriptors and
# socket drops every SAMPLE seconds, then checks:
#   - no unexplained loss: every probe sent was answered, or its loss is accounted for by a
#     kernel drop counter (the server's socket, or the bench's own sockets);
#   - the server's counters agree with the bench's (received + kernel_drops = sent);
#   - RSS flat (max - min over the samples <= RSS_SLACK_KIB) and fd count constant.
#
# Usage: scripts/soak.sh                 # 10 minutes
#        DURATION=30 scripts/soak.sh     # a quick check
# Environment:
#   DURATION       seconds of load (default 600)
#   SAMPLE         seconds between samples (default 10)
#   RSS_SLACK_KIB  allowed RSS spread over the run (default 1024)
#   SHOUT_BIN      the binary to test (default: cargo build --release, target/release/shout)
#   HELD_SECONDS   length of the closed-loop run that measures the held rate (default 5)
# Exit status: 0 when every check passes, 1 when one fails, 2 on a setup problem.
#
# Everything runs on loopback; the script kills only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
SAMPLE=${SAMPLE:-10}
RSS_SLACK_KIB=${RSS_SLACK_KIB:-1024}
HELD_SECONDS=${HELD_SECONDS:-5}

die() { echo "soak: $*" >&2; exit 2; }
for tool in python3 taskset; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "DURATION must be a whole number of seconds"
[[ $SAMPLE =~ ^[0-9]+$ && $SAMPLE -gt 0 ]] || die "SAMPLE must be a whole number of seconds"

if [[ -z ${SHOUT_BIN:-} ]]; then
    cargo build --release --locked --quiet
    SHOUT_BIN=target/release/shout
fi
"$SHOUT_BIN" bench --help 2>/dev/null | grep -q -- '--rate' || die "$SHOUT_BIN has no 'bench --rate'"

cores=$(nproc)
if ((cores > 1)); then
    load_cpus="1-$((cores - 1))"
else
    load_cpus=0
    echo "soak: one core only: the load shares core 0 with the server" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/shout-soak.XXXXXX")
server_pid=""
bench_pid=""
cleanup() {
    [[ -n $bench_pid ]] && kill "$bench_pid" 2>/dev/null || true
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    [[ -n $server_pid ]] && wait "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# json FILE EXPR: evaluates a Python expression over the JSON object `d` in FILE.
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# Starts a server pinned to core 0; sets server_pid and addr.
start_server() {
    local name=$1
    taskset -c 0 "$SHOUT_BIN" server --bind 127.0.0.1:0 --quiet --workers 1 --rate-limit off \
        >"$work/$name.out" 2>"$work/$name.err" &
    server_pid=$!
    local i=0
    until grep -q '^listening on ' "$work/$name.out" 2>/dev/null; do
        ((++i < 500)) || die "server did not start: $(cat "$work/$name.err")"
        kill -0 "$server_pid" 2>/dev/null || die "server exited: $(cat "$work/$name.err")"
        sleep 0.01
    done
    addr=$(sed -n 's/^listening on //p' "$work/$name.out" | head -n 1)
}

# Stops the server with SIGTERM; sets summary to its summary line's key=value fields.
# (Not in a subshell: only this shell can wait for its child.)
stop_server() {
    local name=$1 rc=0
    kill -TERM "$server_pid"
    wait "$server_pid" || rc=$?
    server_pid=""
    ((rc == 0)) || die "server exited with $rc on SIGTERM: $(cat "$work/$name.err")"
    summary=$(grep '^summary: ' "$work/$name.err" | tail -n 1 | sed 's/^summary: //')
}

# field "k=v k=v" KEY
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# The drops column of /proc/net/udp for the socket bound to $addr (127.0.0.1; the kernel
# prints the address word in host order: this is the little-endian form).
socket_drops() {
    local port=${addr##*:}
    awk -v want="$(printf '0100007F:%04X' "$port")" '$2 == want { print $NF; exit }' /proc/net/udp
}

# 1. The held rate: closed loop, 64 in flight, on the load cores.
start_server held
echo "soak: measuring the held rate for ${HELD_SECONDS}s against $addr (server on core 0, load on cores $load_cpus)"
taskset -c "$load_cpus" "$SHOUT_BIN" bench "$addr" --window 64 --duration "${HELD_SECONDS}s" --json \
    >"$work/held.json" || die "held-rate bench failed"
stop_server held
held_summary=$summary
held=$(json "$work/held.json" 'd["answers_per_s"]')
rate=$(python3 -c "import sys; print(max(1, int(float(sys.argv[1]) / 2)))" "$held")
echo "soak: held $held answers/s (loss $(json "$work/held.json" 'd["loss_pct"]')%); soaking at $rate/s for ${DURATION}s"
echo "soak: held-rate server: $held_summary"

# 2. The soak: a fresh server, open loop at half the held rate.
start_server soak
drops_before=$(socket_drops)
timeout $((DURATION + 60)) taskset -c "$load_cpus" "$SHOUT_BIN" bench "$addr" --rate "$rate" \
    --duration "${DURATION}s" --json >"$work/soak.json" 2>"$work/bench.err" &
bench_pid=$!

printf '%8s %10s %5s %8s\n' elapsed rss_kib fds drops | tee "$work/samples.txt"
sample() {
    local rss fds
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status")
    fds=$(ls "/proc/$server_pid/fd" | wc -l)
    printf '%8s %10s %5s %8s\n' "$1" "$rss" "$fds" "$(socket_drops)" | tee -a "$work/samples.txt"
}
started=$SECONDS
next=$SAMPLE
while kill -0 "$bench_pid" 2>/dev/null; do
    if ((SECONDS - started >= next)); then
        sample "$((SECONDS - started))s"
        next=$((next + SAMPLE))
    fi
    sleep 0.2
done
bench_rc=0
wait "$bench_pid" || bench_rc=$?
bench_pid=""
sample "end"
drops_after=$(socket_drops)
stop_server soak
soak_summary=$summary

# 3. Checks.
fail=0
check() {
    if eval "$2"; then echo "ok:   $1"; else echo "FAIL: $1"; fail=1; fi
}
[[ -s $work/soak.json ]] || { cat "$work/bench.err" >&2; die "the bench printed no report (exit $bench_rc)"; }
sent=$(json "$work/soak.json" 'd["sent"]')
answered=$(json "$work/soak.json" 'd["answered"]')
lost=$(json "$work/soak.json" 'd["lost"]')
mismatched=$(json "$work/soak.json" 'd["mismatched"]')
dropped_here=$(json "$work/soak.json" 'd["dropped_here"] or 0')
server_drops=$((drops_after - drops_before))
received=$(field "$soak_summary" received)
kernel_drops=$(field "$soak_summary" kernel_drops)
unexplained=$((lost - dropped_here - server_drops))
((unexplained > 0)) || unexplained=0

echo "soak: bench: sent=$sent answered=$answered lost=$lost dropped_here=$dropped_here mismatched=$mismatched (exit $bench_rc)"
echo "soak: server: $soak_summary"
check "bench finished (exit $bench_rc)" '((bench_rc == 0))'
check "no unexplained loss ($lost lost; $dropped_here dropped at the bench, $server_drops at the server)" '((unexplained == 0))'
((lost == 0)) || echo "note: $lost probes lost at half the held rate, all explained by kernel drop counters"
check "no mismatched replies ($mismatched)" '((mismatched == 0))'
check "server received + kernel_drops = sent ($received + $kernel_drops vs $sent)" '((received + kernel_drops == sent))'
check "summary kernel_drops = /proc/net/udp drops ($kernel_drops vs $drops_after)" '((kernel_drops == drops_after))'

read -r rss_min rss_max rss_first rss_last < <(awk 'NR > 1 { if (!n++) { min = max = first = $2 } if ($2 < min) min = $2; if ($2 > max) max = $2; last = $2 } END { print min, max, first, last }' "$work/samples.txt")
read -r fd_min fd_max < <(awk 'NR > 1 { if (!n++) { min = max = $3 } if ($3 < min) min = $3; if ($3 > max) max = $3 } END { print min, max }' "$work/samples.txt")
check "RSS flat: ${rss_first} -> ${rss_last} KiB, spread $((rss_max - rss_min)) KiB <= $RSS_SLACK_KIB" '((rss_max - rss_min <= RSS_SLACK_KIB))'
check "fd count constant ($fd_min..$fd_max)" '((fd_min == fd_max))'

if ((fail)); then
    echo "soak: FAILED" >&2
    exit 1
fi
echo "soak: passed"
