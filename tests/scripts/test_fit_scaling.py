#!/usr/bin/env python3
"""Tests for scripts/fit_scaling.py (plain unittest; registered with ctest as scripts_fit_scaling).

(a) golden fit reproduction: SPEC section 7's compute-scaling A, b, C from the paper's
    hard-coded losses, to the printed precision;
(b) recovery of known A, b, C from exact synthetic data;
(c) the CLI end to end on fake run directories (resumed run, garbage line);
(d) bad input gives exit code 2 and a message, never a traceback.

The script is found via $HYSCALE_SOURCE_DIR (set by ctest), else relative to this file.
"""

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.environ.get("HYSCALE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SCRIPT = os.path.join(SOURCE_DIR, "scripts", "fit_scaling.py")


def load_module():
    spec = importlib.util.spec_from_file_location("fit_scaling", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fs = load_module()

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
A_TRUE, B_TRUE, C_TRUE = 40.0, 0.07, 0.6


def true_loss(x):
    return A_TRUE * x ** (-B_TRUE) + C_TRUE


def run_cli(args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, SCRIPT] + list(args), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


class GoldenFitReproduction(unittest.TestCase):
    """(a) SPEC section 7 compute-scaling table, refit from the paper's losses."""

    def test_paper_x_axis(self):
        x = fs.paper_flops_axis()
        listed = [9.12e18, 1.04e20, 5.84e20, 2.23e21, 6.65e21]
        for xv, lv in zip(x, listed):
            self.assertEqual(float(f"{xv:.2e}"), lv)
        # Transformer++ d16 = n0, trained on t0 = 1e11 tokens.
        self.assertAlmostEqual(x[2], 6 * 237568 * 16**3 * 1e11, delta=1.0)

    def test_golden_fits(self):
        x = fs.paper_flops_axis()
        expected = {  # SPEC section 7 table, printed precision
            "Transformer++ SP": ("239.90", "0.12", "1.11"),
            "Transformer++ μP++": ("49.64", "0.07", "0.64"),
            "Transformer++ μP": ("54.54", "0.076", "0.643"),
            "Samba+YOCO μP++": ("40.57", "0.07", "0.61"),
            "SambaY μP++": ("39.79", "0.07", "0.58"),
        }
        self.assertEqual(set(expected), set(fs.GOLDEN_LOSSES))
        for series, losses in fs.GOLDEN_LOSSES.items():
            f = fs.fit_power_law(x, losses, form="flops")
            for key, printed in zip(("A", "b", "C"), expected[series]):
                with self.subTest(series=series, param=key):
                    dec = len(printed.split(".")[1])
                    self.assertLessEqual(abs(f[key] - float(printed)), 0.5 * 10**-dec + 1e-12,
                                         f"{series} {key}={f[key]!r} vs SPEC {printed}")
            self.assertGreater(f["r2"], 0.999)
        # SPEC: "unrounded 0.585 vs 0.607"
        c_y = fs.fit_power_law(x, fs.GOLDEN_LOSSES["SambaY μP++"])["C"]
        c_yoco = fs.fit_power_law(x, fs.GOLDEN_LOSSES["Samba+YOCO μP++"])["C"]
        self.assertEqual(round(c_y, 3), 0.585)
        self.assertEqual(round(c_yoco, 3), 0.607)

    def test_golden_cli(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = run_cli(["--golden", "--bootstrap", "0", "--out", "g"], cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("golden check passed", r.stdout)
            self.assertIn("Data-scaling golden check skipped", r.stdout)
            with open(os.path.join(tmp, "g.csv"), newline="", encoding="utf-8") as f:
                rows = {row["group"]: row for row in csv.DictReader(f)}
            self.assertEqual(len(rows), 5)
            self.assertEqual(f"{float(rows['SambaY μP++']['A']):.2f}", "39.79")
            with open(os.path.join(tmp, "g.png"), "rb") as f:
                self.assertEqual(f.read(8), PNG_MAGIC)


class SyntheticRecovery(unittest.TestCase):
    """(b) exact data from a known law comes back."""

    def test_recover_flops_form(self):
        x = [1e18, 1e19, 1e20, 1e21, 3e21, 1e22]
        y = [true_loss(v) for v in x]
        f = fs.fit_power_law(x, y, form="flops")
        for key, want in (("A", A_TRUE), ("b", B_TRUE), ("C", C_TRUE)):
            self.assertLess(abs(f[key] - want) / want, 1e-3, f"{key}={f[key]!r}")
        self.assertGreater(f["r2"], 0.999999)

    def test_unsorted_input_same_result(self):
        x = [1e18, 1e19, 1e20, 1e21, 3e21, 1e22]
        y = [true_loss(v) for v in x]
        f1 = fs.fit_power_law(x, y)
        f2 = fs.fit_power_law(x[::-1], y[::-1])
        for key in ("A", "b", "C"):
            self.assertEqual(f1[key], f2[key])

    def test_recover_data_form(self):
        x = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]  # billions of tokens
        a, b, c = 1.2, 0.4, 1.8
        y = [a * v ** (-b) + c for v in x]
        f = fs.fit_power_law(x, y, form="data")
        for key, want in (("A", a), ("b", b), ("C", c)):
            self.assertLess(abs(f[key] - want) / want, 1e-3, f"{key}={f[key]!r}")

    def test_initial_guess_flops(self):
        x = [1e18, 1e19, 1e20]
        y = [3.0, 2.5, 2.2]
        (a0, b0, c0), (lo, hi), maxfev = fs.initial_guess(x, y, "flops")
        self.assertAlmostEqual(c0, 0.95 * 2.2)
        self.assertEqual(b0, 0.05)
        self.assertAlmostEqual(a0, (3.0 - c0) * 1e18**0.05)
        self.assertEqual(lo, [0.0, 1e-6, 0.0])
        self.assertEqual(hi, [math.inf, 1.0, 2.2])
        self.assertEqual(maxfev, 10000)

    def test_not_enough_points(self):
        with self.assertRaises(ValueError):
            fs.fit_power_law([1e18, 1e19], [3.0, 2.5])
        with self.assertRaises(ValueError):  # three points but only two distinct X
            fs.fit_power_law([1e18, 1e19, 1e19], [3.0, 2.5, 2.5])

    def test_bootstrap_deterministic(self):
        x = [1e18, 1e19, 1e20, 1e21, 3e21, 1e22]
        y = [true_loss(v) * (1 + 0.002 * (-1) ** i) for i, v in enumerate(x)]
        c1 = fs.bootstrap_ci(x, y, "flops", n_boot=20, seed=7, group="g")
        c2 = fs.bootstrap_ci(x, y, "flops", n_boot=20, seed=7, group="g")
        self.assertEqual(c1, c2)
        self.assertGreater(c1["n_ok"], 0)
        self.assertEqual(c1["n_ok"] + c1["n_skipped"], 20)
        lo, hi = c1["C"]
        self.assertLessEqual(lo, hi)


def write_run(root, dirname, cfg_text, lines):
    d = os.path.join(root, dirname)
    os.makedirs(d)
    with open(os.path.join(d, "config.resolved.yaml"), "w", encoding="utf-8") as f:
        f.write(cfg_text)
    with open(os.path.join(d, "metrics.jsonl"), "w", encoding="utf-8") as f:
        for ln in lines:
            f.write((ln if isinstance(ln, str) else json.dumps(ln)) + "\n")
    return d


def config_yaml(name, arch, depth, param=None, extra=""):
    s = f"name: {name}\nout_dir: runs\nmodel:\n  arch: {arch}\n  depth: {depth}\n  n_layers: {depth}\n"
    if param:
        s += f"  parametrization: {param}\n"
    s += extra
    s += "optimizer:\n  lr: 0.003\n  eps: 1e-08\ntraining:\n  seq_len: 256\n"
    return s


FPT = 1.0e6  # flops per token in the fake runs


def make_four_runs(root):
    """Four sambay/mupp runs whose final losses follow the known law exactly in X = flops.

    d12 is a resumed run: its final step is logged twice, first with a wrong loss (the
    pre-resume record), then with the right one; it also contains a garbage line."""
    xs = [1e18, 1e19, 1e20, 1e21]
    dirs = []
    for depth, x in zip((8, 12, 16, 20), xs):
        tokens = x / FPT
        loss = true_loss(x)
        lines = [
            {"type": "train", "step": 50, "tokens": tokens / 2, "flops_per_token": FPT,
             "train_loss": 3.0},
            {"type": "eval", "step": 50, "tokens": tokens / 2, "val_loss": loss + 0.5},
            {"type": "train", "step": 100, "tokens": tokens, "flops_per_token": FPT,
             "paper_flops_per_token": 2 * FPT, "train_loss": 2.0},
        ]
        if depth == 12:
            lines += [
                {"type": "eval", "step": 100, "tokens": tokens, "val_loss": 9.99},
                "{this is not json",
                {"type": "train", "step": 100, "tokens": tokens, "flops_per_token": FPT,
                 "paper_flops_per_token": 2 * FPT, "train_loss": 2.0},
                {"type": "eval", "step": 100, "tokens": tokens, "val_loss": loss},
                {"type": "eval", "step": 60, "tokens": tokens * 0.6, "val_loss": 7.0},
            ]
        else:
            lines.append({"type": "eval", "step": 100, "tokens": tokens, "val_loss": loss})
        dirs.append(write_run(root, f"sambay_d{depth}",
                              config_yaml(f"sambay_d{depth}", "sambay", depth, "mupp"), lines))
    return dirs


class EndToEnd(unittest.TestCase):
    """(c) the CLI on fake run directories."""

    def test_four_runs(self):
        with tempfile.TemporaryDirectory() as tmp:
            dirs = make_four_runs(tmp)
            out = os.path.join(tmp, "out", "fit")
            r = run_cli(dirs + ["--x", "flops", "--out", out, "--bootstrap", "30", "--seed", "1"],
                        cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("Traceback", r.stderr)
            # the garbage line is reported with file and line number
            self.assertIn(os.path.join(dirs[1], "metrics.jsonl") + ":5", r.stderr)
            with open(out + ".csv", newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            self.assertEqual(len(rows), 1)
            row = rows[0]
            for col in ("group", "n_points", "A", "b", "C", "R2", "A_lo", "A_hi",
                        "b_lo", "b_hi", "C_lo", "C_hi"):
                self.assertIn(col, row)
            self.assertEqual(row["group"], "sambay mupp")
            self.assertEqual(int(row["n_points"]), 4)
            self.assertEqual(row["status"], "ok")
            for key, want in (("A", A_TRUE), ("b", B_TRUE), ("C", C_TRUE)):
                self.assertLess(abs(float(row[key]) - want) / want, 1e-3, f"{key}={row[key]}")
            self.assertGreater(float(row["R2"]), 0.99999)
            self.assertLessEqual(float(row["C_lo"]), float(row["C_hi"]))
            with open(out + ".png", "rb") as f:
                self.assertEqual(f.read(8), PNG_MAGIC)
            self.assertIn("sambay mupp", r.stdout)
            self.assertIn("Irreducible loss C", r.stdout)

            # Same seed: identical CSV (deterministic bootstrap).
            out2 = os.path.join(tmp, "fit2")
            r2 = run_cli(dirs + ["--out", out2, "--bootstrap", "30", "--seed", "1"], cwd=tmp)
            self.assertEqual(r2.returncode, 0, r2.stderr)
            with open(out + ".csv", encoding="utf-8") as f1, open(out2 + ".csv", encoding="utf-8") as f2:
                self.assertEqual(f1.read(), f2.read())

    def test_paper_flops_tokens_and_default_prefix(self):
        with tempfile.TemporaryDirectory() as tmp:
            dirs = make_four_runs(tmp)
            r = run_cli(dirs + ["--x", "paper_flops", "--bootstrap", "0"], cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(tmp, "scaling_fit.csv"), newline="", encoding="utf-8") as f:
                row = next(csv.DictReader(f))
            # X doubled: b and C unchanged, A scaled by 2^b.
            self.assertLess(abs(float(row["b"]) - B_TRUE) / B_TRUE, 1e-3)
            self.assertLess(abs(float(row["A"]) - A_TRUE * 2**B_TRUE) / A_TRUE, 1e-3)
            self.assertTrue(os.path.isfile(os.path.join(tmp, "scaling_fit.png")))

            r = run_cli(dirs + ["--x", "tokens", "--x-scale", "1e9", "--form", "data",
                                "--bootstrap", "0", "--out", "t"], cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_groups_skips_and_not_enough_points(self):
        with tempfile.TemporaryDirectory() as tmp:
            dirs = make_four_runs(tmp)
            lone = write_run(tmp, "transformer_d8", config_yaml("transformer_d8", "transformer", 8),
                             [{"type": "train", "step": 10, "tokens": 1e12, "flops_per_token": FPT},
                              {"type": "eval", "step": 10, "tokens": 1e12, "val_loss": 3.1}])
            noeval = write_run(tmp, "noeval", config_yaml("noeval", "samba", 8),
                               [{"type": "train", "step": 10, "tokens": 1e12, "flops_per_token": FPT}])
            r = run_cli(dirs + [lone, noeval, "--bootstrap", "0", "--out", "f"], cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("no eval record", r.stderr)
            self.assertIn("noeval", r.stderr)
            with open(os.path.join(tmp, "f.csv"), newline="", encoding="utf-8") as f:
                rows = {row["group"]: row for row in csv.DictReader(f)}
            self.assertEqual(set(rows), {"sambay mupp", "transformer"})
            self.assertEqual(rows["transformer"]["status"], "not enough points")
            self.assertEqual(rows["transformer"]["A"], "")

    def test_params_missing_key_is_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            dirs = make_four_runs(tmp)
            r = run_cli(dirs + ["--x", "params", "--bootstrap", "0"], cwd=tmp)
            self.assertEqual(r.returncode, 2)
            self.assertIn("model.non_embedding_params", r.stderr)
            self.assertIn("sambay_d8", r.stderr)
            self.assertNotIn("Traceback", r.stderr)


    def test_params_axis_and_zero_paper_flops(self):
        with tempfile.TemporaryDirectory() as tmp:
            dirs = []
            for depth, n in ((8, 1e8), (12, 4e8), (16, 1e9)):
                extra = f"  non_embedding_params: {int(n)}\n"
                lines = [{"type": "train", "step": 5, "tokens": 1e9, "flops_per_token": FPT,
                          "paper_flops_per_token": 0.0},  # hyscale writes 0 without model.depth
                         {"type": "eval", "step": 5, "tokens": 1e9, "val_loss": 0.5 + 30 * n ** -0.2}]
                dirs.append(write_run(tmp, f"t{depth}", config_yaml(f"t{depth}", "transformer", depth,
                                                                     "sp", extra), lines))
            r = run_cli(dirs + ["--x", "params", "--bootstrap", "0", "--out", "p"], cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(tmp, "p.csv"), newline="", encoding="utf-8") as f:
                row = next(csv.DictReader(f))
            self.assertEqual(row["group"], "transformer sp")
            self.assertEqual(int(row["n_points"]), 3)
            r = run_cli(dirs + ["--x", "paper_flops", "--bootstrap", "0"], cwd=tmp)
            self.assertEqual(r.returncode, 2)
            self.assertIn("paper_flops_per_token", r.stderr)
            self.assertIn("t8", r.stderr)
            self.assertNotIn("Traceback", r.stderr)


class BadInput(unittest.TestCase):
    """(d) exit code 2 and a message naming the file, no traceback."""

    def assert_clean_error(self, r, needle):
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(needle, r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    def test_missing_dir(self):
        with tempfile.TemporaryDirectory() as tmp:
            missing = os.path.join(tmp, "does_not_exist")
            self.assert_clean_error(run_cli([missing], cwd=tmp), missing)

    def test_missing_metrics(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "r")
            os.makedirs(d)
            with open(os.path.join(d, "config.resolved.yaml"), "w") as f:
                f.write(config_yaml("r", "sambay", 8))
            self.assert_clean_error(run_cli([d], cwd=tmp), os.path.join(d, "metrics.jsonl"))

    def test_malformed_yaml(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = write_run(tmp, "bad", "name: bad\nmodel: [unclosed\n  arch: x\n", [])
            self.assert_clean_error(run_cli([d], cwd=tmp), os.path.join(d, "config.resolved.yaml"))

    def test_missing_arch(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = write_run(tmp, "noarch", "name: x\nmodel:\n  depth: 8\n",
                          [{"type": "eval", "step": 1, "tokens": 10, "val_loss": 2.0}])
            self.assert_clean_error(run_cli([d], cwd=tmp), "model.arch")

    def test_no_args(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = run_cli([], cwd=tmp)
            self.assertEqual(r.returncode, 2)
            self.assertNotIn("Traceback", r.stderr)


if __name__ == "__main__":
    if not os.path.isfile(SCRIPT):
        print(f"cannot find {SCRIPT} (set HYSCALE_SOURCE_DIR)", file=sys.stderr)
        sys.exit(1)
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
