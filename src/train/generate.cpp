// Sampling from a trained checkpoint with step-wise decoding (nn/decode.cpp).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/autograd.h"
#include "core/random.h"
#include "data/tokenizer.h"
#include "kernels/gemm.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace hyscale::train {

std::unique_ptr<nn::Model> load_model(const std::string& ckpt, RunConfig* cfg_out) {
  RunConfig cfg = parse_config(checkpoint_config(ckpt), ckpt + " (stored config)");
  resolve_config(cfg, 0);
  auto model = std::make_unique<nn::Model>(cfg.model);
  load_checkpoint_params(ckpt, model->named_parameters(), model->named_shard_specs());
  if (cfg_out) *cfg_out = cfg;
  return model;
}

// Picks the next token from logits [V] (restricted to the tokenizer's real ids).
static int32_t sample_token(std::vector<double> logits, const GenerateOptions& opt, Rng& rng) {
  const int64_t V = static_cast<int64_t>(logits.size());
  if (opt.temperature <= 0) return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int32_t> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  int64_t keep = V;
  if (opt.top_k > 0) keep = std::min<int64_t>(keep, opt.top_k);
  const double mx = logits[idx[0]];
  std::vector<double> p(keep);
  double z = 0;
  for (int64_t i = 0; i < keep; ++i) z += (p[i] = std::exp((logits[idx[i]] - mx) / opt.temperature));
  if (opt.top_p < 1.0) {  // nucleus: smallest prefix whose mass reaches top_p
    double c = 0;
    int64_t k = 0;
    while (k < keep) {
      c += p[k] / z;
      ++k;
      if (c >= opt.top_p) break;
    }
    keep = k;
    z = 0;
    for (int64_t i = 0; i < keep; ++i) z += p[i];
  }
  double u = rng.uniform() * z;
  for (int64_t i = 0; i < keep; ++i) {
    u -= p[i];
    if (u <= 0) return idx[i];
  }
  return idx[keep - 1];
}

std::string generate(const GenerateOptions& opt) {
  HS_CHECK(opt.max_new >= 0, "--max-new must be >= 0");
  HS_CHECK(opt.temperature >= 0, "--temperature must be >= 0 (0 = greedy)");
  HS_CHECK(opt.top_k >= 0, "--top-k must be >= 0");
  HS_CHECK(opt.top_p > 0 && opt.top_p <= 1, "--top-p must be in (0, 1]");
  kernels::cpu::set_num_threads(static_cast<int>(opt.threads));
  RunConfig cfg;
  auto model = load_model(opt.ckpt, &cfg);
  data::ByteTokenizer tok;
  // Documents in the training stream start right after an EOS: use it as the context start.
  std::vector<int32_t> ctx{tok.eos_id()};
  auto p = tok.encode(opt.prompt);
  ctx.insert(ctx.end(), p.begin(), p.end());
  Rng rng(opt.seed);
  std::vector<int32_t> out;
  NoGrad ng;
  // Step-wise decoding with per-architecture state (KV caches only where needed, SWA ring
  // buffers, Mamba states): the prompt is fed token by token, then one token per step.
  const int64_t real_vocab = data::ByteTokenizer::kRawVocab;
  auto st = model->init_decode(1, static_cast<int64_t>(ctx.size()) + opt.max_new);
  Tensor logits;
  for (int32_t t : ctx) logits = model->step(Tensor::from_vector<int32_t>({t}, {1}), st);
  for (int64_t i = 0; i < opt.max_new; ++i) {
    const float* last = logits.data<float>();
    std::vector<double> l(last, last + real_vocab);
    l[tok.bos_id()] = -INFINITY;  // BOS never occurs mid-stream
    const int32_t next = sample_token(std::move(l), opt, rng);
    if (next == tok.eos_id()) break;
    out.push_back(next);
    if (i + 1 < opt.max_new) logits = model->step(Tensor::from_vector<int32_t>({next}, {1}), st);
  }
  return tok.decode(out.data(), out.size());
}

}  // namespace hyscale::train
