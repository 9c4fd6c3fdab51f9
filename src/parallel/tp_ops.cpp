#include "parallel/tp_ops.h"

#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops_util.h"

namespace hyscale::parallel {

using ops::detail::prep;

TensorParallel tensor_parallel_from_grid(const Grid& g) {
  TensorParallel tp;
  tp.size = g.tp;
  tp.rank = g.tp_rank;
  if (g.tp > 1) {
    tp.comm = g.tp_comm;
    tp.dev_comm = g.tp_dev_comm;
  }
  return tp;
}

namespace {

// The group's communicator for memory where `t` lives.
Communicator& comm_for(const Tensor& t, const TensorParallel& tp, const char* op) {
  if (t.device().is_cuda()) {
    HS_CHECK(tp.dev_comm != nullptr, op, ": ", t.desc(), " is in device memory but the tensor-parallel group has no ",
             "device communicator (the trainer makes one over NCCL when training.device is cuda)");
    return *tp.dev_comm;
  }
  HS_CHECK(tp.comm != nullptr, op, ": the tensor-parallel group of ", tp.size, " ranks has no host communicator");
  return *tp.comm;
}

// Stream-ordered on the device (the host keeps queueing kernels; nccl_comm.h), synchronous on the host.
void allreduce_tensor(Tensor& t, const TensorParallel& tp, const char* op) {
  comm_for(t, tp, op).allreduce_ordered(t.raw_data(), t.numel(), t.dtype(), ReduceOp::Sum);
}

struct CopyToTpNode : Node {
  TensorParallel tp;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor s = g.detach().clone();
    allreduce_tensor(s, tp, "copy_to_tp (backward)");
    return {s};
  }
  const char* name() const override { return "copy_to_tp"; }
};

struct ReduceFromTpNode : Node {
  std::vector<Tensor> backward(const Tensor& g) override { return {g}; }
  const char* name() const override { return "reduce_from_tp"; }
};

struct GatherFromTpNode : Node {
  TensorParallel tp;
  int64_t local = 0;
  std::vector<Tensor> backward(const Tensor& g) override {
    const int64_t last = g.dim() - 1;
    return {g.slice(last, local * tp.rank, local * (tp.rank + 1)).contiguous()};
  }
  const char* name() const override { return "gather_from_tp"; }
};

struct VocabCrossEntropyNode : Node {
  Tensor logits, targets, lse;  // targets and lse on the logits' device
  int64_t start = 0;
  std::vector<Tensor> backward(const Tensor& g) override {
    const double scale = g.item() / static_cast<double>(logits.size(0));
    return {ops::cross_entropy_grad(logits, targets, lse, start, scale)};
  }
  void release() override { logits = targets = lse = Tensor(); }
  const char* name() const override { return "vocab_parallel_cross_entropy"; }
};

}  // namespace

Tensor copy_to_tp(const Tensor& x, const TensorParallel& tp) {
  if (!tp.on() || !any_requires_grad({&x})) return x;
  auto node = std::make_shared<CopyToTpNode>();
  node->tp = tp;
  return record(x.detach(), node, {&x});
}

Tensor reduce_from_tp(const Tensor& x_in, const TensorParallel& tp) {
  if (!tp.on()) return x_in;
  Tensor x = prep("reduce_from_tp", x_in, "input");
  Tensor y = x.detach().clone();
  allreduce_tensor(y, tp, "reduce_from_tp");
  if (!any_requires_grad({&x})) return y;
  return record(y, std::make_shared<ReduceFromTpNode>(), {&x});
}

Tensor gather_from_tp(const Tensor& x_in, const TensorParallel& tp) {
  if (!tp.on()) return x_in;
  Tensor x = prep("gather_from_tp", x_in, "input");
  const int64_t last = x.dim() - 1, local = x.size(last);
  // All-gather rank-major blocks, then place block r at columns [r * local, (r + 1) * local).
  Tensor blocks = Tensor::empty({tp.size, x.numel()}, x.dtype(), x.device());
  comm_for(x, tp, "gather_from_tp").allgather_ordered(x.raw_data(), blocks.raw_data(), x.numel(), x.dtype());
  Shape os = x.shape();
  os[last] = local * tp.size;
  Tensor y = Tensor::empty(os, x.dtype(), x.device());
  for (int r = 0; r < tp.size; ++r)
    y.slice(last, r * local, (r + 1) * local).copy_from(blocks.slice(0, r, r + 1).reshape(x.shape()));
  if (!any_requires_grad({&x})) return y;
  auto node = std::make_shared<GatherFromTpNode>();
  node->tp = tp;
  node->local = local;
  return record(y, node, {&x});
}

Tensor vocab_parallel_embedding(const Tensor& ids, const Tensor& table, const TensorParallel& tp) {
  if (!tp.on()) return ops::embedding(ids, table);
  HS_CHECK(table.defined() && table.dim() == 2, "vocab_parallel_embedding: table must be [V_local, D]");
  const int64_t Vl = table.size(0);
  // Each rank embeds the ids of its slice (zeros elsewhere); the sum over the group is the
  // embedding, and the gradient of each slice is its own rows' (reduce_from_tp's identity).
  return reduce_from_tp(ops::embedding_slice(ids, table, Vl * tp.rank, Vl * tp.size), tp);
}

Tensor vocab_parallel_cross_entropy(const Tensor& logits_in, const Tensor& targets_in, const TensorParallel& tp) {
  if (!tp.on()) return ops::cross_entropy(logits_in, targets_in);
  Tensor logits = prep("vocab_parallel_cross_entropy", logits_in, "logits");
  HS_CHECK(logits.dim() == 2, "vocab_parallel_cross_entropy: logits must be [N, V_local], got ",
           shape_str(logits.shape()));
  const int64_t N = logits.size(0), Vl = logits.size(1), start = Vl * tp.rank;
  HS_CHECK(targets_in.dim() == 1 && targets_in.size(0) == N, "vocab_parallel_cross_entropy: targets ",
           shape_str(targets_in.shape()), " do not match logits ", shape_str(logits.shape()));
  ops::detail::check_ids("vocab_parallel_cross_entropy", targets_in, Vl * tp.size);
  HS_CHECK(N > 0, "vocab_parallel_cross_entropy: no rows");
  Tensor targets = targets_in.contiguous().to(logits.device());
  Tensor stats = ops::cross_entropy_stats(logits, targets, start);  // [3, N]
  Tensor all = Tensor::empty({tp.size, 3, N}, stats.dtype(), stats.device());
  comm_for(stats, tp, "vocab_parallel_cross_entropy")
      .allgather_ordered(stats.raw_data(), all.raw_data(), stats.numel(), stats.dtype());
  auto [rows, lse] = ops::cross_entropy_combine(all);  // the same numbers, in the same order, on every rank
  // The host reads the loss: first wait for the stream-ordered collectives where a dead peer is
  // noticed (a copy to the host would block inside the CUDA runtime instead).
  comm_for(stats, tp, "vocab_parallel_cross_entropy").wait_ordered();
  const Tensor host_rows = rows.to(Device::cpu()).to(DType::f64);
  double total = 0;  // fixed order: deterministic
  for (int64_t i = 0; i < N; ++i) total += host_rows.data<double>()[i];
  const DType loss_dtype = logits.device().is_cuda() ? DType::f32 : logits.dtype();
  Tensor loss = Tensor::full({}, total / static_cast<double>(N), loss_dtype).to(logits.device());
  if (!any_requires_grad({&logits})) return loss;
  auto node = std::make_shared<VocabCrossEntropyNode>();
  node->logits = logits.detach();
  node->targets = targets;
  node->lse = lse;
  node->start = start;
  return record(loss, node, {&logits});
}

}  // namespace hyscale::parallel
