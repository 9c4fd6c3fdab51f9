// Tensor-core building blocks shared by the attention kernels (attention.cu's mma.sync kernels,
// diff_attention_mma.cu's, attention_wgmma.cu's sm_90a forward): mma.sync m16n8k16, ldmatrix,
// cp.async, bf16x2 packing, the per-row visibility of a key tile, the online-softmax row step and
// the warp-level products (mma_rows, mma_acc_tiles, mma_acc_rows). Kernel-body helpers only
// (device code, no host state).
#pragma once
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace hyscale::kernels::cuda::detail {

// ------------------------------------------------------------------------------ tensor-core helpers
// bf16 mma.sync m16n8k16 (fp32 accumulation), ldmatrix and cp.async, sm_80+ only (the host never
// dispatches the tensor-core kernels below sm_80). Fragment layouts (PTX ISA, lane = 4 gid + tig):
//   A (16 x 16, row-major): a[0] = rows gid, columns 2 tig + {0, 1}; a[1] = rows gid + 8; a[2], a[3]:
//     the same rows, columns + 8.
//   B (16 x 8, "col"): b[0] = B(2 tig + {0, 1}, gid), b[1] = B(2 tig + 8 + {0, 1}, gid).
//   C/D (16 x 8): d[0], d[1] = row gid, columns 2 tig + {0, 1}; d[2], d[3] = row gid + 8.
// Two 16-bit values in one register: the lower index in the low half.
// ldmatrix.x4 loads four 8 x 8 bf16 matrices: lane l gives the address of row l % 8 of matrix l / 8
// (16 contiguous, 16-byte aligned bytes), and register i of lane l receives row gid, columns
// 2 tig + {0, 1} of matrix i (.trans: column gid, rows 2 tig + {0, 1}). So, for a row-major
// smem tile X with row stride ld:
//   A fragment of rows r0 .. r0 + 15, columns c0 .. c0 + 15: ldsm_x4 at X + (r0 + l % 16) ld + c0 + 8 (l / 16);
//   B fragments of B(k, n) = X[n][k] (X's rows are the n index), n-tiles n0 and n0 + 8, k = c0 .. c0 + 15:
//     ldsm_x4 at X + (n0 + 8 (l / 16) + l % 8) ld + c0 + 8 ((l / 8) % 2) -> {b[0], b[1]} of n0, then of n0 + 8;
//   B fragments of B(k, n) = X[k][n] (X's rows are the k index), k = r0 .. r0 + 15, n-tiles c0, c0 + 8:
//     ldsm_x4_t at X + (r0 + l % 16) ld + c0 + 8 (l / 16) -> {b[0], b[1]} of c0, then of c0 + 8.
// Row strides of 8 (mod 64) bf16 elements make the 8 row addresses of each matrix hit distinct banks.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(HYSCALE_CUDA_EMU)  // the CPU emulator of the tests (tests/emu)
  emu::mma_bf16_16816(d, a, b);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}
// Two floats as a bf16x2 register: lo in the low 16 bits (the lower column index), round to nearest even.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  return (uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16) |
         uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(lo)));
}
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const uint16_t* p) {
#if defined(HYSCALE_CUDA_EMU)  // the CPU emulator of the tests (tests/emu)
  emu::ldmatrix(r, 4, false, p);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
#else
  __trap();
#endif
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const uint16_t* p) {
#if defined(HYSCALE_CUDA_EMU)  // the CPU emulator of the tests (tests/emu)
  emu::ldmatrix(r, 4, true, p);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
#else
  __trap();
#endif
}
// 16 bytes global -> shared, asynchronous (cp.async.cg: bypasses L1); valid = false zero-fills dst
// (src-size 0: nothing is read, src must still be a valid address). The data may be read only after
// cp_async_wait (by this thread) and a barrier (by the others).
__device__ __forceinline__ void cp_async16(uint16_t* dst, const bf16* src, bool valid) {
#if defined(HYSCALE_CUDA_EMU)  // the CPU emulator of the tests (tests/emu)
  emu::cp_async16(dst, src, valid);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(valid ? 16 : 0));
#else
  __trap();
#endif
}
// Closes the group of this thread's cp.async issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#if defined(HYSCALE_CUDA_EMU)  // the CPU emulator of the tests (tests/emu)
  emu::cp_async_commit();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#else
  __trap();
#endif
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N> __device__ __forceinline__ void cp_async_wait() {
#if defined(HYSCALE_CUDA_EMU)  // the CPU emulator of the tests (tests/emu)
  emu::cp_async_wait(N);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#else
  __trap();
#endif
}
// cp.async of rows r < R of a bf16 tile with kD columns (src row r at src + r stride; rows >= valid,
// valid >= 1, are zero-filled) into dst (row stride ld); 16-byte chunks, consecutive threads take
// consecutive chunks of a row; all kThr threads of the CTA take part. No commit.
template <int R, int kD, int kThr>
__device__ __forceinline__ void cp_async_tile(uint16_t* dst, int ld_, const bf16* __restrict__ src, int64_t stride,
                                              int valid) {
  constexpr int C8 = kD / 8, RS = kThr / C8;  // RS rows per round
  static_assert(kThr % C8 == 0 && R % RS == 0, "cp_async_tile: whole rounds of rows");
  const int r0 = int(threadIdx.x) / C8, c = (int(threadIdx.x) % C8) * 8;
  const bf16* p = src + r0 * stride + c;
#pragma unroll
  for (int it = 0; it < R / RS; ++it, p += RS * stride) {
    const int r = r0 + it * RS;
    cp_async16(dst + r * ld_ + c, r < valid ? p : src, r < valid);
  }
}

// Key j0 + c (a column of the key tile at j0) is visible to query row qi iff c_lo < c <= c_hi:
// visible() in tile columns, clamped to [-1, Bc]; c_hi = -1 for a row past T.
template <int Bc>
__device__ __forceinline__ void visible_cols(int64_t qi, int64_t j0, int64_t T_, int64_t W, int& c_lo, int& c_hi) {
  const int64_t dj = qi - j0;
  c_hi = qi >= T_ ? -1 : int(dj < Bc ? dj : Bc);
  c_lo = int(dj - W < -1 ? -1 : (dj - W < Bc ? dj - W : Bc));
}

// The query rows r_lo .. r_hi of one warp (uniform across it) against the key tile j0 .. j0 + Bc - 1
// under the causal window W: false when no key of the tile is visible to any of the rows (all rows
// past T, the tile above the diagonal or left of the window); full = every key is visible to every
// row, so no per-element mask is needed (rows past T, never written, then compute on the
// zero-filled rows harmlessly).
__device__ __forceinline__ bool rows_see_tile(int64_t r_lo, int64_t r_hi, int64_t j0, int Bc, int64_t T_, int64_t W,
                                              bool& full) {
  full = j0 + Bc - 1 <= r_lo && j0 > r_hi - W;
  return !(r_lo >= T_ || j0 > r_hi || j0 + Bc - 1 <= r_lo - W);
}

// Key tiles jt0 .. jt1 through two cp.async stages. load(jt, st) issues the copies of tile jt into
// stage st (no commit); the caller has issued and committed tile jt0's into stage 0 (with whatever
// else the kernel loads first). body(jt, st) runs once tile jt is in stage st for every thread,
// while tile jt + 1 is being copied into the other stage; it may read stage st only. One barrier
// per tile, so every thread of the CTA must call this; nothing is in flight when it returns.
template <class Load, class Body>
__device__ __forceinline__ void key_tile_pipeline(int jt0, int jt1, Load&& load, Body&& body) {
  for (int jt = jt0; jt <= jt1; ++jt) {
    const int st = (jt - jt0) & 1;
    cp_async_wait<0>();
    __syncthreads();  // tile jt (and what came with the first) landed for all threads; the other
                      // stage (tile jt - 1) is consumed
    if (jt < jt1) load(jt + 1, st ^ 1);
    cp_async_commit();
    body(jt, st);
  }
  cp_async_wait<0>();  // (the last group is empty)
}

// One row of the online softmax (log2 domain) over a key tile of 8 NT columns held in the mma
// accumulator layout: this thread's elements x(nt, e) are columns 8 nt + 2 tig + e, the row's other
// columns sit in the 3 other lanes of its group of 4. Masks (column c is visible iff
// c_lo < c <= c_hi, or every column when full), scales by sl2, updates the running max m and sum l,
// and replaces the scores by P = exp2(s - m_new) (0 where masked). Returns alpha = exp2(m_old -
// m_new), by which the caller rescales the row's output (0 on the row's first visible tile).
template <int NT, class X>
__device__ __forceinline__ float softmax_row_step(X&& x, float& m, float& l, bool full, int c_lo, int c_hi, float sl2,
                                                  int tig) {
  float mx = -INFINITY;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int c = nt * 8 + tig * 2 + e;
      float& v = x(nt, e);
      v = full || (c > c_lo && c <= c_hi) ? v * sl2 : -INFINITY;
      mx = fmaxf(mx, v);
    }
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float mnew = fmaxf(m, mx);
  const float base = mnew == -INFINITY ? 0.0f : mnew;  // nothing visible yet: avoid -inf - -inf
  const float alpha = exp2f(m - base);                  // 0 on the first visible tile
  float rs = 0.0f;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float& v = x(nt, e);
      v = exp2f(v - base);  // masked: exp2(-inf) = 0
      rs += v;
    }
  rs += __shfl_xor_sync(0xffffffffu, rs, 1);
  rs += __shfl_xor_sync(0xffffffffu, rs, 2);
  l = l * alpha + rs;
  m = mnew;
  return alpha;
}

// ------------------------------------------------------------------------------ warp-level products
// acc[mt][t] += X_mt B for kMT m-tiles of 16 rows: X_mt (16 x K) given as accumulator tiles
// x[mt][K / 8][4] (re-packed to bf16 A fragments, as P in flash-attention-2), B(k, n) = bm[k ldb + n]
// (row-major, k along the rows), n = 8 t + (0 .. 7), t < OT (even); B fragments by
// ldmatrix.x4.trans, each feeding all kMT m-tiles. acc and x point at the callers' register
// arrays (all loops unrolled and inlined: they stay in registers).
template <int kMT, int OT, int K>
__device__ __forceinline__ void mma_acc_tiles(float (*acc)[OT][4], const float (*x)[K / 8][4], const uint16_t* bm,
                                              int ldb, int lane) {
  static_assert(OT % 2 == 0, "mma_acc_tiles: pairs of n-tiles");
  const uint16_t* bp = bm + (lane & 15) * ldb + (lane >> 4) * 8;
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t pa[kMT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
      pa[mt][0] = pack_bf16x2(x[mt][2 * kk][0], x[mt][2 * kk][1]);
      pa[mt][1] = pack_bf16x2(x[mt][2 * kk][2], x[mt][2 * kk][3]);
      pa[mt][2] = pack_bf16x2(x[mt][2 * kk + 1][0], x[mt][2 * kk + 1][1]);
      pa[mt][3] = pack_bf16x2(x[mt][2 * kk + 1][2], x[mt][2 * kk + 1][3]);
    }
#pragma unroll
    for (int tp = 0; tp < OT / 2; ++tp) {
      uint32_t bf[4];
      ldsm_x4_t(bf, bp + kk * 16 * ldb + tp * 16);
      const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        mma_bf16_16816(acc[mt][2 * tp], pa[mt], b0);
        mma_bf16_16816(acc[mt][2 * tp + 1], pa[mt], b1);
      }
    }
  }
}

// acc[nt] += A B for the warp's 16 rows: A = a_rows (row-major, stride lda, 16 rows, k = 0 .. K-1),
// B(k, n) = b[n ldb + k] for n = 8 nt + (0 .. 7), nt < NT (even). A and B fragments by ldmatrix.x4.
template <int NT, int K>
__device__ __forceinline__ void mma_rows(float (&acc)[NT][4], const uint16_t* a_rows, int lda, const uint16_t* b,
                                         int ldb, int lane) {
  static_assert(NT % 2 == 0, "mma_rows: pairs of n-tiles");
  const uint16_t* ap = a_rows + (lane & 15) * lda + (lane >> 4) * 8;
  const uint16_t* bp = b + ((lane >> 4) * 8 + (lane & 7)) * ldb + ((lane >> 3) & 1) * 8;
#pragma unroll 2
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t af[4];
    ldsm_x4(af, ap + kk * 16);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t bf[4];
      ldsm_x4(bf, bp + np * 16 * ldb + kk * 16);
      const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
      mma_bf16_16816(acc[2 * np], af, b0);
      mma_bf16_16816(acc[2 * np + 1], af, b1);
    }
  }
}

// acc[t] += X B for the warp's 16 rows (mma_acc_tiles with one m-tile).
template <int OT, int K>
__device__ __forceinline__ void mma_acc_rows(float (&acc)[OT][4], const float (&x)[K / 8][4], const uint16_t* bm,
                                             int ldb, int lane) {
  mma_acc_tiles<1, OT, K>(&acc, &x, bm, ldb, lane);
}

}  // namespace hyscale::kernels::cuda::detail
