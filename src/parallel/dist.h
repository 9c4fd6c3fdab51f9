// Process layout and host-memory collectives over MPI. A build without MPI (or a
// run started without mpirun) is a single process: rank 0 of world 1, and the
// collectives are identities. Data-parallel gradient reduction here is the plain
// (non-overlapped) all-reduce; bucketing, overlap, ZeRO, TP and NCCL belong to
// the distributed-training work that builds on this file.
#pragma once
#include <cstdint>
#include <string>

namespace hyscale::parallel {

struct ProcessInfo {
  int rank = 0, world = 1, local_rank = 0;
  int local_size = 1;  // ranks on this node (shared-memory domain)
};

void init(int* argc, char*** argv);  // MPI_Init when built with MPI; idempotent
void finalize();
const ProcessInfo& process();
bool have_mpi();

void allreduce_sum(float* data, int64_t n);
void allreduce_sum(double* data, int64_t n);
void barrier();
// Rank 0's string on every rank.
void broadcast_string(std::string& s);
// Aborts every rank after a fatal error on one (so mpirun does not hang).
void abort_all(int code);

}  // namespace hyscale::parallel
