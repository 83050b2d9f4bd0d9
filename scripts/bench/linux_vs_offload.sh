#!/usr/bin/env bash
# One-connection goodput and 64-byte RPC latency, Linux -> FlexTOE offload
# versus Linux -> Linux, in one run, printed as a table.
#
#   offload : the flextoe-dpu service (default topology: run to
#             completion, one worker) at 198.18.2.2, once per DPDK port in
#             BENCH_PORTS (default "tap af_packet af_xdp": net_tap, and
#             net_af_packet / net_af_xdp on a veth pair, offloads off on
#             both ends); the Linux client in namespace ftoe-bench-peer.
#             goodput -> discard (port 9), download <- source (port 19,
#             BENCH_BYTES then close), RPC -> echo (port 7)
#   linux   : two namespaces joined by a veth pair, MTU 1500, Python
#             discard, echo and source servers (scripts/peer.py server).
#             Measured twice: offloads off (TSO/GSO/GRO off: MTU-sized
#             segments end to end, like the TAP path) and default offloads.
# The client is scripts/peer.py in every case (goodput: 1 MiB sendall()
# calls, then FIN, timed until the sink's FIN; download: read to EOF; RPC: 64-byte send, wait for
# 64 bytes back, TCP_NODELAY, 200 warm-up round trips not counted).
# Traffic stays in namespaces on 198.18.2.0/24 and 198.18.3.0/24. Root.
#
# "dl svc CPU": the service process's CPU time (all threads, user + system,
# from /proc) during the download, per GiB: what the data path costs the
# "DPU" for the bytes it sends (on net_tap the kernel's TAP work runs in the
# worker's thread and is part of it).
# Connections per second: sequential connect, 64 B to echo, FIN, read the
# echo to EOF, close (scripts/peer.py sequential), BENCH_CONNS of them.
# Environment: BENCH_BYTES (goodput bytes, default 1 GiB), BENCH_RPCS
# (default 20000), BENCH_CONNS (default 2000), FLEXTOE_DPU_BIN (the service
# binary, default: built here; an older build for A/B runs), BENCH_PORTS (default "tap
# af_packet af_packet-acks2 af_xdp af_xdp-acks2").
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
[ "$(id -u)" -eq 0 ] || { echo "linux_vs_offload: needs root (namespaces, TAP, DPDK)" >&2; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
bytes="${BENCH_BYTES:-$((1 << 30))}"
rpcs="${BENCH_RPCS:-20000}"
conns="${BENCH_CONNS:-2000}"
dpu_bin="${FLEXTOE_DPU_BIN:-}"
if [ -z "$dpu_bin" ]; then
    cargo build --release --quiet -p dpu-datapath --bin flextoe-dpu
    dpu_bin=./target/release/flextoe-dpu
fi

tag="$$"
tap="ftbench${tag: -4}"
ns_off="ftoe-bench-peer-$tag"
ns_a="ftoe-bench-a-$tag"
ns_b="ftoe-bench-b-$tag"
work="$(mktemp -d)"
svc=""
srv=""
cleanup() {
    set +e
    if [ -n "$srv" ]; then kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; fi
    if [ -n "$svc" ] && kill -0 "$svc" 2>/dev/null; then
        kill -INT "$svc"; wait "$svc" 2>/dev/null || true
    fi
    for ns in "$ns_off" "$ns_a" "$ns_b"; do ip netns del "$ns" 2>/dev/null || true; done
    ip link del "$svc_if" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
peer() { local ns="$1"; shift; ip netns exec "$ns" python3 scripts/peer.py "$@"; }

# ---- offload, once per port kind -----------------------------------------
# tap      : net_tap; the TAP moves into the peer namespace.
# af_packet: net_af_packet on the root-namespace end of a veth pair.
# af_xdp   : net_af_xdp on a veth end (needs hugepages: scripts/hugepages.sh).
# A "-acks2" suffix runs the same port with tcp.coalesce_acks off (an ACK
# every second segment, as before ACK coalescing), for a same-run ratio. A
# "-split" suffix runs it with the split placement (ingress, pre, dma, post,
# egress pinned to core 0; ingress reorder and the owner to core 1) instead
# of one run-to-completion worker, a "-pipelined" suffix with the pipelined
# one (ingress, pre, ingress reorder, owner on core 0; dma, post, egress on
# core 1). A "-fw" suffix loads the firewall module (dpu-datapath/xdp/
# examples/firewall.c, no rule matching the peer: five map lookups per
# frame) at the ingress hook. A "-swcsum" suffix turns the port's TX
# checksum offload off (port.dpdk.tx_checksum_offload: false), "-hwcsum"
# forces it on (true: only net_tap offers it here, and by default the
# service leaves it off there). A "-tso" suffix forces TCP segmentation
# offload on (port.dpdk.tso: true; only net_tap offers it here, in
# software, and by default the service leaves it off there), "-notso" off.
# Suffixes combine, in this order: af_packet-split-fw-acks2-swcsum-tso
# (each is stripped from the end).
ports="${BENCH_PORTS:-tap af_packet af_packet-acks2 af_xdp af_xdp-acks2}"
case " $ports " in *" af_xdp"*) scripts/hugepages.sh 128 >&2 ;; esac
svc_if="ftbs${tag: -4}"
offload_run() {
    local kind="$1" vdev no_huge=true peer_if="$tap" coalesce=true topology="" xdp="" txcsum=null tso=null
    case "$kind" in
        *-notso) tso=false; kind="${kind%-notso}" ;;
        *-tso) tso=true; kind="${kind%-tso}" ;;
    esac
    case "$kind" in
        *-swcsum) txcsum=false; kind="${kind%-swcsum}" ;;
        *-hwcsum) txcsum=true; kind="${kind%-hwcsum}" ;;
    esac
    case "$kind" in *-acks2) coalesce=false; kind="${kind%-acks2}" ;; esac
    case "$kind" in *-fw)
        kind="${kind%-fw}"
        clang -target bpf -O2 -I dpu-datapath/xdp/include -c dpu-datapath/xdp/examples/firewall.c \
            -o "$work/firewall.o"
        xdp="\"xdp\": {\"programs\": [{\"file\": \"$work/firewall.o\"}]}," ;;
    esac
    case "$kind" in *-split)
        kind="${kind%-split}"
        topology='"topology": {"run_to_completion": false, "workers": [
    {"name": "data", "core": 0, "tasks": ["r0.ingress", "r0.pre0", "r0.dma0", "r0.post0", "r0.egress"]},
    {"name": "proto", "core": 1, "tasks": ["r0.ingress_reorder", "r0.proto0"]}]},' ;;
    *-pipelined)
        kind="${kind%-pipelined}"
        topology='"topology": {"run_to_completion": false, "workers": [
    {"name": "in", "core": 0, "tasks": ["r0.ingress", "r0.pre0", "r0.ingress_reorder", "r0.proto0"]},
    {"name": "out", "core": 1, "tasks": ["r0.dma0", "r0.post0", "r0.egress"]}]},' ;;
    esac
    case "$kind" in
        tap) vdev="net_tap0,iface=$tap" ;;
        af_packet) vdev="net_af_packet0,iface=$svc_if,qpairs=1,blocksz=4096,framesz=2048,framecnt=4096" ;;
        af_xdp) vdev="net_af_xdp0,iface=$svc_if,start_queue=0,queue_count=1"; no_huge=false ;;
        *) echo "linux_vs_offload: unknown port kind $kind (tap, af_packet, af_xdp)" >&2; exit 2 ;;
    esac
    ip netns add "$ns_off"
    if [ "$kind" != tap ]; then
        peer_if="ftbp${tag: -4}"
        ip link add "$svc_if" type veth peer name "$peer_if" netns "$ns_off"
        sysctl -q -w "net.ipv6.conf.$svc_if.disable_ipv6=1"
        ethtool -K "$svc_if" tso off gso off gro off tx off >/dev/null 2>&1 || true
        ip link set dev "$svc_if" up
    fi
    cat >"$work/config.json" <<JSON
{
  "identity": {"ipv4": "198.18.2.2"},
  "port": {"backend": "dpdk",
           "dpdk": {"vdevs": ["$vdev"], "no_huge": $no_huge, "eal_args": ["--no-pci", "--no-telemetry"],
                    "tx_checksum_offload": $txcsum, "tso": $tso}},
  "tcp": {"coalesce_acks": $coalesce},
  $topology
  $xdp
  "metrics": {"enabled": false},
  "host": {"control_socket": "$work/control.sock"}
}
JSON
    rm -f "$work/service.log"
    "$dpu_bin" run --config "$work/config.json" --stats-interval 0 --source-bytes "$bytes" \
        --stats-json "$work/stats.json" >"$work/service.log" 2>"$work/service.err" &
    svc=$!
    for _ in $(seq 300); do grep -q "ready:" "$work/service.log" 2>/dev/null && break; sleep 0.1; done
    grep -q "ready:" "$work/service.log" || { cat "$work/service.err"; exit 1; }
    [ "$kind" = tap ] && ip link set dev "$tap" netns "$ns_off"
    ip netns exec "$ns_off" sysctl -q -w "net.ipv6.conf.$peer_if.disable_ipv6=1"
    ip netns exec "$ns_off" ethtool -K "$peer_if" tso off gso off gro off tx off >/dev/null 2>&1 || true
    ip netns exec "$ns_off" ip addr add 198.18.2.1/24 dev "$peer_if"
    ip netns exec "$ns_off" ip link set dev "$peer_if" up
    ip netns exec "$ns_off" ip link set dev lo up
    ip netns exec "$ns_off" ping -c 1 -W 2 198.18.2.2 >/dev/null
    echo "offload ($1): goodput ..." >&2
    local gp dl rpc cps
    gp="$(peer "$ns_off" --host 198.18.2.2 --timeout 120 goodput --port 9 --bytes "$bytes")"
    echo "offload ($1): download ..." >&2
    local cpu0 cpu1
    cpu0="$(cpu_ticks "$svc")"
    dl="$(peer "$ns_off" --host 198.18.2.2 --timeout 120 download --port 19)"
    cpu1="$(cpu_ticks "$svc")"
    # The service's CPU (every thread, user + system) per GiB downloaded.
    local dl_cpu=$(( (cpu1 - cpu0) * 1000 / $(getconf CLK_TCK) * (1 << 30) / bytes ))
    echo "offload ($1): rpc ..." >&2
    rpc="$(peer "$ns_off" --host 198.18.2.2 rpc --port 7 --count "$rpcs")"
    echo "offload ($1): connections ..." >&2
    cps="$(peer "$ns_off" --host 198.18.2.2 sequential --port 7 --count "$conns" --bytes 64)"
    kill -INT "$svc"; wait "$svc" || true; svc=""
    ip netns del "$ns_off"
    ip link del "$svc_if" 2>/dev/null || true
    results+=("$1 $(echo "$gp" | field mbit_s) $(echo "$dl" | field mbit_s) $(echo "$rpc" | field p50_us) $(echo "$rpc" | field p99_us) $(echo "$cps" | field per_second) $dl_cpu")
}
# utime + stime of a process, in clock ticks.
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
results=()
for kind in $ports; do
    offload_run "$kind"
done

# ---- Linux <-> Linux over veth ------------------------------------------
ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "va$tag" netns "$ns_a" type veth peer name "vb$tag" netns "$ns_b"
for side in "a 198.18.3.1" "b 198.18.3.2"; do
    set -- $side
    ns="ftoe-bench-$1-$tag"
    ip netns exec "$ns" sysctl -q -w "net.ipv6.conf.all.disable_ipv6=1"
    ip netns exec "$ns" ip link set dev "v$1$tag" mtu 1500 up
    ip netns exec "$ns" ip addr add "$2/24" dev "v$1$tag"
    ip netns exec "$ns" ip link set dev lo up
done
ip netns exec "$ns_b" python3 scripts/peer.py --host 198.18.3.2 server --sink-port 9 --echo-port 7 \
    --source-port 19 --source-bytes "$bytes" >/dev/null &
srv=$!
sleep 0.5
linux_run() {
    local gp dl rpc cps
    gp="$(peer "$ns_a" --host 198.18.3.2 --timeout 120 goodput --port 9 --bytes "$bytes")"
    dl="$(peer "$ns_a" --host 198.18.3.2 --timeout 120 download --port 19)"
    rpc="$(peer "$ns_a" --host 198.18.3.2 rpc --port 7 --count "$rpcs")"
    cps="$(peer "$ns_a" --host 198.18.3.2 sequential --port 7 --count "$conns" --bytes 64)"
    echo "$(echo "$gp" | field mbit_s) $(echo "$dl" | field mbit_s) $(echo "$rpc" | field p50_us) $(echo "$rpc" | field p99_us) $(echo "$cps" | field per_second)"
}
echo "linux (offloads off): ..." >&2
for v in "va$tag:$ns_a" "vb$tag:$ns_b"; do
    ip netns exec "${v#*:}" ethtool -K "${v%%:*}" tso off gso off gro off >/dev/null 2>&1 || true
done
read -r l_gp l_dl l_p50 l_p99 l_cps <<<"$(linux_run)"
echo "linux (default offloads): ..." >&2
for v in "va$tag:$ns_a" "vb$tag:$ns_b"; do
    ip netns exec "${v#*:}" ethtool -K "${v%%:*}" tso on gso on gro on >/dev/null 2>&1 || true
done
read -r d_gp d_dl d_p50 d_p99 d_cps <<<"$(linux_run)"

printf '\nOne connection, %s MiB goodput; %s x 64 B RPC; %s connections in sequence (2-core machine, Python client)\n' "$((bytes >> 20))" "$rpcs" "$conns"
printf '%-50s %14s %15s %10s %10s %8s %16s\n' "path" "goodput Mbit/s" "download Mbit/s" "RPC p50 us" "RPC p99 us" "conns/s" "dl svc CPU ms/GiB"
for r in "${results[@]}"; do
    set -- $r
    printf '%-50s %14s %15s %10s %10s %8s %16s\n' "Linux -> offload (DPDK $1, discard/echo)" "$2" "$3" "$4" "$5" "$6" "$7"
done
printf '%-50s %14s %15s %10s %10s %8s\n' "Linux -> Linux (veth, TSO/GSO/GRO off)" "$l_gp" "$l_dl" "$l_p50" "$l_p99" "$l_cps"
printf '%-50s %14s %15s %10s %10s %8s\n' "Linux -> Linux (veth, default offloads)" "$d_gp" "$d_dl" "$d_p50" "$d_p99" "$d_cps"
