// Fused softmax + cross-entropy over the vocabulary.
// Layouts: logits, dlogits [N, V] contiguous; targets [N] int32 (range-checked by the op);
// loss_rows [N] per-row losses; lse [N] saved log-sum-exp.
//   loss_n = lse_n - logits[n, target_n]
//   dlogits = (softmax(logits) - onehot(target)) * dscale   (dscale = dL/dloss_n, e.g. 1/N)
// Probabilities are never stored: the backward recomputes exp(logit - lse).
//
// Vocabulary-parallel pieces (parallel/tp_ops.cpp): logits [N, V] are the columns
// [start, start + V) of the vocabulary. Each rank reduces its slice to three numbers per row,
// the ranks all-gather them, and every rank combines the same gathered numbers in the same
// order (so every rank holds the same loss and lse); the full logits are never gathered.
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T>
void cross_entropy_fwd(const T* logits, const int32_t* targets, T* loss_rows, T* lse, int64_t N, int64_t V);
// start: the first vocabulary column in logits (0 for a whole vocabulary); a target outside
// [start, start + V) subtracts nothing from this slice's gradient.
template <class T>
void cross_entropy_bwd(const T* logits, const int32_t* targets, const T* lse, T dscale, T* dlogits, int64_t N,
                       int64_t V, int64_t start);

// stats [3, N]: per row the slice's max m, sum of exp(logit - m), and the target's logit (0
// where the target is outside the slice). An all -inf row has m = -inf and sum 0.
template <class T>
void cross_entropy_stats(const T* logits, const int32_t* targets, int64_t start, double* stats, int64_t N,
                         int64_t V);
// all [P, 3, N]: the stats of P slices; lse_n = M + log(sum_p s_p exp(m_p - M)) with M the
// largest m_p, loss_n = lse_n - (sum_p target logit_p). Fixed order over p.
void cross_entropy_combine(const double* all, int64_t P, double* loss_rows, double* lse, int64_t N);

}  // namespace hyscale::kernels::cpu
