#include "kernels/diff_attn.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace hyscale::kernels::cpu {

template <class T> static double dot(const T* a, const T* b, int64_t d) {
  double s = 0;
  for (int64_t i = 0; i < d; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

template <class T>
T diff_lambda_fwd(const T* lq1, const T* lk1, const T* lq2, const T* lk2, int64_t d, double lambda_init) {
  return static_cast<T>(std::exp(dot(lq1, lk1, d)) - std::exp(dot(lq2, lk2, d)) + lambda_init);
}

template <class T>
void diff_lambda_bwd(const T* lq1, const T* lk1, const T* lq2, const T* lk2, int64_t d, T g, T* dlq1, T* dlk1,
                     T* dlq2, T* dlk2) {
  const T e1 = static_cast<T>(std::exp(dot(lq1, lk1, d))), e2 = static_cast<T>(std::exp(dot(lq2, lk2, d)));
  for (int64_t i = 0; i < d; ++i) {
    dlq1[i] = g * e1 * lk1[i];
    dlk1[i] = g * e1 * lq1[i];
    dlq2[i] = -g * e2 * lk2[i];
    dlk2[i] = -g * e2 * lq2[i];
  }
}

template <class T> void diff_combine_fwd(const T* a1, const T* a2, T lambda, T* out, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = a1[i] - lambda * a2[i];
}

template <class T>
void diff_combine_bwd(const T* a2, const T* g, T lambda, T* da1, T* da2, T* dlambda, int64_t n) {
  constexpr int64_t kBlock = 1 << 14;  // fixed blocks: the sum does not depend on the thread count
  const int64_t nb = (n + kBlock - 1) / kBlock;
  std::vector<double> part(static_cast<size_t>(nb), 0.0);
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t b = 0; b < nb; ++b) {
    double s = 0;
    for (int64_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); ++i) {
      da1[i] = g[i];
      da2[i] = -lambda * g[i];
      s += static_cast<double>(g[i]) * a2[i];
    }
    part[b] = s;
  }
  double s = 0;
  for (double p : part) s += p;
  *dlambda = static_cast<T>(-s);
}

#define HS_INST(T)                                                                                           \
  template T diff_lambda_fwd<T>(const T*, const T*, const T*, const T*, int64_t, double);                  \
  template void diff_lambda_bwd<T>(const T*, const T*, const T*, const T*, int64_t, T, T*, T*, T*, T*);    \
  template void diff_combine_fwd<T>(const T*, const T*, T, T*, int64_t);                                   \
  template void diff_combine_bwd<T>(const T*, const T*, T, T*, T*, T*, int64_t);
HS_INST(float)
HS_INST(double)
#undef HS_INST

}  // namespace hyscale::kernels::cpu
