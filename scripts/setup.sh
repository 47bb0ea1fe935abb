#!/usr/bin/env bash
# Installs everything fogpipe needs to build, test and run its demo on a
# Debian machine (run as root). Idempotent; safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkgs=(
  build-essential cmake pkg-config   # toolchain
  libjpeg-dev libstb-dev libcjson-dev # JPEG (libjpeg-turbo), PNG/BMP/PPM + writers, JSON
  liblz4-dev libzstd-dev             # feature-map compression on the links between stages
  libzmq3-dev                        # ZeroMQ: the transport between gateway and stages
  libmicrohttpd-dev                  # HTTP: health, readiness, metrics and the gateway's API
  libsodium-dev                      # SHA-256 of the stages' weights blobs (also under ZeroMQ's CURVE)
  darknet                            # the reference engine: oracle for tests, cfgs and sample images
  python3 curl                       # small helpers in tests and benchmarks; HTTP in tests
  libopenblas0-pthread               # sgemm/sgemv for the fast kernels (loaded at run time; optional)
  python3-yaml                       # deploy tests read the generated Kubernetes YAML
  iptables                           # tests/faults.sh cuts a link by dropping its packets
  libnetfilter-queue-dev             # fp_netem: link delay and loss for bench/cluster without netem
)
# oneDNN 2.x: JIT convolutions, used on x86-64 only (the header to build,
# the library loaded at run time; optional like OpenBLAS).
if [ "$(dpkg --print-architecture)" = amd64 ]; then pkgs+=(libdnnl-dev); fi
# podman runs the container image and the generated manifests (`podman kube
# play`) in tests/deploy_podman.sh; FOGPIPE_NO_PODMAN=1 leaves it out.
# Two of podman's recommendations that --no-install-recommends leaves out and
# `podman kube play` needs: catatonit (the init of the pause container it
# builds) and, with the CNI network backend, the dnsname plugin (pods find
# each other by name).
if [ -z "${FOGPIPE_NO_PODMAN:-}" ]; then
  pkgs+=(podman runc catatonit golang-github-containernetworking-plugin-dnsname)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# podman on these machines: runc and cgroupfs, modest default ulimits
# (docs/deploy.md). Written only when no configuration exists.
if [ -z "${FOGPIPE_NO_PODMAN:-}" ] && [ ! -e /etc/containers/containers.conf ] && [ "$(id -u)" = 0 ]; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
fi
# The arm64 cross toolchain, the arm64 libraries (multiarch) and qemu-user
# for `make cross-test ARCH=arm64` and `make image ARCH=arm64`
# (scripts/setup-arm64.sh); FOGPIPE_NO_ARM64=1 leaves them out.
if [ -z "${FOGPIPE_NO_ARM64:-}" ]; then bash "$(dirname "$0")/setup-arm64.sh"; fi
echo "setup: dependencies present" >&2
# face-api's tiny face detector (the default model of `fogpipe detect`), the
# npm packages its reference test and benchmark use, and sample images, all
# into data/ (gitignored). Without the npm registry the rest still works and
# those tests skip, saying so.
bash "$(dirname "$0")/setup-face.sh" ||
  echo "setup: WARNING: could not fetch the face detector or its test packages (see above); face tests will skip" >&2
