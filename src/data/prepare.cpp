// src/data/prepare.cpp — `hyscale prepare` (pipeline and layout in prepare.h).
#include "data/prepare.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <set>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/h5.h"
#include "data/sampler.h"
#include "data/tokenizer.h"

namespace hyscale::data {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kFormatVersion = 1;
constexpr size_t kBinaryProbeBytes = 8192;

// All documents, tokenized (EOS included), back to back: document d is
// tokens[offsets[d], offsets[d+1]). One flat array keeps the shuffle cheap
// (we permute document indices, never tokens).
struct Corpus {
  std::vector<int32_t> tokens;
  std::vector<int64_t> offsets{0};
  int64_t n_docs() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

using DocSink = std::function<void(std::string_view)>;

void validate_options(const PrepareOptions& opt) {
  HS_CHECK(!opt.inputs.empty(), "prepare: no inputs given (expected text files or directories)");
  HS_CHECK(!opt.out_dir.empty(), "prepare: no output directory given");
  HS_CHECK(opt.format == "text" || opt.format == "jsonl", "prepare: format '", opt.format,
           "' is not supported (allowed: text, jsonl)");
  HS_CHECK(opt.format == "text" || opt.doc_separator.empty(),
           "prepare: doc_separator applies only to format 'text' (jsonl has one document per "
           "line), got '",
           opt.doc_separator, "'");
  HS_CHECK(opt.doc_separator.find('\n') == std::string::npos,
           "prepare: doc_separator must be a single line, got one containing a newline");
  HS_CHECK(opt.val_fraction >= 0.0 && opt.val_fraction < 1.0, "prepare: val_fraction ",
           opt.val_fraction, " is outside [0, 1)");
  HS_CHECK(opt.shard_tokens >= 1, "prepare: shard_tokens must be >= 1, got ", opt.shard_tokens);
}

bool is_blank(std::string_view s) {
  return s.find_first_not_of(" \t\n\r\v\f") == std::string_view::npos;
}

// Input files in reading order: inputs in the given order, each directory's
// regular files (symlinks followed) sorted by path.
std::vector<fs::path> list_input_files(const std::vector<std::string>& inputs) {
  std::vector<fs::path> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    const fs::file_status st = fs::status(in, ec);
    HS_CHECK(fs::exists(st), "prepare: input '", in, "' does not exist");
    if (fs::is_regular_file(st)) {
      files.emplace_back(in);
      continue;
    }
    HS_CHECK(fs::is_directory(st), "prepare: input '", in,
             "' is neither a regular file nor a directory");
    std::vector<fs::path> found;
    fs::recursive_directory_iterator it(in, ec), end;
    HS_CHECK(!ec, "prepare: cannot list input directory '", in, "': ", ec.message());
    for (; it != end; it.increment(ec)) {
      HS_CHECK(!ec, "prepare: cannot walk input directory '", in, "': ", ec.message());
      std::error_code fec;
      if (it->is_regular_file(fec)) found.push_back(it->path());
    }
    HS_CHECK(!ec, "prepare: cannot walk input directory '", in, "': ", ec.message());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

// Reads a whole file, or returns false when it looks binary (a NUL byte in
// the first 8 KiB), without reading the rest of a binary file.
bool read_text_file(const fs::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  HS_CHECK(in.good(), "prepare: cannot open input file '", path.string(), "': ",
           std::strerror(errno));
  out.assign(kBinaryProbeBytes, '\0');
  in.read(out.data(), static_cast<std::streamsize>(kBinaryProbeBytes));
  out.resize(static_cast<size_t>(in.gcount()));
  if (out.find('\0') != std::string::npos) return false;
  if (in) {
    std::string rest((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    out += rest;
  }
  HS_CHECK(!in.bad(), "prepare: error while reading input file '", path.string(), "'");
  return true;
}

// Calls fn(begin, end, body) for every line: [begin, end) is the line with its
// '\n' (so documents cut at line boundaries stay byte-exact), body the line
// without its "\n" or "\r\n" terminator.
template <class Fn>
void for_each_line(std::string_view content, Fn fn) {
  size_t pos = 0;
  while (pos < content.size()) {
    size_t nl = content.find('\n', pos);
    const size_t end = nl == std::string_view::npos ? content.size() : nl + 1;
    std::string_view body = content.substr(pos, (nl == std::string_view::npos ? end : nl) - pos);
    if (!body.empty() && body.back() == '\r') body.remove_suffix(1);
    fn(pos, end, body);
    pos = end;
  }
}

// text: the whole file, or the spans between separator lines.
void split_text(std::string_view content, const std::string& sep, const DocSink& sink) {
  if (sep.empty()) {
    sink(content);
    return;
  }
  size_t doc_start = 0;
  for_each_line(content, [&](size_t begin, size_t end, std::string_view body) {
    if (body == sep) {
      sink(content.substr(doc_start, begin - doc_start));
      doc_start = end;
    }
  });
  sink(content.substr(doc_start));
}

// jsonl: one {"text": "..."} object per line; blank lines ignored.
void split_jsonl(std::string_view content, const std::string& path, const DocSink& sink) {
  int64_t line_no = 0;
  for_each_line(content, [&](size_t, size_t, std::string_view body) {
    ++line_no;
    if (is_blank(body)) return;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception& e) {
      HS_FAIL("prepare: '", path, "' line ", line_no, ": invalid JSON (", e.what(), ")");
    }
    HS_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(), "prepare: '", path,
             "' line ", line_no, ": expected a JSON object with a string field \"text\"");
    sink(j["text"].get_ref<const std::string&>());
  });
}

// Removes train_*/val_*.h5 (and their .tmp) left by an earlier run, so the
// loader cannot mix old shards with new ones.
void remove_stale_shards(const fs::path& out_dir) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const fs::directory_entry& e : fs::directory_iterator(out_dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.ends_with(".tmp")) name.resize(name.size() - 4);
    for (const char* prefix : {"train_", "val_"}) {
      const std::string p = prefix;
      if (name.size() > p.size() + 3 && name.starts_with(p) && name.ends_with(".h5") &&
          std::all_of(name.begin() + static_cast<std::ptrdiff_t>(p.size()), name.end() - 3,
                      [](char c) { return c >= '0' && c <= '9'; }))
        stale.push_back(e.path());
    }
  }
  HS_CHECK(!ec, "prepare: cannot list output directory '", out_dir.string(), "': ", ec.message());
  for (const fs::path& p : stale) {
    fs::remove(p, ec);
    HS_CHECK(!ec, "prepare: cannot remove stale shard '", p.string(), "': ", ec.message());
  }
}

struct ShardInfo {
  std::string split;
  int64_t vocab_size, bos_id, eos_id;
  std::string tokenizer;
};

template <class T>
void write_shard(const fs::path& path, const ShardInfo& info, int index,
                 const std::vector<T>& tokens, int64_t n_documents) {
  const std::string final_path = path.string();
  const std::string tmp_path = final_path + ".tmp";
  try {
    H5File f = H5File::create(tmp_path);
    write_array<T>(f, "tokens", tokens.data(), {static_cast<uint64_t>(tokens.size())});
    set_attr_int(f, "format_version", kFormatVersion);
    set_attr_int(f, "vocab_size", info.vocab_size);
    set_attr_string(f, "tokenizer", info.tokenizer);
    set_attr_int(f, "bos_id", info.bos_id);
    set_attr_int(f, "eos_id", info.eos_id);
    set_attr_int(f, "n_documents", n_documents);
    set_attr_int(f, "n_tokens", static_cast<int64_t>(tokens.size()));
    set_attr_string(f, "split", info.split);
    set_attr_int(f, "shard_index", index);
    f.close();
    commit_file_atomically(tmp_path, final_path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp_path, ec);
    throw;
  }
}

// Writes the documents `docs` (indices into the corpus, in order) as shards
// <split>_00000.h5, ... of at most shard_tokens ids. Returns the shard count.
template <class T>
int write_split(const fs::path& out_dir, const ShardInfo& info, const Corpus& corpus,
                const std::vector<int64_t>& docs, int64_t shard_tokens) {
  std::vector<T> buf;
  int64_t total = 0;
  for (int64_t d : docs) total += corpus.offsets[d + 1] - corpus.offsets[d];
  buf.reserve(static_cast<size_t>(std::min(total, shard_tokens)));
  int n_shards = 0;
  int64_t docs_ended = 0;  // documents whose EOS is in `buf`
  auto flush = [&]() {
    char name[64];
    std::snprintf(name, sizeof(name), "%s_%05d.h5", info.split.c_str(), n_shards);
    write_shard<T>(out_dir / name, info, n_shards, buf, docs_ended);
    ++n_shards;
    buf.clear();
    docs_ended = 0;
  };
  for (int64_t d : docs) {
    int64_t pos = corpus.offsets[d];
    const int64_t end = corpus.offsets[d + 1];
    while (pos < end) {  // a document may cross a shard boundary
      const int64_t take = std::min(end - pos, shard_tokens - static_cast<int64_t>(buf.size()));
      for (int64_t i = pos; i < pos + take; ++i) buf.push_back(static_cast<T>(corpus.tokens[i]));
      pos += take;
      if (pos == end) ++docs_ended;
      if (static_cast<int64_t>(buf.size()) == shard_tokens) flush();
    }
  }
  if (!buf.empty() || n_shards == 0) flush();  // the tail; an empty split still gets a shard
  return n_shards;
}

template <class T>
void write_both_splits(const fs::path& out_dir, ShardInfo info, const Corpus& corpus,
                       const std::vector<int64_t>& train, const std::vector<int64_t>& val,
                       int64_t shard_tokens, PrepareStats& stats) {
  info.split = "train";
  stats.n_shards_train = write_split<T>(out_dir, info, corpus, train, shard_tokens);
  info.split = "val";
  stats.n_shards_val = write_split<T>(out_dir, info, corpus, val, shard_tokens);
}

int64_t count_tokens(const Corpus& c, const std::vector<int64_t>& docs) {
  int64_t n = 0;
  for (int64_t d : docs) n += c.offsets[d + 1] - c.offsets[d];
  return n;
}

}  // namespace

PrepareStats prepare_dataset(const PrepareOptions& opt) {
  validate_options(opt);
  std::unique_ptr<ByteTokenizer> tok = make_tokenizer(opt.tokenizer);
  const std::vector<fs::path> files = list_input_files(opt.inputs);

  // Fail fast on an unusable output directory, before the tokenization work.
  const fs::path out_dir(opt.out_dir);
  {
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    HS_CHECK(!ec && fs::is_directory(out_dir, ec), "prepare: cannot create output directory '",
             opt.out_dir, "'", ec ? ": " + ec.message() : std::string());
  }

  // 1. Read, split and tokenize, in file order.
  PrepareStats stats;
  Corpus corpus;
  std::set<fs::path> seen;  // canonical paths: a symlinked duplicate is read once
  std::string content;
  for (const fs::path& file : files) {
    std::error_code ec;
    fs::path canon = fs::weakly_canonical(file, ec);
    if (ec) canon = file;
    if (!seen.insert(canon).second) continue;
    if (file.filename().string().ends_with(".dat") || !read_text_file(file, content)) {
      ++stats.n_skipped_files;
      continue;
    }
    ++stats.n_files;
    const DocSink sink = [&](std::string_view doc) {
      if (is_blank(doc)) return;
      const std::vector<int32_t> ids = tok->encode(doc, /*bos=*/false, /*eos=*/true);
      corpus.tokens.insert(corpus.tokens.end(), ids.begin(), ids.end());
      corpus.offsets.push_back(static_cast<int64_t>(corpus.tokens.size()));
    };
    if (opt.format == "jsonl") split_jsonl(content, file.string(), sink);
    else split_text(content, opt.doc_separator, sink);
  }
  const int64_t n_docs = corpus.n_docs();
  HS_CHECK(n_docs > 0, "prepare: no documents found in ", opt.inputs.size(), " input path(s) (",
           stats.n_files, " text files read, ", stats.n_skipped_files,
           " skipped as binary or *.dat; empty/whitespace-only documents are dropped)");

  // 2. Shuffle documents, then cut off the validation documents.
  std::vector<int64_t> order(static_cast<size_t>(n_docs));
  std::iota(order.begin(), order.end(), int64_t{0});
  SplitMix64 rng(opt.seed);
  fisher_yates_shuffle(order, rng);
  int64_t n_val = 0;
  if (opt.val_fraction > 0 && n_docs >= 2)
    n_val = std::clamp<int64_t>(std::llround(opt.val_fraction * static_cast<double>(n_docs)), 1,
                                n_docs - 1);
  const std::vector<int64_t> val(order.begin(), order.begin() + n_val);
  const std::vector<int64_t> train(order.begin() + n_val, order.end());
  stats.n_docs_train = static_cast<int64_t>(train.size());
  stats.n_docs_val = n_val;
  stats.n_tokens_train = count_tokens(corpus, train);
  stats.n_tokens_val = count_tokens(corpus, val);

  // 3. Shards in the smallest unsigned type that holds every id.
  remove_stale_shards(out_dir);
  const ShardInfo info{"", tok->vocab_size(), tok->bos_id(), tok->eos_id(), tok->name()};
  const int64_t vocab = tok->vocab_size();
  std::string dtype;
  if (vocab <= 256) {
    dtype = "uint8";
    write_both_splits<uint8_t>(out_dir, info, corpus, train, val, opt.shard_tokens, stats);
  } else if (vocab <= 65536) {
    dtype = "uint16";
    write_both_splits<uint16_t>(out_dir, info, corpus, train, val, opt.shard_tokens, stats);
  } else {
    dtype = "uint32";
    write_both_splits<uint32_t>(out_dir, info, corpus, train, val, opt.shard_tokens, stats);
  }

  // 4. dataset.json: what was done and the totals, for humans and tools.
  nlohmann::json j;
  j["format_version"] = kFormatVersion;
  j["tokenizer"] = tok->name();
  j["vocab_size"] = vocab;
  j["bos_id"] = tok->bos_id();
  j["eos_id"] = tok->eos_id();
  j["dtype"] = dtype;
  j["inputs"] = opt.inputs;
  j["format"] = opt.format;
  j["doc_separator"] = opt.doc_separator;
  j["val_fraction"] = opt.val_fraction;
  j["seed"] = opt.seed;
  j["shard_tokens"] = opt.shard_tokens;
  j["n_files"] = stats.n_files;
  j["n_skipped_files"] = stats.n_skipped_files;
  j["train"] = {{"n_documents", stats.n_docs_train},
                {"n_tokens", stats.n_tokens_train},
                {"n_shards", stats.n_shards_train}};
  j["val"] = {{"n_documents", stats.n_docs_val},
              {"n_tokens", stats.n_tokens_val},
              {"n_shards", stats.n_shards_val}};
  const std::string json_path = (out_dir / "dataset.json").string();
  const std::string json_tmp = json_path + ".tmp";
  {
    std::ofstream out(json_tmp, std::ios::binary | std::ios::trunc);
    HS_CHECK(out.good(), "prepare: cannot write '", json_tmp, "': ", std::strerror(errno));
    // Input paths need not be UTF-8: replace invalid bytes instead of throwing.
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    out.close();
    HS_CHECK(!out.fail(), "prepare: error while writing '", json_tmp, "'");
  }
  commit_file_atomically(json_tmp, json_path);
  return stats;
}

}  // namespace hyscale::data
