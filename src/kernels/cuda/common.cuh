// Internal helpers of the CUDA kernel bodies: storage <-> fp32 loads/stores (bf16 = uint16_t
// bits), the stream cast, grid sizing for grid-stride loops, the post-launch check.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "kernels/cuda.h"

namespace hyscale::kernels::cuda::detail {

inline cudaStream_t S(void* s) { return static_cast<cudaStream_t>(s); }

__device__ __forceinline__ float ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16* p, int64_t i) {
  return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(p)[i]);
}
__device__ __forceinline__ void st(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16* p, int64_t i, float v) {
  reinterpret_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
}

// Blocks of `threads` for a grid-stride loop over n items (capped; at least one).
inline int blocks_for(int64_t n, int threads = 256) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

}  // namespace hyscale::kernels::cuda::detail

// After a launch: names the kernel and its sizes on failure.
#define HS_LAUNCH_CHECK(name, ...)                                                                        \
  do {                                                                                                    \
    cudaError_t err_ = cudaGetLastError();                                                                \
    if (err_ != cudaSuccess)                                                                              \
      HS_FAIL("CUDA kernel ", name, " failed to launch: ", cudaGetErrorString(err_), " (", __VA_ARGS__, ")"); \
  } while (0)
