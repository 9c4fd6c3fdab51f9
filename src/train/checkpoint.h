// Checkpoints: one HDF5 file per save, runs/<name>/checkpoints/step_XXXXXXX.h5.
//   /params/<name>        every parameter at its global shape, f32
//   /optim/exp_avg/<name>, /optim/exp_avg_sq/<name>   AdamW moments
//   /rng_state            uint64[4] of the trainer's generator
//   root attributes: format_version, step, tokens_seen, sampler_seed/epoch/cursor,
//                    config (the resolved YAML), complete (=1, written last)
// Written to "<file>.tmp", flushed, fsync'd and renamed, then the `latest`
// pointer is replaced the same way: a crash mid-write never damages an earlier
// checkpoint. Older files beyond keep_last are deleted after a successful save.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "data/sampler.h"
#include "train/optimizer.h"

namespace hyscale::train {

struct TrainState {
  int64_t step = 0;         // optimizer steps completed
  int64_t tokens_seen = 0;  // training tokens consumed (all ranks)
  data::SamplerState sampler;
  std::array<uint64_t, 4> rng{};
};

// Saves and returns the path of the new checkpoint.
std::string save_checkpoint(const std::string& run_dir, const AdamW& opt, const TrainState& st,
                            const std::string& config_yaml, int64_t keep_last);

// Loads parameters (and moments, when `opt_moments` is true) into `opt`'s tensors.
// Every parameter must be present with the same shape; errors name the file and tensor.
TrainState load_checkpoint(const std::string& path, AdamW& opt, bool load_moments = true);

// The resolved config stored in a checkpoint.
std::string checkpoint_config(const std::string& path);

// Newest complete checkpoint of a run: the `latest` pointer if it names a complete
// file, otherwise the highest-step complete step_*.h5. nullopt when there is none.
std::optional<std::string> find_latest_checkpoint(const std::string& run_dir);

// Resuming from step S abandons the checkpoints after S: they are renamed to
// "<file>.stale" (kept, never deleted) so pruning and `--resume auto` ignore them.
// Returns the new names.
std::vector<std::string> set_aside_newer_checkpoints(const std::string& run_dir, int64_t step);

}  // namespace hyscale::train
