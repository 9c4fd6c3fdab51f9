// Helpers of the emulator tests (tests/emu, label emu): random inputs (optionally rounded to
// bf16), "device" buffers with NaN-poisoned payloads, leading offsets (misalignment) and trailing
// canaries (an out-of-bounds write fails), and the relative max-norm error of kernels vs twins.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_emu.h"
#include "kernels/cuda.h"

namespace hyscale::emutest {

using bf16 = hyscale::kernels::cuda::bf16;  // uint16_t bits

inline float rbf(float x) { return emu::bf2f(emu::f2bf(x)); }
inline std::vector<float> rounded(std::vector<float> v) {
  for (auto& x : v) x = rbf(x);
  return v;
}
inline std::vector<float> randn(size_t n, uint64_t seed, float sd = 1.0f, bool bf = false) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = bf ? rbf(d(g)) : d(g);
  return v;
}
inline std::vector<float> uniform(size_t n, uint64_t seed, float lo, float hi, bool bf = false) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = bf ? rbf(d(g)) : d(g);
  return v;
}

// max |got - want| / max(max |want|, floor) over the elements where want is finite; infinite if
// the sizes differ, if got is non-finite where want is finite (an unwritten, NaN-poisoned
// element), or if got does not repeat a non-finite want (NaN where NaN, the same infinity).
inline double rel(const std::vector<float>& got, const std::vector<float>& want, double floor = 0.0) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0, den = floor;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(want[i])) {
      if (std::isnan(want[i]) ? !std::isnan(got[i]) : got[i] != want[i]) return INFINITY;
      continue;
    }
    if (!std::isfinite(got[i])) return INFINITY;
    num = std::max(num, std::fabs(double(got[i]) - want[i]));
    den = std::max(den, std::fabs(double(want[i])));
  }
  return num / std::max(den, 1e-30);
}

// A device buffer of T (float or bf16): `off` leading elements (to misalign the payload), n payload
// elements, kGuard trailing elements; everything but the payload holds a canary pattern.
template <class T> struct Buf {
  static constexpr size_t kGuard = 37;
  std::vector<T> v;
  size_t n, off;
  static T canary() {
    if constexpr (sizeof(T) == 2) {
      return T(0x7fb3);
    } else {
      const uint32_t c = 0x7fc5a5a5u;
      T t;
      std::memcpy(&t, &c, 4);
      return t;
    }
  }
  static T conv(float x) {
    if constexpr (std::is_same_v<T, float>) return x;
    else return emu::f2bf(x);
  }
  explicit Buf(const std::vector<float>& f, size_t off_ = 0) : n(f.size()), off(off_) {
    v.assign(off + n + kGuard, canary());
    for (size_t i = 0; i < n; ++i) v[off + i] = conv(f[i]);
  }
  explicit Buf(size_t n_, size_t off_ = 0) : n(n_), off(off_) {  // NaN payload (an output)
    v.assign(off + n + kGuard, canary());
    for (size_t i = 0; i < n; ++i) v[off + i] = conv(std::nanf(""));
  }
  T* p() { return v.data() + off; }
  std::vector<float> f() const {
    std::vector<float> r(n);
    for (size_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, float>) r[i] = v[off + i];
      else r[i] = emu::bf2f(v[off + i]);
    }
    return r;
  }
  bool guards_ok() const {
    const T c = canary();
    for (size_t i = 0; i < v.size(); ++i)
      if ((i < off || i >= off + n) && std::memcmp(&v[i], &c, sizeof c) != 0) return false;
    return true;
  }
};
// Bit-for-bit equality of two buffers (payload and guards; NaN-safe).
template <class T> bool same_bits(const Buf<T>& a, const Buf<T>& b) {
  return a.v.size() == b.v.size() && std::memcmp(a.v.data(), b.v.data(), a.v.size() * sizeof(T)) == 0;
}
// Leading offset (in elements) of operand k in a misaligned case `mis` (0: all aligned): a mix of
// offsets 0-4 so that operands are misaligned differently from each other.
inline size_t operand_offset(int mis, int k) { return mis ? size_t((k * 3 + mis) % 5) : 0; }

template <class T> constexpr bool is_bf = std::is_same_v<T, bf16>;
template <class T> const char* dt_name() { return is_bf<T> ? "bf16" : "f32"; }

// The kernel output in `got` matches `want` within `tol`, and nothing was written around it.
template <class T>
void check_close(const char* what, const Buf<T>& got, const std::vector<float>& want, double tol, double floor = 0.0) {
  const double r = rel(got.f(), want, floor);
  INFO(what << ": relative error " << r << " (tolerance " << tol << ")");
  CHECK(r < tol);
  INFO(what << ": guard elements around the output");
  CHECK(got.guards_ok());
}

// Kernels must not leave a barrier to exited threads (undefined behaviour in CUDA; the emulator
// releases it like the hardware does, and counts it). Call at the end of each kernel test.
inline void check_no_exit_barriers() {
  INFO("barriers released by exited threads (a thread returned before a __syncthreads the others reach)");
  CHECK(emu::stats.exit_barrier_events == 0);
}

}  // namespace hyscale::emutest
