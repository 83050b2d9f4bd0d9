#!/usr/bin/env bash
# Idempotent installs shared by run.sh and test.sh, for a fresh Debian 12
# machine. Everything the build and the tests need comes from here.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo "$@"; else
            log "need root for: $*"; return 1; fi
    else
        "$@"
    fi
}

# Debian packages: a C toolchain (libfuzzer, later DPDK bindings) and
# pkg-config. Only installed when missing.
DEB_PACKAGES=(build-essential pkg-config ca-certificates curl libdpdk-dev librte-net-tap23 librte-mempool-ring23 clang libclang-dev iproute2 iputils-ping)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    need_root apt-get update -qq
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Rust: the toolchain pinned in rust-toolchain.toml, with rustfmt and clippy.
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        log "installing rustup (Rust toolchain manager)"
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain none
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
toolchain="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$root/rust-toolchain.toml")"
if command -v rustup >/dev/null 2>&1 && ! rustup toolchain list | grep -q "^$toolchain"; then
    log "installing Rust $toolchain"
    rustup toolchain install "$toolchain" --profile minimal -c rustfmt,clippy
fi

# cargo-fuzz: the fuzz targets run on the stable toolchain with `-s none`.
if [ "${FLEXTOE_SKIP_FUZZ_TOOLS:-0}" != 1 ] && ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
log "ready"
