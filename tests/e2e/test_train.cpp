// End-to-end: training runs, bit-exact resume, checkpoints, and the CLI's
// behaviour on bad input (clear message, non-zero exit, no crash).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "core/device.h"
#include "data/h5.h"
#include "e2e_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

using namespace hyscale;
using namespace hyscale::testing;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

static train::RunConfig tiny_config(const std::string& data, const std::string& out, const std::string& name) {
  auto c = train::parse_config(
      "model:\n  parametrization: sp\n  n_layers: 2\n  d_model: 48\n  n_heads: 4\n  n_kv_heads: 2\n  head_dim: 12\n"
      "optimizer:\n  lr: 1.0e-2\n  vector_weight_decay: 0.0\n"
      "schedule:\n  warmup_steps: 5\n  decay: cosine\n"
      "training:\n  batch_size: 8\n  seq_len: 48\n  max_steps: 30\n  threads: 1\n"
      "logging:\n  log_interval: 5\n  eval_interval: 10\n  eval_batches: 4\n",
      "tiny");
  c.data.path = data;
  c.out_dir = out;
  c.name = name;
  return c;
}

TEST_CASE("a 30-step run: loss falls, val loss logged, run directory complete", "[e2e]") {
  TempDir tmp;
  auto data = prepare_corpus(tmp);
  auto cfg = tiny_config(data, (tmp / "runs"), "t30");
  auto res = train::run_training(cfg, "");
  REQUIRE(res.step_losses.size() == 30);
  double first = (res.step_losses[0] + res.step_losses[1] + res.step_losses[2]) / 3;
  double last = (res.step_losses[27] + res.step_losses[28] + res.step_losses[29]) / 3;
  INFO("first " << first << " last " << last);
  REQUIRE(last < first - 1.0);  // from ~ln(320)=5.8 to well below
  REQUIRE(res.final_val_loss < first);
  const std::string rd = (tmp / "runs/t30");
  REQUIRE(fs::exists(rd + "/config.resolved.yaml"));
  REQUIRE(fs::exists(rd + "/log.txt"));
  REQUIRE(fs::exists(rd + "/checkpoints/latest"));
  std::ifstream m(rd + "/metrics.jsonl");
  std::string line;
  int train_lines = 0, eval_lines = 0;
  while (std::getline(m, line)) {
    if (line.find("\"type\":\"train\"") != std::string::npos) ++train_lines;
    if (line.find("\"val_loss\"") != std::string::npos) ++eval_lines;
    REQUIRE(line.find("\"step\"") != std::string::npos);
  }
  REQUIRE(train_lines == 6);
  REQUIRE(eval_lines == 3);
  // The resolved config is complete: it reloads and names every derived value.
  auto back = train::load_config(rd + "/config.resolved.yaml");
  REQUIRE(back.model.vocab_size == 320);
  REQUIRE(back.model.mlp_hidden == 4 * 48);
}

TEST_CASE("every architecture trains: 30 steps, loss falls", "[e2e][arch]") {
  TempDir tmp;
  auto data = prepare_corpus(tmp);
  for (std::string arch : {"transformerls", "samba", "sambayoco", "sambay", "sambayda", "swayoco"}) {
    INFO("arch " << arch);
    auto cfg = tiny_config(data, (tmp / "runs"), arch);
    cfg.model.arch = arch;
    cfg.model.n_layers = 8;
    cfg.model.window = 16;
    cfg.logging.eval_interval = 0;
    auto res = train::run_training(cfg, "");
    const double first = (res.step_losses[0] + res.step_losses[1] + res.step_losses[2]) / 3;
    const double last = (res.step_losses[27] + res.step_losses[28] + res.step_losses[29]) / 3;
    INFO("first " << first << " last " << last);
    REQUIRE(last < first - 1.0);
    REQUIRE(std::isfinite(res.final_val_loss));
  }
}

TEST_CASE("resume reproduces the uninterrupted run bit for bit", "[e2e][resume]") {
  TempDir tmp;
  auto data = prepare_corpus(tmp);
  auto a = tiny_config(data, (tmp / "runs"), "straight");
  a.training.max_steps = 20;
  a.checkpointing.interval = 10;
  a.training.grad_accum = 2;
  auto ra = train::run_training(a, "");

  auto b = a;
  b.name = "interrupted";
  auto rb1 = train::run_training(b, "");
  // Simulate a crash after step 10: the step-20 checkpoint never made it to disk.
  const std::string ck = (tmp / "runs/interrupted/checkpoints");
  fs::remove(ck + "/step_0000020.h5");
  REQUIRE(train::find_latest_checkpoint((tmp / "runs/interrupted")).value() == ck + "/step_0000010.h5");
  auto rb2 = train::run_training(b, "auto");
  REQUIRE(rb2.step_losses.size() == 10);
  for (int i = 0; i < 10; ++i) {
    INFO("step " << 11 + i);
    REQUIRE(rb2.step_losses[i] == ra.step_losses[10 + i]);  // exact equality
  }
  REQUIRE(rb2.final_val_loss == ra.final_val_loss);
  // A fresh run refuses to overwrite a run directory with checkpoints.
  REQUIRE_THROWS_WITH(train::run_training(b, ""), Contains("--resume auto"));
}

TEST_CASE("resuming from an older checkpoint sets later ones and their metrics aside", "[e2e][checkpoint]") {
  TempDir tmp;
  auto data = prepare_corpus(tmp);
  auto a = tiny_config(data, (tmp / "runs"), "older");
  a.training.max_steps = 8;
  a.schedule.warmup_steps = 0;
  a.checkpointing.interval = 2;
  a.checkpointing.keep_last = 10;
  a.logging.log_interval = 1;
  auto first = train::run_training(a, "");
  const std::string ck = (tmp / "runs/older/checkpoints");
  auto again = train::run_training(a, ck + "/step_0000004.h5");
  REQUIRE(again.step_losses.size() == 4);
  for (int i = 0; i < 4; ++i) REQUIRE(again.step_losses[i] == first.step_losses[4 + i]);
  // The abandoned step 6 and 8 files were kept aside, the new ones written, latest is step 8.
  REQUIRE(fs::exists(ck + "/step_0000006.h5.stale"));
  REQUIRE(fs::exists(ck + "/step_0000008.h5.stale"));
  REQUIRE(fs::exists(ck + "/step_0000008.h5"));
  REQUIRE(train::find_latest_checkpoint((tmp / "runs/older")).value() == ck + "/step_0000008.h5");
  // metrics.jsonl holds each step once.
  std::ifstream m((tmp / "runs/older/metrics.jsonl"));
  std::string line;
  std::vector<int> steps;
  while (std::getline(m, line))
    if (line.find("\"type\":\"train\"") != std::string::npos) {
      auto j = line.find("\"step\":");
      steps.push_back(std::stoi(line.substr(j + 7)));
    }
  REQUIRE(steps == std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8});
  // A checkpoint of a different model is refused by name.
  auto other = a;
  other.name = "other";
  other.model.rope_base = 500;
  REQUIRE_THROWS_WITH(train::run_training(other, ck + "/step_0000008.h5"), Contains("different model config"));
  other.model.rope_base = a.model.rope_base;
  other.model.tie_embeddings = true;
  REQUIRE_THROWS_WITH(train::run_training(other, ck + "/step_0000008.h5"), Contains("model"));
}

TEST_CASE("an interrupted checkpoint write leaves the previous one usable", "[e2e][checkpoint]") {
  TempDir tmp;
  auto data = prepare_corpus(tmp);
  auto a = tiny_config(data, (tmp / "runs"), "atomic");
  a.training.max_steps = 4;
  a.schedule.warmup_steps = 0;
  train::run_training(a, "");
  const std::string ck = (tmp / "runs/atomic/checkpoints");
  // A crash mid-write leaves a .tmp file and possibly a half-written step file.
  { std::ofstream(ck + "/step_0000008.h5.tmp") << "partial"; }
  { std::ofstream(ck + "/step_0000009.h5") << "garbage, not HDF5"; }
  REQUIRE(train::find_latest_checkpoint((tmp / "runs/atomic")).value() == ck + "/step_0000004.h5");
}

TEST_CASE("CLI: bad config, bad data and bad checkpoints give clear errors and exit codes", "[e2e][errors]") {
  TempDir tmp;
  auto data = prepare_corpus(tmp);
  const std::string cfg = (tmp / "c.yaml");
  {
    std::ofstream(cfg) << "name: cli\nout_dir: " << (tmp / "runs") << "\ndata:\n  path: " << data
                       << "\nmodel:\n  n_layers: 1\n  d_model: 32\n  n_heads: 2\n"
                          "training:\n  batch_size: 2\n  seq_len: 16\n  max_steps: 2\n  threads: 1\n";
  }
  SECTION("unknown key, wrong type, bad value") {
    auto r = run_cli("train " + cfg + " --set model.n_layer=2");
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("model.n_layer"));
    r = run_cli("train " + cfg + " --set training.seq_len=long");
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("training.seq_len"));
    r = run_cli("train " + cfg + " --set schedule.decay=step");
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("schedule.decay") && Contains("allowed"));
  }
  SECTION("bad device and precision") {
    auto r = run_cli("train " + cfg + " --set training.device=tpu");
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("training.device") && Contains("tpu"));
    r = run_cli("train " + cfg + " --set training.precision=bf16");  // bf16 needs a GPU
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("training.precision") && Contains("cuda"));
    if (!cuda_available()) {  // this machine: a clear error, not a crash
      r = run_cli("train " + cfg + " --set training.device=cuda:0");
      REQUIRE(r.exit_code == 1);
      REQUIRE_THAT(r.output, Contains("cuda:0") && Contains("no CUDA device"));
    }
    r = run_cli("train " + cfg + " --set training.precision=fp16");
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("training.precision") && Contains("allowed"));
  }
  SECTION("truncated and corrupted shards") {
    const std::string shard = data + "/train_00000.h5";
    const auto size = fs::file_size(shard);
    fs::resize_file(shard, size / 2);
    auto r = run_cli("train " + cfg);
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("train_00000.h5"));
    { std::ofstream(shard, std::ios::trunc) << std::string(4096, 'x'); }
    r = run_cli("train " + cfg);
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("train_00000.h5"));
  }
  SECTION("checkpoint with a missing tensor") {
    auto r = run_cli("train " + cfg);
    REQUIRE(r.exit_code == 0);
    const std::string good = (tmp / "runs/cli/checkpoints/step_0000002.h5");
    REQUIRE(fs::exists(good));
    // Copy every dataset and attribute except one parameter.
    const std::string bad = (tmp / "bad.h5");
    {
      auto in = data::H5File::open_read(good);
      auto out = data::H5File::create(bad);
      for (auto& name : data::list_datasets(in, "/")) {
        if (name == "params/blocks.0.mlp.w1.gate") continue;  // one part of a fused projection
        std::vector<uint64_t> dims;
        if (name == "rng_state") {
          auto v = data::read_array<uint64_t>(in, name, &dims);
          data::write_array<uint64_t>(out, name, v.data(), dims);
        } else {
          auto v = data::read_array<float>(in, name, &dims);
          data::write_array<float>(out, name, v.data(), dims);
        }
      }
      for (const char* a : {"format_version", "step", "tokens_seen", "optimizer_step", "sampler_seed",
                            "sampler_epoch", "sampler_cursor", "complete"})
        data::set_attr_int(out, a, data::get_attr_int(in, a));
      data::set_attr_string(out, "config", data::get_attr_string(in, "config"));
      out.close();
    }
    r = run_cli("eval --ckpt " + bad);
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("missing tensor") && Contains("blocks.0.mlp.w1.gate"));
    r = run_cli("train " + cfg + " --set name=cli2 --resume " + bad);
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("blocks.0.mlp.w1"));
    r = run_cli("generate --ckpt " + (tmp / "nope.h5") + " --prompt hi");
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("nope.h5"));
    r = run_cli("generate --ckpt " + good + " --prompt 'the cat' --max-new 20 --temperature 0");
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.output, Contains("the cat"));
    // A batch of prompts of different lengths: each prints its own continuation.
    r = run_cli("generate --ckpt " + good + " --prompt 'the cat' --prompt 'a' --max-new 10 --temperature 0");
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.output, Contains("--- prompt 0") && Contains("--- prompt 1"));
    // Phonebook eval: runs end to end (a tiny model scores ~0), writes JSON.
    const std::string pbj = (tmp / "pb.json");
    r = run_cli("eval phonebook --ckpt " + good + " --sizes 3,5 --prompts 4 --batch 2 --json " + pbj);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.output, Contains("entries") && Contains("accuracy"));
    REQUIRE(fs::exists(pbj));
    r = run_cli("eval phonebook --ckpt " + good + " --sizes 3 --prompts 6");
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains("multiple of 4"));
  }
}

TEST_CASE("CLI: bench decode prints the table and writes JSON", "[e2e][decode]") {
  const std::string json = (fs::temp_directory_path() / "hyscale_bench_decode.json").string();
  auto r = run_cli("bench decode --archs transformer,sambay --depth 8 --prompt 16 --gen 64 --window 8 "
                   "--set model.ar=8 --set model.head_dim=8 --threads 1 --json " + json);
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.output, Contains("transformer") && Contains("sambay") && Contains("ms/tok"));
  std::ifstream in(json);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE_THAT(text, Contains("\"state_bytes_per_seq\"") && Contains("\"latency_ms\""));
  fs::remove(json);
  r = run_cli("bench decode --archs nope --depth 8 --gen 8");
  REQUIRE(r.exit_code == 1);
  REQUIRE_THAT(r.output, Contains("model.arch"));
  r = run_cli("bench decode --archs transformer --depth 8 --gen 8 --cuda-graph");  // (default --device cpu)
  REQUIRE(r.exit_code == 1);
  REQUIRE_THAT(r.output, Contains("--cuda-graph needs --device cuda"));
}
