#!/usr/bin/env python3
"""Sweep launcher for hyscale scaling-law studies.

    python3 scripts/sweep.py SWEEP.yaml [--dry-run] [--only RUN ...]

A sweep file names a base hyscale config, a list of architectures and either a list of
muP++ depths (`depths:`, runs named <arch>_d<depth>) or a list of token budgets (`tokens:`,
runs named <arch>_t<tokens>, one `model.depth` given under `set:`):

    name: cpu_demo
    base_config: configs/default.yaml   # relative to the repo root or the sweep file
    out_dir: runs/sweeps/cpu_demo       # run directories; configs go to <out_dir>/configs/
    archs: [transformer, sambay]
    depths: [8, 12, 16, 20]
    set: {model.ar: 8}                  # shared overrides (any hyscale key)
    per_arch: {sambay: {model.window: 64}}
    launch: "{hyscale} train {config} --resume auto"   # {hyscale} {config} {name} {run_dir}
    hyscale: build/hyscale              # default: $HYSCALE_BINARY, else build/hyscale

Every run gets a complete config at <out_dir>/configs/<name>.yaml. Runs execute one after
another through the launch template (a shell command run from the repo root), output appended
to <run_dir>/launch.log. A run whose metrics.jsonl holds an eval record at the resolved
training.max_steps is done and skipped; a run directory that exists but is not done is
launched again (with `--resume auto` it continues from its newest checkpoint). Exit status:
0 all runs done, 1 some run failed, 2 bad sweep file or arguments.
"""

import argparse
import copy
import json
import os
import shlex
import string
import subprocess
import sys
import time

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.stderr.write("sweep: error: PyYAML is required (pip install pyyaml)\n")
    sys.exit(2)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHS = ("transformer", "transformerls", "samba", "sambayoco", "sambay", "sambayda", "swayoco")
YOCO_ARCHS = ("sambayoco", "sambay", "sambayda", "swayoco")
TOP_KEYS = ("name", "base_config", "out_dir", "archs", "depths", "tokens", "set", "per_arch",
            "launch", "hyscale")
DEFAULT_LAUNCH = "{hyscale} train {config} --resume auto"
PLACEHOLDERS = ("hyscale", "config", "name", "run_dir")
DERIVED_ZERO = ("model.n_layers", "model.d_model", "model.n_heads", "model.n_kv_heads")


class SweepError(Exception):
    pass


# ----------------------------------------------------------------------------- sweep file

def _fail(path, key, msg):
    where = f"{path}: key '{key}'" if key else f"{path}"
    raise SweepError(f"{where}: {msg}")


def _flatten(d, prefix=""):
    """{'model': {'ar': 8}, 'training.seed': 1} -> {'model.ar': 8, 'training.seed': 1}."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _check_overrides(path, key, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(path, key, f"must be a mapping of hyscale keys to values, got {type(value).__name__}")
    flat = _flatten(value)
    for k, v in flat.items():
        if not isinstance(k, str) or not k or any(not part for part in k.split(".")):
            _fail(path, f"{key}.{k}", "is not a valid hyscale key")
        if isinstance(v, (list, tuple)):
            _fail(path, f"{key}.{k}", "must be a scalar value, not a list")
    return flat


def _int_list(path, key, value, min_value=1):
    if not isinstance(value, list) or not value:
        _fail(path, key, "must be a non-empty list of integers")
    out = []
    for v in value:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < min_value:
            _fail(path, key, f"entries must be integers >= {min_value}, got {v!r}")
        if v in out:
            _fail(path, key, f"duplicate entry {v}")
        out.append(v)
    return out


def _resolve_input(path_value, sweep_dir):
    """A path relative to the repo root, else to the sweep file's directory."""
    p = os.path.expanduser(path_value)
    if os.path.isabs(p):
        return p
    for base in (REPO_ROOT, sweep_dir):
        cand = os.path.normpath(os.path.join(base, p))
        if os.path.exists(cand):
            return cand
    return os.path.normpath(os.path.join(REPO_ROOT, p))


def load_sweep(path):
    if not os.path.isfile(path):
        raise SweepError(f"{path}: cannot read sweep file (no such file)")
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise SweepError(f"{path}: invalid YAML: {e}")
    if not isinstance(doc, dict):
        raise SweepError(f"{path}: a sweep file must be a YAML mapping")
    for k in doc:
        if k not in TOP_KEYS:
            _fail(path, k, f"unknown top-level key (allowed: {', '.join(TOP_KEYS)})")
    sweep_dir = os.path.dirname(os.path.abspath(path))
    sw = {"file": path}

    for k in ("name", "base_config", "out_dir", "archs"):
        if k not in doc or doc[k] is None:
            _fail(path, k, "is required")
    for k in ("name", "base_config", "out_dir"):
        if not isinstance(doc[k], str) or not doc[k].strip():
            _fail(path, k, "must be a non-empty string")
    sw["name"] = doc["name"]

    sw["base_config"] = _resolve_input(doc["base_config"], sweep_dir)
    if not os.path.isfile(sw["base_config"]):
        _fail(path, "base_config", f"file '{doc['base_config']}' not found (relative to the repo root "
              f"{REPO_ROOT} or to the sweep file)")
    try:
        with open(sw["base_config"]) as f:
            base = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        _fail(path, "base_config", f"'{sw['base_config']}' is not valid YAML: {e}")
    if not isinstance(base, dict):
        _fail(path, "base_config", f"'{sw['base_config']}' is not a YAML mapping")
    sw["base"] = base

    out_dir = os.path.expanduser(doc["out_dir"])
    sw["out_dir"] = out_dir if os.path.isabs(out_dir) else os.path.normpath(os.path.join(REPO_ROOT, out_dir))

    archs = doc["archs"]
    if isinstance(archs, str):
        archs = [archs]
    if not isinstance(archs, list) or not archs:
        _fail(path, "archs", "must be a non-empty list of architectures")
    for a in archs:
        if a not in ARCHS:
            _fail(path, "archs", f"unknown architecture {a!r} (one of: {', '.join(ARCHS)})")
    if len(set(archs)) != len(archs):
        _fail(path, "archs", "lists an architecture twice")
    sw["archs"] = archs

    has_d, has_t = doc.get("depths") is not None, doc.get("tokens") is not None
    if has_d == has_t:
        _fail(path, "depths/tokens", "exactly one of 'depths' and 'tokens' must be given")
    sw["set"] = _check_overrides(path, "set", doc.get("set"))

    per_arch = doc.get("per_arch") or {}
    if not isinstance(per_arch, dict):
        _fail(path, "per_arch", "must be a mapping arch -> {key: value}")
    sw["per_arch"] = {}
    for a, ov in per_arch.items():
        if a not in archs:
            _fail(path, f"per_arch.{a}", f"is not one of this sweep's archs ({', '.join(archs)})")
        sw["per_arch"][a] = _check_overrides(path, f"per_arch.{a}", ov)

    if has_d:
        sw["mode"] = "depth"
        sw["values"] = _int_list(path, "depths", doc["depths"])
        for a in archs:
            ov = {**sw["set"], **sw["per_arch"].get(a, {})}
            if "model.depth" in ov:
                _fail(path, "set.model.depth" if "model.depth" in sw["set"] else f"per_arch.{a}.model.depth",
                      "cannot be set together with 'depths' (each run sets its own depth)")
            for d in sw["values"]:
                if a in YOCO_ARCHS and (d % 4 or d < 8):
                    _fail(path, "depths", f"{a} needs a depth that is a multiple of 4 and >= 8, got {d}")
                if not ov.get("model.n_kv_heads") and not ov.get("model.n_heads") and d % 4:
                    _fail(path, "depths", f"depth {d} is not divisible by 4 (KV heads = d/4); "
                          "set model.n_kv_heads to use it")
    else:
        sw["mode"] = "tokens"
        sw["values"] = _int_list(path, "tokens", doc["tokens"])
        for a in archs:
            ov = {**sw["set"], **sw["per_arch"].get(a, {})}
            d = ov.get("model.depth")
            if d is None:
                _fail(path, "set.model.depth", "a 'tokens' sweep needs one model.depth under 'set' (or per_arch)")
            if isinstance(d, bool) or not isinstance(d, int) or d < 1:
                _fail(path, "set.model.depth", f"must be a positive integer, got {d!r}")
            if "training.max_tokens" in ov:
                _fail(path, "set.training.max_tokens", "cannot be set together with 'tokens'")

    launch = doc.get("launch", DEFAULT_LAUNCH)
    if not isinstance(launch, str) or not launch.strip():
        _fail(path, "launch", "must be a non-empty string")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(launch) if f is not None]
    except ValueError as e:
        _fail(path, "launch", f"bad template: {e}")
    for f in fields:
        if f not in PLACEHOLDERS:
            _fail(path, "launch", f"unknown placeholder {{{f}}} (allowed: "
                  + ", ".join("{" + p + "}" for p in PLACEHOLDERS) + ")")
    if "config" not in fields:
        _fail(path, "launch", "the template must contain {config}")
    sw["launch"] = launch

    hs = doc.get("hyscale")
    if hs is None:
        hs = os.environ.get("HYSCALE_BINARY") or "build/hyscale"
    if not isinstance(hs, str) or not hs.strip():
        _fail(path, "hyscale", "must be a path to the hyscale binary")
    hs = os.path.expanduser(hs)
    sw["hyscale"] = hs if os.path.isabs(hs) else os.path.normpath(os.path.join(REPO_ROOT, hs))
    sw["hyscale_given"] = "hyscale" in doc
    return sw


# ----------------------------------------------------------------------------- run plan

def _set_dotted(cfg, key, value):
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def make_runs(sw):
    runs = []
    for arch in sw["archs"]:
        for v in sw["values"]:
            name = f"{arch}_d{v}" if sw["mode"] == "depth" else f"{arch}_t{v}"
            overrides = {k: 0 for k in DERIVED_ZERO}
            overrides["training.max_steps"] = 0
            overrides.update(sw["set"])
            overrides.update(sw["per_arch"].get(arch, {}))
            if sw["mode"] == "depth":
                overrides["model.depth"] = v
                depth = v
            else:
                overrides["training.max_tokens"] = v
                depth = overrides["model.depth"]
            overrides["model.arch"] = arch
            overrides["name"] = name
            overrides["out_dir"] = sw["out_dir"]
            cfg = copy.deepcopy(sw["base"])
            for k, val in overrides.items():
                _set_dotted(cfg, k, val)
            runs.append({
                "name": name, "arch": arch, "depth": depth, "value": v,
                "config": os.path.join(sw["out_dir"], "configs", f"{name}.yaml"),
                "run_dir": os.path.join(sw["out_dir"], name),
                "cfg": cfg, "status": "pending", "wall": None, "rc": None,
            })
    return runs


def write_config(sw, run):
    os.makedirs(os.path.dirname(run["config"]), exist_ok=True)
    header = (f"# Generated by scripts/sweep.py from sweep '{sw['name']}' ({os.path.abspath(sw['file'])}),\n"
              f"# base config {sw['base_config']}. Edit the sweep file, not this file.\n")
    text = header + yaml.safe_dump(run["cfg"], sort_keys=False, default_flow_style=False)
    tmp = run["config"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, run["config"])


# ----------------------------------------------------------------------------- run state

def read_metrics(path):
    recs = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # torn last line of a killed run
                if isinstance(r, dict):
                    recs.append(r)
    except OSError:
        pass
    return recs


def resolved_max_steps(run_dir):
    try:
        with open(os.path.join(run_dir, "config.resolved.yaml")) as f:
            cfg = yaml.safe_load(f) or {}
        v = (cfg.get("training") or {}).get("max_steps")
        return int(v) if v is not None else None
    except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError):
        return None


def inspect(run):
    """Fills steps/max/val_loss and returns 'done', 'interrupted' or 'new'."""
    rd = run["run_dir"]
    max_steps = resolved_max_steps(rd)
    recs = read_metrics(os.path.join(rd, "metrics.jsonl"))
    train_steps = [r.get("step", 0) for r in recs if r.get("type") == "train"]
    evals = [r for r in recs if r.get("type") == "eval"]
    run["max_steps"] = max_steps
    run["steps"] = max(train_steps) if train_steps else 0
    run["val_loss"] = evals[-1].get("val_loss") if evals else None
    run["elapsed_s"] = max((r.get("elapsed_s", 0) or 0 for r in recs), default=None)
    if max_steps is not None and any(e.get("step") == max_steps for e in evals):
        run["val_loss"] = [e for e in evals if e.get("step") == max_steps][-1].get("val_loss")
        return "done"
    return "interrupted" if os.path.isdir(rd) else "new"


def launch_cmd(sw, run):
    q = shlex.quote
    return sw["launch"].format(hyscale=q(sw["hyscale"]), config=q(run["config"]), name=q(run["name"]),
                               run_dir=q(run["run_dir"]))


def execute(sw, run):
    os.makedirs(run["run_dir"], exist_ok=True)
    cmd = launch_cmd(sw, run)
    t0 = time.time()
    with open(os.path.join(run["run_dir"], "launch.log"), "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} sweep {sw['name']}: {cmd}\n".encode())
        log.flush()
        rc = subprocess.call(cmd, shell=True, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        log.write(f"=== exit status {rc} after {time.time() - t0:.1f} s\n".encode())
    run["wall"] = time.time() - t0
    run["rc"] = rc
    state = inspect(run)
    run["status"] = "done" if rc == 0 and state == "done" else "failed"


# ----------------------------------------------------------------------------- reporting

def _fmt_time(s):
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def table(sw, runs):
    col = "depth" if sw["mode"] == "depth" else "tokens"
    rows = [("run", "arch", col, "status", "steps", "val loss", "wall")]
    for r in runs:
        steps = f"{r.get('steps', 0)}/{r['max_steps']}" if r.get("max_steps") is not None else (
            f"{r.get('steps', 0)}/?" if r.get("steps") else "-")
        vl = f"{r['val_loss']:.4f}" if isinstance(r.get("val_loss"), (int, float)) else "-"
        wall = r["wall"] if r["wall"] is not None else (r.get("elapsed_s") if r["status"] == "skipped" else None)
        rows.append((r["name"], r["arch"], str(r["value"]), r["status"], steps, vl, _fmt_time(wall)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="sweep.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", help="sweep YAML file")
    ap.add_argument("--dry-run", action="store_true", help="write the configs and print the plan; launch nothing")
    ap.add_argument("--only", nargs="+", metavar="RUN", help="run only these runs (e.g. sambay_d8)")
    args = ap.parse_args(argv)

    try:
        sw = load_sweep(args.sweep)
        runs = make_runs(sw)
        if args.only:
            names = [r["name"] for r in runs]
            for n in args.only:
                if n not in names:
                    raise SweepError(f"{args.sweep}: --only {n}: no such run (runs: {', '.join(names)})")
            runs = [r for r in runs if r["name"] in args.only]
        if not args.dry_run and "{hyscale}" in sw["launch"] and not os.access(sw["hyscale"], os.X_OK):
            key = "key 'hyscale'" if sw["hyscale_given"] else "default hyscale binary"
            raise SweepError(f"{args.sweep}: {key}: '{sw['hyscale']}' is not an executable file")
        for r in runs:
            write_config(sw, r)
    except SweepError as e:
        sys.stderr.write(f"sweep: error: {e}\n")
        return 2
    except OSError as e:
        sys.stderr.write(f"sweep: error: {args.sweep}: {e}\n")
        return 2

    print(f"sweep {sw['name']}: {len(runs)} runs, configs in {os.path.join(sw['out_dir'], 'configs')}", flush=True)
    states = {r["name"]: inspect(r) for r in runs}

    if args.dry_run:
        for r in runs:
            st = states[r["name"]]
            action = {"done": "skip (done)", "interrupted": "resume (interrupted)", "new": "launch"}[st]
            r["status"] = "skipped" if st == "done" else "pending"
            print(f"  {r['name']:<20} {action:<22} {launch_cmd(sw, r)}")
        print(table(sw, runs), flush=True)
        return 0

    t_start = time.time()
    for r in runs:
        if states[r["name"]] == "done":
            r["status"] = "skipped"
            print(f"[{r['name']}] done already, skipped", flush=True)
            continue
        if states[r["name"]] == "interrupted":
            # hyscale itself continues from the newest checkpoint (truncating later metrics) or,
            # without one, starts afresh and moves the old metrics aside.
            print(f"[{r['name']}] interrupted at step {r['steps']}; launching again", flush=True)
        else:
            print(f"[{r['name']}] launching", flush=True)
        r["status"] = "running"
        execute(sw, r)
        msg = f"[{r['name']}] {r['status']} in {_fmt_time(r['wall'])}"
        if r["status"] == "failed":
            msg += f" (exit status {r['rc']}; see {os.path.join(r['run_dir'], 'launch.log')})"
        print(msg, flush=True)
        print(table(sw, runs), flush=True)

    counts = {s: sum(r["status"] == s for r in runs) for s in ("done", "skipped", "failed")}
    print(f"\nsweep {sw['name']} finished in {_fmt_time(time.time() - t_start)}: "
          f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed", flush=True)
    print(table(sw, runs), flush=True)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
