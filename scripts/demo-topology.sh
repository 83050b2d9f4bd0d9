#!/usr/bin/env bash
# The demo's Linux side: moves the TAP interface that the DPDK net_tap port
# created (vdev `net_tap0,iface=ftoe0` in the default configuration) into
# the network namespace `ftoe-peer` as 198.18.0.1/24, with IPv6 and the
# interface offloads off, so the kernel there is the offload engine's peer
# (the engine is 198.18.0.2).
#
#   ./scripts/demo-topology.sh up     # after `flextoe-dpu run` printed "ready:"
#   ./scripts/demo-topology.sh down   # deletes the namespace
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
up)
    if ip netns exec "$ns" ip link show "$iface" >/dev/null 2>&1; then
        echo "demo-topology: $iface is already in namespace $ns"
        exit 0
    fi
    ip link show "$iface" >/dev/null 2>&1 \
        || die "no interface $iface: start the service first (./scripts/run.sh, or flextoe-dpu run with the dpdk backend)"
    ip netns list | grep -qw "^$ns" || ip netns add "$ns"
    ip link set dev "$iface" netns "$ns"
    ip netns exec "$ns" sysctl -q -w "net.ipv6.conf.$iface.disable_ipv6=1" || true
    if command -v ethtool >/dev/null 2>&1; then
        # Whatever the TAP lets us change; the rest is fixed off already.
        ip netns exec "$ns" ethtool -K "$iface" tso off gso off gro off tx off >/dev/null 2>&1 || true
    fi
    ip netns exec "$ns" ip addr add "$cidr" dev "$iface"
    ip netns exec "$ns" ip link set dev "$iface" up
    ip netns exec "$ns" ip link set dev lo up
    echo "demo-topology: $iface is ${cidr} in namespace $ns (engine at 198.18.0.2)"
    ;;
down)
    if ip netns list | grep -qw "^$ns"; then
        ip netns del "$ns"
        echo "demo-topology: namespace $ns deleted"
    fi
    ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
