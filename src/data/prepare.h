// src/data/prepare.h — `hyscale prepare`: raw text -> tokenized HDF5 shards.
//
// Pipeline: collect input files (directories walked recursively, sorted;
// symlinked duplicates read once; "*.dat" files and files with a NUL byte in
// their first 8 KiB skipped as binary) -> split into documents -> tokenize,
// append EOS (no BOS) -> shuffle documents with `seed` (SplitMix64 +
// Fisher–Yates, identical on every platform) -> the first
// round(val_fraction * n_docs) documents (>= 1 when val_fraction > 0 and
// n_docs >= 2, and always leaving >= 1 for train) are validation, the rest
// train -> shards.
//
// Output layout in out_dir (stale train_*/val_*.h5 from an earlier run are removed):
//   train_00000.h5, train_00001.h5, ..., val_00000.h5, ...
//     dataset "tokens": 1-D, smallest unsigned type holding vocab_size
//     (uint8 if <= 256, uint16 if <= 65536, else uint32); at most
//     shard_tokens ids per shard, documents may cross shard boundaries.
//     root attributes: format_version=1, vocab_size, tokenizer, bos_id, eos_id,
//     n_documents (documents whose EOS lies in the shard), n_tokens, split,
//     shard_index.
//     A split always has at least one shard (an empty val shard when
//     val_fraction = 0), so loading it never fails for lack of files.
//   dataset.json: options and totals.
// Each file is written as "<name>.tmp", fsynced and renamed, so a crash never
// leaves a half-written file under its final name.
//
// The whole tokenized corpus is held in memory (4 bytes per token) while the
// documents are shuffled; fine for corpora up to a few GB of text.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hyscale::data {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files and/or directories
  std::string out_dir;
  std::string format = "text";  // "text" | "jsonl" (one {"text": ...} object per line)
  // text only. Empty: one document per file. Otherwise a line consisting of
  // exactly this string (a trailing '\r' tolerated) separates documents, e.g.
  // "%" for fortune files.
  std::string doc_separator;
  double val_fraction = 0.05;  // in [0, 1)
  std::string tokenizer = "byte";
  uint64_t seed = 1234;
  int64_t shard_tokens = 50'000'000;
};

struct PrepareStats {
  int64_t n_files = 0;          // input files read (after skipping and de-duplication)
  int64_t n_skipped_files = 0;  // "*.dat" and binary files
  int64_t n_docs_train = 0, n_docs_val = 0;
  int64_t n_tokens_train = 0, n_tokens_val = 0;  // EOS included
  int n_shards_train = 0, n_shards_val = 0;
};

// Throws Error for invalid options (no inputs, missing input path,
// val_fraction outside [0,1), unknown format/tokenizer, out_dir not
// creatable), unreadable inputs, bad JSONL lines (file and line number), or
// when no documents are found.
PrepareStats prepare_dataset(const PrepareOptions& opt);

}  // namespace hyscale::data
