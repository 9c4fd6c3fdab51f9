// Finite-difference gradient checking in f64 (tests only).
// L = sum(f(inputs) * W) for a fixed random W; the analytic gradient comes from
// backward(W), the numeric one from central differences (x ± eps).
#pragma once
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <vector>

#include "core/autograd.h"
#include "core/random.h"
#include "core/tensor.h"

namespace hyscale::testing {

inline Tensor randn(const Shape& s, uint64_t seed, double scale = 1.0, DType dt = DType::f64) {
  Rng r(seed);
  Tensor t = Tensor::empty(s, DType::f64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = scale * r.normal();
  return dt == DType::f64 ? t : t.to(dt);
}

inline Tensor randint(const Shape& s, int32_t hi, uint64_t seed) {
  Rng r(seed);
  Tensor t = Tensor::empty(s, DType::i32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = static_cast<int32_t>(r.below(hi));
  return t;
}

inline double weighted_sum(const Tensor& y, const Tensor& w) {
  Tensor yc = y.contiguous();
  double s = 0;
  for (int64_t i = 0; i < yc.numel(); ++i) s += yc.data<double>()[i] * w.data<double>()[i];
  return s;
}

// Checks d/d(inputs[i]) for every floating input that requires grad. At most
// `max_elems` elements per input are probed (spread evenly), to keep tests fast.
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                      double eps = 1e-6, double rtol = 1e-5, double atol = 1e-8, int64_t max_elems = 200) {
  for (auto& t : inputs)
    if (is_floating(t.dtype())) t.requires_grad_(true);
  Tensor y = f(inputs);
  Tensor w = randn(y.shape(), 777);
  y.backward(w);
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor x = inputs[k];
    if (!is_floating(x.dtype())) continue;
    Tensor g = x.grad();
    REQUIRE(g.defined());
    const int64_t n = x.numel();
    const int64_t stride = std::max<int64_t>(1, n / max_elems);
    NoGrad ng;
    double* px = x.data<double>();
    double worst = 0;
    for (int64_t i = 0; i < n; i += stride) {
      const double orig = px[i];
      px[i] = orig + eps;
      const double lp = weighted_sum(f(inputs), w);
      px[i] = orig - eps;
      const double lm = weighted_sum(f(inputs), w);
      px[i] = orig;
      const double num = (lp - lm) / (2 * eps);
      const double ana = g.data<double>()[i];
      const double err = std::fabs(num - ana) / (atol + rtol * std::max(std::fabs(num), std::fabs(ana)));
      worst = std::max(worst, err);
      if (err > 1.0) {
        INFO("input " << k << " element " << i << ": numeric " << num << " vs analytic " << ana);
        REQUIRE(err <= 1.0);
      }
    }
    INFO("input " << k << " worst normalised error " << worst);
    CHECK(worst <= 1.0);
  }
}

// Whole-model check: every parameter (f64) of `model`, `probes` elements each, of the mean
// cross-entropy of (ids, tgt). M is any model type with named_parameters() and loss().
template <class M>
void check_model_gradients(M& model, const Tensor& ids, const Tensor& tgt, int64_t probes, double rtol = 1e-5,
                           double atol = 1e-7) {
  model.loss(ids, tgt).backward();
  NoGrad ng;
  for (auto& [name, p] : model.named_parameters()) {
    INFO("parameter " << name);
    Tensor g = p.grad();
    REQUIRE(g.defined());
    double* x = p.template data<double>();
    const int64_t n = p.numel(), stride = std::max<int64_t>(1, n / probes);
    for (int64_t i = 0; i < n; i += stride) {
      const double orig = x[i], eps = 1e-6;
      x[i] = orig + eps;
      const double lp = model.loss(ids, tgt).item();
      x[i] = orig - eps;
      const double lm = model.loss(ids, tgt).item();
      x[i] = orig;
      const double num = (lp - lm) / (2 * eps), ana = g.template data<double>()[i];
      INFO("element " << i << " numeric " << num << " analytic " << ana);
      REQUIRE(std::fabs(num - ana) <= atol + rtol * std::fabs(num));
    }
  }
}

}  // namespace hyscale::testing
