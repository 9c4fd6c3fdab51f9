#!/usr/bin/env bash
# Data parallelism changes nothing but speed: the same global batch of 4 sequences
# trained as 1 rank x 4, 2 ranks x 2 and 4 ranks x 1 gives the same loss curve, gradient norms
# and validation loss (up to floating-point summation order).
# Usage: dp_equivalence.sh HYSCALE_BINARY MPIEXEC
set -euo pipefail
HS=$1
MPIEXEC=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
source "$(dirname "$0")/tiny_corpus.sh"
prepare_tiny_corpus "$TMP" 3 the cat a dog sees likes eats red ball green apple big house
cat > "$TMP/c.yaml" <<EOF2
out_dir: $TMP/runs
data: {path: $TMP/data}
model: {parametrization: sp, n_layers: 2, d_model: 32, n_heads: 4, n_kv_heads: 2, head_dim: 8}
optimizer: {lr: 1.0e-2}
training: {seq_len: 32, max_steps: 8, threads: 1}
logging: {log_interval: 1, eval_interval: 4, eval_batches: 4}
EOF2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
"$HS" train "$TMP/c.yaml" --set name=np1 --set training.batch_size=4 > "$TMP/np1.log" 2>&1
"$MPIEXEC" -np 2 --oversubscribe "$HS" train "$TMP/c.yaml" --set name=np2 --set training.batch_size=2 > "$TMP/np2.log" 2>&1
"$MPIEXEC" -np 4 --oversubscribe "$HS" train "$TMP/c.yaml" --set name=np4 --set training.batch_size=1 > "$TMP/np4.log" 2>&1
python3 - "$TMP/runs" <<'PY'
import json, sys
def load(name):  # train losses and gradient norms (AdamW alone is blind to a gradient's scale), val losses
    rows = [json.loads(l) for l in open(f"{sys.argv[1]}/{name}/metrics.jsonl")]
    train = [r for r in rows if r["type"] == "train"]
    return ([r["train_loss"] for r in train] + [r["grad_norm"] for r in train],
            [r["val_loss"] for r in rows if r["type"] == "eval"])
ref_t, ref_v = load("np1")
assert len(ref_t) == 16 and len(ref_v) == 2, (ref_t, ref_v)
for name in ("np2", "np4"):
    t, v = load(name)
    assert len(t) == len(ref_t) and len(v) == len(ref_v), name
    for a, b in zip(t + v, ref_t + ref_v):
        assert abs(a - b) <= 2e-4 * abs(b), f"{name}: {a} vs {b}"
    print(f"{name}: train losses and grad norms {['%.5f' % x for x in t]} match np1 within 2e-4")
PY
echo "dp_equivalence: passed"
