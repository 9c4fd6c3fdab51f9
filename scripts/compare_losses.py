#!/usr/bin/env python3
"""Compare two runs' per-step training losses (metrics.jsonl, log_interval 1).

  compare_losses.py REF_METRICS GOT_METRICS [--rel TOL] [--drop TOL]

Prints both curves side by side, then the largest relative difference and the loss drops; exits 1
when a step differs by more than --rel (relative to the reference) or the drops differ by more
than --drop nats, 2 when the files do not cover the same steps.
"""
import argparse
import json
import math
import sys


def losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if r.get("type") == "train":
                out[int(r["step"])] = float(r["train_loss"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("got")
    ap.add_argument("--rel", type=float, default=1e-3)
    ap.add_argument("--drop", type=float, default=0.1)
    a = ap.parse_args()
    ref, got = losses(a.ref), losses(a.got)
    if not ref or sorted(ref) != sorted(got):
        print(f"compare_losses: steps differ ({len(ref)} reference records, {len(got)} compared)")
        return 2
    worst, worst_step = 0.0, 0
    print(f"{'step':>5} {'reference':>12} {'compared':>12} {'rel diff':>10}")
    for s in sorted(ref):
        d = abs(got[s] - ref[s]) / abs(ref[s])
        if not math.isfinite(d):  # a NaN/inf loss on either side fails (NaN compares false below)
            d = math.inf
        if d > worst or (worst_step == 0 and d == worst):
            worst, worst_step = d, s
        print(f"{s:5d} {ref[s]:12.6f} {got[s]:12.6f} {d:10.2e}")
    first, last = min(ref), max(ref)
    drop_r, drop_g = ref[first] - ref[last], got[first] - got[last]
    ok = worst <= a.rel and abs(drop_r - drop_g) <= a.drop
    print(f"worst relative difference {worst:.2e} at step {worst_step} (tolerance {a.rel:g}); "
          f"loss drop reference {drop_r:.4f}, compared {drop_g:.4f} (tolerance {a.drop:g}): "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
