// Selective scan, causal conv1d and GMU gate: finite-difference gradients (f64), a naive
// sequential reference across chunk boundaries, determinism, GMU memory-gradient accumulation.
#include <array>
#include <cmath>

#include "core/ops.h"
#include "kernels/selective_scan.h"
#include "gradcheck.h"

using namespace hyscale;
using hyscale::testing::gradcheck;
using hyscale::testing::randn;

namespace {
// A_log like Mamba's S4D-real init (log(n+1)) plus noise, so decays differ per channel.
Tensor a_log(int64_t Dc, int64_t N, uint64_t seed, DType dt) {
  Tensor t = randn({Dc, N}, seed, 0.1);
  for (int64_t c = 0; c < Dc; ++c)
    for (int64_t n = 0; n < N; ++n) t.data<double>()[c * N + n] += std::log(n + 1.0);
  return dt == DType::f64 ? t : t.to(dt);
}

// Direct transcription of SPEC §3 steps 4–6 in double.
std::vector<double> naive_scan(const Tensor& u, const Tensor& delta, const Tensor& A_log, const Tensor& Bm,
                               const Tensor& Cm, const Tensor& D, const Tensor& bias) {
  auto U = u.to(DType::f64), De = delta.to(DType::f64), Al = A_log.to(DType::f64), Bt = Bm.to(DType::f64),
       Ct = Cm.to(DType::f64), Dd = D.to(DType::f64), bi = bias.to(DType::f64);
  const int64_t B = u.size(0), T = u.size(1), Dc = u.size(2), N = A_log.size(1);
  std::vector<double> y(B * T * Dc);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < Dc; ++c) {
      std::vector<double> h(N, 0.0);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t r = (b * T + t) * Dc + c;
        const double x = De.data<double>()[r] + bi.data<double>()[c];
        const double dt = x > 20 ? x : std::log1p(std::exp(x));
        double acc = 0;
        for (int64_t n = 0; n < N; ++n) {
          const double A = -std::exp(Al.data<double>()[c * N + n]);
          h[n] = std::exp(dt * A) * h[n] + dt * Bt.data<double>()[(b * T + t) * N + n] * U.data<double>()[r];
          acc += Ct.data<double>()[(b * T + t) * N + n] * h[n];
        }
        y[r] = acc + Dd.data<double>()[c] * U.data<double>()[r];
      }
    }
  return y;
}
}  // namespace

TEST_CASE("selective scan equals the sequential reference across chunk boundaries (f32)", "[ssm]") {
  const int64_t chunk = 16;
  for (int64_t T : {int64_t{1}, int64_t{7}, chunk - 1, chunk, chunk + 1, 3 * chunk + 5}) {
    INFO("T = " << T);
    const int64_t B = 2, Dc = 19, N = 16;
    auto f = DType::f32;
    Tensor u = randn({B, T, Dc}, 1, 1.0, f), delta = randn({B, T, Dc}, 2, 1.0, f), Al = a_log(Dc, N, 3, f),
           Bm = randn({B, T, N}, 4, 1.0, f), Cm = randn({B, T, N}, 5, 1.0, f), D = randn({Dc}, 6, 1.0, f),
           bias = randn({Dc}, 7, 0.5, f);
    auto ref = naive_scan(u, delta, Al, Bm, Cm, D, bias);
    auto y = ops::selective_scan(u, delta, Al, Bm, Cm, D, bias, chunk).to_vector<float>();
    for (size_t i = 0; i < y.size(); ++i) REQUIRE(std::fabs(y[i] - ref[i]) <= 2e-5 * (1 + std::fabs(ref[i])));
    // The chunk length changes memory, never the result.
    auto y1 = ops::selective_scan(u, delta, Al, Bm, Cm, D, bias, 1).to_vector<float>();
    auto y2 = ops::selective_scan(u, delta, Al, Bm, Cm, D, bias, 4096).to_vector<float>();
    REQUIRE(y1 == y);
    REQUIRE(y2 == y);
  }
}

TEST_CASE("selective scan final_state: the state after the last step, whatever the chunk", "[ssm]") {
  // Against the decode step kernel replayed over the sequence from a zero state (f64: the same
  // recurrence, so to rounding), at lengths that end inside, at and after a chunk.
  for (int64_t T : {int64_t{1}, int64_t{5}, int64_t{8}, int64_t{13}}) {
    INFO("T = " << T);
    const int64_t B = 2, Dc = 7, N = 5;
    const auto f = DType::f64;
    Tensor u = randn({B, T, Dc}, 11, 1.0, f), delta = randn({B, T, Dc}, 12, 1.0, f), Al = a_log(Dc, N, 13, f),
           Bm = randn({B, T, N}, 14, 1.0, f), Cm = randn({B, T, N}, 15, 1.0, f), D = randn({Dc}, 16, 1.0, f),
           bias = randn({Dc}, 17, 0.5, f);
    std::vector<double> h(B * Dc * N, 0.0), y(B * Dc);
    for (int64_t t = 0; t < T; ++t) {
      Tensor ut = u.slice(1, t, t + 1).contiguous(), dt = delta.slice(1, t, t + 1).contiguous(),
             bt = Bm.slice(1, t, t + 1).contiguous(), ct = Cm.slice(1, t, t + 1).contiguous();
      kernels::cpu::selective_scan_step<double>(ut.data<double>(), dt.data<double>(), Al.data<double>(),
                                                bt.data<double>(), ct.data<double>(), D.data<double>(),
                                                bias.data<double>(), h.data(), y.data(), B, Dc, N);
    }
    for (int64_t chunk : {int64_t{1}, int64_t{4}, int64_t{8}, int64_t{4096}}) {
      INFO("chunk " << chunk);
      Tensor fin;
      ops::selective_scan(u, delta, Al, Bm, Cm, D, bias, chunk, Tensor(), &fin);
      REQUIRE(fin.shape() == Shape({B, Dc, N}));
      auto got = fin.contiguous().to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i) REQUIRE(std::fabs(got[i] - h[i]) <= 1e-12 * (1 + std::fabs(h[i])));
    }
  }
}

TEST_CASE("gradcheck selective scan (every input) across chunk boundaries", "[ssm][grad]") {
  for (int64_t T : {1, 5, 9}) {
    INFO("T = " << T);
    const int64_t B = 2, Dc = 11, N = 3;  // Dc crosses a channel block (8)
    gradcheck(
        [](auto& in) { return ops::selective_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], 4); },
        {randn({B, T, Dc}, 11), randn({B, T, Dc}, 12), a_log(Dc, N, 13, DType::f64), randn({B, T, N}, 14),
         randn({B, T, N}, 15), randn({Dc}, 16), randn({Dc}, 17, 0.5)},
        1e-6, 1e-5, 1e-8, 80);
  }
}

TEST_CASE("selective scan backward is deterministic", "[ssm][determinism]") {
  const int64_t B = 2, T = 70, Dc = 40, N = 16;
  auto f = DType::f32;
  std::vector<Tensor> in = {randn({B, T, Dc}, 21, 1.0, f), randn({B, T, Dc}, 22, 1.0, f), a_log(Dc, N, 23, f),
                            randn({B, T, N}, 24, 1.0, f),  randn({B, T, N}, 25, 1.0, f),  randn({Dc}, 26, 1.0, f),
                            randn({Dc}, 27, 0.5, f)};
  std::vector<float> first;
  for (int rep = 0; rep < 3; ++rep) {
    for (auto& t : in) {
      t.zero_grad();
      t.requires_grad_();
    }
    Tensor y = ops::selective_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], 16);
    y.backward(randn(y.shape(), 28, 1.0, f));
    std::vector<float> all;
    for (auto& t : in) {
      auto g = t.grad().to_vector<float>();
      all.insert(all.end(), g.begin(), g.end());
    }
    if (rep == 0)
      first = all;
    else
      REQUIRE(all == first);
  }
}

TEST_CASE("causal conv1d: reference values and gradients", "[ssm][conv]") {
  // y_t = b + w0 x_{t-2} + w1 x_{t-1} + w2 x_t
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 4, 1});
  Tensor w = Tensor::from_vector<float>({0.5f, -1.0f, 2.0f}, {1, 3});
  Tensor b = Tensor::from_vector<float>({0.25f}, {1});
  auto y = ops::causal_conv1d(x, w, b).to_vector<float>();
  REQUIRE(y == std::vector<float>{0.25f + 2, 0.25f - 1 + 4, 0.25f + 0.5f - 2 + 6, 0.25f + 1 - 3 + 8});
  for (int64_t K : {2, 4})
    gradcheck([](auto& in) { return ops::causal_conv1d(in[0], in[1], in[2]); },
              {randn({2, 7, 37}, 31), randn({37, K}, 32), randn({37}, 33)});
  REQUIRE_THROWS_WITH(ops::causal_conv1d(x, Tensor::zeros({2, 3}), b), Catch::Matchers::Contains("causal_conv1d"));
}

TEST_CASE("causal conv1d + SiLU fused: gradients, and equal to silu(causal_conv1d)", "[ssm][conv]") {
  for (int64_t K : {1, 2, 4})
    gradcheck([](auto& in) { return ops::causal_conv1d_silu(in[0], in[1], in[2]); },
              {randn({2, 7, 37}, 34, 1.5), randn({37, K}, 35), randn({37}, 36)});
  // The forward is the two-op composition bit for bit (decoding runs conv step + silu and must
  // reproduce the prefill); the backward reduces the same dpre, so it agrees to rounding. The
  // larger shape takes the OpenMP paths.
  for (DType dt : {DType::f32, DType::f64})
    for (auto [B, T, C, K] : std::vector<std::array<int64_t, 4>>{{1, 1, 1, 4}, {2, 65, 33, 3}, {2, 129, 200, 4}}) {
      INFO("dtype " << dtype_name(dt) << " B " << B << " T " << T << " C " << C << " K " << K);
      Tensor x = randn({B, T, C}, 50 + T, 2.0, dt), w = randn({C, K}, 51, 0.5, dt), b = randn({C}, 52, 0.5, dt);
      Tensor dy = randn({B, T, C}, 53 + T, 1.0, dt);
      auto run = [&](bool fused) {
        std::vector<Tensor> in{x.detach().clone(), w.detach().clone(), b.detach().clone()};
        for (auto& t : in) t.requires_grad_();
        Tensor y = fused ? ops::causal_conv1d_silu(in[0], in[1], in[2])
                         : ops::silu(ops::causal_conv1d(in[0], in[1], in[2]));
        y.backward(dy);
        std::vector<Tensor> out{y.detach()};
        for (auto& t : in) out.push_back(t.grad());
        return out;
      };
      auto f = run(true), c = run(false);
      if (dt == DType::f32)
        REQUIRE(f[0].to_vector<float>() == c[0].to_vector<float>());
      else
        REQUIRE(f[0].to_vector<double>() == c[0].to_vector<double>());
      for (size_t i = 1; i < f.size(); ++i) {
        auto g1 = f[i].to(DType::f64).to_vector<double>(), g2 = c[i].to(DType::f64).to_vector<double>();
        REQUIRE(g1.size() == g2.size());
        double err = 0, mag = 0;
        for (size_t j = 0; j < g1.size(); ++j) {
          err = std::max(err, std::fabs(g1[j] - g2[j]));
          mag = std::max(mag, std::fabs(g2[j]));
        }
        INFO("gradient " << i << " max abs diff " << err << " max |g| " << mag);
        CHECK(err <= (dt == DType::f64 ? 1e-12 : 1e-5) * std::max(mag, 1.0));
      }
    }
}

TEST_CASE("GMU gate: gradient, and memory gradient accumulated over every GMU that reads it", "[ssm][gmu]") {
  gradcheck([](auto& in) { return ops::gmu_gate(in[0], in[1]); }, {randn({3, 5, 9}, 41, 2.0), randn({3, 5, 9}, 42)});
  // Two GMU layers read one memory m: dm = dh1*silu(p1) + dh2*silu(p2).
  Tensor m = randn({4, 6}, 43), p1 = randn({4, 6}, 44), p2 = randn({4, 6}, 45);
  m.requires_grad_();
  Tensor h = ops::add(ops::gmu_gate(p1, m), ops::gmu_gate(p2, m));
  h.backward(Tensor::full({4, 6}, 1.0, DType::f64));
  for (int64_t i = 0; i < 24; ++i) {
    auto silu = [](double v) { return v / (1 + std::exp(-v)); };
    REQUIRE(m.grad().data<double>()[i] == Approx(silu(p1.data<double>()[i]) + silu(p2.data<double>()[i])));
  }
}

// The fused output gate: selective_scan(..., z) = gmu_gate(z, selective_scan(...)) (silu(z) y),
// with z read in place as a column slice of a wider tensor (in_proj's [B, T, 2 Dc] output) or
// contiguous; gradients of every input, z included, against finite differences and against the
// two-op composition.
TEST_CASE("selective scan with the fused z-gate: gradients, and equal to the scan then the gate", "[ssm][grad]") {
  const int64_t chunk = 4, N = 3;
  for (int64_t T : {1, 5, 9}) {
    for (bool strided : {false, true}) {
      INFO("T = " << T << (strided ? ", z a column slice" : ", z contiguous"));
      const int64_t B = 2, Dc = 11;
      auto zin = [&](const Tensor& zw) { return strided ? zw.slice(2, Dc, 2 * Dc) : zw; };
      const Tensor zw = strided ? randn({B, T, 2 * Dc}, 18, 1.5) : randn({B, T, Dc}, 18, 1.5);
      gradcheck(
          [&](auto& in) {
            return ops::selective_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], chunk, zin(in[7]));
          },
          {randn({B, T, Dc}, 11), randn({B, T, Dc}, 12), a_log(Dc, N, 13, DType::f64), randn({B, T, N}, 14),
           randn({B, T, N}, 15), randn({Dc}, 16), randn({Dc}, 17, 0.5), zw},
          1e-6, 1e-5, 1e-8, 80);

      // Against the composition, values and every gradient, f64 and f32.
      for (DType dt : {DType::f64, DType::f32}) {
        auto mk = [&] {
          std::vector<Tensor> in = {randn({B, T, Dc}, 21, 1.0, dt), randn({B, T, Dc}, 22, 1.0, dt),
                                    a_log(Dc, N, 23, dt),           randn({B, T, N}, 24, 1.0, dt),
                                    randn({B, T, N}, 25, 1.0, dt),  randn({Dc}, 26, 1.0, dt),
                                    randn({Dc}, 27, 0.5, dt),       strided ? randn({B, T, 2 * Dc}, 28, 1.5, dt)
                                                                            : randn({B, T, Dc}, 28, 1.5, dt)};
          for (auto& t : in) t.requires_grad_();
          return in;
        };
        auto fused = mk(), split = mk();
        // z as the slice of a computed tensor (a leaf's slice is covered by the gradcheck above):
        // its gradient takes the engine's slice path, as in the Mamba layer.
        Tensor yf = ops::selective_scan(fused[0], fused[1], fused[2], fused[3], fused[4], fused[5], fused[6], chunk,
                                        zin(ops::scale(fused[7], 1.0)));
        Tensor ys = ops::gmu_gate(zin(ops::scale(split[7], 1.0)),
                                  ops::selective_scan(split[0], split[1], split[2], split[3], split[4], split[5],
                                                      split[6], chunk));
        const Tensor w = randn({B, T, Dc}, 29, 1.0, dt);
        yf.backward(w);
        ys.backward(w);
        const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
        auto close = [&](const Tensor& a, const Tensor& b) {
          auto x = a.to(DType::f64).to_vector<double>(), y = b.to(DType::f64).to_vector<double>();
          REQUIRE(x.size() == y.size());
          for (size_t i = 0; i < x.size(); ++i) REQUIRE(std::fabs(x[i] - y[i]) <= tol * (1 + std::fabs(y[i])));
        };
        if (dt == DType::f32)  // the same expressions in the same order: bit for bit on the CPU
          REQUIRE(yf.to_vector<float>() == ys.to_vector<float>());
        close(yf, ys);
        for (size_t k = 0; k < fused.size(); ++k) {
          INFO("input " << k << (dt == DType::f64 ? " f64" : " f32"));
          close(fused[k].grad(), split[k].grad());
        }
        if (strided) {  // the slice's gradient lands in z's columns only
          auto g = fused[7].grad().to(DType::f64).to_vector<double>();
          for (int64_t r = 0; r < B * T; ++r)
            for (int64_t c = 0; c < Dc; ++c) REQUIRE(g[r * 2 * Dc + c] == 0.0);
        }
      }
    }
  }
}

TEST_CASE("selective scan gate: a z of the wrong shape or dtype is refused", "[ssm]") {
  const int64_t B = 2, T = 3, Dc = 4, N = 2;
  Tensor u = randn({B, T, Dc}, 1), d = randn({B, T, Dc}, 2), A = a_log(Dc, N, 3, DType::f64), Bm = randn({B, T, N}, 4),
         Cm = randn({B, T, N}, 5), D = randn({Dc}, 6), bias = randn({Dc}, 7);
  REQUIRE_THROWS_WITH(ops::selective_scan(u, d, A, Bm, Cm, D, bias, 2, randn({B, T, Dc + 1}, 8)),
                      Catch::Contains("the gate z must be [2, 3, 4]"));
  REQUIRE_THROWS_WITH(ops::selective_scan(u, d, A, Bm, Cm, D, bias, 2, randn({B, T, Dc}, 8, 1.0, DType::f32)),
                      Catch::Contains("the gate z must have u's dtype"));
  // A z whose B T rows are not evenly spaced (a time slice) is copied, with the same result.
  Tensor zt = randn({B, T + 2, Dc}, 9).slice(1, 1, T + 1);
  REQUIRE(ops::selective_scan(u, d, A, Bm, Cm, D, bias, 2, zt).to_vector<double>() ==
          ops::selective_scan(u, d, A, Bm, Cm, D, bias, 2, zt.contiguous()).to_vector<double>());
  // One sequence (rows ldz apart along T only) and one step (rows ldz apart along B only): read in
  // place, the same result as contiguous.
  for (auto [b1, t1] : {std::pair<int64_t, int64_t>{1, T}, std::pair<int64_t, int64_t>{B, 1}}) {
    Tensor u1 = u.slice(0, 0, b1).slice(1, 0, t1), d1 = d.slice(0, 0, b1).slice(1, 0, t1);
    Tensor B1 = Bm.slice(0, 0, b1).slice(1, 0, t1), C1 = Cm.slice(0, 0, b1).slice(1, 0, t1);
    Tensor zs = randn({b1, t1, 3 * Dc}, 10).slice(2, Dc, 2 * Dc);
    REQUIRE(ops::selective_scan(u1, d1, A, B1, C1, D, bias, 2, zs).to_vector<double>() ==
            ops::selective_scan(u1, d1, A, B1, C1, D, bias, 2, zs.contiguous()).to_vector<double>());
  }
}
