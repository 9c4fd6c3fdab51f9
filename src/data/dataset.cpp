// src/data/dataset.cpp — load and validate a split's HDF5 token shards
// (layout in dataset.h). Shards are read twice: a cheap metadata pass that
// checks agreement and sizes the output once, then the token pass.
#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "data/h5.h"

namespace hyscale::data {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kFormatVersion = 1;

int64_t shard_attr_int(H5File& f, const char* name) {
  HS_CHECK(has_attr(f, name), "token shard '", f.path(), "' lacks the attribute '", name,
           "' (expected a shard written by `hyscale prepare`)");
  return get_attr_int(f, name);
}

std::string shard_attr_string(H5File& f, const char* name) {
  HS_CHECK(has_attr(f, name), "token shard '", f.path(), "' lacks the attribute '", name,
           "' (expected a shard written by `hyscale prepare`)");
  return get_attr_string(f, name);
}

struct ShardMeta {
  int64_t vocab_size, n_tokens, n_documents, bos_id, eos_id;
  std::string tokenizer;
};

ShardMeta read_meta(H5File& f, const std::string& split) {
  ShardMeta m;
  const int64_t version = shard_attr_int(f, "format_version");
  HS_CHECK(version == kFormatVersion, "token shard '", f.path(), "' has format_version ", version,
           ", this build reads format_version ", kFormatVersion);
  if (has_attr(f, "split")) {
    const std::string s = get_attr_string(f, "split");
    HS_CHECK(s == split, "token shard '", f.path(), "' belongs to split '", s, "', expected '",
             split, "' (renamed file?)");
  }
  m.vocab_size = shard_attr_int(f, "vocab_size");
  m.n_tokens = shard_attr_int(f, "n_tokens");
  m.n_documents = shard_attr_int(f, "n_documents");
  m.tokenizer = shard_attr_string(f, "tokenizer");
  m.bos_id = has_attr(f, "bos_id") ? get_attr_int(f, "bos_id") : -1;
  m.eos_id = has_attr(f, "eos_id") ? get_attr_int(f, "eos_id") : -1;
  HS_CHECK(m.vocab_size > 0, "token shard '", f.path(), "' has vocab_size ", m.vocab_size,
           ", expected > 0");
  HS_CHECK(m.n_tokens >= 0 && m.n_documents >= 0, "token shard '", f.path(),
           "' has negative n_tokens/n_documents (", m.n_tokens, ", ", m.n_documents, ")");
  HS_CHECK(has_dataset(f, "tokens"), "token shard '", f.path(),
           "' has no 'tokens' dataset (expected a 1-D array of token ids)");
  return m;
}

// <split>_*.h5 in `dir`, sorted by file name (= shard order).
std::vector<std::string> find_shards(const std::string& dir, const std::string& split) {
  std::error_code ec;
  HS_CHECK(fs::exists(dir, ec), "dataset directory '", dir,
           "' does not exist: run `hyscale prepare` first");
  HS_CHECK(fs::is_directory(dir, ec), "dataset path '", dir, "' is not a directory");
  const std::string prefix = split + "_";
  const std::string suffix = ".h5";
  std::vector<std::string> paths;
  fs::directory_iterator it(dir, ec);
  HS_CHECK(!ec, "cannot list dataset directory '", dir, "': ", ec.message());
  for (const fs::directory_entry& e : it) {
    const std::string name = e.path().filename().string();
    if (name.size() > prefix.size() + suffix.size() && name.starts_with(prefix) &&
        name.ends_with(suffix))
      paths.push_back(e.path().string());
  }
  std::sort(paths.begin(), paths.end());
  HS_CHECK(!paths.empty(), "no '", split, "_*.h5' shards in ", dir,
           ": run `hyscale prepare` first");
  return paths;
}

}  // namespace

TokenDataset TokenDataset::load(const std::string& dir, const std::string& split) {
  HS_CHECK(!split.empty(), "TokenDataset::load: empty split name (expected e.g. 'train' or 'val')");
  TokenDataset ds;
  ds.shard_paths = find_shards(dir, split);

  // Pass 1: metadata. All shards must agree on the vocabulary.
  std::vector<ShardMeta> metas;
  int64_t total = 0;
  for (const std::string& path : ds.shard_paths) {
    H5File f = H5File::open_read(path);
    ShardMeta m = read_meta(f, split);
    if (metas.empty()) {
      ds.vocab_size = m.vocab_size;
      ds.tokenizer = m.tokenizer;
      ds.bos_id = m.bos_id;
      ds.eos_id = m.eos_id;
    } else {
      HS_CHECK(m.vocab_size == ds.vocab_size && m.tokenizer == ds.tokenizer, "token shard '", path,
               "' has vocab_size ", m.vocab_size, " / tokenizer '", m.tokenizer, "' but '",
               ds.shard_paths[0], "' has vocab_size ", ds.vocab_size, " / tokenizer '",
               ds.tokenizer, "': shards of one dataset must share the tokenizer");
    }
    total += m.n_tokens;
    ds.n_documents += m.n_documents;
    metas.push_back(std::move(m));
  }

  // Pass 2: tokens, converted to int32 by HDF5 (a stored id beyond int32 fails
  // the read), then range-checked so no bad id can reach an embedding lookup.
  ds.tokens.reserve(static_cast<size_t>(total));
  for (size_t s = 0; s < ds.shard_paths.size(); ++s) {
    const std::string& path = ds.shard_paths[s];
    H5File f = H5File::open_read(path);
    std::vector<uint64_t> dims;
    std::vector<int32_t> tokens = read_array<int32_t>(f, "tokens", &dims);
    HS_CHECK(dims.size() == 1, "token shard '", path, "': 'tokens' has ", dims.size(),
             " dimensions, expected 1");
    HS_CHECK(static_cast<int64_t>(tokens.size()) == metas[s].n_tokens, "token shard '", path,
             "': 'tokens' holds ", tokens.size(), " ids but the n_tokens attribute says ",
             metas[s].n_tokens, " (corrupted or hand-edited shard)");
    for (size_t i = 0; i < tokens.size(); ++i) {
      HS_CHECK(tokens[i] >= 0 && tokens[i] < ds.vocab_size, "token shard '", path,
               "': token id ", tokens[i], " at position ", i, " is outside [0, vocab_size=",
               ds.vocab_size, ")");
    }
    ds.tokens.insert(ds.tokens.end(), tokens.begin(), tokens.end());
  }
  return ds;
}

}  // namespace hyscale::data
