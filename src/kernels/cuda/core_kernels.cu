// CUDA bodies of kernels/cuda.h: elementwise, casts, RMSNorm, fused cross-entropy, AdamW,
// sum of squares. Compute in fp32 whatever the storage type; 64-bit indices; 128-bit vector
// loads/stores for the memory-bound elementwise kernels, casts and SwiGLU when pointers are
// 16-byte aligned (elementwise.cuh).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cuda/elementwise.cuh"

namespace hyscale::kernels::cuda {

namespace {

using namespace detail;

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + __expf(-x)); }

// ---------------------------------------------------------------- elementwise (elementwise.cuh)
// Functors of ew_k: x = the inputs of one element, y = its outputs.
struct SiluF {
  __device__ void operator()(const float* x, float* y, float) const { y[0] = x[0] * sigmoidf_(x[0]); }
};
struct SiluBwdF {  // x = {x, dy}
  __device__ void operator()(const float* x, float* y, float) const {
    const float s = sigmoidf_(x[0]);
    y[0] = x[1] * s * (1.0f + x[0] * (1.0f - s));
  }
};
struct AddF {
  __device__ void operator()(const float* x, float* y, float) const { y[0] = x[0] + x[1]; }
};
struct ScaleF {
  float s;
  __device__ void operator()(const float* x, float* y, float) const { y[0] = s * x[0]; }
};

// SwiGLU over rows of [gate | value] (I each). When I is a multiple of W and every pointer is
// 16-byte aligned, a thread takes W consecutive columns of one row with vector accesses; else one
// element per thread.
template <class T>
__global__ void swiglu_fwd_vec_k(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t I) {
  constexpr int W = Vec<T>::W;
  const int64_t gpr = I / W, ng = rows * gpr;
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < ng; v += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = v / gpr, c = (v - r * gpr) * W;
    float g[W], u[W], o[W];
    Vec<T>::load(x, r * 2 * I + c, g);
    Vec<T>::load(x, r * 2 * I + I + c, u);
#pragma unroll
    for (int e = 0; e < W; ++e) o[e] = g[e] * sigmoidf_(g[e]) * u[e];
    Vec<T>::store(y, r * I + c, o);
  }
}
template <class T>
__global__ void swiglu_bwd_vec_k(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dx, int64_t rows,
                                 int64_t I) {
  constexpr int W = Vec<T>::W;
  const int64_t gpr = I / W, ng = rows * gpr;
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < ng; v += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = v / gpr, c = (v - r * gpr) * W;
    float g[W], u[W], d[W], dg[W], du[W];
    Vec<T>::load(x, r * 2 * I + c, g);
    Vec<T>::load(x, r * 2 * I + I + c, u);
    Vec<T>::load(dy, r * I + c, d);
#pragma unroll
    for (int e = 0; e < W; ++e) {
      const float sg = sigmoidf_(g[e]);
      dg[e] = d[e] * u[e] * sg * (1.0f + g[e] * (1.0f - sg));
      du[e] = d[e] * g[e] * sg;
    }
    Vec<T>::store(dx, r * 2 * I + c, dg);
    Vec<T>::store(dx, r * 2 * I + I + c, du);
  }
}

template <class T>
__global__ void swiglu_fwd_k(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t I) {
  const int64_t n = rows * I;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / I, c = i - r * I;
    const float g = ld(x, r * 2 * I + c), v = ld(x, r * 2 * I + I + c);
    st(y, i, g * sigmoidf_(g) * v);
  }
}
template <class T>
__global__ void swiglu_bwd_k(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dx, int64_t rows,
                             int64_t I) {
  const int64_t n = rows * I;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / I, c = i - r * I;
    const float g = ld(x, r * 2 * I + c), v = ld(x, r * 2 * I + I + c), d = ld(dy, i);
    const float s = sigmoidf_(g);
    st(dx, r * 2 * I + c, d * v * s * (1.0f + g * (1.0f - s)));
    st(dx, r * 2 * I + I + c, d * g * s);
  }
}

constexpr int kRowThreads = 256;

// ---------------------------------------------------------------- RMSNorm (one block per row)
// vec (D a multiple of W, every pointer 16-byte aligned): each thread takes whole groups of W
// columns with vector accesses; otherwise single columns. Either partition is fixed by D alone.
template <class T>
__global__ void rmsnorm_fwd_k(const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ y,
                              float* __restrict__ rstd, int64_t D, float eps, bool vec) {
  constexpr int W = Vec<T>::W;
  __shared__ float sh[32];
  const int64_t r = blockIdx.x;
  const T* xr = x + r * D;
  T* yr = y + r * D;
  float ss = 0;
  if (vec) {
    for (int64_t c = threadIdx.x * int64_t(W); c < D; c += kRowThreads * int64_t(W)) {
      float v[W];
      Vec<T>::load(xr, c, v);
#pragma unroll
      for (int e = 0; e < W; ++e) ss += v[e] * v[e];
    }
  } else {
    for (int64_t i = threadIdx.x; i < D; i += kRowThreads) {
      const float v = ld(xr, i);
      ss += v * v;
    }
  }
  ss = block_sum<kRowThreads>(ss, sh);
  const float rs = rsqrtf(ss / static_cast<float>(D) + eps);
  if (threadIdx.x == 0) rstd[r] = rs;
  if (vec) {
    for (int64_t c = threadIdx.x * int64_t(W); c < D; c += kRowThreads * int64_t(W)) {
      float v[W], gv[W], o[W];
      Vec<T>::load(xr, c, v);
      Vec<T>::load(g, c, gv);
#pragma unroll
      for (int e = 0; e < W; ++e) o[e] = v[e] * rs * gv[e];
      Vec<T>::store(yr, c, o);
    }
  } else {
    for (int64_t i = threadIdx.x; i < D; i += kRowThreads) st(yr, i, ld(xr, i) * rs * ld(g, i));
  }
}
// The vector path for rows of at most 32 W G columns: one warp per row (4 rows per block), the
// row held in registers (lane l owns the G groups of W columns starting at (l + 32 j) W), so x is
// read once, the sum of squares is a warp shuffle tree (no block barrier), and every lane has many
// independent 16-byte loads in flight. (The block-per-row kernel above left half of its 256
// threads idle at D 1024 bf16, read the row twice and synchronised the block per row: 53 % of
// the copy rate on an H100.)
constexpr int kNormWarps = 4;
template <class T, int G>
__global__ void __launch_bounds__(32 * kNormWarps)
    rmsnorm_fwd_warp_k(const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ y,
                       float* __restrict__ rstd, int64_t rows, int64_t D, float eps) {
  constexpr int W = Vec<T>::W;
  const int lane = threadIdx.x & 31;
  const int64_t r = blockIdx.x * int64_t(kNormWarps) + (threadIdx.x >> 5);
  if (r >= rows) return;  // warp-uniform: the whole warp leaves
  const T* xr = x + r * D;
  T* yr = y + r * D;
  float v[G][W];
  float ss = 0.0f;
#pragma unroll
  for (int j = 0; j < G; ++j) {
    const int64_t c = int64_t(lane + 32 * j) * W;
    if (c < D) {  // D % W == 0: the whole group is inside the row
      Vec<T>::load(xr, c, v[j]);
#pragma unroll
      for (int e = 0; e < W; ++e) ss += v[j][e] * v[j][e];
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float rs = rsqrtf(ss / static_cast<float>(D) + eps);
  if (lane == 0) rstd[r] = rs;
#pragma unroll
  for (int j = 0; j < G; ++j) {
    const int64_t c = int64_t(lane + 32 * j) * W;
    if (c < D) {
      float gv[W], o[W];
      Vec<T>::load(g, c, gv);
#pragma unroll
      for (int e = 0; e < W; ++e) o[e] = v[j][e] * rs * gv[e];
      Vec<T>::store(yr, c, o);
    }
  }
}

// dx per row; dg partial sums per block of rows into part [nblk, D] (fixed row ranges). Each
// thread owns the same columns in every row (its groups of W when vec), so the part updates do
// not race.
template <class T>
__global__ void rmsnorm_bwd_k(const T* __restrict__ x, const T* __restrict__ g, const float* __restrict__ rstd,
                              const T* __restrict__ dy, T* __restrict__ dx, float* __restrict__ part, int64_t rows,
                              int64_t D, int64_t rows_per_blk, bool vec) {
  constexpr int W = Vec<T>::W;
  __shared__ float sh[32];
  const int64_t r0 = blockIdx.x * rows_per_blk, r1 = min(rows, r0 + rows_per_blk);
  float* pg = part + blockIdx.x * D;
  for (int64_t i = threadIdx.x; i < D; i += kRowThreads) pg[i] = 0.0f;
  __syncthreads();  // (vec: a thread's columns differ from the zeroing loop's)
  for (int64_t r = r0; r < r1; ++r) {
    const float rs = rstd[r];
    const T* xr = x + r * D;
    const T* dr = dy + r * D;
    T* dxr = dx + r * D;
    float dot = 0;
    if (vec) {
      for (int64_t c = threadIdx.x * int64_t(W); c < D; c += kRowThreads * int64_t(W)) {
        float v[W], gv[W], d[W];
        Vec<T>::load(xr, c, v);
        Vec<T>::load(g, c, gv);
        Vec<T>::load(dr, c, d);
#pragma unroll
        for (int e = 0; e < W; ++e) dot += v[e] * rs * gv[e] * d[e];
      }
    } else {
      for (int64_t i = threadIdx.x; i < D; i += kRowThreads) dot += ld(xr, i) * rs * ld(g, i) * ld(dr, i);
    }
    dot = block_sum<kRowThreads>(dot, sh) / static_cast<float>(D);
    if (vec) {
      for (int64_t c = threadIdx.x * int64_t(W); c < D; c += kRowThreads * int64_t(W)) {
        float v[W], gv[W], d[W], o[W];
        Vec<T>::load(xr, c, v);
        Vec<T>::load(g, c, gv);
        Vec<T>::load(dr, c, d);
#pragma unroll
        for (int e = 0; e < W; ++e) {
          const float xh = v[e] * rs;
          o[e] = rs * (gv[e] * d[e] - xh * dot);
          pg[c + e] += d[e] * xh;
        }
        Vec<T>::store(dxr, c, o);
      }
    } else {
      for (int64_t i = threadIdx.x; i < D; i += kRowThreads) {
        const float xh = ld(xr, i) * rs, d = ld(dr, i);
        st(dxr, i, rs * (ld(g, i) * d - xh * dot));
        pg[i] += d * xh;
      }
    }
  }
}
// The same computation for rows of D <= G * kRowThreads * W (16-byte groups, aligned): a thread
// keeps its G groups of g, of the current row's x and dy, and its dg partials in registers, so
// each row is read once and the partials are written once per block (the kernel above re-reads
// the row and updates its partials in global memory every row). Same order of every sum.
template <class T, int G>
__global__ void __launch_bounds__(kRowThreads)
    rmsnorm_bwd_reg_k(const T* __restrict__ x, const T* __restrict__ g, const float* __restrict__ rstd,
                      const T* __restrict__ dy, T* __restrict__ dx, float* __restrict__ part, int64_t rows, int64_t D,
                      int64_t rows_per_blk) {
  constexpr int W = Vec<T>::W;
  __shared__ float sh[32];
  const int64_t r0 = blockIdx.x * rows_per_blk, r1 = min(rows, r0 + rows_per_blk);
  float gv[G][W], acc[G][W], xv[G][W], dv[G][W];
#pragma unroll
  for (int j = 0; j < G; ++j) {
    const int64_t c = (threadIdx.x + int64_t(j) * kRowThreads) * W;
#pragma unroll
    for (int e = 0; e < W; ++e) gv[j][e] = acc[j][e] = 0.0f;
    if (c < D) Vec<T>::load(g, c, gv[j]);
  }
  for (int64_t r = r0; r < r1; ++r) {
    const float rs = rstd[r];
    float dot = 0;
#pragma unroll
    for (int j = 0; j < G; ++j) {
      const int64_t c = (threadIdx.x + int64_t(j) * kRowThreads) * W;
      if (c < D) {
        Vec<T>::load(x + r * D, c, xv[j]);
        Vec<T>::load(dy + r * D, c, dv[j]);
#pragma unroll
        for (int e = 0; e < W; ++e) dot += xv[j][e] * rs * gv[j][e] * dv[j][e];
      }
    }
    dot = block_sum<kRowThreads>(dot, sh) / static_cast<float>(D);
#pragma unroll
    for (int j = 0; j < G; ++j) {
      const int64_t c = (threadIdx.x + int64_t(j) * kRowThreads) * W;
      if (c < D) {
        float o[W];
#pragma unroll
        for (int e = 0; e < W; ++e) {
          const float xh = xv[j][e] * rs;
          o[e] = rs * (gv[j][e] * dv[j][e] - xh * dot);
          acc[j][e] += dv[j][e] * xh;
        }
        Vec<T>::store(dx + r * D, c, o);
      }
    }
  }
#pragma unroll
  for (int j = 0; j < G; ++j) {
    const int64_t c = (threadIdx.x + int64_t(j) * kRowThreads) * W;
    if (c < D)
#pragma unroll
      for (int e = 0; e < W; ++e) part[blockIdx.x * D + c + e] = acc[j][e];
  }
}
__global__ void sum_parts_k(const float* __restrict__ part, float* __restrict__ dg, int64_t nblk, int64_t D) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < D; i += int64_t(gridDim.x) * blockDim.x) {
    float s = 0;
    for (int64_t b = 0; b < nblk; ++b) s += part[b * D + i];  // fixed order
    dg[i] += s;
  }
}

// ---------------------------------------------------------------- cross-entropy (one block per row)
// One pass over the row: each thread keeps an online (max, sum of exp) pair over its elements
// (whole groups of W with vector loads when vec), then the block combines the pairs.
__device__ __forceinline__ void online_lse(float v, float& m, float& s) {
  if (v == -INFINITY) return;  // contributes exp(-inf) = 0 (and would make exp(v - m) NaN while m = -inf)
  if (v > m) {
    s = s * __expf(m - v) + 1.0f;  // m = -inf at the start: exp(-inf) = 0
    m = v;
  } else {
    s += __expf(v - m);
  }
}
// The row's max and its sum of exp(logit - max), on every thread of the block.
template <class T>
__device__ __forceinline__ void row_max_sumexp(const T* __restrict__ lr, int64_t V, bool vec, float* sh, float& mall,
                                               float& sum) {
  constexpr int W = Vec<T>::W;
  float m = -INFINITY, s = 0.0f;
  if (vec) {
    for (int64_t c = threadIdx.x * int64_t(W); c < V; c += kRowThreads * int64_t(W)) {
      float v[W];
      Vec<T>::load(lr, c, v);
#pragma unroll
      for (int e = 0; e < W; ++e) online_lse(v[e], m, s);
    }
  } else {
    for (int64_t i = threadIdx.x; i < V; i += kRowThreads) online_lse(ld(lr, i), m, s);
  }
  mall = block_max<kRowThreads>(m, sh);
  sum = block_sum<kRowThreads>(m == -INFINITY ? 0.0f : s * __expf(m - mall), sh);
}
template <class T>
__global__ void ce_fwd_k(const T* __restrict__ logits, const int32_t* __restrict__ t, float* __restrict__ loss,
                         float* __restrict__ lse, int64_t V, bool vec) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x;
  const T* lr = logits + r * V;
  float mall, s;
  row_max_sumexp(lr, V, vec, sh, mall, s);
  if (threadIdx.x == 0) {
    const float l = mall + logf(s);
    lse[r] = l;
    loss[r] = l - ld(lr, t[r]);
  }
}
template <class T>
__global__ void ce_bwd_k(const T* __restrict__ logits, const int32_t* __restrict__ t, const float* __restrict__ lse,
                         float dscale, T* __restrict__ d, int64_t V, int64_t start, bool vec) {
  constexpr int W = Vec<T>::W;
  const int64_t r = blockIdx.x;
  const float l = lse[r];
  const int64_t tr = static_cast<int64_t>(t[r]) - start;  // outside [0, V): another slice's target
  if (vec) {
    for (int64_t c = threadIdx.x * int64_t(W); c < V; c += kRowThreads * int64_t(W)) {
      float v[W];
      Vec<T>::load(logits, r * V + c, v);
#pragma unroll
      for (int e = 0; e < W; ++e) v[e] = (__expf(v[e] - l) - (c + e == tr ? 1.0f : 0.0f)) * dscale;
      Vec<T>::store(d, r * V + c, v);
    }
    return;
  }
  for (int64_t i = threadIdx.x; i < V; i += kRowThreads) {
    float p = __expf(ld(logits, r * V + i) - l);
    if (i == tr) p -= 1.0f;
    st(d, r * V + i, p * dscale);
  }
}

// Vocabulary-parallel pieces (kernels/cuda.h): one block per row reduces the slice to its max,
// its sum of exp(logit - max) and the target's logit; the combine is one thread per row over the
// gathered slices in order.
template <class T>
__global__ void ce_stats_k(const T* __restrict__ logits, const int32_t* __restrict__ t, float* __restrict__ stats,
                           int64_t N, int64_t V, int64_t start, bool vec) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x;
  const T* lr = logits + r * V;
  float mall, s;
  row_max_sumexp(lr, V, vec, sh, mall, s);
  if (threadIdx.x == 0) {
    const int64_t tr = static_cast<int64_t>(t[r]) - start;
    stats[r] = mall;
    stats[N + r] = s;
    stats[2 * N + r] = tr >= 0 && tr < V ? ld(lr, tr) : 0.0f;
  }
}
__global__ void ce_combine_k(const float* __restrict__ all, int64_t P, float* __restrict__ loss,
                             float* __restrict__ lse, int64_t N) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < N; r += int64_t(gridDim.x) * blockDim.x) {
    float M = -INFINITY;
    for (int64_t p = 0; p < P; ++p) M = fmaxf(M, all[p * 3 * N + r]);
    float s = 0.0f, tl = 0.0f;
    for (int64_t p = 0; p < P; ++p) {
      const float m = all[p * 3 * N + r];
      if (m != -INFINITY) s += all[p * 3 * N + N + r] * expf(m - M);
      tl += all[p * 3 * N + 2 * N + r];
    }
    const float l = M + logf(s);
    lse[r] = l;
    loss[r] = l - tl;
  }
}

// ---------------------------------------------------------------- AdamW, casts, sum of squares
struct AdamwArgs {
  float step_size, bc2_sqrt, decay, b1, b2, eps, gscale;
};
__device__ __forceinline__ float adamw_one(float& p, float g, float& m, float& v, const AdamwArgs& a) {
  const float gi = g * a.gscale;
  const float mi = a.b1 * m + (1.0f - a.b1) * gi;
  const float vi = a.b2 * v + (1.0f - a.b2) * gi * gi;
  m = mi;
  v = vi;
  const float denom = sqrtf(vi) / a.bc2_sqrt + a.eps;
  p = p * a.decay - a.step_size * mi / denom;
  return p;
}
// Four elements per thread in float4 loads and stores when every pointer is 16-byte aligned (the
// tail and unaligned tensors element by element); the same arithmetic per element either way.
__global__ void adamw_k(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                        float* __restrict__ v, int64_t n, AdamwArgs a, bf16* __restrict__ pb, bool vec) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (vec) {
    const int64_t n4 = n / 4;
    for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < n4; q += stride) {
      float4 P = reinterpret_cast<float4*>(p)[q], M = reinterpret_cast<float4*>(m)[q],
             V = reinterpret_cast<float4*>(v)[q];
      const float4 G = reinterpret_cast<const float4*>(g)[q];
      adamw_one(P.x, G.x, M.x, V.x, a);
      adamw_one(P.y, G.y, M.y, V.y, a);
      adamw_one(P.z, G.z, M.z, V.z, a);
      adamw_one(P.w, G.w, M.w, V.w, a);
      reinterpret_cast<float4*>(p)[q] = P;
      reinterpret_cast<float4*>(m)[q] = M;
      reinterpret_cast<float4*>(v)[q] = V;
      if (pb) {
        st(pb, 4 * q, P.x);
        st(pb, 4 * q + 1, P.y);
        st(pb, 4 * q + 2, P.z);
        st(pb, 4 * q + 3, P.w);
      }
    }
    done = n4 * 4;
  }
  for (int64_t i = done + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride) {
    float pi = p[i], mi = m[i], vi = v[i];
    adamw_one(pi, g[i], mi, vi, a);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (pb) st(pb, i, pi);
  }
}
// Casts in groups of 8 elements (two float4 <-> one uint4) when both pointers are aligned; the
// last partial group, or everything when unaligned, element by element.
template <class Src, class Dst>
__global__ void cast_k(const Src* __restrict__ x, Dst* __restrict__ y, int64_t n, bool vec) {
  static_assert(8 % Vec<Src>::W == 0 && 8 % Vec<Dst>::W == 0, "groups of 8 elements");
  const int64_t ng = (n + 7) / 8;
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < ng; v += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i0 = v * 8;
    if (vec && i0 + 8 <= n) {
      float f[8];
#pragma unroll
      for (int h = 0; h < 8; h += Vec<Src>::W) Vec<Src>::load(x, i0 + h, f + h);
#pragma unroll
      for (int h = 0; h < 8; h += Vec<Dst>::W) Vec<Dst>::store(y, i0 + h, f + h);
    } else {
      for (int64_t i = i0; i < n && i < i0 + 8; ++i) st(y, i, ld(x, i));
    }
  }
}
// Sum of squares over many tensors in one launch: each tensor is cut into items of kSsItem
// elements (the last one shorter), one block per item; the partition depends only on the sizes,
// and every sum has a fixed order (per thread, the tree in the block, items in order on the
// host), so the result is deterministic. 16-byte loads where the item is aligned.
constexpr int64_t kSsItem = 64 * 1024;
struct SsItem {
  const float* p;
  int64_t n;
};
__global__ void __launch_bounds__(kRowThreads) sum_squares_items_k(const SsItem* __restrict__ items,
                                                                  double* __restrict__ part) {
  __shared__ double sh[kRowThreads];
  const SsItem it = items[blockIdx.x];
  double s0 = 0, s1 = 0;
  int64_t done = 0;
  if ((reinterpret_cast<uintptr_t>(it.p) & 15u) == 0) {
    const float4* q = reinterpret_cast<const float4*>(it.p);
    const int64_t n4 = it.n / 4;
    for (int64_t i = threadIdx.x; i < n4; i += kRowThreads) {
      const float4 v = q[i];
      s0 += static_cast<double>(v.x) * v.x + static_cast<double>(v.y) * v.y;
      s1 += static_cast<double>(v.z) * v.z + static_cast<double>(v.w) * v.w;
    }
    done = 4 * n4;
  }
  for (int64_t i = done + threadIdx.x; i < it.n; i += kRowThreads) s0 += static_cast<double>(it.p[i]) * it.p[i];
  sh[threadIdx.x] = s0 + s1;
  __syncthreads();
  for (int o = kRowThreads / 2; o > 0; o >>= 1) {  // fixed tree: deterministic
    if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

}  // namespace

// ---------------------------------------------------------------- launchers
template <class T> void silu_fwd(const T* x, T* y, int64_t n, void* s) {
  launch_ew<T, 1, 1>("silu_fwd", {{x}, {y}}, n, nullptr, SiluF{}, s);
}
template <class T> void silu_bwd(const T* x, const T* dy, T* dx, int64_t n, void* s) {
  launch_ew<T, 2, 1>("silu_bwd", {{x, dy}, {dx}}, n, nullptr, SiluBwdF{}, s);
}
template <class T> void swiglu_fwd(const T* x, T* y, int64_t rows, int64_t I, void* s) {
  if (rows * I == 0) return;
  if (I % Vec<T>::W == 0 && aligned16(x) && aligned16(y)) {
    swiglu_fwd_vec_k<<<blocks_for(rows * I / Vec<T>::W, 256), 256, 0, S(s)>>>(x, y, rows, I);
  } else {
    swiglu_fwd_k<<<blocks_for(rows * I, 256), 256, 0, S(s)>>>(x, y, rows, I);
  }
  HS_LAUNCH_CHECK("swiglu_fwd", "rows = ", rows, ", I = ", I);
}
template <class T> void swiglu_bwd(const T* x, const T* dy, T* dx, int64_t rows, int64_t I, void* s) {
  if (rows * I == 0) return;
  if (I % Vec<T>::W == 0 && aligned16(x) && aligned16(dy) && aligned16(dx)) {
    swiglu_bwd_vec_k<<<blocks_for(rows * I / Vec<T>::W, 256), 256, 0, S(s)>>>(x, dy, dx, rows, I);
  } else {
    swiglu_bwd_k<<<blocks_for(rows * I, 256), 256, 0, S(s)>>>(x, dy, dx, rows, I);
  }
  HS_LAUNCH_CHECK("swiglu_bwd", "rows = ", rows, ", I = ", I);
}
template <class T> void add(const T* a, const T* b, T* out, int64_t n, void* s) {
  launch_ew<T, 2, 1>("add", {{a, b}, {out}}, n, nullptr, AddF{}, s);
}
template <class T> void scale(const T* a, float f, T* out, int64_t n, void* s) {
  launch_ew<T, 1, 1>("scale", {{a}, {out}}, n, nullptr, ScaleF{f}, s);
}
void cast_f32_bf16(const float* x, bf16* y, int64_t n, void* s) {
  if (n == 0) return;
  cast_k<float, bf16><<<blocks_for((n + 7) / 8, 256), 256, 0, S(s)>>>(x, y, n, aligned16(x) && aligned16(y));
  HS_LAUNCH_CHECK("cast_f32_bf16", "n = ", n);
}
void cast_bf16_f32(const bf16* x, float* y, int64_t n, void* s) {
  if (n == 0) return;
  cast_k<bf16, float><<<blocks_for((n + 7) / 8, 256), 256, 0, S(s)>>>(x, y, n, aligned16(x) && aligned16(y));
  HS_LAUNCH_CHECK("cast_bf16_f32", "n = ", n);
}

template <class T>
void rmsnorm_fwd(const T* x, const T* g, T* y, float* rstd, int64_t rows, int64_t D, double eps, void* s) {
  if (rows == 0) return;
  HS_CHECK(rows < (int64_t{1} << 31), "rmsnorm_fwd (CUDA): ", rows, " rows exceed the grid");
  const bool vec = D % Vec<T>::W == 0 && aligned16(x) && aligned16(g) && aligned16(y);
  const int64_t lane_cols = 32 * int64_t(Vec<T>::W);  // columns per register group of a warp
  const float e = static_cast<float>(eps);
  const unsigned nb = static_cast<unsigned>((rows + kNormWarps - 1) / kNormWarps);
  auto warp = [&](auto kern) { kern<<<nb, 32 * kNormWarps, 0, S(s)>>>(x, g, y, rstd, rows, D, e); };
  if (vec && D <= lane_cols)
    warp(rmsnorm_fwd_warp_k<T, 1>);
  else if (vec && D <= 2 * lane_cols)
    warp(rmsnorm_fwd_warp_k<T, 2>);
  else if (vec && D <= 4 * lane_cols)
    warp(rmsnorm_fwd_warp_k<T, 4>);
  else if (vec && D <= 8 * lane_cols)
    warp(rmsnorm_fwd_warp_k<T, 8>);
  else
    rmsnorm_fwd_k<<<static_cast<unsigned>(rows), kRowThreads, 0, S(s)>>>(x, g, y, rstd, D, e, vec);
  HS_LAUNCH_CHECK("rmsnorm_fwd", "rows = ", rows, ", D = ", D);
}
template <class T>
void rmsnorm_bwd(const T* x, const T* g, const float* rstd, const T* dy, T* dx, float* dg, int64_t rows, int64_t D,
                 void* s) {
  if (rows == 0) return;
  const int64_t nblk = std::min<int64_t>(rows, 512), per = (rows + nblk - 1) / nblk;
  const int64_t used = (rows + per - 1) / per;
  float* part = nullptr;
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&part), static_cast<size_t>(used * D) * sizeof(float), S(s));
  HS_CHECK(e == cudaSuccess, "rmsnorm_bwd (CUDA): workspace of ", used * D * 4, " bytes: ", cudaGetErrorString(e));
  const bool vec = D % Vec<T>::W == 0 && aligned16(x) && aligned16(g) && aligned16(dy) && aligned16(dx);
  const int64_t round = int64_t(kRowThreads) * Vec<T>::W;  // columns per group of the whole block
  const unsigned nb = static_cast<unsigned>(used);
  if (vec && D <= round)
    rmsnorm_bwd_reg_k<T, 1><<<nb, kRowThreads, 0, S(s)>>>(x, g, rstd, dy, dx, part, rows, D, per);
  else if (vec && D <= 2 * round)
    rmsnorm_bwd_reg_k<T, 2><<<nb, kRowThreads, 0, S(s)>>>(x, g, rstd, dy, dx, part, rows, D, per);
  else if (vec && D <= 4 * round && std::is_same_v<T, float>)  // (bf16 at G 4: 167 registers, 1 block per SM)
    rmsnorm_bwd_reg_k<T, 4><<<nb, kRowThreads, 0, S(s)>>>(x, g, rstd, dy, dx, part, rows, D, per);
  else
    rmsnorm_bwd_k<<<nb, kRowThreads, 0, S(s)>>>(x, g, rstd, dy, dx, part, rows, D, per, vec);
  HS_LAUNCH_CHECK("rmsnorm_bwd", "rows = ", rows, ", D = ", D);
  sum_parts_k<<<blocks_for(D, 256), 256, 0, S(s)>>>(part, dg, used, D);
  HS_LAUNCH_CHECK("rmsnorm_bwd (dg)", "D = ", D);
  cudaFreeAsync(part, S(s));
}

template <class T>
void cross_entropy_fwd(const T* logits, const int32_t* t, float* loss, float* lse, int64_t N, int64_t V, void* s) {
  if (N == 0) return;
  HS_CHECK(N < (int64_t{1} << 31), "cross_entropy_fwd (CUDA): ", N, " rows exceed the grid");
  ce_fwd_k<<<static_cast<unsigned>(N), kRowThreads, 0, S(s)>>>(logits, t, loss, lse, V,
                                                                V % Vec<T>::W == 0 && aligned16(logits));
  HS_LAUNCH_CHECK("cross_entropy_fwd", "N = ", N, ", V = ", V);
}
template <class T>
void cross_entropy_bwd(const T* logits, const int32_t* t, const float* lse, float dscale, T* d, int64_t N, int64_t V,
                       int64_t start, void* s) {
  if (N == 0) return;
  HS_CHECK(N < (int64_t{1} << 31), "cross_entropy_bwd (CUDA): ", N, " rows exceed the grid");
  ce_bwd_k<<<static_cast<unsigned>(N), kRowThreads, 0, S(s)>>>(
      logits, t, lse, dscale, d, V, start, V % Vec<T>::W == 0 && aligned16(logits) && aligned16(d));
  HS_LAUNCH_CHECK("cross_entropy_bwd", "N = ", N, ", V = ", V);
}
template <class T>
void cross_entropy_stats(const T* logits, const int32_t* t, int64_t start, float* stats, int64_t N, int64_t V,
                         void* s) {
  if (N == 0) return;
  HS_CHECK(N < (int64_t{1} << 31), "cross_entropy_stats (CUDA): ", N, " rows exceed the grid");
  ce_stats_k<<<static_cast<unsigned>(N), kRowThreads, 0, S(s)>>>(logits, t, stats, N, V, start,
                                                                  V % Vec<T>::W == 0 && aligned16(logits));
  HS_LAUNCH_CHECK("cross_entropy_stats", "N = ", N, ", V = ", V);
}
void cross_entropy_combine(const float* all, int64_t P, float* loss_rows, float* lse, int64_t N, void* s) {
  if (N == 0) return;
  ce_combine_k<<<blocks_for(N, 256), 256, 0, S(s)>>>(all, P, loss_rows, lse, N);
  HS_LAUNCH_CHECK("cross_entropy_combine", "N = ", N, ", P = ", P);
}

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
                float weight_decay, int64_t step, float grad_scale, bf16* p_bf16, void* s) {
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  const AdamwArgs a{static_cast<float>(lr / bc1), static_cast<float>(std::sqrt(bc2)), 1.0f - lr * weight_decay,
                    beta1, beta2, eps, grad_scale};
  const bool vec = aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v);
  adamw_k<<<blocks_for(vec ? (n + 3) / 4 : n, 256), 256, 0, S(s)>>>(p, g, m, v, n, a, p_bf16, vec);
  HS_LAUNCH_CHECK("adamw_step", "n = ", n);
}

double sum_squares(const float* x, int64_t n, void* s) {
  double out = 0;
  sum_squares_many(&x, &n, 1, &out, s);
  return out;
}

void sum_squares_many(const float* const* xs, const int64_t* ns, int64_t count, double* out, void* s) {
  if (count == 0) return;
  std::vector<SsItem> items;
  std::vector<int64_t> first(static_cast<size_t>(count) + 1);  // items of tensor i: [first[i], first[i + 1])
  for (int64_t i = 0; i < count; ++i) {
    HS_CHECK(ns[i] >= 0, "sum_squares (CUDA): negative size ", ns[i]);
    first[static_cast<size_t>(i)] = static_cast<int64_t>(items.size());
    for (int64_t o = 0; o < ns[i]; o += kSsItem) items.push_back({xs[i] + o, std::min(kSsItem, ns[i] - o)});
  }
  first[static_cast<size_t>(count)] = static_cast<int64_t>(items.size());
  const int64_t ni = static_cast<int64_t>(items.size());
  std::vector<double> h(static_cast<size_t>(ni));
  if (ni > 0) {
    HS_CHECK(ni < (int64_t{1} << 31), "sum_squares (CUDA): too many items (", ni, ")");
    // One workspace: the item table, then the partial sums.
    const size_t tbytes = static_cast<size_t>(ni) * sizeof(SsItem), pbytes = static_cast<size_t>(ni) * sizeof(double);
    char* ws = nullptr;
    cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&ws), tbytes + pbytes, S(s));
    HS_CHECK(e == cudaSuccess, "sum_squares (CUDA): workspace: ", cudaGetErrorString(e));
    auto* dit = reinterpret_cast<SsItem*>(ws);
    auto* part = reinterpret_cast<double*>(ws + tbytes);  // tbytes is a multiple of 16
    e = cudaMemcpyAsync(dit, items.data(), tbytes, cudaMemcpyHostToDevice, S(s));
    if (e == cudaSuccess) {
      sum_squares_items_k<<<static_cast<unsigned>(ni), kRowThreads, 0, S(s)>>>(dit, part);
      e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpyAsync(h.data(), part, pbytes, cudaMemcpyDeviceToHost, S(s));
    if (e == cudaSuccess) e = cudaStreamSynchronize(S(s));  // also keeps `items` alive for the copy
    cudaFreeAsync(ws, S(s));
    HS_CHECK(e == cudaSuccess, "sum_squares (CUDA): ", cudaGetErrorString(e), " (", count, " tensors, ", ni,
             " items)");
  }
  for (int64_t i = 0; i < count; ++i) {
    double total = 0;
    for (int64_t j = first[static_cast<size_t>(i)]; j < first[static_cast<size_t>(i) + 1]; ++j)
      total += h[static_cast<size_t>(j)];  // fixed order
    out[i] = total;
  }
}

#define HS_INST(T)                                                                                             \
  template void silu_fwd<T>(const T*, T*, int64_t, void*);                                                     \
  template void silu_bwd<T>(const T*, const T*, T*, int64_t, void*);                                           \
  template void swiglu_fwd<T>(const T*, T*, int64_t, int64_t, void*);                                          \
  template void swiglu_bwd<T>(const T*, const T*, T*, int64_t, int64_t, void*);                                \
  template void add<T>(const T*, const T*, T*, int64_t, void*);                                                \
  template void scale<T>(const T*, float, T*, int64_t, void*);                                                 \
  template void rmsnorm_fwd<T>(const T*, const T*, T*, float*, int64_t, int64_t, double, void*);               \
  template void rmsnorm_bwd<T>(const T*, const T*, const float*, const T*, T*, float*, int64_t, int64_t, void*); \
  template void cross_entropy_fwd<T>(const T*, const int32_t*, float*, float*, int64_t, int64_t, void*);       \
  template void cross_entropy_bwd<T>(const T*, const int32_t*, const float*, float, T*, int64_t, int64_t, int64_t,   \
                                     void*);                                                                     \
  template void cross_entropy_stats<T>(const T*, const int32_t*, int64_t, float*, int64_t, int64_t, void*);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
