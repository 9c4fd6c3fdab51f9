// The CUDA flash-attention kernels (attention.cu) and the fused differential attention
// (diff_attention.cu) on the CPU emulator (cuda_emu.h) against the CPU twins: the tensor-core
// kernels (bf16, D = Dv in {64, 128}, emulated mma.sync / ldmatrix / cp.async, at 32 and 16 query
// rows per warp), the SIMT kernels (f32, other head dims, misaligned pointers, and bf16 on an
// emulated sm_75), decode, on lengths that are not multiples of the tiles, windows {1, 2, 65, 129,
// >= T}, GQA ratios 1, 3, 4. Tolerances (relative max-norm error): f32 1e-4; bf16 2e-2 (P and dS
// rounded to bf16 for the tensor-core products, bf16 outputs); lse 1e-4; dq and dk relative to
// max(max|want|, 0.1 max|dv|), as the gpu tests (a window of 1 makes them exactly 0 on the CPU);
// dlambda (a sum with cancellation) 1e-6 of sum |g o2|.
#include <cstdlib>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/scoped_env.h"
#include "emu_util.h"
#include "kernels/attention.h"
#include "kernels/cuda_attention.h"
#include "kernels/cuda_diff_attention.h"

using namespace hyscale::emutest;
using hyscale::ScopedEnv;
namespace kg = hyscale::kernels::cuda;
namespace kc = hyscale::kernels::cpu;

namespace {

struct DetScope {  // kernels/cuda.h's set_deterministic for one scope
  bool old;
  explicit DetScope(bool on) : old(kg::deterministic()) { kg::set_deterministic(on); }
  ~DetScope() { kg::set_deterministic(old); }
};
struct SmScope {
  int old;
  explicit SmScope(int major) : old(emu::sm_major) { emu::sm_major = major; }
  ~SmScope() { emu::sm_major = old; }
};

// Forward and backward (run twice: bit-identical) of one case against the CPU twin. `off` shifts
// every kernel pointer by one element (breaks the 16-byte alignment: the SIMT fallback).
template <class T>
void attention_case(int64_t B, int64_t T_, int64_t H, int64_t Hk, int64_t D, int64_t Dv, int64_t window,
                    size_t off = 0, bool bwd = true) {
  constexpr bool bf = is_bf<T>;
  INFO(dt_name<T>() << " attention B " << B << " T " << T_ << " H " << H << " Hk " << Hk << " D " << D << " Dv " << Dv
                    << " window " << window << " offset " << off << " sm_" << emu::sm_major << "x");
  const double tol = bf ? 2e-2 : 1e-4, scale = 1.0 / std::sqrt(double(D));
  const uint64_t seed = 1000 + 97 * T_ + 13 * D + 7 * Dv + 3 * H + Hk + 31 * (window + 1);
  auto q = randn(B * T_ * H * D, seed + 1, 1.5f, bf), k = randn(B * T_ * Hk * D, seed + 2, 1.5f, bf);
  auto v = randn(B * T_ * Hk * Dv, seed + 3, 1, bf), dout = randn(B * T_ * H * Dv, seed + 4, 1, bf);
  std::vector<float> wout(B * T_ * H * Dv), wlse(B * H * T_);
  kc::attention_fwd<float>(q.data(), k.data(), v.data(), wout.data(), wlse.data(), B, T_, H, Hk, D, Dv, scale, window);
  const std::vector<float> out_in = bf ? rounded(wout) : wout;  // the backward's `out`, as stored
  std::vector<float> wdq(B * T_ * H * D), wdk(B * T_ * Hk * D), wdv(B * T_ * Hk * Dv);
  kc::attention_bwd<float>(q.data(), k.data(), v.data(), out_in.data(), dout.data(), wlse.data(), wdq.data(),
                           wdk.data(), wdv.data(), B, T_, H, Hk, D, Dv, scale, window);
  Buf<T> qd(q, off), kd(k, off), vd(v, off), dod(dout, off), oind(out_in, off), out(B * T_ * H * Dv, off);
  Buf<float> lse(B * H * T_), lsec(wlse);
  // The tensor-core kernels run exactly where the dispatch promises them (kernels/cuda_attention.h).
  const bool mma = bf && (D == 64 || D == 128) && Dv == D && off == 0 && emu::sm_major >= 8 && T_ > 0;
  // HYSCALE_ATTN_WGMMA=1: the forward's tensor-core kernel is the sm_90a warpgroup-MMA one
  const char* wg_env = std::getenv("HYSCALE_ATTN_WGMMA");
  const bool wg = mma && wg_env != nullptr && std::string(wg_env) == "1";
  const long mma0 = emu::stats.mma, wg0 = emu::stats.wgmma;
  kg::attention_fwd<T>(qd.p(), kd.p(), vd.p(), out.p(), lse.p(), B, T_, H, Hk, D, Dv, scale, window);
  CHECK((emu::stats.mma > mma0) == (mma && !wg));
  CHECK((emu::stats.wgmma > wg0) == wg);
  check_close("out", out, wout, tol);
  check_close("lse", lse, wlse, 1e-4);
  if (!bwd) return;
  double fl = 0;
  for (float x : wdv) fl = std::max(fl, 0.1 * std::fabs(double(x)));
  Buf<T> dq(B * T_ * H * D, off), dk(B * T_ * Hk * D, off), dv(B * T_ * Hk * Dv, off);
  Buf<T> dq2(B * T_ * H * D, off), dk2(B * T_ * Hk * D, off), dv2(B * T_ * Hk * Dv, off);
  const long mma1 = emu::stats.mma, atom1 = emu::stats.atomics, wg1 = emu::stats.wgmma;
  kg::attention_bwd<T>(qd.p(), kd.p(), vd.p(), oind.p(), dod.p(), lsec.p(), dq.p(), dk.p(), dv.p(), B, T_, H, Hk, D, Dv,
                       scale, window);
  const bool wg_bwd = wg && kg::deterministic();  // the atomic-dq backward stays mma.sync
  CHECK((emu::stats.mma > mma1) == (mma && !wg_bwd));
  CHECK((emu::stats.wgmma > wg1) == wg_bwd);
  // set_deterministic(false): the tensor-core backward adds dq with atomics (and only it does)
  const bool atomic_dq = mma && !kg::deterministic();
  CHECK((emu::stats.atomics > atom1) == atomic_dq);
  kg::attention_bwd<T>(qd.p(), kd.p(), vd.p(), oind.p(), dod.p(), lsec.p(), dq2.p(), dk2.p(), dv2.p(), B, T_, H, Hk,
                       D, Dv, scale, window);
  check_close("dq", dq, wdq, tol, fl);
  check_close("dk", dk, wdk, tol, fl);
  check_close("dv", dv, wdv, tol);
  CHECK((same_bits(dk, dk2) && same_bits(dv, dv2)));  // dk, dv: no atomics in either mode
  if (kg::deterministic()) CHECK(same_bits(dq, dq2));  // deterministic backward
}

// Windows that give distinct effective windows for length T: 1, 2, 65, 129 and full.
std::vector<int64_t> windows_for(int64_t T_) {
  std::vector<int64_t> r;
  std::set<int64_t> seen;
  for (int64_t w : {int64_t(0), int64_t(1), int64_t(2), int64_t(65), int64_t(129), T_ + 5}) {
    const int64_t eff = (w <= 0 || w >= T_) ? T_ : w;
    if (seen.insert(eff).second) r.push_back(w);
  }
  return r;
}

template <class T>
void decode_case(int64_t H, int64_t Hk, int64_t D, int64_t Dv, bool strided, int64_t cap = 70,
                 std::vector<int64_t> nv = {70, 1, 33}) {
  constexpr bool bf = is_bf<T>;
  INFO(dt_name<T>() << " decode H " << H << " Hk " << Hk << " D " << D << " Dv " << Dv << " strided " << strided
                    << " cap " << cap << " splits " << (std::getenv("HYSCALE_DECODE_SPLITS") ? std::getenv("HYSCALE_DECODE_SPLITS") : "auto"));
  const double tol = bf ? 2e-2 : 1e-4, scale = 1.0 / std::sqrt(double(D));
  const int64_t B = int64_t(nv.size());
  const int64_t kw = strided ? 2 * D : D, vw = strided ? 2 * Dv : Dv;  // strided: K, V halves of wider rows
  auto q = randn(B * H * D, 300 + D + H, 1.5f, bf), kcache = randn(B * cap * Hk * kw, 301 + D, 1.5f, bf);
  auto vcache = randn(B * cap * Hk * vw, 302 + Dv, 1, bf);
  const int64_t k_pos = strided ? Hk * kw : 0, k_head = strided ? kw : 0, v_pos = strided ? Hk * vw : 0,
                v_head = strided ? vw : 0, koff = strided ? D : 0, voff = strided ? Dv : 0;
  std::vector<float> want(B * H * Dv);
  kc::attention_decode<float>(q.data(), kcache.data() + koff, vcache.data() + voff, want.data(), B, H, Hk, D, Dv, cap,
                              nv.data(), scale, k_pos, k_head, v_pos, v_head);
  Buf<T> qd(q), kd(kcache), vd(vcache), out(B * H * Dv);
  kg::attention_decode<T>(qd.p(), kd.p() + koff, vd.p() + voff, out.p(), B, H, Hk, D, Dv, cap, nv.data(), scale, k_pos,
                          k_head, v_pos, v_head);
  check_close("decode out", out, want, tol);
}

// One decoding step's RoPE and KV append (decode_rope_append) against the CPU twin: every row at its
// own position, the whole caches compared (untouched slots included), q-only (Hk = 0), no RoPE.
template <class T>
void rope_append_case(int64_t B, int64_t H, int64_t Hk, int64_t D, int64_t cap, bool ring, double base,
                      std::vector<int64_t> n_tok) {
  constexpr bool bf = is_bf<T>;
  INFO(dt_name<T>() << " rope_append B " << B << " H " << H << " Hk " << Hk << " D " << D << " cap " << cap
                    << " ring " << ring << " base " << base);
  const int64_t W = (H + 2 * Hk) * D, nc = B * std::max<int64_t>(cap, 1) * Hk * D;
  auto qkv = randn(B * W, 40 + D + H, 1, bf), k0 = randn(nc, 41 + D, 1, bf), v0 = randn(nc, 42 + D, 1, bf);
  std::vector<float> wq(B * H * D), wk = k0, wv = v0;
  kc::decode_rope_append<float>(qkv.data(), wq.data(), Hk ? wk.data() : nullptr, Hk ? wv.data() : nullptr, n_tok.data(),
                                B, H, Hk, D, cap, ring, base);
  Buf<T> xd(qkv), qd(B * H * D), kd(k0), vd(v0);
  kg::decode_rope_append<T>(xd.p(), qd.p(), Hk ? kd.p() : nullptr, Hk ? vd.p() : nullptr, n_tok.data(), B, H, Hk, D,
                            cap, ring, base);
  check_close("q", qd, wq, bf ? 1e-2 : 1e-6);
  check_close("k cache", kd, wk, bf ? 1e-2 : 1e-6);
  check_close("v cache (copies: exact)", vd, wv, 1e-30, 1.0);
}

// Fused differential attention (both branches share K/V loads) against two CPU attentions:
// out = a1 - lambda a2 with a_i = attention(q_i, k_i, v), q = [q1 | q2], k = [k1 | k2] per head.
std::vector<float> half_of(const std::vector<float>& x, int64_t rows, int64_t hd, int h) {
  std::vector<float> r(rows * hd);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t d = 0; d < hd; ++d) r[i * hd + d] = x[i * 2 * hd + h * hd + d];
  return r;
}
// The tensor-core kernels (diff_attention_mma.cu) run exactly where the dispatch promises them:
// bf16, hd 64 or 128, 16-byte aligned pointers, sm_80+, HYSCALE_DIFF_ATTN_MMA not 0, and each
// kernel's shared memory within the device's opt-in limit (the dk/dv kernel at hd 128 needs 165 KB:
// an A100 runs its SIMT form beside the tensor-core dq kernel). Expected kernels:
kg::DiffAttnKernels diff_paths(bool bf, int64_t hd, size_t off) {
  const char* e = std::getenv("HYSCALE_DIFF_ATTN_MMA");
  const bool on = bf && (hd == 64 || hd == 128) && off == 0 && emu::sm_major >= 8 &&
                  !(e != nullptr && std::string(e) == "0");
  const size_t limit = size_t(emu::smem_optin_bytes);
  const size_t fwd = hd == 64 ? 87040 : 101376, dq = hd == 64 ? 104448 : 135168,
               dkdv = hd == 64 ? 103424 : 168960;  // DMmaCfg, bytes
  return {on && fwd <= limit, on && dq <= limit, on && dkdv <= limit};
}
// off shifts every kernel pointer by one element (breaks the 16-byte alignment: the SIMT kernels).
template <class T>
void diff_case(int64_t B, int64_t T_, int64_t Hp, int64_t Hkp, int64_t hd, int64_t w, size_t off = 0) {
  constexpr bool bf = is_bf<T>;
  const kg::DiffAttnKernels path = diff_paths(bf, hd, off);
  INFO(dt_name<T>() << " diff attention B " << B << " T " << T_ << " Hp " << Hp << " Hkp " << Hkp << " hd " << hd
                    << " window " << w << " offset " << off << " sm_" << emu::sm_major << "x, opt-in "
                    << emu::smem_optin_bytes << " B; tensor cores: forward " << path.fwd << ", dq " << path.bwd_dq
                    << ", dk/dv " << path.bwd_dkdv);
  if (bf && off == 0) {  // the dispatch's query agrees (and the mma counts below say it is true)
    const kg::DiffAttnKernels q = kg::diff_attention_kernels(hd);
    CHECK(q.fwd == path.fwd);
    CHECK(q.bwd_dq == path.bwd_dq);
    CHECK(q.bwd_dkdv == path.bwd_dkdv);
  }
  const double sc = 1.0 / std::sqrt(double(hd)), tol = bf ? 2e-2 : 1e-4;
  const float lam = 0.4f;
  const int64_t rq = B * T_ * Hp, rk = B * T_ * Hkp;
  auto q = randn(rq * 2 * hd, T_ + hd, 1.5f, bf), k = randn(rk * 2 * hd, T_ + hd + 1, 1.5f, bf);
  auto v = randn(rk * 2 * hd, T_ + 2, 1, bf), g = randn(rq * 2 * hd, T_ + 3, 1, bf);
  auto q1 = half_of(q, rq, hd, 0), q2 = half_of(q, rq, hd, 1), k1 = half_of(k, rk, hd, 0), k2 = half_of(k, rk, hd, 1);
  std::vector<float> a1(rq * 2 * hd), a2(rq * 2 * hd), l1(B * Hp * T_), l2(B * Hp * T_), out(rq * 2 * hd);
  kc::attention_fwd<float>(q1.data(), k1.data(), v.data(), a1.data(), l1.data(), B, T_, Hp, Hkp, hd, 2 * hd, sc, w);
  kc::attention_fwd<float>(q2.data(), k2.data(), v.data(), a2.data(), l2.data(), B, T_, Hp, Hkp, hd, 2 * hd, sc, w);
  for (size_t i = 0; i < out.size(); ++i) out[i] = a1[i] - lam * a2[i];
  Buf<T> qd(q, off), kd(k, off), vd(v, off), od(rq * 2 * hd, off), o1(rq * 2 * hd, off), o2(rq * 2 * hd, off);
  Buf<float> ld(std::vector<float>{lam}), L1(B * Hp * T_), L2(B * Hp * T_);
  const long mma0 = emu::stats.mma;
  kg::diff_attention_fwd<T>(qd.p(), kd.p(), vd.p(), ld.p(), od.p(), o1.p(), o2.p(), L1.p(), L2.p(), B, T_, Hp, Hkp, hd,
                            sc, w);
  CHECK((emu::stats.mma > mma0) == path.fwd);
  check_close("out", od, out, tol);
  check_close("branch 1 output", o1, a1, tol);
  check_close("branch 2 output", o2, a2, tol);
  check_close("lse 1", L1, l1, 1e-4);
  check_close("lse 2", L2, l2, 1e-4);
  // backward: d(a1) = g, d(a2) = -lambda g, dlambda = -sum g a2
  const auto a1r = bf ? rounded(a1) : a1, a2r = bf ? rounded(a2) : a2;
  std::vector<float> g2(g.size());
  for (size_t i = 0; i < g.size(); ++i) g2[i] = -lam * g[i];
  std::vector<float> dq1(rq * hd), dk1(rk * hd), dv1(rk * 2 * hd), dq2(rq * hd), dk2(rk * hd), dv2(rk * 2 * hd);
  kc::attention_bwd<float>(q1.data(), k1.data(), v.data(), a1r.data(), g.data(), l1.data(), dq1.data(), dk1.data(),
                           dv1.data(), B, T_, Hp, Hkp, hd, 2 * hd, sc, w);
  kc::attention_bwd<float>(q2.data(), k2.data(), v.data(), a2r.data(), g2.data(), l2.data(), dq2.data(), dk2.data(),
                           dv2.data(), B, T_, Hp, Hkp, hd, 2 * hd, sc, w);
  std::vector<float> wdq(rq * 2 * hd), wdk(rk * 2 * hd), wdv(rk * 2 * hd);
  for (int64_t i = 0; i < rq; ++i)
    for (int64_t d = 0; d < hd; ++d) wdq[i * 2 * hd + d] = dq1[i * hd + d], wdq[i * 2 * hd + hd + d] = dq2[i * hd + d];
  for (int64_t i = 0; i < rk; ++i)
    for (int64_t d = 0; d < hd; ++d) wdk[i * 2 * hd + d] = dk1[i * hd + d], wdk[i * 2 * hd + hd + d] = dk2[i * hd + d];
  for (size_t i = 0; i < wdv.size(); ++i) wdv[i] = dv1[i] + dv2[i];
  double dl = 0, dl_abs = 0;  // dlambda = -sum g a2; its error is judged against sum |g a2|
  for (size_t i = 0; i < g.size(); ++i) dl += double(g[i]) * a2r[i], dl_abs += std::fabs(double(g[i]) * a2r[i]);
  Buf<T> o1c(a1r, off), o2c(a2r, off), gd(g, off), dq(rq * 2 * hd, off), dk(rk * 2 * hd, off), dv(rk * 2 * hd, off);
  Buf<float> L1c(l1), L2c(l2), dld(1);
  const long mma1 = emu::stats.mma;
  kg::diff_attention_bwd<T>(qd.p(), kd.p(), vd.p(), ld.p(), o1c.p(), o2c.p(), L1c.p(), L2c.p(), gd.p(), dq.p(), dk.p(),
                            dv.p(), dld.p(), B, T_, Hp, Hkp, hd, sc, w);
  CHECK((emu::stats.mma > mma1) == (path.bwd_dq || path.bwd_dkdv));
  double floor = 0;  // a window of 1 makes dq, dk exactly 0 on the CPU: there against 0.1 max|dv|
  if (w == 1 || T_ == 1)
    for (float x : wdv) floor = std::max(floor, 0.1 * std::fabs(double(x)));
  check_close("dq", dq, wdq, tol, floor);
  check_close("dk", dk, wdk, tol, floor);
  check_close("dv", dv, wdv, tol);
  {  // deterministic: a second backward is bit-identical
    Buf<T> dq2b(rq * 2 * hd, off), dk2b(rk * 2 * hd, off), dv2b(rk * 2 * hd, off);
    Buf<float> dl2b(1);
    kg::diff_attention_bwd<T>(qd.p(), kd.p(), vd.p(), ld.p(), o1c.p(), o2c.p(), L1c.p(), L2c.p(), gd.p(), dq2b.p(),
                              dk2b.p(), dv2b.p(), dl2b.p(), B, T_, Hp, Hkp, hd, sc, w);
    auto same = [](const Buf<T>& a, const Buf<T>& b) {  // bitwise (the guards hold NaN payloads)
      return a.v.size() == b.v.size() && std::memcmp(a.v.data(), b.v.data(), a.v.size() * sizeof(T)) == 0;
    };
    CHECK(same(dq2b, dq));
    CHECK(same(dk2b, dk));
    CHECK(same(dv2b, dv));
    CHECK(std::memcmp(dl2b.p(), dld.p(), sizeof(float)) == 0);
  }
  const double dl_err = std::fabs(double(dld.f()[0]) + dl) / std::max(dl_abs, 1e-30);
  INFO("dlambda " << dld.f()[0] << " want " << -dl << ": error / sum|g a2| = " << dl_err);
  CHECK(dl_err < 1e-6);  // fp32 sums of the same products in another order
  CHECK(dld.guards_ok());
}

}  // namespace

TEST_CASE("emulated CUDA decode RoPE + KV append matches the CPU twin", "[emu][attention][decode]") {
  for (int dt = 0; dt < 2; ++dt) {
    auto run = [&](auto... a) {
      if (dt == 0) rope_append_case<float>(a...);
      else rope_append_case<bf16>(a...);
    };
    run(int64_t(3), int64_t(4), int64_t(2), int64_t(64), int64_t(8), true, 1e4, std::vector<int64_t>{1, 9, 20});
    run(int64_t(2), int64_t(8), int64_t(1), int64_t(128), int64_t(30), false, 1e4, std::vector<int64_t>{30, 2});
    run(int64_t(2), int64_t(6), int64_t(0), int64_t(32), int64_t(0), false, 5e5, std::vector<int64_t>{7, 1});
    run(int64_t(1), int64_t(2), int64_t(2), int64_t(7), int64_t(4), true, 0.0, std::vector<int64_t>{6});
  }
  // A RoPE over an odd head dim is refused.
  Buf<float> x(std::vector<float>(24, 0.0f)), q(8);
  const std::vector<int64_t> nt{1};
  CHECK_THROWS_WITH(kg::decode_rope_append<float>(x.p(), q.p(), nullptr, nullptr, nt.data(), 1, 1, 0, 7, 0, false, 1e4),
                    Catch::Contains("even head dim"));
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA tensor-core attention (bf16, D = Dv = 64) matches the CPU twin", "[emu][attention]") {
  const long mma0 = emu::stats.mma;
  for (int64_t T_ : {1, 7, 129, 200})
    for (int64_t w : windows_for(T_)) attention_case<bf16>(T_ == 129 ? 2 : 1, T_, 4, 1, 64, 64, w);
  attention_case<bf16>(1, 130, 6, 2, 64, 64, 0);
  attention_case<bf16>(1, 130, 2, 2, 64, 64, 65);
  CHECK(emu::stats.mma > mma0);  // the tensor-core kernels ran
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA tensor-core attention at 16 query rows per warp matches the CPU twin", "[emu][attention]") {
  // The setting takes effect: the forward runs 8 warps of 16 rows per 128-query tile instead of
  // 4 warps of 32, i.e. twice the threads for the same grid.
  {
    const int64_t T_ = 130, H = 2, D = 64;
    auto x = randn(T_ * H * D, 9, 1.0f, true);
    Buf<bf16> q(x), o(T_ * H * D);
    Buf<float> lse(H * T_);
    long threads[2];
    for (int i = 0; i < 2; ++i) {
      ScopedEnv env("HYSCALE_ATTN_ROWS_PER_WARP", i == 0 ? "32" : "16");
      const long t0 = emu::stats.threads;
      kg::attention_fwd<bf16>(q.p(), q.p(), q.p(), o.p(), lse.p(), 1, T_, H, H, D, D, 0.125, 0);
      threads[i] = emu::stats.threads - t0;
    }
    CHECK(threads[1] == 2 * threads[0]);
  }
  ScopedEnv env("HYSCALE_ATTN_ROWS_PER_WARP", "16");
  const long mma0 = emu::stats.mma;
  for (int64_t w : windows_for(129)) attention_case<bf16>(1, 129, 4, 1, 64, 64, w);
  attention_case<bf16>(1, 130, 6, 2, 64, 64, 0);
  attention_case<bf16>(1, 150, 2, 1, 128, 128, 0);
  CHECK(emu::stats.mma > mma0);
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA tensor-core attention (bf16, D = Dv = 128) matches the CPU twin", "[emu][attention]") {
  const long mma0 = emu::stats.mma;
  for (int64_t T_ : {7, 129})
    for (int64_t w : windows_for(T_)) attention_case<bf16>(1, T_, 3, 1, 128, 128, w);
  attention_case<bf16>(1, 100, 4, 4, 128, 128, 2);
  CHECK(emu::stats.mma > mma0);
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA wgmma attention (HYSCALE_ATTN_WGMMA=1, sm_90a) matches the CPU twin",
          "[emu][attention][wgmma]") {
  // Emulated warpgroup MMA (cuda_emu.h: layouts of the PTX ISA, asynchronous until the wait) on
  // lengths that are not multiples of the tiles (forward 128 x 128, dk/dv 128 keys x 64 queries, dq
  // 128 queries x 64 keys), every window class, GQA 1-4 (the group's fp32 partials), both head
  // dims; forward and deterministic backward (run twice: bit-identical).
  ScopedEnv env("HYSCALE_ATTN_WGMMA", "1");
  const long wg0 = emu::stats.wgmma;
  for (int64_t T_ : {1, 7, 129, 300})
    for (int64_t w : windows_for(T_)) attention_case<bf16>(T_ == 129 ? 2 : 1, T_, 4, 1, 64, 64, w);
  attention_case<bf16>(1, 200, 6, 2, 64, 64, 0);
  for (int64_t T_ : {7, 257})
    for (int64_t w : windows_for(T_)) attention_case<bf16>(1, T_, 3, 1, 128, 128, w);
  attention_case<bf16>(2, 130, 4, 4, 128, 128, 2);
  // Tile multiples (T 64: the second warpgroup idle; 256), dk/dv written directly (no GQA) at both
  // head dims under a full causal mask, GQA 2 with B 2 at D 128, a window that splits a warp's 16
  // keys between masked and unmasked tiles.
  attention_case<bf16>(1, 64, 2, 1, 64, 64, 0);
  attention_case<bf16>(1, 256, 2, 2, 64, 64, 0);
  attention_case<bf16>(1, 300, 2, 2, 128, 128, 0);
  attention_case<bf16>(2, 257, 4, 2, 128, 128, 65);
  attention_case<bf16>(1, 200, 2, 1, 64, 64, 17);
  {  // the atomic-dq backward (set_deterministic(false)) stays on mma.sync under the setting
    DetScope det(false);
    attention_case<bf16>(1, 130, 4, 2, 64, 64, 0);
  }
  // 5 key tiles: the 3-stage V / 2-stage K rotation wraps
  attention_case<bf16>(1, 520, 2, 1, 64, 64, 0, 0, false);
  attention_case<bf16>(1, 520, 2, 2, 128, 128, 200, 0, false);
  CHECK(emu::stats.wgmma > wg0);
  check_no_exit_barriers();
  {  // only 0 and 1 are settings; the SIMT cases (f32) never read it
    ScopedEnv bad("HYSCALE_ATTN_WGMMA", "2");
    auto x = randn(64 * 64, 5, 1.0f, true);
    Buf<bf16> qb(x), ob(64 * 64);
    Buf<float> lb(64);
    CHECK_THROWS_WITH(kg::attention_fwd<bf16>(qb.p(), qb.p(), qb.p(), ob.p(), lb.p(), 1, 64, 1, 1, 64, 64, 0.125, 0),
                      Catch::Contains("HYSCALE_ATTN_WGMMA=2"));
  }
  {  // an explicit request on a device that is not compute capability 9.0 is an error, not a fallback
    SmScope sm(8);
    auto x = randn(64 * 64, 6, 1.0f, true);
    Buf<bf16> qb(x), ob(64 * 64);
    Buf<float> lb(64);
    CHECK_THROWS_WITH(kg::attention_fwd<bf16>(qb.p(), qb.p(), qb.p(), ob.p(), lb.p(), 1, 64, 1, 1, 64, 64, 0.125, 0),
                      Catch::Contains("compute capability 9.0"));
  }
}

TEST_CASE("emulated CUDA tensor-core attention backward with atomic dq (set_deterministic(false)) matches the CPU twin",
          "[emu][attention]") {
  // dq comes from the dk/dv kernel (dS staged in shared memory, dS K added with atomics into an fp32
  // accumulator; the dq kernel does not run): 5 products per visible pair instead of 7, so the
  // backward issues fewer mma than the deterministic one on the same case.
  DetScope det(false);
  for (int64_t T_ : {1, 7, 129, 200})
    for (int64_t w : windows_for(T_)) attention_case<bf16>(T_ == 129 ? 2 : 1, T_, 4, 1, 64, 64, w);
  attention_case<bf16>(1, 130, 6, 2, 64, 64, 0);  // GQA 3: the group's partial dk/dv and the atomics together
  for (int64_t T_ : {7, 129})
    for (int64_t w : windows_for(T_)) attention_case<bf16>(1, T_, 3, 1, 128, 128, w);
  attention_case<bf16>(1, 100, 4, 4, 128, 128, 2);
  attention_case<bf16>(1, 70, 2, 1, 96, 96, 0);  // the SIMT path ignores the setting (deterministic)
  attention_case<float>(1, 70, 2, 1, 64, 64, 0);
  long mma[2];
  for (int m = 0; m < 2; ++m) {
    DetScope d(m == 0);
    const int64_t T_ = 256, H = 2, D = 64;
    auto x = randn(T_ * H * D, 11, 1.0f, true);
    Buf<bf16> q(x), o(T_ * H * D), g(x), dq(T_ * H * D), dk(T_ * H * D), dv(T_ * H * D);
    Buf<float> lse(H * T_);
    kg::attention_fwd<bf16>(q.p(), q.p(), q.p(), o.p(), lse.p(), 1, T_, H, H, D, D, 0.125, 0);
    const long m0 = emu::stats.mma;
    kg::attention_bwd<bf16>(q.p(), q.p(), q.p(), o.p(), g.p(), lse.p(), dq.p(), dk.p(), dv.p(), 1, T_, H, H, D, D, 0.125,
                            0);
    mma[m] = emu::stats.mma - m0;
  }
  INFO("backward mma: deterministic " << mma[0] << ", atomic dq " << mma[1]);
  CHECK(mma[1] < mma[0]);
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA SIMT attention (f32, other head dims, bf16 fallbacks) and decode match the CPU twin",
          "[emu][attention]") {
  const long mma0 = emu::stats.mma;
  attention_case<float>(1, 7, 2, 1, 16, 16, 0);
  attention_case<float>(1, 129, 2, 2, 16, 16, 2);
  attention_case<float>(1, 70, 4, 1, 64, 64, 65);
  attention_case<float>(1, 70, 2, 1, 128, 256, 0);
  attention_case<float>(2, 40, 4, 2, 20, 36, 3);
  attention_case<float>(1, 33, 3, 3, 100, 200, 1);
  attention_case<bf16>(1, 70, 4, 2, 64, 128, 0);  // D != Dv: no tensor-core path
  attention_case<bf16>(1, 70, 2, 1, 64, 64, 65, 1);  // misaligned
  {
    SmScope sm(7);  // below sm_80: SIMT
    attention_case<bf16>(1, 65, 2, 1, 64, 64, 0);
  }
  CHECK(emu::stats.mma == mma0);  // none of these may take the tensor cores
  for (auto [H, Hk, D, Dv] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
           {8, 2, 64, 64}, {8, 8, 16, 32}, {20, 2, 128, 256}, {4, 1, 40, 24}, {4, 2, 20, 12}, {4, 2, 18, 10}})
    for (bool s : {false, true}) {  // (16-byte cache loads where rows allow: not for bf16 at 20/12, nor at 18/10)
      decode_case<float>(H, Hk, D, Dv, s);
      decode_case<bf16>(H, Hk, D, Dv, s);
    }
  // The cache split over several CTAs (flash-decoding) and merged: splits that end inside a
  // 32-slot chunk, rows whose slots fill only some splits (the others empty), a row of one slot.
  for (const char* splits : {"2", "5", "11", "1000"}) {
    ScopedEnv env("HYSCALE_DECODE_SPLITS", splits);
    decode_case<float>(8, 2, 64, 64, false, 300, {300, 1, 129, 37});
    decode_case<bf16>(20, 2, 128, 256, true, 300, {300, 1, 129, 37});
    decode_case<float>(4, 1, 40, 24, true, 70, {70, 1, 33});
  }
  {
    ScopedEnv env("HYSCALE_DECODE_SPLITS", "zero");
    std::vector<float> x(64);
    std::vector<int64_t> nv{1};
    CHECK_THROWS_WITH(kg::attention_decode<float>(x.data(), x.data(), x.data(), x.data(), 1, 1, 1, 8, 8, 2, nv.data(),
                                                  1.0),
                      Catch::Contains("HYSCALE_DECODE_SPLITS=zero"));
  }
  std::vector<float> x(16);
  CHECK_THROWS_AS(kg::attention_fwd<float>(x.data(), x.data(), x.data(), x.data(), x.data(), 1, 4, 1, 1, 129, 64, 1.0, 0),
                  hyscale::Error);
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA fused differential attention matches two CPU attentions", "[emu][attention]") {
  struct C {
    int64_t B, T, Hp, Hkp, hd, w;
  };
  for (C c : std::vector<C>{{1, 7, 2, 1, 8, 0}, {2, 70, 2, 2, 33, 5}, {1, 70, 2, 1, 64, 0}, {1, 33, 1, 1, 100, 3}}) {
    diff_case<float>(c.B, c.T, c.Hp, c.Hkp, c.hd, c.w);
    diff_case<bf16>(c.B, c.T, c.Hp, c.Hkp, c.hd, c.w);
  }
  check_no_exit_barriers();
}

TEST_CASE("emulated CUDA tensor-core differential attention (bf16 at hd 64 and 128) matches two CPU attentions",
          "[emu][attention]") {
  struct C {
    int64_t B, T, Hp, Hkp, hd, w;
  };
  // Lengths that are not multiples of the 64-query, 64- and 32-key tiles; windows 1, 2, 33, 65,
  // >= T; GQA (pairs per KV pair) 1, 2, 4, 8.
  for (C c : std::vector<C>{{2, 129, 2, 2, 64, 0}, {1, 130, 4, 2, 64, 65}, {1, 97, 8, 1, 64, 2}, {1, 1, 2, 2, 64, 0},
                            {1, 70, 2, 2, 64, 1}, {1, 100, 2, 1, 128, 0}, {1, 67, 4, 1, 128, 33}, {1, 40, 2, 2, 128, 1},
                            {2, 65, 2, 1, 128, 0}})
    diff_case<bf16>(c.B, c.T, c.Hp, c.Hkp, c.hd, c.w);
  diff_case<bf16>(1, 70, 2, 1, 64, 0, 1);  // misaligned pointers: SIMT
  {  // HYSCALE_DIFF_ATTN_MMA=0: the SIMT kernels
    ScopedEnv simt("HYSCALE_DIFF_ATTN_MMA", "0");
    diff_case<bf16>(1, 70, 2, 1, 64, 0);
  }
  {  // an emulated A100 (163 KB opt-in): at hd 128 the dk/dv kernel is SIMT, the others tensor cores
    SmScope a100(8);
    struct OptIn {
      int old = emu::smem_optin_bytes;
      OptIn() { emu::smem_optin_bytes = 163 * 1024; }
      ~OptIn() { emu::smem_optin_bytes = old; }
    } optin;
    diff_case<bf16>(1, 70, 2, 1, 128, 0);
    diff_case<bf16>(1, 70, 2, 1, 64, 0);
  }
  {  // compute capability 7.x: SIMT
    SmScope volta(7);
    diff_case<bf16>(1, 40, 2, 1, 64, 0);
  }
  {
    ScopedEnv bad("HYSCALE_DIFF_ATTN_MMA", "yes");
    Buf<bf16> x(std::vector<float>(4 * 128, 0.0f));
    Buf<float> lam(std::vector<float>{0.5f}), lse(8);
    CHECK_THROWS_WITH(kg::diff_attention_fwd<bf16>(x.p(), x.p(), x.p(), lam.p(), x.p(), x.p(), x.p(), lse.p(), lse.p(),
                                                   1, 2, 1, 1, 64, 0.125, 0),
                      Catch::Contains("HYSCALE_DIFF_ATTN_MMA=yes"));
  }
  check_no_exit_barriers();
}
