#!/usr/bin/env bash
# One GPU check for a lent machine's few minutes: runs the gpu-labelled tests, `bench kernels`,
# the NCCL communicator and the decode benchmark, logs everything under $OUT (default ./gpu_check_out), and prints a
# summary table last.
#
# Usage (on the GPU machine, from the repository root):
#   scripts/gpu_check.sh [BIN_DIR]
# BIN_DIR holds `hyscale` and `tests/test_gpu` (default: build). Built elsewhere? Build here with
#   cmake -S . -B build-gpu -G Ninja -DHYSCALE_CUDA=ON -DHYSCALE_MPI=OFF -DCMAKE_CUDA_ARCHITECTURES=90
# and copy build-gpu/hyscale, build-gpu/tests/test_gpu and the non-CUDA shared libraries `ldd`
# lists into one folder; run with LD_LIBRARY_PATH pointing at it.
set -uo pipefail
BIN=${1:-build}
OUT=${OUT:-./gpu_check_out}
mkdir -p "$OUT"
declare -a NAMES RESULTS
record() { NAMES+=("$1"); RESULTS+=("$2"); }

if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/device.txt" 2>&1
  record "device" "$(head -1 "$OUT/device.txt")"
else
  record "device" "no nvidia-smi on this machine"
fi

# 1. gpu tests (every CUDA kernel against its CPU twin, device memory, caching allocator)
if [ -x "$BIN/tests/test_gpu" ]; then
  timeout 300 "$BIN/tests/test_gpu" --reporter compact > "$OUT/test_gpu.log" 2>&1
  rc=$?
  case $rc in
    0) record "gpu tests" "passed: $(grep -Eo 'All tests passed.*' "$OUT/test_gpu.log" | head -1)" ;;
    77) record "gpu tests" "SKIPPED (no device visible)" ;;
    *) record "gpu tests" "FAILED (exit $rc): $(grep -c 'FAILED' "$OUT/test_gpu.log") failures, see test_gpu.log" ;;
  esac
else
  record "gpu tests" "missing $BIN/tests/test_gpu"
fi

# 2. NCCL communicator on one GPU (a one-rank group still exercises init and the collectives)
if [ -x "$BIN/hyscale" ]; then
  timeout 120 "$BIN/hyscale" bench comm --backend nccl --sizes 1M,64M --iters 10 > "$OUT/bench_comm_nccl.log" 2>&1
  rc=$?
  record "bench comm --backend nccl" "$([ $rc -eq 0 ] && echo ok || echo "exit $rc (see bench_comm_nccl.log)")"
  # 3. kernel bandwidth / GEMM throughput against the copy and GEMM ceilings
  timeout 180 "$BIN/hyscale" bench kernels --reps 20 > "$OUT/bench_kernels.log" 2>&1
  rc=$?
  record "bench kernels" "$([ $rc -eq 0 ] && head -1 "$OUT/bench_kernels.log" | cut -c1-110 || echo "exit $rc (see bench_kernels.log)")"
  # 4. decode benchmark (CPU path until the CUDA backend runs the model; a reference point)
  timeout 240 "$BIN/hyscale" bench decode --archs transformer,sambay --depth 8 --prompt 512 --gen 2048 \
    --set model.ar=64 --set model.head_dim=64 --json "$OUT/bench_decode.json" > "$OUT/bench_decode.log" 2>&1
  rc=$?
  record "bench decode (CPU path)" "$([ $rc -eq 0 ] && grep -E '^sambay ' "$OUT/bench_decode.log" | head -1 | tr -s ' ' || echo "exit $rc")"
fi

echo
echo "=== gpu_check summary ($(date -u +%Y-%m-%dT%H:%MZ)) ==="
for i in "${!NAMES[@]}"; do printf '%-28s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"; done
