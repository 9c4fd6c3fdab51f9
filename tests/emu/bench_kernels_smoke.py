#!/usr/bin/env python3
"""`hyscale bench kernels --smoke --json F` on the emulated device (label emu): every row of the
kernel benchmark runs (the [wgmma] rows too: the emulator is compute capability 9.0), the JSON
holds them with positive times and finite values, and scripts/bench_compare.py reads it.
The timings themselves mean nothing here.

  bench_kernels_smoke.py HYSCALE_EMU SOURCE_DIR
"""
import json
import math
import os
import subprocess
import sys
import tempfile


def main():
    exe, src = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "kernels.json")
        r = subprocess.run([exe, "bench", "kernels", "--smoke", "--reps", "1", "--json", out],
                           capture_output=True, text=True, timeout=600)
        print(r.stdout[-3000:])
        if r.returncode != 0:
            print(r.stderr[-3000:])
            print(f"FAIL: bench kernels --smoke exited {r.returncode}")
            return 1
        doc = json.load(open(out))
        rows = doc["rows"]
        names = [x["name"] for x in rows]
        problems = []
        for x in rows:
            if not (x["ms"] > 0 and math.isfinite(x["value"]) and x["unit"] in ("GB/s", "TFLOP/s")):
                problems.append(f"row {x}")
        for family in ("add f32", "cross-entropy", "adamw", "gemm bf16", "wgrad", "attention fwd causal",
                       "attention fwd+bwd window", "[16 rows/warp]", "[wgmma]", "[atomic dq]",
                       "diff attention fwd+bwd", "[fused]", "[fused SIMT]", "[split]",
                       "selective scan fwd+bwd [atomic dB/dC]", "z-gate", "causal conv1d + silu"):
            if not any(family in n for n in names):
                problems.append(f"no row with '{family}'")
        if len(set(names)) != len(names):
            problems.append("duplicate row names")
        if not (doc.get("copy_gbs", 0) > 0 and doc.get("gemm_tflops", 0) > 0):
            problems.append("no ceilings")
        if "alternatives:" not in r.stdout:
            problems.append("no alternatives table")
        torch = os.path.join(tmp, "torch.json")
        json.dump({"device": doc["device"], "rows": []}, open(torch, "w"))
        c = subprocess.run([sys.executable, os.path.join(src, "scripts", "bench_compare.py"), out, torch],
                           capture_output=True, text=True)
        if c.returncode != 0 or "attention vs PyTorch:" not in c.stdout:
            problems.append(f"bench_compare.py: exit {c.returncode}: {c.stderr[-500:]}")
        elif "| differential attention |" not in c.stdout:
            problems.append("bench_compare.py: no differential-attention route table")
        for p in problems:
            print("FAIL:", p)
        print(f"{len(rows)} rows")
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
