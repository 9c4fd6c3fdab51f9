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
#include <cstring>

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

// The device strided copy against the host one, bit for bit: whole tensors (one memcpy or one
// vectorised cast), row slices (2-D pitched copies), slices inside rows and size-1 dimensions
// (collapsed), strided destinations, every f32/bf16/f64 pairing.
TEST_CASE("device strided copies and casts match the host ones bit for bit", "[gpu]") {
  const Device cuda = Device::cuda(0);
  struct View {
    int64_t dim, a, b;
  };
  const std::vector<std::vector<View>> views = {
      {},                                 // whole tensor
      {{0, 1, 3}},                        // outer rows: contiguous
      {{1, 1, 3}},                        // rows of 198 elements: 2-D pitched
      {{2, 3, 7}},                        // inside rows: three dimensions, general kernel
      {{3, 0, 5}},                        // innermost: 2-D rows of 5 (pitched from 32 bytes, f64)
      {{1, 2, 3}, {3, 1, 9}},             // a size-1 dimension and an inner slice
      {{0, 2, 3}, {1, 1, 2}, {2, 4, 5}},  // leading size-1 dimensions
      {{1, 0, 2}, {2, 1, 8}, {3, 2, 3}},  // unit inner width: general kernel
  };
  const std::vector<DType> dts = {DType::f32, DType::bf16, DType::f64};
  uint64_t seed = 1;
  for (const auto& vs : views)
    for (DType sdt : dts)
      for (DType ddt : dts) {
        Tensor h = hyscale::testing::randn({3, 4, 9, 11}, seed++, 1.0, DType::f64).to(sdt);
        Tensor hv = h;
        for (const View& v : vs) hv = hv.slice(v.dim, v.a, v.b);
        Tensor dv = h.to(cuda);
        for (const View& v : vs) dv = dv.slice(v.dim, v.a, v.b);
        INFO("views " << vs.size() << " " << dtype_name(sdt) << " -> " << dtype_name(ddt) << " " << shape_str(hv.shape()));
        // into a fresh contiguous tensor
        Tensor want = hv.to(ddt).contiguous();
        Tensor got = dv.to(ddt).contiguous().to(Device::cpu());
        REQUIRE(got.dtype() == ddt);
        REQUIRE(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()) == 0);
        // into a strided destination: the same view of a poisoned tensor, everything else kept
        Tensor hd = Tensor::full({3, 4, 9, 11}, -7.0, ddt), dd = hd.to(cuda);
        Tensor hdv = hd, ddv = dd;
        for (const View& v : vs) {
          hdv = hdv.slice(v.dim, v.a, v.b);
          ddv = ddv.slice(v.dim, v.a, v.b);
        }
        hdv.copy_from(hv);
        ddv.copy_from(dv);
        Tensor back = dd.to(Device::cpu());
        REQUIRE(std::memcmp(back.raw_data(), hd.raw_data(), hd.nbytes()) == 0);
      }
  // large and misaligned: the vectorised cast's unaligned path
  Tensor big = hyscale::testing::randn({1 << 20}, 9, 1.0, DType::f32);
  Tensor dbig = big.to(cuda);
  for (int64_t off : {0, 1, 3}) {
    Tensor want = big.slice(0, off, (1 << 20) - 5).to(DType::bf16);
    Tensor got = dbig.slice(0, off, (1 << 20) - 5).to(DType::bf16).to(Device::cpu());
    REQUIRE(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()) == 0);
    Tensor back = got.to(cuda).to(DType::f32).to(Device::cpu());
    REQUIRE(std::memcmp(back.raw_data(), want.to(DType::f32).raw_data(), back.nbytes()) == 0);
  }
}
