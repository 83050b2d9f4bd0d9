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
# 1 KiB file) under wrk, and the libtoe RPC example (64 B echo), each at
# full speed; then each again at the same offered load on both stacks
# (SAME_LOAD, default 0.8, of the offload's full-speed rate), offered by the
# libtoe example rpc_client (--protocol memcached|http|echo, --rate): CPU
# per operation depends on load, and at full speed Linux's application is
# saturated while the offloaded one is not.
#
# Usage: scripts/bench/dpu_like.sh [SECONDS] [CONNS]
# BIN, when set, is another build directory for the service, flextoe-run,
# libtoe_preload.so and the echo server (A/B runs); the load generator is
# always this tree's.
# IDLE, when set, is a number of extra connections the same-load runs open
# and hold idle beside the CONNS active ones (rpc_client --idle): servers
# with many quiet keep-alive clients, where a wait's cost per member shows.
# APPS, when set, is the list of applications to run (memcached nginx echo).
# IDLE_SPIN / IDLE_PARK_US, when set, are the service workers'
# `topology.idle.spin_polls` / `park_after_us` (they share core 0), and
# FRONT_YIELD_EVERY the front's `host.front_yield_every`.
# GEN picks where the load comes from:
#   loopback (default): the load generator runs under flextoe-run on the
#     loopback backend for the offload (the service then carries both ends
#     of every connection) and on Linux loopback TCP for Linux;
#   port (root): the load generator runs on Linux TCP in a network
#     namespace, as remote clients would, and reaches the service through
#     its DPDK port (net_af_packet on a veth) and the Linux application
#     through a second veth (scripts/bench/port_service.sh): the service
#     carries the application's end only, as on a DPU, and both stacks see
#     the same clients over the same kind of link.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN_S=${1:-8}
CONNS=${2:-16}
IDLE=${IDLE:-0}
ulimit -n $((4096 + 2 * IDLE))
BIN=${BIN:-target/release}  # another build for A/B runs (flextoe-dpu, flextoe-run, libtoe_preload.so, examples/)
EX=$BIN/examples
cargo build --release -q -p dpu-datapath --bin flextoe-dpu -p host-shim --lib --examples
cargo build --release -q -p toe-preload
for t in memcached memcaslap nginx wrk taskset; do
  command -v $t >/dev/null || { echo "$t not installed (scripts/setup.sh)" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "needs two cores" >&2; exit 1; }

# The service (scripts/bench/loopback_service.sh or port_service.sh), its
# worker on core 0, the whole process (front, control threads) confined to
# core 0.
GEN=${GEN:-loopback}
SERVICE_LAUNCH="taskset -c 0"
SERVICE_TWEAK="
import os
c['topology']['replicas'] = 1
c['topology']['cores'] = [0]
if os.environ.get('IDLE_SPIN'):
    c['topology']['idle'] = {'spin_polls': int(os.environ['IDLE_SPIN']), 'park_after_us': int(os.environ.get('IDLE_PARK_US', '0'))}
if os.environ.get('FRONT_YIELD_EVERY') and 'front_yield_every' in c['host']:
    c['host']['front_yield_every'] = int(os.environ['FRONT_YIELD_EVERY'])
"
case $GEN in
  loopback)
    # shellcheck source=scripts/bench/loopback_service.sh
    source scripts/bench/loopback_service.sh
    LINUX_IP=127.0.0.1
    ;;
  port)
    # shellcheck source=scripts/bench/port_service.sh
    source scripts/bench/port_service.sh
    ;;
  *) echo "GEN is loopback or port, not $GEN" >&2; exit 1 ;;
esac
RUN=("$BIN/flextoe-run" --control "$dir/control.sock" --)
TICK=$(getconf CLK_TCK)

# utime + stime of a process and its threads, in ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Busy ticks of core N (all but idle and iowait).
core_busy() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
core1() { core_busy 1; }

# measure LABEL PID OPS_CMD...: runs the load command (which prints the
# operation count), reports CPU per operation of PID, of core 1 and of core
# 0 (the service and the load), and core 0's busy share.
measure() {
  local label=$1 pid=$2; shift 2
  local a0 c0 z0 t0 ops a1 c1 z1 t1
  a0=$(ticks "$pid"); c0=$(core1); z0=$(core_busy 0); t0=$(date +%s.%N)
  ops=$("$@")
  t1=$(date +%s.%N); a1=$(ticks "$pid"); c1=$(core1); z1=$(core_busy 0)
  python3 -c "
ops = float('$ops'); dt = $t1 - $t0
app = ($a1 - $a0) / $TICK; core = ($c1 - $c0) / $TICK; zero = ($z1 - $z0) / $TICK
print(f'{\"$label\":38} {ops/dt:10.0f} op/s  app CPU {app/ops*1e6:7.2f} us/op  core 1 {core/ops*1e6:7.2f} us/op  ({app:.2f} s / {core:.2f} s of {dt:.1f} s)  core 0 {zero/ops*1e6:7.2f} us/op, {zero/dt:4.0%} busy')" | tee -a "$dir/results"
}

# --- the applications, each started on core 1 -----------------------------
# start_APP STACK PORT (STACK: linux or toe) sets APP_PID; stop_app ends it.
mkdir -p "$dir/www" "$dir/tmp"
head -c 1024 /dev/urandom >"$dir/www/1k"
host_of() { if [ "$1" = linux ]; then echo "$LINUX_IP"; else echo "$IP"; fi; }
# What an application on STACK starts under: flextoe-run for the offload;
# with GEN=port, the host namespace for Linux.
prefix_of() {
  if [ "$1" = toe ]; then echo "${RUN[*]}"; elif [ "$GEN" = port ]; then echo "$IN_HOST"; fi
}
# How a load generator reaches STACK: under flextoe-run for the offload on
# the loopback backend; from the generator namespace on Linux TCP with
# GEN=port.
gen_prefix() {
  if [ "$GEN" = port ]; then echo "ip netns exec $GEN_NS"; elif [ "$1" = toe ]; then prefix_of toe; fi
}
started() { APP_PID=$1; pids+=("$APP_PID"); sleep 1; }
stop_app() { kill "$APP_PID"; wait "$APP_PID" 2>/dev/null || true; }
start_memcached() { # STACK PORT
  # shellcheck disable=SC2046 # the prefix is a word list
  $(prefix_of "$1") taskset -c 1 memcached -l "$(host_of "$1")" -p "$2" -U 0 -t 1 -u root -c $((1024 + IDLE)) &
  started $!
}
start_nginx() { # STACK PORT
  cat >"$dir/nginx-$2.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $dir/nginx-$2.pid; error_log $dir/nginx-error.log;
worker_rlimit_nofile $((4096 + 2 * IDLE));
events { worker_connections $((256 + IDLE)); use epoll; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  server { listen $(host_of "$1"):$2; root $dir/www; } }
EOF
  # shellcheck disable=SC2046
  $(prefix_of "$1") taskset -c 1 nginx -c "$dir/nginx-$2.conf" &
  started $!
}
start_echo() { # STACK PORT (the libtoe example: libtoe itself, no preload)
  if [ "$1" = linux ]; then
    # shellcheck disable=SC2046
    $(prefix_of linux) taskset -c 1 "$EX"/echo_server --kernel --listen "$LINUX_IP:$2" >/dev/null 2>&1 &
  else
    taskset -c 1 "$EX"/echo_server --listen "0.0.0.0:$2" >/dev/null 2>&1 &
  fi
  started $!
}

# --- the loads, on core 0; each prints the operation count ----------------
# Standard generators, closed loop (`gen_prefix`).
load_memcached() { # STACK PORT
  # shellcheck disable=SC2046
  $(gen_prefix "$1") taskset -c 0 memcaslap -s "$(host_of "$1"):$2" -T 1 -c "$CONNS" -t "${RUN_S}s" -X 100 2>&1 |
    awk '/^Run time/ {for (i = 1; i <= NF; i++) if ($i == "Ops:") print $(i + 1)}' | tail -1
}
load_nginx() { # STACK PORT
  # shellcheck disable=SC2046
  $(gen_prefix "$1") taskset -c 0 wrk -t1 -c"$CONNS" -d"${RUN_S}s" "http://$(host_of "$1"):$2/1k" 2>&1 |
    awk '/requests in/ {print $1}'
}
# The libtoe load generator (host-shim/examples/rpc_client.rs, always this
# tree's build, also when BIN names another for the application), libtoe for
# the offload and --kernel for Linux. RATE 0: closed loop; otherwise the
# requests/s offered in total, so both stacks carry the same load.
load_rpc() { # PROTOCOL SIZE RATE STACK PORT
  local flag="" n
  if [ "$4" = linux ] || [ "$GEN" = port ]; then flag=--kernel; fi
  if [ "$3" = 0 ]; then n=$((2500 * RUN_S)); else n=$(python3 -c "print(max(1, int($3 * $RUN_S / $CONNS)))"); fi
  # shellcheck disable=SC2086,SC2046 # an empty FLAG is no argument; the prefix is a word list
  $(gen_prefix none) taskset -c 0 target/release/examples/rpc_client $flag --connect "$(host_of "$4"):$5" --conns "$CONNS" --requests "$n" \
    --protocol "$1" --size "$2" --path /1k --rate "$3" --idle "$IDLE" |
    python3 -c "import json, sys; print(json.load(sys.stdin)['requests'])"
}
load_echo() { load_rpc echo 64 0 "$@"; }

# run APP STACK PORT LABEL LOAD...: one measured case.
run() {
  local app=$1 stack=$2 port=$3 label=$4; shift 4
  "start_$app" "$stack" "$port"
  measure "$label" "$APP_PID" "$@" "$stack" "$port"
  stop_app
}
# pair NAME APP PROTOCOL SIZE PORT: the application's standard load at full
# speed on both stacks, then the libtoe generator on both at SAME_LOAD
# (default 0.8) of the offload's full-speed rate: CPU per operation at the
# same load, where neither side is saturated.
pair() {
  local name=$1 app=$2 proto=$3 size=$4 port=$5 rate
  run "$app" linux "$port" "$name, Linux" "load_$app"
  run "$app" toe $((port + 1)) "$name, offload" "load_$app"
  rate=$(tail -1 "$dir/results" | awk -v f="${SAME_LOAD:-0.8}" '{for (i = 2; i <= NF; i++) if ($i == "op/s") print int($(i - 1) * f)}')
  run "$app" linux $((port + 2)) "$name @ $rate/s, Linux" load_rpc "$proto" "$size" "$rate"
  run "$app" toe $((port + 3)) "$name @ $rate/s, offload" load_rpc "$proto" "$size" "$rate"
}

echo "command: GEN=$GEN IDLE=$IDLE $0 $RUN_S $CONNS  (core 0: service + load; core 1: the application)"
# APPS selects the pairs (default all three). The example echo server runs
# a thread per connection: with IDLE it shows what a thousand blocked
# threads cost each request (libtoe's wake-ups).
APPS=${APPS:-memcached nginx echo}
for app in $APPS; do
  case $app in
    memcached) pair memcached memcached memcached 100 21211 ;;
    nginx) pair nginx nginx http 0 28080 ;;
    echo) pair "libtoe RPC echo" echo echo 64 27001 ;;
    *) echo "unknown app in APPS: $app (memcached, nginx, echo)" >&2; exit 1 ;;
  esac
done

python3 - "$dir/results" <<'EOF'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(.+?), (Linux|offload)\s+(\d+) op/s\s+app CPU\s+([\d.]+) us/op\s+core 1\s+([\d.]+)", line)
    if m:
        rows.setdefault(m.group(1), {})["linux" if m.group(2) == "Linux" else "toe"] = tuple(map(float, m.group(3, 4, 5)))
print("== offload / Linux (ratios: throughput, app CPU per op, core 1 per op)")
for app, r in rows.items():
    if "linux" in r and "toe" in r:
        (lt, la, lc), (tt, ta, tc) = r["linux"], r["toe"]
        print(f"{app:30} throughput {tt/lt:5.2f}x  app CPU/op {ta/la:5.2f}x  core 1/op {tc/lc:5.2f}x")
EOF
