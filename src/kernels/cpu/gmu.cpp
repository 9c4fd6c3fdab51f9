#include "kernels/gmu.h"

#include "kernels/cpu/vec_math.h"

namespace hyscale::kernels::cpu {

template <class T> void gmu_gate_fwd(const T* p, const T* m, T* h, int64_t rows, int64_t d_mem) {
  const int64_t n = rows * d_mem;
#pragma omp parallel for simd schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) h[i] = p[i] * ksigmoid<T>(p[i]) * m[i];
}

template <class T>
void gmu_gate_bwd(const T* p, const T* m, const T* dh, T* dp, T* dm_accum, int64_t rows, int64_t d_mem) {
  const int64_t n = rows * d_mem;
#pragma omp parallel for simd schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    const T s = ksigmoid<T>(p[i]);
    dp[i] = dh[i] * m[i] * s * (T(1) + p[i] * (T(1) - s));
    dm_accum[i] += dh[i] * p[i] * s;
  }
}

template void gmu_gate_fwd<float>(const float*, const float*, float*, int64_t, int64_t);
template void gmu_gate_fwd<double>(const double*, const double*, double*, int64_t, int64_t);
template void gmu_gate_bwd<float>(const float*, const float*, const float*, float*, float*, int64_t, int64_t);
template void gmu_gate_bwd<double>(const double*, const double*, const double*, double*, double*, int64_t, int64_t);

}  // namespace hyscale::kernels::cpu
