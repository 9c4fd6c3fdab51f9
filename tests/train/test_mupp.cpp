// muP++ resolution (SPEC §6): widths from depth, learning rates, multipliers, init and token
// budgets for sambay and transformer at d = 8 and 16, against the numbers SPEC derives.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <sstream>

#include "train/config.h"

using namespace hyscale;
using namespace hyscale::train;
using Catch::Matchers::Contains;

namespace {
// The paper's batch: 512 sequences of 4096 tokens = 2^21 tokens per optimizer step.
RunConfig paper_run(const std::string& arch, int64_t d, const std::string& par = "mupp") {
  auto c = parse_config("model:\n  arch: " + arch + "\n  depth: " + std::to_string(d) + "\n  parametrization: " + par +
                            "\n  vocab_size: 32000\noptimizer:\n  lr: 0\ntraining:\n  batch_size: 512\n  seq_len: 4096\n"
                            "  max_steps: 0\n",
                        "paper");
  resolve_config(c, 32000);
  return c;
}
}  // namespace

TEST_CASE("muP++ at the paper's sizes: widths, learning rates, multipliers, init", "[mupp]") {
  for (int64_t d : {8, 16}) {
    for (std::string arch : {"transformer", "sambay"}) {
      INFO(arch << " d" << d);
      auto c = paper_run(arch, d);
      const int64_t ar = arch == "sambay" ? 124 : 128;
      REQUIRE(c.model.n_layers == d);
      REQUIRE(c.model.d_model == ar * d);
      REQUIRE(c.model.n_heads == d);
      REQUIRE(c.model.n_kv_heads == d / 4);
      REQUIRE(c.model.head_dim == 128);
      REQUIRE(c.model.mlp_hidden == 4 * ar * d);
      const double r = 16.0 / d;
      REQUIRE(c.optimizer.lr == Approx(4e-4 * std::sqrt(r)));  // eta0 sqrt(b/b0) sqrt(d0/d), b = b0
      REQUIRE(c.optimizer.matrix_lr_mult == Approx(r));
      REQUIRE(c.optimizer.vector_lr_mult == 1.0);
      REQUIRE(c.model.residual_mult == Approx(1.0 / std::sqrt(2.0 * d)));
      REQUIRE(c.model.logit_mult == Approx(r));
      REQUIRE(c.model.attn_scale == Approx(1.0 / std::sqrt(128.0)));  // sqrt(hd0)/hs with hs = 128
      REQUIRE(c.model.init == "uniform");
      REQUIRE(c.model.zero_readout);
      REQUIRE_FALSE(c.model.scale_out_proj_init);
      REQUIRE(c.model.embed_init_std == 1e-4);
      REQUIRE(c.optimizer.weight_decay == 0.1);
      REQUIRE(c.optimizer.vector_weight_decay == 0.0);
      REQUIRE(c.schedule.warmup_steps == std::llround(1e9 / 2097152.0));  // 1e9 warmup tokens
    }
  }
}

TEST_CASE("muP++ token budgets t0 N / n0 (SPEC §6.5)", "[mupp]") {
  // Transformer++: N = 14.5 128^2 d^3; d8 -> 12.5B tokens, d16 -> 100B (= t0: it is the base model).
  REQUIRE(paper_run("transformer", 8).training.max_tokens == Approx(12.5e9).epsilon(1e-3));
  REQUIRE(paper_run("transformer", 16).training.max_tokens == Approx(1e11).epsilon(1e-9));
  REQUIRE(paper_run("transformer", 16).training.max_steps == static_cast<int64_t>(std::ceil(1e11 / 2097152.0)));
  // SambaY trains 1.36% more tokens than Transformer++ at the same depth (N = 123.3M at d8).
  const double ratio = static_cast<double>(paper_run("sambay", 8).training.max_tokens) /
                       static_cast<double>(paper_run("transformer", 8).training.max_tokens);
  REQUIRE(ratio == Approx(1.0136).epsilon(2e-4));
  REQUIRE(paper_run("sambay", 8).training.max_tokens == Approx(1e11 * 123293696.0 / 973078528.0).epsilon(1e-9));
}

TEST_CASE("sp and plain muP follow their own rules", "[mupp]") {
  auto sp = paper_run("transformer", 8, "sp");
  REQUIRE(sp.optimizer.lr == Approx(4e-4));  // no sqrt(d0/d) factor
  REQUIRE(sp.optimizer.matrix_lr_mult == 1.0);
  REQUIRE(sp.model.residual_mult == 1.0);
  REQUIRE(sp.model.logit_mult == 1.0);
  REQUIRE(sp.model.init == "normal");
  REQUIRE(sp.model.scale_out_proj_init);
  auto mup = paper_run("transformer", 8, "mup");
  REQUIRE(mup.optimizer.lr == Approx(4e-4));
  REQUIRE(mup.optimizer.matrix_lr_mult == Approx(2.0));
  REQUIRE(mup.model.residual_mult == 1.0);
  REQUIRE(mup.model.logit_mult == Approx(2.0));
  REQUIRE(mup.optimizer.vector_weight_decay == 0.1);  // plain muP decays vectors too
  // Batch scaling: a quarter of the base batch halves the learning rate.
  auto q = parse_config("model:\n  arch: transformer\n  depth: 16\n  vocab_size: 320\noptimizer:\n  lr: 0\n"
                        "training:\n  batch_size: 128\n  seq_len: 4096\n  max_steps: 10\n",
                        "q");
  resolve_config(q, 320);
  REQUIRE(q.optimizer.lr == Approx(2e-4));
  // Tied embeddings under muP++ take the GPT-2 out-projection scaling and no zero readout (SPEC §6.3).
  auto tied = parse_config("model:\n  arch: sambay\n  depth: 8\n  tie_embeddings: true\n", "t", {"training.max_steps=5"});
  resolve_config(tied, 320);
  REQUIRE(tied.model.scale_out_proj_init);
  REQUIRE_FALSE(tied.model.zero_readout);
}

TEST_CASE("base_hps files: paper-era equals the built-in defaults, head overrides, the config wins", "[mupp]") {
  const std::string dir = std::string(HYSCALE_SOURCE_DIR) + "/configs/base_hps/";
  auto builtin = parse_config("", "builtin");
  auto paper = parse_config("base_hps: " + dir + "paper_era.yaml\n", "p");
  paper.base_hps = "";
  REQUIRE(to_yaml(paper) == to_yaml(builtin));
  auto head = parse_config("base_hps: " + dir + "head.yaml\nbase:\n  eta0: 1.0e-3\n", "h");
  REQUIRE(head.base.d0 == 8);
  REQUIRE(head.base.t0 == 9.5e9);
  REQUIRE(head.base.eta0 == 1e-3);  // the config's own value beats the file
  REQUIRE_THROWS_WITH(parse_config("base_hps: /nonexistent.yaml\n", "x"), Contains("/nonexistent.yaml"));
  auto conflict = parse_config("model:\n  depth: 8\n  n_layers: 6\n", "x", {"training.max_steps=5"});
  REQUIRE_THROWS_WITH(resolve_config(conflict, 320), Contains("model.depth") && Contains("model.n_layers"));
}

#include "train/trainer.h"

TEST_CASE("coordinate check: logits RMS vs width after a few steps, per parametrisation", "[mupp][coord]") {
  // Tiny Transformer++: widths D = 64, 128, 256 at ar 16 (heads D/16), head_dim 8, base d0 = 4, b = b0.
  auto cfg = parse_config(
      "model:\n  arch: transformer\n  ar: 16\n  head_dim: 8\n  vocab_size: 320\noptimizer:\n  lr: 0\n"
      "base:\n  d0: 4\n  b0: 256\n  eta0: 3.0e-3\n  hd0: 8\ntraining:\n  batch_size: 4\n  seq_len: 64\n  threads: 1\n",
      "coord");
  std::vector<double> all_rows;  // every row's slope of the last call
  auto slope = [&](const std::string& par, bool joint) {
    auto c = cfg;
    c.scaling.parametrization = par;
    CoordCheckOptions o;
    o.widths = {64, 128, 256};
    o.steps = 5;
    o.joint = joint;
    auto r = coord_check(c, o, false);
    REQUIRE(r.rows.back() == "logits");
    all_rows = r.slopes;
    return r.slopes.back();
  };
  SECTION("fixed depth (d0): only the width rules act") {
    const double sp = slope("sp", false);
    const double sp_last_block = all_rows[3];
    const double mup = slope("mup", false);
    for (double v : all_rows) CHECK(std::fabs(v) < 0.25);  // muP: every row flat
    const double mupp = slope("mupp", false);
    for (double v : all_rows) CHECK(std::fabs(v) < 0.25);  // muP++: every row flat
    INFO("logits: sp " << sp << " mup " << mup << " mupp " << mupp << "; sp last block " << sp_last_block);
    REQUIRE(sp > 0.5);               // SP: logit updates grow with width
    REQUIRE(sp_last_block > 1.0);    // and the residual stream much faster
    REQUIRE(std::fabs(mup) < 0.2);
    REQUIRE(std::fabs(mupp) < 0.2);
  }
  SECTION("joint (d = D / ar, the paper's configs)") {
    const double sp = slope("sp", true), mupp = slope("mupp", true);
    INFO("joint slopes: sp " << sp << ", mupp " << mupp);
    REQUIRE(sp > 0.4);
    // muP++ (paper-era) also multiplies every group's lr by sqrt(d0/d); with D = ar d the logit
    // updates then shrink like D^-1/2 instead of growing: slope near -1/2, never positive.
    REQUIRE(mupp < 0.0);
    REQUIRE(mupp > -0.8);
  }
}

TEST_CASE("width and depth ratios stay apart: d_model override changes only the width rules", "[mupp]") {
  auto base = parse_config("model:\n  arch: sambay\n  depth: 8\ntraining:\n  batch_size: 512\n  seq_len: 4096\n  max_steps: 0\n"
                           "optimizer:\n  lr: 0\n", "wd");
  auto a = base;
  resolve_config(a, 320);
  REQUIRE(a.model.d_model == 992);
  REQUIRE(a.optimizer.matrix_lr_mult == Approx(2.0));  // d0/d = 16/8
  REQUIRE(a.model.logit_mult == Approx(2.0));
  auto b = base;
  b.model.d_model = 1984;  // twice the width at the same depth
  resolve_config(b, 320);
  REQUIRE(b.optimizer.matrix_lr_mult == Approx(1.0));  // D0/D = 124*16/1984
  REQUIRE(b.model.logit_mult == Approx(1.0));
  REQUIRE(b.optimizer.lr == Approx(a.optimizer.lr));   // the depth factor sqrt(d0/d) is unchanged
  REQUIRE(b.model.residual_mult == Approx(a.model.residual_mult));
}
