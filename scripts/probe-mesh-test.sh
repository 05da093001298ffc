#!/usr/bin/env bash
# probe-mesh-test.sh: a mesh of `shout probe` agents in 5 network namespaces, scraped by a
# real Prometheus, checked through Prometheus's query API (issue 16, "Scale-out").
#
# Layout (all of it inside namespaces this script creates; the root namespace is untouched):
#   <tag>-hub   a Linux bridge br0 (10.99.0.254/24) and Prometheus on 127.0.0.1:9090
#   <tag>-N     member N: eth0 = 10.99.0.N/24, a veth into the hub's bridge; runs
#               `shout server --mode stamp --stamp-stateful --bind 10.99.0.N:862` and
#               `shout probe --config mesh.yml --metrics 10.99.0.N:9100 --quiet`
# Every agent reads the same mesh.yml (docs/PROBE.md, "The mesh recipe"); each probes every other member.
#
# Checks (each prints PASS or FAIL; the exit status is 1 if one failed, 2 on a setup problem):
#   1. all 20 directed pairs have shout_probe_up == 1 (and Prometheus scrapes all 5 agents);
#   2. histogram_quantile over shout_probe_rtt_seconds gives 0 < p50 < 50 ms, p50 <= p99 < 1 s
#      (the probe timeout) for every pair;
#   3. nftables drops LOSS % of one pair's probes on the way out (in member 2's input, from
#      member 1 to port 862; not in 1's output, where the agent would see EPERM on send):
#      shout_probe_lost_total{direction="forward"} of 1->2 grows by exactly the packets nft
#      dropped, nothing else grows; after the rule goes, nothing grows at all;
#   4. the same for replies dropped on the way back (member 3's input from member 4's
#      reflector): direction="backward" of 3->4 only;
#   5. an invalid mesh.yml sent to one agent (SIGHUP) is refused: reload status 0, probing goes on;
#   6. mesh.yml gains a 6th member; agents 1, 3, 5 reload on SIGHUP, 2 and 4 on POST /-/reload, a
#      6th namespace starts: 30 pairs up, and no series of the 20 old pairs was reset or had a
#      gap (resets() == 0, count_over_time() of a sample per scrape, sent_total still growing).
#
# Needs root (namespaces, nft), ip (iproute2), nft, python3, prometheus (Debian package).
#
#   SHOUT=target/release/shout bash scripts/probe-mesh-test.sh   # about 75 s (debug build too)
#   PLUMBING=1 bash scripts/probe-mesh-test.sh   # no agent: checks namespaces, bridge, nft and
#                                                 # Prometheus with `shout server` + `shout bench`
# Environment: SHOUT (default target/release/shout), LOSS (percent, default 20), KEEP=1 keeps
# the scratch directory (logs, Prometheus data) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

SHOUT=${SHOUT:-target/release/shout}
LOSS=${LOSS:-20}
PLUMBING=${PLUMBING:-0}
MEMBERS=5
INTERVAL_MS=200 # 5 probes/s per pair: enough lost probes in a few seconds at LOSS %
TIMEOUT_MS=1000
PROM_PORT=9090
TAG="shm$$" # namespace names: unique per run, so parallel runs do not collide
HUB="$TAG-hub"
BUDGET=230 # seconds: every wait gives up before the whole run reaches 4 minutes

note() { echo "probe-mesh: $*"; }
die() {
    echo "probe-mesh: SETUP FAILED: $*" >&2
    exit 2
}
FAILED=0
pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    FAILED=1
}

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, nftables)"
for tool in ip nft python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
command -v prometheus >/dev/null || die "prometheus is missing (apt-get install prometheus)"
[[ -x $SHOUT ]] || die "no shout binary at $SHOUT (cargo build --release, or set SHOUT)"
SHOUT=$(realpath "$SHOUT")
if [[ $PLUMBING != 1 ]]; then
    "$SHOUT" probe --help >/dev/null 2>&1 || die "$SHOUT has no 'probe' subcommand (PLUMBING=1 checks the rest)"
fi

# ------------------------------------------------------------------------------- cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/shout-mesh.XXXXXX")
PIDS=()
NSS=()
declare -A AGENT_PID SERVER_PID
cleanup() {
    local status=$? pid ns i
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
        for i in $(seq 1 $((MEMBERS + 1))); do
            for f in agent server; do
                [[ -s $TMP/$f$i.err ]] || continue
                echo "--- $f $i stderr (last 15 lines)" >&2
                tail -n 15 "$TMP/$f$i.err" >&2
            done
        done
        [[ -s $TMP/prometheus.err ]] && {
            echo "--- prometheus stderr (last 10 lines)" >&2
            tail -n 10 "$TMP/prometheus.err" >&2
        }
    fi
    # Anything still inside our namespaces was started by this run (a child of one of ours).
    for ns in "${NSS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "probe-mesh: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# For short commands only: a process started in the background must be `ip netns exec ... &`
# itself (ip execs the program, so $! is its PID), not this function (a subshell's PID).
in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# Fails the setup if the run would pass its time budget.
budget() {
    ((SECONDS < BUDGET)) || die "out of time (${SECONDS}s) while $1"
}

# Waits until file $2 has a `listening on` line from PID $1; prints the address.
wait_listening() {
    local pid=$1 file=$2
    for _ in $(seq 200); do
        if grep -q '^listening on ' "$file" 2>/dev/null; then
            sed -n 's/^listening on //p' "$file" | head -n 1
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# ------------------------------------------------------------------------------- network
ip netns add "$HUB" || die "ip netns add failed"
NSS+=("$HUB")
in_ns "$HUB" ip link set lo up
in_ns "$HUB" ip link add br0 type bridge
in_ns "$HUB" ip addr add 10.99.0.254/24 dev br0
in_ns "$HUB" ip link set br0 up

# Member N: its namespace, a veth into the hub's bridge, the STAMP reflector.
add_member() {
    local n=$1 ns="$TAG-$1"
    ip netns add "$ns"
    NSS+=("$ns")
    in_ns "$ns" ip link set lo up
    ip -n "$HUB" link add "v$n" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "v$n" master br0 up
    in_ns "$ns" ip addr add "10.99.0.$n/24" dev eth0
    in_ns "$ns" ip link set eth0 up
    local metrics=()
    [[ $PLUMBING == 1 ]] && metrics=(--metrics "10.99.0.$n:9100")
    ip netns exec "$ns" "$SHOUT" server --mode stamp --stamp-stateful --bind "10.99.0.$n:862" \
        --workers 1 --quiet "${metrics[@]}" >"$TMP/server$n.out" 2>"$TMP/server$n.err" &
    SERVER_PID[$n]=$!
    PIDS+=("$!")
    wait_listening "${SERVER_PID[$n]}" "$TMP/server$n.out" >/dev/null || die "reflector $n did not start"
}

# Writes mesh.yml with members 1..$1, atomically (every agent reads the same file).
write_mesh() {
    local n=$1 members="" i
    for i in $(seq 1 "$n"); do
        members+="${members:+, }10.99.0.$i"
    done
    cat >"$TMP/mesh.yml.new" <<EOF
# One file for every member: each agent probes the others and skips its own address.
defaults:
  interval: ${INTERVAL_MS}ms
  timeout: ${TIMEOUT_MS}ms
mesh:
  members: [$members]
  labels: {mesh: ci}
buckets: [0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1]
EOF
    mv "$TMP/mesh.yml.new" "$TMP/mesh.yml"
}

start_agent() {
    local n=$1
    ip netns exec "$TAG-$n" "$SHOUT" probe --config "$TMP/mesh.yml" --metrics "10.99.0.$n:9100" --quiet \
        >"$TMP/agent$n.out" 2>"$TMP/agent$n.err" &
    AGENT_PID[$n]=$!
    PIDS+=("$!")
}

for n in $(seq 1 $MEMBERS); do
    add_member "$n"
done
note "$MEMBERS namespaces on bridge br0 ($TAG-*), stateful STAMP reflectors on 10.99.0.1-$MEMBERS:862"

# ------------------------------------------------------------------------------- prometheus
# All 6 possible agents are scrape targets from the start: the 6th is down until it exists.
{
    echo "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}"
    echo "scrape_configs:"
    echo "  - job_name: shout-probe"
    echo "    static_configs:"
    for i in $(seq 1 $((MEMBERS + 1))); do
        echo "      - {targets: ['10.99.0.$i:9100'], labels: {member: '$i'}}"
    done
} >"$TMP/prometheus.yml"
mkdir -p "$TMP/prometheus-data"
ip netns exec "$HUB" prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn \
    >"$TMP/prometheus.out" 2>"$TMP/prometheus.err" &
PROM_PID=$!
PIDS+=("$PROM_PID")
PROM="http://127.0.0.1:$PROM_PORT"
for _ in $(seq 200); do
    in_ns "$HUB" curl -sf --max-time 2 "$PROM/-/ready" >/dev/null 2>&1 && break
    kill -0 "$PROM_PID" 2>/dev/null || die "prometheus exited at start"
    sleep 0.1
done
in_ns "$HUB" curl -sf --max-time 2 "$PROM/-/ready" >/dev/null || die "prometheus not ready in 20 s"
note "prometheus $(prometheus --version 2>&1 | sed -n '1s/^prometheus, version \([^ ]*\).*/\1/p') on $HUB 127.0.0.1:$PROM_PORT"

# Instant query EXPR [at TIME]: prints one line per series, "SRC DST DIRECTION VALUE", where
# SRC is the agent's member number, DST the target's ("-" for series without a target or
# direction label).
query() {
    local args=(--data-urlencode "query=$1")
    [[ -n ${2:-} ]] && args+=(--data-urlencode "time=$2")
    in_ns "$HUB" curl -sf --max-time 5 --get "${args[@]}" "$PROM/api/v1/query" >"$TMP/q.json" ||
        die "query failed: $1"
    python3 - "$TMP/q.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if r.get("status") != "success":
    sys.exit("prometheus: " + r.get("error", "query failed"))
for s in r["data"]["result"]:
    m = s["metric"]
    dst = m.get("target", "-").split(":")[0].rsplit(".", 1)[-1]
    print(m.get("member", "-"), dst, m.get("direction", "-"), s["value"][1])
PY
}

# "SRC DST" of every directed pair among members 1..$1.
pairs() {
    local i j
    for i in $(seq 1 "$1"); do
        for j in $(seq 1 "$1"); do
            ((i != j)) && echo "$i $j"
        done
    done
    return 0
}

now() { date +%s.%N; }

# ------------------------------------------------------------------------------- plumbing
if [[ $PLUMBING == 1 ]]; then
    # Without the agent: bench every pair, scrape the reflectors, drop on one direction.
    for _ in $(seq 100); do
        [[ $(query 'sum(up{job="shout-probe"})' | awk '{ print $4 }') == "$MEMBERS" ]] && break
        sleep 0.2
    done
    up=$(query 'sum(up{job="shout-probe"})' | awk '{ print $4 }')
    [[ $up == "$MEMBERS" ]] && pass "prometheus scrapes all $MEMBERS reflectors' /metrics across the bridge" ||
        fail "prometheus scrapes $up of $MEMBERS reflectors"
    bad=0
    while read -r i j; do
        in_ns "$TAG-$i" "$SHOUT" bench --stamp "10.99.0.$j:862" --stamp-stateful --rate 50 \
            --duration 300ms --json >"$TMP/b.json" 2>/dev/null || bad=$((bad + 1))
    done < <(pairs $MEMBERS)
    ((bad == 0)) && pass "shout bench --stamp answered without loss on all 20 pairs" ||
        fail "$bad of 20 pairs lost probes"
    in_ns "$TAG-2" nft -f - <<EOF
table inet meshloss {
    chain input {
        type filter hook input priority 0; policy accept;
        ip saddr 10.99.0.1 udp dport 862 numgen random mod 100 < $LOSS counter drop
    }
}
EOF
    in_ns "$TAG-1" "$SHOUT" bench --stamp 10.99.0.2:862 --stamp-stateful --rate 100 --duration 2s \
        --json >"$TMP/b12.json" 2>"$TMP/b12.err" || true
    in_ns "$TAG-2" "$SHOUT" bench --stamp 10.99.0.1:862 --stamp-stateful --rate 100 --duration 2s \
        --json >"$TMP/b21.json" 2>"$TMP/b21.err" || true
    dropped=$(in_ns "$TAG-2" nft list table inet meshloss | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
    in_ns "$TAG-2" nft delete table inet meshloss
    read -r f12 b12 < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["stamp"]; print(s["forward_lost"], s["backward_lost"])' "$TMP/b12.json")
    read -r f21 b21 < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["stamp"]; print(s["forward_lost"], s["backward_lost"])' "$TMP/b21.json")
    note "nft dropped $dropped; bench 1->2 forward $f12 backward $b12; 2->1 forward $f21 backward $b21"
    if ((dropped > 0 && f12 > 0 && b12 == 0 && f21 == 0 && b21 == 0)); then
        pass "nft loss on 2's input from 1 shows as forward loss of 1->2 only"
    else
        fail "nft loss on 2's input from 1: unexpected split"
    fi
    [[ $FAILED -eq 0 ]] && note "PASS (plumbing)" || note "FAIL (plumbing)"
    exit "$FAILED"
fi

# ------------------------------------------------------------------------------- agents
write_mesh $MEMBERS
for n in $(seq 1 $MEMBERS); do
    start_agent "$n"
done
for n in $(seq 1 $MEMBERS); do
    addr=$(wait_listening "${AGENT_PID[$n]}" "$TMP/agent$n.out") || die "agent $n did not start"
    [[ $addr == "10.99.0.$n:9100" ]] || die "agent $n says 'listening on $addr', expected 10.99.0.$n:9100"
done
note "$MEMBERS agents started with one mesh.yml"

# Every agent started so far must still run: a dead one fails the run at once (exit 1).
agents_alive() {
    local n rc
    for n in "${!AGENT_PID[@]}"; do
        kill -0 "${AGENT_PID[$n]}" 2>/dev/null && continue
        rc=0
        wait "${AGENT_PID[$n]}" || rc=$?
        fail "agent $n exited (status $rc) $1"
        exit 1
    done
}

# ---- 1. 20 directed pairs up
# Waits (up to $2 s) until exactly the pairs among members 1..$1 have shout_probe_up == 1.
wait_pairs_up() {
    local n=$1 deadline=$((SECONDS + $2))
    pairs "$n" | sort >"$TMP/want.txt"
    while :; do
        query 'shout_probe_up == 1' | awk '{ print $1, $2 }' | sort >"$TMP/up.txt"
        cmp -s "$TMP/up.txt" "$TMP/want.txt" && return 0
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}
if wait_pairs_up $MEMBERS 30; then
    pass "all 20 directed pairs have shout_probe_up == 1 (${SECONDS}s into the run)"
else
    fail "pairs up: $(wc -l <"$TMP/up.txt") of 20; missing: $(comm -13 "$TMP/up.txt" "$TMP/want.txt" | tr '\n' ',') unexpected: $(comm -23 "$TMP/up.txt" "$TMP/want.txt" | tr '\n' ',')"
fi
scraped=$(query 'sum(up{job="shout-probe", member!="6"})' | awk '{ print $4 }')
[[ $scraped == "$MEMBERS" ]] && pass "prometheus scrapes all $MEMBERS agents" ||
    fail "prometheus scrapes $scraped of $MEMBERS agents"

# ---- 2. RTT quantiles
agents_alive "in the first seconds"
sleep 6 # a few seconds of histogram for rate() to work on
query 'histogram_quantile(0.5, sum by (member, target, le) (rate(shout_probe_rtt_seconds_bucket[10s])))' >"$TMP/p50.txt"
query 'histogram_quantile(0.99, sum by (member, target, le) (rate(shout_probe_rtt_seconds_bucket[10s])))' >"$TMP/p99.txt"
bad=$(python3 - "$TMP/p50.txt" "$TMP/p99.txt" $MEMBERS <<'PY'
import sys
def load(path):
    return {(s, d): float(v) for s, d, _, v in (l.split() for l in open(path))}
p50, p99, n = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
bad, lo, hi = [], [], []
for i in range(1, n + 1):
    for j in range(1, n + 1):
        if i == j:
            continue
        k = (str(i), str(j))
        a, b = p50.get(k), p99.get(k)
        # p50 well under the veth's worst; p99 of ~50 samples is about their max: under the timeout.
        if a is None or b is None or not (0 < a < 0.05 and a <= b < 1.0):
            bad.append(f"{i}->{j} p50={a} p99={b}")
        else:
            lo.append(a); hi.append(b)
print("; ".join(bad[:6] + ([f"... {len(bad) - 6} more"] if len(bad) > 6 else [])) if bad else f"ok p50 {min(lo)*1e6:.0f}-{max(lo)*1e6:.0f} us, p99 {min(hi)*1e6:.0f}-{max(hi)*1e6:.0f} us")
PY
)
if [[ $bad == ok* ]]; then
    pass "RTT quantiles for all 20 pairs, 0 < p50 < 50 ms, p50 <= p99 < 1 s (${bad#ok })"
else
    fail "RTT quantiles implausible or missing: $bad"
fi

# ---- 3, 4. loss on one direction of one pair
# Counters of every (pair, direction) of lost_total at TIME, as "SRC DST DIR VALUE".
lost_at() { query 'shout_probe_lost_total' "$1"; }

# loss_check NAME NS CHAIN MATCH SRC DST DIRECTION: drops LOSS % of the packets MATCH selects in
# member NS's CHAIN (input or output) for LOSS_SECONDS, then checks the lost counters.
LOSS_SECONDS=10
loss_check() {
    local name=$1 ns="$TAG-$2" chain=$3 match=$4 src=$5 dst=$6 dir=$7
    budget "injecting $name loss"
    agents_alive "before the $name check"
    local t0 t1 t2 dropped verdict
    t0=$(now)
    sleep 1.5 # t0 lies before the rule, with a scrape in between
    in_ns "$ns" nft -f - <<EOF
table inet meshloss {
    counter dropped {}
    chain $chain {
        type filter hook $chain priority 0; policy accept;
        $match numgen random mod 100 < $LOSS counter name "dropped" drop
    }
}
EOF
    sleep "$LOSS_SECONDS"
    in_ns "$ns" nft flush chain inet meshloss "$chain"
    dropped=$(in_ns "$ns" nft list counter inet meshloss dropped | sed -n 's/.*packets \([0-9]*\).*/\1/p')
    in_ns "$ns" nft delete table inet meshloss
    # The last dropped probe times out after TIMEOUT_MS; its direction is known with the next
    # reply; then one more scrape.
    sleep $((TIMEOUT_MS / 1000 + 3))
    t1=$(now)
    sleep 8
    t2=$(now)
    agents_alive "during the $name check"
    lost_at "$t0" >"$TMP/lost0.txt"
    lost_at "$t1" >"$TMP/lost1.txt"
    lost_at "$t2" >"$TMP/lost2.txt"
    verdict=$(python3 - "$TMP/lost0.txt" "$TMP/lost1.txt" "$TMP/lost2.txt" "$src" "$dst" "$dir" "$dropped" <<'PY'
import sys
def load(path):
    return {tuple(l.split()[:3]): float(l.split()[3]) for l in open(path)}
l0, l1, l2 = (load(p) for p in sys.argv[1:4])
src, dst, direction, dropped = sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7])
problems = []
inj = (src, dst, direction)
grew = l1.get(inj, 0) - l0.get(inj, 0)
if inj not in l1:
    problems.append(f"no series lost_total{{direction=\"{direction}\"}} for {src}->{dst}")
if dropped == 0:
    problems.append("nft dropped nothing")
if grew != dropped:
    problems.append(f"{src}->{dst} {direction} lost grew by {grew:g}, nft dropped {dropped}")
others = {k: l1.get(k, 0) - l0.get(k, 0) for k in set(l0) | set(l1) if k != inj}
moved = {k: v for k, v in others.items() if v != 0}
if moved:
    problems.append("other series grew: " + ", ".join(f"{s}->{d} {x} +{v:g}" for (s, d, x), v in sorted(moved.items())[:8]) + (f" ({len(moved)} series)" if len(moved) > 8 else ""))
after = {k: l2.get(k, 0) - l1.get(k, 0) for k in set(l1) | set(l2)}
moved = {k: v for k, v in after.items() if v != 0}
if moved:
    problems.append("after removal, still growing: " + ", ".join(f"{s}->{d} {x} +{v:g}" for (s, d, x), v in sorted(moved.items())[:8]) + (f" ({len(moved)} series)" if len(moved) > 8 else ""))
pairs_seen = {(s, d) for s, d, _ in l1}
if len(pairs_seen) < 20:
    problems.append(f"lost_total present for {len(pairs_seen)} pairs only")
print("; ".join(problems) if problems else f"ok {grew:g}")
PY
)
    if [[ $verdict == ok* ]]; then
        pass "$name: nft dropped $dropped; lost_total{direction=\"$dir\"} of $src->$dst grew by exactly that, no other series moved, none after the rule went"
    else
        fail "$name: $verdict"
    fi
}

loss_check "forward loss (member 2 input from 10.99.0.1 to port 862)" 2 input \
    "ip saddr 10.99.0.1 udp dport 862" 1 2 forward
loss_check "backward loss (member 3 input from 10.99.0.4:862)" 3 input \
    "ip saddr 10.99.0.4 udp sport 862" 3 4 backward

# ---- 5. an invalid config is refused
budget "reloading"
agents_alive "before the reloads"
cp "$TMP/mesh.yml" "$TMP/mesh.good"
printf 'mesh:\n  members: [10.99.0.1, 10.99.0.2]\n  no_such_key: 1\n' >"$TMP/mesh.yml.new"
mv "$TMP/mesh.yml.new" "$TMP/mesh.yml"
kill -HUP "${AGENT_PID[1]}"
sleep 3
status=$(query 'shout_probe_config_last_reload_successful{member="1"}' | awk '{ print $4 }')
mv "$TMP/mesh.good" "$TMP/mesh.yml"
up1=$(query 'count(shout_probe_up{member="1"} == 1)' | awk '{ print $4 }')
if [[ $status == 0 && $up1 == 4 ]] && kill -0 "${AGENT_PID[1]}" 2>/dev/null; then
    pass "an invalid mesh.yml on SIGHUP is refused (reload status 0), agent 1 goes on probing its 4 peers"
else
    fail "invalid mesh.yml on SIGHUP: reload status '$status' (want 0), pairs up from agent 1: '$up1' (want 4)"
fi

# ---- 6. a reload adds a 6th member
t_before=$(now)
query 'shout_probe_sent_total' >"$TMP/sent0.txt"
sleep 1.5
write_mesh $((MEMBERS + 1))
add_member $((MEMBERS + 1))
start_agent $((MEMBERS + 1))
wait_listening "${AGENT_PID[$((MEMBERS + 1))]}" "$TMP/agent$((MEMBERS + 1)).out" >/dev/null ||
    die "agent $((MEMBERS + 1)) did not start"
agents_alive "after the invalid config"
reload_bad=""
for n in $(seq 1 $MEMBERS); do
    if ((n % 2 == 1)); then
        kill -HUP "${AGENT_PID[$n]}"
    else
        code=$(in_ns "$TAG-$n" curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
            "http://10.99.0.$n:9100/-/reload" || true)
        [[ $code == 2* ]] || reload_bad+=" agent $n: POST /-/reload answered '$code';"
    fi
done
if wait_pairs_up $((MEMBERS + 1)) 30; then
    pass "after the reload (SIGHUP to 1, 3, 5; POST /-/reload to 2, 4) all 30 directed pairs are up"
else
    fail "after the reload: $(wc -l <"$TMP/up.txt") of 30 pairs up; missing: $(comm -13 "$TMP/up.txt" "$TMP/want.txt" | tr '\n' ',')"
fi
[[ -z $reload_bad ]] && pass "POST /-/reload accepted by agents 2 and 4" || fail "$reload_bad"
ok=$(query 'shout_probe_config_last_reload_successful == 1' | awk '{ print $1 }' | sort -n | tr '\n' ' ')
[[ $ok == "1 2 3 4 5 6 " ]] && pass "shout_probe_config_last_reload_successful == 1 on all 6 agents" ||
    fail "reload status 1 only on agents: $ok"
sleep 3
t_after=$(now)
window=$(python3 -c "import math; print(math.ceil($t_after - $t_before) + 1)")
query 'shout_probe_sent_total' >"$TMP/sent1.txt"
for m in shout_probe_sent_total shout_probe_answered_total shout_probe_rtt_seconds_count; do
    query "resets(${m}[${window}s])" | awk -v m="$m" '$4 != 0 { print m, $1 "->" $2, $4 }'
done >"$TMP/resets.txt"
# One sample per scrape over the window: a series that vanished during the reload has fewer.
query "count_over_time(shout_probe_sent_total[${window}s])" >"$TMP/samples.txt"
verdict=$(python3 - "$TMP/sent0.txt" "$TMP/sent1.txt" "$TMP/samples.txt" "$window" "$MEMBERS" <<'PY'
import sys
def load(path):
    return {tuple(l.split()[:2]): float(l.split()[3]) for l in open(path)}
s0, s1, samples = (load(p) for p in sys.argv[1:4])
window, n = int(sys.argv[4]), int(sys.argv[5])
problems = []
for i in range(1, n + 1):
    for j in range(1, n + 1):
        k = (str(i), str(j))
        if i == j:
            continue
        if k not in s0 or k not in s1:
            problems.append(f"{i}->{j} sent_total missing before or after")
        elif s1[k] <= s0[k]:
            problems.append(f"{i}->{j} sent_total {s0[k]:g} -> {s1[k]:g}")
        if samples.get(k, 0) < window - 3:
            problems.append(f"{i}->{j} {samples.get(k, 0):g} samples in {window}s (a gap)")
print("; ".join(problems[:6] + ([f"... {len(problems) - 6} more"] if len(problems) > 6 else [])) if problems else "ok")
PY
)
if [[ $verdict == ok && ! -s $TMP/resets.txt ]]; then
    pass "no series of the 20 old pairs reset or paused over the reload (${window}s window: resets() == 0, a sample every scrape, sent_total growing)"
else
    fail "reload reset or interrupted old series: $verdict; resets: $(head -n 6 "$TMP/resets.txt" | tr '\n' ';') ($(wc -l <"$TMP/resets.txt") series)"
fi
targets=$(query 'shout_probe_targets' | awk '{ print $4 }' | sort -u | tr '\n' ' ')
[[ $targets == "5 " ]] && pass "shout_probe_targets == 5 on every agent of the 6-member mesh" ||
    fail "shout_probe_targets values: $targets (want 5 on each)"

# ------------------------------------------------------------------------------- stop
agents_alive "by the end"
for n in $(seq 1 $((MEMBERS + 1))); do
    kill -TERM "${AGENT_PID[$n]}"
done
stopped_bad=""
for n in $(seq 1 $((MEMBERS + 1))); do
    rc=0
    for _ in $(seq 50); do
        kill -0 "${AGENT_PID[$n]}" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "${AGENT_PID[$n]}" 2>/dev/null; then
        stopped_bad+=" agent $n still running 5 s after SIGTERM;"
        continue
    fi
    wait "${AGENT_PID[$n]}" || rc=$?
    ((rc == 0)) || stopped_bad+=" agent $n exited $rc;"
done
[[ -z $stopped_bad ]] && pass "all 6 agents exit 0 on SIGTERM" || fail "$stopped_bad"

echo
if [[ $FAILED -eq 0 ]]; then
    note "PASS: every check passed in ${SECONDS}s"
else
    note "FAIL: some checks failed (${SECONDS}s)"
fi
exit "$FAILED"
