#include "kernels/cross_entropy.h"

#include "kernels/cpu/vec_math.h"

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
                       int64_t V) {
#pragma omp parallel for schedule(static) if (N * V > 65536)
  for (int64_t n = 0; n < N; ++n) {
    const T* z = logits + n * V;
    T* d = dlogits + n * V;
    const T l = lse[n];
#pragma omp simd
    for (int64_t v = 0; v < V; ++v) d[v] = kexp<T>(z[v] - l) * dscale;
    d[targets[n]] -= dscale;
  }
}

template void cross_entropy_fwd<float>(const float*, const int32_t*, float*, float*, int64_t, int64_t);
template void cross_entropy_fwd<double>(const double*, const int32_t*, double*, double*, int64_t, int64_t);
template void cross_entropy_bwd<float>(const float*, const int32_t*, const float*, float, float*, int64_t, int64_t);
template void cross_entropy_bwd<double>(const double*, const int32_t*, const double*, double, double*, int64_t,
                                        int64_t);

}  // namespace hyscale::kernels::cpu
