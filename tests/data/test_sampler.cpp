// BlockSampler / fill_batch / val_block_starts: determinism, resumption,
// rank disjointness and coverage, epoch wrap, and the error cases.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "data/sampler.h"

using namespace hyscale::data;

TEST_CASE("SplitMix64: reference values and bounded draws", "[data]") {
  // First outputs for seed 1234567 from the reference implementation
  // (Vigna's splitmix64.c): guards against an accidental change of stream.
  SplitMix64 g(1234567);
  CHECK(g.next() == 6457827717110365317ull);
  CHECK(g.next() == 3203168211198807973ull);
  SplitMix64 r(42);
  std::vector<int> hist(7, 0);
  for (int i = 0; i < 7000; ++i) ++hist[r.below(7)];
  for (int h : hist) CHECK((h > 850 && h < 1150));
  std::vector<int> v(100);
  for (int i = 0; i < 100; ++i) v[i] = i;
  SplitMix64 s(3);
  fisher_yates_shuffle(v, s);
  std::vector<int> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted[0] == 0);
  CHECK(sorted[99] == 99);
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());  // a permutation
  CHECK_FALSE(std::is_sorted(v.begin(), v.end()));
}

TEST_CASE("sampler: same seed same stream, different seed different stream", "[data]") {
  BlockSampler a(100000, 63, 1), b(100000, 63, 1), c(100000, 63, 2);
  const std::vector<int64_t> sa = a.next(200), sb = b.next(200), sc = c.next(200);
  CHECK(sa == sb);
  CHECK(sa != sc);
  for (int64_t s : sa) CHECK((s >= 0 && s + 64 <= 100000));
}

TEST_CASE("sampler: state saved after k batches restores an identical continuation", "[data]") {
  const int64_t n = 5000, T = 15;
  for (int world : {1, 3}) {
    for (int rank = 0; rank < world; ++rank) {
      BlockSampler full(n, T, 99, rank, world);
      BlockSampler first(n, T, 99, rank, world);
      for (int k = 0; k < 37; ++k) {  // crosses epoch boundaries (~312/world blocks per epoch)
        CHECK(first.next(4) == full.next(4));
      }
      const SamplerState saved = first.state();
      BlockSampler resumed(n, T, 99, rank, world);
      resumed.restore(saved);
      for (int k = 0; k < 100; ++k) REQUIRE(resumed.next(5) == full.next(5));
    }
  }
}

TEST_CASE("sampler: ranks read disjoint blocks whose union is the epoch", "[data]") {
  const int64_t n = 1000, T = 9, L = T + 1;  // nb = (1000 - 9) / 10 = 99 blocks
  const int world = 4;
  std::vector<BlockSampler> ranks;
  for (int r = 0; r < world; ++r) ranks.emplace_back(n, T, 5, r, world);
  const int64_t per_epoch = ranks[0].blocks_per_epoch();
  REQUIRE(per_epoch == 96);  // 99 rounded down to a multiple of 4
  std::set<int64_t> all;
  int64_t total = 0;
  for (int r = 0; r < world; ++r) {
    const std::vector<int64_t> s = ranks[r].next(per_epoch / world);
    total += static_cast<int64_t>(s.size());
    all.insert(s.begin(), s.end());
  }
  CHECK(static_cast<int64_t>(all.size()) == total);  // disjoint
  CHECK(total == per_epoch);
  // All blocks of an epoch share one offset and do not overlap.
  const int64_t offset = *all.begin() % L;
  for (int64_t s : all) {
    CHECK(s % L == offset);
    CHECK(s + L <= n);
  }
  // Every rank finished epoch 0 at the same state.
  for (int r = 0; r < world; ++r) {
    CHECK(ranks[r].state().epoch == 1);
    CHECK(ranks[r].state().cursor == 0);
  }
}

TEST_CASE("sampler: epochs wrap with a new order and new block boundaries", "[data]") {
  const int64_t n = 2000, T = 19, L = T + 1;
  BlockSampler s(n, T, 11);
  const int64_t nb = s.blocks_per_epoch();
  REQUIRE(nb == (n - T) / L);
  std::set<int64_t> offsets;
  std::vector<int64_t> prev;
  for (int e = 0; e < 6; ++e) {
    CHECK(s.state().epoch == e);
    const std::vector<int64_t> blocks = s.next(nb);
    const std::set<int64_t> distinct(blocks.begin(), blocks.end());
    CHECK(static_cast<int64_t>(distinct.size()) == nb);  // each block once per epoch
    offsets.insert(blocks[0] % L);
    for (int64_t b : blocks) CHECK(b % L == blocks[0] % L);
    CHECK(blocks != prev);
    prev = blocks;
  }
  CHECK(s.state().epoch == 6);
  CHECK(offsets.size() > 1);  // block boundaries move between epochs
}

TEST_CASE("sampler: too-small dataset and bad states are errors", "[data]") {
  REQUIRE_THROWS_WITH(BlockSampler(30, 8, 1, 0, 4),
                      Catch::Contains("dataset of 30 tokens is too small for seq_len 8 with 4"));
  REQUIRE_THROWS_AS(BlockSampler(5, 8, 1), hyscale::Error);
  REQUIRE_THROWS_AS(BlockSampler(1000, 8, 1, 2, 2), hyscale::Error);  // rank out of range
  BlockSampler s(1000, 9, 1, 0, 2);
  s.next(3);
  SamplerState st = s.state();
  CHECK(st.cursor == 6);
  BlockSampler other_seed(1000, 9, 2, 0, 2);
  REQUIRE_THROWS_WITH(other_seed.restore(st), Catch::Contains("seed"));
  BlockSampler fresh(1000, 9, 1, 0, 2);
  REQUIRE_THROWS_AS(fresh.restore({1, 0, 5}), hyscale::Error);     // not a multiple of world
  REQUIRE_THROWS_AS(fresh.restore({1, 0, 1000}), hyscale::Error);  // beyond the epoch
  REQUIRE_THROWS_AS(fresh.restore({1, -1, 0}), hyscale::Error);
}

TEST_CASE("fill_batch: inputs and shifted targets, bounds checked", "[data]") {
  TokenDataset ds;
  for (int i = 0; i < 50; ++i) ds.tokens.push_back(i);
  const int64_t T = 4;
  std::vector<int32_t> x(2 * T), y(2 * T);
  fill_batch(ds, {0, 45}, T, x.data(), y.data());
  CHECK(x == std::vector<int32_t>{0, 1, 2, 3, 45, 46, 47, 48});
  CHECK(y == std::vector<int32_t>{1, 2, 3, 4, 46, 47, 48, 49});
  REQUIRE_THROWS_WITH(fill_batch(ds, {46}, T, x.data(), y.data()), Catch::Contains("50 tokens"));
  REQUIRE_THROWS_AS(fill_batch(ds, {-1}, T, x.data(), y.data()), hyscale::Error);
}

TEST_CASE("val_block_starts: sequential, capped, dealt round-robin", "[data]") {
  CHECK(val_block_starts(100, 9, 0, 0, 1) ==
        std::vector<int64_t>{0, 10, 20, 30, 40, 50, 60, 70, 80, 90});
  // 10 blocks, 3 ranks: 9 used so every rank evaluates the same number.
  CHECK(val_block_starts(100, 9, 0, 0, 3) == std::vector<int64_t>{0, 30, 60});
  CHECK(val_block_starts(100, 9, 0, 2, 3) == std::vector<int64_t>{20, 50, 80});
  CHECK(val_block_starts(100, 9, 4, 1, 2) == std::vector<int64_t>{10, 30});
  CHECK(val_block_starts(5, 9, 0, 0, 1).empty());
  REQUIRE_THROWS_AS(val_block_starts(100, 9, 0, 3, 3), hyscale::Error);
}
