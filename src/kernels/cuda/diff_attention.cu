// Fused differential attention (kernels/cuda_diff_attention.h): forward and backward of both
// branches of a head pair in one pass. The dispatch sends bf16 at hd 64 / 128 to the tensor-core
// kernels of diff_attention_mma.cu where they apply (the backward's pre-passes below are shared);
// this file's kernels are the SIMT form, built like attention.cu's (256 threads viewed
// as a 32 x 8 grid, register tiles with rows ty + 32 i and columns tx + 8 j, fp32 tiles in shared
// memory with row stride columns + 1, online softmax in the log2 domain, exp2f).
//   forward, one CTA per (query tile, head pair, batch): Q1, Q2 tiles stay in shared memory; per
//     visible key tile it loads K1 and K2 once, S1 = Q1 K1^T and S2 = Q2 K2^T with two online
//     softmax states, then loads the V tile once (into K's buffer) for O1 += P1 V and O2 += P2 V.
//     Writes o1, o2, out = o1 - lambda o2 (from the fp32 values) and lse1, lse2.
//   backward: a row pass r1 = rowsum(g o1), r2 = rowsum(g o2) (fp32 scratch [B, Hp, T] each); a
//     one-block pass dlambda = -sum(r2) (fixed tree); then with do1 = g, do2 = -lambda g, so that
//     dP1 = g v^T and dP2 = -lambda dP1 (one product), Dsum1 = r1, Dsum2 = -lambda r2:
//     dk/dv kernel, one CTA per (key tile, KV pair, batch): K1, K2, V stay in shared memory; over the
//       pairs of the GQA group and the query tiles that see the key tile: dS1 = P1 (dP1 - Dsum1),
//       dS2 = P2 (dP2 - Dsum2), dV += (P1 - lambda P2)^T g, dK1 += dS1^T Q1, dK2 += dS2^T Q2.
//     dq kernel, one CTA per (query tile, head pair, batch): over its visible key tiles (K1, K2, V
//       loaded once each), dQ1 += dS1 K1, dQ2 += dS2 K2.
//   Deterministic: fixed loop orders, every output element summed by one thread, no atomics.
// Tiles (queries x keys) and shared memory per padded hd (kD; kDv = 2 kD), from DCfg below:
//   kD    forward          dq kernel          dk/dv kernel
//   32    64x64  65.5 KB   64x64  99.0 KB     64x64 115.2 KB
//   64    64x64  97.5 KB   64x32 114.6 KB     32x64 122.0 KB
//   128   32x64 113.0 KB   32x32 137.5 KB     32x32 141.6 KB
// All fit sm_80's 163 KB opt-in limit (set with cudaFuncAttributeMaxDynamicSharedMemorySize).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/diff_attention_mma.h"
#include "kernels/cuda_diff_attention.h"

namespace hyscale::kernels::cuda {

namespace {
using namespace detail;
using namespace detail::attn;  // kThreads, kTY, kTX, row8_*, load_tile, tile_mma, visible, ... (attention_tiles.cuh)

__device__ __forceinline__ float* smem_f32() {
  extern __shared__ float4 hs_dattn_smem[];
  return reinterpret_cast<float*>(hs_dattn_smem);
}

template <int MI, int NJ>
__device__ __forceinline__ void zero(float (&a)[MI][NJ]) {
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NJ; ++j) a[i][j] = 0.0f;
}

// One online-softmax step of one branch on the scores s (unscaled) of key tile j0: masks, updates
// (m, l), rescales o and writes P (relative to the new running max) to Ps [rows][LP].
template <int MI, int NJ, int OJ>
__device__ __forceinline__ void softmax_step(float (&s)[MI][NJ], float (&m)[MI], float (&l)[MI], float (&o)[MI][OJ],
                                             float* Ps, int LP, int64_t i0, int64_t j0, int64_t T_, int64_t W,
                                             float sl2, int ty, int tx) {
#pragma unroll
  for (int i = 0; i < MI; ++i) {
    const int r = ty + kTY * i;
    const int64_t qi = i0 + r;
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      s[i][j] = visible(qi, j0 + tx + kTX * j, T_, W) ? s[i][j] * sl2 : -INFINITY;
      mx = fmaxf(mx, s[i][j]);
    }
    mx = row8_max(mx);
    const float mnew = fmaxf(m[i], mx);
    const float base = mnew == -INFINITY ? 0.0f : mnew;
    const float alpha = exp2f(m[i] - base);
    float rs = 0.0f;
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const float p = exp2f(s[i][j] - base);
      rs += p;
      Ps[r * LP + tx + kTX * j] = p;
    }
    rs = row8_sum(rs);
    l[i] = l[i] * alpha + rs;
    m[i] = mnew;
#pragma unroll
    for (int j = 0; j < OJ; ++j) o[i][j] *= alpha;
  }
}

// Tile sizes and shared-memory carve-up (floats) for the padded head dim kD (values 2 kD wide).
template <int kD> struct DCfg {
  static constexpr int kDv = 2 * kD, kLQ = kD + 1, kLV = kDv + 1;
  // forward: the K1, K2 tiles and then the V tile share one buffer
  static constexpr int kFBr = kD >= 128 ? 32 : 64, kFBc = 64, kFLP = kFBc + 1;
  static constexpr int kFKV = 2 * kFBc * kLQ > kFBc * kLV ? 2 * kFBc * kLQ : kFBc * kLV;
  static constexpr int kFQ1 = 0, kFQ2 = kFQ1 + kFBr * kLQ, kFK = kFQ2 + kFBr * kLQ, kFP1 = kFK + kFKV,
                       kFP2 = kFP1 + kFBr * kFLP, kFEnd = kFP2 + kFBr * kFLP;
  // backward dq
  static constexpr int kQBr = kD >= 128 ? 32 : 64, kQBc = kD >= 64 ? 32 : 64, kQLS = kQBc + 1;
  static constexpr int kQQ1 = 0, kQQ2 = kQQ1 + kQBr * kLQ, kQG = kQQ2 + kQBr * kLQ, kQK1 = kQG + kQBr * kLV,
                       kQK2 = kQK1 + kQBc * kLQ, kQV = kQK2 + kQBc * kLQ, kQS1 = kQV + kQBc * kLV,
                       kQS2 = kQS1 + kQBr * kQLS, kQL = kQS2 + kQBr * kQLS, kQEnd = kQL + 4 * kQBr;
  // backward dk/dv
  static constexpr int kKBc = kD >= 128 ? 32 : 64, kKBr = kD >= 64 ? 32 : 64, kKLS = kKBc + 1;
  static constexpr int kKK1 = 0, kKK2 = kKK1 + kKBc * kLQ, kKV = kKK2 + kKBc * kLQ, kKQ1 = kKV + kKBc * kLV,
                       kKQ2 = kKQ1 + kKBr * kLQ, kKG = kKQ2 + kKBr * kLQ, kKP = kKG + kKBr * kLV,
                       kKS1 = kKP + kKBr * kKLS, kKS2 = kKS1 + kKBr * kKLS, kKL = kKS2 + kKBr * kKLS,
                       kKEnd = kKL + 4 * kKBr;
  static constexpr size_t fwd_bytes() { return sizeof(float) * kFEnd; }
  static constexpr size_t dq_bytes() { return sizeof(float) * kQEnd; }
  static constexpr size_t dkdv_bytes() { return sizeof(float) * kKEnd; }
};

// ------------------------------------------------------------------------------ forward
template <class T, int kD>
__global__ void __launch_bounds__(kThreads)
    dattn_fwd_k(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                const float* __restrict__ lambda, T* __restrict__ out, T* __restrict__ o1g, T* __restrict__ o2g,
                float* __restrict__ lse1, float* __restrict__ lse2, int64_t T_, int64_t Hp, int64_t Hkp, int hd,
                float sl2, int64_t W) {
  using C = DCfg<kD>;
  constexpr int kDv = C::kDv, Br = C::kFBr, Bc = C::kFBc, MI = Br / kTY, NJ = Bc / kTX, OJ = kDv / kTX,
                LP = C::kFLP;
  float* sm = smem_f32();
  float *Q1s = sm + C::kFQ1, *Q2s = sm + C::kFQ2, *Ks = sm + C::kFK, *P1s = sm + C::kFP1, *P2s = sm + C::kFP2;
  float* K2s = Ks + Bc * C::kLQ;
  const int tid = threadIdx.x, ty = tid / kTX, tx = tid % kTX;
  const int64_t b = blockIdx.z, p = blockIdx.y, i0 = int64_t(blockIdx.x) * Br;
  const int64_t g = p / (Hp / Hkp);
  const int Dv = 2 * hd;
  const int64_t i_end = i0 + Br < T_ ? i0 + Br : T_;
  const T* qb = q + ((b * T_ + i0) * Hp + p) * Dv;
  load_tile<T, Br, kD>(Q1s, qb, Hp * Dv, int(i_end - i0), hd);
  load_tile<T, Br, kD>(Q2s, qb + hd, Hp * Dv, int(i_end - i0), hd);

  float o1[MI][OJ], o2[MI][OJ], m1[MI], l1[MI], m2[MI], l2[MI];
  zero(o1);
  zero(o2);
#pragma unroll
  for (int i = 0; i < MI; ++i) {
    m1[i] = m2[i] = -INFINITY;
    l1[i] = l2[i] = 0.0f;
  }
  const int64_t lo = i0 - W + 1 > 0 ? i0 - W + 1 : 0;
  for (int64_t jt = lo / Bc; jt <= (i_end - 1) / Bc; ++jt) {
    const int64_t j0 = jt * Bc;
    const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
    __syncthreads();  // the previous tile's V and P are consumed
    const T* kb = k + ((b * T_ + j0) * Hkp + g) * Dv;
    load_tile<T, Bc, kD>(Ks, kb, Hkp * Dv, nk, hd);
    load_tile<T, Bc, kD>(K2s, kb + hd, Hkp * Dv, nk, hd);
    __syncthreads();
    {
      float s[MI][NJ];
      zero(s);
      tile_mma<MI, NJ, kD>(s, Q1s, C::kLQ, 1, Ks, 1, C::kLQ, ty, tx);
      softmax_step(s, m1, l1, o1, P1s, LP, i0, j0, T_, W, sl2, ty, tx);
    }
    {
      float s[MI][NJ];
      zero(s);
      tile_mma<MI, NJ, kD>(s, Q2s, C::kLQ, 1, K2s, 1, C::kLQ, ty, tx);
      softmax_step(s, m2, l2, o2, P2s, LP, i0, j0, T_, W, sl2, ty, tx);
    }
    __syncthreads();  // K consumed, P written
    load_tile<T, Bc, kDv>(Ks, v + ((b * T_ + j0) * Hkp + g) * Dv, Hkp * Dv, nk, Dv);
    __syncthreads();
    tile_mma<MI, OJ, Bc>(o1, P1s, LP, 1, Ks, C::kLV, 1, ty, tx);
    tile_mma<MI, OJ, Bc>(o2, P2s, LP, 1, Ks, C::kLV, 1, ty, tx);
  }
  const float lam = *lambda;
#pragma unroll
  for (int i = 0; i < MI; ++i) {
    const int64_t qi = i0 + ty + kTY * i;
    if (qi >= T_) continue;
    const float inv1 = l1[i] > 0.0f ? 1.0f / l1[i] : 0.0f, inv2 = l2[i] > 0.0f ? 1.0f / l2[i] : 0.0f;
    const int64_t off = ((b * T_ + qi) * Hp + p) * Dv;
#pragma unroll
    for (int j = 0; j < OJ; ++j) {
      const int d = tx + kTX * j;
      if (d < Dv) {
        const float a1 = o1[i][j] * inv1, a2 = o2[i][j] * inv2;
        st(o1g, off + d, a1);
        st(o2g, off + d, a2);
        st(out, off + d, a1 - lam * a2);
      }
    }
    if (tx == 0) {
      const int64_t li = (b * Hp + p) * T_ + qi;
      lse1[li] = l1[i] > 0.0f ? (m1[i] + log2f(l1[i])) * kLn2 : -INFINITY;
      lse2[li] = l2[i] > 0.0f ? (m2[i] + log2f(l2[i])) * kLn2 : -INFINITY;
    }
  }
}

// ------------------------------------------------------------------------------ backward
// r1[b, p, t] = sum_d g o1, r2[b, p, t] = sum_d g o2 over the 2 hd columns; one warp per row.
template <class T>
__global__ void __launch_bounds__(kThreads)
    dattn_rowsum_k(const T* __restrict__ o1, const T* __restrict__ o2, const T* __restrict__ g,
                   float* __restrict__ r1, float* __restrict__ r2, int64_t rows, int64_t T_, int64_t Hp, int Dv) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = int64_t(gridDim.x) * (kThreads / 32);
  for (int64_t row = int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32; row < rows; row += nwarps) {
    float a1 = 0.0f, a2 = 0.0f;
    for (int c = lane; c < Dv; c += 32) {
      const float gv = ld(g, row * Dv + c);
      a1 = fmaf(gv, ld(o1, row * Dv + c), a1);
      a2 = fmaf(gv, ld(o2, row * Dv + c), a2);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      a1 += __shfl_xor_sync(0xffffffffu, a1, off);
      a2 += __shfl_xor_sync(0xffffffffu, a2, off);
    }
    if (lane == 0) {  // row = (b T + t) Hp + p
      const int64_t p = row % Hp, t = (row / Hp) % T_, b = row / (Hp * T_);
      r1[(b * Hp + p) * T_ + t] = a1;
      r2[(b * Hp + p) * T_ + t] = a2;
    }
  }
}

// dlambda[0] = -sum(r2[0 .. n)); one block, fixed order (strided partial sums, then a tree).
__global__ void __launch_bounds__(kThreads) dattn_dlambda_k(const float* __restrict__ r2, int64_t n,
                                                            float* __restrict__ dlambda) {
  float* sh = smem_f32();
  const int tid = threadIdx.x;
  float acc = 0.0f;
  for (int64_t i = tid; i < n; i += kThreads) acc += r2[i];
  sh[tid] = acc;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (tid < s) sh[tid] += sh[tid + s];
    __syncthreads();
  }
  if (tid == 0) *dlambda = -sh[0];
}

// Per-row statistics of rows i0 .. i0 + R - 1 of pair p: L1, L2 = lse log2(e) (+inf for rows past T
// or with no visible key), D1 = r1, D2 = -lambda r2. st = [L1 | L2 | D1 | D2], R each.
template <int R>
__device__ __forceinline__ void load_row_stats2(float* st4, const float* __restrict__ lse1,
                                                const float* __restrict__ lse2, const float* __restrict__ r1,
                                                const float* __restrict__ r2, float lam, int64_t bp_off, int64_t i0,
                                                int64_t T_) {
  for (int r = threadIdx.x; r < R; r += kThreads) {
    const int64_t i = i0 + r;
    float L1 = INFINITY, L2 = INFINITY, D1 = 0.0f, D2 = 0.0f;
    if (i < T_) {
      const float x1 = lse1[bp_off + i], x2 = lse2[bp_off + i];
      L1 = x1 == -INFINITY ? INFINITY : x1 * kLog2e;
      L2 = x2 == -INFINITY ? INFINITY : x2 * kLog2e;
      D1 = r1[bp_off + i];
      D2 = -lam * r2[bp_off + i];
    }
    st4[r] = L1;
    st4[R + r] = L2;
    st4[2 * R + r] = D1;
    st4[3 * R + r] = D2;
  }
}

template <class T, int kD>
__global__ void __launch_bounds__(kThreads)
    dattn_bwd_dq_k(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                   const T* __restrict__ gr, const float* __restrict__ lambda, const float* __restrict__ lse1,
                   const float* __restrict__ lse2, const float* __restrict__ r1, const float* __restrict__ r2,
                   T* __restrict__ dq, int64_t T_, int64_t Hp, int64_t Hkp, int hd, float sl2, float scale,
                   int64_t W) {
  using C = DCfg<kD>;
  constexpr int kDv = C::kDv, Br = C::kQBr, Bc = C::kQBc, MI = Br / kTY, NJ = Bc / kTX, QJ = kD / kTX,
                LS = C::kQLS;
  float* sm = smem_f32();
  float *Q1s = sm + C::kQQ1, *Q2s = sm + C::kQQ2, *Gs = sm + C::kQG, *K1s = sm + C::kQK1, *K2s = sm + C::kQK2,
        *Vs = sm + C::kQV, *S1s = sm + C::kQS1, *S2s = sm + C::kQS2, *st4 = sm + C::kQL;
  const int tid = threadIdx.x, ty = tid / kTX, tx = tid % kTX;
  const int64_t b = blockIdx.z, p = blockIdx.y, i0 = int64_t(blockIdx.x) * Br;
  const int64_t gk = p / (Hp / Hkp);
  const int Dv = 2 * hd;
  const float lam = *lambda;
  const int64_t i_end = i0 + Br < T_ ? i0 + Br : T_;
  const int nq = int(i_end - i0);
  const T* qb = q + ((b * T_ + i0) * Hp + p) * Dv;
  load_tile<T, Br, kD>(Q1s, qb, Hp * Dv, nq, hd);
  load_tile<T, Br, kD>(Q2s, qb + hd, Hp * Dv, nq, hd);
  load_tile<T, Br, kDv>(Gs, gr + ((b * T_ + i0) * Hp + p) * Dv, Hp * Dv, nq, Dv);
  load_row_stats2<Br>(st4, lse1, lse2, r1, r2, lam, (b * Hp + p) * T_, i0, T_);

  float dq1[MI][QJ], dq2[MI][QJ];
  zero(dq1);
  zero(dq2);
  const int64_t lo = i0 - W + 1 > 0 ? i0 - W + 1 : 0;
  for (int64_t jt = lo / Bc; jt <= (i_end - 1) / Bc; ++jt) {
    const int64_t j0 = jt * Bc;
    const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
    __syncthreads();  // the previous key tile and dS are consumed
    const T* kb = k + ((b * T_ + j0) * Hkp + gk) * Dv;
    load_tile<T, Bc, kD>(K1s, kb, Hkp * Dv, nk, hd);
    load_tile<T, Bc, kD>(K2s, kb + hd, Hkp * Dv, nk, hd);
    load_tile<T, Bc, kDv>(Vs, v + ((b * T_ + j0) * Hkp + gk) * Dv, Hkp * Dv, nk, Dv);
    __syncthreads();
    float s1[MI][NJ], s2[MI][NJ], dp[MI][NJ];
    zero(s1);
    zero(s2);
    zero(dp);
    tile_mma<MI, NJ, kD>(s1, Q1s, C::kLQ, 1, K1s, 1, C::kLQ, ty, tx);
    tile_mma<MI, NJ, kD>(s2, Q2s, C::kLQ, 1, K2s, 1, C::kLQ, ty, tx);
    tile_mma<MI, NJ, kDv>(dp, Gs, C::kLV, 1, Vs, 1, C::kLV, ty, tx);  // g v^T
#pragma unroll
    for (int i = 0; i < MI; ++i) {
      const int r = ty + kTY * i;
      const float L1 = st4[r], L2 = st4[Br + r], D1 = st4[2 * Br + r], D2 = st4[3 * Br + r];
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        const int c = tx + kTX * j;
        const bool vis = visible(i0 + r, j0 + c, T_, W);
        const float p1 = vis ? exp2f(s1[i][j] * sl2 - L1) : 0.0f;
        const float p2 = vis ? exp2f(s2[i][j] * sl2 - L2) : 0.0f;
        S1s[r * LS + c] = p1 * (dp[i][j] - D1);
        S2s[r * LS + c] = p2 * (-lam * dp[i][j] - D2);
      }
    }
    __syncthreads();
    tile_mma<MI, QJ, Bc>(dq1, S1s, LS, 1, K1s, C::kLQ, 1, ty, tx);
    tile_mma<MI, QJ, Bc>(dq2, S2s, LS, 1, K2s, C::kLQ, 1, ty, tx);
  }
#pragma unroll
  for (int i = 0; i < MI; ++i) {
    const int64_t qi = i0 + ty + kTY * i;
    if (qi >= T_) continue;
    T* row = dq + ((b * T_ + qi) * Hp + p) * Dv;
#pragma unroll
    for (int j = 0; j < QJ; ++j) {
      const int d = tx + kTX * j;
      if (d < hd) {
        st(row, d, dq1[i][j] * scale);
        st(row, hd + d, dq2[i][j] * scale);
      }
    }
  }
}

template <class T, int kD>
__global__ void __launch_bounds__(kThreads)
    dattn_bwd_dkdv_k(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                     const T* __restrict__ gr, const float* __restrict__ lambda, const float* __restrict__ lse1,
                     const float* __restrict__ lse2, const float* __restrict__ r1, const float* __restrict__ r2,
                     T* __restrict__ dk, T* __restrict__ dv, int64_t T_, int64_t Hp, int64_t Hkp, int hd, float sl2,
                     float scale, int64_t W) {
  using C = DCfg<kD>;
  constexpr int kDv = C::kDv, Bc = C::kKBc, Br = C::kKBr, MI = Br / kTY, NJ = Bc / kTX, KI = Bc / kTY,
                DJ = kD / kTX, VJ = kDv / kTX, LS = C::kKLS;
  float* sm = smem_f32();
  float *K1s = sm + C::kKK1, *K2s = sm + C::kKK2, *Vs = sm + C::kKV, *Q1s = sm + C::kKQ1, *Q2s = sm + C::kKQ2,
        *Gs = sm + C::kKG, *Ps = sm + C::kKP, *S1s = sm + C::kKS1, *S2s = sm + C::kKS2, *st4 = sm + C::kKL;
  const int tid = threadIdx.x, ty = tid / kTX, tx = tid % kTX;
  const int64_t b = blockIdx.z, gk = blockIdx.y, j0 = int64_t(blockIdx.x) * Bc;
  const int64_t rep = Hp / Hkp;
  const int Dv = 2 * hd;
  const float lam = *lambda;
  const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
  const T* kb = k + ((b * T_ + j0) * Hkp + gk) * Dv;
  load_tile<T, Bc, kD>(K1s, kb, Hkp * Dv, nk, hd);
  load_tile<T, Bc, kD>(K2s, kb + hd, Hkp * Dv, nk, hd);
  load_tile<T, Bc, kDv>(Vs, v + ((b * T_ + j0) * Hkp + gk) * Dv, Hkp * Dv, nk, Dv);

  float dk1[KI][DJ], dk2[KI][DJ], dva[KI][VJ];
  zero(dk1);
  zero(dk2);
  zero(dva);
  const int64_t i_hi = j0 + nk - 1 + W < T_ ? j0 + nk - 1 + W : T_;  // exclusive
  for (int64_t hh = 0; hh < rep; ++hh) {
    const int64_t p = gk * rep + hh;
    for (int64_t it = j0 / Br; it <= (i_hi - 1) / Br; ++it) {
      const int64_t i0 = it * Br;
      const int nq = int(T_ - i0 < Br ? T_ - i0 : Br);
      __syncthreads();  // the previous query tile, P and dS are consumed
      const T* qb = q + ((b * T_ + i0) * Hp + p) * Dv;
      load_tile<T, Br, kD>(Q1s, qb, Hp * Dv, nq, hd);
      load_tile<T, Br, kD>(Q2s, qb + hd, Hp * Dv, nq, hd);
      load_tile<T, Br, kDv>(Gs, gr + ((b * T_ + i0) * Hp + p) * Dv, Hp * Dv, nq, Dv);
      load_row_stats2<Br>(st4, lse1, lse2, r1, r2, lam, (b * Hp + p) * T_, i0, T_);
      __syncthreads();
      float s1[MI][NJ], s2[MI][NJ], dp[MI][NJ];
      zero(s1);
      zero(s2);
      zero(dp);
      tile_mma<MI, NJ, kD>(s1, Q1s, C::kLQ, 1, K1s, 1, C::kLQ, ty, tx);
      tile_mma<MI, NJ, kD>(s2, Q2s, C::kLQ, 1, K2s, 1, C::kLQ, ty, tx);
      tile_mma<MI, NJ, kDv>(dp, Gs, C::kLV, 1, Vs, 1, C::kLV, ty, tx);
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const int r = ty + kTY * i;
        const float L1 = st4[r], L2 = st4[Br + r], D1 = st4[2 * Br + r], D2 = st4[3 * Br + r];
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
          const int c = tx + kTX * j;
          const bool vis = visible(i0 + r, j0 + c, T_, W);
          const float p1 = vis ? exp2f(s1[i][j] * sl2 - L1) : 0.0f;
          const float p2 = vis ? exp2f(s2[i][j] * sl2 - L2) : 0.0f;
          Ps[r * LS + c] = p1 - lam * p2;
          S1s[r * LS + c] = p1 * (dp[i][j] - D1);
          S2s[r * LS + c] = p2 * (-lam * dp[i][j] - D2);
        }
      }
      __syncthreads();
      tile_mma<KI, VJ, Br>(dva, Ps, 1, LS, Gs, C::kLV, 1, ty, tx);    // (P1 - lambda P2)^T g
      tile_mma<KI, DJ, Br>(dk1, S1s, 1, LS, Q1s, C::kLQ, 1, ty, tx);  // dS1^T q1
      tile_mma<KI, DJ, Br>(dk2, S2s, 1, LS, Q2s, C::kLQ, 1, ty, tx);  // dS2^T q2
    }
  }
#pragma unroll
  for (int i = 0; i < KI; ++i) {
    const int64_t kj = j0 + ty + kTY * i;
    if (kj >= T_) continue;
    const int64_t off = ((b * T_ + kj) * Hkp + gk) * Dv;
#pragma unroll
    for (int j = 0; j < DJ; ++j) {
      const int d = tx + kTX * j;
      if (d < hd) {
        st(dk, off + d, dk1[i][j] * scale);
        st(dk, off + hd + d, dk2[i][j] * scale);
      }
    }
#pragma unroll
    for (int j = 0; j < VJ; ++j) {
      const int d = tx + kTX * j;
      if (d < Dv) st(dv, off + d, dva[i][j]);
    }
  }
}

// ------------------------------------------------------------------------------ host side
template <int A> struct HD {
  static constexpr int kD = A;
};

void check_sizes(const char* who, int64_t B, int64_t T_, int64_t Hp, int64_t Hkp, int64_t hd) {
  HS_CHECK(B >= 0 && T_ >= 0, who, " (CUDA): negative sizes B = ", B, ", T = ", T_);
  HS_CHECK(Hkp >= 1 && Hp >= Hkp && Hp % Hkp == 0, who, " (CUDA): Hp = ", Hp,
           " must be a positive multiple of Hkp = ", Hkp);
  HS_CHECK(hd >= 1 && hd <= 128, who, " (CUDA): head dim hd = ", hd, " unsupported (need 1 <= hd <= 128)");
  HS_CHECK(Hp <= 65535 && B <= 65535, who, " (CUDA): grid too large (B = ", B, ", Hp = ", Hp, ", limit 65535)");
}

template <class F> void with_hd(int64_t hd, F&& f) {
  if (hd <= 32) f(HD<32>{});
  else if (hd <= 64) f(HD<64>{});
  else f(HD<128>{});
}

}  // namespace

template <class T>
void diff_attention_fwd(const T* q, const T* k, const T* v, const float* lambda, T* out, T* o1, T* o2, float* lse1,
                        float* lse2, int64_t B, int64_t T_, int64_t Hp, int64_t Hkp, int64_t hd, double scale,
                        int64_t window, void* s) {
  check_sizes("diff_attention_fwd", B, T_, Hp, Hkp, hd);
  if (B == 0 || T_ == 0) return;
  const int64_t W = eff_window(window, T_);
  const float sl2 = static_cast<float>(scale * kLog2eD);
  if constexpr (std::is_same_v<T, bf16>) {
    if (dattn_mma_usable(hd, {q, k, v, out, o1, o2}, dattn_mma_fwd_bytes(hd))) {
      diff_attention_fwd_mma(q, k, v, lambda, out, o1, o2, lse1, lse2, B, T_, Hp, Hkp, hd, sl2, W, s);
      return;
    }
  }
  with_hd(hd, [&](auto dims) {
    using C = DCfg<decltype(dims)::kD>;
    auto* kern = dattn_fwd_k<T, decltype(dims)::kD>;
    const size_t bytes = C::fwd_bytes();
    allow_smem(kern, bytes, "diff_attention_fwd");
    const dim3 grid(static_cast<unsigned>((T_ + C::kFBr - 1) / C::kFBr), static_cast<unsigned>(Hp),
                    static_cast<unsigned>(B));
    kern<<<grid, kThreads, bytes, S(s)>>>(q, k, v, lambda, out, o1, o2, lse1, lse2, T_, Hp, Hkp, int(hd), sl2, W);
    HS_LAUNCH_CHECK("diff_attention_fwd", "B = ", B, ", T = ", T_, ", Hp = ", Hp, ", Hkp = ", Hkp, ", hd = ", hd,
                    ", window = ", window, ", smem = ", bytes);
  });
}

template <class T>
void diff_attention_bwd(const T* q, const T* k, const T* v, const float* lambda, const T* o1, const T* o2,
                        const float* lse1, const float* lse2, const T* g, T* dq, T* dk, T* dv, float* dlambda,
                        int64_t B, int64_t T_, int64_t Hp, int64_t Hkp, int64_t hd, double scale, int64_t window,
                        void* s) {
  check_sizes("diff_attention_bwd", B, T_, Hp, Hkp, hd);
  const int64_t rows = B * T_ * Hp;
  Scratch scratch(static_cast<size_t>(2 * rows + 1), S(s), "diff_attention_bwd");
  float *r1 = scratch.p, *r2 = scratch.p + rows;
  if (rows > 0) {
    auto* kern = dattn_rowsum_k<T>;
    kern<<<blocks_for(rows * 32, kThreads), kThreads, 0, S(s)>>>(o1, o2, g, r1, r2, rows, T_, Hp, int(2 * hd));
    HS_LAUNCH_CHECK("diff_attention_bwd (rowsums)", "B = ", B, ", T = ", T_, ", Hp = ", Hp, ", hd = ", hd);
  }
  {
    auto* kern = dattn_dlambda_k;
    kern<<<1, kThreads, kThreads * sizeof(float), S(s)>>>(r2, rows, dlambda);  // writes -0 when empty
    HS_LAUNCH_CHECK("diff_attention_bwd (dlambda)", "rows = ", rows);
  }
  if (rows == 0) return;
  const int64_t W = eff_window(window, T_);
  const float sl2 = static_cast<float>(scale * kLog2eD), sc = static_cast<float>(scale);
  // Tensor cores per kernel (the dk/dv kernel at hd 128 does not fit an A100's shared memory).
  bool dkdv_mma = false, dq_mma = false;
  if constexpr (std::is_same_v<T, bf16>) {
    dkdv_mma = dattn_mma_usable(hd, {q, k, v, g, dk, dv}, dattn_mma_dkdv_bytes(hd));
    dq_mma = dattn_mma_usable(hd, {q, k, v, g, dq}, dattn_mma_dq_bytes(hd));
    if (dkdv_mma)
      diff_attention_bwd_dkdv_mma(q, k, v, lambda, lse1, lse2, r1, r2, g, dk, dv, B, T_, Hp, Hkp, hd, sl2, sc, W, s);
    if (dq_mma) diff_attention_bwd_dq_mma(q, k, v, lambda, lse1, lse2, r1, r2, g, dq, B, T_, Hp, Hkp, hd, sl2, sc, W, s);
  }
  if (dkdv_mma && dq_mma) return;
  with_hd(hd, [&](auto dims) {
    constexpr int kD = decltype(dims)::kD;
    using C = DCfg<kD>;
    if (!dkdv_mma) {
      auto* kern = dattn_bwd_dkdv_k<T, kD>;
      const size_t bytes = C::dkdv_bytes();
      allow_smem(kern, bytes, "diff_attention_bwd (dk, dv)");
      const dim3 grid(static_cast<unsigned>((T_ + C::kKBc - 1) / C::kKBc), static_cast<unsigned>(Hkp),
                      static_cast<unsigned>(B));
      kern<<<grid, kThreads, bytes, S(s)>>>(q, k, v, g, lambda, lse1, lse2, r1, r2, dk, dv, T_, Hp, Hkp, int(hd), sl2,
                                            sc, W);
      HS_LAUNCH_CHECK("diff_attention_bwd (dk, dv)", "B = ", B, ", T = ", T_, ", Hp = ", Hp, ", Hkp = ", Hkp,
                      ", hd = ", hd, ", window = ", window, ", smem = ", bytes);
    }
    if (!dq_mma) {
      auto* kern = dattn_bwd_dq_k<T, kD>;
      const size_t bytes = C::dq_bytes();
      allow_smem(kern, bytes, "diff_attention_bwd (dq)");
      const dim3 grid(static_cast<unsigned>((T_ + C::kQBr - 1) / C::kQBr), static_cast<unsigned>(Hp),
                      static_cast<unsigned>(B));
      kern<<<grid, kThreads, bytes, S(s)>>>(q, k, v, g, lambda, lse1, lse2, r1, r2, dq, T_, Hp, Hkp, int(hd), sl2, sc,
                                            W);
      HS_LAUNCH_CHECK("diff_attention_bwd (dq)", "B = ", B, ", T = ", T_, ", Hp = ", Hp, ", Hkp = ", Hkp,
                      ", hd = ", hd, ", window = ", window, ", smem = ", bytes);
    }
  });
}

DiffAttnKernels diff_attention_kernels(int64_t hd) {
  return {dattn_mma_usable(hd, {}, dattn_mma_fwd_bytes(hd)), dattn_mma_usable(hd, {}, dattn_mma_dq_bytes(hd)),
          dattn_mma_usable(hd, {}, dattn_mma_dkdv_bytes(hd))};
}

#define HS_INST(T)                                                                                                 \
  template void diff_attention_fwd<T>(const T*, const T*, const T*, const float*, T*, T*, T*, float*, float*,      \
                                      int64_t, int64_t, int64_t, int64_t, int64_t, double, int64_t, void*);        \
  template void diff_attention_bwd<T>(const T*, const T*, const T*, const float*, const T*, const T*, const float*, \
                                      const float*, const T*, T*, T*, T*, float*, int64_t, int64_t, int64_t,       \
                                      int64_t, int64_t, double, int64_t, void*);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
