#include "train/trainer.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/random.h"
#include "core/storage.h"
#include "data/dataset.h"
#include "data/h5.h"
#include "data/sampler.h"
#include "kernels/gemm.h"
#include "parallel/dist.h"
#include "train/checkpoint.h"
#include "parallel/comm.h"
#include "parallel/nccl_comm.h"
#include "parallel/tp_ops.h"
#include "train/optimizer.h"
#ifdef HYSCALE_WITH_CUDA
#include "kernels/cuda.h"
#endif

namespace fs = std::filesystem;

namespace hyscale::train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
  return buf;
}

// Tokens of a batch as two int32 tensors [B, T].
struct Batch {
  Tensor ids, targets;
};

Batch make_batch(const data::TokenDataset& ds, const std::vector<int64_t>& starts, int64_t T) {
  const int64_t B = static_cast<int64_t>(starts.size());
  Batch b{Tensor::empty({B, T}, DType::i32), Tensor::empty({B, T}, DType::i32)};
  data::fill_batch(ds, starts, T, b.ids.data<int32_t>(), b.targets.data<int32_t>());
  return b;
}

// A logger writing to the console and (on rank 0) to <run_dir>/log.txt.
std::shared_ptr<spdlog::logger> make_logger(const std::string& run_dir, bool rank0) {
  std::vector<spdlog::sink_ptr> sinks;
  auto console = std::make_shared<spdlog::sinks::stdout_color_sink_mt>();
  sinks.push_back(console);
  if (rank0) sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(run_dir + "/log.txt", false));
  auto lg = std::make_shared<spdlog::logger>("hyscale", sinks.begin(), sinks.end());
  lg->set_pattern("[%H:%M:%S] %v");
  lg->set_level(rank0 ? spdlog::level::info : spdlog::level::warn);
  lg->flush_on(spdlog::level::info);
  return lg;
}

// Drops metrics records after `step` (they were logged by a run that crashed before its
// next checkpoint and are about to be recomputed). Rewritten atomically.
void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  bool dropped = false;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    int64_t s = -1;
    try {
      s = nlohmann::json::parse(line).value("step", int64_t{-1});
    } catch (const std::exception&) {
      dropped = true;  // a torn last line from the crash
      continue;
    }
    if (s > step) {
      dropped = true;
      continue;
    }
    kept += line + "\n";
  }
  if (!dropped) return;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kept;
    out.flush();
    HS_CHECK(out.good(), "cannot write ", tmp);
  }
  data::commit_file_atomically(tmp, path);
}

void apply_threads(const RunConfig& cfg) { kernels::cpu::set_num_threads(static_cast<int>(cfg.training.threads)); }

}  // namespace

double evaluate(const nn::Model& model, const RunConfig& cfg, const data::TokenDataset& val) {
  NoGrad ng;
  const auto& g = parallel::grid();
  const int64_t T = cfg.training.seq_len, B = cfg.training.batch_size;
  const int64_t n = val.size();
  HS_CHECK(n >= T + 1, "validation split has ", n, " tokens, fewer than seq_len + 1 = ", T + 1);
  // Sequential, unshuffled blocks: eval_batches global batches (batch_size x dp sequences
  // each), dealt round-robin to the data-parallel ranks (a tp group shares its blocks), so the
  // set of blocks does not depend on the layout; the mean is over every dp rank's tokens.
  const int64_t max_blocks = cfg.logging.eval_batches * B * g.dp;
  auto starts = data::val_block_starts(n, T, max_blocks, g.dp_rank, g.dp);
  double sums[2] = {0, 0};  // loss * tokens, tokens
  for (size_t i = 0; i < starts.size(); i += static_cast<size_t>(B)) {
    std::vector<int64_t> chunk(starts.begin() + i, starts.begin() + std::min(starts.size(), i + B));
    Batch b = make_batch(val, chunk, T);
    const double l = model.loss(b.ids, b.targets).item();
    sums[0] += l * static_cast<double>(chunk.size() * T);
    sums[1] += static_cast<double>(chunk.size() * T);
  }
  g.dp_comm->allreduce(sums, 2, DType::f64);
  HS_CHECK(sums[1] > 0, "validation produced no blocks");
  return sums[0] / sums[1];
}

Device training_device(const RunConfig& cfg) {
  const auto& pi = parallel::process();
  Device device;
  try {
    device = Device::parse(cfg.training.device);
  } catch (const Error& e) {
    HS_FAIL("training.device: ", e.what());
  }
  if (device.is_cuda() && pi.world > 1 && cuda_available()) {
    // One GPU per process: the ranks of a node take consecutive devices from the configured
    // index (cuda = cuda:0), wrapping around the visible ones; never two ranks on one GPU.
    HS_CHECK(pi.local_size <= cuda_device_count(), "training.device ", device.str(), ": ", pi.local_size,
             " ranks on this node but ", cuda_device_count(), " CUDA device(s) visible: launch one rank per GPU");
    device = Device::cuda((device.index + pi.local_rank) % cuda_device_count());
  }
  if (device.is_cuda()) {
#ifdef HYSCALE_WITH_CUDA
    const char* why = " (none visible to this process)";
#else
    const char* why = " (this build has no CUDA: configure with -DHYSCALE_CUDA=ON)";
#endif
    HS_CHECK(cuda_available(), "training.device is ", device.str(), " but no CUDA device is available", why);
    HS_CHECK(device.index < cuda_device_count(), "training.device ", device.str(), ": only ", cuda_device_count(),
             " CUDA device(s) visible");
    cudart::set_device(device.index);
#ifdef HYSCALE_WITH_CUDA
    kernels::cuda::set_deterministic(cfg.training.deterministic);
#endif
  }
  HS_CHECK(cfg.training.precision == "fp32" || device.is_cuda(), "training.precision: ", cfg.training.precision,
           " needs training.device cuda (the cpu kernels compute in fp32/fp64)");
  return device;
}

void install_weight_copies(nn::Model& model, DistributedAdamW& opt) {
  NoGrad ng;
  auto cc = std::make_shared<nn::Module::ComputeCopies>();
  std::vector<Tensor> copies;
  for (const auto& dp : opt.params()) {
    Tensor c;
    if (dp.p.device().is_cuda() && dp.p.dtype() == DType::f32) {
      c = dp.p.detach().to(DType::bf16);  // as ops::cast rounds
      cc->by_param[dp.p.impl_ptr().get()] = c;
    }
    copies.push_back(c);
  }
  opt.set_compute_copies(std::move(copies));
  model.set_compute_copies(std::move(cc));
}

TrainResult run_training(RunConfig cfg, const std::string& resume) {
  const auto& pi = parallel::process();
  const bool rank0 = pi.rank == 0;
  apply_threads(cfg);
  const Device device = training_device(cfg);

  // ---- data
  auto train_ds = data::TokenDataset::load(cfg.data.path, "train");
  auto val_ds = data::TokenDataset::load(cfg.data.path, "val");
  HS_CHECK(train_ds.vocab_size == val_ds.vocab_size, "data.path '", cfg.data.path,
           "': train and val splits disagree on vocab_size");
  // ---- process grid: tp groups of consecutive ranks, dp across them
  parallel::Grid grid = parallel::make_grid(static_cast<int>(cfg.parallel.tp));
  // GPUs: with dp > 1 the gradient buckets are reduced in device memory, and with tp > 1 the
  // tensor-parallel ops reduce and gather activations there, over NCCL.
  if (device.is_cuda() && grid.dp > 1) grid.dp_dev_comm = parallel::make_nccl_comm(grid.dp_comm, device.index);
  if (device.is_cuda() && grid.tp > 1) grid.tp_dev_comm = parallel::make_nccl_comm(grid.tp_comm, device.index);
  parallel::set_grid(grid);
  // The device communicators must not outlive the run in the process-wide grid (their teardown
  // would run among static destructors, after MPI_Finalize): drop them there when the run ends,
  // normally or by an error. Declared before the model and the optimizer, so it runs after
  // their destructors, and each communicator is destroyed with the last of its holders.
  struct DropDeviceComms {
    ~DropDeviceComms() {
      parallel::Grid g = parallel::grid();
      if (!g.dp_dev_comm && !g.tp_dev_comm) return;
      g.dp_dev_comm.reset();
      g.tp_dev_comm.reset();
      parallel::set_grid(g);
    }
  } drop_device_comms;
  resolve_config(cfg, train_ds.vocab_size, grid.dp);
  const std::string run_dir = cfg.run_dir();

  // ---- resume target: decided by rank 0 and broadcast, so every rank starts from the same
  // checkpoint even when the run directory is not on a shared filesystem.
  std::string ckpt_path, err;
  if (rank0) {
    try {
      if (resume == "auto") {
        ckpt_path = find_latest_checkpoint(run_dir).value_or("");
      } else if (!resume.empty()) {
        HS_CHECK(fs::exists(resume), "--resume: checkpoint '", resume, "' does not exist");
        ckpt_path = resume;
      } else {
        HS_CHECK(!find_latest_checkpoint(run_dir).has_value(), "run directory '", run_dir,
                 "' already has checkpoints: pass --resume auto to continue it, or choose another name");
      }
    } catch (const Error& e) {
      err = e.what();
    }
  }
  parallel::broadcast_string(err);
  HS_CHECK(err.empty(), err);
  parallel::broadcast_string(ckpt_path);
  std::optional<std::string> ckpt;
  if (!ckpt_path.empty()) ckpt = ckpt_path;
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  HS_CHECK(!ec, "cannot create run directory '", run_dir, "': ", ec.message());
  const std::string cfg_yaml = to_yaml(cfg);
  if (rank0) {
    std::ofstream out(run_dir + "/config.resolved.yaml", std::ios::trunc);
    out << cfg_yaml;
    HS_CHECK(out.good(), "cannot write ", run_dir, "/config.resolved.yaml");
  }
  auto log = make_logger(run_dir, rank0);

  // ---- model and optimizer
  nn::Model model(cfg.model, parallel::tensor_parallel_from_grid(grid));
  model.init_weights(static_cast<uint64_t>(cfg.training.seed));  // on the host: the same weights on any device
  if (device.is_cuda()) model.to_device(device);
  if (cfg.training.precision == "bf16") model.set_compute_dtype(DType::bf16);
  DistributedAdamW opt(model.named_parameters(), model.named_shard_specs(), cfg.optimizer, grid,
                       cfg.parallel.bucket_mb, cfg.parallel.zero == 1);
  // Each dp rank reads its own disjoint stream; the ranks of one tp group read the same batch.
  data::BlockSampler sampler(train_ds.size(), cfg.training.seq_len, static_cast<uint64_t>(cfg.training.seed),
                             grid.dp_rank, grid.dp);
  Rng rng(static_cast<uint64_t>(cfg.training.seed) ^ 0x5eed);
  TrainState st;
  if (ckpt) {
    // The stored model config must match this run's (tensor shapes alone miss e.g. rope_base).
    RunConfig saved = parse_config(checkpoint_config(*ckpt), *ckpt + " (stored config)");
    resolve_config(saved, 0, grid.dp);
    RunConfig a, b;
    a.model = saved.model;
    b.model = cfg.model;
    HS_CHECK(to_yaml(a) == to_yaml(b), "checkpoint '", *ckpt, "' was written by a different model config than ",
             "this run's model section; resume with the same model.* keys (see its stored config)");
    st = load_checkpoint(*ckpt, opt, grid, true);
    HS_CHECK(st.sampler.seed == static_cast<uint64_t>(cfg.training.seed), "checkpoint '", *ckpt,
             "' was written with training.seed ", st.sampler.seed, ", this run uses ", cfg.training.seed);
    sampler.restore(st.sampler);
    rng.set_state(st.rng);
    // Every rank must resume at the same step, or collectives would pair up wrongly.
    double steps[2] = {static_cast<double>(st.step), static_cast<double>(st.step) * st.step};
    parallel::allreduce_sum(steps, 2);
    HS_CHECK(steps[0] * steps[0] == steps[1] * pi.world, "ranks resumed at different steps (is checkpoint '",
             *ckpt, "' the same file on every node?)");
    if (rank0) {
      // Later checkpoints and metrics belong to an abandoned continuation: set them aside
      // so pruning, --resume auto and scaling fits never mix the two histories.
      for (auto& p : set_aside_newer_checkpoints(run_dir, st.step)) log->warn("set aside {}", p);
      truncate_metrics(run_dir + "/metrics.jsonl", st.step);
    }
    log->info("resumed from {} at step {} ({} tokens seen)", *ckpt, st.step, st.tokens_seen);
  } else if (rank0 && fs::exists(run_dir + "/metrics.jsonl")) {
    // A fresh start (e.g. --resume auto after a crash before the first checkpoint): the old
    // records describe steps that are about to be recomputed; keep them aside, not mixed in.
    const std::string aside = run_dir + "/metrics.jsonl.stale";
    fs::rename(run_dir + "/metrics.jsonl", aside, ec);
    HS_CHECK(!ec, "cannot move ", run_dir, "/metrics.jsonl aside: ", ec.message());
    log->warn("fresh start: previous metrics moved to {}", aside);
  }

  // The parameters hold their starting values now (fresh or resumed): bf16 copies from here on.
  if (device.is_cuda() && cfg.training.precision == "bf16" && cfg.training.weight_copies)
    install_weight_copies(model, opt);

  const int64_t B = cfg.training.batch_size, T = cfg.training.seq_len, A = cfg.training.grad_accum;
  const int64_t tokens_per_step = B * T * A * grid.dp;
  const double flops_per_token = model.train_flops_per_token(T);
  log->info("hyscale train: run {} | {} layers, d_model {}, {} params ({} non-embedding) | {} ranks (tp {} x dp {}{}) x "
            "{} threads | {} gradient buckets",
            cfg.name, cfg.model.n_layers, cfg.model.d_model, model.vector_params() + model.non_embedding_params() +
            model.embedding_params(), model.non_embedding_params(), grid.world, grid.tp, grid.dp,
            opt.zero() ? ", ZeRO-1" : "", kernels::cpu::num_threads(), opt.num_buckets());
  log->info("data: {} train tokens, {} val tokens | batch {} x {} x accum {} x dp {} = {} tokens/step | {} steps",
            train_ds.size(), val_ds.size(), B, T, A, grid.dp, tokens_per_step, cfg.training.max_steps);

  std::ofstream metrics;
  if (rank0) {
    metrics.open(run_dir + "/metrics.jsonl", std::ios::app);
    HS_CHECK(metrics.good(), "cannot open ", run_dir, "/metrics.jsonl");
  }
  auto emit = [&](const nlohmann::json& j) {
    if (!rank0) return;
    metrics << j.dump() << "\n";
    metrics.flush();
  };

  TrainResult res;
  res.run_dir = run_dir;
  const auto t_start = Clock::now();
  auto t_log = Clock::now();
  int64_t steps_since_log = 0;
  double loss_since_log = 0;
  const int64_t start_step = st.step;
  const int64_t max_steps = cfg.training.max_steps;

  auto do_eval = [&](int64_t step) {
    auto t0 = Clock::now();
    double vl = evaluate(model, cfg, val_ds);
    res.final_val_loss = vl;
    log->info("step {:>6} | val loss {:.4f} | val time {:.1f}s", step, vl, seconds_since(t0));
    emit({{"type", "eval"}, {"step", step}, {"tokens", st.tokens_seen}, {"val_loss", vl},
          {"elapsed_s", seconds_since(t_start)}});
  };
  auto do_ckpt = [&]() {
    st.sampler = sampler.state();
    st.rng = rng.state();
    std::string p = save_checkpoint(run_dir, opt, grid, st, cfg_yaml, cfg.checkpointing.keep_last);
    if (rank0) log->info("checkpoint {}", p);
    grid.world_comm->barrier();
  };

  for (int64_t step = start_step; step < max_steps; ++step) {
    const double lr = lr_at(cfg.schedule, cfg.optimizer.lr, step, max_steps);
    opt.zero_grad();
    double step_loss = 0;
    for (int64_t a = 0; a < A; ++a) {
      Batch b = make_batch(train_ds, sampler.next(B), T);
      Tensor loss = model.loss(b.ids, b.targets);
      step_loss += loss.item() / static_cast<double>(A);
      // The last micro-batch's backward launches the bucketed gradient reductions as it goes.
      if (a == A - 1) opt.arm();
      // Average over micro-batches: seed the backward with 1/A instead of scaling the loss.
      loss.backward(Tensor::full({}, 1.0 / static_cast<double>(A)));
    }
    // Tensor parallelism on GPUs: the backward's stream-ordered all-reduces, waited for where a
    // dead peer is noticed (NCCL's timeout and errors) rather than in a later copy to the host.
    if (grid.tp_dev_comm) grid.tp_dev_comm->wait_ordered();
    opt.finish_backward();  // data-parallel mean of the gradients (fp32)
    if (grid.dp > 1) {      // and of the logged loss
      grid.dp_comm->allreduce(&step_loss, 1, DType::f64);
      step_loss /= grid.dp;
    }
    const double gnorm = opt.grad_norm();
    HS_CHECK(std::isfinite(step_loss) && std::isfinite(gnorm), "training diverged at step ", step + 1, ": loss ",
             step_loss, ", grad norm ", gnorm, " (lower optimizer.lr or check the data)");
    const double clip = cfg.optimizer.grad_clip > 0 && gnorm > cfg.optimizer.grad_clip
                            ? cfg.optimizer.grad_clip / (gnorm + 1e-6)
                            : 1.0;
    opt.step(lr, clip);  // clipping folded into the update
    st.step = step + 1;
    st.tokens_seen += tokens_per_step;
    res.step_losses.push_back(step_loss);
    res.final_train_loss = step_loss;
    loss_since_log += step_loss;
    ++steps_since_log;

    if (st.step % cfg.logging.log_interval == 0 || st.step == max_steps) {
      const double dt = seconds_since(t_log);
      const double tps = static_cast<double>(tokens_per_step * steps_since_log) / std::max(dt, 1e-9);
      const double elapsed = seconds_since(t_start);
      const double eta = elapsed / static_cast<double>(st.step - start_step) * static_cast<double>(max_steps - st.step);
      const double mean_loss = loss_since_log / static_cast<double>(steps_since_log);
      log->info("step {:>6}/{} | loss {:.4f} | lr {:.3e} | grad norm {:.3f} | {:.0f} tok/s | {:.2f} GFLOP/s | "
                "elapsed {} | eta {}",
                st.step, max_steps, mean_loss, lr, gnorm, tps, tps * flops_per_token / 1e9, fmt_duration(elapsed),
                fmt_duration(eta));
      nlohmann::json rec = {{"type", "train"}, {"step", st.step}, {"tokens", st.tokens_seen}, {"train_loss", step_loss},
            {"train_loss_mean", mean_loss}, {"lr", lr}, {"grad_norm", gnorm}, {"tokens_per_s", tps},
            {"flops_per_token", flops_per_token}, {"paper_flops_per_token", cfg.scaling.paper_flops_per_token},
            {"params", cfg.scaling.non_embedding_params}, {"elapsed_s", elapsed}};
      if (cfg.logging.peak_flops > 0) rec["mfu"] = tps * flops_per_token / cfg.logging.peak_flops;
      emit(rec);
      t_log = Clock::now();
      steps_since_log = 0;
      loss_since_log = 0;
    }
    const bool last = st.step == max_steps;
    if (last || (cfg.logging.eval_interval > 0 && st.step % cfg.logging.eval_interval == 0)) do_eval(st.step);
    if (last || (cfg.checkpointing.interval > 0 && st.step % cfg.checkpointing.interval == 0)) do_ckpt();
  }
  if (start_step >= max_steps) log->info("nothing to do: checkpoint is at step {} >= max_steps {}", start_step, max_steps);
  res.steps = st.step;
  if (device.is_cuda()) log->info("{} memory: {}", device.str(), cudart::memory_stats());
  log->info("done: {} steps, final train loss {:.4f}, final val loss {:.4f}, {}", st.step, res.final_train_loss,
            res.final_val_loss, fmt_duration(seconds_since(t_start)));
  spdlog::drop("hyscale");
  return res;
}

}  // namespace hyscale::train
