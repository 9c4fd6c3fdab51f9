// Run configuration: YAML in, strictly validated, fully resolved YAML out.
// Every key lives in one schema table (config.cpp): unknown keys, wrong types and
// out-of-range values are errors that name the key and what is allowed.
#pragma once
#include <string>
#include <vector>

#include "nn/model.h"

namespace hyscale::train {

struct OptimizerConfig {
  double lr = 3e-3;
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
  int64_t max_steps = 100;
  int64_t seed = 1234;
  int64_t threads = 0;      // CPU threads (0 = all cores)
  std::string device = "cpu";
  std::string precision = "fp32";
};

struct LoggingConfig {
  int64_t log_interval = 10;
  int64_t eval_interval = 100;  // 0 = only at the end
  int64_t eval_batches = 16;    // validation batches of batch_size x ranks sequences
};

struct CheckpointConfig {
  int64_t interval = 0;  // optimizer steps between checkpoints (0 = only at the end)
  int64_t keep_last = 3;
};

struct RunConfig {
  std::string name = "default";
  std::string out_dir = "runs";
  nn::ModelConfig model;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  DataConfig data;
  TrainingConfig training;
  LoggingConfig logging;
  CheckpointConfig checkpointing;

  std::string run_dir() const { return out_dir + "/" + name; }
};

// Loads `path` (YAML) over the defaults, then applies "a.b=value" overrides.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Parses YAML text (used for the config stored in checkpoints); `origin` names it in errors.
RunConfig parse_config(const std::string& yaml_text, const std::string& origin,
                       const std::vector<std::string>& overrides = {});
// Fills derived values (head_dim, mlp_hidden, n_kv_heads) and checks cross-key rules.
// vocab_from_data > 0 supplies model.vocab_size when the config leaves it 0.
void resolve_config(RunConfig& cfg, int64_t vocab_from_data);
// The whole config as YAML, every key written out.
std::string to_yaml(const RunConfig& cfg);
// One line per key: "section.key  type  default  — help" (for the README and --help).
std::string describe_keys();

}  // namespace hyscale::train
