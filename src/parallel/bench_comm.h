// hyscale bench comm: time all-reduce, reduce-scatter and all-gather over message sizes on
// the world communicator of parallel::grid() (MPI, or self in a single process) or on NCCL
// with device buffers, and report bandwidth the way nccl-tests does:
//   size   the whole buffer in bytes: the all-reduce buffer, the reduce-scatter input, the
//          all-gather output (n ranks x the per-rank chunk); f32 elements;
//   algbw  size / time;
//   busbw  algbw x 2(n-1)/n for all-reduce, algbw x (n-1)/n for reduce-scatter and all-gather
//          (the traffic on the busiest link of a ring, comparable across n; 0 for one rank).
// time is the mean over the timed iterations of the slowest rank.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hyscale::parallel {

struct BenchCommOptions {
  std::vector<int64_t> sizes;  // bytes; empty = default_comm_bench_sizes()
  int64_t iters = 20;          // timed iterations per op and size
  int64_t warmup = 5;          // untimed iterations before them
  std::string backend = "mpi"; // "mpi" (host memory; self under one process) or "nccl" (device memory)
};

struct CommBenchRow {
  std::string op;  // "all-reduce", "reduce-scatter" or "all-gather"
  int64_t bytes = 0;  // size actually used (rounded down to a multiple of 4 x ranks, at least that)
  double time_us = 0, algbw_gbs = 0, busbw_gbs = 0;  // GB = 1e9 bytes
};

// 1K, 4K, ..., 64M (powers of 1024, x4 apart).
std::vector<int64_t> default_comm_bench_sizes();
// "4096", "64K", "1M", "2G" (K/M/G = powers of 1024, optional trailing B) -> bytes; throws
// hyscale::Error naming the text otherwise.
int64_t parse_bytes(const std::string& text);
std::string format_bytes(int64_t bytes);
// nccl-tests' bus-bandwidth factor of `op` on n ranks.
double busbw_factor(const std::string& op, int n);

// Collective over the world of grid(): every rank calls it. Checks each collective's result
// once per size (throws hyscale::Error on a wrong value), then times it; returns the rows
// (identical on every rank) and, when print is set, rank 0 prints the table to stdout.
std::vector<CommBenchRow> bench_comm(const BenchCommOptions& opt, bool print = true);

}  // namespace hyscale::parallel
