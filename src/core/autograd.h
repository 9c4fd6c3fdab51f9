// Reverse-mode autograd: every differentiable op records one Node on a tape
// (the graph of grad_fn pointers); Tensor::backward walks it in reverse
// topological order, accumulating gradients into leaves.
//
// Gradient-ready hooks: a leaf's hooks fire once per backward pass, as soon as
// every path into that leaf has contributed — the point at which a data-parallel
// reducer can start communicating that gradient while backward continues.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace hyscale {

class Node {
 public:
  virtual ~Node() = default;
  // Gradients w.r.t. each input, in the order of `inputs`; an undefined Tensor
  // means "no gradient" (input does not require grad).
  virtual std::vector<Tensor> backward(const Tensor& grad_out) = 0;
  virtual const char* name() const = 0;
  // Frees saved tensors once backward has used them.
  virtual void release() {}
  // A slice view's node (Tensor::slice): true, with its range along `dim` of its one input. The
  // engine then writes the gradient straight into that range of the input's gradient buffer
  // instead of calling backward() (which returns a zero-filled full-size tensor to be summed).
  virtual bool as_slice(int64_t& dim, int64_t& start, int64_t& end) const { return false; }

  std::vector<std::shared_ptr<TensorImpl>> inputs;  // inputs that require grad (others null)
  bool consumed = false;  // set once backward has run through this node
  const char* prof_scope = nullptr;  // the profiler's scope when recorded (core/profiler.h)
  bool needs_grad(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
};

// Autograd recording is on by default; NoGrad turns it off for its scope (thread-local).
bool grad_enabled();
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool prev_;
};

// True when an op over `ins` must record a node.
bool any_requires_grad(std::initializer_list<const Tensor*> ins);

// Attach `node` as the grad_fn of `out` when recording; sets node->inputs from `ins`.
// Returns `out` for chaining.
Tensor record(Tensor out, std::shared_ptr<Node> node, std::initializer_list<const Tensor*> ins);

// The engine behind Tensor::backward.
void run_backward(const Tensor& root, const Tensor& seed);

}  // namespace hyscale
