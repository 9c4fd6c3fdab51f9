// Step-wise decoding on the GPU against the CPU (label gpu; also on the emulated device of
// tests/emu): every architecture with the same weights, two prompts of different lengths
// prefilled (the longer one past the sliding window, so its ring buffer is filled in two runs and
// wraps while decoding), then steps at per-row positions (RoPE per row, per-row valid slots).
// The device's logits at the prefill and at every step against the CPU's: f32 within 1e-4
// relative (max-norm; other summation orders), bf16 compute (the weights' bf16 copies made
// once by place_for_decoding) within 6e-2 of the f32 CPU (8 layers of bf16 activations).
// Also: the decode state lives on the device (fp32 SSM states), and bad --device/--precision
// give clear errors.
#ifdef HYSCALE_WITH_CUDA
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/random.h"
#include "small_model.h"
#include "train/trainer.h"

using namespace hyscale;

namespace {
double max_rel(const Tensor& got, const Tensor& want) {
  auto g = train::logits_on_host(got).to_vector<float>(), w = train::logits_on_host(want).to_vector<float>();
  REQUIRE(g.size() == w.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) return INFINITY;
    num = std::max(num, std::fabs(double(g[i]) - w[i]));
    den = std::max(den, std::fabs(double(w[i])));
  }
  return num / std::max(den, 1e-30);
}

void check_decode(const std::string& arch, bool bf16) {
  INFO("arch " << arch << (bf16 ? " bf16" : " f32"));
  const nn::ModelConfig mc = testing::small_model(arch);
  nn::Model cpu(mc), gpu(mc);
  cpu.init_weights(7);
  gpu.init_weights(7);
  train::place_for_decoding(gpu, "cuda:0", bf16 ? "bf16" : "fp32");
  const double tol = bf16 ? 6e-2 : 1e-4;
  NoGrad ng;
  const std::vector<std::vector<int32_t>> prompts = {{5, 9, 1, 33, 60, 2, 17, 8, 44}, {12, 3, 50}};
  const int64_t B = 2, steps = 8;
  auto sc = cpu.init_decode(B, 9 + steps), sg = gpu.init_decode(B, 9 + steps);
  for (const auto& l : sg.layers) {
    if (l.k.defined()) CHECK(l.k.device().is_cuda());
    if (l.ssm.defined()) {
      CHECK(l.ssm.device().is_cuda());
      CHECK(l.ssm.dtype() == DType::f32);
      CHECK(l.conv.dtype() == (bf16 ? DType::bf16 : DType::f32));
    }
  }
  std::vector<int32_t> next(B);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<size_t>(b)];
    Tensor ids = Tensor::from_vector<int32_t>(p, {static_cast<int64_t>(p.size())});
    Tensor lc = cpu.prefill(ids, sc, b), lg = gpu.prefill(ids, sg, b);
    CHECK(lg.device().is_cuda());
    INFO("prefill of row " << b);
    CHECK(max_rel(lg, lc) < tol);
    auto h = lc.to_vector<float>();
    next[static_cast<size_t>(b)] = static_cast<int32_t>(std::max_element(h.begin(), h.end()) - h.begin());
  }
  for (int64_t i = 0; i < steps; ++i) {
    Tensor ids = Tensor::from_vector<int32_t>(next, {B});
    Tensor lc = cpu.step(ids, sc), lg = gpu.step(ids, sg);
    INFO("step " << i << " (positions " << sc.pos[0] - 1 << ", " << sc.pos[1] - 1 << ")");
    CHECK(max_rel(lg, lc) < tol);
    auto h = lc.to_vector<float>();  // both continue with the CPU's greedy tokens
    for (int64_t b = 0; b < B; ++b)
      next[static_cast<size_t>(b)] =
          static_cast<int32_t>(std::max_element(h.begin() + b * mc.vocab_size, h.begin() + (b + 1) * mc.vocab_size) -
                               (h.begin() + b * mc.vocab_size));
  }
}
}  // namespace

TEST_CASE("decoding on the GPU matches the CPU, every architecture, f32 and bf16", "[gpu][decode]") {
  for (const std::string arch : {"transformer", "transformerls", "samba", "sambayoco", "sambay", "sambayda", "swayoco"})
    for (bool bf16 : {false, true}) check_decode(arch, bf16);
}

TEST_CASE("decoding: bad --device and --precision are clear errors", "[gpu][decode]") {
  nn::Model m(testing::small_model("sambay"));
  CHECK_THROWS_WITH(train::place_for_decoding(m, "tpu", "fp32"), Catch::Contains("--device"));
  CHECK_THROWS_WITH(train::place_for_decoding(m, "cuda:0", "fp16"), Catch::Contains("expected fp32 or bf16"));
  CHECK_THROWS_WITH(train::place_for_decoding(m, "cpu", "bf16"), Catch::Contains("needs --device cuda"));
  CHECK_THROWS_WITH(train::place_for_decoding(m, "cuda:99", "fp32"), Catch::Contains("CUDA device(s) visible"));
}
#endif
