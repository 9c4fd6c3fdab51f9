#!/usr/bin/env python3
"""The CUDA-kernels issue's comparison table from one GPU run's two benchmark files.

  bench_compare.py HYSCALE_JSON TORCH_JSON [--out FILE]

HYSCALE_JSON is `hyscale bench kernels --json FILE`, TORCH_JSON is
`scripts/bench_torch_ref.py --json FILE`, both from the same GPU (scripts/gpu_check.sh runs both).
Prints a Markdown table, ready for docs/PERFORMANCE.md:
  * attention (bf16, 2x4096, 16/4 heads, head dim 128), forward and forward+backward, TFLOP/s over
    visible pairs: causal full against PyTorch SDPA (the faster of its flash and cuDNN backends),
    windows 128 and 2048 against FlexAttention; target >= 1.0x. hyscale's default kernels, and
    separately the fastest of its variants ([wgmma], [16 rows/warp], [atomic dq]: the default's
    alternatives, which bench kernels times beside it) where one is faster;
  * selective scan and conv1d forward+backward: effective GB/s against the copy bandwidth measured
    in the same run (target >= 60 %) and against the PyTorch references (ratio, no target);
  * differential attention's GPU routes (hyscale only: [fused] on tensor cores, [fused SIMT],
    [split] = four flash-attention calls, the default of HYSCALE_DIFF_ATTN=auto): the times, the
    fastest route and fused / split, i.e. whether auto should take the fused kernels.
A row either side lacks is shown as missing, never guessed. Exit status: 0 with the table, 2 when
a file cannot be read or is not such a benchmark file (with a message).
"""
import argparse
import json
import sys

ATTN_SHAPE = "(2x4096, 16/4 heads, 128)"
# (label, hyscale row without the shape, torch row prefix)
ATTENTION = [
    ("causal fwd", "attention fwd causal", "sdpa causal fwd ("),
    ("causal fwd+bwd", "attention fwd+bwd causal", "sdpa causal fwd+bwd ("),
    ("window 128 fwd", "attention fwd window 128", "flex window 128 fwd"),
    ("window 128 fwd+bwd", "attention fwd+bwd window 128", "flex window 128 fwd+bwd"),
    ("window 2048 fwd", "attention fwd window 2048", "flex window 2048 fwd"),
    ("window 2048 fwd+bwd", "attention fwd+bwd window 2048", "flex window 2048 fwd+bwd"),
]
# (label, hyscale row, torch row or None)
BANDWIDTH = [
    ("selective scan fwd", "selective scan fwd (2x4096, 4096, N16)", None),
    ("selective scan fwd+bwd", "selective scan fwd+bwd", "torch reference scan fwd+bwd (sequential)"),
    ("selective scan + z-gate fwd+bwd (fused)", "selective scan + z-gate fwd+bwd (fused)", None),
    ("causal conv1d fwd+bwd (K4)", "causal conv1d fwd+bwd (K4)", "torch conv1d fwd+bwd (K4, depthwise)"),
    ("causal conv1d + SiLU fwd+bwd (K4)", "causal conv1d + silu fwd+bwd (K4)", None),
]
ATTN_TARGET = 1.0
COPY_TARGET = 0.60
DA_PREFIXES = ("diff attention fwd ", "diff attention fwd+bwd ")
DA_ROUTES = ("[fused]", "[fused SIMT]", "[split]")


class BadInput(Exception):
    pass


def load(path, what):
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise BadInput(f"{what} '{path}': {e.strerror}")
    except json.JSONDecodeError as e:
        raise BadInput(f"{what} '{path}': not JSON ({e})")
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise BadInput(f"{what} '{path}': no 'rows' list (is it the right file?)")
    rows = {}
    for i, r in enumerate(doc["rows"]):
        try:
            name, ms, value, unit = str(r["name"]), float(r["ms"]), float(r["value"]), str(r["unit"])
        except (TypeError, KeyError, ValueError):
            raise BadInput(f"{what} '{path}': row {i} lacks name/ms/value/unit")
        if not ms > 0 or not value >= 0:
            raise BadInput(f"{what} '{path}': row '{name}' has ms {ms}, value {value}")
        if name in rows:
            raise BadInput(f"{what} '{path}': row '{name}' appears twice")
        rows[name] = {"name": name, "ms": ms, "value": value, "unit": unit}
    for key in ("copy_gbs", "gemm_tflops"):  # the ceilings of `bench kernels` (absent in the torch file)
        if key in doc:
            try:
                doc[key] = float(doc[key])
            except (TypeError, ValueError):
                raise BadInput(f"{what} '{path}': '{key}' is not a number")
    return doc, rows


def variant_of(name, base):
    """'[wgmma]' for 'BASE [wgmma]', None otherwise."""
    if name.startswith(base + " [") and name.endswith("]"):
        return name[len(base) + 1:]
    return None


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def gbs(x):
    return fmt(x, 0 if x >= 10 else 2)


def compare(hy_doc, hy, th_doc, th):
    lines = []
    dev_h, dev_t = hy_doc.get("device", "?"), th_doc.get("device", "?")
    lines.append(f"hyscale: {dev_h}; PyTorch {th_doc.get('torch', '?')}: {dev_t}")
    if dev_h != dev_t:
        lines.append(f"WARNING: the two files come from different devices ('{dev_h}' vs '{dev_t}'): "
                     "the ratios mean nothing")
    copy = hy_doc.get("copy_gbs")
    lines.append("")
    lines.append("| attention (bf16, 2x4096, 16/4 heads, hd 128) | hyscale default TFLOP/s (ms) | PyTorch TFLOP/s (ms) "
                 "| ratio | target ≥ 1.0x | fastest hyscale variant: TFLOP/s, ratio |")
    lines.append("|---|---|---|---|---|---|")
    met = missed = unknown = 0
    for label, hrow, tprefix in ATTENTION:
        base = f"{hrow} {ATTN_SHAPE}"
        h = hy.get(base)
        t = next((r for n, r in th.items() if n.startswith(tprefix) and
                  (tprefix.endswith("(") or n == tprefix)), None)
        ratio = h["value"] / t["value"] if h and t and t["value"] > 0 else None
        if ratio is None:
            verdict = "missing"
            unknown += 1
        elif ratio >= ATTN_TARGET:
            verdict = "**met**"
            met += 1
        else:
            verdict = "not met"
            missed += 1
        best = None
        for n, r in hy.items():
            v = variant_of(n, base)
            if v and (best is None or r["ms"] < best[1]["ms"]):
                best = (v, r)
        alt = "–"
        if best and h and best[1]["ms"] < h["ms"]:
            br = best[1]["value"] / t["value"] if t and t["value"] > 0 else None
            alt = f"{best[0]} {fmt(best[1]['value'])}" + (f", {fmt(br, 2)}x" if br is not None else "")
        elif best and h:
            alt = "none faster than the default"
        href = f"{fmt(h['value'])} ({h['ms']:.3f})" if h else "missing"
        tref = f"{t['name']}: {fmt(t['value'])} ({t['ms']:.3f})" if t else "missing"
        rtxt = fmt(ratio, 2) + "x" if ratio is not None else "–"
        lines.append(f"| {label} | {href} | {tref} | {rtxt} | {verdict} | {alt} |")
    lines.append("")
    lines.append("| kernel (bf16, d16 Mamba layer) | hyscale GB/s (ms) | % of copy | target ≥ 60 % "
                 "| PyTorch GB/s (ms) | ratio |")
    lines.append("|---|---|---|---|---|---|")
    for label, hrow, trow in BANDWIDTH:
        h = hy.get(hrow)
        t = th.get(trow) if trow else None
        frac = h["value"] / copy if h and copy else None
        if frac is None:
            verdict = "missing"
        else:
            verdict = "**met**" if frac >= COPY_TARGET else "not met"
        ratio = h["value"] / t["value"] if h and t and t["value"] > 0 else None
        href = f"{gbs(h['value'])} ({h['ms']:.3f})" if h else "missing"
        tref = "–" if not trow else (f"{gbs(t['value'])} ({t['ms']:.3f})" if t else "missing")
        lines.append(f"| {label} | {href} | {fmt(100 * frac, 0) + ' %' if frac is not None else '–'} | {verdict} "
                     f"| {tref} | {fmt(ratio, 2) + 'x' if ratio is not None else '–'} |")
    lines.extend(da_routes(hy))
    lines.append("")
    lines.append(f"attention vs PyTorch: {met} met, {missed} not met, {unknown} missing "
                 f"(copy ceiling {fmt(copy, 0)} GB/s, GEMM ceiling {fmt(hy_doc.get('gemm_tflops'))} TFLOP/s)")
    return lines


def da_routes(hy):
    """The differential-attention route table (empty when the file has no such rows)."""
    groups = {}  # base name -> {route: row}, in the file's order
    for n, r in hy.items():
        if not n.startswith(DA_PREFIXES):
            continue
        for route in DA_ROUTES:
            if n.endswith(" " + route):
                groups.setdefault(n[:-len(route) - 1], {})[route] = r
    if not groups:
        return []
    lines = ["", "| differential attention | " + " | ".join(f"{r} ms" for r in DA_ROUTES) +
             " | fastest | fused / split time |", "|---|" + "---|" * (len(DA_ROUTES) + 2)]
    for base, routes in groups.items():
        cells = [f"{routes[r]['ms']:.3f}" if r in routes else "missing" for r in DA_ROUTES]
        fastest = min(routes, key=lambda r: routes[r]["ms"])
        f, sp = routes.get("[fused]"), routes.get("[split]")
        ratio = f"{f['ms'] / sp['ms']:.2f}" if f and sp else "–"
        lines.append(f"| {base[len('diff attention '):]} | " + " | ".join(cells) + f" | {fastest} | {ratio} |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hyscale_json")
    ap.add_argument("torch_json")
    ap.add_argument("--out", default="", help="also write the table to this file")
    args = ap.parse_args(argv)
    try:
        hy_doc, hy = load(args.hyscale_json, "hyscale bench kernels JSON")
        th_doc, th = load(args.torch_json, "bench_torch_ref JSON")
    except BadInput as e:
        print(f"bench_compare: {e}", file=sys.stderr)
        return 2
    text = "\n".join(compare(hy_doc, hy, th_doc, th))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
