// `hyscale coord-check`: train a few steps at several widths and compare activation RMS
// (the μP "coordinate check"). Under μP++ width and depth move together (D = ar d, SPEC §6.1),
// so each width D runs at depth d = D / ar with every μP++ rule applied; under a correct
// parametrisation the RMS after a few updates does not grow with width, under SP it does.
#include <cmath>
#include <cstdio>

#include "core/autograd.h"
#include "core/random.h"
#include "kernels/gemm.h"
#include "nn/model.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace hyscale::train {

CoordCheckResult coord_check(const RunConfig& cfg_in, const std::vector<int64_t>& widths, int64_t steps, bool print) {
  HS_CHECK(widths.size() >= 2, "coord-check: give at least two --widths");
  HS_CHECK(steps >= 1, "coord-check: --steps must be >= 1");
  kernels::cpu::set_num_threads(static_cast<int>(cfg_in.training.threads));
  const int64_t ar = cfg_in.scaling.ar > 0 ? cfg_in.scaling.ar : default_aspect_ratio(cfg_in.model.arch);
  CoordCheckResult res;
  res.widths = widths;
  res.rows = {"embedding", "first block", "middle block", "last block", "logits"};
  res.rms.assign(res.rows.size(), std::vector<double>(widths.size(), 0.0));
  const int64_t V = cfg_in.model.vocab_size > 0 ? cfg_in.model.vocab_size : 320;
  for (size_t w = 0; w < widths.size(); ++w) {
    RunConfig cfg = cfg_in;
    HS_CHECK(widths[w] > 0 && widths[w] % ar == 0, "coord-check: width ", widths[w],
             " is not a multiple of the aspect ratio ", ar, " (width = ar * depth; set model.ar)");
    cfg.scaling.depth = widths[w] / ar;
    cfg.scaling.ar = ar;
    auto& m = cfg.model;
    m.n_layers = m.d_model = m.n_heads = m.n_kv_heads = m.mlp_hidden = 0;
    m.vocab_size = V;
    cfg.training.max_steps = steps;
    cfg.training.max_tokens = 0;
    cfg.schedule.warmup_steps = 0;
    cfg.schedule.decay = "constant";
    resolve_config(cfg, V);
    nn::Model model(cfg.model);
    model.init_weights(static_cast<uint64_t>(cfg.training.seed));
    AdamW opt(model.named_parameters(), cfg.optimizer);
    const int64_t B = cfg.training.batch_size, T = cfg.training.seq_len;
    Rng rng(static_cast<uint64_t>(cfg.training.seed));  // same data for every width
    auto batch = [&]() {
      Tensor ids = Tensor::empty({B, T}, DType::i32), tg = Tensor::empty({B, T}, DType::i32);
      for (int64_t i = 0; i < B * T; ++i) {
        ids.data<int32_t>()[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(V)));
        tg.data<int32_t>()[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(V)));
      }
      return std::pair{ids, tg};
    };
    auto eval_batch = batch();
    for (int64_t s = 0; s < steps; ++s) {
      auto [ids, tg] = batch();
      opt.zero_grad();
      model.loss(ids, tg).backward();
      const double gn = opt.grad_norm();
      if (cfg.optimizer.grad_clip > 0 && gn > cfg.optimizer.grad_clip) opt.scale_grads(cfg.optimizer.grad_clip / gn);
      opt.step(cfg.optimizer.lr);
    }
    std::vector<std::pair<std::string, double>> rms;
    {
      NoGrad ng;
      model.forward(eval_batch.first, &rms);
    }
    const size_t L = rms.size() - 2;  // entries: embedding, L blocks, logits
    res.rms[0][w] = rms.front().second;
    res.rms[1][w] = rms[1].second;
    res.rms[2][w] = rms[1 + L / 2].second;
    res.rms[3][w] = rms[L].second;
    res.rms[4][w] = rms.back().second;
  }
  // Least-squares slope of log RMS against log width, per row.
  for (auto& row : res.rms) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    const double n = static_cast<double>(widths.size());
    for (size_t w = 0; w < widths.size(); ++w) {
      const double x = std::log(static_cast<double>(widths[w])), y = std::log(std::max(row[w], 1e-30));
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
    }
    res.slopes.push_back((n * sxy - sx * sy) / (n * sxx - sx * sx));
  }
  if (print) {
    std::printf("coord-check: %s, parametrization %s, ar %lld, %lld steps at lr as derived, batch %lld x %lld\n",
                cfg_in.model.arch.c_str(), cfg_in.scaling.parametrization.c_str(), (long long)ar, (long long)steps,
                (long long)cfg_in.training.batch_size, (long long)cfg_in.training.seq_len);
    std::printf("%-14s", "activation RMS");
    for (int64_t w : widths) std::printf(" %10s", ("D=" + std::to_string(w)).c_str());
    std::printf(" %22s\n", "slope d log RMS/d log D");
    for (size_t r = 0; r < res.rows.size(); ++r) {
      std::printf("%-14s", res.rows[r].c_str());
      for (double v : res.rms[r]) std::printf(" %10.4g", v);
      std::printf(" %22.3f\n", res.slopes[r]);
    }
  }
  return res;
}

}  // namespace hyscale::train
