// src/data/sampler.cpp — seeded block sampler (scheme in sampler.h).
#include "data/sampler.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/error.h"

namespace hyscale::data {

uint64_t SplitMix64::below(uint64_t n) {
  HS_CHECK(n >= 1, "SplitMix64::below: empty range (n = 0)");
  // Reject the lowest (2^64 mod n) outputs so every residue is equally likely.
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    const uint64_t r = next();
    if (r >= threshold) return r % n;
  }
}

uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  // Two SplitMix rounds: nearby (seed, stream) pairs give unrelated streams.
  SplitMix64 a(seed);
  SplitMix64 b(a.next() ^ (stream * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
  return b.next();
}

BlockSampler::BlockSampler(int64_t n_tokens, int64_t seq_len, uint64_t seed, int rank, int world)
    : n_tokens_(n_tokens), seq_len_(seq_len), seed_(seed), rank_(rank), world_(world) {
  HS_CHECK(seq_len >= 1, "BlockSampler: seq_len must be >= 1, got ", seq_len);
  HS_CHECK(n_tokens >= 0, "BlockSampler: negative token count ", n_tokens);
  HS_CHECK(world >= 1 && rank >= 0 && rank < world, "BlockSampler: rank ", rank,
           " is not in [0, world=", world, ")");
  // Blocks that fit for every epoch offset in [0, seq_len] (see sampler.h).
  blocks_ = n_tokens >= seq_len ? (n_tokens - seq_len) / (seq_len + 1) : 0;
  HS_CHECK(blocks_ >= world, "dataset of ", n_tokens, " tokens is too small for seq_len ", seq_len,
           " with ", world, " data-parallel ranks (needs at least ", world,
           " blocks of seq_len+1 tokens plus seq_len tokens of slack for the epoch offset: >= ",
           static_cast<int64_t>(world) * (seq_len + 1) + seq_len, " tokens)");
  usable_ = blocks_ / world * world;
}

void BlockSampler::prepare_epoch() {
  if (cached_epoch_ == epoch_) return;
  SplitMix64 rng(derive_seed(seed_, static_cast<uint64_t>(epoch_)));
  offset_ = static_cast<int64_t>(rng.below(static_cast<uint64_t>(seq_len_) + 1));
  order_.resize(static_cast<size_t>(blocks_));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  fisher_yates_shuffle(order_, rng);
  cached_epoch_ = epoch_;
}

std::vector<int64_t> BlockSampler::next(int64_t count) {
  HS_CHECK(count >= 0, "BlockSampler::next: negative count ", count);
  std::vector<int64_t> starts;
  starts.reserve(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) {
    prepare_epoch();
    starts.push_back(offset_ + order_[static_cast<size_t>(cursor_ + rank_)] * (seq_len_ + 1));
    // Every rank advances by one round of world blocks, so states stay equal.
    cursor_ += world_;
    if (cursor_ >= usable_) {  // epoch exhausted (tail < world skipped)
      ++epoch_;
      cursor_ = 0;
    }
  }
  return starts;
}

void BlockSampler::restore(const SamplerState& s) {
  HS_CHECK(s.seed == seed_, "sampler state has seed ", s.seed, " but this run uses seed ", seed_,
           " (data.seed changed since the checkpoint?)");
  HS_CHECK(s.epoch >= 0, "sampler state has negative epoch ", s.epoch);
  HS_CHECK(s.cursor >= 0 && s.cursor < usable_ && s.cursor % world_ == 0, "sampler state cursor ",
           s.cursor, " is invalid for ", usable_, " blocks per epoch and ", world_,
           " ranks (expected a multiple of ", world_, " in [0, ", usable_,
           "); dataset, seq_len or world size changed since the checkpoint?)");
  epoch_ = s.epoch;
  cursor_ = s.cursor;
}

void fill_batch(const TokenDataset& ds, const std::vector<int64_t>& starts, int64_t seq_len,
                int32_t* inputs, int32_t* targets) {
  HS_CHECK(seq_len >= 1, "fill_batch: seq_len must be >= 1, got ", seq_len);
  const int64_t n = ds.size();
  for (size_t b = 0; b < starts.size(); ++b) {
    const int64_t s = starts[b];
    HS_CHECK(s >= 0 && s + seq_len + 1 <= n, "fill_batch: block ", b, " [", s, ", ",
             s + seq_len + 1, ") is outside the dataset of ", n, " tokens");
    const int32_t* src = ds.tokens.data() + s;
    std::memcpy(inputs + b * seq_len, src, static_cast<size_t>(seq_len) * sizeof(int32_t));
    std::memcpy(targets + b * seq_len, src + 1, static_cast<size_t>(seq_len) * sizeof(int32_t));
  }
}

std::vector<int64_t> val_block_starts(int64_t n_tokens, int64_t seq_len, int64_t max_blocks,
                                      int rank, int world) {
  HS_CHECK(seq_len >= 1, "val_block_starts: seq_len must be >= 1, got ", seq_len);
  HS_CHECK(n_tokens >= 0 && max_blocks >= 0, "val_block_starts: negative n_tokens (", n_tokens,
           ") or max_blocks (", max_blocks, ")");
  HS_CHECK(world >= 1 && rank >= 0 && rank < world, "val_block_starts: rank ", rank,
           " is not in [0, world=", world, ")");
  int64_t total = n_tokens / (seq_len + 1);
  if (max_blocks > 0) total = std::min(total, max_blocks);
  total = total / world * world;
  std::vector<int64_t> starts;
  for (int64_t i = rank; i < total; i += world) starts.push_back(i * (seq_len + 1));
  return starts;
}

}  // namespace hyscale::data
