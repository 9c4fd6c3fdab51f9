// BenchTable (train/bench_table.h), the row bookkeeping of `hyscale bench kernels`: the values
// and units of the rows, which default row each "[variant]" row is compared with, and the JSON
// that scripts/bench_compare.py reads.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "train/bench_table.h"

using hyscale::train::BenchTable;

namespace {
std::string captured(std::FILE* f) {
  std::rewind(f);
  std::string s;
  char buf[512];
  while (std::fgets(buf, sizeof buf, f) != nullptr) s += buf;
  return s;
}
}  // namespace

TEST_CASE("bench table: units, values, printed rows", "[train][bench]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  BenchTable t(f);
  const auto a = t.add("copy-like", 2.0, 6e9, "GB/s", 3000.0);  // 6 GB in 2 ms: 3000 GB/s
  CHECK(a.value == Approx(3000.0));
  const auto g = t.add("gemm-like", 4.0, 2e12, "TFLOP/s", 1000.0);  // 2 TFLOP in 4 ms: 500 TFLOP/s
  CHECK(g.value == Approx(500.0));
  CHECK_THROWS_WITH(t.add("bad", 1.0, 1.0, "GFLOP/s", 1.0), Catch::Contains("unknown unit 'GFLOP/s'"));
  CHECK_THROWS_WITH(t.add("bad", 0.0, 1.0, "GB/s", 1.0), Catch::Contains("time 0 ms"));
  const std::string out = captured(f);
  CHECK(out.find("copy-like") != std::string::npos);
  CHECK(out.find("3000") != std::string::npos);
  CHECK(out.find("100%") != std::string::npos);  // of the copy ceiling
  CHECK(out.find("500.0") != std::string::npos);
  CHECK(out.find("50%") != std::string::npos);  // of the GEMM ceiling
  std::fclose(f);
}

TEST_CASE("bench table: each [variant] row against its default, or the first variant when all have one",
          "[train][bench]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  BenchTable t(f);
  t.add("attention fwd causal (2x4096)", 1.0, 1e12, "TFLOP/s", 900);
  t.add("attention fwd causal (2x4096) [16 rows/warp]", 1.5, 1e12, "TFLOP/s", 900);
  t.add("attention fwd causal (2x4096) [wgmma]", 0.5, 1e12, "TFLOP/s", 900);
  t.add("diff attention fwd [fused]", 4.0, 1e12, "TFLOP/s", 900);
  t.add("diff attention fwd [split]", 2.0, 1e12, "TFLOP/s", 900);
  t.add("orphan [x]", 1.0, 1e9, "GB/s", 3000);                   // the only row of its base: no comparison
  t.add("scan (B [1] x T) plain", 1.0, 1e9, "GB/s", 3000);       // brackets inside a name are not a variant
  const auto alts = t.alternatives();
  REQUIRE(alts.size() == 3);
  CHECK(alts[0].first->name == "attention fwd causal (2x4096) [16 rows/warp]");
  CHECK(alts[0].second->name == "attention fwd causal (2x4096)");
  CHECK(alts[0].first->ms / alts[0].second->ms == Approx(1.5));
  CHECK(alts[1].first->name == "attention fwd causal (2x4096) [wgmma]");
  CHECK(alts[1].second->name == "attention fwd causal (2x4096)");
  CHECK(alts[2].first->name == "diff attention fwd [split]");
  CHECK(alts[2].second->name == "diff attention fwd [fused]");
  CHECK(BenchTable::base_of("a b [c]") == "a b");
  CHECK(BenchTable::base_of("a [b] c") == "a [b] c");
  t.print_alternatives();
  const std::string out = captured(f);
  CHECK(out.find("0.500") != std::string::npos);  // wgmma: half the default's time
  std::fclose(f);

  const nlohmann::json j = t.rows_json();
  REQUIRE(j.size() == 7);
  CHECK(j[2]["name"] == "attention fwd causal (2x4096) [wgmma]");
  CHECK(j[2]["unit"] == "TFLOP/s");
  CHECK(j[2]["value"].get<double>() == Approx(2000.0));
  CHECK(j[2]["ms"].get<double>() == Approx(0.5));
  CHECK(j[5]["ceiling"].get<double>() == Approx(3000.0));
}
