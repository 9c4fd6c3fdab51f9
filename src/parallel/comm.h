// Communicators and the process grid (DESIGN: parallel/).
//
// A Communicator is a group of ranks with collectives on contiguous buffers. Backends:
//   self  one rank: every collective is a copy or nothing (a build or a run without MPI);
//   mpi   host memory, over an MPI communicator (launch, bootstrap, CPU training);
//   nccl  device memory, NCCL on the current CUDA stream; its unique id travels over MPI
//         (built with HYSCALE_CUDA and HYSCALE_MPI; see nccl_comm.cu).
// Every rank of a group must call the same collectives in the same order with the same counts.
//
// The grid: world = tp x dp. Tensor-parallel groups are runs of tp consecutive ranks (so a tp
// group stays inside a node when tp divides the GPUs per node); data-parallel groups take one
// rank from each tp group: rank = dp_rank * tp + tp_rank.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace hyscale::parallel {

enum class ReduceOp { Sum, Max };

// A pending nonblocking collective; wait() completes it (idempotent). Destroying an
// unfinished request waits for it.
class Request {
 public:
  virtual ~Request() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "self", "mpi" or "nccl"

  // All ranks end with the reduction of every rank's `data` (n elements, in place).
  virtual void allreduce(void* data, int64_t n, DType dt, ReduceOp op = ReduceOp::Sum) = 0;
  // in: size() * n elements; out (n elements) = the reduction's rank()-th chunk of n.
  virtual void reduce_scatter(const void* in, void* out, int64_t n, DType dt) = 0;
  // in: n elements per rank; out: size() * n elements, rank r's in at offset r * n.
  virtual void allgather(const void* in, void* out, int64_t n, DType dt) = 0;
  virtual void broadcast(void* data, int64_t n, DType dt, int root) = 0;
  virtual void barrier() = 0;
  // Nonblocking in-place sum all-reduce and reduce-scatter (for overlap with backward).
  virtual std::unique_ptr<Request> iallreduce(void* data, int64_t n, DType dt) = 0;
  virtual std::unique_ptr<Request> ireduce_scatter(const void* in, void* out, int64_t n, DType dt) = 0;
  // Stream-ordered all-reduce and all-gather (the tensor-parallel ops' activations): on a device
  // backend the collective runs after the work already enqueued on the device's default stream,
  // and the work enqueued there afterwards runs after it; the host does not wait, so kernels
  // keep queueing ahead of the GPU. Host backends: the synchronous collectives above.
  virtual void allreduce_ordered(void* data, int64_t n, DType dt, ReduceOp op = ReduceOp::Sum) {
    allreduce(data, n, dt, op);
  }
  virtual void allgather_ordered(const void* in, void* out, int64_t n, DType dt) { allgather(in, out, n, dt); }
  // Blocks until the stream-ordered collectives issued so far (and the work before them) are
  // done, watching for the backend's errors and its timeout meanwhile (a host read of their
  // result would otherwise block inside the CUDA runtime, blind to a dead peer). Host backends:
  // nothing to wait for.
  virtual void wait_ordered() {}

  // Tensor conveniences (contiguous tensors; device must suit the backend).
  void allreduce(Tensor& t, ReduceOp op = ReduceOp::Sum);
  void broadcast(Tensor& t, int root);
};

// A one-rank communicator.
std::shared_ptr<Communicator> make_self_comm();

struct Grid {
  int world = 1, rank = 0;
  int tp = 1, dp = 1;          // world = tp * dp
  int tp_rank = 0, dp_rank = 0;
  std::shared_ptr<Communicator> world_comm, tp_comm, dp_comm;  // host (MPI or self)
  // Device memory (NCCL), set by the trainer when it trains on GPUs; null otherwise.
  //   dp_dev_comm  over the dp group when dp > 1 (the optimizer's gradient buckets live on the
  //                device then);
  //   tp_dev_comm  over the tp group when tp > 1 (the tensor-parallel ops of parallel/tp_ops
  //                reduce and gather activations in device memory).
  std::shared_ptr<Communicator> dp_dev_comm, tp_dev_comm;
};

// Builds the grid for `tp` (clear error when it does not divide the world size). Host
// communicators only; device (NCCL) communicators are made from these by the CUDA backend.
// Collective over the world: every rank calls it with the same tp.
Grid make_grid(int tp);

// The grid the process trains with (make_grid's result, installed by set_grid); before any
// set_grid it is the single-rank grid, or tp = 1 over the world when MPI is up.
const Grid& grid();
void set_grid(const Grid& g);

}  // namespace hyscale::parallel
