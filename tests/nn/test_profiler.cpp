// The op profiler (core/profiler.h): marks charge the time since the previous mark, nodes keep
// their forward scope for backward, nothing is recorded while it is off.
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "core/autograd.h"
#include "core/profiler.h"
#include "gradcheck.h"
#include "nn/model.h"
#include "small_model.h"

using namespace hyscale;

namespace {
const prof::Row* find(const std::vector<prof::Row>& rs, const std::string& phase, const std::string& scope,
                      const std::string& name) {
  for (const auto& r : rs)
    if (r.phase == phase && r.scope == scope && r.name == name) return &r;
  return nullptr;
}
}  // namespace

TEST_CASE("profiler marks charge the time since the previous mark, per step", "[profiler]") {
  prof::start(Device::cpu());
  for (int step = 0; step < 2; ++step) {
    prof::begin_step();
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    prof::mark("fwd", "slow");
    {
      prof::Scope s("outer");
      prof::mark("fwd", "fast");
      s.set("inner");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      prof::mark("bwd", "fast");
    }
    prof::mark("fwd", "fast");
    prof::end_step();
  }
  const auto rs = prof::rows();
  REQUIRE(rs.size() == 4);
  CHECK(rs[0].name == "slow");  // largest first
  CHECK(rs[0].scope.empty());
  CHECK(rs[0].calls == 1.0);
  CHECK(rs[0].ms >= 29.0);
  CHECK(rs[0].ms < 1000.0);
  const prof::Row* b = find(rs, "bwd", "inner", "fast");
  REQUIRE(b);
  CHECK(b->ms >= 4.5);
  REQUIRE(find(rs, "fwd", "outer", "fast"));
  REQUIRE(find(rs, "fwd", "", "fast"));  // the scope ended
  CHECK(prof::report().find("inner/fast") != std::string::npos);
  prof::stop();
  CHECK(prof::rows().empty());
  CHECK_THROWS(prof::report());
  prof::mark("fwd", "off");  // off: nothing is recorded
  CHECK(prof::rows().empty());
}

TEST_CASE("profiler over a SambaY step: forward and backward ops by block role", "[profiler]") {
  nn::ModelConfig cfg = testing::small_model("sambay");
  nn::Model model(cfg);
  model.init_weights(3);
  Tensor ids = testing::randint({2, 12}, cfg.vocab_size, 1), tg = testing::randint({2, 12}, cfg.vocab_size, 2);
  prof::start(Device::cpu());
  prof::begin_step();
  model.loss(ids, tg).backward();
  prof::end_step();
  const auto rs = prof::rows();
  prof::stop();
  // sambay: 4 self-decoder layers (2 Mamba of which the last keeps the memory, 2 SWA), then a
  // full-attention layer writing the shared KV, then cross and GMU layers, each with an MLP.
  REQUIRE(find(rs, "fwd", "mamba_mem", "selective_scan"));
  REQUIRE(find(rs, "bwd", "mamba_mem", "selective_scan"));
  REQUIRE(find(rs, "fwd", "gmu", "gmu_gate"));
  REQUIRE(find(rs, "bwd", "gmu", "gmu_gate"));
  REQUIRE(find(rs, "fwd", "swa", "attention"));
  REQUIRE(find(rs, "fwd", "head", "cross_entropy"));
  REQUIRE(find(rs, "bwd", "head", "cross_entropy"));
  const prof::Row* mlp = find(rs, "fwd", "mlp", "swiglu");
  REQUIRE(mlp);
  CHECK(mlp->calls == cfg.n_layers);
  for (const auto& r : rs) {
    CHECK(r.ms >= 0);
    CHECK(r.phase != "");
  }
}
