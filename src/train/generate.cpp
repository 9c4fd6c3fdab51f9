// Sampling from a trained checkpoint with step-wise decoding (nn/decode.cpp).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/autograd.h"
#include "core/device.h"
#include "core/storage.h"
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

void place_for_decoding(nn::Model& model, const std::string& device_str, const std::string& precision) {
  Device dev;
  try {
    dev = Device::parse(device_str);
  } catch (const Error& e) {
    HS_FAIL("--device: ", e.what());
  }
  HS_CHECK(precision == "fp32" || precision == "bf16", "--precision '", precision, "': expected fp32 or bf16");
  HS_CHECK(precision == "fp32" || dev.is_cuda(), "--precision bf16 needs --device cuda (the cpu computes in fp32)");
  if (dev.is_cpu()) return;
  HS_CHECK(cuda_available(), "--device ", dev.str(), ": no CUDA device is available",
#ifdef HYSCALE_WITH_CUDA
           " (none visible to this process)"
#else
           " (this build has no CUDA: configure with -DHYSCALE_CUDA=ON)"
#endif
  );
  HS_CHECK(dev.index < cuda_device_count(), "--device ", dev.str(), ": only ", cuda_device_count(),
           " CUDA device(s) visible");
  cudart::set_device(dev.index);
  model.to_device(dev);
  if (precision != "bf16") return;
  NoGrad ng;
  model.set_compute_dtype(DType::bf16);
  auto copies = std::make_shared<nn::Module::ComputeCopies>();
  for (const auto& [name, p] : model.named_parameters())
    if (p.dtype() == DType::f32) copies->by_param[p.impl_ptr().get()] = p.detach().to(DType::bf16);
  model.set_compute_copies(std::move(copies));
}

Tensor logits_on_host(const Tensor& logits) {
  Tensor t = logits.dtype() == DType::f32 ? logits : logits.to(DType::f32);
  return t.to(Device::cpu()).contiguous();
}

// Picks the next token from logits [V] (restricted to the tokenizer's real ids).
static int32_t sample_token(std::vector<double> logits, const SamplingOptions& opt, Rng& rng) {
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

std::vector<std::vector<int32_t>> generate_tokens(const nn::Model& model,
                                                  const std::vector<std::vector<int32_t>>& prompts, int64_t max_new,
                                                  const SamplingOptions& s, int32_t eos, int64_t vocab_limit,
                                                  const std::vector<int32_t>& banned, bool cuda_graph) {
  HS_CHECK(max_new >= 0, "--max-new must be >= 0");
  HS_CHECK(s.temperature >= 0, "--temperature must be >= 0 (0 = greedy)");
  HS_CHECK(s.top_k >= 0, "--top-k must be >= 0");
  HS_CHECK(s.top_p > 0 && s.top_p <= 1, "--top-p must be in (0, 1]");
  HS_CHECK(!prompts.empty(), "generate: no prompts");
  const int64_t V = model.config().vocab_size, limit = std::min(vocab_limit, V);
  const auto B = static_cast<int64_t>(prompts.size());
  int64_t longest = 0;
  for (auto& p : prompts) {
    HS_CHECK(!p.empty(), "generate: an empty prompt (start it with at least one token, e.g. EOS)");
    longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  }
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(B));
  if (max_new == 0) return out;
  NoGrad ng;
  auto st = model.init_decode(B, longest + max_new);
  st.cuda_graph = cuda_graph;
  std::vector<Rng> rngs;
  for (int64_t b = 0; b < B; ++b) rngs.emplace_back(s.seed + static_cast<uint64_t>(b));
  auto pick = [&](const float* lg, int64_t b) {
    std::vector<double> l(lg, lg + limit);
    for (int32_t t : banned)
      if (t >= 0 && t < limit) l[static_cast<size_t>(t)] = -INFINITY;
    return sample_token(std::move(l), s, rngs[static_cast<size_t>(b)]);
  };
  std::vector<int32_t> next(static_cast<size_t>(B));
  std::vector<bool> done(static_cast<size_t>(B), false);
  for (int64_t b = 0; b < B; ++b) {  // parallel prefill, one prompt at a time
    Tensor ids = Tensor::from_vector<int32_t>(prompts[static_cast<size_t>(b)], {static_cast<int64_t>(prompts[b].size())});
    next[static_cast<size_t>(b)] = pick(logits_on_host(model.prefill(ids, st, b)).data<float>(), b);
  }
  for (int64_t i = 0; i < max_new; ++i) {
    bool any = false;
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      if (next[b] == eos) {
        done[b] = true;
        continue;
      }
      out[b].push_back(next[b]);
      if (static_cast<int64_t>(out[b].size()) == max_new) done[b] = true;
      any = any || !done[b];
    }
    if (!any) break;
    // Finished rows keep stepping (their outputs are ignored) so the batch stays rectangular.
    Tensor logits = logits_on_host(model.step(Tensor::from_vector<int32_t>(next, {B}), st));
    for (int64_t b = 0; b < B; ++b)
      if (!done[b]) next[b] = pick(logits.data<float>() + b * V, b);
  }
  return out;
}

std::vector<std::string> generate(const GenerateOptions& opt) {
  HS_CHECK(!opt.cuda_graph || Device::parse(opt.device).is_cuda(),
           "--cuda-graph needs --device cuda (a CUDA graph replays GPU work), got --device ", opt.device);
  kernels::cpu::set_num_threads(static_cast<int>(opt.threads));
  RunConfig cfg;
  auto model = load_model(opt.ckpt, &cfg);
  place_for_decoding(*model, opt.device, opt.precision);
  data::ByteTokenizer tok;
  std::vector<std::vector<int32_t>> prompts;
  for (auto& text : opt.prompts) {
    // Documents in the training stream start right after an EOS: use it as the context start.
    std::vector<int32_t> ctx{tok.eos_id()};
    auto p = tok.encode(text);
    ctx.insert(ctx.end(), p.begin(), p.end());
    prompts.push_back(std::move(ctx));
  }
  if (prompts.empty()) prompts.push_back({tok.eos_id()});
  // Byte ids and EOS only (BOS never occurs mid-stream, padding ids never occur at all).
  auto toks = generate_tokens(*model, prompts, opt.max_new, opt.sampling, tok.eos_id(), data::ByteTokenizer::kRawVocab,
                              {tok.bos_id()}, opt.cuda_graph);
  std::vector<std::string> texts;
  for (auto& t : toks) texts.push_back(tok.decode(t.data(), t.size()));
  return texts;
}

}  // namespace hyscale::train
