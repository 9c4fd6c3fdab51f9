#!/usr/bin/env bash
# Layouts change nothing but speed, and checkpoints outlive them. One global batch of 4
# sequences of a tiny SambaY+DA (every mixer: Mamba, SWA, Mamba memory, shared-KV attention,
# GMU, cross-attention, differential attention) trained 10 steps as:
#   ref    1 process, batch 4                      (checkpoints at steps 5 and 10)
#   tp2dp2 4 ranks, parallel.tp = 2, batch 2       losses = ref's within 1e-5
#   zero   4 ranks, tp = 2, ZeRO-1, batch 2        losses = tp2dp2's within 1e-6
#   dp2z   2 ranks, tp = 1, ZeRO-1 vs plain dp     losses equal within 1e-6
# Checkpoints: ref's step 5 resumed at tp 2 x dp 2 and tp2dp2's step 5 resumed in 1 process give
# the next step's loss of the uninterrupted run within 1e-6; tp2dp2 resumed at its own layout is
# bit for bit. A bad input on one rank ends the whole job with that rank's message, never a hang.
# Usage: parallel_layouts.sh HYSCALE_BINARY MPIEXEC
set -euo pipefail
HS=$1
MPIEXEC=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
source "$(dirname "$0")/tiny_corpus.sh"
prepare_tiny_corpus "$TMP" 7 the cat a dog sees likes eats red ball green apple big house small tree runs
cat > "$TMP/c.yaml" <<EOF2
out_dir: $TMP/runs
data: {path: $TMP/data}
model: {arch: sambayda, parametrization: sp, n_layers: 8, d_model: 32, n_heads: 8, n_kv_heads: 4, head_dim: 8,
        mlp_hidden: 64, window: 8, d_state: 4}
optimizer: {lr: 5.0e-3}
training: {seq_len: 32, max_steps: 10, threads: 1}
logging: {log_interval: 1, eval_interval: 5, eval_batches: 2}
checkpointing: {interval: 5, keep_last: 5}
parallel: {bucket_mb: 0.05}
EOF2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
MPI="$MPIEXEC --oversubscribe"
run() { local log=$1; shift; if ! "$@" > "$TMP/$log.log" 2>&1; then cat "$TMP/$log.log"; echo "FAILED: $*"; exit 1; fi; }
run ref "$HS" train "$TMP/c.yaml" --set name=ref --set training.batch_size=4
run tp2dp2 $MPI -np 4 "$HS" train "$TMP/c.yaml" --set name=tp2dp2 --set training.batch_size=2 --set parallel.tp=2
run zero $MPI -np 4 "$HS" train "$TMP/c.yaml" --set name=zero --set training.batch_size=2 --set parallel.tp=2 \
  --set parallel.zero=1
run dp2 $MPI -np 2 "$HS" train "$TMP/c.yaml" --set name=dp2 --set training.batch_size=2
run dp2z $MPI -np 2 "$HS" train "$TMP/c.yaml" --set name=dp2z --set training.batch_size=2 --set parallel.zero=1
CK=checkpoints/step_0000005.h5
run re_tp $MPI -np 4 "$HS" train "$TMP/c.yaml" --set name=re_tp --set training.batch_size=2 --set parallel.tp=2 \
  --resume "$TMP/runs/ref/$CK"
run re_one "$HS" train "$TMP/c.yaml" --set name=re_one --set training.batch_size=4 --resume "$TMP/runs/tp2dp2/$CK"
run re_same $MPI -np 4 "$HS" train "$TMP/c.yaml" --set name=re_same --set training.batch_size=2 --set parallel.tp=2 \
  --resume "$TMP/runs/tp2dp2/$CK"
run re_zero $MPI -np 2 "$HS" train "$TMP/c.yaml" --set name=re_zero --set training.batch_size=2 --set parallel.zero=1 \
  --resume "$TMP/runs/tp2dp2/$CK"
python3 - "$TMP/runs" <<'PY'
import json, sys
def losses(name):
    rows = [json.loads(l) for l in open(f"{sys.argv[1]}/{name}/metrics.jsonl")]
    return {r["step"]: r["train_loss"] for r in rows if r["type"] == "train"}
def close(a, b, rel, what):
    for s in b:
        if s in a:
            assert abs(a[s] - b[s]) <= rel * abs(b[s]), f"{what}: step {s}: {a[s]!r} vs {b[s]!r} (rel {rel})"
    print(f"{what}: {len(set(a) & set(b))} steps within {rel}")
ref, tp, zero, dp2, dp2z = (losses(n) for n in ("ref", "tp2dp2", "zero", "dp2", "dp2z"))
assert len(ref) == 10 and len(tp) == 10 and len(zero) == 10, (len(ref), len(tp), len(zero))
close(tp, ref, 1e-5, "tp 2 x dp 2 vs 1 process")
def vals(name):
    rows = [json.loads(l) for l in open(f"{sys.argv[1]}/{name}/metrics.jsonl")]
    return {r["step"]: r["val_loss"] for r in rows if r["type"] == "eval"}
assert sorted(vals("ref")) == [5, 10], vals("ref")
close(vals("tp2dp2"), vals("ref"), 1e-5, "validation loss (averaged over dp ranks), tp 2 x dp 2 vs 1 process")
close(zero, tp, 1e-6, "ZeRO-1 vs plain data parallel (tp 2 x dp 2)")
close(dp2z, dp2, 1e-6, "ZeRO-1 vs plain data parallel (dp 2)")
re_tp, re_one, re_same, re_zero = (losses(n) for n in ("re_tp", "re_one", "re_same", "re_zero"))
assert sorted(re_tp) == list(range(6, 11)) and sorted(re_one) == list(range(6, 11)), (sorted(re_tp), sorted(re_one))
close({6: re_tp[6]}, ref, 1e-6, "1-process checkpoint resumed at tp 2 x dp 2, next step")
close(re_tp, ref, 1e-5, "  ... and the following steps")
close({6: re_one[6]}, tp, 1e-6, "tp 2 x dp 2 checkpoint resumed in 1 process, next step")
close({6: re_zero[6]}, tp, 1e-6, "tp 2 x dp 2 checkpoint resumed at dp 2 with ZeRO-1, next step")
assert re_same == {s: tp[s] for s in range(6, 11)}, ("same-layout resume is not bit for bit", re_same, tp)
print("same-layout resume: steps 6-10 bit for bit")
PY
# A bad input on one rank: rank 1 gets a missing data directory (MPMD launch). The job must end
# with that rank's message and a non-zero exit, within seconds.
set +e
timeout 60 $MPIEXEC --oversubscribe -np 1 "$HS" train "$TMP/c.yaml" --set name=bad --set training.batch_size=2 : \
  -np 1 "$HS" train "$TMP/c.yaml" --set name=bad --set training.batch_size=2 --set data.path="$TMP/no_such_data" \
  > "$TMP/bad.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$TMP/bad.log"; echo "bad-data job: exit $rc (124 = hang)"; exit 1; }
grep -q "no_such_data" "$TMP/bad.log" || { cat "$TMP/bad.log"; echo "bad-data job: no message naming the path"; exit 1; }
set +e
timeout 60 $MPIEXEC --oversubscribe -np 1 "$HS" train "$TMP/c.yaml" --set name=bad2 --set training.batch_size=2 : \
  -np 1 "$HS" train "$TMP/c.yaml" --set name=bad2 --set training.batch_size=2 --set parallel.tp=3 \
  > "$TMP/bad2.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$TMP/bad2.log"; echo "bad-config job: exit $rc (124 = hang)"; exit 1; }
grep -q "parallel.tp" "$TMP/bad2.log" || { cat "$TMP/bad2.log"; echo "bad-config job: no message"; exit 1; }
echo "bad input on one rank: job ended (exit codes non-zero, no hang)"
echo "parallel_layouts: passed"
