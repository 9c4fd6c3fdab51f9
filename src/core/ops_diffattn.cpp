// Autograd ops of differential attention's scalar lambda and the a1 - lambda a2 combination.
#include <cstdlib>
#include <string>

#include "core/ops.h"
#include "core/ops_util.h"
#include "core/ops_cuda.h"
#include "kernels/diff_attn.h"

namespace hyscale::ops {

namespace kc = hyscale::kernels::cpu;
using namespace detail;

namespace {
struct DiffLambdaNode : Node {
  Tensor lq1, lk1, lq2, lk2;
  std::vector<Tensor> backward(const Tensor& g) override {
    const double gv = g.item();
    std::vector<Tensor> out(4);
    for (auto& t : out) t = Tensor::empty(lq1.shape(), lq1.dtype());
    dispatch(lq1.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::diff_lambda_bwd<T>(HS_PTR(lq1), HS_PTR(lk1), HS_PTR(lq2), HS_PTR(lk2), lq1.numel(), static_cast<T>(gv),
                             HS_PTR(out[0]), HS_PTR(out[1]), HS_PTR(out[2]), HS_PTR(out[3]));
    });
    return out;
  }
  void release() override { lq1 = lk1 = lq2 = lk2 = Tensor(); }
  const char* name() const override { return "diff_lambda"; }
};

struct DiffCombineNode : Node {
  Tensor a2;
  double lambda;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = g_in.contiguous();
    Tensor da1 = Tensor::empty(a2.shape(), a2.dtype()), da2 = Tensor::empty(a2.shape(), a2.dtype()),
           dl = Tensor::empty({}, a2.dtype());
    dispatch(a2.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::diff_combine_bwd<T>(HS_PTR(a2), HS_PTR(g), static_cast<T>(lambda), HS_PTR(da1), HS_PTR(da2), HS_PTR(dl),
                              a2.numel());
    });
    return {da1, da2, dl};
  }
  void release() override { a2 = Tensor(); }
  const char* name() const override { return "diff_combine"; }
};
}  // namespace

Tensor diff_lambda(const Tensor& q1_in, const Tensor& k1_in, const Tensor& q2_in, const Tensor& k2_in,
                   double lambda_init) {
  const char* op = "diff_lambda";
  Tensor q1 = prep(op, q1_in, "lambda_q1"), k1 = prep(op, k1_in, "lambda_k1"), q2 = prep(op, q2_in, "lambda_q2"),
         k2 = prep(op, k2_in, "lambda_k2");
  for (const Tensor* t : {&k1, &q2, &k2}) {
    same_dtype(op, q1, *t);
    HS_CHECK(t->shape() == q1.shape() && q1.dim() == 1, op, ": the four lambda vectors must be [d], got ",
             shape_str(q1.shape()), " and ", shape_str(t->shape()));
  }
#ifdef HYSCALE_WITH_CUDA
  if (q1.device().is_cuda()) return cuda_impl::diff_lambda(q1, k1, q2, k2, lambda_init);
#endif
  Tensor out = Tensor::empty({}, q1.dtype());
  dispatch(q1.dtype(), [&](auto z) {
    using T = decltype(z);
    HS_PTR(out)[0] = kc::diff_lambda_fwd<T>(HS_PTR(q1), HS_PTR(k1), HS_PTR(q2), HS_PTR(k2), q1.numel(), lambda_init);
  });
  if (!any_requires_grad({&q1, &k1, &q2, &k2})) return out;
  auto node = std::make_shared<DiffLambdaNode>();
  node->lq1 = q1.detach();
  node->lk1 = k1.detach();
  node->lq2 = q2.detach();
  node->lk2 = k2.detach();
  return record(out, node, {&q1, &k1, &q2, &k2});
}

Tensor diff_combine(const Tensor& a1_in, const Tensor& a2_in, const Tensor& lambda_in) {
  const char* op = "diff_combine";
  Tensor a1 = prep(op, a1_in, "a1"), a2 = prep(op, a2_in, "a2"), lam = prep(op, lambda_in, "lambda");
  same_dtype(op, a1, a2);
  HS_CHECK(a1.shape() == a2.shape(), op, ": a1 ", shape_str(a1.shape()), " and a2 ", shape_str(a2.shape()), " differ");
  HS_CHECK(lam.numel() == 1, op, ": lambda must be a scalar, got ", shape_str(lam.shape()));
#ifdef HYSCALE_WITH_CUDA
  // On the GPU lambda stays fp32 when the activations are bf16 (mixed precision).
  if (a1.device().is_cuda()) {
    HS_CHECK(lam.device() == a1.device(), op, ": device mismatch: ", a1.desc(), " vs ", lam.desc());
    return cuda_impl::diff_combine(a1, a2, lam);
  }
#endif
  same_dtype(op, a1, lam);
  const double lv = lam.item();
  Tensor out = Tensor::empty(a1.shape(), a1.dtype());
  dispatch(a1.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::diff_combine_fwd<T>(HS_PTR(a1), HS_PTR(a2), static_cast<T>(lv), HS_PTR(out), a1.numel());
  });
  if (!any_requires_grad({&a1, &a2, &lam})) return out;
  auto node = std::make_shared<DiffCombineNode>();
  node->a2 = a2.detach();
  node->lambda = lv;
  return record(out, node, {&a1, &a2, &lam});
}

namespace {
enum class DiffAttnMode { automatic, fused, split };
// HYSCALE_DIFF_ATTN, read at every call (a benchmark switches it between runs).
DiffAttnMode diff_attn_mode() {
  const char* e = std::getenv("HYSCALE_DIFF_ATTN");
  if (!e || !*e || std::string(e) == "auto") return DiffAttnMode::automatic;
  if (std::string(e) == "fused") return DiffAttnMode::fused;
  if (std::string(e) == "split") return DiffAttnMode::split;
  HS_FAIL("HYSCALE_DIFF_ATTN=", e, ": expected auto, fused or split");
}

// diff_attention's argument checks (shared with diff_attention_split), on the prepared q, k, v.
void check_diff_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lambda) {
  same_dtype(op, q, k);
  same_dtype(op, q, v);
  HS_CHECK(q.dim() == 4 && k.dim() == 4 && v.shape() == k.shape() && q.size(0) == k.size(0) &&
               q.size(1) == k.size(1) && q.size(3) == k.size(3) && q.size(3) % 2 == 0 && q.size(3) > 0,
           op, ": expected q [B, T, Hp, 2 hd] and k, v [B, T, Hkp, 2 hd], got ", shape_str(q.shape()), ", ",
           shape_str(k.shape()), ", ", shape_str(v.shape()));
  HS_CHECK(k.size(2) > 0 && q.size(2) % k.size(2) == 0, op, ": head pairs (", q.size(2),
           ") must be a multiple of KV head pairs (", k.size(2), ")");
  HS_CHECK(lambda.defined() && lambda.numel() == 1 && lambda.device() == q.device(), op,
           ": lambda must be a scalar on ", q.device().str(), ", got ", lambda.defined() ? lambda.desc() : "undefined");
}
}  // namespace

Tensor diff_attention_split(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& lambda,
                            double scale, int64_t window) {
  const char* op = "diff_attention_split";
  Tensor q = prep(op, q_in, "q"), k = prep(op, k_in, "k"), v = prep(op, v_in, "v");
  check_diff_args(op, q, k, v, lambda);
  const int64_t hd = q.size(3) / 2;
  // Each branch's q and k, and each value half, made contiguous once (attention() reads [B, T, H, hd]).
  const Tensor q1 = q.slice(3, 0, hd).contiguous(), q2 = q.slice(3, hd, 2 * hd).contiguous();
  const Tensor k1 = k.slice(3, 0, hd).contiguous(), k2 = k.slice(3, hd, 2 * hd).contiguous();
  const Tensor v1 = v.slice(3, 0, hd).contiguous(), v2 = v.slice(3, hd, 2 * hd).contiguous();
  Tensor a1 = concat(attention(q1, k1, v1, scale, window), attention(q1, k1, v2, scale, window), 3);
  Tensor a2 = concat(attention(q2, k2, v1, scale, window), attention(q2, k2, v2, scale, window), 3);
  return diff_combine(a1, a2, lambda);
}

Tensor diff_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& lambda, double scale,
                      int64_t window) {
  const char* op = "diff_attention";
  Tensor q = prep(op, q_in, "q"), k = prep(op, k_in, "k"), v = prep(op, v_in, "v");
  check_diff_args(op, q, k, v, lambda);
  const DiffAttnMode mode = diff_attn_mode();  // read everywhere: a misspelt value fails on the cpu too
#ifdef HYSCALE_WITH_CUDA
  if (q.device().is_cuda()) {
    const int64_t hd = q.size(3) / 2;
    const bool tensor_cores = q.dtype() == DType::bf16 && (hd == 64 || hd == 128);
    if (mode == DiffAttnMode::split || (mode == DiffAttnMode::automatic && tensor_cores))
      return diff_attention_split(q, k, v, lambda, scale, window);
    return cuda_impl::diff_attention(q, k, v, lambda, scale, window);
  }
#endif
  if (mode == DiffAttnMode::split) return diff_attention_split(q, k, v, lambda, scale, window);
  const int64_t hd = q.size(3) / 2;
  Tensor a1 = attention(q.slice(3, 0, hd), k.slice(3, 0, hd), v, scale, window);
  Tensor a2 = attention(q.slice(3, hd, 2 * hd), k.slice(3, hd, 2 * hd), v, scale, window);
  return diff_combine(a1, a2, lambda);
}

}  // namespace hyscale::ops
