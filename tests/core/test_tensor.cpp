#include <catch2/catch.hpp>

#include "core/ops.h"
#include "core/tensor.h"

using namespace hyscale;
using Catch::Matchers::Contains;

TEST_CASE("tensor factories, dtypes and sizes", "[core]") {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64}) {
    Tensor x = Tensor::zeros({3, 4}, t);
    REQUIRE(x.numel() == 12);
    REQUIRE(x.nbytes() == 12 * dtype_size(t));
    REQUIRE(x.dtype() == t);
    REQUIRE_THROWS_WITH(x.item(), Catch::Matchers::Contains("12 elements"));
  }
}

TEST_CASE("reshape of a contiguous tensor is a view, slice is a view", "[core]") {
  Tensor x = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor r = x.reshape({3, 2});
  REQUIRE(r.raw_data() == x.raw_data());
  r.data<float>()[0] = 42;
  REQUIRE(x.data<float>()[0] == 42);
  Tensor s = x.slice(1, 1, 3);  // columns 1..2
  REQUIRE(!s.is_contiguous());
  REQUIRE(s.shape() == Shape{2, 2});
  REQUIRE(s.to_vector<float>() == std::vector<float>{1, 2, 4, 5});
  Tensor sr = s.reshape({4});  // non-contiguous -> copy
  REQUIRE(sr.raw_data() != x.raw_data());
  REQUIRE(x.reshape({-1, 2}).shape() == Shape{3, 2});
}

TEST_CASE("bf16 storage round-trips with round-to-nearest-even", "[core]") {
  Tensor x = Tensor::from_vector<float>({1.0f, 3.14159265f, -2.5e-3f, 65504.0f, 1.00390625f}, {5});
  auto back = x.to(DType::bf16).to(DType::f32).to_vector<float>();
  REQUIRE(back[0] == 1.0f);
  REQUIRE(back[1] == Approx(3.140625f));
  REQUIRE(back[2] == Approx(-2.5e-3f).epsilon(4e-3));
  REQUIRE(back[4] == 1.0f);  // tie rounds to even
}

TEST_CASE("shape and dtype errors name the op and both shapes", "[core][errors]") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2});
  REQUIRE_THROWS_WITH(ops::add(a, b), Contains("add") && Contains("[2, 3]") && Contains("[3, 2]"));
  REQUIRE_THROWS_WITH(ops::linear(a, Tensor::zeros({4, 5})), Contains("linear") && Contains("[2, 3]") &&
                                                                 Contains("[4, 5]"));
  REQUIRE_THROWS_WITH(ops::add(a, Tensor::zeros({2, 3}, DType::f64)), Contains("dtype mismatch"));
  REQUIRE_THROWS_WITH(a.reshape({4, 2}), Contains("reshape") && Contains("[2, 3]"));
  REQUIRE_THROWS_WITH(a.slice(1, 2, 5), Contains("slice") && Contains("[2, 3]"));
  REQUIRE_THROWS_WITH(a.reshape({-2, -3}), Contains("negative"));
  REQUIRE_THROWS_WITH(ops::rmsnorm(Tensor::zeros({2, 0}), Tensor::zeros({0}), 1e-5), Contains("rmsnorm"));
  REQUIRE_THROWS_WITH(a.data<double>(), Contains("f32"));
  Tensor ids = Tensor::from_vector<int32_t>({0, 9}, {2});
  REQUIRE_THROWS_WITH(ops::embedding(ids, Tensor::zeros({4, 3})), Contains("index 9"));
}

TEST_CASE("devices parse, cuda without a device gives a clear error", "[core]") {
  REQUIRE(Device::parse("cpu").is_cpu());
  REQUIRE(Device::parse("cuda:3").index == 3);
  REQUIRE_THROWS_WITH(Device::parse("gpu0"), Contains("gpu0"));
  if (!cuda_available()) REQUIRE_THROWS_AS(Tensor::zeros({2}, DType::f32, Device::cuda(0)), Error);
}

TEST_CASE("copy between overlapping views of one buffer is exact", "[core]") {
  Tensor x = Tensor::from_vector<float>({0, 1, 2, 3, 4}, {5});
  x.slice(0, 1, 5).copy_from(x.slice(0, 0, 4));  // shift right by one
  REQUIRE(x.to_vector<float>() == std::vector<float>{0, 0, 1, 2, 3});
}

TEST_CASE("a product over an empty inner dimension is zero", "[core]") {
  Tensor y = ops::linear(Tensor::zeros({4, 0}), Tensor::zeros({3, 0}));
  REQUIRE(y.shape() == Shape{4, 3});
  for (float v : y.to_vector<float>()) REQUIRE(v == 0.0f);
}
