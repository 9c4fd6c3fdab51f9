// Flash-attention forward on Hopper's warpgroup MMA (wgmma, sm_90a): bf16, D = Dv in {64, 128},
// the same masks (causal, sliding window, GQA), outputs (out, lse) and conventions as attention.cu's
// mma.sync forward, which stays the default: HYSCALE_ATTN_WGMMA=1 selects this one (attention.cu's
// dispatch), on a compute capability 9.0 device with a build that includes sm_90a (CMake compiles
// this file for 90a when the CUDA architectures include 90).
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
// (one wait per tile; the tensor cores run the two without a gap), then the softmax of tile j + 1
// runs while the other warpgroup's products run. cp.async copies tile j + 2 while tiles j and j + 1
// are computed: K in 2 stages, V in 3 (V of tile j is still being read when tile j + 2 is copied),
// one barrier per tile.
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
// the backward on wgmma.
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
  for (int jt = jt0; jt <= jt1; ++jt) {
    const int64_t j0 = int64_t(jt) * Bc;
    uint32_t pa[PK][4];
    const bool act = active(jt);
    if (act) {
      const bool full = j0 + Bc - 1 <= r_lo && j0 > r_hi - W;  // warp-uniform: no per-element mask
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {  // row gid (hh = 0) and gid + 8 (hh = 1) of the warp's 16
        int c_lo, c_hi;
        visible_cols<Bc>(r_lo + gid + 8 * hh, j0, T_, W, c_lo, c_hi);
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int c = nt * 8 + tig * 2 + e;
            float& x = s[4 * nt + 2 * hh + e];
            x = full || (c > c_lo && c <= c_hi) ? x * sl2 : -INFINITY;
            mx = fmaxf(mx, x);
          }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mnew = fmaxf(m[hh], mx);
        const float base = mnew == -INFINITY ? 0.0f : mnew;  // nothing visible yet: avoid -inf - -inf
        const float alpha = exp2f(m[hh] - base);              // 0 on the first visible tile
        float rs = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& x = s[4 * nt + 2 * hh + e];
            x = exp2f(x - base);  // masked: exp2(-inf) = 0
            rs += x;
          }
        rs += __shfl_xor_sync(0xffffffffu, rs, 1);
        rs += __shfl_xor_sync(0xffffffffu, rs, 2);
        l[hh] = l[hh] * alpha + rs;
        m[hh] = mnew;
#pragma unroll
        for (int t = 0; t < OT; ++t) {
          o[4 * t + 2 * hh] *= alpha;
          o[4 * t + 2 * hh + 1] *= alpha;
        }
      }
      // P (bf16, as in the mma.sync forward; l uses the fp32 P) as A fragments: keys 16 kk .. 16 kk + 15
      // are accumulator column blocks 2 kk (a[0], a[1]) and 2 kk + 1 (a[2], a[3]). pa stays untouched
      // until the wait below (the pending wgmma read it).
#pragma unroll
      for (int kk = 0; kk < PK; ++kk) {
        pa[kk][0] = pack_bf16x2(s[8 * kk + 0], s[8 * kk + 1]);
        pa[kk][1] = pack_bf16x2(s[8 * kk + 2], s[8 * kk + 3]);
        pa[kk][2] = pack_bf16x2(s[8 * kk + 4], s[8 * kk + 5]);
        pa[kk][3] = pack_bf16x2(s[8 * kk + 6], s[8 * kk + 7]);
      }
      wgmma_fence_operands(o);  // o was rescaled and pa written by ordinary instructions: above the fence
      wgmma_fence_operands(pa);
      wgmma_fence();
      const uint32_t vst = v_addr + uint32_t(jt % 3) * Bc * kD * 2;
#pragma unroll
      for (int kk = 0; kk < PK; ++kk)  // O += P V, 16 keys per step: 2 row blocks of V
        wgmma_rs_tb<kD>(o, pa[kk], wgmma_desc(vst + 2 * kRowBlock * kk, kRowBlock, 128), 1);
      wgmma_commit();
    }
    if (jt < jt1) {
      cp_async_wait<0>();  // tile jt + 1
      fence_proxy_async_smem();
      __syncthreads();  // tile jt + 1 visible to all; every warp is past iteration jt - 1's wait
      if (jt + 2 <= jt1) load_kv(jt + 2);
      cp_async_commit();
      if (active(jt + 1)) issue_s(jt + 1);
    }
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

}  // namespace

bool wgmma_fwd_built() {
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
                    ", window = ", W, ", smem = ", bytes);
  };
  if (D == 64) launch(attn_fwd_wgmma_k<64>, WgCfg<64>::bytes());
  else launch(attn_fwd_wgmma_k<128>, WgCfg<128>::bytes());
}

}  // namespace hyscale::kernels::cuda::detail
