#include "nn/layers.h"

#include <cmath>

#include "core/ops.h"

namespace hyscale::nn {

RMSNorm::RMSNorm(int64_t dim, double eps, DType dtype) : eps_(eps) {
  weight = register_parameter("weight", Tensor::full({dim}, 1.0, dtype));
}
Tensor RMSNorm::forward(const Tensor& x) const { return ops::rmsnorm(x, weight, eps_); }

SwiGLUMLP::SwiGLUMLP(int64_t dim, int64_t hidden, DType dtype) {
  w1 = register_parameter("w1", Tensor::zeros({2 * hidden, dim}, dtype));
  w3 = register_parameter("w3", Tensor::zeros({dim, hidden}, dtype));
}
Tensor SwiGLUMLP::forward(const Tensor& x) const { return ops::linear(ops::swiglu(ops::linear(x, w1)), w3); }

Attention::Attention(const AttentionConfig& cfg) : cfg_(cfg) {
  HS_CHECK(cfg.n_heads > 0 && cfg.n_kv_heads > 0 && cfg.n_heads % cfg.n_kv_heads == 0, "attention: n_heads (",
           cfg.n_heads, ") must be a positive multiple of n_kv_heads (", cfg.n_kv_heads, ")");
  HS_CHECK(cfg.head_dim > 0 && (!cfg.rope || cfg.head_dim % 2 == 0), "attention: head_dim must be positive",
           cfg.rope ? " and even with RoPE" : "", ", got ", cfg.head_dim);
  HS_CHECK(!cfg.diff || (cfg.n_kv_heads % 2 == 0 && cfg.n_heads % 2 == 0), "differential attention pairs heads: ",
           "n_heads (", cfg.n_heads, ") and n_kv_heads (", cfg.n_kv_heads, ") must be even (set model.n_kv_heads)");
  if (cfg_.scale == 0) cfg_.scale = 1.0 / std::sqrt(static_cast<double>(cfg.head_dim));
  const int64_t H = cfg.n_heads, Hk = cfg.n_kv_heads, hd = cfg.head_dim;
  if (cfg.cross)
    wq = register_parameter("wq", Tensor::zeros({H * hd, cfg.dim}, cfg.dtype));
  else
    wqkv = register_parameter("wqkv", Tensor::zeros({(H + 2 * Hk) * hd, cfg.dim}, cfg.dtype));
  proj = register_parameter("proj", Tensor::zeros({cfg.dim, H * hd}, cfg.dtype));
  if (cfg.diff) {
    lambda_q1 = register_parameter("lambda_q1", Tensor::zeros({hd}, cfg.dtype));
    lambda_k1 = register_parameter("lambda_k1", Tensor::zeros({hd}, cfg.dtype));
    lambda_q2 = register_parameter("lambda_q2", Tensor::zeros({hd}, cfg.dtype));
    lambda_k2 = register_parameter("lambda_k2", Tensor::zeros({hd}, cfg.dtype));
    subln = register_parameter("subln.weight", Tensor::full({2 * hd}, 1.0, cfg.dtype));
  }
}

double Attention::lambda_init() const { return 0.8 - 0.6 * std::exp(-0.3 * static_cast<double>(cfg_.layer_index)); }

Tensor Attention::attend(const Tensor& q, const Tensor& k, const Tensor& v) const {
  const int64_t B = q.size(0), T = q.size(1), H = cfg_.n_heads, Hk = cfg_.n_kv_heads, hd = cfg_.head_dim;
  if (!cfg_.diff) return ops::attention(q, k, v, cfg_.scale, cfg_.window).reshape({B, T, H * hd});
  // Adjacent heads pair up: viewing [H, hd] as [H/2, 2 hd] puts the even head in the first
  // half and the odd head in the second, and [v_even | v_odd] is exactly the value both
  // branches read.
  Tensor qq = q.reshape({B, T, H / 2, 2 * hd}), kk = k.reshape({B, T, Hk / 2, 2 * hd});
  Tensor v12 = v.reshape({B, T, Hk / 2, 2 * hd});
  Tensor a1 = ops::attention(qq.slice(3, 0, hd), kk.slice(3, 0, hd), v12, cfg_.scale, cfg_.window);
  Tensor a2 = ops::attention(qq.slice(3, hd, 2 * hd), kk.slice(3, hd, 2 * hd), v12, cfg_.scale, cfg_.window);
  const double li = lambda_init();
  Tensor lam = ops::diff_lambda(lambda_q1, lambda_k1, lambda_q2, lambda_k2, li);
  Tensor o = ops::rmsnorm(ops::diff_combine(a1, a2, lam), subln, 1e-5);  // [B, T, H/2, 2 hd]
  return ops::scale(o, 1.0 - li).reshape({B, T, H * hd});                // re-interleave
}

Tensor Attention::forward(const Tensor& x, Tensor* k_out, Tensor* v_out) const {
  HS_CHECK(!cfg_.cross, "attention: a cross-attention layer needs the shared KV (forward_cross)");
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = cfg_.n_heads, Hk = cfg_.n_kv_heads, hd = cfg_.head_dim;
  Tensor qkv = ops::linear(x, wqkv);  // [B, T, (H + 2Hk) hd]
  Tensor q = qkv.slice(2, 0, H * hd).reshape({B, T, H, hd});
  Tensor k = qkv.slice(2, H * hd, (H + Hk) * hd).reshape({B, T, Hk, hd});
  Tensor v = qkv.slice(2, (H + Hk) * hd, (H + 2 * Hk) * hd).reshape({B, T, Hk, hd});
  if (cfg_.rope) {
    q = ops::rope(q, cfg_.rope_base);
    k = ops::rope(k, cfg_.rope_base);
  }
  if (k_out) *k_out = k;
  if (v_out) *v_out = v;
  return ops::linear(attend(q, k, v), proj);
}

Tensor Attention::forward_cross(const Tensor& x, const Tensor& k, const Tensor& v) const {
  HS_CHECK(cfg_.cross, "attention: forward_cross on a self-attention layer");
  HS_CHECK(k.defined() && v.defined(), "cross-attention layer: no shared KV (a full-attention layer 'F' must come first)");
  const int64_t B = x.size(0), T = x.size(1);
  Tensor q = ops::linear(x, wq).reshape({B, T, cfg_.n_heads, cfg_.head_dim});
  if (cfg_.rope) q = ops::rope(q, cfg_.rope_base);
  return ops::linear(attend(q, k, v), proj);
}

}  // namespace hyscale::nn
