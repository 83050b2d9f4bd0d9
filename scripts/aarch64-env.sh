# shellcheck shell=bash
# Sourced by scripts/aarch64.sh and scripts/image.sh: where the arm64 DPDK
# sysroot lives and the environment that cross-compiles against it.
#
#   FLEXTOE_AARCH64_SYSROOT  the sysroot (default /var/cache/flextoe/aarch64-sysroot
#                            as root, else target/aarch64-sysroot)
#
# aarch64_env exports what cargo, pkg-config, bindgen, cc and the linker need.

export AARCH64_TRIPLE=aarch64-unknown-linux-gnu

aarch64_default_sysroot() {
    local root="$1"
    if [ -n "${FLEXTOE_AARCH64_SYSROOT:-}" ]; then
        printf '%s\n' "$FLEXTOE_AARCH64_SYSROOT"
    elif [ "$(id -u)" -eq 0 ]; then
        printf '%s\n' /var/cache/flextoe/aarch64-sysroot
    else
        printf '%s\n' "$root/target/aarch64-sysroot"
    fi
}

# aarch64_env SYSROOT
aarch64_env() {
    local s="$1"
    # pkg-config: only the sysroot's .pc files (a bare PKG_CONFIG_PATH would
    # still find the amd64 libdpdk.pc first), every -I/-L prefixed with it.
    export PKG_CONFIG_SYSROOT_DIR="$s"
    export PKG_CONFIG_LIBDIR="$s/usr/lib/aarch64-linux-gnu/pkgconfig:$s/usr/share/pkgconfig"
    export PKG_CONFIG_ALLOW_CROSS=1
    unset PKG_CONFIG_PATH
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    # bindgen's libclang: aarch64 headers of the sysroot (glibc's bits/, DPDK's
    # arm64 rte_config.h). bindgen adds --target from TARGET itself.
    export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=$s"
    # cc (dpdk-sys's extern.c wrappers) with aarch64-linux-gnu-gcc.
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    export CFLAGS_aarch64_unknown_linux_gnu="--sysroot=$s"
    # --sysroot: libbsd.so is a linker script naming /usr/lib/... absolutely;
    # rpath-link: the DT_NEEDED libraries of librte_* (libnuma, libibverbs...).
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--sysroot=$s -C link-arg=-Wl,-rpath-link,$s/usr/lib/aarch64-linux-gnu -C link-arg=-Wl,-rpath-link,$s/lib/aarch64-linux-gnu"
    # Cross-compiled test binaries run under qemu with the sysroot's ld.so and libraries.
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $s"
}
