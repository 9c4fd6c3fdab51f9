// Helpers shared by the gpu kernel tests (test_*_kernels.cpp): device upload, NaN-poisoned
// outputs (an unwritten element fails), host read-back as f32, relative max-norm error, storage
// rounding, raw device pointers. Needs a CUDA build.
#pragma once
#ifdef HYSCALE_WITH_CUDA
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
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

}  // namespace hyscale::gputest
#endif  // HYSCALE_WITH_CUDA
