// src/data/sampler.h — deterministic, seeded, resumable sampling of training
// blocks, plus the fully specified random-number generator the data pipeline
// uses (std:: distributions are implementation-defined, so they would break
// bit-identical runs across standard libraries).
//
// A block is seq_len+1 consecutive tokens: inputs = block[0:T], targets =
// block[1:T+1]. Epoch e of a dataset of N tokens, with L = seq_len+1:
//   o_e   = uniform offset in [0, seq_len], from (seed, e): block boundaries
//           move between epochs, so no token pair is always split;
//   nb    = (N - seq_len) / L blocks, at o_e + i*L (i < nb), which fit for
//           every possible offset, so nb is the same in every epoch;
//   order = Fisher–Yates permutation of the nb blocks, from (seed, e);
//   the global stream order[0], order[1], ... is dealt round-robin: rank r
//   takes positions r, r+W, r+2W, ... (ranks read disjoint blocks); the last
//   nb mod W positions, which cannot give every rank a block, are skipped.
// The state (seed, epoch, cursor) is identical on every rank: cursor is the
// global stream position of the next round, a multiple of W.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "core/random.h"
#include "data/dataset.h"

namespace hyscale::data {

// SplitMix64 (Steele, Lea & Flood 2014): 64-bit state, passes BigCrush,
// output fully specified by the seed.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() { return splitmix64(state_); }  // core/random.h
  uint64_t below(uint64_t n);

 private:
  uint64_t state_;
};

// Seed of an independent stream `stream` (e.g. an epoch) derived from `seed`.
uint64_t derive_seed(uint64_t seed, uint64_t stream);

// In-place Fisher–Yates shuffle driven by `rng` (Durstenfeld's variant).
template <class T>
void fisher_yates_shuffle(std::vector<T>& v, SplitMix64& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng.below(i));
    std::swap(v[i - 1], v[j]);
  }
}

struct SamplerState {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t cursor = 0;  // global position in the epoch's block stream
};

class BlockSampler {
 public:
  // Throws Error when n_tokens holds fewer than `world` blocks.
  BlockSampler(int64_t n_tokens, int64_t seq_len, uint64_t seed, int rank = 0, int world = 1);

  // Start offsets of this rank's next `count` blocks; each block
  // [start, start + seq_len + 1) lies within [0, n_tokens). Crosses epochs.
  std::vector<int64_t> next(int64_t count);

  SamplerState state() const { return {seed_, epoch_, cursor_}; }
  // Resume from a saved state. Error when the seed differs or epoch/cursor
  // are out of range for this dataset/seq_len/world (changed since the save).
  void restore(const SamplerState& s);

  // Blocks read per epoch by all ranks together (nb rounded down to a
  // multiple of world).
  int64_t blocks_per_epoch() const { return usable_; }
  int64_t epoch() const { return epoch_; }
  int64_t seq_len() const { return seq_len_; }

 private:
  void prepare_epoch();  // offset_ and order_ for epoch_ (cached)

  int64_t n_tokens_, seq_len_;
  uint64_t seed_;
  int rank_, world_;
  int64_t blocks_ = 0;  // nb: blocks in every epoch
  int64_t usable_ = 0;  // blocks_ rounded down to a multiple of world_
  int64_t epoch_ = 0, cursor_ = 0;
  int64_t cached_epoch_ = -1;
  int64_t offset_ = 0;
  std::vector<int64_t> order_;
};

// Fills row-major [B, T] inputs and targets (B = starts.size(), T = seq_len):
// inputs[b, t] = tokens[starts[b] + t], targets[b, t] = tokens[starts[b] + t + 1].
// Error when a block runs past the end of the dataset.
void fill_batch(const TokenDataset& ds, const std::vector<int64_t>& starts, int64_t seq_len,
                int32_t* inputs, int32_t* targets);

// Validation blocks: consecutive, non-overlapping seq_len+1 blocks from offset
// 0, at most max_blocks in total (0 = all), unshuffled. The total is rounded
// down to a multiple of world so every rank evaluates the same number of
// blocks (lockstep collectives cannot hang); rank r takes blocks r, r+W, ...
std::vector<int64_t> val_block_starts(int64_t n_tokens, int64_t seq_len, int64_t max_blocks,
                                      int rank, int world);

}  // namespace hyscale::data
