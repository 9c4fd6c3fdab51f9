// Runs under mpirun -np 2 and -np 4 (ctest label mpi): every collective of the MPI
// Communicator against hand-computed values, and the dp x tp process grid. Every rank runs
// every test case, so each case calls the same collectives in the same order on all ranks.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "parallel/comm.h"
#include "parallel/dist.h"

using namespace hyscale;
using parallel::Communicator;
using parallel::ReduceOp;

namespace {

std::shared_ptr<Communicator> world() {
  auto c = parallel::make_grid(1).world_comm;
  REQUIRE(c != nullptr);
  REQUIRE(c->backend() == "mpi");
  REQUIRE(c->size() == parallel::process().world);
  REQUIRE(c->rank() == parallel::process().rank);
  return c;
}

// A value that depends on the rank and the element index, exact in every tested type (small
// integers, plus a multiple of 2^32 for i64 so that a 32-bit reduction would show).
template <class T> T val(int rank, int64_t i) {
  T v = static_cast<T>(100 * rank + i);
  if constexpr (std::is_same_v<T, int64_t>) v += static_cast<int64_t>(rank) << 32;
  return v;
}

}  // namespace

TEMPLATE_TEST_CASE("mpi comm: sum all-reduce in place", "[mpi][comm]", float, double, int64_t) {
  auto c = world();
  const int n = c->size();
  std::vector<TestType> x(37);
  for (size_t i = 0; i < x.size(); ++i) x[i] = val<TestType>(c->rank(), i);
  c->allreduce(x.data(), static_cast<int64_t>(x.size()), dtype_of<TestType>, ReduceOp::Sum);
  for (size_t i = 0; i < x.size(); ++i) {
    TestType want = 0;
    for (int r = 0; r < n; ++r) want += val<TestType>(r, i);
    REQUIRE(x[i] == want);
  }
}

TEMPLATE_TEST_CASE("mpi comm: max all-reduce", "[mpi][comm]", float, double, int64_t) {
  auto c = world();
  const int n = c->size();
  // Element i is largest on rank i % n, and negative elsewhere: the max is (i % n) * 10 + i.
  std::vector<TestType> x(23);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<int>(i % n) == c->rank() ? static_cast<TestType>(c->rank() * 10 + static_cast<int>(i))
                                                : static_cast<TestType>(-1 - c->rank());
  c->allreduce(x.data(), static_cast<int64_t>(x.size()), dtype_of<TestType>, ReduceOp::Max);
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(x[i] == static_cast<TestType>((i % n) * 10 + i));
}

TEMPLATE_TEST_CASE("mpi comm: reduce-scatter gives each rank its chunk of the sum", "[mpi][comm]", float, double,
                   int64_t) {
  auto c = world();
  const int n = c->size(), me = c->rank();
  const int64_t chunk = 5;
  std::vector<TestType> in(n * chunk), out(chunk, TestType(-7));
  for (int64_t i = 0; i < n * chunk; ++i) in[i] = val<TestType>(me, i);
  c->reduce_scatter(in.data(), out.data(), chunk, dtype_of<TestType>);
  for (int64_t k = 0; k < chunk; ++k) {
    TestType want = 0;
    for (int r = 0; r < n; ++r) want += val<TestType>(r, me * chunk + k);
    REQUIRE(out[k] == want);
  }
}

TEMPLATE_TEST_CASE("mpi comm: all-gather out of place and in place", "[mpi][comm]", float, double, int64_t) {
  auto c = world();
  const int n = c->size(), me = c->rank();
  const int64_t chunk = 6;
  std::vector<TestType> mine(chunk);
  for (int64_t k = 0; k < chunk; ++k) mine[k] = val<TestType>(me, k);

  SECTION("out of place") {
    std::vector<TestType> out(n * chunk, TestType(-1));
    c->allgather(mine.data(), out.data(), chunk, dtype_of<TestType>);
    for (int r = 0; r < n; ++r)
      for (int64_t k = 0; k < chunk; ++k) REQUIRE(out[r * chunk + k] == val<TestType>(r, k));
  }
  SECTION("in place: the input already sits at this rank's slot") {
    std::vector<TestType> out(n * chunk, TestType(-1));
    std::copy(mine.begin(), mine.end(), out.begin() + me * chunk);
    c->allgather(out.data() + me * chunk, out.data(), chunk, dtype_of<TestType>);
    for (int r = 0; r < n; ++r)
      for (int64_t k = 0; k < chunk; ++k) REQUIRE(out[r * chunk + k] == val<TestType>(r, k));
  }
}

TEMPLATE_TEST_CASE("mpi comm: the stream-ordered all-reduce and all-gather are the plain ones on the host",
                   "[mpi][comm]", float, double, int64_t) {
  auto c = world();
  const int n = c->size(), me = c->rank();
  const int64_t chunk = 5;
  std::vector<TestType> a(chunk), out(n * chunk, TestType(-1));
  for (int64_t k = 0; k < chunk; ++k) a[k] = val<TestType>(me, k);
  c->allgather_ordered(a.data(), out.data(), chunk, dtype_of<TestType>);
  for (int r = 0; r < n; ++r)
    for (int64_t k = 0; k < chunk; ++k) REQUIRE(out[r * chunk + k] == val<TestType>(r, k));
  c->allreduce_ordered(a.data(), chunk, dtype_of<TestType>, ReduceOp::Max);
  for (int64_t k = 0; k < chunk; ++k) REQUIRE(a[k] == val<TestType>(n - 1, k));
  c->allreduce_ordered(a.data(), chunk, dtype_of<TestType>);
  for (int64_t k = 0; k < chunk; ++k) REQUIRE(a[k] == static_cast<TestType>(n) * val<TestType>(n - 1, k));
}

TEMPLATE_TEST_CASE("mpi comm: broadcast from the last rank", "[mpi][comm]", float, double, int64_t) {
  auto c = world();
  const int root = c->size() - 1;  // non-zero: world >= 2
  std::vector<TestType> x(11);
  for (size_t i = 0; i < x.size(); ++i) x[i] = val<TestType>(c->rank(), i);
  c->broadcast(x.data(), static_cast<int64_t>(x.size()), dtype_of<TestType>, root);
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(x[i] == val<TestType>(root, i));
}

TEMPLATE_TEST_CASE("mpi comm: nonblocking all-reduce and reduce-scatter", "[mpi][comm]", float, double, int64_t) {
  auto c = world();
  const int n = c->size(), me = c->rank();
  const int64_t chunk = 4;
  std::vector<TestType> a(9), in(n * chunk), out(chunk);
  for (size_t i = 0; i < a.size(); ++i) a[i] = val<TestType>(me, i);
  for (int64_t i = 0; i < n * chunk; ++i) in[i] = val<TestType>(me, 2 * i);
  // Both in flight at once, completed in the opposite order.
  auto ra = c->iallreduce(a.data(), static_cast<int64_t>(a.size()), dtype_of<TestType>);
  auto rs = c->ireduce_scatter(in.data(), out.data(), chunk, dtype_of<TestType>);
  rs->wait();
  ra->wait();
  ra->wait();  // idempotent
  for (size_t i = 0; i < a.size(); ++i) {
    TestType want = 0;
    for (int r = 0; r < n; ++r) want += val<TestType>(r, i);
    REQUIRE(a[i] == want);
  }
  for (int64_t k = 0; k < chunk; ++k) {
    TestType want = 0;
    for (int r = 0; r < n; ++r) want += val<TestType>(r, 2 * (me * chunk + k));
    REQUIRE(out[k] == want);
  }
}

TEST_CASE("mpi comm: destroying an unfinished request completes it", "[mpi][comm]") {
  auto c = world();
  std::vector<double> x(1000, 1.0 + c->rank());
  { auto r = c->iallreduce(x.data(), static_cast<int64_t>(x.size()), DType::f64); }
  const double want = c->size() * (c->size() + 1) / 2.0;
  for (double v : x) REQUIRE(v == want);
}

TEST_CASE("mpi comm: i32 and bf16 where MPI supports them, a clear error where not", "[mpi][comm]") {
  auto c = world();
  std::vector<int32_t> i(3, c->rank() + 1);
  c->allreduce(i.data(), 3, DType::i32, ReduceOp::Sum);
  for (int32_t v : i) REQUIRE(v == c->size() * (c->size() + 1) / 2);

  std::vector<bf16> h(4, bf16::from_float(static_cast<float>(c->rank()) + 0.5f));
  c->broadcast(h.data(), 4, DType::bf16, 1);
  for (const auto& v : h) REQUIRE(v.to_float() == 1.5f);
  // Every rank throws before any message is sent, so no rank is left waiting.
  REQUIRE_THROWS_WITH(c->allreduce(h.data(), 4, DType::bf16, ReduceOp::Sum), Catch::Contains("bf16"));
  REQUIRE_THROWS_WITH(c->broadcast(h.data(), 4, DType::bf16, c->size()), Catch::Contains("root"));
  c->barrier();
}

TEST_CASE("mpi comm: tensor all-reduce and broadcast", "[mpi][comm]") {
  auto c = world();
  auto t = Tensor::full({2, 3}, 1.0 + c->rank());
  c->allreduce(t);
  for (int64_t i = 0; i < t.numel(); ++i) REQUIRE(t.data<float>()[i] == c->size() * (c->size() + 1) / 2.0f);
  auto b = Tensor::full({4}, static_cast<double>(c->rank()), DType::f64);
  c->broadcast(b, 1);
  for (int64_t i = 0; i < b.numel(); ++i) REQUIRE(b.data<double>()[i] == 1.0);
}

TEST_CASE("grid: tp groups are consecutive ranks, dp groups take one rank from each", "[mpi][grid]") {
  const int world_size = parallel::process().world, me = parallel::process().rank;
  for (int tp : {1, 2, 4}) {
    if (world_size % tp != 0) continue;
    DYNAMIC_SECTION("tp = " << tp) {
      const auto g = parallel::make_grid(tp);
      const int dp = world_size / tp;
      REQUIRE(g.world == world_size);
      REQUIRE(g.rank == me);
      REQUIRE(g.tp == tp);
      REQUIRE(g.dp == dp);
      REQUIRE(g.tp_rank == me % tp);
      REQUIRE(g.dp_rank == me / tp);
      REQUIRE(g.rank == g.dp_rank * tp + g.tp_rank);
      REQUIRE(g.world_comm->size() == world_size);
      REQUIRE(g.world_comm->rank() == me);
      REQUIRE(g.tp_comm->size() == tp);
      REQUIRE(g.tp_comm->rank() == g.tp_rank);
      REQUIRE(g.dp_comm->size() == dp);
      REQUIRE(g.dp_comm->rank() == g.dp_rank);

      // Membership: gather world ranks over each group.
      int64_t mine = me;
      std::vector<int64_t> tp_members(tp, -1), dp_members(dp, -1);
      g.tp_comm->allgather(&mine, tp_members.data(), 1, DType::i64);
      g.dp_comm->allgather(&mine, dp_members.data(), 1, DType::i64);
      for (int i = 0; i < tp; ++i) REQUIRE(tp_members[i] == g.dp_rank * tp + i);
      for (int j = 0; j < dp; ++j) REQUIRE(dp_members[j] == j * tp + g.tp_rank);

      // A reduction stays inside its group: tp sums the ranks of this run of tp ranks.
      int64_t s = me;
      g.tp_comm->allreduce(&s, 1, DType::i64, ReduceOp::Sum);
      REQUIRE(s == int64_t{g.dp_rank} * tp * tp + int64_t{tp} * (tp - 1) / 2);
      s = me;
      g.dp_comm->allreduce(&s, 1, DType::i64, ReduceOp::Sum);
      REQUIRE(s == int64_t{tp} * dp * (dp - 1) / 2 + int64_t{dp} * g.tp_rank);
      g.world_comm->barrier();
    }
  }
}

TEST_CASE("grid: a tp that does not divide the world is an error naming parallel.tp", "[mpi][grid]") {
  REQUIRE_THROWS_AS(parallel::make_grid(3), Error);
  REQUIRE_THROWS_WITH(parallel::make_grid(3), Catch::Contains("parallel.tp"));
  REQUIRE_THROWS_WITH(parallel::make_grid(0), Catch::Contains("parallel.tp"));
  if (parallel::process().world < 8) REQUIRE_THROWS_WITH(parallel::make_grid(8), Catch::Contains("parallel.tp"));
}

TEST_CASE("grid: set_grid installs the grid that grid() returns", "[mpi][grid]") {
  const auto before = parallel::grid();
  REQUIRE(before.world == parallel::process().world);
  parallel::set_grid(parallel::make_grid(2));
  REQUIRE(parallel::grid().tp == 2);
  REQUIRE(parallel::grid().dp == parallel::process().world / 2);
  REQUIRE(parallel::grid().tp_comm->size() == 2);
  parallel::set_grid(before);
  REQUIRE(parallel::grid().tp == before.tp);
}
