#!/usr/bin/env bash
# Installs what is missing, builds, and runs the service on the embedded
# default configuration. Until the DPDK backend lands the default port is the
# simulated wire: the service engine and a peer engine move SHA-256-verified
# data both ways and print what they did. Extra arguments go to
# `flextoe-dpu run` (e.g. --duration 30, --config FILE, --pcap out.pcap).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
FLEXTOE_SKIP_FUZZ_TOOLS=1 ./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet -p dpu-datapath --bin flextoe-dpu
if [ "$#" -eq 0 ]; then
    set -- --duration 10
fi
exec ./target/release/flextoe-dpu run "$@"
