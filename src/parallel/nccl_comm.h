// The NCCL backend of Communicator (comm.h): collectives on CUDA device memory.
//
// Streams. Each NCCL communicator owns one non-blocking CUDA stream. Before a collective is
// enqueued there, that stream waits (through an event) for the work already enqueued on the
// device's default stream, where hyscale's compute runs, so a collective never reads a buffer
// before the kernels that produce it finish; later compute is not held back by it.
//   - Synchronous collectives (allreduce, reduce_scatter, allgather, broadcast) return when
//     the collective has finished on the device (the stream is synchronized).
//   - iallreduce / ireduce_scatter return at once; Request::wait() blocks the host until the
//     collective's recorded event completes. Until then the caller must neither write the
//     input nor read the output (on the host or on any stream).
//   - allreduce_ordered / allgather_ordered return at once, with the default stream made to
//     wait (an event) for the collective: kernels enqueued afterwards see its result, and the
//     host never blocks (the tensor-parallel ops, several per layer). wait_ordered() waits for
//     them with the timeout below (the vocabulary-parallel loss does before reading its rows,
//     the trainer after each backward). An asynchronous NCCL error is reported by the next
//     collective call or wait.
//   - A wait that sees no completion for HYSCALE_NCCL_TIMEOUT_S seconds (default 1800, 0 =
//     never), or an asynchronous NCCL error, aborts every NCCL communicator of the process (the
//     others may be waiting on the failed one through the default stream) and throws; their
//     teardown then aborts instead of synchronising.
//   - barrier() drains the stream, then barriers the host group.
// Dtypes map to NCCL's: f32, f64, bf16 (reductions included), i32, i64.
//
// Built with HYSCALE_CUDA and NCCL found at configure time (nccl_comm.cu); otherwise
// nccl_available() is false and make_nccl_comm throws hyscale::Error saying why.
#pragma once
#include <memory>

#include "parallel/comm.h"

namespace hyscale::parallel {

// True when this build has NCCL and at least one CUDA device is visible.
bool nccl_available();

// Collective over host_group: every rank calls it, with its own device. Rank 0 of
// host_group creates the NCCL unique id and broadcasts it over host_group; each rank then
// joins (ncclCommInitRank) on CUDA device `device`. The result has host_group's ranks and
// size and backend() == "nccl". Throws hyscale::Error on any CUDA/NCCL failure, on a bad
// device index, or in a build without NCCL.
std::shared_ptr<Communicator> make_nccl_comm(const std::shared_ptr<Communicator>& host_group, int device);

}  // namespace hyscale::parallel
