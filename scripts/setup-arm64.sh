#!/usr/bin/env bash
# setup-arm64.sh — what cross-building fogpipe for arm64 (Raspberry Pi OS
# 64-bit, Debian arm64) and testing it under emulation needs, on an amd64
# Debian machine (run as root; scripts/setup.sh calls it unless
# FOGPIPE_NO_ARM64=1). Idempotent: adds the arm64 architecture only when dpkg
# lacks it, and runs apt only when a package is missing.
#
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross  Debian's cross compiler and its C library
#   qemu-user-static                              runs the arm64 test binaries (make cross-test)
#   lib*-dev:arm64                                the arm64 headers, libraries and .pc files, next
#                                                 to the amd64 ones (multiarch: /usr/lib/aarch64-linux-gnu)
#   libopenblas0-pthread:arm64                    the fast kernels' BLAS, for the arm64 image
#
# Every arm64 library here is "Multi-Arch: same": it co-installs with its
# amd64 copy, but both must be the same version. When the mirror has a newer
# version than the one installed for amd64, apt upgrades the amd64 copy along
# with it (security updates of libssl3, libgnutls30, liblzma5... on a machine
# set up earlier); this script lets it. If a mirror is mid-sync and has the new
# version for one architecture only, apt stops with "but it is not going to be
# installed": run it again later (docs/deploy.md, "arm64").
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
host=$(dpkg --print-architecture)
if [ "$host" != amd64 ]; then
    echo "setup-arm64: this machine is $host; the arm64 cross toolchain is set up on amd64 only" >&2
    exit 0
fi
pkgs=(
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross   # cross compiler (binutils come with it)
  qemu-user-static                              # qemu-aarch64-static: arm64 binaries on this machine
  libjpeg-dev:arm64 libstb-dev:arm64 libcjson-dev:arm64
  liblz4-dev:arm64 libzstd-dev:arm64 libzmq3-dev:arm64 libmicrohttpd-dev:arm64 libsodium-dev:arm64
  libopenblas0-pthread:arm64                    # loaded at run time (optional), copied into the image
)
update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "setup-arm64: adding the arm64 architecture to dpkg" >&2
    $SUDO dpkg --add-architecture arm64
    update=1
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-arm64: installing ${missing[*]}" >&2
  update=1
fi
if [ $update = 1 ]; then
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup-arm64: cross toolchain and arm64 libraries present" >&2
