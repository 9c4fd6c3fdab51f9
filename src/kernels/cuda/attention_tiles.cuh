// Internal helpers shared by the SIMT attention kernels (attention.cu, diff_attention.cu): the
// 256-thread register-tile layout (a CTA viewed as a 32 x 8 grid, ty = tid / 8, tx = tid % 8; thread
// (ty, tx) holds rows ty + 32 i and columns tx + 8 j of a tile), fp32 shared-memory tiles with row
// stride columns + 1, the causal sliding-window mask, and host-side launch helpers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <tuple>
#include <vector>

#include "kernels/cuda/common.cuh"

namespace hyscale::kernels::cuda::detail::attn {

inline constexpr int kThreads = 256;     // the SIMT kernels run 256 threads (8 warps)
inline constexpr int kTY = 32, kTX = 8;  // register-tile thread grid (see the file comment)
inline constexpr double kLog2eD = 1.4426950408889634;
inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;
inline constexpr size_t kDefaultSmem = 48 * 1024;

// Reductions over the 8 lanes (tx = 0..7) that hold one row of a register tile. Every lane of the
// warp must call them (full mask).
__device__ __forceinline__ float row8_max(float v) {
#pragma unroll
  for (int o = 1; o < kTX; o <<= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float row8_sum(float v) {
#pragma unroll
  for (int o = 1; o < kTX; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// dst[r (C+1) + c] = src[r row_stride + c] (as fp32) for r < rows_valid, c < cols_valid, else 0,
// for r < R, c < C. src points at element (row 0, col 0); all threads of the CTA take part.
template <class T, int R, int C>
__device__ __forceinline__ void load_tile(float* dst, const T* __restrict__ src, int64_t row_stride, int rows_valid,
                                          int cols_valid) {
  for (int idx = threadIdx.x; idx < R * C; idx += kThreads) {
    const int r = idx / C, c = idx % C;
    float x = 0.0f;
    if (r < rows_valid && c < cols_valid) x = ld(src, r * row_stride + c);
    dst[r * (C + 1) + c] = x;
  }
}

// acc[i][j] += sum_{k < K} A(m_i, k) B(k, n_j) with m_i = ty + 32 i, n_j = tx + 8 j, where
// A(m, k) = a[m a_m + k a_k] and B(k, n) = b[k b_k + n b_n] (shared memory, fp32).
template <int MI, int NJ, int K>
__device__ __forceinline__ void tile_mma(float (&acc)[MI][NJ], const float* a, int a_m, int a_k, const float* b,
                                         int b_k, int b_n, int ty, int tx) {
#pragma unroll 2
  for (int k = 0; k < K; ++k) {
    float av[MI], bv[NJ];
#pragma unroll
    for (int i = 0; i < MI; ++i) av[i] = a[(ty + kTY * i) * a_m + k * a_k];
#pragma unroll
    for (int j = 0; j < NJ; ++j) bv[j] = b[k * b_k + (tx + kTX * j) * b_n];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
  }
}

// Key j is visible to query i (both < T) when i - W < j <= i (W = effective window).
__device__ __forceinline__ bool visible(int64_t i, int64_t j, int64_t T_, int64_t W) {
  return i < T_ && j <= i && j > i - W;
}

// ------------------------------------------------------------------------------ host side
// Opts kern in to `bytes` of dynamic shared memory when that exceeds the default 48 KB. The
// opt-in is a property of the kernel on the current device and persists, so it is set once per
// (kernel, device) and raised only when a launch needs more (decoding launches the same kernels
// every step; a driver call per launch is wasted there).
template <class K> void allow_smem(K* kern, size_t bytes, const char* name) {
  if (bytes <= kDefaultSmem) return;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  HS_CHECK(e == cudaSuccess, "CUDA kernel ", name, ": cannot query the device: ", cudaGetErrorString(e));
  static std::mutex mu;
  static std::vector<std::tuple<const void*, int, size_t>> done;  // (kernel, device, bytes opted in)
  const void* key = reinterpret_cast<const void*>(kern);
  std::lock_guard<std::mutex> lock(mu);
  for (auto& [k, d, b] : done)
    if (k == key && d == dev && b >= bytes) return;
  e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  HS_CHECK(e == cudaSuccess, "CUDA kernel ", name, ": cannot use ", bytes,
           " bytes of dynamic shared memory: ", cudaGetErrorString(e));
  for (auto& [k, d, b] : done)
    if (k == key && d == dev) {
      b = bytes;
      return;
    }
  done.emplace_back(key, dev, bytes);
}

// Compute capability (major * 10 + minor) of the current device.
inline int device_sm() {
  int dev = 0, major = 0, minor = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  HS_CHECK(e == cudaSuccess, "attention (CUDA): cannot query the device: ", cudaGetErrorString(e));
  return major * 10 + minor;
}

// The most dynamic shared memory one CTA may opt in to on the current device (bytes): 227 KB on
// an H100, 163 KB on an A100.
inline size_t smem_optin_limit() {
  int dev = 0, v = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  HS_CHECK(e == cudaSuccess, "attention (CUDA): cannot query the device: ", cudaGetErrorString(e));
  return static_cast<size_t>(v);
}

// Effective window: window <= 0 or > T means full causal (T).
inline int64_t eff_window(int64_t window, int64_t T_) { return (window <= 0 || window > T_) ? T_ : window; }

// Stream-ordered fp32 scratch, freed (stream-ordered) when the scope ends, errors included.
struct Scratch {
  float* p = nullptr;
  cudaStream_t s;
  Scratch(size_t n, cudaStream_t st, const char* who) : s(st) {
    if (n == 0) return;  // p stays null
    const cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&p), n * sizeof(float), s);
    HS_CHECK(e == cudaSuccess, who, " (CUDA): scratch of ", n, " floats: ", cudaGetErrorString(e));
  }
  ~Scratch() {
    if (p) cudaFreeAsync(p, s);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// The tensor-core dk/dv kernels' per-query-row statistics of query tile i0 (R rows of head
// offset bh_off = (b H + h) T): row_stat_load returns this thread's raw value (thread r < R: the
// lse of row i0 + r, -inf past T; thread R + r: its Dsum, 0 past T; others: unused), row_stat_store
// writes it converted to stats (lse2 = lse log2(e), +inf for rows past T or without a visible
// key, so exp2(s - lse2) = 0 there; then Dsum): stats[0 .. R) = lse2, stats[R .. 2R) = Dsum.
template <int R>
__device__ __forceinline__ float row_stat_load(const float* __restrict__ lse, const float* __restrict__ dsum,
                                               int64_t bh_off, int64_t i0, int64_t T_, int tid) {
  const int64_t i = i0 + (tid < R ? tid : tid - R);
  float x = tid < R ? -INFINITY : 0.0f;
  if (tid < 2 * R && i < T_) x = (tid < R ? lse : dsum)[bh_off + i];
  return x;
}
template <int R> __device__ __forceinline__ void row_stat_store(float* stats, float x, int tid) {
  if (tid < 2 * R) stats[tid] = tid >= R ? x : (x == -INFINITY ? INFINITY : x * kLog2e);
}

}  // namespace hyscale::kernels::cuda::detail::attn
