# Sourced by the benchmark scripts: starts `flextoe-dpu` on the loopback
# backend (both host applications reach it through their rings) in a fresh
# temp dir, waits for its control socket, and cleans up at exit. Expects
# BIN (the release directory); sets `dir`, `pids`, `IP` (the service's
# address) and exports FLEXTOE_CONTROL. DMA_LATENCY_NS, when set, is the
# emulated DMA engine's completion latency (`host.dma_latency_ns`);
# SERVICE_TWEAK, Python statements run on the configuration `c` before it
# is written; SERVICE_LAUNCH, a command prefix for the service (taskset).
dir=$(mktemp -d /tmp/ftoe-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if declare -F extra_cleanup >/dev/null; then extra_cleanup; fi
  rm -rf "$dir"
}
trap cleanup EXIT

# shellcheck source=scripts/bench/service_config.sh
source "$(dirname "${BASH_SOURCE[0]}")/service_config.sh"
write_service_config "c['port']['backend'] = 'loopback'"
# shellcheck disable=SC2086 # SERVICE_LAUNCH is a command prefix
${SERVICE_LAUNCH:-} $BIN/flextoe-dpu run --config "$dir/config.json" --stats-interval 0 >"$dir/service.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$dir/control.sock" ] && break; sleep 0.1; done
export FLEXTOE_CONTROL="$dir/control.sock"
IP=$(python3 -c "import json; print(json.load(open('$dir/config.json'))['identity']['ipv4'])")
