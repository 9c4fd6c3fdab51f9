// src/data/tokenizer.cpp — byte-level tokenizer (id layout in tokenizer.h).
#include "data/tokenizer.h"

#include "core/error.h"

namespace hyscale::data {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() + (bos ? 1 : 0) + (eos ? 1 : 0));
  if (bos) ids.push_back(kBos);
  // Through unsigned char: bytes >= 0x80 (UTF-8 continuation bytes) must map
  // to 128..255, not to negative ids.
  for (char c : text) ids.push_back(static_cast<int32_t>(static_cast<unsigned char>(c)));
  if (eos) ids.push_back(kEos);
  return ids;
}

std::string ByteTokenizer::decode(const int32_t* ids, size_t n) const {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i)
    if (ids[i] >= 0 && ids[i] < 256) out.push_back(static_cast<char>(ids[i]));
  return out;
}

std::unique_ptr<ByteTokenizer> make_tokenizer(const std::string& name) {
  HS_CHECK(name == "byte", "unknown tokenizer '", name, "': allowed tokenizers are: byte");
  return std::make_unique<ByteTokenizer>();
}

}  // namespace hyscale::data
