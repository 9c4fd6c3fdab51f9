#!/usr/bin/env bash
# Set up, build, and run the whole ctest suite (labels unit, mpi, gpu, e2e).
# gpu tests skip with a message when no CUDA device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 "$@"
