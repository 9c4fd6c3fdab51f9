// Every CUDA kernel of kernels/cuda.h against its CPU twin on fresh random inputs at several
// shapes, odd sizes included; outputs are poisoned (NaN) before each run so an unwritten element
// fails. Tolerances: f32 1e-5 relative (max-norm); bf16 storage against the CPU's f32 math on the
// same bf16-rounded inputs, 1e-2 relative (bf16 has an 8-bit mantissa: 2^-8 = 0.4 % per rounding).
// Needs a GPU (label gpu).
#ifdef HYSCALE_WITH_CUDA
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "gpu/gpu_test_util.h"
#include "gradcheck.h"
#include "kernels/adamw.h"
#include "kernels/cross_entropy.h"
#include "kernels/cuda.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"

using namespace hyscale;
namespace kg = hyscale::kernels::cuda;
namespace kc = hyscale::kernels::cpu;
using namespace hyscale::gputest;  // on_gpu, poisoned, back, rel, rounded, dptr (gpu_test_util.h)

TEST_CASE("CUDA elementwise kernels match the CPU twins (f32 and bf16)", "[gpu][kernels]") {
  for (DType dt : {DType::f32, DType::bf16}) {
    const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
    for (int64_t n : {1, 7, 1000, 4097, 1 << 20}) {
      INFO("dtype " << dtype_name(dt) << " n " << n);
      Tensor x = rounded(testing::randn({n}, 1 + n, 2.0, DType::f32), dt);
      Tensor dy = rounded(testing::randn({n}, 2 + n, 1.0, DType::f32), dt);
      Tensor xd = on_gpu(x.to(dt)), dyd = on_gpu(dy.to(dt));
      std::vector<float> want(n), want2(n), want3(n);
      kc::silu_fwd<float>(x.data<float>(), want.data(), n);
      kc::silu_bwd<float>(x.data<float>(), dy.data<float>(), want2.data(), n);
      kc::add<float>(x.data<float>(), dy.data<float>(), want3.data(), n);
      Tensor y = poisoned({n}, dt), dx = poisoned({n}, dt), s = poisoned({n}, dt);
      if (dt == DType::f32) {
        kg::silu_fwd<float>(dptr<float>(xd), dptr<float>(y), n);
        kg::silu_bwd<float>(dptr<float>(xd), dptr<float>(dyd), dptr<float>(dx), n);
        kg::add<float>(dptr<float>(xd), dptr<float>(dyd), dptr<float>(s), n);
      } else {
        kg::silu_fwd<kg::bf16>(dptr<kg::bf16>(xd), dptr<kg::bf16>(y), n);
        kg::silu_bwd<kg::bf16>(dptr<kg::bf16>(xd), dptr<kg::bf16>(dyd), dptr<kg::bf16>(dx), n);
        kg::add<kg::bf16>(dptr<kg::bf16>(xd), dptr<kg::bf16>(dyd), dptr<kg::bf16>(s), n);
      }
      CHECK(rel(back(y), want) < tol);
      CHECK(rel(back(dx), want2) < tol);
      CHECK(rel(back(s), want3) < tol);
    }
    for (auto [rows, I] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {17, 1000}, {64, 2752}}) {
      INFO("swiglu " << dtype_name(dt) << " rows " << rows << " I " << I);
      Tensor x = rounded(testing::randn({rows, 2 * I}, 5 + I, 2.0, DType::f32), dt);
      Tensor dy = rounded(testing::randn({rows, I}, 6 + I, 1.0, DType::f32), dt);
      std::vector<float> want(rows * I), wdx(rows * 2 * I);
      kc::swiglu_fwd<float>(x.data<float>(), want.data(), rows, I);
      kc::swiglu_bwd<float>(x.data<float>(), dy.data<float>(), wdx.data(), rows, I);
      Tensor xd = on_gpu(x.to(dt)), dyd = on_gpu(dy.to(dt)), y = poisoned({rows, I}, dt), dx = poisoned({rows, 2 * I}, dt);
      if (dt == DType::f32) {
        kg::swiglu_fwd<float>(dptr<float>(xd), dptr<float>(y), rows, I);
        kg::swiglu_bwd<float>(dptr<float>(xd), dptr<float>(dyd), dptr<float>(dx), rows, I);
      } else {
        kg::swiglu_fwd<kg::bf16>(dptr<kg::bf16>(xd), dptr<kg::bf16>(y), rows, I);
        kg::swiglu_bwd<kg::bf16>(dptr<kg::bf16>(xd), dptr<kg::bf16>(dyd), dptr<kg::bf16>(dx), rows, I);
      }
      CHECK(rel(back(y), want) < tol);
      CHECK(rel(back(dx), wdx) < tol);
    }
  }
}

TEST_CASE("CUDA casts round to nearest even like the CPU", "[gpu][kernels]") {
  for (int64_t n : {1, 9, 100003}) {
    Tensor x = testing::randn({n}, 40 + n, 3.0, DType::f32);
    Tensor b = poisoned({n}, DType::bf16), f = poisoned({n}, DType::f32);
    Tensor xd = on_gpu(x);
    kg::cast_f32_bf16(dptr<float>(xd), dptr<kg::bf16>(b), n);
    kg::cast_bf16_f32(dptr<kg::bf16>(b), dptr<float>(f), n);
    const auto want = rounded(x, DType::bf16).to_vector<float>();
    CHECK(back(b) == want);
    CHECK(back(f) == want);
  }
}

TEST_CASE("CUDA RMSNorm forward/backward match the CPU twin, dg is deterministic", "[gpu][kernels]") {
  for (DType dt : {DType::f32, DType::bf16}) {
    const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
    // D up to 4 groups of 16 bytes per thread take the register kernel (G 1, 2, 4); 8200 the general one.
    for (auto [rows, D] : std::vector<std::pair<int64_t, int64_t>>{
             {1, 7}, {3, 128}, {17, 1000}, {600, 992}, {600, 2048}, {3, 3968}, {2, 4096}, {2, 8200}}) {
      INFO("dtype " << dtype_name(dt) << " rows " << rows << " D " << D);
      Tensor x = rounded(testing::randn({rows, D}, 7 + D, 1.5, DType::f32), dt);
      Tensor g = rounded(testing::randn({D}, 8 + D, 1.0, DType::f32), dt);
      Tensor dy = rounded(testing::randn({rows, D}, 9 + D, 1.0, DType::f32), dt);
      std::vector<float> wy(rows * D), wr(rows), wdx(rows * D), wdg(D, 0.0f);
      kc::rmsnorm_fwd<float>(x.data<float>(), g.data<float>(), wy.data(), wr.data(), rows, D, 1e-5);
      kc::rmsnorm_bwd<float>(x.data<float>(), g.data<float>(), wr.data(), dy.data<float>(), wdx.data(), wdg.data(), rows, D);
      Tensor xd = on_gpu(x.to(dt)), gd = on_gpu(g.to(dt)), dyd = on_gpu(dy.to(dt));
      Tensor y = poisoned({rows, D}, dt), r = poisoned({rows}, DType::f32), dx = poisoned({rows, D}, dt);
      Tensor dg1 = on_gpu(Tensor::zeros({D})), dg2 = on_gpu(Tensor::zeros({D}));
      auto run = [&](Tensor& dg) {
        if (dt == DType::f32) {
          kg::rmsnorm_fwd<float>(dptr<float>(xd), dptr<float>(gd), dptr<float>(y), dptr<float>(r), rows, D, 1e-5);
          kg::rmsnorm_bwd<float>(dptr<float>(xd), dptr<float>(gd), dptr<float>(r), dptr<float>(dyd), dptr<float>(dx),
                                 dptr<float>(dg), rows, D);
        } else {
          kg::rmsnorm_fwd<kg::bf16>(dptr<kg::bf16>(xd), dptr<kg::bf16>(gd), dptr<kg::bf16>(y), dptr<float>(r), rows, D,
                                    1e-5);
          kg::rmsnorm_bwd<kg::bf16>(dptr<kg::bf16>(xd), dptr<kg::bf16>(gd), dptr<float>(r), dptr<kg::bf16>(dyd),
                                    dptr<kg::bf16>(dx), dptr<float>(dg), rows, D);
        }
      };
      run(dg1);
      CHECK(rel(back(y), wy) < tol);
      CHECK(rel(back(r), wr) < 1e-5);
      CHECK(rel(back(dx), wdx) < tol);
      CHECK(rel(back(dg1), wdg) < (dt == DType::f32 ? 1e-5 : 2e-2));
      run(dg2);
      CHECK(back(dg1) == back(dg2));  // same order every time
    }
  }
}

TEST_CASE("CUDA fused cross-entropy matches the CPU twin", "[gpu][kernels]") {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (auto [N, V] : std::vector<std::pair<int64_t, int64_t>>{{1, 5}, {7, 320}, {33, 32000}}) {
      INFO("dtype " << dtype_name(dt) << " N " << N << " V " << V);
      Tensor lg = rounded(testing::randn({N, V}, 11 + V, 3.0, DType::f32), dt);
      Tensor t = testing::randint({N}, static_cast<int32_t>(V), 12 + N);
      std::vector<float> wl(N), wlse(N), wd(N * V);
      kc::cross_entropy_fwd<float>(lg.data<float>(), t.data<int32_t>(), wl.data(), wlse.data(), N, V);
      kc::cross_entropy_bwd<float>(lg.data<float>(), t.data<int32_t>(), wlse.data(), 1.0f / N, wd.data(), N, V, 0);
      Tensor lgd = on_gpu(lg.to(dt)), td = on_gpu(t);
      Tensor l = poisoned({N}, DType::f32), lse = poisoned({N}, DType::f32), d = poisoned({N, V}, dt);
      if (dt == DType::f32) {
        kg::cross_entropy_fwd<float>(dptr<float>(lgd), dptr<int32_t>(td), dptr<float>(l), dptr<float>(lse), N, V);
        kg::cross_entropy_bwd<float>(dptr<float>(lgd), dptr<int32_t>(td), dptr<float>(lse), 1.0f / N, dptr<float>(d), N, V,
                                     0);
      } else {
        kg::cross_entropy_fwd<kg::bf16>(dptr<kg::bf16>(lgd), dptr<int32_t>(td), dptr<float>(l), dptr<float>(lse), N, V);
        kg::cross_entropy_bwd<kg::bf16>(dptr<kg::bf16>(lgd), dptr<int32_t>(td), dptr<float>(lse), 1.0f / N,
                                        dptr<kg::bf16>(d), N, V, 0);
      }
      // The statistics are fp32 from the same (bf16-rounded) inputs: tight in both cases.
      CHECK(rel(back(l), wl) < 1e-5);
      CHECK(rel(back(lse), wlse) < 1e-5);
      CHECK(rel(back(d), wd) < (dt == DType::f32 ? 1e-5 : 1e-2));
    }
  }
}

TEST_CASE("CUDA vocabulary-parallel cross-entropy pieces give the whole vocabulary's loss and gradient",
          "[gpu][kernels]") {
  // The vocabulary split in P slices: stats per slice on the device, the device combine of the
  // gathered stats against the CPU's whole-vocabulary loss and lse, and each slice's gradient
  // against its columns of the whole-vocabulary gradient.
  for (DType dt : {DType::f32, DType::bf16}) {
    for (auto [N, V, P] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 6, 2}, {7, 320, 4}, {33, 32000, 8}}) {
      INFO("dtype " << dtype_name(dt) << " N " << N << " V " << V << " P " << P);
      const int64_t Vl = V / P;
      Tensor lg = rounded(testing::randn({N, V}, 13 + V, 3.0, DType::f32), dt);
      Tensor t = testing::randint({N}, static_cast<int32_t>(V), 14 + N);
      std::vector<float> wl(N), wlse(N), wd(N * V);
      kc::cross_entropy_fwd<float>(lg.data<float>(), t.data<int32_t>(), wl.data(), wlse.data(), N, V);
      kc::cross_entropy_bwd<float>(lg.data<float>(), t.data<int32_t>(), wlse.data(), 1.0f / N, wd.data(), N, V, 0);
      Tensor td = on_gpu(t), all = poisoned({P, 3, N}, DType::f32), lse_ref = on_gpu(Tensor::from_vector(wlse, {N}));
      for (int64_t p = 0; p < P; ++p) {
        INFO("slice " << p);
        Tensor zs = on_gpu(lg.slice(1, p * Vl, (p + 1) * Vl).contiguous().to(dt)), d = poisoned({N, Vl}, dt);
        Tensor st = all.slice(0, p, p + 1);
        if (dt == DType::f32) {
          kg::cross_entropy_stats<float>(dptr<float>(zs), dptr<int32_t>(td), p * Vl, dptr<float>(st), N, Vl);
          kg::cross_entropy_bwd<float>(dptr<float>(zs), dptr<int32_t>(td), dptr<float>(lse_ref), 1.0f / N,
                                       dptr<float>(d), N, Vl, p * Vl);
        } else {
          kg::cross_entropy_stats<kg::bf16>(dptr<kg::bf16>(zs), dptr<int32_t>(td), p * Vl, dptr<float>(st), N, Vl);
          kg::cross_entropy_bwd<kg::bf16>(dptr<kg::bf16>(zs), dptr<int32_t>(td), dptr<float>(lse_ref), 1.0f / N,
                                          dptr<kg::bf16>(d), N, Vl, p * Vl);
        }
        std::vector<float> want(N * Vl);
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < Vl; ++j) want[i * Vl + j] = wd[i * V + p * Vl + j];
        CHECK(rel(back(d), want) < (dt == DType::f32 ? 1e-5 : 1e-2));
      }
      Tensor l = poisoned({N}, DType::f32), lse = poisoned({N}, DType::f32);
      kg::cross_entropy_combine(dptr<float>(all), P, dptr<float>(l), dptr<float>(lse), N);
      CHECK(rel(back(l), wl) < 1e-5);
      CHECK(rel(back(lse), wlse) < 1e-5);
    }
  }
}

TEST_CASE("CUDA AdamW and sum of squares match the CPU twins", "[gpu][kernels]") {
  // n 1000 and 300007 take the float4 path at offset 0 (tails of 3 at 300007), offset 1 the
  // element path; grad_scale 0.37 is clipping folded into the step.
  for (int64_t n : {1, 1000, 300007})
    for (int64_t off : {0, 1})
      for (float gscale : {1.0f, 0.37f}) {
        INFO("n " << n << " offset " << off << " grad_scale " << gscale);
        Tensor p = testing::randn({n}, 20 + n, 1.0, DType::f32), m = Tensor::zeros({n}), v = Tensor::zeros({n});
        Tensor pd = on_gpu(Tensor::zeros({n + off})), md = on_gpu(Tensor::zeros({n + off})),
               vd = on_gpu(Tensor::zeros({n + off})), pb = poisoned({n + off}, DType::bf16);
        pd.slice(0, off, n + off).copy_from(on_gpu(p));
        for (int step = 1; step <= 3; ++step) {
          Tensor g = testing::randn({n}, 30 + n + step, 0.1, DType::f32);
          Tensor gd = on_gpu(Tensor::zeros({n + off}));
          gd.slice(0, off, n + off).copy_from(on_gpu(g));
          kc::adamw_step(p.data<float>(), g.data<float>(), m.data<float>(), v.data<float>(), n, 1e-3f, 0.9f, 0.95f,
                         1e-8f, 0.1f, step, gscale);
          kg::adamw_step(dptr<float>(pd) + off, dptr<float>(gd) + off, dptr<float>(md) + off, dptr<float>(vd) + off, n,
                         1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step, gscale, dptr<kg::bf16>(pb) + off);
        }
        Tensor pdv = pd.slice(0, off, n + off), mdv = md.slice(0, off, n + off), vdv = vd.slice(0, off, n + off);
        CHECK(rel(back(pdv), p.to_vector<float>()) < 1e-6);
        CHECK(rel(back(mdv), m.to_vector<float>()) < 1e-6);
        CHECK(rel(back(vdv), v.to_vector<float>()) < 1e-6);
        CHECK(back(pb.slice(0, off, n + off)) == rounded(pdv.to(Device::cpu()), DType::bf16).to_vector<float>());
        if (off == 0 && gscale == 1.0f) {
          const double want = kc::sum_squares<float>(p.data<float>(), n);
          const double got = kg::sum_squares(dptr<float>(pd), n);
          CHECK(std::fabs(got - want) <= 1e-6 * want);
          CHECK(kg::sum_squares(dptr<float>(pd), n) == got);  // deterministic
        }
      }
  // Many tensors in one reduction: each equal, bit for bit, to its own sum_squares (empty ones 0).
  std::vector<Tensor> ts;
  std::vector<const float*> ptrs;
  std::vector<int64_t> ns;
  for (int64_t n : {5, 0, 1 << 20, 300007, 1}) {
    ts.push_back(on_gpu(testing::randn({std::max<int64_t>(n, 1)}, 70 + n, 1.0, DType::f32)));
    ptrs.push_back(dptr<float>(ts.back()));
    ns.push_back(n);
  }
  // Spanning several 64K-element items, from a pointer that is not 16-byte aligned (scalar loads).
  ts.push_back(on_gpu(testing::randn({200001}, 77, 1.0, DType::f32)));
  ptrs.push_back(dptr<float>(ts.back()) + 1);
  ns.push_back(200000);
  {
    const std::vector<float> h = ts.back().to(Device::cpu()).to_vector<float>();
    const double want = kc::sum_squares<float>(h.data() + 1, 200000);
    CHECK(std::fabs(kg::sum_squares(ptrs.back(), ns.back()) - want) <= 1e-9 * want);
  }
  std::vector<double> many(ts.size(), -1.0);
  kg::sum_squares_many(ptrs.data(), ns.data(), static_cast<int64_t>(ts.size()), many.data());
  for (size_t i = 0; i < ts.size(); ++i) CHECK(many[i] == kg::sum_squares(ptrs[i], ns[i]));
  CHECK(many[1] == 0.0);
}
#endif

#ifdef HYSCALE_WITH_CUDA
#include "kernels/gemm.h"

TEST_CASE("cuBLASLt GEMM matches the CPU GEMM: every layout, odd sizes, batched, f32 and bf16 inputs",
          "[gpu][kernels][gemm]") {
  struct Case { int64_t M, N, K, batch; };
  for (bool bf : {false, true})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (Case c : {Case{1, 1, 1, 1}, Case{7, 13, 5, 1}, Case{64, 96, 33, 3}, Case{257, 511, 1024, 1}}) {
          INFO((bf ? "bf16" : "f32") << " ta " << ta << " tb " << tb << " M " << c.M << " N " << c.N << " K " << c.K
                                     << " batch " << c.batch);
          const int64_t sa = c.M * c.K, sb = c.K * c.N, sc = c.M * c.N;
          Tensor A = rounded(testing::randn({c.batch * sa}, 50 + c.K, 1.0, DType::f32), bf ? DType::bf16 : DType::f32);
          Tensor B = rounded(testing::randn({c.batch * sb}, 60 + c.N, 1.0, DType::f32), bf ? DType::bf16 : DType::f32);
          const int64_t lda = ta ? c.M : c.K, ldb = tb ? c.K : c.N;
          std::vector<float> want(c.batch * sc);
          for (int64_t b = 0; b < c.batch; ++b)
            kc::gemm<float>(ta, tb, c.M, c.N, c.K, 1.0f, A.data<float>() + b * sa, lda, B.data<float>() + b * sb, ldb,
                            0.0f, want.data() + b * sc, c.N);
          Tensor Ad = on_gpu(A.to(bf ? DType::bf16 : DType::f32)), Bd = on_gpu(B.to(bf ? DType::bf16 : DType::f32));
          Tensor C = poisoned({c.batch * sc}, DType::f32);
          kg::gemm(ta, tb, c.M, c.N, c.K, 1.0f, Ad.raw_data(), lda, Bd.raw_data(), ldb, 0.0f, C.raw_data(), c.N, bf,
                   false, c.batch, sa, sb, sc);
          // fp32 accumulation either way; only the summation order differs from the CPU.
          CHECK(rel(back(C), want) < (bf ? 1e-4 : 1e-5));
        }
}
#endif

#ifdef HYSCALE_WITH_CUDA
#include "kernels/embedding.h"
#include "kernels/rope.h"

TEST_CASE("CUDA embedding (deterministic backward), RoPE and residual+RMSNorm match the CPU twins",
          "[gpu][kernels]") {
  for (DType dt : {DType::f32, DType::bf16}) {
    const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
    // slice 0: a whole table; slice 1: the table holds rows [V, 2V) of a 3V vocabulary (a
    // vocabulary-parallel shard: the other ids give zero rows and no gradient).
    for (auto [N, V, D] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 3, 5}, {37, 11, 64}, {4096, 320, 993}})
    for (int slice = 0; slice < 2; ++slice) {
      const int64_t start = slice * V, vocab = slice ? 3 * V : V;
      INFO("embedding " << dtype_name(dt) << " N " << N << " V " << V << " D " << D << " slice at " << start);
      Tensor table = rounded(testing::randn({V, D}, 70 + D, 1.0, DType::f32), dt);
      Tensor dout = rounded(testing::randn({N, D}, 71 + N, 1.0, DType::f32), dt);
      Tensor ids = testing::randint({N}, static_cast<int32_t>(vocab), 72 + N);  // many repeats: V << N
      std::vector<float> wout(N * D), wdt(V * D, 0.0f);
      kc::embedding_fwd<float>(ids.data<int32_t>(), table.data<float>(), wout.data(), N, D, start, V);
      kc::embedding_bwd<float>(ids.data<int32_t>(), dout.data<float>(), wdt.data(), N, D, start, V);
      Tensor idd = on_gpu(ids), td = on_gpu(table.to(dt)), dod = on_gpu(dout.to(dt)), out = poisoned({N, D}, dt);
      Tensor dt1 = on_gpu(Tensor::zeros({V, D})), dt2 = on_gpu(Tensor::zeros({V, D}));
      if (dt == DType::f32) {
        kg::embedding_fwd<float>(dptr<int32_t>(idd), dptr<float>(td), dptr<float>(out), N, D, start, V);
        kg::embedding_bwd<float>(dptr<int32_t>(idd), dptr<float>(dod), dptr<float>(dt1), N, D, start, V);
        kg::embedding_bwd<float>(dptr<int32_t>(idd), dptr<float>(dod), dptr<float>(dt2), N, D, start, V);
      } else {
        kg::embedding_fwd<kg::bf16>(dptr<int32_t>(idd), dptr<kg::bf16>(td), dptr<kg::bf16>(out), N, D, start, V);
        kg::embedding_bwd<kg::bf16>(dptr<int32_t>(idd), dptr<kg::bf16>(dod), dptr<float>(dt1), N, D, start, V);
        kg::embedding_bwd<kg::bf16>(dptr<int32_t>(idd), dptr<kg::bf16>(dod), dptr<float>(dt2), N, D, start, V);
      }
      CHECK(back(out) == wout);  // a gather: exact
      CHECK(rel(back(dt1), wdt) < 1e-5);
      CHECK(back(dt1) == back(dt2));  // bitwise run to run
    }
    // T < 16 computes (cos, sin) inline; longer sequences read a cached table (vector path when
    // half the head dim is a multiple of 16 bytes, scalar otherwise: D 6); two pos0 per shape.
    for (auto [B, T, H, D] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
             {1, 1, 1, 2}, {2, 7, 2, 16}, {2, 37, 3, 64}, {1, 20, 2, 6}, {1, 2048, 8, 128}})
      for (int64_t pos0 : {5, 0}) {
        INFO("rope " << dtype_name(dt) << " T " << T << " D " << D << " pos0 " << pos0);
        Tensor x = rounded(testing::randn({B, T, H, D}, 80 + T, 1.0, DType::f32), dt);
        std::vector<float> wy(B * T * H * D), wdx(B * T * H * D);
        kc::rope_fwd<float>(x.data<float>(), wy.data(), B, T, H, D, 1e4, pos0);
        kc::rope_bwd<float>(x.data<float>(), wdx.data(), B, T, H, D, 1e4, pos0);
        Tensor xd = on_gpu(x.to(dt)), y = poisoned({B, T, H, D}, dt), dx = poisoned({B, T, H, D}, dt);
        if (dt == DType::f32) {
          kg::rope_fwd<float>(dptr<float>(xd), dptr<float>(y), B, T, H, D, 1e4, pos0);
          kg::rope_bwd<float>(dptr<float>(xd), dptr<float>(dx), B, T, H, D, 1e4, pos0);
        } else {
          kg::rope_fwd<kg::bf16>(dptr<kg::bf16>(xd), dptr<kg::bf16>(y), B, T, H, D, 1e4, pos0);
          kg::rope_bwd<kg::bf16>(dptr<kg::bf16>(xd), dptr<kg::bf16>(dx), B, T, H, D, 1e4, pos0);
        }
        CHECK(rel(back(y), wy) < tol);
        CHECK(rel(back(dx), wdx) < tol);
      }
    {
      const int64_t rows = 33, D = 1000;
      INFO("residual+rmsnorm " << dtype_name(dt));
      Tensor x = rounded(testing::randn({rows, D}, 90, 1.0, DType::f32), dt);
      Tensor y = rounded(testing::randn({rows, D}, 91, 1.0, DType::f32), dt);
      Tensor g = rounded(testing::randn({D}, 92, 1.0, DType::f32), dt);
      Tensor h = rounded(Tensor::from_vector<float>([&] {
        std::vector<float> v(rows * D);
        for (int64_t i = 0; i < rows * D; ++i) v[i] = x.data<float>()[i] + y.data<float>()[i];
        return v;
      }(), {rows, D}), dt);
      std::vector<float> wo(rows * D), wr(rows);
      kc::rmsnorm_fwd<float>(h.data<float>(), g.data<float>(), wo.data(), wr.data(), rows, D, 1e-5);
      Tensor xd = on_gpu(x.to(dt)), yd = on_gpu(y.to(dt)), gd = on_gpu(g.to(dt));
      Tensor hd = poisoned({rows, D}, dt), od = poisoned({rows, D}, dt), rd = poisoned({rows}, DType::f32);
      if (dt == DType::f32)
        kg::residual_rmsnorm_fwd<float>(dptr<float>(xd), dptr<float>(yd), dptr<float>(gd), dptr<float>(hd),
                                        dptr<float>(od), dptr<float>(rd), rows, D, 1e-5);
      else
        kg::residual_rmsnorm_fwd<kg::bf16>(dptr<kg::bf16>(xd), dptr<kg::bf16>(yd), dptr<kg::bf16>(gd),
                                           dptr<kg::bf16>(hd), dptr<kg::bf16>(od), dptr<float>(rd), rows, D, 1e-5);
      CHECK(back(hd) == h.to_vector<float>());  // the sum, rounded once to the storage type
      CHECK(rel(back(od), wo) < tol);
      CHECK(rel(back(rd), wr) < 1e-5);
    }
  }
}
#endif

#ifdef HYSCALE_WITH_CUDA
#include "kernels/conv1d.h"

namespace {
// One conv1d case, plain or with the fused SiLU: forward and backward against the CPU twin, the
// backward twice into poisoned outputs (dw/dbias bit-identical). dw_tol: the fused backward forms
// dpre through __expf on the GPU and the CPU's exp on the other side (the emulator, exact exp2,
// saw 5e-6 at C = 1), so it gets 1e-4; the plain one sums the same rounded inputs: 1e-5.
void check_conv(bool silu, DType dt, int64_t B, int64_t T, int64_t C, int64_t K, uint64_t seed, double dw_tol) {
  INFO((silu ? "conv1d+silu " : "conv1d ") << dtype_name(dt) << " K " << K << " B " << B << " T " << T << " C " << C);
  const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
  Tensor x = rounded(testing::randn({B, T, C}, seed + T, silu ? 1.5 : 1.0, DType::f32), dt);
  Tensor w = rounded(testing::randn({C, K}, seed + 1 + K, 0.5, DType::f32), dt);
  Tensor bias = rounded(testing::randn({C}, seed + 2 + (silu ? C : 0), 0.5, DType::f32), dt);
  Tensor dy = rounded(testing::randn({B, T, C}, seed + 3 + T, 1.0, DType::f32), dt);
  std::vector<float> wy(B * T * C), wdx(B * T * C), wdw(C * K), wdb(C);
  const float *xh = x.data<float>(), *wh = w.data<float>(), *bh = bias.data<float>(), *dyh = dy.data<float>();
  if (silu) {
    kc::causal_conv1d_silu_fwd<float>(xh, wh, bh, wy.data(), B, T, C, K);
    kc::causal_conv1d_silu_bwd<float>(xh, wh, bh, dyh, wdx.data(), wdw.data(), wdb.data(), B, T, C, K);
  } else {
    kc::causal_conv1d_fwd<float>(xh, wh, bh, wy.data(), B, T, C, K);
    kc::causal_conv1d_bwd<float>(xh, wh, dyh, wdx.data(), wdw.data(), wdb.data(), B, T, C, K);
  }
  Tensor xd = on_gpu(x.to(dt)), wd = on_gpu(w.to(dt)), bd = on_gpu(bias.to(dt)), dyd = on_gpu(dy.to(dt));
  Tensor y = poisoned({B, T, C}, dt), dx = poisoned({B, T, C}, dt);
  Tensor dw1 = poisoned({C, K}, DType::f32), db1 = poisoned({C}, DType::f32);
  Tensor dw2 = poisoned({C, K}, DType::f32), db2 = poisoned({C}, DType::f32);
  auto run = [&](auto tag, Tensor& dw_, Tensor& db_, bool forward) {
    using T_ = decltype(tag);
    const T_ *xp = dptr<T_>(xd), *wp = dptr<T_>(wd), *bp = dptr<T_>(bd), *dyp = dptr<T_>(dyd);
    if (silu) {
      if (forward) kg::causal_conv1d_silu_fwd<T_>(xp, wp, bp, dptr<T_>(y), B, T, C, K);
      kg::causal_conv1d_silu_bwd<T_>(xp, wp, bp, dyp, dptr<T_>(dx), dptr<float>(dw_), dptr<float>(db_), B, T, C, K);
    } else {
      if (forward) kg::causal_conv1d_fwd<T_>(xp, wp, bp, dptr<T_>(y), B, T, C, K);
      kg::causal_conv1d_bwd<T_>(xp, wp, dyp, dptr<T_>(dx), dptr<float>(dw_), dptr<float>(db_), B, T, C, K);
    }
  };
  for (int r = 0; r < 2; ++r) {
    Tensor& dw_ = r == 0 ? dw1 : dw2;
    Tensor& db_ = r == 0 ? db1 : db2;
    if (dt == DType::f32)
      run(float{}, dw_, db_, r == 0);
    else
      run(kg::bf16{}, dw_, db_, r == 0);
  }
  CHECK(rel(back(y), wy) < tol);
  CHECK(rel(back(dx), wdx) < tol);
  CHECK(rel(back(dw1), wdw) < dw_tol);
  CHECK(rel(back(db1), wdb) < dw_tol);
  CHECK(back(dw1) == back(dw2));
  CHECK(back(db1) == back(db2));
}
}  // namespace

TEST_CASE("CUDA causal conv1d forward/backward match the CPU twin, dw is deterministic", "[gpu][kernels][conv1d]") {
  for (DType dt : {DType::f32, DType::bf16})
    for (int64_t K : {2, 3, 4})
      for (auto [B, T, C] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1}, {2, 7, 37}, {1, 129, 256},
                                                                               {2, 2049, 1000}})
        check_conv(false, dt, B, T, C, K, 100, 1e-5);
}

// The fused SiLU variant: the backward recomputes the pre-activation over a window that reaches
// K - 1 steps past each thread's run, so T straddles the run length (64) and the sequence end.
TEST_CASE("CUDA causal conv1d + SiLU (fused) matches the CPU twin, dw is deterministic",
          "[gpu][kernels][conv1d]") {
  for (DType dt : {DType::f32, DType::bf16})
    for (int64_t T : {1, 7, 65, 129, 300})
      for (int64_t K : {2, 3, 4})
        for (int64_t C : {1, 33, 130}) check_conv(true, dt, 2, T, C, K, 120, 1e-4);
}
#endif

#ifdef HYSCALE_WITH_CUDA
#include "kernels/selective_scan.h"

TEST_CASE("CUDA selective scan forward matches the CPU twin (y and the saved chunk states)", "[gpu][kernels][scan]") {
  for (DType dt : {DType::f32, DType::bf16}) {
    const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
    for (auto [B, T, Dc, N] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
             {1, 1, 1, 1}, {2, 7, 37, 16}, {1, 129, 64, 16}, {2, 2049, 256, 16}, {1, 127, 33, 24}}) {
      const int64_t chunk = 64, nc = kc::scan_num_chunks(T, chunk);
      INFO("scan " << dtype_name(dt) << " B " << B << " T " << T << " Dc " << Dc << " N " << N);
      auto R = [&](const Shape& s, uint64_t seed, double sc) { return rounded(testing::randn(s, seed, sc, DType::f32), dt); };
      Tensor u = R({B, T, Dc}, 110 + T, 1.0), delta = R({B, T, Dc}, 111 + T, 1.0), A_log = R({Dc, N}, 112, 0.5);
      Tensor Bm = R({B, T, N}, 113, 1.0), Cm = R({B, T, N}, 114, 1.0), D = R({Dc}, 115, 1.0), bias = R({Dc}, 116, 0.5);
      std::vector<float> wy(B * T * Dc), ws(B * nc * Dc * N);
      kc::selective_scan_fwd<float>(u.data<float>(), delta.data<float>(), A_log.data<float>(), Bm.data<float>(),
                                    Cm.data<float>(), D.data<float>(), bias.data<float>(), wy.data(), ws.data(), B, T,
                                    Dc, N, chunk);
      auto G = [&](const Tensor& t) { return on_gpu(t.to(dt)); };
      Tensor ud = G(u), dd = G(delta), ad = G(A_log), bd = G(Bm), cd = G(Cm), Dd = G(D), biasd = G(bias);
      Tensor y = poisoned({B, T, Dc}, dt), st = poisoned({B, nc, Dc, N}, DType::f32);
      if (dt == DType::f32)
        kg::selective_scan_fwd<float>(dptr<float>(ud), dptr<float>(dd), dptr<float>(ad), dptr<float>(bd),
                                      dptr<float>(cd), dptr<float>(Dd), dptr<float>(biasd), dptr<float>(y),
                                      dptr<float>(st), B, T, Dc, N, chunk);
      else
        kg::selective_scan_fwd<kg::bf16>(dptr<kg::bf16>(ud), dptr<kg::bf16>(dd), dptr<kg::bf16>(ad), dptr<kg::bf16>(bd),
                                         dptr<kg::bf16>(cd), dptr<kg::bf16>(Dd), dptr<kg::bf16>(biasd),
                                         dptr<kg::bf16>(y), dptr<float>(st), B, T, Dc, N, chunk);
      CHECK(rel(back(y), wy) < tol);
      CHECK(rel(back(st), ws) < (dt == DType::f32 ? 1e-5 : 1e-4));  // fp32 states either way
    }
  }
}
#endif
