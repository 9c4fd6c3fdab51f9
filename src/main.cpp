// hyscale CLI: parses arguments and calls into src/train and src/data.
//   hyscale train CONFIG [--set k=v ...] [--resume auto|PATH]
//   hyscale prepare --input PATH... --out DIR [--format text|jsonl] [--doc-separator LINE] [--val-fraction F]
//   hyscale generate --ckpt PATH --prompt TEXT [--prompt TEXT ...] [--max-new N] [--temperature T] [--top-k K] [--top-p P] [--seed S]
//                   [--device cpu|cuda[:N]] [--precision fp32|bf16]
//   hyscale info CONFIG [--set ...]
//   hyscale coord-check CONFIG --widths 64,128,256 [--steps N] [--depth D | --joint] [--set ...]
//   hyscale bench train CONFIG [--set ...] [--steps N] [--warmup W] [--profile]
//   hyscale bench layers CONFIG [--set ...] [--lengths 512,1024,...] [--batch B] [--reps R]
//   hyscale bench comm [--sizes 1K,...,64M] [--iters N] [--backend mpi|nccl]
//   hyscale baselines --data DIR
//   hyscale eval --ckpt PATH [--data DIR] [--device cpu|cuda[:N]] [--precision fp32|bf16]
//   hyscale eval phonebook --ckpt PATH [--sizes 10,20,40] [--prompts 32] [--batch 8] [--seed S] [--json FILE]
//                          [--device cpu|cuda[:N]] [--precision fp32|bf16]
//   hyscale bench kernels [--reps N] [--json FILE] [--smoke]
//   hyscale bench decode [--archs transformer,sambay] [--depth 8] [--prompt 2048] [--gen 32768] [--batch 1]
//                        [--set model.ar=32 ...] [--json FILE] [--png FILE] [--device cpu|cuda[:N]]
//                        [--precision fp32|bf16]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "core/error.h"
#include "data/baselines.h"
#include "data/dataset.h"
#include "data/prepare.h"
#include "kernels/gemm.h"
#include "parallel/bench_comm.h"
#include "parallel/dist.h"
#include "train/config.h"
#include "train/longgen.h"
#include "train/trainer.h"

using namespace hyscale;

int main(int argc, char** argv) {
  kernels::cpu::fix_blas_core_detection(argv);
  CLI::App app{"hyscale: pretraining and scaling studies of hybrid language models (SambaY family)"};
  app.require_subcommand(1);

  std::string config, resume, ckpt, data_dir;
  std::vector<std::string> sets;

  auto* train = app.add_subcommand("train", "train a model from a YAML config");
  train->add_option("config", config, "config YAML")->required();
  train->add_option("--set", sets, "override a key: section.key=value (repeatable)");
  train->add_option("--resume", resume, "auto (newest complete checkpoint) or a checkpoint path");

  data::PrepareOptions prep;
  auto* prepare = app.add_subcommand("prepare", "tokenize text/JSONL into HDF5 shards");
  prepare->add_option("--input", prep.inputs, "input files or directories")->required();
  prepare->add_option("--out", prep.out_dir, "output directory")->required();
  prepare->add_option("--format", prep.format, "text | jsonl")->check(CLI::IsMember({"text", "jsonl"}));
  prepare->add_option("--doc-separator", prep.doc_separator, "line that separates documents (text); default: one document per file");
  prepare->add_option("--val-fraction", prep.val_fraction, "fraction of documents held out for validation");
  prepare->add_option("--tokenizer", prep.tokenizer, "tokenizer (byte)");
  prepare->add_option("--seed", prep.seed, "seed of the document shuffle");
  prepare->add_option("--shard-tokens", prep.shard_tokens, "tokens per shard");

  train::GenerateOptions gen;
  auto* generate = app.add_subcommand("generate", "sample text from a checkpoint");
  generate->add_option("--ckpt", gen.ckpt, "checkpoint (.h5)")->required();
  generate->add_option("--prompt", gen.prompts, "prompt text (repeat for a batch of prompts)");
  generate->add_option("--max-new", gen.max_new, "maximum new tokens");
  generate->add_option("--temperature", gen.sampling.temperature, "sampling temperature (0 = greedy)");
  generate->add_option("--top-k", gen.sampling.top_k, "keep the k most likely tokens (0 = off)");
  generate->add_option("--top-p", gen.sampling.top_p, "nucleus sampling mass (1 = off)");
  generate->add_option("--seed", gen.sampling.seed, "sampling seed (prompt b uses seed + b)");
  generate->add_option("--threads", gen.threads, "CPU threads (0 = all)");
  generate->add_option("--device", gen.device, "cpu, cuda or cuda:N");
  generate->add_option("--precision", gen.precision, "fp32, or bf16 (on a GPU)");
  generate->add_flag("--cuda-graph", gen.cuda_graph, "on a GPU: replay each decode step as a CUDA graph");

  auto* info = app.add_subcommand("info", "print layers, parameter counts and FLOPs per token");
  info->add_option("config", config, "config YAML")->required();
  info->add_option("--set", sets, "override a key");

  auto* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  int64_t bench_steps = 10, bench_warmup = 2;
  auto* bench_train = bench->add_subcommand("train", "time training steps on synthetic tokens");
  bench_train->add_option("config", config, "config YAML")->required();
  bench_train->add_option("--set", sets, "override a key");
  bench_train->add_option("--steps", bench_steps, "timed steps");
  bench_train->add_option("--warmup", bench_warmup, "untimed warm-up steps");
  bool bench_profile = false;
  bench_train->add_flag("--profile", bench_profile,
                        "then run as many steps again, timing each autograd op (GPU events or wall clock), and print "
                        "where the step's time goes");

  std::vector<int64_t> bench_lengths{512, 1024, 2048, 4096};
  int64_t bench_batch = 1, bench_reps = 3;
  auto* bench_layers = bench->add_subcommand("layers", "forward+backward time per layer type vs sequence length");
  bench_layers->add_option("config", config, "config YAML (widths)")->required();
  bench_layers->add_option("--set", sets, "override a key");
  bench_layers->add_option("--lengths", bench_lengths, "sequence lengths")->delimiter(',');
  bench_layers->add_option("--batch", bench_batch, "batch size");
  bench_layers->add_option("--reps", bench_reps, "timed repetitions (median)");

  parallel::BenchCommOptions comm_opt;
  std::vector<std::string> comm_sizes;
  auto* bench_comm = bench->add_subcommand("comm", "all-reduce / reduce-scatter / all-gather time and bandwidth");
  bench_comm->add_option("--sizes", comm_sizes, "message sizes in bytes (1K,...,64M; K/M/G = 1024^k)")->delimiter(',');
  bench_comm->add_option("--iters", comm_opt.iters, "timed iterations per op and size");
  bench_comm->add_option("--backend", comm_opt.backend, "mpi (host memory) | nccl (device memory)")
      ->check(CLI::IsMember({"mpi", "nccl"}));

  int64_t kernel_reps = 20;
  auto* bench_kernels = bench->add_subcommand("kernels", "CUDA kernels: GB/s or TFLOP/s against measured ceilings");
  bench_kernels->add_option("--reps", kernel_reps, "timed repetitions per kernel")->check(CLI::PositiveNumber);
  std::string kernel_json;
  bench_kernels->add_option("--json", kernel_json, "also write the rows as JSON (for scripts/bench_compare.py)");
  bool kernel_smoke = false;
  bench_kernels->add_flag("--smoke", kernel_smoke, "every row at small shapes: checks that it runs, measures nothing");

  train::BenchDecodeOptions dec;
  auto* bench_decode = bench->add_subcommand("decode", "prefill, per-token decode latency and throughput vs generated "
                                                        "length, decode-state memory, per architecture");
  bench_decode->add_option("--archs", dec.archs, "architectures (same depth each)")->delimiter(',');
  bench_decode->add_option("--depth", dec.depth, "model.depth of every model");
  bench_decode->add_option("--prompt", dec.prompt, "prompt tokens (prefilled in one pass)");
  bench_decode->add_option("--gen", dec.gen, "generated tokens");
  bench_decode->add_option("--batch", dec.batch, "sequences decoded together");
  bench_decode->add_option("--window", dec.window, "decode steps averaged per reported length");
  bench_decode->add_option("--set", dec.sets, "config override for every model (e.g. model.ar=32)");
  bench_decode->add_option("--seed", dec.seed, "weights and prompt seed");
  bench_decode->add_option("--json", dec.json, "write the results as JSON");
  bench_decode->add_option("--png", dec.png, "plot throughput vs length (scripts/plot_decode.py)");
  bench_decode->add_option("--threads", dec.threads, "CPU threads (0 = all)");
  bench_decode->add_option("--device", dec.device, "cpu, cuda or cuda:N");
  bench_decode->add_option("--precision", dec.precision, "fp32, or bf16 (on a GPU)");
  bench_decode->add_flag("--cuda-graph", dec.cuda_graph, "on a GPU: replay each decode step as a CUDA graph");

  auto* baselines = app.add_subcommand("baselines", "order-0 entropy and n-gram baselines of a prepared dataset");
  baselines->add_option("--data", data_dir, "prepared dataset directory")->required();
  bool baselines_json = false;
  baselines->add_flag("--json", baselines_json, "print JSON");

  train::CoordCheckOptions cc;
  auto* coord = app.add_subcommand("coord-check", "activation RMS across widths after a few steps (muP check)");
  coord->add_option("config", config, "config YAML")->required();
  coord->add_option("--set", sets, "override a key");
  coord->add_option("--widths", cc.widths, "model widths D (each a multiple of model.ar)")->delimiter(',')->required();
  coord->add_option("--steps", cc.steps, "training steps per width");
  coord->add_option("--depth", cc.depth, "fixed depth for every width (default model.depth, else base.d0)");
  coord->add_flag("--joint", cc.joint, "move depth with width, d = D / ar, as the paper's configs do");

  auto* keys = app.add_subcommand("config-keys", "list every config key with its type and meaning");

  auto* eval = app.add_subcommand("eval", "validation loss of a checkpoint (or: eval phonebook)");
  eval->add_option("--ckpt", ckpt, "checkpoint (.h5)");
  train::PhonebookOptions pb;
  auto* phonebook = eval->add_subcommand("phonebook", "phonebook retrieval accuracy (SPEC 9) per phonebook size");
  phonebook->add_option("--ckpt", pb.ckpt, "checkpoint (.h5)")->required();
  phonebook->add_option("--sizes", pb.sizes, "entries per phonebook")->delimiter(',');
  phonebook->add_option("--prompts", pb.prompts, "prompts per size (a multiple of 4: 4 measurement groups)");
  phonebook->add_option("--batch", pb.batch, "prompts decoded together");
  phonebook->add_option("--max-new", pb.max_new, "greedy tokens generated per prompt");
  phonebook->add_option("--seed", pb.seed, "phonebook seed");
  phonebook->add_option("--json", pb.json, "also write the results as JSON");
  phonebook->add_option("--threads", pb.threads, "CPU threads (0 = all)");
  phonebook->add_option("--device", pb.device, "cpu, cuda or cuda:N");
  phonebook->add_option("--precision", pb.precision, "fp32, or bf16 (on a GPU)");
  phonebook->add_flag("--cuda-graph", pb.cuda_graph, "on a GPU: replay each decode step as a CUDA graph");
  eval->add_option("--data", data_dir, "dataset directory (default: the checkpoint's data.path)");
  std::string eval_device = "cpu", eval_precision = "fp32";
  eval->add_option("--device", eval_device, "cpu, cuda or cuda:N");
  eval->add_option("--precision", eval_precision, "fp32, or bf16 (on a GPU)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  int rc = 0;
  try {
    parallel::init(&argc, &argv);
    if (*train) {
      auto cfg = train::load_config(config, sets);
      train::run_training(cfg, resume);
    } else if (*prepare) {
      auto st = data::prepare_dataset(prep);
      std::printf("prepared %s: %lld files (%lld skipped), train %lld docs / %lld tokens in %d shard(s), "
                  "val %lld docs / %lld tokens in %d shard(s)\n",
                  prep.out_dir.c_str(), (long long)st.n_files, (long long)st.n_skipped_files,
                  (long long)st.n_docs_train, (long long)st.n_tokens_train, st.n_shards_train,
                  (long long)st.n_docs_val, (long long)st.n_tokens_val, st.n_shards_val);
    } else if (*generate) {
      auto texts = train::generate(gen);
      for (size_t i = 0; i < texts.size(); ++i) {
        if (texts.size() > 1) std::cout << "--- prompt " << i << "\n";
        std::cout << (i < gen.prompts.size() ? gen.prompts[i] : "") << texts[i] << std::endl;
      }
    } else if (*info) {
      auto cfg = train::load_config(config, sets);
      int64_t vocab = 0;
      if (cfg.model.vocab_size == 0) {
        try {
          vocab = data::TokenDataset::load(cfg.data.path, "val").vocab_size;
        } catch (const Error&) {
          vocab = 320;  // byte tokenizer's padded vocabulary when the data is not prepared yet
          std::printf("(data.path '%s' not prepared: assuming the byte tokenizer's vocabulary of 320)\n",
                      cfg.data.path.c_str());
        }
      }
      train::resolve_config(cfg, vocab);
      std::cout << train::model_info(cfg);
    } else if (*bench_comm) {
      for (const auto& sz : comm_sizes) comm_opt.sizes.push_back(parallel::parse_bytes(sz));
      parallel::bench_comm(comm_opt);
    } else if (*bench_kernels) {
      HS_CHECK(cuda_available(), "bench kernels: no CUDA device available");
      train::bench_kernels(kernel_reps, kernel_json, kernel_smoke);
    } else if (*bench_decode) {
      train::bench_decode(dec);
    } else if (*bench_layers) {
      auto cfg = train::load_config(config, sets);
      train::bench_layers(cfg, bench_lengths, bench_batch, bench_reps);
    } else if (*bench) {
      auto cfg = train::load_config(config, sets);
      train::bench_train(cfg, bench_steps, bench_warmup, bench_profile);
    } else if (*baselines) {
      auto tr = data::TokenDataset::load(data_dir, "train");
      auto va = data::TokenDataset::load(data_dir, "val");
      auto b = data::compute_baselines(tr, va);
      if (baselines_json) {
        std::printf("{\"unigram_entropy_train\": %.6f, \"unigram_val\": %.6f, \"bigram_val\": %.6f, "
                    "\"bigram_alpha\": %g, \"unit\": \"nats per token\"}\n",
                    b.unigram_entropy_train, b.unigram_val, b.bigram_val, b.bigram_alpha);
      } else {
      std::printf("baselines of %s (nats per token; byte tokenizer: nats per byte)\n", data_dir.c_str());
      std::printf("  order-0 entropy (train)      %.4f\n", b.unigram_entropy_train);
      std::printf("  unigram model, val loss      %.4f\n", b.unigram_val);
      std::printf("  bigram model, val loss       %.4f   (alpha %.3g chosen on held-out train)\n", b.bigram_val,
                  b.bigram_alpha);
      }
    } else if (*coord) {
      auto cfg = train::load_config(config, sets);
      train::coord_check(cfg, cc, true);
    } else if (*keys) {
      std::cout << train::describe_keys();
    } else if (*phonebook) {
      train::eval_phonebook(pb);
    } else if (*eval) {
      HS_CHECK(!ckpt.empty(), "eval: --ckpt is required");
      train::RunConfig cfg;
      auto model = train::load_model(ckpt, &cfg);
      train::place_for_decoding(*model, eval_device, eval_precision);
      kernels::cpu::set_num_threads(static_cast<int>(cfg.training.threads));
      auto va = data::TokenDataset::load(data_dir.empty() ? cfg.data.path : data_dir, "val");
      std::printf("val loss %.4f\n", train::evaluate(*model, cfg, va));
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "hyscale: error: %s\n", e.what());
    rc = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hyscale: internal error: %s\n", e.what());
    rc = 2;
  }
  if (rc != 0 && parallel::process().world > 1) parallel::abort_all(rc);
  parallel::finalize();
  return rc;
}
