#include "nn/transformer.h"

#include <cmath>

#include "core/ops.h"

namespace hyscale::nn {

void validate_model_config(const ModelConfig& c) {
  HS_CHECK(c.arch == "transformer", "model.arch: '", c.arch, "' is not built by this version (allowed: transformer)");
  HS_CHECK(c.vocab_size > 0, "model.vocab_size must be positive, got ", c.vocab_size);
  HS_CHECK(c.n_layers > 0, "model.n_layers must be positive, got ", c.n_layers);
  HS_CHECK(c.d_model > 0, "model.d_model must be positive, got ", c.d_model);
  HS_CHECK(c.n_heads > 0, "model.n_heads must be positive, got ", c.n_heads);
  HS_CHECK(c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0, "model.n_kv_heads (", c.n_kv_heads,
           ") must divide model.n_heads (", c.n_heads, ")");
  HS_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, "model.head_dim must be positive and even (RoPE), got ",
           c.head_dim);
  HS_CHECK(c.mlp_hidden > 0, "model.mlp_hidden must be positive, got ", c.mlp_hidden);
  HS_CHECK(c.rope_base > 0, "model.rope_base must be positive, got ", c.rope_base);
  HS_CHECK(c.norm_eps > 0, "model.norm_eps must be positive, got ", c.norm_eps);
}

Block::Block(const ModelConfig& c) : r_(c.residual_mult) {
  norm1 = register_module("norm1", std::make_shared<RMSNorm>(c.d_model, c.norm_eps, c.param_dtype));
  AttentionConfig ac;
  ac.dim = c.d_model;
  ac.n_heads = c.n_heads;
  ac.n_kv_heads = c.n_kv_heads;
  ac.head_dim = c.head_dim;
  ac.rope = true;
  ac.rope_base = c.rope_base;
  ac.scale = c.attn_scale;
  ac.dtype = c.param_dtype;
  attn = register_module("attn", std::make_shared<CausalSelfAttention>(ac));
  norm2 = register_module("norm2", std::make_shared<RMSNorm>(c.d_model, c.norm_eps, c.param_dtype));
  mlp = register_module("mlp", std::make_shared<SwiGLUMLP>(c.d_model, c.mlp_hidden, c.param_dtype));
}

Tensor Block::forward(const Tensor& x_in) const {
  auto branch = [&](const Tensor& y) { return r_ == 1.0 ? y : ops::scale(y, r_); };
  Tensor x = ops::add(x_in, branch(attn->forward(norm1->forward(x_in))));
  return ops::add(x, branch(mlp->forward(norm2->forward(x))));
}

TransformerModel::TransformerModel(const ModelConfig& cfg) : cfg_(cfg) {
  validate_model_config(cfg);
  wte = register_parameter("wte", Tensor::zeros({cfg.vocab_size, cfg.d_model}, cfg.param_dtype));
  for (int64_t i = 0; i < cfg.n_layers; ++i)
    blocks.push_back(register_module("blocks." + std::to_string(i), std::make_shared<Block>(cfg)));
  ln_f = register_module("ln_f", std::make_shared<RMSNorm>(cfg.d_model, cfg.norm_eps, cfg.param_dtype));
  if (!cfg.tie_embeddings) lm_head = register_parameter("lm_head", Tensor::zeros({cfg.vocab_size, cfg.d_model}, cfg.param_dtype));
}

void TransformerModel::init_weights(uint64_t seed) {
  const double out_div = cfg_.scale_out_proj_init ? std::sqrt(2.0 * cfg_.n_layers) : 1.0;
  auto ends_with = [](const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
  };
  for (auto& [name, t] : named_parameters()) {
    Tensor p = t;
    if (ends_with(name, "norm1.weight") || ends_with(name, "norm2.weight") || name == "ln_f.weight") {
      p.fill(1.0);
    } else if (name == "wte") {
      init_normal(p, cfg_.tie_embeddings ? cfg_.init_std : cfg_.embed_init_std, seed, name);
    } else if (ends_with(name, "attn.proj") || ends_with(name, "mlp.w3")) {
      init_normal(p, cfg_.init_std / out_div, seed, name);
    } else {
      init_normal(p, cfg_.init_std, seed, name);
    }
  }
}

Tensor TransformerModel::forward(const Tensor& ids) const {
  HS_CHECK(ids.dim() == 2, "model.forward: ids must be [B, T], got ", shape_str(ids.shape()));
  const int64_t B = ids.size(0), T = ids.size(1);
  Tensor x = ops::embedding(ids, wte);  // [B, T, D]
  for (auto& blk : blocks) x = blk->forward(x);
  x = ln_f->forward(x);
  if (cfg_.logit_mult != 1.0) x = ops::scale(x, cfg_.logit_mult);
  return ops::linear(x.reshape({B * T, cfg_.d_model}), cfg_.tie_embeddings ? wte : lm_head);
}

Tensor TransformerModel::loss(const Tensor& ids, const Tensor& targets) const {
  HS_CHECK(targets.shape() == ids.shape(), "model.loss: targets ", shape_str(targets.shape()), " vs ids ",
           shape_str(ids.shape()));
  return ops::cross_entropy(forward(ids), targets.reshape({targets.numel()}));
}

int64_t TransformerModel::embedding_params() const {
  return cfg_.vocab_size * cfg_.d_model * (cfg_.tie_embeddings ? 1 : 2);
}

int64_t TransformerModel::non_embedding_params() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    if (t.dim() == 2 && name != "wte" && name != "lm_head") n += t.numel();
  return n;
}

double TransformerModel::train_flops_per_token(int64_t T) const {
  // Matmuls: 2 FLOPs per multiply-add forward, x3 for forward + backward: 6 * N_matmul,
  // where N_matmul includes the LM head (the embedding lookup is not a matmul).
  const double n_matmul = static_cast<double>(non_embedding_params() + cfg_.vocab_size * cfg_.d_model);
  // Attention: QK^T and PV are 2 * hd FLOPs each per (query, visible key) pair and head,
  // x3 for training. Causal: a query at position t sees t+1 keys -> mean (T+1)/2.
  const double visible = (static_cast<double>(T) + 1.0) / 2.0;
  const double attn = 3.0 * 4.0 * cfg_.n_heads * cfg_.head_dim * visible * cfg_.n_layers;
  return 6.0 * n_matmul + attn;
}

std::vector<std::string> TransformerModel::layer_summary() const {
  std::vector<std::string> out;
  const auto& c = cfg_;
  for (int64_t i = 0; i < c.n_layers; ++i)
    out.push_back("blocks." + std::to_string(i) + ": full attention (H=" + std::to_string(c.n_heads) +
                  ", Hkv=" + std::to_string(c.n_kv_heads) + ", hd=" + std::to_string(c.head_dim) +
                  ", RoPE) + SwiGLU MLP (hidden " + std::to_string(c.mlp_hidden) + ")");
  return out;
}

}  // namespace hyscale::nn
