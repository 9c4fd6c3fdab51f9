// `hyscale info` and `hyscale bench train`.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <cstdio>
#include <sstream>

#include "core/autograd.h"
#include "core/profiler.h"
#include "core/random.h"
#include "kernels/gemm.h"
#include "core/storage.h"
#include "parallel/comm.h"
#include "train/dist_optim.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace hyscale::train {

std::string model_info(const RunConfig& cfg) {
  // Everything here is computed from the config: no weights are allocated, so paper-size
  // models (billions of parameters) can be inspected on a laptop.
  nn::validate_model_config(cfg.model);
  const auto& m = cfg.model;
  const auto pc = nn::count_parameters(m);
  std::ostringstream os;
  os << "model: " << m.arch << (m.pattern.empty() ? "" : " pattern " + m.pattern) << "  L=" << m.n_layers
     << "  D=" << m.d_model << "  heads=" << m.n_heads << "  kv_heads=" << m.n_kv_heads << "  head_dim=" << m.head_dim
     << "  mlp_hidden=" << m.mlp_hidden << "  vocab=" << m.vocab_size << "  tied=" << (m.tie_embeddings ? "yes" : "no")
     << "\n";
  std::string roles;
  for (auto r : nn::layer_roles(m)) roles += nn::role_code(r);
  os << "layer roles: " << roles << "\n";
  os << "layers:\n  wte: embedding [" << m.vocab_size << ", " << m.d_model << "]\n";
  for (auto& s : nn::layer_summary(m)) os << "  " << s << "\n";
  os << "  ln_f: RMSNorm\n  lm_head: " << (m.tie_embeddings ? "tied to wte" : "linear") << "\n";
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "parameters: total %lld | embedding %lld | non-embedding matrices %lld | vectors %lld\n",
                static_cast<long long>(pc.total()), static_cast<long long>(pc.embedding),
                static_cast<long long>(pc.matrices), static_cast<long long>(pc.vectors));
  os << buf;
  const int64_t T = cfg.training.seq_len;
  std::snprintf(buf, sizeof buf,
                "training FLOPs per token at seq_len %lld: %.4g (matmuls + attention over visible pairs + scan) | "
                "6 * non-embedding matrices = %.4g\n",
                static_cast<long long>(T), nn::train_flops_per_token(m, T), 6.0 * static_cast<double>(pc.matrices));
  os << buf;
  return os.str();
}

namespace {
// Dense peak of the card for `precision`, from its name (0 when unknown): the MFU denominator
// when logging.peak_flops is not set. H100/H200 SXM: 989 TFLOP/s bf16 tensor cores, 67 fp32;
// A100: 312 bf16, 19.5 fp32.
double known_peak_flops(const std::string& name, bool bf16) {
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) return bf16 ? 989e12 : 67e12;
  if (name.find("A100") != std::string::npos) return bf16 ? 312e12 : 19.5e12;
  return 0;
}
}  // namespace

double bench_train(RunConfig cfg, int64_t steps, int64_t warmup, bool profile) {
  HS_CHECK(steps > 0 && warmup >= 0, "bench: --steps must be > 0 and --warmup >= 0");
  kernels::cpu::set_num_threads(static_cast<int>(cfg.training.threads));
  resolve_config(cfg, cfg.model.vocab_size > 0 ? cfg.model.vocab_size : 320);
  const Device device = training_device(cfg);
  const bool bf16 = cfg.training.precision == "bf16";
  const parallel::Grid grid = parallel::make_grid(1);
  HS_CHECK(grid.world == 1, "bench train runs in one process");
  nn::Model model(cfg.model);
  model.init_weights(static_cast<uint64_t>(cfg.training.seed));
  if (device.is_cuda()) model.to_device(device);
  if (bf16) model.set_compute_dtype(DType::bf16);
  DistributedAdamW opt(model.named_parameters(), model.named_shard_specs(), cfg.optimizer, grid, 25, false);
  if (device.is_cuda() && bf16 && cfg.training.weight_copies) install_weight_copies(model, opt);
  const int64_t B = cfg.training.batch_size, T = cfg.training.seq_len, A = cfg.training.grad_accum;
  Rng rng(1);
  auto batch = [&]() {
    Tensor ids = Tensor::empty({B, T}, DType::i32), tg = Tensor::empty({B, T}, DType::i32);
    for (int64_t i = 0; i < B * T; ++i) {
      ids.data<int32_t>()[i] = static_cast<int32_t>(rng.below(cfg.model.vocab_size));
      tg.data<int32_t>()[i] = static_cast<int32_t>(rng.below(cfg.model.vocab_size));
    }
    return std::pair{ids.to(device), tg.to(device)};
  };
  std::vector<std::pair<Tensor, Tensor>> batches;
  for (int64_t a = 0; a < A; ++a) batches.push_back(batch());
  auto one_step = [&]() {  // the marks do nothing unless the profiler is on
    prof::begin_step();
    opt.zero_grad();
    prof::mark("step", "zero_grad");
    for (auto& [ids, tg] : batches) model.loss(ids, tg).backward(Tensor::full({}, 1.0 / A));
    opt.finish_backward();
    prof::mark("step", "finish_backward");
    const double gn = opt.grad_norm();  // a host read: the device has finished the backward
    prof::mark("step", "grad_norm");
    opt.step(1e-4, gn > 1.0 ? 1.0 / gn : 1.0);  // clipped as training does
    prof::mark("step", "adamw");
    prof::end_step();
    if (device.is_cuda()) cudart::synchronize();
  };
  for (int64_t i = 0; i < warmup; ++i) one_step();
  std::vector<double> times;
  for (int64_t i = 0; i < steps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    one_step();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  const double tokens = static_cast<double>(B * T * A);
  const double tps = tokens / med;
  const double fpt = model.train_flops_per_token(T);
  const std::string where = device.is_cuda() ? cuda_device_name(device.index)
                                             : std::to_string(kernels::cpu::num_threads()) + " cpu threads";
  std::printf("hyscale bench train: %s L=%lld D=%lld H=%lld Hkv=%lld hd=%lld vocab=%lld | batch %lld x %lld x accum %lld"
              " | %s %s\n",
              cfg.model.arch.c_str(), (long long)cfg.model.n_layers, (long long)cfg.model.d_model,
              (long long)cfg.model.n_heads, (long long)cfg.model.n_kv_heads, (long long)cfg.model.head_dim,
              (long long)cfg.model.vocab_size, (long long)B, (long long)T, (long long)A, where.c_str(),
              cfg.training.precision.c_str());
  std::printf("%-28s %14s\n", "metric", "value");
  std::printf("%-28s %14.2f\n", "step time median (ms)", med * 1e3);
  std::printf("%-28s %14.2f\n", "step time min (ms)", times.front() * 1e3);
  std::printf("%-28s %14.0f\n", "tokens/s", tps);
  std::printf("%-28s %14.4g\n", "FLOPs/token (train)", fpt);
  std::printf("%-28s %14.2f\n", "achieved GFLOP/s", tps * fpt / 1e9);
  const double peak = cfg.logging.peak_flops > 0
                          ? cfg.logging.peak_flops
                          : (device.is_cuda() ? known_peak_flops(cuda_device_name(device.index), bf16) : 0);
  if (peak > 0) std::printf("%-28s %14.1f\n", "MFU (%)", 100 * tps * fpt / peak);
  if (device.is_cuda()) std::printf("%-28s %s\n", "device memory", cudart::memory_stats().c_str());
  std::printf("%-28s %14lld\n", "timed steps", (long long)steps);
  if (profile) {  // separate steps: the marks do not slow the timed ones
    prof::start(device);
    for (int64_t i = 0; i < steps; ++i) one_step();
    std::printf("\n%s", prof::report().c_str());
    prof::stop();
  }
  return tps;
}

}  // namespace hyscale::train

namespace hyscale::train {

void bench_layers(RunConfig cfg, const std::vector<int64_t>& lengths, int64_t batch, int64_t reps) {
  HS_CHECK(!lengths.empty() && batch > 0 && reps > 0, "bench layers: need lengths, --batch > 0 and --reps > 0");
  kernels::cpu::set_num_threads(static_cast<int>(cfg.training.threads));
  resolve_config(cfg, cfg.model.vocab_size > 0 ? cfg.model.vocab_size : 320);
  const auto& m = cfg.model;
  const int64_t D = m.d_model;
  nn::AttentionConfig ac;
  ac.dim = D;
  ac.n_heads = m.n_heads;
  ac.n_kv_heads = m.n_kv_heads;
  ac.head_dim = m.head_dim;
  ac.rope = nn::effective_rope(m);
  ac.diff = nn::effective_diff(m);
  auto full = std::make_shared<nn::Attention>(ac);
  ac.window = nn::effective_window(m);
  auto swa = std::make_shared<nn::Attention>(ac);
  ac.window = 0;
  ac.cross = true;
  auto cross = std::make_shared<nn::Attention>(ac);
  nn::MambaConfig mc;
  mc.dim = D;
  mc.d_state = m.d_state;
  mc.d_conv = m.d_conv;
  mc.expand = m.expand;
  mc.dt_rank = m.dt_rank;
  mc.scan_chunk = m.scan_chunk;
  auto mamba = std::make_shared<nn::Mamba>(mc);
  auto gmu = std::make_shared<nn::GMU>(D, m.expand * D);
  for (nn::Module* mod : {static_cast<nn::Module*>(full.get()), static_cast<nn::Module*>(swa.get()),
                          static_cast<nn::Module*>(cross.get()), static_cast<nn::Module*>(mamba.get()),
                          static_cast<nn::Module*>(gmu.get())})
    for (auto& [name, p] : mod->named_parameters()) {
      Tensor t = p;
      nn::init_normal(t, 0.02, 1, name);
    }
  for (auto& [name, p] : mamba->named_parameters())
    if (name == "A_log" || name == "D" || name == "dt_bias") Tensor(p).fill(name == "dt_bias" ? -4.0 : 0.5);

  struct Row {
    std::string name;
    std::function<Tensor(const Tensor&)> fwd;
  };
  Rng rng(3);
  auto randn = [&](const Shape& s) {
    Tensor t = Tensor::empty(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(rng.normal());
    return t;
  };
  std::vector<Row> rows = {
      {"full attention (A/F)", [&](const Tensor& x) { return full->forward(x); }},
      {"SWA W=" + std::to_string(nn::effective_window(m)) + " (S)", [&](const Tensor& x) { return swa->forward(x); }},
      {"Mamba-1 (M)", [&](const Tensor& x) { return mamba->forward(x); }},
      {"GMU (G)",
       [&](const Tensor& x) { return gmu->forward(x, randn({x.size(0), x.size(1), m.expand * D})); }},
      {"cross-attention (X)",
       [&](const Tensor& x) {
         Tensor k = randn({x.size(0), x.size(1), m.n_kv_heads, m.head_dim}),
                v = randn({x.size(0), x.size(1), m.n_kv_heads, m.head_dim});
         return cross->forward_cross(x, k, v);
       }},
  };
  std::printf("hyscale bench layers: forward + backward of one mixer, D=%lld H=%lld Hkv=%lld hd=%lld, batch %lld, "
              "%d threads, fp32 cpu, median of %lld (ms)\n",
              (long long)D, (long long)m.n_heads, (long long)m.n_kv_heads, (long long)m.head_dim, (long long)batch,
              kernels::cpu::num_threads(), (long long)reps);
  std::printf("%-26s", "layer");
  for (int64_t T : lengths) std::printf(" %10s", ("T=" + std::to_string(T)).c_str());
  std::printf(" %14s\n", "last/first");
  for (auto& row : rows) {
    std::printf("%-26s", row.name.c_str());
    std::vector<double> meds;
    for (int64_t T : lengths) {
      Tensor x = randn({batch, T, D});
      x.requires_grad_();
      std::vector<double> ts;
      for (int64_t r = 0; r < reps + 1; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        Tensor y = row.fwd(x);
        y.backward(Tensor::full(y.shape(), 1e-3));
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (r > 0) ts.push_back(dt);  // first run warms caches and allocator
        x.zero_grad();
        for (nn::Module* mod : {static_cast<nn::Module*>(full.get()), static_cast<nn::Module*>(swa.get()),
                                static_cast<nn::Module*>(cross.get()), static_cast<nn::Module*>(mamba.get()),
                                static_cast<nn::Module*>(gmu.get())})
          for (auto& [n, p] : mod->named_parameters()) Tensor(p).zero_grad();
      }
      std::sort(ts.begin(), ts.end());
      meds.push_back(ts[ts.size() / 2]);
      std::printf(" %10.2f", meds.back() * 1e3);
      std::fflush(stdout);
    }
    std::printf(" %13.1fx\n", meds.back() / meds.front());
  }
  std::printf("(T grows %.0fx: linear cost grows ~%.0fx, quadratic ~%.0fx)\n",
              static_cast<double>(lengths.back()) / lengths.front(), static_cast<double>(lengths.back()) / lengths.front(),
              std::pow(static_cast<double>(lengths.back()) / lengths.front(), 2));
}

}  // namespace hyscale::train
