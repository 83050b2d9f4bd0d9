# Sourced by the benchmark scripts (the port counterpart of
# loopback_service.sh): two fresh network namespaces joined by two veth
# pairs, the "network" where load generators run on Linux TCP and the
# "host" where the service's port and the Linux applications are.
#
#   $GEN_NS:  198.18.4.1 (gen-port), 198.18.5.1 (gen-linux)
#   $HOST_NS: the service, 198.18.4.2 (IP), net_af_packet on host-port;
#             Linux applications on 198.18.5.2 (LINUX_IP, host-linux)
#
# Nothing is in the root namespace, so no frame can leave the machine.
# The service's veth pair has its offloads off (af_packet hands the
# service whole frames, at most one MTU each); the Linux pair keeps
# Linux's defaults. Run the service and Linux applications with
# `$IN_HOST` (ip netns exec), offloaded applications as usual (they reach
# the service through its control socket, a file). Expects BIN; sets
# `dir`, `pids`, `IP`, `LINUX_IP`, `GEN_NS`, `HOST_NS`, `IN_HOST` and
# exports FLEXTOE_CONTROL. SERVICE_TWEAK and SERVICE_LAUNCH as in
# loopback_service.sh. Root; needs ip and ethtool.
[ "$(id -u)" -eq 0 ] || { echo "port_service: needs root (namespaces, DPDK)" >&2; exit 1; }
for t in ip ethtool; do
  command -v $t >/dev/null || { echo "port_service: $t not installed (scripts/setup.sh)" >&2; exit 1; }
done
dir=$(mktemp -d /tmp/ftoe-bench.XXXXXX)
pids=()
GEN_NS="ftoe-gen-$$"
HOST_NS="ftoe-host-$$"
IN_HOST="ip netns exec $HOST_NS"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if declare -F extra_cleanup >/dev/null; then extra_cleanup; fi
  # Deleting a namespace deletes its veth ends, and with them their peers.
  ip netns del "$GEN_NS" 2>/dev/null || true
  ip netns del "$HOST_NS" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

ip netns add "$GEN_NS"
ip netns add "$HOST_NS"
for ns in "$GEN_NS" "$HOST_NS"; do
  ip netns exec "$ns" ip link set dev lo up
  ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$GEN_NS" link add gen-port type veth peer name host-port netns "$HOST_NS"
ip -n "$GEN_NS" link add gen-linux type veth peer name host-linux netns "$HOST_NS"
ip netns exec "$GEN_NS" ethtool -K gen-port tso off gso off gro off tx off >/dev/null
ip netns exec "$HOST_NS" ethtool -K host-port tso off gso off gro off tx off >/dev/null
ip -n "$GEN_NS" addr add 198.18.4.1/24 dev gen-port
ip -n "$GEN_NS" addr add 198.18.5.1/24 dev gen-linux
ip -n "$HOST_NS" addr add 198.18.5.2/24 dev host-linux
for i in gen-port gen-linux; do ip -n "$GEN_NS" link set dev $i up; done
for i in host-port host-linux; do ip -n "$HOST_NS" link set dev $i up; done
LINUX_IP=198.18.5.2

# shellcheck source=scripts/bench/service_config.sh
source "$(dirname "${BASH_SOURCE[0]}")/service_config.sh"
write_service_config "
c['identity']['ipv4'] = '198.18.4.2'
c['port']['backend'] = 'dpdk'
c['port']['dpdk']['vdevs'] = ['net_af_packet0,iface=host-port,qpairs=1,blocksz=4096,framesz=2048,framecnt=4096']
c['port']['dpdk']['no_huge'] = True
c['port']['dpdk']['eal_args'] = ['--no-pci', '--no-telemetry']
"
# shellcheck disable=SC2086 # IN_HOST and SERVICE_LAUNCH are command prefixes
$IN_HOST ${SERVICE_LAUNCH:-} $BIN/flextoe-dpu run --config "$dir/config.json" --stats-interval 0 >"$dir/service.log" 2>&1 &
svc_pid=$!
pids+=($svc_pid)
for _ in $(seq 300); do
  grep -q "ready:" "$dir/service.log" 2>/dev/null && break
  kill -0 $svc_pid 2>/dev/null || break
  sleep 0.1
done
grep -q "ready:" "$dir/service.log" || { echo "port_service: the service did not start:" >&2; cat "$dir/service.log" >&2; exit 1; }
export FLEXTOE_CONTROL="$dir/control.sock"
IP=198.18.4.2
for a in "$IP" "$LINUX_IP"; do
  ip netns exec "$GEN_NS" ping -c 1 -W 2 "$a" >/dev/null || { echo "port_service: $a does not answer ping" >&2; exit 1; }
done
