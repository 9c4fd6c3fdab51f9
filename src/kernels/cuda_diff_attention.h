// Fused CUDA differential attention (SPEC §5; kernels/diff_attn.h): both softmax branches of a head
// pair in one pass, sharing the K and V tiles.
//   q [B, T, Hp, 2 hd] (Hp head pairs; q1 = q[..., :hd], q2 = q[..., hd:]), k [B, T, Hkp, 2 hd]
//   likewise, v [B, T, Hkp, 2 hd] read by both branches; lambda: DEVICE pointer to one fp32.
//   a_i = softmax(q_i k_i^T scale) v (causal, window as in kernels/attention.h; a row with no
//   visible key gives zeros), out = a1 - lambda a2 [B, T, Hp, 2 hd].
// The forward saves o1 = a1, o2 = a2 ([B, T, Hp, 2 hd], T dtype) and lse1, lse2 (fp32 [B, Hp, T],
// natural log) for the backward. Pair p reads KV pair p / (Hp / Hkp).
// Backward (g = dL/dout): writes (does not accumulate) dq, dk, dv in the same layouts and
// dlambda[0] = -sum(g o2) (fp32, device). Deterministic: no atomics, fixed summation orders.
// It allocates 2 B Hp T fp32 of scratch with cudaMallocAsync on the stream.
// Same results as two kernels/cuda_attention.h calls on the halves (D = hd, Dv = 2 hd) plus the
// combine (kernels/cuda_hybrid.h diff_combine_*), up to fp32 summation order.
// Sizes: 1 <= hd <= 128 (any value), Hp a positive multiple of Hkp; T dtype float or bf16.
// Kernels: bf16 at hd 64 or 128 with 16-byte aligned pointers on sm_80+ runs on tensor cores
// (mma.sync, cuda/diff_attention_mma.cu), each kernel where its shared memory fits the device
// (the backward's dk/dv kernel at hd 128 needs 165 KB per CTA, so an A100 runs its SIMT form);
// everything else, or any call under HYSCALE_DIFF_ATTN_MMA=0, runs SIMT kernels (fp32 FMA, tiles
// padded to hd in {32, 64, 128}). diff_attention_kernels says which.
// Only compiled when the build has CUDA (HYSCALE_WITH_CUDA).
#pragma once
#include <cstdint>

#include "kernels/cuda.h"

namespace hyscale::kernels::cuda {

// Which kernels a bf16 call at head dim hd with 16-byte aligned pointers runs on the current
// device under the current HYSCALE_DIFF_ATTN_MMA: true = tensor cores, false = SIMT (the
// forward, the backward's dq kernel, its dk/dv kernel). The dispatch's own test.
struct DiffAttnKernels {
  bool fwd, bwd_dq, bwd_dkdv;
};
DiffAttnKernels diff_attention_kernels(int64_t hd);

template <class T>
void diff_attention_fwd(const T* q, const T* k, const T* v, const float* lambda, T* out, T* o1, T* o2, float* lse1,
                        float* lse2, int64_t B, int64_t T_, int64_t Hp, int64_t Hkp, int64_t hd, double scale,
                        int64_t window, void* stream = nullptr);

template <class T>
void diff_attention_bwd(const T* q, const T* k, const T* v, const float* lambda, const T* o1, const T* o2,
                        const float* lse1, const float* lse2, const T* g, T* dq, T* dk, T* dv, float* dlambda,
                        int64_t B, int64_t T_, int64_t Hp, int64_t Hkp, int64_t hd, double scale, int64_t window,
                        void* stream = nullptr);

}  // namespace hyscale::kernels::cuda
