// The differentiable op API. Each op validates its inputs (errors name the op
// and the offending shapes/dtypes), calls the kernel for the tensors' device and
// dtype (f32, or f64 for gradient checks), and records one autograd node whose
// backward calls the hand-written backward kernel.
#pragma once
#include "core/autograd.h"
#include <utility>

#include "core/tensor.h"

namespace hyscale::ops {

// y[..., out] = x[..., in] @ w[out, in]^T   (PyTorch Linear convention, no bias)
Tensor linear(const Tensor& x, const Tensor& w);
// Mixed precision: linear(x, w_compute) where w_compute is w_master rounded to x's dtype (a bf16
// copy of an fp32 master weight), differentiable in w_master directly: its gradient comes out in
// w_master's dtype (on a GPU the weight-gradient GEMM writes fp32 from bf16 operands: no bf16
// gradient, no cast), not through a cast node. w_compute gets no gradient.
Tensor linear_mp(const Tensor& x, const Tensor& w_master, const Tensor& w_compute);
// Batched matmul: a [B, M, K] (or [B, K, M] if trans_a) times b [B, K, N] (or [B, N, K] if trans_b).
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

Tensor add(const Tensor& a, const Tensor& b);  // same shape
Tensor mul(const Tensor& a, const Tensor& b);  // same shape
Tensor scale(const Tensor& a, double s);
Tensor silu(const Tensor& x);
// x [..., 2I] = [gate | value] -> [..., I] = silu(gate) * value
Tensor swiglu(const Tensor& x);
// x [..., D], g [D]
Tensor rmsnorm(const Tensor& x, const Tensor& g, double eps);
// ids int32 [...], table [V, D] -> [..., D]; ids outside [0, V) are an error.
Tensor embedding(const Tensor& ids, const Tensor& table);
// The table [V_local, D] holds rows [start, start + V_local) of a vocabulary of `vocab` ids (ids
// outside [0, vocab) are an error): ids outside the slice give zero rows and no gradient.
// embedding(ids, table) is embedding_slice(ids, table, 0, V). (Vocabulary-parallel embedding,
// parallel/tp_ops.cpp, sums the slices over the tensor-parallel group.)
Tensor embedding_slice(const Tensor& ids, const Tensor& table, int64_t start, int64_t vocab);
// x [B, T, H, D], positions pos0 .. pos0+T-1
Tensor rope(const Tensor& x, double base, int64_t pos0 = 0);
// q [B, T, H, D], k [B, T, Hk, D], v [B, T, Hk, Dv] -> [B, T, H, Dv]; causal, window as in
// kernels/attention.h (window = visible keys incl. self; 0 = full causal)
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, int64_t window = 0);
// logits [N, V], targets int32 [N] -> scalar mean cross-entropy (fused with the softmax)
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);
// The pieces of the vocabulary-parallel cross-entropy (parallel/tp_ops.cpp; not differentiable;
// kernels/cross_entropy.h has the math). logits [N, V_local] are the vocabulary columns
// [start, start + V_local); targets int32 [N] are global ids, already range-checked.
//   cross_entropy_stats    -> [3, N]: per row the slice's max, sum of exp(logit - max), and the
//                             target's logit (0 outside the slice); f64 on the cpu, f32 on a GPU
//   cross_entropy_combine  all-gathered stats [P, 3, N] -> {loss rows [N], lse [N]} (its dtype)
//   cross_entropy_grad     this slice's dlogits = (exp(logits - lse) - onehot) * dscale
Tensor cross_entropy_stats(const Tensor& logits, const Tensor& targets, int64_t start);
std::pair<Tensor, Tensor> cross_entropy_combine(const Tensor& all);
Tensor cross_entropy_grad(const Tensor& logits, const Tensor& targets, const Tensor& lse, int64_t start,
                          double dscale);
// Differentiable dtype conversion (bf16 compute copies of fp32 master weights under mixed
// precision): y = x rounded to `dtype`; the gradient is converted back to x's dtype.
// Same dtype returns x itself.
Tensor cast(const Tensor& x, DType dtype);
// cast(x, copy.dtype()) whose value the caller already holds: `copy` (same shape and device) IS
// x rounded to copy's dtype (a persistent compute copy of a master weight). Returns a view of
// copy's data with cast()'s gradient; nothing is computed.
Tensor cast_cached(const Tensor& x, const Tensor& copy);
// [a | b] along `dim` (same dtype and device, equal sizes elsewhere); the gradient is split back.
Tensor concat(const Tensor& a, const Tensor& b, int64_t dim);

}  // namespace hyscale::ops

namespace hyscale::ops {

// ---- Mamba-1 and GMU building blocks (SPEC §2, §3)

// Selective scan (kernels/selective_scan.h): u, delta [B, T, Dc]; A_log [Dc, N]; Bm, Cm [B, T, N];
// D, dt_bias [Dc] -> y [B, T, Dc] = scan output with the D·u skip, before any gate.
// `chunk` = steps between saved states (memory O(B Dc N T / chunk) for backward).
// With z [B, T, Dc] defined, Mamba's output gate is fused: the result is y * silu(z) (gmu_gate's
// expression), the pre-gate y is never stored (the backward recomputes it), and z gets its
// gradient. z is read in place when its last dimension is dense and its (b, t) rows are evenly
// spaced, e.g. a column slice of in_proj's output.
// With final_state, *final_state = the state h after the last step, [B, Dc, N] (not
// differentiable; a view of the chunk states the forward saves anyway, fp32 on a GPU, u's dtype
// on the cpu): what step-wise decoding continues from after a prefill.
Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A_log, const Tensor& Bm, const Tensor& Cm,
                      const Tensor& D, const Tensor& dt_bias, int64_t chunk = 128, const Tensor& z = Tensor(),
                      Tensor* final_state = nullptr);
// Causal depthwise conv1d with bias: x [B, T, C], w [C, K] (1 <= K <= 8), bias [C] -> [B, T, C].
Tensor causal_conv1d(const Tensor& x, const Tensor& w, const Tensor& bias);
// silu(causal_conv1d(x, w, bias)) in one op (Mamba-1's conv + activation): the forward is the
// composition bit for bit on the CPU; the backward recomputes the conv output instead of saving it.
Tensor causal_conv1d_silu(const Tensor& x, const Tensor& w, const Tensor& bias);
// GMU gate: silu(p) * m, p and m of the same shape [..., d_mem].
Tensor gmu_gate(const Tensor& p, const Tensor& m);

}  // namespace hyscale::ops

namespace hyscale::ops {

// ---- differential attention (SPEC §5)
// lambda = exp(<lq1, lk1>) - exp(<lq2, lk2>) + lambda_init, a scalar tensor; the four vectors are [d].
Tensor diff_lambda(const Tensor& lq1, const Tensor& lk1, const Tensor& lq2, const Tensor& lk2, double lambda_init);
// a1 - lambda * a2 (a1, a2 same shape; lambda a scalar tensor)
Tensor diff_combine(const Tensor& a1, const Tensor& a2, const Tensor& lambda);
// Differential attention over head pairs: q [B, T, Hp, 2 hd], k and v [B, T, Hkp, 2 hd] (the two
// halves of q and k are the branches' queries and keys, v is read whole by both) ->
// attention(q1, k1, v) - lambda * attention(q2, k2, v), causal with `window` as in attention().
// On the cpu it is composed from attention() and diff_combine() (HYSCALE_DIFF_ATTN=split: from
// diff_attention_split). On a GPU, one of two ways (HYSCALE_DIFF_ATTN = fused | split | auto, auto
// when unset; any other value is an error, on every device):
//   fused: one kernel pair serves both branches (K/V tiles loaded once for both; any head dim,
//          f32 or bf16): on tensor cores for bf16 at hd 64 or 128 on sm_80+, else SIMT
//          (HYSCALE_DIFF_ATTN_MMA=0: SIMT always; kernels/cuda_diff_attention.h);
//   split: diff_attention_split below, i.e. the tensor-core flash-attention kernels, which need
//          bf16 and a branch head dim hd of 64 or 128 (Dv = D);
//   auto:  split where the tensor-core kernels apply, else fused (split stays the default there
//          until a GPU has timed the fused tensor-core kernels against it: bench kernels).
Tensor diff_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lambda, double scale,
                      int64_t window = 0);
// The same result composed from four head-dim-hd attention() calls (branch b = 1, 2 and value
// half e = 1, 2: attention(q_b, k_b, v_e), so that D = Dv), two concats and diff_combine(). Each
// branch's scores are computed twice (8 hd instead of 6 hd multiply-adds per visible pair), in
// exchange for the tensor cores where the fused kernels have none. Any device.
Tensor diff_attention_split(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lambda, double scale,
                            int64_t window = 0);

}  // namespace hyscale::ops
