#!/usr/bin/env bash
# hyscale set-up: installs every Debian package and Python package the build,
# the tests and the scripts need. Idempotent: a second run installs nothing.
# Usage: ./scripts/setup.sh        (uses sudo when not root)
set -euo pipefail

APT_PKGS=(
  g++ cmake ninja-build ccache pkg-config
  libopenblas-dev libopenblas-openmp-dev libhdf5-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  catch2 libcli11-dev nlohmann-json3-dev
  libopenmpi-dev openmpi-bin
  fortunes fortunes-min
  python3 python3-pip
)
PY_PKGS=(numpy scipy matplotlib)

die() { echo "setup.sh: error: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and sudo is not available; install as root: apt-get install ${APT_PKGS[*]}"
  SUDO="sudo"
fi

missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || die "apt-get update failed (is a Debian mirror reachable?)"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
else
  echo "setup.sh: Debian packages already installed"
fi

PY=python3
command -v "$PY" >/dev/null 2>&1 || die "python3 not found after install"
pymissing=()
for p in "${PY_PKGS[@]}"; do
  "$PY" -c "import $p" >/dev/null 2>&1 || pymissing+=("$p")
done
if [ ${#pymissing[@]} -gt 0 ]; then
  echo "setup.sh: installing Python packages: ${pymissing[*]}"
  "$PY" -m pip install -q "${pymissing[@]}" 2>/dev/null \
    || "$PY" -m pip install -q --break-system-packages "${pymissing[@]}" \
    || die "pip install failed for: ${pymissing[*]}"
else
  echo "setup.sh: Python packages already installed"
fi
echo "setup.sh: done"
