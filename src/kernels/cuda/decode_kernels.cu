// CUDA bodies of the decoding kernels of kernels/cuda_hybrid.h: the causal conv1d step and the
// selective-scan recurrence over a few steps (decoding runs one; a prefill takes the chunked
// scan's final state instead); and kernels/cuda_attention.h's decode_rope_append (a step's RoPE
// of q and k at per-row positions and the KV-cache append, one launch per attention layer). Both are memory-bound: one thread per (row, channel), fp32 arithmetic, the CPU twins'
// expression order (kernels/conv1d.h's causal_conv1d_step, kernels/selective_scan.h's
// selective_scan_step) with accurate expf / log1pf.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda_attention.h"
#include "kernels/cuda_hybrid.h"

namespace hyscale::kernels::cuda {

namespace {

using namespace detail;

constexpr int kThreads = 256;
constexpr int kMaxState = 64;  // N <= 64, as the scan kernels

template <class T>
__global__ void conv1d_step_k(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                              T* __restrict__ state, T* __restrict__ y, int64_t B, int64_t C, int64_t K, bool silu) {
  const int64_t n = B * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / C, c = i - b * C;
    T* st_ = state + b * (K - 1) * C;
    const float xv = ld(x, i);
    // bias, then k = 0 .. K-1 (the CPU twin's order)
    float acc = ld(bias, c);
    for (int64_t k = 0; k < K - 1; ++k) acc += ld(w, c * K + k) * ld(st_, k * C + c);
    acc += ld(w, c * K + K - 1) * xv;
    if (silu) acc = acc / (1.0f + expf(-acc));
    st(y, i, acc);
    for (int64_t k = 0; k + 1 < K - 1; ++k) st(st_, k * C + c, ld(st_, (k + 1) * C + c));
    if (K > 1) st(st_, (K - 2) * C + c, xv);
  }
}

__device__ __forceinline__ float softplus_acc(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

template <class T>
__global__ void scan_steps_k(const T* __restrict__ u, const T* __restrict__ delta, const T* __restrict__ A_log,
                             const T* __restrict__ Bm, const T* __restrict__ Cm, int64_t ldbc,
                             const T* __restrict__ D, const T* __restrict__ dt_bias, float* __restrict__ h,
                             T* __restrict__ y, int64_t B, int64_t T_, int64_t Dc, int64_t N) {
  const int64_t n_items = B * Dc;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_items; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / Dc, c = i - b * Dc;
    float hr[kMaxState];  // the state (local memory, L1-resident)
    float* hc = h + i * N;
    for (int64_t s = 0; s < N; ++s) hr[s] = hc[s];
    const float bias = ld(dt_bias, c), Dv = ld(D, c);
    for (int64_t t = 0; t < T_; ++t) {
      const int64_t row = b * T_ + t;
      const float dt = softplus_acc(ld(delta, row * Dc + c) + bias);
      const float uv = ld(u, row * Dc + c), dtu = dt * uv;
      const T* Bt = Bm + row * ldbc;
      const T* Ct = Cm + row * ldbc;
      float acc = 0.0f;
      for (int64_t s = 0; s < N; ++s) {
        const float A = -expf(ld(A_log, c * N + s));
        hr[s] = expf(dt * A) * hr[s] + dtu * ld(Bt, s);
        acc += ld(Ct, s) * hr[s];
      }
      if (y != nullptr) st(y, row * Dc + c, acc + Dv * uv);
    }
    for (int64_t s = 0; s < N; ++s) hc[s] = hr[s];
  }
}

// decode_rope_append (kernels/cuda_attention.h): one thread per (row b, head r of the H + 2 Hk in
// the qkv row, pair k < ceil(D / 2)); q and k heads are rotated (rope_k's double-precision angle,
// rounded to float), v heads and everything when base <= 0 are copied.
template <class T>
__global__ void rope_append_k(const T* __restrict__ qkv, T* __restrict__ q_out, T* __restrict__ kc,
                              T* __restrict__ vc, const int64_t* __restrict__ n_tok, int64_t B, int64_t H, int64_t Hk,
                              int64_t D, int64_t cap, bool ring, double base) {
  const int64_t R = H + 2 * Hk, hd2 = (D + 1) / 2, n = B * R * hd2;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % hd2, r = (i / hd2) % R, b = i / (hd2 * R);
    const int64_t pos = n_tok[b] - 1;
    const T* src = qkv + (b * R + r) * D;
    T* dst;
    if (r < H) {
      dst = q_out + (b * H + r) * D;
    } else {
      const int64_t slot = ring && cap > 0 ? pos % cap : pos;
      if (pos < 0 || slot >= cap) continue;  // (the host checks the positions; never write outside the cache)
      dst = r < H + Hk ? kc + ((b * cap + slot) * Hk + (r - H)) * D : vc + ((b * cap + slot) * Hk + (r - H - Hk)) * D;
    }
    if (base > 0.0 && r < H + Hk) {  // D even
      const double theta = pow(base, -2.0 * static_cast<double>(k) / static_cast<double>(D));
      double sa, ca;
      sincos(static_cast<double>(pos) * theta, &sa, &ca);
      const float c = static_cast<float>(ca), sn = static_cast<float>(sa);
      const float x1 = ld(src, k), x2 = ld(src, k + hd2);
      st(dst, k, x1 * c - x2 * sn);
      st(dst, k + hd2, x2 * c + x1 * sn);
    } else {
      st(dst, k, ld(src, k));
      if (k + hd2 < D) st(dst, k + hd2, ld(src, k + hd2));
    }
  }
}

}  // namespace

template <class T>
void decode_rope_append(const T* qkv, T* q_out, T* k_cache, T* v_cache, const int64_t* n_tok_dev, int64_t B,
                        int64_t H, int64_t Hk, int64_t D, int64_t cap, bool ring, double rope_base, void* s) {
  HS_CHECK(B >= 0 && H >= 1 && Hk >= 0 && D >= 1 && cap >= 0, "decode_rope_append (CUDA): bad sizes B = ", B,
           ", H = ", H, ", Hk = ", Hk, ", D = ", D, ", cap = ", cap);
  HS_CHECK(rope_base <= 0.0 || D % 2 == 0, "decode_rope_append (CUDA): RoPE needs an even head dim, got ", D);
  HS_CHECK(Hk == 0 || (k_cache != nullptr && v_cache != nullptr && cap >= 1),
           "decode_rope_append (CUDA): appending needs both caches");
  if (B == 0) return;
  const int64_t n = B * (H + 2 * Hk) * ((D + 1) / 2);
  rope_append_k<<<blocks_for(n, kThreads), kThreads, 0, S(s)>>>(qkv, q_out, k_cache, v_cache, n_tok_dev, B, H, Hk, D,
                                                                  cap, ring, rope_base);
  HS_LAUNCH_CHECK("decode_rope_append", "B = ", B, ", H = ", H, ", Hk = ", Hk, ", D = ", D, ", cap = ", cap);
}

template <class T>
void causal_conv1d_step(const T* x, const T* w, const T* bias, T* state, T* y, int64_t B, int64_t C, int64_t K,
                        bool silu, void* s) {
  HS_CHECK(K >= 1, "causal_conv1d_step (CUDA): kernel width ", K, " must be >= 1");
  if (B * C == 0) return;
  conv1d_step_k<<<blocks_for(B * C, kThreads), kThreads, 0, S(s)>>>(x, w, bias, state, y, B, C, K, silu);
  HS_LAUNCH_CHECK("causal_conv1d_step", "B = ", B, ", C = ", C, ", K = ", K);
}

template <class T>
void selective_scan_steps(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, int64_t ldbc,
                          const T* D, const T* dt_bias, float* h, T* y, int64_t B, int64_t T_, int64_t Dc, int64_t N,
                          void* s) {
  HS_CHECK(N >= 1 && N <= kMaxState, "selective_scan_steps (CUDA): d_state ", N, " outside [1, ", kMaxState, "]");
  HS_CHECK(ldbc >= N, "selective_scan_steps (CUDA): B/C row stride ", ldbc, " < d_state ", N);
  if (B * Dc == 0 || T_ == 0) return;
  scan_steps_k<<<blocks_for(B * Dc, kThreads), kThreads, 0, S(s)>>>(u, delta, A_log, Bm, Cm, ldbc, D, dt_bias, h, y,
                                                                      B, T_, Dc, N);
  HS_LAUNCH_CHECK("selective_scan_steps", "B = ", B, ", T = ", T_, ", Dc = ", Dc, ", N = ", N);
}

#define HS_INST(T)                                                                                           \
  template void causal_conv1d_step<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t, int64_t, bool,  \
                                      void*);                                                                \
  template void selective_scan_steps<T>(const T*, const T*, const T*, const T*, const T*, int64_t, const T*,  \
                                        const T*, float*, T*, int64_t, int64_t, int64_t, int64_t, void*);    \
  template void decode_rope_append<T>(const T*, T*, T*, T*, const int64_t*, int64_t, int64_t, int64_t, int64_t, \
                                      int64_t, bool, double, void*);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
