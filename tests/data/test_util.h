// tests/data/test_util.h — helpers shared by the data tests: a unique
// temporary directory that removes itself, and small file writers.
#pragma once
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "data/h5.h"

namespace hyscale::test {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed (recursively) on scope exit.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("hyscale_data_test_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter++) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline void write_file(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

// A token shard in the layout of `hyscale prepare`, with every field settable
// so tests can build broken ones.
inline void write_shard(const std::string& path, const std::vector<uint16_t>& tokens,
                        int64_t vocab_size = 320, const std::string& tokenizer = "byte",
                        int64_t n_tokens_attr = -1, const std::string& split = "train") {
  data::H5File f = data::H5File::create(path);
  data::write_array<uint16_t>(f, "tokens", tokens.data(), {tokens.size()});
  data::set_attr_int(f, "format_version", 1);
  data::set_attr_int(f, "vocab_size", vocab_size);
  data::set_attr_string(f, "tokenizer", tokenizer);
  data::set_attr_int(f, "bos_id", 256);
  data::set_attr_int(f, "eos_id", 257);
  data::set_attr_int(f, "n_documents", 1);
  data::set_attr_int(f, "n_tokens",
                     n_tokens_attr >= 0 ? n_tokens_attr : static_cast<int64_t>(tokens.size()));
  data::set_attr_string(f, "split", split);
  f.close();
}

}  // namespace hyscale::test
