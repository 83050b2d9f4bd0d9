#!/usr/bin/env bash
# memcached under the same load on the kernel's TCP and under flextoe-run
# (libtoe_preload.so, service on the loopback backend): ops/s and
# memcached's own CPU time per operation (utime+stime from /proc/PID/stat).
# One run each. Usage: scripts/bench/memcached_preload.sh [SECONDS] [CONNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_RUN=${1:-5}
CONNS=${2:-2}
BIN=target/release
[ -x $BIN/flextoe-dpu ] && [ -x $BIN/flextoe-run ] && [ -f $BIN/libtoe_preload.so ] || {
    echo "build first: cargo build --release -p dpu-datapath --bin flextoe-dpu -p toe-preload" >&2; exit 1; }
command -v memcached >/dev/null || { echo "memcached not installed (scripts/setup.sh)" >&2; exit 1; }
LOAD="python3 scripts/bench/memcached_load.py"
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The service, loopback backend, private control socket.
$BIN/flextoe-dpu default-config | python3 -c "
import json,sys
c=json.load(sys.stdin)
c['port']['backend']='loopback'; c['host']['control_socket']='$TMP/control.sock'
c['metrics']['enabled']=False; c['topology']['replicas']=1
json.dump(c,open('$TMP/config.json','w'))"
$BIN/flextoe-dpu run --config "$TMP/config.json" --stats-interval 0 --duration 100000 >"$TMP/svc.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$TMP/svc.log" && break; sleep 0.1; done
IP=$(python3 -c "import json;print(json.load(open('$TMP/config.json'))['identity']['ipv4'])")
PORT=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")

run_one() { # label host prefix...
    local label=$1 host=$2; shift 2
    "$@" memcached -l "$host" -p "$PORT" -U 0 -t 1 -u root &
    local mpid=$!
    PIDS+=($mpid)
    sleep 1
    # The child of flextoe-run execs memcached: same pid.
    local c0; c0=$(cpu_ticks $mpid)
    local t0; t0=$(date +%s.%N)
    local ops; ops=$("$@" $LOAD "$host" "$PORT" "$CONNS" "$SECONDS_RUN")
    local t1; t1=$(date +%s.%N)
    local c1; c1=$(cpu_ticks $mpid)
    kill $mpid; wait $mpid 2>/dev/null || true
    python3 -c "
ops=$ops; dt=$t1-$t0; cpu=($c1-$c0)/$TICK
print(f'$label: {ops} ops in {dt:.2f} s = {ops/dt:,.0f} ops/s; memcached CPU {cpu:.2f} s = {cpu/ops*1e6:.2f} us/op')"
}

echo "command: $0 $SECONDS_RUN $CONNS (load: $LOAD HOST PORT $CONNS $SECONDS_RUN; memcached -t 1 -U 0)"
run_one "kernel  (127.0.0.1)" 127.0.0.1
run_one "preload ($IP)" "$IP" $BIN/flextoe-run --control "$TMP/control.sock" --
