// `hyscale coord-check`: train a few steps at several widths and compare activation RMS
// (the μP "coordinate check"). By default every width D runs at one fixed depth with the heads
// scaled along (n_heads = D / ar, the paper's ratio), so only the width rules act: under mup and
// mupp the RMS after a few updates stays flat, under SP it grows. `joint` instead moves depth with
// width as the paper's configs do (d = D / ar); μP++ then also applies its Depth-μP lr factor
// sqrt(d0/d), and the logit updates shrink like D^-1/2.
#include <cmath>
#include <cstdio>

#include "core/autograd.h"
#include "core/random.h"
#include "kernels/gemm.h"
#include "nn/model.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace hyscale::train {

CoordCheckResult coord_check(const RunConfig& cfg_in, const CoordCheckOptions& opts, bool print) {
  const std::vector<int64_t>& widths = opts.widths;
  const int64_t steps = opts.steps;
  HS_CHECK(widths.size() >= 2, "coord-check: give at least two --widths");
  HS_CHECK(steps >= 1, "coord-check: --steps must be >= 1");
  kernels::cpu::set_num_threads(static_cast<int>(cfg_in.training.threads));
  const int64_t ar = cfg_in.scaling.ar > 0 ? cfg_in.scaling.ar : default_aspect_ratio(cfg_in.model.arch);
  CoordCheckResult res;
  res.widths = widths;
  const int64_t fixed_depth = opts.depth > 0 ? opts.depth : cfg_in.scaling.depth > 0 ? cfg_in.scaling.depth : cfg_in.base.d0;
  HS_CHECK(!(opts.joint && opts.depth > 0), "coord-check: --depth and --joint exclude each other");
  res.rows = {"embedding", "first block", "middle block", "last block", "logits"};
  res.rms.assign(res.rows.size(), std::vector<double>(widths.size(), 0.0));
  const int64_t V = cfg_in.model.vocab_size > 0 ? cfg_in.model.vocab_size : 320;
  for (size_t w = 0; w < widths.size(); ++w) {
    RunConfig cfg = cfg_in;
    HS_CHECK(widths[w] > 0 && widths[w] % ar == 0, "coord-check: width ", widths[w],
             " is not a multiple of the aspect ratio ", ar, " (width = ar * depth; set model.ar)");
    cfg.scaling.ar = ar;
    auto& m = cfg.model;
    m.n_layers = m.d_model = m.n_heads = m.n_kv_heads = m.mlp_hidden = m.dt_rank = 0;
    if (opts.joint) {
      cfg.scaling.depth = widths[w] / ar;
    } else {
      cfg.scaling.depth = fixed_depth;
      m.d_model = widths[w];
      m.n_heads = widths[w] / ar;
      m.n_kv_heads = m.n_heads % 4 == 0 ? m.n_heads / 4 : m.n_heads;
    }
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
    // One fixed batch with a learnable rule (target = 7 id + 3 mod V), trained on and then measured,
    // as in the usual μP coordinate check. With random targets the updates would be uncorrelated
    // with the activations they meet and every readout update would shrink like D^-1/2.
    Rng rng(static_cast<uint64_t>(cfg.training.seed));  // same data for every width
    Tensor ids = Tensor::empty({B, T}, DType::i32), tg = Tensor::empty({B, T}, DType::i32);
    for (int64_t i = 0; i < B * T; ++i) {
      const auto id = static_cast<int64_t>(rng.below(static_cast<uint64_t>(V)));
      ids.data<int32_t>()[i] = static_cast<int32_t>(id);
      tg.data<int32_t>()[i] = static_cast<int32_t>((7 * id + 3) % V);
    }
    for (int64_t s = 0; s < steps; ++s) {
      opt.zero_grad();
      model.loss(ids, tg).backward();
      const double gn = opt.grad_norm();
      if (cfg.optimizer.grad_clip > 0 && gn > cfg.optimizer.grad_clip) opt.scale_grads(cfg.optimizer.grad_clip / gn);
      opt.step(cfg.optimizer.lr);
    }
    std::vector<std::pair<std::string, double>> rms;
    {
      NoGrad ng;
      model.forward(ids, &rms);
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
    std::printf("coord-check: %s, parametrization %s, ar %lld, %s, %lld steps at lr as derived, batch %lld x %lld\n",
                cfg_in.model.arch.c_str(), cfg_in.scaling.parametrization.c_str(), (long long)ar,
                opts.joint ? "depth = D/ar (joint)" : ("depth " + std::to_string(fixed_depth) + ", heads D/ar").c_str(),
                (long long)steps, (long long)cfg_in.training.batch_size, (long long)cfg_in.training.seq_len);
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
