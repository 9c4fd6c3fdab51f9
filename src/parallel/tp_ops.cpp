#include "parallel/tp_ops.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops_util.h"

namespace hyscale::parallel {

using ops::detail::dispatch;
using ops::detail::prep;

TensorParallel tensor_parallel_from_grid(const Grid& g) {
  TensorParallel tp;
  tp.size = g.tp;
  tp.rank = g.tp_rank;
  if (g.tp > 1) tp.comm = g.tp_comm;
  return tp;
}

namespace {

void allreduce_tensor(Tensor& t, const TensorParallel& tp, ReduceOp op = ReduceOp::Sum) {
  tp.comm->allreduce(t.raw_data(), t.numel(), t.dtype(), op);
}

struct CopyToTpNode : Node {
  TensorParallel tp;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor s = g.detach().clone();
    allreduce_tensor(s, tp);
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

struct VocabEmbeddingNode : Node {
  Tensor ids;
  Shape table_shape;
  int64_t start = 0;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous(), d = Tensor::zeros(table_shape, g.dtype());
    const int64_t Vl = table_shape[0], D = table_shape[1], n = ids.numel();
    const int32_t* id = ids.data<int32_t>();
    dispatch(g.dtype(), [&](auto z) {
      using T = decltype(z);
      const T* gp = HS_PTR(g);
      T* dp = HS_PTR(d);
      // Sequential over tokens (deterministic), parallel over columns.
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < D; ++c)
        for (int64_t i = 0; i < n; ++i) {
          const int64_t r = id[i] - start;
          if (r >= 0 && r < Vl) dp[r * D + c] += gp[i * D + c];
        }
    });
    return {d};
  }
  const char* name() const override { return "vocab_parallel_embedding"; }
};

struct VocabCrossEntropyNode : Node {
  Tensor logits, targets, lse;  // lse [N] f64
  int64_t start = 0;
  std::vector<Tensor> backward(const Tensor& g) override {
    const int64_t N = logits.size(0), Vl = logits.size(1);
    Tensor d = Tensor::empty(logits.shape(), logits.dtype());
    const double scale = g.to(DType::f64).contiguous().data<double>()[0] / static_cast<double>(N);
    const int32_t* t = targets.data<int32_t>();
    const double* l = lse.data<double>();
    dispatch(logits.dtype(), [&](auto z) {
      using T = decltype(z);
      const T* x = HS_PTR(logits);
      T* dp = HS_PTR(d);
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < N; ++i) {
        const int64_t tl = t[i] - start;
        for (int64_t j = 0; j < Vl; ++j) {
          double p = std::exp(static_cast<double>(x[i * Vl + j]) - l[i]);
          if (j == tl) p -= 1.0;
          dp[i * Vl + j] = static_cast<T>(p * scale);
        }
      }
    });
    return {d};
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
  allreduce_tensor(y, tp);
  if (!any_requires_grad({&x})) return y;
  return record(y, std::make_shared<ReduceFromTpNode>(), {&x});
}

Tensor gather_from_tp(const Tensor& x_in, const TensorParallel& tp) {
  if (!tp.on()) return x_in;
  Tensor x = prep("gather_from_tp", x_in, "input");
  const int64_t last = x.dim() - 1, local = x.size(last), rows = x.numel() / std::max<int64_t>(local, 1);
  // All-gather rank-major blocks, then interleave them along the last dimension.
  Tensor blocks = Tensor::empty({tp.size, x.numel()}, x.dtype());
  tp.comm->allgather(x.raw_data(), blocks.raw_data(), x.numel(), x.dtype());
  Shape os = x.shape();
  os[last] = local * tp.size;
  Tensor y = Tensor::empty(os, x.dtype());
  const size_t es = dtype_size(x.dtype());
  const auto* src = static_cast<const char*>(blocks.raw_data());
  auto* dst = static_cast<char*>(y.raw_data());
  for (int r = 0; r < tp.size; ++r)
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(dst + (i * local * tp.size + r * local) * es, src + (r * x.numel() + i * local) * es, local * es);
  if (!any_requires_grad({&x})) return y;
  auto node = std::make_shared<GatherFromTpNode>();
  node->tp = tp;
  node->local = local;
  return record(y, node, {&x});
}

Tensor vocab_parallel_embedding(const Tensor& ids_in, const Tensor& table_in, const TensorParallel& tp) {
  if (!tp.on()) return ops::embedding(ids_in, table_in);
  Tensor table = prep("vocab_parallel_embedding", table_in, "table");
  HS_CHECK(table.dim() == 2, "vocab_parallel_embedding: table must be [V_local, D], got ", shape_str(table.shape()));
  const int64_t Vl = table.size(0), D = table.size(1), start = Vl * tp.rank;
  ops::detail::check_ids("vocab_parallel_embedding", ids_in, Vl * tp.size);
  Tensor ids = ids_in.contiguous();
  Shape os = ids.shape();
  os.push_back(D);
  Tensor y = Tensor::zeros(os, table.dtype());
  const int32_t* id = ids.data<int32_t>();
  const int64_t n = ids.numel();
  dispatch(table.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* w = HS_PTR(table);
    T* yp = HS_PTR(y);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = id[i] - start;
      if (r >= 0 && r < Vl) std::memcpy(yp + i * D, w + r * D, static_cast<size_t>(D) * sizeof(T));
    }
  });
  allreduce_tensor(y, tp);
  if (!any_requires_grad({&table})) return y;
  auto node = std::make_shared<VocabEmbeddingNode>();
  node->ids = ids;
  node->table_shape = table.shape();
  node->start = start;
  return record(y, node, {&table});
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
  Tensor targets = targets_in.contiguous();
  const int32_t* t = targets.data<int32_t>();
  Tensor mx = Tensor::empty({N}, DType::f64), sums = Tensor::zeros({2, N}, DType::f64);
  double* m = mx.data<double>();
  double* se = sums.data<double>();
  double* tl = se + N;
  dispatch(logits.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* x = HS_PTR(logits);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      double v = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < Vl; ++j) v = std::max(v, static_cast<double>(x[i * Vl + j]));
      m[i] = v;
    }
    tp.comm->allreduce(m, N, DType::f64, ReduceOp::Max);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      double s = 0;
      for (int64_t j = 0; j < Vl; ++j) s += std::exp(static_cast<double>(x[i * Vl + j]) - m[i]);
      se[i] = s;
      const int64_t r = t[i] - start;
      tl[i] = r >= 0 && r < Vl ? static_cast<double>(x[i * Vl + r]) : 0.0;
    }
  });
  tp.comm->allreduce(se, 2 * N, DType::f64, ReduceOp::Sum);
  Tensor lse = Tensor::empty({N}, DType::f64);
  double total = 0;  // fixed order: identical on every rank
  for (int64_t i = 0; i < N; ++i) {
    lse.data<double>()[i] = m[i] + std::log(se[i]);
    total += lse.data<double>()[i] - tl[i];
  }
  Tensor loss = Tensor::full({}, total / static_cast<double>(N), logits.dtype());
  if (!any_requires_grad({&logits})) return loss;
  auto node = std::make_shared<VocabCrossEntropyNode>();
  node->logits = logits.detach();
  node->targets = targets;
  node->lse = lse;
  node->start = start;
  return record(loss, node, {&logits});
}

}  // namespace hyscale::parallel
