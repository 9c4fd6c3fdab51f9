// The model on the GPU against the same model on the CPU (label gpu):
//  * one forward + backward of every architecture in f32 on cuda:0: the loss within 1e-4
//    relative and every parameter gradient within 2e-3 relative (max-norm over the tensor) of
//    the CPU's — the kernels reduce in other orders (cuBLASLt GEMMs, blocked softmax), and
//    small gradients sum many such terms;
//  * the same in bf16 mixed precision: loss within 3e-2 relative, gradients within 0.1
//    relative (bf16 activations carry 8 mantissa bits through 8 layers), 0.3 for the
//    differential-attention λ vectors (see check_arch);
//  * 50 training steps of Transformer++ and SambaY through run_training (training.device
//    cuda): f32 losses track the CPU run's within 1e-3 relative at every step, bf16 losses
//    within 5e-2, and both fall by the same amount within 0.1 nats.
#ifdef HYSCALE_WITH_CUDA
#include <catch2/catch.hpp>
#include <cmath>
#include <tuple>

#include "core/ops.h"
#include "e2e_util.h"
#include "gradcheck.h"
#include "small_model.h"
#include "train/config.h"
#include "train/trainer.h"

using namespace hyscale;
using namespace hyscale::testing;

namespace {
double rel_err(const Tensor& got, const Tensor& want) {
  auto g = got.to(Device::cpu()).to(DType::f64).contiguous().to_vector<double>();
  auto w = want.to(Device::cpu()).to(DType::f64).contiguous().to_vector<double>();
  REQUIRE(g.size() == w.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) return INFINITY;
    num = std::max(num, std::fabs(g[i] - w[i]));
    den = std::max(den, std::fabs(w[i]));
  }
  return num / std::max(den, 1e-30);
}

void check_arch(const std::string& arch, bool bf16) {
  nn::ModelConfig mc = small_model(arch);
  nn::Model cpu(mc), gpu(mc);
  cpu.init_weights(11);
  gpu.init_weights(11);
  gpu.to_device(Device::cuda(0));
  if (bf16) gpu.set_compute_dtype(DType::bf16);
  const int64_t B = 2, T = 37;  // odd length: crosses the window (5) and scan chunks (8) unevenly
  const int32_t V = static_cast<int32_t>(mc.vocab_size);
  Tensor I = testing::randint({B, T}, V, 3), Tg = testing::randint({B, T}, V, 4);
  Tensor lc = cpu.loss(I, Tg), lg = gpu.loss(I, Tg);
  lc.backward();
  lg.backward();
  INFO("arch " << arch << (bf16 ? " bf16" : " f32") << ": loss cpu " << lc.item() << " gpu " << lg.item());
  CHECK(std::fabs(lg.item() - lc.item()) <= (bf16 ? 3e-2 : 1e-4) * std::fabs(lc.item()));
  auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  REQUIRE(pc.size() == pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    INFO("parameter " << pc[i].first);
    REQUIRE(pg[i].second.device().is_cuda());
    REQUIRE(pc[i].second.grad().defined() == pg[i].second.grad().defined());
    if (!pc[i].second.grad().defined()) continue;
    REQUIRE(pg[i].second.grad().dtype() == DType::f32);  // master gradients stay fp32
    // Differential attention's λ vectors get one scalar dλ per layer: a sum over every head,
    // position and channel of dY·(−O₂) whose terms largely cancel, so the ~1% bf16 drift of the
    // activations shows up ~10x larger in it (0.155 measured on an H100, 2026-11-27; the kernel
    // test checks dλ tightly on identical bf16 inputs). The f32 run holds it to 2e-3 like the rest.
    const bool lambda = pc[i].first.find(".lambda_") != std::string::npos;
    CHECK(rel_err(pg[i].second.grad(), pc[i].second.grad()) <= (bf16 ? (lambda ? 0.3 : 0.1) : 2e-3));
  }
}

train::RunConfig run_config(const std::string& arch, const std::string& data, const std::string& out,
                            const std::string& name, const std::string& device, const std::string& precision) {
  auto c = train::parse_config(
      "model:\n  parametrization: sp\n  n_layers: 8\n  d_model: 64\n  n_heads: 4\n  n_kv_heads: 2\n  head_dim: 16\n"
      "  window: 16\n  scan_chunk: 16\n"
      "optimizer:\n  lr: 3.0e-3\n"
      "schedule:\n  warmup_steps: 5\n  decay: cosine\n"
      "training:\n  batch_size: 8\n  seq_len: 64\n  max_steps: 50\n  threads: 2\n"
      "logging:\n  log_interval: 10\n  eval_interval: 0\n  eval_batches: 2\n"
      "checkpointing:\n  interval: 0\n",
      "gpu-test", {"model.arch=" + arch, "training.device=" + device, "training.precision=" + precision});
  c.data.path = data;
  c.out_dir = out;
  c.name = name;
  return c;
}
}  // namespace

TEST_CASE("every architecture: one step on the GPU matches the CPU (f32 and bf16)", "[gpu][model]") {
  for (const char* arch : {"transformer", "transformerls", "samba", "sambayoco", "sambay", "sambayda", "swayoco"})
    for (bool bf16 : {false, true}) check_arch(arch, bf16);
}

TEST_CASE("50 training steps on the GPU track the CPU run (Transformer++ and SambaY)", "[gpu][train]") {
  TempDir tmp;
  const std::string data = prepare_corpus(tmp);
  for (const char* arch : {"transformer", "sambay"}) {
    auto cpu = train::run_training(run_config(arch, data, tmp / "runs", std::string(arch) + "_cpu", "cpu", "fp32"), "");
    for (const char* prec : {"fp32", "bf16"}) {
      auto gpu = train::run_training(
          run_config(arch, data, tmp / "runs", std::string(arch) + "_gpu_" + prec, "cuda", prec), "");
      REQUIRE(gpu.step_losses.size() == cpu.step_losses.size());
      const double tol = std::string(prec) == "fp32" ? 1e-3 : 5e-2;
      for (size_t s = 0; s < cpu.step_losses.size(); ++s) {
        INFO(arch << " " << prec << " step " << s + 1 << ": cpu " << cpu.step_losses[s] << " gpu "
                  << gpu.step_losses[s]);
        CHECK(std::fabs(gpu.step_losses[s] - cpu.step_losses[s]) <= tol * std::fabs(cpu.step_losses[s]));
      }
      const double drop_cpu = cpu.step_losses.front() - cpu.step_losses.back();
      const double drop_gpu = gpu.step_losses.front() - gpu.step_losses.back();
      INFO(arch << " " << prec << ": loss drop cpu " << drop_cpu << " gpu " << drop_gpu);
      CHECK(drop_cpu > 1.0);
      CHECK(std::fabs(drop_gpu - drop_cpu) < 0.1);
    }
  }
}

// linear_mp on the GPU: bf16 operands, the weight gradient written in fp32 by the GEMM itself
// (cuBLASLt's bf16 x bf16 -> fp32 output), against linear of the cast (a bf16 gradient cast up):
// the same forward and dx bit for bit; dw within bf16 rounding of it (2^-8 relative max-norm).
TEST_CASE("linear_mp: fp32 weight gradient straight from the bf16 GEMM", "[gpu][model]") {
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{37, 24, 40}, {256, 96, 128}, {1, 8, 16}}) {
    INFO("M " << M << " N " << N << " K " << K);
    Tensor w = testing::randn({N, K}, 51, 0.5, DType::f32).to(Device::cuda(0)).requires_grad_();
    Tensor w2 = Tensor(w.detach().clone()).requires_grad_();
    Tensor x = testing::randn({M, K}, 52, 1.0, DType::f32).to(DType::bf16).to(Device::cuda(0)).requires_grad_();
    Tensor x2 = Tensor(x.detach().clone()).requires_grad_();
    Tensor y = ops::linear_mp(x, w, w.detach().to(DType::bf16));
    Tensor y2 = ops::linear(x2, ops::cast(w2, DType::bf16));
    const Tensor g = testing::randn({M, N}, 53, 1.0, DType::f32).to(DType::bf16).to(Device::cuda(0));
    y.backward(g);
    y2.backward(g);
    REQUIRE(w.grad().dtype() == DType::f32);
    CHECK(y.to(Device::cpu()).to(DType::f32).to_vector<float>() == y2.to(Device::cpu()).to(DType::f32).to_vector<float>());
    CHECK(x.grad().to(Device::cpu()).to(DType::f32).to_vector<float>() ==
          x2.grad().to(Device::cpu()).to(DType::f32).to_vector<float>());
    CHECK(rel_err(w.grad(), w2.grad()) <= 4e-3);
    CHECK(rel_err(w.grad(), w2.grad()) > 0.0);  // fp32 output: not the bf16-rounded gradient
  }
}

// training.weight_copies (default on for bf16): the forward reads persistent bf16 copies that the
// AdamW kernel rewrites each step instead of casting every weight. They must be exactly what the
// cast gives, so the run is the cast run: losses equal to 1e-6 relative over 12 steps (stale or
// wrong copies would differ by ~1e-3 after a step at this learning rate), SambaY+DA included.
TEST_CASE("bf16 weight copies rewritten by the AdamW step train exactly as casting every forward", "[gpu][train]") {
  TempDir tmp;
  const std::string data = prepare_corpus(tmp);
  for (const char* arch : {"transformer", "sambayda"}) {
    std::vector<double> losses[2];
    for (int copies = 0; copies < 2; ++copies) {
      auto c = run_config(arch, data, tmp / "runs", std::string(arch) + (copies ? "_copies" : "_cast"), "cuda", "bf16");
      c.training.max_steps = 12;
      c.training.weight_copies = copies == 1;
      losses[copies] = train::run_training(c, "").step_losses;
    }
    REQUIRE(losses[0].size() == 12);
    REQUIRE(losses[1].size() == 12);
    for (size_t s = 0; s < 12; ++s) {
      INFO(arch << " step " << s + 1 << ": cast " << losses[0][s] << " copies " << losses[1][s]);
      CHECK(std::fabs(losses[1][s] - losses[0][s]) <= 1e-6 * std::fabs(losses[0][s]));
    }
    // it trained: the mean of the last 3 steps below that of the first 3
    CHECK((losses[0][0] + losses[0][1] + losses[0][2]) - (losses[0][9] + losses[0][10] + losses[0][11]) > 0.15);
  }
}
#endif
