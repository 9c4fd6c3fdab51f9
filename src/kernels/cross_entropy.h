// Fused softmax + cross-entropy over the vocabulary.
// Layouts: logits, dlogits [N, V] contiguous; targets [N] int32 (range-checked by the op);
// loss_rows [N] per-row losses; lse [N] saved log-sum-exp.
//   loss_n = lse_n - logits[n, target_n]
//   dlogits = (softmax(logits) - onehot(target)) * dscale   (dscale = dL/dloss_n, e.g. 1/N)
// Probabilities are never stored: the backward recomputes exp(logit - lse).
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T>
void cross_entropy_fwd(const T* logits, const int32_t* targets, T* loss_rows, T* lse, int64_t N, int64_t V);
template <class T>
void cross_entropy_bwd(const T* logits, const int32_t* targets, const T* lse, T dscale, T* dlogits, int64_t N,
                       int64_t V);

}  // namespace hyscale::kernels::cpu
