// CUDA bodies of kernels/cuda_hybrid.h except the scan backward: GMU gate, mul, add_inplace,
// differential-attention combine and lambda. fp32 arithmetic whatever the storage type; 64-bit
// indices. Elementwise work is split into groups of W = 16 / sizeof(T) consecutive elements
// (one 128-bit access per operand); a full group uses vector loads/stores when every pointer is
// 16-byte aligned, otherwise (and for the last partial group) the same thread walks the group
// element by element. Because the partition into groups never depends on alignment, the
// dlambda partial sums have the same order on the vector and the scalar path.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda_hybrid.h"

namespace hyscale::kernels::cuda {

namespace {

using namespace detail;

constexpr int kThreads = 256;

// Accurate expf (not __expf): these kernels are memory-bound and the CPU twin is ~2 ulp accurate.
__device__ __forceinline__ float sigmoid_acc(float x) { return 1.0f / (1.0f + expf(-x)); }

// CPU twins' expression order: p * sigmoid(p) * m; dp = dh m s (1 + p (1 - s)); dm += dh p s.
struct GmuFwdF {
  __device__ void operator()(const float* x, float* y, float) const { y[0] = x[0] * sigmoid_acc(x[0]) * x[1]; }
};
struct GmuBwdF {  // x = {p, m, dy, dm_old}, y = {dp, dm_new}
  __device__ void operator()(const float* x, float* y, float) const {
    const float p = x[0], m = x[1], dh = x[2], s = sigmoid_acc(p);
    y[0] = dh * m * s * (1.0f + p * (1.0f - s));
    y[1] = x[3] + dh * p * s;
  }
};
struct MulF {
  __device__ void operator()(const float* x, float* y, float) const { y[0] = x[0] * x[1]; }
};
struct AddF {
  __device__ void operator()(const float* x, float* y, float) const { y[0] = x[0] + x[1]; }
};
struct DiffFwdF {  // out = a1 - lambda a2
  __device__ void operator()(const float* x, float* y, float lam) const { y[0] = x[0] - lam * x[1]; }
};

// ---------------------------------------------------------------- diff combine backward
constexpr int kDotBlocks = 256;  // at most; the grid depends only on n (deterministic)

// Fixed tree over kThreads doubles; every thread gets the result.
__device__ double block_sum_d(double v, double* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int o = kThreads / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();
  return r;
}

// da1 = g, da2 = (-lambda) g, part[block] = sum of g a2 (double) over the block's groups.
template <class T>
__global__ void __launch_bounds__(kThreads)
    diff_bwd_k(const T* __restrict__ a2, const T* __restrict__ g, const float* __restrict__ lambda,
               T* __restrict__ da1, T* __restrict__ da2, double* __restrict__ part, int64_t n, bool vec) {
  constexpr int W = Vec<T>::W;
  __shared__ double sh[kThreads];
  const float nl = -*lambda;
  const int64_t ng = (n + W - 1) / W;
  double acc = 0;
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < ng; v += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i0 = v * W;
    if (vec && i0 + W <= n) {
      float xa[W], xg[W], y[W];
      Vec<T>::load(a2, i0, xa);
      Vec<T>::load(g, i0, xg);
#pragma unroll
      for (int e = 0; e < W; ++e) {
        y[e] = nl * xg[e];
        acc += static_cast<double>(xg[e]) * static_cast<double>(xa[e]);
      }
      Vec<T>::store(da1, i0, xg);
      Vec<T>::store(da2, i0, y);
    } else {  // same elements, same order as the vector path
      for (int e = 0; e < W && i0 + e < n; ++e) {
        const float xa = ld(a2, i0 + e), xg = ld(g, i0 + e);
        st(da1, i0 + e, xg);
        st(da2, i0 + e, nl * xg);
        acc += static_cast<double>(xg) * static_cast<double>(xa);
      }
    }
  }
  acc = block_sum_d(acc, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}
__global__ void diff_dlambda_k(const double* __restrict__ part, int nb, float* __restrict__ dlambda) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double s = 0;
  for (int i = 0; i < nb; ++i) s += part[i];  // fixed order
  dlambda[0] = static_cast<float>(-s);
}

// ---------------------------------------------------------------- diff lambda (one block)
__device__ void lambda_dots(const float* lq1, const float* lk1, const float* lq2, const float* lk2, int64_t d,
                            double* sh, double& s1, double& s2) {
  double a = 0, b = 0;
  for (int64_t i = threadIdx.x; i < d; i += kThreads) {
    a += static_cast<double>(lq1[i]) * lk1[i];
    b += static_cast<double>(lq2[i]) * lk2[i];
  }
  s1 = block_sum_d(a, sh);
  s2 = block_sum_d(b, sh);
}
__global__ void __launch_bounds__(kThreads)
    diff_lambda_fwd_k(const float* __restrict__ lq1, const float* __restrict__ lk1, const float* __restrict__ lq2,
                      const float* __restrict__ lk2, int64_t d, double lambda_init, float* __restrict__ lambda) {
  __shared__ double sh[kThreads];
  double s1, s2;
  lambda_dots(lq1, lk1, lq2, lk2, d, sh, s1, s2);
  if (threadIdx.x == 0) lambda[0] = static_cast<float>(exp(s1) - exp(s2) + lambda_init);
}
__global__ void __launch_bounds__(kThreads)
    diff_lambda_bwd_k(const float* __restrict__ lq1, const float* __restrict__ lk1, const float* __restrict__ lq2,
                      const float* __restrict__ lk2, int64_t d, const float* __restrict__ dlambda,
                      float* __restrict__ dlq1, float* __restrict__ dlk1, float* __restrict__ dlq2,
                      float* __restrict__ dlk2) {
  __shared__ double sh[kThreads];
  double s1, s2;
  lambda_dots(lq1, lk1, lq2, lk2, d, sh, s1, s2);
  // The CPU's fp32 expressions: e_i rounded to fp32, then (g e1) lk1, ((-g) e2) lk2.
  const float e1 = static_cast<float>(exp(s1)), e2 = static_cast<float>(exp(s2)), gv = dlambda[0];
  const float g1 = gv * e1, g2 = -gv * e2;
  for (int64_t i = threadIdx.x; i < d; i += kThreads) {
    dlq1[i] = g1 * lk1[i];
    dlk1[i] = g1 * lq1[i];
    dlq2[i] = g2 * lk2[i];
    dlk2[i] = g2 * lq2[i];
  }
}

}  // namespace

// ---------------------------------------------------------------- launchers
template <class T> void gmu_gate_fwd(const T* p, const T* m, T* y, int64_t n, void* s) {
  launch_ew<T, 2, 1>("gmu_gate_fwd", {{p, m}, {y}}, n, nullptr, GmuFwdF{}, s);
}
template <class T> void gmu_gate_bwd(const T* p, const T* m, const T* dy, T* dp, T* dm_accum, int64_t n, void* s) {
  launch_ew<T, 4, 2>("gmu_gate_bwd", {{p, m, dy, dm_accum}, {dp, dm_accum}}, n, nullptr, GmuBwdF{}, s);
}
template <class T> void mul(const T* a, const T* b, T* out, int64_t n, void* s) {
  launch_ew<T, 2, 1>("mul", {{a, b}, {out}}, n, nullptr, MulF{}, s);
}
template <class T> void add_inplace(T* acc, const T* x, int64_t n, void* s) {
  launch_ew<T, 2, 1>("add_inplace", {{acc, x}, {acc}}, n, nullptr, AddF{}, s);
}
template <class T> void diff_combine_fwd(const T* a1, const T* a2, const float* lambda, T* out, int64_t n, void* s) {
  launch_ew<T, 2, 1>("diff_combine_fwd", {{a1, a2}, {out}}, n, lambda, DiffFwdF{}, s);
}
template <class T>
void diff_combine_bwd(const T* a2, const T* g, const float* lambda, T* da1, T* da2, float* dlambda, int64_t n,
                      void* s) {
  if (n == 0) {  // the empty sum: dlambda = -0, as the CPU writes it
    diff_dlambda_k<<<1, 32, 0, S(s)>>>(nullptr, 0, dlambda);
    HS_LAUNCH_CHECK("diff_combine_bwd (dlambda)", "n = 0");
    return;
  }
  const int64_t ng = (n + Vec<T>::W - 1) / Vec<T>::W;
  const int nb = std::min(kDotBlocks, blocks_for(ng, kThreads));
  double* part = nullptr;
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&part), nb * sizeof(double), S(s));
  HS_CHECK(e == cudaSuccess, "diff_combine_bwd (CUDA): workspace of ", nb * sizeof(double),
           " bytes: ", cudaGetErrorString(e));
  const bool vec = aligned16(a2) && aligned16(g) && aligned16(da1) && aligned16(da2);
  diff_bwd_k<T><<<nb, kThreads, 0, S(s)>>>(a2, g, lambda, da1, da2, part, n, vec);
  HS_LAUNCH_CHECK("diff_combine_bwd", "n = ", n);
  diff_dlambda_k<<<1, 32, 0, S(s)>>>(part, nb, dlambda);
  HS_LAUNCH_CHECK("diff_combine_bwd (dlambda)", "blocks = ", nb);
  cudaFreeAsync(part, S(s));
}

void diff_lambda_fwd(const float* lq1, const float* lk1, const float* lq2, const float* lk2, int64_t d,
                     double lambda_init, float* lambda, void* s) {
  diff_lambda_fwd_k<<<1, kThreads, 0, S(s)>>>(lq1, lk1, lq2, lk2, d, lambda_init, lambda);
  HS_LAUNCH_CHECK("diff_lambda_fwd", "d = ", d);
}
void diff_lambda_bwd(const float* lq1, const float* lk1, const float* lq2, const float* lk2, int64_t d,
                     const float* dlambda, float* dlq1, float* dlk1, float* dlq2, float* dlk2, void* s) {
  if (d == 0) return;
  diff_lambda_bwd_k<<<1, kThreads, 0, S(s)>>>(lq1, lk1, lq2, lk2, d, dlambda, dlq1, dlk1, dlq2, dlk2);
  HS_LAUNCH_CHECK("diff_lambda_bwd", "d = ", d);
}

#define HS_INST(T)                                                                                          \
  template void gmu_gate_fwd<T>(const T*, const T*, T*, int64_t, void*);                                    \
  template void gmu_gate_bwd<T>(const T*, const T*, const T*, T*, T*, int64_t, void*);                      \
  template void mul<T>(const T*, const T*, T*, int64_t, void*);                                             \
  template void add_inplace<T>(T*, const T*, int64_t, void*);                                               \
  template void diff_combine_fwd<T>(const T*, const T*, const float*, T*, int64_t, void*);                  \
  template void diff_combine_bwd<T>(const T*, const T*, const float*, T*, T*, float*, int64_t, void*);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
