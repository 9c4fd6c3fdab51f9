#include "core/ops.h"

#include "core/ops_util.h"
#include "core/ops_cuda.h"

#include <cmath>

#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/rope.h"

namespace hyscale::ops {

namespace kc = hyscale::kernels::cpu;
using namespace detail;

// Tensors on a CUDA device go to the CUDA implementation of the same op (core/ops_cuda.h)
// once the shared checks above the call have passed.
#ifdef HYSCALE_WITH_CUDA
#define HS_CUDA_DISPATCH(t, call) \
  if ((t).device().is_cuda()) return cuda_impl::call
#else
#define HS_CUDA_DISPATCH(t, call) (void)0
#endif

namespace {



// ------------------------------------------------------------------ linear
struct LinearNode : Node {
  Tensor x, w;  // x flattened to [M, K]
  Shape x_shape;
  DType dw_dtype = DType::f32;  // the weight input's dtype (linear_mp: the master's)
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
    Tensor dx, dw;
    dispatch(x.dtype(), [&](auto z) {
      using T = decltype(z);
      if (needs_grad(0)) {  // dx = g w
        dx = Tensor::empty(x_shape, x.dtype());
        kc::gemm<T>(false, false, M, K, N, T(1), HS_PTR(g), N, HS_PTR(w), K, T(0), HS_PTR(dx), K);
      }
      if (needs_grad(1)) {  // dw = g^T x
        dw = Tensor::empty({N, K}, x.dtype());
        kc::gemm<T>(true, false, N, K, M, T(1), HS_PTR(g), N, HS_PTR(x), K, T(0), HS_PTR(dw), K);
      }
    });
    if (dw.defined() && dw.dtype() != dw_dtype) dw = dw.to(dw_dtype);  // linear_mp: as the cast's backward
    return {dx, dw};
  }
  void release() override { x = w = Tensor(); }
  const char* name() const override { return "linear"; }
};

}  // namespace

namespace {
Tensor linear_impl(const Tensor& x_in, const Tensor& w_in, const Tensor* master) {
  Tensor x = prep("linear", x_in, "input"), w = prep("linear", w_in, "weight");
  same_dtype("linear", x, w);
  if (master) {
    HS_CHECK(master->defined() && master->shape() == w.shape() && master->device() == w.device() &&
                 is_floating(master->dtype()),
             "linear_mp: the master weight ", master->defined() ? master->desc() : "undefined",
             " does not match its compute copy ", w.desc());
    HS_CHECK(!w.requires_grad(), "linear_mp: the compute copy ", w.desc(),
             " must not require grad (the gradient goes to the master weight)");
    HS_CHECK(w.device().is_cpu() || master->dtype() == DType::f32 || master->dtype() == w.dtype(),
             "linear_mp: on ", w.device().str(), " the master weight must be f32 (or the copy's dtype), got ",
             dtype_name(master->dtype()));
  }
  HS_CHECK(w.dim() == 2 && x.dim() >= 1 && x.shape().back() == w.size(1), "linear: input ", shape_str(x.shape()),
           " does not match weight ", shape_str(w.shape()), " (weight is [out, in])");
  const int64_t K = w.size(1), N = w.size(0);
  int64_t M = 1;
  for (int64_t i = 0; i + 1 < x.dim(); ++i) M *= x.size(i);
  check_blas_dims("linear", {M, N, K});
  Shape out_shape = x.shape();
  out_shape.back() = N;
  HS_CUDA_DISPATCH(x, linear(x, w, master));
  // An empty inner dimension gives a zero product (BLAS would leave C untouched).
  Tensor y = K == 0 ? Tensor::zeros(out_shape, x.dtype()) : Tensor::empty(out_shape, x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::gemm<T>(false, true, M, N, K, T(1), HS_PTR(x), K, HS_PTR(w), K, T(0), HS_PTR(y), N);
  });
  const Tensor& wg = master ? *master : w;  // the weight that gets the gradient
  if (!any_requires_grad({&x, &wg})) return y;
  auto node = std::make_shared<LinearNode>();
  node->x = x.detach().reshape({M, K});
  node->w = w.detach();
  node->x_shape = x.shape();
  node->dw_dtype = wg.dtype();
  return record(y, node, {&x, &wg});
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& w) { return linear_impl(x, w, nullptr); }
Tensor linear_mp(const Tensor& x, const Tensor& w_master, const Tensor& w_compute) {
  return linear_impl(x, w_compute, &w_master);
}

namespace {
struct BmmNode : Node {
  Tensor a, b;
  bool ta, tb;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    const int64_t Bn = a.size(0);
    const int64_t M = ta ? a.size(2) : a.size(1), K = ta ? a.size(1) : a.size(2);
    const int64_t N = tb ? b.size(1) : b.size(2);
    Tensor da, db;
    dispatch(a.dtype(), [&](auto z) {
      using T = decltype(z);
      const int64_t lda = a.size(2), ldb = b.size(2);
      if (needs_grad(0)) {
        da = Tensor::empty(a.shape(), a.dtype());
        // C = op(A) op(B); dop(A) = G op(B)^T  [M,K]
        if (!ta)
          kc::gemm_batched<T>(false, !tb, Bn, M, K, N, T(1), HS_PTR(g), N, M * N, HS_PTR(b), ldb, K * N, T(0),
                              HS_PTR(da), lda, M * K);
        else  // A stored [K, M]: dA = op(B) G^T  [K, M]
          kc::gemm_batched<T>(tb, true, Bn, K, M, N, T(1), HS_PTR(b), ldb, K * N, HS_PTR(g), N, M * N, T(0),
                              HS_PTR(da), lda, M * K);
      }
      if (needs_grad(1)) {
        db = Tensor::empty(b.shape(), b.dtype());
        if (!tb)  // dB [K, N] = op(A)^T G
          kc::gemm_batched<T>(!ta, false, Bn, K, N, M, T(1), HS_PTR(a), lda, M * K, HS_PTR(g), N, M * N, T(0),
                              HS_PTR(db), ldb, K * N);
        else  // B stored [N, K]: dB = G^T op(A)  [N, K]
          kc::gemm_batched<T>(true, ta, Bn, N, K, M, T(1), HS_PTR(g), N, M * N, HS_PTR(a), lda, M * K, T(0),
                              HS_PTR(db), ldb, K * N);
      }
    });
    return {da, db};
  }
  void release() override { a = b = Tensor(); }
  const char* name() const override { return "bmm"; }
};
}  // namespace

Tensor bmm(const Tensor& a_in, const Tensor& b_in, bool ta, bool tb) {
  Tensor a = prep("bmm", a_in, "a"), b = prep("bmm", b_in, "b");
  same_dtype("bmm", a, b);
  HS_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0), "bmm: expected a [B, M, K] and b [B, K, N], got ",
           shape_str(a.shape()), " and ", shape_str(b.shape()));
  const int64_t Bn = a.size(0);
  const int64_t M = ta ? a.size(2) : a.size(1), K = ta ? a.size(1) : a.size(2);
  const int64_t Kb = tb ? b.size(2) : b.size(1), N = tb ? b.size(1) : b.size(2);
  HS_CHECK(K == Kb, "bmm: inner dimensions differ: a ", shape_str(a.shape()), (ta ? "^T" : ""), " vs b ",
           shape_str(b.shape()), (tb ? "^T" : ""));
  check_blas_dims("bmm", {M, N, K});
  HS_CUDA_DISPATCH(a, bmm(a, b, ta, tb));
  Tensor y = K == 0 ? Tensor::zeros({Bn, M, N}, a.dtype()) : Tensor::empty({Bn, M, N}, a.dtype());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::gemm_batched<T>(ta, tb, Bn, M, N, K, T(1), HS_PTR(a), a.size(2), a.size(1) * a.size(2), HS_PTR(b),
                        b.size(2), b.size(1) * b.size(2), T(0), HS_PTR(y), N, M * N);
  });
  if (any_requires_grad({&a, &b})) {
    auto node = std::make_shared<BmmNode>();
    node->a = a.detach();
    node->b = b.detach();
    node->ta = ta;
    node->tb = tb;
    record(y, node, {&a, &b});
  }
  return y;
}

// ------------------------------------------------------------------ elementwise
namespace {
struct AddNode : Node {
  std::vector<Tensor> backward(const Tensor& g) override { return {g, g}; }
  const char* name() const override { return "add"; }
};
struct MulNode : Node {
  Tensor a, b;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous(), da, db;
    dispatch(g.dtype(), [&](auto z) {
      using T = decltype(z);
      if (needs_grad(0)) {
        da = Tensor::empty(a.shape(), a.dtype());
        kc::mul<T>(HS_PTR(g), HS_PTR(b), HS_PTR(da), g.numel());
      }
      if (needs_grad(1)) {
        db = Tensor::empty(b.shape(), b.dtype());
        kc::mul<T>(HS_PTR(g), HS_PTR(a), HS_PTR(db), g.numel());
      }
    });
    return {da, db};
  }
  void release() override { a = b = Tensor(); }
  const char* name() const override { return "mul"; }
};
struct ScaleNode : Node {
  double s;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    Tensor d = Tensor::empty(g.shape(), g.dtype());
    dispatch(g.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::scale<T>(HS_PTR(g), static_cast<T>(s), HS_PTR(d), g.numel());
    });
    return {d};
  }
  const char* name() const override { return "scale"; }
};
struct SiluNode : Node {
  Tensor x;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous(), d = Tensor::empty(x.shape(), x.dtype());
    dispatch(x.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::silu_bwd<T>(HS_PTR(x), HS_PTR(g), HS_PTR(d), x.numel());
    });
    return {d};
  }
  void release() override { x = Tensor(); }
  const char* name() const override { return "silu"; }
};
struct SwigluNode : Node {
  Tensor x;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous(), d = Tensor::empty(x.shape(), x.dtype());
    const int64_t I = x.shape().back() / 2, rows = x.numel() / (2 * I);
    dispatch(x.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::swiglu_bwd<T>(HS_PTR(x), HS_PTR(g), HS_PTR(d), rows, I);
    });
    return {d};
  }
  void release() override { x = Tensor(); }
  const char* name() const override { return "swiglu"; }
};
}  // namespace

Tensor add(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = prep("add", a_in, "a"), b = prep("add", b_in, "b");
  same_dtype("add", a, b);
  HS_CHECK(a.shape() == b.shape(), "add: shape mismatch: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  HS_CUDA_DISPATCH(a, add(a, b));
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::add<T>(HS_PTR(a), HS_PTR(b), HS_PTR(y), a.numel());
  });
  return record(y, std::make_shared<AddNode>(), {&a, &b});
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = prep("mul", a_in, "a"), b = prep("mul", b_in, "b");
  same_dtype("mul", a, b);
  HS_CHECK(a.shape() == b.shape(), "mul: shape mismatch: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  HS_CUDA_DISPATCH(a, mul(a, b));
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::mul<T>(HS_PTR(a), HS_PTR(b), HS_PTR(y), a.numel());
  });
  if (!any_requires_grad({&a, &b})) return y;
  auto node = std::make_shared<MulNode>();
  node->a = a.detach();
  node->b = b.detach();
  return record(y, node, {&a, &b});
}

Tensor scale(const Tensor& a_in, double s) {
  Tensor a = prep("scale", a_in, "input");
  HS_CUDA_DISPATCH(a, scale(a, s));
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::scale<T>(HS_PTR(a), static_cast<T>(s), HS_PTR(y), a.numel());
  });
  auto node = std::make_shared<ScaleNode>();
  node->s = s;
  return record(y, node, {&a});
}

Tensor silu(const Tensor& x_in) {
  Tensor x = prep("silu", x_in, "input");
  HS_CUDA_DISPATCH(x, silu(x));
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::silu_fwd<T>(HS_PTR(x), HS_PTR(y), x.numel());
  });
  if (!any_requires_grad({&x})) return y;
  auto node = std::make_shared<SiluNode>();
  node->x = x.detach();
  return record(y, node, {&x});
}

Tensor swiglu(const Tensor& x_in) {
  Tensor x = prep("swiglu", x_in, "input");
  HS_CHECK(x.dim() >= 1 && x.shape().back() % 2 == 0 && x.shape().back() > 0,
           "swiglu: last dimension must be even (= 2 * hidden), got shape ", shape_str(x.shape()));
  HS_CUDA_DISPATCH(x, swiglu(x));
  const int64_t I = x.shape().back() / 2, rows = x.numel() / (2 * I);
  Shape os = x.shape();
  os.back() = I;
  Tensor y = Tensor::empty(os, x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::swiglu_fwd<T>(HS_PTR(x), HS_PTR(y), rows, I);
  });
  if (!any_requires_grad({&x})) return y;
  auto node = std::make_shared<SwigluNode>();
  node->x = x.detach();
  return record(y, node, {&x});
}

// ------------------------------------------------------------------ rmsnorm
namespace {
struct RmsNormNode : Node {
  Tensor x, g, rstd;
  std::vector<Tensor> backward(const Tensor& dy_in) override {
    Tensor dy = dy_in.contiguous();
    const int64_t D = g.numel(), rows = x.numel() / D;
    Tensor dx = Tensor::empty(x.shape(), x.dtype()), dg = Tensor::zeros(g.shape(), g.dtype());
    dispatch(x.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::rmsnorm_bwd<T>(HS_PTR(x), HS_PTR(g), HS_PTR(rstd), HS_PTR(dy), HS_PTR(dx), HS_PTR(dg), rows, D);
    });
    return {dx, needs_grad(1) ? dg : Tensor()};
  }
  void release() override { x = g = rstd = Tensor(); }
  const char* name() const override { return "rmsnorm"; }
};
}  // namespace

Tensor rmsnorm(const Tensor& x_in, const Tensor& g_in, double eps) {
  Tensor x = prep("rmsnorm", x_in, "input"), g = prep("rmsnorm", g_in, "weight");
  same_dtype("rmsnorm", x, g);
  HS_CHECK(g.dim() == 1 && x.dim() >= 1 && x.shape().back() == g.size(0) && g.size(0) > 0, "rmsnorm: input ",
           shape_str(x.shape()), " does not match weight ", shape_str(g.shape()), " (or the normalised size is 0)");
  HS_CUDA_DISPATCH(x, rmsnorm(x, g, eps));
  const int64_t D = g.size(0), rows = x.numel() / D;
  Tensor y = Tensor::empty(x.shape(), x.dtype()), rstd = Tensor::empty({rows}, x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::rmsnorm_fwd<T>(HS_PTR(x), HS_PTR(g), HS_PTR(y), HS_PTR(rstd), rows, D, eps);
  });
  if (!any_requires_grad({&x, &g})) return y;
  auto node = std::make_shared<RmsNormNode>();
  node->x = x.detach();
  node->g = g.detach();
  node->rstd = rstd;
  return record(y, node, {&x, &g});
}

// ------------------------------------------------------------------ embedding
namespace {
struct EmbeddingNode : Node {
  Tensor ids;
  Shape table_shape;
  DType dtype;
  int64_t start = 0;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    Tensor dt = Tensor::zeros(table_shape, dtype);
    dispatch(dtype, [&](auto z) {
      using T = decltype(z);
      kc::embedding_bwd<T>(ids.data<int32_t>(), HS_PTR(g), HS_PTR(dt), ids.numel(), table_shape[1], start,
                           table_shape[0]);
    });
    return {dt};
  }
  void release() override { ids = Tensor(); }
  const char* name() const override { return "embedding"; }
};
}  // namespace

Tensor embedding(const Tensor& ids, const Tensor& table) {
  HS_CHECK(table.defined() && table.dim() == 2, "embedding: table must be [V, D], got ",
           table.defined() ? shape_str(table.shape()) : std::string("an undefined tensor"));
  return embedding_slice(ids, table, 0, table.size(0));
}

Tensor embedding_slice(const Tensor& ids_in, const Tensor& table_in, int64_t start, int64_t vocab) {
  Tensor table = prep("embedding", table_in, "table");
  HS_CHECK(table.dim() == 2, "embedding: table must be [V, D], got ", shape_str(table.shape()));
  HS_CHECK(start >= 0 && start + table.size(0) <= vocab, "embedding: table rows [", start, ", ",
           start + table.size(0), ") are not inside a vocabulary of ", vocab);
  check_ids("embedding", ids_in, vocab);
  HS_CUDA_DISPATCH(table, embedding(ids_in, table, start));
  Tensor ids = ids_in.contiguous().to(Device::cpu());
  Shape os = ids.shape();
  os.push_back(table.size(1));
  Tensor y = Tensor::empty(os, table.dtype());
  dispatch(table.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::embedding_fwd<T>(ids.data<int32_t>(), HS_PTR(table), HS_PTR(y), ids.numel(), table.size(1), start,
                         table.size(0));
  });
  if (!any_requires_grad({&table})) return y;
  auto node = std::make_shared<EmbeddingNode>();
  node->ids = ids;
  node->table_shape = table.shape();
  node->dtype = table.dtype();
  node->start = start;
  return record(y, node, {&table});
}

// ------------------------------------------------------------------ rope
namespace {
struct RopeNode : Node {
  Shape shape;
  double base;
  int64_t pos0;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous(), d = Tensor::empty(shape, g.dtype());
    dispatch(g.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::rope_bwd<T>(HS_PTR(g), HS_PTR(d), shape[0], shape[1], shape[2], shape[3], base, pos0);
    });
    return {d};
  }
  const char* name() const override { return "rope"; }
};
}  // namespace

Tensor rope(const Tensor& x_in, double base, int64_t pos0) {
  Tensor x = prep("rope", x_in, "input");
  HS_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "rope: expected [B, T, H, D] with even D, got ",
           shape_str(x.shape()));
  HS_CHECK(base > 0, "rope: base must be positive, got ", base);
  HS_CUDA_DISPATCH(x, rope(x, base, pos0));
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::rope_fwd<T>(HS_PTR(x), HS_PTR(y), x.size(0), x.size(1), x.size(2), x.size(3), base, pos0);
  });
  auto node = std::make_shared<RopeNode>();
  node->shape = x.shape();
  node->base = base;
  node->pos0 = pos0;
  return record(y, node, {&x});
}

// ------------------------------------------------------------------ attention
namespace {
struct AttentionNode : Node {
  Tensor q, k, v, out, lse;
  double scale;
  int64_t window;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    Tensor dq = Tensor::empty(q.shape(), q.dtype()), dk = Tensor::empty(k.shape(), k.dtype()),
           dv = Tensor::empty(v.shape(), v.dtype());
    dispatch(q.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::attention_bwd<T>(HS_PTR(q), HS_PTR(k), HS_PTR(v), HS_PTR(out), HS_PTR(g), HS_PTR(lse), HS_PTR(dq),
                           HS_PTR(dk), HS_PTR(dv), q.size(0), q.size(1), q.size(2), k.size(2), q.size(3), v.size(3),
                           scale, window);
    });
    return {dq, dk, dv};
  }
  void release() override { q = k = v = out = lse = Tensor(); }
  const char* name() const override { return "attention"; }
};
}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, double scale, int64_t window) {
  Tensor q = prep("attention", q_in, "q"), k = prep("attention", k_in, "k"), v = prep("attention", v_in, "v");
  same_dtype("attention", q, k);
  same_dtype("attention", q, v);
  HS_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: expected q [B, T, H, D], k/v [B, T, Hk, D], got ",
           shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  HS_CHECK(k.size(0) == v.size(0) && k.size(1) == v.size(1) && k.size(2) == v.size(2), "attention: k ",
           shape_str(k.shape()), " and v ", shape_str(v.shape()), " disagree on B, T or heads");
  HS_CHECK(q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3),
           "attention: q ", shape_str(q.shape()), " and k ", shape_str(k.shape()), " disagree on B, T or D");
  HS_CHECK(k.size(2) > 0 && q.size(2) % k.size(2) == 0, "attention: query heads (", q.size(2),
           ") must be a multiple of KV heads (", k.size(2), ")");
  HS_CUDA_DISPATCH(q, attention(q, k, v, scale, window));
  const int64_t B = q.size(0), T_ = q.size(1), H = q.size(2), Hk = k.size(2), D = q.size(3), Dv = v.size(3);
  Tensor out = Tensor::empty({B, T_, H, Dv}, q.dtype()), lse = Tensor::empty({B, H, T_}, q.dtype());
  dispatch(q.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::attention_fwd<T>(HS_PTR(q), HS_PTR(k), HS_PTR(v), HS_PTR(out), HS_PTR(lse), B, T_, H, Hk, D, Dv, scale,
                         window);
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

// ------------------------------------------------------------------ cross-entropy
namespace {
struct CrossEntropyNode : Node {
  Tensor logits, targets, lse;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    const double gs = g_in.item();
    const int64_t N = logits.size(0), V = logits.size(1);
    Tensor d = Tensor::empty(logits.shape(), logits.dtype());
    dispatch(logits.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::cross_entropy_bwd<T>(HS_PTR(logits), targets.data<int32_t>(), HS_PTR(lse), static_cast<T>(gs / N),
                               HS_PTR(d), N, V, 0);
    });
    return {d};
  }
  void release() override { logits = targets = lse = Tensor(); }
  const char* name() const override { return "cross_entropy"; }
};
}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& targets_in) {
  Tensor logits = prep("cross_entropy", logits_in, "logits");
  HS_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, V], got ", shape_str(logits.shape()));
  HS_CHECK(targets_in.dim() == 1 && targets_in.size(0) == logits.size(0), "cross_entropy: targets ",
           shape_str(targets_in.shape()), " do not match logits ", shape_str(logits.shape()));
  check_ids("cross_entropy", targets_in, logits.size(1));
  HS_CHECK(logits.size(0) > 0, "cross_entropy: no rows");
  HS_CUDA_DISPATCH(logits, cross_entropy(logits, targets_in));
  Tensor targets = targets_in.contiguous().to(Device::cpu());
  const int64_t N = logits.size(0), V = logits.size(1);
  Tensor rows = Tensor::empty({N}, logits.dtype()), lse = Tensor::empty({N}, logits.dtype());
  Tensor loss = Tensor::empty({}, logits.dtype());
  dispatch(logits.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::cross_entropy_fwd<T>(HS_PTR(logits), targets.data<int32_t>(), HS_PTR(rows), HS_PTR(lse), N, V);
    double s = 0;  // fixed-order sum in double: deterministic
    const T* r = HS_PTR(rows);
    for (int64_t i = 0; i < N; ++i) s += r[i];
    HS_PTR(loss)[0] = static_cast<T>(s / N);
  });
  if (!any_requires_grad({&logits})) return loss;
  auto node = std::make_shared<CrossEntropyNode>();
  node->logits = logits.detach();
  node->targets = targets;
  node->lse = lse;
  return record(loss, node, {&logits});
}

Tensor cross_entropy_stats(const Tensor& logits_in, const Tensor& targets_in, int64_t start) {
  Tensor logits = prep("cross_entropy_stats", logits_in, "logits");
  HS_CHECK(logits.dim() == 2 && targets_in.dim() == 1 && targets_in.size(0) == logits.size(0) &&
               targets_in.dtype() == DType::i32,
           "cross_entropy_stats: logits ", logits.desc(), " and targets ", targets_in.desc(),
           " must be [N, V_local] and i32 [N]");
  HS_CUDA_DISPATCH(logits, cross_entropy_stats(logits, targets_in, start));
  const int64_t N = logits.size(0), V = logits.size(1);
  Tensor targets = targets_in.contiguous().to(Device::cpu());
  Tensor stats = Tensor::empty({3, N}, DType::f64);
  dispatch(logits.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::cross_entropy_stats<T>(HS_PTR(logits), targets.data<int32_t>(), start, stats.data<double>(), N, V);
  });
  return stats;
}

std::pair<Tensor, Tensor> cross_entropy_combine(const Tensor& all_in) {
  HS_CHECK(all_in.defined() && all_in.dim() == 3 && all_in.size(1) == 3, "cross_entropy_combine: stats must be [P, 3, N]");
  Tensor all = all_in.contiguous();
#ifdef HYSCALE_WITH_CUDA
  if (all.device().is_cuda()) return cuda_impl::cross_entropy_combine(all);
#endif
  HS_CHECK(all.dtype() == DType::f64, "cross_entropy_combine: cpu stats must be f64, got ", all.desc());
  const int64_t P = all.size(0), N = all.size(2);
  Tensor rows = Tensor::empty({N}, DType::f64), lse = Tensor::empty({N}, DType::f64);
  kc::cross_entropy_combine(all.data<double>(), P, rows.data<double>(), lse.data<double>(), N);
  return {rows, lse};
}

Tensor cross_entropy_grad(const Tensor& logits_in, const Tensor& targets_in, const Tensor& lse_in, int64_t start,
                          double dscale) {
  Tensor logits = prep("cross_entropy_grad", logits_in, "logits");
  const int64_t N = logits.size(0), V = logits.size(1);
  HS_CHECK(lse_in.defined() && lse_in.numel() == N && targets_in.numel() == N, "cross_entropy_grad: lse ",
           lse_in.desc(), " and targets ", targets_in.desc(), " must have the logits' ", N, " rows");
  HS_CUDA_DISPATCH(logits, cross_entropy_grad(logits, targets_in, lse_in, start, dscale));
  Tensor targets = targets_in.contiguous().to(Device::cpu());
  Tensor lse = lse_in.contiguous().to(Device::cpu()).to(logits.dtype());
  Tensor d = Tensor::empty(logits.shape(), logits.dtype());
  dispatch(logits.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::cross_entropy_bwd<T>(HS_PTR(logits), targets.data<int32_t>(), HS_PTR(lse), static_cast<T>(dscale), HS_PTR(d),
                             N, V, start);
  });
  return d;
}

namespace {
struct CastNode : Node {
  DType in_dtype;
  std::vector<Tensor> backward(const Tensor& g) override { return {g.to(in_dtype)}; }
  const char* name() const override { return "cast"; }
};
}  // namespace

namespace {
struct ConcatNode : Node {
  int64_t dim, na, nb;
  std::vector<Tensor> backward(const Tensor& g) override {
    return {g.slice(dim, 0, na).contiguous(), g.slice(dim, na, na + nb).contiguous()};
  }
  const char* name() const override { return "concat"; }
};
}  // namespace

Tensor concat(const Tensor& a, const Tensor& b, int64_t dim) {
  HS_CHECK(a.defined() && b.defined(), "concat: an input is undefined");
  HS_CHECK(a.dtype() == b.dtype() && a.device() == b.device(), "concat: ", a.desc(), " and ", b.desc(),
           " differ in dtype or device");
  const int64_t nd = a.dim();
  HS_CHECK(b.dim() == nd && nd > 0 && dim >= -nd && dim < nd, "concat: dim ", dim, " for ", shape_str(a.shape()),
           " and ", shape_str(b.shape()));
  if (dim < 0) dim += nd;
  Shape s = a.shape();
  for (int64_t i = 0; i < nd; ++i)
    HS_CHECK(i == dim || a.size(i) == b.size(i), "concat: ", shape_str(a.shape()), " and ", shape_str(b.shape()),
             " differ outside dim ", dim);
  const int64_t na = a.size(dim), nb = b.size(dim);
  s[static_cast<size_t>(dim)] = na + nb;
  Tensor y = Tensor::empty(s, a.dtype(), a.device());
  {
    NoGrad ng;
    y.slice(dim, 0, na).copy_from(a.detach());
    y.slice(dim, na, na + nb).copy_from(b.detach());
  }
  if (!any_requires_grad({&a, &b})) return y;
  auto node = std::make_shared<ConcatNode>();
  node->dim = dim;
  node->na = na;
  node->nb = nb;
  return record(y, node, {&a, &b});
}

Tensor cast_cached(const Tensor& x, const Tensor& copy) {
  HS_CHECK(x.defined() && copy.defined(), "cast_cached: an input is undefined");
  HS_CHECK(copy.shape() == x.shape() && copy.device() == x.device() && is_floating(copy.dtype()), "cast_cached: copy ",
           copy.desc(), " does not match ", x.desc());
  if (copy.dtype() == x.dtype()) return x;
  Tensor y = copy.detach();
  if (!any_requires_grad({&x})) return y;
  auto node = std::make_shared<CastNode>();
  node->in_dtype = x.dtype();
  return record(y, node, {&x});
}

Tensor cast(const Tensor& x, DType dtype) {
  HS_CHECK(x.defined(), "cast: input is undefined");
  HS_CHECK(is_floating(x.dtype()) && is_floating(dtype), "cast: ", x.desc(), " to ", dtype_name(dtype),
           ": only between floating dtypes");
  if (x.dtype() == dtype) return x;
  Tensor y = x.detach().to(dtype);
  if (!any_requires_grad({&x})) return y;
  auto node = std::make_shared<CastNode>();
  node->in_dtype = x.dtype();
  return record(y, node, {&x});
}

}  // namespace hyscale::ops
