#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs every test: the quick tier in a
# release build, then again under AddressSanitizer + UndefinedBehaviorSanitizer,
# then the arm64 cross build's tests under qemu (make cross-check: setup has
# installed its toolchain, so here it must run; FOGPIPE_NO_ARM64=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -n "${FOGPIPE_NO_ARM64:-}" ]; then make check; else make check CROSS_REQUIRED=1; fi
