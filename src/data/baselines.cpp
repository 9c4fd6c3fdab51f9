// src/data/baselines.cpp — unigram / bigram reference losses (definitions in
// baselines.h). Counts are exact int64; probabilities and logs in double.
#include "data/baselines.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace hyscale::data {

namespace {

constexpr double kAlphaGrid[] = {0.01, 0.1, 1.0, 10.0, 100.0};
// Bigram counts live in a dense V x V table up to this many cells (32 MiB);
// larger vocabularies use a hash map of the pairs that occur.
constexpr int64_t kMaxDenseCells = int64_t{1} << 22;

struct Span {
  const int32_t* data;
  int64_t size;
};

std::vector<int64_t> count_unigrams(Span s, int64_t vocab) {
  std::vector<int64_t> counts(static_cast<size_t>(vocab), 0);
  for (int64_t i = 0; i < s.size; ++i) ++counts[static_cast<size_t>(s.data[i])];
  return counts;
}

// Add-alpha unigram: P(b) = (c(b) + alpha) / (N + alpha * V).
std::vector<double> unigram_probs(const std::vector<int64_t>& counts, int64_t n, double alpha) {
  const double denom = static_cast<double>(n) + alpha * static_cast<double>(counts.size());
  std::vector<double> p(counts.size());
  for (size_t b = 0; b < counts.size(); ++b) p[b] = (static_cast<double>(counts[b]) + alpha) / denom;
  return p;
}

double unigram_xent(const std::vector<double>& p, Span s) {
  double nll = 0;
  for (int64_t i = 0; i < s.size; ++i) nll -= std::log(p[static_cast<size_t>(s.data[i])]);
  return nll / static_cast<double>(s.size);
}

// c(a, b) and c(a) = number of bigrams whose context is a.
class BigramCounts {
 public:
  BigramCounts(Span s, int64_t vocab) : vocab_(vocab), context_(static_cast<size_t>(vocab), 0) {
    dense_ = vocab * vocab <= kMaxDenseCells;
    if (dense_) table_.assign(static_cast<size_t>(vocab * vocab), 0);
    for (int64_t i = 0; i + 1 < s.size; ++i) {
      const int64_t a = s.data[i], b = s.data[i + 1];
      ++context_[static_cast<size_t>(a)];
      if (dense_) ++table_[static_cast<size_t>(a * vocab_ + b)];
      else ++sparse_[static_cast<uint64_t>(a * vocab_ + b)];
    }
  }
  int64_t pair(int64_t a, int64_t b) const {
    if (dense_) return table_[static_cast<size_t>(a * vocab_ + b)];
    auto it = sparse_.find(static_cast<uint64_t>(a * vocab_ + b));
    return it == sparse_.end() ? 0 : it->second;
  }
  int64_t context(int64_t a) const { return context_[static_cast<size_t>(a)]; }

 private:
  int64_t vocab_;
  bool dense_;
  std::vector<int64_t> context_;
  std::vector<int64_t> table_;
  std::unordered_map<uint64_t, int64_t> sparse_;
};

// Mean -log P over the tokens of s; s.data[i] is predicted from s.data[i-1],
// the first token from `prev` (a token preceding s) or, when prev < 0, by p_uni.
double bigram_xent(const BigramCounts& bc, const std::vector<double>& p_uni, double alpha, Span s,
                   int64_t prev) {
  double nll = 0;
  for (int64_t i = 0; i < s.size; ++i) {
    const int64_t b = s.data[i];
    const int64_t a = i > 0 ? s.data[i - 1] : prev;
    if (a < 0) {
      nll -= std::log(p_uni[static_cast<size_t>(b)]);
      continue;
    }
    const double p = (static_cast<double>(bc.pair(a, b)) + alpha * p_uni[static_cast<size_t>(b)]) /
                     (static_cast<double>(bc.context(a)) + alpha);
    nll -= std::log(p);
  }
  return nll / static_cast<double>(s.size);
}

void check_ids(const TokenDataset& ds, const char* split, int64_t vocab) {
  for (size_t i = 0; i < ds.tokens.size(); ++i)
    HS_CHECK(ds.tokens[i] >= 0 && ds.tokens[i] < vocab, "compute_baselines: ", split,
             " token id ", ds.tokens[i], " at position ", i, " is outside [0, vocab_size=", vocab,
             ")");
}

}  // namespace

BaselineLosses compute_baselines(const TokenDataset& train, const TokenDataset& val) {
  const int64_t vocab = train.vocab_size;
  const int64_t n = train.size();
  HS_CHECK(vocab > 0, "compute_baselines: train split has vocab_size ", vocab, ", expected > 0");
  HS_CHECK(n >= 2, "compute_baselines: train split has ", n, " tokens, need at least 2");
  HS_CHECK(val.size() == 0 || val.vocab_size == vocab, "compute_baselines: val vocab_size ",
           val.vocab_size, " differs from train vocab_size ", vocab);
  check_ids(train, "train", vocab);
  check_ids(val, "val", vocab);

  BaselineLosses out{};
  const Span all{train.tokens.data(), n};
  const std::vector<int64_t> counts = count_unigrams(all, vocab);

  // Order-0 entropy of train (maximum-likelihood, no smoothing).
  double h = 0;
  for (int64_t c : counts)
    if (c > 0) {
      const double p = static_cast<double>(c) / static_cast<double>(n);
      h -= p * std::log(p);
    }
  out.unigram_entropy_train = h;

  // Smoothing by held-out likelihood inside train: fit on [0, n_fit), score
  // [n_fit, n); ties keep the smaller alpha (strict <).
  const int64_t n_fit = std::clamp<int64_t>(n * 9 / 10, 1, n - 1);
  const Span fit{train.tokens.data(), n_fit};
  const Span held{train.tokens.data() + n_fit, n - n_fit};
  {
    const std::vector<int64_t> counts_fit = count_unigrams(fit, vocab);
    double best = std::numeric_limits<double>::infinity();
    for (double alpha : kAlphaGrid) {
      const double xent = unigram_xent(unigram_probs(counts_fit, n_fit, alpha), held);
      if (xent < best) {
        best = xent;
        out.unigram_alpha = alpha;
      }
    }
    const std::vector<double> p_fit = unigram_probs(counts_fit, n_fit, out.unigram_alpha);
    const BigramCounts bc_fit(fit, vocab);
    best = std::numeric_limits<double>::infinity();
    for (double alpha : kAlphaGrid) {
      // The held-out part continues the fit part: its first token has a context.
      const double xent = bigram_xent(bc_fit, p_fit, alpha, held, fit.data[n_fit - 1]);
      if (xent < best) {
        best = xent;
        out.bigram_alpha = alpha;
      }
    }
  }

  // Refit on all of train, score val.
  const std::vector<double> p_uni = unigram_probs(counts, n, out.unigram_alpha);
  if (val.size() == 0) {
    out.unigram_val = std::numeric_limits<double>::quiet_NaN();
    out.bigram_val = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
  const Span v{val.tokens.data(), val.size()};
  out.unigram_val = unigram_xent(p_uni, v);
  const BigramCounts bc(all, vocab);
  out.bigram_val = bigram_xent(bc, p_uni, out.bigram_alpha, v, -1);
  return out;
}

}  // namespace hyscale::data
