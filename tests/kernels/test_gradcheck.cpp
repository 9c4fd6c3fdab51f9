// Gradient checks of every differentiable op against central finite differences
// in f64, on random inputs with odd sizes.
#include <cmath>
#include <cstdlib>

#include "core/ops.h"
#include "gradcheck.h"

using namespace hyscale;
using hyscale::testing::gradcheck;
using hyscale::testing::randint;
using hyscale::testing::randn;

TEST_CASE("gradcheck linear", "[grad]") {
  gradcheck([](auto& in) { return ops::linear(in[0], in[1]); }, {randn({3, 5, 7}, 1), randn({11, 7}, 2)});
}

TEST_CASE("gradcheck bmm with every transpose", "[grad]") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Shape sa = ta ? Shape{3, 5, 4} : Shape{3, 4, 5};
      Shape sb = tb ? Shape{3, 7, 5} : Shape{3, 5, 7};
      gradcheck([=](auto& in) { return ops::bmm(in[0], in[1], ta, tb); }, {randn(sa, 3), randn(sb, 4)});
    }
}

TEST_CASE("gradcheck add, mul, scale", "[grad]") {
  gradcheck([](auto& in) { return ops::add(in[0], in[1]); }, {randn({5, 3}, 5), randn({5, 3}, 6)});
  gradcheck([](auto& in) { return ops::mul(in[0], in[1]); }, {randn({5, 3}, 7), randn({5, 3}, 8)});
  gradcheck([](auto& in) { return ops::scale(in[0], -0.37); }, {randn({13}, 9)});
}

TEST_CASE("gradcheck silu and swiglu", "[grad]") {
  gradcheck([](auto& in) { return ops::silu(in[0]); }, {randn({7, 9}, 10, 2.0)});
  gradcheck([](auto& in) { return ops::swiglu(in[0]); }, {randn({3, 5, 14}, 11, 2.0)});
}

TEST_CASE("gradcheck rmsnorm", "[grad]") {
  gradcheck([](auto& in) { return ops::rmsnorm(in[0], in[1], 1e-5); }, {randn({3, 5, 13}, 12), randn({13}, 13)});
}

TEST_CASE("gradcheck embedding", "[grad]") {
  Tensor ids = randint({3, 7}, 11, 14);
  ids.data<int32_t>()[0] = ids.data<int32_t>()[1];  // a repeated id accumulates
  gradcheck([ids](auto& in) { return ops::embedding(ids, in[0]); }, {randn({11, 5}, 15)});
}

TEST_CASE("gradcheck rope", "[grad]") {
  gradcheck([](auto& in) { return ops::rope(in[0], 1e4, 3); }, {randn({2, 7, 3, 10}, 16)});
}

TEST_CASE("gradcheck attention: causal, windowed, GQA, multi-tile", "[grad]") {
  struct C { int64_t B, T, H, Hk, D, W; };
  for (C c : {C{2, 7, 2, 1, 6, 0}, C{1, 9, 4, 2, 4, 3}, C{1, 5, 3, 3, 8, 1}, C{1, 131, 2, 1, 4, 0},
              C{1, 137, 4, 2, 4, 70}}) {
    INFO("B=" << c.B << " T=" << c.T << " H=" << c.H << " Hk=" << c.Hk << " D=" << c.D << " W=" << c.W);
    gradcheck([c](auto& in) { return ops::attention(in[0], in[1], in[2], 0.7, c.W); },
              {randn({c.B, c.T, c.H, c.D}, 17), randn({c.B, c.T, c.Hk, c.D}, 18), randn({c.B, c.T, c.Hk, c.D}, 19)},
              1e-6, 1e-5, 1e-8, 60);
  }
}

TEST_CASE("gradcheck cross_entropy", "[grad]") {
  Tensor tg = randint({9}, 13, 20);
  gradcheck([tg](auto& in) { return ops::cross_entropy(in[0], tg); }, {randn({9, 13}, 21, 3.0)});
}

TEST_CASE("gradcheck views: slice, reshape, contiguous", "[grad]") {
  gradcheck(
      [](auto& in) {
        Tensor s = in[0].slice(1, 2, 7).reshape({3, 5, 1});
        return ops::mul(s, s);
      },
      {randn({3, 9}, 22)});
}

TEST_CASE("gradcheck a composed block: norm -> linear -> swiglu -> linear + residual", "[grad]") {
  gradcheck(
      [](auto& in) {
        Tensor h = ops::rmsnorm(in[0], in[1], 1e-5);
        Tensor y = ops::linear(ops::swiglu(ops::linear(h, in[2])), in[3]);
        return ops::add(in[0], ops::scale(y, 0.5));
      },
      {randn({2, 3, 5}, 23), randn({5}, 24), randn({8, 5}, 25), randn({5, 4}, 26)});
}

TEST_CASE("gradcheck attention with a value width different from the key width (DA's [v1 | v2])", "[grad]") {
  gradcheck([](auto& in) { return ops::attention(in[0], in[1], in[2], 0.5, 4); },
            {randn({2, 9, 4, 3}, 61), randn({2, 9, 2, 3}, 62), randn({2, 9, 2, 6}, 63)});
}

TEST_CASE("gradcheck differential-attention lambda and combination", "[grad]") {
  gradcheck([](auto& in) { return ops::diff_lambda(in[0], in[1], in[2], in[3], 0.35); },
            {randn({5}, 64, 0.3), randn({5}, 65, 0.3), randn({5}, 66, 0.3), randn({5}, 67, 0.3)});
  gradcheck([](auto& in) { return ops::diff_combine(in[0], in[1], ops::diff_lambda(in[2], in[3], in[4], in[5], 0.2)); },
            {randn({3, 7}, 68), randn({3, 7}, 69), randn({4}, 70, 0.3), randn({4}, 71, 0.3), randn({4}, 72, 0.3),
             randn({4}, 73, 0.3)});
}

TEST_CASE("gradcheck concat along each dimension", "[grad]") {
  for (int64_t dim : {0, 1, 2, -1}) {
    INFO("dim " << dim);
    const Shape sb = dim == 0 ? Shape{1, 3, 4} : dim == 1 ? Shape{2, 5, 4} : Shape{2, 3, 2};
    gradcheck([dim](auto& in) { return ops::concat(in[0], in[1], dim); }, {randn({2, 3, 4}, 81), randn(sb, 82)});
  }
  REQUIRE_THROWS_WITH(ops::concat(randn({2, 3}, 1), randn({3, 3}, 2), 1), Catch::Contains("differ outside dim 1"));
  REQUIRE_THROWS_WITH(ops::concat(randn({2, 3}, 1), randn({2, 3}, 2), 2), Catch::Contains("concat: dim 2"));
}

// The GPU's tensor-core route for differential attention (four head-dim-hd attentions, D = Dv)
// against the composition the CPU uses (two attentions with Dv = 2 hd): the same values and
// gradients, GQA and windows included.
TEST_CASE("differential attention split into four hd-wide attentions equals the two-branch composition", "[grad]") {
  for (int64_t window : {0, 3})
    for (int64_t T : {1, 9}) {
      INFO("T " << T << " window " << window);
      const int64_t B = 2, Hp = 4, Hkp = 2, hd = 3;
      auto mk = [&] {
        std::vector<Tensor> in = {randn({B, T, Hp, 2 * hd}, 91, 1.5), randn({B, T, Hkp, 2 * hd}, 92, 1.5),
                                  randn({B, T, Hkp, 2 * hd}, 93), randn({4}, 94, 0.3), randn({4}, 95, 0.3),
                                  randn({4}, 96, 0.3), randn({4}, 97, 0.3)};
        for (auto& t : in) t.requires_grad_();
        return in;
      };
      auto run = [&](std::vector<Tensor>& in, bool split) {
        Tensor lam = ops::diff_lambda(in[3], in[4], in[5], in[6], 0.3);
        return split ? ops::diff_attention_split(in[0], in[1], in[2], lam, 0.4, window)
                     : ops::diff_attention(in[0], in[1], in[2], lam, 0.4, window);
      };
      auto a = mk(), b = mk();
      Tensor ya = run(a, false), yb = run(b, true);
      const Tensor w = randn(ya.shape(), 98);
      ya.backward(w);
      yb.backward(w);
      auto close = [](const Tensor& x, const Tensor& y) {
        auto u = x.to_vector<double>(), v = y.to_vector<double>();
        REQUIRE(u.size() == v.size());
        for (size_t i = 0; i < u.size(); ++i) REQUIRE(std::fabs(u[i] - v[i]) <= 1e-12 * (1 + std::fabs(u[i])));
      };
      close(ya, yb);
      for (size_t k = 0; k < a.size(); ++k) {
        INFO("input " << k);
        close(a[k].grad(), b[k].grad());
      }
      gradcheck(
          [&](auto& in) {
            return ops::diff_attention_split(in[0], in[1], in[2], ops::diff_lambda(in[3], in[4], in[5], in[6], 0.3),
                                             0.4, window);
          },
          mk(), 1e-6, 1e-5, 1e-8, 60);
    }
  // The route switch is read on every device: a misspelt value is an error, not ignored.
  Tensor q = randn({1, 3, 2, 4}, 1), k = randn({1, 3, 1, 4}, 2), lam = Tensor::full({}, 0.5, DType::f64);
  setenv("HYSCALE_DIFF_ATTN", "splitt", 1);
  CHECK_THROWS_WITH(ops::diff_attention(q, k, k, lam, 0.5), Catch::Contains("expected auto, fused or split"));
  setenv("HYSCALE_DIFF_ATTN", "split", 1);
  const auto ys = ops::diff_attention(q, k, k, lam, 0.5).to_vector<double>();
  unsetenv("HYSCALE_DIFF_ATTN");
  const auto yd = ops::diff_attention(q, k, k, lam, 0.5).to_vector<double>();
  REQUIRE(ys.size() == yd.size());
  for (size_t i = 0; i < ys.size(); ++i) CHECK(std::fabs(ys[i] - yd[i]) <= 1e-12 * (1 + std::fabs(yd[i])));
}
