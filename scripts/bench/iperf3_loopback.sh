#!/usr/bin/env bash
# iperf3, one stream, both ends unmodified under flextoe-run on the loopback
# service, against the same iperf3 on Linux loopback TCP in one run
# (issue 13's benchmark): Linux with MTU 1500 and TSO/GSO/GRO off (1448-byte
# segments), and Linux with its default offloads (64 KiB segments, as the
# loopback service sends since 2026-12-07).
# Alternates the three, ROUNDS times, and prints Mbit/s per round and the
# median ratios. Needs root (a network namespace for the Linux runs).
#
# Usage: sudo scripts/bench/iperf3_loopback.sh [SECONDS] [ROUNDS]
# BIN=DIR: the flextoe-dpu, flextoe-run and libtoe_preload.so of another
# build (A/B runs; nothing is built then).
# FRONT_YIELD_EVERY: the service's `host.front_yield_every` (default 1 here:
# the service shares the 2 CPUs with both iperf3 processes; 64 is the
# service's default).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${2:-3}
[ "$(id -u)" -eq 0 ] || { echo "iperf3_loopback.sh: needs root (network namespaces)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "iperf3_loopback.sh: iperf3 is not installed (scripts/setup.sh)" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p dpu-datapath --bin flextoe-dpu
  cargo build --release -q -p toe-preload
  BIN=target/release
fi
ns="ftoe-iperf-$$"
# (Older builds, BIN=, do not know the field.)
export SERVICE_TWEAK="
if 'front_yield_every' in c['host']: c['host']['front_yield_every'] = ${FRONT_YIELD_EVERY:-1}"
extra_cleanup() { ip netns del "$ns" 2>/dev/null || true; }
# The service on the loopback backend: dir, pids, IP, FLEXTOE_CONTROL.
source scripts/bench/loopback_service.sh
RUN=("$BIN/flextoe-run" --control "$dir/control.sock" --)

# Linux: loopback in a namespace of its own, offloads switched per run.
ip netns add "$ns"
ip -n "$ns" link set lo up
lo_offloads() { ip netns exec "$ns" ethtool -K lo tso "$1" gso "$1" gro "$1" >/dev/null 2>&1 || true; }

# One iperf3 client run: its received Mbit/s (the server prints nothing).
mbits() { python3 -c "import json,sys; print(round(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6))"; }

offload() {
  local port=$((5201 + RANDOM % 1000))
  "${RUN[@]}" iperf3 -s -4 -p "$port" >/dev/null 2>&1 &
  local srv=$!
  # The server is up once a connection to it succeeds.
  for _ in $(seq 100); do
    "${RUN[@]}" python3 -c "import socket; socket.create_connection(('$IP', $port), 1).close()" 2>/dev/null && break
    sleep 0.1
  done
  # (iperf3 -s ignores the probe's bare connection.)
  "${RUN[@]}" iperf3 -4 -c "$IP" -p "$port" -t "$SECS" -J | mbits
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
}

linux() {
  local port=$((6201 + RANDOM % 1000))
  ip netns exec "$ns" iperf3 -s -4 -p "$port" >/dev/null 2>&1 &
  local srv=$!
  for _ in $(seq 100); do
    ip netns exec "$ns" python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" 2>/dev/null && break
    sleep 0.1
  done
  ip netns exec "$ns" iperf3 -4 -c 127.0.0.1 -p "$port" -t "$SECS" -J | mbits
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
}

printf '%-6s %22s %26s %26s\n' round "offload (Mbit/s)" "Linux MTU 1500, no TSO/GSO/GRO" "Linux, default offloads"
off=() slow=() fast=()
for r in $(seq "$ROUNDS"); do
  o=$(offload)
  ip -n "$ns" link set lo mtu 1500; lo_offloads off
  s=$(linux)
  ip -n "$ns" link set lo mtu 65536; lo_offloads on
  f=$(linux)
  off+=("$o"); slow+=("$s"); fast+=("$f")
  printf '%-6s %22s %26s %26s\n' "$r" "$o" "$s" "$f"
done
python3 - "${off[*]}" "${slow[*]}" "${fast[*]}" <<'EOF'
import statistics, sys
o, s, f = ([float(x) for x in a.split()] for a in sys.argv[1:4])
mo, ms, mf = statistics.median(o), statistics.median(s), statistics.median(f)
print(f"median: offload {mo:.0f}, Linux no offloads {ms:.0f} ({mo/ms:.2f}x), Linux default {mf:.0f} ({mo/mf:.2f}x)")
EOF
