// CUDA causal (sliding-window) GQA attention: flash-attention-2 style forward and backward, and
// one decoding step. Same math and layouts as the CPU twins in kernels/attention.h:
//   q, dq [B, T, H, D]; k, dk [B, T, Hk, D]; v, dv [B, T, Hk, Dv]; out, dout [B, T, H, Dv];
//   lse fp32 [B, H, T] (natural log of the sum of exp of the scaled scores).
// Query head h reads KV head h / (H / Hk). window = visible keys including self (query t sees
// keys t-window+1 .. t); window <= 0 or >= T means full causal. T (dtype) = float or bf16 for q,
// k, v, out, dout, dq, dk, dv; all math (scores, softmax, accumulators) is fp32.
//
// Supported sizes: 1 <= D <= 128 and 1 <= Dv <= 256, any value (not only powers of two; Dv may
// differ from D, e.g. Dv = 2D for differential attention). The dispatch picks a compile-time tile
// (D, Dv) padded to one of (32,32) (32,64) (64,64) (64,128) (128,128) (128,256) and zero-fills the
// padding. H must be a multiple of Hk. Other sizes fail with an hyscale::Error naming them.
//
// The backward writes (does not accumulate) dq, dk, dv and is deterministic by default: no
// floating-point atomics, every output element is summed by one thread in a fixed order. It
// allocates one fp32 scratch of B*H*T floats (rowsum(dout * out)) with cudaMallocAsync on the
// stream. Under set_deterministic(false) (kernels/cuda.h) the tensor-core backward computes dq in
// the dk/dv kernel and adds it with fp32 atomics into a B*T*H*D fp32 scratch (flash-attention-2's
// form: S and dP once per visible pair instead of twice); dq then varies in the last bits run to
// run, dk and dv stay bit-identical. The SIMT kernels are deterministic in both modes.
// Kernels are SIMT (CUDA cores, fp32 FMA) except for bf16 with D = Dv in {64, 128} and 16-byte
// aligned pointers on sm_80+, where the forward and the backward's dk/dv and dq kernels use tensor
// cores (mma.sync m16n8k16, fp32 accumulation, P and dS rounded to bf16 for their products as in
// FlashAttention-2); the SIMT kernels are their fallback. Decode is SIMT.
// Only compiled when the build has CUDA (HYSCALE_WITH_CUDA).
#pragma once
#include <cstdint>

#include "kernels/cuda.h"

namespace hyscale::kernels::cuda {

template <class T>
void attention_fwd(const T* q, const T* k, const T* v, T* out, float* lse, int64_t B, int64_t T_, int64_t H,
                   int64_t Hk, int64_t D, int64_t Dv, double scale, int64_t window, void* stream = nullptr);

template <class T>
void attention_bwd(const T* q, const T* k, const T* v, const T* out, const T* dout, const float* lse, T* dq, T* dk,
                   T* dv, int64_t B, int64_t T_, int64_t H, int64_t Hk, int64_t D, int64_t Dv, double scale,
                   int64_t window, void* stream = nullptr);

// One decoding step (kernels/attention.h's attention_decode): row b's H query heads q [B, H, D]
// attend to the first n_valid_dev[b] slots of a KV cache of cap slots; out [B, H, Dv]. K element
// (b, slot j, KV head g, c) at kc[(b cap + j) k_pos + g k_head + c], V likewise with v_pos /
// v_head; strides 0 mean the dense layouts kc [B, cap, Hk, D], vc [B, cap, Hk, Dv].
// n_valid_dev is a DEVICE array of B int64; values are clamped to [0, cap] (a row with no slot
// writes zeros). Same size limits as above (D <= 128, Dv <= 256). When (query-head groups of 8) x
// Hk x B CTAs would leave SMs idle, the cache is split over several CTAs per head group and their
// partial softmax results merged by a second kernel (flash-decoding; fp32 scratch of
// B*H*splits*(Dv+2) floats from cudaMallocAsync); the split count depends on the shapes, cap and
// the device only (HYSCALE_DECODE_SPLITS=N forces N).
template <class T>
void attention_decode(const T* q, const T* kc, const T* vc, T* out, int64_t B, int64_t H, int64_t Hk, int64_t D,
                      int64_t Dv, int64_t cap, const int64_t* n_valid_dev, double scale, int64_t k_pos = 0,
                      int64_t k_head = 0, int64_t v_pos = 0, int64_t v_head = 0, void* stream = nullptr);

// One decoding step's RoPE and KV-cache append (kernels/attention.h's decode_rope_append, one
// launch for every row, head and position): n_tok_dev is a DEVICE array of B int64 (the row's
// tokens including the new one: position + 1). A row whose slot would fall outside the cache is
// not appended (the caller checks positions on the host). Body in cuda/decode_kernels.cu.
template <class T>
void decode_rope_append(const T* qkv, T* q_out, T* k_cache, T* v_cache, const int64_t* n_tok_dev, int64_t B,
                        int64_t H, int64_t Hk, int64_t D, int64_t cap, bool ring, double rope_base,
                        void* stream = nullptr);

}  // namespace hyscale::kernels::cuda
