#include "parallel/bench_comm.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/device.h"
#include "core/error.h"
#include "core/storage.h"
#include "parallel/comm.h"
#include "parallel/dist.h"
#include "parallel/nccl_comm.h"

namespace hyscale::parallel {

std::vector<int64_t> default_comm_bench_sizes() {
  std::vector<int64_t> s;
  for (int64_t b = 1024; b <= (int64_t{64} << 20); b *= 4) s.push_back(b);
  return s;
}

int64_t parse_bytes(const std::string& text) {
  std::string t = text;
  if (!t.empty() && (t.back() == 'B' || t.back() == 'b')) t.pop_back();
  int64_t mult = 1;
  if (!t.empty()) {
    switch (std::toupper(static_cast<unsigned char>(t.back()))) {
      case 'K': mult = int64_t{1} << 10; break;
      case 'M': mult = int64_t{1} << 20; break;
      case 'G': mult = int64_t{1} << 30; break;
      default: break;
    }
    if (mult != 1) t.pop_back();
  }
  const bool digits = !t.empty() && t.size() <= 12 && std::all_of(t.begin(), t.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
  HS_CHECK(digits, "bad size '", text, "' (expected bytes such as 4096, 64K, 1M or 2G)");
  const int64_t v = std::stoll(t) * mult;
  HS_CHECK(v > 0, "bad size '", text, "': must be positive");
  return v;
}

std::string format_bytes(int64_t b) {
  const char* units[] = {"B", "K", "M", "G"};
  int u = 0;
  while (u < 3 && b >= 1024 && b % 1024 == 0) {
    b /= 1024;
    ++u;
  }
  return std::to_string(b) + units[u];
}

double busbw_factor(const std::string& op, int n) {
  if (n <= 1) return 0.0;
  const double ring = static_cast<double>(n - 1) / n;
  if (op == "all-reduce") return 2.0 * ring;
  if (op == "reduce-scatter" || op == "all-gather") return ring;
  HS_FAIL("busbw_factor: unknown op '", op, "'");
}

namespace {

using Clock = std::chrono::steady_clock;

// One f32 buffer on the benchmark's device, filled and checked through host copies.
struct Buffer {
  Buffer(int64_t n, Device dev) : n(n), storage(static_cast<size_t>(std::max<int64_t>(n, 1)) * 4, dev) {}
  float* data() const { return static_cast<float*>(storage.data()); }
  void fill(float v) {
    std::vector<float> h(static_cast<size_t>(n), v);
    copy_bytes(data(), storage.device(), h.data(), Device::cpu(), h.size() * 4);
  }
  std::vector<float> host() const {
    std::vector<float> h(static_cast<size_t>(n));
    copy_bytes(h.data(), Device::cpu(), data(), storage.device(), h.size() * 4);
    return h;
  }
  int64_t n;
  Storage storage;
};

void expect(bool ok, const char* op, int64_t bytes, int64_t index, float got, float want) {
  HS_CHECK(ok, "bench comm: ", op, " of ", format_bytes(bytes), " gave ", got, " at element ", index, ", expected ",
           want, " (the communicator is broken)");
}

}  // namespace

std::vector<CommBenchRow> bench_comm(const BenchCommOptions& opt, bool print) {
  HS_CHECK(opt.iters >= 1, "bench comm: --iters must be >= 1 (got ", opt.iters, ")");
  HS_CHECK(opt.warmup >= 0, "bench comm: warm-up iterations must be >= 0 (got ", opt.warmup, ")");
  HS_CHECK(opt.backend == "mpi" || opt.backend == "nccl", "bench comm: --backend must be mpi or nccl (got '",
           opt.backend, "')");
  const auto host = grid().world_comm;
  HS_CHECK(host != nullptr, "bench comm: parallel::grid() has no world communicator");
  const int n = host->size(), rank = host->rank();

  std::shared_ptr<Communicator> comm = host;
  Device dev = Device::cpu();
  if (opt.backend == "nccl") {
    if (!nccl_available()) {
#ifdef HYSCALE_WITH_NCCL
      HS_FAIL("bench comm --backend nccl: no CUDA device is visible on rank ", rank,
              " (use --backend mpi for host memory)");
#else
      HS_FAIL("bench comm --backend nccl: this build has no NCCL backend (reconfigure with -DHYSCALE_CUDA=ON on a "
              "machine with nvcc and NCCL; use --backend mpi for host memory)");
#endif
    }
    const int device = process().local_rank % cuda_device_count();  // the GPU of this local rank
    dev = Device::cuda(device);
    comm = make_nccl_comm(host, device);
  }

  const std::vector<int64_t> sizes = opt.sizes.empty() ? default_comm_bench_sizes() : opt.sizes;
  const float rank_sum = static_cast<float>(n) * (n + 1) / 2;  // every rank contributes rank + 1
  std::vector<CommBenchRow> rows;
  for (const int64_t requested : sizes) {
    HS_CHECK(requested > 0, "bench comm: size ", requested, " must be positive");
    const int64_t chunk = std::max<int64_t>(1, requested / (4 * int64_t{n}));  // f32 elements per rank
    const int64_t total = chunk * n;
    const int64_t bytes = total * 4;
    Buffer full(total, dev), part(chunk, dev);

    auto time_op = [&](const char* op, auto&& run) {
      for (int64_t i = 0; i < opt.warmup; ++i) run();
      comm->barrier();
      const auto t0 = Clock::now();
      for (int64_t i = 0; i < opt.iters; ++i) run();
      double secs = std::chrono::duration<double>(Clock::now() - t0).count() / static_cast<double>(opt.iters);
      host->allreduce(&secs, 1, DType::f64, ReduceOp::Max);  // the slowest rank sets the pace
      CommBenchRow r;
      r.op = op;
      r.bytes = bytes;
      r.time_us = secs * 1e6;
      r.algbw_gbs = static_cast<double>(bytes) / secs / 1e9;
      r.busbw_gbs = r.algbw_gbs * busbw_factor(op, n);
      rows.push_back(r);
    };

    // all-reduce: check once, then time on zeros (repeated in-place sums stay finite).
    full.fill(static_cast<float>(rank + 1));
    comm->allreduce(full.data(), total, DType::f32, ReduceOp::Sum);
    {
      const auto h = full.host();
      for (int64_t i = 0; i < total; ++i) expect(h[i] == rank_sum, "all-reduce", bytes, i, h[i], rank_sum);
    }
    full.fill(0.0f);
    time_op("all-reduce", [&] { comm->allreduce(full.data(), total, DType::f32, ReduceOp::Sum); });

    // reduce-scatter: full (n chunks) -> part.
    full.fill(static_cast<float>(rank + 1));
    comm->reduce_scatter(full.data(), part.data(), chunk, DType::f32);
    {
      const auto h = part.host();
      for (int64_t i = 0; i < chunk; ++i) expect(h[i] == rank_sum, "reduce-scatter", bytes, i, h[i], rank_sum);
    }
    time_op("reduce-scatter", [&] { comm->reduce_scatter(full.data(), part.data(), chunk, DType::f32); });

    // all-gather: part -> full, rank r's chunk at offset r * chunk.
    part.fill(static_cast<float>(rank + 1));
    comm->allgather(part.data(), full.data(), chunk, DType::f32);
    {
      const auto h = full.host();
      for (int64_t i = 0; i < total; ++i) {
        const float want = static_cast<float>(i / chunk + 1);
        expect(h[i] == want, "all-gather", bytes, i, h[i], want);
      }
    }
    time_op("all-gather", [&] { comm->allgather(part.data(), full.data(), chunk, DType::f32); });
  }

  if (print && rank == 0) {
    std::printf("bench comm: %s backend, %d rank%s, f32 in %s memory, %lld timed iterations after %lld warm-up; "
                "time = mean of the slowest rank\n",
                comm->backend().c_str(), n, n == 1 ? "" : "s", dev.is_cpu() ? "host" : "device",
                static_cast<long long>(opt.iters), static_cast<long long>(opt.warmup));
    std::printf("size = whole buffer; algbw = size/time; busbw = algbw x 2(n-1)/n (all-reduce), x (n-1)/n "
                "(reduce-scatter, all-gather); GB/s = 1e9 B/s\n\n");
    std::printf("%8s |", "");
    for (const char* op : {"all-reduce", "reduce-scatter", "all-gather"}) {
      const int pad = (31 - static_cast<int>(std::strlen(op))) / 2;  // centre over the group's 31 columns
      std::printf("%*s%s%*s|", pad, "", op, 31 - pad - static_cast<int>(std::strlen(op)), "");
    }
    std::printf("\n%8s |", "size");
    for (int k = 0; k < 3; ++k) std::printf(" %9s %9s %9s |", "time(us)", "algbw", "busbw");
    std::printf("\n");
    for (size_t i = 0; i + 2 < rows.size(); i += 3) {
      std::printf("%8s |", format_bytes(rows[i].bytes).c_str());
      for (size_t k = i; k < i + 3; ++k)
        std::printf(" %9.2f %9.3f %9.3f |", rows[k].time_us, rows[k].algbw_gbs, rows[k].busbw_gbs);
      std::printf("\n");
    }
    std::fflush(stdout);
  }
  return rows;
}

}  // namespace hyscale::parallel
