// CPU kernels against plain scalar references (the oracle the CUDA kernels will
// later be compared with), at odd sizes.
#include <cmath>

#include "core/ops.h"
#include "gradcheck.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"

using namespace hyscale;
using hyscale::testing::randint;
using hyscale::testing::randn;

TEST_CASE("sgemm/dgemm agree with a naive product for every layout and beta", "[kernels][gemm]") {
  // Guards against BLAS kernels picked for the wrong CPU (see fix_blas_core_detection).
  for (int64_t M : {1, 7, 33, 130})
    for (int64_t N : {1, 5, 64, 97})
      for (int64_t K : {1, 9, 128})
        for (bool ta : {false, true})
          for (bool tb : {false, true})
            for (float beta : {0.0f, 1.0f}) {
              Tensor A = randn(ta ? Shape{K, M} : Shape{M, K}, M * 7 + K, 1.0, DType::f32);
              Tensor Bm = randn(tb ? Shape{N, K} : Shape{K, N}, N * 11 + K, 1.0, DType::f32);
              Tensor C = randn({M, N}, 5, 1.0, DType::f32);
              std::vector<double> ref(M * N);
              const float* a = A.data<float>();
              const float* b = Bm.data<float>();
              for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j < N; ++j) {
                  double s = 0;
                  for (int64_t k = 0; k < K; ++k)
                    s += static_cast<double>(ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
                  ref[i * N + j] = 0.5 * s + beta * C.data<float>()[i * N + j];
                }
              kernels::cpu::gemm<float>(ta, tb, M, N, K, 0.5f, a, ta ? M : K, b, tb ? K : N, beta, C.data<float>(), N);
              for (int64_t i = 0; i < M * N; ++i)
                REQUIRE(std::fabs(C.data<float>()[i] - ref[i]) <= 1e-4 * (1 + std::fabs(ref[i])) + 1e-5 * K);
            }
}

// Naive causal attention with a window, in double: out and lse.
static void naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, int64_t W,
                            std::vector<double>& out, std::vector<double>& lse) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Hk = k.size(2), D = q.size(3);
  const int64_t Weff = (W <= 0 || W > T) ? T : W;
  out.assign(B * T * H * D, 0);
  lse.assign(B * H * T, 0);
  auto Q = q.to(DType::f64), K = k.to(DType::f64), V = v.to(DType::f64);
  const double *pq = Q.data<double>(), *pk = K.data<double>(), *pv = V.data<double>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / Hk);
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s;
        double mx = -1e300;
        for (int64_t j = std::max<int64_t>(0, i - Weff + 1); j <= i; ++j) {
          double d = 0;
          for (int64_t c = 0; c < D; ++c) d += pq[((b * T + i) * H + h) * D + c] * pk[((b * T + j) * Hk + g) * D + c];
          s.push_back(d * scale);
          mx = std::max(mx, d * scale);
        }
        double z = 0;
        for (double x : s) z += std::exp(x - mx);
        lse[(b * H + h) * T + i] = mx + std::log(z);
        int64_t idx = 0;
        for (int64_t j = std::max<int64_t>(0, i - Weff + 1); j <= i; ++j, ++idx) {
          const double p = std::exp(s[idx] - mx) / z;
          for (int64_t c = 0; c < D; ++c) out[((b * T + i) * H + h) * D + c] += p * pv[((b * T + j) * Hk + g) * D + c];
        }
      }
    }
}

TEST_CASE("flash-style attention forward equals naive softmax attention (f32)", "[kernels][attention]") {
  struct C { int64_t B, T, H, Hk, D, W; };
  for (C c : {C{2, 1, 2, 2, 8, 0}, C{1, 63, 4, 1, 16, 0}, C{2, 65, 4, 2, 8, 0}, C{1, 200, 2, 1, 32, 17},
              C{1, 129, 8, 2, 16, 128}, C{1, 70, 2, 2, 8, 1}, C{1, 50, 2, 1, 8, 1000}}) {
    INFO("T=" << c.T << " H=" << c.H << " Hk=" << c.Hk << " D=" << c.D << " W=" << c.W);
    Tensor q = randn({c.B, c.T, c.H, c.D}, 1, 1.0, DType::f32), k = randn({c.B, c.T, c.Hk, c.D}, 2, 1.0, DType::f32),
           v = randn({c.B, c.T, c.Hk, c.D}, 3, 1.0, DType::f32);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
    std::vector<double> ref, lse;
    naive_attention(q, k, v, scale, c.W, ref, lse);
    Tensor out = ops::attention(q, k, v, scale, c.W);
    for (int64_t i = 0; i < out.numel(); ++i) REQUIRE(std::fabs(out.data<float>()[i] - ref[i]) < 2e-5);
  }
}

TEST_CASE("attention with window >= T equals full causal attention", "[kernels][attention]") {
  Tensor q = randn({1, 40, 2, 8}, 4, 1.0, DType::f32), k = randn({1, 40, 1, 8}, 5, 1.0, DType::f32),
         v = randn({1, 40, 1, 8}, 6, 1.0, DType::f32);
  auto a = ops::attention(q, k, v, 0.3, 0).to_vector<float>();
  auto b = ops::attention(q, k, v, 0.3, 40).to_vector<float>();
  auto c = ops::attention(q, k, v, 0.3, 4000).to_vector<float>();
  REQUIRE(a == b);
  REQUIRE(a == c);
}

TEST_CASE("rmsnorm forward equals the formula", "[kernels][norm]") {
  Tensor x = randn({5, 37}, 7, 1.0, DType::f32), g = randn({37}, 8, 1.0, DType::f32);
  Tensor y = ops::rmsnorm(x, g, 1e-5);
  for (int64_t r = 0; r < 5; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < 37; ++i) ss += std::pow(x.data<float>()[r * 37 + i], 2);
    const double rs = 1.0 / std::sqrt(ss / 37 + 1e-5);
    for (int64_t i = 0; i < 37; ++i)
      REQUIRE(y.data<float>()[r * 37 + i] ==
              Approx(x.data<float>()[r * 37 + i] * rs * g.data<float>()[i]).epsilon(1e-5).margin(1e-6));
  }
}

TEST_CASE("cross-entropy equals -log softmax[target], robust to large logits", "[kernels][ce]") {
  Tensor z = randn({6, 11}, 9, 30.0, DType::f32);
  z.data<float>()[3] = 1e4f;  // would overflow a naive exp
  Tensor t = randint({6}, 11, 10);
  double ref = 0;
  for (int64_t n = 0; n < 6; ++n) {
    double mx = -1e300;
    for (int64_t v = 0; v < 11; ++v) mx = std::max(mx, (double)z.data<float>()[n * 11 + v]);
    double s = 0;
    for (int64_t v = 0; v < 11; ++v) s += std::exp(z.data<float>()[n * 11 + v] - mx);
    ref += mx + std::log(s) - z.data<float>()[n * 11 + t.data<int32_t>()[n]];
  }
  REQUIRE(ops::cross_entropy(z, t).item() == Approx(ref / 6).epsilon(1e-5));
}

TEST_CASE("rope: position 0 is the identity and rotations preserve pair norms", "[kernels][rope]") {
  Tensor x = randn({1, 5, 2, 8}, 11, 1.0, DType::f32);
  Tensor y = ops::rope(x, 1e4, 0);
  for (int64_t i = 0; i < 16; ++i) REQUIRE(y.data<float>()[i] == Approx(x.data<float>()[i]));
  for (int64_t t = 0; t < 5; ++t)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 4; ++i) {
        const float* xr = x.data<float>() + (t * 2 + h) * 8;
        const float* yr = y.data<float>() + (t * 2 + h) * 8;
        REQUIRE(std::hypot(yr[i], yr[i + 4]) == Approx(std::hypot(xr[i], xr[i + 4])).epsilon(1e-5));
      }
  // Known value: pair (1, 0) at position t, i = 0 rotates by angle t (theta_0 = 1).
  Tensor e = Tensor::zeros({1, 3, 1, 4});
  for (int64_t t = 0; t < 3; ++t) e.data<float>()[t * 4] = 1;
  Tensor r = ops::rope(e, 1e4, 0);
  for (int64_t t = 0; t < 3; ++t) {
    REQUIRE(r.data<float>()[t * 4] == Approx(std::cos(t)));
    REQUIRE(r.data<float>()[t * 4 + 2] == Approx(std::sin(t)));
  }
}

TEST_CASE("decode_rope_append: RoPE at each row's position, k and v into the row's cache slot, nothing else",
          "[kernels][rope][decode]") {
  // f64 against the formula of kernels/rope.h written out here: rows at different positions, a
  // ring buffer that wraps, a linear cache, the q-only form (Hk = 0) and no rotation (odd D).
  struct C {
    int64_t B, H, Hk, D, cap;
    bool ring;
    double base;
    std::vector<int64_t> n_tok;
  };
  for (const C& c : std::vector<C>{{3, 4, 2, 8, 5, true, 1e4, {1, 6, 13}},
                                   {2, 2, 1, 6, 9, false, 500.0, {9, 2}},
                                   {2, 3, 0, 4, 0, false, 1e4, {4, 1}},
                                   {2, 2, 2, 7, 3, true, 0.0, {3, 5}}}) {
    INFO("B " << c.B << " H " << c.H << " Hk " << c.Hk << " D " << c.D << " cap " << c.cap << " ring " << c.ring);
    const int64_t W = (c.H + 2 * c.Hk) * c.D, half = c.D / 2;
    const auto qkv = randn({c.B, W}, 5, 1.0, DType::f64).to_vector<double>();
    const auto k0 = randn({c.B, std::max<int64_t>(c.cap, 1), c.Hk, c.D}, 6, 1.0, DType::f64).to_vector<double>();
    const auto v0 = randn({c.B, std::max<int64_t>(c.cap, 1), c.Hk, c.D}, 7, 1.0, DType::f64).to_vector<double>();
    std::vector<double> q(c.B * c.H * c.D, -1.0), kc = k0, vc = v0;
    kernels::cpu::decode_rope_append<double>(qkv.data(), q.data(), c.Hk ? kc.data() : nullptr,
                                             c.Hk ? vc.data() : nullptr, c.n_tok.data(), c.B, c.H, c.Hk, c.D, c.cap,
                                             c.ring, c.base);
    std::vector<double> wk = k0, wv = v0;
    for (int64_t b = 0; b < c.B; ++b) {
      const int64_t pos = c.n_tok[b] - 1;
      auto rot = [&](const double* x, int64_t i) {  // element i of the rotated head x
        if (c.base <= 0) return x[i];
        const int64_t f = i % half;
        const double a = double(pos) * std::pow(c.base, -2.0 * double(f) / double(c.D));
        return i < half ? x[i] * std::cos(a) - x[i + half] * std::sin(a) : x[i] * std::cos(a) + x[i - half] * std::sin(a);
      };
      const double* row = qkv.data() + b * W;
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t i = 0; i < c.D; ++i) REQUIRE(q[(b * c.H + h) * c.D + i] == Approx(rot(row + h * c.D, i)).margin(1e-14));
      if (c.Hk == 0) continue;
      const int64_t slot = c.ring ? pos % c.cap : pos;
      for (int64_t g = 0; g < c.Hk; ++g)
        for (int64_t i = 0; i < c.D; ++i) {
          wk[((b * c.cap + slot) * c.Hk + g) * c.D + i] = rot(row + (c.H + g) * c.D, i);
          wv[((b * c.cap + slot) * c.Hk + g) * c.D + i] = row[(c.H + c.Hk + g) * c.D + i];
        }
    }
    for (size_t i = 0; i < kc.size(); ++i) REQUIRE(kc[i] == Approx(wk[i]).margin(1e-14));  // other slots untouched
    CHECK(vc == wv);
  }
  // A position past a linear cache is refused, with the numbers.
  std::vector<double> x(4 * 8), qo(8), kc(2 * 8), vc(2 * 8);
  const int64_t n_tok = 3;
  CHECK_THROWS_WITH(kernels::cpu::decode_rope_append<double>(x.data(), qo.data(), kc.data(), vc.data(), &n_tok, 1, 2, 1,
                                                              4, 2, false, 1e4),
                    Catch::Contains("position 2 outside a cache of 2"));
}

TEST_CASE("AdamW kernel matches a scalar transcription of torch.optim.AdamW", "[kernels][adamw]") {
  const int64_t n = 37;
  Tensor p = randn({n}, 12, 1.0, DType::f32), m = Tensor::zeros({n}), v = Tensor::zeros({n});
  std::vector<double> rp(p.data<float>(), p.data<float>() + n), rm(n, 0), rv(n, 0);
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  for (int64_t step = 1; step <= 5; ++step) {
    Tensor g = randn({n}, 100 + step, 1.0, DType::f32);
    kernels::cpu::adamw_step(p.data<float>(), g.data<float>(), m.data<float>(), v.data<float>(), n, lr, b1, b2, eps,
                             wd, step);
    for (int64_t i = 0; i < n; ++i) {
      const double gi = g.data<float>()[i];
      rp[i] *= 1 - lr * wd;
      rm[i] = b1 * rm[i] + (1 - b1) * gi;
      rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
      const double denom = std::sqrt(rv[i]) / std::sqrt(1 - std::pow(b2, step)) + eps;
      rp[i] -= lr / (1 - std::pow(b1, step)) * rm[i] / denom;
    }
  }
  for (int64_t i = 0; i < n; ++i) REQUIRE(p.data<float>()[i] == Approx(rp[i]).epsilon(1e-5));
}

TEST_CASE("backward kernels are deterministic run to run", "[kernels][determinism]") {
  Tensor q = randn({2, 100, 4, 16}, 13, 1.0, DType::f32), k = randn({2, 100, 2, 16}, 14, 1.0, DType::f32),
         v = randn({2, 100, 2, 16}, 15, 1.0, DType::f32), table = randn({50, 24}, 16, 1.0, DType::f32);
  Tensor ids = randint({2, 100}, 50, 17);
  std::vector<float> first;
  for (int rep = 0; rep < 3; ++rep) {
    for (Tensor* t : {&q, &k, &v, &table}) {
      t->zero_grad();
      t->requires_grad_(true);
    }
    Tensor a = ops::attention(q, k, v, 0.25, 33);
    Tensor e = ops::embedding(ids, table);
    Tensor l = ops::add(ops::mul(a, a).reshape({-1}), ops::mul(a, a).reshape({-1}));
    l.backward(Tensor::full(l.shape(), 1.0));
    ops::mul(e, e).backward(Tensor::full({2, 100, 24}, 1.0));
    std::vector<float> all;
    for (Tensor* t : {&q, &k, &v, &table}) {
      auto g = t->grad().to_vector<float>();
      all.insert(all.end(), g.begin(), g.end());
    }
    if (rep == 0)
      first = all;
    else
      REQUIRE(all == first);
  }
}

#include "kernels/cpu/vec_math.h"

TEST_CASE("vectorised expf: accuracy and special values", "[kernels][math]") {
  using hyscale::kernels::cpu::expf_fast;
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(expf_fast(x) - ref) / ref);
  }
  INFO("worst relative error " << worst);
  REQUIRE(worst < 4e-7);
  REQUIRE(expf_fast(0.0f) == 1.0f);
  REQUIRE(expf_fast(-INFINITY) == 0.0f);
  REQUIRE(expf_fast(-1000.0f) == 0.0f);
  REQUIRE(std::isinf(expf_fast(INFINITY)));
  REQUIRE(std::isinf(expf_fast(1000.0f)));
  REQUIRE(std::isnan(expf_fast(NAN)));
}

TEST_CASE("vectorised softplus and log1p: accuracy and special values", "[kernels][math]") {
  using hyscale::kernels::cpu::log1p_unit;
  using hyscale::kernels::cpu::softplusf_fast;
  double worst = 0, worst_l = 0;
  for (float x = -60.0f; x <= 60.0f; x += 0.00731f) {
    const double ref = std::log1p(std::exp(static_cast<double>(x)));
    worst = std::max(worst, std::fabs(softplusf_fast(x) - ref) / ref);
  }
  for (float z = 0.0f; z <= 1.0f; z += 1.0f / 4099) {  // includes z so small that 1 + z rounds to 1
    const double ref = std::log1p(static_cast<double>(z));
    if (z > 0) worst_l = std::max(worst_l, std::fabs(log1p_unit(z) - ref) / ref);
  }
  for (float z : {1e-30f, 1e-9f, 3e-8f, 6e-8f}) worst_l = std::max(worst_l, std::fabs(log1p_unit(z) - std::log1p(double(z))) / z);
  INFO("worst relative error: softplus " << worst << ", log1p " << worst_l);
  REQUIRE(worst < 5e-7);
  REQUIRE(worst_l < 3e-7);
  REQUIRE(log1p_unit(0.0f) == 0.0f);
  REQUIRE(softplusf_fast(-INFINITY) == 0.0f);
  REQUIRE(softplusf_fast(-200.0f) == 0.0f);
  REQUIRE(softplusf_fast(30.0f) == 30.0f);  // log1p(exp(-30)) is below half an ulp of 30
  REQUIRE(std::isinf(softplusf_fast(INFINITY)));
  REQUIRE(std::isnan(softplusf_fast(NAN)));
}

TEST_CASE("sliding-window attention equals a dense masked f64 reference (W = 1, 2, 17, T-1, T, T+5, odd T)",
          "[kernels][attention][swa]") {
  for (int64_t T : {37, 131}) {
    for (int64_t W : {int64_t{1}, int64_t{2}, int64_t{17}, T - 1, T, T + 5}) {
      INFO("T=" << T << " W=" << W);
      Tensor q = randn({2, T, 4, 8}, 51), k = randn({2, T, 2, 8}, 52), v = randn({2, T, 2, 8}, 53);
      std::vector<double> ref, lse;
      naive_attention(q, k, v, 0.35, W, ref, lse);
      auto out = ops::attention(q, k, v, 0.35, W).to_vector<double>();
      for (size_t i = 0; i < out.size(); ++i) REQUIRE(std::fabs(out[i] - ref[i]) < 1e-12);
    }
  }
}
