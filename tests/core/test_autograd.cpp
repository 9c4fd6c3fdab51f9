#include <catch2/catch.hpp>

#include "core/ops.h"

using namespace hyscale;
using Catch::Matchers::Contains;

TEST_CASE("gradients accumulate across backward calls and through shared inputs", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3}, {3});
  x.requires_grad_();
  // y = x*x + x  -> dy/dx = 2x + 1 (x used twice)
  Tensor y = ops::add(ops::mul(x, x), x);
  y.backward(Tensor::full({3}, 1.0, DType::f64));
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{3, 5, 7});
  Tensor y2 = ops::scale(x, 2.0);
  y2.backward(Tensor::full({3}, 1.0, DType::f64));
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{5, 7, 9});
  x.zero_grad();
  REQUIRE(!x.grad().defined());
}

TEST_CASE("NoGrad records nothing", "[autograd]") {
  Tensor x = Tensor::from_vector<float>({1, 2}, {2});
  x.requires_grad_();
  NoGrad ng;
  Tensor y = ops::mul(x, x);
  REQUIRE(!y.requires_grad());
  REQUIRE(y.grad_fn() == nullptr);
}

TEST_CASE("gradient-ready hooks fire once per backward, after the last contribution", "[autograd]") {
  Tensor w = Tensor::from_vector<double>({2.0}, {1});
  w.requires_grad_();
  int fired = 0;
  double seen = 0;
  w.add_grad_ready_hook([&](Tensor& g) {
    ++fired;
    seen = g.data<double>()[0];
  });
  Tensor x = Tensor::from_vector<double>({3.0}, {1});
  // w used in two branches: hook must see the full gradient (3 + 1 = 4), once.
  Tensor y = ops::add(ops::mul(w, x), w);
  y.backward(Tensor::full({1}, 1.0, DType::f64));
  REQUIRE(fired == 1);
  REQUIRE(seen == 4.0);
}

TEST_CASE("a second backward through a freed graph is an error", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({1.0}, {1});
  x.requires_grad_();
  Tensor y = ops::mul(x, x);
  y.backward(Tensor::full({1}, 1.0, DType::f64));
  REQUIRE_THROWS_WITH(y.backward(Tensor::full({1}, 1.0, DType::f64)), Contains("already"));
}

TEST_CASE("backward on a non-scalar without a seed is an error", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({1.0, 2.0}, {2});
  x.requires_grad_();
  REQUIRE_THROWS_WITH(ops::mul(x, x).backward(), Contains("scalar"));
}

// The engine writes slices' gradients straight into the sliced tensor's gradient buffer
// (run_backward's scatter path). Every way slices can meet: disjoint and covering, with gaps
// (must read exactly 0 though the buffer starts uninitialised), overlapping, along different
// dims, mixed with a consumer of the whole tensor before and after them, and slices of a leaf.
// Expected gradients are computed independently, element by element.
TEST_CASE("slice gradients land in their ranges of the sliced tensor's gradient", "[autograd]") {
  const int64_t R = 3, C = 7;
  auto base = [&] {
    std::vector<double> v(R * C);
    for (int64_t i = 0; i < R * C; ++i) v[i] = 0.25 * double(i) - 1.0;
    return Tensor::from_vector<double>(v, {R, C});
  };
  // Weights per use: the loss is sum_k sum(w_k * slice_k) (+ sum(w_full * x) for a full consumer).
  struct Use {
    int64_t dim, start, end;  // dim < 0: the whole tensor
    double w;
  };
  auto run = [&](const std::vector<Use>& uses, bool leaf) {
    Tensor p = base();
    p.requires_grad_();
    Tensor x = leaf ? p : ops::scale(p, 1.0);  // non-leaf: the slices' input has a grad_fn
    Tensor loss;
    for (const Use& u : uses) {
      Tensor s = u.dim < 0 ? x : x.slice(u.dim, u.start, u.end);
      Tensor term = ops::scale(s, u.w);
      // sum(term) through a 1-element product: reshape to [1, n] and multiply by ones [n, 1]
      const int64_t n = term.numel();
      Tensor t = ops::linear(term.contiguous().reshape({1, n}), Tensor::full({1, n}, 1.0, DType::f64));
      loss = loss.defined() ? ops::add(loss, t) : t;
    }
    {  // NaN-filled blocks of the gradient buffer's size, freed just before the backward allocates it
      std::vector<Tensor> junk;
      for (int i = 0; i < 8; ++i) junk.push_back(Tensor::full({R, C}, std::nan(""), DType::f64));
    }
    loss.backward(Tensor::full({1, 1}, 1.0, DType::f64));
    return p.grad().to_vector<double>();
  };
  auto expect = [&](const std::vector<Use>& uses) {
    std::vector<double> g(R * C, 0.0);
    for (const Use& u : uses)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t i = u.dim == 0 ? r : c;
          if (u.dim < 0 || (i >= u.start && i < u.end)) g[r * C + c] += u.w;
        }
    return g;
  };
  const std::vector<std::vector<Use>> cases = {
      {{1, 0, 2, 1.0}, {1, 2, 5, 2.0}, {1, 5, 7, 3.0}},        // q, k, v: disjoint, covering
      {{1, 1, 3, 1.5}, {1, 5, 6, -2.0}},                      // gaps at 0, 3..4 and 6
      {{1, 0, 4, 1.0}, {1, 2, 7, 10.0}},                      // overlapping
      {{0, 0, 1, 1.0}, {1, 3, 4, 4.0}},                       // different dims
      {{-1, 0, 0, 0.5}, {1, 0, 3, 1.0}, {1, 3, 7, 2.0}},       // whole tensor, then slices
      {{1, 0, 3, 1.0}, {-1, 0, 0, 0.5}, {1, 4, 6, 2.0}},       // slice, whole, slice
      {{0, 1, 3, 7.0}, {0, 0, 1, -1.0}, {0, 1, 2, 0.25}},      // rows; the last overlaps the first
      {{1, 2, 2, 9.0}, {1, 0, 7, 1.0}},                       // an empty slice
  };
  for (size_t k = 0; k < cases.size(); ++k)
    for (bool leaf : {false, true}) {
      INFO("case " << k << (leaf ? " (slices of a leaf)" : ""));
      REQUIRE(run(cases[k], leaf) == expect(cases[k]));
    }
}
