#!/usr/bin/env bash
# What sharing offloaded sockets across fork() costs: a program holding a
# listener and a connected pair forks N children that exit at once, timed
# per fork + exit + waitpid, on Linux loopback TCP and under flextoe-run on
# the loopback service, alternating ROUNDS times in one run. Under
# flextoe-run each fork takes a ticket (one round trip to the service) and
# each child joins (a registration) and leaves. MODE=exec: each child also
# execs (the sockets survive it: another ticket, and the new program's
# registration before main).
#
# Usage: [MODE=exec] scripts/bench/fork_cost.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-500}
ROUNDS=${2:-3}
cargo build --release -q -p dpu-datapath --bin flextoe-dpu
cargo build --release -q -p toe-preload
BIN=target/release
source scripts/bench/loopback_service.sh
cc -O2 -o "$dir/fork_cost" scripts/bench/fork_cost.c
MODE=${MODE:-}
what="fork+exit+wait"
[ "$MODE" = exec ] && what="fork+exec+exit+wait"
for r in $(seq "$ROUNDS"); do
  linux=$("$dir/fork_cost" 127.0.0.1 $((41000 + r)) "$N" $MODE | awk '{print $1}')
  toe=$("$BIN/flextoe-run" --control "$dir/control.sock" -- "$dir/fork_cost" "$IP" $((7000 + r)) "$N" $MODE | awk '{print $1}')
  python3 -c "print(f'round $r: Linux {float($linux):.1f} us, flextoe-run {float($toe):.1f} us per $what ({float($toe)/float($linux):.2f}x)')"
done
