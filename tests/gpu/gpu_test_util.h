// Helpers shared by the gpu kernel tests (test_*_kernels.cpp): device upload, NaN-poisoned
// outputs (an unwritten element fails), host read-back as f32, relative max-norm error, storage
// rounding, raw device pointers. Needs a CUDA build.
#pragma once
#ifdef HYSCALE_WITH_CUDA
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace hyscale::gputest {

inline Tensor on_gpu(const Tensor& h) { return h.to(Device::cuda(0)); }
inline Tensor poisoned(const Shape& s, DType dt) {
  return Tensor::full(s, std::numeric_limits<double>::quiet_NaN(), DType::f32).to(dt).to(Device::cuda(0));
}
inline std::vector<float> back(const Tensor& d) { return d.to(Device::cpu()).to(DType::f32).to_vector<float>(); }
// Relative max-norm error max|got - want| / max(max|want|, floor); `floor` bounds the denominator
// from below (0 by default).
inline double rel(const std::vector<float>& got, const std::vector<float>& want, double floor = 0.0) {
  REQUIRE(got.size() == want.size());
  double num = 0, den = floor;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;  // poisoned element left unwritten (or NaN/inf produced)
    num = std::max(num, std::fabs(double(got[i]) - want[i]));
    den = std::max(den, std::fabs(double(want[i])));
  }
  return num / std::max(den, 1e-30);
}
// Host f32 copy of x rounded through the storage dtype (what the GPU kernel sees).
inline Tensor rounded(const Tensor& x, DType dt) { return x.to(dt).to(DType::f32); }
template <class T> T* dptr(const Tensor& t) { return static_cast<T*>(t.raw_data()); }
// True (with a message) where a case is too long for the CPU emulator of the CUDA execution model.
// tests/emu builds these tests as test_gpu_kernels_emu to check the tests themselves (references,
// poisoning, tolerances, repeat logic) without a GPU, where a kernel runs ~1e5 times slower: there
// cases over HYSCALE_EMU_MAX_T positions (default 600) are skipped. Always false on a real device.
inline bool emulator_skips([[maybe_unused]] int64_t t) {
#ifdef HYSCALE_CUDA_EMU
  static const int64_t max_t = [] {
    const char* e = std::getenv("HYSCALE_EMU_MAX_T");
    return e != nullptr && *e != '\0' ? std::atoll(e) : int64_t(600);
  }();
  if (t > max_t) {
    WARN("skipped on the CUDA emulator: " << t << " positions (> HYSCALE_EMU_MAX_T = " << max_t
                                          << "); runs on a GPU");
    return true;
  }
#endif
  return false;
}

}  // namespace hyscale::gputest
#endif  // HYSCALE_WITH_CUDA
