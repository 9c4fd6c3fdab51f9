#include "nn/module.h"

#include "core/ops.h"
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

std::vector<std::pair<std::string, ShardSpec>> Module::named_shard_specs(const std::string& prefix) const {
  std::vector<std::pair<std::string, ShardSpec>> out;
  for (size_t i = 0; i < params_.size(); ++i) out.emplace_back(prefix + params_[i].first, specs_[i]);
  for (auto& [n, m] : children_) {
    auto sub = m->named_shard_specs(prefix + n + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

void Module::to_device(Device dev) {
  for (auto& [n, t] : params_) {
    if (t.device() == dev) continue;
    Tensor moved = t.detach().contiguous().to(dev);
    TensorImpl& im = t.impl();
    im.storage = moved.impl().storage;
    im.offset = moved.impl().offset;
    im.strides = moved.impl().strides;
    im.grad.reset();
  }
  for (auto& [n, m] : children_) m->to_device(dev);
}

void Module::set_compute_dtype(DType dt) {
  HS_CHECK(is_floating(dt), "compute dtype must be floating, got ", dtype_name(dt));
  cast_ = true;
  compute_dtype_ = dt;
  for (auto& [n, m] : children_) m->set_compute_dtype(dt);
}

void Module::set_compute_copies(std::shared_ptr<const ComputeCopies> copies) {
  copies_ = copies;
  for (auto& [n, m] : children_) m->set_compute_copies(copies);
}

Tensor Module::cw(const Tensor& p) const {
  if (!cast_ || p.dtype() == compute_dtype_) return p;
  if (copies_) {
    auto it = copies_->by_param.find(p.impl_ptr().get());
    if (it != copies_->by_param.end() && it->second.dtype() == compute_dtype_) return ops::cast_cached(p, it->second);
  }
  return ops::cast(p, compute_dtype_);
}

Tensor Module::lin(const Tensor& x, const Tensor& w) const {
  if (!cast_ || w.dtype() == compute_dtype_) return ops::linear(x, w);
  Tensor wc;
  if (copies_) {
    auto it = copies_->by_param.find(w.impl_ptr().get());
    if (it != copies_->by_param.end() && it->second.dtype() == compute_dtype_) wc = it->second;
  }
  if (!wc.defined()) {
    NoGrad ng;
    wc = w.detach().to(compute_dtype_);  // as ops::cast rounds
  }
  return ops::linear_mp(x, w, wc);
}

Tensor Module::cw_fp32(const Tensor& p) const {
  if (cast_ && compute_dtype_ == DType::bf16) return p;
  return cw(p);
}

Shape global_shape(const Shape& local, const ShardSpec& spec, int tp) {
  Shape g = local;
  if (spec.dim >= 0) g[static_cast<size_t>(spec.dim)] *= tp;
  return g;
}

std::vector<LogicalSlice> logical_slices(const std::string& name, const Shape& local, const ShardSpec& spec, int tp,
                                         int rank) {
  std::vector<LogicalSlice> out;
  if (spec.dim < 0) {
    LogicalSlice s;
    s.name = name;
    s.global_shape = local;
    s.count = local.empty() ? 1 : local[0];
    out.push_back(s);
    return out;
  }
  const size_t d = static_cast<size_t>(spec.dim);
  HS_CHECK(d < local.size(), "parameter '", name, "': shard dim ", spec.dim, " outside its shape ", shape_str(local));
  auto parts = spec.parts;
  if (parts.empty()) parts.emplace_back("", local[d] * tp);
  int64_t local_off = 0, fused_off = 0;
  for (auto& [suffix, size] : parts) {
    HS_CHECK(size % tp == 0, "parameter '", name, (suffix.empty() ? "" : "." + suffix), "': size ", size,
             " along dim ", spec.dim, " is not divisible by the tensor-parallel size ", tp);
    LogicalSlice s;
    s.name = suffix.empty() ? name : name + "." + suffix;
    s.global_shape = local;
    s.global_shape[d] = size;
    s.dim = spec.dim;
    s.count = size / tp;
    s.local_offset = local_off;
    s.global_offset = s.count * rank;
    s.fused_offset = fused_off;
    local_off += s.count;
    fused_off += size;
    out.push_back(s);
  }
  HS_CHECK(local_off == local[d], "parameter '", name, "': parts sum to ", local_off, " local rows, tensor has ",
           local[d]);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

Tensor Module::register_parameter(const std::string& name, Tensor t, ShardSpec spec) {
  for (auto& [n, p] : params_) HS_CHECK(n != name, "duplicate parameter name '", name, "'");
  t.requires_grad_(true);
  t.set_name(name);
  params_.emplace_back(name, t);
  specs_.push_back(std::move(spec));
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
