// The CUDA hybrid-block kernels of kernels/cuda_hybrid.h against their CPU twins on fresh random
// inputs; outputs are poisoned (NaN) before each run so an unwritten element fails.
// Tolerances (relative max-norm error, max|got - want| / max|want|):
//  - elementwise (GMU gate, mul, add_inplace, diff combine): f32 1e-5; bf16 storage against the
//    CPU's f32 math on the same bf16-rounded inputs 1e-2 (one bf16 rounding of the output: 2^-8).
//  - dlambda (double sums of the same fp32 values, rounded once to fp32): 1e-5 both dtypes;
//    diff lambda forward/backward (fp32, double dots): 1e-6.
//  - selective scan backward: f32 1e-4 (fp32 throughout; the summation orders of the channel and
//    time sums differ, and the CPU's expf is a ~2 ulp polynomial). bf16 inputs: du, ddelta
//    (stored in bf16) 2e-2; the fp32 outputs (dA_log, dB, dC, dD, ddt_bias) 1e-3: the GPU does
//    the same fp32 math on the same rounded inputs, only the orders differ.
//  - determinism: scan backward and diff_combine_bwd run twice give bit-identical outputs.
// Needs a GPU (label gpu).
#ifdef HYSCALE_WITH_CUDA
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "core/random.h"
#include "gpu/gpu_test_util.h"
#include "gradcheck.h"
#include "kernels/cuda_hybrid.h"
#include "kernels/diff_attn.h"
#include "kernels/elementwise.h"
#include "kernels/gmu.h"
#include "kernels/selective_scan.h"

using namespace hyscale;
namespace kg = hyscale::kernels::cuda;
namespace kc = hyscale::kernels::cpu;
using namespace hyscale::gputest;  // on_gpu, poisoned, back, rel, rounded, dptr (gpu_test_util.h)

namespace {
// Bitwise equality (NaN-safe: compares the patterns).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
Tensor uniform(const Shape& s, uint64_t seed, double lo, double hi) {
  Rng r(seed);
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (auto& x : v) x = static_cast<float>(lo + (hi - lo) * r.uniform());
  return Tensor::from_vector<float>(v, s);
}
std::vector<float> sub(const std::vector<float>& v, size_t off) { return {v.begin() + off, v.end()}; }

// One pass of every elementwise kernel on device tensors of storage type T; `off` shifts every
// pointer by that many elements (off = 1 breaks the 16-byte alignment: the scalar path).
struct EwOut {
  Tensor y_gmu, dp, dm, y_mul, acc, y_diff, da1, da2, dl;
};
template <class T>
void run_ew(const Tensor& p, const Tensor& m, const Tensor& dy, const Tensor& lam, EwOut& o, int64_t n, int64_t off) {
  const int64_t k = n - off;
  kg::gmu_gate_fwd<T>(dptr<T>(p) + off, dptr<T>(m) + off, dptr<T>(o.y_gmu) + off, k);
  kg::gmu_gate_bwd<T>(dptr<T>(p) + off, dptr<T>(m) + off, dptr<T>(dy) + off, dptr<T>(o.dp) + off,
                      dptr<T>(o.dm) + off, k);
  kg::mul<T>(dptr<T>(p) + off, dptr<T>(m) + off, dptr<T>(o.y_mul) + off, k);
  kg::add_inplace<T>(dptr<T>(o.acc) + off, dptr<T>(dy) + off, k);
  kg::diff_combine_fwd<T>(dptr<T>(p) + off, dptr<T>(m) + off, dptr<float>(lam), dptr<T>(o.y_diff) + off, k);
  kg::diff_combine_bwd<T>(dptr<T>(m) + off, dptr<T>(dy) + off, dptr<float>(lam), dptr<T>(o.da1) + off,
                          dptr<T>(o.da2) + off, dptr<float>(o.dl), k);
}
}  // namespace

TEST_CASE("CUDA GMU gate, mul, add_inplace, diff combine match the CPU twins, dlambda is deterministic",
          "[gpu][kernels][hybrid]") {
  for (DType dt : {DType::f32, DType::bf16}) {
    const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
    for (int64_t n : {1, 7, 1000, 4097, 1 << 20})
      for (int64_t off : {0, 1}) {
        if (off >= n) continue;
        INFO("dtype " << dtype_name(dt) << " n " << n << " offset " << off);
        const int64_t k = n - off;
        Tensor p = rounded(testing::randn({n}, 1 + n, 2.0, DType::f32), dt);
        Tensor m = rounded(testing::randn({n}, 2 + n, 1.0, DType::f32), dt);
        Tensor dy = rounded(testing::randn({n}, 3 + n, 1.0, DType::f32), dt);
        Tensor dm0 = rounded(testing::randn({n}, 4 + n, 1.0, DType::f32), dt);  // dm is accumulated into
        const float lam = 0.3125f;
        const float* P = p.data<float>() + off;
        const float* Mv = m.data<float>() + off;
        const float* DY = dy.data<float>() + off;
        std::vector<float> wy(k), wdp(k), wdm(dm0.data<float>() + off, dm0.data<float>() + n), wmul(k), wacc(k),
            wdiff(k), wda1(k), wda2(k);
        float wdl = 0;
        kc::gmu_gate_fwd<float>(P, Mv, wy.data(), 1, k);
        kc::gmu_gate_bwd<float>(P, Mv, DY, wdp.data(), wdm.data(), 1, k);
        kc::mul<float>(P, Mv, wmul.data(), k);
        for (int64_t i = 0; i < k; ++i) wacc[i] = Mv[i];
        kc::add_inplace<float>(wacc.data(), DY, k);
        kc::diff_combine_fwd<float>(P, Mv, lam, wdiff.data(), k);
        kc::diff_combine_bwd<float>(Mv, DY, lam, wda1.data(), wda2.data(), &wdl, k);

        Tensor pd = on_gpu(p.to(dt)), md = on_gpu(m.to(dt)), dyd = on_gpu(dy.to(dt));
        Tensor lamd = on_gpu(Tensor::from_vector<float>({lam}, {1}));
        auto fresh = [&] {
          EwOut o{poisoned({n}, dt), poisoned({n}, dt), on_gpu(dm0.to(dt)), poisoned({n}, dt), on_gpu(m.to(dt)),
                  poisoned({n}, dt), poisoned({n}, dt), poisoned({n}, dt), poisoned({1}, DType::f32)};
          if (dt == DType::f32)
            run_ew<float>(pd, md, dyd, lamd, o, n, off);
          else
            run_ew<kg::bf16>(pd, md, dyd, lamd, o, n, off);
          return o;
        };
        EwOut o1 = fresh(), o2 = fresh();
        CHECK(rel(sub(back(o1.y_gmu), off), wy) < tol);
        CHECK(rel(sub(back(o1.dp), off), wdp) < tol);
        CHECK(rel(sub(back(o1.dm), off), wdm) < tol);
        CHECK(rel(sub(back(o1.y_mul), off), wmul) < tol);
        CHECK(rel(sub(back(o1.acc), off), wacc) < tol);
        CHECK(rel(sub(back(o1.y_diff), off), wdiff) < tol);
        CHECK(sub(back(o1.da1), off) == wda1);  // a copy: exact
        CHECK(rel(sub(back(o1.da2), off), wda2) < tol);
        CHECK(rel(back(o1.dl), {wdl}) < 1e-5);
        CHECK(same_bits(back(o1.da2), back(o2.da2)));
        CHECK(same_bits(back(o1.dl), back(o2.dl)));  // deterministic dlambda
      }
  }
}

TEST_CASE("CUDA differential-attention lambda forward/backward match the CPU twin", "[gpu][kernels][hybrid]") {
  for (int64_t d : {1, 16, 64, 1000}) {
    INFO("d " << d);
    Tensor q1 = testing::randn({d}, 10 + d, 0.1, DType::f32), k1 = testing::randn({d}, 11 + d, 0.1, DType::f32);
    Tensor q2 = testing::randn({d}, 12 + d, 0.1, DType::f32), k2 = testing::randn({d}, 13 + d, 0.1, DType::f32);
    const double init = 0.8 - 0.6 * std::exp(-0.3 * 3);
    const float g = -1.75f;
    const float wl = kc::diff_lambda_fwd<float>(q1.data<float>(), k1.data<float>(), q2.data<float>(),
                                                k2.data<float>(), d, init);
    std::vector<float> w1(d), w2(d), w3(d), w4(d);
    kc::diff_lambda_bwd<float>(q1.data<float>(), k1.data<float>(), q2.data<float>(), k2.data<float>(), d, g, w1.data(),
                               w2.data(), w3.data(), w4.data());
    Tensor q1d = on_gpu(q1), k1d = on_gpu(k1), q2d = on_gpu(q2), k2d = on_gpu(k2);
    Tensor gd = on_gpu(Tensor::from_vector<float>({g}, {1}));
    Tensor l = poisoned({1}, DType::f32), d1 = poisoned({d}, DType::f32), d2 = poisoned({d}, DType::f32),
           d3 = poisoned({d}, DType::f32), d4 = poisoned({d}, DType::f32);
    kg::diff_lambda_fwd(dptr<float>(q1d), dptr<float>(k1d), dptr<float>(q2d), dptr<float>(k2d), d, init,
                        dptr<float>(l));
    kg::diff_lambda_bwd(dptr<float>(q1d), dptr<float>(k1d), dptr<float>(q2d), dptr<float>(k2d), d, dptr<float>(gd),
                        dptr<float>(d1), dptr<float>(d2), dptr<float>(d3), dptr<float>(d4));
    CHECK(rel(back(l), {wl}) < 1e-6);
    CHECK(rel(back(d1), w1) < 1e-6);
    CHECK(rel(back(d2), w2) < 1e-6);
    CHECK(rel(back(d3), w3) < 1e-6);
    CHECK(rel(back(d4), w4) < 1e-6);
  }
}

namespace {
struct ScanGrads {
  Tensor du, ddelta, dA, dB, dC, dD, dbias, dz;  // dz: with the fused gate only
};
// zw: undefined (no gate) or [B, T, 2 Dc], whose columns Dc .. 2 Dc are the gate's z (read in
// place, row stride 2 Dc, as the Mamba layer passes in_proj's output).
template <class T>
void gpu_scan(const Tensor& u, const Tensor& delta, const Tensor& A_log, const Tensor& Bm, const Tensor& Cm,
              const Tensor& D, const Tensor& bias, const Tensor& dy, const Tensor& zw, const Tensor& y,
              const Tensor& states, ScanGrads& g, int64_t B, int64_t T_, int64_t Dc, int64_t N, int64_t chunk,
              bool forward) {
  kernels::ScanGate<T> gate;
  if (zw.defined()) gate = {dptr<T>(zw) + Dc, 2 * Dc, dptr<T>(g.dz)};
  if (forward)
    kg::selective_scan_fwd<T>(dptr<T>(u), dptr<T>(delta), dptr<T>(A_log), dptr<T>(Bm), dptr<T>(Cm), dptr<T>(D),
                              dptr<T>(bias), dptr<T>(y), dptr<float>(states), B, T_, Dc, N, chunk, nullptr, gate);
  kg::selective_scan_bwd<T>(dptr<T>(u), dptr<T>(delta), dptr<T>(A_log), dptr<T>(Bm), dptr<T>(Cm), dptr<T>(D),
                            dptr<T>(bias), dptr<float>(states), dptr<T>(dy), dptr<T>(g.du), dptr<T>(g.ddelta),
                            dptr<float>(g.dA), dptr<float>(g.dB), dptr<float>(g.dC), dptr<float>(g.dD),
                            dptr<float>(g.dbias), B, T_, Dc, N, chunk, nullptr, gate);
}
}  // namespace

TEST_CASE("CUDA selective scan backward matches the CPU twin and is deterministic", "[gpu][kernels][scan]") {
  using Case = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>;  // B, T, Dc, N, chunk
  std::vector<Case> cases;
  for (int64_t T : {1, 7, 127, 129, 300})
    for (int64_t chunk : {64, 128})
      for (int64_t Dc : {8, 33}) cases.emplace_back(2, T, Dc, 16, chunk);
  cases.emplace_back(2, 129, 130, 40, 64);  // N > 32: the 64-state kernel, a partial group; 2 channel tiles
  cases.emplace_back(1, 70, 5, 3, 16);      // tiny N, many chunks
  cases.emplace_back(1, 300, 70, 32, 128);  // the 32-state kernel: 8 lanes per channel, 8 sub-chunks per chunk
  cases.emplace_back(1, 129, 20, 12, 64);   // N % 4 == 0 below 16: vector loads, the last lane group idle
  cases.emplace_back(1, 257, 200, 16, 128);  // 4 channel tiles of 64, the last partial; 7 sub-chunk checkpoints
  cases.emplace_back(1, 2049, 64, 16, 128);  // long: 17 chunks, the last one step long; 20 repeated backwards
  cases.emplace_back(2, 4097, 40, 16, 128);
  // Deterministic (the default), then with atomic dB/dC (set_deterministic(false)) on the longer
  // cases: the same tolerances; everything but dB/dC still bit-identical on a repeat. Then, with
  // the fused z-gate (deterministic): every case again, dz checked too.
  struct Restore {
    ~Restore() { kg::set_deterministic(true); }
  } restore;
  for (int mode = 0; mode < 3; ++mode)
  for (DType dt : {DType::f32, DType::bf16}) {
    const bool det = mode != 1, gated = mode == 2;
    kg::set_deterministic(det);
    const double tol_t = dt == DType::f32 ? 1e-4 : 2e-2, tol_f = dt == DType::f32 ? 1e-4 : 1e-3;
    for (auto [B, T, Dc, N, chunk] : cases) {
      if (!det && T < 129) continue;
      if (emulator_skips(T)) continue;
      INFO("scan bwd " << dtype_name(dt) << " B " << B << " T " << T << " Dc " << Dc << " N " << N << " chunk "
                       << chunk << (det ? "" : " atomic dB/dC") << (gated ? " z-gate" : ""));
      const int64_t nc = kc::scan_num_chunks(T, chunk);
      const uint64_t sd = 1000 * T + 10 * Dc + chunk;
      // Realistic ranges (mamba_simple.py init): A_log = log(1..N), dt_bias = softplus^-1 of a
      // log-uniform dt in [1e-3, 0.1], delta in [-2, 1], D near 1.
      Tensor u = rounded(testing::randn({B, T, Dc}, sd + 1, 1.0, DType::f32), dt);
      Tensor delta = rounded(uniform({B, T, Dc}, sd + 2, -2.0, 1.0), dt);
      std::vector<float> al(Dc * N), bi(Dc);
      for (int64_t c = 0; c < Dc; ++c)
        for (int64_t n = 0; n < N; ++n) al[c * N + n] = std::log(static_cast<float>(n + 1));
      {
        Rng r(sd + 3);
        for (auto& x : bi) {
          const double dtv = std::exp(std::log(1e-3) + (std::log(0.1) - std::log(1e-3)) * r.uniform());
          x = static_cast<float>(dtv + std::log(-std::expm1(-dtv)));
        }
      }
      Tensor A_log = rounded(Tensor::from_vector<float>(al, {Dc, N}), dt);
      Tensor bias = rounded(Tensor::from_vector<float>(bi, {Dc}), dt);
      Tensor Bm = rounded(testing::randn({B, T, N}, sd + 4, 1.0, DType::f32), dt);
      Tensor Cm = rounded(testing::randn({B, T, N}, sd + 5, 1.0, DType::f32), dt);
      Tensor D = rounded(uniform({Dc}, sd + 6, 0.9, 1.1), dt);
      Tensor dy = rounded(testing::randn({B, T, Dc}, sd + 7, 1.0, DType::f32), dt);
      // The gate's input: in_proj's [B, T, 2 Dc] output, z its second half (values around +-3).
      Tensor zw = gated ? rounded(testing::randn({B, T, 2 * Dc}, sd + 8, 1.5, DType::f32), dt) : Tensor();

      std::vector<float> wy(B * T * Dc), ws(B * nc * Dc * N), wdu(B * T * Dc), wdd(B * T * Dc), wdA(Dc * N),
          wdB(B * T * N), wdC(B * T * N), wdD(Dc), wdb(Dc), wdz(B * T * Dc);
      kernels::ScanGate<float> cgate;
      if (gated) cgate = {zw.data<float>() + Dc, 2 * Dc, wdz.data()};
      kc::selective_scan_fwd<float>(u.data<float>(), delta.data<float>(), A_log.data<float>(), Bm.data<float>(),
                                    Cm.data<float>(), D.data<float>(), bias.data<float>(), wy.data(), ws.data(), B, T,
                                    Dc, N, chunk, cgate);
      kc::selective_scan_bwd<float>(u.data<float>(), delta.data<float>(), A_log.data<float>(), Bm.data<float>(),
                                    Cm.data<float>(), D.data<float>(), bias.data<float>(), ws.data(), dy.data<float>(),
                                    wdu.data(), wdd.data(), wdA.data(), wdB.data(), wdC.data(), wdD.data(), wdb.data(),
                                    B, T, Dc, N, chunk, cgate);

      auto G = [&](const Tensor& t) { return on_gpu(t.to(dt)); };
      Tensor ud = G(u), dd = G(delta), ad = G(A_log), bd = G(Bm), cd = G(Cm), Dd = G(D), biasd = G(bias), dyd = G(dy);
      Tensor zwd = gated ? G(zw) : Tensor();
      Tensor y = poisoned({B, T, Dc}, dt), st = poisoned({B, nc, Dc, N}, DType::f32);
      auto fresh = [&] {
        return ScanGrads{poisoned({B, T, Dc}, dt),         poisoned({B, T, Dc}, dt),   poisoned({Dc, N}, DType::f32),
                         poisoned({B, T, N}, DType::f32),  poisoned({B, T, N}, DType::f32), poisoned({Dc}, DType::f32),
                         poisoned({Dc}, DType::f32), gated ? poisoned({B, T, Dc}, dt) : Tensor()};
      };
      auto run = [&](ScanGrads& g, bool forward) {
        if (dt == DType::f32)
          gpu_scan<float>(ud, dd, ad, bd, cd, Dd, biasd, dyd, zwd, y, st, g, B, T, Dc, N, chunk, forward);
        else
          gpu_scan<kg::bf16>(ud, dd, ad, bd, cd, Dd, biasd, dyd, zwd, y, st, g, B, T, Dc, N, chunk, forward);
      };
      ScanGrads g1 = fresh();
      run(g1, true);
      CHECK(rel(back(y), wy) < (dt == DType::f32 ? 1e-5 : 1e-2));  // the forward the backward builds on
      CHECK(rel(back(st), ws) < 1e-4);
      CHECK(rel(back(g1.du), wdu) < tol_t);
      CHECK(rel(back(g1.ddelta), wdd) < tol_t);
      CHECK(rel(back(g1.dA), wdA) < tol_f);
      CHECK(rel(back(g1.dB), wdB) < tol_f);
      CHECK(rel(back(g1.dC), wdC) < tol_f);
      CHECK(rel(back(g1.dD), wdD) < tol_f);
      CHECK(rel(back(g1.dbias), wdb) < tol_f);
      if (gated) CHECK(rel(back(g1.dz), wdz) < tol_t);
      // Bit-identical repeats (fresh poisoned outputs: also proves every element is written); 20
      // backwards at the long lengths, 2 elsewhere.
      const int repeats = T >= 2049 ? 20 : 2;
      for (int r = 1; r < repeats; ++r) {
        ScanGrads g2 = fresh();
        run(g2, false);
        INFO("repeat " << r);
        CHECK(same_bits(back(g1.du), back(g2.du)));
        CHECK(same_bits(back(g1.ddelta), back(g2.ddelta)));
        CHECK(same_bits(back(g1.dA), back(g2.dA)));
        if (det) {
          CHECK(same_bits(back(g1.dB), back(g2.dB)));
          CHECK(same_bits(back(g1.dC), back(g2.dC)));
        }
        CHECK(same_bits(back(g1.dD), back(g2.dD)));
        CHECK(same_bits(back(g1.dbias), back(g2.dbias)));
        if (gated) CHECK(same_bits(back(g1.dz), back(g2.dz)));
      }
    }
  }
}
#endif
