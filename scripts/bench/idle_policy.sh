#!/usr/bin/env bash
# Idle workers on a machine with fewer CPUs than worker threads
# (`topology.idle.when_oversubscribed_park`): the loopback service in
# three placements (run to completion: 1 worker; split: pre | owner | post
# | dma, 4 workers; one replica with two owners: 5 workers), each with the
# policy on (the default) and off, in one run. Per case: one-connection
# bulk goodput (libtoe bulk_send -> bulk_recv through the service) and
# 64 B echo latency over one connection (rpc_client -> echo_server).
#
# Usage: scripts/bench/idle_policy.sh [BULK_MIB] [REQUESTS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-512}
REQUESTS=${2:-3000}
ROUNDS=${3:-2}
cargo build --release -q -p dpu-datapath --bin flextoe-dpu -p host-shim --examples
BIN=target/release
EX=$BIN/examples
export BIN EX MIB REQUESTS

# One service, one case: prints "placement policy gbps p50 p99".
case_run() {
  local placement=$1 park=$2
  SERVICE_TWEAK="
t = c['topology']
t.update(replicas=1, flow_groups=8, auto=False)
if '$placement' == 'rtc': t.update(run_to_completion=True)
if '$placement' == 'split': t.update(run_to_completion=False)
if '$placement' == 'two-owners': t.update(run_to_completion=False, proto_workers=2)
t['idle']['when_oversubscribed_park'] = ('$park' == 'on')
" bash -c '
    set -euo pipefail
    source scripts/bench/loopback_service.sh
    $EX/bulk_recv --listen 0.0.0.0:7500 >"$dir/recv.json" 2>"$dir/recv.log" &
    pids+=($!)
    $EX/echo_server --listen 0.0.0.0:7501 >"$dir/echo.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do grep -q listening "$dir/echo.log" && grep -q listening "$dir/recv.log" && break; sleep 0.1; done
    bulk=$($EX/bulk_send --connect "$IP:7500" --mib "$MIB")
    rpc=$($EX/rpc_client --connect "$IP:7501" --conns 1 --requests "$REQUESTS" --size 64)
    python3 -c "
import json, sys
b, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(sys.argv[3], sys.argv[4], round(b[\"gbps\"], 2), round(r[\"p50_us\"], 1), round(r[\"p99_us\"], 1))
" "$bulk" "$rpc" "$0" "$1"
  ' "$placement" "$park"
}

echo "== loopback service, host apps on libtoe: $MIB MiB bulk, $REQUESTS x 64 B echo; $(nproc) CPUs"
echo "| placement | when_oversubscribed_park | goodput Gbit/s | echo p50 µs | echo p99 µs |"
echo "| --- | --- | --- | --- | --- |"
for _ in $(seq "$ROUNDS"); do
  for placement in rtc split two-owners; do
    for park in on off; do
      case_run "$placement" "$park" | awk '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}'
    done
  done
done
