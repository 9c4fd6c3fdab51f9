#include <catch2/catch.hpp>

#include "nn/model.h"
#include "train/optimizer.h"

using namespace hyscale;
using namespace hyscale::train;

TEST_CASE("lr schedule: warmup, linear/cosine decay, floor", "[schedule]") {
  ScheduleConfig s;
  s.warmup_steps = 10;
  s.decay = "linear";
  s.min_lr_ratio = 0.1;
  REQUIRE(lr_at(s, 1.0, 0, 110) == Approx(0.1));
  REQUIRE(lr_at(s, 1.0, 9, 110) == Approx(1.0));
  REQUIRE(lr_at(s, 1.0, 10, 110) == Approx(1.0));
  REQUIRE(lr_at(s, 1.0, 60, 110) == Approx(0.55));
  REQUIRE(lr_at(s, 1.0, 110, 110) == Approx(0.1));
  s.decay = "cosine";
  REQUIRE(lr_at(s, 1.0, 60, 110) == Approx(0.55));
  REQUIRE(lr_at(s, 1.0, 35, 110) == Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25))));
  s.decay = "constant";
  REQUIRE(lr_at(s, 1.0, 100, 110) == 1.0);
}

TEST_CASE("parameter groups: matrices vs vectors, per-group lr and weight decay", "[optimizer]") {
  nn::ModelConfig m;
  m.vocab_size = 64;
  m.n_layers = 1;
  m.d_model = 8;
  m.n_heads = 2;
  m.n_kv_heads = 1;
  m.head_dim = 4;
  m.mlp_hidden = 16;
  nn::Model model(m);
  OptimizerConfig oc;
  oc.weight_decay = 0.5;
  oc.vector_weight_decay = 0.0;
  oc.vector_lr_mult = 0.0;  // vectors frozen
  AdamW opt(model.named_parameters(), oc);
  std::vector<std::string> vec, mat;
  for (auto& g : opt.groups())
    for (size_t i : g.members) (g.name == "vector" ? vec : mat).push_back(opt.params()[i].first);
  REQUIRE(std::find(vec.begin(), vec.end(), "wte") != vec.end());
  REQUIRE(std::find(vec.begin(), vec.end(), "lm_head") != vec.end());
  REQUIRE(std::find(vec.begin(), vec.end(), "blocks.0.norm1.weight") != vec.end());
  REQUIRE(std::find(mat.begin(), mat.end(), "blocks.0.attn.wqkv") != mat.end());
  REQUIRE(std::find(mat.begin(), mat.end(), "blocks.0.mlp.w3") != mat.end());
  // One step with unit gradients: vectors (lr mult 0) stay, matrices move.
  model.init_weights(1);
  for (auto& [n, p] : opt.params()) {
    Tensor g = Tensor::full(p.shape(), 1.0);
    Tensor(p).set_grad(g);
  }
  const float before_v = model.ln_f->weight.data<float>()[0];
  const float before_m = model.blocks[0]->attn->wqkv.data<float>()[0];
  opt.step(0.1);
  REQUIRE(model.ln_f->weight.data<float>()[0] == before_v);
  REQUIRE(model.blocks[0]->attn->wqkv.data<float>()[0] != before_m);
}

TEST_CASE("grad norm and clipping scale", "[optimizer]") {
  Tensor a = Tensor::zeros({2}), b = Tensor::zeros({1});
  a.requires_grad_();
  b.requires_grad_();
  AdamW opt({{"a", a}, {"b", b}}, OptimizerConfig{});
  a.set_grad(Tensor::from_vector<float>({3, 0}, {2}));
  b.set_grad(Tensor::from_vector<float>({4}, {1}));
  REQUIRE(opt.grad_norm() == Approx(5.0));
  opt.scale_grads(0.2);
  REQUIRE(opt.grad_norm() == Approx(1.0));
}

#include "small_model.h"
#include "train/dist_optim.h"

TEST_CASE("AdamW step with a folded clipping scale equals scaling the gradients first, bit for bit",
          "[optimizer]") {
  nn::ModelConfig cfg = hyscale::testing::small_model("sambay");
  OptimizerConfig oc;
  oc.lr = 1e-2;
  auto run = [&](bool folded) {
    nn::Model model(cfg);
    model.init_weights(5);
    DistributedAdamW opt(model.named_parameters(), model.named_shard_specs(), oc, parallel::make_grid(1), 25, false);
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      Tensor ids = Tensor::empty({2, 9}, DType::i32), tg = Tensor::empty({2, 9}, DType::i32);
      for (int64_t i = 0; i < 18; ++i) {
        ids.data<int32_t>()[i] = static_cast<int32_t>((i * 7 + step) % cfg.vocab_size);
        tg.data<int32_t>()[i] = static_cast<int32_t>((i * 5 + 3 * step) % cfg.vocab_size);
      }
      model.loss(ids, tg).backward();
      opt.finish_backward();
      const double gn = opt.grad_norm();
      REQUIRE(gn > 0.05);  // so the clip below is active
      const double f = 0.05 / gn;
      if (folded) {
        opt.step(oc.lr, f);
      } else {
        opt.scale_grads(f);
        opt.step(oc.lr);
      }
    }
    std::vector<float> all;
    for (auto& [n, p] : model.named_parameters()) {
      auto v = p.to_vector<float>();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  REQUIRE(run(true) == run(false));
}

TEST_CASE("optimizer compute copies: only for cuda parameters, one per parameter", "[optimizer]") {
  Tensor a = Tensor::zeros({2, 3});
  a.requires_grad_();
  DistributedAdamW opt({{"a", a}}, {{"a", nn::ShardSpec{}}}, OptimizerConfig{}, parallel::make_grid(1), 25, false);
  opt.set_compute_copies({});  // none: fine anywhere
  REQUIRE_THROWS_WITH(opt.set_compute_copies({Tensor::zeros({2, 3}), Tensor::zeros({2, 3})}),
                      Catch::Contains("2 compute copies for 1 parameters"));
  REQUIRE_THROWS_WITH(opt.set_compute_copies({Tensor::zeros({2, 3})}), Catch::Contains("(a cuda parameter)"));
}
