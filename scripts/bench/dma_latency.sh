#!/usr/bin/env bash
# How much of the DMA engine's latency the pipeline hides: the 64 B RPC and
# bulk runs of hostif_vs_linux.sh with the emulated engine's completion
# latency (`host.dma_latency_ns`) at each value given, each against Linux
# loopback TCP measured in the same round.
#
# Usage: scripts/bench/dma_latency.sh [REQUESTS] [BULK_MIB] [LATENCIES_NS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
REQUESTS=${1:-30000}
MIB=${2:-512}
shift $(($# < 2 ? $# : 2))
if [ $# -gt 0 ]; then LATENCIES=("$@"); else LATENCIES=(0 1000 2000); fi
for ns in "${LATENCIES[@]}"; do
  echo "######## host.dma_latency_ns = $ns"
  DMA_LATENCY_NS=$ns scripts/bench/hostif_vs_linux.sh "$REQUESTS" "$MIB" | sed -n '/== summary/,$p'
done
