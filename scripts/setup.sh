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

# Debian packages: a C toolchain (libfuzzer, DPDK bindings), pkg-config,
# DPDK with its TAP, AF_PACKET and AF_XDP PMDs, and the Linux-peer tools of the interoperability
# tests and demo (iproute2, ping, tcpdump, ethtool, nc, python3, nftables for
# CE marks on the path in the ECN test).
# The servers of the LD_PRELOAD tests (tests/tests/preload.rs): memcached,
# redis, nginx-light, iperf3; they must not run as system daemons, see
# below. Only installed when missing.
# Deployment (docs/deploy.md): the aarch64 cross linker and qemu user
# emulation (scripts/aarch64.sh), buildah/skopeo/umoci for the image without a
# daemon (scripts/image.sh), PyYAML for scripts/check_deploy.py, file.
# rdma-core headers for the DMA engine's RDMA transport (feature `rdma`).
# wrk and memcaslap (libmemcached-tools): the standard load generators of
# scripts/bench/dpu_like.sh.
DEB_PACKAGES=(build-essential pkg-config ca-certificates curl libdpdk-dev librte-net-tap23 librte-net-af-packet23 librte-net-af-xdp23 librte-mempool-ring23 clang libclang-dev iproute2 iputils-ping tcpdump ethtool netcat-openbsd python3 python3-pip memcached redis-server redis-tools nginx-light iperf3 nftables
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static buildah skopeo umoci python3-yaml file
    libibverbs-dev librdmacm-dev wrk libmemcached-tools)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    need_root apt-get update -qq
    # policy-rc.d exit 101: apt does not start the services it installs
    # (the tests start their own instances on private ports).
    policy_tmp=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy_tmp=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | need_root tee "$policy_tmp" >/dev/null
        need_root chmod +x "$policy_tmp"
    fi
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    [ -n "$policy_tmp" ] && need_root rm -f "$policy_tmp"
    # Where a service was started anyway (systemd ignores policy-rc.d on
    # some setups), stop and disable it.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        for svc in memcached redis-server nginx iperf3; do
            need_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
        done
    fi
fi

# promtool, for `promtool check metrics` on the /metrics output
# (dpu-datapath/tests/metrics.rs). Debian 12 ships it only inside the
# `prometheus` server package (~96 MB installed, pulls adduser and JS
# libraries, recommends node-exporter), whose postinst creates a system user
# and starts the server on :9090. So the package is downloaded with apt and
# only /usr/bin/promtool is extracted: no service, no user, no other files.
if ! command -v promtool >/dev/null 2>&1; then
    log "installing promtool (the binary from Debian's prometheus package)"
    tmp="$(mktemp -d)"
    need_root apt-get update -qq
    # The sandbox user `_apt` cannot write to a private temporary directory.
    (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" prometheus)
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$tmp/promtool"
    need_root install -m 0755 "$tmp/promtool" /usr/local/bin/promtool
    rm -rf "$tmp"
    promtool --version >/dev/null
fi

# scapy: injects malformed frames in the interoperability tests. pip first
# (the python3 on PATH may not be Debian's); PEP 668 systems refuse a plain
# pip install, so fall back to --break-system-packages, then to Debian's.
if ! python3 -c 'import scapy' >/dev/null 2>&1; then
    log "installing scapy"
    python3 -m pip install --quiet scapy >/dev/null 2>&1 \
        || python3 -m pip install --quiet --break-system-packages scapy >/dev/null 2>&1 \
        || need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-scapy \
        || log "scapy unavailable: the malformed-frame test will skip"
fi

# PyYAML for scripts/check_deploy.py (the python3 on PATH may not be Debian's),
# and kubernetes-validate (the Kubernetes API schemas, offline) for its strict
# schema check; without it the check runs its own assertions only.
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
    log "installing PyYAML"
    python3 -m pip install --quiet pyyaml >/dev/null 2>&1 \
        || python3 -m pip install --quiet --break-system-packages pyyaml >/dev/null 2>&1 \
        || log "PyYAML unavailable for $(command -v python3): scripts/check_deploy.py will fail"
fi
if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
    log "installing kubernetes-validate"
    python3 -m pip install --quiet kubernetes-validate >/dev/null 2>&1 \
        || python3 -m pip install --quiet --break-system-packages kubernetes-validate >/dev/null 2>&1 \
        || log "kubernetes-validate unavailable: the pod manifest is checked without the API schema"
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

# The aarch64 target for scripts/aarch64.sh (cross build, tests under qemu).
if command -v rustup >/dev/null 2>&1 \
    && ! rustup target list --installed --toolchain "$toolchain" | grep -qx aarch64-unknown-linux-gnu; then
    log "adding the Rust target aarch64-unknown-linux-gnu"
    rustup target add --toolchain "$toolchain" aarch64-unknown-linux-gnu
fi

# cargo-fuzz: the fuzz targets run on the stable toolchain with `-s none`.
if [ "${FLEXTOE_SKIP_FUZZ_TOOLS:-0}" != 1 ] && ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
# 2 MiB hugepages: net_af_xdp needs them (docs/dpdk.md); the tests and
# benchmarks on veth ports use it. 128 pages = 256 MiB, only as root.
if [ "$(id -u)" -eq 0 ]; then
    "$root/scripts/hugepages.sh" 128 | sed 's/^/[setup] /'
fi
log "ready"
