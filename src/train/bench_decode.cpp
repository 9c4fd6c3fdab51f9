// `hyscale bench decode`: prefill time, per-token decode latency and throughput as the generated
// length grows, and decode-state memory, for same-depth models of several architectures
// (random weights, as the paper's vLLM measurement; SPEC §9).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/device.h"
#include "kernels/gemm.h"
#include "nn/model.h"
#include "train/trainer.h"
#include "train/config.h"
#include "train/longgen.h"

#ifndef HYSCALE_SOURCE_DIR
#define HYSCALE_SOURCE_DIR "."
#endif

namespace hyscale::train {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<int32_t> argmax_rows(const Tensor& logits, int64_t B, int64_t V) {
  std::vector<int32_t> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const float* r = logits.data<float>() + b * V;
    out[static_cast<size_t>(b)] = static_cast<int32_t>(std::max_element(r, r + 256) - r);  // byte ids
  }
  return out;
}
}  // namespace

void bench_decode(const BenchDecodeOptions& opt) {
  HS_CHECK(!opt.archs.empty(), "bench decode: --archs is empty");
  HS_CHECK(opt.prompt >= 1 && opt.gen >= 1 && opt.batch >= 1 && opt.window >= 1,
           "bench decode: --prompt, --gen, --batch and --window must be >= 1");
  HS_CHECK(!opt.cuda_graph || Device::parse(opt.device).is_cuda(),
           "--cuda-graph needs --device cuda (a CUDA graph replays GPU work), got --device ", opt.device);
  kernels::cpu::set_num_threads(static_cast<int>(opt.threads));
  // Reported lengths: 1K, 2K, 4K, ... up to --gen, and --gen itself.
  std::vector<int64_t> lengths;
  for (int64_t L = 1024; L <= opt.gen; L *= 2) lengths.push_back(L);
  if (lengths.empty() || lengths.back() != opt.gen) lengths.push_back(opt.gen);
  nlohmann::json results = nlohmann::json::array();
  const int64_t B = opt.batch, P = opt.prompt, G = opt.gen;
  for (const auto& arch : opt.archs) {
    RunConfig cfg = parse_config("model:\n  arch: " + arch + "\n  depth: " + std::to_string(opt.depth) + "\n",
                                 "bench decode", opt.sets);
    resolve_config(cfg, 320);
    nn::Model model(cfg.model);
    model.init_weights(opt.seed);
    place_for_decoding(model, opt.device, opt.precision);
    const int64_t V = cfg.model.vocab_size;
    NoGrad ng;
    auto st = model.init_decode(B, P + G);
    st.cuda_graph = opt.cuda_graph;
    Rng rng(opt.seed + 1);
    // Prefill: one parallel forward pass per prompt.
    std::vector<int32_t> next(static_cast<size_t>(B));
    auto t0 = Clock::now();
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int32_t> prompt(static_cast<size_t>(P));
      for (auto& t : prompt) t = static_cast<int32_t>(rng.below(256));
      Tensor lg = logits_on_host(model.prefill(Tensor::from_vector<int32_t>(prompt, {P}), st, b));
      next[static_cast<size_t>(b)] = argmax_rows(lg, 1, V)[0];
    }
    const double prefill_s = since(t0);
    // Decode G tokens (greedy), timing every step.
    std::vector<double> dt(static_cast<size_t>(G));
    auto t_report = Clock::now();
    for (int64_t i = 0; i < G; ++i) {
      auto ts = Clock::now();
      Tensor lg = logits_on_host(model.step(Tensor::from_vector<int32_t>(next, {B}), st));  // waits for the GPU
      next = argmax_rows(lg, B, V);
      dt[static_cast<size_t>(i)] = since(ts);
      if (since(t_report) > 30) {
        std::fprintf(stderr, "bench decode: %s %lld / %lld tokens\n", arch.c_str(), (long long)(i + 1), (long long)G);
        t_report = Clock::now();
      }
    }
    nlohmann::json lat = nlohmann::json::array(), tps = nlohmann::json::array();
    for (int64_t L : lengths) {
      // Median of the `window` steps before L: robust to the odd descheduled step.
      const int64_t w = std::min(opt.window, L);
      std::vector<double> win(dt.begin() + (L - w), dt.begin() + L);
      std::nth_element(win.begin(), win.begin() + w / 2, win.end());
      const double sec = win[static_cast<size_t>(w / 2)];
      lat.push_back(sec * 1e3);
      tps.push_back(static_cast<double>(B) / sec);
    }
    double total = 0;
    for (double x : dt) total += x;
    results.push_back({{"arch", arch}, {"d_model", cfg.model.d_model}, {"n_layers", cfg.model.n_layers},
                       {"layers", nn::layer_summary(cfg.model)}, {"params", model.non_embedding_params()},
                       {"state_bytes_per_seq", st.bytes() / B}, {"prefill_s", prefill_s},
                       {"decode_s", total}, {"latency_ms", lat}, {"tokens_per_s", tps},
                       {"cuda_graph", st.graph_status()}});
  }
  // Table.
  const Device dev = Device::parse(opt.device);
  const std::string where = dev.is_cpu() ? std::to_string(kernels::cpu::num_threads()) + " threads"
                                         : dev.str() + " (" + cuda_device_name(dev.index) + ", " + opt.precision + ")";
  std::printf("bench decode: depth %lld, prompt %lld, generate %lld, batch %lld, %s, latency = median of "
              "the %lld steps before each length\n",
              (long long)opt.depth, (long long)P, (long long)G, (long long)B, where.c_str(), (long long)opt.window);
  std::printf("%-12s %6s %10s %12s %11s", "arch", "D", "params", "state/seq", "prefill");
  for (int64_t L : lengths) std::printf(" %9s", (std::to_string(L / 1024) + "K ms/tok").c_str());
  std::printf(" %9s %11s\n", "last/1K", "tok/s last");
  const nlohmann::json* ref = nullptr;
  for (auto& r : results)
    if (r["arch"] == "transformer") ref = &r;
  for (auto& r : results) {
    std::printf("%-12s %6lld %9.2fM %10.2fMiB %10.2fs", r["arch"].get<std::string>().c_str(),
                (long long)r["d_model"].get<int64_t>(), r["params"].get<double>() / 1e6,
                r["state_bytes_per_seq"].get<double>() / 1048576.0, r["prefill_s"].get<double>());
    for (auto& x : r["latency_ms"]) std::printf(" %9.3f", x.get<double>());
    std::printf(" %8.2fx %11.1f\n", r["latency_ms"].back().get<double>() / r["latency_ms"][0].get<double>(),
                r["tokens_per_s"].back().get<double>());
  }
  if (opt.cuda_graph)
    for (auto& r : results)
      std::printf("cuda graph, %s: %s\n", r["arch"].get<std::string>().c_str(), r["cuda_graph"].get<std::string>().c_str());
  if (ref) {
    std::printf("throughput relative to transformer at each length:\n");
    for (auto& r : results) {
      std::printf("%-12s", r["arch"].get<std::string>().c_str());
      for (size_t i = 0; i < lengths.size(); ++i)
        std::printf(" %9.2f", r["tokens_per_s"][i].get<double>() / (*ref)["tokens_per_s"][i].get<double>());
      std::printf("\n");
    }
  }
  nlohmann::json doc = {{"device", dev.is_cpu() ? std::string("cpu") : dev.str() + " " + cuda_device_name(dev.index)},
                        {"precision", opt.precision}, {"threads", kernels::cpu::num_threads()}, {"depth", opt.depth},
                        {"sets", opt.sets}, {"prompt", P}, {"gen", G}, {"batch", B}, {"window", opt.window},
                        {"lengths", lengths}, {"results", results}};
  std::string json_path = opt.json;
  if (json_path.empty() && !opt.png.empty()) json_path = opt.png + ".json";
  if (!json_path.empty()) {
    std::ofstream f(json_path, std::ios::trunc);
    f << doc.dump(2) << "\n";
    HS_CHECK(f.good(), "bench decode: cannot write '", json_path, "'");
    std::printf("wrote %s\n", json_path.c_str());
  }
  if (!opt.png.empty()) {
    const std::string cmd = std::string("python3 '") + HYSCALE_SOURCE_DIR + "/scripts/plot_decode.py' '" + json_path +
                            "' '" + opt.png + "'";
    HS_CHECK(std::system(cmd.c_str()) == 0, "bench decode: plotting failed: ", cmd);
  }
}

}  // namespace hyscale::train
