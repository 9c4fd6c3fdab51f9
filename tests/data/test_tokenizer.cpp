// Byte tokenizer: id layout, exact round trip (UTF-8 included), specials.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "data/tokenizer.h"

using hyscale::data::ByteTokenizer;

TEST_CASE("byte tokenizer: vocabulary layout", "[data]") {
  ByteTokenizer tok;
  CHECK(tok.vocab_size() == 320);
  CHECK(tok.vocab_size() % 64 == 0);
  CHECK(ByteTokenizer::kBos == 256);
  CHECK(ByteTokenizer::kEos == 257);
  CHECK(tok.name() == "byte");
}

TEST_CASE("byte tokenizer: round trip of ASCII, UTF-8 and raw bytes", "[data]") {
  ByteTokenizer tok;
  const std::string samples[] = {"", "hello, world\n", "Grüße, 世界 🌍", std::string("a\0b\xff", 4)};
  for (const std::string& s : samples) {
    const std::vector<int32_t> ids = tok.encode(s);
    REQUIRE(ids.size() == s.size());  // one id per byte
    for (int32_t id : ids) CHECK((id >= 0 && id < 256));
    CHECK(tok.decode(ids) == s);
  }
  // Bytes >= 0x80 map to 128..255, never to negative ids.
  const std::vector<int32_t> ids = tok.encode("\xc3\xbc");  // "ü"
  CHECK(ids == std::vector<int32_t>{0xc3, 0xbc});
}

TEST_CASE("byte tokenizer: BOS/EOS framing, specials skipped on decode", "[data]") {
  ByteTokenizer tok;
  const std::vector<int32_t> ids = tok.encode("hi", /*bos=*/true, /*eos=*/true);
  REQUIRE(ids == std::vector<int32_t>{256, 'h', 'i', 257});
  CHECK(tok.decode(ids) == "hi");
  const std::vector<int32_t> odd = {'a', 300, -1, 319, 'b', 100000, 257};
  CHECK(tok.decode(odd) == "ab");
}

TEST_CASE("make_tokenizer: known and unknown names", "[data]") {
  CHECK(hyscale::data::make_tokenizer("byte")->vocab_size() == 320);
  REQUIRE_THROWS_AS(hyscale::data::make_tokenizer("gpt2"), hyscale::Error);
  REQUIRE_THROWS_WITH(hyscale::data::make_tokenizer("gpt2"),
                      Catch::Contains("gpt2") && Catch::Contains("byte"));
}
