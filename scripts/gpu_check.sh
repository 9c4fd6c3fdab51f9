#!/usr/bin/env bash
# One GPU check for a lent machine's few minutes: runs the gpu-labelled tests (in groups, each
# under its own time limit, so one hang or crash does not hide the rest), `bench kernels`, the
# PyTorch references, `bench train` and the NCCL communicator; logs everything under $OUT
# (default ./gpu_check_out) and prints a summary table last. The whole script keeps to a
# deadline (GPU_CHECK_BUDGET seconds, default 480): a step that would start after it is skipped
# and says so.
#
# Usage (on the GPU machine, from the repository root):
#   scripts/gpu_check.sh [BIN_DIR] [STEPS]
# BIN_DIR holds `hyscale` and `tests/test_gpu` (default: build). STEPS (default "all") is a
# comma list of: tests, kernels, torch, train, train_accum, train_nondet, train_wgmma, train_da, decode, profile,
# comm, train50,
# e2e, sanitize.
# Built elsewhere? Build with
#   cmake -S . -B build-gpu -G Ninja -DHYSCALE_CUDA=ON -DHYSCALE_MPI=OFF -DHYSCALE_NATIVE=OFF \
#         -DCMAKE_CUDA_ARCHITECTURES=90
# and copy build-gpu/hyscale, build-gpu/tests/test_gpu and the non-CUDA shared libraries `ldd`
# lists into one folder; run with LD_LIBRARY_PATH pointing at it (scripts/gpu_carry.sh does it).
set -uo pipefail
BIN=${1:-build}
STEPS=${2:-all}
OUT=${OUT:-./gpu_check_out}
BUDGET=${GPU_CHECK_BUDGET:-480}
mkdir -p "$OUT"
START=$(date +%s)
declare -a NAMES RESULTS FAILED_GROUPS
record() { NAMES+=("$1"); RESULTS+=("$2"); echo "[$(( $(date +%s) - START ))s] $1: $2"; }
want() { [ "$STEPS" = all ] || [[ ",$STEPS," == *",$1,"* ]]; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# limit WANTED: the smaller of WANTED and the time left (0 when under 5 s are left)
limit() { local l; l=$(left); [ "$l" -lt 5 ] && echo 0 || echo $(( $1 < l ? $1 : l )); }

if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader > "$OUT/device.txt" 2>&1
  record "device" "$(head -1 "$OUT/device.txt")"
else
  record "device" "no nvidia-smi on this machine"
fi
echo "hyscale $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(date -u +%Y-%m-%dT%H:%MZ)" >> "$OUT/device.txt"

# 1. gpu tests by group: device memory, each kernel family, the models, the 50-step runs.
run_group() {  # name catch-spec seconds
  local name=$1 spec=$2 t
  t=$(limit "$3")
  if [ "$t" -eq 0 ]; then record "test $name" "skipped (budget)"; return; fi
  timeout -k 5 "$t" "$BIN/tests/test_gpu" "$spec" --reporter compact --durations yes > "$OUT/test_$name.log" 2>&1
  local rc=$?
  case $rc in
    0) record "test $name" "passed: $(grep -Eo '(All tests passed|test cases:).*' "$OUT/test_$name.log" | tail -1)" ;;
    77) record "test $name" "SKIPPED (no device visible)" ;;
    124|137) record "test $name" "TIMEOUT after ${t}s"; FAILED_GROUPS+=("$name|$spec") ;;
    *) record "test $name" "FAILED (exit $rc): $(grep -Eo 'test cases:.*' "$OUT/test_$name.log" | tail -1)"
       FAILED_GROUPS+=("$name|$spec") ;;
  esac
}
if want tests; then
  if [ -x "$BIN/tests/test_gpu" ]; then
    run_group device '[gpu]~[kernels]~[model]~[train]~[decode]' 30
    run_group core '[kernels]~[attention]~[scan]~[conv1d]~[hybrid]' 40
    run_group conv1d '[conv1d]' 30
    run_group scan '[scan]' 40
    run_group hybrid '[hybrid]' 30
    run_group attention '[attention]~[diff_attn]~[wgmma]' 120
    run_group wgmma '[wgmma]' 60
    run_group diff_attn '[diff_attn]' 90
    run_group model '[model]' 60
    run_group decode '[decode]' 40
  else
    record "gpu tests" "missing $BIN/tests/test_gpu"
  fi
fi

if [ -x "$BIN/hyscale" ]; then
  # 2. kernel bandwidth / throughput against the copy and GEMM ceilings measured in the same run
  if want kernels; then
    t=$(limit 90)
    if [ "$t" -gt 0 ]; then
      timeout -k 5 "$t" "$BIN/hyscale" bench kernels --reps 20 --json "$OUT/bench_kernels.json" > "$OUT/bench_kernels.log" 2>&1
      rc=$?
      record "bench kernels" "$([ $rc -eq 0 ] && head -1 "$OUT/bench_kernels.log" | cut -c1-110 || echo "exit $rc (see bench_kernels.log)")"
    else record "bench kernels" "skipped (budget)"; fi
  fi
fi

# 3. PyTorch references on the same GPU (SDPA flash/cuDNN, FlexAttention windows, scan, conv1d)
if want torch; then
  t=$(limit 150)
  if ! python3 -c "import torch" > /dev/null 2>&1; then
    record "torch reference" "no torch on this machine"
  elif [ "$t" -gt 0 ]; then
    timeout -k 5 "$t" python3 -u scripts/bench_torch_ref.py ${TORCH_REF_ARGS:-} --json "$OUT/bench_torch_ref.json" > "$OUT/bench_torch_ref.log" 2>&1
    rc=$?
    record "torch reference" "$([ $rc -eq 0 ] && echo "ok: $(grep -c -E 'TFLOP|GB/s' "$OUT/bench_torch_ref.log") rows" || echo "exit $rc (bench_torch_ref.log)")"
  else record "torch reference" "skipped (budget)"; fi
fi
# 3a. the issue's ratio table (hyscale vs PyTorch, targets) from the two JSON files of steps 2 and 3
if [ -s "$OUT/bench_kernels.json" ] && [ -s "$OUT/bench_torch_ref.json" ]; then
  python3 scripts/bench_compare.py "$OUT/bench_kernels.json" "$OUT/bench_torch_ref.json" \
    --out "$OUT/bench_compare.md" > /dev/null 2> "$OUT/bench_compare.err"
  record "vs PyTorch" "$([ -s "$OUT/bench_compare.md" ] && tail -1 "$OUT/bench_compare.md" | cut -c1-110 || head -1 "$OUT/bench_compare.err")"
fi

# record_bench NAME RC LOG: tokens/s and MFU of a `bench train` log, or why it failed
# (TARGET, when set: the issue's MFU target in %, "met" or "not met" appended)
record_bench() {
  if [ "$2" -eq 0 ]; then
    local verdict="" mfu
    mfu=$(grep -E '^MFU' "$3" | awk '{print $NF}')
    if [ -n "${TARGET:-}" ] && [ -n "$mfu" ]; then
      verdict=" | target $TARGET %: $(awk -v m="$mfu" -v t="$TARGET" 'BEGIN { print (m >= t ? "met" : "not met") }')"
    fi
    record "$1" "$(grep -E '^tokens/s' "$3" | tr -s ' ') | $(grep -E '^MFU' "$3" | tr -s ' ')$verdict"
  else
    record "$1" "exit $2: $(grep -m1 -i -E 'error|what' "$3" | cut -c1-90)"
  fi
}
# bench_train NAME LOG ARGS...: `hyscale bench train configs/gpu_bench.yaml ARGS` under the budget
# (at most 60 s), its log in LOG, tokens/s and MFU recorded as NAME (the caller's environment,
# e.g. a HYSCALE_* switch set before the call, reaches hyscale)
bench_train() {
  local name=$1 log=$2 t
  shift 2
  t=$(limit 60)
  if [ "$t" -eq 0 ]; then record "$name" "skipped (budget)"; return; fi
  timeout -k 5 "$t" "$BIN/hyscale" bench train configs/gpu_bench.yaml "$@" > "$log" 2>&1
  record_bench "$name" $? "$log"
}
if [ -x "$BIN/hyscale" ]; then
  # 4. end-to-end training throughput on the GPU: tokens/s and MFU, bf16, seq 4096
  if want train; then
    for depth in 16 8; do
      for arch in transformer sambay; do
        prof=""; [ "$depth" = 16 ] && prof=--profile  # then 5 more steps timed op by op
        TARGET=""; [ "$depth" = 16 ] && TARGET=$([ "$arch" = transformer ] && echo 40 || echo 30)
        TARGET=$TARGET bench_train "bench train $arch d$depth" "$OUT/bench_train_${arch}_d${depth}.log" --set model.arch=$arch \
          --set model.depth=$depth --steps 5 --warmup 2 $prof
      done
    done
    TARGET=""
  fi
  # 4a. the same at d16 with 8 micro-batches per optimizer step (32K tokens a step): AdamW over
  # 1.2 B fp32 parameters is ~10 % of a 4096-token step and amortises as pretraining batches do
  if want train_accum; then
    for arch in transformer sambay; do
      bench_train "bench train $arch d16 accum 8" "$OUT/bench_train_${arch}_d16_accum8.log" --set model.arch=$arch \
        --set model.depth=16 --set training.grad_accum=8 --steps 3 --warmup 1
    done
  fi
  # 4a''. training.deterministic: false (dq by atomics in attention's backward, dB/dC by atomics in
  # the scan's): the price of the deterministic default, end to end at d16
  if want train_nondet; then
    for arch in transformer sambay; do
      bench_train "bench train $arch d16 [nondeterministic]" "$OUT/bench_train_${arch}_d16_nondet.log" \
        --set model.arch=$arch --set model.depth=16 --set training.deterministic=false --steps 5 --warmup 2
    done
  fi
  # 4a'''. Attention on warpgroup MMA (HYSCALE_ATTN_WGMMA=1, sm_90a: forward and deterministic backward;
  # the default is mma.sync)
  if want train_wgmma; then
    for arch in transformer sambay; do
      HYSCALE_ATTN_WGMMA=1 bench_train "bench train $arch d16 [wgmma]" "$OUT/bench_train_${arch}_d16_wgmma.log" \
        --set model.arch=$arch --set model.depth=16 --steps 5 --warmup 2
    done
  fi
  # 4a'. SambaY+DA at d16 with each differential-attention route (HYSCALE_DIFF_ATTN): the fused
  # SIMT kernels against the split into tensor-core flash-attention calls (the default, auto)
  if want train_da; then
    for mode in split fused; do
      HYSCALE_DIFF_ATTN=$mode bench_train "bench train sambayda d16 [$mode]" "$OUT/bench_train_sambayda_d16_$mode.log" \
        --set model.arch=sambayda --set model.depth=16 --steps 5 --warmup 2
    done
  fi
  # 4a''. long-generation decoding on the GPU (bf16): per-token latency and throughput as the
  # generated length grows, Transformer++ against SambaY at d8, 2K prompt; eager steps, then the
  # steps replayed as CUDA graphs (--cuda-graph; the log's "cuda graph" lines say whether they were)
  if want decode; then
    for mode in eager graph; do
      flag=""; [ "$mode" = graph ] && flag=--cuda-graph
      t=$(limit 75)
      if [ "$t" -gt 0 ]; then
        timeout -k 5 "$t" "$BIN/hyscale" bench decode --device cuda --precision bf16 --archs transformer,sambay \
          --depth 8 --prompt 2048 --gen 8192 $flag --json "$OUT/bench_decode_$mode.json" > "$OUT/bench_decode_$mode.log" 2>&1
        rc=$?
        record "bench decode d8 bf16 [$mode]" "$([ $rc -eq 0 ] && grep -E '^(transformer|sambay) |^cuda graph' "$OUT/bench_decode_$mode.log" | tr -s ' ' | cut -c1-70 | paste -sd';' || echo "exit $rc (bench_decode_$mode.log)")"
      else record "bench decode d8 bf16 [$mode]" "skipped (budget)"; fi
    done
  fi
# 4b. where a training step's GPU time goes: nsys kernel summary (top 30) of bench train at d16
  if want profile && command -v nsys > /dev/null; then
    for arch in transformer sambay; do
      t=$(limit 90)
      [ "$t" -eq 0 ] && break
      rm -f "$OUT/prof_$arch.nsys-rep"
      timeout -k 5 "$t" nsys profile --trace=cuda --sample=none --cpuctxsw=none --force-overwrite true \
        -o "$OUT/prof_$arch" "$BIN/hyscale" bench train configs/gpu_bench.yaml --set model.arch=$arch \
        --set model.depth=16 --steps 3 --warmup 1 > /dev/null 2>&1
      nsys stats --report cuda_gpu_kern_sum --format table "$OUT/prof_$arch.nsys-rep" 2>&1 | head -40 | cut -c1-230 \
        > "$OUT/profile_$arch.txt"
      rm -f "$OUT/prof_$arch.nsys-rep" "$OUT/prof_$arch.sqlite"
      record "profile $arch d16" "$(wc -l < "$OUT/profile_$arch.txt") lines (profile_$arch.txt)"
    done
  fi
  # 5. NCCL communicator on one GPU (a one-rank group still exercises init and the collectives)
  if want comm; then
    t=$(limit 30)
    if [ "$t" -gt 0 ]; then
      timeout -k 5 "$t" "$BIN/hyscale" bench comm --backend nccl --sizes 1M,64M --iters 10 > "$OUT/bench_comm_nccl.log" 2>&1
      rc=$?
      record "bench comm --backend nccl" "$([ $rc -eq 0 ] && echo ok || echo "exit $rc (see bench_comm_nccl.log)")"
    fi
  fi
fi

# 6. the 50-step GPU-vs-CPU training runs
if want train50 && [ -x "$BIN/tests/test_gpu" ]; then
  run_group train50 '[train]' 150
fi

# 7. end to end: SambaY d8 trained 50 steps on the GPU (fp32 and bf16) against the CPU run of the
#    same config and seed. The CPU reference is $BIN/e2e_ref/metrics.jsonl when it was computed
#    beforehand (same binary, any x86 machine), else it is trained here.
[ -z "${E2E_DATA:-}" ] && [ -d "$BIN/fortunes" ] && E2E_DATA="$BIN/fortunes"  # carried by gpu_carry.sh
if want e2e && [ -x "$BIN/hyscale" ]; then
  runs=$(mktemp -d)  # the runs' checkpoints (1.5 GB at d8) stay out of $OUT; metrics and logs go there
  ref="$BIN/e2e_ref/metrics.jsonl"
  if [ ! -s "$ref" ]; then
    t=$(limit 240)
    if [ "$t" -gt 0 ]; then
      timeout -k 5 "$t" "$BIN/hyscale" train configs/gpu_e2e_sambay_d8.yaml --set training.device=cpu --set data.path="${E2E_DATA:-data/fortunes}" \
        --set out_dir="$runs" --set name=cpu > "$OUT/e2e_cpu.log" 2>&1
      ref="$runs/cpu/metrics.jsonl"
      cp "$ref" "$OUT/e2e_cpu_metrics.jsonl" 2> /dev/null
    fi
  fi
  for prec in fp32 bf16; do
    t=$(limit 90)
    if [ "$t" -eq 0 ] || [ ! -s "$ref" ]; then record "e2e sambay d8 $prec" "skipped (budget or no reference)"; continue; fi
    timeout -k 5 "$t" "$BIN/hyscale" train configs/gpu_e2e_sambay_d8.yaml --set training.precision=$prec --set data.path="${E2E_DATA:-data/fortunes}" \
      --set out_dir="$runs" --set name=gpu_$prec > "$OUT/e2e_gpu_$prec.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then record "e2e sambay d8 $prec" "train exit $rc (e2e_gpu_$prec.log)"; continue; fi
    cp "$runs/gpu_$prec/metrics.jsonl" "$OUT/e2e_gpu_${prec}_metrics.jsonl"
    tol=1e-3; [ $prec = bf16 ] && tol=5e-2
    python3 scripts/compare_losses.py "$ref" "$runs/gpu_$prec/metrics.jsonl" --rel $tol > "$OUT/e2e_compare_$prec.txt" 2>&1
    record "e2e sambay d8 $prec" "$(tail -1 "$OUT/e2e_compare_$prec.txt" | cut -c1-150)"
  done
  rm -rf "$runs"
fi

# 8. a failed group again under compute-sanitizer (memcheck), while time is left
if want sanitize && command -v compute-sanitizer > /dev/null; then
  for g in "${FAILED_GROUPS[@]}"; do
    name=${g%%|*}; spec=${g#*|}
    t=$(limit 90)
    [ "$t" -eq 0 ] && break
    timeout -k 5 "$t" compute-sanitizer --tool memcheck --print-limit 20 "$BIN/tests/test_gpu" "$spec" \
      --reporter compact > "$OUT/sanitize_$name.log" 2>&1
    record "memcheck $name" "exit $?: $(grep -m1 -E 'ERROR SUMMARY' "$OUT/sanitize_$name.log")"
  done
fi

for f in bench_kernels.log bench_torch_ref.log bench_compare.md profile_transformer.txt profile_sambay.txt; do
  [ -s "$OUT/$f" ] && { echo; echo "--- $f"; cat "$OUT/$f"; }
done
for arch in transformer sambay; do  # the op profiles of `bench train --profile` at d16
  f="$OUT/bench_train_${arch}_d16.log"
  [ -s "$f" ] && grep -q '^op profile' "$f" && { echo; echo "--- $arch d16 op profile"; sed -n '/^op profile/,$p' "$f" | head -32; }
done
echo
echo "=== gpu_check summary ($(date -u +%Y-%m-%dT%H:%MZ), $(( $(date +%s) - START )) s) ==="
for i in "${!NAMES[@]}"; do printf '%-30s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"; done
# GPU_CHECK_PACK=1: leave one tarball of the logs in $OUT (for callers that fetch few files)
if [ "${GPU_CHECK_PACK:-0}" = 1 ]; then
  tar -czf "$OUT/../gpu_check_logs.tar.gz" -C "$OUT" . 2> /dev/null && rm -rf "${OUT:?}"/* && mv "$OUT/../gpu_check_logs.tar.gz" "$OUT/"
fi
