#!/usr/bin/env bash
# The main job: set up, build, prepare the default corpus (Debian's fortunes),
# train the default Transformer++ on the CPU, compare its validation loss with
# the bigram baseline, and sample a few lines. Re-running continues the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
./scripts/setup.sh
./scripts/build.sh hyscale
HS=./build/hyscale
DATA=data/fortunes
if [ ! -f "$DATA/dataset.json" ]; then
  FORTUNES=/usr/share/games/fortunes
  [ -d "$FORTUNES" ] || { echo "quickstart: $FORTUNES not found (apt package 'fortunes')" >&2; exit 1; }
  $HS prepare --input "$FORTUNES" --out "$DATA" --doc-separator % --val-fraction 0.05
fi
$HS train configs/default.yaml --resume auto "$@"

RUN=runs/default
echo
echo "== validation loss vs baselines (nats per byte, same validation split)"
$HS baselines --data "$DATA" --json > "$RUN/baselines.json"
python3 - "$RUN/metrics.jsonl" "$RUN/baselines.json" "$RUN/config.resolved.yaml" <<'PY'
import json, re, sys
evals = [json.loads(l) for l in open(sys.argv[1]) if '"val_loss"' in l]
if not evals:
    sys.exit("quickstart: no evaluation in " + sys.argv[1])
b = json.load(open(sys.argv[2]))
model = evals[-1]["val_loss"]
print(f"  order-0 entropy (train split)        {b['unigram_entropy_train']:.4f}")
print(f"  unigram model                        {b['unigram_val']:.4f}")
print(f"  bigram model                         {b['bigram_val']:.4f}")
arch = re.search(r"^\s+arch:\s*(\S+)", open(sys.argv[3]).read(), re.M).group(1)
label = f"hyscale {arch} (step {evals[-1]['step']})"
print(f"  {label:<37}{model:.4f}")
verdict = "below" if model < b["bigram_val"] else "NOT below"
print(f"  => the model's validation loss is {verdict} the bigram baseline")
PY

CKPT=$RUN/checkpoints/$(cat $RUN/checkpoints/latest)
echo
echo "== samples from $CKPT"
for p in "A " "Q: " "The "; do
  echo "--- prompt: \"$p\""
  $HS generate --ckpt "$CKPT" --prompt "$p" --max-new 160 --temperature 0.8 --top-k 40 --seed 7
done
echo
echo "quickstart: done in $(( $(date +%s) - t0 )) s"
