# Sourced by the benchmark scripts (the port counterpart of
# loopback_service.sh): starts `flextoe-dpu` on a DPDK net_af_packet port
# over a veth pair whose other end is in a fresh network namespace, the
# "network" where load generators run on Linux TCP. A second veth pair
# joins the same namespace to the root namespace, where applications on
# Linux TCP listen, so both stacks are reached from the same place.
#
#   namespace $GEN_NS: 198.18.4.1 (to the service), 198.18.5.1 (to Linux)
#   service:           198.18.4.2 (IP), net_af_packet on $port_if
#   root namespace:    198.18.5.2 (LINUX_IP), offloads as Linux defaults
#
# The service's veth has its offloads off (af_packet hands the service
# whole frames, at most one MTU each). Expects BIN; sets `dir`, `pids`,
# `IP`, `LINUX_IP`, `GEN_NS` and exports FLEXTOE_CONTROL. SERVICE_TWEAK and
# SERVICE_LAUNCH as in loopback_service.sh. Root.
[ "$(id -u)" -eq 0 ] || { echo "port_service: needs root (namespaces, DPDK)" >&2; exit 1; }
dir=$(mktemp -d /tmp/ftoe-bench.XXXXXX)
pids=()
tag=$$
GEN_NS="ftoe-gen-$tag"
port_if="ftgs${tag: -5}"
linux_if="ftgl${tag: -5}"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if declare -F extra_cleanup >/dev/null; then extra_cleanup; fi
  ip netns del "$GEN_NS" 2>/dev/null || true
  ip link del "$port_if" 2>/dev/null || true
  ip link del "$linux_if" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

ip netns add "$GEN_NS"
ip netns exec "$GEN_NS" ip link set dev lo up
ip link add "$port_if" type veth peer name gen-port netns "$GEN_NS"
ip link add "$linux_if" type veth peer name gen-linux netns "$GEN_NS"
sysctl -q -w "net.ipv6.conf.$port_if.disable_ipv6=1" "net.ipv6.conf.$linux_if.disable_ipv6=1"
ethtool -K "$port_if" tso off gso off gro off tx off >/dev/null 2>&1 || true
ip netns exec "$GEN_NS" ethtool -K gen-port tso off gso off gro off tx off >/dev/null 2>&1 || true
ip link set dev "$port_if" up
ip addr add 198.18.5.2/24 dev "$linux_if"
ip link set dev "$linux_if" up
ip netns exec "$GEN_NS" ip addr add 198.18.4.1/24 dev gen-port
ip netns exec "$GEN_NS" ip addr add 198.18.5.1/24 dev gen-linux
ip netns exec "$GEN_NS" ip link set dev gen-port up
ip netns exec "$GEN_NS" ip link set dev gen-linux up
LINUX_IP=198.18.5.2

$BIN/flextoe-dpu default-config | python3 -c "
import json, sys
c = json.load(sys.stdin)
c['identity']['ipv4'] = '198.18.4.2'
c['port']['backend'] = 'dpdk'
c['port']['dpdk']['vdevs'] = ['net_af_packet0,iface=$port_if,qpairs=1,blocksz=4096,framesz=2048,framecnt=4096']
c['port']['dpdk']['no_huge'] = True
c['port']['dpdk']['eal_args'] = ['--no-pci', '--no-telemetry']
c['host']['control_socket'] = '$dir/control.sock'
c['metrics']['enabled'] = False
if '${DMA_LATENCY_NS:-}':
    c['host']['dma_latency_ns'] = int('${DMA_LATENCY_NS:-0}')
exec('''${SERVICE_TWEAK:-}''')
json.dump(c, open('$dir/config.json', 'w'))"
# shellcheck disable=SC2086 # SERVICE_LAUNCH is a command prefix
${SERVICE_LAUNCH:-} $BIN/flextoe-dpu run --config "$dir/config.json" --stats-interval 0 >"$dir/service.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q "ready:" "$dir/service.log" 2>/dev/null && break; sleep 0.1; done
grep -q "ready:" "$dir/service.log" || { cat "$dir/service.log" >&2; exit 1; }
export FLEXTOE_CONTROL="$dir/control.sock"
IP=198.18.4.2
ip netns exec "$GEN_NS" ping -c 1 -W 2 "$IP" >/dev/null || { echo "port_service: the service does not answer ping" >&2; exit 1; }
ip netns exec "$GEN_NS" ping -c 1 -W 2 "$LINUX_IP" >/dev/null
