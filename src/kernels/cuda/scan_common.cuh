// Helpers shared by the selective-scan kernels (selective_scan.cu, selective_scan_bwd.cu).
#pragma once
#include "kernels/cuda/common.cuh"

namespace hyscale::kernels::cuda::detail {

// o[j] = p[i + j] as floats for j < n_used (zeros after), kN registers. With kVec (kN == 16 and
// p + i 16-byte aligned: the caller checks the base pointer and rows of 16 keep it) the 16
// elements come in two 16-byte loads (bf16) or four (f32) instead of 16 scalar ones.
template <int kN, bool kVec>
__device__ __forceinline__ void ld_row(const bf16* p, int64_t i, int n_used, float (&o)[kN]) {
  if constexpr (kVec && kN == 16) {
    const uint4* q = reinterpret_cast<const uint4*>(p + i);
    const uint4 a = q[0], b = q[1];
    const uint32_t w[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
    for (int j = 0; j < 8; ++j) {  // the lower-indexed element sits in the low 16 bits
      o[2 * j] = __uint_as_float(w[j] << 16);
      o[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
    }
  } else {
#pragma unroll
    for (int j = 0; j < kN; ++j) o[j] = j < n_used ? ld(p, i + j) : 0.0f;
  }
}
template <int kN, bool kVec>
__device__ __forceinline__ void ld_row(const float* p, int64_t i, int n_used, float (&o)[kN]) {
  if constexpr (kVec && kN == 16) {
    const float4* q = reinterpret_cast<const float4*>(p + i);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float4 v = q[j];
      o[4 * j] = v.x;
      o[4 * j + 1] = v.y;
      o[4 * j + 2] = v.z;
      o[4 * j + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int j = 0; j < kN; ++j) o[j] = j < n_used ? p[i + j] : 0.0f;
  }
}
// o[j] = p[i + n0 + j] as floats (zero where n0 + j >= N). kVec: N % 4 == 0 and p 16-byte
// aligned (then p + i + n0 is 8-byte aligned for bf16, 16-byte for f32): one vector load.
template <bool kVec>
__device__ __forceinline__ void ld4(const bf16* p, int64_t i, int n0, int N, float (&o)[4]) {
  if constexpr (kVec) {
    uint2 w = make_uint2(0u, 0u);
    if (n0 < N) w = *reinterpret_cast<const uint2*>(p + i + n0);
    o[0] = __uint_as_float(w.x << 16);
    o[1] = __uint_as_float(w.x & 0xffff0000u);
    o[2] = __uint_as_float(w.y << 16);
    o[3] = __uint_as_float(w.y & 0xffff0000u);
  } else {
#pragma unroll
    for (int j = 0; j < 4; ++j) o[j] = n0 + j < N ? ld(p, i + n0 + j) : 0.0f;
  }
}
template <bool kVec>
__device__ __forceinline__ void ld4(const float* p, int64_t i, int n0, int N, float (&o)[4]) {
  if constexpr (kVec) {
    float4 w = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (n0 < N) w = *reinterpret_cast<const float4*>(p + i + n0);
    o[0] = w.x;
    o[1] = w.y;
    o[2] = w.z;
    o[3] = w.w;
  } else {
#pragma unroll
    for (int j = 0; j < 4; ++j) o[j] = n0 + j < N ? p[i + n0 + j] : 0.0f;
  }
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
constexpr float kLog2e = 1.4426950408889634f;

}  // namespace hyscale::kernels::cuda::detail
