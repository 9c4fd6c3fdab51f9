// Tensor plumbing on the device: strided copies (views -> contiguous, gradients into slices)
// with dtype conversion, and fills. See kernels/cuda.h.
#include <cuda_runtime.h>

#include <atomic>
#include <cstring>

#include "kernels/cuda/common.cuh"
#include "kernels/strided_layout.h"

namespace hyscale::kernels::cuda {
using namespace detail;

namespace {

constexpr int kMaxDims = 8;

using Layout = CopyLayout<kMaxDims>;  // kernels/strided_layout.h

// dtype codes follow core/dtype.h: 0 f32, 1 f64, 2 bf16, 3 i32, 4 i64.
__device__ __forceinline__ double load_any(const void* p, int dt, int64_t i) {
  switch (dt) {
    case 0: return static_cast<const float*>(p)[i];
    case 1: return static_cast<const double*>(p)[i];
    case 2: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case 3: return static_cast<const int32_t*>(p)[i];
    default: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
  }
}
__device__ __forceinline__ void store_any(void* p, int dt, int64_t i, double v) {
  switch (dt) {
    case 0: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case 1: static_cast<double*>(p)[i] = v; break;
    case 2: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(static_cast<float>(v)); break;
    case 3: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
    default: static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); break;
  }
}

// Element offsets in dst and src of the i-th element in row-major order of the view.
__device__ __forceinline__ void offsets(const Layout& L, int64_t i, int64_t& doff, int64_t& soff) {
  doff = soff = 0;
  for (int d = L.ndim - 1; d >= 0; --d) {
    const int64_t idx = i % L.shape[d];
    i /= L.shape[d];
    doff += idx * L.dst_stride[d];
    soff += idx * L.src_stride[d];
  }
}

// Same dtype: the element's bits are moved (NaN payloads kept); E = element type of that size.
template <class E>
__global__ void strided_copy_same(E* __restrict__ dst, const E* __restrict__ src, Layout L, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t doff, soff;
    offsets(L, i, doff, soff);
    dst[doff] = src[soff];
  }
}

// f32 -> bf16 and bf16 -> f32 (the casts mixed precision does every step) get their own path.
__global__ void strided_copy_cast(void* dst, int ddt, const void* src, int sdt, Layout L, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t doff, soff;
    offsets(L, i, doff, soff);
    if (ddt == 2 && sdt == 0)
      static_cast<__nv_bfloat16*>(dst)[doff] = __float2bfloat16_rn(static_cast<const float*>(src)[soff]);
    else if (ddt == 0 && sdt == 2)
      static_cast<float*>(dst)[doff] = __bfloat162float(static_cast<const __nv_bfloat16*>(src)[soff]);
    else
      store_any(dst, ddt, doff, load_any(src, sdt, soff));
  }
}

template <class E> __global__ void fill_kernel(E* __restrict__ dst, E v, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = v;
}

int elem_size(int dt) { return dt == 2 ? 2 : (dt == 1 || dt == 4) ? 8 : 4; }

}  // namespace

namespace {
PhaseHook g_phase_hook = nullptr;
}
void set_phase_hook(PhaseHook hook) { g_phase_hook = hook; }
void phase(const char* name) {
  if (g_phase_hook) g_phase_hook(name);
}

namespace {
std::atomic<bool> g_deterministic{true};
}
void set_deterministic(bool on) { g_deterministic.store(on, std::memory_order_relaxed); }
bool deterministic() { return g_deterministic.load(std::memory_order_relaxed); }

namespace {
thread_local void* g_current_stream = nullptr;
}
void set_current_stream(void* stream) { g_current_stream = stream; }
void* current_stream() { return g_current_stream; }

void strided_copy(void* dst, int dst_dtype, const int64_t* dst_strides, const void* src, int src_dtype,
                  const int64_t* src_strides, const int64_t* shape, int ndim, void* stream) {
  HS_CHECK(ndim >= 0 && ndim <= kMaxDims, "cuda strided_copy: ", ndim, " dimensions (at most ", kMaxDims, ")");
  // Collapsed (kernels/strided_layout.h), most copies take the fast paths below: the index
  // arithmetic of the general kernel would otherwise cost 3-4x the bandwidth.
  const Layout L = collapse_copy_layout<kMaxDims>(shape, dst_strides, src_strides, ndim);
  const int64_t n = L.numel;
  if (n == 0) return;
  const bool unit = L.dst_stride[L.ndim - 1] == 1 && L.src_stride[L.ndim - 1] == 1;
  if (unit && L.ndim == 1) {
    if (dst_dtype == src_dtype) {
      const cudaError_t e = cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * elem_size(dst_dtype),
                                            cudaMemcpyDeviceToDevice, S(stream));
      if (e != cudaSuccess) HS_FAIL("cuda strided_copy: copy of ", n, " elements: ", cudaGetErrorString(e));
      return;
    }
    if (src_dtype == 0 && dst_dtype == 2) return cast_f32_bf16(static_cast<const float*>(src), static_cast<bf16*>(dst), n, stream);
    if (src_dtype == 2 && dst_dtype == 0) return cast_bf16_f32(static_cast<const bf16*>(src), static_cast<float*>(dst), n, stream);
  }
  // Rows of at least 32 bytes with pitches the copy engine takes (< 2^31 bytes): a pitched copy.
  const int64_t es = elem_size(dst_dtype);
  if (unit && L.ndim == 2 && dst_dtype == src_dtype && L.dst_stride[0] >= L.shape[1] && L.src_stride[0] >= L.shape[1] &&
      L.shape[1] * es >= 32 && L.dst_stride[0] * es < (int64_t{1} << 31) && L.src_stride[0] * es < (int64_t{1} << 31)) {
    const cudaError_t e = cudaMemcpy2DAsync(dst, static_cast<size_t>(L.dst_stride[0] * es), src,
                                            static_cast<size_t>(L.src_stride[0] * es),
                                            static_cast<size_t>(L.shape[1] * es), static_cast<size_t>(L.shape[0]),
                                            cudaMemcpyDeviceToDevice, S(stream));
    if (e != cudaSuccess)
      HS_FAIL("cuda strided_copy: copy of ", L.shape[0], " rows of ", L.shape[1], ": ", cudaGetErrorString(e));
    return;
  }
  const int blocks = blocks_for(n);
  if (dst_dtype == src_dtype) {
    switch (elem_size(dst_dtype)) {
      case 2:
        strided_copy_same<uint16_t><<<blocks, 256, 0, S(stream)>>>(static_cast<uint16_t*>(dst),
                                                                   static_cast<const uint16_t*>(src), L, n);
        break;
      case 4:
        strided_copy_same<uint32_t><<<blocks, 256, 0, S(stream)>>>(static_cast<uint32_t*>(dst),
                                                                   static_cast<const uint32_t*>(src), L, n);
        break;
      default:
        strided_copy_same<uint64_t><<<blocks, 256, 0, S(stream)>>>(static_cast<uint64_t*>(dst),
                                                                   static_cast<const uint64_t*>(src), L, n);
    }
  } else {
    strided_copy_cast<<<blocks, 256, 0, S(stream)>>>(dst, dst_dtype, src, src_dtype, L, n);
  }
  HS_LAUNCH_CHECK("strided_copy", "n ", n, ", ndim ", ndim, ", dtypes ", src_dtype, " -> ", dst_dtype);
}

void fill(void* dst, int dtype, int64_t n, double value, void* stream) {
  if (n <= 0) return;
  const int blocks = blocks_for(n);
  switch (dtype) {
    case 0: fill_kernel<float><<<blocks, 256, 0, S(stream)>>>(static_cast<float*>(dst), float(value), n); break;
    case 1: fill_kernel<double><<<blocks, 256, 0, S(stream)>>>(static_cast<double*>(dst), value, n); break;
    case 2: {
      const __nv_bfloat16 b = __float2bfloat16_rn(static_cast<float>(value));
      uint16_t bits;
      std::memcpy(&bits, &b, 2);
      fill_kernel<uint16_t><<<blocks, 256, 0, S(stream)>>>(static_cast<uint16_t*>(dst), bits, n);
      break;
    }
    case 3:
      fill_kernel<int32_t><<<blocks, 256, 0, S(stream)>>>(static_cast<int32_t*>(dst), int32_t(value), n);
      break;
    default:
      fill_kernel<int64_t><<<blocks, 256, 0, S(stream)>>>(static_cast<int64_t*>(dst), int64_t(value), n);
  }
  HS_LAUNCH_CHECK("fill", "n ", n, ", dtype ", dtype);
}

}  // namespace hyscale::kernels::cuda
