// CUDA kernels (bodies in cuda/*.cu; CPU twins in cpu/, same math, same layouts). Plain C++
// header: device pointers, an opaque stream (cudaStream_t; nullptr = the default stream) and
// bf16 passed as its 16 bits (uint16_t, the upper half of the fp32 pattern, round-to-nearest-even
// on conversion). Activations may be f32 or bf16 ("T"); every reduction and every statistic
// (RMSNorm's rstd, cross-entropy's log-sum-exp, norms) is computed and stored in fp32.
// Memory-bound kernels use 128-bit loads and stores when the pointers and sizes allow, and
// 64-bit indexing throughout. Every launch is checked; an error names the kernel and its sizes.
// Only compiled when the build has CUDA (HYSCALE_WITH_CUDA).
#pragma once
#include <cstdint>

#include "kernels/scan_gate.h"

namespace hyscale::kernels::cuda {

using bf16 = uint16_t;

// Profiling (core/profiler.h): an op that launches several kernels calls phase(name) after each
// launch, so `hyscale bench train --profile` can split the op's time between them. Nothing
// happens unless a hook is set (the profiler sets one while it runs).
using PhaseHook = void (*)(const char* name);
void set_phase_hook(PhaseHook hook);
void phase(const char* name);

// Deterministic kernels (the default): every reduction has a fixed partition and order, so a
// run is bit-identical to the last on the same device. set_deterministic(false) lets the kernels
// that have a faster atomic form use it; their results then vary run to run in the last bits.
// Today that is the selective scan backward's dB/dC (fp32 atomicAdd of each channel tile's block
// sum into the output instead of per-tile partials summed in tile order by a second kernel) and
// the tensor-core attention backward's dq (atomics from the dk/dv kernel instead of a dq kernel
// that recomputes S and dP; kernels/cuda_attention.h).
// Process-wide; the trainer sets it from training.deterministic.
void set_deterministic(bool on);
bool deterministic();

// The stream of every kernel whose stream argument is null (and of the device copies and fills of
// core/cuda/cuda_backend.cu): the legacy default stream (nullptr) unless this thread set another,
// as the CUDA-graph capture of a decoding step does (nn/decode.cpp). Per thread.
void set_current_stream(void* stream);
void* current_stream();

// y = silu(x); dx = dy * s * (1 + x (1 - s)), s = sigmoid(x)
template <class T> void silu_fwd(const T* x, T* y, int64_t n, void* stream = nullptr);
template <class T> void silu_bwd(const T* x, const T* dy, T* dx, int64_t n, void* stream = nullptr);
// x [rows, 2I] = [gate | value] -> y [rows, I] = silu(gate) * value, and its backward.
template <class T> void swiglu_fwd(const T* x, T* y, int64_t rows, int64_t I, void* stream = nullptr);
template <class T> void swiglu_bwd(const T* x, const T* dy, T* dx, int64_t rows, int64_t I, void* stream = nullptr);
// out = a + b; out = s * a
template <class T> void add(const T* a, const T* b, T* out, int64_t n, void* stream = nullptr);
template <class T> void scale(const T* a, float s, T* out, int64_t n, void* stream = nullptr);
// Casts f32 <-> bf16 (round to nearest even).
void cast_f32_bf16(const float* x, bf16* y, int64_t n, void* stream = nullptr);
void cast_bf16_f32(const bf16* x, float* y, int64_t n, void* stream = nullptr);

// RMSNorm over rows of x [rows, D]: y = x * rstd * g, rstd [rows] fp32 saved for the backward.
template <class T>
void rmsnorm_fwd(const T* x, const T* g, T* y, float* rstd, int64_t rows, int64_t D, double eps,
                 void* stream = nullptr);
// dx = rstd (g dy - xhat mean(xhat g dy)); dg (fp32, [D]) += sum over rows of dy xhat, reduced in
// a fixed order (per-block partial sums, then one pass over them): deterministic, no atomics.
template <class T>
void rmsnorm_bwd(const T* x, const T* g, const float* rstd, const T* dy, T* dx, float* dg, int64_t rows, int64_t D,
                 void* stream = nullptr);

// Fused residual add + RMSNorm: h = x + y (the new residual stream), out = rmsnorm(h) * g,
// rstd [rows] fp32. The backward is rmsnorm_bwd on h plus the residual gradient.
template <class T>
void residual_rmsnorm_fwd(const T* x, const T* y, const T* g, T* h, T* out, float* rstd, int64_t rows, int64_t D,
                          double eps, void* stream = nullptr);

// Token embedding out[n] = table[ids[n]] (ids range-checked by the caller), and its backward
// dtable (fp32) += scatter(dout) without atomics: (id, position) pairs are radix-sorted (stable),
// then one block per distinct id sums its rows in position order — deterministic.
// The table holds vocabulary rows [start, start + V) (start 0 and V the vocabulary for a whole
// table; a slice under vocabulary-parallel tensor parallelism): ids outside the slice give zero
// rows forward and no gradient.
template <class T>
void embedding_fwd(const int32_t* ids, const T* table, T* out, int64_t N, int64_t D, int64_t start, int64_t V,
                   void* stream = nullptr);
template <class T>
void embedding_bwd(const int32_t* ids, const T* dout, float* dtable, int64_t N, int64_t D, int64_t start, int64_t V,
                   void* stream = nullptr);

// Non-interleaved RoPE over x [B, T, H, D] (kernels/rope.h), angles in double like the CPU.
template <class T>
void rope_fwd(const T* x, T* y, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0,
              void* stream = nullptr);
template <class T>
void rope_bwd(const T* dy, T* dx, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0,
              void* stream = nullptr);

// Causal depthwise conv1d with bias (kernels/conv1d.h's math), x, y [B, T, C], w [C, K], bias [C].
// Backward writes dx, and dw [C, K], dbias [C] in fp32: per-chunk partial sums over (b, t) then
// one fixed-order pass (deterministic, no atomics).
template <class T>
void causal_conv1d_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C, int64_t K,
                       void* stream = nullptr);
template <class T>
void causal_conv1d_bwd(const T* x, const T* w, const T* dy, T* dx, float* dw, float* dbias, int64_t B, int64_t T_,
                       int64_t C, int64_t K, void* stream = nullptr);
// The same with Mamba-1's SiLU fused (kernels/conv1d.h's *_silu_*): y = silu(conv); the backward
// takes dy of silu(conv) and the bias, and recomputes the pre-activation (nothing saved). The
// pre-activation stays fp32 (the composed ops round it to T between the two kernels).
template <class T>
void causal_conv1d_silu_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C, int64_t K,
                            void* stream = nullptr);
template <class T>
void causal_conv1d_silu_bwd(const T* x, const T* w, const T* bias, const T* dy, T* dx, float* dw, float* dbias,
                            int64_t B, int64_t T_, int64_t C, int64_t K, void* stream = nullptr);

// Selective scan forward (kernels/selective_scan.h's math and layouts, softplus(delta + dt_bias)
// and the D skip fused; with gate.z the output gate too, y = y_pre * silu(z), else y is the
// pre-gate GMU memory): chunk-parallel passes, fp32 states in registers, B_t/C_t shared by all
// channels (broadcast loads). states [B, n_chunks, Dc, N] (fp32) receive h at the last step of
// each chunk, as the CPU saves them for the backward. u, delta, y, z in T; A_log, D, dt_bias, Bm,
// Cm in T as well. N <= 64. The backward is in kernels/cuda_hybrid.h.
template <class T>
void selective_scan_fwd(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                        const T* dt_bias, T* y, float* states, int64_t B, int64_t T_, int64_t Dc, int64_t N,
                        int64_t chunk, void* stream = nullptr, const ScanGate<T>& gate = {});

// Fused softmax cross-entropy over logits [N, V] (one block per row, online max/sum):
// loss_rows[n] = lse[n] - logits[n, t[n]] (fp32); the backward recomputes the probabilities:
// dlogits = (exp(logits - lse) - onehot(t)) * dscale.
template <class T>
void cross_entropy_fwd(const T* logits, const int32_t* targets, float* loss_rows, float* lse, int64_t N, int64_t V,
                       void* stream = nullptr);
// start: the logits' first vocabulary column (0 for a whole vocabulary; a target outside
// [start, start + V) subtracts nothing from this slice's gradient).
template <class T>
void cross_entropy_bwd(const T* logits, const int32_t* targets, const float* lse, float dscale, T* dlogits, int64_t N,
                       int64_t V, int64_t start, void* stream = nullptr);
// Vocabulary-parallel cross-entropy (kernels/cross_entropy.h's twins, fp32 here): stats [3, N]
// = the slice's row max, sum of exp(logit - max), target logit (0 outside the slice); combine
// reduces the all-gathered stats [P, 3, N] of P slices, in order, to loss_rows and lse.
template <class T>
void cross_entropy_stats(const T* logits, const int32_t* targets, int64_t start, float* stats, int64_t N, int64_t V,
                         void* stream = nullptr);
void cross_entropy_combine(const float* all, int64_t P, float* loss_rows, float* lse, int64_t N,
                           void* stream = nullptr);

// AdamW on fp32 master weights (torch.optim.AdamW's order, as the CPU kernel, with the same
// grad_scale); when p_bf16 is given it also receives the updated weights in bf16.
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
                float weight_decay, int64_t step, float grad_scale = 1.0f, bf16* p_bf16 = nullptr,
                void* stream = nullptr);

// GEMM through cuBLASLt, row-major like kernels/gemm.h:
//   C[b] (M x N) = alpha * op(A[b]) op(B[b]) + beta * C[b],  b < batch,
// op(A) = A^T when ta (A stored K x M), op(B) = B^T when tb (B stored N x K); strides between
// batch entries in elements. A and B both f32 or both bf16 ("ab_bf16"); C f32 or bf16 ("c_bf16");
// accumulation always fp32 (CUBLAS_COMPUTE_32F: no TF32). The handle, a 32 MiB workspace and the
// heuristic's choice per shape are made once per device and cached.
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda, const void* B,
          int64_t ldb, float beta, void* C, int64_t ldc, bool ab_bf16, bool c_bf16, int64_t batch = 1,
          int64_t stride_a = 0, int64_t stride_b = 0, int64_t stride_c = 0, void* stream = nullptr);

// Sum of squares of x [n] in double, deterministic (a partition into 64K-element items that
// depends only on n, fixed-order sums); synchronises the stream and returns the value.
double sum_squares(const float* x, int64_t n, void* stream = nullptr);
// The same for `count` tensors at once, with one synchronisation: out[i] = sum_squares(xs[i], ns[i])
// bit for bit.
void sum_squares_many(const float* const* xs, const int64_t* ns, int64_t count, double* out, void* stream = nullptr);

// ---- tensor plumbing (tensor_kernels.cu)
// dst[i] = src[i] over a view of `ndim` (<= 8) dimensions, strides in elements; the dtypes are
// core/dtype.h's codes (0 f32, 1 f64, 2 bf16, 3 i32, 4 i64). Same dtype moves the bits;
// otherwise converts (f32 <-> bf16 rounds to nearest even). dst and src must not overlap.
void strided_copy(void* dst, int dst_dtype, const int64_t* dst_strides, const void* src, int src_dtype,
                  const int64_t* src_strides, const int64_t* shape, int ndim, void* stream = nullptr);
// dst[0..n) = value (converted to dtype), contiguous.
void fill(void* dst, int dtype, int64_t n, double value, void* stream = nullptr);

}  // namespace hyscale::kernels::cuda
