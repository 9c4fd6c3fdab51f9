// Fused differential attention on tensor cores (diff_attention_mma.h): bf16, hd in {64, 128},
// sm_80+, mma.sync m16n8k16 with fp32 accumulation and the building blocks of attention.cu's
// tensor-core kernels (mma_common.cuh: ldmatrix, cp.async, the online-softmax row step, the warp
// products mma_rows / mma_acc_rows). Same math as diff_attention.cu's SIMT kernels (see there and
// kernels/cuda_diff_attention.h): a_i = softmax(q_i k_i^T scale) v over the shared value v of 2 hd
// columns, out = a1 - lambda a2; backward with do1 = g, do2 = -lambda g, so dP2 = -lambda dP1.
//
// Every tile keeps whole rows of a head pair: a q, k or g row is [first half | second half] (2 hd
// bf16, row-major in shared memory with row stride 2 hd + 8, conflict-free for ldmatrix), so one
// cp.async stream loads K1 and K2 (or Q1 and Q2) together and branch i reads columns i hd onwards.
//
// forward, one CTA per (64-query tile, head pair, batch), 8 warps: warps 0-3 run branch 1 on rows
//   16 w .. 16 w + 15, warps 4-7 branch 2 on the same rows. Per key tile (two cp.async stages) the
//   K and V tiles are loaded once for both branches: S_i = Q_i K_i^T, online softmax, O_i += P_i V
//   (V's 2 hd columns; O_i is 16 x 2 hd fp32 per warp, so a warp holds one branch: at hd 128 both
//   would need 256 accumulator registers per thread). At the end the branch-2 warps put O2 / l2
//   (fp32) in shared memory and the branch-1 warps write out = O1 / l1 - lambda O2 / l2 from the
//   fp32 values, as the SIMT kernel does.
// dq kernel, one CTA per (64-query tile, head pair, batch), 4 warps of 16 query rows holding both
//   branches (dQ1 and dQ2: 16 x 2 hd fp32 per warp): per key tile S1 = Q1 K1^T, S2 = Q2 K2^T and
//   one dP = g V^T (2 hd long), dS1 = P1 (dP - r1), dS2 = P2 (-lambda dP + lambda r2),
//   dQ1 += dS1 K1, dQ2 += dS2 K2.
// dk/dv kernel, one CTA per (64-key tile, KV head pair, batch), 8 warps: the warps w and w + 4 share
//   the 16 keys 16 (w % 4) ..; warp w < 4 ("half 0") accumulates dK1 and dV's first hd columns,
//   warp w + 4 ("half 1") dK2 and dV's second hd columns (hd + hd fp32 accumulators each: what a
//   warp holds at hd 128). Over the head pairs of the GQA group and the 32-query tiles that see the
//   key tile (Q and g in two cp.async stages; the row statistics, loaded into registers one step
//   ahead, in two shared-memory stages):
//     phase 1: half i computes S_i^T = K_i Q_i^T -> P_i^T, and its part of dP^T = V g^T (columns
//       i hd .. of V and g: each half does half of the product), and puts both (fp32) in shared memory;
//     barrier; phase 2: each half reads the other's P and dP part: dP^T = part 0 + part 1 (the same
//       sum in both halves), X = P1 - lambda P2, dS_i; then dV[:, half i] += X^T g[:, half i],
//       dK_i += dS_i^T Q_i.
//   So every product is computed once (8 hd per visible (query, key) pair across the two halves, as
//   the SIMT kernel's arithmetic) and the two halves are balanced.
// All three are deterministic: fixed loop orders, every output element summed by one thread, no
// atomics. fp32 P for the row sums and dS, bf16-rounded P / X / dS as mma operands (as attention.cu).
//
// Tiles and shared memory (DMmaCfg):
//   hd    forward (q x k)     dq kernel (q x k)    dk/dv kernel (k x q)
//   64    64 x 64   85.0 KB   64 x 64   102.0 KB   64 x 32  101.0 KB
//   128   64 x 32   99.0 KB   64 x 32   132.0 KB   64 x 32  165.0 KB
// The dk/dv kernel at hd 128 needs more than an A100's 163 KB opt-in: there dattn_mma_usable
// fails for it and diff_attention.cu runs the SIMT dk/dv kernel beside this dq kernel (an H100
// has 227 KB).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/diff_attention_mma.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/mma_common.cuh"

namespace hyscale::kernels::cuda::detail {

namespace {
using namespace detail::attn;  // kLog2e, kLn2, allow_smem, device_sm, smem_optin_limit (attention_tiles.cuh)

__device__ __forceinline__ uint16_t* smem_u16() {
  extern __shared__ float4 hs_dattn_mma_smem[];
  return reinterpret_cast<uint16_t*>(hs_dattn_mma_smem);
}

// Tile sizes and shared-memory carve-up (bf16 slots; fp32 regions take 2 slots per value).
template <int kD> struct DMmaCfg {
  static constexpr int kL = 2 * kD + 8;  // row stride of every bf16 tile: a whole pair row + 8
  // forward: 64 queries, 8 warps (branch w / 4, rows 16 (w % 4)); K and V: two stages
  static constexpr int kFBr = 64, kFBc = kD <= 64 ? 64 : 32, kFThreads = 256;
  static constexpr int kFQ = 0, kFK = kFQ + kFBr * kL, kFV = kFK + 2 * kFBc * kL, kFEnd = kFV + 2 * kFBc * kL;
  // epilogue: O2 / l2 of the branch-2 warps, fp32 [4 warps][2 hd / 8][4][32 lanes], over the tiles
  static constexpr int kFO2Floats = 4 * (2 * kD / 8) * 4 * 32;
  static_assert(2 * kFO2Floats <= kFEnd, "the forward's epilogue fits in its tiles' shared memory");
  // dq kernel: 64 queries, 4 warps of 16 rows (both branches); Q and g, then K and V in two stages
  static constexpr int kQBr = 64, kQBc = kD <= 64 ? 64 : 32, kQThreads = 128;
  static constexpr int kQQ = 0, kQG = kQQ + kQBr * kL, kQK = kQG + kQBr * kL, kQV = kQK + 2 * kQBc * kL,
                       kQEnd = kQV + 2 * kQBc * kL;
  // dk/dv kernel: 64 keys, 8 warps (half w / 4, keys 16 (w % 4)); K, V, then Q and g in two stages,
  // the row statistics [2 stages][L1, L2, D1, D2][kKBr] fp32, the phase exchange
  // [2 halves][4 warps][P, dP part][16 x kKBr] fp32
  static constexpr int kKBc = 64, kKBr = 32, kKThreads = 256;
  static constexpr int kXFloats = 16 * kKBr;  // one 16 x kKBr fp32 matrix
  static constexpr int kKK = 0, kKV = kKK + kKBc * kL, kKQ = kKV + kKBc * kL, kKG = kKQ + 2 * kKBr * kL,
                       kKStat = kKG + 2 * kKBr * kL, kKX = kKStat + 2 * (2 * 4 * kKBr),
                       kKEnd = kKX + 2 * (2 * 4 * 2 * kXFloats);
  static constexpr size_t fwd_bytes() { return sizeof(uint16_t) * kFEnd; }
  static constexpr size_t dq_bytes() { return sizeof(uint16_t) * kQEnd; }
  static constexpr size_t dkdv_bytes() { return sizeof(uint16_t) * kKEnd; }
};

// ------------------------------------------------------------------------------ forward
template <int kD>
__global__ void __launch_bounds__(DMmaCfg<kD>::kFThreads, 1)
    dattn_fwd_mma_k(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                    const float* __restrict__ lambda, bf16* __restrict__ out, bf16* __restrict__ o1g,
                    bf16* __restrict__ o2g, float* __restrict__ lse1, float* __restrict__ lse2, int64_t T_,
                    int64_t Hp, int64_t Hkp, float sl2, int64_t W) {
  using C = DMmaCfg<kD>;
  constexpr int Br = C::kFBr, Bc = C::kFBc, L = C::kL, NT = Bc / 8, OT = 2 * kD / 8, Dv = 2 * kD,
                kThr = C::kFThreads;
  uint16_t* sm = smem_u16();
  uint16_t *Qs = sm + C::kFQ, *Ks = sm + C::kFK, *Vs = sm + C::kFV;  // stage st of K / V: + st Bc L
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  const int br = warp >> 2, wr = warp & 3;  // branch (0: q1 k1, 1: q2 k2), row group
  // The last query tiles (the most key tiles under a causal mask) are launched first.
  const int64_t b = blockIdx.z, p = blockIdx.y, i0 = int64_t(gridDim.x - 1 - blockIdx.x) * Br;
  const int64_t g = p / (Hp / Hkp);
  const int64_t i_end = i0 + Br < T_ ? i0 + Br : T_;
  const int64_t lo = i0 - W + 1 > 0 ? i0 - W + 1 : 0;          // first key any row of the tile sees
  const int jt0 = int(lo / Bc), jt1 = int((i_end - 1) / Bc);  // key tiles
  const int64_t r_lo = i0 + 16 * wr, r_hi = r_lo + 15;        // the warp's rows
  const bf16* kb = k + (b * T_ * Hkp + g) * Dv;  // key j of KV pair g: kb + j Hkp Dv (the same for v)
  const bf16* vb = v + (b * T_ * Hkp + g) * Dv;
  auto load_kv = [&](int jt, int st) {
    const int64_t j0 = int64_t(jt) * Bc;
    const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
    cp_async_tile<Bc, Dv, kThr>(Ks + st * Bc * L, L, kb + j0 * Hkp * Dv, Hkp * Dv, nk);
    cp_async_tile<Bc, Dv, kThr>(Vs + st * Bc * L, L, vb + j0 * Hkp * Dv, Hkp * Dv, nk);
  };
  cp_async_tile<Br, Dv, kThr>(Qs, L, q + ((b * T_ + i0) * Hp + p) * Dv, Hp * Dv, int(i_end - i0));
  load_kv(jt0, 0);
  cp_async_commit();

  float o[OT][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
  for (int t = 0; t < OT; ++t) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
  key_tile_pipeline(jt0, jt1, load_kv, [&](int jt, int st) {
    const int64_t j0 = int64_t(jt) * Bc;
    bool full;  // warp-uniform: the warp's rows see no key of the tile (skip it), or every key (no mask)
    if (!rows_see_tile(r_lo, r_hi, j0, Bc, T_, W, full)) return;
    const uint16_t* Kst = Ks + st * Bc * L;
    const uint16_t* Vst = Vs + st * Bc * L;
    float s[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
    mma_rows<NT, kD>(s, Qs + 16 * wr * L + br * kD, L, Kst + br * kD, L, lane);  // S = Q_br K_br^T
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {  // row gid (hh = 0) and gid + 8 (hh = 1)
      int c_lo, c_hi;
      visible_cols<Bc>(r_lo + gid + 8 * hh, j0, T_, W, c_lo, c_hi);
      const float alpha = softmax_row_step<NT>([&](int nt, int e) -> float& { return s[nt][2 * hh + e]; }, m[hh],
                                               l[hh], full, c_lo, c_hi, sl2, tig);
#pragma unroll
      for (int t = 0; t < OT; ++t) {
        o[t][2 * hh] *= alpha;
        o[t][2 * hh + 1] *= alpha;
      }
    }
    mma_acc_rows<OT, Bc>(o, s, Vst, L, lane);  // O_br += P_br V
  });
  __syncthreads();  // every warp is past its last tile: the tiles' shared memory is reused below
  float* O2s = reinterpret_cast<float*>(sm);  // [wr][t][e][lane]: each value read back by the same lane of warp wr
  const float lam = *lambda;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int64_t qi = r_lo + gid + 8 * hh;
    const float inv = l[hh] > 0.0f ? 1.0f / l[hh] : 0.0f;  // a row with no visible key gives zeros
    if (br == 1)
#pragma unroll
      for (int t = 0; t < OT; ++t)
#pragma unroll
        for (int e = 0; e < 2; ++e) O2s[((wr * OT + t) * 4 + 2 * hh + e) * 32 + lane] = o[t][2 * hh + e] * inv;
    if (qi >= T_) continue;
    bf16* orow = (br == 0 ? o1g : o2g) + ((b * T_ + qi) * Hp + p) * Dv;
#pragma unroll
    for (int t = 0; t < OT; ++t)
      *reinterpret_cast<uint32_t*>(orow + t * 8 + tig * 2) =
          pack_bf16x2(o[t][2 * hh] * inv, o[t][2 * hh + 1] * inv);
    if (tig == 0)
      (br == 0 ? lse1 : lse2)[(b * Hp + p) * T_ + qi] =
          l[hh] > 0.0f ? (m[hh] + log2f(l[hh])) * kLn2 : -INFINITY;
  }
  __syncthreads();  // O2 / l2 is in shared memory
  if (br == 1) return;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int64_t qi = r_lo + gid + 8 * hh;
    if (qi >= T_) continue;
    const float inv = l[hh] > 0.0f ? 1.0f / l[hh] : 0.0f;
    bf16* row = out + ((b * T_ + qi) * Hp + p) * Dv;
#pragma unroll
    for (int t = 0; t < OT; ++t) {
      const float a0 = O2s[((wr * OT + t) * 4 + 2 * hh) * 32 + lane];
      const float a1 = O2s[((wr * OT + t) * 4 + 2 * hh + 1) * 32 + lane];
      *reinterpret_cast<uint32_t*>(row + t * 8 + tig * 2) =
          pack_bf16x2(o[t][2 * hh] * inv - lam * a0, o[t][2 * hh + 1] * inv - lam * a1);
    }
  }
}

// ------------------------------------------------------------------------------ backward: dq
template <int kD>
__global__ void __launch_bounds__(DMmaCfg<kD>::kQThreads, 1)
    dattn_bwd_dq_mma_k(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                       const bf16* __restrict__ gr, const float* __restrict__ lambda, const float* __restrict__ lse1,
                       const float* __restrict__ lse2, const float* __restrict__ r1, const float* __restrict__ r2,
                       bf16* __restrict__ dq, int64_t T_, int64_t Hp, int64_t Hkp, float sl2, float scale,
                       int64_t W) {
  using C = DMmaCfg<kD>;
  constexpr int Br = C::kQBr, Bc = C::kQBc, L = C::kL, NT = Bc / 8, QT = kD / 8, Dv = 2 * kD, kThr = C::kQThreads;
  uint16_t* sm = smem_u16();
  uint16_t *Qs = sm + C::kQQ, *Gs = sm + C::kQG, *Ks = sm + C::kQK, *Vs = sm + C::kQV;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  const int64_t b = blockIdx.z, p = blockIdx.y, i0 = int64_t(gridDim.x - 1 - blockIdx.x) * Br;
  const int64_t g = p / (Hp / Hkp);
  const int64_t i_end = i0 + Br < T_ ? i0 + Br : T_;
  const int64_t lo = i0 - W + 1 > 0 ? i0 - W + 1 : 0;
  const int jt0 = int(lo / Bc), jt1 = int((i_end - 1) / Bc);
  const int64_t r_lo = i0 + 16 * warp, r_hi = r_lo + 15;
  const bf16* kb = k + (b * T_ * Hkp + g) * Dv;
  const bf16* vb = v + (b * T_ * Hkp + g) * Dv;
  auto load_kv = [&](int jt, int st) {
    const int64_t j0 = int64_t(jt) * Bc;
    const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
    cp_async_tile<Bc, Dv, kThr>(Ks + st * Bc * L, L, kb + j0 * Hkp * Dv, Hkp * Dv, nk);
    cp_async_tile<Bc, Dv, kThr>(Vs + st * Bc * L, L, vb + j0 * Hkp * Dv, Hkp * Dv, nk);
  };
  const int nq = int(i_end - i0);
  cp_async_tile<Br, Dv, kThr>(Qs, L, q + ((b * T_ + i0) * Hp + p) * Dv, Hp * Dv, nq);
  cp_async_tile<Br, Dv, kThr>(Gs, L, gr + ((b * T_ + i0) * Hp + p) * Dv, Hp * Dv, nq);
  load_kv(jt0, 0);
  cp_async_commit();
  const float lam = *lambda;
  // Rows gid, gid + 8 of the warp: L_i = lse_i log2(e) (+inf: no visible key or past T, so P = 0),
  // D1 = r1, D2 = -lambda r2.
  float L1[2], L2[2], D1[2], D2[2];
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int64_t i = r_lo + gid + 8 * hh, o = (b * Hp + p) * T_ + i;
    L1[hh] = L2[hh] = INFINITY;
    D1[hh] = D2[hh] = 0.0f;
    if (i < T_) {
      const float x1 = lse1[o], x2 = lse2[o];
      L1[hh] = x1 == -INFINITY ? INFINITY : x1 * kLog2e;
      L2[hh] = x2 == -INFINITY ? INFINITY : x2 * kLog2e;
      D1[hh] = r1[o];
      D2[hh] = -lam * r2[o];
    }
  }
  float dq1[QT][4], dq2[QT][4];
#pragma unroll
  for (int t = 0; t < QT; ++t)
#pragma unroll
    for (int e = 0; e < 4; ++e) dq1[t][e] = dq2[t][e] = 0.0f;
  key_tile_pipeline(jt0, jt1, load_kv, [&](int jt, int st) {
    const int64_t j0 = int64_t(jt) * Bc;
    bool full;  // as in the forward (rows past T have L = +inf, so P = 0 there without a mask)
    if (!rows_see_tile(r_lo, r_hi, j0, Bc, T_, W, full)) return;
    const uint16_t* Kst = Ks + st * Bc * L;
    const uint16_t* Vst = Vs + st * Bc * L;
    float s1[NT][4], s2[NT][4], dp[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s1[nt][e] = s2[nt][e] = dp[nt][e] = 0.0f;
    const uint16_t* qrow = Qs + 16 * warp * L;
    mma_rows<NT, kD>(s1, qrow, L, Kst, L, lane);                // Q1 K1^T
    mma_rows<NT, kD>(s2, qrow + kD, L, Kst + kD, L, lane);      // Q2 K2^T
    mma_rows<NT, Dv>(dp, Gs + 16 * warp * L, L, Vst, L, lane);  // g V^T (= dP1; dP2 = -lambda dP1)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      int c_lo, c_hi;
      visible_cols<Bc>(r_lo + gid + 8 * hh, j0, T_, W, c_lo, c_hi);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int c = nt * 8 + tig * 2 + e, x = 2 * hh + e;
          const bool vis = full || (c > c_lo && c <= c_hi);
          const float p1 = vis ? exp2f(s1[nt][x] * sl2 - L1[hh]) : 0.0f;
          const float p2 = vis ? exp2f(s2[nt][x] * sl2 - L2[hh]) : 0.0f;
          s1[nt][x] = p1 * (dp[nt][x] - D1[hh]);          // dS1
          s2[nt][x] = p2 * (-lam * dp[nt][x] - D2[hh]);  // dS2
        }
    }
    mma_acc_rows<QT, Bc>(dq1, s1, Kst, L, lane);       // dQ1 += dS1 K1
    mma_acc_rows<QT, Bc>(dq2, s2, Kst + kD, L, lane);  // dQ2 += dS2 K2
  });
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int64_t i = r_lo + gid + 8 * hh;
    if (i >= T_) continue;
    bf16* row = dq + ((b * T_ + i) * Hp + p) * Dv;
#pragma unroll
    for (int t = 0; t < QT; ++t) {
      *reinterpret_cast<uint32_t*>(row + t * 8 + tig * 2) =
          pack_bf16x2(dq1[t][2 * hh] * scale, dq1[t][2 * hh + 1] * scale);
      *reinterpret_cast<uint32_t*>(row + kD + t * 8 + tig * 2) =
          pack_bf16x2(dq2[t][2 * hh] * scale, dq2[t][2 * hh + 1] * scale);
    }
  }
}

// ------------------------------------------------------------------------------ backward: dk, dv
template <int kD>
__global__ void __launch_bounds__(DMmaCfg<kD>::kKThreads, 1)
    dattn_bwd_dkdv_mma_k(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                         const bf16* __restrict__ gr, const float* __restrict__ lambda,
                         const float* __restrict__ lse1, const float* __restrict__ lse2, const float* __restrict__ r1,
                         const float* __restrict__ r2, bf16* __restrict__ dk, bf16* __restrict__ dv, int64_t T_,
                         int64_t Hp, int64_t Hkp, float sl2, float scale, int64_t W) {
  using C = DMmaCfg<kD>;
  constexpr int Bc = C::kKBc, Br = C::kKBr, L = C::kL, NT = Br / 8, HT = kD / 8, Dv = 2 * kD, kThr = C::kKThreads,
                XF = C::kXFloats;
  static_assert(4 * Br <= kThr, "one row statistic per thread");
  static_assert(NT * 4 * 32 == XF, "an exchange matrix is one warp's 16 x Br accumulator tile");
  uint16_t* sm = smem_u16();
  uint16_t *Ks = sm + C::kKK, *Vs = sm + C::kKV, *Qs = sm + C::kKQ, *Gs = sm + C::kKG;  // Q, g stage st: + st Br L
  float* stats = reinterpret_cast<float*>(sm + C::kKStat);  // stage st: [L1, L2, D1, D2][Br] at + 4 st Br
  float* Xs = reinterpret_cast<float*>(sm + C::kKX);        // [half][warp][P, dP part][XF]
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  const int hf = warp >> 2, wk = warp & 3;  // half (0: dK1, dV[:, :hd]; 1: dK2, dV[:, hd:]), key group
  // Key tile 0 (the most query tiles under a causal mask) first.
  const int64_t b = blockIdx.z, gk = blockIdx.y, j0 = int64_t(blockIdx.x) * Bc;
  const int64_t rep = Hp / Hkp;
  const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
  const int64_t jw = j0 + 16 * wk;                                    // the warp's keys jw .. jw + 15
  const int64_t i_hi = j0 + nk - 1 + W < T_ ? j0 + nk - 1 + W : T_;  // exclusive end of the queries that see the tile
  const int it0 = int(j0 / Br), nit = int((i_hi - 1) / Br) - it0 + 1;  // query tiles per head pair
  const int64_t n_all = rep * nit;  // (pair, query tile) steps, pair-major
  const float lam = *lambda;
  // load_q issues the copies of Q and g of step n into stage st (no commit) and returns this thread's
  // row statistic of that step (thread x < 4 Br: kind x / Br of row x % Br; see DMmaCfg), converted:
  // L_i = lse_i log2(e) (+inf past T or without a visible key), D1 = r1, D2 = -lambda r2 (0 past T).
  auto load_q = [&](int64_t n, int st) -> float {
    const int64_t p = gk * rep + n / nit, i0 = int64_t(it0 + n % nit) * Br;
    const int nq = int(T_ - i0 < Br ? T_ - i0 : Br);
    cp_async_tile<Br, Dv, kThr>(Qs + st * Br * L, L, q + ((b * T_ + i0) * Hp + p) * Dv, Hp * Dv, nq);
    cp_async_tile<Br, Dv, kThr>(Gs + st * Br * L, L, gr + ((b * T_ + i0) * Hp + p) * Dv, Hp * Dv, nq);
    float x = 0.0f;
    if (tid < 4 * Br) {
      const int kind = tid / Br;
      const int64_t i = i0 + tid % Br, o = (b * Hp + p) * T_ + i;
      if (kind < 2) {
        x = INFINITY;
        if (i < T_) {
          const float y = (kind == 0 ? lse1 : lse2)[o];
          x = y == -INFINITY ? INFINITY : y * kLog2e;
        }
      } else if (i < T_) {
        x = kind == 2 ? r1[o] : -lam * r2[o];
      }
    }
    return x;
  };
  auto stat_store = [&](float x, int st) {
    if (tid < 4 * Br) stats[st * 4 * Br + tid] = x;
  };
  cp_async_tile<Bc, Dv, kThr>(Ks, L, k + ((b * T_ + j0) * Hkp + gk) * Dv, Hkp * Dv, nk);
  cp_async_tile<Bc, Dv, kThr>(Vs, L, v + ((b * T_ + j0) * Hkp + gk) * Dv, Hkp * Dv, nk);
  float stat = load_q(0, 0);
  cp_async_commit();
  stat_store(stat, 0);
  float dka[HT][4], dva[HT][4];
#pragma unroll
  for (int t = 0; t < HT; ++t)
#pragma unroll
    for (int e = 0; e < 4; ++e) dka[t][e] = dva[t][e] = 0.0f;
  float* Xme = Xs + (hf * 4 + wk) * 2 * XF;        // this warp's P and dP part
  float* Xot = Xs + ((1 - hf) * 4 + wk) * 2 * XF;  // those of the other half's warp on the same keys
  int st = 0;  // the stage of the current step
  for (int64_t n = 0; n < n_all; ++n, st ^= 1) {
    const int64_t i0 = int64_t(it0 + n % nit) * Br;
    const bool more = n + 1 < n_all;
    cp_async_wait<0>();
    __syncthreads();  // this step's Q, g (and K, V) landed and its statistics are stored, for all
                      // threads; the other stage and the exchange buffer are consumed
    if (more) stat = load_q(n + 1, st ^ 1);
    cp_async_commit();
    // Warp-uniform and the same for both halves (it depends on the keys and the query tile only):
    // some query of the tile sees some key of the warp; every query sees every key (no mask).
    const int64_t q_last = (i0 + Br < T_ ? i0 + Br : T_) - 1;
    const bool active = q_last >= jw && i0 - W < jw + 15;
    const bool full = i0 + Br <= T_ && jw + 15 <= i0 && i0 + Br - 1 - W < jw;
    const uint16_t* Qst = Qs + st * Br * L;
    const uint16_t* Gst = Gs + st * Br * L;
    const float* Lb = stats + st * 4 * Br + hf * Br;        // L1 or L2
    const float* Db = stats + st * 4 * Br + (2 + hf) * Br;  // D1 or D2
    float s[NT][4], dp[NT][4];  // the warp's 16 keys x Br queries (transposed scores)
    int c_min[2], c_end[2];     // query columns visible to keys jw + gid (+ 8): c_min <= c < c_end
    if (active) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] = dp[nt][e] = 0.0f;
      mma_rows<NT, kD>(s, Ks + 16 * wk * L + hf * kD, L, Qst + hf * kD, L, lane);   // K_i Q_i^T
      mma_rows<NT, kD>(dp, Vs + 16 * wk * L + hf * kD, L, Gst + hf * kD, L, lane);  // V[:, half] g[:, half]^T
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int64_t dj = jw + gid + 8 * hh - i0, e = dj + W < T_ - i0 ? dj + W : T_ - i0;
        c_min[hh] = int(dj < 0 ? 0 : (dj < Br ? dj : Br));
        c_end[hh] = int(e < 0 ? 0 : (e < Br ? e : Br));
      }
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = nt * 8 + tig * 2 + (e & 1), hh = e >> 1;
          const bool vis = full || (c >= c_min[hh] && c < c_end[hh]);
          s[nt][e] = vis ? exp2f(s[nt][e] * sl2 - Lb[c]) : 0.0f;  // P_i^T
          Xme[(nt * 4 + e) * 32 + lane] = s[nt][e];
          Xme[XF + (nt * 4 + e) * 32 + lane] = dp[nt][e];
        }
    }
    __syncthreads();  // both halves' P and dP parts are in shared memory
    if (active) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = nt * 8 + tig * 2 + (e & 1);
          const float po = Xot[(nt * 4 + e) * 32 + lane], dpo = Xot[XF + (nt * 4 + e) * 32 + lane];
          const float p1 = hf == 0 ? s[nt][e] : po, p2 = hf == 0 ? po : s[nt][e];
          const float dP = hf == 0 ? dp[nt][e] + dpo : dpo + dp[nt][e];  // part 0 + part 1 in both halves
          dp[nt][e] = hf == 0 ? p1 * (dP - Db[c]) : p2 * (-lam * dP - Db[c]);  // dS_i^T
          s[nt][e] = p1 - lam * p2;                                             // X^T
        }
      mma_acc_rows<HT, Br>(dva, s, Gst + hf * kD, L, lane);   // dV[:, half] += X^T g[:, half]
      mma_acc_rows<HT, Br>(dka, dp, Qst + hf * kD, L, lane);  // dK_i += dS_i^T Q_i
    }
    if (more) stat_store(stat, st ^ 1);  // that stage's statistics were consumed before the barriers above
  }
  cp_async_wait<0>();  // (the last group is empty)
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int64_t j = jw + gid + 8 * hh;
    if (j >= T_) continue;
    const int64_t o = ((b * T_ + j) * Hkp + gk) * Dv + hf * kD;
#pragma unroll
    for (int t = 0; t < HT; ++t) {
      *reinterpret_cast<uint32_t*>(dk + o + t * 8 + tig * 2) =
          pack_bf16x2(dka[t][2 * hh] * scale, dka[t][2 * hh + 1] * scale);
      *reinterpret_cast<uint32_t*>(dv + o + t * 8 + tig * 2) = pack_bf16x2(dva[t][2 * hh], dva[t][2 * hh + 1]);
    }
  }
}

template <class F> void with_kd(int64_t hd, F&& f) {
  if (hd == 64) f(std::integral_constant<int, 64>{});
  else f(std::integral_constant<int, 128>{});
}

// HYSCALE_DIFF_ATTN_MMA: 1 (default) or 0 (SIMT kernels only).
bool mma_enabled() {
  const char* e = std::getenv("HYSCALE_DIFF_ATTN_MMA");
  if (e == nullptr || *e == '\0') return true;
  const std::string v(e);
  HS_CHECK(v == "0" || v == "1", "HYSCALE_DIFF_ATTN_MMA=", v, ": expected 0 or 1");
  return v == "1";
}
}  // namespace

size_t dattn_mma_fwd_bytes(int64_t hd) { return hd == 64 ? DMmaCfg<64>::fwd_bytes() : DMmaCfg<128>::fwd_bytes(); }
size_t dattn_mma_dq_bytes(int64_t hd) { return hd == 64 ? DMmaCfg<64>::dq_bytes() : DMmaCfg<128>::dq_bytes(); }
size_t dattn_mma_dkdv_bytes(int64_t hd) { return hd == 64 ? DMmaCfg<64>::dkdv_bytes() : DMmaCfg<128>::dkdv_bytes(); }

bool dattn_mma_usable(int64_t hd, std::initializer_list<const void*> ptrs, size_t bytes) {
  if (!mma_enabled() || (hd != 64 && hd != 128)) return false;
  for (const void* x : ptrs)
    if (!aligned16(x)) return false;
  return device_sm() >= 80 && bytes <= smem_optin_limit();
}

void diff_attention_fwd_mma(const bf16* q, const bf16* k, const bf16* v, const float* lambda, bf16* out, bf16* o1,
                            bf16* o2, float* lse1, float* lse2, int64_t B, int64_t T_, int64_t Hp, int64_t Hkp,
                            int64_t hd, float sl2, int64_t W, void* s) {
  with_kd(hd, [&](auto kd) {
    constexpr int kD = decltype(kd)::value;
    using C = DMmaCfg<kD>;
    auto* kern = dattn_fwd_mma_k<kD>;
    const size_t bytes = C::fwd_bytes();
    allow_smem(kern, bytes, "diff_attention_fwd (mma)");
    const dim3 grid(static_cast<unsigned>((T_ + C::kFBr - 1) / C::kFBr), static_cast<unsigned>(Hp),
                    static_cast<unsigned>(B));
    kern<<<grid, C::kFThreads, bytes, S(s)>>>(q, k, v, lambda, out, o1, o2, lse1, lse2, T_, Hp, Hkp, sl2, W);
    HS_LAUNCH_CHECK("diff_attention_fwd (mma)", "B = ", B, ", T = ", T_, ", Hp = ", Hp, ", Hkp = ", Hkp, ", hd = ", hd,
                    ", window = ", W, ", smem = ", bytes);
  });
}

void diff_attention_bwd_dkdv_mma(const bf16* q, const bf16* k, const bf16* v, const float* lambda, const float* lse1,
                                 const float* lse2, const float* r1, const float* r2, const bf16* g, bf16* dk,
                                 bf16* dv, int64_t B, int64_t T_, int64_t Hp, int64_t Hkp, int64_t hd, float sl2,
                                 float scale, int64_t W, void* s) {
  with_kd(hd, [&](auto kd) {
    constexpr int kD = decltype(kd)::value;
    using C = DMmaCfg<kD>;
    auto* kern = dattn_bwd_dkdv_mma_k<kD>;
    const size_t bytes = C::dkdv_bytes();
    allow_smem(kern, bytes, "diff_attention_bwd (dk, dv; mma)");
    const dim3 grid(static_cast<unsigned>((T_ + C::kKBc - 1) / C::kKBc), static_cast<unsigned>(Hkp),
                    static_cast<unsigned>(B));
    kern<<<grid, C::kKThreads, bytes, S(s)>>>(q, k, v, g, lambda, lse1, lse2, r1, r2, dk, dv, T_, Hp, Hkp, sl2, scale,
                                               W);
    HS_LAUNCH_CHECK("diff_attention_bwd (dk, dv; mma)", "B = ", B, ", T = ", T_, ", Hp = ", Hp, ", Hkp = ", Hkp,
                    ", hd = ", hd, ", window = ", W, ", smem = ", bytes);
  });
}

void diff_attention_bwd_dq_mma(const bf16* q, const bf16* k, const bf16* v, const float* lambda, const float* lse1,
                               const float* lse2, const float* r1, const float* r2, const bf16* g, bf16* dq,
                               int64_t B, int64_t T_, int64_t Hp, int64_t Hkp, int64_t hd, float sl2, float scale,
                               int64_t W, void* s) {
  with_kd(hd, [&](auto kd) {
    constexpr int kD = decltype(kd)::value;
    using C = DMmaCfg<kD>;
    auto* kern = dattn_bwd_dq_mma_k<kD>;
    const size_t bytes = C::dq_bytes();
    allow_smem(kern, bytes, "diff_attention_bwd (dq; mma)");
    const dim3 grid(static_cast<unsigned>((T_ + C::kQBr - 1) / C::kQBr), static_cast<unsigned>(Hp),
                    static_cast<unsigned>(B));
    kern<<<grid, C::kQThreads, bytes, S(s)>>>(q, k, v, g, lambda, lse1, lse2, r1, r2, dq, T_, Hp, Hkp, sl2, scale, W);
    HS_LAUNCH_CHECK("diff_attention_bwd (dq; mma)", "B = ", B, ", T = ", T_, ", Hp = ", Hp, ", Hkp = ", Hkp,
                    ", hd = ", hd, ", window = ", W, ", smem = ", bytes);
  });
}

}  // namespace hyscale::kernels::cuda::detail
