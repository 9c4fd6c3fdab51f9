// AdamW with parameter groups (per-group learning-rate multiplier and weight
// decay), global gradient norm and clipping. Moments are fp32, one pair per
// parameter, addressable by parameter name for checkpoints.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "train/config.h"

namespace hyscale::train {

struct ParamGroup {
  std::string name;    // "matrix" | "vector"
  double lr_mult = 1;  // lr of the group = schedule lr * lr_mult
  double weight_decay = 0;
  std::vector<size_t> members;  // indices into AdamW::params()
};

// SPEC §6.2 group rule: a parameter is a "vector" when its name lacks "weight"-like
// matrix roles or names an embedding, LM head, norm or conv; everything 2-D inside
// the blocks (projections, MLP) is a "matrix".
bool is_vector_param(const std::string& name, const Tensor& t);

class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, Tensor>> params, const OptimizerConfig& cfg);

  // One update with learning rate `lr` (before group multipliers). Increments step().
  void step(double lr);
  // sqrt(sum of squared gradients) over every parameter (missing grads count as 0).
  double grad_norm() const;
  // Scales every gradient by `factor`.
  void scale_grads(double factor);
  void zero_grad();

  int64_t step_count() const { return step_; }
  void set_step_count(int64_t s) { step_ = s; }
  const std::vector<std::pair<std::string, Tensor>>& params() const { return params_; }
  Tensor& exp_avg(size_t i) { return m_[i]; }
  Tensor& exp_avg_sq(size_t i) { return v_[i]; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

 private:
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<Tensor> m_, v_;
  std::vector<ParamGroup> groups_;
  OptimizerConfig cfg_;
  int64_t step_ = 0;
};

// Learning rate at optimizer step `step` (0-based): linear warmup over warmup_steps,
// then linear / cosine decay to min_lr_ratio * lr at max_steps, or constant.
double lr_at(const ScheduleConfig& s, double peak_lr, int64_t step, int64_t max_steps);

}  // namespace hyscale::train
