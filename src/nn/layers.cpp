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

CausalSelfAttention::CausalSelfAttention(const AttentionConfig& cfg) : cfg_(cfg) {
  HS_CHECK(cfg.n_heads > 0 && cfg.n_kv_heads > 0 && cfg.n_heads % cfg.n_kv_heads == 0, "attention: n_heads (",
           cfg.n_heads, ") must be a positive multiple of n_kv_heads (", cfg.n_kv_heads, ")");
  HS_CHECK(cfg.head_dim > 0 && (!cfg.rope || cfg.head_dim % 2 == 0), "attention: head_dim must be positive",
           cfg.rope ? " and even with RoPE" : "", ", got ", cfg.head_dim);
  if (cfg_.scale == 0) cfg_.scale = 1.0 / std::sqrt(static_cast<double>(cfg.head_dim));
  const int64_t qkv = (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim;
  wqkv = register_parameter("wqkv", Tensor::zeros({qkv, cfg.dim}, cfg.dtype));
  proj = register_parameter("proj", Tensor::zeros({cfg.dim, cfg.n_heads * cfg.head_dim}, cfg.dtype));
}

Tensor CausalSelfAttention::forward(const Tensor& x) const {
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
  Tensor a = ops::attention(q, k, v, cfg_.scale, cfg_.window);  // [B, T, H, hd]
  return ops::linear(a.reshape({B, T, H * hd}), proj);
}

}  // namespace hyscale::nn
