// CUDA causal depthwise conv1d (kernels/cuda.h): one thread per (b, t, c) in forward and for dx
// (consecutive threads = consecutive channels: coalesced); dw/dbias by per-chunk partials over
// (b, t) rows, reduced in a fixed order.
#include "kernels/cuda/common.cuh"

namespace hyscale::kernels::cuda {

namespace {
using namespace detail;
int grid_for(int64_t n) { return blocks_for(n, 256); }
constexpr int kMaxK = 8;

template <class T>
__global__ void conv_fwd_k(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                           T* __restrict__ y, int64_t B, int64_t T_, int64_t C, int64_t K) {
  const int64_t n = B * T_ * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % C, bt = i / C, t = bt % T_;
    float acc = ld(bias, c);  // the CPU's order: bias, then k = 0 .. K-1
    for (int64_t k = 0; k < K; ++k) {
      const int64_t ts = t - K + 1 + k;
      if (ts >= 0) acc += ld(w, c * K + k) * ld(x, (bt - t + ts) * C + c);
    }
    st(y, i, acc);
  }
}
template <class T>
__global__ void conv_dx_k(const T* __restrict__ w, const T* __restrict__ dy, T* __restrict__ dx, int64_t B, int64_t T_,
                          int64_t C, int64_t K) {
  const int64_t n = B * T_ * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % C, bt = i / C, t = bt % T_;
    float acc = 0;
    for (int64_t k = 0; k < K; ++k) {  // x[t] feeds y[t + K - 1 - k] through w[c, k]
      const int64_t to = t + K - 1 - k;
      if (to < T_) acc += ld(w, c * K + k) * ld(dy, (bt - t + to) * C + c);
    }
    st(dx, i, acc);
  }
}
// grid (chunks, channel tiles): part[chunk, c, 0..K-1] = dw partials, part[chunk, c, K] = dbias.
template <class T>
__global__ void conv_dw_part_k(const T* __restrict__ x, const T* __restrict__ dy, float* __restrict__ part,
                               int64_t rows, int64_t T_, int64_t C, int64_t K, int64_t rows_per_chunk) {
  const int64_t c = blockIdx.y * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  const int64_t r0 = blockIdx.x * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
  float acc[kMaxK + 1];
  for (int k = 0; k <= kMaxK; ++k) acc[k] = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {  // r indexes (b, t)
    const int64_t t = r % T_;
    const float d = ld(dy, r * C + c);
    acc[K] += d;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t ts = t - K + 1 + k;
      if (ts >= 0) acc[k] += d * ld(x, (r - t + ts) * C + c);
    }
  }
  float* p = part + (blockIdx.x * C + c) * (K + 1);
  for (int64_t k = 0; k <= K; ++k) p[k] = acc[k];
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

template <class T>
void causal_conv1d_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C, int64_t K,
                       void* s) {
  HS_CHECK(K >= 1 && K <= kMaxK, "causal_conv1d_fwd (CUDA): width ", K, " outside [1, ", kMaxK, "]");
  if (B * T_ * C == 0) return;
  conv_fwd_k<<<grid_for(B * T_ * C), 256, 0, S(s)>>>(x, w, bias, y, B, T_, C, K);
  HS_LAUNCH_CHECK("causal_conv1d_fwd", "B = ", B, ", T = ", T_, ", C = ", C, ", K = ", K);
}

template <class T>
void causal_conv1d_bwd(const T* x, const T* w, const T* dy, T* dx, float* dw, float* dbias, int64_t B, int64_t T_,
                       int64_t C, int64_t K, void* s) {
  HS_CHECK(K >= 1 && K <= kMaxK, "causal_conv1d_bwd (CUDA): width ", K, " outside [1, ", kMaxK, "]");
  if (B * T_ * C == 0) return;
  conv_dx_k<<<grid_for(B * T_ * C), 256, 0, S(s)>>>(w, dy, dx, B, T_, C, K);
  HS_LAUNCH_CHECK("causal_conv1d_bwd (dx)", "B = ", B, ", T = ", T_, ", C = ", C, ", K = ", K);
  const int64_t rows = B * T_, nchunk = std::min<int64_t>(rows, 256), per = (rows + nchunk - 1) / nchunk;
  const int64_t used = (rows + per - 1) / per;
  float* part = nullptr;
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&part), static_cast<size_t>(used * C * (K + 1)) * 4, S(s));
  HS_CHECK(e == cudaSuccess, "causal_conv1d_bwd (CUDA): workspace: ", cudaGetErrorString(e));
  const dim3 grid(static_cast<unsigned>(used), static_cast<unsigned>((C + 127) / 128));
  conv_dw_part_k<<<grid, 128, 0, S(s)>>>(x, dy, part, rows, T_, C, K, per);
  HS_LAUNCH_CHECK("causal_conv1d_bwd (dw partials)", "rows = ", rows, ", C = ", C, ", K = ", K);
  conv_dw_sum_k<<<grid_for(C * (K + 1)), 256, 0, S(s)>>>(part, dw, dbias, used, C, K);
  HS_LAUNCH_CHECK("causal_conv1d_bwd (dw sum)", "C = ", C, ", K = ", K);
  cudaFreeAsync(part, S(s));
}

#define HS_INST(T)                                                                                             \
  template void causal_conv1d_fwd<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t, void*); \
  template void causal_conv1d_bwd<T>(const T*, const T*, const T*, T*, float*, float*, int64_t, int64_t, int64_t,  \
                                     int64_t, void*);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
