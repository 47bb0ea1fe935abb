#!/usr/bin/env bash
# Set-up for the ONNX Runtime and PyTorch sides of bench/engine.sh (benchmark
# only; the tests do not need it): Debian's python3-onnx and python3-numpy for
# the exporter, python3-torch (1.13) for bench/onnx/torch_time.py (they work
# only with /usr/bin/python3), nodejs/npm, and npm onnxruntime-node@1.30.0
# into data/ort (gitignored). Its install script
# reaches for a registry that is not reachable; the CPU library ships inside
# the package, so it is installed with --ignore-scripts. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
ORT_VERSION=1.30.0
pkgs=(python3-onnx python3-numpy python3-torch)
# node and npm: any install will do (Debian's, or nodesource's nodejs that bundles npm)
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/onnx/setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
have=$(node -p "require('./data/ort/node_modules/onnxruntime-node/package.json').version" 2>/dev/null || true)
if [ "$have" != "$ORT_VERSION" ]; then
  echo "bench/onnx/setup: npm install onnxruntime-node@$ORT_VERSION into data/ort" >&2
  npm install --prefix data/ort --ignore-scripts --no-audit --no-fund --loglevel=error \
    "onnxruntime-node@$ORT_VERSION" >/dev/null
fi
echo "bench/onnx/setup: python3-onnx, python3-numpy, python3-torch and onnxruntime-node@$ORT_VERSION present" >&2
