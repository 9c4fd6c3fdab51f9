// Internal helpers of the CUDA kernel bodies: storage <-> fp32 loads/stores (bf16 = uint16_t
// bits), the stream cast, grid sizing for grid-stride loops, the post-launch check.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "kernels/cuda.h"

namespace hyscale::kernels::cuda::detail {

// The launch stream: the caller's, or the thread's current one (kernels/cuda.h) when it passed none.
inline cudaStream_t S(void* s) { return static_cast<cudaStream_t>(s != nullptr ? s : current_stream()); }

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

// Sum / max over a block of kThreads threads (a multiple of 32, <= 1024); sh holds 32 floats.
// Every thread gets the result; all threads of the block must call it.
template <int kThreads> __device__ float block_sum(float v, float* sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float t = threadIdx.x < kThreads / 32 ? sh[threadIdx.x] : 0.0f;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
  if (threadIdx.x == 0) sh[0] = t;
  __syncthreads();
  const float r = sh[0];
  __syncthreads();
  return r;
}
template <int kThreads> __device__ float block_max(float v, float* sh) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float t = threadIdx.x < kThreads / 32 ? sh[threadIdx.x] : -INFINITY;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, o));
  if (threadIdx.x == 0) sh[0] = t;
  __syncthreads();
  const float r = sh[0];
  __syncthreads();
  return r;
}
}  // namespace hyscale::kernels::cuda::detail

// After a launch: names the kernel and its sizes on failure.
#define HS_LAUNCH_CHECK(name, ...)                                                                        \
  do {                                                                                                    \
    cudaError_t err_ = cudaGetLastError();                                                                \
    if (err_ != cudaSuccess)                                                                              \
      HS_FAIL("CUDA kernel ", name, " failed to launch: ", cudaGetErrorString(err_), " (", __VA_ARGS__, ")"); \
  } while (0)
