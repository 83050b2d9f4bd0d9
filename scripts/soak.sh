#!/usr/bin/env bash
# Soak test: the service on its DPDK port with a Linux peer, under mixed
# traffic for a given time, with faults; reports memory, connections, drops
# and errors over time, and fails if anything was lost or leaked.
#
#   sudo ./scripts/soak.sh [--minutes 30] [--interval 10] [--loss 0.002]
#                          [--port tap|af_packet] [--out FILE]
#
# Traffic (each a loop of scripts/peer.py runs in the peer namespace, every
# run checking its own data): bulk echo (64 MiB, SHA-256), RPC (64 B round
# trips), churn (sequential connect/echo/close), 100 concurrent echo
# connections, and transfers aborted with RST. Faults: the port's impairment
# layer drops `--loss` of the frames each way.
#
# Every `--interval` seconds one row: elapsed time, the service's RSS,
# flows, application connections, handshakes, TIME-WAIT entries, drops and
# retransmissions so far, and the runs of each workload (passed/failed).
# At the end the traffic stops, the tables must drain to empty, the service
# stops cleanly, and the script exits 1 if any run failed, a table did not
# drain, or the RSS grew by more than 8 MiB from its first sample.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

minutes=30 interval=10 loss=0.002 port=tap out=""
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes="$2"; shift ;;
    --interval) interval="$2"; shift ;;
    --loss) loss="$2"; shift ;;
    --port) port="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "soak.sh: unknown argument $1 (see the header for usage)" >&2; exit 2 ;;
    esac
    shift
done
case "$port" in tap | af_packet) ;; *) echo "soak.sh: --port takes tap or af_packet (got '$port')" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "soak.sh: needs root (DPDK TAP/veth and a network namespace)" >&2; exit 1; }

FLEXTOE_SKIP_FUZZ_TOOLS=1 ./scripts/setup.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet -p dpu-datapath --bin flextoe-dpu

ns=ftoe-peer
work="$(mktemp -d /tmp/flextoe-soak.XXXXXX)"
svc=""
loops=()
cleanup() {
    set +e
    [ -d "$work" ] && touch "$work/stop"
    for p in "${loops[@]}"; do kill "$p" 2>/dev/null; done
    if [ -n "$svc" ] && kill -0 "$svc" 2>/dev/null; then
        kill -INT "$svc"
        wait "$svc"
    fi
    ./scripts/demo-topology.sh down >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

./scripts/demo-topology.sh down >/dev/null 2>&1 || true
vdev="net_tap0,iface=ftoe0"
if [ "$port" = af_packet ]; then
    ./scripts/demo-topology.sh veth >/dev/null
    vdev="net_af_packet0,iface=ftoe0s,qpairs=1,blocksz=4096,framesz=2048,framecnt=4096"
fi
cat >"$work/config.json" <<EOF
{
  "port": {
    "backend": "dpdk",
    "dpdk": {"vdevs": ["$vdev"]},
    "impairment": {"seed": 7, "rx": {"drop": $loss}, "tx": {"drop": $loss}}
  },
  "tcp": {"time_wait_ms": 1000}
}
EOF
./target/release/flextoe-dpu run --config "$work/config.json" --control "$work/control.sock" \
    --stats-json "$work/stats.json" >"$work/service.log" 2>"$work/service.err" &
svc=$!
for _ in $(seq 300); do
    grep -q "ready:" "$work/service.log" 2>/dev/null && break
    kill -0 "$svc" 2>/dev/null || { cat "$work/service.err" >&2; exit 1; }
    sleep 0.1
done
grep -q "ready:" "$work/service.log" || { echo "soak.sh: the service did not become ready" >&2; exit 1; }
./scripts/demo-topology.sh up >/dev/null
# The engine's MAC (the default identity) is pinned in the peer, so a lost
# ARP exchange under loss cannot stall a run for the neighbour timeout.
ip netns exec "$ns" ip neigh replace 198.18.0.2 lladdr 02:00:c6:12:00:02 dev ftoe0 nud permanent

# One workload: peer.py runs in a loop until the stop file exists; each
# run's JSON line goes to its log, a failed run's to its .failed log.
workload() {
    local name="$1"
    shift
    while [ ! -e "$work/stop" ]; do
        if out="$(timeout 300 ip netns exec "$ns" python3 scripts/peer.py --timeout 60 "$@" 2>&1)"; then
            echo "$out" | tail -n 1 >>"$work/$name.ok"
        else
            printf '%s %s\n' "$(date +%T)" "$(echo "$out" | tail -n 3 | tr '\n' ' ')" >>"$work/$name.failed"
        fi
    done
}
workload bulk echo --bytes $((64 << 20)) &
loops+=($!)
workload rpc rpc --count 20000 &
loops+=($!)
workload churn sequential --count 2000 --bytes 64 &
loops+=($!)
workload concurrent concurrent --conns 100 --bytes 16384 &
loops+=($!)
workload rst rst --count 5 --bytes $((1 << 20)) &
loops+=($!)
workloads="bulk rpc churn concurrent rst"

count() { [ -e "$1" ] && wc -l <"$1" || echo 0; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$svc/status"; }
stat_json() { ./target/release/flextoe-dpu stat --control "$work/control.sock" --json -c 1 2>/dev/null | tail -n 1; }
field() { python3 -c "
import json, sys
d = json.loads(sys.argv[1] or '{}')
for k in sys.argv[2].split('.'):
    d = d.get(k, {}) if isinstance(d, dict) else {}
print(d if isinstance(d, (int, float)) else 0)" "$1" "$2"; }

header="| min | RSS MiB | flows | app conns | handshakes | TIME-WAIT | drops | retransmits |"
sep="| --- | --- | --- | --- | --- | --- | --- | --- |"
for w in $workloads; do header="$header $w ok/failed |"; sep="$sep --- |"; done
{ echo "$header"; echo "$sep"; } | tee "$work/table.md"
start=$(date +%s)
end=$((start + minutes * 60))
rss0=""
rss_max=0
while :; do
    now=$(date +%s)
    s="$(stat_json)"
    rss=$(rss_kib)
    [ -z "$rss0" ] && rss0=$rss
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    row="| $(((now - start) / 60)):$(printf %02d $(((now - start) % 60))) | $((rss / 1024)) | $(field "$s" flows) | $(field "$s" app_conns) | $(field "$s" handshakes) | $(field "$s" time_wait) | $(field "$s" engine.drops_total) | $(field "$s" engine.retransmit_segments) |"
    for w in $workloads; do row="$row $(count "$work/$w.ok")/$(count "$work/$w.failed") |"; done
    echo "$row" | tee -a "$work/table.md"
    [ "$now" -ge "$end" ] && break
    sleep "$interval"
done

# Stop the traffic, let every run finish, then the tables must drain.
touch "$work/stop"
for p in "${loops[@]}"; do wait "$p" 2>/dev/null || true; done
loops=()
drained=0
for _ in $(seq 300); do
    s="$(stat_json)"
    if [ "$(field "$s" flows)" = 0 ] && [ "$(field "$s" app_conns)" = 0 ] \
        && [ "$(field "$s" handshakes)" = 0 ] && [ "$(field "$s" time_wait)" = 0 ]; then
        drained=1
        break
    fi
    sleep 0.1
done
rss_end=$(rss_kib)
kill -INT "$svc"
wait "$svc" && clean=1 || clean=0
svc=""
failed=0
summary="soak: ${minutes} min on $port, loss $loss each way;"
for w in $workloads; do
    summary="$summary $w $(count "$work/$w.ok") ok / $(count "$work/$w.failed") failed;"
    failed=$((failed + $(count "$work/$w.failed")))
done
summary="$summary RSS $((rss0 / 1024)) MiB first, $((rss_max / 1024)) MiB max, $((rss_end / 1024)) MiB after the traffic; tables drained: $([ $drained = 1 ] && echo yes || echo NO); service stopped cleanly: $([ $clean = 1 ] && echo yes || echo NO)"
echo
echo "$summary" | tee -a "$work/table.md"
python3 -c "
import json
s = json.load(open('$work/stats.json'))
e = s['engine']
print('drops by reason:', {k: v for k, v in e['drops'].items() if v})
print('retransmits:', e['retransmit_segments'], '(fast', e['fast_retransmits'], ', timeout', e['timeout_retransmits'], ')')
print('impairment dropped:', s.get('impairment'))
print('port:', s['port'])" | tee -a "$work/table.md"
for w in $workloads; do
    [ -e "$work/$w.failed" ] && { echo "first failures of $w:"; head -n 3 "$work/$w.failed"; }
done
[ -n "$out" ] && cp "$work/table.md" "$out"
if [ "$failed" -gt 0 ] || [ "$drained" != 1 ] || [ "$clean" != 1 ] || [ "$rss_end" -gt $((rss0 + 8192)) ]; then
    echo "soak: FAILED (logs in $work)" >&2
    exit 1
fi
rm -rf "$work"
echo "soak: passed"
