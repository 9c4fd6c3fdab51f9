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
  # 4. end-to-end training throughput on the GPU: tokens/s and MFU, bf16, seq 4096
  for arch in transformer sambay; do
    for depth in 8 16; do
      log="$OUT/bench_train_${arch}_d${depth}.log"
      timeout 240 "$BIN/hyscale" bench train configs/gpu_bench.yaml --set model.arch=$arch --set model.depth=$depth \
        --steps 5 --warmup 2 > "$log" 2>&1
      rc=$?
      if [ $rc -eq 0 ]; then
        record "bench train $arch d$depth" "$(grep -E '^tokens/s' "$log" | tr -s ' ') | $(grep -E '^MFU' "$log" | tr -s ' ')"
      else
        record "bench train $arch d$depth" "exit $rc: $(grep -m1 -i error "$log" | cut -c1-90)"
      fi
    done
  done
fi

# 5. PyTorch references on the same GPU (SDPA flash/cuDNN, FlexAttention windows, a scan)
if python3 -c "import torch" > /dev/null 2>&1; then
  timeout 300 python3 scripts/bench_torch_ref.py --json "$OUT/bench_torch_ref.json" > "$OUT/bench_torch_ref.log" 2>&1
  rc=$?
  record "torch reference" "$([ $rc -eq 0 ] && grep -c TFLOP "$OUT/bench_torch_ref.log" | sed 's/$/ attention rows (bench_torch_ref.log)/' || echo "exit $rc")"
else
  record "torch reference" "no torch on this machine"
fi

for f in bench_kernels.log bench_torch_ref.log; do
  [ -s "$OUT/$f" ] && { echo; echo "--- $f"; cat "$OUT/$f"; }
done
echo
echo "=== gpu_check summary ($(date -u +%Y-%m-%dT%H:%MZ)) ==="
for i in "${!NAMES[@]}"; do printf '%-28s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"; done
