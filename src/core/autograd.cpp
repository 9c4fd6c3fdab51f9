#include "core/autograd.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "core/profiler.h"
#include "kernels/elementwise.h"
#ifdef HYSCALE_WITH_CUDA
#include "kernels/cuda_hybrid.h"
#endif

namespace hyscale {

namespace {
thread_local bool g_grad_enabled = true;

// acc += g (same shape, CPU, f32/f64). `acc` is exclusively owned by the engine.
void accumulate_into(Tensor& acc, const Tensor& g) {
  HS_CHECK(acc.shape() == g.shape(), "autograd: gradient shape ", shape_str(g.shape()),
           " does not match accumulated shape ", shape_str(acc.shape()));
  Tensor gc = g.contiguous();
  if (gc.dtype() != acc.dtype()) gc = gc.to(acc.dtype());
  if (gc.device() != acc.device()) gc = gc.to(acc.device());
  if (acc.device().is_cuda()) {
#ifdef HYSCALE_WITH_CUDA
    if (acc.dtype() == DType::f32)
      kernels::cuda::add_inplace<float>(acc.data<float>(), gc.data<float>(), acc.numel());
    else if (acc.dtype() == DType::bf16)
      kernels::cuda::add_inplace<kernels::cuda::bf16>(static_cast<kernels::cuda::bf16*>(acc.raw_data()),
                                                      static_cast<const kernels::cuda::bf16*>(gc.raw_data()),
                                                      acc.numel());
    else
      HS_FAIL("autograd: cannot accumulate gradients of dtype ", dtype_name(acc.dtype()), " on ", acc.device().str());
    return;
#endif
  }
  if (acc.dtype() == DType::f32)
    kernels::cpu::add_inplace(acc.data<float>(), gc.data<float>(), acc.numel());
  else if (acc.dtype() == DType::f64)
    kernels::cpu::add_inplace(acc.data<double>(), gc.data<double>(), acc.numel());
  else
    HS_FAIL("autograd: cannot accumulate gradients of dtype ", dtype_name(acc.dtype()));
}

// True when nothing but `t` refers to its data: the engine may then keep it as an
// accumulator and add into it in place (no copy).
bool exclusive(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.impl().storage.use_count() == 1 && t.is_contiguous();
}

// An owned, contiguous copy (gradients returned by nodes may alias each other).
Tensor owned_copy(const Tensor& g) {
  NoGrad ng;
  Tensor c = Tensor::empty(g.shape(), g.dtype(), g.device());
  c.copy_from(g);
  return c;
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGrad::NoGrad() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGrad::~NoGrad() { g_grad_enabled = prev_; }

bool any_requires_grad(std::initializer_list<const Tensor*> ins) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : ins)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, std::shared_ptr<Node> node, std::initializer_list<const Tensor*> ins) {
  if (prof::enabled()) {
    node->prof_scope = prof::scope();
    prof::mark("fwd", node->name());
  }
  if (!any_requires_grad(ins)) return out;
  node->inputs.clear();
  for (const Tensor* t : ins)
    node->inputs.push_back(t && t->defined() && t->requires_grad() ? t->impl_ptr() : nullptr);
  out.impl().grad_fn = std::move(node);
  out.impl().requires_grad = true;
  return out;
}

void run_backward(const Tensor& root, const Tensor& seed_in) {
  HS_CHECK(root.requires_grad(), "backward() on a tensor that does not require grad");
  Tensor seed = seed_in;
  if (!seed.defined()) {
    HS_CHECK(root.numel() == 1, "backward() without a seed needs a scalar, got shape ", shape_str(root.shape()));
    seed = Tensor::full(root.shape(), 1.0, root.dtype());
  }
  HS_CHECK(seed.shape() == root.shape(), "backward(): seed shape ", shape_str(seed.shape()),
           " does not match output shape ", shape_str(root.shape()));
  // A host seed (e.g. 1/accumulation steps) for a device or lower-precision root.
  if (seed.device() != root.device() || seed.dtype() != root.dtype()) {
    NoGrad ng;
    seed = seed.to(root.dtype()).to(root.device());
  }

  // Leaf root: just accumulate.
  auto fire_hooks = [](TensorImpl* leaf) {
    if (leaf->grad_ready_hooks.empty()) return;
    Tensor g(leaf->grad);
    for (auto& h : leaf->grad_ready_hooks) h(g);
  };
  auto add_to_leaf = [](TensorImpl* leaf, const Tensor& g) {
    if (!leaf->grad) {
      leaf->grad = exclusive(g) ? g.impl_ptr() : owned_copy(g).impl_ptr();
    } else {
      Tensor acc(leaf->grad);
      accumulate_into(acc, g);
    }
  };
  if (!root.grad_fn()) {
    add_to_leaf(&root.impl(), seed);
    fire_hooks(&root.impl());
    return;
  }

  // 1. Discover the graph: dependency counts per node and per leaf.
  std::unordered_map<Node*, int> deps;
  std::unordered_map<TensorImpl*, int> leaf_pending;
  std::vector<Node*> stack{root.grad_fn().get()};
  deps[root.grad_fn().get()] = 0;
  // Owning references: clearing a node's inputs below may drop the last other
  // reference to an upstream node that is still waiting to run.
  std::vector<std::shared_ptr<Node>> order{root.grad_fn()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& in : n->inputs) {
      if (!in) continue;
      if (in->grad_fn) {
        Node* m = in->grad_fn.get();
        auto it = deps.find(m);
        if (it == deps.end()) {
          deps[m] = 1;
          stack.push_back(m);
          order.push_back(in->grad_fn);
        } else {
          it->second++;
        }
      } else if (in->requires_grad) {
        leaf_pending[in.get()]++;
      }
    }
  }
  HS_CHECK(!order.empty(), "backward(): empty graph");

  // 2. Process nodes whose every consumer has run (Kahn's algorithm).
  std::unordered_map<Node*, Tensor> pending;
  pending[root.grad_fn().get()] = seed;
  std::vector<Node*> ready{root.grad_fn().get()};
  // Slices' gradients land in their ranges of the sliced tensor's gradient buffer: while every
  // contribution to pending[m] came from slices along one dim into disjoint ranges, the buffer is
  // uninitialised outside them (scattered[m] lists them) and nothing was added (e.g. the q, k, v
  // slices of a fused projection: three copies instead of three zero-filled full-size gradients
  // and two sums). settle() zero-fills the rest when anything else arrives or m runs.
  struct Scatter {
    int64_t dim;
    std::vector<std::pair<int64_t, int64_t>> ranges;
  };
  std::unordered_map<Node*, Scatter> scattered;
  auto settle = [&](Node* m) {
    auto it = scattered.find(m);
    if (it == scattered.end()) return;
    Tensor& buf = pending[m];
    auto ranges = it->second.ranges;
    const int64_t d = it->second.dim;
    std::sort(ranges.begin(), ranges.end());
    int64_t pos = 0;
    for (const auto& [s, e] : ranges) {
      if (s > pos) buf.slice(d, pos, s).zero();
      pos = std::max(pos, e);
    }
    if (pos < buf.size(d)) buf.slice(d, pos, buf.size(d)).zero();
    scattered.erase(it);
  };
  // Node n is a slice of m's output: writes g into its range when that keeps the invariant above.
  auto scatter_slice = [&](Node* n, const Tensor& g) -> bool {
    int64_t d = 0, s = 0, e = 0;
    if (n->inputs.size() != 1 || !n->inputs[0] || !n->inputs[0]->grad_fn || !n->as_slice(d, s, e)) return false;
    const auto& in = n->inputs[0];
    Node* m = in->grad_fn.get();
    auto pit = pending.find(m);
    if (pit == pending.end() || !pit->second.defined()) {
      Tensor buf = Tensor::empty(in->shape, in->dtype, in->storage->device());
      buf.slice(d, s, e).copy_from(g);
      pending[m] = buf;
      scattered[m] = Scatter{d, {{s, e}}};
      return true;
    }
    auto sit = scattered.find(m);
    if (sit == scattered.end() || sit->second.dim != d || !exclusive(pit->second)) return false;
    for (const auto& [s0, e0] : sit->second.ranges)
      if (s < e0 && s0 < e) return false;  // overlaps a range already written: add instead
    pit->second.slice(d, s, e).copy_from(g);
    sit->second.ranges.emplace_back(s, e);
    return true;
  };
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    Tensor g = std::move(pending[n]);
    pending.erase(n);
    HS_CHECK(g.defined(), "backward(): node '", n->name(), "' received no gradient");
    HS_CHECK(!n->consumed, "backward(): node '", n->name(),
             "' was already used by an earlier backward (its saved tensors are freed)");
    bool scattered_here = false;
    {
      NoGrad ng;
      scattered_here = scatter_slice(n, g);
    }
    if (scattered_here) {
      g = Tensor();
      Node* m = n->inputs[0]->grad_fn.get();
      if (--deps[m] == 0) {
        settle(m);
        ready.push_back(m);
      }
      if (prof::enabled()) prof::mark_in("bwd", n->prof_scope, n->name());
      n->release();
      n->inputs.clear();
      n->consumed = true;
      continue;
    }
    std::vector<Tensor> grads;
    {
      NoGrad ng;  // backward computations are not recorded
      grads = n->backward(g);
    }
    g = Tensor();  // drop our reference so gradients that view it can count as exclusive
    HS_CHECK(grads.size() == n->inputs.size(), "autograd node '", n->name(), "' returned ", grads.size(),
             " gradients for ", n->inputs.size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      auto& in = n->inputs[i];
      if (!in) continue;
      HS_CHECK(!grads[i].defined() || (grads[i].shape() == in->shape && grads[i].dtype() == in->dtype),
               "autograd node '", n->name(), "' returned a gradient ", grads[i].desc(), " for input ", i, " of ",
               dtype_name(in->dtype), shape_str(in->shape));
      if (in->grad_fn) {
        Node* m = in->grad_fn.get();
        if (grads[i].defined()) {
          settle(m);
          auto it = pending.find(m);
          if (it == pending.end() || !it->second.defined()) {
            pending[m] = grads[i];
          } else if (exclusive(it->second)) {
            accumulate_into(it->second, grads[i]);
          } else {
            Tensor acc = owned_copy(it->second);
            accumulate_into(acc, grads[i]);
            it->second = acc;
          }
        }
        if (--deps[m] == 0) {
          settle(m);
          if (!pending.count(m) || !pending[m].defined()) {
            // No gradient flowed to this subgraph; still release its dependents' counts.
            pending[m] = Tensor::zeros(in->shape, in->dtype, in->storage->device());
          }
          ready.push_back(m);
        }
      } else if (in->requires_grad) {
        if (grads[i].defined()) add_to_leaf(in.get(), grads[i]);
        if (--leaf_pending[in.get()] == 0 && in->grad) fire_hooks(in.get());
      }
    }
    if (prof::enabled()) prof::mark_in("bwd", n->prof_scope, n->name());
    n->release();
    n->inputs.clear();  // frees the graph as we go
    n->consumed = true;
  }
}

}  // namespace hyscale
