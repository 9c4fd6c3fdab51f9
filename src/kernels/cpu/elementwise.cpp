#include "kernels/elementwise.h"

#include "kernels/cpu/vec_math.h"

#include <cmath>
#include <vector>

namespace hyscale::kernels::cpu {

// Parallelise only when there is enough work to amortise the fork/join.
static constexpr int64_t kParMin = 1 << 15;

template <class T> static inline T sigmoid(T x) { return ksigmoid<T>(x); }

template <class T> void add_inplace(T* acc, const T* x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
}
template <class T> void add(const T* a, const T* b, T* out, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}
template <class T> void mul(const T* a, const T* b, T* out, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}
template <class T> void scale(const T* a, T s, T* out, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) out[i] = s * a[i];
}

template <class T> void silu_fwd(const T* x, T* y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid(x[i]);
}
template <class T> void silu_bwd(const T* x, const T* dy, T* dx, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) {
    T s = sigmoid(x[i]);
    dx[i] = dy[i] * s * (T(1) + x[i] * (T(1) - s));
  }
}

template <class T> void swiglu_fwd(const T* x, T* y, int64_t rows, int64_t I) {
#pragma omp parallel for schedule(static) if (rows * I > kParMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* g = x + r * 2 * I;
    const T* v = g + I;
    T* o = y + r * I;
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) o[i] = g[i] * sigmoid(g[i]) * v[i];
  }
}
template <class T> void swiglu_bwd(const T* x, const T* dy, T* dx, int64_t rows, int64_t I) {
#pragma omp parallel for schedule(static) if (rows * I > kParMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* g = x + r * 2 * I;
    const T* v = g + I;
    const T* d = dy + r * I;
    T* dg = dx + r * 2 * I;
    T* dv = dg + I;
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) {
      T s = sigmoid(g[i]);
      T silu = g[i] * s;
      dg[i] = d[i] * v[i] * s * (T(1) + g[i] * (T(1) - s));
      dv[i] = d[i] * silu;
    }
  }
}

template <class T> double sum_squares(const T* x, int64_t n) {
  // Fixed-size blocks summed in order: the result does not depend on the thread count.
  constexpr int64_t kBlock = 1 << 14;
  const int64_t nb = (n + kBlock - 1) / kBlock;
  std::vector<double> part(static_cast<size_t>(nb), 0.0);
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t b = 0; b < nb; ++b) {
    double s = 0;
    const int64_t e = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < e; ++i) s += static_cast<double>(x[i]) * x[i];
    part[b] = s;
  }
  double s = 0;
  for (double p : part) s += p;
  return s;
}

#define HS_INST(T)                                                     \
  template void add_inplace<T>(T*, const T*, int64_t);                 \
  template void add<T>(const T*, const T*, T*, int64_t);               \
  template void mul<T>(const T*, const T*, T*, int64_t);               \
  template void scale<T>(const T*, T, T*, int64_t);                    \
  template void silu_fwd<T>(const T*, T*, int64_t);                    \
  template void silu_bwd<T>(const T*, const T*, T*, int64_t);          \
  template void swiglu_fwd<T>(const T*, T*, int64_t, int64_t);         \
  template void swiglu_bwd<T>(const T*, const T*, T*, int64_t, int64_t); \
  template double sum_squares<T>(const T*, int64_t);
HS_INST(float)
HS_INST(double)
#undef HS_INST

}  // namespace hyscale::kernels::cpu
