// The sm_90a (Hopper) attention forward on warpgroup MMA (attention_wgmma.cu), called by
// attention.cu's dispatch. Internal to src/kernels/cuda.
#pragma once
#include <cstdint>

#include "kernels/cuda.h"

namespace hyscale::kernels::cuda::detail {

// Whether this build holds the sm_90a kernel (the CUDA architectures include 90; CMake compiles
// attention_wgmma.cu for sm_90a then). The emulator build (tests/emu) always does.
bool wgmma_fwd_built();

// bf16 flash-attention forward, D = Dv in {64, 128}, 16-byte aligned q, k, v, out (layouts and
// meaning as kernels::cuda::attention_fwd; sl2 = scale * log2(e), W the effective window). The
// caller has checked the device (compute capability 9.0) and wgmma_fwd_built().
void attention_fwd_wgmma(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, int64_t B, int64_t T_,
                         int64_t H, int64_t Hk, int64_t D, float sl2, int64_t W, void* stream);

}  // namespace hyscale::kernels::cuda::detail
