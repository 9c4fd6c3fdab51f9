// CUDA kernels of the hybrid blocks (bodies in cuda/hybrid_kernels.cu, cuda/selective_scan_bwd.cu
// and cuda/decode_kernels.cu; CPU twins: kernels/selective_scan.h, kernels/gmu.h,
// kernels/diff_attn.h, kernels/elementwise.h — same math, same layouts). Conventions as
// kernels/cuda.h: device pointers, opaque stream (nullptr = default stream), bf16 as its 16 bits,
// fp32 arithmetic whatever the storage type, 64-bit indexing, 128-bit loads/stores for the
// elementwise kernels when every pointer is 16-byte aligned (scalar path otherwise and for the
// tail), every launch checked. Every reduction is deterministic: fixed partition, fixed order,
// no floating-point atomics (bit-identical run to run on the same device), unless
// set_deterministic(false) (kernels/cuda.h) lets the scan backward add dB, dC atomically.
// Only compiled when the build has CUDA (HYSCALE_WITH_CUDA).
#pragma once
#include <cstdint>

#include "kernels/cuda.h"

namespace hyscale::kernels::cuda {

// Selective scan backward (kernels/selective_scan.h's math and layouts). `states`
// [B, n_chunks, Dc, N] fp32 are the chunk-end states saved by selective_scan_fwd (same chunk).
// du, ddelta [B, T, Dc] in T; dA_log [Dc, N], dD, ddt_bias [Dc] and dBm, dCm [B, T, N] in fp32.
// Every output is WRITTEN (not accumulated). With gate.z: dy is the gated output's gradient, the
// pre-gate y is recomputed in the gradient pass and dz [B, T, Dc] (T) is written as well (the CPU
// twin's expressions). N <= 64. Scratch (cudaMallocAsync on the stream,
// freed on it), in bytes, with N' = N rounded up to 16, 32 or 64, channel tiles of C = 1024 / N'
// channels and n_ch = ceil(T / chunk):
//     sub-chunk checkpoints: 4 per (b, channel, state') every 16 steps, in waves of <= 1 GiB
//   + 4 * 2 * ceil(Dc / C) * B * T * N     (dB/dC partials per channel tile; none when
//                                            set_deterministic(false): atomics into dB, dC)
//   + 4 * B * n_ch * Dc * (2 N + 3)         (per-chunk carries; dA_log/dD/ddt_bias partials)
template <class T>
void selective_scan_bwd(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                        const T* dt_bias, const float* states, const T* dy, T* du, T* ddelta, float* dA_log,
                        float* dBm, float* dCm, float* dD, float* ddt_bias, int64_t B, int64_t T_, int64_t Dc,
                        int64_t N, int64_t chunk, void* stream = nullptr, const ScanGate<T>& gate = {});

// GMU gate (kernels/gmu.h): y = silu(p) * m;
// dp = dy * m * s * (1 + p (1 - s)), dm_accum += dy * silu(p)   (s = sigmoid(p)).
// dm is ACCUMULATED like the CPU twin (several GMU layers read the same memory).
template <class T> void gmu_gate_fwd(const T* p, const T* m, T* y, int64_t n, void* stream = nullptr);
template <class T>
void gmu_gate_bwd(const T* p, const T* m, const T* dy, T* dp, T* dm_accum, int64_t n, void* stream = nullptr);

// out = a * b;  acc += x.
template <class T> void mul(const T* a, const T* b, T* out, int64_t n, void* stream = nullptr);
template <class T> void add_inplace(T* acc, const T* x, int64_t n, void* stream = nullptr);

// Differential-attention combine (kernels/diff_attn.h): out = a1 - lambda[0] * a2, lambda a
// device pointer to one fp32. Backward: da1 = g, da2 = -lambda g, dlambda[0] = -sum(g a2)
// (summed in double over a fixed grid, then one fixed-order pass; written, not accumulated).
template <class T>
void diff_combine_fwd(const T* a1, const T* a2, const float* lambda, T* out, int64_t n, void* stream = nullptr);
template <class T>
void diff_combine_bwd(const T* a2, const T* g, const float* lambda, T* da1, T* da2, float* dlambda, int64_t n,
                      void* stream = nullptr);

// Differential-attention lambda (fp32 vectors [d], one block, dots in double):
//   lambda[0] = exp(<lq1, lk1>) - exp(<lq2, lk2>) + lambda_init;
//   dlq1 = g e1 lk1, dlk1 = g e1 lq1, dlq2 = -g e2 lk2, dlk2 = -g e2 lq2 (g = dlambda[0],
//   e_i = exp(<lq_i, lk_i>) rounded to fp32 as the CPU does).
void diff_lambda_fwd(const float* lq1, const float* lk1, const float* lq2, const float* lk2, int64_t d,
                     double lambda_init, float* lambda, void* stream = nullptr);
void diff_lambda_bwd(const float* lq1, const float* lk1, const float* lq2, const float* lk2, int64_t d,
                     const float* dlambda, float* dlq1, float* dlk1, float* dlq2, float* dlk2, void* stream = nullptr);

// Decoding (cuda/decode_kernels.cu; one thread per (row, channel)).
// One conv step (kernels/conv1d.h's causal_conv1d_step): x, y [B, C]; w [C, K]; bias [C]; state
// [B, K-1, C] (the last K-1 inputs, oldest first; shifted in place). With silu, y = silu(conv)
// (Mamba's activation fused; the pre-activation stays fp32).
template <class T>
void causal_conv1d_step(const T* x, const T* w, const T* bias, T* state, T* y, int64_t B, int64_t C, int64_t K,
                        bool silu, void* stream = nullptr);
// T_ consecutive steps of the scan recurrence (kernels/selective_scan.h's selective_scan_step,
// step after step): u, delta [B, T_, Dc]; Bm, Cm rows of N at a stride of ldbc elements per
// (b, t) (slices of x_proj's output read in place); A_log [Dc, N]; D, dt_bias [Dc]; h [B, Dc, N]
// fp32, the state, updated in place; y [B, T_, Dc] (the pre-gate output, D skip included) or
// nullptr (only the state wanted). N <= 64. Decoding calls it with T_ = 1; the general form is
// tested against T_ calls of the CPU step.
template <class T>
void selective_scan_steps(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, int64_t ldbc,
                          const T* D, const T* dt_bias, float* h, T* y, int64_t B, int64_t T_, int64_t Dc, int64_t N,
                          void* stream = nullptr);

}  // namespace hyscale::kernels::cuda
