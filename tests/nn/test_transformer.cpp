// Whole-model checks of Transformer++: gradients of every parameter against finite
// differences (f64 parameters), parameter names and counts, causality, init rules.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/ops.h"
#include "gradcheck.h"
#include "nn/model.h"

using namespace hyscale;
using hyscale::testing::randint;

static nn::ModelConfig tiny(bool tied, DType dt) {
  nn::ModelConfig m;
  m.vocab_size = 64;
  m.n_layers = 2;
  m.d_model = 12;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.head_dim = 6;
  m.mlp_hidden = 10;
  m.tie_embeddings = tied;
  m.residual_mult = 0.7;
  m.logit_mult = 1.3;
  m.embed_init_std = 0.5;  // large enough that every path carries signal in the check
  m.init_std = 0.3;
  m.param_dtype = dt;
  return m;
}

TEST_CASE("Transformer++ loss gradient matches finite differences for every parameter (f64)", "[nn][grad]") {
  for (bool tied : {false, true}) {
    INFO("tied " << tied);
    nn::Model model(tiny(tied, DType::f64));
    model.init_weights(3);
    hyscale::testing::check_model_gradients(model, randint({2, 9}, 64, 4), randint({2, 9}, 64, 5), 12, 1e-5, 1e-6);
  }
}

TEST_CASE("Transformer++ is causal: logits at t do not depend on tokens after t", "[nn]") {
  nn::Model model(tiny(false, DType::f32));
  model.init_weights(7);
  NoGrad ng;
  Tensor a = randint({1, 12}, 64, 8);
  Tensor b = a.clone();
  b.data<int32_t>()[9] = (a.data<int32_t>()[9] + 1) % 64;  // change token 9
  auto la = model.forward(a).to_vector<float>(), lb = model.forward(b).to_vector<float>();
  for (int64_t t = 0; t < 12; ++t)
    for (int64_t v = 0; v < 64; ++v) {
      const bool same = la[t * 64 + v] == lb[t * 64 + v];
      if (t < 9) REQUIRE(same);
    }
  REQUIRE(la[9 * 64] != lb[9 * 64]);
}

TEST_CASE("parameter names, counts and FLOPs per token", "[nn]") {
  auto cfg = tiny(false, DType::f32);
  nn::Model model(cfg);
  std::vector<std::string> names;
  for (auto& [n, t] : model.named_parameters()) names.push_back(n);
  REQUIRE(names.front() == "wte");
  REQUIRE(std::find(names.begin(), names.end(), "blocks.1.attn.wqkv") != names.end());
  REQUIRE(std::find(names.begin(), names.end(), "blocks.0.mlp.w3") != names.end());
  REQUIRE(std::find(names.begin(), names.end(), "lm_head") != names.end());
  REQUIRE(std::find(names.begin(), names.end(), "ln_f.weight") != names.end());
  // per layer: wqkv (4+2*2)*6*12 + proj 12*24 + w1 20*12 + w3 12*10 ; + norms
  const int64_t per_layer = 8 * 6 * 12 + 12 * 24 + 20 * 12 + 12 * 10;
  REQUIRE(model.non_embedding_params() == 2 * per_layer);
  REQUIRE(model.embedding_params() == 2 * 64 * 12);
  REQUIRE(model.num_parameters() == 2 * per_layer + 2 * 64 * 12 + 2 * 2 * 12 + 12);
  const double T = 9;
  const double expect = 6.0 * (2 * per_layer + 64 * 12) + 12.0 * 4 * 6 * (T + 1) / 2 * 2;
  REQUIRE(model.train_flops_per_token(9) == Approx(expect));
  auto tied = cfg;
  tied.tie_embeddings = true;
  nn::Model mt(tied);
  for (auto& [n, t] : mt.named_parameters()) REQUIRE(n != "lm_head");
}

TEST_CASE("SP init: std per role, out-projections scaled by 1/sqrt(2L), norms at 1", "[nn][init]") {
  nn::ModelConfig m = tiny(false, DType::f32);
  m.d_model = 256;
  m.n_heads = 8;
  m.n_kv_heads = 4;
  m.head_dim = 32;
  m.mlp_hidden = 512;
  m.n_layers = 8;
  m.init_std = 0.02;
  m.embed_init_std = 1e-4;
  nn::Model model(m);
  model.init_weights(11);
  auto stdev = [](const Tensor& t) {
    double s = 0;
    for (float v : t.to_vector<float>()) s += double(v) * v;
    return std::sqrt(s / t.numel());
  };
  REQUIRE(stdev(model.blocks[0]->attn->wqkv) == Approx(0.02).epsilon(0.03));
  REQUIRE(stdev(model.blocks[3]->mlp->w3) == Approx(0.02 / 4.0).epsilon(0.03));  // sqrt(2*8) = 4
  REQUIRE(stdev(model.blocks[3]->attn->proj) == Approx(0.02 / 4.0).epsilon(0.03));
  REQUIRE(stdev(model.wte) == Approx(1e-4).epsilon(0.03));
  for (float v : model.ln_f->weight.to_vector<float>()) REQUIRE(v == 1.0f);
  // Same seed -> same weights; init does not depend on construction order.
  nn::Model again(m);
  again.init_weights(11);
  REQUIRE(again.blocks[5]->mlp->w1.to_vector<float>() == model.blocks[5]->mlp->w1.to_vector<float>());
}

TEST_CASE("muP++ init: uniform +-w_init/sqrt(fan_in) matrices, zero readout", "[nn][init]") {
  nn::ModelConfig m = tiny(false, DType::f32);
  m.d_model = 64;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.head_dim = 16;
  m.mlp_hidden = 256;
  m.init = "uniform";
  m.w_init = 1.0;
  m.zero_readout = true;
  m.scale_out_proj_init = false;
  nn::Model model(m);
  model.init_weights(5);
  for (float v : model.lm_head.to_vector<float>()) REQUIRE(v == 0.0f);
  auto w = model.blocks[0]->mlp->w3.to_vector<float>();  // fan_in = 256
  double ss = 0, mx = 0;
  for (float v : w) {
    ss += double(v) * v;
    mx = std::max(mx, std::fabs(double(v)));
  }
  REQUIRE(mx <= 1.0 / 16.0);
  REQUIRE(std::sqrt(ss / w.size()) == Approx(1.0 / 16.0 / std::sqrt(3.0)).epsilon(0.05));
}
