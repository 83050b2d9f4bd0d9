#!/usr/bin/env python3
"""Lays out the root file system of the flextoe-dpu image for one architecture.

    image_rootfs.py --arch amd64|arm64 --binary FLEXTOE_DPU --source-root DIR \
        --config CONFIG.json --out ROOTFS [--strip STRIP]

Copies the binary to /usr/bin/flextoe-dpu, the DPDK driver plugins the
service loads (PLUGINS below) into the DPDK plugin directory, the mlx5
verbs provider files, and every shared library those need, found by
following DT_NEEDED (readelf -d) in DIR, the root they come from (/ for the
machine's own architecture, the arm64 sysroot of scripts/aarch64.sh for
arm64). Symbolic links are kept as links (so librte_x.so -> .so.23 ->
.so.23.0 as Debian lays them out). The image is usr-merged: /lib, /lib64 and
/bin are links into /usr. Fails if a needed library cannot be found: the
image then carries every library its programs and plugins need.
"""
import argparse
import os
import shutil
import stat
import subprocess
import sys

TRIPLES = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
PMD_DIR = "dpdk/pmds-23.0"  # RTE_EAL_PMD_PATH under /usr/lib/<triple> (Debian's DPDK 22.11)
# The plugins EAL loads for the service: the ring mempool (always, `-d`), the
# buses (vdev for net_tap/af_packet/af_xdp vdevs, pci and auxiliary for a
# real NIC), the three software ports of the tests and demos, and mlx5 (the
# ConnectX / BlueField NIC; common_mlx5 comes with it).
PLUGINS = [
    "librte_mempool_ring",
    "librte_bus_vdev",
    "librte_bus_pci",
    "librte_bus_auxiliary",
    "librte_net_tap",
    "librte_net_af_packet",
    "librte_net_af_xdp",
    "librte_net_mlx5",
]


def usr_merged(rel):
    """Image path for a source path relative to the root: lib/... -> usr/lib/..."""
    for top in ("lib", "lib64", "bin", "sbin"):
        if rel == top or rel.startswith(top + "/"):
            return "usr/" + rel
    return rel


class Layout:
    def __init__(self, src, out, triple):
        self.src = os.path.abspath(src)
        self.out = os.path.abspath(out)
        self.triple = triple
        self.done = set()
        self.elves = []
        self.search = [f"lib/{triple}", f"usr/lib/{triple}", "lib", "usr/lib", "lib64", "usr/lib64"]

    def resolve_link(self, rel):
        """Target of the symlink at rel (relative to src), relative to src."""
        target = os.readlink(os.path.join(self.src, rel))
        if os.path.isabs(target):
            return os.path.normpath(target.lstrip("/"))
        return os.path.normpath(os.path.join(os.path.dirname(rel), target))

    def exists(self, rel):
        """Whether rel exists in src, following links inside src (usr-merge aware)."""
        for _ in range(40):
            path = os.path.join(self.src, rel)
            if os.path.islink(path):
                rel = self.resolve_link(rel)
                continue
            if os.path.exists(path):
                return True
            # A usr-merged source (the machine itself): /lib is /usr/lib.
            merged = usr_merged(rel)
            if merged != rel and os.path.lexists(os.path.join(self.src, merged)):
                rel = merged
                continue
            return False
        return False

    def put(self, rel):
        """Copies src/rel to out/usr_merged(rel), links as links (and their targets)."""
        rel = os.path.normpath(rel)
        if rel in self.done:
            return
        self.done.add(rel)
        path = os.path.join(self.src, rel)
        if not os.path.lexists(path) and usr_merged(rel) != rel:
            # Only the usr-merged location exists (a usr-merged source root).
            self.put(usr_merged(rel))
            return
        dest = os.path.join(self.out, usr_merged(rel))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.islink(path):
            target = os.readlink(path)
            if os.path.lexists(dest):
                os.unlink(dest)
            if os.path.isabs(target):
                # Keep it inside the image: relative to the link's own directory.
                target = os.path.relpath(
                    "/" + usr_merged(target.lstrip("/")), "/" + os.path.dirname(usr_merged(rel))
                )
            os.symlink(target, dest)
            self.put(self.resolve_link(rel))
            return
        if not os.path.isfile(path):
            sys.exit(f"image_rootfs: {path} is not a file")
        shutil.copy2(path, dest)
        if is_elf(dest):
            self.elves.append(dest)

    def find_lib(self, name, origin_dirs):
        for d in origin_dirs + self.search:
            rel = os.path.join(d, name)
            if self.exists(rel):
                return rel
        return None

    def close(self):
        """Adds the DT_NEEDED closure of every ELF file copied so far."""
        i = 0
        while i < len(self.elves):
            elf = self.elves[i]
            i += 1
            needed, runpath = dynamic(elf)
            origin = "/" + os.path.relpath(os.path.dirname(elf), self.out)
            dirs = [p.replace("$ORIGIN", origin).lstrip("/") for p in runpath]
            for name in needed:
                rel = self.find_lib(name, dirs)
                if rel is None:
                    sys.exit(f"image_rootfs: {name} (needed by {os.path.relpath(elf, self.out)}) "
                             f"not found under {self.src}")
                self.put(rel)


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def dynamic(path):
    out = subprocess.run(["readelf", "-dW", path], check=True, capture_output=True, text=True).stdout
    needed, runpath = [], []
    for line in out.splitlines():
        if "(NEEDED)" in line:
            needed.append(line.split("[", 1)[1].split("]", 1)[0])
        elif "(RUNPATH)" in line or "(RPATH)" in line:
            runpath += line.split("[", 1)[1].split("]", 1)[0].split(":")
    return needed, runpath


def interpreter(path):
    out = subprocess.run(["readelf", "-lW", path], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "program interpreter:" in line:
            return line.split("program interpreter:", 1)[1].strip().rstrip("]").strip()
    sys.exit(f"image_rootfs: {path} has no program interpreter")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, choices=sorted(TRIPLES))
    ap.add_argument("--binary", required=True)
    ap.add_argument("--source-root", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--strip", help="strip program for --strip-debug (binary and libraries)")
    args = ap.parse_args()
    triple = TRIPLES[args.arch]
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    lay = Layout(args.source_root, args.out, triple)

    # usr-merge links, so /lib/ld-linux-*.so.* (PT_INTERP) and /lib/<triple> resolve.
    os.makedirs(os.path.join(args.out, "usr", "lib"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "usr", "bin"), exist_ok=True)
    for top in ("lib", "bin") + (("lib64",) if args.arch == "amd64" else ()):
        os.makedirs(os.path.join(args.out, "usr", top), exist_ok=True)
        os.symlink(f"usr/{top}", os.path.join(args.out, top))

    dest = os.path.join(args.out, "usr", "bin", "flextoe-dpu")
    shutil.copy2(args.binary, dest)
    os.chmod(dest, 0o755)
    lay.elves.append(dest)
    lay.put(interpreter(args.binary).lstrip("/"))
    pmd_dir = f"usr/lib/{triple}/{PMD_DIR}"
    for name in PLUGINS:
        rel = f"{pmd_dir}/{name}.so"
        if not lay.exists(rel):
            sys.exit(f"image_rootfs: DPDK plugin {rel} not found under {args.source_root} "
                     f"(install librte-*23 / make the sysroot)")
        lay.put(rel)
    # rdma-core's mlx5 verbs provider (libibverbs reads /etc/libibverbs.d).
    for rel in ("etc/libibverbs.d/mlx5.driver", f"usr/lib/{triple}/libibverbs/libmlx5-rdmav34.so"):
        if lay.exists(rel):
            lay.put(rel)
    lay.close()

    if args.strip:
        for elf in lay.elves:
            if not os.path.islink(elf):
                mode = os.stat(elf).st_mode
                os.chmod(elf, mode | stat.S_IWUSR)
                subprocess.run([args.strip, "--strip-debug", elf], check=True)
                os.chmod(elf, mode)

    etc = os.path.join(args.out, "etc", "flextoe")
    os.makedirs(etc)
    shutil.copyfile(args.config, os.path.join(etc, "config.json"))
    os.chmod(os.path.join(etc, "config.json"), 0o644)
    for d in ("run/flextoe", "var/run/dpdk", "dev/hugepages"):
        os.makedirs(os.path.join(args.out, d), exist_ok=True)
    os.makedirs(os.path.join(args.out, "tmp"), exist_ok=True)
    os.chmod(os.path.join(args.out, "tmp"), 0o1777)
    print(f"image_rootfs: {args.arch}: {len(lay.elves)} ELF files "
          f"(flextoe-dpu, {len(PLUGINS)} DPDK plugins, their libraries)")


if __name__ == "__main__":
    main()
