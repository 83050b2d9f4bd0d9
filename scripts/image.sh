#!/usr/bin/env bash
# Builds the OCI image of the DPU service without a daemon, and checks it.
#
#   ./scripts/image.sh [build|check|all]      (default: all)
#
# build: one root file system per architecture (scripts/image_rootfs.py:
#   /usr/bin/flextoe-dpu, its DPDK libraries and driver plugins, glibc,
#   /etc/flextoe/config.json = `flextoe-dpu default-config`), a Containerfile
#   with no RUN step (FROM scratch, COPY), `buildah --storage-driver vfs`
#   per architecture, one manifest list (amd64, plus arm64 when
#   target/aarch64-unknown-linux-gnu/release/flextoe-dpu exists: scripts/aarch64.sh
#   build), pushed to an OCI archive:
#     $IMAGE_OUT/flextoe-dpu-oci.tar           the multi-arch index (localhost/flextoe-dpu:VERSION)
#     $IMAGE_OUT/flextoe-dpu-<arch>.docker.tar single-arch, for `ctr images import` / `docker load`
#   Entrypoint: /usr/bin/flextoe-dpu run --config /etc/flextoe/config.json.
# check: per architecture, `skopeo copy` out of the archive (verifies every
#   blob's digest), `umoci unpack`, then the unpacked binary runs
#   check-config on the image's configuration with only the image's
#   libraries (amd64: chroot into the unpacked root, or its own ld.so when not
#   root; arm64: qemu-aarch64-static -L <unpacked root>), every plugin's
#   libraries resolve inside the image (ld.so --list), and the sim backend
#   runs a short demo. Prints the image sizes.
#
# Environment: CARGO_TARGET_DIR, IMAGE_OUT (default $CARGO_TARGET_DIR/image),
# IMAGE_ARCHES (default: amd64, plus arm64 when built), FLEXTOE_AARCH64_SYSROOT.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=scripts/aarch64-env.sh
. "$root/scripts/aarch64-env.sh"

log() { printf 'image: %s\n' "$*"; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }
human() { numfmt --to=iec-i --suffix=B "$1"; }

what="${1:-all}"
case "$what" in all | build | check) ;; *) die "unknown step '$what' (build|check|all)" ;; esac

target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="${IMAGE_OUT:-$target_dir/image}"
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)"
name="localhost/flextoe-dpu"
archive="$out/flextoe-dpu-oci.tar"
sysroot="$(aarch64_default_sysroot "$root")"
amd64_bin="$target_dir/release/flextoe-dpu"
arm64_bin="$target_dir/$AARCH64_TRIPLE/release/flextoe-dpu"
work="$(mktemp -d)"
cleanup() {
    # buildah's vfs storage holds root-owned layers; umoci bundles too.
    rm -rf "$work"
}
trap cleanup EXIT

tools=(buildah skopeo umoci python3 file)
missing=()
for t in "${tools[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: apt-get install buildah skopeo umoci"
    log "installing buildah skopeo umoci"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah skopeo umoci python3 file
fi

arches=()
if [ -n "${IMAGE_ARCHES:-}" ]; then
    read -r -a arches <<<"${IMAGE_ARCHES//,/ }"
else
    arches=(amd64)
    if [ -x "$arm64_bin" ] && [ -d "$sysroot" ]; then arches+=(arm64); fi
fi

bah=(buildah --storage-driver vfs --root "$work/storage" --runroot "$work/runroot")

build() {
    local t0=$SECONDS arch bin src strip
    if [ ! -x "$amd64_bin" ]; then
        log "building flextoe-dpu (release) for amd64"
        nice -n 19 cargo build --release -p dpu-datapath --bin flextoe-dpu
    fi
    mkdir -p "$out"
    rm -f "$archive" "$out"/flextoe-dpu-*.docker.tar
    "$amd64_bin" default-config >"$work/config.json"
    "$amd64_bin" check-config "$work/config.json" >/dev/null
    "${bah[@]}" manifest create "$name:$version" >/dev/null
    for arch in "${arches[@]}"; do
        case "$arch" in
            amd64) bin="$amd64_bin" src=/ strip=strip ;;
            arm64)
                bin="$arm64_bin" src="$sysroot" strip=aarch64-linux-gnu-strip
                [ -x "$bin" ] || die "$bin missing: scripts/aarch64.sh build"
                # The arm64 binary's own defaults must be what the image carries.
                qemu-aarch64-static -L "$sysroot" "$bin" default-config | cmp -s - "$work/config.json" \
                    || die "arm64 and amd64 default configurations differ"
                ;;
            *) die "unknown architecture $arch (amd64, arm64)" ;;
        esac
        mkdir -p "$work/ctx-$arch"
        python3 scripts/image_rootfs.py --arch "$arch" --binary "$bin" --source-root "$src" \
            --config "$work/config.json" --out "$work/ctx-$arch/rootfs" --strip "$strip" | sed 's/^/image: /'
        cat >"$work/ctx-$arch/Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
ENV RUST_LOG=info
LABEL org.opencontainers.image.title="flextoe-dpu" \\
      org.opencontainers.image.description="FlexTOE-rs TCP offload engine: the DPU service with DPDK" \\
      org.opencontainers.image.version="$version" \\
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/bin/flextoe-dpu", "run", "--config", "/etc/flextoe/config.json"]
EOF
        "${bah[@]}" build --quiet --arch "$arch" --os linux --timestamp 0 \
            -f "$work/ctx-$arch/Containerfile" -t "$name:$version-$arch" "$work/ctx-$arch" >/dev/null
        "${bah[@]}" manifest add --arch "$arch" --os linux "$name:$version" \
            "containers-storage:$name:$version-$arch" >/dev/null
        "${bah[@]}" push --quiet "$name:$version-$arch" \
            "docker-archive:$out/flextoe-dpu-$arch.docker.tar:$name:$version" >/dev/null
        log "built $arch image ($(du -sh --apparent-size "$work/ctx-$arch/rootfs" | cut -f1) unpacked)"
    done
    "${bah[@]}" manifest push --quiet --all "$name:$version" "oci-archive:$archive:$name:$version" >/dev/null
    log "wrote $archive ($(human "$(stat -c %s "$archive")"), index of ${arches[*]}) in $((SECONDS - t0)) s"
}

check() {
    local t0=$SECONDS arch r rp bundle size entry p plugins=0 ldso
    [ -f "$archive" ] || die "$archive missing: scripts/image.sh build"
    local listed
    listed="$(skopeo inspect --raw "oci-archive:$archive" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(" ".join(x["platform"]["architecture"] for x in m.get("manifests", [])))')"
    log "index lists: $listed"
    for arch in "${arches[@]}"; do
        case " $listed " in *" $arch "*) ;; *) die "the index has no $arch image" ;; esac
        # skopeo copy verifies each blob against its digest.
        skopeo copy --quiet --override-arch "$arch" --override-os linux \
            "oci-archive:$archive" "oci:$work/oci-$arch:check" >/dev/null
        bundle="$work/bundle-$arch"
        umoci unpack --image "$work/oci-$arch:check" "$bundle" >/dev/null
        r="$bundle/rootfs"
        entry="$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["process"]["args"]))' "$bundle/config.json")"
        [ "$entry" = "/usr/bin/flextoe-dpu run --config /etc/flextoe/config.json" ] \
            || die "$arch: entrypoint is '$entry'"
        file -b "$r/usr/bin/flextoe-dpu" | grep -q "$([ "$arch" = amd64 ] && echo x86-64 || echo aarch64)" \
            || die "$arch: /usr/bin/flextoe-dpu is $(file -b "$r/usr/bin/flextoe-dpu")"
        # A configuration for the demo that cannot collide on the metrics port.
        python3 - "$r/etc/flextoe/config.json" "$r/tmp/sim.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["metrics"]["listen"] = "127.0.0.1:0"
json.dump(cfg, open(sys.argv[2], "w"))
PY
        # inimg PROGRAM ARGS: runs a program of the image with only the image's
        # libraries; rp prefixes the image's paths where the program sees the
        # machine's file system (not root: no chroot).
        rp=""
        case "$arch" in
            amd64)
                ldso=/usr/lib64/ld-linux-x86-64.so.2
                if [ "$(id -u)" -eq 0 ]; then
                    inimg() { chroot "$r" "$@"; }
                else
                    rp="$r"
                    inimg() { "$r$ldso" --library-path "$r/usr/lib/x86_64-linux-gnu" "$r$1" "${@:2}"; }
                fi ;;
            arm64)
                ldso=/usr/lib/ld-linux-aarch64.so.1
                # qemu -L: the guest's absolute paths resolve inside the image first.
                inimg() { qemu-aarch64-static -L "$r" "$r$1" "${@:2}"; } ;;
        esac
        inimg /usr/bin/flextoe-dpu check-config "$rp/etc/flextoe/config.json" | sed "s/^/image: $arch: /"
        log "$arch: check-config on the image's /etc/flextoe/config.json with the image's libraries: ok"
        plugins=0
        for p in "$r"/usr/lib/*/dpdk/pmds-23.0/*.so; do
            p="/${p#"$r"/}"
            if [ -n "$rp" ]; then
                "$r$ldso" --library-path "$r/usr/lib/x86_64-linux-gnu" --list "$r$p" >"$work/ldd" 2>&1 || true
            else
                inimg "$ldso" --list "$p" >"$work/ldd" 2>&1 || true
            fi
            if grep -q 'not found' "$work/ldd" || ! grep -q 'libc.so.6' "$work/ldd"; then
                cat "$work/ldd" >&2
                die "$arch: plugin $p does not resolve inside the image"
            fi
            plugins=$((plugins + 1))
        done
        log "$arch: $plugins DPDK plugins resolve every library inside the image"
        inimg /usr/bin/flextoe-dpu run --config "$rp/tmp/sim.json" --backend sim --duration 1 \
            --bytes 1048576 >"$work/sim.log" 2>&1 || { cat "$work/sim.log" >&2; die "$arch: sim demo failed"; }
        grep -q 'data-path flows left: 0$' "$work/sim.log" || { cat "$work/sim.log" >&2; die "$arch: sim demo failed"; }
        log "$arch: sim backend from the image: $(grep '^verified' "$work/sim.log")"
        size="$(skopeo inspect --raw "oci:$work/oci-$arch:check" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(sum(l["size"] for l in m["layers"]))')"
        log "$arch: image size $(human "$size") compressed, $(du -sh --apparent-size "$r" | cut -f1) unpacked"
        rm -rf "$bundle" "$work/oci-$arch"
    done
    log "checked ${arches[*]} from $archive in $((SECONDS - t0)) s"
}

case "$what" in
    build) build ;;
    check) check ;;
    all) build; check ;;
esac
