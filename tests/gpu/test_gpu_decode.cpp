// Step-wise decoding on the GPU against the CPU (label gpu; also on the emulated device of
// tests/emu): every architecture with the same weights, two prompts of different lengths
// prefilled (the longer one past the sliding window, so its ring buffer is filled in two runs and
// wraps while decoding), then steps at per-row positions (RoPE per row, per-row valid slots).
// The device's logits at the prefill and at every step against the CPU's: f32 within 1e-4
// relative (max-norm; other summation orders), bf16 compute (the weights' bf16 copies made
// once by place_for_decoding) within 6e-2 of the f32 CPU (8 layers of bf16 activations).
// The same steps replayed as a CUDA graph (DecodeState::cuda_graph) give the eager steps' logits
// bit for bit, including after a state tensor is reallocated (the graph is captured again), and
// capture_graph itself: replays read current buffer contents, a capture that cannot be made fails
// with a message and leaves the thread working normally.
// Also: the decode state lives on the device (fp32 SSM states), and bad --device/--precision
// give clear errors.
#ifdef HYSCALE_WITH_CUDA
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "core/storage.h"
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
  nn::Model cpu(mc), gpu(mc), gpu_graph(mc);
  cpu.init_weights(7);
  gpu.init_weights(7);
  gpu_graph.init_weights(7);
  train::place_for_decoding(gpu, "cuda:0", bf16 ? "bf16" : "fp32");
  train::place_for_decoding(gpu_graph, "cuda:0", bf16 ? "bf16" : "fp32");
  const double tol = bf16 ? 6e-2 : 1e-4;
  NoGrad ng;
  const std::vector<std::vector<int32_t>> prompts = {{5, 9, 1, 33, 60, 2, 17, 8, 44}, {12, 3, 50}};
  const int64_t B = 2, steps = 8;
  auto sc = cpu.init_decode(B, 9 + steps), sg = gpu.init_decode(B, 9 + steps), sr = gpu_graph.init_decode(B, 9 + steps);
  sr.cuda_graph = true;  // steps replayed as a CUDA graph: the same kernels, so the same bits as eager
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
    (void)gpu_graph.prefill(ids, sr, b);
    CHECK(lg.device().is_cuda());
    INFO("prefill of row " << b);
    CHECK(max_rel(lg, lc) < tol);
    auto h = lc.to_vector<float>();
    next[static_cast<size_t>(b)] = static_cast<int32_t>(std::max_element(h.begin(), h.end()) - h.begin());
  }
  for (int64_t i = 0; i < steps; ++i) {
    Tensor ids = Tensor::from_vector<int32_t>(next, {B});
    if (i == 5) {  // a state tensor reallocated between steps (same contents): the next step captures again
      for (auto& l : sr.layers) {
        if (l.conv.defined()) {
          l.conv = l.conv.clone();
          break;
        }
        if (l.k.defined()) {
          l.k = l.k.clone();
          break;
        }
      }
    }
    Tensor lc = cpu.step(ids, sc), lg = gpu.step(ids, sg), lr = gpu_graph.step(ids, sr);
    INFO("step " << i << " (positions " << sc.pos[0] - 1 << ", " << sc.pos[1] - 1 << "), graph " << sr.graph_status());
    CHECK(max_rel(lg, lc) < tol);
    CHECK(train::logits_on_host(lr).to_vector<float>() == train::logits_on_host(lg).to_vector<float>());
    auto h = lc.to_vector<float>();  // both continue with the CPU's greedy tokens
    for (int64_t b = 0; b < B; ++b)
      next[static_cast<size_t>(b)] =
          static_cast<int32_t>(std::max_element(h.begin() + b * mc.vocab_size, h.begin() + (b + 1) * mc.vocab_size) -
                               (h.begin() + b * mc.vocab_size));
  }
  // step 0 eager (warm-up), 1 captured and run, 2-4 replays, 5 captured again (the moved state) and run, 6-7
  CHECK(sr.graph_status() == "captured (7 replays)");
  CHECK(sg.graph_status() == "off");
}
}  // namespace

TEST_CASE("decoding on the GPU matches the CPU, every architecture, f32 and bf16", "[gpu][decode]") {
  // bf16 with the attention caches split over 3 CTAs each (flash-decoding; the automatic count
  // is 1 for these short caches), f32 with the automatic count
  struct Splits {
    explicit Splits(bool on) {
      if (on) setenv("HYSCALE_DECODE_SPLITS", "3", 1);
    }
    ~Splits() { unsetenv("HYSCALE_DECODE_SPLITS"); }
  };
  for (const std::string arch : {"transformer", "transformerls", "samba", "sambayoco", "sambay", "sambayda", "swayoco"})
    for (bool bf16 : {false, true}) {
      Splits s(bf16);
      check_decode(arch, bf16);
    }
}

TEST_CASE("CUDA graph capture: replays read their buffers' current contents, a host read fails the capture cleanly",
          "[gpu][decode]") {
  NoGrad ng;
  const Device dev = Device::parse("cuda:0");
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5}, {5}).to(dev), y;
  auto g = cudart::capture_graph(0, [&] { y = ops::add(ops::scale(x, 2.0), x); });  // y = 3 x
  CHECK(y.device() == dev);
  for (float base : {10.0f, -1.0f}) {
    x.copy_from(Tensor::from_vector<float>({base, base + 1, base + 2, base + 3, base + 4}, {5}));
    cudart::launch_graph(*g);
    const auto h = y.to(Device::cpu()).to_vector<float>();
    for (int i = 0; i < 5; ++i) CHECK(h[static_cast<size_t>(i)] == 3 * (base + float(i)));
  }
  // A host copy cannot be captured: the capture fails with a message, nothing stays captured, and
  // the thread queues work normally again.
  CHECK_THROWS_WITH(cudart::capture_graph(0, [&] { (void)ops::add(x, x).to(Device::cpu()); }),
                    Catch::Contains("captur"));
  const auto z = ops::add(x, x).to(Device::cpu()).to_vector<float>();
  CHECK(z[0] == 2 * -1.0f);
  // and a failure inside the body is the body's own error
  CHECK_THROWS_WITH(cudart::capture_graph(0, [&] { HS_FAIL("from the body"); }), Catch::Contains("from the body"));
  CHECK(ops::add(x, x).to(Device::cpu()).to_vector<float>()[1] == 0.0f);
}

TEST_CASE("decoding: bad --device and --precision are clear errors", "[gpu][decode]") {
  nn::Model m(testing::small_model("sambay"));
  CHECK_THROWS_WITH(train::place_for_decoding(m, "tpu", "fp32"), Catch::Contains("--device"));
  CHECK_THROWS_WITH(train::place_for_decoding(m, "cuda:0", "fp16"), Catch::Contains("expected fp32 or bf16"));
  CHECK_THROWS_WITH(train::place_for_decoding(m, "cpu", "bf16"), Catch::Contains("needs --device cuda"));
  CHECK_THROWS_WITH(train::place_for_decoding(m, "cuda:99", "fp32"), Catch::Contains("CUDA device(s) visible"));
}
#endif
