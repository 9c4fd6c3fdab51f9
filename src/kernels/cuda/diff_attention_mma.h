// The tensor-core (mma.sync, sm_80+) form of the fused differential attention
// (diff_attention_mma.cu), called by diff_attention.cu's dispatch. Internal to src/kernels/cuda.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda.h"

namespace hyscale::kernels::cuda::detail {

// Dynamic shared memory of the three kernels at head dim hd (64 or 128), bytes.
size_t dattn_mma_fwd_bytes(int64_t hd);
size_t dattn_mma_dq_bytes(int64_t hd);
size_t dattn_mma_dkdv_bytes(int64_t hd);

// Whether the tensor-core kernels can take a bf16 call: hd in {64, 128}, every pointer in ptrs
// 16-byte aligned, compute capability 8.0 or above, `bytes` of shared memory within the device's
// opt-in limit, and HYSCALE_DIFF_ATTN_MMA not 0 (HYSCALE_DIFF_ATTN_MMA=0 keeps the SIMT kernels,
// for tests and benchmarks; any value other than 0 or 1 is an error). Read at every call.
bool dattn_mma_usable(int64_t hd, std::initializer_list<const void*> ptrs, size_t bytes);

// Forward, layouts and meaning as kernels::cuda::diff_attention_fwd (W the effective window,
// sl2 = scale log2(e)); the caller has checked dattn_mma_usable and B, T > 0.
void diff_attention_fwd_mma(const bf16* q, const bf16* k, const bf16* v, const float* lambda, bf16* out, bf16* o1,
                            bf16* o2, float* lse1, float* lse2, int64_t B, int64_t T_, int64_t Hp, int64_t Hkp,
                            int64_t hd, float sl2, int64_t W, void* stream);

// The backward's two kernels after diff_attention.cu's pre-passes (r1 = rowsum(g o1), r2 =
// rowsum(g o2), fp32 [B, Hp, T]): dk and dv, and dq; each written, deterministic, independent of
// the other (the caller checks dattn_mma_usable for each).
void diff_attention_bwd_dkdv_mma(const bf16* q, const bf16* k, const bf16* v, const float* lambda, const float* lse1,
                                 const float* lse2, const float* r1, const float* r2, const bf16* g, bf16* dk,
                                 bf16* dv, int64_t B, int64_t T_, int64_t Hp, int64_t Hkp, int64_t hd, float sl2,
                                 float scale, int64_t W, void* stream);
void diff_attention_bwd_dq_mma(const bf16* q, const bf16* k, const bf16* v, const float* lambda, const float* lse1,
                               const float* lse2, const float* r1, const float* r2, const bf16* g, bf16* dq,
                               int64_t B, int64_t T_, int64_t Hp, int64_t Hkp, int64_t hd, float sl2, float scale,
                               int64_t W, void* stream);

}  // namespace hyscale::kernels::cuda::detail
