// Helpers shared by the selective-scan kernels (selective_scan.cu, selective_scan_bwd.cu).
#pragma once
#include "kernels/cuda/common.cuh"

namespace hyscale::kernels::cuda::detail {

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
