// src/data/baselines.h — reference losses that put a model's loss in context.
//
// All values are cross-entropies in nats per token (= nats per byte for the
// byte tokenizer); a trained model should beat every one of them:
//   unigram_entropy_train  order-0 entropy of the train split, -sum p log p;
//   unigram_val            val cross-entropy of the add-alpha unigram model
//                          P_uni(b) = (c(b) + alpha_u) / (N + alpha_u * V);
//   bigram_val             val cross-entropy of the interpolated bigram model
//                          P(b|a) = (c(a,b) + alpha*P_uni(b)) / (c(a) + alpha),
//                          the first val token scored by P_uni;
//   bigram_alpha, unigram_alpha
//                          alpha and alpha_u from {0.01, 0.1, 1, 10, 100}, each
//                          chosen by fitting on the first 90% of the train
//                          tokens and scoring the last 10% (val is never looked
//                          at; alpha_u first, then alpha on top of it); the
//                          models are then refitted on all of train.
// An empty val split gives NaN for the val entries.
#pragma once
#include "data/dataset.h"

namespace hyscale::data {

struct BaselineLosses {
  double unigram_entropy_train;
  double unigram_val;
  double bigram_val;
  double bigram_alpha;
  double unigram_alpha = 0;
};

// Throws Error when train has fewer than 2 tokens, the vocabularies differ,
// or a token id is outside [0, vocab_size).
BaselineLosses compute_baselines(const TokenDataset& train, const TokenDataset& val);

}  // namespace hyscale::data
