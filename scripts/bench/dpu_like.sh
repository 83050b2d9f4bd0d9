#!/usr/bin/env bash
# Host CPU per request, measured as on a DPU (issue 22). This machine has
# two cores; they stand for the two sides of a BlueField host:
#   core 0 = the DPU and the network: the service (its worker and front,
#            pinned) and the load generator (the remote clients);
#   core 1 = the host CPU: only the application under test runs there.
# The same unmodified binary runs on Linux loopback TCP and under
# flextoe-run, in one run, with the same load. Reported per operation: the
# application's own CPU time (utime + stime of its processes, what it
# pays) and core 1's total busy time from /proc/stat (everything the host
# CPU did meanwhile, kernel softirqs included). Not included: core 0's
# time (on a DPU it is the Arm cores', not the host's).
#
# Applications: memcached (1 thread) under memcaslap, nginx (1 process,
# 1 KiB file) under wrk, and the libtoe RPC example (64 B echo).
#
# Usage: scripts/bench/dpu_like.sh [SECONDS] [CONNS]
# IDLE_SPIN / IDLE_PARK_US, when set, are the service workers'
# `topology.idle.spin_polls` / `park_after_us` (they share core 0).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN_S=${1:-8}
CONNS=${2:-16}
BIN=target/release
EX=$BIN/examples
cargo build --release -q -p dpu-datapath --bin flextoe-dpu -p host-shim --lib --examples
cargo build --release -q -p toe-preload
for t in memcached memcaslap nginx wrk taskset; do
  command -v $t >/dev/null || { echo "$t not installed (scripts/setup.sh)" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "needs two cores" >&2; exit 1; }

# The service on the loopback backend (scripts/bench/loopback_service.sh),
# its worker on core 0, the whole process (front, control threads)
# confined to core 0.
SERVICE_LAUNCH="taskset -c 0"
SERVICE_TWEAK="
import os
c['topology']['replicas'] = 1
c['topology']['cores'] = [0]
if os.environ.get('IDLE_SPIN'):
    c['topology']['idle'] = {'spin_polls': int(os.environ['IDLE_SPIN']), 'park_after_us': int(os.environ.get('IDLE_PARK_US', '0'))}
"
# shellcheck source=scripts/bench/loopback_service.sh
source scripts/bench/loopback_service.sh
RUN=("$BIN/flextoe-run" --control "$dir/control.sock" --)
TICK=$(getconf CLK_TCK)

# utime + stime of a process and its threads, in ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Busy ticks of core 1 (all but idle and iowait).
core1() { awk '$1 == "cpu1" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# measure LABEL PID OPS_CMD...: runs the load command (which prints the
# operation count), reports CPU per operation of PID and of core 1.
measure() {
  local label=$1 pid=$2; shift 2
  local a0 c0 t0 ops a1 c1 t1
  a0=$(ticks "$pid"); c0=$(core1); t0=$(date +%s.%N)
  ops=$("$@")
  t1=$(date +%s.%N); a1=$(ticks "$pid"); c1=$(core1)
  python3 -c "
ops = float('$ops'); dt = $t1 - $t0
app = ($a1 - $a0) / $TICK; core = ($c1 - $c0) / $TICK
print(f'{\"$label\":34} {ops/dt:10.0f} op/s  app CPU {app/ops*1e6:7.2f} us/op  core 1 {core/ops*1e6:7.2f} us/op  ({app:.2f} s / {core:.2f} s of {dt:.1f} s)')" | tee -a "$dir/results"
}

# --- memcached ------------------------------------------------------------
memcached_ops() { # HOST PORT [prefix...]
  local host=$1 port=$2; shift 2
  "$@" taskset -c 0 memcaslap -s "$host:$port" -T 1 -c "$CONNS" -t "${RUN_S}s" -X 100 2>&1 |
    awk '/^Run time/ {for (i = 1; i <= NF; i++) if ($i == "Ops:") print $(i + 1)}' | tail -1
}
memcached_case() { # LABEL HOST PORT [prefix...]
  local label=$1 host=$2 port=$3; shift 3
  "$@" taskset -c 1 memcached -l "$host" -p "$port" -U 0 -t 1 -u root &
  local pid=$!
  pids+=("$pid")
  sleep 1
  if [ $# -gt 0 ]; then
    measure "$label" "$pid" memcached_ops "$host" "$port" "${RUN[@]}"
  else
    measure "$label" "$pid" memcached_ops "$host" "$port"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# --- nginx -----------------------------------------------------------------
mkdir -p "$dir/www" "$dir/tmp"
head -c 1024 /dev/urandom >"$dir/www/1k"
nginx_conf() { # HOST PORT
  cat >"$dir/nginx-$2.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $dir/nginx-$2.pid; error_log $dir/nginx-error.log;
events { worker_connections 256; use epoll; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  server { listen $1:$2; root $dir/www; } }
EOF
}
nginx_ops() { # HOST PORT [prefix...]
  local host=$1 port=$2; shift 2
  "$@" taskset -c 0 wrk -t1 -c"$CONNS" -d"${RUN_S}s" "http://$host:$port/1k" 2>&1 |
    awk '/requests in/ {print $1}'
}
nginx_case() { # LABEL HOST PORT [prefix...]
  local label=$1 host=$2 port=$3; shift 3
  nginx_conf "$host" "$port"
  "$@" taskset -c 1 nginx -c "$dir/nginx-$port.conf" &
  local pid=$!
  pids+=("$pid")
  sleep 1
  if [ $# -gt 0 ]; then
    measure "$label" "$pid" nginx_ops "$host" "$port" "${RUN[@]}"
  else
    measure "$label" "$pid" nginx_ops "$host" "$port"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# --- libtoe RPC example --------------------------------------------------
rpc_ops() { # FLAG ADDR (requests are per connection)
  # shellcheck disable=SC2086 # an empty FLAG is no argument
  taskset -c 0 $EX/rpc_client $1 --connect "$2" --conns "$CONNS" --requests $((2500 * RUN_S)) --size 64 |
    python3 -c "import json, sys; print(json.load(sys.stdin)['requests'])"
}
rpc_case() { # LABEL FLAG LISTEN CONNECT
  # shellcheck disable=SC2086 # an empty FLAG is no argument
  taskset -c 1 $EX/echo_server $2 --listen "$3" >"$dir/echo.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  sleep 1
  measure "$1" "$pid" rpc_ops "$2" "$4"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "command: $0 $RUN_S $CONNS  (core 0: service + load; core 1: the application)"
memcached_case "memcached, Linux" 127.0.0.1 21211
memcached_case "memcached, flextoe-run" "$IP" 21212 "${RUN[@]}"
nginx_case "nginx, Linux" 127.0.0.1 28080
nginx_case "nginx, flextoe-run" "$IP" 28081 "${RUN[@]}"
rpc_case "libtoe RPC echo, Linux" --kernel 127.0.0.1:27001 127.0.0.1:27001
rpc_case "libtoe RPC echo, offload" "" 0.0.0.0:27002 "$IP:27002"
python3 - "$dir/results" <<'EOF'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(.+?), (Linux|flextoe-run|offload)\s+(\d+) op/s\s+app CPU\s+([\d.]+) us/op\s+core 1\s+([\d.]+)", line)
    if m:
        rows.setdefault(m.group(1), {})["linux" if m.group(2) == "Linux" else "toe"] = tuple(map(float, m.group(3, 4, 5)))
print("== offload / Linux (ratios: throughput, app CPU per op, core 1 per op)")
for app, r in rows.items():
    if "linux" in r and "toe" in r:
        (lt, la, lc), (tt, ta, tc) = r["linux"], r["toe"]
        print(f"{app:24} throughput {tt/lt:5.2f}x  app CPU/op {ta/la:5.2f}x  core 1/op {tc/lc:5.2f}x")
EOF
