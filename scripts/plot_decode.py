#!/usr/bin/env python3
"""Plot `hyscale bench decode --json` output: decode throughput (tokens/s) vs generated length,
one line per architecture, log-2 x axis.  Usage: plot_decode.py RESULTS.json OUT.png"""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        doc = json.load(f)
    lengths = doc["lengths"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in doc["results"]:
        ax.plot(lengths, r["tokens_per_s"], marker="o", label=f'{r["arch"]} (D={r["d_model"]})')
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths)
    ax.set_xticklabels([f"{L // 1024}K" if L >= 1024 else str(L) for L in lengths])
    ax.set_xlabel(f'generated tokens (after a {doc["prompt"]}-token prompt)')
    ax.set_ylabel(f'decode throughput, tokens/s (batch {doc["batch"]})')
    ax.set_title(f'hyscale bench decode: depth {doc["depth"]}, {doc["device"]}, {doc["threads"]} threads')
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(argv[2], dpi=120)
    print(f"wrote {argv[2]}")


if __name__ == "__main__":
    main(sys.argv)
