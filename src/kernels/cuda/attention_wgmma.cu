// Flash attention on Hopper's warpgroup MMA (wgmma, sm_90a): bf16, D = Dv in {64, 128}, the same
// masks (causal, sliding window, GQA), outputs and conventions as attention.cu's mma.sync kernels,
// which stay the default: HYSCALE_ATTN_WGMMA=1 selects these (attention.cu's dispatch) on a compute
// capability 9.0 device with a build that includes sm_90a (CMake compiles this file for 90a when
// the CUDA architectures include 90). The forward first, the deterministic backward below.
//
// One CTA per (128-query tile, head, batch), the largest query tiles first; 256 threads = two
// warpgroups, warpgroup wg owning query rows 64 wg .. 64 wg + 63 of the tile (warp w of the group:
// 16 of them). Key tiles of 128 keys. Per tile and warpgroup:
//   S (64 x 128, fp32 registers) = Q K^T: D / 16 wgmma m64n128k16, Q and K from shared memory;
//   online softmax on the S registers (the accumulator layout is mma.sync's, so the masking and the
//     row reductions over the 4 lanes of a group are the mma.sync forward's);
//   P re-packed to bf16 A fragments in registers; O (64 x D) += P V: 8 wgmma m64nDk16 with V read
//     MN-major (imm-trans-b) from its row-major tile.
// Schedule: P V of tile j and Q K^T of tile j + 1 are issued back to back and waited for together
// (one wait per tile; the tensor cores run the two without a gap). The two warpgroups are half a
// cycle apart (warpgroup 1 computes its softmax after the tile's barrier, warpgroup 0 before it),
// so one's softmax runs while the other's products do. cp.async copies tile j + 2 while tiles j
// and j + 1 are computed: K in 2 stages, V in 3 (V of tile j is still being read when tile j + 2
// is copied), one barrier per tile.
// Shared memory holds every tile in the no-swizzle core-matrix layout: element (r, c) of an R x D
// tile at (r / 8) 8 D + (c / 8) 64 + (r % 8) 8 + c % 8, i.e. 8 x 8 blocks of 16-byte rows, 128
// contiguous bytes each; the cp.async copies write whole blocks (8 consecutive threads fill one).
// The same bytes serve K as a K-major operand (LBO 128 B between column blocks, SBO 16 D B between
// row blocks) and V as an MN-major one (LBO 16 D B along the keys, SBO 128 B along D).
// Shared memory: Q 128 x D, K 2 x 128 x D, V 3 x 128 x D: 96 KB (D 64), 192 KB (D 128); one CTA
// (8 warps) per SM, up to 255 registers a thread (S 64 + O D / 2 + P 32 floats live at once).
// The cp.async copies write through the generic proxy and wgmma reads through the async proxy:
// each thread fences its copies (fence.proxy.async) before the barrier that publishes a tile.
// Not (yet) done: TMA loads, warp specialisation with setmaxnreg, a second S accumulator so that a
// warpgroup's own softmax overlaps its next Q K^T (flash-attention-3's intra-warpgroup pipelining),
// an mbarrier pipeline instead of the per-tile CTA barrier.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/attention_wgmma.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/mma_common.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace hyscale::kernels::cuda::detail {

namespace {
using namespace detail::attn;  // kLn2, allow_smem (attention_tiles.cuh)

constexpr int kWgBr = 128, kWgBc = 128, kWgThr = 256;
template <int kD> struct WgCfg {  // bf16 element offsets; K in 2 stages, V in 3 (see the kernel)
  static constexpr int kQ = 0, kK = kQ + kWgBr * kD, kV = kK + 2 * kWgBc * kD, kEnd = kV + 3 * kWgBc * kD;
  static constexpr size_t bytes() { return sizeof(uint16_t) * kEnd; }
};

__device__ __forceinline__ uint16_t* smem_bf16() {
  extern __shared__ float4 hs_wg_smem[];
  return reinterpret_cast<uint16_t*>(hs_wg_smem);
}

// cp.async of rows r < R of a bf16 tile with kD columns (src row r at src + r stride; rows >= valid,
// valid >= 1, are zero-filled) into dst in the core-matrix layout. Chunk p (16 bytes) lands at
// dst + 8 p: row (p / kD) 8 + p % 8, columns 8 ((p / 8) % (kD / 8)) + 0 .. 7.
template <int R, int kD>
__device__ __forceinline__ void cp_async_cm_tile(uint16_t* dst, const bf16* __restrict__ src, int64_t stride,
                                                 int valid) {
  constexpr int kChunks = R * kD / 8;
  static_assert(kChunks % kWgThr == 0, "cp_async_cm_tile: whole rounds");
#pragma unroll
  for (int it = 0; it < kChunks / kWgThr; ++it) {
    const int p = it * kWgThr + int(threadIdx.x);
    const int r = (p / kD) * 8 + (p & 7), c = ((p >> 3) % (kD / 8)) * 8;
    cp_async16(dst + p * 8, r < valid ? src + r * stride + c : src, r < valid);
  }
}

template <int kD>
__global__ void __launch_bounds__(kWgThr, 1)
    attn_fwd_wgmma_k(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                     bf16* __restrict__ out, float* __restrict__ lse, int64_t T_, int64_t H, int64_t Hk, float sl2,
                     int64_t W) {
#if defined(HYSCALE_CUDA_EMU) || defined(HS_WGMMA_HW)
  using C = WgCfg<kD>;
  constexpr int Br = kWgBr, Bc = kWgBc, KS = kD / 16, NT = Bc / 8, OT = kD / 8, PK = Bc / 16;
  constexpr uint32_t kRowBlock = 16 * kD;  // bytes between vertically adjacent 8 x 8 blocks
  uint16_t* sm = smem_bf16();
  uint16_t *Qs = sm + C::kQ, *Ks = sm + C::kK, *Vs = sm + C::kV;  // stage st of K / V: + st Bc kD
  const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  const int64_t b = blockIdx.z, h = blockIdx.y, i0 = int64_t(gridDim.x - 1 - blockIdx.x) * Br;
  const int64_t g = h / (H / Hk);
  const int64_t i_end = i0 + Br < T_ ? i0 + Br : T_;
  const int64_t lo = i0 - W + 1 > 0 ? i0 - W + 1 : 0;          // first key any row of the tile sees
  const int jt0 = int(lo / Bc), jt1 = int((i_end - 1) / Bc);  // key tiles
  const int64_t wg_lo = i0 + 64 * wg, wg_hi = wg_lo + 63;     // the warpgroup's rows
  const int64_t r_lo = wg_lo + 16 * warp, r_hi = r_lo + 15;   // the warp's rows
  const bf16* kb = k + (b * T_ * Hk + g) * kD;  // key j of KV head g: kb + j Hk kD (the same for v)
  const bf16* vb = v + (b * T_ * Hk + g) * kD;
  // Tile jt: K in stage jt % 2, V in stage jt % 3.
  auto load_kv = [&](int jt) {
    const int64_t j0 = int64_t(jt) * Bc;
    const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
    cp_async_cm_tile<Bc, kD>(Ks + (jt % 2) * Bc * kD, kb + j0 * Hk * kD, Hk * kD, nk);
    cp_async_cm_tile<Bc, kD>(Vs + (jt % 3) * Bc * kD, vb + j0 * Hk * kD, Hk * kD, nk);
  };
  // Warpgroup-uniform (the wgmma are warpgroup-wide): whether key tile jt has a key visible to
  // one of the group's rows; tiles without one are skipped.
  auto active = [&](int jt) {
    const int64_t j0 = int64_t(jt) * Bc;
    return !(wg_lo >= T_ || j0 > wg_hi || j0 + Bc - 1 <= wg_lo - W);
  };
  const uint32_t q_addr = smem_u32(Qs) + uint32_t(wg) * 8 * kRowBlock;  // 64 rows = 8 row blocks
  const uint32_t k_addr = smem_u32(Ks), v_addr = smem_u32(Vs);
  float s[NT * 4], o[kD / 2], m[2], l[2];
  // S = Q K^T of tile jt into s (issued and committed, not waited for), 16 columns of D per step:
  // 2 column blocks (256 B).
  auto issue_s = [&](int jt) {
#if defined(HYSCALE_CUDA_EMU)
#pragma unroll
    for (int i = 0; i < NT * 4; ++i) s[i] = 0.0f;  // (the first step overwrites: scale-d 0; defined input for C++)
#endif
    wgmma_fence_operands(s);
    wgmma_fence();
    const uint32_t kst = k_addr + uint32_t(jt % 2) * Bc * kD * 2;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)
      wgmma_ss_n128(s, wgmma_desc(q_addr + 256 * kk, 128, kRowBlock), wgmma_desc(kst + 256 * kk, 128, kRowBlock),
                    kk > 0);
    wgmma_commit();
  };

  cp_async_cm_tile<Br, kD>(Qs, q + ((b * T_ + i0) * H + h) * kD, H * kD, int(i_end - i0));
  load_kv(jt0);
  cp_async_commit();
  if (jt0 < jt1) load_kv(jt0 + 1);
  cp_async_commit();  // (possibly empty: the group count stays uniform)
  cp_async_wait<1>();
  fence_proxy_async_smem();  // the copies (generic proxy) before wgmma reads them (async proxy)
  __syncthreads();           // Q and tile jt0 landed for all threads
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) o[i] = 0.0f;
  m[0] = m[1] = -INFINITY;
  l[0] = l[1] = 0.0f;
  if (active(jt0)) issue_s(jt0);
  wgmma_wait<0>();
  wgmma_fence_operands(s);
  // Per key tile jt, with S(jt) in s: softmax, then P V(jt) and S(jt + 1) = Q K(jt + 1)^T issued back
  // to back (the tensor cores go from one to the other without a wait in between) and waited for
  // together. Tile jt + 2 is copied while tiles jt and jt + 1 are computed; the barrier of
  // iteration jt (all warps past their wait of iteration jt - 1, so P V(jt - 1) and S(jt) are
  // complete) frees K's stage of tile jt and V's stage of tile jt - 1 for it, hence 3 V stages.
  // The two warpgroups run the same cycle (softmax, issue, wait) with the barrier at different
  // points of it: warpgroup 0 computes tile jt's softmax before the barrier and issues its products
  // right after it, warpgroup 1 computes its softmax after the barrier, i.e. while warpgroup 0's
  // products run, and its products then run while warpgroup 0 computes the next softmax. (With the
  // softmax on the same side of the barrier both would compute at once and leave the tensor cores
  // idle meanwhile.)
  for (int jt = jt0; jt <= jt1; ++jt) {
    const int64_t j0 = int64_t(jt) * Bc;
    uint32_t pa[PK][4];
    const bool act = active(jt);
    // Tile jt's softmax on s (rows gid and gid + 8 of the warp's 16), o rescaled, P packed as the A
    // fragments of P V: keys 16 kk .. 16 kk + 15 are accumulator column blocks 2 kk (a[0], a[1]) and
    // 2 kk + 1 (a[2], a[3]); P is rounded to bf16 as in the mma.sync forward, l uses the fp32 P.
    auto softmax_tile = [&] {
      const bool full = j0 + Bc - 1 <= r_lo && j0 > r_hi - W;  // warp-uniform: no per-element mask
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        int c_lo, c_hi;
        visible_cols<Bc>(r_lo + gid + 8 * hh, j0, T_, W, c_lo, c_hi);
        const float alpha = softmax_row_step<NT>([&](int nt, int e) -> float& { return s[4 * nt + 2 * hh + e]; },
                                                 m[hh], l[hh], full, c_lo, c_hi, sl2, tig);
#pragma unroll
        for (int t = 0; t < OT; ++t) {
          o[4 * t + 2 * hh] *= alpha;
          o[4 * t + 2 * hh + 1] *= alpha;
        }
      }
#pragma unroll
      for (int kk = 0; kk < PK; ++kk) {
        pa[kk][0] = pack_bf16x2(s[8 * kk + 0], s[8 * kk + 1]);
        pa[kk][1] = pack_bf16x2(s[8 * kk + 2], s[8 * kk + 3]);
        pa[kk][2] = pack_bf16x2(s[8 * kk + 4], s[8 * kk + 5]);
        pa[kk][3] = pack_bf16x2(s[8 * kk + 6], s[8 * kk + 7]);
      }
    };
    if (act && wg == 0) softmax_tile();
    if (jt < jt1) {
      cp_async_wait<0>();  // tile jt + 1
      fence_proxy_async_smem();
      __syncthreads();  // tile jt + 1 visible to all; every warp is past iteration jt - 1's wait
      if (jt + 2 <= jt1) load_kv(jt + 2);
      cp_async_commit();
    }
    if (act && wg == 1) softmax_tile();
    if (act) {  // pa stays untouched until the wait below (the pending wgmma reads it)
      wgmma_fence_operands(o);  // o was rescaled and pa written by ordinary instructions: above the fence
      wgmma_fence_operands(pa);
      wgmma_fence();
      const uint32_t vst = v_addr + uint32_t(jt % 3) * Bc * kD * 2;
#pragma unroll
      for (int kk = 0; kk < PK; ++kk)  // O += P V, 16 keys per step: 2 row blocks of V
        wgmma_rs_tb<kD>(o, pa[kk], wgmma_desc(vst + 2 * kRowBlock * kk, kRowBlock, 128), 1);
      wgmma_commit();
    }
    if (jt < jt1 && active(jt + 1)) issue_s(jt + 1);
    wgmma_wait<0>();
    wgmma_fence_operands(o);
    wgmma_fence_operands(s);
  }
  cp_async_wait<0>();  // (the last group is empty; nothing is left in flight at exit)
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int64_t qi = r_lo + gid + 8 * hh;
    if (qi >= T_) continue;
    const float inv = l[hh] > 0.0f ? 1.0f / l[hh] : 0.0f;  // a row with no visible key writes zeros
    bf16* orow = out + ((b * T_ + qi) * H + h) * kD;
#pragma unroll
    for (int t = 0; t < OT; ++t)
      *reinterpret_cast<uint32_t*>(orow + t * 8 + tig * 2) =
          pack_bf16x2(o[4 * t + 2 * hh] * inv, o[4 * t + 2 * hh + 1] * inv);
    if (tig == 0) lse[(b * H + h) * T_ + qi] = l[hh] > 0.0f ? (m[hh] + log2f(l[hh])) * kLn2 : -INFINITY;
  }
#else
  __trap();
#endif
}


// ------------------------------------------------------------------------------ backward
// Deterministic backward on warpgroup MMA, the mma.sync backward's structure (attention.cu): the
// Dsum pre-pass and the GQA group sum stay there; these are the dk/dv and dq kernels.
//
// dk/dv kernel, one CTA per (query head, 128-key tile, batch), like attn_bwd_dkdv_mma_k (fp32
// partials per query head under GQA): warpgroup wg owns keys 64 wg .. 64 wg + 63 of the tile; K and
// V stay in shared memory; the query tiles (64 queries) that see the key tile stream through two
// cp.async stages with their lse and Dsum. Per query tile and warpgroup, everything transposed so
// that the keys are the M dimension:
//   S^T = K Q^T and dP^T = V dO^T (64 x 64 each, D / 16 wgmma m64n64k16 each, all operands K-major
//     in shared memory), waited for together;
//   P^T = exp2(S^T sl2 - lse2[query]) (masked), dS^T = P^T (dP^T - Dsum[query]) on the registers;
//   dV += P^T dO and dK += dS^T Q (4 wgmma m64nDk16 each, P^T and dS^T as bf16 A fragments in
//     registers, dO and Q read MN-major), waited for together.
// Shared memory: K, V 128 x D; Q, dO 2 x 64 x D; statistics 2 x 2 x 64 floats: 65 KB (D 64),
// 129 KB (D 128).
// dq kernel, one CTA per (128-query tile, head, batch), the last query tiles first: warpgroup wg
// owns 64 queries; K and V tiles of 64 keys in two cp.async stages. Per key tile: S = Q K^T and
// dP = dO V^T (wgmma m64n64k16, K-major), dS = P (dP - Dsum) on the registers, dQ += dS K (4 wgmma
// m64nDk16, K read MN-major). Shared memory: Q, dO 128 x D; K, V 2 x 64 x D: 64 KB (D 64), 128 KB
// (D 128).
// No atomics, fixed loop orders: bit-identical run to run. Under set_deterministic(false) the
// caller keeps the mma.sync backward's atomic-dq form.
constexpr int kWbBc = 128, kWbBr = 64, kWqBr = 128, kWqBc = 64;
template <int kD> struct WgBwdCfg {  // bf16 element offsets
  static constexpr int kK = 0, kV = kK + kWbBc * kD, kQ = kV + kWbBc * kD, kO = kQ + 2 * kWbBr * kD,
                       kStat = kO + 2 * kWbBr * kD, kEnd = kStat + 2 * (2 * 2 * kWbBr);  // stats: floats
  static constexpr size_t bytes() { return sizeof(uint16_t) * kEnd; }
};
template <int kD> struct WgDqCfg {
  static constexpr int kQ = 0, kO = kQ + kWqBr * kD, kK = kO + kWqBr * kD, kV = kK + 2 * kWqBc * kD,
                       kEnd = kV + 2 * kWqBc * kD;
  static constexpr size_t bytes() { return sizeof(uint16_t) * kEnd; }
};

template <int kD>
__global__ void __launch_bounds__(kWgThr, 1)
    attn_bwd_dkdv_wgmma_k(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                          const bf16* __restrict__ dout, const float* __restrict__ lse,
                          const float* __restrict__ dsum, bf16* __restrict__ dk, bf16* __restrict__ dv,
                          float* __restrict__ pk, float* __restrict__ pv, int64_t T_, int64_t H, int64_t Hk, float sl2,
                          float scale, int64_t W) {
#if defined(HYSCALE_CUDA_EMU) || defined(HS_WGMMA_HW)
  using C = WgBwdCfg<kD>;
  constexpr int Bc = kWbBc, Br = kWbBr, KS = kD / 16, NQ = Br / 8, OT = kD / 8, PK = Br / 16;
  constexpr uint32_t kRowBlock = 16 * kD;
  uint16_t* sm = smem_bf16();
  uint16_t *Ks = sm + C::kK, *Vs = sm + C::kV, *Qs = sm + C::kQ, *dOs = sm + C::kO;  // stage st of Q / dO: + st Br kD
  float* stats = reinterpret_cast<float*>(sm + C::kStat);  // stage st: lse2 [Br], then Dsum [Br], at + 2 st Br
  const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  // blockIdx.x = query head h (its index in the GQA group, hq, picks its partial sums), blockIdx.y =
  // key tile: all heads of key tile 0 (the most query tiles under a causal mask) first.
  const int64_t b = blockIdx.z, h = blockIdx.x, rep = H / Hk, g = h / rep, hq = h % rep;
  const int64_t j0 = int64_t(blockIdx.y) * Bc;
  const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
  const int64_t kw = j0 + 64 * wg, jw = kw + 16 * warp;  // the warpgroup's / the warp's first key
  const int64_t i_hi = j0 + nk - 1 + W < T_ ? j0 + nk - 1 + W : T_;  // exclusive end of the queries that see the tile
  const int it0 = int(j0 / Br), nit = int((i_hi - 1) / Br) - it0 + 1;
  // Copies Q and dO of query tile it0 + it into stage st (no commit); returns this thread's raw
  // statistic (thread r < Br: the lse of row r, -inf past T; thread Br + r: its Dsum, 0 past T).
  auto load_q = [&](int it, int st) -> float {
    const int64_t i0 = int64_t(it0 + it) * Br;
    const int nq = int(T_ - i0 < Br ? T_ - i0 : Br);
    cp_async_cm_tile<Br, kD>(Qs + st * Br * kD, q + ((b * T_ + i0) * H + h) * kD, H * kD, nq);
    cp_async_cm_tile<Br, kD>(dOs + st * Br * kD, dout + ((b * T_ + i0) * H + h) * kD, H * kD, nq);
    return row_stat_load<Br>(lse, dsum, (b * H + h) * T_, i0, T_, tid);
  };
  auto stat_store = [&](float x, int st) { row_stat_store<Br>(stats + st * 2 * Br, x, tid); };
  cp_async_cm_tile<Bc, kD>(Ks, k + ((b * T_ + j0) * Hk + g) * kD, Hk * kD, nk);
  cp_async_cm_tile<Bc, kD>(Vs, v + ((b * T_ + j0) * Hk + g) * kD, Hk * kD, nk);
  float stat = load_q(0, 0);
  cp_async_commit();
  stat_store(stat, 0);
  const uint32_t k_addr = smem_u32(Ks) + uint32_t(wg) * 8 * kRowBlock, v_addr = smem_u32(Vs) + uint32_t(wg) * 8 * kRowBlock;
  const uint32_t q_addr = smem_u32(Qs), o_addr = smem_u32(dOs);
  float dka[kD / 2], dva[kD / 2];
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) dka[i] = dva[i] = 0.0f;
  int st = 0;  // the stage of the current query tile
  for (int it = 0; it < nit; ++it, st ^= 1) {
    const int64_t i0 = int64_t(it0 + it) * Br;
    const bool more = it + 1 < nit;
    cp_async_wait<0>();
    fence_proxy_async_smem();
    __syncthreads();  // this tile (and K, V) landed and its statistics are stored, for all threads;
                      // the other stage (the previous tile) is consumed
    if (more) stat = load_q(it + 1, st ^ 1);
    cp_async_commit();
    // Warpgroup-uniform: some query of the tile sees some key of the group (at or after the key,
    // within the window, the key before T).
    const bool act = kw < T_ && i0 + Br - 1 >= kw && i0 <= kw + 63 + W - 1;
    if (act) {
      float s[NQ * 4], dp[NQ * 4];
#if defined(HYSCALE_CUDA_EMU)
#pragma unroll
      for (int i = 0; i < NQ * 4; ++i) s[i] = dp[i] = 0.0f;  // (overwritten: scale-d 0)
#endif
      wgmma_fence_operands(s);
      wgmma_fence_operands(dp);
      wgmma_fence();
      const uint32_t qst = q_addr + uint32_t(st) * Br * kD * 2, ost = o_addr + uint32_t(st) * Br * kD * 2;
#pragma unroll
      for (int kk = 0; kk < KS; ++kk)  // S^T = K Q^T
        wgmma_ss_n64(s, wgmma_desc(k_addr + 256 * kk, 128, kRowBlock), wgmma_desc(qst + 256 * kk, 128, kRowBlock),
                     kk > 0);
#pragma unroll
      for (int kk = 0; kk < KS; ++kk)  // dP^T = V dO^T
        wgmma_ss_n64(dp, wgmma_desc(v_addr + 256 * kk, 128, kRowBlock), wgmma_desc(ost + 256 * kk, 128, kRowBlock),
                     kk > 0);
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operands(s);
      wgmma_fence_operands(dp);
      const float* lse2s = stats + st * 2 * Br;
      const float* dsums = lse2s + Br;
      // Warp-uniform: every (key, query) pair of the warp's 16 keys and the tile is visible.
      const bool full = i0 >= jw + 15 && i0 + Br - 1 < jw + W;
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {  // key jw + gid (hh = 0) and jw + gid + 8 (hh = 1)
        const int64_t jr = jw + gid + 8 * hh;
        // query column c (query i0 + c) sees key jr iff jr <= i0 + c < jr + W, i.e. c_lo < c <= c_hi
        const int64_t lo = jr - i0 - 1, hi = jr >= T_ ? -1 : jr - i0 + W - 1;
        const int c_lo = int(lo < -1 ? -1 : (lo > Br ? Br : lo)), c_hi = int(hi < -1 ? -1 : (hi > Br ? Br : hi));
#pragma unroll
        for (int j = 0; j < NQ; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int c = 8 * j + 2 * tig + e, x = 4 * j + 2 * hh + e;
            const float p = full || (c > c_lo && c <= c_hi) ? exp2f(s[x] * sl2 - lse2s[c]) : 0.0f;
            s[x] = p;
            dp[x] = p * (dp[x] - dsums[c]);
          }
      }
      uint32_t pp[PK][4], pds[PK][4];  // P^T and dS^T as A fragments (keys x 16 queries per step)
#pragma unroll
      for (int kk = 0; kk < PK; ++kk)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          pp[kk][r] = pack_bf16x2(s[8 * kk + 2 * r], s[8 * kk + 2 * r + 1]);
          pds[kk][r] = pack_bf16x2(dp[8 * kk + 2 * r], dp[8 * kk + 2 * r + 1]);
        }
      wgmma_fence_operands(dva);
      wgmma_fence_operands(dka);
      wgmma_fence_operands(pp);
      wgmma_fence_operands(pds);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < PK; ++kk)  // dV += P^T dO (16 queries per step: 2 row blocks of dO)
        wgmma_rs_tb<kD>(dva, pp[kk], wgmma_desc(ost + 2 * kRowBlock * kk, kRowBlock, 128), 1);
#pragma unroll
      for (int kk = 0; kk < PK; ++kk)  // dK += dS^T Q
        wgmma_rs_tb<kD>(dka, pds[kk], wgmma_desc(qst + 2 * kRowBlock * kk, kRowBlock, 128), 1);
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operands(dva);
      wgmma_fence_operands(dka);
    }
    if (more) stat_store(stat, st ^ 1);  // that stage's statistics were consumed before the barrier above
  }
  cp_async_wait<0>();  // (the last group is empty; nothing is left in flight at exit)
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int64_t j = jw + gid + 8 * hh;
    if (j >= T_) continue;
    if (pk) {  // GQA: this head's fp32 partial sums (unscaled), summed over the group in head order later
      const int64_t o = (((hq * int64_t(gridDim.z) + b) * T_ + j) * Hk + g) * kD;
#pragma unroll
      for (int t = 0; t < OT; ++t) {
        *reinterpret_cast<float2*>(pk + o + t * 8 + tig * 2) = make_float2(dka[4 * t + 2 * hh], dka[4 * t + 2 * hh + 1]);
        *reinterpret_cast<float2*>(pv + o + t * 8 + tig * 2) = make_float2(dva[4 * t + 2 * hh], dva[4 * t + 2 * hh + 1]);
      }
      continue;
    }
    bf16* krow = dk + ((b * T_ + j) * Hk + g) * kD;
    bf16* vrow = dv + ((b * T_ + j) * Hk + g) * kD;
#pragma unroll
    for (int t = 0; t < OT; ++t) {
      *reinterpret_cast<uint32_t*>(krow + t * 8 + tig * 2) =
          pack_bf16x2(dka[4 * t + 2 * hh] * scale, dka[4 * t + 2 * hh + 1] * scale);
      *reinterpret_cast<uint32_t*>(vrow + t * 8 + tig * 2) = pack_bf16x2(dva[4 * t + 2 * hh], dva[4 * t + 2 * hh + 1]);
    }
  }
#else
  __trap();
#endif
}

template <int kD>
__global__ void __launch_bounds__(kWgThr, 1)
    attn_bwd_dq_wgmma_k(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                        const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ dsum,
                        bf16* __restrict__ dq, int64_t T_, int64_t H, int64_t Hk, float sl2, float scale, int64_t W) {
#if defined(HYSCALE_CUDA_EMU) || defined(HS_WGMMA_HW)
  using C = WgDqCfg<kD>;
  constexpr int Br = kWqBr, Bc = kWqBc, KS = kD / 16, NT = Bc / 8, OT = kD / 8, PK = Bc / 16;
  constexpr uint32_t kRowBlock = 16 * kD;
  uint16_t* sm = smem_bf16();
  uint16_t *Qs = sm + C::kQ, *dOs = sm + C::kO, *Ks = sm + C::kK, *Vs = sm + C::kV;  // stage st of K / V: + st Bc kD
  const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  const int64_t b = blockIdx.z, h = blockIdx.y, i0 = int64_t(gridDim.x - 1 - blockIdx.x) * Br;
  const int64_t g = h / (H / Hk);
  const int64_t i_end = i0 + Br < T_ ? i0 + Br : T_;
  const int64_t lo = i0 - W + 1 > 0 ? i0 - W + 1 : 0;
  const int jt0 = int(lo / Bc), jt1 = int((i_end - 1) / Bc);
  const int64_t wg_lo = i0 + 64 * wg, wg_hi = wg_lo + 63, r_lo = wg_lo + 16 * warp, r_hi = r_lo + 15;
  const bf16* kb = k + (b * T_ * Hk + g) * kD;
  const bf16* vb = v + (b * T_ * Hk + g) * kD;
  auto load_kv = [&](int jt, int st) {
    const int64_t j0 = int64_t(jt) * Bc;
    const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
    cp_async_cm_tile<Bc, kD>(Ks + st * Bc * kD, kb + j0 * Hk * kD, Hk * kD, nk);
    cp_async_cm_tile<Bc, kD>(Vs + st * Bc * kD, vb + j0 * Hk * kD, Hk * kD, nk);
  };
  cp_async_cm_tile<Br, kD>(Qs, q + ((b * T_ + i0) * H + h) * kD, H * kD, int(i_end - i0));
  cp_async_cm_tile<Br, kD>(dOs, dout + ((b * T_ + i0) * H + h) * kD, H * kD, int(i_end - i0));
  load_kv(jt0, 0);
  cp_async_commit();
  float lse2[2], dsr[2];  // the statistics of this thread's rows r_lo + gid, + 8
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int64_t r = r_lo + gid + 8 * hh;
    lse2[hh] = INFINITY;
    dsr[hh] = 0.0f;
    if (r < T_) {
      const float x = lse[(b * H + h) * T_ + r];
      lse2[hh] = x == -INFINITY ? INFINITY : x * kLog2e;
      dsr[hh] = dsum[(b * H + h) * T_ + r];
    }
  }
  const uint32_t q_addr = smem_u32(Qs) + uint32_t(wg) * 8 * kRowBlock, o_addr = smem_u32(dOs) + uint32_t(wg) * 8 * kRowBlock;
  const uint32_t k_addr = smem_u32(Ks), v_addr = smem_u32(Vs);
  float dqa[kD / 2];
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) dqa[i] = 0.0f;
  for (int jt = jt0; jt <= jt1; ++jt) {
    const int st = (jt - jt0) & 1;
    const int64_t j0 = int64_t(jt) * Bc;
    cp_async_wait<0>();
    fence_proxy_async_smem();
    __syncthreads();  // tile jt (and Q, dO) landed for all threads; the other stage is consumed
    if (jt < jt1) load_kv(jt + 1, st ^ 1);
    cp_async_commit();
    if (wg_lo >= T_ || j0 > wg_hi || j0 + Bc - 1 <= wg_lo - W) continue;  // warpgroup-uniform
    const bool full = j0 + Bc - 1 <= r_lo && j0 > r_hi - W;           // warp-uniform
    const uint32_t kst = k_addr + uint32_t(st) * Bc * kD * 2, vst = v_addr + uint32_t(st) * Bc * kD * 2;
    float s[NT * 4], dp[NT * 4];
#if defined(HYSCALE_CUDA_EMU)
#pragma unroll
    for (int i = 0; i < NT * 4; ++i) s[i] = dp[i] = 0.0f;  // (overwritten: scale-d 0)
#endif
    wgmma_fence_operands(s);
    wgmma_fence_operands(dp);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)  // S = Q K^T
      wgmma_ss_n64(s, wgmma_desc(q_addr + 256 * kk, 128, kRowBlock), wgmma_desc(kst + 256 * kk, 128, kRowBlock),
                   kk > 0);
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)  // dP = dO V^T
      wgmma_ss_n64(dp, wgmma_desc(o_addr + 256 * kk, 128, kRowBlock), wgmma_desc(vst + 256 * kk, 128, kRowBlock),
                   kk > 0);
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_fence_operands(s);
    wgmma_fence_operands(dp);
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      int c_lo, c_hi;
      visible_cols<Bc>(r_lo + gid + 8 * hh, j0, T_, W, c_lo, c_hi);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int c = 8 * nt + 2 * tig + e, x = 4 * nt + 2 * hh + e;
          const float p = full || (c > c_lo && c <= c_hi) ? exp2f(s[x] * sl2 - lse2[hh]) : 0.0f;
          dp[x] = p * (dp[x] - dsr[hh]);
        }
    }
    uint32_t pds[PK][4];
#pragma unroll
    for (int kk = 0; kk < PK; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) pds[kk][r] = pack_bf16x2(dp[8 * kk + 2 * r], dp[8 * kk + 2 * r + 1]);
    wgmma_fence_operands(dqa);
    wgmma_fence_operands(pds);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < PK; ++kk)  // dQ += dS K (16 keys per step: 2 row blocks of K, read MN-major)
      wgmma_rs_tb<kD>(dqa, pds[kk], wgmma_desc(kst + 2 * kRowBlock * kk, kRowBlock, 128), 1);
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_fence_operands(dqa);
  }
  cp_async_wait<0>();
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int64_t r = r_lo + gid + 8 * hh;
    if (r >= T_) continue;
    bf16* qrow = dq + ((b * T_ + r) * H + h) * kD;
#pragma unroll
    for (int t = 0; t < OT; ++t)
      *reinterpret_cast<uint32_t*>(qrow + t * 8 + tig * 2) =
          pack_bf16x2(dqa[4 * t + 2 * hh] * scale, dqa[4 * t + 2 * hh + 1] * scale);
  }
#else
  __trap();
#endif
}

}  // namespace

bool wgmma_built() {
#if defined(HYSCALE_WGMMA_SM90A) || defined(HYSCALE_CUDA_EMU)
  return true;
#else
  return false;
#endif
}

void attention_fwd_wgmma(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, int64_t B, int64_t T_,
                         int64_t H, int64_t Hk, int64_t D, float sl2, int64_t W, void* s) {
  auto launch = [&](auto kern, size_t bytes) {
    allow_smem(kern, bytes, "attention_fwd (wgmma)");
    const dim3 grid(static_cast<unsigned>((T_ + kWgBr - 1) / kWgBr), static_cast<unsigned>(H),
                    static_cast<unsigned>(B));
    kern<<<grid, kWgThr, bytes, S(s)>>>(q, k, v, out, lse, T_, H, Hk, sl2, W);
    HS_LAUNCH_CHECK("attention_fwd (wgmma)", "B = ", B, ", T = ", T_, ", H = ", H, ", Hk = ", Hk, ", D = ", D,
                    ", effective window = ", W, ", smem = ", bytes);
  };
  if (D == 64) launch(attn_fwd_wgmma_k<64>, WgCfg<64>::bytes());
  else launch(attn_fwd_wgmma_k<128>, WgCfg<128>::bytes());
}


int wgmma_bwd_key_tile() { return kWbBc; }

void attention_bwd_wgmma(const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse,
                         const float* dsum, bf16* dq, bf16* dk, bf16* dv, float* pk, float* pv, int64_t B, int64_t T_,
                         int64_t H, int64_t Hk, int64_t D, float sl2, float scale, int64_t W, void* s) {
  auto launch = [&](auto dkdv_kern, size_t kbytes, auto dq_kern, size_t qbytes) {
    allow_smem(dkdv_kern, kbytes, "attention_bwd (dk, dv; wgmma)");
    const dim3 grid_k(static_cast<unsigned>(H), static_cast<unsigned>((T_ + kWbBc - 1) / kWbBc),
                      static_cast<unsigned>(B));
    dkdv_kern<<<grid_k, kWgThr, kbytes, S(s)>>>(q, k, v, dout, lse, dsum, dk, dv, pk, pv, T_, H, Hk, sl2, scale, W);
    HS_LAUNCH_CHECK("attention_bwd (dk, dv; wgmma)", "B = ", B, ", T = ", T_, ", H = ", H, ", Hk = ", Hk, ", D = ", D,
                    ", effective window = ", W, ", smem = ", kbytes);
    allow_smem(dq_kern, qbytes, "attention_bwd (dq; wgmma)");
    const dim3 grid_q(static_cast<unsigned>((T_ + kWqBr - 1) / kWqBr), static_cast<unsigned>(H),
                      static_cast<unsigned>(B));
    dq_kern<<<grid_q, kWgThr, qbytes, S(s)>>>(q, k, v, dout, lse, dsum, dq, T_, H, Hk, sl2, scale, W);
    HS_LAUNCH_CHECK("attention_bwd (dq; wgmma)", "B = ", B, ", T = ", T_, ", H = ", H, ", Hk = ", Hk, ", D = ", D,
                    ", effective window = ", W, ", smem = ", qbytes);
  };
  if (D == 64)
    launch(attn_bwd_dkdv_wgmma_k<64>, WgBwdCfg<64>::bytes(), attn_bwd_dq_wgmma_k<64>, WgDqCfg<64>::bytes());
  else
    launch(attn_bwd_dkdv_wgmma_k<128>, WgBwdCfg<128>::bytes(), attn_bwd_dq_wgmma_k<128>, WgDqCfg<128>::bytes());
}

}  // namespace hyscale::kernels::cuda::detail
