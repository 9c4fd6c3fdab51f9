#include "nn/layers.h"

#include <cmath>

#include "core/ops.h"

namespace hyscale::nn {

RMSNorm::RMSNorm(int64_t dim, double eps, DType dtype) : eps_(eps) {
  weight = register_parameter("weight", Tensor::full({dim}, 1.0, dtype));
}
Tensor RMSNorm::forward(const Tensor& x) const { return ops::rmsnorm(x, cw(weight), eps_); }

SwiGLUMLP::SwiGLUMLP(int64_t dim, int64_t hidden, DType dtype, parallel::TensorParallel tp) : tp_(tp) {
  HS_CHECK(hidden % tp.size == 0, "model.mlp_hidden (", hidden, ") must be divisible by parallel.tp (", tp.size, ")");
  const int64_t Il = tp.local(hidden);
  w1 = register_parameter("w1", Tensor::zeros({2 * Il, dim}, dtype), {0, {{"gate", hidden}, {"value", hidden}}});
  w3 = register_parameter("w3", Tensor::zeros({dim, Il}, dtype), {1, {}});
}
Tensor SwiGLUMLP::forward(const Tensor& x) const {
  Tensor h = ops::swiglu(lin(parallel::copy_to_tp(x, tp_), w1));
  return parallel::reduce_from_tp(lin(h, w3), tp_);
}

Attention::Attention(const AttentionConfig& cfg) : cfg_(cfg) {
  HS_CHECK(cfg.n_heads > 0 && cfg.n_kv_heads > 0 && cfg.n_heads % cfg.n_kv_heads == 0, "attention: n_heads (",
           cfg.n_heads, ") must be a positive multiple of n_kv_heads (", cfg.n_kv_heads, ")");
  HS_CHECK(cfg.head_dim > 0 && (!cfg.rope || cfg.head_dim % 2 == 0), "attention: head_dim must be positive",
           cfg.rope ? " and even with RoPE" : "", ", got ", cfg.head_dim);
  HS_CHECK(!cfg.diff || (cfg.n_kv_heads % 2 == 0 && cfg.n_heads % 2 == 0), "differential attention pairs heads: ",
           "n_heads (", cfg.n_heads, ") and n_kv_heads (", cfg.n_kv_heads, ") must be even (set model.n_kv_heads)");
  if (cfg_.scale == 0) cfg_.scale = 1.0 / std::sqrt(static_cast<double>(cfg.head_dim));
  const int64_t H = cfg.n_heads, Hk = cfg.n_kv_heads, hd = cfg.head_dim, tp = cfg.tp.size;
  HS_CHECK(H % tp == 0 && Hk % tp == 0, "tensor parallel splits attention heads: model.n_heads (", H,
           ") and model.n_kv_heads (", Hk, ") must be divisible by parallel.tp (", tp, ")");
  H_ = H / tp;
  Hk_ = Hk / tp;
  HS_CHECK(!cfg.diff || (H_ % 2 == 0 && Hk_ % 2 == 0), "differential attention splits heads in whole pairs: ",
           "model.n_heads / parallel.tp (", H_, ") and model.n_kv_heads / parallel.tp (", Hk_, ") must be even");
  if (cfg.cross)
    wq = register_parameter("wq", Tensor::zeros({H_ * hd, cfg.dim}, cfg.dtype), {0, {}});
  else
    wqkv = register_parameter("wqkv", Tensor::zeros({(H_ + 2 * Hk_) * hd, cfg.dim}, cfg.dtype),
                              {0, {{"q", H * hd}, {"k", Hk * hd}, {"v", Hk * hd}}});
  proj = register_parameter("proj", Tensor::zeros({cfg.dim, H_ * hd}, cfg.dtype), {1, {}});
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
  const int64_t B = q.size(0), T = q.size(1), H = H_, Hk = Hk_, hd = cfg_.head_dim;
  if (!cfg_.diff) return ops::attention(q, k, v, cfg_.scale, cfg_.window).reshape({B, T, H * hd});
  // Adjacent heads pair up: viewing [H, hd] as [H/2, 2 hd] puts the even head in the first
  // half and the odd head in the second, and [v_even | v_odd] is exactly the value both
  // branches read.
  Tensor qq = q.reshape({B, T, H / 2, 2 * hd}), kk = k.reshape({B, T, Hk / 2, 2 * hd});
  Tensor v12 = v.reshape({B, T, Hk / 2, 2 * hd});
  const double li = lambda_init();
  const auto& tp = cfg_.tp;
  Tensor lam = ops::diff_lambda(parallel::copy_to_tp(cw_fp32(lambda_q1), tp), parallel::copy_to_tp(cw_fp32(lambda_k1), tp),
                                parallel::copy_to_tp(cw_fp32(lambda_q2), tp), parallel::copy_to_tp(cw_fp32(lambda_k2), tp),
                                li);
  Tensor a = ops::diff_attention(qq, kk, v12, lam, cfg_.scale, cfg_.window);  // a1 - lambda a2
  Tensor o = ops::rmsnorm(a, parallel::copy_to_tp(cw(subln), tp), 1e-5);  // [B, T, H/2, 2 hd]
  return ops::scale(o, 1.0 - li).reshape({B, T, H * hd});                // re-interleave
}

Tensor Attention::forward(const Tensor& x, Tensor* k_out, Tensor* v_out) const {
  HS_CHECK(!cfg_.cross, "attention: a cross-attention layer needs the shared KV (forward_cross)");
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = H_, Hk = Hk_, hd = cfg_.head_dim;
  Tensor qkv = lin(parallel::copy_to_tp(x, cfg_.tp), wqkv);  // [B, T, (H + 2Hk) hd]
  Tensor q = qkv.slice(2, 0, H * hd).reshape({B, T, H, hd});
  Tensor k = qkv.slice(2, H * hd, (H + Hk) * hd).reshape({B, T, Hk, hd});
  Tensor v = qkv.slice(2, (H + Hk) * hd, (H + 2 * Hk) * hd).reshape({B, T, Hk, hd});
  if (cfg_.rope) {
    q = ops::rope(q, cfg_.rope_base);
    k = ops::rope(k, cfg_.rope_base);
  }
  if (k_out) *k_out = k;
  if (v_out) *v_out = v;
  return parallel::reduce_from_tp(lin(attend(q, k, v), proj), cfg_.tp);
}

Tensor Attention::forward_cross(const Tensor& x, const Tensor& k, const Tensor& v) const {
  HS_CHECK(cfg_.cross, "attention: forward_cross on a self-attention layer");
  HS_CHECK(k.defined() && v.defined(), "cross-attention layer: no shared KV (a full-attention layer 'F' must come first)");
  const int64_t B = x.size(0), T = x.size(1);
  Tensor q = lin(parallel::copy_to_tp(x, cfg_.tp), wq).reshape({B, T, H_, cfg_.head_dim});
  if (cfg_.rope) q = ops::rope(q, cfg_.rope_base);
  return parallel::reduce_from_tp(lin(attend(q, k, v), proj), cfg_.tp);
}

}  // namespace hyscale::nn
