// Small building blocks of every architecture: RMSNorm, SwiGLU MLP and
// grouped-query causal self-attention with optional RoPE (SPEC §1.1, §1.6, §4).
// Sequence tensors are [B, T, C]; attention heads are [B, T, H, hd].
#pragma once
#include <memory>

#include "nn/module.h"

namespace hyscale::nn {

class RMSNorm : public Module {
 public:
  RMSNorm(int64_t dim, double eps, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;
  Tensor weight;

 private:
  double eps_;
};

// SwiGLU MLP: w1 D -> 2I ([gate | value]), y = w3(silu(gate) * value), w3 I -> D. No biases.
class SwiGLUMLP : public Module {
 public:
  SwiGLUMLP(int64_t dim, int64_t hidden, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;
  Tensor w1, w3;
};

struct AttentionConfig {
  int64_t dim = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t window = 0;      // visible keys incl. self; 0 = full causal
  bool rope = true;
  double rope_base = 1e4;
  double scale = 0;        // softmax scale; 0 = 1/sqrt(head_dim)
  DType dtype = DType::f32;  // parameter dtype (f64 only for gradient checks)
};

// Fused QKV projection wqkv [(H + 2 Hk) * hd, D], laid out [q heads | k heads | v heads]
// (a hyscale choice: the reference interleaves per KV group; checkpoints name the
// logical parts, so the layout is internal), output projection proj [D, H * hd].
class CausalSelfAttention : public Module {
 public:
  explicit CausalSelfAttention(const AttentionConfig& cfg);
  Tensor forward(const Tensor& x) const;  // x [B, T, D] -> [B, T, D]
  const AttentionConfig& config() const { return cfg_; }
  Tensor wqkv, proj;

 private:
  AttentionConfig cfg_;
};

}  // namespace hyscale::nn
