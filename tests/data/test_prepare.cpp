// `hyscale prepare`: document splitting, file selection, splits, shards,
// determinism and option errors, checked by reloading what was written.
#include <catch2/catch.hpp>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/dataset.h"
#include "data/h5.h"
#include "data/prepare.h"
#include "data/test_util.h"
#include "data/tokenizer.h"

using namespace hyscale::data;
using hyscale::test::TempDir;
using hyscale::test::write_file;
namespace fs = std::filesystem;

namespace {

// The documents of a split, decoded: the text between EOS tokens, sorted.
std::vector<std::string> documents_of(const TokenDataset& ds) {
  std::vector<std::string> docs;
  std::string cur;
  for (int32_t id : ds.tokens) {
    if (id == ByteTokenizer::kEos) {
      docs.push_back(cur);
      cur.clear();
    } else {
      REQUIRE(id < 256);  // no BOS, no padding ids
      cur.push_back(static_cast<char>(id));
    }
  }
  REQUIRE(cur.empty());  // every document ends with EOS
  std::sort(docs.begin(), docs.end());
  return docs;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

int64_t count_eos(const TokenDataset& ds) {
  return std::count(ds.tokens.begin(), ds.tokens.end(), ByteTokenizer::kEos);
}

// n distinct one-line documents in one "%"-separated file.
std::string fortune_file(int n, const std::string& tag) {
  std::string s;
  for (int i = 0; i < n; ++i) s += tag + " fortune number " + std::to_string(i) + "\n%\n";
  return s;
}

}  // namespace

TEST_CASE("prepare: '%'-separated text, binary/.dat skipping, symlink dedup", "[data]") {
  TempDir dir;
  const std::string in = dir / "in";
  // Separator lines with \r\n are tolerated; a whitespace-only document is dropped;
  // "%%" and " %" are content, not separators.
  write_file(in + "/a.txt", "one\n%\ntwo\r\n%\r\n  \n\t\n%\nthree\n%% not a separator\n %\n");
  write_file(in + "/sub/b.txt", "four\n%\nfive");
  write_file(in + "/c.bin", std::string("bin\0ary", 7));
  write_file(in + "/a.txt.dat", "index file, skipped by name\n");
  fs::create_symlink("a.txt", in + "/a.u8");  // same file twice: read once

  PrepareOptions opt;
  opt.inputs = {in};
  opt.out_dir = dir / "out";
  opt.doc_separator = "%";
  opt.val_fraction = 0.2;
  const PrepareStats st = prepare_dataset(opt);

  const std::vector<std::string> expected_docs = {
      "five", "four\n", "one\n", "three\n%% not a separator\n %\n", "two\r\n"};
  int64_t expected_tokens = 0;
  for (const std::string& d : expected_docs) expected_tokens += static_cast<int64_t>(d.size()) + 1;

  CHECK(st.n_files == 2);
  CHECK(st.n_skipped_files == 2);
  CHECK(st.n_docs_train == 4);
  CHECK(st.n_docs_val == 1);  // round(0.2 * 5)
  CHECK(st.n_tokens_train + st.n_tokens_val == expected_tokens);
  CHECK(st.n_shards_train == 1);
  CHECK(st.n_shards_val == 1);

  const TokenDataset train = TokenDataset::load(opt.out_dir, "train");
  const TokenDataset val = TokenDataset::load(opt.out_dir, "val");
  CHECK(train.vocab_size == 320);
  CHECK(train.tokenizer == "byte");
  CHECK(train.eos_id == ByteTokenizer::kEos);
  CHECK(train.size() == st.n_tokens_train);
  CHECK(val.size() == st.n_tokens_val);
  CHECK(train.n_documents == 4);
  CHECK(val.n_documents == 1);
  CHECK(count_eos(train) == train.n_documents);
  CHECK(count_eos(val) == val.n_documents);

  // Every document exactly once across the two splits, byte-exact.
  std::vector<std::string> all = documents_of(train);
  const std::vector<std::string> v = documents_of(val);
  all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  CHECK(all == expected_docs);

  // dataset.json records the totals.
  std::ifstream js(dir / "out/dataset.json");
  const nlohmann::json j = nlohmann::json::parse(js);
  CHECK(j["train"]["n_tokens"] == st.n_tokens_train);
  CHECK(j["val"]["n_documents"] == 1);
  CHECK(j["dtype"] == "uint16");
  CHECK_FALSE(fs::exists(dir / "out/train_00000.h5.tmp"));
}

TEST_CASE("prepare: shards store uint16 ids with the documented attributes", "[data]") {
  TempDir dir;
  write_file(dir / "doc.txt", "hello\n");
  PrepareOptions opt;
  opt.inputs = {dir / "doc.txt"};
  opt.out_dir = dir / "out";
  prepare_dataset(opt);

  H5File f = H5File::open_read(dir / "out/train_00000.h5");
  const hid_t ds = H5Dopen2(f.id(), "tokens", H5P_DEFAULT);
  REQUIRE(ds >= 0);
  const hid_t type = H5Dget_type(ds);
  CHECK(H5Tget_class(type) == H5T_INTEGER);
  CHECK(H5Tget_size(type) == 2);  // vocab 320 does not fit uint8
  CHECK(H5Tget_sign(type) == H5T_SGN_NONE);
  H5Tclose(type);
  H5Dclose(ds);
  CHECK(get_attr_int(f, "format_version") == 1);
  CHECK(get_attr_int(f, "vocab_size") == 320);
  CHECK(get_attr_string(f, "tokenizer") == "byte");
  CHECK(get_attr_int(f, "bos_id") == 256);
  CHECK(get_attr_int(f, "eos_id") == 257);
  CHECK(get_attr_int(f, "n_documents") == 1);
  CHECK(get_attr_int(f, "n_tokens") == 7);
  CHECK(get_attr_string(f, "split") == "train");
  CHECK(read_array<int32_t>(f, "tokens") ==
        std::vector<int32_t>{'h', 'e', 'l', 'l', 'o', '\n', ByteTokenizer::kEos});
}

TEST_CASE("prepare: one document per file, val_fraction 0 gives an empty val split", "[data]") {
  TempDir dir;
  write_file(dir / "in/1.txt", "first file\n%\nstill first\n");
  write_file(dir / "in/2.md", "second");
  write_file(dir / "in/deep/er/3", "third\n");
  write_file(dir / "in/blank.txt", " \n\n");
  PrepareOptions opt;
  opt.inputs = {dir / "in"};
  opt.out_dir = dir / "out";
  opt.val_fraction = 0.0;
  const PrepareStats st = prepare_dataset(opt);
  CHECK(st.n_files == 4);
  CHECK(st.n_docs_train == 3);  // the separator is ignored without doc_separator
  CHECK(st.n_docs_val == 0);
  const TokenDataset train = TokenDataset::load(opt.out_dir, "train");
  CHECK(documents_of(train) ==
        std::vector<std::string>{"first file\n%\nstill first\n", "second", "third\n"});
  const TokenDataset val = TokenDataset::load(opt.out_dir, "val");
  CHECK(val.size() == 0);
  CHECK(val.n_documents == 0);
}

TEST_CASE("prepare: jsonl documents and a bad line named by file and number", "[data]") {
  TempDir dir;
  write_file(dir / "good.jsonl",
             "{\"text\": \"alpha\\nbeta\", \"id\": 1}\n\n{\"text\": \"gamma\"}\r\n"
             "{\"text\": \"   \"}\n{\"text\": \"d\\u00e9lta\"}\n");
  PrepareOptions opt;
  opt.inputs = {dir / "good.jsonl"};
  opt.out_dir = dir / "out";
  opt.format = "jsonl";
  opt.val_fraction = 0.0;
  const PrepareStats st = prepare_dataset(opt);
  CHECK(st.n_docs_train == 3);  // blank line and whitespace-only text dropped
  CHECK(documents_of(TokenDataset::load(opt.out_dir, "train")) ==
        std::vector<std::string>{"alpha\nbeta", "d\xc3\xa9lta", "gamma"});

  const std::string bad = dir / "bad.jsonl";
  write_file(bad, "{\"text\": \"ok\"}\n\n{\"text\": oops}\n");
  opt.inputs = {bad};
  REQUIRE_THROWS_AS(prepare_dataset(opt), hyscale::Error);
  REQUIRE_THROWS_WITH(prepare_dataset(opt), Catch::Contains(bad) && Catch::Contains("line 3"));
  write_file(bad, "{\"text\": \"ok\"}\n{\"body\": \"no text field\"}\n");
  REQUIRE_THROWS_WITH(prepare_dataset(opt), Catch::Contains(bad) && Catch::Contains("line 2") &&
                                                Catch::Contains("\"text\""));
  write_file(bad, "[\"text\"]\n");
  REQUIRE_THROWS_WITH(prepare_dataset(opt), Catch::Contains("line 1"));
}

TEST_CASE("prepare: val fraction, shard splitting, determinism", "[data]") {
  TempDir dir;
  write_file(dir / "f.txt", fortune_file(100, "x"));
  PrepareOptions opt;
  opt.inputs = {dir / "f.txt"};
  opt.doc_separator = "%";
  opt.val_fraction = 0.1;
  opt.shard_tokens = 64;
  opt.seed = 7;

  opt.out_dir = dir / "a";
  const PrepareStats a = prepare_dataset(opt);
  CHECK(a.n_docs_val == 10);
  CHECK(a.n_docs_train == 90);
  // Shards hold at most shard_tokens ids; documents cross shard boundaries.
  CHECK(a.n_shards_train == (a.n_tokens_train + 63) / 64);
  CHECK(a.n_shards_val == (a.n_tokens_val + 63) / 64);
  const TokenDataset ta = TokenDataset::load(opt.out_dir, "train");
  REQUIRE(static_cast<int>(ta.shard_paths.size()) == a.n_shards_train);
  CHECK(ta.n_documents == 90);  // per-shard n_documents add up
  CHECK(count_eos(ta) == 90);
  for (const std::string& p : ta.shard_paths) {
    H5File f = H5File::open_read(p);
    CHECK(get_attr_int(f, "n_tokens") <= 64);
  }

  // Same seed: identical shards. Another seed: another document order.
  opt.out_dir = dir / "b";
  prepare_dataset(opt);
  const TokenDataset tb = TokenDataset::load(opt.out_dir, "train");
  CHECK(tb.tokens == ta.tokens);
  CHECK(TokenDataset::load(dir / "b", "val").tokens == TokenDataset::load(dir / "a", "val").tokens);
  for (const std::string name : {"train_00000.h5", "train_00003.h5", "val_00000.h5"})
    CHECK(read_bytes(dir / ("a/" + name)) == read_bytes(dir / ("b/" + name)));  // byte-identical files
  opt.out_dir = dir / "c";
  opt.seed = 8;
  prepare_dataset(opt);
  const TokenDataset tc = TokenDataset::load(opt.out_dir, "train");
  CHECK(tc.tokens != ta.tokens);

  // Re-running into a used directory replaces the old shards, never mixes them.
  opt.out_dir = dir / "a";
  opt.shard_tokens = 1'000'000;
  const PrepareStats again = prepare_dataset(opt);
  CHECK(again.n_shards_train == 1);
  const TokenDataset ta2 = TokenDataset::load(opt.out_dir, "train");
  CHECK(ta2.shard_paths.size() == 1);
  CHECK(ta2.size() == again.n_tokens_train);
}

TEST_CASE("prepare: invalid options are clear errors", "[data]") {
  TempDir dir;
  write_file(dir / "ok.txt", "text\n");
  PrepareOptions good;
  good.inputs = {dir / "ok.txt"};
  good.out_dir = dir / "out";

  PrepareOptions o = good;
  o.inputs.clear();
  REQUIRE_THROWS_WITH(prepare_dataset(o), Catch::Contains("no inputs"));
  o = good;
  o.inputs = {dir / "nope.txt"};
  REQUIRE_THROWS_WITH(prepare_dataset(o), Catch::Contains(dir / "nope.txt") &&
                                              Catch::Contains("does not exist"));
  o = good;
  o.val_fraction = 1.0;
  REQUIRE_THROWS_WITH(prepare_dataset(o), Catch::Contains("val_fraction"));
  o.val_fraction = -0.1;
  REQUIRE_THROWS_WITH(prepare_dataset(o), Catch::Contains("val_fraction"));
  o = good;
  o.format = "parquet";
  REQUIRE_THROWS_WITH(prepare_dataset(o), Catch::Contains("parquet") && Catch::Contains("jsonl"));
  o = good;
  o.tokenizer = "sentencepiece";
  REQUIRE_THROWS_WITH(prepare_dataset(o), Catch::Contains("sentencepiece"));
  o = good;
  o.out_dir = dir / "ok.txt/sub";  // below a regular file: cannot be created
  REQUIRE_THROWS_WITH(prepare_dataset(o), Catch::Contains("cannot create output directory"));
  o = good;
  write_file(dir / "blank/a.txt", "   \n");
  write_file(dir / "blank/b.dat", "x");
  o.inputs = {dir / "blank"};
  REQUIRE_THROWS_WITH(prepare_dataset(o), Catch::Contains("no documents found"));
}
