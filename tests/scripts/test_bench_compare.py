#!/usr/bin/env python3
"""Tests for scripts/bench_compare.py (plain unittest; registered with ctest as scripts_bench_compare).

On made-up benchmark files with the row names `hyscale bench kernels --json` and
scripts/bench_torch_ref.py write: the ratios and verdicts of the attention and bandwidth rows,
the fastest variant, the differential-attention routes, rows missing on either side, a device
mismatch, and bad input (exit 2 with a message, never a traceback).
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.environ.get("HYSCALE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SCRIPT = os.path.join(SOURCE_DIR, "scripts", "bench_compare.py")
SHAPE = "(2x4096, 16/4 heads, 128)"
DA = "(2x4096, 8/2 pairs, 128)"


def row(name, ms, value, unit="TFLOP/s"):
    return {"name": name, "ms": ms, "value": value, "unit": unit}


def hyscale_doc(device="NVIDIA H200"):
    rows = [
        row(f"attention fwd causal {SHAPE}", 1.0, 300.0),
        row(f"attention fwd causal {SHAPE} [16 rows/warp]", 1.2, 250.0),
        row(f"attention fwd causal {SHAPE} [wgmma]", 0.6, 500.0),
        row(f"attention fwd+bwd causal {SHAPE}", 4.0, 200.0),
        row(f"attention fwd+bwd causal {SHAPE} [atomic dq]", 4.4, 180.0),
        row(f"attention fwd window 128 {SHAPE}", 0.1, 90.0),
        row(f"attention fwd+bwd window 128 {SHAPE}", 0.4, 80.0),
        # window 2048 fwd missing on purpose
        row(f"attention fwd+bwd window 2048 {SHAPE}", 2.0, 150.0),
        row("selective scan fwd (2x4096, 4096, N16)", 0.5, 2000.0, "GB/s"),
        row("selective scan fwd+bwd", 2.0, 1500.0, "GB/s"),
        row("causal conv1d fwd+bwd (K4)", 0.3, 1000.0, "GB/s"),
        row(f"diff attention fwd causal {DA} [fused]", 0.8, 100.0),
        row(f"diff attention fwd causal {DA} [fused SIMT]", 8.0, 10.0),
        row(f"diff attention fwd causal {DA} [split]", 1.0, 80.0),
        row(f"diff attention fwd+bwd causal {DA} [fused]", 5.0, 50.0),
        row(f"diff attention fwd+bwd causal {DA} [split]", 4.0, 62.5),  # [fused SIMT] missing on purpose
    ]
    return {"device": device, "copy_gbs": 3000.0, "gemm_tflops": 900.0, "rows": rows}


def torch_doc(device="NVIDIA H200"):
    rows = [
        row("sdpa causal fwd (cudnn)", 0.5, 600.0),
        row("sdpa causal fwd+bwd (flash)", 2.0, 400.0),
        row("torch conv1d fwd+bwd (K4, depthwise)", 1.0, 300.0, "GB/s"),
        row("torch reference scan fwd+bwd (sequential)", 5000.0, 0.6, "GB/s"),
        row("flex window 128 fwd", 0.5, 18.0),
        row("flex window 128 fwd+bwd", 0.8, 40.0),
        row("flex window 2048 fwd", 0.3, 300.0),
        row("flex window 2048 fwd+bwd", 1.2, 300.0),
    ]
    return {"device": device, "torch": "2.11.0", "rows": rows}


class BenchCompareTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def write(self, name, doc):
        p = os.path.join(self.tmp.name, name)
        with open(p, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return p

    def run_script(self, *args):
        return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)

    def table(self, hy=None, th=None):
        h = self.write("h.json", hy or hyscale_doc())
        t = self.write("t.json", th or torch_doc())
        out = os.path.join(self.tmp.name, "table.md")
        r = self.run_script(h, t, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            self.assertEqual(f.read().strip(), r.stdout.strip())
        return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
                for line in r.stdout.splitlines() if line.startswith("| ")}, r.stdout

    def test_attention_ratios_verdicts_and_variants(self):
        rows, text = self.table()
        causal = rows["causal fwd"]
        self.assertEqual(causal[0], "300.0 (1.000)")
        self.assertIn("sdpa causal fwd (cudnn): 600.0", causal[1])
        self.assertEqual(causal[2], "0.50x")
        self.assertEqual(causal[3], "not met")
        self.assertEqual(causal[4], "[wgmma] 500.0, 0.83x")  # the fastest variant, not [16 rows/warp]
        fb = rows["causal fwd+bwd"]
        self.assertEqual(fb[2], "0.50x")
        self.assertEqual(fb[4], "none faster than the default")
        w128 = rows["window 128 fwd"]
        self.assertEqual(w128[2], "5.00x")
        self.assertEqual(w128[3], "**met**")
        self.assertEqual(rows["window 2048 fwd"][0], "missing")
        self.assertEqual(rows["window 2048 fwd"][3], "missing")
        self.assertEqual(rows["window 2048 fwd+bwd"][2], "0.50x")
        self.assertIn("attention vs PyTorch: 2 met, 3 not met, 1 missing", text)
        self.assertNotIn("WARNING", text)

    def test_bandwidth_rows(self):
        rows, _ = self.table()
        self.assertEqual(rows["selective scan fwd+bwd"][1], "50 %")
        self.assertEqual(rows["selective scan fwd+bwd"][2], "not met")
        self.assertEqual(rows["selective scan fwd+bwd"][4], "2500.00x")
        self.assertEqual(rows["selective scan fwd"][1], "67 %")
        self.assertEqual(rows["selective scan fwd"][2], "**met**")
        self.assertEqual(rows["selective scan fwd"][3], "–")  # no PyTorch counterpart
        self.assertEqual(rows["causal conv1d fwd+bwd (K4)"][4], "3.33x")
        self.assertEqual(rows["causal conv1d + SiLU fwd+bwd (K4)"][0], "missing")

    def test_diff_attention_routes(self):
        rows, _ = self.table()
        fwd = rows[f"fwd causal {DA}"]
        self.assertEqual(fwd, ["0.800", "8.000", "1.000", "[fused]", "0.80"])
        fb = rows[f"fwd+bwd causal {DA}"]
        self.assertEqual(fb, ["5.000", "missing", "4.000", "[split]", "1.25"])
        hy = hyscale_doc()
        hy["rows"] = [r for r in hy["rows"] if not r["name"].startswith("diff attention")]
        _, text = self.table(hy=hy)
        self.assertNotIn("differential attention", text)  # no table without the rows

    def test_variant_without_reference(self):
        th = torch_doc()
        th["rows"] = [r for r in th["rows"] if not r["name"].startswith("sdpa causal fwd (")]
        rows, _ = self.table(th=th)
        self.assertEqual(rows["causal fwd"][1], "missing")
        self.assertEqual(rows["causal fwd"][4], "[wgmma] 500.0")  # no ratio without a reference

    def test_device_mismatch_warns(self):
        _, text = self.table(th=torch_doc("NVIDIA H100 80GB HBM3"))
        self.assertIn("WARNING: the two files come from different devices", text)

    def test_bad_input(self):
        good = self.write("good.json", torch_doc())
        cases = {
            "missing file": os.path.join(self.tmp.name, "nope.json"),
            "not json": self.write("bad1.json", "{rows: oops"),
            "no rows": self.write("bad2.json", {"device": "x"}),
            "row without value": self.write("bad3.json", {"rows": [{"name": "a", "ms": 1.0, "unit": "GB/s"}]}),
            "zero time": self.write("bad4.json", {"rows": [row("a", 0.0, 1.0)]}),
            "twice": self.write("bad5.json", {"rows": [row("a", 1.0, 1.0), row("a", 2.0, 1.0)]}),
            "bad ceiling": self.write("bad6.json", {"copy_gbs": "fast", "rows": [row("a", 1.0, 1.0)]}),
        }
        for what, path in cases.items():
            with self.subTest(what):
                r = self.run_script(path, good)
                self.assertEqual(r.returncode, 2)
                self.assertIn("bench_compare:", r.stderr)
                self.assertNotIn("Traceback", r.stderr)
                self.assertIn(os.path.basename(path), r.stderr)


if __name__ == "__main__":
    unittest.main()
