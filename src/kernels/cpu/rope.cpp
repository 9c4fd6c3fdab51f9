#include "kernels/rope.h"

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

namespace hyscale::kernels::cpu {

// cos/sin tables [T, D/2] per (T, D, base, pos0), computed once in double and cached:
// every layer's q and k, forward and backward, reuse the same table.
template <class T> struct RopeTable {
  std::vector<T> cos, sin;
};

template <class T>
static std::shared_ptr<const RopeTable<T>> rope_table(int64_t T_, int64_t D, double base, int64_t pos0) {
  static std::mutex mu;
  static std::map<std::tuple<int64_t, int64_t, double, int64_t>, std::shared_ptr<const RopeTable<T>>> cache;
  const auto key = std::make_tuple(T_, D, base, pos0);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto t = std::make_shared<RopeTable<T>>();
  const int64_t half = D / 2;
  t->cos.resize(static_cast<size_t>(T_ * half));
  t->sin.resize(static_cast<size_t>(T_ * half));
  for (int64_t i = 0; i < half; ++i) {
    const double theta = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(D));
    for (int64_t p = 0; p < T_; ++p) {
      const double a = static_cast<double>(pos0 + p) * theta;
      t->cos[p * half + i] = static_cast<T>(std::cos(a));
      t->sin[p * half + i] = static_cast<T>(std::sin(a));
    }
  }
  if (cache.size() >= 64) cache.clear();  // generation with many lengths: bound the memory
  cache.emplace(key, t);
  return t;
}

template <class T>
static void rope_apply(const T* x, T* y, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0,
                       T sign) {
  const int64_t half = D / 2;
  const auto table = rope_table<T>(T_, D, base, pos0);
  const T* cs = table->cos.data();
  const T* sn = table->sin.data();
#pragma omp parallel for collapse(2) schedule(static) if (B * T_ * H * D > 65536)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T_; ++t) {
      const T* c = cs + t * half;
      const T* s = sn + t * half;
      for (int64_t h = 0; h < H; ++h) {
        const int64_t off = ((b * T_ + t) * H + h) * D;
        const T* xr = x + off;
        T* yr = y + off;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          T x1 = xr[i], x2 = xr[i + half];
          yr[i] = x1 * c[i] - sign * x2 * s[i];
          yr[i + half] = x2 * c[i] + sign * x1 * s[i];
        }
      }
    }
}

template <class T>
void rope_fwd(const T* x, T* y, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0) {
  rope_apply(x, y, B, T_, H, D, base, pos0, T(1));
}
template <class T>
void rope_bwd(const T* dy, T* dx, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0) {
  rope_apply(dy, dx, B, T_, H, D, base, pos0, T(-1));
}

template void rope_fwd<float>(const float*, float*, int64_t, int64_t, int64_t, int64_t, double, int64_t);
template void rope_fwd<double>(const double*, double*, int64_t, int64_t, int64_t, int64_t, double, int64_t);
template void rope_bwd<float>(const float*, float*, int64_t, int64_t, int64_t, int64_t, double, int64_t);
template void rope_bwd<double>(const double*, double*, int64_t, int64_t, int64_t, int64_t, double, int64_t);

}  // namespace hyscale::kernels::cpu
