// CUDA device memory behind hyscale::Storage: allocation, host<->device copies,
// zeroing, and cross-device copy_from with casts. Needs a GPU (label gpu).
#include <catch2/catch.hpp>

#include "gradcheck.h"

using namespace hyscale;

TEST_CASE("device round trip preserves every byte, at odd sizes", "[gpu]") {
  for (int64_t n : {1, 7, 1023, 1 << 20}) {
    Tensor h = hyscale::testing::randn({n}, static_cast<uint64_t>(n), 1.0, DType::f32);
    Tensor d = h.to(Device::cuda(0));
    REQUIRE(d.device() == Device::cuda(0));
    REQUIRE(d.to(Device::cpu()).to_vector<float>() == h.to_vector<float>());
  }
}

TEST_CASE("zeros on the device read back as zeros, copy_from casts across devices", "[gpu]") {
  Tensor d = Tensor::zeros({5, 3}, DType::f32, Device::cuda(0));
  for (float v : d.to(Device::cpu()).to_vector<float>()) REQUIRE(v == 0.0f);
  Tensor h = hyscale::testing::randn({5, 3}, 3, 1.0, DType::f64);
  d.copy_from(h);  // f64 host -> f32 device
  auto back = d.to(Device::cpu()).to_vector<float>();
  auto ref = h.to_vector<double>();
  for (size_t i = 0; i < back.size(); ++i) REQUIRE(back[i] == static_cast<float>(ref[i]));
}

TEST_CASE("device name is reported", "[gpu]") { REQUIRE(!cuda_device_name(0).empty()); }

#include <cstdlib>

#include "core/storage.h"

TEST_CASE("device caching allocator: a repeated step does not call cudaMalloc again", "[gpu]") {
  auto backend_mallocs = [] {
    const std::string s = cudart::memory_stats();  // "... reserved ... MiB (peak ...), N backend allocations, ..."
    const size_t e = s.find(" backend allocations");
    REQUIRE(e != std::string::npos);
    const size_t b = s.rfind(' ', e - 1);
    return std::atoll(s.substr(b + 1, e - b - 1).c_str());
  };
  { Tensor warm = Tensor::zeros({1 << 20}, DType::f32, Device::cuda(0)); }
  const long long before = backend_mallocs();
  for (int step = 0; step < 50; ++step) {
    Tensor a = Tensor::zeros({1 << 20}, DType::f32, Device::cuda(0));
    Tensor b = Tensor::zeros({777}, DType::f32, Device::cuda(0));
    REQUIRE(a.to(Device::cpu()).to_vector<float>()[12345] == 0.0f);
  }
  INFO(cudart::memory_stats());
  REQUIRE(backend_mallocs() - before <= 1);  // the 777-float block at most; the 4 MiB one is reused
}
