// The mixed-precision machinery on the CPU, where it can be checked exactly: a model whose
// parameters are f32 and whose compute dtype is f64 (Module::set_compute_dtype: every forward
// reads its parameters through a differentiable cast) must compute exactly what the same model
// built in f64 computes, and return f32 gradients equal to the f64 model's, rounded. Any
// parameter read without the cast would make an op see f32 next to f64 and fail, so this also
// proves every parameter use goes through Module::cw — the path bf16 training takes on a GPU.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/ops.h"
#include "core/random.h"
#include "gradcheck.h"
#include "small_model.h"

using namespace hyscale;

TEST_CASE("ops::cast is differentiable and converts the gradient back", "[ops][unit]") {
  Tensor a = testing::randn({7}, 5, 1.0, DType::f32).requires_grad_();
  Tensor y = ops::cast(a, DType::f64);
  REQUIRE(y.dtype() == DType::f64);
  Tensor w = testing::randn({7}, 6, 1.0, DType::f64);
  ops::mul(y, w).backward(w.to(DType::f64));
  REQUIRE(a.grad().dtype() == DType::f32);
  auto g = a.grad().to_vector<float>();
  auto wv = w.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == static_cast<float>(wv[i] * wv[i]));
  REQUIRE(ops::cast(a, DType::f32).same(a));  // same dtype: the tensor itself
  REQUIRE_THROWS_WITH(ops::cast(Tensor::zeros({2}, DType::i32), DType::f32), Catch::Matchers::Contains("floating"));
}

TEST_CASE("f32 parameters computed in f64 equal the f64 model (every architecture)", "[nn][unit]") {
  for (const char* arch : {"transformer", "transformerls", "samba", "sambayoco", "sambay", "sambayda", "swayoco"}) {
    INFO("arch " << arch);
    nn::ModelConfig c32 = testing::small_model(arch), c64 = c32;
    c64.param_dtype = DType::f64;
    nn::Model m32(c32), m64(c64);
    m32.init_weights(21);
    auto p32 = m32.named_parameters(), p64 = m64.named_parameters();
    REQUIRE(p32.size() == p64.size());
    for (size_t i = 0; i < p32.size(); ++i) {
      NoGrad ng;
      Tensor(p64[i].second).copy_from(p32[i].second);  // the same values, exactly
    }
    m32.set_compute_dtype(DType::f64);
    const int64_t B = 2, T = 13;
    const int32_t V = static_cast<int32_t>(c32.vocab_size);
    Tensor I = testing::randint({B, T}, V, 8), Tg = testing::randint({B, T}, V, 9);
    Tensor l32 = m32.loss(I, Tg), l64 = m64.loss(I, Tg);
    REQUIRE(l32.dtype() == DType::f64);
    CHECK(l32.item() == l64.item());
    l32.backward();
    l64.backward();
    for (size_t i = 0; i < p32.size(); ++i) {
      INFO("parameter " << p32[i].first);
      Tensor g32 = p32[i].second.grad(), g64 = p64[i].second.grad();
      REQUIRE(g32.defined() == g64.defined());
      if (!g32.defined()) continue;
      REQUIRE(g32.dtype() == DType::f32);
      auto a = g32.to_vector<float>();
      auto b = g64.to_vector<double>();
      double num = 0, den = 0;
      for (size_t k = 0; k < a.size(); ++k) {
        num = std::max(num, std::fabs(a[k] - b[k]));
        den = std::max(den, std::fabs(b[k]));
      }
      // Rounding to f32 once (1 ulp = 6e-8); tied embeddings sum two rounded halves.
      CHECK(num <= 2e-7 * std::max(den, 1e-30));
    }
  }
}

// Persistent compute copies (Module::set_compute_copies, installed by the trainer for bf16 on a
// GPU): cw() reads the copy instead of casting. With exact copies a step computes what the
// casting model computes, bit for bit (loss and every gradient); a changed copy changes the loss
// (the copies are what the forward reads); uninstalling brings the cast back.
TEST_CASE("persistent compute copies replace the per-forward cast exactly", "[nn][unit]") {
  for (const char* arch : {"transformer", "sambayda"}) {
    INFO("arch " << arch);
    nn::ModelConfig c = testing::small_model(arch);
    nn::Model m(c);
    m.init_weights(31);
    m.set_compute_dtype(DType::f64);
    const int32_t V = static_cast<int32_t>(c.vocab_size);
    Tensor I = testing::randint({2, 11}, V, 3), Tg = testing::randint({2, 11}, V, 4);
    auto params = m.named_parameters();
    auto run = [&] {  // loss and all gradients
      for (auto& [n, p] : params) p.zero_grad();
      Tensor l = m.loss(I, Tg);
      l.backward();
      std::vector<std::vector<float>> out = {{static_cast<float>(l.item())}};
      for (auto& [n, p] : params) out.push_back(p.grad().defined() ? p.grad().to_vector<float>() : std::vector<float>{});
      return std::pair{l.item(), out};
    };
    const auto [l_cast, g_cast] = run();
    auto cc = std::make_shared<nn::Module::ComputeCopies>();
    for (auto& [n, p] : params) cc->by_param[p.impl_ptr().get()] = p.detach().to(DType::f64);
    m.set_compute_copies(cc);
    const auto [l_copy, g_copy] = run();
    CHECK(l_copy == l_cast);
    CHECK(g_copy == g_cast);
    // The forward reads the copies, through cw() (the embedding table, norms) and through lin()
    // (every linear weight): scaling one copy of each kind changes the loss.
    for (const char* which : {"wte", "mlp.w1"}) {
      INFO("scaled copy of " << which);
      Tensor cpy;
      for (auto& [n, p] : params)
        if (n.find(which) != std::string::npos) {
          cpy = cc->by_param.at(p.impl_ptr().get());
          break;
        }
      REQUIRE(cpy.defined());
      const Tensor saved = cpy.clone();
      {
        NoGrad ng;
        cpy.copy_from(ops::scale(saved, 2.0));
      }
      CHECK(run().first != l_cast);
      {
        NoGrad ng;
        cpy.copy_from(saved);
      }
      CHECK(run().first == l_cast);
    }
    m.set_compute_copies(nullptr);
    CHECK(run().first == l_cast);
  }
}

TEST_CASE("ops::linear_mp: the master weight's gradient in its own dtype, as linear of the cast", "[ops][unit]") {
  Tensor w = testing::randn({5, 7}, 41, 1.0, DType::f32).requires_grad_();
  Tensor w2 = Tensor(w.detach().clone()).requires_grad_();
  Tensor x = testing::randn({3, 4, 7}, 42, 1.0, DType::f64).requires_grad_();
  Tensor x2 = Tensor(x.detach().clone()).requires_grad_();
  Tensor wc = w.detach().to(DType::f64);
  Tensor y = ops::linear_mp(x, w, wc), y2 = ops::linear(x2, ops::cast(w2, DType::f64));
  REQUIRE(y.to_vector<double>() == y2.to_vector<double>());
  Tensor g = testing::randn({3, 4, 5}, 43, 1.0, DType::f64);
  y.backward(g);
  y2.backward(g);
  REQUIRE(w.grad().dtype() == DType::f32);
  REQUIRE(w.grad().to_vector<float>() == w2.grad().to_vector<float>());
  REQUIRE(x.grad().to_vector<double>() == x2.grad().to_vector<double>());
  REQUIRE(!wc.grad().defined());
  REQUIRE_THROWS_WITH(ops::linear_mp(x, w, Tensor::zeros({5, 6}, DType::f64)),
                      Catch::Matchers::Contains("linear_mp: the master weight"));
  Tensor wg = Tensor::zeros({5, 7}, DType::f64).requires_grad_();
  REQUIRE_THROWS_WITH(ops::linear_mp(x, w, wg), Catch::Matchers::Contains("must not require grad"));
}
