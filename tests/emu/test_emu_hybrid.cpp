// The CUDA hybrid-block kernels (selective_scan.cu, selective_scan_bwd.cu, hybrid_kernels.cu) on
// the CPU emulator (cuda_emu.h) against their CPU twins. Tolerances (relative max-norm error), as
// the gpu tests (tests/gpu/test_hybrid_kernels.cpp): elementwise f32 1e-5, bf16 1e-2; dlambda
// 1e-5; lambda 1e-6; scan forward f32 1e-5, bf16 1e-2, chunk states 1e-4; scan backward f32 1e-4,
// bf16 du/ddelta/dz 2e-2 and the fp32 parameter gradients 1e-3 (same fp32 math, other orders).
#include <cmath>
#include <cstring>
#include <tuple>

#include "emu_util.h"
#include "kernels/conv1d.h"
#include "kernels/cuda_hybrid.h"
#include "kernels/diff_attn.h"
#include "kernels/elementwise.h"
#include "kernels/gmu.h"
#include "kernels/selective_scan.h"

using namespace hyscale::emutest;
namespace kg = hyscale::kernels::cuda;
namespace kc = hyscale::kernels::cpu;

namespace {

template <class T> void elementwise_case(int64_t n, int mis) {
  constexpr bool bf = is_bf<T>;
  const double tol = bf ? 1e-2 : 1e-5;
  INFO(dt_name<T>() << " n " << n << " misalignment " << mis);
  auto o = [&](int k) { return operand_offset(mis, k); };
  auto p = randn(n, n + 1, 2, bf), m = randn(n, n + 2, 1, bf), dy = randn(n, n + 3, 1, bf), dm0 = randn(n, n + 4, 1, bf);
  {
    std::vector<float> w(n);
    kc::gmu_gate_fwd<float>(p.data(), m.data(), w.data(), 1, n);
    Buf<T> pd(p, o(0)), md(m, o(1)), y(n, o(2));
    kg::gmu_gate_fwd<T>(pd.p(), md.p(), y.p(), n);
    check_close("gmu_gate_fwd", y, w, tol);
  }
  {
    std::vector<float> wdp(n), wdm = dm0;
    kc::gmu_gate_bwd<float>(p.data(), m.data(), dy.data(), wdp.data(), wdm.data(), 1, n);
    Buf<T> pd(p, o(0)), md(m, o(1)), dyd(dy, o(2)), dp(n, o(3)), dm(dm0, o(4));
    kg::gmu_gate_bwd<T>(pd.p(), md.p(), dyd.p(), dp.p(), dm.p(), n);
    check_close("gmu_gate_bwd dp", dp, wdp, tol);
    check_close("gmu_gate_bwd dm (accumulated)", dm, wdm, tol);
  }
  {
    std::vector<float> w(n);
    kc::mul<float>(p.data(), m.data(), w.data(), n);
    Buf<T> a(p, o(1)), b(m, o(0)), y(n, o(3));
    kg::mul<T>(a.p(), b.p(), y.p(), n);
    check_close("mul", y, w, tol);
  }
  {
    std::vector<float> w = p;
    kc::add_inplace<float>(w.data(), m.data(), n);
    Buf<T> a(p, o(2)), b(m, o(0));
    kg::add_inplace<T>(a.p(), b.p(), n);
    check_close("add_inplace", a, w, tol);
  }
  const float lam = 0.37f;
  {
    std::vector<float> w(n);
    kc::diff_combine_fwd<float>(p.data(), m.data(), lam, w.data(), n);
    Buf<T> a(p, o(0)), b(m, o(4)), y(n, o(1));
    Buf<float> l(std::vector<float>{lam});
    kg::diff_combine_fwd<T>(a.p(), b.p(), l.p(), y.p(), n);
    check_close("diff_combine_fwd", y, w, tol);
  }
  {
    std::vector<float> w1(n), w2(n);
    float wl = 0;
    kc::diff_combine_bwd<float>(m.data(), dy.data(), lam, w1.data(), w2.data(), &wl, n);
    Buf<float> first(1);
    for (int run = 0; run < 2; ++run) {
      Buf<T> a2(m, o(0)), g(dy, o(1)), d1(n, o(2)), d2(n, o(3));
      Buf<float> l(std::vector<float>{lam}), dl(1);
      kg::diff_combine_bwd<T>(a2.p(), g.p(), l.p(), d1.p(), d2.p(), dl.p(), n);
      check_close("diff_combine_bwd da1", d1, w1, tol);
      check_close("diff_combine_bwd da2", d2, w2, tol);
      check_close("diff_combine_bwd dlambda", dl, {wl}, 1e-5);
      if (run == 0) first = dl;
      else CHECK(same_bits(first, dl));  // deterministic
    }
  }
}

void lambda_case(int64_t d) {
  INFO("lambda d " << d);
  auto q1 = randn(d, d + 11, 0.3f), k1 = randn(d, d + 12, 0.3f), q2 = randn(d, d + 13, 0.3f), k2 = randn(d, d + 14, 0.3f);
  const float wl = kc::diff_lambda_fwd<float>(q1.data(), k1.data(), q2.data(), k2.data(), d, 0.8);
  Buf<float> a(q1), b(k1), c(q2), e(k2), l(1);
  kg::diff_lambda_fwd(a.p(), b.p(), c.p(), e.p(), d, 0.8, l.p());
  check_close("diff_lambda_fwd", l, {wl}, 1e-6);
  const float g = -0.7f;
  std::vector<float> w1(d), w2(d), w3(d), w4(d);
  kc::diff_lambda_bwd<float>(q1.data(), k1.data(), q2.data(), k2.data(), d, g, w1.data(), w2.data(), w3.data(),
                             w4.data());
  Buf<float> gd(std::vector<float>{g}), d1(d), d2(d), d3(d), d4(d);
  kg::diff_lambda_bwd(a.p(), b.p(), c.p(), e.p(), d, gd.p(), d1.p(), d2.p(), d3.p(), d4.p());
  check_close("dlambda_q1", d1, w1, 1e-6);
  check_close("dlambda_k1", d2, w2, 1e-6);
  check_close("dlambda_q2", d3, w3, 1e-6);
  check_close("dlambda_k2", d4, w4, 1e-6);
}

// One selective-scan case: forward and backward (twice: from the CPU's chunk states and from the
// kernel's) against the CPU twin. `wild`: A_log and dt_bias over wide ranges, incl. the softplus
// threshold branch; `gated`: the fused z-gate, z a strided column slice of a wider buffer.
template <class T> void scan_case(int64_t B, int64_t T_, int64_t Dc, int64_t N, int64_t chunk, bool wild, bool gated) {
  constexpr bool bf = is_bf<T>;
  INFO(dt_name<T>() << " scan B " << B << " T " << T_ << " Dc " << Dc << " N " << N << " chunk " << chunk << " wild "
                    << wild << " gated " << gated << " deterministic " << kg::deterministic());
  const int64_t nc = kc::scan_num_chunks(T_, chunk);
  const uint64_t sd = 1000 * T_ + 10 * Dc + chunk + N * 7 + wild;
  auto u = randn(B * T_ * Dc, sd + 1, 1, bf), delta = uniform(B * T_ * Dc, sd + 2, -2, 1, bf);
  std::vector<float> al(Dc * N), bi(Dc);
  {
    std::mt19937_64 g(sd + 3);
    std::uniform_real_distribution<double> U(0, 1);
    for (int64_t c = 0; c < Dc; ++c)
      for (int64_t n = 0; n < N; ++n) al[c * N + n] = wild ? float(std::log(0.5 + 20 * U(g))) : std::log(float(n + 1));
    for (auto& x : bi) {
      const double dtv = std::exp(std::log(1e-3) + (std::log(0.1) - std::log(1e-3)) * U(g));
      x = wild ? float(-3 + 8 * U(g)) : float(dtv + std::log(-std::expm1(-dtv)));
    }
    if (wild)
      for (int64_t c = 0; c < Dc; c += 5) bi[c] = 25.f;  // softplus's linear branch
  }
  if (bf) al = rounded(al), bi = rounded(bi);
  auto Bm = randn(B * T_ * N, sd + 4, 1, bf), Cm = randn(B * T_ * N, sd + 5, 1, bf);
  auto D = uniform(Dc, sd + 6, 0.9f, 1.1f, bf), dy = randn(B * T_ * Dc, sd + 7, 1, bf);
  auto zw = randn(B * T_ * 2 * Dc, sd + 8, 1.5f, bf);  // in_proj's output; z = its second half
  std::vector<float> wy(B * T_ * Dc), ws(B * nc * Dc * N), wdu(B * T_ * Dc), wdd(B * T_ * Dc), wdA(Dc * N),
      wdB(B * T_ * N), wdC(B * T_ * N), wdD(Dc), wdb(Dc), wdz(B * T_ * Dc);
  hyscale::kernels::ScanGate<float> cg;
  if (gated) cg = {zw.data() + Dc, 2 * Dc, wdz.data()};
  kc::selective_scan_fwd<float>(u.data(), delta.data(), al.data(), Bm.data(), Cm.data(), D.data(), bi.data(),
                                wy.data(), ws.data(), B, T_, Dc, N, chunk, cg);
  kc::selective_scan_bwd<float>(u.data(), delta.data(), al.data(), Bm.data(), Cm.data(), D.data(), bi.data(),
                                ws.data(), dy.data(), wdu.data(), wdd.data(), wdA.data(), wdB.data(), wdC.data(),
                                wdD.data(), wdb.data(), B, T_, Dc, N, chunk, cg);
  Buf<T> ud(u), dd(delta), ad(al), bd(Bm), cd(Cm), Dd(D), bid(bi), dyd(dy), y(B * T_ * Dc), zd(zw);
  Buf<float> st(B * nc * Dc * N);
  hyscale::kernels::ScanGate<T> gg;
  if (gated) gg = {zd.p() + Dc, 2 * Dc, nullptr};
  kg::selective_scan_fwd<T>(ud.p(), dd.p(), ad.p(), bd.p(), cd.p(), Dd.p(), bid.p(), y.p(), st.p(), B, T_, Dc, N,
                            chunk, nullptr, gg);
  check_close("y", y, wy, bf ? 1e-2 : 1e-5);
  check_close("chunk states", st, ws, 1e-4);
  const double tt = bf ? 2e-2 : 1e-4, tf = bf ? 1e-3 : 1e-4;
  Buf<float> stc(ws);
  for (int run = 0; run < 2; ++run) {
    INFO("backward from the " << (run == 0 ? "CPU's" : "kernel's") << " chunk states");
    Buf<T> du(B * T_ * Dc), ddl(B * T_ * Dc), dz(B * T_ * Dc);
    if (gated) gg.dz = dz.p();
    Buf<float> dA(Dc * N), dB(B * T_ * N), dC(B * T_ * N), dD(Dc), db(Dc);
    kg::selective_scan_bwd<T>(ud.p(), dd.p(), ad.p(), bd.p(), cd.p(), Dd.p(), bid.p(), run == 0 ? stc.p() : st.p(),
                              dyd.p(), du.p(), ddl.p(), dA.p(), dB.p(), dC.p(), dD.p(), db.p(), B, T_, Dc, N, chunk,
                              nullptr, gg);
    check_close("du", du, wdu, tt);
    check_close("ddelta", ddl, wdd, tt);
    check_close("dA_log", dA, wdA, tf);
    check_close("dB", dB, wdB, tf);
    check_close("dC", dC, wdC, tf);
    check_close("dD", dD, wdD, tf);
    check_close("ddt_bias", db, wdb, tf);
    if (gated) check_close("dz", dz, wdz, tt);
  }
}

// set_deterministic(on) for one scope.
struct DeterministicScope {
  bool old;
  explicit DeterministicScope(bool on) : old(kg::deterministic()) { kg::set_deterministic(on); }
  ~DeterministicScope() { kg::set_deterministic(old); }
};

// Decoding kernels: one causal conv1d step (with and without the fused SiLU; the state is only
// shifted, so it must come back exact) and T_ steps of the scan recurrence in one launch (B and C
// read in place from rows of ld = R + 2N, as x_proj's output) against T_ calls of the CPU step
// on contiguous copies; the fp32 state after them, and the same state when y is not wanted.
template <class T> void decode_case(int64_t B, int64_t T_, int64_t C, int64_t K, int64_t N) {
  constexpr bool bf = is_bf<T>;
  INFO(dt_name<T>() << " decode B " << B << " T " << T_ << " C " << C << " K " << K << " N " << N);
  const uint64_t sd = uint64_t(B * 1000 + T_ * 100 + C * 10 + K + N);
  {
    auto x = randn(B * C, sd, 1, bf), w = randn(C * K, sd + 1, 0.5, bf), bias = randn(C, sd + 2, 0.5, bf);
    auto st0 = randn(B * (K - 1) * C, sd + 3, 1, bf);
    for (bool silu : {false, true}) {
      INFO("conv step, silu " << silu);
      std::vector<float> wy(B * C), wst = st0;
      kc::causal_conv1d_step<float>(x.data(), w.data(), bias.data(), wst.data(), wy.data(), B, C, K);
      if (silu)
        for (auto& v : wy) v = v / (1.0f + std::exp(-v));
      Buf<T> xd(x, 1), wd(w), bd(bias, 2), sdv(st0), y(B * C, 3);
      kg::causal_conv1d_step<T>(xd.p(), wd.p(), bd.p(), sdv.p(), y.p(), B, C, K, silu);
      check_close("conv step y", y, wy, bf ? 1e-2 : 1e-5);
      check_close("conv step state (a shift: exact)", sdv, wst, 1e-30, 1.0);
    }
  }
  const int64_t R = 3, ld = R + 2 * N, Dc = C;
  auto u = randn(B * T_ * Dc, sd + 4, 1, bf), delta = randn(B * T_ * Dc, sd + 5, 1, bf);
  auto dbc = randn(B * T_ * ld, sd + 6, 1, bf), A_log = uniform(Dc * N, sd + 7, -1, 2.5f, bf);
  auto Dp = randn(Dc, sd + 8, 1, bf), dt_bias = randn(Dc, sd + 9, 0.5, bf), h0 = randn(B * Dc * N, sd + 10, 1);
  std::vector<float> wy(B * T_ * Dc), wh = h0;
  for (int64_t t = 0; t < T_; ++t) {
    std::vector<float> ut(B * Dc), dt(B * Dc), Bt(B * N), Ct(B * N), yt(B * Dc);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t c = 0; c < Dc; ++c) {
        ut[b * Dc + c] = u[(b * T_ + t) * Dc + c];
        dt[b * Dc + c] = delta[(b * T_ + t) * Dc + c];
      }
      for (int64_t n = 0; n < N; ++n) {
        Bt[b * N + n] = dbc[(b * T_ + t) * ld + R + n];
        Ct[b * N + n] = dbc[(b * T_ + t) * ld + R + N + n];
      }
    }
    kc::selective_scan_step<float>(ut.data(), dt.data(), A_log.data(), Bt.data(), Ct.data(), Dp.data(),
                                   dt_bias.data(), wh.data(), yt.data(), B, Dc, N);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < Dc; ++c) wy[(b * T_ + t) * Dc + c] = yt[b * Dc + c];
  }
  Buf<T> ud(u, 1), dd(delta), bcd(dbc, 2), ad(A_log), Dd(Dp, 3), bd(dt_bias), y(B * T_ * Dc, 1);
  Buf<float> h(h0), h2(h0);
  kg::selective_scan_steps<T>(ud.p(), dd.p(), ad.p(), bcd.p() + R, bcd.p() + R + N, ld, Dd.p(), bd.p(), h.p(), y.p(), B,
                              T_, Dc, N);
  check_close("scan steps y", y, wy, bf ? 1e-2 : 1e-5);
  check_close("scan steps state", h, wh, 1e-5);
  kg::selective_scan_steps<T>(ud.p(), dd.p(), ad.p(), bcd.p() + R, bcd.p() + R + N, ld, Dd.p(), bd.p(), h2.p(), nullptr,
                              B, T_, Dc, N);
  CHECK(same_bits(h, h2));  // the state does not depend on whether y is written
}

}  // namespace

TEST_CASE("emulated CUDA decoding kernels (conv1d step, scan steps) match the CPU twins", "[emu][decode]") {
  for (auto [B, T_, C, K, N] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>>{
           {1, 1, 1, 1, 1}, {3, 1, 37, 4, 16}, {2, 5, 70, 2, 3}, {1, 130, 9, 3, 64}, {4, 1, 300, 4, 16}}) {
    decode_case<float>(B, T_, C, K, N);
    decode_case<bf16>(B, T_, C, K, N);
  }
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA GMU gate, mul, add_inplace, diff combine and lambda match the CPU twins", "[emu][hybrid]") {
  for (int64_t n : {0, 1, 3, 7, 8, 9, 33, 130, 1001, 4099, 70001})
    for (int mis : {0, 1, 2}) {
      elementwise_case<float>(n, mis);
      elementwise_case<bf16>(n, mis);
    }
  for (int64_t d : {1, 5, 64, 255, 256, 257, 1000}) lambda_case(d);
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA selective scan matches the CPU twin (ungated and with the fused z-gate)", "[emu][scan]") {
  struct C {
    int64_t B, T, Dc, N, chunk;
  };
  // lengths 1, 7, 33, 130 against chunks 16 / 64 / 130 and 16-step sub-chunks; N below, at and
  // above the 16 / 32 / 64 state tiles; channel counts that leave partial channel tiles.
  for (C c : std::vector<C>{{2, 7, 33, 16, 16},
                            {2, 33, 130, 40, 16},
                            {1, 1, 8, 3, 64},
                            {1, 130, 70, 16, 130},
                            {2, 70, 20, 33, 64},
                            {1, 50, 9, 12, 49},
                            {2, 7, 33, 16, 1},
                            {1, 20, 5, 1, 7},
                            {1, 40, 8, 64, 40}})
    for (bool gated : {false, true}) {
      const bool wild = (c.T + c.Dc + gated) % 2 == 1;
      scan_case<float>(c.B, c.T, c.Dc, c.N, c.chunk, wild, gated);
      scan_case<bf16>(c.B, c.T, c.Dc, c.N, c.chunk, !wild, gated);
    }
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA selective scan backward with atomic dB/dC (set_deterministic(false))", "[emu][scan]") {
  const long atomics0 = emu::stats.atomics;
  scan_case<float>(2, 33, 130, 40, 16, true, true);
  CHECK(emu::stats.atomics == atomics0);  // deterministic by default: no atomics
  DeterministicScope scope(false);
  scan_case<float>(2, 33, 130, 40, 16, true, true);
  scan_case<bf16>(1, 70, 20, 17, 64, false, false);
  scan_case<float>(1, 129, 9, 16, 64, false, true);
  CHECK(emu::stats.atomics > atomics0);  // the atomic path ran
  check_no_exit_barriers();
}
