// Module: a named tree of parameters. Parameter names are stable and
// hierarchical ("blocks.3.attn.wqkv"); checkpoints and optimizer groups use them.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace hyscale::nn {

class Module {
 public:
  virtual ~Module() = default;

  // All parameters of this module and its children, depth-first in registration order.
  std::vector<std::pair<std::string, Tensor>> named_parameters(const std::string& prefix = "") const;
  int64_t num_parameters() const;

 protected:
  // Registers a leaf parameter (requires_grad on); the name is local to this module.
  Tensor register_parameter(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// Initialisers (deterministic: the stream depends only on seed and the parameter's full name).
void init_normal(Tensor& t, double std, uint64_t seed, const std::string& name);
void init_uniform(Tensor& t, double bound, uint64_t seed, const std::string& name);

}  // namespace hyscale::nn
