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
