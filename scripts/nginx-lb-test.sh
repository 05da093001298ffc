#!/usr/bin/env bash
# nginx-lb-test.sh: three shout servers behind nginx's UDP load balancer, for real.
#
# Runs deploy/nginx/shout-lb.conf (its addresses replaced by free loopback
# ports) in a private nginx (own prefix, pid file and error log, no daemon),
# sends 3,000 requests through it from 30 clients (each its own source port),
# and checks that every reply is the uppercased request and that each server
# took a share: answered > 0 on each (SIGUSR1 stats lines), adding up to
# exactly 3,000. With `shout bench` in the build, it then also runs 4 flows x
# window 8 through nginx for 1 s and requires no loss.
#
# Needs nginx with the stream module. Missing, it is installed from Debian
# (root only): nginx libnginx-mod-stream. Uses python3 to find a free port.
#
#   bash scripts/nginx-lb-test.sh            # builds target/debug/shout first
#   SHOUT_BIN=target/release/shout bash scripts/nginx-lb-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=30
LINES=100
TOTAL=$((CLIENTS * LINES))
SERVERS=3
CONF=${SHOUT_LB_CONF:-deploy/nginx/shout-lb.conf} # the example under test

fail() {
    echo "nginx-lb-test: FAIL: $*" >&2
    exit 1
}
note() { echo "nginx-lb-test: $*"; }

# ---------------------------------------------------------------- nginx
stream_module() {
    # Prints the load_module line the stream module needs ("" if built in);
    # fails if nginx has no stream module at all.
    local v
    v=$(nginx -V 2>&1)
    if grep -q -- '--with-stream=dynamic' <<<"$v"; then
        local dir
        dir=$(sed -n 's/.*--modules-path=\([^ ]*\).*/\1/p' <<<"$v")
        local so="${dir:-/usr/lib/nginx/modules}/ngx_stream_module.so"
        [[ -f $so ]] || return 1
        echo "load_module $so;"
    elif grep -q -- '--with-stream\b' <<<"$v"; then
        echo ""
    else
        return 1
    fi
}

if ! command -v nginx >/dev/null || ! stream_module >/dev/null; then
    [[ $(id -u) -eq 0 ]] || fail "nginx with the stream module is missing; as root: apt-get install nginx libnginx-mod-stream"
    note "installing nginx and its stream module from Debian"
    # Keep the package's own nginx service (port 80) from starting.
    guard=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        guard=/usr/sbin/policy-rc.d
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        nginx libnginx-mod-stream >/dev/null
    [[ -n $guard ]] && rm -f "$guard"
    stream_module >/dev/null || fail "nginx installed but its stream module was not found"
fi
LOAD_MODULE=$(stream_module)
note "$(nginx -v 2>&1)"

# ---------------------------------------------------------------- shout
if [[ -z ${SHOUT_BIN:-} ]]; then
    note "building shout (debug, as cargo test does)"
    cargo build --locked --quiet --bin shout
    SHOUT_BIN=target/debug/shout
fi
[[ -x $SHOUT_BIN ]] || fail "no shout binary at $SHOUT_BIN"
SHOUT_BIN=$(realpath "$SHOUT_BIN")

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $status -ne 0 ]]; then
        echo "--- nginx error log (last 20 lines)" >&2
        tail -n 20 "$TMP/error.log" >&2 2>/dev/null || true
        for i in $(seq 1 "$SERVERS"); do
            echo "--- server $i stderr" >&2
            cat "$TMP/server$i.err" >&2 2>/dev/null || true
        done
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $2 seconds for PID $1 to exit; returns its status, 124 if it did not.
wait_for() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || return 124
        sleep 0.05
    done
    local rc=0
    wait "$pid" || rc=$?
    return "$rc"
}

# ---------------------------------------------------------------- servers
ADDRS=()
for i in $(seq 1 "$SERVERS"); do
    "$SHOUT_BIN" server --bind 127.0.0.1:0 --quiet --workers 1 \
        >"$TMP/server$i.out" 2>"$TMP/server$i.err" &
    PIDS+=($!)
    SERVER_PIDS[i]=$!
done
for i in $(seq 1 "$SERVERS"); do
    for _ in $(seq 1 200); do
        grep -q '^listening on ' "$TMP/server$i.out" && break
        kill -0 "${SERVER_PIDS[i]}" 2>/dev/null || fail "server $i exited at start"
        sleep 0.05
    done
    addr=$(sed -n 's/^listening on //p' "$TMP/server$i.out" | head -n 1)
    [[ -n $addr ]] || fail "server $i printed no 'listening on' line in 10 s"
    ADDRS+=("$addr")
done
note "servers: ${ADDRS[*]}"

# ---------------------------------------------------------------- nginx
free_udp_port() {
    python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_nginx() {
    local port=$1
    sed -e "s/127\.0\.0\.1:8081/${ADDRS[0]}/" \
        -e "s/127\.0\.0\.1:8082/${ADDRS[1]}/" \
        -e "s/127\.0\.0\.1:8083/${ADDRS[2]}/" \
        -e "s/listen 127\.0\.0\.1:8080 /listen 127.0.0.1:$port /" \
        "$CONF" >"$TMP/shout-lb.conf"
    grep -q "listen 127.0.0.1:$port " "$TMP/shout-lb.conf" || fail "$CONF: listen 127.0.0.1:8080 not found"
    for a in "${ADDRS[@]}"; do
        grep -q "server $a " "$TMP/shout-lb.conf" || fail "$CONF: upstream servers 127.0.0.1:8081-8083 not found"
    done
    cat >"$TMP/nginx.conf" <<EOF
$LOAD_MODULE
pid $TMP/nginx.pid;
error_log $TMP/error.log info;
worker_processes 1;
events { worker_connections 1024; }
include $TMP/shout-lb.conf;
EOF
    nginx -t -q -c "$TMP/nginx.conf" -p "$TMP" -e "$TMP/error.log" || fail "nginx -t rejected the configuration"
    rm -f "$TMP/nginx.pid"
    nginx -c "$TMP/nginx.conf" -p "$TMP" -e "$TMP/error.log" -g 'daemon off;' &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    # nginx writes its pid file after binding its sockets: from then on a
    # datagram sent to it waits in the socket's queue.
    for _ in $(seq 1 100); do
        [[ -s $TMP/nginx.pid ]] && return 0
        kill -0 "$NGINX_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

started=""
for attempt in 1 2 3; do # a free port may be taken between probe and bind
    NGINX_PORT=$(free_udp_port)
    if start_nginx "$NGINX_PORT"; then
        started=yes
        break
    fi
    note "nginx did not start on port $NGINX_PORT (attempt $attempt)"
done
[[ -n $started ]] || fail "nginx did not start"
note "nginx on 127.0.0.1:$NGINX_PORT (pid $NGINX_PID)"

# ---------------------------------------------------------------- clients
# Each client is its own process and socket: its own source port, as many
# real clients would be. Each sends its lines one at a time (closed loop).
CLIENT_PIDS=()
for c in $(seq 1 "$CLIENTS"); do
    awk -v c="$c" -v n="$LINES" 'BEGIN { for (i = 1; i <= n; i++) printf "client %d line %d: hello, world\n", c, i }' \
        >"$TMP/in.$c"
    # shellcheck disable=SC2018,SC2019 # ASCII a-z only, exactly what shout uppercases
    tr 'a-z' 'A-Z' <"$TMP/in.$c" >"$TMP/want.$c"
    timeout 45 "$SHOUT_BIN" client "127.0.0.1:$NGINX_PORT" <"$TMP/in.$c" \
        >"$TMP/out.$c" 2>"$TMP/err.$c" &
    CLIENT_PIDS[c]=$!
    PIDS+=($!)
done
failed=0
for c in $(seq 1 "$CLIENTS"); do
    rc=0
    wait "${CLIENT_PIDS[c]}" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "client $c exited $rc: $(head -c 300 "$TMP/err.$c")" >&2
        failed=1
    elif ! cmp -s "$TMP/out.$c" "$TMP/want.$c"; then
        echo "client $c: replies differ from the uppercased requests:" >&2
        diff "$TMP/want.$c" "$TMP/out.$c" | head -n 5 >&2 || true
        failed=1
    fi
done
[[ $failed -eq 0 ]] || fail "some clients did not get every reply right"
note "$CLIENTS clients x $LINES requests: every reply is the uppercased request"

# ---------------------------------------------------------------- shares
# SIGUSR1 makes each server print its counters now: the shares of the 3,000.
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$2"; }
sum_answered=0
for i in $(seq 1 "$SERVERS"); do
    kill -USR1 "${SERVER_PIDS[i]}"
    line=""
    for _ in $(seq 1 100); do
        line=$(grep '^stats: ' "$TMP/server$i.err" | tail -n 1 || true)
        [[ -n $line ]] && break
        sleep 0.05
    done
    [[ -n $line ]] || fail "server $i printed no stats line within 5 s of SIGUSR1"
    answered=$(field answered "$line")
    note "server $i (${ADDRS[i - 1]}): answered=$answered"
    ((answered > 0)) || fail "server $i answered nothing: nginx did not spread the load"
    sum_answered=$((sum_answered + answered))
done
((sum_answered == TOTAL)) || fail "servers answered $sum_answered requests in all, expected $TOTAL"
note "each server took a share; together they answered exactly $TOTAL"

# ---------------------------------------------------------------- bench
# Several requests in flight per client socket, if this shout has `bench`.
if "$SHOUT_BIN" bench --help >/dev/null 2>&1; then
    rc=0
    timeout 30 "$SHOUT_BIN" bench "127.0.0.1:$NGINX_PORT" --flows 4 --window 8 --duration 1s \
        --timeout 1s --max-loss 0 >"$TMP/bench.out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        cat "$TMP/bench.out" >&2
        fail "shout bench through nginx (4 flows x window 8) exited $rc: replies were lost or wrong"
    fi
    note "bench through nginx: $(grep -E '^answered' "$TMP/bench.out" | tr -s ' ')"
else
    note "no 'shout bench' in this build: skipping the pipelined run"
fi

# ---------------------------------------------------------------- stop
kill -QUIT "$NGINX_PID" # graceful stop
wait_for "$NGINX_PID" 10 || true
for i in $(seq 1 "$SERVERS"); do
    kill -TERM "${SERVER_PIDS[i]}"
    rc=0
    wait_for "${SERVER_PIDS[i]}" 5 || rc=$?
    [[ $rc -eq 0 ]] || fail "server $i did not exit 0 on SIGTERM (status $rc)"
    summary=$(grep '^summary: ' "$TMP/server$i.err" || true)
    [[ -n $summary ]] || fail "server $i printed no summary line"
    received=$(field received "$summary")
    answered=$(field answered "$summary")
    limited=$(field rate_limited "$summary")
    note "server $i summary: received=$received answered=$answered rate_limited=$limited"
    ((received == answered)) || fail "server $i left $((received - answered)) requests unanswered"
    ((limited == 0)) || fail "server $i rate-limited $limited requests (loopback is exempt)"
done
note "PASS: $TOTAL requests through nginx, every reply right, spread over $SERVERS servers"
