// The CUDA core kernels (core_kernels.cu, conv1d.cu, embed_rope.cu, tensor_kernels.cu) on the CPU
// emulator (cuda_emu.h) against their CPU twins, f32 and bf16, on shapes that are not multiples of
// any block or vector width and with misaligned pointers (the scalar paths). Outputs start as NaN
// and sit between canaries. Tolerances (relative max-norm error): f32 1e-5 (fp32 math, other
// summation orders; 1e-4 for sums over many rows), bf16 1e-2 (one bf16 rounding of the output,
// 2^-8, against the CPU's f32 math on the same bf16-rounded inputs); exact where the kernel only
// moves or rounds data.
#include <algorithm>
#include <cstring>
#include <tuple>

#include "emu_util.h"
#include "kernels/adamw.h"
#include "kernels/conv1d.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/norm.h"
#include "kernels/rope.h"

using namespace hyscale::emutest;
namespace kg = hyscale::kernels::cuda;
namespace kc = hyscale::kernels::cpu;

namespace {

template <class T> void elementwise_case(int64_t n, int mis) {
  constexpr bool bf = is_bf<T>;
  const double tol = bf ? 1e-2 : 1e-5;
  INFO(dt_name<T>() << " n " << n << " misalignment " << mis);
  auto o = [&](int k) { return operand_offset(mis, k); };
  auto x = randn(n, n + 1, 3, bf), y = randn(n, n + 2, 1, bf);
  {
    std::vector<float> w(n);
    kc::silu_fwd<float>(x.data(), w.data(), n);
    Buf<T> a(x, o(0)), r(n, o(1));
    kg::silu_fwd<T>(a.p(), r.p(), n);
    check_close("silu_fwd", r, w, tol);
  }
  {
    std::vector<float> w(n);
    kc::silu_bwd<float>(x.data(), y.data(), w.data(), n);
    Buf<T> a(x, o(0)), b(y, o(1)), r(n, o(2));
    kg::silu_bwd<T>(a.p(), b.p(), r.p(), n);
    check_close("silu_bwd", r, w, tol);
  }
  {
    std::vector<float> w(n);
    kc::add<float>(x.data(), y.data(), w.data(), n);
    Buf<T> a(x, o(0)), b(y, o(1)), r(n, o(2));
    kg::add<T>(a.p(), b.p(), r.p(), n);
    check_close("add", r, w, tol);
  }
  {
    std::vector<float> w(n);
    kc::scale<float>(x.data(), -1.37f, w.data(), n);
    Buf<T> a(x, o(0)), r(n, o(2));
    kg::scale<T>(a.p(), -1.37f, r.p(), n);
    check_close("scale", r, w, tol);
  }
}

template <class T> void swiglu_case(int64_t rows, int64_t I) {
  constexpr bool bf = is_bf<T>;
  const double tol = bf ? 1e-2 : 1e-5;
  INFO(dt_name<T>() << " rows " << rows << " I " << I);
  auto x = randn(rows * 2 * I, rows * 7 + I, 2, bf), dy = randn(rows * I, rows + I * 3, 1, bf);
  std::vector<float> w(rows * I), wd(rows * 2 * I);
  kc::swiglu_fwd<float>(x.data(), w.data(), rows, I);
  kc::swiglu_bwd<float>(x.data(), dy.data(), wd.data(), rows, I);
  Buf<T> xd(x, 1), y(rows * I), dyd(dy), dx(rows * 2 * I, 3);
  kg::swiglu_fwd<T>(xd.p(), y.p(), rows, I);
  kg::swiglu_bwd<T>(xd.p(), dyd.p(), dx.p(), rows, I);
  check_close("swiglu_fwd", y, w, tol);
  check_close("swiglu_bwd", dx, wd, tol);
}

template <class T> void rmsnorm_case(int64_t rows, int64_t D) {
  constexpr bool bf = is_bf<T>;
  const double tol = bf ? 1e-2 : 1e-5;
  INFO(dt_name<T>() << " rows " << rows << " D " << D);
  auto x = randn(rows * D, rows * 3 + D, 2, bf), g = uniform(D, D + 1, 0.5, 1.5, bf);
  auto dy = randn(rows * D, rows + D * 5, 1, bf);
  std::vector<float> wy(rows * D), wr(rows), wdx(rows * D), wdg = randn(D, 99);
  const auto dg0 = wdg;  // dg accumulates
  kc::rmsnorm_fwd<float>(x.data(), g.data(), wy.data(), wr.data(), rows, D, 1e-5);
  Buf<T> xd(x), gd(g), y(rows * D), dyd(dy), dx(rows * D);
  Buf<float> rs(rows), dg(dg0);
  kg::rmsnorm_fwd<T>(xd.p(), gd.p(), y.p(), rs.p(), rows, D, 1e-5);
  check_close("rmsnorm_fwd y", y, wy, tol);
  check_close("rmsnorm_fwd rstd", rs, wr, 1e-5);
  kc::rmsnorm_bwd<float>(x.data(), g.data(), wr.data(), dy.data(), wdx.data(), wdg.data(), rows, D);
  Buf<float> rsc(wr);
  kg::rmsnorm_bwd<T>(xd.p(), gd.p(), rsc.p(), dyd.p(), dx.p(), dg.p(), rows, D);
  check_close("rmsnorm_bwd dx", dx, wdx, bf ? 1e-2 : 1e-4);
  check_close("rmsnorm_bwd dg (accumulated)", dg, wdg, 1e-4);
  // h = x + y, out = rmsnorm(h) in one kernel
  auto y2 = randn(rows * D, rows * 11 + D, 1, bf);
  std::vector<float> h(rows * D), wo(rows * D), wr2(rows);
  for (int64_t i = 0; i < rows * D; ++i) h[i] = bf ? rbf(x[i] + y2[i]) : x[i] + y2[i];
  kc::rmsnorm_fwd<float>(h.data(), g.data(), wo.data(), wr2.data(), rows, D, 1e-6);
  Buf<T> y2d(y2), hd(rows * D), od(rows * D);
  Buf<float> rs2(rows);
  kg::residual_rmsnorm_fwd<T>(xd.p(), y2d.p(), gd.p(), hd.p(), od.p(), rs2.p(), rows, D, 1e-6);
  check_close("residual_rmsnorm h", hd, h, bf ? 1e-2 : 1e-7);
  check_close("residual_rmsnorm out", od, wo, tol);
  check_close("residual_rmsnorm rstd", rs2, wr2, 1e-5);
}

template <class T> void cross_entropy_case(int64_t N, int64_t V) {
  constexpr bool bf = is_bf<T>;
  INFO(dt_name<T>() << " N " << N << " V " << V);
  auto z = randn(N * V, N * 5 + V, 3, bf);
  std::vector<int32_t> t(N);
  std::mt19937 g(uint32_t(N + V));
  for (auto& x : t) x = int32_t(g() % V);
  if (N > 1) t[0] = 0, t[1] = int32_t(V - 1);
  std::vector<float> wl(N), wlse(N), wd(N * V);
  kc::cross_entropy_fwd<float>(z.data(), t.data(), wl.data(), wlse.data(), N, V);
  kc::cross_entropy_bwd<float>(z.data(), t.data(), wlse.data(), 0.25f, wd.data(), N, V, 0);
  Buf<T> zd(z), d(N * V);
  Buf<float> l(N), lse(N), lsec(wlse);
  kg::cross_entropy_fwd<T>(zd.p(), t.data(), l.p(), lse.p(), N, V);
  check_close("cross_entropy loss", l, wl, 1e-5);
  check_close("cross_entropy lse", lse, wlse, 1e-5);
  kg::cross_entropy_bwd<T>(zd.p(), t.data(), lsec.p(), 0.25f, d.p(), N, V, 0);
  check_close("cross_entropy dlogits", d, wd, bf ? 1e-2 : 1e-5);
}

// The vocabulary-parallel pieces: the V columns split into P slices (V % P == 0); each slice's
// stats on the device against the CPU twin, the device combine of the gathered stats against the
// whole-vocabulary CPU loss and lse (the independent reference), and each slice's gradient
// against its columns of the whole-vocabulary gradient. Rows 0-2: targets at the first and last
// column, and a row of -inf logits in every slice but the last (its slices give m = -inf, sum 0).
template <class T> void vocab_cross_entropy_case(int64_t N, int64_t V, int64_t P) {
  constexpr bool bf = is_bf<T>;
  INFO(dt_name<T>() << " vocab-parallel N " << N << " V " << V << " P " << P);
  const int64_t Vl = V / P;
  auto z = randn(N * V, N * 7 + V, 3, bf);
  std::vector<int32_t> t(N);
  std::mt19937 g(uint32_t(N + 3 * V));
  for (auto& x : t) x = int32_t(g() % V);
  if (N > 2) {
    t[0] = 0, t[1] = int32_t(V - 1), t[2] = int32_t(V - 1);
    for (int64_t j = 0; j < V - Vl; ++j) z[2 * V + j] = -INFINITY;
  }
  std::vector<float> wl(N), wlse(N), wd(N * V);
  kc::cross_entropy_fwd<float>(z.data(), t.data(), wl.data(), wlse.data(), N, V);
  kc::cross_entropy_bwd<float>(z.data(), t.data(), wlse.data(), 0.5f, wd.data(), N, V, 0);
  std::vector<float> all;  // [P, 3, N], what the all-gather assembles
  for (int64_t p = 0; p < P; ++p) {
    INFO("slice " << p);
    std::vector<float> zs(N * Vl), wds(N * Vl);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < Vl; ++j) {
        zs[i * Vl + j] = z[i * V + p * Vl + j];
        wds[i * Vl + j] = wd[i * V + p * Vl + j];
      }
    std::vector<double> ws(3 * N);
    kc::cross_entropy_stats<float>(zs.data(), t.data(), p * Vl, ws.data(), N, Vl);
    Buf<T> zd(zs), d(N * Vl);
    Buf<float> st(3 * N);
    kg::cross_entropy_stats<T>(zd.p(), t.data(), p * Vl, st.p(), N, Vl);
    const std::vector<float> got = st.f();
    for (int64_t k = 0; k < 3 * N; ++k) {
      INFO("stat " << k / N << " of row " << k % N << ": device " << got[k] << ", cpu " << ws[k]);
      if (std::isinf(ws[k])) CHECK(got[k] == static_cast<float>(ws[k]));
      else CHECK(std::abs(got[k] - ws[k]) <= 1e-5 * std::max(1.0, std::abs(ws[k])));
    }
    CHECK(st.guards_ok());
    all.insert(all.end(), got.begin(), got.end());
    Buf<float> lsec(wlse);
    kg::cross_entropy_bwd<T>(zd.p(), t.data(), lsec.p(), 0.5f, d.p(), N, Vl, p * Vl);
    check_close("vocab-parallel dlogits", d, wds, bf ? 1e-2 : 1e-5);
  }
  Buf<float> alld(all), l(N), lse(N);
  kg::cross_entropy_combine(alld.p(), P, l.p(), lse.p(), N);
  check_close("vocab-parallel loss rows", l, wl, 1e-5);
  check_close("vocab-parallel lse", lse, wlse, 1e-5);
  // The CPU twin of the combine (f64) on the CPU stats reproduces the whole-vocabulary loss too.
  std::vector<double> cs;
  for (int64_t p = 0; p < P; ++p) {
    std::vector<float> zs(N * Vl);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < Vl; ++j) zs[i * Vl + j] = z[i * V + p * Vl + j];
    std::vector<double> ws(3 * N);
    kc::cross_entropy_stats<float>(zs.data(), t.data(), p * Vl, ws.data(), N, Vl);
    cs.insert(cs.end(), ws.begin(), ws.end());
  }
  std::vector<double> crow(N), clse(N);
  kc::cross_entropy_combine(cs.data(), P, crow.data(), clse.data(), N);
  for (int64_t i = 0; i < N; ++i) {
    INFO("row " << i);
    CHECK(std::abs(crow[i] - wl[i]) <= 1e-5 * std::max(1.0, std::abs(double(wl[i]))));
    CHECK(std::abs(clse[i] - wlse[i]) <= 1e-5 * std::max(1.0, std::abs(double(wlse[i]))));
  }
}

template <class T> void conv_case(int64_t B, int64_t T_, int64_t C, int64_t K, bool silu, int mis) {
  constexpr bool bf = is_bf<T>;
  const double tol = bf ? 1e-2 : 1e-5;
  INFO(dt_name<T>() << (silu ? " conv1d+silu" : " conv1d") << " B " << B << " T " << T_ << " C " << C << " K " << K
                    << " misaligned " << mis);
  auto x = randn(B * T_ * C, T_ + C + K + 7, 1.5, bf), w = randn(C * K, C * K + 11, 0.5, bf);
  auto bias = randn(C, C + 13, 0.5, bf), dy = randn(B * T_ * C, T_ * 5 + C, 1, bf);
  std::vector<float> wy(B * T_ * C), wdx(B * T_ * C), wdw(C * K), wdb(C);
  if (silu) {
    kc::causal_conv1d_silu_fwd<float>(x.data(), w.data(), bias.data(), wy.data(), B, T_, C, K);
    kc::causal_conv1d_silu_bwd<float>(x.data(), w.data(), bias.data(), dy.data(), wdx.data(), wdw.data(), wdb.data(), B,
                                      T_, C, K);
  } else {
    kc::causal_conv1d_fwd<float>(x.data(), w.data(), bias.data(), wy.data(), B, T_, C, K);
    kc::causal_conv1d_bwd<float>(x.data(), w.data(), dy.data(), wdx.data(), wdw.data(), wdb.data(), B, T_, C, K);
  }
  const size_t o = mis ? 1 : 0;
  Buf<T> xd(x, o), wd(w, o), bd(bias, o), dyd(dy, o), y(B * T_ * C, o), dx(B * T_ * C, o);
  Buf<float> dw(C * K), db(C), dw2(C * K), db2(C);
  for (int run = 0; run < 2; ++run) {
    Buf<float>& dwr = run ? dw2 : dw;
    Buf<float>& dbr = run ? db2 : db;
    if (silu) {
      if (run == 0) kg::causal_conv1d_silu_fwd<T>(xd.p(), wd.p(), bd.p(), y.p(), B, T_, C, K);
      kg::causal_conv1d_silu_bwd<T>(xd.p(), wd.p(), bd.p(), dyd.p(), dx.p(), dwr.p(), dbr.p(), B, T_, C, K);
    } else {
      if (run == 0) kg::causal_conv1d_fwd<T>(xd.p(), wd.p(), bd.p(), y.p(), B, T_, C, K);
      kg::causal_conv1d_bwd<T>(xd.p(), wd.p(), dyd.p(), dx.p(), dwr.p(), dbr.p(), B, T_, C, K);
    }
  }
  check_close("conv y", y, wy, tol);
  check_close("conv dx", dx, wdx, tol);
  check_close("conv dw", dw, wdw, 1e-4);
  check_close("conv dbias", db, wdb, 1e-4);
  CHECK((same_bits(dw, dw2) && same_bits(db, db2)));  // deterministic weight gradients
}

template <class T> void rope_case(int64_t B, int64_t T_, int64_t H, int64_t D, int64_t pos0) {
  constexpr bool bf = is_bf<T>;
  INFO(dt_name<T>() << " rope B " << B << " T " << T_ << " H " << H << " D " << D << " pos0 " << pos0);
  const int64_t n = B * T_ * H * D;
  auto x = randn(n, n + pos0, 1, bf);
  std::vector<float> wf(n), wb(n);
  kc::rope_fwd<float>(x.data(), wf.data(), B, T_, H, D, 10000.0, pos0);
  kc::rope_bwd<float>(x.data(), wb.data(), B, T_, H, D, 10000.0, pos0);
  Buf<T> xd(x), f(n), bw(n);
  kg::rope_fwd<T>(xd.p(), f.p(), B, T_, H, D, 10000.0, pos0);
  kg::rope_bwd<T>(xd.p(), bw.p(), B, T_, H, D, 10000.0, pos0);
  check_close("rope_fwd", f, wf, bf ? 1e-2 : 1e-5);
  check_close("rope_bwd", bw, wb, bf ? 1e-2 : 1e-5);
}

// A table of V rows holding vocabulary rows [start, start + V) of `vocab` ids (start 0 and
// vocab V: a whole table): ids of other slices give zero rows and no gradient.
template <class T> void embedding_case(int64_t N, int64_t V, int64_t D, int64_t start = 0, int64_t vocab = 0) {
  constexpr bool bf = is_bf<T>;
  if (vocab == 0) vocab = V;
  INFO(dt_name<T>() << " embedding N " << N << " V " << V << " D " << D << " slice at " << start << " of " << vocab);
  std::vector<int32_t> ids(N);
  std::mt19937 g(uint32_t(N * 3 + D + start));
  for (auto& x : ids) x = int32_t(g() % vocab);
  auto table = randn(V * D, V + D, 1, bf), dout = randn(N * D, N + D, 1, bf), dt0 = randn(V * D, 5);
  std::vector<float> wo(N * D), wdt = dt0;
  // The reference spelled out (the CPU kernel is checked against it too).
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = ids[n] - start;
    for (int64_t c = 0; c < D; ++c) {
      wo[n * D + c] = r >= 0 && r < V ? table[r * D + c] : 0.0f;
      if (r >= 0 && r < V) wdt[r * D + c] += dout[n * D + c];
    }
  }
  std::vector<float> co(N * D, std::nanf("")), cdt = dt0;
  kc::embedding_fwd<float>(ids.data(), table.data(), co.data(), N, D, start, V);
  kc::embedding_bwd<float>(ids.data(), dout.data(), cdt.data(), N, D, start, V);
  CHECK(rel(co, wo) == 0.0);
  CHECK(rel(cdt, wdt) < 1e-6);
  Buf<T> td(table), o(N * D), dd(dout);
  Buf<float> dt(dt0), dt2(dt0);
  kg::embedding_fwd<T>(ids.data(), td.p(), o.p(), N, D, start, V);
  kg::embedding_bwd<T>(ids.data(), dd.p(), dt.p(), N, D, start, V);
  kg::embedding_bwd<T>(ids.data(), dd.p(), dt2.p(), N, D, start, V);
  check_close("embedding_fwd (exact)", o, wo, 1e-30);
  check_close("embedding_bwd (accumulated)", dt, wdt, 1e-6);
  CHECK(same_bits(dt, dt2));  // deterministic
}

}  // namespace

TEST_CASE("emulated CUDA elementwise kernels match the CPU twins", "[emu][core]") {
  for (int64_t n : {1, 3, 4, 7, 33, 1001, 4100, 70001})
    for (int mis : {0, 1}) {
      elementwise_case<float>(n, mis);
      elementwise_case<bf16>(n, mis);
    }
  for (auto [r, I] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {17, 33}, {5, 300}}) {
    swiglu_case<float>(r, I);
    swiglu_case<bf16>(r, I);
  }
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA casts, AdamW and sums of squares match the CPU", "[emu][core]") {
  for (int64_t n : {1, 7, 33, 4100, 70001})
    for (size_t off : {0, 1}) {
      INFO("n " << n << " offset " << off);
      auto x = randn(n, n + 1, 3);
      std::vector<float> xr = rounded(x);
      Buf<float> a(x, off), r2(n, (off + 2) % 3);
      Buf<bf16> r(n, (off + 1) % 3), b(xr, off);
      kg::cast_f32_bf16(a.p(), r.p(), n);
      check_close("cast_f32_bf16 (exact)", r, xr, 1e-30);
      kg::cast_bf16_f32(b.p(), r2.p(), n);
      check_close("cast_bf16_f32 (exact)", r2, xr, 1e-30);
      auto p = randn(n, n + 5), g = randn(n, n + 6), m = randn(n, n + 7, 0.1f), v = uniform(n, n + 8, 0, 0.01f);
      auto wp = p, wm = m, wv = v;
      kc::adamw_step(wp.data(), g.data(), wm.data(), wv.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 7, 0.61f);
      Buf<float> pd(p, off), gd(g, off), md(m, off), vd(v, off);
      Buf<bf16> pb(n, off);
      kg::adamw_step(pd.p(), gd.p(), md.p(), vd.p(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 7, 0.61f, pb.p());
      check_close("adamw p", pd, wp, 1e-6);
      check_close("adamw m", md, wm, 1e-6);
      check_close("adamw v", vd, wv, 1e-6);
      check_close("adamw bf16 copy of p", pb, rounded(pd.f()), 1e-30);
      const double ws = kc::sum_squares<float>(x.data(), n), gs = kg::sum_squares(a.p(), n);
      CHECK(std::fabs(gs - ws) <= 1e-12 * ws);
    }
  // several tensors at once: bit for bit the one-tensor result
  std::vector<std::vector<float>> xs;
  for (int64_t n : {5, 70001, 1, 131072, 300}) xs.push_back(randn(n, 40 + n));
  std::vector<const float*> ptrs;
  std::vector<int64_t> ns;
  for (auto& x : xs) ptrs.push_back(x.data()), ns.push_back(int64_t(x.size()));
  std::vector<double> many(xs.size(), -1.0);
  kg::sum_squares_many(ptrs.data(), ns.data(), int64_t(xs.size()), many.data());
  for (size_t i = 0; i < xs.size(); ++i) CHECK(many[i] == kg::sum_squares(xs[i].data(), ns[i]));
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA RMSNorm and residual RMSNorm match the CPU twins", "[emu][core]") {
  for (auto [r, D] : std::vector<std::pair<int64_t, int64_t>>{{1, 1},
                                                              {3, 7},
                                                              {17, 33},
                                                              {5, 255},
                                                              {4, 256},
                                                              {3, 257},
                                                              {2, 1000},
                                                              {1030, 7},
                                                              {513, 40},
                                                              {3, 2048},
                                                              {2, 3968},
                                                              {2, 4096},
                                                              {2, 8200},
                                                              {70, 1024}}) {
    rmsnorm_case<float>(r, D);
    rmsnorm_case<bf16>(r, D);
  }
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA cross-entropy (whole and vocabulary-parallel), RoPE and embedding (whole and sliced) match the CPU twins", "[emu][core]") {
  for (auto [N, V] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {5, 300}, {4, 1001}, {2, 4099}}) {
    cross_entropy_case<float>(N, V);
    cross_entropy_case<bf16>(N, V);
  }
  for (int64_t D : {2, 6, 64})
    for (int64_t pos0 : {0, 5}) {
      rope_case<float>(2, 7, 3, D, pos0);
      rope_case<bf16>(1, 1, 1, D, pos0);
      rope_case<bf16>(2, 37, 3, D, pos0);
    }
  rope_case<float>(1, 40, 2, 128, 0);
  rope_case<bf16>(1, 40, 2, 16, 3);
  for (auto [N, V, D] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1}, {7, 3, 33}, {100, 13, 300}, {300, 5, 7}}) {
    embedding_case<float>(N, V, D);
    embedding_case<bf16>(N, V, D);
  }
  for (auto [start, vocab] : std::vector<std::pair<int64_t, int64_t>>{{0, 26}, {13, 26}, {8, 32}}) {
    embedding_case<float>(50, 13 - (vocab == 32 ? 5 : 0), 33, start, vocab);
    embedding_case<bf16>(7, 13 - (vocab == 32 ? 5 : 0), 8, start, vocab);
  }
  for (auto [N, V, P] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 2, 2}, {5, 300, 2}, {4, 1000, 4},
                                                                          {3, 4104, 8}}) {
    vocab_cross_entropy_case<float>(N, V, P);
    vocab_cross_entropy_case<bf16>(N, V, P);
  }
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA causal conv1d (plain and fused SiLU) matches the CPU twins", "[emu][core]") {
  for (bool silu : {false, true})
    for (int64_t T_ : {1, 7, 65})
      for (int64_t K : {1, 2, 4, 8})
        for (int64_t C : {1, 33, 130}) {
          if (T_ == 65 && C == 1) continue;
          conv_case<float>(2, T_, C, K, silu, 0);
          conv_case<bf16>(2, T_, C, K, silu, 0);
        }
  conv_case<bf16>(3, 64, 5, 4, true, 1);
  conv_case<float>(1, 200, 129, 3, true, 1);
  conv_case<bf16>(2, 300, 5, 4, false, 1);
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA strided copy and fill move the same bits as a host loop", "[emu][core]") {
  auto esize = [](int dt) { return dt == 2 ? 2 : (dt == 1 || dt == 4) ? 8 : 4; };
  auto load = [](const char* p, int dt, int64_t i) -> double {
    switch (dt) {
      case 0: return reinterpret_cast<const float*>(p)[i];
      case 1: return reinterpret_cast<const double*>(p)[i];
      case 2: return emu::bf2f(reinterpret_cast<const uint16_t*>(p)[i]);
      case 3: return reinterpret_cast<const int32_t*>(p)[i];
      default: return double(reinterpret_cast<const int64_t*>(p)[i]);
    }
  };
  auto store = [](char* p, int dt, int64_t i, double v) {
    switch (dt) {
      case 0: reinterpret_cast<float*>(p)[i] = float(v); break;
      case 1: reinterpret_cast<double*>(p)[i] = v; break;
      case 2: reinterpret_cast<uint16_t*>(p)[i] = emu::f2bf(float(v)); break;
      case 3: reinterpret_cast<int32_t*>(p)[i] = int32_t(v); break;
      default: reinterpret_cast<int64_t*>(p)[i] = int64_t(v); break;
    }
  };
  std::mt19937_64 g(7);
  for (int it = 0; it < 150; ++it) {
    const int nd = int(g() % 6);
    std::vector<int64_t> shape(nd);
    for (auto& s : shape) {
      s = 1 + int64_t(g() % (nd <= 2 ? 40 : 7));
      if (g() % 13 == 0) s = 0;
    }
    int sdt = int(g() % 5), ddt = int(g() % 5);
    if (it % 3 == 0) sdt = int(g() % 2) ? 0 : 2, ddt = 2 - sdt;  // f32 <-> bf16
    else if (it % 3 == 1) ddt = sdt;
    // src: a permuted view with padded strides (and maybe a broadcast dim); dst: padded row-major
    std::vector<int64_t> ss(nd), ds(nd);
    int64_t sspan = 1, dspan = 1;
    {
      std::vector<int> perm(nd);
      for (int i = 0; i < nd; ++i) perm[i] = i;
      std::shuffle(perm.begin(), perm.end(), g);
      for (int k = nd - 1; k >= 0; --k) ss[perm[k]] = sspan, sspan *= std::max<int64_t>(shape[perm[k]], 1) + int64_t(g() % 3);
      if (nd && g() % 5 == 0) ss[g() % nd] = 0;
      for (int d = nd - 1; d >= 0; --d) ds[d] = dspan, dspan *= std::max<int64_t>(shape[d], 1) + (d % 2);
      sspan += 5, dspan += 5;
    }
    const int64_t soff = int64_t(g() % 3), doff = int64_t(g() % 3);
    std::vector<char> src((sspan + soff) * esize(sdt)), dst((dspan + doff) * esize(ddt) + 64, char(0x5a));
    for (int64_t i = 0; i < sspan + soff; ++i) {
      double v = std::normal_distribution<double>(0, 100)(g);
      store(src.data(), sdt, i, sdt >= 3 ? std::round(v) : v);
    }
    std::vector<char> ref = dst;
    int64_t n = 1;
    for (auto s : shape) n *= s;
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i, so = 0, dof = 0;
      for (int d = nd - 1; d >= 0; --d) {
        const int64_t k = rem % shape[d];
        rem /= shape[d];
        so += k * ss[d], dof += k * ds[d];
      }
      if (sdt == ddt)
        std::memcpy(ref.data() + (doff + dof) * esize(ddt), src.data() + (soff + so) * esize(sdt), esize(sdt));
      else store(ref.data() + doff * esize(ddt), ddt, dof, load(src.data() + soff * esize(sdt), sdt, so));
    }
    kg::strided_copy(dst.data() + doff * esize(ddt), ddt, ds.data(), src.data() + soff * esize(sdt), sdt, ss.data(),
                     shape.data(), nd);
    INFO("iteration " << it << ": " << nd << " dims, " << n << " elements, dtype " << sdt << " -> " << ddt);
    CHECK(dst == ref);
  }
  for (int dt = 0; dt < 5; ++dt)
    for (int64_t n : {0L, 1L, 5L, 300L, 70001L})
      for (double v : {0.0, -3.0, 1.7}) {
        std::vector<char> b((n + 8) * esize(dt), char(0x33)), r = b;
        for (int64_t i = 0; i < n; ++i) store(r.data() + esize(dt), dt, i, v);
        kg::fill(b.data() + esize(dt), dt, n, v);
        INFO("fill dtype " << dt << " n " << n << " value " << v);
        CHECK(b == r);
      }
  check_no_exit_barriers();
}
