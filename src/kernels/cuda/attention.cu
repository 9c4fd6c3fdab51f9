// CUDA flash attention (kernels/cuda_attention.h): forward, backward, decode. SIMT kernels for
// every case: tiles staged in shared memory as fp32, fp32 FMA on CUDA cores, online softmax in the
// log2 domain (scores pre-multiplied by scale*log2(e), exp2f). Tensor-core paths for bf16 with
// D = Dv in {64, 128}, 16-byte aligned pointers and sm_80+ (mma.sync m16n8k16, fp32 accumulation):
// the forward (attn_fwd_mma_k) and the backward's dk/dv and dq kernels (attn_bwd_dkdv_mma_k,
// attn_bwd_dq_mma_k); any other case (f32, other head dims, unaligned pointers, sm < 80) takes the
// SIMT kernels, and decode and the backward's Dsum pre-pass are SIMT always. Under
// HYSCALE_ATTN_WGMMA=1 the bf16 forward and deterministic backward run attention_wgmma.cu's
// warpgroup-MMA kernels instead (compute capability 9.0, builds for sm_90a; see use_wgmma below).
//
// Register tiles: a CTA of 256 threads views itself as a 32 x 8 grid (ty = tid / 8, tx = tid % 8).
// An M x N fp32 tile is spread so that thread (ty, tx) holds rows ty + 32 i and columns tx + 8 j;
// the 8 threads of a row are 8 consecutive lanes of one warp, so row reductions are three xor
// shuffles. Shared-memory matrices have a row stride of (columns + 1) floats so that reading the
// same column of 4 consecutive rows (and 8 consecutive rows of a transposed operand) never conflicts.
//
// Visibility of key j for query i (both < T): i - W < j <= i, W = effective window (kernels/attention.h).
// Forward: one CTA per (64-query tile, head, batch); it visits only key tiles that intersect
//   [i0 - W + 1, i1 - 1] and masks per element. lse = ln(sum exp(scaled scores)) per row.
// Backward: Dsum = rowsum(dout * out) (fp32 scratch); then
//   dkdv kernel, one CTA per (key tile, KV head, batch): K, V tiles stay in shared memory; loops over
//     the query heads of the GQA group and the query tiles that can see the key tile, recomputes
//     P = exp2(s - lse log2 e), dP = dout v^T, dS = P (dP - Dsum); dV += P^T dout, dK += dS^T q in
//     registers; written once (times scale for dK).
//   dq kernel, one CTA per (query tile, head, batch): loops over its visible key tiles, dQ += dS k.
// Both are deterministic (fixed loop orders, no atomics); the tensor-core backward keeps this structure
// and has a second form under set_deterministic(false): dq by atomics from the dk/dv kernel (below).
// SIMT tiles (queries x keys) and dynamic shared memory per compile-time (D, Dv), from Cfg below:
//   (D, Dv)     forward          dq kernel          dk/dv kernel
//   (32, 32)    64x64  32.8 KB   64x64  49.8 KB     64x64  66.0 KB
//   (32, 64)    64x64  40.8 KB   64x64  65.8 KB     64x64  82.0 KB
//   (64, 64)    64x64  48.8 KB   64x64  81.8 KB     64x64  98.0 KB
//   (64, 128)   64x64  64.8 KB   64x32  81.5 KB     32x64  89.2 KB
//   (128, 128)  64x64  80.8 KB   64x32 105.5 KB     32x64 113.2 KB
//   (128, 256)  64x64 112.8 KB   32x32 100.9 KB     32x32 105.0 KB
// Tensor-core kernels (4 warps; a warp owns 32 query rows in the forward and the dq kernel, 16 keys
// in the dk/dv kernel; HYSCALE_ATTN_ROWS_PER_WARP=16 gives the forward 8 warps of 16 rows and the dq
// kernel 64-query tiles; row-major bf16 tiles in shared memory, MmaCfg, MmaDqCfg and MmaBwdCfg
// below; the streamed tiles have two cp.async stages: K and V in the forward and the dq kernel, Q,
// dO and the row statistics in the dk/dv kernel), same tile convention:
//   D = Dv   forward           dq kernel          dk/dv kernel
//   64       128x64  54.0 KB   128x64  72.0 KB    64x64  55.0 KB (atomic-dq form: 64.0 KB)
//   128      128x64 102.0 KB   128x32 102.0 KB    32x64  68.5 KB (atomic-dq form: 73.0 KB)
// decode: at most 52.1 KB.
// All fit sm_80's 163 KB opt-in limit; above 48 KB the launch sets cudaFuncAttributeMaxDynamicSharedMemorySize.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/attention_wgmma.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/mma_common.cuh"
#include "kernels/cuda_attention.h"

namespace hyscale::kernels::cuda {

namespace {
using namespace detail;
using namespace detail::attn;  // kThreads, kTY, kTX, row8_*, load_tile, tile_mma, visible, ... (attention_tiles.cuh)

__device__ __forceinline__ float* smem_f32() {
  extern __shared__ float4 hs_attn_smem[];
  return reinterpret_cast<float*>(hs_attn_smem);
}

// ------------------------------------------------------------------------------ tile configs
// Tile sizes and shared-memory carve-up (in floats) for compile-time head dims (kD, kDv).
template <int kD, int kDv> struct Cfg {
  static constexpr int kLQ = kD + 1, kLV = kDv + 1;
  static constexpr int kSum = kD + kDv;
  // forward: 64 queries x 64 keys; K and V tiles share one buffer
  static constexpr int kFBr = 64, kFBc = 64;
  static constexpr int kFLKV = (kD > kDv ? kD : kDv) + 1;
  static constexpr int kFQ = 0, kFKV = kFQ + kFBr * kLQ, kFP = kFKV + kFBc * kFLKV, kFEnd = kFP + kFBr * (kFBc + 1);
  // backward dq: query tile x key tile
  static constexpr int kQBr = kSum <= 256 ? 64 : 32, kQBc = kSum <= 128 ? 64 : 32;
  static constexpr int kQQ = 0, kQO = kQQ + kQBr * kLQ, kQK = kQO + kQBr * kLV, kQV = kQK + kQBc * kLQ,
                       kQS = kQV + kQBc * kLV, kQL = kQS + kQBr * (kQBc + 1), kQD = kQL + kQBr, kQEnd = kQD + kQBr;
  // backward dk/dv: key tile x query tile
  static constexpr int kKBc = kSum <= 256 ? 64 : 32, kKBr = kSum <= 128 ? 64 : 32;
  static constexpr int kKK = 0, kKV = kKK + kKBc * kLQ, kKQ = kKV + kKBc * kLV, kKO = kKQ + kKBr * kLQ,
                       kKP = kKO + kKBr * kLV, kKS = kKP + kKBr * (kKBc + 1), kKL = kKS + kKBr * (kKBc + 1),
                       kKD = kKL + kKBr, kKEnd = kKD + kKBr;
  static constexpr size_t fwd_bytes() { return sizeof(float) * kFEnd; }
  static constexpr size_t dq_bytes() { return sizeof(float) * kQEnd; }
  static constexpr size_t dkdv_bytes() { return sizeof(float) * kKEnd; }
};

// ------------------------------------------------------------------------------ forward
template <class T, int kD, int kDv>
__global__ void __launch_bounds__(kThreads)
    attn_fwd_k(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, T* __restrict__ out,
               float* __restrict__ lse, int64_t T_, int64_t H, int64_t Hk, int D, int Dv, float sl2, int64_t W) {
  using C = Cfg<kD, kDv>;
  constexpr int Br = C::kFBr, Bc = C::kFBc, MI = Br / kTY, NJ = Bc / kTX, OJ = kDv / kTX, LP = Bc + 1;
  float* sm = smem_f32();
  float* Qs = sm + C::kFQ;
  float* KVs = sm + C::kFKV;  // the K tile (stride kD + 1), then the V tile (stride kDv + 1)
  float* Ps = sm + C::kFP;
  const int tid = threadIdx.x, ty = tid / kTX, tx = tid % kTX;
  const int64_t b = blockIdx.z, h = blockIdx.y, i0 = int64_t(blockIdx.x) * Br;
  const int64_t g = h / (H / Hk);
  const int64_t i_end = i0 + Br < T_ ? i0 + Br : T_;  // i0 < T_
  load_tile<T, Br, kD>(Qs, q + ((b * T_ + i0) * H + h) * D, H * D, int(i_end - i0), D);

  float o[MI][OJ], m[MI], l[MI];
#pragma unroll
  for (int i = 0; i < MI; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int j = 0; j < OJ; ++j) o[i][j] = 0.0f;
  }
  const int64_t lo = i0 - W + 1 > 0 ? i0 - W + 1 : 0;  // first key any row of the tile sees
  for (int64_t jt = lo / Bc; jt <= (i_end - 1) / Bc; ++jt) {
    const int64_t j0 = jt * Bc;
    const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
    __syncthreads();  // the previous tile's V and P are consumed
    load_tile<T, Bc, kD>(KVs, k + ((b * T_ + j0) * Hk + g) * D, Hk * D, nk, D);
    __syncthreads();
    float s[MI][NJ];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j) s[i][j] = 0.0f;
    tile_mma<MI, NJ, kD>(s, Qs, C::kLQ, 1, KVs, 1, C::kLQ, ty, tx);
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
      const float base = mnew == -INFINITY ? 0.0f : mnew;  // nothing visible yet: avoid -inf - -inf
      const float alpha = exp2f(m[i] - base);               // 0 on the first visible tile
      float rs = 0.0f;
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        const float p = exp2f(s[i][j] - base);  // masked: exp2(-inf) = 0
        rs += p;
        Ps[r * LP + tx + kTX * j] = p;
      }
      rs = row8_sum(rs);
      l[i] = l[i] * alpha + rs;
      m[i] = mnew;
#pragma unroll
      for (int j = 0; j < OJ; ++j) o[i][j] *= alpha;
    }
    __syncthreads();  // K consumed, P written
    load_tile<T, Bc, kDv>(KVs, v + ((b * T_ + j0) * Hk + g) * Dv, Hk * Dv, nk, Dv);
    __syncthreads();
    tile_mma<MI, OJ, Bc>(o, Ps, LP, 1, KVs, C::kLV, 1, ty, tx);
  }
#pragma unroll
  for (int i = 0; i < MI; ++i) {
    const int64_t qi = i0 + ty + kTY * i;
    if (qi >= T_) continue;
    const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;  // a row with no visible key writes zeros
    T* orow = out + ((b * T_ + qi) * H + h) * Dv;
#pragma unroll
    for (int j = 0; j < OJ; ++j) {
      const int d = tx + kTX * j;
      if (d < Dv) st(orow, d, o[i][j] * inv);
    }
    if (tx == 0) lse[(b * H + h) * T_ + qi] = l[i] > 0.0f ? (m[i] + log2f(l[i])) * kLn2 : -INFINITY;
  }
}


// ------------------------------------------------------------------------------ forward, tensor cores
// bf16 with D = Dv in {64, 128} and 16-byte aligned q, k, v, out, on sm_80+. A CTA takes 128 queries
// and walks the 64-key tiles that its rows can see; the largest query tiles (the most keys under a
// causal mask) are launched first. Each warp owns 16 kMT consecutive rows (kMT m-tiles of 16): 8
// warps of 16 rows (kMT = 1) or 4 warps of 32 rows (kMT = 2, the default).
//   - Q, K and V stay row-major bf16 in shared memory (row stride D + 8); K and V have two stages: the
//     cp.async copy of key tile j + 1 is in flight while tile j is computed (one barrier per tile).
//   - S = Q K^T: A fragments of Q and B fragments of K by ldmatrix.x4 (Q is re-read per tile rather
//     than kept in registers, to leave the registers to O and S). S lands in the accumulator
//     layout; the online softmax runs on those registers (row reductions over the 4 lanes of a group).
//   - O += P V: P is re-packed to bf16 A fragments in registers (flash-attention-2's register reuse),
//     the B fragments of V come from ldmatrix.x4.trans of the row-major tile. P is rounded to bf16
//     for P V (as in FA2); the row sums l use the fp32 P.
//   - Every K or V fragment loaded from shared memory feeds 2 kMT mma: at kMT = 2 a warp issues
//     80 ldmatrix per 256 mma and key tile (0.31 per mma) against 72 per 128 (0.56) at kMT = 1,
//     where shared-memory bandwidth, not the tensor cores, bounded the kernel (an SM moves 128 B
//     of shared memory per clock, one ldmatrix.x4 is 512 B). kMT = 2 needs ~240 registers per
//     thread (O alone is 2 x 16 x 4 floats at D 128): 4 warps a CTA, two CTAs an H100 SM. An A100
//     SM (164 KB of shared memory) holds one 102 KB CTA at D 128, i.e. 4 warps where kMT = 1 had 8:
//     untested there; HYSCALE_ATTN_ROWS_PER_WARP=16 is the way back if it is slower.
//   - Per warp and tile: a tile with no visible key for the warp's rows is skipped, one that is
//     visible for all of them (not on the diagonal, not on the window's edge) is not masked.
// HYSCALE_ATTN_ROWS_PER_WARP=16 selects kMT = 1 here and in the dq kernel (for measuring one against
// the other).
constexpr int kMmaThreads = 128;  // the tensor-core backward kernels
constexpr int kFwdBr = 128;       // queries per CTA of the tensor-core forward
template <int kMT> __host__ __device__ constexpr int fwd_threads() { return 32 * (kFwdBr / (16 * kMT)); }
template <int kD> struct MmaCfg {
  static constexpr int kBr = kFwdBr, kBc = 64;
  static constexpr int kL = kD + 8;  // smem row stride of every tile, in bf16
  static constexpr int kQ = 0, kK = kQ + kBr * kL, kV = kK + 2 * kBc * kL, kEnd = kV + 2 * kBc * kL;  // K, V: 2 stages
  static constexpr size_t bytes() { return sizeof(uint16_t) * kEnd; }
};

template <int kD, int kMT>
__global__ void __launch_bounds__(fwd_threads<kMT>(), 2)
    attn_fwd_mma_k(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                   bf16* __restrict__ out, float* __restrict__ lse, int64_t T_, int64_t H, int64_t Hk, float sl2,
                   int64_t W) {
  using C = MmaCfg<kD>;
  constexpr int kThr = fwd_threads<kMT>();
  constexpr int Br = C::kBr, Bc = C::kBc, L = C::kL, KS = kD / 16, NT = Bc / 8, OT = kD / 8, RW = 16 * kMT;
  uint16_t* sm = reinterpret_cast<uint16_t*>(smem_f32());
  uint16_t *Qs = sm + C::kQ, *Ks = sm + C::kK, *Vs = sm + C::kV;  // stage st of K / V: + st Bc L
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  const int64_t b = blockIdx.z, h = blockIdx.y, i0 = int64_t(gridDim.x - 1 - blockIdx.x) * Br;
  const int64_t g = h / (H / Hk);
  const int64_t i_end = i0 + Br < T_ ? i0 + Br : T_;
  const int64_t lo = i0 - W + 1 > 0 ? i0 - W + 1 : 0;  // first key any row of the tile sees
  const int jt0 = int(lo / Bc), jt1 = int((i_end - 1) / Bc);  // key tiles
  const int64_t r_lo = i0 + warp * RW, r_hi = r_lo + RW - 1;  // the warp's rows
  const bf16* kb = k + (b * T_ * Hk + g) * kD;  // key j of KV head g: kb + j Hk kD (the same for v)
  const bf16* vb = v + (b * T_ * Hk + g) * kD;
  auto load_kv = [&](int jt, int st) {
    const int64_t j0 = int64_t(jt) * Bc;
    const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
    cp_async_tile<Bc, kD, kThr>(Ks + st * Bc * L, L, kb + j0 * Hk * kD, Hk * kD, nk);
    cp_async_tile<Bc, kD, kThr>(Vs + st * Bc * L, L, vb + j0 * Hk * kD, Hk * kD, nk);
  };
  cp_async_tile<Br, kD, kThr>(Qs, L, q + ((b * T_ + i0) * H + h) * kD, H * kD, int(i_end - i0));
  load_kv(jt0, 0);
  cp_async_commit();
  // Per-lane ldmatrix offsets (see the helpers' comment): Q's A fragments (m-tile 0 of the warp's
  // rows; m-tile mt at + 16 mt L), K's B fragments (two key n-tiles); V's come in mma_acc_tiles.
  const int q_off = (warp * RW + (lane & 15)) * L + (lane >> 4) * 8;
  const int k_off = ((lane >> 4) * 8 + (lane & 7)) * L + ((lane >> 3) & 1) * 8;

  float o[kMT][OT][4], m[kMT][2], l[kMT][2];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
#pragma unroll
    for (int t = 0; t < OT; ++t) o[mt][t][0] = o[mt][t][1] = o[mt][t][2] = o[mt][t][3] = 0.0f;
  }
  key_tile_pipeline(jt0, jt1, load_kv, [&](int jt, int st) {
    const int64_t j0 = int64_t(jt) * Bc;
    bool full;  // warp-uniform: the warp's rows see no key of the tile (skip it), or every key (no mask)
    if (!rows_see_tile(r_lo, r_hi, j0, Bc, T_, W, full)) return;
    const uint16_t* Kst = Ks + st * Bc * L;
    const uint16_t* Vst = Vs + st * Bc * L;
    float s[kMT][NT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll(3 - kMT)
    for (int kk = 0; kk < KS; ++kk) {
      uint32_t qa[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) ldsm_x4(qa[mt], Qs + q_off + mt * 16 * L + kk * 16);
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t kf[4];
        ldsm_x4(kf, Kst + k_off + np * 16 * L + kk * 16);
        const uint32_t b0[2] = {kf[0], kf[1]}, b1[2] = {kf[2], kf[3]};
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          mma_bf16_16816(s[mt][2 * np], qa[mt], b0);
          mma_bf16_16816(s[mt][2 * np + 1], qa[mt], b1);
        }
      }
    }
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {  // row gid (hh = 0) and gid + 8 (hh = 1) of m-tile mt
        int c_lo, c_hi;
        visible_cols<Bc>(r_lo + 16 * mt + gid + 8 * hh, j0, T_, W, c_lo, c_hi);
        const float alpha = softmax_row_step<NT>([&](int nt, int e) -> float& { return s[mt][nt][2 * hh + e]; },
                                                 m[mt][hh], l[mt][hh], full, c_lo, c_hi, sl2, tig);
#pragma unroll
        for (int t = 0; t < OT; ++t) {
          o[mt][t][2 * hh] *= alpha;
          o[mt][t][2 * hh + 1] *= alpha;
        }
      }
    mma_acc_tiles<kMT, OT, Bc>(o, s, Vst, L, lane);  // O += P V
  });
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int64_t qi = r_lo + 16 * mt + gid + 8 * hh;
      if (qi >= T_) continue;
      const float inv = l[mt][hh] > 0.0f ? 1.0f / l[mt][hh] : 0.0f;  // a row with no visible key writes zeros
      bf16* orow = out + ((b * T_ + qi) * H + h) * kD;
#pragma unroll
      for (int t = 0; t < OT; ++t)
        *reinterpret_cast<uint32_t*>(orow + t * 8 + tig * 2) =
            pack_bf16x2(o[mt][t][2 * hh] * inv, o[mt][t][2 * hh + 1] * inv);
      if (tig == 0)
        lse[(b * H + h) * T_ + qi] = l[mt][hh] > 0.0f ? (m[mt][hh] + log2f(l[mt][hh])) * kLn2 : -INFINITY;
    }
}
// ------------------------------------------------------------------------------ backward
// dsum[b, h, t] = sum_d dout[b, t, h, d] out[b, t, h, d]; one warp per row.
template <class T>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dsum_k(const T* __restrict__ out, const T* __restrict__ dout, float* __restrict__ dsum, int64_t rows,
                    int64_t T_, int64_t H, int Dv) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = int64_t(gridDim.x) * (kThreads / 32);
  for (int64_t row = int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32; row < rows; row += nwarps) {
    const T* o = out + row * Dv;
    const T* d = dout + row * Dv;
    float acc = 0.0f;
    for (int c = lane; c < Dv; c += 32) acc = fmaf(ld(o, c), ld(d, c), acc);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) {  // row = (b T + t) H + h
      const int64_t h = row % H, t = (row / H) % T_, b = row / (H * T_);
      dsum[(b * H + h) * T_ + t] = acc;
    }
  }
}

// Loads the per-row statistics of query rows i0 .. i0 + R - 1 of head h: lse2 = lse log2(e)
// (+inf for rows past T or rows with no visible key, so that exp2(s - lse2) = 0) and Dsum.
template <int R>
__device__ __forceinline__ void load_row_stats(float* lse2s, float* dsums, const float* __restrict__ lse,
                                               const float* __restrict__ dsum, int64_t bh_off, int64_t i0,
                                               int64_t T_) {
  for (int r = threadIdx.x; r < R; r += kThreads) {
    const int64_t i = i0 + r;
    float L = INFINITY, Ds = 0.0f;
    if (i < T_) {
      const float x = lse[bh_off + i];
      L = x == -INFINITY ? INFINITY : x * kLog2e;
      Ds = dsum[bh_off + i];
    }
    lse2s[r] = L;
    dsums[r] = Ds;
  }
}

template <class T, int kD, int kDv>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dq_k(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                  const T* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ dsum,
                  T* __restrict__ dq, int64_t T_, int64_t H, int64_t Hk, int D, int Dv, float sl2, float scale,
                  int64_t W) {
  using C = Cfg<kD, kDv>;
  constexpr int Br = C::kQBr, Bc = C::kQBc, MI = Br / kTY, NJ = Bc / kTX, QJ = kD / kTX, LS = Bc + 1;
  float* sm = smem_f32();
  float *Qs = sm + C::kQQ, *dOs = sm + C::kQO, *Ks = sm + C::kQK, *Vs = sm + C::kQV, *dSs = sm + C::kQS;
  float *lse2s = sm + C::kQL, *dsums = sm + C::kQD;
  const int tid = threadIdx.x, ty = tid / kTX, tx = tid % kTX;
  const int64_t b = blockIdx.z, h = blockIdx.y, i0 = int64_t(blockIdx.x) * Br;
  const int64_t g = h / (H / Hk);
  const int64_t i_end = i0 + Br < T_ ? i0 + Br : T_;
  load_tile<T, Br, kD>(Qs, q + ((b * T_ + i0) * H + h) * D, H * D, int(i_end - i0), D);
  load_tile<T, Br, kDv>(dOs, dout + ((b * T_ + i0) * H + h) * Dv, H * Dv, int(i_end - i0), Dv);
  load_row_stats<Br>(lse2s, dsums, lse, dsum, (b * H + h) * T_, i0, T_);

  float dqa[MI][QJ];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < QJ; ++j) dqa[i][j] = 0.0f;
  const int64_t lo = i0 - W + 1 > 0 ? i0 - W + 1 : 0;
  for (int64_t jt = lo / Bc; jt <= (i_end - 1) / Bc; ++jt) {
    const int64_t j0 = jt * Bc;
    const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
    __syncthreads();  // the previous key tile and dS are consumed
    load_tile<T, Bc, kD>(Ks, k + ((b * T_ + j0) * Hk + g) * D, Hk * D, nk, D);
    load_tile<T, Bc, kDv>(Vs, v + ((b * T_ + j0) * Hk + g) * Dv, Hk * Dv, nk, Dv);
    __syncthreads();
    float s[MI][NJ], dp[MI][NJ];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j) s[i][j] = dp[i][j] = 0.0f;
    tile_mma<MI, NJ, kD>(s, Qs, C::kLQ, 1, Ks, 1, C::kLQ, ty, tx);    // q k^T
    tile_mma<MI, NJ, kDv>(dp, dOs, C::kLV, 1, Vs, 1, C::kLV, ty, tx);  // dout v^T
#pragma unroll
    for (int i = 0; i < MI; ++i) {
      const int r = ty + kTY * i;
      const float L = lse2s[r], Ds = dsums[r];
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        const int c = tx + kTX * j;
        const float p = visible(i0 + r, j0 + c, T_, W) ? exp2f(s[i][j] * sl2 - L) : 0.0f;
        dSs[r * LS + c] = p * (dp[i][j] - Ds);
      }
    }
    __syncthreads();
    tile_mma<MI, QJ, Bc>(dqa, dSs, LS, 1, Ks, C::kLQ, 1, ty, tx);  // dS k
  }
#pragma unroll
  for (int i = 0; i < MI; ++i) {
    const int64_t qi = i0 + ty + kTY * i;
    if (qi >= T_) continue;
    T* row = dq + ((b * T_ + qi) * H + h) * D;
#pragma unroll
    for (int j = 0; j < QJ; ++j) {
      const int d = tx + kTX * j;
      if (d < D) st(row, d, dqa[i][j] * scale);
    }
  }
}

template <class T, int kD, int kDv>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dkdv_k(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                    const T* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ dsum,
                    T* __restrict__ dk, T* __restrict__ dv, int64_t T_, int64_t H, int64_t Hk, int D, int Dv,
                    float sl2, float scale, int64_t W) {
  using C = Cfg<kD, kDv>;
  constexpr int Bc = C::kKBc, Br = C::kKBr, MI = Br / kTY, NJ = Bc / kTX, KI = Bc / kTY, DJ = kD / kTX,
                VJ = kDv / kTX, LS = Bc + 1;
  float* sm = smem_f32();
  float *Ks = sm + C::kKK, *Vs = sm + C::kKV, *Qs = sm + C::kKQ, *dOs = sm + C::kKO, *Ps = sm + C::kKP,
        *dSs = sm + C::kKS, *lse2s = sm + C::kKL, *dsums = sm + C::kKD;
  const int tid = threadIdx.x, ty = tid / kTX, tx = tid % kTX;
  const int64_t b = blockIdx.z, g = blockIdx.y, j0 = int64_t(blockIdx.x) * Bc;
  const int64_t rep = H / Hk;
  const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
  load_tile<T, Bc, kD>(Ks, k + ((b * T_ + j0) * Hk + g) * D, Hk * D, nk, D);
  load_tile<T, Bc, kDv>(Vs, v + ((b * T_ + j0) * Hk + g) * Dv, Hk * Dv, nk, Dv);

  float dka[KI][DJ], dva[KI][VJ];
#pragma unroll
  for (int i = 0; i < KI; ++i) {
#pragma unroll
    for (int j = 0; j < DJ; ++j) dka[i][j] = 0.0f;
#pragma unroll
    for (int j = 0; j < VJ; ++j) dva[i][j] = 0.0f;
  }
  // Queries that see some key of the tile: j0 <= i <= j0 + nk - 1 + W - 1, i < T.
  const int64_t i_hi = j0 + nk - 1 + W < T_ ? j0 + nk - 1 + W : T_;  // exclusive
  for (int64_t hh = 0; hh < rep; ++hh) {
    const int64_t h = g * rep + hh;
    for (int64_t it = j0 / Br; it <= (i_hi - 1) / Br; ++it) {
      const int64_t i0 = it * Br;
      const int nq = int(T_ - i0 < Br ? T_ - i0 : Br);
      __syncthreads();  // the previous query tile, P and dS are consumed
      load_tile<T, Br, kD>(Qs, q + ((b * T_ + i0) * H + h) * D, H * D, nq, D);
      load_tile<T, Br, kDv>(dOs, dout + ((b * T_ + i0) * H + h) * Dv, H * Dv, nq, Dv);
      load_row_stats<Br>(lse2s, dsums, lse, dsum, (b * H + h) * T_, i0, T_);
      __syncthreads();
      float s[MI][NJ], dp[MI][NJ];
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NJ; ++j) s[i][j] = dp[i][j] = 0.0f;
      tile_mma<MI, NJ, kD>(s, Qs, C::kLQ, 1, Ks, 1, C::kLQ, ty, tx);    // q k^T
      tile_mma<MI, NJ, kDv>(dp, dOs, C::kLV, 1, Vs, 1, C::kLV, ty, tx);  // dout v^T
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const int r = ty + kTY * i;
        const float L = lse2s[r], Ds = dsums[r];
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
          const int c = tx + kTX * j;
          const float p = visible(i0 + r, j0 + c, T_, W) ? exp2f(s[i][j] * sl2 - L) : 0.0f;
          Ps[r * LS + c] = p;
          dSs[r * LS + c] = p * (dp[i][j] - Ds);
        }
      }
      __syncthreads();
      tile_mma<KI, VJ, Br>(dva, Ps, 1, LS, dOs, C::kLV, 1, ty, tx);  // P^T dout
      tile_mma<KI, DJ, Br>(dka, dSs, 1, LS, Qs, C::kLQ, 1, ty, tx);  // dS^T q
    }
  }
#pragma unroll
  for (int i = 0; i < KI; ++i) {
    const int64_t kj = j0 + ty + kTY * i;
    if (kj >= T_) continue;
    T* krow = dk + ((b * T_ + kj) * Hk + g) * D;
    T* vrow = dv + ((b * T_ + kj) * Hk + g) * Dv;
#pragma unroll
    for (int j = 0; j < DJ; ++j) {
      const int d = tx + kTX * j;
      if (d < D) st(krow, d, dka[i][j] * scale);
    }
#pragma unroll
    for (int j = 0; j < VJ; ++j) {
      const int d = tx + kTX * j;
      if (d < Dv) st(vrow, d, dva[i][j]);
    }
  }
}

// ------------------------------------------------------------------------------ backward, tensor cores
// bf16 with D = Dv in {64, 128}, 16-byte aligned pointers, sm_80+ (the forward's conditions): the
// same two-kernel structure as the SIMT backward (same Dsum pre-pass, same loop orders, no atomics),
// with every product on mma.sync m16n8k16 (bf16 inputs, fp32 accumulation). 4 warps per CTA.
// Shared-memory operands are bf16, row-major, with row strides padded by 8 elements; every fragment
// comes from ldmatrix.x4 (.trans where the reduction index runs along the rows of the B operand, see
// the tensor-core helpers). P and dS are recomputed in fp32 in the accumulator layout and re-packed
// to bf16 A fragments in registers (as P in the forward).
// The streamed tiles have two cp.async stages, as K and V in the forward: the copy of tile n + 1 is
// in flight while tile n is computed, with one barrier per tile (wait for tile n; barrier: tile n is
// visible to all threads and the other stage, tile n - 1, is consumed; then tile n + 1 is issued into
// it). Per warp and tile, as in the forward: a tile with no visible (query, key) pair for the warp's
// 16 rows is skipped, one visible throughout is not masked; only diagonal, window-edge and
// past-T tiles test visibility per element (in int tile coordinates).
//   dq kernel, one CTA per (64 kMT queries, head, batch; the last query tiles first), warp w owns
//     query rows 16 kMT w .. 16 kMT (w + 1) - 1 (kMT = 2 by default, 1 under the forward's
//     HYSCALE_ATTN_ROWS_PER_WARP=16, see MmaDqCfg); per visible key tile (Bc keys): S = Q K^T,
//     dP = dO V^T, dS = P (dP - Dsum), dQ += dS K. smem: Q, dO [64 kMT][D + 8], K, V [2 stages][Bc][D + 8];
//     Bc = 64 for D = 64, 32 for D = 128: 54 / 68 KB at kMT = 1, 72 / 102 KB at kMT = 2.
//   dk/dv kernel, one CTA per (64 keys, query head, batch), warp w owns keys 16 w .. 16 w + 15; per
//     visible query tile (Br queries, the next one prefetched): S^T = K Q^T, dP^T = V dO^T, P^T,
//     dS^T, then dV += P^T dO, dK += dS^T Q. Under
//     GQA the rep query heads of a KV head are rep CTAs writing fp32 partial dK, dV, which a second
//     kernel sums in head order (deterministic); without GQA the CTA writes dK, dV directly. The
//     CTAs of key tile 0 (the most query tiles under a causal mask) are launched first. smem: K, V [64][D + 8], Q, dO [2 stages][Br][D + 8], lse2 and Dsum
//     [2 stages][Br] (fp32). Br = 64 for D = 64 (55 KB), 32 for D = 128 (registers; 68.5 KB).
//     The statistics of the next query tile are read from global memory into one register per
//     thread when its copy is issued and stored to their stage after the current tile's compute
//     (the next barrier publishes them), so their latency is hidden too.
//   atomic-dq form (kAtomicDq, under set_deterministic(false)), flash-attention-2's: per query tile
//     the warps also store dS (bf16) to shared memory [Br][64 + 8] (9 KB more at D 64, 4.5 at D 128); after a
//     second barrier warp w computes columns w D / 4 .. of dQ_tile = dS K (A fragments of dS, B
//     fragments of the resident K by ldmatrix.trans, 32 fp32 accumulators) and adds them into an
//     fp32 [B, T, H, D] accumulator with red.global.add; a last pass writes dq = scale acc in bf16.
//     Per visible pair that is 5 products of length D instead of 7 (the dq kernel recomputes S and
//     dP), for Br x D atomics per CTA and query tile and the accumulator's zeroing and conversion.
// Occupancy: 3 CTAs per SM by registers (launch bounds) except dk/dv at D = 128 and dq at kMT = 2
// (2); by shared memory 3 fit an H100 SM (228 KB) and 2 an A100 SM (164 KB, 1 KB reserved per CTA)
// (dq at kMT = 2, D = 128: 2 on an H100, 1 on an A100).
template <int kD> struct MmaBwdCfg {
  static constexpr int kL = kD + 8;  // row stride (bf16) of the row-major tiles
  // dk/dv kernel: K, V, then Q, dO and the statistics with two stages each
  static constexpr int kKBc = 64, kKBr = kD <= 64 ? 64 : 32;
  static constexpr int kKK = 0, kKV = kKK + kKBc * kL, kKQ = kKV + kKBc * kL, kKO = kKQ + 2 * kKBr * kL,
                       kKStat = kKO + 2 * kKBr * kL,
                       kKEnd = kKStat + 2 * 2 * 2 * kKBr;  // [2 stages][lse2, Dsum][kKBr] fp32 (2 bf16 slots each)
  // the atomic-dq form adds the tile's dS [kKBr queries][kKBc keys] (bf16, row stride kLdS)
  static constexpr int kLdS = kKBc + 8, kKdS = kKEnd, kKEndA = kKdS + kKBr * kLdS;
  static constexpr size_t dkdv_bytes(bool atomic_dq = false) { return sizeof(uint16_t) * (atomic_dq ? kKEndA : kKEnd); }
};

// The dq kernel's tiles: 4 warps of 16 kMT query rows (kMT m-tiles each, as in the forward: every
// K or V fragment read from shared memory feeds 2 kMT mma), Bc keys per streamed tile.
template <int kD, int kMT> struct MmaDqCfg {
  static constexpr int kL = kD + 8;
  static constexpr int kBr = 64 * kMT, kBc = kD <= 64 ? 64 : 32;
  static constexpr int kQ = 0, kO = kQ + kBr * kL, kK = kO + kBr * kL, kV = kK + 2 * kBc * kL, kEnd = kV + 2 * kBc * kL;
  static constexpr size_t bytes() { return sizeof(uint16_t) * kEnd; }
};

template <int kD, int kMT>
__global__ void __launch_bounds__(kMmaThreads, kMT == 1 ? 3 : 2)  // registers for 3 / 2 CTAs per SM
    attn_bwd_dq_mma_k(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                      const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ dsum,
                      bf16* __restrict__ dq, int64_t T_, int64_t H, int64_t Hk, float sl2, float scale, int64_t W) {
  using C = MmaDqCfg<kD, kMT>;
  constexpr int Br = C::kBr, Bc = C::kBc, NT = Bc / 8, OT = kD / 8, L = C::kL, KS = kD / 16, RW = 16 * kMT;
  uint16_t* sm = reinterpret_cast<uint16_t*>(smem_f32());
  uint16_t *Qs = sm + C::kQ, *dOs = sm + C::kO, *Ks = sm + C::kK, *Vs = sm + C::kV;  // stage st of K / V: + st Bc L
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  // The last query tiles (the most key tiles under a causal mask) are launched first, as in the forward.
  const int64_t b = blockIdx.z, h = blockIdx.y, i0 = int64_t(gridDim.x - 1 - blockIdx.x) * Br;
  const int64_t g = h / (H / Hk);
  const int64_t i_end = i0 + Br < T_ ? i0 + Br : T_;
  const int64_t lo = i0 - W + 1 > 0 ? i0 - W + 1 : 0;          // first key any row of the tile sees
  const int jt0 = int(lo / Bc), jt1 = int((i_end - 1) / Bc);  // key tiles
  const int64_t r_lo = i0 + warp * RW, r_hi = r_lo + RW - 1;  // the warp's rows
  const bf16* kb = k + (b * T_ * Hk + g) * kD;  // key j of KV head g: kb + j Hk kD (the same for v)
  const bf16* vb = v + (b * T_ * Hk + g) * kD;
  auto load_kv = [&](int jt, int st) {
    const int64_t j0 = int64_t(jt) * Bc;
    const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
    cp_async_tile<Bc, kD, kMmaThreads>(Ks + st * Bc * L, L, kb + j0 * Hk * kD, Hk * kD, nk);
    cp_async_tile<Bc, kD, kMmaThreads>(Vs + st * Bc * L, L, vb + j0 * Hk * kD, Hk * kD, nk);
  };
  const int nq = int(i_end - i0);
  cp_async_tile<Br, kD, kMmaThreads>(Qs, L, q + ((b * T_ + i0) * H + h) * kD, H * kD, nq);
  cp_async_tile<Br, kD, kMmaThreads>(dOs, L, dout + ((b * T_ + i0) * H + h) * kD, H * kD, nq);
  load_kv(jt0, 0);
  cp_async_commit();
  // Rows 16 mt + gid (+ 8) of the warp: lse log2(e) (+inf: no visible key / past T), Dsum.
  float L2[kMT][2], Ds[kMT][2];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int64_t i = r_lo + 16 * mt + gid + 8 * hh;
      L2[mt][hh] = INFINITY;
      Ds[mt][hh] = 0.0f;
      if (i < T_) {
        const float x = lse[(b * H + h) * T_ + i];
        L2[mt][hh] = x == -INFINITY ? INFINITY : x * kLog2e;
        Ds[mt][hh] = dsum[(b * H + h) * T_ + i];
      }
    }
  // Per-lane ldmatrix offsets: A fragments of the warp's rows (m-tile mt at + 16 mt L), B fragments of
  // K / V rows (two key n-tiles); those of K for dS K come in mma_acc_tiles.
  const int a_off = (warp * RW + (lane & 15)) * L + (lane >> 4) * 8;
  const int b_off = ((lane >> 4) * 8 + (lane & 7)) * L + ((lane >> 3) & 1) * 8;
  float dqa[kMT][OT][4];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int t = 0; t < OT; ++t) dqa[mt][t][0] = dqa[mt][t][1] = dqa[mt][t][2] = dqa[mt][t][3] = 0.0f;
  key_tile_pipeline(jt0, jt1, load_kv, [&](int jt, int st) {
    const int64_t j0 = int64_t(jt) * Bc;
    bool full;  // as in the forward (rows past T have L2 = +inf, so P = 0 there without a mask)
    if (!rows_see_tile(r_lo, r_hi, j0, Bc, T_, W, full)) return;
    const uint16_t* Kst = Ks + st * Bc * L;
    const uint16_t* Vst = Vs + st * Bc * L;
    float s[kMT][NT][4], dp[kMT][NT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = dp[mt][nt][e] = 0.0f;
#pragma unroll(3 - kMT)
    for (int kk = 0; kk < KS; ++kk) {  // S = Q K^T and dP = dO V^T, sharing the k loop
      uint32_t qa[kMT][4], oa[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        ldsm_x4(qa[mt], Qs + a_off + mt * 16 * L + kk * 16);
        ldsm_x4(oa[mt], dOs + a_off + mt * 16 * L + kk * 16);
      }
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t kf[4], vf[4];
        ldsm_x4(kf, Kst + b_off + np * 16 * L + kk * 16);
        ldsm_x4(vf, Vst + b_off + np * 16 * L + kk * 16);
        const uint32_t k0[2] = {kf[0], kf[1]}, k1[2] = {kf[2], kf[3]}, v0[2] = {vf[0], vf[1]}, v1[2] = {vf[2], vf[3]};
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          mma_bf16_16816(s[mt][2 * np], qa[mt], k0);
          mma_bf16_16816(s[mt][2 * np + 1], qa[mt], k1);
          mma_bf16_16816(dp[mt][2 * np], oa[mt], v0);
          mma_bf16_16816(dp[mt][2 * np + 1], oa[mt], v1);
        }
      }
    }
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        int c_lo, c_hi;
        visible_cols<Bc>(r_lo + 16 * mt + gid + 8 * hh, j0, T_, W, c_lo, c_hi);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int c = nt * 8 + tig * 2 + e;
            float& x = s[mt][nt][2 * hh + e];
            const float p = full || (c > c_lo && c <= c_hi) ? exp2f(x * sl2 - L2[mt][hh]) : 0.0f;
            x = p * (dp[mt][nt][2 * hh + e] - Ds[mt][hh]);  // dS
          }
      }
    mma_acc_tiles<kMT, OT, Bc>(dqa, s, Kst, L, lane);  // dQ += dS K
  });
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int64_t i = r_lo + 16 * mt + gid + 8 * hh;
      if (i >= T_) continue;
      bf16* row = dq + ((b * T_ + i) * H + h) * kD;
#pragma unroll
      for (int t = 0; t < OT; ++t)
        *reinterpret_cast<uint32_t*>(row + t * 8 + tig * 2) =
            pack_bf16x2(dqa[mt][t][2 * hh] * scale, dqa[mt][t][2 * hh + 1] * scale);
    }
}

template <int kD, bool kAtomicDq>
__global__ void __launch_bounds__(kMmaThreads, kD <= 64 ? 3 : 2)  // registers for 3 / 2 CTAs per SM
    attn_bwd_dkdv_mma_k(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                        const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ dsum,
                        bf16* __restrict__ dk, bf16* __restrict__ dv, float* __restrict__ pk, float* __restrict__ pv,
                        float* __restrict__ dqacc, int64_t T_, int64_t H, int64_t Hk, float sl2, float scale,
                        int64_t W) {
  using C = MmaBwdCfg<kD>;
  constexpr int Bc = C::kKBc, Br = C::kKBr, NT = Br / 8, OT = kD / 8, L = C::kL;
  static_assert(2 * Br <= kMmaThreads, "one statistic per thread");
  uint16_t* sm = reinterpret_cast<uint16_t*>(smem_f32());
  uint16_t *Ks = sm + C::kKK, *Vs = sm + C::kKV, *Qs = sm + C::kKQ, *dOs = sm + C::kKO;  // stage st of Q / dO: + st Br L
  float* stats = reinterpret_cast<float*>(sm + C::kKStat);  // stage st: lse2 [Br], then Dsum [Br], at + 2 st Br
  uint16_t* dSs = sm + C::kKdS;  // kAtomicDq: dS of the current query tile [Br][LdS]
  constexpr int LdS = C::kLdS;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  // blockIdx.x = query head h (of KV head g; its index in the group, hq, picks its partial sums),
  // blockIdx.y = key tile: all heads of key tile 0 (the most query tiles under a causal mask) first.
  const int64_t b = blockIdx.z, h = blockIdx.x, rep = H / Hk, g = h / rep, hq = h % rep;
  const int64_t j0 = int64_t(blockIdx.y) * Bc;
  const int nk = int(T_ - j0 < Bc ? T_ - j0 : Bc);
  const int64_t jw = j0 + warp * 16;  // the warp's keys jw .. jw + 15
  const int64_t i_hi = j0 + nk - 1 + W < T_ ? j0 + nk - 1 + W : T_;  // exclusive end of the queries that see the tile
  const int it0 = int(j0 / Br), nit = int((i_hi - 1) / Br) - it0 + 1;  // query tiles it0 .. it0 + nit - 1 per head
  // load_q issues the copies of Q and dO of query tile it0 + it into stage st (no commit) and returns
  // this thread's statistic, raw: thread r < Br the lse of query row r (-inf past T), thread Br + r the
  // Dsum of row r (0 past T); stat_store converts and stores it once the current tile is computed.
  auto load_q = [&](int it, int st) -> float {
    const int64_t i0 = int64_t(it0 + it) * Br;
    const int nq = int(T_ - i0 < Br ? T_ - i0 : Br);
    cp_async_tile<Br, kD, kMmaThreads>(Qs + st * Br * L, L, q + ((b * T_ + i0) * H + h) * kD, H * kD, nq);
    cp_async_tile<Br, kD, kMmaThreads>(dOs + st * Br * L, L, dout + ((b * T_ + i0) * H + h) * kD, H * kD, nq);
    return row_stat_load<Br>(lse, dsum, (b * H + h) * T_, i0, T_, tid);
  };
  auto stat_store = [&](float x, int st) { row_stat_store<Br>(stats + st * 2 * Br, x, tid); };
  cp_async_tile<Bc, kD, kMmaThreads>(Ks, L, k + ((b * T_ + j0) * Hk + g) * kD, Hk * kD, nk);
  cp_async_tile<Bc, kD, kMmaThreads>(Vs, L, v + ((b * T_ + j0) * Hk + g) * kD, Hk * kD, nk);
  float stat = load_q(0, 0);
  cp_async_commit();
  stat_store(stat, 0);
  float dka[OT][4], dva[OT][4];
#pragma unroll
  for (int t = 0; t < OT; ++t)
#pragma unroll
    for (int e = 0; e < 4; ++e) dka[t][e] = dva[t][e] = 0.0f;
  int st = 0;  // the stage of the current query tile
  for (int it = 0; it < nit; ++it, st ^= 1) {
    const int64_t i0 = int64_t(it0 + it) * Br;
    const bool more = it + 1 < nit;
    cp_async_wait<0>();
    __syncthreads();  // this tile (and K, V) landed and its statistics are stored, for all threads;
                      // the other stage (the previous tile) is consumed
    if (more) stat = load_q(it + 1, st ^ 1);
    cp_async_commit();
    // Warp-uniform: no query of the tile sees a key of the warp (all queries before its keys or
    // past T, or beyond the window of its last key), or every query sees every key (no mask).
    const int64_t q_last = (i0 + Br < T_ ? i0 + Br : T_) - 1;
    if (q_last >= jw && i0 - W < jw + 15) {
      const bool full = i0 + Br <= T_ && jw + 15 <= i0 && i0 + Br - 1 - W < jw;
      const uint16_t* Qst = Qs + st * Br * L;
      const uint16_t* dOst = dOs + st * Br * L;
      const float* lse2s = stats + st * 2 * Br;
      const float* dsums = lse2s + Br;
      float s[NT][4], dp[NT][4];  // S^T, dP^T: the warp's 16 keys x Br queries
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = dp[nt][0] = dp[nt][1] =
          dp[nt][2] = dp[nt][3] = 0.0f;
      mma_rows<NT, kD>(s, Ks + warp * 16 * L, L, Qst, L, lane);    // k q^T
      mma_rows<NT, kD>(dp, Vs + warp * 16 * L, L, dOst, L, lane);  // v dout^T
      // Query i0 + c is visible to key j (rows gid, gid + 8) iff c_min[hh] <= c < c_end[hh]:
      // j <= i, i < j + W, i < T, in tile columns clamped to [0, Br].
      int c_min[2], c_end[2];
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
          const float p = vis ? exp2f(s[nt][e] * sl2 - lse2s[c]) : 0.0f;
          s[nt][e] = p;                            // P^T
          dp[nt][e] = p * (dp[nt][e] - dsums[c]);  // dS^T
        }
      if constexpr (kAtomicDq) {  // dS [query][key] (bf16, as dS^T q rounds it) for dQ += dS K below
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            dSs[(nt * 8 + tig * 2 + (e & 1)) * LdS + warp * 16 + gid + 8 * (e >> 1)] =
                __bfloat16_as_ushort(__float2bfloat16_rn(dp[nt][e]));
      }
      mma_acc_rows<OT, Br>(dva, s, dOst, L, lane);  // P^T dout
      mma_acc_rows<OT, Br>(dka, dp, Qst, L, lane);  // dS^T q
    } else if constexpr (kAtomicDq) {  // no visible pair: the warp's keys contribute dS = 0
      for (int x = lane; x < Br * 16; x += 32) dSs[(x >> 4) * LdS + warp * 16 + (x & 15)] = 0;
    }
    if constexpr (kAtomicDq) {
      // dQ [Br][kD] += dS [Br][Bc] K [Bc][kD]: warp w takes columns w kD / 4 .. (w + 1) kD / 4 - 1 of
      // every row (A fragments of dS, B fragments of K by ldmatrix.trans: each K fragment feeds Br / 16
      // mma), then adds its fp32 tile into dqacc (red.global.add; unscaled, the caller scales).
      __syncthreads();  // every warp's dS columns are written (and read by all warps below)
      constexpr int MT = Br / 16, QT = kD / 32;
      const int col0 = warp * (kD / 4);
      float qa[MT][QT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int t = 0; t < QT; ++t) qa[mt][t][0] = qa[mt][t][1] = qa[mt][t][2] = qa[mt][t][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < Bc / 16; ++kk) {
        uint32_t af[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) ldsm_x4(af[mt], dSs + (mt * 16 + (lane & 15)) * LdS + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int tp = 0; tp < QT / 2; ++tp) {
          uint32_t bf[4];
          ldsm_x4_t(bf, Ks + (kk * 16 + (lane & 15)) * L + col0 + tp * 16 + (lane >> 4) * 8);
          const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_bf16_16816(qa[mt][2 * tp], af[mt], b0);
            mma_bf16_16816(qa[mt][2 * tp + 1], af[mt], b1);
          }
        }
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int64_t i = i0 + mt * 16 + gid + 8 * hh;
          if (i >= T_) continue;
          float* row = dqacc + ((b * T_ + i) * H + h) * kD + col0 + tig * 2;
#pragma unroll
          for (int t = 0; t < QT; ++t) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(HYSCALE_CUDA_EMU)
            // sm_90: one 8-byte red.global.add.v2.f32 (the pair is 8-byte aligned: even float offset)
            atomicAdd(reinterpret_cast<float2*>(row + t * 8), make_float2(qa[mt][t][2 * hh], qa[mt][t][2 * hh + 1]));
#else
            atomicAdd(row + t * 8, qa[mt][t][2 * hh]);
            atomicAdd(row + t * 8 + 1, qa[mt][t][2 * hh + 1]);
#endif
          }
        }
    }
    if (more) stat_store(stat, st ^ 1);  // that stage's statistics were consumed before the barrier above
  }
  cp_async_wait<0>();  // (the last group is empty; nothing is left in flight at exit)
  if (pk) {  // GQA: this head's fp32 partial sums (unscaled), summed over the group in head order later
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int64_t j = j0 + warp * 16 + gid + 8 * hh;
      if (j >= T_) continue;
      const int64_t o = (((hq * int64_t(gridDim.z) + b) * T_ + j) * Hk + g) * kD;
#pragma unroll
      for (int t = 0; t < OT; ++t) {
        *reinterpret_cast<float2*>(pk + o + t * 8 + tig * 2) = make_float2(dka[t][2 * hh], dka[t][2 * hh + 1]);
        *reinterpret_cast<float2*>(pv + o + t * 8 + tig * 2) = make_float2(dva[t][2 * hh], dva[t][2 * hh + 1]);
      }
    }
    return;
  }
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int64_t j = j0 + warp * 16 + gid + 8 * hh;
    if (j >= T_) continue;
    bf16* krow = dk + ((b * T_ + j) * Hk + g) * kD;
    bf16* vrow = dv + ((b * T_ + j) * Hk + g) * kD;
#pragma unroll
    for (int t = 0; t < OT; ++t) {
      *reinterpret_cast<uint32_t*>(krow + t * 8 + tig * 2) =
          pack_bf16x2(dka[t][2 * hh] * scale, dka[t][2 * hh + 1] * scale);
      *reinterpret_cast<uint32_t*>(vrow + t * 8 + tig * 2) = pack_bf16x2(dva[t][2 * hh], dva[t][2 * hh + 1]);
    }
  }
}

// dk = scale * sum_hq pk[hq], dv = sum_hq pv[hq] over the rep heads of a group (n elements each), in
// head order: the dk/dv kernel's deterministic group sum under GQA.
__global__ void attn_bwd_group_sum_k(const float* __restrict__ pk, const float* __restrict__ pv, bf16* __restrict__ dk,
                                     bf16* __restrict__ dv, int64_t n, int64_t rep, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float sk = 0.0f, sv = 0.0f;
    for (int64_t hq = 0; hq < rep; ++hq) {
      sk += pk[hq * n + i];
      sv += pv[hq * n + i];
    }
    st(dk, i, sk * scale);
    st(dv, i, sv);
  }
}

// dq = scale * acc (n elements): the atomic-dq backward's conversion of its fp32 accumulator.
__global__ void attn_bwd_dq_convert_k(const float* __restrict__ acc, bf16* __restrict__ dq, int64_t n, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(dq, i, acc[i] * scale);
}

// ------------------------------------------------------------------------------ decode
// One CTA per (group of up to 8 query heads of one KV head, split of the cache, KV head, sequence):
// warp w handles query head g rep + 8 hg + w (blockIdx.x = hg + hgroups split); the CTA streams its
// split's slots [split chunk, min(n, (split + 1) chunk)) in chunks of 32 through shared memory (each
// chunk read once for its 8 heads). Lane j scores slot j of the chunk; lane d-blocks
// (d = lane + 32 jj) accumulate the output with an online softmax (log2 domain). One split (part
// null): the CTA writes the normalised output. Several (flash-decoding: at batch 1 the cache of a
// few KV heads would otherwise be streamed by a few CTAs): each writes its (m, l, unnormalised acc)
// to part[((b H + h) splits + split) (Dv + 2) ...], an empty split m = -inf, l = 0, and
// attn_decode_combine_k merges them. The grid depends on the cache's capacity, never on n (which
// lives on the device), so a captured step replays unchanged as the cache fills.
constexpr int kDecHeads = kThreads / 32, kDecChunk = 32, kDecMaxD = 128, kDecMaxDv = 256;
inline size_t decode_smem_floats(int D, int Dv) {
  return size_t(kDecHeads) * kDecMaxD + size_t(kDecChunk) * (D | 1) + size_t(kDecChunk) * Dv;
}
// Rows r < 32 of a cache chunk (row r at src + r stride, rows >= nk zero) into dst [32][ld] as
// fp32: 16-byte loads when `vec` (cols, stride and src in whole 16-byte groups), else one element
// per load. All threads of the CTA take part.
template <class T>
__device__ __forceinline__ void dec_load_rows(float* dst, int ld_, const T* __restrict__ src, int64_t stride, int cols,
                                              int nk, bool vec) {
  if (vec) {
    constexpr int W = Vec<T>::W;  // (elementwise.cuh)
    const int g = cols / W;
    for (int idx = threadIdx.x; idx < kDecChunk * g; idx += kThreads) {
      const int r = idx / g, c = (idx % g) * W;
      float f[W];
      if (r < nk) {
        Vec<T>::load(src + r * stride, c, f);
      } else {
#pragma unroll
        for (int e = 0; e < W; ++e) f[e] = 0.0f;
      }
#pragma unroll
      for (int e = 0; e < W; ++e) dst[r * ld_ + c + e] = f[e];
    }
    return;
  }
  for (int idx = threadIdx.x; idx < kDecChunk * cols; idx += kThreads) {
    const int r = idx / cols, c = idx % cols;
    dst[r * ld_ + c] = r < nk ? ld(src, r * stride + c) : 0.0f;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    attn_decode_k(const T* __restrict__ q, const T* __restrict__ kc, const T* __restrict__ vc, T* __restrict__ out,
                  float* __restrict__ part, int64_t H, int64_t Hk, int D, int Dv, int64_t cap,
                  const int64_t* __restrict__ n_valid, float sl2, int64_t k_pos, int64_t k_head, int64_t v_pos,
                  int64_t v_head, int hgroups, int splits, int64_t chunk, bool vec) {
  constexpr int VJ = kDecMaxDv / 32;
  const int LK = D | 1;  // odd stride: lane j reading row j is conflict-free
  float* sm = smem_f32();
  float* qs = sm;                                  // [8][128]
  float* Ks = qs + kDecHeads * kDecMaxD;           // [32][LK]
  float* Vs = Ks + kDecChunk * LK;                 // [32][Dv]
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const int64_t b = blockIdx.z, g = blockIdx.y, rep = H / Hk;
  const int hg = int(blockIdx.x) % hgroups, split = int(blockIdx.x) / hgroups;
  const int64_t hr = int64_t(hg) * kDecHeads + w;  // head within the group
  const bool active = hr < rep;
  const int64_t h = g * rep + hr;
  int64_t n = n_valid[b];
  n = n < 0 ? 0 : (n > cap ? cap : n);
  const int64_t j_begin = split * chunk, j_end = j_begin + chunk < n ? j_begin + chunk : n;
  for (int d = lane; d < kDecMaxD; d += 32) qs[w * kDecMaxD + d] = (active && d < D) ? ld(q, (b * H + h) * D + d) : 0.0f;
  float m = -INFINITY, l = 0.0f, acc[VJ];
#pragma unroll
  for (int jj = 0; jj < VJ; ++jj) acc[jj] = 0.0f;
  const T* Kb = kc + b * cap * k_pos + g * k_head;
  const T* Vb = vc + b * cap * v_pos + g * v_head;
  for (int64_t j0 = j_begin; j0 < j_end; j0 += kDecChunk) {
    const int nk = int(j_end - j0 < kDecChunk ? j_end - j0 : kDecChunk);
    __syncthreads();  // the previous chunk is consumed (and qs is written, the first time)
    dec_load_rows(Ks, LK, Kb + j0 * k_pos, k_pos, D, nk, vec);
    dec_load_rows(Vs, Dv, Vb + j0 * v_pos, v_pos, Dv, nk, vec);
    __syncthreads();
    float s = -INFINITY;
    if (lane < nk) {
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot = fmaf(qs[w * kDecMaxD + d], Ks[lane * LK + d], dot);
      s = dot * sl2;
    }
    float mx = s;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    const float mnew = fmaxf(m, mx);  // finite: nk >= 1
    const float alpha = exp2f(m - mnew);
    const float p = exp2f(s - mnew);
    float ps = p;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, off);
    l = l * alpha + ps;
    m = mnew;
#pragma unroll
    for (int jj = 0; jj < VJ; ++jj) acc[jj] *= alpha;
    for (int r = 0; r < nk; ++r) {
      const float pr = __shfl_sync(0xffffffffu, p, r);
#pragma unroll
      for (int jj = 0; jj < VJ; ++jj) {
        const int d = lane + 32 * jj;
        if (d < Dv) acc[jj] = fmaf(pr, Vs[r * Dv + d], acc[jj]);
      }
    }
  }
  if (!active) return;
  if (part != nullptr) {  // this split's partial result, merged by attn_decode_combine_k
    float* pp = part + ((b * H + h) * splits + split) * int64_t(Dv + 2);
    if (lane == 0) {
      pp[0] = m;
      pp[1] = l;
    }
#pragma unroll
    for (int jj = 0; jj < VJ; ++jj) {
      const int d = lane + 32 * jj;
      if (d < Dv) pp[2 + d] = acc[jj];
    }
    return;
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  T* orow = out + (b * H + h) * Dv;
#pragma unroll
  for (int jj = 0; jj < VJ; ++jj) {
    const int d = lane + 32 * jj;
    if (d < Dv) st(orow, d, acc[jj] * inv);
  }
}

// out[row] = sum_s acc_s 2^(m_s - M) / sum_s l_s 2^(m_s - M), M = max_s m_s, over the splits of
// row (b H + h); one warp per row, splits in order (deterministic). No slot at all: zeros.
template <class T>
__global__ void __launch_bounds__(kThreads)
    attn_decode_combine_k(const float* __restrict__ part, T* __restrict__ out, int64_t rows, int Dv, int splits) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = int64_t(gridDim.x) * (kThreads / 32);
  for (int64_t row = int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32; row < rows; row += nwarps) {
    const float* pr = part + row * splits * int64_t(Dv + 2);
    float M = -INFINITY;
    for (int s = 0; s < splits; ++s) M = fmaxf(M, pr[s * int64_t(Dv + 2)]);
    float L = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float ms = pr[s * int64_t(Dv + 2)];
      if (ms != -INFINITY) L += pr[s * int64_t(Dv + 2) + 1] * exp2f(ms - M);
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    for (int d = lane; d < Dv; d += 32) {
      float o = 0.0f;
      for (int s = 0; s < splits; ++s) {
        const float ms = pr[s * int64_t(Dv + 2)];
        if (ms != -INFINITY) o += pr[s * int64_t(Dv + 2) + 2 + d] * exp2f(ms - M);
      }
      st(out, row * Dv + d, o * inv);
    }
  }
}

// ------------------------------------------------------------------------------ host side
template <int A, int B_> struct Dims {
  static constexpr int kD = A, kDv = B_;
};

void check_sizes(const char* who, int64_t B, int64_t T_, int64_t H, int64_t Hk, int64_t D, int64_t Dv) {
  HS_CHECK(B >= 0 && T_ >= 0, who, " (CUDA): negative sizes B = ", B, ", T = ", T_);
  HS_CHECK(Hk >= 1 && H >= Hk && H % Hk == 0, who, " (CUDA): H = ", H, " must be a positive multiple of Hk = ", Hk);
  HS_CHECK(D >= 1 && D <= 128 && Dv >= 1 && Dv <= 256, who, " (CUDA): head dims D = ", D, ", Dv = ", Dv,
           " unsupported (need 1 <= D <= 128 and 1 <= Dv <= 256)");
  HS_CHECK(H <= 65535 && B <= 65535, who, " (CUDA): grid too large (B = ", B, ", H = ", H, ", limit 65535)");
}

// Calls f(Dims<kD, kDv>{}) with the smallest instantiated tile that holds (D, Dv).
template <class F> void with_dims(int64_t D, int64_t Dv, F&& f) {
  if (D <= 32 && Dv <= 32) f(Dims<32, 32>{});
  else if (D <= 32 && Dv <= 64) f(Dims<32, 64>{});
  else if (D <= 64 && Dv <= 64) f(Dims<64, 64>{});
  else if (D <= 64 && Dv <= 128) f(Dims<64, 128>{});
  else if (Dv <= 128) f(Dims<128, 128>{});
  else f(Dims<128, 256>{});
}

// Cache splits of the decode kernel (flash-decoding). HYSCALE_DECODE_SPLITS=N forces N (at most
// one per 32 slots; tests and benchmarks); by default one split, unless the (head group, KV head,
// sequence) CTAs number fewer than the SMs: then enough splits for two CTAs per SM, each split at
// least 256 slots of the capacity. Depends on shapes, the capacity and the device only, not on how
// many slots are filled (a captured decode step replays unchanged).
int decode_splits(int64_t ctas, int64_t cap) {
  const int64_t most = std::max<int64_t>(1, (cap + 31) / 32);
  if (const char* e = std::getenv("HYSCALE_DECODE_SPLITS"); e != nullptr && *e != '\0') {
    char* end = nullptr;
    const long v = std::strtol(e, &end, 10);
    HS_CHECK(end != e && *end == '\0' && v >= 1, "HYSCALE_DECODE_SPLITS=", e, ": expected a positive integer");
    return int(std::min<int64_t>(v, most));
  }
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    sms = 1;
  if (ctas >= sms) return 1;
  const int64_t want = (2 * int64_t(sms) + ctas - 1) / ctas;
  return int(std::max<int64_t>(1, std::min<int64_t>({want, cap / 256, most})));
}

// Query rows per warp of the tensor-core forward and dq kernels: 32 (kMT = 2), or 16 (kMT = 1)
// under HYSCALE_ATTN_ROWS_PER_WARP=16; any other value is an error. Read at every call (a getenv),
// so a benchmark or test can switch between the two in one process.
int rows_per_warp() {
  const char* e = std::getenv("HYSCALE_ATTN_ROWS_PER_WARP");
  if (e == nullptr || *e == '\0') return 32;
  const std::string v(e);
  HS_CHECK(v == "16" || v == "32", "HYSCALE_ATTN_ROWS_PER_WARP=", v, ": expected 16 or 32");
  return std::stoi(v);
}

// The bf16 tensor-core kernels: mma.sync (0, the default) or, under HYSCALE_ATTN_WGMMA=1, the sm_90a
// warpgroup-MMA kernels of attention_wgmma.cu: the forward and the deterministic backward (the
// atomic-dq backward of set_deterministic(false) stays mma.sync). Written without a GPU to run them
// on: mma.sync stays the default until a lent GPU has checked and timed them (`bench kernels`
// prints both). Any other value is an error. Read at every call, like HYSCALE_ATTN_ROWS_PER_WARP.
bool use_wgmma() {
  const char* e = std::getenv("HYSCALE_ATTN_WGMMA");
  if (e == nullptr || *e == '\0') return false;
  const std::string v(e);
  HS_CHECK(v == "0" || v == "1", "HYSCALE_ATTN_WGMMA=", v, ": expected 0 or 1");
  if (v == "0") return false;
  const int sm = device_sm();  // an explicit request that cannot be met is an error, not a fallback
  HS_CHECK(sm == 90 && wgmma_built(), "HYSCALE_ATTN_WGMMA=1: the wgmma kernels need a compute capability 9.0 "
           "device (this one is ", sm / 10, ".", sm % 10, ") and a build for sm_90a (CUDA architectures "
           "including 90; this build: ", wgmma_built() ? "yes" : "no", ")");
  return true;
}

}  // namespace

template <class T>
void attention_fwd(const T* q, const T* k, const T* v, T* out, float* lse, int64_t B, int64_t T_, int64_t H,
                   int64_t Hk, int64_t D, int64_t Dv, double scale, int64_t window, void* s) {
  check_sizes("attention_fwd", B, T_, H, Hk, D, Dv);
  if (B == 0 || T_ == 0) return;
  const int64_t W = eff_window(window, T_);
  const float sl2 = static_cast<float>(scale * kLog2eD);
  if constexpr (std::is_same_v<T, bf16>) {
    if ((D == 64 || D == 128) && Dv == D && aligned16(q) && aligned16(k) && aligned16(v) && aligned16(out) &&
        device_sm() >= 80) {
      if (use_wgmma()) {
        attention_fwd_wgmma(q, k, v, out, lse, B, T_, H, Hk, D, sl2, W, s);
        return;
      }
      auto launch = [&](auto kern, size_t bytes, int kD, int threads) {
        allow_smem(kern, bytes, "attention_fwd (mma)");
        const dim3 grid(static_cast<unsigned>((T_ + kFwdBr - 1) / kFwdBr), static_cast<unsigned>(H),
                        static_cast<unsigned>(B));
        kern<<<grid, threads, bytes, S(s)>>>(q, k, v, out, lse, T_, H, Hk, sl2, W);
        HS_LAUNCH_CHECK("attention_fwd (mma)", "B = ", B, ", T = ", T_, ", H = ", H, ", Hk = ", Hk, ", D = ", kD,
                        ", window = ", window, ", smem = ", bytes, ", threads = ", threads);
      };
      const bool rows16 = rows_per_warp() == 16;
      if (D == 64) {
        if (rows16) launch(attn_fwd_mma_k<64, 1>, MmaCfg<64>::bytes(), 64, fwd_threads<1>());
        else launch(attn_fwd_mma_k<64, 2>, MmaCfg<64>::bytes(), 64, fwd_threads<2>());
      } else {
        if (rows16) launch(attn_fwd_mma_k<128, 1>, MmaCfg<128>::bytes(), 128, fwd_threads<1>());
        else launch(attn_fwd_mma_k<128, 2>, MmaCfg<128>::bytes(), 128, fwd_threads<2>());
      }
      return;
    }
  }
  with_dims(D, Dv, [&](auto dims) {
    using Dm = decltype(dims);
    using C = Cfg<Dm::kD, Dm::kDv>;
    auto* kern = attn_fwd_k<T, Dm::kD, Dm::kDv>;
    const size_t bytes = C::fwd_bytes();
    allow_smem(kern, bytes, "attention_fwd");
    const dim3 grid(static_cast<unsigned>((T_ + C::kFBr - 1) / C::kFBr), static_cast<unsigned>(H),
                    static_cast<unsigned>(B));
    kern<<<grid, kThreads, bytes, S(s)>>>(q, k, v, out, lse, T_, H, Hk, int(D), int(Dv), sl2, W);
    HS_LAUNCH_CHECK("attention_fwd", "B = ", B, ", T = ", T_, ", H = ", H, ", Hk = ", Hk, ", D = ", D, ", Dv = ", Dv,
                    ", window = ", window, ", tile D/Dv = ", Dm::kD, "/", Dm::kDv, ", smem = ", bytes);
  });
}

template <class T>
void attention_bwd(const T* q, const T* k, const T* v, const T* out, const T* dout, const float* lse, T* dq, T* dk,
                   T* dv, int64_t B, int64_t T_, int64_t H, int64_t Hk, int64_t D, int64_t Dv, double scale,
                   int64_t window, void* s) {
  check_sizes("attention_bwd", B, T_, H, Hk, D, Dv);
  if (B == 0 || T_ == 0) return;
  const int64_t W = eff_window(window, T_);
  const float sl2 = static_cast<float>(scale * kLog2eD), sc = static_cast<float>(scale);
  const int64_t rows = B * T_ * H;
  Scratch scratch(static_cast<size_t>(rows), S(s), "attention_bwd");
  float* dsum = scratch.p;
  auto* dsum_kern = attn_bwd_dsum_k<T>;
  dsum_kern<<<blocks_for(rows * 32, kThreads), kThreads, 0, S(s)>>>(out, dout, dsum, rows, T_, H, int(Dv));
  HS_LAUNCH_CHECK("attention_bwd (rowsum dout*out)", "B = ", B, ", T = ", T_, ", H = ", H, ", Dv = ", Dv);
  phase("attention_bwd.dsum");
  if constexpr (std::is_same_v<T, bf16>) {
    if ((D == 64 || D == 128) && Dv == D && aligned16(q) && aligned16(k) && aligned16(v) && aligned16(dout) &&
        aligned16(dq) && aligned16(dk) && aligned16(dv) && device_sm() >= 80) {
      // set_deterministic(false): dQ by fp32 atomics from the dk/dv kernel (flash-attention-2's
      // form: S and dP are computed once, not again in a dq kernel); else the dq kernel.
      const bool atomic_dq = !deterministic();
      if (use_wgmma() && !atomic_dq) {  // the deterministic backward on warpgroup MMA (sm_90a)
        const int64_t rep = H / Hk, n_kv = B * T_ * Hk * D, bc = wgmma_bwd_key_tile();
        HS_CHECK((T_ + bc - 1) / bc <= 65535, "attention_bwd (CUDA): ", T_,
                 " tokens exceed the key-tile grid (65535 tiles of ", bc, ")");
        Scratch part(rep > 1 ? static_cast<size_t>(2 * rep * n_kv) : 0, S(s), "attention_bwd (group parts)");
        float* pk = rep > 1 ? part.p : nullptr;
        float* pv = rep > 1 ? part.p + rep * n_kv : nullptr;
        attention_bwd_wgmma(q, k, v, dout, lse, dsum, dq, dk, dv, pk, pv, B, T_, H, Hk, D, sl2, sc, W, s);
        phase("attention_bwd.wgmma");
        if (rep > 1) {
          attn_bwd_group_sum_k<<<blocks_for(n_kv, 256), 256, 0, S(s)>>>(pk, pv, dk, dv, n_kv, rep, sc);
          HS_LAUNCH_CHECK("attention_bwd (group sum)", "n = ", n_kv, ", heads per group = ", rep);
          phase("attention_bwd.group_sum");
        }
        return;
      }
      auto launch = [&](auto dkdv_kern, auto dq_kern, auto cfg, auto dq_cfg) {
        using C = decltype(cfg);
        using CQ = decltype(dq_cfg);
        const size_t kbytes = C::dkdv_bytes(atomic_dq);
        allow_smem(dkdv_kern, kbytes, "attention_bwd (dk, dv; mma)");
        // GQA: each query head of a group gets its own CTA (fp32 partials, then a fixed-order sum):
        // one CTA per (key tile, KV head) walking the whole group left too few CTAs, the longest
        // of them (key tile 0 under a causal mask) rep times the average tile's work.
        const int64_t rep = H / Hk;
        const int64_t ntk = (T_ + C::kKBc - 1) / C::kKBc;
        HS_CHECK(ntk <= 65535, "attention_bwd (CUDA): ", T_, " tokens exceed the key-tile grid (65535 tiles of ",
                 C::kKBc, ")");
        const int64_t n_kv = B * T_ * Hk * D;
        Scratch part(rep > 1 ? static_cast<size_t>(2 * rep * n_kv) : 0, S(s), "attention_bwd (group parts)");
        float* pk = rep > 1 ? part.p : nullptr;
        float* pv = rep > 1 ? part.p + rep * n_kv : nullptr;
        const int64_t n_q = B * T_ * H * D;
        Scratch qacc(atomic_dq ? static_cast<size_t>(n_q) : 0, S(s), "attention_bwd (dq accumulator)");
        float* dqacc = qacc.p;  // (null in the deterministic form)
        if (atomic_dq) {
          const cudaError_t e = cudaMemsetAsync(dqacc, 0, sizeof(float) * size_t(n_q), S(s));
          HS_CHECK(e == cudaSuccess, "attention_bwd (CUDA): zeroing the dq accumulator: ", cudaGetErrorString(e));
        }
        const dim3 grid_k(static_cast<unsigned>(H), static_cast<unsigned>(ntk), static_cast<unsigned>(B));
        dkdv_kern<<<grid_k, kMmaThreads, kbytes, S(s)>>>(q, k, v, dout, lse, dsum, dk, dv, pk, pv, dqacc, T_, H, Hk,
                                                          sl2, sc, W);
        HS_LAUNCH_CHECK("attention_bwd (dk, dv; mma)", "B = ", B, ", T = ", T_, ", H = ", H, ", Hk = ", Hk,
                        ", D = ", D, ", window = ", window, ", smem = ", kbytes, ", atomic dq = ", atomic_dq);
        phase("attention_bwd.dkdv");
        if (rep > 1) {
          attn_bwd_group_sum_k<<<blocks_for(n_kv, 256), 256, 0, S(s)>>>(pk, pv, dk, dv, n_kv, rep, sc);
          HS_LAUNCH_CHECK("attention_bwd (group sum)", "n = ", n_kv, ", heads per group = ", rep);
          phase("attention_bwd.group_sum");
        }
        if (atomic_dq) {
          attn_bwd_dq_convert_k<<<blocks_for(n_q, 256), 256, 0, S(s)>>>(dqacc, dq, n_q, sc);
          HS_LAUNCH_CHECK("attention_bwd (dq convert)", "n = ", n_q);
          phase("attention_bwd.dq_convert");
          return;
        }
        allow_smem(dq_kern, CQ::bytes(), "attention_bwd (dq; mma)");
        const dim3 grid_q(static_cast<unsigned>((T_ + CQ::kBr - 1) / CQ::kBr), static_cast<unsigned>(H),
                          static_cast<unsigned>(B));
        dq_kern<<<grid_q, kMmaThreads, CQ::bytes(), S(s)>>>(q, k, v, dout, lse, dsum, dq, T_, H, Hk, sl2, sc, W);
        HS_LAUNCH_CHECK("attention_bwd (dq; mma)", "B = ", B, ", T = ", T_, ", H = ", H, ", Hk = ", Hk, ", D = ", D,
                        ", window = ", window, ", smem = ", CQ::bytes(), ", rows per warp = ", CQ::kBr / 4);
        phase("attention_bwd.dq");
      };
      const bool rows16 = rows_per_warp() == 16;
      auto with_dq = [&](auto dkdv_det, auto dkdv_atomic, auto cfg) {  // the dq kernel's tiling
        auto go = [&](auto dq_kern, auto dq_cfg) {
          if (atomic_dq) launch(dkdv_atomic, dq_kern, cfg, dq_cfg);
          else launch(dkdv_det, dq_kern, cfg, dq_cfg);
        };
        using C = decltype(cfg);
        constexpr int kD = C::kL - 8;
        if (rows16) go(attn_bwd_dq_mma_k<kD, 1>, MmaDqCfg<kD, 1>{});
        else go(attn_bwd_dq_mma_k<kD, 2>, MmaDqCfg<kD, 2>{});
      };
      if (D == 64) with_dq(attn_bwd_dkdv_mma_k<64, false>, attn_bwd_dkdv_mma_k<64, true>, MmaBwdCfg<64>{});
      else with_dq(attn_bwd_dkdv_mma_k<128, false>, attn_bwd_dkdv_mma_k<128, true>, MmaBwdCfg<128>{});
      return;
    }
  }
  with_dims(D, Dv, [&](auto dims) {
    using Dm = decltype(dims);
    using C = Cfg<Dm::kD, Dm::kDv>;
    {
      auto* kern = attn_bwd_dkdv_k<T, Dm::kD, Dm::kDv>;
      const size_t bytes = C::dkdv_bytes();
      allow_smem(kern, bytes, "attention_bwd (dk, dv)");
      const dim3 grid(static_cast<unsigned>((T_ + C::kKBc - 1) / C::kKBc), static_cast<unsigned>(Hk),
                      static_cast<unsigned>(B));
      kern<<<grid, kThreads, bytes, S(s)>>>(q, k, v, dout, lse, dsum, dk, dv, T_, H, Hk, int(D), int(Dv), sl2, sc, W);
      HS_LAUNCH_CHECK("attention_bwd (dk, dv)", "B = ", B, ", T = ", T_, ", H = ", H, ", Hk = ", Hk, ", D = ", D,
                      ", Dv = ", Dv, ", window = ", window, ", tile D/Dv = ", Dm::kD, "/", Dm::kDv, ", smem = ", bytes);
    }
    {
      auto* kern = attn_bwd_dq_k<T, Dm::kD, Dm::kDv>;
      const size_t bytes = C::dq_bytes();
      allow_smem(kern, bytes, "attention_bwd (dq)");
      const dim3 grid(static_cast<unsigned>((T_ + C::kQBr - 1) / C::kQBr), static_cast<unsigned>(H),
                      static_cast<unsigned>(B));
      kern<<<grid, kThreads, bytes, S(s)>>>(q, k, v, dout, lse, dsum, dq, T_, H, Hk, int(D), int(Dv), sl2, sc, W);
      HS_LAUNCH_CHECK("attention_bwd (dq)", "B = ", B, ", T = ", T_, ", H = ", H, ", Hk = ", Hk, ", D = ", D,
                      ", Dv = ", Dv, ", window = ", window, ", tile D/Dv = ", Dm::kD, "/", Dm::kDv, ", smem = ", bytes);
    }
  });
}

template <class T>
void attention_decode(const T* q, const T* kc, const T* vc, T* out, int64_t B, int64_t H, int64_t Hk, int64_t D,
                      int64_t Dv, int64_t cap, const int64_t* n_valid_dev, double scale, int64_t k_pos,
                      int64_t k_head, int64_t v_pos, int64_t v_head, void* s) {
  check_sizes("attention_decode", B, 1, H, Hk, D, Dv);
  HS_CHECK(cap >= 0, "attention_decode (CUDA): negative cache capacity ", cap);
  if (B == 0) return;
  if (k_head == 0) k_head = D;
  if (k_pos == 0) k_pos = Hk * D;
  if (v_head == 0) v_head = Dv;
  if (v_pos == 0) v_pos = Hk * Dv;
  const int64_t rep = H / Hk;
  const int hgroups = int((rep + kDecHeads - 1) / kDecHeads);
  const int splits = decode_splits(B * Hk * hgroups, cap);
  const int64_t chunk = splits == 1 ? std::max<int64_t>(cap, 1) : (cap + splits - 1) / splits;
  const size_t bytes = sizeof(float) * decode_smem_floats(int(D), int(Dv));
  auto* kern = attn_decode_k<T>;
  allow_smem(kern, bytes, "attention_decode");
  const int64_t rows = B * H;
  Scratch part(splits > 1 ? static_cast<size_t>(rows * splits * (Dv + 2)) : 0, S(s), "attention_decode (splits)");
  float* pp = part.p;  // (null: one split, the kernel writes out)
  const dim3 grid(static_cast<unsigned>(hgroups * splits), static_cast<unsigned>(Hk), static_cast<unsigned>(B));
  // 16-byte cache loads when every row of every head starts on a 16-byte boundary
  constexpr int64_t W = 16 / int64_t(sizeof(T));
  const bool vec = aligned16(kc) && aligned16(vc) && D % W == 0 && Dv % W == 0 && k_pos % W == 0 && k_head % W == 0 &&
                   v_pos % W == 0 && v_head % W == 0;
  kern<<<grid, kThreads, bytes, S(s)>>>(q, kc, vc, out, pp, H, Hk, int(D), int(Dv), cap, n_valid_dev,
                                        static_cast<float>(scale * kLog2eD), k_pos, k_head, v_pos, v_head, hgroups,
                                        splits, chunk, vec);
  HS_LAUNCH_CHECK("attention_decode", "B = ", B, ", H = ", H, ", Hk = ", Hk, ", D = ", D, ", Dv = ", Dv, ", cap = ", cap,
                  ", smem = ", bytes, ", splits = ", splits);
  if (splits > 1) {
    attn_decode_combine_k<T><<<blocks_for(rows * 32, kThreads), kThreads, 0, S(s)>>>(pp, out, rows, int(Dv), splits);
    HS_LAUNCH_CHECK("attention_decode (combine)", "rows = ", rows, ", splits = ", splits);
  }
}

#define HS_INST(T)                                                                                               \
  template void attention_fwd<T>(const T*, const T*, const T*, T*, float*, int64_t, int64_t, int64_t, int64_t,   \
                                 int64_t, int64_t, double, int64_t, void*);                                      \
  template void attention_bwd<T>(const T*, const T*, const T*, const T*, const T*, const float*, T*, T*, T*,     \
                                 int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, int64_t, void*); \
  template void attention_decode<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t,       \
                                    int64_t, int64_t, const int64_t*, double, int64_t, int64_t, int64_t, int64_t, \
                                    void*);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
