#include "kernels/cross_entropy.h"

#include "kernels/cpu/vec_math.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace hyscale::kernels::cpu {

template <class T>
void cross_entropy_fwd(const T* logits, const int32_t* targets, T* loss_rows, T* lse, int64_t N, int64_t V) {
#pragma omp parallel for schedule(static) if (N * V > 65536)
  for (int64_t n = 0; n < N; ++n) {
    const T* z = logits + n * V;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t v = 0; v < V; ++v) m = z[v] > m ? z[v] : m;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t v = 0; v < V; ++v) s += kexp<T>(z[v] - m);
    T l = m + std::log(s);
    lse[n] = l;
    loss_rows[n] = l - z[targets[n]];
  }
}

template <class T>
void cross_entropy_bwd(const T* logits, const int32_t* targets, const T* lse, T dscale, T* dlogits, int64_t N,
                       int64_t V, int64_t start) {
#pragma omp parallel for schedule(static) if (N * V > 65536)
  for (int64_t n = 0; n < N; ++n) {
    const T* z = logits + n * V;
    T* d = dlogits + n * V;
    const T l = lse[n];
#pragma omp simd
    for (int64_t v = 0; v < V; ++v) d[v] = kexp<T>(z[v] - l) * dscale;
    const int64_t t = static_cast<int64_t>(targets[n]) - start;
    if (t >= 0 && t < V) d[t] -= dscale;
  }
}

template <class T>
void cross_entropy_stats(const T* logits, const int32_t* targets, int64_t start, double* stats, int64_t N,
                         int64_t V) {
#pragma omp parallel for schedule(static) if (N * V > 65536)
  for (int64_t n = 0; n < N; ++n) {
    const T* z = logits + n * V;
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < V; ++v) m = std::max(m, static_cast<double>(z[v]));
    double s = 0;
    if (m != -std::numeric_limits<double>::infinity())
      for (int64_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(z[v]) - m);
    const int64_t t = static_cast<int64_t>(targets[n]) - start;
    stats[n] = m;
    stats[N + n] = s;
    stats[2 * N + n] = t >= 0 && t < V ? static_cast<double>(z[t]) : 0.0;
  }
}

void cross_entropy_combine(const double* all, int64_t P, double* loss_rows, double* lse, int64_t N) {
  for (int64_t n = 0; n < N; ++n) {
    double M = -std::numeric_limits<double>::infinity();
    for (int64_t p = 0; p < P; ++p) M = std::max(M, all[p * 3 * N + n]);
    double s = 0, tl = 0;
    for (int64_t p = 0; p < P; ++p) {
      const double m = all[p * 3 * N + n];
      if (m != -std::numeric_limits<double>::infinity()) s += all[p * 3 * N + N + n] * std::exp(m - M);
      tl += all[p * 3 * N + 2 * N + n];
    }
    lse[n] = M + std::log(s);
    loss_rows[n] = lse[n] - tl;
  }
}

template void cross_entropy_fwd<float>(const float*, const int32_t*, float*, float*, int64_t, int64_t);
template void cross_entropy_fwd<double>(const double*, const int32_t*, double*, double*, int64_t, int64_t);
template void cross_entropy_bwd<float>(const float*, const int32_t*, const float*, float, float*, int64_t, int64_t,
                                       int64_t);
template void cross_entropy_bwd<double>(const double*, const int32_t*, const double*, double, double*, int64_t,
                                        int64_t, int64_t);
template void cross_entropy_stats<float>(const float*, const int32_t*, int64_t, double*, int64_t, int64_t);
template void cross_entropy_stats<double>(const double*, const int32_t*, int64_t, double*, int64_t, int64_t);

}  // namespace hyscale::kernels::cpu
