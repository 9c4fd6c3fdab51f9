// sm_90a warpgroup MMA (wgmma.mma_async, bf16 inputs, fp32 accumulation) for the attention
// kernels of attention_wgmma.cu: shared-memory matrix descriptors (no-swizzle layout), the
// SS (A and B in shared memory) and RS (A in registers) forms at the N it needs, fence / commit /
// wait, and the operand fence that keeps the compiler from moving accumulator accesses across
// them. Compiled into real instructions only for sm_90a (__CUDA_ARCH_FEAT_SM90_ALL); the CPU
// emulator of the tests (tests/emu, HYSCALE_CUDA_EMU) models each call (emu::wgmma); any other
// target traps (the host never launches the kernel there).
//
// Layouts (PTX ISA 9.7.15.5.1), per 64 x N warpgroup tile, thread 32 w + 4 g + t of the group:
//   D (f32): d[4 j + 2 h + e] = D(16 w + g + 8 h, 8 j + 2 t + e), j < N / 8: per warp and 8 columns,
//     mma.sync's m16n8 accumulator layout.
//   A in registers (bf16, 64 x 16): mma.sync's m16n8k16 A fragment for the warp's 16 rows, so an S
//     accumulator re-packs into P's A fragments in registers, as in the mma.sync kernels.
//   Shared memory, no swizzle: 8 x 8 core matrices of 16-byte rows (128 contiguous bytes). The
//     descriptor's LBO is the byte distance between core matrices adjacent along K, SBO along M/N;
//     K-major operands have K contiguous inside a core-matrix row, MN-major ones M/N.
#pragma once
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace hyscale::kernels::cuda::detail {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL) && !defined(HYSCALE_CUDA_EMU)
#define HS_WGMMA_HW 1
#endif

// Descriptor of a no-swizzle shared-memory operand starting at smem_addr (a shared-window
// address, 16-byte aligned), lbo / sbo in bytes (multiples of 16, < 256 KB).
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t smem_addr, uint32_t lbo, uint32_t sbo) {
  return uint64_t((smem_addr & 0x3FFFFu) >> 4) | (uint64_t((lbo & 0x3FFFFu) >> 4) << 16) |
         (uint64_t((sbo & 0x3FFFFu) >> 4) << 32);
}

__device__ __forceinline__ void wgmma_fence() {
#if defined(HYSCALE_CUDA_EMU)
  emu::wgmma_fence();
#elif defined(HS_WGMMA_HW)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if defined(HYSCALE_CUDA_EMU)
  emu::wgmma_commit();
#elif defined(HS_WGMMA_HW)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}
template <int N> __device__ __forceinline__ void wgmma_wait() {
#if defined(HYSCALE_CUDA_EMU)
  emu::wgmma_wait(N);
#elif defined(HS_WGMMA_HW)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#else
  __trap();
#endif
}
// Makes this thread's earlier generic-proxy writes to shared memory (st.shared, cp.async) visible
// to the async proxy, through which wgmma reads its shared operands (PTX ISA: memory shared across
// proxies needs a proxy fence); a barrier after it extends that to the other threads' wgmma.
__device__ __forceinline__ void fence_proxy_async_smem() {
#if defined(HYSCALE_CUDA_EMU)
  emu::fence_proxy_async();
#elif defined(HS_WGMMA_HW)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#else
  __trap();
#endif
}
// Pins registers (accumulators, A fragments) at this point of the program: no code motion of
// their reads or writes across it. Used before wgmma_fence (so ordinary writes stay above the
// fence, as the PTX ISA requires) and after wgmma_wait (so reads stay below it), as CUTLASS does.
template <int R> __device__ __forceinline__ void wgmma_fence_operands(float (&d)[R]) {
#if defined(HS_WGMMA_HW)
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
#endif
}
template <int R, int C> __device__ __forceinline__ void wgmma_fence_operands(uint32_t (&a)[R][C]) {
#if defined(HS_WGMMA_HW)
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int j = 0; j < C; ++j) asm volatile("" : "+r"(a[i][j])::"memory");
#endif
}

// D (64 x 64) (+)= A B, A (64 x 16) K-major and B (16 x 64, N x K stored) K-major in shared
// memory; scale_d = 0 overwrites D.
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
#if defined(HYSCALE_CUDA_EMU)
  emu::wgmma(d, 64, false, nullptr, da, db, 0, scale_d);
#elif defined(HS_WGMMA_HW)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
#else
  __trap();
#endif
}
// D (64 x 128) (+)= A B, A (64 x 16) K-major and B (16 x 128, N x K stored) K-major in shared
// memory; scale_d = 0 overwrites D.
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
#if defined(HYSCALE_CUDA_EMU)
  emu::wgmma(d, 128, false, nullptr, da, db, 0, scale_d);
#elif defined(HS_WGMMA_HW)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "r"(scale_d));
#else
  __trap();
#endif
}

// D (64 x 64) (+)= A B, A (64 x 16) in registers, B (16 x 64) MN-major in shared memory
// (imm-trans-b 1: a row-major K x N tile, e.g. V with keys along K); scale_d = 0 overwrites D.
__device__ __forceinline__ void wgmma_rs_n64_tb(float (&d)[32], const uint32_t (&a)[4], uint64_t db, int scale_d) {
#if defined(HYSCALE_CUDA_EMU)
  emu::wgmma(d, 64, true, a, 0, db, 1, scale_d);
#elif defined(HS_WGMMA_HW)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
#else
  __trap();
#endif
}

// D (64 x 128) (+)= A B, A (64 x 16) in registers, B (16 x 128) MN-major in shared memory
// (imm-trans-b 1: a row-major K x N tile, e.g. V with keys along K); scale_d = 0 overwrites D.
__device__ __forceinline__ void wgmma_rs_n128_tb(float (&d)[64], const uint32_t (&a)[4], uint64_t db, int scale_d) {
#if defined(HYSCALE_CUDA_EMU)
  emu::wgmma(d, 128, true, a, 0, db, 1, scale_d);
#elif defined(HS_WGMMA_HW)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
#else
  __trap();
#endif
}

template <int N> __device__ __forceinline__ void wgmma_rs_tb(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db,
                                                          int scale_d) {
  static_assert(N == 64 || N == 128, "wgmma_rs_tb: N 64 or 128");
  if constexpr (N == 64) wgmma_rs_n64_tb(d, a, db, scale_d);
  else wgmma_rs_n128_tb(d, a, db, scale_d);
}

}  // namespace hyscale::kernels::cuda::detail
