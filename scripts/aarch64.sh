#!/usr/bin/env bash
# Cross-builds FlexTOE-rs for aarch64 (BlueField Arm cores, Arm hosts) and
# tests it under qemu-aarch64-static, on an amd64 Debian 12 machine.
#
#   ./scripts/aarch64.sh [all|setup|build|run|test]     (default: all)
#
#   setup  installs the aarch64 Rust target, gcc-aarch64-linux-gnu and
#          qemu-user-static, and makes the arm64 DPDK sysroot from Debian's
#          arm64 packages (apt-get download + dpkg-deb -x; never installed)
#   build  flextoe-dpu (release, DPDK), libtoe.so, libtoe.a,
#          libtoe_preload.so and flextoe-run for aarch64-unknown-linux-gnu
#   run    under qemu: flextoe-dpu check-config on the default configuration
#          and the simulated-wire demo (run --backend sim)
#   test   a subset of the unit, simulator and pipeline tests under qemu
#          (debug profile: debug assertions and overflow checks on)
#
# Environment: CARGO_TARGET_DIR (default target/), FLEXTOE_AARCH64_SYSROOT
# (scripts/aarch64-env.sh), AARCH64_SIM_SECONDS (demo length, default 3).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=scripts/aarch64-env.sh
. "$root/scripts/aarch64-env.sh"

log() { printf 'aarch64: %s\n' "$*"; }
die() { printf 'aarch64: error: %s\n' "$*" >&2; exit 1; }
need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root for: $*"
        sudo "$@"
    else
        "$@"
    fi
}
human() { numfmt --to=iec-i --suffix=B "$(stat -L -c %s "$1")"; }

what="${1:-all}"
case "$what" in all | setup | build | run | test) ;; *) die "unknown step '$what' (all|setup|build|run|test)" ;; esac

sysroot="$(aarch64_default_sysroot "$root")"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="$target_dir/$AARCH64_TRIPLE/release"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# The arm64 packages whose Depends closure makes the sysroot: DPDK's headers,
# .pc files and libraries (libdpdk-dev pulls every librte-* and the -dev
# packages its .pc files name: libbsd, libibverbs, libssl, libxdp, libbpf,
# zlib, libpcap, libelf, jansson, libnuma, libfdt, libnl, dbus), the PMD
# plugins the service loads, and glibc (qemu -L needs the arm64 ld.so).
SYSROOT_ROOTS=(libdpdk-dev librte-net-tap23 librte-net-af-packet23 librte-net-af-xdp23
    librte-mempool-ring23 libc6-dev libgcc-s1)
# Tools and maintainer-script helpers in that closure that no build or run needs.
SYSROOT_SKIP='^(dpkg|debconf|cdebconf|adduser|passwd|sed|tar|udev|install-info|sysvinit-utils|lsb-base|pkg-config|pkgconf|pkgconf-bin|libpkgconf3|sgml-base|xml-core|readline-common|libreadline8|libnewt0\.52|libslang2|libtextwrap1|libdebian-installer4|libpam-modules|libpam0g|libsemanage2|libsemanage-common|libsepol2|libaudit1|libaudit-common|libelogind0)$'

setup() {
    local t0=$SECONDS
    local toolchain
    toolchain="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
    if ! rustup target list --installed --toolchain "$toolchain" | grep -qx "$AARCH64_TRIPLE"; then
        log "rustup target add $AARCH64_TRIPLE ($toolchain)"
        rustup target add --toolchain "$toolchain" "$AARCH64_TRIPLE"
    fi
    local pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static python3 file) missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        need_root apt-get update -qq
        need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi

    local stamp="$sysroot/.flextoe-sysroot"
    local want="roots: ${SYSROOT_ROOTS[*]}"
    if [ -f "$stamp" ] && [ "$(head -n 1 "$stamp")" = "$want" ] \
        && (aarch64_env "$sysroot" && pkg-config --exists libdpdk); then
        log "arm64 sysroot ready at $sysroot (DPDK $(aarch64_env "$sysroot" && pkg-config --modversion libdpdk))"
        return
    fi
    # A private apt state (lists, cache, an empty dpkg status) for arm64 only:
    # the machine's dpkg gets no foreign architecture and nothing is installed
    # (libdpdk-dev:arm64 next to the amd64 one would remove the latter).
    log "making the arm64 DPDK sysroot at $sysroot from Debian's arm64 packages"
    local cache="$sysroot.apt"
    mkdir -p "$cache/lists/partial" "$cache/archives/partial" "$cache/debs"
    : >"$cache/status"
    local apt_opts=(-o APT::Architecture=arm64 -o "APT::Architectures::=arm64"
        -o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache"
        -o "Dir::State::status=$cache/status" -o Debug::NoLocking=1
        -o "APT::Sandbox::User=$(id -un)")
    apt-get "${apt_opts[@]}" update -qq
    apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "${SYSROOT_ROOTS[@]}" \
        | grep -v -e '^ ' -e '^<' | sort -u | grep -v -E "$SYSROOT_SKIP" >"$scratch/pkgs"
    log "downloading $(wc -l <"$scratch/pkgs") arm64 packages"
    rm -f "$cache/debs"/*.deb
    # shellcheck disable=SC2046 # one package name per line
    (cd "$cache/debs" && apt-get "${apt_opts[@]}" download -qq $(cat "$scratch/pkgs"))
    rm -rf "$sysroot.new"
    mkdir -p "$sysroot.new"
    local deb
    for deb in "$cache/debs"/*.deb; do
        dpkg-deb -x "$deb" "$sysroot.new"
    done
    printf '%s\n' "$want" >"$sysroot.new/.flextoe-sysroot"
    sed 's/^/  /' "$scratch/pkgs" >>"$sysroot.new/.flextoe-sysroot"
    rm -rf "$sysroot" "$cache/debs"
    mv "$sysroot.new" "$sysroot"
    (aarch64_env "$sysroot" && pkg-config --atleast-version=22.11 libdpdk) \
        || die "the sysroot's libdpdk.pc does not resolve (pkg-config libdpdk)"
    log "arm64 sysroot ready at $sysroot ($(du -sh "$sysroot" | cut -f1), DPDK $(aarch64_env "$sysroot" && pkg-config --modversion libdpdk)) in $((SECONDS - t0)) s"
}

build() {
    local t0=$SECONDS f machine
    aarch64_env "$sysroot"
    log "building flextoe-dpu (release, DPDK), libtoe, libtoe_preload.so, flextoe-run for $AARCH64_TRIPLE"
    nice -n 19 cargo build --release --target "$AARCH64_TRIPLE" -p dpu-datapath --bin flextoe-dpu
    nice -n 19 cargo build --release --target "$AARCH64_TRIPLE" -p host-shim --lib
    nice -n 19 cargo build --release --target "$AARCH64_TRIPLE" -p toe-preload --lib --bin flextoe-run
    for f in flextoe-dpu libtoe.so libtoe.a libtoe_preload.so flextoe-run; do
        [ -e "$out/$f" ] || die "$out/$f was not built"
        # readelf -h: the ELF header (of every member of an archive).
        machine="$(readelf -h "$out/$f" | sed -n 's/^ *Machine: *//p' | sort -u)"
        [ "$machine" = AArch64 ] || die "$out/$f is not (only) aarch64: ${machine:-no ELF header}"
        log "built $f ($(human "$out/$f")): $(file -b "$out/$f" | cut -d, -f1-2 | sed 's/current ar archive/ar archive of AArch64 objects/')"
    done
    log "build took $((SECONDS - t0)) s"
}

qemu() { qemu-aarch64-static -L "$sysroot" "$@"; }

run_demo() {
    local t0=$SECONDS bin="$out/flextoe-dpu"
    [ -x "$bin" ] || die "$bin missing (run: scripts/aarch64.sh build)"
    qemu "$bin" --version | sed 's/^/aarch64: qemu: /'
    qemu "$bin" default-config >"$scratch/default.json"
    qemu "$bin" check-config "$scratch/default.json" | sed 's/^/aarch64: qemu: /'
    log "check-config on the default configuration: ok (exit 0)"
    # A configuration that cannot fail on the machine's state: metrics on any
    # free port (9464 may be taken by another service).
    python3 - "$scratch/default.json" "$scratch/sim.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["metrics"]["listen"] = "127.0.0.1:0"
json.dump(cfg, open(sys.argv[2], "w"), indent=2)
PY
    qemu "$bin" check-config "$scratch/sim.json" >/dev/null
    local seconds="${AARCH64_SIM_SECONDS:-3}"
    log "simulated-wire demo under qemu: run --backend sim --duration $seconds --bytes 1048576"
    timeout 120 qemu-aarch64-static -L "$sysroot" "$bin" run --config "$scratch/sim.json" \
        --backend sim --duration "$seconds" --bytes 1048576 2>&1 | tee "$scratch/sim.log" \
        | sed 's/^/aarch64: qemu: /'
    grep -q '^verified [1-9][0-9]* bytes' "$scratch/sim.log" || die "the sim demo verified no data"
    grep -q 'data-path flows left: 0$' "$scratch/sim.log" || die "the sim demo left flows behind"
    grep -q 'retransmits 0 (fast 0, timeout 0)' "$scratch/sim.log" || die "the sim demo retransmitted on a clean wire"
    log "sim demo under qemu: $(grep '^verified' "$scratch/sim.log") (in $((SECONDS - t0)) s)"
    # The host side starts too (flextoe-run is a plain executable).
    qemu "$out/flextoe-run" --help >/dev/null
    log "flextoe-run --help under qemu: ok"
}

# The tests run under qemu (about 10-20x slower than native for this code).
# Chosen so the step stays near 6 minutes on 2 cores (measured: build ~2 min,
# run ~4 min): every lib unit test of dpu-datapath (engine, wire, pipeline,
# hostif, config glue), tcp_states (the state machine, 87 tests), sim_hostile
# (attacks on the simulated wire), pipeline_equivalence (the staged pipeline
# segment for segment against run-to-completion), the pipeline-config tests,
# and two of sim_bulk's nine bulk transfers (no_faults, loss_1_percent): the
# whole of sim_bulk takes ~6 min alone under qemu. Left out: sim_connections,
# sim_scale (100,000 connections), pipeline_bulk, no_alloc (timing bound),
# and the integration tests (they start release binaries, namespaces, DPDK).
TEST_RUNS=(
    "-p dpu-datapath --lib"
    "-p dpu-datapath --test tcp_states --test sim_hostile --test pipeline_equivalence"
    "-p dpu-datapath --test sim_bulk -- no_faults loss_1_percent"
    "-p pipeline-config"
)

tests() {
    local t0=$SECONDS run passed=0 failed=0 p f
    aarch64_env "$sysroot"
    log "building the test binaries for $AARCH64_TRIPLE (debug profile)"
    nice -n 19 cargo test --target "$AARCH64_TRIPLE" --no-run -p dpu-datapath --lib \
        --test tcp_states --test sim_hostile --test pipeline_equivalence --test sim_bulk
    nice -n 19 cargo test --target "$AARCH64_TRIPLE" --no-run -p pipeline-config
    log "test binaries built in $((SECONDS - t0)) s; running under qemu-aarch64-static"
    local t1=$SECONDS
    for run in "${TEST_RUNS[@]}"; do
        log "cargo test --target $AARCH64_TRIPLE $run"
        # shellcheck disable=SC2086 # the runs are word lists
        nice -n 19 cargo test --target "$AARCH64_TRIPLE" $run 2>&1 | tee "$scratch/test.log"
        read -r p f < <(awk '/^test result:/ { for (i = 1; i < NF; i++) {
            if ($(i + 1) ~ /^passed;/) p += $i; if ($(i + 1) ~ /^failed;/) f += $i } }
            END { print p + 0, f + 0 }' "$scratch/test.log")
        passed=$((passed + p))
        failed=$((failed + f))
    done
    [ "$passed" -gt 0 ] || die "no test ran"
    log "$passed tests passed under qemu ($failed failed) in $((SECONDS - t1)) s"
}

case "$what" in
    setup) setup ;;
    build) setup; build ;;
    run) setup; run_demo ;;
    test) setup; tests ;;
    all) setup; build; run_demo; tests ;;
esac
