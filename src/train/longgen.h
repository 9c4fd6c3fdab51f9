// Long generation: the phonebook retrieval eval (SPEC §9) and the decoding throughput
// benchmark (`hyscale bench decode`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/random.h"

namespace hyscale::train {

// ---- phonebook (SPEC §9)
struct PhonebookEntry {
  std::string name;    // "First Last"
  std::string number;  // 10 digits, the first in 6-9
};
// n entries with names from built-in first/last-name lists (as the reference's `names`
// package does from census lists) and random numbers; no deduplication (as the reference).
std::vector<PhonebookEntry> make_phonebook(int64_t n, Rng& rng);

struct PhonebookPrompt {
  std::string text;    // the whole prompt
  std::string answer;  // the queried number
};
// SPEC §9's format: every entry "Name: number" joined by "\n"; then "\n\n", two random entries
// of the book as few-shot examples (joined by "\n"), "\n\n"; then the query "Name:" of a third
// random entry. The model should continue with " number".
PhonebookPrompt phonebook_prompt(const std::vector<PhonebookEntry>& book, Rng& rng);
// Exact match as the reference scores it: the first line of the output, stripped, equals the number.
bool phonebook_correct(const std::string& output, const std::string& answer);

struct PhonebookOptions {
  std::string ckpt;
  std::vector<int64_t> sizes{10, 20, 40};  // entries per phonebook
  int64_t prompts = 32;                    // per size, in 4 measurement groups
  int64_t batch = 8;                       // prompts decoded together
  int64_t max_new = 20;
  uint64_t seed = 0;
  std::string json;                        // write results here too ("" = no file)
  int64_t threads = 0;
  std::string device = "cpu", precision = "fp32";  // as train::place_for_decoding
  bool cuda_graph = false;                          // decode steps as a CUDA graph (nn::DecodeState)
};
// Greedy generation on each prompt, accuracy per size as mean +- std over the 4 groups; prints a
// table and returns the JSON text ([{size, seq_len, mean_acc, std_acc, n}...]).
std::string eval_phonebook(const PhonebookOptions& opt);

// ---- decoding benchmark
struct BenchDecodeOptions {
  std::vector<std::string> archs{"transformer", "sambay"};
  int64_t depth = 8;
  std::vector<std::string> sets;  // config overrides (e.g. model.ar=32, model.head_dim=32)
  int64_t prompt = 2048, gen = 32768, batch = 1;
  int64_t window = 64;            // decode steps whose median latency is reported at each length
  uint64_t seed = 0;
  std::string json, png;          // outputs ("" = none); the PNG is drawn by scripts/plot_decode.py
  int64_t threads = 0;
  std::string device = "cpu", precision = "fp32";  // as train::place_for_decoding
  bool cuda_graph = false;                          // decode steps as a CUDA graph (nn::DecodeState)
};
void bench_decode(const BenchDecodeOptions& opt);

}  // namespace hyscale::train
