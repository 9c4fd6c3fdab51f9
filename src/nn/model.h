// The language models: token embedding -> L pre-norm blocks -> final RMSNorm -> logit
// multiplier -> LM head (tied or untied). Every block is
//   x = x + r * Mixer(Norm1(x));  x = x + r * MLP(Norm2(x))        (SPEC §1.1)
// with an MLP in every layer; the mixer is chosen by the layer's role (SPEC §1.3):
//   A   full causal self-attention          S   sliding-window self-attention (window W)
//   M   Mamba-1                              M*  Mamba-1 that exports the GMU memory
//   F   full attention whose K, V become the shared KV (YOCO)
//   G   GMU reading the memory of M*         X   cross-attention over the shared KV
// An architecture (model.arch) is a rule for the roles of layers 0..L-1; model.pattern gives
// them explicitly, e.g. "MSMSM*FGX" (SambaY, L = 8). The residual stream is fp32.
//
// Parameter names: wte, blocks.{i}.norm1.weight, blocks.{i}.{attn|mamba|gmu}.<...>,
// blocks.{i}.norm2.weight, blocks.{i}.mlp.{w1,w3}, ln_f.weight, lm_head (absent when tied).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "nn/mamba.h"

namespace hyscale::nn {

enum class Role { Attn, SWA, Mamba, MambaMem, SharedKV, GMU, Cross };
const char* role_code(Role r);  // "A", "S", "M", "M*", "F", "G", "X"

struct ModelConfig {
  std::string arch = "transformer";  // transformer | transformerls | samba | sambayoco | sambay | sambayda | swayoco
  std::string pattern;               // explicit layer roles (overrides arch's layout); "" = from arch
  int64_t vocab_size = 0;            // padded vocabulary (a multiple of 64)
  int64_t n_layers = 0, d_model = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, mlp_hidden = 0;
  int64_t window = 0;                // SWA window (visible keys incl. self); 0 = arch default
  std::string rope = "auto";         // auto (per arch, SPEC §1.2) | on | off
  std::string diff_attn = "auto";    // auto (on for sambayda) | on | off
  int64_t d_state = 16, d_conv = 4, expand = 2, dt_rank = 0;  // Mamba-1; dt_rank 0 = ceil(D/16)
  int64_t scan_chunk = 128;          // selective-scan steps between saved states
  bool tie_embeddings = false;
  double rope_base = 1e4;
  double norm_eps = 1e-5;
  double residual_mult = 1.0;  // r: multiplies every mixer/MLP output (1/sqrt(2L) under muP++)
  double logit_mult = 1.0;     // multiplies ln_f(x) before the LM head
  double attn_scale = 0;       // 0 = 1/sqrt(head_dim)
  // Initialisation (SPEC §2, §3, §6.2, §6.3):
  std::string init = "normal";    // normal: every linear weight ~ N(0, init_std^2) (SP);
                                  // uniform: U(+-w_init / sqrt(fan_in)) (muP / muP++; PyTorch's default)
  double init_std = 0.02;
  double w_init = 1.0;
  double embed_init_std = 1e-4;   // untied embedding (tied: 0.02)
  bool zero_readout = false;      // zero lm_head (muP / muP++ with untied embeddings)
  bool scale_out_proj_init = true;  // out-projections (attn.proj, mlp.w3, mamba/gmu out_proj) / sqrt(2L)
  // Parameter dtype: f32 for training; f64 only for whole-model gradient checks (not a config key).
  DType param_dtype = DType::f32;
};

// Layer roles of a config (from model.pattern, else from model.arch); throws on unsupported depths.
std::vector<Role> layer_roles(const ModelConfig& cfg);
// Parses a pattern string ("MSMSM*FGX"); throws naming the offending character.
std::vector<Role> parse_pattern(const std::string& pattern);
// Effective settings of an architecture.
int64_t effective_window(const ModelConfig& cfg);
bool effective_rope(const ModelConfig& cfg);
bool effective_diff(const ModelConfig& cfg);

// State threaded through the blocks of one forward pass: the GMU memory and the shared KV.
struct BlockState {
  Tensor memory, k, v;
};

// Step-wise decoding state. Per layer, only what the architecture needs: full attention (A, F)
// keeps a KV cache of max_len positions, sliding-window layers (S) a ring buffer of W entries,
// cross-attention layers (X) nothing (they read the F layer's cache: the shared KV), Mamba
// layers (M, M*) their conv window [B, d_conv - 1, d_inner] and SSM state [B, d_inner, N],
// GMU layers nothing (they read the M* output of the same step).
// On a GPU (a model moved there before init_decode) the caches live on its device in the
// compute dtype, the SSM states in fp32.
struct LayerCache {
  Tensor k, v;  // [B, cap, Hk, hd]
  int64_t cap = 0;
  Tensor conv, ssm;
};
struct DecodeGraph;  // nn/decode.cpp
struct DecodeState {
  int64_t batch = 0, max_len = 0;
  std::vector<int64_t> pos;  // per sequence: tokens consumed so far (the next token's position)
  std::vector<LayerCache> layers;
  int64_t bytes() const;  // state memory, all layers, whole batch
  // On a GPU: run the steps as a CUDA graph (Model::step: the first step eagerly, the second
  // captured, then replays; the ids and positions go through fixed device buffers, the logits
  // are copied out of the graph's output). A capture that fails leaves the steps eager, with the
  // reason in graph_status(). A state tensor moved or reallocated between steps makes the next
  // step capture again; the model's weights (and their compute copies) must stay where they are
  // once stepping has begun, as place_for_decoding leaves them (the graph reads them in place).
  bool cuda_graph = false;
  std::shared_ptr<DecodeGraph> graph;
  // "off", "warming up", "captured (N replays)", or "failed: WHY (steps run eagerly)".
  std::string graph_status() const;
};

class Block : public Module {
 public:
  Block(const ModelConfig& cfg, Role role, int64_t index, const parallel::TensorParallel& tp = {});
  // With `capture` (prefill of one sequence, x [1, T, D]) the layer's decode state after the last
  // position is written into row `row` of `capture`.
  Tensor forward(const Tensor& x, BlockState& st, LayerCache* capture = nullptr, int64_t row = 0) const;
  // One decoding step: x [B, 1, D]; `shared` is the F layer's cache (for X), `memory` the M*
  // output of this step (written by M*, read by G); row b is at position pos[b].
  Tensor step(const Tensor& x, LayerCache& cache, const LayerCache* shared, Tensor& memory,
              const std::vector<int64_t>& pos, const Tensor* n_valid_dev = nullptr) const;
  Role role() const { return role_; }
  std::shared_ptr<RMSNorm> norm1, norm2;
  std::shared_ptr<Attention> attn;
  std::shared_ptr<Mamba> mamba;
  std::shared_ptr<GMU> gmu;
  std::shared_ptr<SwiGLUMLP> mlp;

 private:
  Role role_;
  double r_;
};

class Model : public Module {
 public:
  // tp: the tensor-parallel group; parameters are then this rank's shards (see ShardSpec),
  // the embedding and LM head split over the (padded) vocabulary.
  explicit Model(const ModelConfig& cfg, const parallel::TensorParallel& tp = {});
  const ModelConfig& config() const { return cfg_; }
  const parallel::TensorParallel& tensor_parallel() const { return tp_; }
  const std::vector<Role>& roles() const { return roles_; }

  // Initialise every parameter from `seed` (deterministic, order-independent; SPEC §2, §3, §6.2).
  // Under tensor parallelism each rank draws the global tensor and keeps its shard, so the
  // model is the same at every tp.
  void init_weights(uint64_t seed);
  // ids int32 [B, T] -> logits [B*T, V]. When `rms` is given it receives the root-mean-square
  // of the embedding output, of the residual stream after every block and of the logits
  // (what a coordinate check compares across widths).
  Tensor forward(const Tensor& ids, std::vector<std::pair<std::string, double>>* rms = nullptr) const;
  // Mean cross-entropy of next-token prediction: ids, targets int32 [B, T]. Under tensor
  // parallelism the logits stay split over the vocabulary (vocab-parallel cross-entropy).
  Tensor loss(const Tensor& ids, const Tensor& targets) const;

  // Step-wise decoding: a fresh state for `batch` sequences of up to max_len tokens, and one
  // step (ids int32 [B], the tokens at position st.pos) -> logits [B, V]. Feeding a sequence
  // token by token gives the parallel forward's logits. On the cpu, or on the GPU the model was
  // moved to (in its compute dtype; the logits stay on the device then).
  DecodeState init_decode(int64_t batch, int64_t max_len) const;
  Tensor step(const Tensor& ids, DecodeState& st) const;
  // Parallel prefill of sequence `row` (ids int32 [T], T <= max_len, the row not yet started):
  // one forward pass over the prompt (linear time in the SSM/SWA layers) that leaves the row's
  // decode state as T steps would; returns the logits of the last position [V].
  Tensor prefill(const Tensor& ids, DecodeState& st, int64_t row) const;

  // Counts: matrices outside the embedding/LM head (SPEC §6.5's N), embedding parameters,
  // vectors (norms, biases, A_log, D, conv, lambdas), and training FLOPs per token at length T.
  int64_t non_embedding_params() const;
  int64_t embedding_params() const;
  int64_t vector_params() const;
  double train_flops_per_token(int64_t seq_len) const;
  std::vector<std::string> layer_summary() const;

  Tensor wte, lm_head;
  std::shared_ptr<RMSNorm> ln_f;
  std::vector<std::shared_ptr<Block>> blocks;

 private:
  Tensor local_logits(const Tensor& ids, std::vector<std::pair<std::string, double>>* rms) const;
  // One decoding step after the embedding: x [B, 1, D] -> logits [B, V]; st.pos unchanged. With
  // nv_dev (device [B] int64, pos + 1) nothing but device work is queued (graph capture).
  Tensor step_body(Tensor x, const Tensor& table, DecodeState& st, const Tensor* nv_dev) const;
  ModelConfig cfg_;
  std::vector<Role> roles_;
  parallel::TensorParallel tp_;
};

// Exact parameter counts from the config alone (no allocation), per layer:
//   matrices  MLP 3 D I;  self-attention D (H + 2 Hk) hd + H hd D;  cross-attention 2 D H hd;
//             Mamba 2 di D + (R + 2N) di + di R + D di;  GMU 2 D d_mem
//             (di = d_mem = expand D, R = dt_rank, N = d_state)
//   vectors   norms 2 D (+ D for ln_f);  Mamba conv di K + conv bias di + dt_bias di + A_log di N + D di;
//             differential attention 4 hd (lambdas) + 2 hd (subln) per attention layer
//   embedding V D (x2 untied).
// `matrices` is SPEC §6.5's N (non-embedding matrix parameters, every projection included).
struct ParamCounts {
  int64_t embedding = 0, matrices = 0, vectors = 0;
  int64_t total() const { return embedding + matrices + vectors; }
};
ParamCounts count_parameters(const ModelConfig& cfg);
// Training FLOPs per token at sequence length T: 6 x (matrices + LM head) + attention over
// the visible (query, key) pairs (causal / window / cross) + scan and conv, x3 for training.
double train_flops_per_token(const ModelConfig& cfg, int64_t T);
std::vector<std::string> layer_summary(const ModelConfig& cfg);

// Validates a model config; throws hyscale::Error naming the model.* key.
void validate_model_config(const ModelConfig& cfg);

}  // namespace hyscale::nn
