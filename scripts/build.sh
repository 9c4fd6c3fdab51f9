#!/usr/bin/env bash
# Configure (once) and build hyscale into ./build. Extra arguments are ninja targets.
# Environment: BUILD_DIR (default build), CMAKE_ARGS (extra configure flags).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
fi
# Two parallel jobs: the reference machines have 2 cores.
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" ${1:+--target "$@"}
