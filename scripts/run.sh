#!/usr/bin/env bash
# Installs what is missing, builds, and runs the service on the embedded
# default configuration: the DPDK backend on a TAP (net_tap0, iface ftoe0)
# whose kernel side goes into the namespace `ftoe-peer` as 198.18.0.1; the
# engine is 198.18.0.2 with echo (7), discard (9) and source (19) services.
# It pings the engine once, echoes 16 MiB through it from the namespace
# (SHA-256 checked), shows stats for a few seconds, then stops and tears
# down. Needs root (TAP device, network namespace, DPDK EAL).
#
#   ./scripts/run.sh              # the demo above
#   ./scripts/run.sh --keep       # ... then keep running until Ctrl-C
#   ./scripts/run.sh --sim [ARGS] # the simulated backend (no root needed);
#                                 # same as FLEXTOE_BACKEND=sim ./scripts/run.sh
#   ./scripts/run.sh --port af_xdp     # the port on a veth pair instead of the
#   ./scripts/run.sh --port af_packet  # TAP (ftoe0s here, ftoe0 in ftoe-peer);
#                                      # af_xdp is the fastest (docs/benchmarks.md)
#                                      # and reserves 2 MiB hugepages
# Extra arguments go to `flextoe-dpu run` (e.g. --config FILE).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

backend="${FLEXTOE_BACKEND:-dpdk}"
keep=0
port=tap
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --sim) backend=sim ;;
    --keep) keep=1 ;;
    --port)
        port="${2:-}"
        shift
        case "$port" in tap | af_packet | af_xdp) ;; *)
            echo "run.sh: --port takes tap, af_packet or af_xdp (got '$port')" >&2
            exit 2
            ;;
        esac
        ;;
    *) args+=("$1") ;;
    esac
    shift
done

if [ "$backend" = sim ]; then
    FLEXTOE_SKIP_FUZZ_TOOLS=1 ./scripts/setup.sh
    export PATH="$HOME/.cargo/bin:$PATH"
    cargo build --release --quiet -p dpu-datapath --bin flextoe-dpu
    [ "${#args[@]}" -eq 0 ] && args=(--duration 10)
    exec ./target/release/flextoe-dpu run --backend sim "${args[@]}"
fi

if [ "$(id -u)" -ne 0 ]; then
    cat >&2 <<'MSG'
run.sh: the default demo needs root: DPDK creates a TAP interface (ftoe0) and
the Linux peer lives in a network namespace (ftoe-peer). Run it as root
(sudo ./scripts/run.sh), or run the simulated backend, which needs no
privileges:  ./scripts/run.sh --sim   (or FLEXTOE_BACKEND=sim ./scripts/run.sh)
MSG
    exit 1
fi

FLEXTOE_SKIP_FUZZ_TOOLS=1 ./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet -p dpu-datapath --bin flextoe-dpu -p host-shim --examples

ns=ftoe-peer
work="$(mktemp -d)"
log="$work/service.log"
svc=""
cleanup() {
    set +e
    if [ -n "$svc" ] && kill -0 "$svc" 2>/dev/null; then
        kill -INT "$svc" 2>/dev/null || true
        wait "$svc" 2>/dev/null || true
        [ "$keep" -eq 1 ] && sed -n '/--- summary/,$p' "$log"
    fi
    ./scripts/demo-topology.sh down >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A stale namespace from an interrupted run would keep the old TAP name busy.
./scripts/demo-topology.sh down >/dev/null 2>&1 || true
if [ "$port" != tap ]; then
    # The PMD opens an existing interface: the veth pair comes first.
    ./scripts/demo-topology.sh veth
    vdev="net_af_packet0,iface=ftoe0s,qpairs=1,blocksz=4096,framesz=2048,framecnt=4096" no_huge=true
    if [ "$port" = af_xdp ]; then
        ./scripts/hugepages.sh 128
        vdev="net_af_xdp0,iface=ftoe0s,start_queue=0,queue_count=1" no_huge=false
    fi
    printf '{"port": {"backend": "dpdk", "dpdk": {"vdevs": ["%s"], "no_huge": %s}}}\n' "$vdev" "$no_huge" >"$work/port.json"
    args=(--config "$work/port.json" "${args[@]}")
fi
./target/release/flextoe-dpu run --backend dpdk --control "$work/control.sock" --stats-json "$work/stats.json" "${args[@]}" >"$log" 2>"$work/service.err" &
svc=$!
for _ in $(seq 300); do
    grep -q "ready:" "$log" 2>/dev/null && break
    kill -0 "$svc" 2>/dev/null || { cat "$work/service.err" "$log" >&2; echo "run.sh: the service failed to start" >&2; exit 1; }
    sleep 0.1
done
grep -q "ready:" "$log" || { cat "$work/service.err" >&2; echo "run.sh: the service did not become ready" >&2; exit 1; }
grep "flextoe-dpu:" "$log"
./scripts/demo-topology.sh up

peer() { ip netns exec "$ns" "$@"; }
echo
echo "== ping 198.18.0.2 from $ns (Linux ARPs the engine first)"
peer ping -c 1 -W 2 198.18.0.2 | sed -n '2p;$p'
peer ip neigh show 198.18.0.2
echo
echo "== 16 MiB through the echo service (port 7), SHA-256 checked"
peer python3 scripts/peer.py echo --bytes $((16 << 20)) | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"sent {r['bytes']} bytes, got {r['received']} back in {r['seconds']} s; SHA-256 match: {r['match']}\")"
echo
echo "== a host application (libtoe echo_server, no TCP on the host) served to 4 Linux clients"
FLEXTOE_CONTROL="$work/control.sock" ./target/release/examples/echo_server --listen 0.0.0.0:7777 --exit-after 4 >/dev/null 2>&1 &
app=$!
sleep 0.5
peer ./target/release/examples/rpc_client --kernel --connect 198.18.0.2:7777 --conns 4 --requests 2000 | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"{r['requests']} RPCs of {r['size']} B from Linux in {r['secs']:.2f} s, every echo checked; p50 {r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us\")"
wait "$app" 2>/dev/null || true
./target/release/flextoe-dpu conns --control "$work/control.sock" | tail -n 1
echo
cat <<TRY
== try it yourself (in another terminal, as root):
   ip netns exec $ns ping 198.18.0.2
   ip netns exec $ns nc 198.18.0.2 7          # echo: type lines, they come back
   ip netns exec $ns nc 198.18.0.2 19 | head  # source: 1 MiB of a fixed pattern
   ip netns exec $ns python3 scripts/peer.py --help
   (curl is N/A: there is no HTTP service on the engine)
   ./target/release/flextoe-dpu stat --control $work/control.sock   (with --keep)
   FLEXTOE_CONTROL=$work/control.sock ./target/release/examples/echo_server --listen 0.0.0.0:7777
TRY
echo
if [ "$keep" -eq 1 ]; then
    echo "== running until Ctrl-C; stats every second:"
    tail -n 0 -f "$log" &
    tailer=$!
    wait "$svc" || true
    kill "$tailer" 2>/dev/null || true
else
    echo "== stats for a few seconds:"
    sleep 4
    grep '^\[' "$log" | tail -n 3
    kill -INT "$svc"
    wait "$svc" || true
    svc=""
    sed -n '/--- summary/,$p' "$log"
fi
