// `hyscale bench kernels`: achieved bandwidth of each memory-bound CUDA kernel and TFLOP/s of
// the cuBLASLt GEMM, next to ceilings measured in the same run (a large device-to-device copy,
// a large bf16 GEMM) and the percentage of each; `--json FILE` writes the rows for
// scripts/bench_compare.py (the ratios to PyTorch). Needs a CUDA build and a GPU.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/scoped_env.h"
#include "train/bench_table.h"
#include "train/trainer.h"

#ifdef HYSCALE_WITH_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda.h"
#include "kernels/cuda/attention_wgmma.h"
#include "kernels/cuda_attention.h"
#include "kernels/cuda_hybrid.h"
#endif

namespace hyscale::train {

#ifndef HYSCALE_WITH_CUDA
void bench_kernels(int64_t, const std::string&, bool) {
  HS_FAIL("bench kernels: this build has no CUDA (configure with -DHYSCALE_CUDA=ON)");
}
#else
namespace {
#define HS_CU(call)                                                                           \
  do {                                                                                        \
    cudaError_t e_ = (call);                                                                  \
    if (e_ != cudaSuccess) HS_FAIL(#call, " failed: ", cudaGetErrorString(e_));               \
  } while (0)

struct DevBuf {
  void* p = nullptr;
  explicit DevBuf(size_t n) {
    HS_CU(cudaMalloc(&p, n));
    HS_CU(cudaMemset(p, 0, n));
  }
  ~DevBuf() { cudaFree(p); }
  template <class T> T* as() const { return static_cast<T*>(p); }
};

// Median-free simple timing: `reps` launches between two events, after 3 warm-ups.
double time_ms(const std::function<void()>& f, int reps) {
  for (int i = 0; i < 3; ++i) f();
  cudaEvent_t a, b;
  HS_CU(cudaEventCreate(&a));
  HS_CU(cudaEventCreate(&b));
  HS_CU(cudaEventRecord(a));
  for (int i = 0; i < reps; ++i) f();
  HS_CU(cudaEventRecord(b));
  HS_CU(cudaEventSynchronize(b));
  float ms = 0;
  HS_CU(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / reps;
}

// The shapes timed. Full: a d16-sized model at sequence 4096 (the rows PERFORMANCE.md and
// scripts/bench_compare.py name). Smoke (--smoke): every row once at small shapes, to check that
// the benchmark runs (e.g. on the CUDA emulator in CI); its numbers mean nothing.
struct Sizes {
  int64_t n;                       // elements per scratch buffer (fp32): 1 GiB full
  int64_t gemm_ceiling;            // the square bf16 GEMM of the ceiling
  int64_t rows, ffn, width;        // token rows of the elementwise / norm rows, SwiGLU width, model width
  int64_t ce_rows, vocab;          // cross-entropy
  int64_t tok, ff;                 // the linear layers' GEMMs: tokens x width x ff
  int64_t B, T, H, Hk, hd, w1, w2;  // attention (windows w1, w2) and differential attention (H/2 pairs)
  int64_t Dc, N, chunk;            // selective scan / conv1d
};
Sizes bench_sizes(bool smoke) {
  if (!smoke) return {int64_t{1} << 28, 8192, 16384, 2752, 1024, 8192, 32000, 8192, 4096, 2, 4096, 16, 4, 128, 128, 2048,
                      4096, 16, 128};
  return {int64_t{1} << 20, 128, 256, 96, 128, 64, 320, 256, 256, 1, 256, 2, 1, 128, 32, 128, 128, 16, 64};
}
// 8192 -> "8K", 67108864 -> "64M", 300 -> "300".
std::string human(int64_t x) {
  if (x >= (int64_t{1} << 20) && x % (int64_t{1} << 20) == 0) return std::to_string(x >> 20) + "M";
  if (x >= 1024 && x % 1024 == 0) return std::to_string(x >> 10) + "K";
  return std::to_string(x);
}
}  // namespace

void bench_kernels(int64_t reps, const std::string& json_path, bool smoke) {
  HS_CHECK(reps >= 1, "bench kernels: --reps must be at least 1 (got ", reps, ")");
  if (!json_path.empty()) {  // before minutes of timing, not after
    const std::filesystem::path dir = std::filesystem::absolute(json_path).parent_path();
    HS_CHECK(std::filesystem::is_directory(dir), "bench kernels: --json '", json_path, "': no directory '",
             dir.string(), "'");
  }
  namespace kg = hyscale::kernels::cuda;
  int dev = 0;
  HS_CU(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  HS_CU(cudaGetDeviceProperties(&prop, dev));
  const Sizes z = bench_sizes(smoke);
  const int64_t n = z.n;  // 256 M elements (1 GiB in fp32) a buffer, full
  DevBuf a(n * 4), b(n * 4), c(n * 4), d(n * 4);
  // Ceilings.
  const double copy_ms = time_ms([&] { HS_CU(cudaMemcpyAsync(b.p, a.p, n * 4, cudaMemcpyDeviceToDevice)); }, reps);
  const double copy_gbs = 2.0 * n * 4 / copy_ms / 1e6;
  const int64_t G = z.gemm_ceiling;
  const double gemm_ms = time_ms(
      [&] { kg::gemm(false, true, G, G, G, 1.0f, a.p, G, b.p, G, 0.0f, c.p, G, true, true); }, reps);
  const double gemm_tf = 2.0 * G * G * G / gemm_ms / 1e9;
  std::printf("bench kernels on %s: copy ceiling %.0f GB/s (device-to-device, %s fp32), bf16 GEMM ceiling %.1f TFLOP/s "
              "(%lld^3)%s\n",
              prop.name, copy_gbs, human(n).c_str(), gemm_tf, (long long)G,
              smoke ? " [--smoke: small shapes, the numbers mean nothing]" : "");
  std::printf("%-34s %10s %12s %10s\n", "kernel", "ms", "GB/s|TFLOP/s", "% ceiling");
  BenchTable table;  // prints each row; the alternatives' summary and --json at the end
  auto row_bw = [&](const std::string& name, double bytes, const std::function<void()>& f) {
    table.add(name, time_ms(f, static_cast<int>(reps)), bytes, "GB/s", copy_gbs);
  };
  auto row_gemm = [&](const std::string& name, double flops, const std::function<void()>& f) {
    table.add(name, time_ms(f, static_cast<int>(reps)), flops, "TFLOP/s", gemm_tf);
  };
  const int64_t m = n / 4;  // 64 M elements per operand, full
  const std::string M = " (" + human(m) + ")";
  row_bw("add f32" + M, 3.0 * m * 4, [&] { kg::add<float>(a.as<float>(), b.as<float>(), c.as<float>(), m); });
  row_bw("add bf16" + M, 3.0 * m * 2,
         [&] { kg::add<kg::bf16>(a.as<kg::bf16>(), b.as<kg::bf16>(), c.as<kg::bf16>(), m); });
  row_bw("silu fwd f32" + M, 2.0 * m * 4, [&] { kg::silu_fwd<float>(a.as<float>(), b.as<float>(), m); });
  row_bw("swiglu fwd bf16 (" + human(z.rows) + " x 2x" + std::to_string(z.ffn) + ")", 3.0 * z.rows * z.ffn * 2,
         [&] { kg::swiglu_fwd<kg::bf16>(a.as<kg::bf16>(), b.as<kg::bf16>(), z.rows, z.ffn); });
  row_bw("rmsnorm fwd bf16 (" + human(z.rows) + " x " + std::to_string(z.width) + ")", 2.0 * z.rows * z.width * 2, [&] {
    kg::rmsnorm_fwd<kg::bf16>(a.as<kg::bf16>(), b.as<kg::bf16>(), c.as<kg::bf16>(), d.as<float>(), z.rows, z.width,
                              1e-5);
  });
  {
    DevBuf targets(z.ce_rows * sizeof(int32_t));  // zeroed: valid class ids (d holds rstd floats by now)
    row_bw("cross-entropy fwd bf16 (" + human(z.ce_rows) + " x " + std::to_string(z.vocab) + ")",
           1.0 * z.ce_rows * z.vocab * 2, [&] {
             kg::cross_entropy_fwd<kg::bf16>(a.as<kg::bf16>(), targets.as<int32_t>(), c.as<float>(),
                                             c.as<float>() + z.ce_rows, z.ce_rows, z.vocab);
           });
  }
  row_bw("adamw f32 + bf16 copy (" + human(m / 2) + ")", (4.0 * 4 + 3 * 4 + 2) * (m / 2), [&] {
    kg::adamw_step(a.as<float>(), b.as<float>(), c.as<float>(), d.as<float>(), m / 2, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f,
                   10, 1.0f, reinterpret_cast<kg::bf16*>(a.as<float>() + m / 2));
  });
  row_bw("cast f32 -> bf16" + M, 6.0 * m, [&] { kg::cast_f32_bf16(a.as<float>(), b.as<kg::bf16>(), m); });
  const int64_t tok = z.tok, wd = z.width, ff = z.ff;
  const double lin = 2.0 * tok * wd * ff;
  const std::string W = std::to_string(wd), F = std::to_string(ff);
  row_gemm("gemm bf16 " + human(tok) + " x " + W + " x " + F + " (MLP)", lin, [&] {
    kg::gemm(false, true, tok, ff, wd, 1.0f, a.p, wd, b.p, wd, 0.0f, c.p, ff, true, true);
  });
  row_gemm("gemm bf16 " + human(tok) + " x " + F + " x " + W + " (dgrad)", lin, [&] {
    kg::gemm(false, false, tok, wd, ff, 1.0f, a.p, ff, b.p, wd, 0.0f, c.p, wd, true, true);
  });
  // The weight gradient of a 4096 x 1024 linear over 8K tokens, as mixed-precision training needs
  // it (fp32, for the fp32 master): written in fp32 by the GEMM (ops::linear_mp), against the
  // GEMM in bf16 then a cast to fp32 (the cast-node path it replaced).
  row_gemm("wgrad bf16 -> fp32 " + F + " x " + W + " (" + human(tok) + " tok)", lin, [&] {
    kg::gemm(true, false, ff, wd, tok, 1.0f, a.p, ff, b.p, wd, 0.0f, c.p, wd, true, false);
  });
  row_gemm("wgrad bf16 out + cast to fp32", lin, [&] {
    kg::gemm(true, false, ff, wd, tok, 1.0f, a.p, ff, b.p, wd, 0.0f, c.p, wd, true, true);
    kg::cast_bf16_f32(c.as<kg::bf16>(), d.as<float>(), ff * wd);
  });

  // ---- the hybrid layers' kernels (bf16), shapes of a d16-sized model at seq 4096. Inputs are
  // zeroed again (the rows above left AdamW's updates in them): finite values, no NaN paths.
  HS_CU(cudaMemset(a.p, 0, n * 4));
  // Attention FLOPs count visible (query, key) pairs only (KERNELS.md): forward 2 (D + Dv) per
  // pair, backward 2.5x that; the percentage is of the bf16 GEMM ceiling. The same shapes are
  // timed for PyTorch SDPA / FlexAttention by scripts/bench_torch_ref.py.
  {
    const int64_t B = z.B, T = z.T, H = z.H, Hk = z.Hk, D = z.hd;
    const int64_t qn = B * T * H * D, kn = B * T * Hk * D;
    const std::string shape = " (" + std::to_string(B) + "x" + std::to_string(T) + ", " + std::to_string(H) + "/" +
                              std::to_string(Hk) + " heads, " + std::to_string(D) + ")";
    kg::bf16* q = a.as<kg::bf16>();
    kg::bf16* k = q + qn;
    kg::bf16* v = k + kn;
    kg::bf16* o = b.as<kg::bf16>();
    kg::bf16* dout = o + qn;
    kg::bf16* dq = c.as<kg::bf16>();
    kg::bf16* dk = dq + qn;
    kg::bf16* dv = dk + kn;
    float* lse = d.as<float>();
    // The sm_90a warpgroup-MMA kernels (HYSCALE_ATTN_WGMMA=1; kernels/cuda/attention_wgmma.cu) on
    // compute capability 9.0 with a build for sm_90a: "[wgmma]" rows beside the mma.sync ones.
    int dev = 0, cc_major = 0, cc_minor = 0;
    HS_CU(cudaGetDevice(&dev));
    HS_CU(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, dev));
    HS_CU(cudaDeviceGetAttribute(&cc_minor, cudaDevAttrComputeCapabilityMinor, dev));
    const bool wgmma = cc_major * 10 + cc_minor == 90 && kg::detail::wgmma_built();
    if (!wgmma) std::printf("(no [wgmma] attention rows: they need compute capability 9.0 and a build for sm_90a)\n");
    for (int64_t W : {int64_t{0}, z.w1, z.w2}) {
      const double pairs =
          W <= 0 || W >= T ? 0.5 * T * (T + 1) : 0.5 * W * (W + 1) + static_cast<double>(T - W) * W;
      const double fwd = pairs * 2.0 * (D + D) * B * H;
      const std::string tag = (W <= 0 ? std::string("causal") : "window " + std::to_string(W)) + shape;
      const double scale = 1.0 / std::sqrt(static_cast<double>(D));
      row_gemm("attention fwd " + tag, fwd,
               [&] { kg::attention_fwd<kg::bf16>(q, k, v, o, lse, B, T, H, Hk, D, D, scale, W); });
      {  // the forward's and dq kernel's other tiling (16 query rows per warp instead of 32)
        ScopedEnv rows16("HYSCALE_ATTN_ROWS_PER_WARP", "16");
        row_gemm("attention fwd " + tag + " [16 rows/warp]", fwd,
                 [&] { kg::attention_fwd<kg::bf16>(q, k, v, o, lse, B, T, H, Hk, D, D, scale, W); });
        row_gemm("attention fwd+bwd " + tag + " [16 rows/warp]", 3.5 * fwd, [&] {
          kg::attention_fwd<kg::bf16>(q, k, v, o, lse, B, T, H, Hk, D, D, scale, W);
          kg::attention_bwd<kg::bf16>(q, k, v, o, dout, lse, dq, dk, dv, B, T, H, Hk, D, D, scale, W);
        });
      }
      if (wgmma) {  // the forward and the deterministic backward on warpgroup MMA
        ScopedEnv wg("HYSCALE_ATTN_WGMMA", "1");
        row_gemm("attention fwd " + tag + " [wgmma]", fwd,
                 [&] { kg::attention_fwd<kg::bf16>(q, k, v, o, lse, B, T, H, Hk, D, D, scale, W); });
        row_gemm("attention fwd+bwd " + tag + " [wgmma]", 3.5 * fwd, [&] {
          kg::attention_fwd<kg::bf16>(q, k, v, o, lse, B, T, H, Hk, D, D, scale, W);
          kg::attention_bwd<kg::bf16>(q, k, v, o, dout, lse, dq, dk, dv, B, T, H, Hk, D, D, scale, W);
        });
      }
      row_gemm("attention fwd+bwd " + tag, 3.5 * fwd, [&] {
        kg::attention_fwd<kg::bf16>(q, k, v, o, lse, B, T, H, Hk, D, D, scale, W);
        kg::attention_bwd<kg::bf16>(q, k, v, o, dout, lse, dq, dk, dv, B, T, H, Hk, D, D, scale, W);
      });
      {  // the price of determinism: dq by atomics from the dk/dv kernel instead of the dq kernel
        const bool det = kg::deterministic();
        kg::set_deterministic(false);
        row_gemm("attention fwd+bwd " + tag + " [atomic dq]", 3.5 * fwd, [&] {
          kg::attention_fwd<kg::bf16>(q, k, v, o, lse, B, T, H, Hk, D, D, scale, W);
          kg::attention_bwd<kg::bf16>(q, k, v, o, dout, lse, dq, dk, dv, B, T, H, Hk, D, D, scale, W);
        });
        kg::set_deterministic(det);
      }
    }
  }
  {
    // Differential attention (the op, autograd included), the GPU routes (ops.h): the fused kernels
    // on tensor cores (diff_attention_mma.cu), the fused SIMT kernels (HYSCALE_DIFF_ATTN_MMA=0) and
    // the split into four tensor-core attentions. d16 shapes: 16 heads of 128 as 8 pairs, 4 KV heads
    // as 2. FLOPs over the DA math only (two branches, 2 (hd + 2 hd) per visible pair each; the
    // split's recomputed scores are not counted), so the rows compare by time.
    const int64_t B = z.B, T = z.T, Hp = z.H / 2, Hkp = z.Hk == 1 ? 1 : z.Hk / 2, hd = z.hd;
    const Device dv = Device::cuda(dev);
    Tensor q = Tensor::zeros({B, T, Hp, 2 * hd}, DType::bf16, dv), k = Tensor::zeros({B, T, Hkp, 2 * hd}, DType::bf16, dv),
           v = Tensor::zeros({B, T, Hkp, 2 * hd}, DType::bf16, dv), lam = Tensor::full({}, 0.5, DType::f32).to(dv),
           g = Tensor::zeros({B, T, Hp, 2 * hd}, DType::bf16, dv);
    for (Tensor* t : {&q, &k, &v, &lam}) t->requires_grad_();
    const double fwd = 0.5 * T * (T + 1) * B * Hp * 2.0 * 2.0 * (hd + 2 * hd);
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    for (const char* mode : {"fused", "fused SIMT", "split"}) {
      const bool simt = std::string(mode) == "fused SIMT";
      ScopedEnv env("HYSCALE_DIFF_ATTN", simt ? "fused" : mode);
      ScopedEnv kernels("HYSCALE_DIFF_ATTN_MMA", simt ? "0" : "1");
      const std::string tag = " causal (" + std::to_string(B) + "x" + std::to_string(T) + ", " + std::to_string(Hp) + "/" +
                              std::to_string(Hkp) + " pairs, " + std::to_string(hd) + ") [" + mode + "]";
      row_gemm("diff attention fwd" + tag, fwd, [&] {
        NoGrad ng;
        (void)ops::diff_attention(q, k, v, lam, scale, 0);
      });
      row_gemm("diff attention fwd+bwd" + tag, 3.5 * fwd, [&] {
        ops::diff_attention(q, k, v, lam, scale, 0).backward(g);
        for (Tensor* t : {&q, &k, &v, &lam}) t->zero_grad();
      });
    }
  }
  {
    // Selective scan and conv1d of one Mamba layer at d16 width: d_inner 4096, N 16, chunk 128.
    const int64_t B = z.B, T = z.T, Dc = z.Dc, N = z.N, chunk = z.chunk, K = 4;
    const int64_t xn = B * T * Dc, bn = B * T * N, nch = (T + chunk - 1) / chunk;
    kg::bf16* u = a.as<kg::bf16>();
    kg::bf16* dl = u + xn;
    kg::bf16* Bm = dl + xn;
    kg::bf16* Cm = Bm + bn;
    kg::bf16* Al = Cm + bn;
    kg::bf16* Dd = Al + Dc * N;
    kg::bf16* bias = Dd + Dc;
    kg::bf16* y = b.as<kg::bf16>();
    kg::bf16* dy = y + xn;
    kg::bf16* du = dy + xn;
    kg::bf16* ddl = du + xn;
    float* states = c.as<float>();
    float* grads = states + B * nch * Dc * N;  // dA, dB, dC, dD, dbias (fp32)
    const double io = 2.0;                     // bytes per bf16 element
    const double fwd_bytes = io * (3.0 * xn + 2.0 * bn) + 4.0 * B * nch * Dc * N;
    const double bwd_bytes = io * (5.0 * xn + 2.0 * bn) + 4.0 * (2.0 * bn + B * nch * Dc * N);
    row_bw("selective scan fwd (" + std::to_string(B) + "x" + std::to_string(T) + ", " + std::to_string(Dc) + ", N" +
               std::to_string(N) + ")",
           fwd_bytes, [&] {
      kg::selective_scan_fwd<kg::bf16>(u, dl, Al, Bm, Cm, Dd, bias, y, states, B, T, Dc, N, chunk);
    });
    auto scan_fb = [&] {
      kg::selective_scan_fwd<kg::bf16>(u, dl, Al, Bm, Cm, Dd, bias, y, states, B, T, Dc, N, chunk);
      kg::selective_scan_bwd<kg::bf16>(u, dl, Al, Bm, Cm, Dd, bias, states, dy, du, ddl, grads, grads + Dc * N,
                                       grads + Dc * N + bn, grads + Dc * N + 2 * bn, grads + Dc * N + 2 * bn + Dc, B,
                                       T, Dc, N, chunk);
    };
    row_bw("selective scan fwd+bwd", fwd_bytes + bwd_bytes, scan_fb);
    {  // the price of determinism: dB/dC by atomics instead of per-tile partials and a second pass
      const bool det = kg::deterministic();
      kg::set_deterministic(false);
      row_bw("selective scan fwd+bwd [atomic dB/dC]", fwd_bytes + bwd_bytes, scan_fb);
      kg::set_deterministic(det);
    }
    {  // Mamba's output gate y * silu(z): fused into the scan, against the scan and a gate op around it
      // (same byte count, the fused minimum: z read once, dz written once, so the ratio is the time's)
      kg::bf16* zw = d.as<kg::bf16>();  // in_proj's output [B, T, 2 Dc]; z = its second half, read in place
      kg::bf16* dz = zw + 2 * xn;
      kg::bf16* out = dz + xn;
      HS_CU(cudaMemsetAsync(zw, 0, 2 * xn * 2));  // d still holds the attention rows' lse floats
      const kernels::ScanGate<kg::bf16> gate{zw + Dc, 2 * Dc, dz};
      const double gate_bytes = fwd_bytes + bwd_bytes + io * 3.0 * xn;
      row_bw("selective scan + z-gate fwd+bwd (fused)", gate_bytes, [&] {
        kg::selective_scan_fwd<kg::bf16>(u, dl, Al, Bm, Cm, Dd, bias, out, states, B, T, Dc, N, chunk, nullptr, gate);
        kg::selective_scan_bwd<kg::bf16>(u, dl, Al, Bm, Cm, Dd, bias, states, dy, du, ddl, grads, grads + Dc * N,
                                         grads + Dc * N + bn, grads + Dc * N + 2 * bn, grads + Dc * N + 2 * bn + Dc,
                                         B, T, Dc, N, chunk, nullptr, gate);
      });
      kg::bf16* zc = out + xn;   // the two-op path's contiguous z (the gate op reads dense rows)
      kg::bf16* dyp = ddl + xn;  // and its pre-gate gradient
      HS_CU(cudaMemsetAsync(zc, 0, xn * 2));
      row_bw("selective scan fwd+bwd, z-gate as its own op", gate_bytes, [&] {
        kg::selective_scan_fwd<kg::bf16>(u, dl, Al, Bm, Cm, Dd, bias, y, states, B, T, Dc, N, chunk);
        kg::gmu_gate_fwd<kg::bf16>(zc, y, out, xn);
        HS_CU(cudaMemsetAsync(dyp, 0, xn * 2));  // the gate accumulates into the memory's gradient (the
                                                  // op zero-fills it too: a fair part of its cost)
        kg::gmu_gate_bwd<kg::bf16>(zc, y, dy, dz, dyp, xn);
        kg::selective_scan_bwd<kg::bf16>(u, dl, Al, Bm, Cm, Dd, bias, states, dyp, du, ddl, grads, grads + Dc * N,
                                         grads + Dc * N + bn, grads + Dc * N + 2 * bn, grads + Dc * N + 2 * bn + Dc,
                                         B, T, Dc, N, chunk);
      });
    }
    row_bw("causal conv1d fwd+bwd (K4)", io * 5.0 * xn, [&] {
      kg::causal_conv1d_fwd<kg::bf16>(u, Al, bias, y, B, T, Dc, K);
      kg::causal_conv1d_bwd<kg::bf16>(u, Al, dy, du, grads, grads + Dc * K, B, T, Dc, K);
    });
    row_bw("causal conv1d + silu fwd+bwd (K4)", io * 5.0 * xn, [&] {  // fused: same bytes, no silu passes
      kg::causal_conv1d_silu_fwd<kg::bf16>(u, Al, bias, y, B, T, Dc, K);
      kg::causal_conv1d_silu_bwd<kg::bf16>(u, Al, bias, dy, du, grads, grads + Dc * K, B, T, Dc, K);
    });
  }
  // Each alternative ("ROW [variant]") against the row of the same name without the suffix (the
  // default), or, where every row of that name has one (differential attention's [fused],
  // [fused SIMT] and [split]), against the first of them: which settings would be faster defaults (the decision is
  // for PERFORMANCE.md, with the whole-step benches).
  table.print_alternatives();
  if (!json_path.empty()) {
    const nlohmann::json doc = {{"device", prop.name},
                                {"compute_capability", std::to_string(prop.major) + "." + std::to_string(prop.minor)},
                                {"copy_gbs", copy_gbs},
                                {"gemm_tflops", gemm_tf},
                                {"reps", reps},
                                {"rows", table.rows_json()}};
    const std::string tmp = json_path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << doc.dump(1) << "\n";
      HS_CHECK(f.good(), "bench kernels: cannot write '", tmp, "'");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, json_path, ec);
    HS_CHECK(!ec, "bench kernels: cannot rename '", tmp, "' to '", json_path, "': ", ec.message());
    std::printf("wrote %s\n", json_path.c_str());
  }
}
#endif

}  // namespace hyscale::train
