#include "kernels/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace hyscale::kernels::cpu {

template <class T>
void rmsnorm_fwd(const T* x, const T* g, T* y, T* rstd, int64_t rows, int64_t D, double eps) {
#pragma omp parallel for schedule(static) if (rows * D > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    // Accumulate in double for f64 checks and in float (vectorised) for f32.
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < D; ++i) ss += xr[i] * xr[i];
    T rs = static_cast<T>(1.0 / std::sqrt(static_cast<double>(ss) / D + eps));
    rstd[r] = rs;
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * rs * g[i];
  }
}

template <class T>
void rmsnorm_bwd(const T* x, const T* g, const T* rstd, const T* dy, T* dx, T* dg, int64_t rows, int64_t D) {
  // A fixed number of row chunks, independent of the thread count, keeps dg bit-reproducible.
  const int64_t nchunks = std::min<int64_t>(rows, 32);
  std::vector<T> part(static_cast<size_t>(nchunks * D), T(0));
#pragma omp parallel for schedule(static) if (rows * D > 16384)
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t r0 = rows * c / nchunks, r1 = rows * (c + 1) / nchunks;
    T* pg = part.data() + c * D;
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * D;
      const T* dyr = dy + r * D;
      T* dxr = dx + r * D;
      const T rs = rstd[r];
      T dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < D; ++i) dot += dyr[i] * g[i] * xr[i];
      const T coef = dot * rs * rs / D;  // mean(xhat * g * dy) / rstd... folded: xhat*mean = x*rs*(dot*rs/D)
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) {
        dxr[i] = rs * (g[i] * dyr[i] - xr[i] * coef);
        pg[i] += dyr[i] * xr[i] * rs;
      }
    }
  }
  for (int64_t c = 0; c < nchunks; ++c)
    for (int64_t i = 0; i < D; ++i) dg[i] += part[c * D + i];
}

template void rmsnorm_fwd<float>(const float*, const float*, float*, float*, int64_t, int64_t, double);
template void rmsnorm_fwd<double>(const double*, const double*, double*, double*, int64_t, int64_t, double);
template void rmsnorm_bwd<float>(const float*, const float*, const float*, const float*, float*, float*, int64_t,
                                 int64_t);
template void rmsnorm_bwd<double>(const double*, const double*, const double*, const double*, double*, double*,
                                  int64_t, int64_t);

}  // namespace hyscale::kernels::cpu
