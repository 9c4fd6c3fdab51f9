// CUDA causal depthwise conv1d (kernels/cuda.h). One thread per (sequence b, run of kRun time
// steps, channel c), consecutive threads = consecutive channels (coalesced): it keeps the last
// K - 1 inputs in registers while it walks its run, so every x (and dy) is loaded once plus a
// (K - 1) / kRun halo, and no per-element index division is left (the first version, one thread
// per element with 64-bit div/mod, measured 400 GB/s on an H100, 13% of the copy). The backward
// is one kernel too: dx[t] from a window of upcoming dy, and this run's dw/dbias partial sums
// (per (b, run, c)), reduced afterwards in a fixed order (deterministic, no atomics).
// The *_silu_* variants fuse Mamba-1's SiLU: the forward applies it before the store; the backward
// recomputes the pre-activation from x (nothing saved), so its thread also carries a window of
// upcoming x to form dpre = dy silu'(pre) at t + K - 1 (see conv_silu_bwd_k).
#include "kernels/cuda/common.cuh"

namespace hyscale::kernels::cuda {

namespace {
using namespace detail;
int grid_for(int64_t n) { return blocks_for(n, 256); }
constexpr int kMaxK = 8;
constexpr int kRun = 64;      // time steps per thread
constexpr int kThreadsC = 128;  // channels per block
// kRefill: a window's newest slot K - 1 is written as `a[k] = k == K - 1 ? v : a[k]` for every k.
// The branch form `if (k == K - 1) a[k] = v` lets the compiler fold the unrolled stores into one
// store at the runtime index K - 1, which puts the array in local memory (ptxas: 96-byte stack
// frames in the backward kernels); the select keeps every index constant.

// silu's sigmoid as core_kernels.cu computes it (so fused = composed up to the pre-activation's
// rounding to the storage type, which the fused path skips).
__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + __expf(-x)); }

// grid (ceil(C / 128), ceil(T / kRun), B)
template <class T, bool Silu>
__global__ void __launch_bounds__(kThreadsC)
    conv_fwd_k(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias, T* __restrict__ y,
               int64_t T_, int64_t C, int K) {
  const int64_t c = blockIdx.x * int64_t(kThreadsC) + threadIdx.x;
  if (c >= C) return;
  const int64_t b = blockIdx.z, t0 = int64_t(blockIdx.y) * kRun, t1 = min(T_, t0 + kRun);
  const T* xb = x + b * T_ * C + c;
  T* yb = y + b * T_ * C + c;
  float wk[kMaxK], win[kMaxK];  // win[j] = x[t - K + 1 + j] for the step t being computed
#pragma unroll
  for (int k = 0; k < kMaxK; ++k) {
    wk[k] = k < K ? ld(w, c * K + k) : 0.0f;
    const int64_t ts = t0 - K + 1 + k;  // the halo: x[t0 - K + 1 .. t0 - 1]
    win[k] = (k < K - 1 && ts >= 0) ? ld(xb, ts * C) : 0.0f;
  }
  const float bv = ld(bias, c);
  for (int64_t t = t0; t < t1; ++t) {
    float acc = bv;  // the CPU's order: bias, then k = 0 .. K-1 (taps before t = 0 are zeros)
    const float xt = ld(xb, t * C);
#pragma unroll
    for (int k = 0; k < kMaxK; ++k) {
      win[k] = k == K - 1 ? xt : win[k];  // a select, not a branch: see kRefill
      if (k < K) acc += wk[k] * win[k];
    }
    st(yb, t * C, Silu ? acc * sigmoidf_(acc) : acc);
#pragma unroll
    for (int k = 0; k + 1 < kMaxK; ++k) win[k] = win[k + 1];  // slide (win[K - 1] is refilled)
  }
}

// dx[t] = sum_k w[k] dy[t + K - 1 - k] (t + K - 1 - k < T), and the run's partials
// part[(b * runs + run) * C + c][k] = sum_t dy[t] x[t - K + 1 + k], [K] = sum_t dy[t].
template <class T>
__global__ void __launch_bounds__(kThreadsC)
    conv_bwd_k(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ dy, T* __restrict__ dx,
               float* __restrict__ part, int64_t T_, int64_t C, int K) {
  const int64_t c = blockIdx.x * int64_t(kThreadsC) + threadIdx.x;
  if (c >= C) return;
  const int64_t b = blockIdx.z, t0 = int64_t(blockIdx.y) * kRun, t1 = min(T_, t0 + kRun);
  const T* xb = x + b * T_ * C + c;
  const T* db = dy + b * T_ * C + c;
  T* dxb = dx + b * T_ * C + c;
  // dw_[j] = dy[t + j] for j < K (the upcoming window), xw[j] = x[t - K + 1 + j], wr[j] = w[K - 1 - j]
  // (reversed, so every register array is indexed by compile-time constants).
  float wr[kMaxK], xw[kMaxK], dw_[kMaxK], acc[kMaxK];
#pragma unroll
  for (int k = 0; k < kMaxK; ++k) {
    wr[k] = k < K ? ld(w, c * K + K - 1 - k) : 0.0f;
    const int64_t ts = t0 - K + 1 + k, tf = t0 + k;
    xw[k] = (k < K - 1 && ts >= 0) ? ld(xb, ts * C) : 0.0f;
    dw_[k] = (k < K - 1 && tf < T_) ? ld(db, tf * C) : 0.0f;
    acc[k] = 0.0f;
  }
  float dbias = 0.0f;
  for (int64_t t = t0; t < t1; ++t) {
    const float xt = ld(xb, t * C);
    const int64_t tl = t + K - 1;
    const float dl = tl < T_ ? ld(db, tl * C) : 0.0f;
    float g = 0.0f;
#pragma unroll
    for (int k = 0; k < kMaxK; ++k) {
      xw[k] = k == K - 1 ? xt : xw[k];  // kRefill
      dw_[k] = k == K - 1 ? dl : dw_[k];
    }
#pragma unroll
    for (int j = kMaxK - 1; j >= 0; --j)  // j = K-1 .. 0 is the CPU's k = 0 .. K-1: w[k] dy[t + K - 1 - k]
      if (j < K) g += wr[j] * dw_[j];
    st(dxb, t * C, g);
    const float d = dw_[0];  // dy[t]
    dbias += d;
#pragma unroll
    for (int k = 0; k < kMaxK; ++k)
      if (k < K) acc[k] += d * xw[k];
#pragma unroll
    for (int k = 0; k + 1 < kMaxK; ++k) {
      xw[k] = xw[k + 1];
      dw_[k] = dw_[k + 1];
    }
  }
  float* p = part + ((b * gridDim.y + blockIdx.y) * C + c) * (K + 1);
#pragma unroll
  for (int k = 0; k < kMaxK; ++k)  // compile-time indices: acc stays in registers
    if (k < K) p[k] = acc[k];
  p[K] = dbias;
}

// The fused backward: dx[t] = sum_k w[k] dpre[t + K - 1 - k] needs dpre = dy silu'(pre) at
// t .. t + K - 1, i.e. pre at future steps, so the thread's x window spans [t - K + 1, t + K - 1]
// (2K - 1 values), kept as two compile-time-indexed windows sharing x[t]:
//   xf[j] = x[s - K + 1 + j] (j < K), feeding pre[s] = bias + sum_k w[k] xf[k] (the forward's order)
//   at the newest step s = t + K - 1;  xp[j] = x[t - K + 1 + j], the taps of dw as in conv_bwd_k.
// Step s loads x[s] and dy[s], forms dpre[s] and shifts it into dp[j] = dpre[s - K + 1 + j], then
// completes t = s - K + 1; the first K - 1 steps (s = t0 .. t0 + K - 2) only fill the window (the
// next run recomputes them: K - 1 extra pre per kRun steps). Steps s >= T have dy = 0: dpre = 0.
template <class T>
__global__ void __launch_bounds__(kThreadsC)
    conv_silu_bwd_k(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                    const T* __restrict__ dy, T* __restrict__ dx, float* __restrict__ part, int64_t T_, int64_t C,
                    int K) {
  const int64_t c = blockIdx.x * int64_t(kThreadsC) + threadIdx.x;
  if (c >= C) return;
  const int64_t b = blockIdx.z, t0 = int64_t(blockIdx.y) * kRun, t1 = min(T_, t0 + kRun);
  const T* xb = x + b * T_ * C + c;
  const T* db = dy + b * T_ * C + c;
  T* dxb = dx + b * T_ * C + c;
  float wk[kMaxK], wr[kMaxK], xf[kMaxK], xp[kMaxK], dp[kMaxK], acc[kMaxK];
#pragma unroll
  for (int k = 0; k < kMaxK; ++k) {
    wk[k] = k < K ? ld(w, c * K + k) : 0.0f;
    wr[k] = k < K ? ld(w, c * K + K - 1 - k) : 0.0f;
    const int64_t ts = t0 - K + 1 + k;  // the past halo x[t0 - K + 1 .. t0 - 1], in both windows
    xf[k] = (k < K - 1 && ts >= 0) ? ld(xb, ts * C) : 0.0f;
    xp[k] = xf[k];
    dp[k] = 0.0f;
    acc[k] = 0.0f;
  }
  const float bv = ld(bias, c);
  float dbias = 0.0f;
  for (int64_t s = t0; s < t1 + K - 1; ++s) {  // s = t + K - 1; the first K - 1 steps only fill dp
    const bool in = s < T_;
    const float xs = in ? ld(xb, s * C) : 0.0f;
    float pre = bv;
#pragma unroll
    for (int k = 0; k < kMaxK; ++k) {
      xf[k] = k == K - 1 ? xs : xf[k];  // kRefill
      if (k < K) pre += wk[k] * xf[k];
    }
    float dn = 0.0f;
    if (in) {
      const float sg = sigmoidf_(pre);
      dn = ld(db, s * C) * sg * (1.0f + pre * (1.0f - sg));  // silu_bwd's expression
    }
    const float xt = xf[0];  // x[t], leaving xf
#pragma unroll
    for (int k = 0; k + 1 < kMaxK; ++k) {
      xf[k] = xf[k + 1];
      dp[k] = dp[k + 1];
    }
#pragma unroll
    for (int k = 0; k < kMaxK; ++k)
      dp[k] = k == K - 1 ? dn : dp[k];  // now dp[j] = dpre[t + j], j < K
    const int64_t t = s - K + 1;
    if (t < t0) continue;
    float g = 0.0f;
#pragma unroll
    for (int j = kMaxK - 1; j >= 0; --j)  // the CPU's k = 0 .. K-1: w[k] dpre[t + K - 1 - k]
      if (j < K) g += wr[j] * dp[j];
    st(dxb, t * C, g);
    const float d = dp[0];  // dpre[t]
    dbias += d;
#pragma unroll
    for (int k = 0; k < kMaxK; ++k) {
      xp[k] = k == K - 1 ? xt : xp[k];
      if (k < K) acc[k] += d * xp[k];
    }
#pragma unroll
    for (int k = 0; k + 1 < kMaxK; ++k) xp[k] = xp[k + 1];
  }
  float* p = part + ((b * gridDim.y + blockIdx.y) * C + c) * (K + 1);
#pragma unroll
  for (int k = 0; k < kMaxK; ++k)  // compile-time indices: acc stays in registers
    if (k < K) p[k] = acc[k];
  p[K] = dbias;
}

__global__ void conv_dw_sum_k(const float* __restrict__ part, float* __restrict__ dw, float* __restrict__ dbias,
                              int64_t nchunk, int64_t C, int64_t K) {
  const int64_t n = C * (K + 1);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float s = 0;
    for (int64_t ch = 0; ch < nchunk; ++ch) s += part[ch * n + i];  // fixed order
    const int64_t c = i / (K + 1), k = i % (K + 1);
    if (k == K)
      dbias[c] = s;
    else
      dw[c * K + k] = s;
  }
}
}  // namespace

static dim3 conv_grid(int64_t B, int64_t T_, int64_t C) {
  return dim3(static_cast<unsigned>((C + kThreadsC - 1) / kThreadsC), static_cast<unsigned>((T_ + kRun - 1) / kRun),
              static_cast<unsigned>(B));
}
static void conv_check_grid(const char* what, int64_t B, int64_t T_, int64_t C) {
  HS_CHECK(B <= 65535 && (T_ + kRun - 1) / kRun <= 65535 && (C + kThreadsC - 1) / kThreadsC < (int64_t{1} << 31), what,
           " (CUDA): B = ", B, ", T = ", T_, ", C = ", C, " exceed the launch grid (B <= 65535, T <= ", 65535 * kRun, ")");
}

template <bool Silu, class T>
static void conv_fwd(const char* what, const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C,
                     int64_t K, void* s) {
  HS_CHECK(K >= 1 && K <= kMaxK, what, " (CUDA): width ", K, " outside [1, ", kMaxK, "]");
  if (B * T_ * C == 0) return;
  conv_check_grid(what, B, T_, C);
  conv_fwd_k<T, Silu><<<conv_grid(B, T_, C), kThreadsC, 0, S(s)>>>(x, w, bias, y, T_, C, static_cast<int>(K));
  HS_LAUNCH_CHECK(what, "B = ", B, ", T = ", T_, ", C = ", C, ", K = ", K);
}

// bias == nullptr: the plain backward (dy is the conv output's gradient); otherwise the fused
// SiLU one (dy is the gradient of silu(conv), the pre-activation is recomputed with bias).
template <class T>
static void conv_bwd(const char* what, const T* x, const T* w, const T* bias, const T* dy, T* dx, float* dw,
                     float* dbias, int64_t B, int64_t T_, int64_t C, int64_t K, void* s) {
  HS_CHECK(K >= 1 && K <= kMaxK, what, " (CUDA): width ", K, " outside [1, ", kMaxK, "]");
  if (C == 0) return;
  if (B * T_ == 0) {  // empty sums
    cudaError_t e = cudaMemsetAsync(dw, 0, static_cast<size_t>(C * K) * 4, S(s));
    if (e == cudaSuccess) e = cudaMemsetAsync(dbias, 0, static_cast<size_t>(C) * 4, S(s));
    HS_CHECK(e == cudaSuccess, what, " (CUDA): zeroing empty gradients: ", cudaGetErrorString(e));
    return;
  }
  conv_check_grid(what, B, T_, C);
  const int64_t rows = B * ((T_ + kRun - 1) / kRun);  // (b, run) partial rows
  float* part = nullptr;
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&part), static_cast<size_t>(rows * C * (K + 1)) * 4, S(s));
  HS_CHECK(e == cudaSuccess, what, " (CUDA): workspace: ", cudaGetErrorString(e));
  if (bias)
    conv_silu_bwd_k<<<conv_grid(B, T_, C), kThreadsC, 0, S(s)>>>(x, w, bias, dy, dx, part, T_, C, static_cast<int>(K));
  else
    conv_bwd_k<<<conv_grid(B, T_, C), kThreadsC, 0, S(s)>>>(x, w, dy, dx, part, T_, C, static_cast<int>(K));
  HS_LAUNCH_CHECK(what, "dx, dw partials; B = ", B, ", T = ", T_, ", C = ", C, ", K = ", K);
  conv_dw_sum_k<<<grid_for(C * (K + 1)), 256, 0, S(s)>>>(part, dw, dbias, rows, C, K);
  HS_LAUNCH_CHECK(what, "dw sum; C = ", C, ", K = ", K);
  cudaFreeAsync(part, S(s));
}

template <class T>
void causal_conv1d_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C, int64_t K,
                       void* s) {
  conv_fwd<false>("causal_conv1d_fwd", x, w, bias, y, B, T_, C, K, s);
}
template <class T>
void causal_conv1d_bwd(const T* x, const T* w, const T* dy, T* dx, float* dw, float* dbias, int64_t B, int64_t T_,
                       int64_t C, int64_t K, void* s) {
  conv_bwd<T>("causal_conv1d_bwd", x, w, nullptr, dy, dx, dw, dbias, B, T_, C, K, s);
}
template <class T>
void causal_conv1d_silu_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C, int64_t K,
                            void* s) {
  conv_fwd<true>("causal_conv1d_silu_fwd", x, w, bias, y, B, T_, C, K, s);
}
template <class T>
void causal_conv1d_silu_bwd(const T* x, const T* w, const T* bias, const T* dy, T* dx, float* dw, float* dbias,
                            int64_t B, int64_t T_, int64_t C, int64_t K, void* s) {
  HS_CHECK(bias != nullptr, "causal_conv1d_silu_bwd (CUDA): the bias is required (the pre-activation is recomputed)");
  conv_bwd<T>("causal_conv1d_silu_bwd", x, w, bias, dy, dx, dw, dbias, B, T_, C, K, s);
}

#define HS_INST(T)                                                                                             \
  template void causal_conv1d_fwd<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t, void*); \
  template void causal_conv1d_bwd<T>(const T*, const T*, const T*, T*, float*, float*, int64_t, int64_t, int64_t,  \
                                     int64_t, void*);                                                        \
  template void causal_conv1d_silu_fwd<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t,   \
                                          void*);                                                                 \
  template void causal_conv1d_silu_bwd<T>(const T*, const T*, const T*, const T*, T*, float*, float*, int64_t,    \
                                          int64_t, int64_t, int64_t, void*);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
