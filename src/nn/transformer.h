// Transformer++ (SPEC §1.1): token embedding -> L pre-norm blocks
//   x = x + r * Attn(RMSNorm(x));  x = x + r * MLP(RMSNorm(x))
// -> final RMSNorm -> logit multiplier -> LM head (tied or untied). The residual
// stream is fp32 (the CPU compute type). Parameter names:
//   wte, blocks.{i}.norm1.weight, blocks.{i}.attn.{wqkv,proj}, blocks.{i}.norm2.weight,
//   blocks.{i}.mlp.{w1,w3}, ln_f.weight, lm_head (absent when tied).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace hyscale::nn {

struct ModelConfig {
  std::string arch = "transformer";
  int64_t vocab_size = 0;  // padded vocabulary (a multiple of 64)
  int64_t n_layers = 0, d_model = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, mlp_hidden = 0;
  bool tie_embeddings = false;
  double rope_base = 1e4;
  double norm_eps = 1e-5;
  double residual_mult = 1.0;  // r: multiplies every mixer/MLP output (1/sqrt(2L) under muP++)
  double logit_mult = 1.0;     // multiplies ln_f(x) before the LM head
  double attn_scale = 0;       // 0 = 1/sqrt(head_dim)
  // Standard-parametrisation init (SPEC §6.2 "SP"):
  double init_std = 0.02;         // every linear weight ~ N(0, init_std^2)
  double embed_init_std = 1e-4;   // untied embedding (tied: init_std)
  bool scale_out_proj_init = true;  // attn.proj and mlp.w3 divided by sqrt(2L) (GPT-2 branch)
  // Parameter dtype: f32 for training; f64 only for whole-model gradient checks (not a config key).
  DType param_dtype = DType::f32;
};

class Block : public Module {
 public:
  Block(const ModelConfig& cfg);
  Tensor forward(const Tensor& x) const;
  std::shared_ptr<RMSNorm> norm1, norm2;
  std::shared_ptr<CausalSelfAttention> attn;
  std::shared_ptr<SwiGLUMLP> mlp;

 private:
  double r_;
};

class TransformerModel : public Module {
 public:
  explicit TransformerModel(const ModelConfig& cfg);
  const ModelConfig& config() const { return cfg_; }

  // Initialise every parameter from `seed` (deterministic, order-independent).
  void init_weights(uint64_t seed);
  // ids int32 [B, T] -> logits [B*T, V]
  Tensor forward(const Tensor& ids) const;
  // Mean cross-entropy of next-token prediction: ids, targets int32 [B, T].
  Tensor loss(const Tensor& ids, const Tensor& targets) const;

  // Counts (SPEC §6.5, §7): parameters in matrices excluding the embedding/LM head,
  // embedding parameters, and training FLOPs per token at sequence length T.
  int64_t non_embedding_params() const;
  int64_t embedding_params() const;
  double train_flops_per_token(int64_t seq_len) const;   // 6*N_matmul + attention over visible pairs
  std::vector<std::string> layer_summary() const;

  Tensor wte, lm_head;
  std::shared_ptr<RMSNorm> ln_f;
  std::vector<std::shared_ptr<Block>> blocks;

 private:
  ModelConfig cfg_;
};

// Validates a model config (positive sizes, head/KV divisibility, even head_dim with RoPE);
// throws hyscale::Error naming the model.* key.
void validate_model_config(const ModelConfig& cfg);

}  // namespace hyscale::nn
