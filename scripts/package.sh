#!/usr/bin/env bash
# Builds the host-side Debian package `libtoe` and tests it.
#
#   ./scripts/package.sh [build|test|all] [--arch amd64|arm64]   (default: all, amd64)
#
# The package (dpkg-deb --build, no debhelper), $PACKAGE_OUT/libtoe_<version>_<arch>.deb:
#   /usr/include/toe.h                                 the C API (host-shim/include)
#   /usr/lib/<triple>/libtoe.so, libtoe.a              libtoe (crate host-shim)
#   /usr/lib/<triple>/pkgconfig/libtoe.pc              pkg-config --cflags --libs [--static] libtoe
#   /usr/lib/<triple>/flextoe/flextoe-run              the LD_PRELOAD wrapper, next to
#   /usr/lib/<triple>/flextoe/libtoe_preload.so        its library (it looks there)
#   /usr/bin/flextoe-run -> ../lib/<triple>/flextoe/flextoe-run
#
# test: installs the package (as root with dpkg -i, removed again at exit,
# unless libtoe is already installed; otherwise, or with
# PACKAGE_TEST=root, unpacked into a temporary root with pkg-config pointed
# there), builds a C program against it with `pkg-config --cflags --libs
# libtoe` (and a static one with --static), runs both (toe_open without a
# service must fail cleanly with errno set), and runs the installed
# flextoe-run. arm64 (from scripts/aarch64.sh build): the temporary root,
# aarch64-linux-gnu-gcc and qemu-aarch64-static.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=scripts/aarch64-env.sh
. "$root/scripts/aarch64-env.sh"

log() { printf 'package: %s\n' "$*"; }
die() { printf 'package: error: %s\n' "$*" >&2; exit 1; }

what=all
arch=amd64
while [ $# -gt 0 ]; do
    case "$1" in
        build | test | all) what="$1" ;;
        --arch) arch="${2:?--arch needs amd64 or arm64}"; shift ;;
        *) die "usage: scripts/package.sh [build|test|all] [--arch amd64|arm64]" ;;
    esac
    shift
done

target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="${PACKAGE_OUT:-$target_dir/package}"
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)"
case "$arch" in
    amd64) triple=x86_64-linux-gnu bin="$target_dir/release" cc=cc ;;
    arm64) triple=aarch64-linux-gnu bin="$target_dir/$AARCH64_TRIPLE/release" cc=aarch64-linux-gnu-gcc ;;
    *) die "unknown architecture $arch" ;;
esac
deb="$out/libtoe_${version}_${arch}.deb"
work="$(mktemp -d)"
installed_here=0
cleanup() {
    if [ "$installed_here" = 1 ]; then
        dpkg -r libtoe >/dev/null && log "removed libtoe again (dpkg -r)"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

build() {
    local t0=$SECONDS f
    if [ "$arch" = amd64 ]; then
        for f in libtoe.so libtoe.a libtoe_preload.so flextoe-run; do
            if [ ! -e "$bin/$f" ]; then
                log "building libtoe, libtoe_preload.so and flextoe-run (release)"
                nice -n 19 cargo build --release -p host-shim --lib
                nice -n 19 cargo build --release -p toe-preload --lib --bin flextoe-run
                break
            fi
        done
    fi
    for f in libtoe.so libtoe.a libtoe_preload.so flextoe-run; do
        [ -e "$bin/$f" ] || die "$bin/$f missing (arm64: scripts/aarch64.sh build)"
    done
    local pkg="$work/pkg" lib="/usr/lib/$triple"
    install -d "$pkg/DEBIAN" "$pkg/usr/include" "$pkg$lib/pkgconfig" "$pkg$lib/flextoe" \
        "$pkg/usr/bin" "$pkg/usr/share/doc/libtoe"
    install -m 0644 host-shim/include/toe.h "$pkg/usr/include/toe.h"
    install -m 0755 "$bin/libtoe.so" "$pkg$lib/libtoe.so"
    install -m 0644 "$bin/libtoe.a" "$pkg$lib/libtoe.a"
    install -m 0755 "$bin/libtoe_preload.so" "$pkg$lib/flextoe/libtoe_preload.so"
    install -m 0755 "$bin/flextoe-run" "$pkg$lib/flextoe/flextoe-run"
    ln -s "../lib/$triple/flextoe/flextoe-run" "$pkg/usr/bin/flextoe-run"
    # Debug info stays in the build tree; the package carries stripped files.
    local strip=strip
    [ "$arch" = arm64 ] && strip=aarch64-linux-gnu-strip
    "$strip" --strip-debug "$pkg$lib/libtoe.so" "$pkg$lib/flextoe/libtoe_preload.so" \
        "$pkg$lib/flextoe/flextoe-run" "$pkg$lib/libtoe.a"
    # Libs.private: what rustc's staticlib needs (--print native-static-libs).
    cat >"$pkg$lib/pkgconfig/libtoe.pc" <<EOF
prefix=/usr
libdir=\${prefix}/lib/$triple
includedir=\${prefix}/include

Name: libtoe
Description: FlexTOE host shim: TCP connections on the DPU's offload engine (C API)
URL: https://example.invalid/flextoe-rs
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -ltoe
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
EOF
    cp README.md "$pkg/usr/share/doc/libtoe/README.md"
    printf 'libtoe (FlexTOE-rs) is licensed under the Apache License 2.0.\n' \
        >"$pkg/usr/share/doc/libtoe/copyright"
    cat >"$pkg/DEBIAN/control" <<EOF
Package: libtoe
Version: $version
Architecture: $arch
Maintainer: FlexTOE-rs developers <flextoe@example.invalid>
Section: libs
Priority: optional
Depends: libc6 (>= 2.34), libgcc-s1
Installed-Size: $(du -sk "$pkg/usr" | cut -f1)
Description: FlexTOE host shim (libtoe) and LD_PRELOAD wrapper
 Host side of the FlexTOE-rs TCP offload engine: libtoe.so/libtoe.a with the
 C API (toe.h) and its pkg-config file, libtoe_preload.so and flextoe-run,
 which run unmodified programs with their TCP sockets on the DPU's engine.
EOF
    mkdir -p "$out"
    dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
    log "built $deb ($(du -h --apparent-size "$deb" | cut -f1)) in $((SECONDS - t0)) s:"
    dpkg-deb -c "$deb" | awk '{print "package:   " $6 ($7 ? " " $7 " " $8 : "")}' | grep -v '/$'
}

test_pkg() {
    local t0=$SECONDS mode="${PACKAGE_TEST:-}" sysroot="" pc_env=() run=()
    [ -f "$deb" ] || die "$deb missing: scripts/package.sh build"
    if [ -z "$mode" ]; then
        if [ "$arch" = amd64 ] && [ "$(id -u)" -eq 0 ] \
            && ! dpkg-query -W -f='${Status}' libtoe 2>/dev/null | grep -q "install ok installed"; then
            mode=system
        else
            mode=root
        fi
    fi
    if [ "$mode" = system ]; then
        dpkg -i "$deb" >/dev/null
        installed_here=1
        log "installed with dpkg -i: $(dpkg-query -W -f='${Package} ${Version} ${Architecture}' libtoe)"
    else
        sysroot="$work/root"
        dpkg-deb -x "$deb" "$sysroot"
        # pkg-config sees only the unpacked package (and prefixes its paths).
        pc_env=(env PKG_CONFIG_SYSROOT_DIR="$sysroot" PKG_CONFIG_LIBDIR="$sysroot/usr/lib/$triple/pkgconfig")
        log "unpacked into a temporary root $sysroot"
    fi
    if [ "$arch" = arm64 ]; then
        local s
        s="$(aarch64_default_sysroot "$root")"
        run=(qemu-aarch64-static -L "$s" -E "LD_LIBRARY_PATH=$sysroot/usr/lib/$triple")
    elif [ -n "$sysroot" ]; then
        run=(env "LD_LIBRARY_PATH=$sysroot/usr/lib/$triple")
    fi

    cat >"$work/toe_check.c" <<'EOF'
/* Links against libtoe and proves the C API answers: without a service,
 * toe_open must fail cleanly (NULL, errno set), never crash. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <toe.h>

int main(void) {
    errno = 0;
    toe_t *t = toe_open("/nonexistent/flextoe/control.sock");
    if (t != NULL) {
        fprintf(stderr, "toe_check: toe_open succeeded without a service?\n");
        toe_close(t);
        return 1;
    }
    if (errno == 0) {
        fprintf(stderr, "toe_check: toe_open returned NULL without errno\n");
        return 1;
    }
    toe_close(NULL); /* documented as ignored */
    printf("toe_check: linked libtoe; toe_open without a service: NULL, errno %d (%s)\n",
           errno, strerror(errno));
    return 0;
}
EOF
    local cflags libs slibs
    cflags="$("${pc_env[@]}" pkg-config --cflags libtoe)"
    libs="$("${pc_env[@]}" pkg-config --libs libtoe)"
    slibs="$("${pc_env[@]}" pkg-config --static --libs libtoe)"
    log "pkg-config --cflags --libs libtoe: $cflags $libs"
    # shellcheck disable=SC2086 # pkg-config output is a word list
    "$cc" -Wall -Wextra -Werror $cflags -o "$work/toe_check" "$work/toe_check.c" $libs
    # Static: libtoe.a by its path (the directory also has libtoe.so).
    local libdir
    libdir="$("${pc_env[@]}" pkg-config --variable=libdir libtoe)"
    # pkgconf prefixes variables with PKG_CONFIG_SYSROOT_DIR, pkg-config does not.
    case "$libdir" in "$sysroot"/*) ;; *) libdir="$sysroot$libdir" ;; esac
    # shellcheck disable=SC2086
    "$cc" -Wall -Wextra -Werror $cflags -o "$work/toe_check_static" "$work/toe_check.c" \
        "$libdir/libtoe.a" ${slibs//-ltoe/}
    log "built a C program against the package: cc \$(pkg-config --cflags libtoe) toe_check.c \$(pkg-config --libs libtoe) (and --static)"
    "${run[@]}" "$work/toe_check" | sed 's/^/package: dynamic: /'
    "${run[@]}" "$work/toe_check_static" | sed 's/^/package: static: /'
    local needed
    needed="$(readelf -d "$work/toe_check" | grep NEEDED)"
    grep -q 'libtoe\.so' <<<"$needed" || die "toe_check does not link libtoe.so"
    needed="$(readelf -d "$work/toe_check_static" | grep NEEDED)"
    if grep -q libtoe <<<"$needed"; then die "toe_check_static links libtoe dynamically"; fi
    local frun="/usr/bin/flextoe-run"
    if [ -n "$sysroot" ]; then frun="$sysroot/usr/lib/$triple/flextoe/flextoe-run"; fi
    if [ "$arch" = amd64 ]; then
        # No service: the preloaded program falls back to the kernel and runs.
        "$frun" --control /nonexistent/flextoe.sock -- /bin/true 2>/dev/null \
            || die "flextoe-run -- /bin/true failed"
        if "$frun" --control /nonexistent/flextoe.sock --no-fallback -- /bin/true 2>/dev/null; then
            die "flextoe-run --no-fallback without a service succeeded"
        fi
        log "installed flextoe-run finds its libtoe_preload.so and runs a program (kernel fallback without a service)"
    else
        "${run[@]}" "$frun" --help >/dev/null
        log "flextoe-run --help under qemu: ok"
    fi
    log "package test passed ($arch, $([ "$mode" = system ] && echo "dpkg -i" || echo "temporary root")) in $((SECONDS - t0)) s"
}

case "$what" in
    build) build ;;
    test) test_pkg ;;
    all) build; test_pkg ;;
esac
