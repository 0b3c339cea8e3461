#!/usr/bin/env bash
# Installs every Debian 12 package sampled needs to build, test, benchmark and run.
# Idempotent: packages already present are skipped by apt-get. Run as root (or with sudo).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # C++ libraries
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libtorch-dev libeigen3-dev libabsl-dev prometheus-cpp-dev libcivetweb-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev zlib1g-dev sqlite3
  # an optimised BLAS: LibTorch's and PyTorch's matrix products go through libblas.so.3 (reference BLAS otherwise)
  libopenblas0-pthread
  # Python client, its tests, the benchmark peer and the papers' experiment checks
  python3 python3-grpcio python3-protobuf python3-numpy python3-matplotlib python3-pytest python3-torch python3-sklearn
  # promtool (metrics format check) and docker-compose (compose file check)
  prometheus docker-compose
  # used by scripts and tests
  curl
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
