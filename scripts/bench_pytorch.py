#!/usr/bin/env python3
"""PyTorch eager reference for `hyscale bench train` (docs/PERFORMANCE.md).

Trains the same Transformer++ as hyscale (SPEC §1.1: pre-norm RMSNorm blocks, fused
QKV laid out [q | k | v], non-interleaved RoPE, causal GQA attention through SDPA,
SwiGLU MLP with w1 = [gate | value], final RMSNorm, untied or tied LM head), in fp32 on
the CPU, with AdamW (beta 0.9/0.95, eps 1e-8) and global-norm clipping at 1.0, on
random tokens, and prints the median step time, tokens/s and achieved GFLOP/s with
hyscale's FLOP count. Sizes come from a hyscale YAML config (after --set overrides):

    python3 scripts/bench_pytorch.py configs/default.yaml --threads 2 --steps 10

Needs `torch` (pip). Not part of the test suite.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml


def load_sizes(path, sets):
    cfg = yaml.safe_load(open(path)) or {}
    for s in sets:
        key, val = s.split("=", 1)
        sec, k = key.split(".", 1) if "." in key else ("", key)
        (cfg.setdefault(sec, {}) if sec else cfg)[k] = yaml.safe_load(val)
    m, t = cfg.get("model", {}), cfg.get("training", {})
    D, H = m["d_model"], m["n_heads"]
    return dict(
        L=m["n_layers"], D=D, H=H, Hk=m.get("n_kv_heads", 0) or H, hd=m.get("head_dim", 0) or D // H,
        I=m.get("mlp_hidden", 0) or 4 * D, V=m.get("vocab_size", 0) or 320,
        tied=bool(m.get("tie_embeddings", False)), base=float(m.get("rope_base", 1e4)),
        B=t.get("batch_size", 8), T=t.get("seq_len", 128), A=t.get("grad_accum", 1))


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):  # x [B, H, T, hd], non-interleaved halves
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.norm1, self.norm2 = RMSNorm(s["D"]), RMSNorm(s["D"])
        self.wqkv = nn.Linear(s["D"], (s["H"] + 2 * s["Hk"]) * s["hd"], bias=False)
        self.proj = nn.Linear(s["H"] * s["hd"], s["D"], bias=False)
        self.w1 = nn.Linear(s["D"], 2 * s["I"], bias=False)
        self.w3 = nn.Linear(s["I"], s["D"], bias=False)

    def forward(self, x, cos, sin):
        s = self.s
        B, T, _ = x.shape
        qkv = self.wqkv(self.norm1(x))
        q, k, v = qkv.split([s["H"] * s["hd"], s["Hk"] * s["hd"], s["Hk"] * s["hd"]], dim=-1)
        q = q.view(B, T, s["H"], s["hd"]).transpose(1, 2)
        k = k.view(B, T, s["Hk"], s["hd"]).transpose(1, 2)
        v = v.view(B, T, s["Hk"], s["hd"]).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=s["H"] != s["Hk"])
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, -1))
        g, val = self.w1(self.norm2(x)).chunk(2, dim=-1)
        return x + self.w3(F.silu(g) * val)


class Model(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.wte = nn.Embedding(s["V"], s["D"])
        self.blocks = nn.ModuleList(Block(s) for _ in range(s["L"]))
        self.ln_f = RMSNorm(s["D"])
        self.lm_head = None if s["tied"] else nn.Linear(s["D"], s["V"], bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        half = s["hd"] // 2
        inv = s["base"] ** (-torch.arange(half, dtype=torch.float64) * 2 / s["hd"])
        ang = torch.arange(s["T"], dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, idx, tgt):
        x = self.wte(idx)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        x = self.ln_f(x)
        logits = F.linear(x, self.wte.weight if self.lm_head is None else self.lm_head.weight)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.view(-1))


def flops_per_token(s):  # hyscale's count: 6 N_matmul + causal attention over visible pairs
    per_layer = s["D"] * (s["H"] + 2 * s["Hk"]) * s["hd"] + s["H"] * s["hd"] * s["D"] + 3 * s["D"] * s["I"]
    n = s["L"] * per_layer + s["V"] * s["D"]
    return 6 * n + 12 * s["H"] * s["hd"] * (s["T"] + 1) / 2 * s["L"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    s = load_sizes(a.config, a.set)
    model = Model(s)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    batches = [(torch.randint(0, s["V"], (s["B"], s["T"])), torch.randint(0, s["V"], (s["B"], s["T"])))
               for _ in range(s["A"])]

    def step():
        opt.zero_grad(set_to_none=True)
        for x, y in batches:
            (model(x, y) / s["A"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    tps = s["B"] * s["T"] * s["A"] / med
    fpt = flops_per_token(s)
    print(f"pytorch {torch.__version__} eager fp32 cpu | {torch.get_num_threads()} threads | "
          f"L={s['L']} D={s['D']} H={s['H']} Hkv={s['Hk']} hd={s['hd']} V={s['V']} | batch {s['B']} x {s['T']} x accum {s['A']}")
    print(f"{'metric':<28} {'value':>14}")
    print(f"{'step time median (ms)':<28} {med * 1e3:>14.2f}")
    print(f"{'step time min (ms)':<28} {min(times) * 1e3:>14.2f}")
    print(f"{'tokens/s':<28} {tps:>14.0f}")
    print(f"{'FLOPs/token (train)':<28} {fpt:>14.4g}")
    print(f"{'achieved GFLOP/s':<28} {tps * fpt / 1e9:>14.2f}")


if __name__ == "__main__":
    main()
