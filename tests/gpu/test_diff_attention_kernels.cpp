// Fused CUDA differential attention (kernels/cuda_diff_attention.h) against the CPU composition it
// replaces: kernels/attention.h's attention_fwd / attention_bwd run on each half (q1 k1, q2 k2 with
// the shared value v, D = hd, Dv = 2 hd) plus the combine out = a1 - lambda a2 (backward: do1 = g,
// do2 = -lambda g, dv = dv1 + dv2, dlambda = -sum(g o2)), on the same inputs. T in {1, 7, 127, 129,
// 300}, windows {0, 1, 2, 128, >= T} (deduplicated by effective window), GQA Hp/Hkp in {1, 2}, hd in
// {8, 32, 64, 128} (plus 20, 100; GQA 8 and 2049 / 4097 tokens at hd 64 and 128). bf16 at hd 64
// and 128 runs twice: the tensor-core kernels (diff_attention_mma.cu; on an A100 the backward's
// dk/dv kernel at hd 128 stays SIMT) and, under HYSCALE_DIFF_ATTN_MMA=0, the SIMT kernels. Outputs
// are poisoned with NaN first; the backward runs twice (20 times from 2049 tokens) and must be
// bit-identical (dlambda included). Tolerances as test_attention_kernels.cpp: relative max-norm
// f32 1e-4, bf16 2e-2 (lse 1e-4); dq, dk against max(max|ref|, 0.1 max|ref dv|).
// Needs a GPU (label gpu).
#ifdef HYSCALE_WITH_CUDA
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "core/ops.h"
#include "core/scoped_env.h"
#include "gpu/gpu_test_util.h"
#include "gradcheck.h"
#include "kernels/attention.h"
#include "kernels/cuda_diff_attention.h"

using namespace hyscale;
namespace kg = hyscale::kernels::cuda;
namespace kc = hyscale::kernels::cpu;
using namespace hyscale::gputest;  // on_gpu, poisoned, back, rel, rounded, dptr (gpu_test_util.h)

namespace {
std::vector<float> rounded(std::vector<float> x, DType dt) {
  return Tensor::from_vector<float>(x, {int64_t(x.size())}).to(dt).to(DType::f32).to_vector<float>();
}
// rows of 2 hd -> half h (rows of hd), and back
std::vector<float> half(const std::vector<float>& x, int64_t hd, int h) {
  std::vector<float> r;
  for (size_t i = 0; i < x.size() / size_t(2 * hd); ++i)
    for (int64_t d = 0; d < hd; ++d) r.push_back(x[i * 2 * hd + h * hd + d]);
  return r;
}
std::vector<float> join(const std::vector<float>& a, const std::vector<float>& b, int64_t hd) {
  std::vector<float> r;
  for (size_t i = 0; i < a.size() / size_t(hd); ++i) {
    for (int64_t d = 0; d < hd; ++d) r.push_back(a[i * hd + d]);
    for (int64_t d = 0; d < hd; ++d) r.push_back(b[i * hd + d]);
  }
  return r;
}

struct Case {
  int64_t B, T, Hp, Hkp, hd, window;
};

void check_case(const Case& c, DType dt) {
  const auto [B, T, Hp, Hkp, hd, window] = c;
  if (emulator_skips(T)) return;
  INFO("dtype " << dtype_name(dt) << " B " << B << " T " << T << " Hp " << Hp << " Hkp " << Hkp << " hd " << hd
                << " window " << window);
  const double tol = dt == DType::f32 ? 1e-4 : 2e-2;
  const double scale = 1.0 / std::sqrt(double(hd));
  const int64_t Dv = 2 * hd;
  const uint64_t seed = 2000 + 97 * T + 13 * hd + 3 * Hp + Hkp + 31 * (window + 1);
  auto q = rounded(testing::randn({B, T, Hp, Dv}, seed + 1, 1.5, DType::f32).to_vector<float>(), dt);
  auto k = rounded(testing::randn({B, T, Hkp, Dv}, seed + 2, 1.5, DType::f32).to_vector<float>(), dt);
  auto v = rounded(testing::randn({B, T, Hkp, Dv}, seed + 3, 1.0, DType::f32).to_vector<float>(), dt);
  auto g = rounded(testing::randn({B, T, Hp, Dv}, seed + 4, 1.0, DType::f32).to_vector<float>(), dt);
  const float lam = 0.37f;

  // CPU composition: two attentions on the halves, then the combine.
  auto q1 = half(q, hd, 0), q2 = half(q, hd, 1), k1 = half(k, hd, 0), k2 = half(k, hd, 1);
  std::vector<float> a1(B * T * Hp * Dv), a2(B * T * Hp * Dv), wl1(B * Hp * T), wl2(B * Hp * T), wout(a1.size());
  kc::attention_fwd<float>(q1.data(), k1.data(), v.data(), a1.data(), wl1.data(), B, T, Hp, Hkp, hd, Dv, scale, window);
  kc::attention_fwd<float>(q2.data(), k2.data(), v.data(), a2.data(), wl2.data(), B, T, Hp, Hkp, hd, Dv, scale, window);
  for (size_t i = 0; i < wout.size(); ++i) wout[i] = a1[i] - lam * a2[i];
  // Backward inputs shared by both sides: o1, o2 as stored in dt, lse from the CPU.
  const auto a1r = rounded(a1, dt), a2r = rounded(a2, dt);
  std::vector<float> g2(g.size());
  for (size_t i = 0; i < g.size(); ++i) g2[i] = -lam * g[i];
  std::vector<float> dq1(B * T * Hp * hd), dq2(dq1.size()), dk1(B * T * Hkp * hd), dk2(dk1.size()),
      dva(B * T * Hkp * Dv), dvb(dva.size());
  kc::attention_bwd<float>(q1.data(), k1.data(), v.data(), a1r.data(), g.data(), wl1.data(), dq1.data(), dk1.data(),
                           dva.data(), B, T, Hp, Hkp, hd, Dv, scale, window);
  kc::attention_bwd<float>(q2.data(), k2.data(), v.data(), a2r.data(), g2.data(), wl2.data(), dq2.data(), dk2.data(),
                           dvb.data(), B, T, Hp, Hkp, hd, Dv, scale, window);
  const auto wdq = join(dq1, dq2, hd), wdk = join(dk1, dk2, hd);
  std::vector<float> wdv(dva.size());
  for (size_t i = 0; i < wdv.size(); ++i) wdv[i] = dva[i] + dvb[i];
  double sdl = 0;
  for (size_t i = 0; i < g.size(); ++i) sdl += double(g[i]) * a2r[i];
  const double wdl = -sdl;

  // bf16 at hd 64 / 128: the tensor-core kernels, then the SIMT ones (HYSCALE_DIFF_ATTN_MMA=0).
  const bool tc = dt == DType::bf16 && (hd == 64 || hd == 128);
  for (const char* mma : {"1", "0"}) {
    if (!tc && std::string(mma) == "0") break;  // the SIMT kernels anyway
    setenv("HYSCALE_DIFF_ATTN_MMA", mma, 1);
    const kg::DiffAttnKernels kern = kg::diff_attention_kernels(hd);
    INFO("HYSCALE_DIFF_ATTN_MMA=" << mma << ": tensor cores (bf16) in the forward " << kern.fwd << ", dq "
                                  << kern.bwd_dq << ", dk/dv " << kern.bwd_dkdv);
    auto dev = [&](const std::vector<float>& x, const Shape& s) {
      return on_gpu(Tensor::from_vector<float>(x, s).to(dt));
    };
    Tensor qd = dev(q, {B, T, Hp, Dv}), kd = dev(k, {B, T, Hkp, Dv}), vd = dev(v, {B, T, Hkp, Dv}),
           gd = dev(g, {B, T, Hp, Dv}), o1in = dev(a1r, {B, T, Hp, Dv}), o2in = dev(a2r, {B, T, Hp, Dv});
    Tensor lamd = on_gpu(Tensor::from_vector<float>({lam}, {1}));
    Tensor l1in = on_gpu(Tensor::from_vector<float>(wl1, {B, Hp, T}));
    Tensor l2in = on_gpu(Tensor::from_vector<float>(wl2, {B, Hp, T}));
    Tensor out = poisoned({B, T, Hp, Dv}, dt), o1 = poisoned({B, T, Hp, Dv}, dt), o2 = poisoned({B, T, Hp, Dv}, dt);
    Tensor l1 = poisoned({B, Hp, T}, DType::f32), l2 = poisoned({B, Hp, T}, DType::f32);
    if (dt == DType::f32)
      kg::diff_attention_fwd<float>(dptr<float>(qd), dptr<float>(kd), dptr<float>(vd), dptr<float>(lamd),
                                    dptr<float>(out), dptr<float>(o1), dptr<float>(o2), dptr<float>(l1),
                                    dptr<float>(l2), B, T, Hp, Hkp, hd, scale, window);
    else
      kg::diff_attention_fwd<kg::bf16>(dptr<kg::bf16>(qd), dptr<kg::bf16>(kd), dptr<kg::bf16>(vd), dptr<float>(lamd),
                                       dptr<kg::bf16>(out), dptr<kg::bf16>(o1), dptr<kg::bf16>(o2), dptr<float>(l1),
                                       dptr<float>(l2), B, T, Hp, Hkp, hd, scale, window);
    CHECK(rel(back(out), wout) < tol);
    CHECK(rel(back(o1), a1) < tol);
    CHECK(rel(back(o2), a2) < tol);
    CHECK(rel(back(l1), wl1) < 1e-4);
    CHECK(rel(back(l2), wl2) < 1e-4);

    auto bwd = [&](Tensor& dq, Tensor& dk, Tensor& dv, Tensor& dl) {
      if (dt == DType::f32)
        kg::diff_attention_bwd<float>(dptr<float>(qd), dptr<float>(kd), dptr<float>(vd), dptr<float>(lamd),
                                      dptr<float>(o1in), dptr<float>(o2in), dptr<float>(l1in), dptr<float>(l2in),
                                      dptr<float>(gd), dptr<float>(dq), dptr<float>(dk), dptr<float>(dv),
                                      dptr<float>(dl), B, T, Hp, Hkp, hd, scale, window);
      else
        kg::diff_attention_bwd<kg::bf16>(dptr<kg::bf16>(qd), dptr<kg::bf16>(kd), dptr<kg::bf16>(vd), dptr<float>(lamd),
                                         dptr<kg::bf16>(o1in), dptr<kg::bf16>(o2in), dptr<float>(l1in),
                                         dptr<float>(l2in), dptr<kg::bf16>(gd), dptr<kg::bf16>(dq), dptr<kg::bf16>(dk),
                                         dptr<kg::bf16>(dv), dptr<float>(dl), B, T, Hp, Hkp, hd, scale, window);
    };
    Tensor dqa = poisoned({B, T, Hp, Dv}, dt), dka = poisoned({B, T, Hkp, Dv}, dt), dvx = poisoned({B, T, Hkp, Dv}, dt);
    Tensor dla = poisoned({1}, DType::f32);
    bwd(dqa, dka, dvx, dla);
    const auto gq = back(dqa), gk = back(dka), gv = back(dvx);
    const float dl = back(dla)[0];
    double floor = 0;
    for (float x : wdv) floor = std::max(floor, 0.1 * std::fabs(double(x)));
    CHECK(rel(gq, wdq, floor) < tol);
    CHECK(rel(gk, wdk, floor) < tol);
    CHECK(rel(gv, wdv) < tol);
    CHECK(std::fabs(dl - wdl) / std::max(1.0, std::fabs(wdl)) < 1e-4);
    // Bitwise run to run, into freshly poisoned outputs: 20 backwards at 2049 tokens and more (2 on
    // the emulator, where a 2049-token backward takes minutes), 2 otherwise.
#ifdef HYSCALE_CUDA_EMU
    const int repeats = 2;
#else
    const int repeats = T >= 2049 ? 20 : 2;
#endif
    for (int r = 1; r < repeats; ++r) {
      INFO("backward repeat " << r);
      Tensor dqb = poisoned({B, T, Hp, Dv}, dt), dkb = poisoned({B, T, Hkp, Dv}, dt),
             dvy = poisoned({B, T, Hkp, Dv}, dt), dlb = poisoned({1}, DType::f32);
      bwd(dqb, dkb, dvy, dlb);
      CHECK(gq == back(dqb));
      CHECK(gk == back(dkb));
      CHECK(gv == back(dvy));
      const float dl2 = back(dlb)[0];
      CHECK(std::memcmp(&dl, &dl2, sizeof dl) == 0);
    }
  }
}
}  // namespace

TEST_CASE("CUDA fused differential attention matches two CPU attentions plus the combine",
          "[gpu][kernels][attention][diff_attn]") {
  {  // which kernels run: tensor cores on an sm_80+ device (all three on sm_90's 227 KB), SIMT under
     // HYSCALE_DIFF_ATTN_MMA=0 (so the case loop below does test both where it says so)
    ScopedEnv restore("HYSCALE_DIFF_ATTN_MMA");
    int dev = 0, major = 0, minor = 0;
    REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
    REQUIRE(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess);
    REQUIRE(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess);
    for (int64_t hd : {64, 128}) {
      unsetenv("HYSCALE_DIFF_ATTN_MMA");
      const kg::DiffAttnKernels on = kg::diff_attention_kernels(hd);
      INFO("compute capability " << major << "." << minor << ", hd " << hd << ": forward " << on.fwd << ", dq "
                                 << on.bwd_dq << ", dk/dv " << on.bwd_dkdv);
      CHECK(on.fwd == (major >= 8));
      if (major == 9) CHECK((on.bwd_dq && on.bwd_dkdv));
      CHECK(!kg::diff_attention_kernels(32).fwd);
      setenv("HYSCALE_DIFF_ATTN_MMA", "0", 1);
      const kg::DiffAttnKernels off = kg::diff_attention_kernels(hd);
      CHECK(!(off.fwd || off.bwd_dq || off.bwd_dkdv));
    }
  }
  std::vector<Case> cases;
  for (int64_t hd : {8, 32, 64, 128})
    for (auto [Hp, Hkp] : std::vector<std::pair<int64_t, int64_t>>{{2, 2}, {4, 2}})
      for (int64_t T : {1, 7, 127, 129, 300}) {
        std::set<int64_t> seen;
        for (int64_t w : {int64_t(0), int64_t(1), int64_t(2), int64_t(128), T + 5}) {
          const int64_t eff = (w <= 0 || w >= T) ? T : w;
          if (!seen.insert(eff).second) continue;
          cases.push_back({2, T, Hp, Hkp, hd, w});
        }
      }
  cases.push_back({2, 129, 4, 2, 128, 65});
  cases.push_back({1, 130, 2, 1, 100, 0});
  cases.push_back({2, 70, 4, 1, 20, 2});
  cases.push_back({1, 257, 8, 1, 64, 0});  // GQA 8
  cases.push_back({1, 200, 8, 1, 128, 129});
  cases.push_back({1, 2049, 2, 1, 128, 0});  // long (skipped on the emulator under ctest)
  cases.push_back({1, 4097, 2, 1, 64, 129});
  cases.push_back({1, 4097, 2, 2, 128, 2048});
  ScopedEnv restore("HYSCALE_DIFF_ATTN_MMA");  // check_case sets it
  for (DType dt : {DType::f32, DType::bf16})
    for (const Case& c : cases)
      if (dt == DType::bf16 || c.T <= 300) check_case(c, dt);  // the long cases in bf16 only
}

TEST_CASE("CUDA fused differential attention: empty batch, unsupported sizes", "[gpu][kernels][attention][diff_attn]") {
  Tensor x = poisoned({4096}, DType::f32), dl = poisoned({1}, DType::f32);
  float* p = dptr<float>(x);
  kg::diff_attention_bwd<float>(p, p, p, p, p, p, p, p, p, p, p, p, dptr<float>(dl), 0, 4, 2, 1, 8, 1.0, 0);
  CHECK(back(dl)[0] == 0.0f);  // dlambda is written even when there is nothing to sum
  CHECK_THROWS_WITH(kg::diff_attention_fwd<float>(p, p, p, p, p, p, p, p, p, 1, 4, 1, 1, 129, 1.0, 0),
                    Catch::Contains("hd = 129"));
  CHECK_THROWS_WITH(kg::diff_attention_bwd<float>(p, p, p, p, p, p, p, p, p, p, p, p, p, 1, 4, 3, 2, 8, 1.0, 0),
                    Catch::Contains("Hkp = 2"));
}

// ops::diff_attention on the GPU in its three modes (HYSCALE_DIFF_ATTN): the fused kernels (on
// tensor cores here: bf16, hd 64 / 128), the split into four tensor-core attentions, and auto
// (= split there).
// Values and every gradient (q, k, v and the four lambda vectors) against the f32 CPU model on
// the same bf16-rounded inputs, tolerance as above (2e-2 relative max-norm; dlambda vectors 5e-2:
// one sum of cancelling terms, see test_model_gpu). auto must be bit-identical to split.
TEST_CASE("differential attention op on the GPU: fused, split into tensor-core attentions, auto",
          "[gpu][attention][diff_attn]") {
  ScopedEnv restore("HYSCALE_DIFF_ATTN");
  struct OpCase {
    int64_t B, T, Hp, Hkp, hd, window;
  };
  const std::vector<OpCase> cases = {{2, 129, 4, 2, 64, 0}, {1, 300, 2, 2, 128, 128}, {2, 7, 2, 1, 64, 2},
                                     {1, 1, 2, 2, 128, 0}, {1, 257, 8, 2, 64, 65}};
  for (const OpCase& c : cases) {
    INFO("B " << c.B << " T " << c.T << " Hp " << c.Hp << " Hkp " << c.Hkp << " hd " << c.hd << " window " << c.window);
    const int64_t Dv = 2 * c.hd;
    const double scale = 1.0 / std::sqrt(double(c.hd));
    const uint64_t sd = 5000 + c.T + 7 * c.hd + c.window;
    std::vector<Tensor> base = {
        testing::randn({c.B, c.T, c.Hp, Dv}, sd + 1, 1.5, DType::f32).to(DType::bf16).to(DType::f32),
        testing::randn({c.B, c.T, c.Hkp, Dv}, sd + 2, 1.5, DType::f32).to(DType::bf16).to(DType::f32),
        testing::randn({c.B, c.T, c.Hkp, Dv}, sd + 3, 1.0, DType::f32).to(DType::bf16).to(DType::f32),
        testing::randn({c.hd}, sd + 4, 0.1, DType::f32), testing::randn({c.hd}, sd + 5, 0.1, DType::f32),
        testing::randn({c.hd}, sd + 6, 0.1, DType::f32), testing::randn({c.hd}, sd + 7, 0.1, DType::f32)};
    const Tensor w = testing::randn({c.B, c.T, c.Hp, Dv}, sd + 8, 1.0, DType::f32).to(DType::bf16).to(DType::f32);
    // Runs the op on copies of base on `dev` (bf16 activations on the GPU, f32 lambda vectors):
    // returns the output and the gradients, all as f32 host vectors.
    auto run = [&](bool gpu) {
      std::vector<Tensor> in;
      for (size_t i = 0; i < base.size(); ++i) {
        Tensor t = base[i].clone().detach();
        if (gpu) t = on_gpu(i < 3 ? t.to(DType::bf16) : t);
        t.requires_grad_();
        in.push_back(t);
      }
      Tensor lam = ops::diff_lambda(in[3], in[4], in[5], in[6], 0.5);
      Tensor y = ops::diff_attention(in[0], in[1], in[2], lam, scale, c.window);
      y.backward(gpu ? on_gpu(w.to(DType::bf16)) : w);
      std::vector<std::vector<float>> r = {back(y)};
      for (auto& t : in) r.push_back(back(t.grad()));
      return r;
    };
    const auto ref = run(false);
    std::vector<std::vector<float>> split;
    for (const char* mode : {"fused", "split", "auto"}) {
      INFO("HYSCALE_DIFF_ATTN=" << mode);
      setenv("HYSCALE_DIFF_ATTN", mode, 1);
      const auto got = run(true);
      double floor = 0;
      for (float x : ref[3]) floor = std::max(floor, 0.1 * std::fabs(double(x)));
      CHECK(rel(got[0], ref[0]) < 2e-2);
      CHECK(rel(got[1], ref[1], floor) < 2e-2);  // dq
      CHECK(rel(got[2], ref[2], floor) < 2e-2);  // dk
      CHECK(rel(got[3], ref[3]) < 2e-2);         // dv
      for (int i = 4; i < 8; ++i) CHECK(rel(got[i], ref[i]) < 5e-2);
      if (std::string(mode) == "split") split = got;
      if (std::string(mode) == "auto")
        for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == split[i]);
    }
  }
  setenv("HYSCALE_DIFF_ATTN", "tensor", 1);
  Tensor q = on_gpu(Tensor::zeros({1, 4, 2, 128}, DType::bf16)), k = on_gpu(Tensor::zeros({1, 4, 2, 128}, DType::bf16));
  Tensor lam = on_gpu(Tensor::zeros({}, DType::f32));
  CHECK_THROWS_WITH(ops::diff_attention(q, k, k, lam, 0.1, 0), Catch::Contains("expected auto, fused or split"));
}
#endif  // HYSCALE_WITH_CUDA
