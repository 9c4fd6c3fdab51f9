// Reference losses: known values on synthetic text.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/error.h"
#include "data/baselines.h"
#include "data/sampler.h"
#include "data/tokenizer.h"

using namespace hyscale::data;

namespace {

TokenDataset from_text(const std::string& text) {
  TokenDataset ds;
  ds.tokens = ByteTokenizer().encode(text);
  ds.vocab_size = ByteTokenizer().vocab_size();
  ds.tokenizer = "byte";
  return ds;
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

TEST_CASE("baselines: alternating text is predictable by a bigram, not a unigram", "[data]") {
  const BaselineLosses b = compute_baselines(from_text(repeat("ab", 5000)), from_text(repeat("ab", 500)));
  CHECK(b.unigram_entropy_train == Approx(std::log(2.0)).epsilon(1e-12));
  CHECK(b.unigram_val == Approx(std::log(2.0)).epsilon(1e-3));  // light smoothing chosen
  CHECK(b.unigram_alpha == 0.01);
  CHECK(b.bigram_val < 0.01);
  CHECK(b.bigram_val < b.unigram_val / 50);
  CHECK(b.bigram_alpha == 0.01);  // deterministic text wants the least smoothing
}

TEST_CASE("baselines: known entropy, noisy text prefers more smoothing", "[data]") {
  // Uniform over 4 symbols: entropy ln 4.
  const BaselineLosses u = compute_baselines(from_text(repeat("abcd", 1000)), from_text("dcba"));
  CHECK(u.unigram_entropy_train == Approx(std::log(4.0)).epsilon(1e-12));
  // Val transitions never seen in train ("dc", "cb", "ba") cost more than ln 4.
  CHECK(u.bigram_val > std::log(4.0));

  // Independent uniform symbols over 64 letters, ~2 observations per bigram:
  // bigrams carry no information and are badly overfitted, so the held-out
  // choice of alpha must be large, and bigram ~ unigram on val.
  std::string noise;
  SplitMix64 rng(2024);
  for (int i = 0; i < 9000; ++i) noise.push_back(static_cast<char>(' ' + rng.below(64)));
  const BaselineLosses n = compute_baselines(from_text(noise.substr(0, 8000)), from_text(noise.substr(8000)));
  CHECK(n.bigram_alpha >= 10);
  CHECK(n.unigram_entropy_train == Approx(std::log(64.0)).epsilon(0.01));
  // No real structure: the bigram cannot beat the unigram, and the heavy
  // smoothing keeps its overfitting cost small.
  CHECK(n.bigram_val > n.unigram_val - 0.01);
  CHECK(n.bigram_val < n.unigram_val + 0.1);
}

TEST_CASE("baselines: empty val gives NaN, tiny or inconsistent input is an error", "[data]") {
  TokenDataset empty_val = from_text("");
  const BaselineLosses b = compute_baselines(from_text("abcabc"), empty_val);
  CHECK(std::isnan(b.unigram_val));
  CHECK(std::isnan(b.bigram_val));
  CHECK(b.unigram_entropy_train == Approx(std::log(3.0)));
  REQUIRE_THROWS_WITH(compute_baselines(from_text("a"), from_text("a")), Catch::Contains("at least 2"));
  TokenDataset bad = from_text("abc");
  bad.tokens[1] = 400;
  REQUIRE_THROWS_WITH(compute_baselines(bad, from_text("a")), Catch::Contains("400"));
  TokenDataset other = from_text("ab");
  other.vocab_size = 512;
  REQUIRE_THROWS_AS(compute_baselines(from_text("abab"), other), hyscale::Error);
}
