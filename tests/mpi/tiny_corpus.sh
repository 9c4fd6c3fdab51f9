# Sourced by the mpi test scripts: prepare_tiny_corpus DIR SEED WORDS... writes 300 documents of
# 5-30 random words from WORDS (seeded) to DIR/corpus.txt and prepares them into DIR/data with
# `$HS prepare` (10 % validation).
prepare_tiny_corpus() {
  local dir=$1 seed=$2
  shift 2
  python3 - "$dir/corpus.txt" "$seed" "$@" <<'PY'
import random, sys
r = random.Random(int(sys.argv[2]))
words = sys.argv[3:]
with open(sys.argv[1], "w") as f:
    for d in range(300):
        f.write(" ".join(r.choice(words) for _ in range(r.randint(5, 30))) + ".\n%\n")
PY
  "$HS" prepare --input "$dir/corpus.txt" --out "$dir/data" --doc-separator % --val-fraction 0.1 > /dev/null
}
