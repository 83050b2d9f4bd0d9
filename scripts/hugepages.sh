#!/usr/bin/env bash
# Makes 2 MiB hugepages available to DPDK: reserves at least N pages
# (default 128 = 256 MiB; never lowers an existing reservation) and mounts
# hugetlbfs at /dev/hugepages when no hugetlbfs is mounted. Idempotent.
# Root. Needed by net_af_xdp (port.dpdk.no_huge = false), optional otherwise.
#
#   scripts/hugepages.sh [N]
set -euo pipefail
want="${1:-128}"
[ "$(id -u)" -eq 0 ] || { echo "hugepages: needs root" >&2; exit 1; }
nr=/proc/sys/vm/nr_hugepages
have="$(cat "$nr")"
if [ "$have" -lt "$want" ]; then
    echo "$want" >"$nr"
    have="$(cat "$nr")"
    if [ "$have" -lt "$want" ]; then
        echo "hugepages: asked for $want 2 MiB pages, the kernel gave $have (memory fragmented?)" >&2
        exit 1
    fi
fi
if ! grep -q " hugetlbfs " /proc/mounts; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages
fi
free="$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)"
echo "hugepages: $have reserved, $free free, mounted at $(awk '$3 == "hugetlbfs" {print $2; exit}' /proc/mounts)"
