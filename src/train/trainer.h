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

// training.device parsed and checked (a visible GPU, a precision the device supports); a GPU is
// made current. Under mpirun each process takes its own GPU: device index + local rank, modulo
// the visible devices. Errors name the key.
Device training_device(const RunConfig& cfg);

class DistributedAdamW;

// Mixed precision on a GPU (bf16, training.weight_copies): gives every parameter of `opt` a
// persistent bf16 copy, installs the copies in `model` (cw() reads them) and in `opt` (every step
// rewrites them). Call once the parameters hold their starting values (after a resume's load):
// nothing else may write them while the copies are installed.
void install_weight_copies(nn::Model& model, DistributedAdamW& opt);

// Mean validation loss over cfg.logging.eval_batches micro-batches, averaged over ranks.
double evaluate(const nn::Model& model, const RunConfig& cfg, const data::TokenDataset& val);

// Sampling of the next token from logits: temperature 0 = greedy (argmax); top_k 0 = off;
// top_p 1 = off.
struct SamplingOptions {
  double temperature = 0.8;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
};

// Batched generation: every prompt is prefilled with one parallel forward pass, then all
// sequences decode together, one token per step, each at its own position (prompts may differ
// in length), with preallocated state (SambaY: the one shared KV, SWA ring buffers of W, Mamba
// states). Sequence b stops at `eos` (not included in its output) or after max_new tokens.
// Only ids < vocab_limit and not in `banned` are sampled; sequence b samples with its own
// generator seeded (seed, b), so a batch gives the tokens of its prompts decoded one at a time
// (with seed + b). Greedy output equals the argmax of the parallel forward at every step.
std::vector<std::vector<int32_t>> generate_tokens(const nn::Model& model,
                                                  const std::vector<std::vector<int32_t>>& prompts, int64_t max_new,
                                                  const SamplingOptions& sampling, int32_t eos, int64_t vocab_limit,
                                                  const std::vector<int32_t>& banned = {}, bool cuda_graph = false);

struct GenerateOptions {
  std::string ckpt;
  std::vector<std::string> prompts;  // one or more (decoded as one batch)
  int64_t max_new = 200;
  SamplingOptions sampling;
  int64_t threads = 0;
  std::string device = "cpu", precision = "fp32";  // as place_for_decoding
  bool cuda_graph = false;                          // decode steps as a CUDA graph (nn::DecodeState)
};
// Decoding on a device: moves the model to `device` ("cpu", "cuda", "cuda:N") and, for
// precision "bf16" (a GPU only), makes it compute in bf16 from compute copies of the weights
// made once. Clear errors for anything else. Call before init_decode.
void place_for_decoding(nn::Model& model, const std::string& device, const std::string& precision);
// Logits (of step or prefill, on any device, f32 or bf16) as a host f32 tensor.
Tensor logits_on_host(const Tensor& logits);
// Samples a continuation of each prompt with the byte tokenizer; returns the generated texts
// (without the prompts).
std::vector<std::string> generate(const GenerateOptions& opt);

// Builds the model of a checkpoint with its weights loaded (for generation and evaluation).
std::unique_ptr<nn::Model> load_model(const std::string& ckpt, RunConfig* cfg_out = nullptr);

// Human-readable description: layers, parameter counts, FLOPs per token.
std::string model_info(const RunConfig& cfg);

// Times full training steps on synthetic tokens and prints a table; returns tokens/s.
double bench_train(RunConfig cfg, int64_t steps, int64_t warmup, bool profile = false);
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

// Achieved GB/s or TFLOP/s of each CUDA kernel next to the copy and GEMM ceilings measured in
// the same run (needs a CUDA build and a GPU); `json_path`: the rows as JSON too; `smoke`: every
// row at small shapes (a check that the benchmark runs; the numbers mean nothing).
void bench_kernels(int64_t reps, const std::string& json_path = "", bool smoke = false);

// Forward + backward time of each mixer type (full attention, SWA, Mamba, GMU, cross-attention)
// at the config's width for each sequence length; prints a table.
void bench_layers(RunConfig cfg, const std::vector<int64_t>& lengths, int64_t batch, int64_t reps);

}  // namespace hyscale::train
