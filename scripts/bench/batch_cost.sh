#!/usr/bin/env bash
# What toe_submit saves: one C client (host-shim/tests/c/echo.c, "many")
# moves BYTES on CONNS connections through the loopback service to a C echo
# server, CHUNK bytes per send, every round's sends and receives in one
# toe_submit batch, against the same client with one toe_submit per
# operation (what separate toe_send/toe_recv calls cost: a lock, a poll of
# the events, a push and a doorbell check each). Alternates ROUNDS times and
# prints the client's CPU (user + system) per operation that moved data
# (the client never waits: it polls until the echo is back, so its CPU is
# also its running time, and the figure is the cost of a round trip's
# share of work, polling included).
#
# Usage: scripts/bench/batch_cost.sh [CONNS] [BYTES] [CHUNK] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${1:-16}
BYTES=${2:-262144}
CHUNK=${3:-64}
ROUNDS=${4:-3}
cargo build --release -q -p dpu-datapath --bin flextoe-dpu
cargo build --release -q -p host-shim
BIN=target/release
source scripts/bench/loopback_service.sh
cc -std=c11 -O2 -I host-shim/include host-shim/tests/c/echo.c "$BIN/libtoe.a" \
  -lpthread -ldl -lm -o "$dir/echo"
"$dir/echo" server 7400 2>"$dir/server.log" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$dir/server.log" 2>/dev/null && break; sleep 0.1; done
# Prints "NS_IN_CALLS OPS BATCHES MOVED" of one client run.
client() {
  python3 - "$dir/echo" "$IP" "$CONNS" "$BYTES" "$CHUNK" "$1" <<'EOF'
import re, subprocess, sys
echo, ip, conns, size, chunk, mode = sys.argv[1:]
out = subprocess.run([echo, "many", ip, "7400", conns, size, chunk, mode],
                     check=True, capture_output=True, text=True).stdout
m = re.search(r"in (\d+) batches of (\d+) ops, (\d+) moved data, (\d+) ns", out)
print(m.group(4), m.group(2), m.group(1), m.group(3))
EOF
}
for r in $(seq "$ROUNDS"); do
  read -r b_ns b_ops b_batches _ <<<"$(client batch)"
  read -r s_ns s_ops _ _ <<<"$(client single)"
  python3 -c "
b, s = $b_ns / $b_ops, $s_ns / $s_ops
print(f'round $r: batched {b:.0f} ns per operation ({$b_ops / $b_batches:.1f} per toe_submit), '
      f'one per call {s:.0f} ns: {b / s:.2f}x')"
done
