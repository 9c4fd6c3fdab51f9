// src/data/dataset.h — a tokenized split loaded into memory from its HDF5 shards.
//
// On-disk layout (written by `hyscale prepare`, see prepare.h):
//   <dir>/<split>_00000.h5, <split>_00001.h5, ...   split = "train" | "val"
//   each shard: dataset "tokens" (1-D, uint8/uint16/uint32) and root attributes
//   format_version (=1), vocab_size, tokenizer, bos_id, eos_id, n_documents
//   (documents whose EOS lies in this shard), n_tokens, split.
// load() concatenates the shards in file-name order into one int32 array and
// validates everything it reads: a bad shard is an Error naming the shard.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hyscale::data {

struct TokenDataset {
  std::vector<int32_t> tokens;  // all shards back to back, every id in [0, vocab_size)
  int64_t vocab_size = 0;
  std::string tokenizer;
  int64_t n_documents = 0;  // sum of the shards' n_documents (= number of EOS tokens)
  std::vector<std::string> shard_paths;
  int64_t bos_id = -1;  // special ids recorded by prepare (-1 when absent)
  int64_t eos_id = -1;

  int64_t size() const { return static_cast<int64_t>(tokens.size()); }

  // Loads <dir>/<split>_*.h5. Errors: directory missing, no shards, a shard
  // unreadable/truncated/corrupted, missing "tokens" or attributes, n_tokens
  // attribute != dataset length, shards disagreeing on vocab_size/tokenizer,
  // token id >= vocab_size (with shard and position).
  static TokenDataset load(const std::string& dir, const std::string& split);
};

}  // namespace hyscale::data
