#include "train/optimizer.h"

#include <cmath>

#include "kernels/adamw.h"
#include "kernels/elementwise.h"

namespace hyscale::train {

namespace kc = hyscale::kernels::cpu;

bool is_vector_param(const std::string& name, const Tensor& t) {
  // SPEC §6.2: vector = name lacks "weight" ... in hyscale's naming, matrices are the 2-D
  // tensors of the blocks; embeddings/LM head/norms/biases/scalars are vectors.
  if (name == "wte" || name == "lm_head") return true;
  for (const char* s : {"norm", "ln_", "conv1d", "bias", "A_log", "lambda"})
    if (name.find(s) != std::string::npos) return true;
  return t.dim() < 2;
}

AdamW::AdamW(std::vector<std::pair<std::string, Tensor>> params, const OptimizerConfig& cfg)
    : params_(std::move(params)), cfg_(cfg) {
  groups_ = {ParamGroup{"matrix", cfg.matrix_lr_mult, cfg.weight_decay, {}},
             ParamGroup{"vector", cfg.vector_lr_mult, cfg.vector_weight_decay, {}}};
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& [name, p] = params_[i];
    HS_CHECK(p.dtype() == DType::f32 && p.device().is_cpu() && p.is_contiguous(), "AdamW: parameter '", name,
             "' must be a contiguous f32 CPU tensor, got ", p.desc());
    m_.push_back(Tensor::zeros(p.shape()));
    v_.push_back(Tensor::zeros(p.shape()));
    groups_[is_vector_param(name, p) ? 1 : 0].members.push_back(i);
  }
}

void AdamW::step(double lr) {
  ++step_;
  for (auto& g : groups_)
    for (size_t i : g.members) {
      Tensor& p = params_[i].second;
      Tensor grad = p.grad();
      if (!grad.defined()) continue;  // parameter unused this step
      kc::adamw_step(p.data<float>(), grad.data<float>(), m_[i].data<float>(), v_[i].data<float>(), p.numel(),
                     static_cast<float>(lr * g.lr_mult), static_cast<float>(cfg_.beta1),
                     static_cast<float>(cfg_.beta2), static_cast<float>(cfg_.eps),
                     static_cast<float>(g.weight_decay), step_);
    }
}

double AdamW::grad_norm() const {
  double ss = 0;
  for (auto& [name, p] : params_) {
    Tensor g = p.grad();
    if (g.defined()) ss += kc::sum_squares(g.data<float>(), g.numel());
  }
  return std::sqrt(ss);
}

void AdamW::scale_grads(double factor) {
  for (auto& [name, p] : params_) {
    Tensor g = p.grad();
    if (g.defined()) kc::scale(g.data<float>(), static_cast<float>(factor), g.data<float>(), g.numel());
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_) p.zero_grad();
}

double lr_at(const ScheduleConfig& s, double peak, int64_t step, int64_t max_steps) {
  if (s.warmup_steps > 0 && step < s.warmup_steps)
    return peak * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  if (s.decay == "constant") return peak;
  const double floor = s.min_lr_ratio * peak;
  const int64_t span = std::max<int64_t>(1, max_steps - s.warmup_steps);
  const double frac = std::min(1.0, static_cast<double>(step - s.warmup_steps) / static_cast<double>(span));
  if (s.decay == "cosine") return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * frac));
  return floor + (peak - floor) * (1.0 - frac);  // linear
}

}  // namespace hyscale::train
