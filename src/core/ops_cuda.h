// The CUDA implementations behind core/ops.h (internal header). Each op in ops*.cpp validates
// its inputs once (shapes, dtypes, devices) and, when they live on a CUDA device, calls the
// function of the same name here with contiguous inputs; these launch the kernels of
// kernels/cuda*.h and record the autograd node whose backward launches the backward kernels.
// Dtypes: f32, or bf16 storage with fp32 math inside every kernel; statistics (RMSNorm's rstd,
// the log-sum-exps) and parameter-gradient reductions are fp32. Only built with CUDA.
#pragma once
#ifdef HYSCALE_WITH_CUDA
#include "core/autograd.h"
#include "core/tensor.h"

#include <utility>

namespace hyscale::ops::cuda_impl {

// master: linear_mp's master weight (the gradient goes to it, in its dtype), or nullptr.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor* master = nullptr);
Tensor bmm(const Tensor& a, const Tensor& b, bool ta, bool tb);
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& a, double s);
Tensor silu(const Tensor& x);
Tensor swiglu(const Tensor& x);
Tensor rmsnorm(const Tensor& x, const Tensor& g, double eps);
Tensor embedding(const Tensor& ids, const Tensor& table, int64_t start);  // ops::embedding_slice
Tensor rope(const Tensor& x, double base, int64_t pos0);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, int64_t window);
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);
Tensor cross_entropy_stats(const Tensor& logits, const Tensor& targets, int64_t start);
std::pair<Tensor, Tensor> cross_entropy_combine(const Tensor& all);
Tensor cross_entropy_grad(const Tensor& logits, const Tensor& targets, const Tensor& lse, int64_t start,
                          double dscale);
// z: the fused gate (undefined: none), rows ldz apart (ops::selective_scan checked it).
Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A_log, const Tensor& Bm, const Tensor& Cm,
                      const Tensor& D, const Tensor& dt_bias, int64_t chunk, const Tensor& z, int64_t ldz,
                      Tensor* final_state = nullptr);
Tensor causal_conv1d(const Tensor& x, const Tensor& w, const Tensor& bias);
Tensor causal_conv1d_silu(const Tensor& x, const Tensor& w, const Tensor& bias);
Tensor gmu_gate(const Tensor& p, const Tensor& m);
Tensor diff_lambda(const Tensor& lq1, const Tensor& lk1, const Tensor& lq2, const Tensor& lk2, double lambda_init);
Tensor diff_combine(const Tensor& a1, const Tensor& a2, const Tensor& lambda);
Tensor diff_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lambda, double scale,
                      int64_t window);

}  // namespace hyscale::ops::cuda_impl
#endif
