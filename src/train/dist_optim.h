// Data-parallel AdamW: gradient buckets reduced during backward, optional ZeRO-1.
//
// Parameters (this rank's tensor-parallel shards) are packed, last-registered first (the
// order backward produces them), into buckets of about parallel.bucket_mb MiB of fp32. On
// the last micro-batch of a step each parameter's gradient-ready hook copies its gradient
// into its bucket's flat buffer; a full bucket is launched at once as a nonblocking
// all-reduce (plain data parallel) or reduce-scatter (ZeRO-1), buckets always in index order
// so every rank issues the same collectives in the same order, and communication overlaps the
// rest of backward. finish_backward() waits and averages (1/dp, in fp32). Parameters on a GPU
// keep their buckets (and ZeRO-1's shards and moments) on the device and reduce them over the
// grid's device communicator (Grid::dp_dev_comm, NCCL); host parameters over MPI. Under ZeRO-1
// the bf16 compute copies (set_compute_copies) are re-cast from the gathered weights each step.
//
// ZeRO-1 (parallel.zero = 1): each bucket (padded to a multiple of dp) is split in dp equal
// shards; a rank keeps AdamW moments only for its shard, updates those parameter elements,
// and the updated parameters are all-gathered. Moments then take 1/dp of the memory.
//
// The global gradient norm counts every element once: tensor-parallel shards are summed over
// the tp group, replicated tensors (norms, DA lambdas: identical on every tp rank) taken once.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "parallel/comm.h"
#include "train/config.h"
#include "train/optimizer.h"

namespace hyscale::train {

struct DistParam {
  std::string name;
  Tensor p;             // this rank's (tp-local) tensor
  nn::ShardSpec spec;   // how it is split over tp
  int group = 0;        // 0 matrix, 1 vector (SPEC §6.2)
  int64_t bucket = 0, offset = 0;  // position in its bucket's flat buffer
};

class DistributedAdamW {
 public:
  DistributedAdamW(const std::vector<std::pair<std::string, Tensor>>& params,
                   const std::vector<std::pair<std::string, nn::ShardSpec>>& specs, const OptimizerConfig& cfg,
                   const parallel::Grid& grid, double bucket_mb, bool zero);
  ~DistributedAdamW();
  DistributedAdamW(const DistributedAdamW&) = delete;
  DistributedAdamW& operator=(const DistributedAdamW&) = delete;

  void zero_grad();
  // Call before the backward of a step's last micro-batch: its gradient-ready hooks launch the
  // bucket reductions.
  void arm();
  // After that backward: completes every bucket (parameters without a gradient count as 0) and
  // leaves averaged gradients (plain) or averaged gradient shards (ZeRO-1).
  void finish_backward();
  double grad_norm();
  // Multiplies the gradients by `factor` in place (a separate pass; step() can fold it in).
  void scale_grads(double factor);
  // One AdamW step on the gradients times grad_scale (clipping without a separate pass over the
  // gradients; bit-identical to scale_grads(grad_scale) then step(lr)). The gradients are left
  // unscaled.
  void step(double lr, double grad_scale = 1.0);
  // Mixed precision: persistent bf16 copies of the parameters (aligned with params(); an
  // undefined entry = none) that every step() rewrites from the updated fp32 values (the AdamW
  // kernel's second output, rounded as a cast rounds), so that they stay equal to the parameters
  // rounded to bf16 without a cast per forward (under ZeRO-1: re-cast from the all-gathered
  // weights). Device parameters only.
  void set_compute_copies(std::vector<Tensor> copies);

  int64_t step_count() const { return step_; }
  void set_step_count(int64_t s) { step_ = s; }
  const std::vector<DistParam>& params() const { return params_; }
  bool zero() const { return zero_; }
  // AdamW moment (0 = exp_avg, 1 = exp_avg_sq) of parameter i at its tp-local shape, complete.
  // Under ZeRO-1 this all-gathers over the dp group: every dp rank must call it, in the same order.
  Tensor moment(size_t i, int which);
  // Frees the bucket moment() gathered last (call after a checkpoint save).
  void drop_gathered();
  // Sets moment `which` of parameter i from its complete tp-local value (keeps this rank's shard).
  void set_moment(size_t i, int which, const Tensor& full);
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Bytes of optimizer state (moments) this rank holds.
  int64_t state_bytes() const;

 private:
  struct Bucket {
    std::vector<size_t> members;
    int64_t n = 0, n_pad = 0, shard = 0;
    Tensor grad_buf;            // [n_pad]
    Tensor grad_shard;          // [shard] (ZeRO)
    Tensor m, v;                // [shard] (ZeRO)
    int64_t pending = 0;
    bool launched = false;
    std::unique_ptr<parallel::Request> req;
  };
  void on_grad_ready(size_t i, const Tensor& g);
  void launch_ready();
  void launch(Bucket& b);
  parallel::Communicator& comm_for(const Tensor& buf) const;  // the dp communicator for buf's device
  bool counted_once(const DistParam& p) const;  // replicated tensors count on tp rank 0 only

  std::vector<DistParam> params_;
  std::vector<Bucket> buckets_;
  std::vector<uint8_t> got_;        // per parameter: gradient copied into its bucket
  std::vector<Tensor> m_, v_;       // plain: per parameter
  std::vector<Tensor> copies_;      // bf16 compute copies per parameter (set_compute_copies), or empty
  OptimizerConfig cfg_;
  parallel::Grid grid_;
  bool zero_ = false, armed_ = false;
  size_t next_launch_ = 0;
  int64_t step_ = 0;
  int64_t gathered_bucket_ = -1;    // cache of moment(): bucket whose moments are gathered
  Tensor gathered_[2];
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // hooks outlive a destroyed optimizer safely
};

}  // namespace hyscale::train
