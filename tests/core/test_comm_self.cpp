// The single-process side of src/parallel (no mpirun): the self communicator, the one-rank
// grid, the NCCL entry points of a build or machine without NCCL, and hyscale bench comm's
// helpers. Lives in tests/core because tests/CMakeLists.txt has no parallel/ directory; the
// multi-rank tests are tests/mpi/test_comm.cpp.
#include <catch2/catch.hpp>

#include <vector>

#include "core/error.h"
#include "parallel/bench_comm.h"
#include "parallel/comm.h"
#include "parallel/dist.h"
#include "parallel/nccl_comm.h"

using namespace hyscale;
using parallel::ReduceOp;

TEST_CASE("self comm: collectives on one rank are identities or copies", "[parallel]") {
  auto c = parallel::make_self_comm();
  REQUIRE(c->rank() == 0);
  REQUIRE(c->size() == 1);
  REQUIRE(c->backend() == "self");

  std::vector<double> x{1.5, -2.0, 3.0};
  c->allreduce(x.data(), 3, DType::f64, ReduceOp::Sum);
  c->allreduce(x.data(), 3, DType::f64, ReduceOp::Max);
  REQUIRE(x == std::vector<double>{1.5, -2.0, 3.0});
  c->broadcast(x.data(), 3, DType::f64, 0);
  REQUIRE(x == std::vector<double>{1.5, -2.0, 3.0});
  REQUIRE_THROWS_WITH(c->broadcast(x.data(), 3, DType::f64, 1), Catch::Contains("root 1"));

  std::vector<int64_t> in{7, 8, 9}, out(3, 0);
  c->reduce_scatter(in.data(), out.data(), 3, DType::i64);
  REQUIRE(out == in);
  std::vector<float> a{1, 2}, b(2, 0);
  c->allgather(a.data(), b.data(), 2, DType::f32);
  REQUIRE(b == a);
  c->allgather(b.data(), b.data(), 2, DType::f32);  // in place
  REQUIRE(b == a);

  std::vector<int64_t> out2(3, 0);
  auto r = c->ireduce_scatter(in.data(), out2.data(), 3, DType::i64);
  r->wait();
  r->wait();
  REQUIRE(out2 == in);
  c->iallreduce(x.data(), 3, DType::f64)->wait();
  REQUIRE(x == std::vector<double>{1.5, -2.0, 3.0});
  c->barrier();
}

TEST_CASE("grid of a single process", "[parallel]") {
  REQUIRE(parallel::process().world == 1);
  const auto g = parallel::make_grid(1);
  REQUIRE(g.world == 1);
  REQUIRE(g.tp == 1);
  REQUIRE(g.dp == 1);
  REQUIRE(g.tp_rank == 0);
  REQUIRE(g.dp_rank == 0);
  REQUIRE(g.world_comm->backend() == "self");
  REQUIRE(g.tp_comm->size() == 1);
  REQUIRE(g.dp_comm->size() == 1);
  REQUIRE_THROWS_WITH(parallel::make_grid(2), Catch::Contains("parallel.tp"));
  REQUIRE(parallel::grid().world == 1);
}

TEST_CASE("NCCL without NCCL or without a GPU is a clear error", "[parallel]") {
  if (parallel::nccl_available()) return;  // a GPU machine: covered where two GPUs exist
  REQUIRE_THROWS_AS(parallel::make_nccl_comm(parallel::make_self_comm(), 0), Error);
  REQUIRE_THROWS_WITH(parallel::make_nccl_comm(parallel::make_self_comm(), 0),
                      Catch::Contains("NCCL") || Catch::Contains("CUDA"));
}

TEST_CASE("bench comm helpers: sizes and the nccl-tests bus-bandwidth factors", "[parallel]") {
  REQUIRE(parallel::parse_bytes("4096") == 4096);
  REQUIRE(parallel::parse_bytes("1K") == 1024);
  REQUIRE(parallel::parse_bytes("64k") == 65536);
  REQUIRE(parallel::parse_bytes("64M") == 64 << 20);
  REQUIRE(parallel::parse_bytes("2GB") == int64_t{2} << 30);
  REQUIRE_THROWS_WITH(parallel::parse_bytes("12Q"), Catch::Contains("'12Q'"));
  REQUIRE_THROWS_WITH(parallel::parse_bytes("K"), Catch::Contains("'K'"));
  REQUIRE_THROWS_AS(parallel::parse_bytes("0"), Error);
  REQUIRE(parallel::format_bytes(1024) == "1K");
  REQUIRE(parallel::format_bytes(64 << 20) == "64M");
  REQUIRE(parallel::format_bytes(1020) == "1020B");
  REQUIRE(parallel::default_comm_bench_sizes().front() == 1024);
  REQUIRE(parallel::default_comm_bench_sizes().back() == 64 << 20);
  REQUIRE(parallel::busbw_factor("all-reduce", 8) == Approx(2.0 * 7 / 8));
  REQUIRE(parallel::busbw_factor("reduce-scatter", 4) == Approx(0.75));
  REQUIRE(parallel::busbw_factor("all-gather", 2) == Approx(0.5));
  REQUIRE(parallel::busbw_factor("all-reduce", 1) == 0.0);
}

TEST_CASE("bench comm runs on the self communicator", "[parallel]") {
  parallel::BenchCommOptions opt;
  opt.sizes = {1024, 4096};
  opt.iters = 2;
  opt.warmup = 1;
  const auto rows = parallel::bench_comm(opt, false);
  REQUIRE(rows.size() == 6);
  REQUIRE(rows[0].op == "all-reduce");
  REQUIRE(rows[1].op == "reduce-scatter");
  REQUIRE(rows[2].op == "all-gather");
  for (const auto& r : rows) {
    REQUIRE(r.time_us > 0);
    REQUIRE(r.algbw_gbs == Approx(r.bytes / (r.time_us * 1e-6) / 1e9));
    REQUIRE(r.busbw_gbs == 0.0);  // one rank moves nothing over a link
  }
  REQUIRE(rows[3].bytes == 4096);
  opt.backend = "gloo";
  REQUIRE_THROWS_WITH(parallel::bench_comm(opt, false), Catch::Contains("--backend"));
}
