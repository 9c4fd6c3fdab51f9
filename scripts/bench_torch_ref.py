#!/usr/bin/env python3
"""PyTorch reference timings for `hyscale bench kernels`, same shapes, same GPU.

Attention (bf16, B=2, T=4096, 16 query / 4 KV heads, head_dim 128; FLOPs over visible pairs,
forward 2 (D + Dv) per pair, backward 2.5x that — the count `hyscale bench kernels` uses):
  * causal full attention: torch SDPA with the flash backend and with the cuDNN backend, the
    faster of the two reported;
  * sliding window 128 and 2048 (W visible keys including self): FlexAttention with a
    sliding-window block mask (torch.compile'd), when this torch has it.
Causal depthwise conv1d (F.conv1d, groups=C), forward+backward, GB/s over hyscale's byte count.
Selective scan (bf16 in, fp32 state, B=2, T=4096, d_inner 4096, N=16): a PyTorch reference
(sequential over time, as mamba_ssm's selective_scan_ref), forward+backward, effective GB/s
over the same byte count as hyscale's row.

Prints one table; `--json F` writes the numbers. Needs a CUDA GPU; exits 0 with a message
otherwise.
"""
import argparse
import json
import math
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json", default="")
    ap.add_argument("--no-scan", action="store_true", help="skip the (slow) sequential scan reference")
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("bench_torch_ref: no torch here; skipped")
        return 0
    if not torch.cuda.is_available():
        print("bench_torch_ref: no CUDA device; skipped")
        return 0
    dev = torch.device("cuda")
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": []}

    def timeit(fn, reps):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            fn()
        b.record()
        torch.cuda.synchronize()
        return a.elapsed_time(b) / reps

    def row(name, ms, value, unit):
        res["rows"].append({"name": name, "ms": ms, "value": value, "unit": unit})
        print(f"{name:<46} {ms:10.3f} {value:10.1f} {unit}")

    B, T, H, Hk, D = 2, 4096, 16, 4, 128
    print(f"bench_torch_ref on {res['device']} (torch {torch.__version__})")
    print(f"{'kernel':<46} {'ms':>10} {'value':>10}")
    q = torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(B, Hk, T, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(B, Hk, T, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
    do = torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16)

    def pairs(W):
        return 0.5 * T * (T + 1) if W <= 0 or W >= T else 0.5 * W * (W + 1) + (T - W) * W

    # Causal: SDPA flash vs cuDNN (GQA: enable_gqa where supported, else repeat KV heads).
    from torch.nn.attention import SDPBackend, sdpa_kernel
    kr = k.detach().repeat_interleave(H // Hk, dim=1).requires_grad_()
    vr = v.detach().repeat_interleave(H // Hk, dim=1).requires_grad_()
    fwd_flops = pairs(0) * 2 * (D + D) * B * H
    best = {}
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        try:
            with sdpa_kernel(be):
                f = lambda: F.scaled_dot_product_attention(q, kr, vr, is_causal=True)
                ms_f = timeit(f, args.reps)

                def fb():
                    o = F.scaled_dot_product_attention(q, kr, vr, is_causal=True)
                    o.backward(do)

                ms_fb = timeit(fb, args.reps)
            best[name] = (ms_f, ms_fb)
        except Exception as e:  # backend not available for these shapes / this build
            print(f"  sdpa {name}: unavailable ({type(e).__name__}: {str(e)[:80]})")
    if best:
        name_f = min(best, key=lambda n: best[n][0])
        name_fb = min(best, key=lambda n: best[n][1])
        row(f"sdpa causal fwd ({name_f})", best[name_f][0], fwd_flops / best[name_f][0] / 1e9, "TFLOP/s")
        row(f"sdpa causal fwd+bwd ({name_fb})", best[name_fb][1], 3.5 * fwd_flops / best[name_fb][1] / 1e9, "TFLOP/s")

    # Causal depthwise conv1d, width 4, bias (hyscale's layout is (B, T, C); torch's is (B, C, T),
    # so the reference gets its own layout and no transposes are timed), forward+backward.
    Bc, Tc, Cc, K = 2, 4096, 4096, 4
    xc = torch.randn(Bc, Cc, Tc, device=dev, dtype=torch.bfloat16, requires_grad=True)
    wc = torch.randn(Cc, 1, K, device=dev, dtype=torch.bfloat16, requires_grad=True)
    bc = torch.randn(Cc, device=dev, dtype=torch.bfloat16, requires_grad=True)
    dyc = torch.randn(Bc, Cc, Tc, device=dev, dtype=torch.bfloat16)

    def conv_fb():
        y = F.conv1d(xc, wc, bc, padding=K - 1, groups=Cc)[..., :Tc]
        y.backward(dyc)

    ms = timeit(conv_fb, args.reps)
    row("torch conv1d fwd+bwd (K4, depthwise)", ms, 2.0 * 5 * Bc * Tc * Cc / ms / 1e6, "GB/s")

    if not args.no_scan:
        Bs, Ts, Dc, N, chunk = 2, 4096, 4096, 16, 128
        u = torch.randn(Bs, Ts, Dc, device=dev, dtype=torch.bfloat16, requires_grad=True)
        dl = (torch.randn(Bs, Ts, Dc, device=dev, dtype=torch.bfloat16) * 0.5 - 1).requires_grad_()
        Bm = torch.randn(Bs, Ts, N, device=dev, dtype=torch.bfloat16, requires_grad=True)
        Cm = torch.randn(Bs, Ts, N, device=dev, dtype=torch.bfloat16, requires_grad=True)
        A_log = torch.log(torch.arange(1, N + 1, device=dev, dtype=torch.float32)).repeat(Dc, 1).requires_grad_()
        Dp = torch.ones(Dc, device=dev, requires_grad=True)
        bias = torch.zeros(Dc, device=dev, requires_grad=True)
        dy = torch.randn(Bs, Ts, Dc, device=dev, dtype=torch.bfloat16)

        def scan():
            dt = F.softplus(dl.float() + bias)
            A = -torch.exp(A_log)
            h = torch.zeros(Bs, Dc, N, device=dev)
            ys = []
            for t in range(Ts):
                h = torch.exp(dt[:, t, :, None] * A) * h + dt[:, t, :, None] * Bm[:, t, None, :].float() * u[:, t, :, None].float()
                ys.append((h * Cm[:, t, None, :].float()).sum(-1))
            y = torch.stack(ys, 1) + Dp * u.float()
            return y.to(torch.bfloat16)

        def scan_fb():
            scan().backward(dy)

        ms = timeit(scan_fb, 1)
        xn, bn, nch = Bs * Ts * Dc, Bs * Ts * N, (Ts + chunk - 1) // chunk
        byts = 2.0 * (3 * xn + 2 * bn) + 4.0 * Bs * nch * Dc * N + 2.0 * (5 * xn + 2 * bn) + 4.0 * (2 * bn + Bs * nch * Dc * N)
        row("torch reference scan fwd+bwd (sequential)", ms, byts / ms / 1e6, "GB/s")
    # Sliding windows: FlexAttention with a block mask (W visible keys incl. self).
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention)
        for W in (128, 2048):
            def mask_mod(b, h, qi, ki, W=W):
                return (ki <= qi) & (qi - ki < W)
            bm = create_block_mask(mask_mod, B=None, H=None, Q_LEN=T, KV_LEN=T, device=dev)
            ff = lambda: flex(q, kr, vr, block_mask=bm)
            ms_f = timeit(ff, args.reps)

            def ffb():
                o = flex(q, kr, vr, block_mask=bm)
                o.backward(do)

            ms_fb = timeit(ffb, args.reps)
            fl = pairs(W) * 2 * (D + D) * B * H
            row(f"flex window {W} fwd", ms_f, fl / ms_f / 1e9, "TFLOP/s")
            row(f"flex window {W} fwd+bwd", ms_fb, 3.5 * fl / ms_fb / 1e9, "TFLOP/s")
    except Exception as e:
        print(f"  flex attention: unavailable ({type(e).__name__}: {str(e)[:100]})")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
