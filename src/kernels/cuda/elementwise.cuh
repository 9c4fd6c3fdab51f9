// Vectorised elementwise kernels shared by core_kernels.cu and hybrid_kernels.cu. Work is split
// into groups of W = 16 / sizeof(T) consecutive elements (one 128-bit access per operand); a full
// group uses vector loads/stores when every pointer is 16-byte aligned, otherwise (and for the
// last partial group) the same thread walks the group element by element. The partition never
// depends on alignment, so per-group results and any sums over groups do not either. One 16-byte
// access per operand per thread keeps enough bytes in flight to approach the copy bandwidth
// (scalar 2-byte bf16 accesses measured 46-63 % of it on an H100).
#pragma once
#include "kernels/cuda/common.cuh"

namespace hyscale::kernels::cuda::detail {

constexpr int kEwThreads = 256;

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// 128-bit pack of W elements <-> W floats.
template <class T> struct Vec;
template <> struct Vec<float> {
  static constexpr int W = 4;
  __device__ static void load(const float* p, int64_t i, float* f) {
    const float4 v = *reinterpret_cast<const float4*>(p + i);
    f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
  }
  __device__ static void store(float* p, int64_t i, const float* f) {
    *reinterpret_cast<float4*>(p + i) = make_float4(f[0], f[1], f[2], f[3]);
  }
};
template <> struct Vec<bf16> {
  static constexpr int W = 8;
  __device__ static void load(const bf16* p, int64_t i, float* f) {
    const uint4 v = *reinterpret_cast<const uint4*>(p + i);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 x = __bfloat1622float2(h[k]);  // .x = lower address
      f[2 * k] = x.x, f[2 * k + 1] = x.y;
    }
  }
  __device__ static void store(bf16* p, int64_t i, const float* f) {
    uint4 v;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&v);
#pragma unroll
    for (int k = 0; k < 4; ++k) h[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);  // round to nearest even
    *reinterpret_cast<uint4*>(p + i) = v;
  }
};

// NI inputs, NO outputs. An output may alias an input (add_inplace, the dm accumulation): each
// element is read and then written by the same thread, so no __restrict__ here.
template <class T, int NI, int NO> struct EwArgs {
  const T* in[NI];
  T* out[NO];
  bool all_aligned() const {
    for (int j = 0; j < NI; ++j)
      if (!aligned16(in[j])) return false;
    for (int j = 0; j < NO; ++j)
      if (!aligned16(out[j])) return false;
    return true;
  }
};

// F: __device__ void operator()(const float* x /*NI*/, float* y /*NO*/, float scalar) const.
template <class T, int NI, int NO, class F>
__global__ void ew_k(EwArgs<T, NI, NO> a, int64_t n, bool vec, const float* scalar, F f) {
  constexpr int W = Vec<T>::W;
  const float sc = scalar ? *scalar : 0.0f;
  const int64_t ng = (n + W - 1) / W;
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < ng; v += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i0 = v * W;
    if (vec && i0 + W <= n) {
      float x[NI][W], y[NO][W];
#pragma unroll
      for (int j = 0; j < NI; ++j) Vec<T>::load(a.in[j], i0, x[j]);
#pragma unroll
      for (int e = 0; e < W; ++e) {
        float xi[NI], yi[NO];
#pragma unroll
        for (int j = 0; j < NI; ++j) xi[j] = x[j][e];
        f(xi, yi, sc);
#pragma unroll
        for (int j = 0; j < NO; ++j) y[j][e] = yi[j];
      }
#pragma unroll
      for (int j = 0; j < NO; ++j) Vec<T>::store(a.out[j], i0, y[j]);
    } else {
      for (int e = 0; e < W; ++e) {
        const int64_t i = i0 + e;
        if (i >= n) break;
        float xi[NI], yi[NO];
#pragma unroll
        for (int j = 0; j < NI; ++j) xi[j] = ld(a.in[j], i);
        f(xi, yi, sc);
#pragma unroll
        for (int j = 0; j < NO; ++j) st(a.out[j], i, yi[j]);
      }
    }
  }
}

template <class T, int NI, int NO, class F>
void launch_ew(const char* name, EwArgs<T, NI, NO> a, int64_t n, const float* scalar, F f, void* s) {
  if (n == 0) return;
  const int64_t ng = (n + Vec<T>::W - 1) / Vec<T>::W;
  ew_k<T, NI, NO, F><<<blocks_for(ng, kEwThreads), kEwThreads, 0, S(s)>>>(a, n, a.all_aligned(), scalar, f);
  HS_LAUNCH_CHECK(name, "n = ", n);
}

}  // namespace hyscale::kernels::cuda::detail
