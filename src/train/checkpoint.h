// Checkpoints: one HDF5 file per save, runs/<name>/checkpoints/step_XXXXXXX.h5.
//   /params/<name>        every parameter at its global shape, f32, under its logical name:
//                         fused projections are stored per part (blocks.0.attn.wqkv.q / .k / .v,
//                         mlp.w1.gate / .value, mamba.in_proj.x / .z), so a file does not
//                         depend on the (dp, tp, zero) layout that wrote it and resumes at any other
//   /optim/exp_avg/<name>, /optim/exp_avg_sq/<name>   AdamW moments, same names and shapes
//   /rng_state            uint64[4] of the trainer's generator
//   root attributes: format_version, step, tokens_seen, sampler_seed/epoch/cursor,
//                    config (the resolved YAML), layout_tp/dp/zero (informational),
//                    complete (=1, written last)
// Saving is collective: tensor-parallel slices are gathered one tensor at a time to world
// rank 0, which writes (no rank holds the whole model twice); under ZeRO-1 moments are
// all-gathered over the data-parallel group one bucket at a time.
// Written to "<file>.tmp", flushed, fsync'd and renamed, then the `latest`
// pointer is replaced the same way: a crash mid-write never damages an earlier
// checkpoint. Older files beyond keep_last are deleted after a successful save.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "data/sampler.h"
#include "nn/module.h"
#include "parallel/comm.h"
#include "train/dist_optim.h"

namespace hyscale::train {

struct TrainState {
  int64_t step = 0;         // optimizer steps completed
  int64_t tokens_seen = 0;  // training tokens consumed (all ranks)
  data::SamplerState sampler;
  std::array<uint64_t, 4> rng{};
};

// Saves and returns the path of the new checkpoint (on world rank 0; "" elsewhere).
// Collective over the grid's world: every rank calls it.
std::string save_checkpoint(const std::string& run_dir, DistributedAdamW& opt, const parallel::Grid& grid,
                            const TrainState& st, const std::string& config_yaml, int64_t keep_last);

// Loads this rank's slices of the parameters (and of the moments, when `load_moments`).
// Every tensor must be present with the expected global shape; errors name the file and
// tensor, and nothing is modified unless the whole file checks out.
TrainState load_checkpoint(const std::string& path, DistributedAdamW& opt, const parallel::Grid& grid,
                           bool load_moments = true);

// Parameters only (generate, eval): `params` and `specs` as the model gives them.
void load_checkpoint_params(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& params,
                            const std::vector<std::pair<std::string, nn::ShardSpec>>& specs, int tp_size = 1,
                            int tp_rank = 0);

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
