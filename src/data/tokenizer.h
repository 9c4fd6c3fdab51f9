// src/data/tokenizer.h — the byte-level tokenizer (no merges, no training).
//
// Id layout: 0..255 are the raw bytes of the UTF-8 (or any) input, 256 = BOS,
// 257 = EOS; ids 258..319 are unused padding so that vocab_size() = 320 is a
// multiple of 64 (embedding / LM-head GEMMs tile better). Every byte string
// round-trips exactly, so decode(encode(s)) == s for any s.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hyscale::data {

class ByteTokenizer {
 public:
  static constexpr int32_t kBos = 256;
  static constexpr int32_t kEos = 257;
  static constexpr int64_t kRawVocab = 258;   // bytes + BOS + EOS
  static constexpr int64_t kVocabPadTo = 64;  // vocab_size() is a multiple of this

  // Padded vocabulary size used for the embedding and the LM head (320).
  int64_t vocab_size() const { return (kRawVocab + kVocabPadTo - 1) / kVocabPadTo * kVocabPadTo; }
  int32_t bos_id() const { return kBos; }
  int32_t eos_id() const { return kEos; }
  std::string name() const { return "byte"; }

  // One id per byte, optionally framed by BOS / EOS.
  std::vector<int32_t> encode(std::string_view text, bool bos = false, bool eos = false) const;
  // Bytes of ids 0..255; special and out-of-range ids are skipped.
  std::string decode(const int32_t* ids, size_t n) const;
  std::string decode(const std::vector<int32_t>& ids) const { return decode(ids.data(), ids.size()); }
};

// Tokenizer by name; throws Error listing the allowed names ("byte").
std::unique_ptr<ByteTokenizer> make_tokenizer(const std::string& name);

}  // namespace hyscale::data
