// Run configuration: YAML in, strictly validated, fully resolved YAML out.
// Every key lives in one schema table (config.cpp): unknown keys, wrong types and
// out-of-range values are errors that name the key and what is allowed.
#pragma once
#include <string>
#include <vector>

#include "nn/model.h"

namespace hyscale::train {

struct OptimizerConfig {
  double lr = 0;  // 0 = derived from the base hyper-parameters (resolve_config)
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;         // matrices
  double vector_weight_decay = 0.1;  // vectors (norms, embeddings, LM head); SP decays everything (SPEC §6.2)
  double matrix_lr_mult = 1.0, vector_lr_mult = 1.0;
  double grad_clip = 1.0;            // global-norm clip; 0 disables
};

struct ScheduleConfig {
  int64_t warmup_steps = 0;
  std::string decay = "linear";  // linear | cosine | constant
  double min_lr_ratio = 0.0;     // final lr = min_lr_ratio * lr
};

struct DataConfig {
  std::string path = "data/fortunes";
};

struct TrainingConfig {
  int64_t batch_size = 8;   // sequences per micro-batch per data-parallel rank
  int64_t seq_len = 128;
  int64_t grad_accum = 1;   // micro-batches per optimizer step
  int64_t max_steps = 100;  // 0 = from the token budget (max_tokens, or t0 * N / n0 under model.depth)
  int64_t max_tokens = 0;   // training tokens; 0 = max_steps decides (or the muP++ budget when max_steps = 0)
  int64_t seed = 1234;
  int64_t threads = 0;      // CPU threads (0 = all cores)
  std::string device = "cpu";
  std::string precision = "fp32";
  bool deterministic = true;  // CUDA: bit-identical reruns (false: atomics where faster, kernels/cuda.h)
  bool weight_copies = true;  // CUDA bf16: persistent bf16 weight copies rewritten by the AdamW step
};

struct LoggingConfig {
  int64_t log_interval = 10;
  int64_t eval_interval = 100;  // 0 = only at the end
  int64_t eval_batches = 16;    // validation batches of batch_size x ranks sequences
  double peak_flops = 0;        // peak FLOP/s of the whole job for MFU (0 = MFU not reported)
};

struct CheckpointConfig {
  int64_t interval = 0;  // optimizer steps between checkpoints (0 = only at the end)
  int64_t keep_last = 3;
};

// Base hyper-parameters of muP++ (SPEC §6.4), paper-era values (ArchScale 1fbcceb) by default;
// configs/base_hps/{paper_era,head}.yaml hold the two published sets.
struct BaseHPs {
  int64_t d0 = 16;              // base depth
  double eta0 = 4e-4;           // base learning rate
  double b0 = 2097152;          // base batch, tokens (2^21)
  double t0 = 1e11;             // base token budget
  int64_t hd0 = 128;            // base head dim (attention scale sqrt(hd0)/hd)
  double w_init = 1.0;          // hidden init multiplier
  double n0_mult = 237568;      // n0 = n0_mult * d0^3 (the d0 Transformer++'s N)
  double weight_decay = 0.1;
  double warmup_tokens = 1e9;
};

// Model-size knobs of the scaling workflow (SPEC §6.1): one depth d sets everything.
struct ScalingConfig {
  int64_t depth = 0;  // 0 = widths given explicitly in model.*
  int64_t ar = 0;     // aspect ratio D / d; 0 = the architecture's (SPEC §1.2)
  std::string parametrization = "mupp";  // sp | mup | mupp (SPEC §6.2)
  int64_t non_embedding_params = 0;      // derived: the model's N (written out for fits)
  double paper_flops_per_token = 0;      // derived: 6 N_transformer(d) (the paper's x-axis), 0 without depth
};

struct ParallelConfig {
  int64_t tp = 1;            // tensor-parallel size; data-parallel size = ranks / tp
  int64_t zero = 0;          // 1: ZeRO-1 (optimizer moments sharded over the data-parallel group)
  double bucket_mb = 25.0;   // gradient all-reduce bucket size (MiB of fp32)
};

struct RunConfig {
  std::string name = "default";
  std::string out_dir = "runs";
  std::string base_hps;  // YAML file with base.* values ("" = the built-in paper-era set)
  BaseHPs base;
  ScalingConfig scaling;
  nn::ModelConfig model;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  DataConfig data;
  TrainingConfig training;
  LoggingConfig logging;
  CheckpointConfig checkpointing;
  ParallelConfig parallel;

  std::string run_dir() const { return out_dir + "/" + name; }
};

// Loads `path` (YAML) over the defaults, then applies "a.b=value" overrides.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Parses YAML text (used for the config stored in checkpoints); `origin` names it in errors.
RunConfig parse_config(const std::string& yaml_text, const std::string& origin,
                       const std::vector<std::string>& overrides = {});
// Fills derived values and checks cross-key rules: widths from model.depth (SPEC §6.1), the
// parametrisation's learning rates, multipliers and init (SPEC §6.2–§6.3), the token budget
// and warmup in steps (SPEC §6.4–§6.5). vocab_from_data > 0 supplies model.vocab_size when the
// config leaves it 0; `world` is the number of data-parallel ranks (the batch in tokens).
void resolve_config(RunConfig& cfg, int64_t vocab_from_data, int world = 1);
// SPEC §6.5's leading-order non-embedding matrix count N(d) = mult(ar) d^3 of an architecture.
double leading_order_params(const std::string& arch, double ar, double d);
// Default aspect ratio of an architecture (SPEC §1.2).
int64_t default_aspect_ratio(const std::string& arch);
// The whole config as YAML, every key written out.
std::string to_yaml(const RunConfig& cfg);
// One line per key: "section.key  type  default  — help" (for the README and --help).
std::string describe_keys();

}  // namespace hyscale::train
