// Differential attention pieces (SPEC §5) around the attention kernel:
//   lambda = exp(<lq1, lk1>) - exp(<lq2, lk2>) + lambda_init     (one scalar per layer)
//   out    = a1 - lambda * a2                                       (a1, a2, out [n] contiguous)
// Backward: d lq1 = g e1 lk1, d lk1 = g e1 lq1, d lq2 = -g e2 lk2, d lk2 = -g e2 lq2;
// da1 = g, da2 = -lambda g, dlambda = -sum(g * a2) (summed in double, fixed order).
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T>
T diff_lambda_fwd(const T* lq1, const T* lk1, const T* lq2, const T* lk2, int64_t d, double lambda_init);
template <class T>
void diff_lambda_bwd(const T* lq1, const T* lk1, const T* lq2, const T* lk2, int64_t d, T dlambda, T* dlq1, T* dlk1,
                     T* dlq2, T* dlk2);
template <class T> void diff_combine_fwd(const T* a1, const T* a2, T lambda, T* out, int64_t n);
template <class T>
void diff_combine_bwd(const T* a2, const T* g, T lambda, T* da1, T* da2, T* dlambda, int64_t n);

}  // namespace hyscale::kernels::cpu
