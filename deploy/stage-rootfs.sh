#!/usr/bin/env bash
# stage-rootfs.sh — the build context of the fogpipe image (deploy/Containerfile):
#   CONTEXT/rootfs/usr/bin/fogpipe          the binary, stripped
#   CONTEXT/rootfs/usr/lib/...              exactly the shared libraries it needs (ldd), the
#                                           dynamic loader, and OpenBLAS with its own needs
#                                           (fogpipe dlopens libopenblas.so.0 for the fast kernels)
#   CONTEXT/rootfs/lib, lib64               symlinks into usr/ (merged /usr, as Debian)
#   CONTEXT/rootfs/etc/passwd, group        root and the non-root user fogpipe (65532)
#   CONTEXT/rootfs/etc/nsswitch.conf        hosts: files dns (pod names resolve through DNS)
#   CONTEXT/rootfs/models, etc/fogpipe      empty mount points: the model files and the plan are
#                                           mounted at run time, never baked in
#
# usage: deploy/stage-rootfs.sh FOGPIPE_BINARY CONTEXT_DIR [--no-blas]
#   --no-blas  leave OpenBLAS and oneDNN out: the image then runs the reference kernels (OpenBLAS is
#              about 40 MB; oneDNN, which goes in when this amd64 machine has libdnnl2, about 42 MB
#              with libgomp and libstdc++)
# A binary for another architecture (arm64 on amd64: make image ARCH=arm64) is staged with that
# architecture's libraries as Debian's multiarch packages install them (/lib/aarch64-linux-gnu;
# scripts/setup-arm64.sh), listed by its own dynamic loader run under qemu-user (`ld.so --list`,
# what ldd does natively), and stripped with aarch64-linux-gnu-strip.
# Exit: 0 done, 1 failure (a library ldd cannot find, no OpenBLAS on this machine without --no-blas),
# 2 bad usage. Runs as any user; needs ldd, ldconfig, strip (binutils) or copies unstripped; for
# arm64 on amd64, qemu-aarch64-static and libc6:arm64.
set -euo pipefail

usage() { echo "usage: $0 FOGPIPE_BINARY CONTEXT_DIR [--no-blas]" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
bin=$1
ctx=$2
blas=1
if [ $# = 3 ]; then [ "$3" = --no-blas ] || usage; blas=0; fi
[ -x "$bin" ] || { echo "stage-rootfs: $bin: not an executable (build fogpipe first: make build)" >&2; exit 1; }

# The binary's architecture (ELF e_machine: 62 x86-64, 183 AArch64) against this machine's.
elf_arch() { case $(od -An -tu2 -j18 -N2 "$1" | tr -d ' ') in 62) echo amd64 ;; 183) echo arm64 ;; *) echo unknown ;; esac; }
case $(uname -m) in x86_64) host_arch=amd64 ;; aarch64) host_arch=arm64 ;; *) host_arch=$(uname -m) ;; esac
arch=$(elf_arch "$bin")
emu=()        # runs the binary's loader here: nothing when native, qemu-user when foreign
triplet=""    # the multiarch triplet of a foreign binary
if [ "$arch" != "$host_arch" ]; then
    case $arch in
    arm64) triplet=aarch64-linux-gnu ;;
    *) echo "stage-rootfs: $bin: built for $arch, which cannot be staged on $host_arch" >&2; exit 1 ;;
    esac
    qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64) ||
        { echo "stage-rootfs: $bin is an $arch binary: needs qemu-aarch64-static (bash scripts/setup-arm64.sh)" >&2; exit 1; }
    emu=("$qemu")
    foreign_loader=/lib/ld-linux-aarch64.so.1
    [ -e $foreign_loader ] ||
        { echo "stage-rootfs: no $foreign_loader here (apt-get install libc6:$arch; bash scripts/setup-arm64.sh)" >&2; exit 1; }
fi
# `ldd FILE`, or for a foreign binary the same listing from its own loader.
list_deps() {
    if [ -n "$triplet" ]; then "${emu[@]}" "$foreign_loader" --list "$1"; else ldd "$1"; fi
}

root=$ctx/rootfs
rm -rf "$root"
mkdir -p "$root/usr/bin" "$root/usr/lib" "$root/etc/fogpipe" "$root/models" "$root/tmp"
chmod 1777 "$root/tmp"
ln -s usr/lib "$root/lib"

# Where a library goes inside the image: its path, with /lib* moved under /usr.
dest_of() {
    case $1 in
    /usr/*) echo "$1" ;;
    /lib64/*) echo "/usr$1" ;;
    /lib/*) echo "/usr$1" ;;
    *) echo "$1" ;;
    esac
}

# Copies every library `ldd FILE` names (following symlinks: the file lands
# under the name the loader asks for). Fails on "not found".
copy_deps() {
    local out
    out=$(list_deps "$1") || { echo "stage-rootfs: ldd $1 failed" >&2; return 1; }
    if grep -q "not found" <<<"$out"; then
        echo "stage-rootfs: $1 needs libraries this machine lacks:" >&2
        grep "not found" <<<"$out" >&2
        return 1
    fi
    # Lines: "libx.so.1 => /path/libx.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)".
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out" | while read -r lib; do
        local d
        d=$root$(dest_of "$lib")
        [ -e "$d" ] && continue
        mkdir -p "$(dirname "$d")"
        cp -L "$lib" "$d"
        chmod 0755 "$d"
    done
}

strip=${triplet:+$triplet-}strip
if command -v "$strip" >/dev/null; then
    "$strip" --strip-unneeded -o "$root/usr/bin/fogpipe" "$bin"
else
    cp "$bin" "$root/usr/bin/fogpipe"
fi
chmod 0755 "$root/usr/bin/fogpipe"
copy_deps "$bin"

# The dynamic loader's own path (PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2)
# must exist as written: /lib64 -> usr/lib64 when it lives there.
# (No early exits in pipelines here: with pipefail a writer cut off by SIGPIPE fails the script.)
interp=$(list_deps "$bin" | awk '$1 ~ /^\// && !n++ { print $1 }')
case $interp in /lib64/*) ln -s usr/lib64 "$root/lib64" ;; esac

if [ $blas = 1 ]; then
    # libopenblas.so.0 as the loader would find it (Debian: an alternatives
    # symlink to libopenblas0-pthread's library).
    # A foreign one: where the multiarch package puts it (ldconfig lists only this machine's).
    if [ -n "$triplet" ]; then
        so=""
        for d in /usr/lib/$triplet /lib/$triplet; do [ -e "$d/libopenblas.so.0" ] && { so=$d/libopenblas.so.0; break; }; done
    else
        so=$(ldconfig -p | awk '$1 == "libopenblas.so.0" && $NF ~ /^\// && !n++ { print $NF }')
    fi
    [ -n "$so" ] || { echo "stage-rootfs: no libopenblas.so.0 here (apt-get install libopenblas0-pthread${triplet:+:$arch}, or pass --no-blas)" >&2; exit 1; }
    d=$root$(dest_of "$so")
    mkdir -p "$(dirname "$d")"
    cp -L "$so" "$d"
    chmod 0755 "$d"
    copy_deps "$so"
    # oneDNN (libdnnl.so.2, dlopened for the convolutions on x86-64 only) with
    # its own needs (libgomp, libstdc++, libOpenCL), when this machine has it.
    dnnl=""
    if [ -z "$triplet" ] && [ "$arch" = amd64 ]; then
        dnnl=$(ldconfig -p | awk '$1 == "libdnnl.so.2" && $NF ~ /^\// && !n++ { print $NF }')
    fi
    if [ -n "$dnnl" ]; then
        d=$root$(dest_of "$dnnl")
        mkdir -p "$(dirname "$d")"
        cp -L "$dnnl" "$d"
        chmod 0755 "$d"
        copy_deps "$dnnl"
    fi
fi

cat >"$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/sbin/nologin
fogpipe:x:65532:65532:fogpipe:/nonexistent:/sbin/nologin
P
cat >"$root/etc/group" <<'G'
root:x:0:
fogpipe:x:65532:
G
echo "hosts: files dns" >"$root/etc/nsswitch.conf"

# Proof that the rootfs is complete: the binary runs with only these libraries
# (a foreign one under qemu-user).
loader=$root$(dest_of "$interp")
if ! "${emu[@]}" "$loader" --library-path "$(find "$root/usr/lib" "$root/usr/lib64" -type d 2>/dev/null | tr '\n' ':')" \
    "$root/usr/bin/fogpipe" --version >/dev/null; then
    echo "stage-rootfs: the staged binary does not run with the staged libraries" >&2
    exit 1
fi
echo "stage-rootfs: $root: $(find "$root" -type f | wc -l) files, $(du -sk "$root" | cut -f1) KiB" \
     "($arch, $([ $blas = 1 ] && echo "with OpenBLAS" || echo "reference kernels only"))" >&2
