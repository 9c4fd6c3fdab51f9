// Vectorisable elementary functions for the CPU kernels (internal header).
// glibc's expf is a scalar call the compiler cannot vectorise (without -ffast-math);
// this exp is branch-free, so `#pragma omp simd` loops run it 16 lanes at a time.
//
// expf_fast: x = k ln2 + r, |r| <= ln2/2 (Cody–Waite split of ln2), exp(r) by its
// degree-6 Taylor polynomial (truncation error < 1.2e-7 relative), times 2^k built in the
// exponent bits. Max relative error ~2 ulp against expf; exp(-inf) = 0, exp(+inf) = inf,
// NaN propagates. f64 kernels (gradient checks) keep std::exp.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>

namespace hyscale::kernels::cpu {

inline float expf_fast(float x) {
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Round-to-nearest via the 1.5*2^23 trick (vectorises; nearbyint may not).
  const float kf = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (xc - kf * 0.693145751953125f) - kf * 1.428606765330187e-06f;
  float p = 0.0013888889f;
  p = p * r + 0.008333334f;
  p = p * r + 0.041666668f;
  p = p * r + 0.16666667f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t k = static_cast<int32_t>(kf);
  const float scale = std::bit_cast<float>(static_cast<int32_t>((k + 127) << 23));
  float y = p * scale;
  y = x < -87.0f ? 0.0f : y;  // underflow (and -inf) -> 0
  y = x > 88.0f ? std::numeric_limits<float>::infinity() : y;
  return x != x ? x : y;  // NaN in, NaN out
}

// Scratch buffer aligned to 64 bytes. Vectorised reductions must not depend on where the
// heap put a buffer (a compiler may peel a loop for alignment, changing summation order),
// or losses would stop being bit-reproducible.
template <class T> class AlignedBuf {
 public:
  explicit AlignedBuf(size_t n) : n_(n), p_(static_cast<T*>(std::aligned_alloc(64, ((n * sizeof(T) + 63) / 64) * 64 + 64))) {
    if (!p_) throw std::bad_alloc();
  }
  ~AlignedBuf() { std::free(p_); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  T* data() { return p_; }
  T& operator[](size_t i) { return p_[i]; }
  T* begin() { return p_; }
  T* end() { return p_ + n_; }

 private:
  size_t n_;
  T* p_;
};

// log(1 + z) for z in [0, 1], vectorisable: w = 1 + z = m 2^e with m in [sqrt(1/2), sqrt(2)) (e is 0
// or 1), log(m) = 2 atanh(s), s = (m - 1)/(m + 1), |s| <= 0.1716, by the atanh series up to s^9 (the
// next term is < 3e-9 relative); the rounding of w is undone by the factor z / (w - 1) (exact for
// w == 1: log1p(z) = z there).
inline float log1p_unit(float z) {
  const float w = 1.0f + z;
  const bool hi = w > 1.41421356f;
  const float m = hi ? 0.5f * w : w;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  const float lm = 2.0f * s * p;
  const float lw = hi ? lm + 0.693147182f : lm;  // + ln 2 (rounded to float)
  const float d = w - 1.0f;
  return d == 0.0f ? z : lw * (z / d);
}

// softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), branch-free (vectorises; glibc's
// log1pf does not): within 3.3e-7 relative of the exact value over [-60, 60] (log1pf(expf(x)) with
// expf_fast: 2.3e-7); NaN propagates (through expf_fast).
inline float softplusf_fast(float x) {
  const float ax = x < 0.0f ? -x : x;
  return (x > 0.0f ? x : 0.0f) + log1p_unit(expf_fast(-ax));
}

template <class T> inline T kexp(T x) { return std::exp(x); }
template <> inline float kexp<float>(float x) { return expf_fast(x); }

template <class T> inline T ksigmoid(T x) { return T(1) / (T(1) + kexp<T>(-x)); }

}  // namespace hyscale::kernels::cpu
