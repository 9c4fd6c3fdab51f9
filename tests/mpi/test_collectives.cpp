// Runs under mpirun -np 2 and -np 4 (ctest label mpi): host collectives and the
// process layout. Every rank runs every test case.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "parallel/dist.h"

using namespace hyscale;

TEST_CASE("process layout comes from MPI", "[mpi]") {
  const auto& p = parallel::process();
  REQUIRE(parallel::have_mpi());
  REQUIRE(p.world >= 2);
  REQUIRE(p.rank >= 0);
  REQUIRE(p.rank < p.world);
  REQUIRE(p.local_rank >= 0);
}

TEST_CASE("allreduce_sum over float and double, including sizes past one chunk", "[mpi]") {
  const auto& p = parallel::process();
  std::vector<float> f(1001);
  std::vector<double> d(17);
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(p.rank + i);
  for (size_t i = 0; i < d.size(); ++i) d[i] = 0.5 * (p.rank + 1) * i;
  parallel::allreduce_sum(f.data(), static_cast<int64_t>(f.size()));
  parallel::allreduce_sum(d.data(), static_cast<int64_t>(d.size()));
  const double rank_sum = p.world * (p.world - 1) / 2.0;
  for (size_t i = 0; i < f.size(); ++i) REQUIRE(f[i] == Approx(rank_sum + p.world * static_cast<double>(i)));
  for (size_t i = 0; i < d.size(); ++i) REQUIRE(d[i] == Approx(0.5 * i * (rank_sum + p.world)));
  parallel::barrier();
}

int main(int argc, char** argv) {
  parallel::init(&argc, &argv);
  int rc = Catch::Session().run(argc, argv);
  parallel::finalize();
  return rc;
}
