// The differentiable op API. Each op validates its inputs (errors name the op
// and the offending shapes/dtypes), calls the kernel for the tensors' device and
// dtype (f32, or f64 for gradient checks), and records one autograd node whose
// backward calls the hand-written backward kernel.
#pragma once
#include "core/autograd.h"
#include "core/tensor.h"

namespace hyscale::ops {

// y[..., out] = x[..., in] @ w[out, in]^T   (PyTorch Linear convention, no bias)
Tensor linear(const Tensor& x, const Tensor& w);
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
// x [B, T, H, D], positions pos0 .. pos0+T-1
Tensor rope(const Tensor& x, double base, int64_t pos0 = 0);
// q [B, T, H, D], k/v [B, T, Hk, D] -> [B, T, H, D]; causal, window as in kernels/attention.h
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, int64_t window = 0);
// logits [N, V], targets int32 [N] -> scalar mean cross-entropy (fused with the softmax)
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);

}  // namespace hyscale::ops
