// CUDA implementations of the differentiable ops (see core/ops_cuda.h). Inputs arrive validated
// and contiguous from ops*.cpp; everything runs on the default stream of the tensors' device.
#ifdef HYSCALE_WITH_CUDA
#include "core/ops_cuda.h"

#include <cmath>

#include "kernels/cuda.h"
#include "kernels/cuda_attention.h"
#include "kernels/cuda_diff_attention.h"
#include "kernels/cuda_hybrid.h"

namespace hyscale::ops::cuda_impl {

namespace kg = hyscale::kernels::cuda;
using kg::bf16;

namespace {

template <class T> T* P(const Tensor& t) { return static_cast<T*>(t.raw_data()); }
float* F(const Tensor& t) { return t.data<float>(); }

// fn(T{}) with T = float or bf16 (uint16_t bits) according to dtype.
template <class Fn> void dispatch(DType t, Fn&& fn) {
  if (t == DType::f32)
    fn(float{});
  else if (t == DType::bf16)
    fn(bf16{});
  else
    HS_FAIL("CUDA ops take f32 or bf16, got ", dtype_name(t));
}

Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }
Tensor empty(const Shape& s, DType dt, const Tensor& like) { return Tensor::empty(s, dt, like.device()); }
Tensor zeros_f32(const Shape& s, const Tensor& like) { return Tensor::zeros(s, DType::f32, like.device()); }
// An fp32 gradient of a parameter stored in `dt` (bf16 parameters get a rounded copy).
Tensor as_dtype(const Tensor& g32, DType dt) { return dt == DType::f32 ? g32 : g32.to(dt); }
// The one value of a scalar gradient (a host read: the stream synchronises).
double scalar_of(const Tensor& g) { return g.item(); }
bool bf(const Tensor& t) { return t.dtype() == DType::bf16; }

// ------------------------------------------------------------------- GEMMs
// y [M, N] = x [M, K] w[N, K]^T
void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& y, int64_t M, int64_t N, int64_t K) {
  kg::gemm(false, true, M, N, K, 1.0f, x.raw_data(), K, w.raw_data(), K, 0.0f, y.raw_data(), N, bf(x), bf(y));
}

struct LinearNode : Node {
  Tensor x, w;  // x as [M, K]
  Shape x_shape;
  DType dw_dtype = DType::f32;  // the weight input's dtype (linear_mp: the fp32 master's)
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
    Tensor dx, dw;
    // An empty inner dimension gives a zero product (cuBLASLt refuses it); otherwise the GEMM (beta 0)
    // writes every element, so the output is not zero-filled first.
    if (needs_grad(0)) {  // dx [M, K] = g [M, N] w [N, K]
      const bool run = M * K > 0 && N > 0;
      dx = run ? empty(x_shape, x.dtype(), x) : Tensor::zeros(x_shape, x.dtype(), x.device());
      if (run)
        kg::gemm(false, false, M, K, N, 1.0f, g.raw_data(), N, w.raw_data(), K, 0.0f, dx.raw_data(), K, bf(g), bf(dx));
    }
    if (needs_grad(1)) {  // dw [N, K] = g^T x
      const bool run = N * K > 0 && M > 0;
      // In dw_dtype directly (linear_mp: fp32 from bf16 operands, cuBLASLt's mixed output type).
      HS_CHECK(dw_dtype == DType::f32 || dw_dtype == w.dtype(), "linear (cuda): a ", dtype_name(dw_dtype),
               " weight gradient from ", dtype_name(w.dtype()), " operands");
      dw = run ? empty(w.shape(), dw_dtype, w) : Tensor::zeros(w.shape(), dw_dtype, w.device());
      if (run)
        kg::gemm(true, false, N, K, M, 1.0f, g.raw_data(), N, x.raw_data(), K, 0.0f, dw.raw_data(), K, bf(g), bf(dw));
    }
    return {dx, dw};
  }
  void release() override { x = w = Tensor(); }
  const char* name() const override { return "linear (cuda)"; }
};

struct BmmNode : Node {
  Tensor a, b;
  bool ta, tb;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    const int64_t Bn = a.size(0);
    const int64_t M = ta ? a.size(2) : a.size(1), K = ta ? a.size(1) : a.size(2);
    const int64_t N = tb ? b.size(1) : b.size(2);
    const int64_t lda = a.size(2), ldb = b.size(2);
    const bool h = bf(a);
    Tensor da, db;
    if (needs_grad(0)) {
      const bool none = Bn * M * K == 0 || N == 0;  // (beta-0 GEMMs write every element: no zero fill)
      da = none ? Tensor::zeros(a.shape(), a.dtype(), a.device()) : empty(a.shape(), a.dtype(), a);
      if (none) {
      } else if (!ta)
        kg::gemm(false, !tb, M, K, N, 1.0f, g.raw_data(), N, b.raw_data(), ldb, 0.0f, da.raw_data(), lda, h, h, Bn,
                 M * N, K * N, M * K);
      else
        kg::gemm(tb, true, K, M, N, 1.0f, b.raw_data(), ldb, g.raw_data(), N, 0.0f, da.raw_data(), lda, h, h, Bn,
                 K * N, M * N, M * K);
    }
    if (needs_grad(1)) {
      const bool none = Bn * K * N == 0 || M == 0;
      db = none ? Tensor::zeros(b.shape(), b.dtype(), b.device()) : empty(b.shape(), b.dtype(), b);
      if (none) {
      } else if (!tb)
        kg::gemm(!ta, false, K, N, M, 1.0f, a.raw_data(), lda, g.raw_data(), N, 0.0f, db.raw_data(), ldb, h, h, Bn,
                 M * K, M * N, K * N);
      else
        kg::gemm(true, ta, N, K, M, 1.0f, g.raw_data(), N, a.raw_data(), lda, 0.0f, db.raw_data(), ldb, h, h, Bn,
                 M * N, M * K, K * N);
    }
    return {da, db};
  }
  void release() override { a = b = Tensor(); }
  const char* name() const override { return "bmm (cuda)"; }
};

// ------------------------------------------------------------- elementwise
struct AddNode : Node {
  std::vector<Tensor> backward(const Tensor& g) override { return {g, g}; }
  const char* name() const override { return "add (cuda)"; }
};

struct MulNode : Node {
  Tensor a, b;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous(), da, db;
    dispatch(g.dtype(), [&](auto z) {
      using T = decltype(z);
      if (needs_grad(0)) {
        da = empty_like(a);
        kg::mul<T>(P<T>(g), P<T>(b), P<T>(da), g.numel());
      }
      if (needs_grad(1)) {
        db = empty_like(b);
        kg::mul<T>(P<T>(g), P<T>(a), P<T>(db), g.numel());
      }
    });
    return {da, db};
  }
  void release() override { a = b = Tensor(); }
  const char* name() const override { return "mul (cuda)"; }
};

struct ScaleNode : Node {
  double s;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous(), d = empty_like(g);
    dispatch(g.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::scale<T>(P<T>(g), static_cast<float>(s), P<T>(d), g.numel());
    });
    return {d};
  }
  const char* name() const override { return "scale (cuda)"; }
};

struct SiluNode : Node {
  Tensor x;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous(), d = empty_like(x);
    dispatch(x.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::silu_bwd<T>(P<T>(x), P<T>(g), P<T>(d), x.numel());
    });
    return {d};
  }
  void release() override { x = Tensor(); }
  const char* name() const override { return "silu (cuda)"; }
};

struct SwigluNode : Node {
  Tensor x;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous(), d = empty_like(x);
    const int64_t I = x.shape().back() / 2, rows = x.numel() / (2 * I);
    dispatch(x.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::swiglu_bwd<T>(P<T>(x), P<T>(g), P<T>(d), rows, I);
    });
    return {d};
  }
  void release() override { x = Tensor(); }
  const char* name() const override { return "swiglu (cuda)"; }
};

struct RmsNormNode : Node {
  Tensor x, g, rstd;  // rstd fp32 [rows]
  std::vector<Tensor> backward(const Tensor& dy_in) override {
    Tensor dy = dy_in.contiguous();
    const int64_t D = g.numel(), rows = x.numel() / D;
    Tensor dx = empty_like(x), dg = zeros_f32(g.shape(), g);
    dispatch(x.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::rmsnorm_bwd<T>(P<T>(x), P<T>(g), F(rstd), P<T>(dy), P<T>(dx), F(dg), rows, D);
    });
    return {dx, needs_grad(1) ? as_dtype(dg, g.dtype()) : Tensor()};
  }
  void release() override { x = g = rstd = Tensor(); }
  const char* name() const override { return "rmsnorm (cuda)"; }
};

struct EmbeddingNode : Node {
  Tensor ids;  // device i32
  Shape table_shape;
  DType dtype;
  int64_t start = 0;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    Tensor dt = Tensor::zeros(table_shape, DType::f32, g.device());
    dispatch(dtype, [&](auto z) {
      using T = decltype(z);
      kg::embedding_bwd<T>(ids.data<int32_t>(), P<T>(g), F(dt), ids.numel(), table_shape[1], start, table_shape[0]);
    });
    return {as_dtype(dt, dtype)};
  }
  void release() override { ids = Tensor(); }
  const char* name() const override { return "embedding (cuda)"; }
};

struct RopeNode : Node {
  Shape shape;
  double base;
  int64_t pos0;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous(), d = empty_like(g);
    dispatch(g.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::rope_bwd<T>(P<T>(g), P<T>(d), shape[0], shape[1], shape[2], shape[3], base, pos0);
    });
    return {d};
  }
  const char* name() const override { return "rope (cuda)"; }
};

struct AttentionNode : Node {
  Tensor q, k, v, out, lse;  // lse fp32 [B, H, T]
  double scale;
  int64_t window;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    Tensor dq = empty_like(q), dk = empty_like(k), dv = empty_like(v);
    dispatch(q.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::attention_bwd<T>(P<T>(q), P<T>(k), P<T>(v), P<T>(out), P<T>(g), F(lse), P<T>(dq), P<T>(dk), P<T>(dv),
                           q.size(0), q.size(1), q.size(2), k.size(2), q.size(3), v.size(3), scale, window);
    });
    return {dq, dk, dv};
  }
  void release() override { q = k = v = out = lse = Tensor(); }
  const char* name() const override { return "attention (cuda)"; }
};

struct CrossEntropyNode : Node {
  Tensor logits, targets, lse;  // targets device i32, lse fp32 [N]
  std::vector<Tensor> backward(const Tensor& g_in) override {
    const double gs = scalar_of(g_in);
    const int64_t N = logits.size(0), V = logits.size(1);
    Tensor d = empty_like(logits);
    dispatch(logits.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::cross_entropy_bwd<T>(P<T>(logits), targets.data<int32_t>(), F(lse), static_cast<float>(gs / N), P<T>(d),
                               N, V, 0);
    });
    return {d};
  }
  void release() override { logits = targets = lse = Tensor(); }
  const char* name() const override { return "cross_entropy (cuda)"; }
};

struct SelectiveScanNode : Node {
  Tensor u, delta, A_log, Bm, Cm, D, dt_bias, states, z;  // states fp32; z: the fused gate (rows ldz apart) or none
  int64_t chunk, ldz = 0;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor dy = g_in.contiguous();
    const int64_t B = u.size(0), T_ = u.size(1), Dc = u.size(2), N = A_log.size(1);
    Tensor du = empty_like(u), dd = empty_like(delta);
    Tensor dA = empty(A_log.shape(), DType::f32, u), dB = empty(Bm.shape(), DType::f32, u),
           dC = empty(Cm.shape(), DType::f32, u), dD = empty(D.shape(), DType::f32, u),
           dbias = empty(dt_bias.shape(), DType::f32, u);
    Tensor dz = z.defined() ? empty_like(u) : Tensor();
    dispatch(u.dtype(), [&](auto zero) {
      using T = decltype(zero);
      kernels::ScanGate<T> gate;
      if (z.defined()) gate = {P<T>(z), ldz, P<T>(dz)};
      kg::selective_scan_bwd<T>(P<T>(u), P<T>(delta), P<T>(A_log), P<T>(Bm), P<T>(Cm), P<T>(D), P<T>(dt_bias),
                                F(states), P<T>(dy), P<T>(du), P<T>(dd), F(dA), F(dB), F(dC), F(dD), F(dbias), B, T_,
                                Dc, N, chunk, nullptr, gate);
    });
    const DType dt = u.dtype();
    std::vector<Tensor> g = {du, dd, as_dtype(dA, dt), as_dtype(dB, dt), as_dtype(dC, dt), as_dtype(dD, dt),
                             as_dtype(dbias, dt)};
    if (z.defined()) g.push_back(dz);
    return g;
  }
  void release() override { u = delta = A_log = Bm = Cm = D = dt_bias = states = z = Tensor(); }
  const char* name() const override { return "selective_scan (cuda)"; }
};

struct Conv1dNode : Node {
  Tensor x, w, bias;  // bias: only with silu (the backward recomputes the pre-activation)
  bool silu = false;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor dy = g_in.contiguous();
    Tensor dx = empty_like(x), dw = zeros_f32(w.shape(), w), db = zeros_f32({w.size(0)}, w);
    dispatch(x.dtype(), [&](auto z) {
      using T = decltype(z);
      if (silu)
        kg::causal_conv1d_silu_bwd<T>(P<T>(x), P<T>(w), P<T>(bias), P<T>(dy), P<T>(dx), F(dw), F(db), x.size(0),
                                      x.size(1), x.size(2), w.size(1));
      else
        kg::causal_conv1d_bwd<T>(P<T>(x), P<T>(w), P<T>(dy), P<T>(dx), F(dw), F(db), x.size(0), x.size(1),
                                 x.size(2), w.size(1));
    });
    return {dx, as_dtype(dw, w.dtype()), as_dtype(db, w.dtype())};
  }
  void release() override { x = w = bias = Tensor(); }
  const char* name() const override { return silu ? "causal_conv1d_silu (cuda)" : "causal_conv1d (cuda)"; }
};

struct GmuGateNode : Node {
  Tensor p, m;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor dh = g_in.contiguous(), dp = empty_like(p);
    Tensor dm = Tensor::zeros(m.shape(), m.dtype(), m.device());  // the kernel accumulates into dm
    dispatch(p.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::gmu_gate_bwd<T>(P<T>(p), P<T>(m), P<T>(dh), P<T>(dp), P<T>(dm), p.numel());
    });
    return {dp, dm};
  }
  void release() override { p = m = Tensor(); }
  const char* name() const override { return "gmu_gate (cuda)"; }
};

struct DiffLambdaNode : Node {
  Tensor lq1, lk1, lq2, lk2;  // f32 copies
  DType in_dtype;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous().to(DType::f32);
    std::vector<Tensor> out(4);
    for (auto& t : out) t = empty_like(lq1);
    kg::diff_lambda_bwd(F(lq1), F(lk1), F(lq2), F(lk2), lq1.numel(), F(g), F(out[0]), F(out[1]), F(out[2]),
                        F(out[3]));
    for (auto& t : out) t = as_dtype(t, in_dtype);
    return out;
  }
  void release() override { lq1 = lk1 = lq2 = lk2 = Tensor(); }
  const char* name() const override { return "diff_lambda (cuda)"; }
};

struct DiffCombineNode : Node {
  Tensor a2, lambda;  // lambda: f32 scalar on the device
  DType lambda_dtype;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    Tensor da1 = empty_like(a2), da2 = empty_like(a2), dl = empty({}, DType::f32, a2);
    dispatch(a2.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::diff_combine_bwd<T>(P<T>(a2), P<T>(g), F(lambda), P<T>(da1), P<T>(da2), F(dl), a2.numel());
    });
    return {da1, da2, as_dtype(dl, lambda_dtype)};
  }
  void release() override { a2 = lambda = Tensor(); }
  const char* name() const override { return "diff_combine (cuda)"; }
};

struct DiffAttentionNode : Node {
  Tensor q, k, v, lambda, o1, o2, lse1, lse2;  // lambda f32 scalar; lse fp32 [B, Hp, T]
  DType lambda_dtype;
  double scale;
  int64_t window;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    Tensor dq = empty_like(q), dk = empty_like(k), dv = empty_like(v), dl = empty({}, DType::f32, q);
    dispatch(q.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::diff_attention_bwd<T>(P<T>(q), P<T>(k), P<T>(v), F(lambda), P<T>(o1), P<T>(o2), F(lse1), F(lse2), P<T>(g),
                                P<T>(dq), P<T>(dk), P<T>(dv), F(dl), q.size(0), q.size(1), q.size(2), k.size(2),
                                q.size(3) / 2, scale, window);
    });
    return {dq, dk, dv, as_dtype(dl, lambda_dtype)};
  }
  void release() override { q = k = v = lambda = o1 = o2 = lse1 = lse2 = Tensor(); }
  const char* name() const override { return "diff_attention (cuda)"; }
};

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* master) {
  const int64_t K = w.size(1), N = w.size(0), M = x.numel() / std::max<int64_t>(K, 1);
  Shape os = x.shape();
  os.back() = N;
  Tensor y = K == 0 ? Tensor::zeros(os, x.dtype(), x.device()) : empty(os, x.dtype(), x);
  if (K > 0 && M > 0 && N > 0) linear_fwd(x, w, y, M, N, K);
  const Tensor& wg = master ? *master : w;  // the weight that gets the gradient
  if (!any_requires_grad({&x, &wg})) return y;
  auto node = std::make_shared<LinearNode>();
  node->x = x.detach().reshape({M, K});
  node->w = w.detach();
  node->x_shape = x.shape();
  node->dw_dtype = wg.dtype();
  return record(y, node, {&x, &wg});
}

Tensor bmm(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int64_t Bn = a.size(0);
  const int64_t M = ta ? a.size(2) : a.size(1), K = ta ? a.size(1) : a.size(2);
  const int64_t N = tb ? b.size(1) : b.size(2);
  Tensor y = K == 0 ? Tensor::zeros({Bn, M, N}, a.dtype(), a.device()) : empty({Bn, M, N}, a.dtype(), a);
  if (K > 0 && Bn * M * N > 0)
    kg::gemm(ta, tb, M, N, K, 1.0f, a.raw_data(), a.size(2), b.raw_data(), b.size(2), 0.0f, y.raw_data(), N, bf(a),
             bf(y), Bn, a.size(1) * a.size(2), b.size(1) * b.size(2), M * N);
  if (!any_requires_grad({&a, &b})) return y;
  auto node = std::make_shared<BmmNode>();
  node->a = a.detach();
  node->b = b.detach();
  node->ta = ta;
  node->tb = tb;
  return record(y, node, {&a, &b});
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = empty_like(a);
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::add<T>(P<T>(a), P<T>(b), P<T>(y), a.numel());
  });
  return record(y, std::make_shared<AddNode>(), {&a, &b});
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = empty_like(a);
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::mul<T>(P<T>(a), P<T>(b), P<T>(y), a.numel());
  });
  if (!any_requires_grad({&a, &b})) return y;
  auto node = std::make_shared<MulNode>();
  node->a = a.detach();
  node->b = b.detach();
  return record(y, node, {&a, &b});
}

Tensor scale(const Tensor& a, double s) {
  Tensor y = empty_like(a);
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::scale<T>(P<T>(a), static_cast<float>(s), P<T>(y), a.numel());
  });
  auto node = std::make_shared<ScaleNode>();
  node->s = s;
  return record(y, node, {&a});
}

Tensor silu(const Tensor& x) {
  Tensor y = empty_like(x);
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::silu_fwd<T>(P<T>(x), P<T>(y), x.numel());
  });
  if (!any_requires_grad({&x})) return y;
  auto node = std::make_shared<SiluNode>();
  node->x = x.detach();
  return record(y, node, {&x});
}

Tensor swiglu(const Tensor& x) {
  const int64_t I = x.shape().back() / 2, rows = x.numel() / (2 * I);
  Shape os = x.shape();
  os.back() = I;
  Tensor y = empty(os, x.dtype(), x);
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::swiglu_fwd<T>(P<T>(x), P<T>(y), rows, I);
  });
  if (!any_requires_grad({&x})) return y;
  auto node = std::make_shared<SwigluNode>();
  node->x = x.detach();
  return record(y, node, {&x});
}

Tensor rmsnorm(const Tensor& x, const Tensor& g, double eps) {
  const int64_t D = g.size(0), rows = x.numel() / D;
  Tensor y = empty_like(x), rstd = empty({rows}, DType::f32, x);
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::rmsnorm_fwd<T>(P<T>(x), P<T>(g), P<T>(y), F(rstd), rows, D, eps);
  });
  if (!any_requires_grad({&x, &g})) return y;
  auto node = std::make_shared<RmsNormNode>();
  node->x = x.detach();
  node->g = g.detach();
  node->rstd = rstd;
  return record(y, node, {&x, &g});
}

Tensor embedding(const Tensor& ids_in, const Tensor& table, int64_t start) {
  Tensor ids = ids_in.contiguous().to(table.device());
  Shape os = ids.shape();
  os.push_back(table.size(1));
  Tensor y = empty(os, table.dtype(), table);
  dispatch(table.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::embedding_fwd<T>(ids.data<int32_t>(), P<T>(table), P<T>(y), ids.numel(), table.size(1), start, table.size(0));
  });
  if (!any_requires_grad({&table})) return y;
  auto node = std::make_shared<EmbeddingNode>();
  node->ids = ids;
  node->table_shape = table.shape();
  node->dtype = table.dtype();
  node->start = start;
  return record(y, node, {&table});
}

Tensor rope(const Tensor& x, double base, int64_t pos0) {
  Tensor y = empty_like(x);
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::rope_fwd<T>(P<T>(x), P<T>(y), x.size(0), x.size(1), x.size(2), x.size(3), base, pos0);
  });
  auto node = std::make_shared<RopeNode>();
  node->shape = x.shape();
  node->base = base;
  node->pos0 = pos0;
  return record(y, node, {&x});
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, int64_t window) {
  const int64_t B = q.size(0), T_ = q.size(1), H = q.size(2), Hk = k.size(2), D = q.size(3), Dv = v.size(3);
  Tensor out = empty({B, T_, H, Dv}, q.dtype(), q), lse = empty({B, H, T_}, DType::f32, q);
  dispatch(q.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::attention_fwd<T>(P<T>(q), P<T>(k), P<T>(v), P<T>(out), F(lse), B, T_, H, Hk, D, Dv, scale, window);
  });
  if (!any_requires_grad({&q, &k, &v})) return out;
  auto node = std::make_shared<AttentionNode>();
  node->q = q.detach();
  node->k = k.detach();
  node->v = v.detach();
  node->out = out.detach();
  node->lse = lse;
  node->scale = scale;
  node->window = window;
  return record(out, node, {&q, &k, &v});
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets_in) {
  const int64_t N = logits.size(0), V = logits.size(1);
  Tensor targets = targets_in.contiguous().to(logits.device());
  Tensor rows = empty({N}, DType::f32, logits), lse = empty({N}, DType::f32, logits);
  dispatch(logits.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::cross_entropy_fwd<T>(P<T>(logits), targets.data<int32_t>(), F(rows), F(lse), N, V);
  });
  // The mean over rows: summed on the host in double, in row order (deterministic); the loss
  // is an fp32 scalar on the device whatever the logits' dtype.
  const std::vector<float> r = rows.to_vector<float>();
  double s = 0;
  for (float x : r) s += x;
  Tensor loss = Tensor::full({}, s / static_cast<double>(N), DType::f32).to(logits.device());
  if (!any_requires_grad({&logits})) return loss;
  auto node = std::make_shared<CrossEntropyNode>();
  node->logits = logits.detach();
  node->targets = targets;
  node->lse = lse;
  return record(loss, node, {&logits});
}

Tensor cross_entropy_stats(const Tensor& logits, const Tensor& targets_in, int64_t start) {
  const int64_t N = logits.size(0), V = logits.size(1);
  Tensor targets = targets_in.contiguous().to(logits.device());
  Tensor stats = empty({3, N}, DType::f32, logits);
  dispatch(logits.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::cross_entropy_stats<T>(P<T>(logits), targets.data<int32_t>(), start, F(stats), N, V);
  });
  return stats;
}

std::pair<Tensor, Tensor> cross_entropy_combine(const Tensor& all) {
  HS_CHECK(all.dtype() == DType::f32, "cross_entropy_combine: device stats must be f32, got ", all.desc());
  const int64_t P = all.size(0), N = all.size(2);
  Tensor rows = empty({N}, DType::f32, all), lse = empty({N}, DType::f32, all);
  kg::cross_entropy_combine(F(all), P, F(rows), F(lse), N);
  return {rows, lse};
}

Tensor cross_entropy_grad(const Tensor& logits, const Tensor& targets_in, const Tensor& lse_in, int64_t start,
                          double dscale) {
  const int64_t N = logits.size(0), V = logits.size(1);
  Tensor targets = targets_in.contiguous().to(logits.device());
  Tensor lse = lse_in.contiguous().to(logits.device()).to(DType::f32);
  Tensor d = empty_like(logits);
  dispatch(logits.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::cross_entropy_bwd<T>(P<T>(logits), targets.data<int32_t>(), F(lse), static_cast<float>(dscale), P<T>(d), N, V,
                             start);
  });
  return d;
}

Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A_log, const Tensor& Bm, const Tensor& Cm,
                      const Tensor& D, const Tensor& dt_bias, int64_t chunk, const Tensor& z, int64_t ldz,
                      Tensor* final_state) {
  const int64_t B = u.size(0), T_ = u.size(1), Dc = u.size(2), N = A_log.size(1);
  const int64_t nch = (T_ + chunk - 1) / chunk;
  Tensor y = empty_like(u), states = empty({B, nch, Dc, N}, DType::f32, u);
  dispatch(u.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::ScanGate<T> gate;
    if (z.defined()) gate = {P<T>(z), ldz, nullptr};
    kg::selective_scan_fwd<T>(P<T>(u), P<T>(delta), P<T>(A_log), P<T>(Bm), P<T>(Cm), P<T>(D), P<T>(dt_bias), P<T>(y),
                              F(states), B, T_, Dc, N, chunk, nullptr, gate);
  });
  if (final_state) *final_state = states.slice(1, nch - 1, nch).reshape({B, Dc, N});
  if (!any_requires_grad({&u, &delta, &A_log, &Bm, &Cm, &D, &dt_bias, &z})) return y;
  auto node = std::make_shared<SelectiveScanNode>();
  node->u = u.detach();
  node->delta = delta.detach();
  node->A_log = A_log.detach();
  node->Bm = Bm.detach();
  node->Cm = Cm.detach();
  node->D = D.detach();
  node->dt_bias = dt_bias.detach();
  node->states = states;
  node->chunk = chunk;
  if (!z.defined()) return record(y, node, {&u, &delta, &A_log, &Bm, &Cm, &D, &dt_bias});
  node->z = z.detach();
  node->ldz = ldz;
  return record(y, node, {&u, &delta, &A_log, &Bm, &Cm, &D, &dt_bias, &z});
}

static Tensor conv1d_op(bool silu, const Tensor& x, const Tensor& w, const Tensor& bias) {
  Tensor y = empty_like(x);
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    if (silu)
      kg::causal_conv1d_silu_fwd<T>(P<T>(x), P<T>(w), P<T>(bias), P<T>(y), x.size(0), x.size(1), x.size(2),
                                    w.size(1));
    else
      kg::causal_conv1d_fwd<T>(P<T>(x), P<T>(w), P<T>(bias), P<T>(y), x.size(0), x.size(1), x.size(2), w.size(1));
  });
  if (!any_requires_grad({&x, &w, &bias})) return y;
  auto node = std::make_shared<Conv1dNode>();
  node->x = x.detach();
  node->w = w.detach();
  if (silu) node->bias = bias.detach();
  node->silu = silu;
  return record(y, node, {&x, &w, &bias});
}
Tensor causal_conv1d(const Tensor& x, const Tensor& w, const Tensor& bias) { return conv1d_op(false, x, w, bias); }
Tensor causal_conv1d_silu(const Tensor& x, const Tensor& w, const Tensor& bias) { return conv1d_op(true, x, w, bias); }

Tensor gmu_gate(const Tensor& p, const Tensor& m) {
  Tensor y = empty_like(p);
  dispatch(p.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::gmu_gate_fwd<T>(P<T>(p), P<T>(m), P<T>(y), p.numel());
  });
  if (!any_requires_grad({&p, &m})) return y;
  auto node = std::make_shared<GmuGateNode>();
  node->p = p.detach();
  node->m = m.detach();
  return record(y, node, {&p, &m});
}

Tensor diff_lambda(const Tensor& q1_in, const Tensor& k1_in, const Tensor& q2_in, const Tensor& k2_in,
                   double lambda_init) {
  // The four [d] vectors are tiny: bf16 inputs are widened to f32 here and their gradients
  // rounded back to bf16 by the node.
  Tensor q1 = q1_in.to(DType::f32), k1 = k1_in.to(DType::f32), q2 = q2_in.to(DType::f32), k2 = k2_in.to(DType::f32);
  Tensor out = empty({}, DType::f32, q1);
  kg::diff_lambda_fwd(F(q1), F(k1), F(q2), F(k2), q1.numel(), lambda_init, F(out));
  if (!any_requires_grad({&q1_in, &k1_in, &q2_in, &k2_in})) return out;
  auto node = std::make_shared<DiffLambdaNode>();
  node->in_dtype = q1_in.dtype();
  node->lq1 = q1.detach();
  node->lk1 = k1.detach();
  node->lq2 = q2.detach();
  node->lk2 = k2.detach();
  return record(out, node, {&q1_in, &k1_in, &q2_in, &k2_in});
}

Tensor diff_combine(const Tensor& a1, const Tensor& a2, const Tensor& lambda_in) {
  Tensor lam = lambda_in.to(DType::f32);
  Tensor out = empty_like(a1);
  dispatch(a1.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::diff_combine_fwd<T>(P<T>(a1), P<T>(a2), F(lam), P<T>(out), a1.numel());
  });
  if (!any_requires_grad({&a1, &a2, &lambda_in})) return out;
  auto node = std::make_shared<DiffCombineNode>();
  node->a2 = a2.detach();
  node->lambda = lam.detach();
  node->lambda_dtype = lambda_in.dtype();
  return record(out, node, {&a1, &a2, &lambda_in});
}

Tensor diff_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lambda_in, double scale,
                      int64_t window) {
  const int64_t B = q.size(0), T_ = q.size(1), Hp = q.size(2), Hkp = k.size(2), hd = q.size(3) / 2;
  Tensor lam = lambda_in.contiguous().to(DType::f32);
  Tensor out = empty_like(q), o1 = empty_like(q), o2 = empty_like(q);
  Tensor lse1 = empty({B, Hp, T_}, DType::f32, q), lse2 = empty({B, Hp, T_}, DType::f32, q);
  dispatch(q.dtype(), [&](auto z) {
    using T = decltype(z);
    kg::diff_attention_fwd<T>(P<T>(q), P<T>(k), P<T>(v), F(lam), P<T>(out), P<T>(o1), P<T>(o2), F(lse1), F(lse2), B,
                              T_, Hp, Hkp, hd, scale, window);
  });
  if (!any_requires_grad({&q, &k, &v, &lambda_in})) return out;
  auto node = std::make_shared<DiffAttentionNode>();
  node->q = q.detach();
  node->k = k.detach();
  node->v = v.detach();
  node->lambda = lam.detach();
  node->lambda_dtype = lambda_in.dtype();
  node->o1 = o1;
  node->o2 = o2;
  node->lse1 = lse1;
  node->lse2 = lse2;
  node->scale = scale;
  node->window = window;
  return record(out, node, {&q, &k, &v, &lambda_in});
}

}  // namespace hyscale::ops::cuda_impl
#endif  // HYSCALE_WITH_CUDA
