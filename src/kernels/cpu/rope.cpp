#include "kernels/rope.h"

#include <cmath>
#include <vector>

namespace hyscale::kernels::cpu {

template <class T>
static void rope_apply(const T* x, T* y, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0,
                       double sign) {
  const int64_t half = D / 2;
  std::vector<T> cs(static_cast<size_t>(T_ * half)), sn(static_cast<size_t>(T_ * half));
  for (int64_t t = 0; t < T_; ++t)
    for (int64_t i = 0; i < half; ++i) {
      double theta = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(D));
      double a = static_cast<double>(pos0 + t) * theta;
      cs[t * half + i] = static_cast<T>(std::cos(a));
      sn[t * half + i] = static_cast<T>(sign * std::sin(a));
    }
#pragma omp parallel for collapse(2) schedule(static) if (B * T_ * H * D > 65536)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T_; ++t) {
      const T* c = cs.data() + t * half;
      const T* s = sn.data() + t * half;
      for (int64_t h = 0; h < H; ++h) {
        const int64_t off = ((b * T_ + t) * H + h) * D;
        const T* xr = x + off;
        T* yr = y + off;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          T x1 = xr[i], x2 = xr[i + half];
          yr[i] = x1 * c[i] - x2 * s[i];
          yr[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
}

template <class T>
void rope_fwd(const T* x, T* y, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0) {
  rope_apply(x, y, B, T_, H, D, base, pos0, 1.0);
}
template <class T>
void rope_bwd(const T* dy, T* dx, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0) {
  rope_apply(dy, dx, B, T_, H, D, base, pos0, -1.0);
}

template void rope_fwd<float>(const float*, float*, int64_t, int64_t, int64_t, int64_t, double, int64_t);
template void rope_fwd<double>(const double*, double*, int64_t, int64_t, int64_t, int64_t, double, int64_t);
template void rope_bwd<float>(const float*, float*, int64_t, int64_t, int64_t, int64_t, double, int64_t);
template void rope_bwd<double>(const double*, double*, int64_t, int64_t, int64_t, int64_t, double, int64_t);

}  // namespace hyscale::kernels::cpu
