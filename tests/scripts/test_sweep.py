#!/usr/bin/env python3
"""Tests for scripts/sweep.py (plain unittest; registered with ctest as scripts_sweep).

On a tiny generated corpus, a tiny sweep (transformer + sambay, depths 8 and 12, 10 steps each):
(a) a full sweep finishes every run, and a second invocation skips all of them;
(b) a sweep killed in the middle of its second run is resumed by a new invocation that does not
    relaunch the finished first run and leaves the interrupted run with one train record per step;
(c) bad sweep files exit with status 2 and a message naming the file and key;
plus --dry-run / --only.

The script is found via $HYSCALE_SOURCE_DIR, the binary via $HYSCALE_BINARY, each falling back
to paths relative to this file.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HYSCALE_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.environ.get("HYSCALE_BINARY") or os.path.join(SOURCE_DIR, "build", "hyscale")
SCRIPT = os.path.join(SOURCE_DIR, "scripts", "sweep.py")

BASE_CONFIG = """\
name: base
model:
  parametrization: mupp
  n_layers: 4        # the sweep must zero these under model.depth
  d_model: 32
  n_heads: 4
data:
  path: {data}
training:
  batch_size: 4
  seq_len: 64
  threads: 1
  max_steps: 100
logging:
  log_interval: 1
  eval_interval: 0
  eval_batches: 2
checkpointing:
  interval: 4
  keep_last: 2
"""

SWEEP = """\
name: tiny
base_config: base.yaml          # relative to this sweep file
out_dir: {out}
archs: [transformer, sambay]
depths: [8, 12]
set:
  model.ar: 4
  model.head_dim: 8
  training.max_steps: 10
  optimizer.lr: 0
  schedule.warmup_steps: 2
per_arch:
  sambay: {{model.window: 32}}
hyscale: {binary}
"""

RUNS = ["transformer_d8", "transformer_d12", "sambay_d8", "sambay_d12"]


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def train_records(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if r.get("type") == "train":
                    out.append(r)
    except OSError:
        pass
    return out


class SweepTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(BINARY, os.X_OK):
            raise unittest.SkipTest(f"hyscale binary not found at {BINARY} (set HYSCALE_BINARY)")
        cls.tmp = tempfile.TemporaryDirectory(prefix="hyscale_sweep_test_")
        root = cls.tmp.name
        words = ("the quick brown fox jumps over a lazy dog while seven wizards quietly "
                 "hex jovial bumpkins near the old mill by the river").split()
        import random
        rng = random.Random(7)
        with open(os.path.join(root, "corpus.txt"), "w") as f:
            for _ in range(300):
                f.write(" ".join(rng.choice(words) for _ in range(rng.randint(4, 25))) + "\n%\n")
        cls.data = os.path.join(root, "data")
        subprocess.run([BINARY, "prepare", "--input", os.path.join(root, "corpus.txt"), "--out", cls.data,
                        "--doc-separator", "%", "--val-fraction", "0.1"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def make_sweep(self, sub, text=None):
        d = os.path.join(self.tmp.name, sub)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "base.yaml"), "w") as f:
            f.write(BASE_CONFIG.format(data=self.data))
        out = os.path.join(d, "runs")
        path = os.path.join(d, "sweep.yaml")
        with open(path, "w") as f:
            f.write(text if text is not None else SWEEP.format(out=out, binary=BINARY))
        return path, out

    def sweep(self, *args, **kw):
        return subprocess.run(["nice", "-n", "10", sys.executable, SCRIPT, *args], capture_output=True,
                              text=True, timeout=kw.get("timeout", 120))

    def assert_run_complete(self, out, name):
        rd = os.path.join(out, name)
        recs = records(os.path.join(rd, "metrics.jsonl"))
        steps = [r["step"] for r in recs if r["type"] == "train"]
        self.assertEqual(steps, list(range(1, 11)), f"{name}: train records {steps}")
        evals = [r for r in recs if r["type"] == "eval"]
        self.assertEqual([e["step"] for e in evals], [10], name)

    # (a) -------------------------------------------------------------------------------
    def test_a_full_sweep_then_skip(self):
        path, out = self.make_sweep("full")
        p = self.sweep(path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for n in RUNS:
            self.assert_run_complete(out, n)
            self.assertTrue(os.path.isfile(os.path.join(out, "configs", n + ".yaml")))
            self.assertTrue(os.path.isfile(os.path.join(out, n, "launch.log")))
        self.assertIn("4 done, 0 skipped, 0 failed", p.stdout)
        # the generated config: depth-derived keys zeroed, run keys set
        import yaml
        with open(os.path.join(out, "configs", "sambay_d12.yaml")) as f:
            cfg = yaml.safe_load(f)
        self.assertEqual(cfg["name"], "sambay_d12")
        self.assertEqual(cfg["model"]["arch"], "sambay")
        self.assertEqual(cfg["model"]["depth"], 12)
        self.assertEqual(cfg["model"]["window"], 32)
        self.assertEqual((cfg["model"]["n_layers"], cfg["model"]["d_model"], cfg["model"]["n_heads"]), (0, 0, 0))
        with open(os.path.join(out, "sambay_d12", "config.resolved.yaml")) as f:
            res = yaml.safe_load(f)
        self.assertEqual((res["model"]["n_layers"], res["model"]["d_model"]), (12, 48))

        before = {n: read_bytes(os.path.join(out, n, "metrics.jsonl")) for n in RUNS}
        p2 = self.sweep(path)
        self.assertEqual(p2.returncode, 0, p2.stdout + p2.stderr)
        self.assertIn("0 done, 4 skipped, 0 failed", p2.stdout)
        for n in RUNS:
            self.assertEqual(read_bytes(os.path.join(out, n, "metrics.jsonl")), before[n], n)

        # --only and --dry-run launch nothing for finished runs / at all
        p3 = self.sweep(path, "--only", "sambay_d8")
        self.assertEqual(p3.returncode, 0, p3.stdout + p3.stderr)
        self.assertIn("0 done, 1 skipped", p3.stdout)
        self.assertNotIn("transformer_d8", p3.stdout)
        p4 = self.sweep(path, "--only", "nope_d8")
        self.assertEqual(p4.returncode, 2)
        self.assertIn("nope_d8", p4.stderr)

    def test_dry_run(self):
        path, out = self.make_sweep("dry")
        p = self.sweep(path, "--dry-run")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for n in RUNS:
            self.assertTrue(os.path.isfile(os.path.join(out, "configs", n + ".yaml")))
            self.assertFalse(os.path.exists(os.path.join(out, n)))
            self.assertIn(n, p.stdout)

    # (b) -------------------------------------------------------------------------------
    def test_b_killed_sweep_resumes(self):
        path, out = self.make_sweep("killed")
        second = os.path.join(out, RUNS[1], "metrics.jsonl")
        proc = subprocess.Popen(["nice", "-n", "10", sys.executable, SCRIPT, path], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and not train_records(second):
                if proc.poll() is not None:
                    break
                time.sleep(0.005)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        got = train_records(second)
        self.assertTrue(got, "the second run never logged a train record")
        self.assertLess(len(got), 10, "the second run finished before it could be killed")

        first = os.path.join(out, RUNS[0])
        kept = {f: read_bytes(os.path.join(first, f)) for f in ("metrics.jsonl", "log.txt", "launch.log")}

        p = self.sweep(path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("3 done, 1 skipped, 0 failed", p.stdout)
        self.assertIn("interrupted", p.stdout)
        for f, b in kept.items():
            self.assertEqual(read_bytes(os.path.join(first, f)), b, f"first run's {f} changed")
        for n in RUNS:
            self.assert_run_complete(out, n)

    # (c) -------------------------------------------------------------------------------
    def test_c_bad_sweep_files(self):
        good = SWEEP.format(out=os.path.join(self.tmp.name, "bad", "runs"), binary=BINARY)
        cases = [
            ("unknown top-level key", good + "colour: blue\n", "colour"),
            ("both depths and tokens", good + "tokens: [1000]\n", "depths"),
            ("neither depths nor tokens", good.replace("depths: [8, 12]\n", ""), "depths"),
            ("unknown arch", good.replace("[transformer, sambay]", "[transformer, mamba9]"), "archs"),
            ("YOCO depth", good.replace("[8, 12]", "[6, 12]"), "depths"),
            ("missing base config", good.replace("base.yaml", "nope.yaml"), "base_config"),
            ("tokens without depth", good.replace("depths: [8, 12]", "tokens: [1000, 2000]"), "model.depth"),
            ("bad placeholder", good + "launch: \"{hyscale} train {cfg}\"\n", "launch"),
            ("per_arch of another arch", good.replace("  sambay: {model.window: 32}\n",
                                                      "  sambay: {model.window: 32}\n  samba: {model.window: 8}\n"),
             "per_arch.samba"),
            ("not a mapping", "- a\n- b\n", "mapping"),
            ("bad YAML", "name: [unclosed\n", "YAML"),
            ("missing name", good.replace("name: tiny\n", ""), "name"),
        ]
        for what, text, key in cases:
            with self.subTest(what):
                path, _ = self.make_sweep("bad", text)
                p = self.sweep(path)
                self.assertEqual(p.returncode, 2, f"{what}: {p.stdout}{p.stderr}")
                self.assertIn(path, p.stderr)
                self.assertIn(key, p.stderr)
                self.assertNotIn("Traceback", p.stderr)
        p = self.sweep(os.path.join(self.tmp.name, "no_such_sweep.yaml"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("no_such_sweep.yaml", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
