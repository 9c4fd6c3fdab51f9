// TokenDataset::load: concatenation order and every documented error, each
// naming the offending shard.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "data/dataset.h"
#include "data/h5.h"
#include "data/test_util.h"

using namespace hyscale::data;
using hyscale::test::TempDir;
using hyscale::test::write_file;
using hyscale::test::write_shard;
namespace fs = std::filesystem;

namespace {

std::vector<uint16_t> iota_tokens(size_t n, uint16_t start = 0) {
  std::vector<uint16_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<uint16_t>((start + i) % 300);
  return t;
}

}  // namespace

TEST_CASE("dataset: shards load in file-name order and concatenate", "[data]") {
  TempDir dir;
  write_shard(dir / "train_00001.h5", {4, 5});
  write_shard(dir / "train_00000.h5", {1, 2, 3});
  write_shard(dir / "val_00000.h5", {9}, 320, "byte", -1, "val");
  write_file(dir / "train_00002.h5.tmp", "leftover of a crashed run: ignored");
  const TokenDataset ds = TokenDataset::load(dir.str(), "train");
  CHECK(ds.tokens == std::vector<int32_t>{1, 2, 3, 4, 5});
  CHECK(ds.shard_paths == std::vector<std::string>{dir / "train_00000.h5", dir / "train_00001.h5"});
  CHECK(ds.n_documents == 2);
  CHECK(ds.vocab_size == 320);
  CHECK(TokenDataset::load(dir.str(), "val").tokens == std::vector<int32_t>{9});
}

TEST_CASE("dataset: truncated shard is an error naming the shard", "[data]") {
  TempDir dir;
  const std::string shard = dir / "train_00000.h5";
  write_shard(shard, iota_tokens(20000));
  REQUIRE(TokenDataset::load(dir.str(), "train").size() == 20000);  // valid before truncation
  fs::resize_file(shard, fs::file_size(shard) / 2);
  REQUIRE_THROWS_AS(TokenDataset::load(dir.str(), "train"), hyscale::Error);
  REQUIRE_THROWS_WITH(TokenDataset::load(dir.str(), "train"), Catch::Contains(shard));
}

TEST_CASE("dataset: garbage file named like a shard is an error naming it", "[data]") {
  TempDir dir;
  const std::string shard = dir / "train_00000.h5";
  std::string garbage(10000, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 7919) % 251);
  write_file(shard, garbage);
  REQUIRE_THROWS_AS(TokenDataset::load(dir.str(), "train"), hyscale::Error);
  REQUIRE_THROWS_WITH(TokenDataset::load(dir.str(), "train"),
                      Catch::Contains(shard) && Catch::Contains("not an HDF5 file"));
}

TEST_CASE("dataset: missing directory or shards", "[data]") {
  TempDir dir;
  REQUIRE_THROWS_WITH(TokenDataset::load(dir / "nowhere", "train"),
                      Catch::Contains(dir / "nowhere") && Catch::Contains("does not exist"));
  write_shard(dir / "val_00000.h5", {1}, 320, "byte", -1, "val");
  REQUIRE_THROWS_AS(TokenDataset::load(dir.str(), "train"), hyscale::Error);
  REQUIRE_THROWS_WITH(TokenDataset::load(dir.str(), "train"),
                      Catch::Contains("no 'train_*.h5' shards in " + dir.str()) &&
                          Catch::Contains("hyscale prepare"));
}

TEST_CASE("dataset: token id >= vocab_size names shard and position", "[data]") {
  TempDir dir;
  write_shard(dir / "train_00000.h5", {1, 2, 3});
  const std::string bad = dir / "train_00001.h5";
  write_shard(bad, {7, 8, 320, 9});
  REQUIRE_THROWS_AS(TokenDataset::load(dir.str(), "train"), hyscale::Error);
  REQUIRE_THROWS_WITH(TokenDataset::load(dir.str(), "train"),
                      Catch::Contains(bad) && Catch::Contains("320") &&
                          Catch::Contains("position 2"));
}

TEST_CASE("dataset: inconsistent or incomplete shards", "[data]") {
  SECTION("n_tokens attribute disagrees with the data") {
    TempDir dir;
    const std::string shard = dir / "train_00000.h5";
    write_shard(shard, {1, 2, 3}, 320, "byte", /*n_tokens_attr=*/4);
    REQUIRE_THROWS_WITH(TokenDataset::load(dir.str(), "train"),
                        Catch::Contains(shard) && Catch::Contains("n_tokens"));
  }
  SECTION("shards disagree on the vocabulary") {
    TempDir dir;
    write_shard(dir / "train_00000.h5", {1, 2});
    const std::string other = dir / "train_00001.h5";
    write_shard(other, {1, 2}, 512, "byte");
    REQUIRE_THROWS_WITH(TokenDataset::load(dir.str(), "train"),
                        Catch::Contains(other) && Catch::Contains("vocab_size"));
  }
  SECTION("no tokens dataset") {
    TempDir dir;
    const std::string shard = dir / "train_00000.h5";
    {
      H5File f = H5File::create(shard);
      set_attr_int(f, "format_version", 1);
      set_attr_int(f, "vocab_size", 320);
      set_attr_string(f, "tokenizer", "byte");
      set_attr_int(f, "n_documents", 0);
      set_attr_int(f, "n_tokens", 0);
      f.close();
    }
    REQUIRE_THROWS_WITH(TokenDataset::load(dir.str(), "train"),
                        Catch::Contains(shard) && Catch::Contains("'tokens'"));
  }
  SECTION("missing attribute") {
    TempDir dir;
    const std::string shard = dir / "train_00000.h5";
    {
      H5File f = H5File::create(shard);
      const uint16_t t[2] = {1, 2};
      write_array<uint16_t>(f, "tokens", t, {2});
      set_attr_int(f, "format_version", 1);
      f.close();
    }
    REQUIRE_THROWS_WITH(TokenDataset::load(dir.str(), "train"),
                        Catch::Contains(shard) && Catch::Contains("vocab_size"));
  }
  SECTION("a val shard renamed into the train split") {
    TempDir dir;
    const std::string shard = dir / "train_00000.h5";
    write_shard(shard, {1, 2}, 320, "byte", -1, "val");
    REQUIRE_THROWS_WITH(TokenDataset::load(dir.str(), "train"),
                        Catch::Contains(shard) && Catch::Contains("split"));
  }
}
