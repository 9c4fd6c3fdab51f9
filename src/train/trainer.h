// The training loop (DESIGN.md "Data flow of one training step"), evaluation,
// generation, and the `info` / `bench` reports.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "nn/model.h"
#include "train/config.h"

namespace hyscale::train {

struct TrainResult {
  int64_t steps = 0;
  double final_train_loss = 0;
  double final_val_loss = 0;
  std::vector<double> step_losses;  // train loss of every optimizer step run by this call
  std::string run_dir;
};

// `resume`: "" (fresh run; refuses to overwrite a run directory that already has checkpoints),
// "auto" (newest complete checkpoint if any, else fresh) or a checkpoint path.
TrainResult run_training(RunConfig cfg, const std::string& resume);

// Mean validation loss over cfg.logging.eval_batches micro-batches, averaged over ranks.
double evaluate(const nn::Model& model, const RunConfig& cfg, const data::TokenDataset& val);

struct GenerateOptions {
  std::string ckpt;
  std::string prompt;
  int64_t max_new = 200;
  double temperature = 0.8;
  int64_t top_k = 0;    // 0 = off
  double top_p = 1.0;   // 1 = off
  uint64_t seed = 0;
  int64_t threads = 0;
};
// Samples a continuation of the prompt; returns the generated text (without the prompt).
std::string generate(const GenerateOptions& opt);

// Builds the model of a checkpoint with its weights loaded (for generation and evaluation).
std::unique_ptr<nn::Model> load_model(const std::string& ckpt, RunConfig* cfg_out = nullptr);

// Human-readable description: layers, parameter counts, FLOPs per token.
std::string model_info(const RunConfig& cfg);

// Times full training steps on synthetic tokens and prints a table; returns tokens/s.
double bench_train(RunConfig cfg, int64_t steps, int64_t warmup);
// μP coordinate check: for each width D (depth D / ar, every parametrisation rule applied),
// train `steps` steps on fixed random tokens and measure activation RMS on a fixed batch.
struct CoordCheckResult {
  std::vector<int64_t> widths;
  std::vector<std::string> rows;          // embedding, first/middle/last block, logits
  std::vector<std::vector<double>> rms;   // [row][width]
  std::vector<double> slopes;             // per row: slope of log RMS vs log width
};
struct CoordCheckOptions {
  std::vector<int64_t> widths;  // model widths D, each a multiple of the aspect ratio
  int64_t steps = 5;            // training steps per width
  int64_t depth = 0;            // fixed depth; 0 = model.depth, else base.d0
  bool joint = false;           // depth moves with width (d = D / ar), as in the paper's configs
};
CoordCheckResult coord_check(const RunConfig& cfg, const CoordCheckOptions& opts, bool print);

// Forward + backward time of each mixer type (full attention, SWA, Mamba, GMU, cross-attention)
// at the config's width for each sequence length; prints a table.
void bench_layers(RunConfig cfg, const std::vector<int64_t>& lengths, int64_t batch, int64_t reps);

}  // namespace hyscale::train
