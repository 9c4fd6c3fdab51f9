// Tensor-parallel autograd ops (Megatron-style; ../shared/FRAMEWORKS.md §2). Each takes the
// tensor-parallel group; with a group of one they are the plain ops (no copies, no nodes).
//
//   copy_to_tp       forward identity,   backward all-reduce   (before a column-parallel matmul,
//                                                               or any replicated value consumed
//                                                               by rank-local work)
//   reduce_from_tp   forward all-reduce, backward identity     (after a row-parallel matmul)
//   gather_from_tp   forward all-gather of the last dimension, backward this rank's slice
//   vocab_parallel_embedding   rows [start, start + V_local) of the table live here
//   vocab_parallel_cross_entropy  logits [N, V_local] of the vocabulary slice at `start`: each
//                    rank reduces its slice to (max, sum of exponentials, target logit) per row,
//                    one all-gather shares them and every rank combines them in the same order;
//                    the full logits are never gathered.
// Host tensors (f32, f64) go over the group's host communicator (MPI); device tensors (f32,
// bf16) over its device communicator (NCCL), which the trainer makes when it trains on GPUs.
#pragma once
#include <memory>

#include "core/tensor.h"
#include "parallel/comm.h"

namespace hyscale::parallel {

struct TensorParallel {
  int size = 1, rank = 0;
  std::shared_ptr<Communicator> comm;      // host memory; null when size == 1
  std::shared_ptr<Communicator> dev_comm;  // device memory (NCCL); null unless training on GPUs with size > 1
  bool on() const { return size > 1; }
  // This rank's share [begin, end) of n items split in `size` equal parts (n % size == 0).
  int64_t begin(int64_t n) const { return n / size * rank; }
  int64_t local(int64_t n) const { return n / size; }
};
TensorParallel tensor_parallel_from_grid(const Grid& g);

Tensor copy_to_tp(const Tensor& x, const TensorParallel& tp);
Tensor reduce_from_tp(const Tensor& x, const TensorParallel& tp);
Tensor gather_from_tp(const Tensor& x, const TensorParallel& tp);
// ids int32 [...] (global token ids), table [V_local, D] -> [..., D] (all-reduced).
Tensor vocab_parallel_embedding(const Tensor& ids, const Tensor& table, const TensorParallel& tp);
// logits [N, V_local], targets int32 [N] (global ids) -> scalar mean cross-entropy (the logits'
// dtype on the cpu, f32 on a GPU, as ops::cross_entropy).
Tensor vocab_parallel_cross_entropy(const Tensor& logits, const Tensor& targets, const TensorParallel& tp);

}  // namespace hyscale::parallel
