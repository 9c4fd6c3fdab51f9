#include "nn/module.h"

#include "core/random.h"

namespace hyscale::nn {

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(const std::string& prefix) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, t] : params_) out.emplace_back(prefix + n, t);
  for (auto& [n, m] : children_) {
    auto sub = m->named_parameters(prefix + n + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  for (auto& [n, p] : params_) HS_CHECK(n != name, "duplicate parameter name '", name, "'");
  t.requires_grad_(true);
  t.set_name(name);
  params_.emplace_back(name, t);
  return t;
}

template <class F> static void fill_with(Tensor& t, uint64_t seed, const std::string& name, F&& draw) {
  HS_CHECK(t.is_contiguous() && t.device().is_cpu(), "init: parameter '", name, "' must be a contiguous CPU tensor");
  Rng rng(seed ^ stable_hash(name));
  const int64_t n = t.numel();
  if (t.dtype() == DType::f32) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(draw(rng));
  } else if (t.dtype() == DType::f64) {
    double* p = t.data<double>();
    for (int64_t i = 0; i < n; ++i) p[i] = draw(rng);
  } else {
    HS_FAIL("init: parameter '", name, "' has non-float dtype ", dtype_name(t.dtype()));
  }
}

void init_normal(Tensor& t, double std, uint64_t seed, const std::string& name) {
  fill_with(t, seed, name, [std](Rng& r) { return std * r.normal(); });
}
void init_uniform(Tensor& t, double bound, uint64_t seed, const std::string& name) {
  fill_with(t, seed, name, [bound](Rng& r) { return bound * (2.0 * r.uniform() - 1.0); });
}

}  // namespace hyscale::nn
