#!/usr/bin/env bash
# Pipeline packets per second with 1..CORES run-to-completion replicas, each
# worker pinned to its own core: the scaling curve on a machine with more
# cores than this 2-core VM.
#   scripts/bench/pipeline_sweep.sh CORES [--frames N --conns C --payload B]
set -euo pipefail
cores="${1:?usage: $0 CORES [bench args]}"
shift
cd "$(dirname "$0")/../.."
exec cargo bench -p dpu-datapath --bench pipeline -- --sweep "$cores" "$@"
