// Module: a named tree of parameters. Parameter names are stable and
// hierarchical ("blocks.3.attn.wqkv"); checkpoints and optimizer groups use them.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace hyscale::nn {

// How a parameter is split over the tensor-parallel group. dim -1: replicated (every rank holds
// it whole). dim 0 / 1: split along rows / columns; a fused projection lists its logical parts
// (name suffix, global size along dim), e.g. wqkv = [q | k | v], and every part is split evenly:
// rank r holds the r-th 1/tp of each part, the parts concatenated in order. No parts: the whole
// dimension is one part.
struct ShardSpec {
  int dim = -1;
  std::vector<std::pair<std::string, int64_t>> parts;
};

// One logical tensor of a parameter (a part of a fused projection, or the whole parameter):
// its checkpoint name and global shape, and which rows/columns this rank holds: local
// [local_offset, local_offset + count) along `dim` = global [global_offset, ... + count).
struct LogicalSlice {
  std::string name;
  Shape global_shape;
  int dim = -1;  // -1: replicated, the whole tensor
  int64_t local_offset = 0, global_offset = 0, count = 0;
  int64_t fused_offset = 0;  // where this part starts along dim in the global fused tensor
};
std::vector<LogicalSlice> logical_slices(const std::string& name, const Shape& local_shape, const ShardSpec& spec,
                                         int tp_size, int tp_rank);
// Global shape of a (possibly fused) parameter from its local shape.
Shape global_shape(const Shape& local_shape, const ShardSpec& spec, int tp_size);

class Module {
 public:
  virtual ~Module() = default;

  // All parameters of this module and its children, depth-first in registration order.
  std::vector<std::pair<std::string, Tensor>> named_parameters(const std::string& prefix = "") const;
  int64_t num_parameters() const;
  // Shard specs, in the order of named_parameters.
  std::vector<std::pair<std::string, ShardSpec>> named_shard_specs(const std::string& prefix = "") const;
  // Moves every parameter (this module's and its children's) to `dev` in place: the tensors keep
  // their identity, so every holder (optimizer, hooks) sees the move. Call before building the
  // optimizer. Gradients are dropped.
  void to_device(Device dev);
  // Mixed precision: forward passes read each parameter through cw(), which returns a
  // differentiable copy in `dt` (bf16 compute copies of fp32 master weights; the gradient flows
  // back to the fp32 parameter in fp32). Applies to this module and its children.
  void set_compute_dtype(DType dt);
  // The dtype set by set_compute_dtype, if any.
  std::optional<DType> compute_dtype() const {
    return cast_ ? std::optional<DType>(compute_dtype_) : std::nullopt;
  }
  // Persistent compute copies (mixed precision): while set, cw(p) reads p's entry instead of
  // casting p every forward. Whoever installs them keeps each copy equal to its parameter rounded
  // to the compute dtype (the trainer: DistributedAdamW::set_compute_copies rewrites them every
  // step); nullptr uninstalls. Applies to this module and its children.
  struct ComputeCopies {
    std::unordered_map<const TensorImpl*, Tensor> by_param;
  };
  void set_compute_copies(std::shared_ptr<const ComputeCopies> copies);

 protected:
  // The parameter as the forward should read it: p itself, or its cast to the compute dtype.
  Tensor cw(const Tensor& p) const;
  // Likewise, but never narrower than fp32 (tiny parameters whose ops compute in fp32 anyway,
  // e.g. differential attention's lambda vectors: no bf16 round trip under mixed precision).
  Tensor cw_fp32(const Tensor& p) const;
  // ops::linear(x, cw(w)) for a weight w, except that under mixed precision it is
  // ops::linear_mp(x, w, compute copy of w): the persistent copy when installed, else a cast made
  // without a gradient node; w's gradient then comes out of the GEMM in fp32 (no bf16 gradient
  // and no cast of it per weight and micro-batch).
  Tensor lin(const Tensor& x, const Tensor& w) const;
  // Registers a leaf parameter (requires_grad on); the name is local to this module.
  Tensor register_parameter(const std::string& name, Tensor t, ShardSpec spec = {});
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<ShardSpec> specs_;
  bool cast_ = false;
  DType compute_dtype_ = DType::f32;
  std::shared_ptr<const ComputeCopies> copies_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// Initialisers (deterministic: the stream depends only on seed and the parameter's full name).
void init_normal(Tensor& t, double std, uint64_t seed, const std::string& name);
void init_uniform(Tensor& t, double bound, uint64_t seed, const std::string& name);

}  // namespace hyscale::nn
