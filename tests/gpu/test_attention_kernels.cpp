// CUDA flash attention (kernels/cuda_attention.h) against the CPU twin (kernels/attention.h) on
// random inputs: forward (out, lse), backward (dq, dk, dv), decode. T in {1, 7, 127, 129, 300}
// (one and several tiles, partial last tiles), windows {0, 1, 2, 128, 129, >= T} (deduplicated by
// effective window), GQA H/Hk in {1, 4}, D in {16, 64, 128} with Dv = D, and Dv = 2D (plus a few
// odd head dims). Outputs are poisoned with NaN before each run, so an unwritten element fails.
// The backward runs twice (20 times in the long-sequence case: T 2049 and 4097, GQA 8) and must
// be bit-identical every time (deterministic, no atomics); under set_deterministic(false) the
// tensor-core backward's dq comes from atomics (its own case below): dk, dv stay bit-identical, dq
// is checked against the CPU on every repeat.
// Tolerances (relative, max-norm): f32 1e-4 (fp32 math, only the summation order differs from the
// CPU); bf16 storage 2e-2 against the CPU's f32 math on the same bf16-rounded inputs (the kernel
// computes in fp32 and rounds each output once to bf16; the tensor-core forward also rounds P to
// bf16 for P V, as FlashAttention-2 does); lse is fp32 either way: 1e-4.
// dq and dk are measured against max(max|ref|, 0.1 max|ref dv|): with window 1 (or T = 1) every query
// sees only itself, so dS = P (dP - Dsum) is exactly 0 mathematically and both sides return rounding
// noise; the floor keeps that case meaningful (its noise is ~1e-6 of the gradient scale).
// The bf16 forward and backward also run through pointers shifted by one element (not 16-byte
// aligned), which take the SIMT fallback of the tensor-core paths (D = Dv in {64, 128}), so both
// paths are checked; the backward's tensor-core kernels also round P and dS to bf16 for the products.
// Needs a GPU (label gpu).
#ifdef HYSCALE_WITH_CUDA
#include <catch2/catch.hpp>
#include <cuda_runtime.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>
#include <tuple>
#include <vector>

#include "gpu/gpu_test_util.h"
#include "gradcheck.h"
#include "kernels/attention.h"
#include "kernels/cuda/attention_wgmma.h"
#include "kernels/cuda_attention.h"

using namespace hyscale;
namespace kg = hyscale::kernels::cuda;
namespace kc = hyscale::kernels::cpu;
using namespace hyscale::gputest;  // on_gpu, poisoned, back, rel, rounded, dptr (gpu_test_util.h)

namespace {
struct Case {
  int64_t B, T, H, Hk, D, Dv, window;
};

// Runs one case in one dtype: forward vs CPU, backward vs CPU (on the same out/lse), backward twice.
void check_case(const Case& c, DType dt, int repeats = 2) {
  const auto [B, T, H, Hk, D, Dv, window] = c;
  if (emulator_skips(T)) return;
  INFO("dtype " << dtype_name(dt) << " B " << B << " T " << T << " H " << H << " Hk " << Hk << " D " << D << " Dv "
                << Dv << " window " << window);
  const double tol = dt == DType::f32 ? 1e-4 : 2e-2;
  const double scale = 1.0 / std::sqrt(double(D));
  const uint64_t seed = 1000 + 97 * T + 13 * D + 7 * Dv + 3 * H + Hk + 31 * (window + 1);
  Tensor q = rounded(testing::randn({B, T, H, D}, seed + 1, 1.5, DType::f32), dt);
  Tensor k = rounded(testing::randn({B, T, Hk, D}, seed + 2, 1.5, DType::f32), dt);
  Tensor v = rounded(testing::randn({B, T, Hk, Dv}, seed + 3, 1.0, DType::f32), dt);
  Tensor dout = rounded(testing::randn({B, T, H, Dv}, seed + 4, 1.0, DType::f32), dt);

  std::vector<float> wout(B * T * H * Dv), wlse(B * H * T);
  kc::attention_fwd<float>(q.data<float>(), k.data<float>(), v.data<float>(), wout.data(), wlse.data(), B, T, H, Hk,
                           D, Dv, scale, window);
  // Backward inputs shared by both sides: out as stored in dt, lse from the CPU.
  Tensor out_in = rounded(Tensor::from_vector<float>(wout, {B, T, H, Dv}), dt);
  std::vector<float> wdq(B * T * H * D), wdk(B * T * Hk * D), wdv(B * T * Hk * Dv);
  kc::attention_bwd<float>(q.data<float>(), k.data<float>(), v.data<float>(), out_in.data<float>(),
                           dout.data<float>(), wlse.data(), wdq.data(), wdk.data(), wdv.data(), B, T, H, Hk, D, Dv,
                           scale, window);

  Tensor qd = on_gpu(q.to(dt)), kd = on_gpu(k.to(dt)), vd = on_gpu(v.to(dt)), dod = on_gpu(dout.to(dt));
  Tensor oind = on_gpu(out_in.to(dt)), lind = on_gpu(Tensor::from_vector<float>(wlse, {B, H, T}));
  Tensor out = poisoned({B, T, H, Dv}, dt), lse = poisoned({B, H, T}, DType::f32);
  auto fwd = [&] {
    if (dt == DType::f32)
      kg::attention_fwd<float>(dptr<float>(qd), dptr<float>(kd), dptr<float>(vd), dptr<float>(out), dptr<float>(lse),
                               B, T, H, Hk, D, Dv, scale, window);
    else
      kg::attention_fwd<kg::bf16>(dptr<kg::bf16>(qd), dptr<kg::bf16>(kd), dptr<kg::bf16>(vd), dptr<kg::bf16>(out),
                                  dptr<float>(lse), B, T, H, Hk, D, Dv, scale, window);
  };
  auto bwd = [&](Tensor& dq, Tensor& dk, Tensor& dv) {
    if (dt == DType::f32)
      kg::attention_bwd<float>(dptr<float>(qd), dptr<float>(kd), dptr<float>(vd), dptr<float>(oind),
                               dptr<float>(dod), dptr<float>(lind), dptr<float>(dq), dptr<float>(dk),
                               dptr<float>(dv), B, T, H, Hk, D, Dv, scale, window);
    else
      kg::attention_bwd<kg::bf16>(dptr<kg::bf16>(qd), dptr<kg::bf16>(kd), dptr<kg::bf16>(vd), dptr<kg::bf16>(oind),
                                  dptr<kg::bf16>(dod), dptr<float>(lind), dptr<kg::bf16>(dq), dptr<kg::bf16>(dk),
                                  dptr<kg::bf16>(dv), B, T, H, Hk, D, Dv, scale, window);
  };
  fwd();
  CHECK(rel(back(out), wout) < tol);
  CHECK(rel(back(lse), wlse) < 1e-4);
  if (dt == DType::bf16) {  // misaligned pointers: the SIMT forward (fallback of the tensor-core path)
    auto shifted = [&](const Tensor& host) {
      std::vector<float> x(1, 0.0f);
      const auto d = host.to_vector<float>();
      x.insert(x.end(), d.begin(), d.end());
      return on_gpu(Tensor::from_vector<float>(x, {int64_t(x.size())}).to(dt));
    };
    Tensor qm = shifted(q), km = shifted(k), vm = shifted(v);
    Tensor om = poisoned({B * T * H * Dv + 1}, dt), lm = poisoned({B, H, T}, DType::f32);
    kg::attention_fwd<kg::bf16>(dptr<kg::bf16>(qm) + 1, dptr<kg::bf16>(km) + 1, dptr<kg::bf16>(vm) + 1,
                                dptr<kg::bf16>(om) + 1, dptr<float>(lm), B, T, H, Hk, D, Dv, scale, window);
    auto o = back(om);
    o.erase(o.begin());
    CHECK(rel(o, wout) < tol);
    CHECK(rel(back(lm), wlse) < 1e-4);
  }

  Tensor dq1 = poisoned({B, T, H, D}, dt), dk1 = poisoned({B, T, Hk, D}, dt), dv1 = poisoned({B, T, Hk, Dv}, dt);
  bwd(dq1, dk1, dv1);
  const auto gq = back(dq1), gk = back(dk1), gv = back(dv1);
  double floor = 0;
  for (float x : wdv) floor = std::max(floor, 0.1 * std::fabs(double(x)));
  CHECK(rel(gq, wdq, floor) < tol);
  CHECK(rel(gk, wdk, floor) < tol);
  CHECK(rel(gv, wdv) < tol);
  for (int r = 1; r < repeats; ++r) {  // bitwise run to run, into freshly poisoned outputs
    Tensor dq2 = poisoned({B, T, H, D}, dt), dk2 = poisoned({B, T, Hk, D}, dt), dv2 = poisoned({B, T, Hk, Dv}, dt);
    bwd(dq2, dk2, dv2);
    INFO("repeat " << r);
    if (kg::deterministic()) CHECK(gq == back(dq2));
    else CHECK(rel(back(dq2), wdq, floor) < tol);  // atomic dq: the order of the fp32 adds varies
    CHECK(gk == back(dk2));
    CHECK(gv == back(dv2));
  }
  if (dt == DType::bf16) {  // misaligned pointers: the SIMT backward (fallback of the tensor-core path)
    auto shifted = [&](const Tensor& host) {
      std::vector<float> x(1, 0.0f);
      const auto d = host.to_vector<float>();
      x.insert(x.end(), d.begin(), d.end());
      return on_gpu(Tensor::from_vector<float>(x, {int64_t(x.size())}).to(dt));
    };
    auto unshift = [](std::vector<float> x) {
      x.erase(x.begin());
      return x;
    };
    Tensor qm = shifted(q), km = shifted(k), vm = shifted(v), om = shifted(out_in), dom = shifted(dout);
    Tensor dqm = poisoned({B * T * H * D + 1}, dt), dkm = poisoned({B * T * Hk * D + 1}, dt),
           dvm = poisoned({B * T * Hk * Dv + 1}, dt);
    kg::attention_bwd<kg::bf16>(dptr<kg::bf16>(qm) + 1, dptr<kg::bf16>(km) + 1, dptr<kg::bf16>(vm) + 1,
                                dptr<kg::bf16>(om) + 1, dptr<kg::bf16>(dom) + 1, dptr<float>(lind),
                                dptr<kg::bf16>(dqm) + 1, dptr<kg::bf16>(dkm) + 1, dptr<kg::bf16>(dvm) + 1, B, T, H,
                                Hk, D, Dv, scale, window);
    CHECK(rel(unshift(back(dqm)), wdq, floor) < tol);
    CHECK(rel(unshift(back(dkm)), wdk, floor) < tol);
    CHECK(rel(unshift(back(dvm)), wdv) < tol);
  }
}
}  // namespace

TEST_CASE("CUDA flash attention forward/backward match the CPU twin (windows, GQA, head dims)",
          "[gpu][kernels][attention]") {
  std::vector<Case> cases;
  for (int64_t D : {16, 64, 128})
    for (auto [H, Hk] : std::vector<std::pair<int64_t, int64_t>>{{4, 4}, {4, 1}})
      for (int64_t T : {1, 7, 127, 129, 300}) {
        std::set<int64_t> seen;  // effective windows already covered at this T
        for (int64_t w : {int64_t(0), int64_t(1), int64_t(2), int64_t(128), int64_t(129), T + 5}) {
          const int64_t eff = (w <= 0 || w >= T) ? T : w;
          if (!seen.insert(eff).second) continue;
          cases.push_back({2, T, H, Hk, D, D, w});
        }
      }
  // Dv = 2D (differential attention's value width) and head dims that are not powers of two.
  for (auto [D, Dv] : std::vector<std::pair<int64_t, int64_t>>{{16, 32}, {64, 128}, {128, 256}})
    for (int64_t w : {0, 2, 128}) {
      cases.push_back({2, 300, 4, 1, D, Dv, w});
      cases.push_back({1, 129, 8, 2, D, Dv, w});
    }
  for (auto [D, Dv] : std::vector<std::pair<int64_t, int64_t>>{{8, 8}, {8, 16}, {20, 36}, {96, 40}, {100, 200}})
    cases.push_back({2, 129, 4, 2, D, Dv, 65});
  for (DType dt : {DType::f32, DType::bf16})
    for (const Case& c : cases) check_case(c, dt);
}

TEST_CASE("CUDA flash attention with 16 query rows per warp (the other forward and dq tiling) matches the CPU twin",
          "[gpu][kernels][attention]") {
  // The default tensor-core forward and dq kernels give each warp 32 query rows;
  // HYSCALE_ATTN_ROWS_PER_WARP=16 selects 16 (bench kernels times both). Both must be right.
  struct Env {
    Env() { setenv("HYSCALE_ATTN_ROWS_PER_WARP", "16", 1); }
    ~Env() { unsetenv("HYSCALE_ATTN_ROWS_PER_WARP"); }
  } env;
  for (int64_t D : {64, 128})
    for (int64_t T : {7, 129, 300})
      for (int64_t w : {int64_t(0), int64_t(2), int64_t(128)}) check_case({2, T, 4, 1, D, D, w}, DType::bf16);
  check_case({1, 2049, 8, 1, 128, 128, 0}, DType::bf16);
  setenv("HYSCALE_ATTN_ROWS_PER_WARP", "24", 1);
  Tensor x = on_gpu(Tensor::zeros({1, 64, 4, 64}, DType::bf16));
  Tensor lse = on_gpu(Tensor::zeros({1, 4, 64}, DType::f32));
  CHECK_THROWS_WITH(kg::attention_fwd<kg::bf16>(dptr<kg::bf16>(x), dptr<kg::bf16>(x), dptr<kg::bf16>(x),
                                                dptr<kg::bf16>(x), dptr<float>(lse), 1, 64, 4, 4, 64, 64, 0.125, 0),
                    Catch::Contains("HYSCALE_ATTN_ROWS_PER_WARP=24"));
}

TEST_CASE("CUDA flash attention on warpgroup MMA (HYSCALE_ATTN_WGMMA=1, sm_90a) matches the CPU twin",
          "[gpu][kernels][attention][wgmma]") {
  // The sm_90a kernels (attention_wgmma.cu: the forward and the deterministic backward's dk/dv and
  // dq kernels) run on compute capability 9.0 only; elsewhere, or in a build without sm_90a, this
  // case says so and checks nothing. Backwards repeated: bit-identical.
  int dev = 0, major = 0, minor = 0;
  REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
  REQUIRE(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess);
  REQUIRE(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess);
  if (major * 10 + minor != 90 || !kg::detail::wgmma_built()) {
    WARN("wgmma attention not checked: needs compute capability 9.0 (this device: " << major << "." << minor
                                                                                  << ") and a build for sm_90a");
    return;
  }
  struct Env {
    Env() { setenv("HYSCALE_ATTN_WGMMA", "1", 1); }
    ~Env() { unsetenv("HYSCALE_ATTN_WGMMA"); }
  } env;
  for (int64_t D : {64, 128})
    for (auto [H, Hk] : std::vector<std::pair<int64_t, int64_t>>{{4, 4}, {4, 1}})
      for (int64_t T : {1, 7, 127, 129, 300})
        for (int64_t w : {int64_t(0), int64_t(1), int64_t(2), int64_t(128), int64_t(129)})
          check_case({2, T, H, Hk, D, D, w}, DType::bf16);
  check_case({1, 2049, 8, 1, 128, 128, 0}, DType::bf16, 20);
  check_case({1, 4097, 8, 1, 128, 128, 2048}, DType::bf16);
  check_case({1, 4097, 8, 1, 64, 64, 0}, DType::bf16, 20);
}

TEST_CASE("CUDA flash attention at 2049 and 4097 tokens with GQA 8: CPU twin and 20 identical backwards",
          "[gpu][kernels][attention]") {
  // Lengths one past the tile multiples, the windows {1, 2, 128, 129, >= T}, eight query heads per
  // KV head; bf16 (the tensor-core paths) at head dim 128 and 64, and f32 once.
  for (int64_t w : {int64_t(1), int64_t(2), int64_t(128), int64_t(129), int64_t(0)})
    check_case({1, 2049, 8, 1, 128, 128, w}, DType::bf16, w == 0 || w == 129 ? 20 : 2);
  check_case({1, 4097, 8, 1, 64, 64, 0}, DType::bf16, 20);
  check_case({1, 4097, 8, 1, 64, 64, 2048}, DType::bf16);
  check_case({1, 2049, 8, 1, 64, 64, 128}, DType::f32, 20);
}

TEST_CASE("CUDA flash attention backward with atomic dq (set_deterministic(false)) matches the CPU twin",
          "[gpu][kernels][attention]") {
  struct Det {  // restored even when a check throws
    bool old = kg::deterministic();
    Det() { kg::set_deterministic(false); }
    ~Det() { kg::set_deterministic(old); }
  } det;
  for (int64_t D : {64, 128})
    for (auto [H, Hk] : std::vector<std::pair<int64_t, int64_t>>{{4, 4}, {4, 1}})
      for (int64_t T : {1, 7, 129, 300})
        for (int64_t w : {int64_t(0), int64_t(1), int64_t(2), int64_t(128)}) check_case({2, T, H, Hk, D, D, w}, DType::bf16);
  for (int64_t w : {int64_t(0), int64_t(129)}) check_case({1, 2049, 8, 1, 128, 128, w}, DType::bf16, 5);
  check_case({1, 4097, 8, 1, 64, 64, 0}, DType::bf16, 5);
  check_case({2, 129, 4, 2, 96, 96, 65}, DType::bf16);  // the SIMT path: deterministic regardless
  check_case({2, 129, 4, 2, 64, 64, 65}, DType::f32);
}

TEST_CASE("CUDA flash attention rejects unsupported head dims with a message naming them", "[gpu][kernels][attention]") {
  Tensor x = poisoned({64 * 1024}, DType::f32);
  float* p = dptr<float>(x);
  CHECK_THROWS_WITH(kg::attention_fwd<float>(p, p, p, p, p, 1, 4, 1, 1, 129, 64, 1.0, 0),
                    Catch::Contains("D = 129"));
  CHECK_THROWS_WITH(kg::attention_fwd<float>(p, p, p, p, p, 1, 4, 1, 1, 64, 257, 1.0, 0),
                    Catch::Contains("Dv = 257"));
  CHECK_THROWS_WITH(kg::attention_bwd<float>(p, p, p, p, p, p, p, p, p, 1, 4, 3, 2, 64, 64, 1.0, 0),
                    Catch::Contains("Hk = 2"));
}

TEST_CASE("CUDA attention decode step matches the CPU twin (dense and strided caches, split caches)",
          "[gpu][kernels][attention]") {
  // Small caches (one split), then long ones at batch 1, where the automatic split count spreads
  // the cache over the SMs (flash-decoding), and forced split counts (HYSCALE_DECODE_SPLITS).
  struct Shape {
    int64_t cap;
    std::vector<int64_t> nv;
    const char* splits;
  };
  for (const Shape& sh : std::vector<Shape>{{70, {70, 1, 33}, nullptr}, {4097, {4097}, nullptr},
                                            {9000, {8191}, nullptr}, {300, {300, 1, 129, 37}, "7"}})
  for (DType dt : {DType::f32, DType::bf16}) {
    const double tol = dt == DType::f32 ? 1e-4 : 2e-2;
    struct Env {
      const char* v;
      explicit Env(const char* x) : v(x) {
        if (v) setenv("HYSCALE_DECODE_SPLITS", v, 1);
      }
      ~Env() {
        if (v) unsetenv("HYSCALE_DECODE_SPLITS");
      }
    } env(sh.splits);
    for (auto [H, Hk, D, Dv] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
             {8, 2, 64, 64}, {8, 8, 16, 32}, {20, 2, 128, 256}, {4, 1, 40, 24}}) {
      const int64_t cap = sh.cap;
      if (emulator_skips(cap)) continue;
      const std::vector<int64_t>& nv = sh.nv;
      const int64_t B = int64_t(nv.size());
      INFO("cap " << cap << " rows " << B << " splits " << (sh.splits ? sh.splits : "auto"));
      const double scale = 1.0 / std::sqrt(double(D));
      for (bool strided : {false, true}) {
        INFO("decode " << dtype_name(dt) << " H " << H << " Hk " << Hk << " D " << D << " Dv " << Dv << " strided "
                       << strided);
        // Strided: each KV head stores [first | second] halves of width D (Dv); read the second half.
        const int64_t kw = strided ? 2 * D : D, vw = strided ? 2 * Dv : Dv;
        Tensor q = rounded(testing::randn({B, H, D}, 300 + D + H, 1.5, DType::f32), dt);
        Tensor kcache = rounded(testing::randn({B, cap, Hk, kw}, 301 + D, 1.5, DType::f32), dt);
        Tensor vcache = rounded(testing::randn({B, cap, Hk, vw}, 302 + Dv, 1.0, DType::f32), dt);
        const int64_t k_pos = strided ? Hk * kw : 0, k_head = strided ? kw : 0;
        const int64_t v_pos = strided ? Hk * vw : 0, v_head = strided ? vw : 0;
        const int64_t koff = strided ? D : 0, voff = strided ? Dv : 0;
        std::vector<float> want(B * H * Dv);
        kc::attention_decode<float>(q.data<float>(), kcache.data<float>() + koff, vcache.data<float>() + voff,
                                    want.data(), B, H, Hk, D, Dv, cap, nv.data(), scale, k_pos, k_head, v_pos, v_head);
        Tensor qd = on_gpu(q.to(dt)), kd = on_gpu(kcache.to(dt)), vd = on_gpu(vcache.to(dt));
        Tensor nvd = on_gpu(Tensor::from_vector<int64_t>(nv, {B}));
        Tensor out = poisoned({B, H, Dv}, dt);
        if (dt == DType::f32)
          kg::attention_decode<float>(dptr<float>(qd), dptr<float>(kd) + koff, dptr<float>(vd) + voff,
                                      dptr<float>(out), B, H, Hk, D, Dv, cap, dptr<int64_t>(nvd), scale, k_pos, k_head,
                                      v_pos, v_head);
        else
          kg::attention_decode<kg::bf16>(dptr<kg::bf16>(qd), dptr<kg::bf16>(kd) + koff, dptr<kg::bf16>(vd) + voff,
                                         dptr<kg::bf16>(out), B, H, Hk, D, Dv, cap, dptr<int64_t>(nvd), scale, k_pos,
                                         k_head, v_pos, v_head);
        CHECK(rel(back(out), want) < tol);
      }
    }
  }
}
#endif
