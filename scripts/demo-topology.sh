#!/usr/bin/env bash
# The demo's Linux side: moves the TAP interface that the DPDK net_tap port
# created (vdev `net_tap0,iface=ftoe0` in the default configuration) into
# the network namespace `ftoe-peer` as 198.18.0.1/24, with IPv6 and the
# interface offloads off, so the kernel there is the offload engine's peer
# (the engine is 198.18.0.2).
#
#   ./scripts/demo-topology.sh up     # after `flextoe-dpu run` printed "ready:"
#   ./scripts/demo-topology.sh down   # deletes the namespace
#   ./scripts/demo-topology.sh veth   # before the service, for net_af_packet /
#                                     # net_af_xdp: a veth pair, ${iface}s here
#                                     # for the PMD, $iface in the namespace
#
# Run `up` only once the service is ready: net_tap opens its queues on the
# interface by name while the port starts, and a TAP moved away before that
# is not the one the port reads. Environment: FLEXTOE_IFACE (ftoe0),
# FLEXTOE_NS (ftoe-peer), FLEXTOE_PEER_CIDR (198.18.0.1/24). Needs root.
set -euo pipefail
iface="${FLEXTOE_IFACE:-ftoe0}"
ns="${FLEXTOE_NS:-ftoe-peer}"
cidr="${FLEXTOE_PEER_CIDR:-198.18.0.1/24}"

die() { echo "demo-topology: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and moving a TAP interface)"

case "${1:-}" in
veth)
    ip netns list | grep -qw "^$ns" || ip netns add "$ns"
    ip link del "${iface}s" 2>/dev/null || true
    ip link add "${iface}s" type veth peer name "$iface" netns "$ns"
    sysctl -q -w "net.ipv6.conf.${iface}s.disable_ipv6=1" || true
    ethtool -K "${iface}s" tso off gso off gro off tx off >/dev/null 2>&1 || true
    ip link set dev "${iface}s" up
    echo "demo-topology: veth ${iface}s (for the service) <-> $iface (namespace $ns)"
    ;;
up)
    if ! ip netns exec "$ns" ip link show "$iface" >/dev/null 2>&1; then
        ip link show "$iface" >/dev/null 2>&1 \
            || die "no interface $iface: start the service first (./scripts/run.sh, or flextoe-dpu run with the dpdk backend)"
        ip netns list | grep -qw "^$ns" || ip netns add "$ns"
        ip link set dev "$iface" netns "$ns"
    fi
    ip netns exec "$ns" sysctl -q -w "net.ipv6.conf.$iface.disable_ipv6=1" || true
    if command -v ethtool >/dev/null 2>&1; then
        # Whatever the TAP lets us change; the rest is fixed off already.
        ip netns exec "$ns" ethtool -K "$iface" tso off gso off gro off tx off >/dev/null 2>&1 || true
    fi
    ip netns exec "$ns" ip addr replace "$cidr" dev "$iface"
    ip netns exec "$ns" ip link set dev "$iface" up
    ip netns exec "$ns" ip link set dev lo up
    echo "demo-topology: $iface is ${cidr} in namespace $ns (engine at 198.18.0.2)"
    ;;
down)
    if ip netns list | grep -qw "^$ns"; then
        ip netns del "$ns"
        echo "demo-topology: namespace $ns deleted"
    fi
    ip link del "${iface}s" 2>/dev/null || true
    ;;
*)
    echo "usage: $0 up|down|veth" >&2
    exit 2
    ;;
esac
