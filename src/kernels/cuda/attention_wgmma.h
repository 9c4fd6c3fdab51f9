// The sm_90a (Hopper) attention kernels on warpgroup MMA (attention_wgmma.cu): the forward and the
// deterministic backward, called by attention.cu's dispatch. Internal to src/kernels/cuda.
#pragma once
#include <cstdint>

#include "kernels/cuda.h"

namespace hyscale::kernels::cuda::detail {

// Whether this build holds the sm_90a kernels (the CUDA architectures include 90; CMake compiles
// attention_wgmma.cu for sm_90a then). The emulator build (tests/emu) always does.
bool wgmma_built();

// bf16 flash-attention forward, D = Dv in {64, 128}, 16-byte aligned q, k, v, out (layouts and
// meaning as kernels::cuda::attention_fwd; sl2 = scale * log2(e), W the effective window). The
// caller has checked the device (compute capability 9.0) and wgmma_built().
void attention_fwd_wgmma(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, int64_t B, int64_t T_,
                         int64_t H, int64_t Hk, int64_t D, float sl2, int64_t W, void* stream);

// The deterministic backward's dk/dv and dq kernels on warpgroup MMA (same preconditions; dsum =
// rowsum(dout * out) from attention.cu's pre-pass). GQA (H > Hk): pk, pv receive each query head's
// fp32 partial dK (unscaled) and dV, [H / Hk][B, T, Hk, D], for the caller's group sum, and dk, dv
// are not written; without GQA pk = pv = null and dk, dv are written. dq is written either way.
void attention_bwd_wgmma(const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse,
                         const float* dsum, bf16* dq, bf16* dk, bf16* dv, float* pk, float* pv, int64_t B, int64_t T_,
                         int64_t H, int64_t Hk, int64_t D, float sl2, float scale, int64_t W, void* stream);
// Keys per CTA of its dk/dv kernel (the grid's key tiles).
int wgmma_bwd_key_tile();

}  // namespace hyscale::kernels::cuda::detail
