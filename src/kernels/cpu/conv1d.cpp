#include "kernels/conv1d.h"

#include "kernels/cpu/vec_math.h"

#include <algorithm>
#include <vector>

namespace hyscale::kernels::cpu {

// w [C, K] -> [K, C], so the inner loops run contiguously over channels.
template <class T> static std::vector<T> transposed(const T* w, int64_t C, int64_t K) {
  std::vector<T> wt(static_cast<size_t>(K * C));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) wt[k * C + c] = w[c * K + k];
  return wt;
}

// The forward of both variants; Silu applies x * sigmoid(x) to each finished row while it is
// still in cache, with silu_fwd's expression (elementwise.cpp), so the fused result is the
// composed one bit for bit.
template <bool Silu, class T>
static void conv_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C, int64_t K) {
  const std::vector<T> wt = transposed(w, C, K);
#pragma omp parallel for collapse(2) schedule(static) if (B * T_ * C > 32768)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T_; ++t) {
      T* yr = y + (b * T_ + t) * C;
      for (int64_t c = 0; c < C; ++c) yr[c] = bias[c];
      for (int64_t k = 0; k < K; ++k) {
        const int64_t ts = t - K + 1 + k;
        if (ts < 0) continue;
        const T* xr = x + (b * T_ + ts) * C;
        const T* wk = wt.data() + k * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) yr[c] += wk[c] * xr[c];
      }
      if constexpr (Silu) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) yr[c] = yr[c] * ksigmoid<T>(yr[c]);
      }
    }
}

template <class T>
void causal_conv1d_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C, int64_t K) {
  conv_fwd<false>(x, w, bias, y, B, T_, C, K);
}
template <class T>
void causal_conv1d_silu_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C, int64_t K) {
  conv_fwd<true>(x, w, bias, y, B, T_, C, K);
}

template <class T>
void causal_conv1d_bwd(const T* x, const T* w, const T* dy, T* dx, T* dw, T* dbias, int64_t B, int64_t T_, int64_t C,
                       int64_t K) {
  const std::vector<T> wt = transposed(w, C, K);
  // dx[b,t,c] = sum_k w[c,k] dy[b, t+K-1-k, c]
#pragma omp parallel for collapse(2) schedule(static) if (B * T_ * C > 32768)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T_; ++t) {
      T* dxr = dx + (b * T_ + t) * C;
      for (int64_t c = 0; c < C; ++c) dxr[c] = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t td = t + K - 1 - k;
        if (td >= T_) continue;
        const T* dyr = dy + (b * T_ + td) * C;
        const T* wk = wt.data() + k * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) dxr[c] += wk[c] * dyr[c];
      }
    }
  // dw, dbias: channel blocks owned by one thread each.
  constexpr int64_t kBlk = 32;
  const int64_t nblk = (C + kBlk - 1) / kBlk;
#pragma omp parallel for schedule(static) if (B * T_ * C > 32768)
  for (int64_t blk = 0; blk < nblk; ++blk) {
    const int64_t c0 = blk * kBlk, c1 = std::min(C, c0 + kBlk);
    T acc_w[kBlk * 8] = {};  // K <= 8
    T acc_b[kBlk] = {};
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T_; ++t) {
        const T* dyr = dy + (b * T_ + t) * C;
        for (int64_t c = c0; c < c1; ++c) acc_b[c - c0] += dyr[c];
        for (int64_t k = 0; k < K; ++k) {
          const int64_t ts = t - K + 1 + k;
          if (ts < 0) continue;
          const T* xr = x + (b * T_ + ts) * C;
          for (int64_t c = c0; c < c1; ++c) acc_w[(c - c0) * 8 + k] += dyr[c] * xr[c];
        }
      }
    for (int64_t c = c0; c < c1; ++c) {
      dbias[c] = acc_b[c - c0];
      for (int64_t k = 0; k < K; ++k) dw[c * K + k] = acc_w[(c - c0) * 8 + k];
    }
  }
}

// The CPU path is the reference, not the fast path: one scratch tensor for dpre (the CUDA kernel
// keeps it in registers), then the unfused backward on it, so its sums are the composed ones.
template <class T>
void causal_conv1d_silu_bwd(const T* x, const T* w, const T* bias, const T* dy, T* dx, T* dw, T* dbias, int64_t B,
                            int64_t T_, int64_t C, int64_t K) {
  const int64_t n = B * T_ * C;
  std::vector<T> dpre(static_cast<size_t>(n));
  conv_fwd<false>(x, w, bias, dpre.data(), B, T_, C, K);  // pre, overwritten in place below
  T* d = dpre.data();
#pragma omp parallel for simd schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {  // silu_bwd's expression (elementwise.cpp)
    const T s = ksigmoid<T>(d[i]);
    d[i] = dy[i] * s * (T(1) + d[i] * (T(1) - s));
  }
  causal_conv1d_bwd<T>(x, w, d, dx, dw, dbias, B, T_, C, K);
}

template void causal_conv1d_fwd<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t,
                                       int64_t);
template void causal_conv1d_fwd<double>(const double*, const double*, const double*, double*, int64_t, int64_t,
                                        int64_t, int64_t);
template void causal_conv1d_bwd<float>(const float*, const float*, const float*, float*, float*, float*, int64_t,
                                       int64_t, int64_t, int64_t);
template void causal_conv1d_bwd<double>(const double*, const double*, const double*, double*, double*, double*,
                                        int64_t, int64_t, int64_t, int64_t);
template void causal_conv1d_silu_fwd<float>(const float*, const float*, const float*, float*, int64_t, int64_t,
                                            int64_t, int64_t);
template void causal_conv1d_silu_fwd<double>(const double*, const double*, const double*, double*, int64_t, int64_t,
                                             int64_t, int64_t);
template void causal_conv1d_silu_bwd<float>(const float*, const float*, const float*, const float*, float*, float*,
                                            float*, int64_t, int64_t, int64_t, int64_t);
template void causal_conv1d_silu_bwd<double>(const double*, const double*, const double*, const double*, double*,
                                             double*, double*, int64_t, int64_t, int64_t, int64_t);

}  // namespace hyscale::kernels::cpu

namespace hyscale::kernels::cpu {

template <class T>
void causal_conv1d_step(const T* x, const T* w, const T* bias, T* state, T* y, int64_t B, int64_t C, int64_t K) {
  for (int64_t b = 0; b < B; ++b) {
    T* st = state + b * (K - 1) * C;
    for (int64_t c = 0; c < C; ++c) {
      // Same accumulation order as causal_conv1d_fwd: bias, then k = 0 .. K-1.
      T acc = bias[c];
      for (int64_t k = 0; k < K - 1; ++k) acc += w[c * K + k] * st[k * C + c];
      acc += w[c * K + K - 1] * x[b * C + c];
      y[b * C + c] = acc;
      for (int64_t k = 0; k + 1 < K - 1; ++k) st[k * C + c] = st[(k + 1) * C + c];
      if (K > 1) st[(K - 2) * C + c] = x[b * C + c];
    }
  }
}

template void causal_conv1d_step<float>(const float*, const float*, const float*, float*, float*, int64_t, int64_t,
                                        int64_t);
template void causal_conv1d_step<double>(const double*, const double*, const double*, double*, double*, int64_t,
                                         int64_t, int64_t);

}  // namespace hyscale::kernels::cpu
