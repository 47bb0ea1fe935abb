#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs every test: the quick tier in a
# release build, then again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make check
