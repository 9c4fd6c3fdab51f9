// Small building blocks of every architecture: RMSNorm, SwiGLU MLP and
// grouped-query causal self-attention with optional RoPE (SPEC §1.1, §1.6, §4).
// Sequence tensors are [B, T, C]; attention heads are [B, T, H, hd].
#pragma once
#include <memory>

#include "nn/module.h"
#include "parallel/tp_ops.h"

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
// Tensor parallel: w1 column-parallel (each of gate and value split), w3 row-parallel.
class SwiGLUMLP : public Module {
 public:
  SwiGLUMLP(int64_t dim, int64_t hidden, DType dtype = DType::f32, parallel::TensorParallel tp = {});
  Tensor forward(const Tensor& x) const;
  Tensor w1, w3;

 private:
  parallel::TensorParallel tp_;
};

struct AttentionConfig {
  int64_t dim = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t window = 0;      // visible keys incl. self; 0 = full causal
  bool rope = true;
  double rope_base = 1e4;
  double scale = 0;        // softmax scale; 0 = 1/sqrt(head_dim)
  bool cross = false;      // cross-attention over a shared KV (YOCO): only a query projection
  bool diff = false;       // differential attention (SPEC §5)
  int64_t layer_index = 0; // 0-based; sets DA's lambda_init = 0.8 - 0.6 exp(-0.3 l)
  DType dtype = DType::f32;  // parameter dtype (f64 only for gradient checks)
  parallel::TensorParallel tp;  // heads split over the group (whole differential pairs)
};

// Grouped-query causal attention (SPEC §1.4, §4, §5).
// Self-attention: fused wqkv [(H + 2 Hk) hd, D], rows laid out [q heads | k heads | v heads]
// (a hyscale choice: the reference interleaves per KV group; checkpoints name the tensor,
// so the layout is internal). Cross-attention: wq [H hd, D] only, keys/values come from the
// shared KV. Output projection proj [D, H hd].
// Differential attention pairs adjacent heads (q1 = even, q2 = odd heads, same for KV),
// a_i = Attn(q_i, k_i, [v1 | v2]), out = RMSNorm_2hd(a1 - lambda a2) (1 - lambda_init),
// re-interleaved to [H, hd]; parameters lambda_{q1,k1,q2,k2} [hd] and subln.weight [2 hd].
// Tensor parallel: each rank holds H/tp query and Hk/tp KV heads (contiguous, so GQA groups
// and differential pairs stay whole): wqkv / wq column-parallel per part, proj row-parallel;
// the replicated lambdas and subln see only local heads, so their gradients are all-reduced.
class Attention : public Module {
 public:
  explicit Attention(const AttentionConfig& cfg);
  // Self-attention x [B, T, D] -> [B, T, D]; k_out/v_out receive this layer's K, V
  // ([B, T, Hk, hd], after RoPE) when given (the YOCO shared KV).
  Tensor forward(const Tensor& x, Tensor* k_out = nullptr, Tensor* v_out = nullptr) const;
  // Cross-attention over a shared KV.
  Tensor forward_cross(const Tensor& x, const Tensor& k, const Tensor& v) const;
  // One decoding step, x [B, 1, D]; row b is at position pos[b]. Self-attention writes row b's
  // K, V into (k_cache, v_cache) [B, cap, Hk, hd] at slot pos[b] (full) or pos[b] % window (ring
  // buffer) and attends over that row's valid slots; cross-attention attends over the first
  // pos[b] + 1 slots of the shared caches.
  // On a GPU, n_valid_dev (optional) is a device int64 array of pos[b] + 1 made once per step
  // (the decode kernel clamps it to the cache's slots); without it each call uploads its own.
  Tensor step(const Tensor& x, Tensor& k_cache, Tensor& v_cache, const std::vector<int64_t>& pos,
              const Tensor* n_valid_dev = nullptr) const;
  Tensor step_cross(const Tensor& x, const Tensor& k_cache, const Tensor& v_cache,
                    const std::vector<int64_t>& pos, const Tensor* n_valid_dev = nullptr) const;
  const AttentionConfig& config() const { return cfg_; }
  double lambda_init() const;
  Tensor wqkv, wq, proj, lambda_q1, lambda_k1, lambda_q2, lambda_k2, subln;

 private:
  Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v) const;  // -> [B, T, H hd]
  // Decode-time attention of q [B, 1, H, hd] over n_valid[b] cache slots of row b -> [B, 1, H hd].
  Tensor attend_cache(const Tensor& q, const Tensor& kc, const Tensor& vc, const std::vector<int64_t>& n_valid,
                      const Tensor* n_valid_dev = nullptr) const;
  // Decode-time q of qkv [B, (H + 2 Hk_app) hd] (RoPE at each row's position), and with Hk_app > 0
  // the rows' k (RoPE) and v appended to the caches: kernels' decode_rope_append, one call.
  Tensor rope_append(const Tensor& qkv, int64_t Hk_app, Tensor* k_cache, Tensor* v_cache,
                     const std::vector<int64_t>& pos, const Tensor* n_tok_dev) const;  // -> q [B, 1, H, hd]
  AttentionConfig cfg_;
  int64_t H_, Hk_;  // heads on this rank
};

}  // namespace hyscale::nn
