// The phonebook retrieval eval (SPEC §9): find a name's number in a long in-context list.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "kernels/gemm.h"
#include "nn/model.h"
#include "train/longgen.h"
#include "train/trainer.h"

namespace hyscale::train {

namespace {
// Common US first and last names (the reference draws from the `names` package's census lists).
const char* const kFirst[] = {
    "James",   "Mary",    "John",   "Patricia", "Robert",  "Jennifer", "Michael", "Linda",   "William", "Elizabeth",
    "David",   "Barbara", "Richard", "Susan",   "Joseph",  "Jessica",  "Thomas",  "Sarah",   "Charles", "Karen",
    "Daniel",  "Nancy",   "Matthew", "Lisa",    "Anthony", "Betty",    "Mark",    "Margaret", "Donald", "Sandra",
    "Steven",  "Ashley",  "Paul",   "Kimberly", "Andrew",  "Emily",    "Joshua",  "Donna",   "Kenneth", "Michelle",
    "Kevin",   "Carol",   "Brian",  "Amanda",   "George",  "Dorothy",  "Timothy", "Melissa", "Ronald",  "Deborah",
    "Edward",  "Stephanie", "Jason", "Rebecca", "Jeffrey", "Sharon",   "Ryan",    "Laura",   "Jacob",   "Cynthia",
    "Gary",    "Kathleen", "Nicholas", "Amy"};
const char* const kLast[] = {
    "Smith",    "Johnson",  "Williams", "Brown",     "Jones",    "Garcia",  "Miller",  "Davis",    "Rodriguez",
    "Martinez", "Hernandez", "Lopez",   "Gonzalez",  "Wilson",   "Anderson", "Thomas", "Taylor",   "Moore",
    "Jackson",  "Martin",   "Lee",      "Perez",     "Thompson", "White",   "Harris",  "Sanchez",  "Clark",
    "Ramirez",  "Lewis",    "Robinson", "Walker",    "Young",    "Allen",   "King",    "Wright",   "Scott",
    "Torres",   "Nguyen",   "Hill",     "Flores",    "Green",    "Adams",   "Nelson",  "Baker",    "Hall",
    "Rivera",   "Campbell", "Mitchell", "Carter",    "Roberts",  "Gomez",   "Phillips", "Evans",   "Turner",
    "Diaz",     "Parker",   "Cruz",     "Edwards",   "Collins",  "Reyes",   "Stewart", "Morris",   "Morales",
    "Murphy"};
constexpr size_t kNFirst = sizeof(kFirst) / sizeof(kFirst[0]);
constexpr size_t kNLast = sizeof(kLast) / sizeof(kLast[0]);

std::string entry_line(const PhonebookEntry& e) { return e.name + ": " + e.number; }

std::string strip(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  const size_t b = s.find_last_not_of(ws);
  return s.substr(a, b - a + 1);
}
}  // namespace

std::vector<PhonebookEntry> make_phonebook(int64_t n, Rng& rng) {
  HS_CHECK(n >= 3, "phonebook: need at least 3 entries (two few-shot examples and a query), got ", n);
  std::vector<PhonebookEntry> book;
  for (int64_t i = 0; i < n; ++i) {
    PhonebookEntry e;
    e.name = std::string(kFirst[rng.below(kNFirst)]) + " " + kLast[rng.below(kNLast)];
    e.number = std::to_string(6 + rng.below(4));
    for (int k = 0; k < 9; ++k) e.number += static_cast<char>('0' + rng.below(10));
    book.push_back(std::move(e));
  }
  return book;
}

PhonebookPrompt phonebook_prompt(const std::vector<PhonebookEntry>& book, Rng& rng) {
  HS_CHECK(book.size() >= 3, "phonebook: need at least 3 entries");
  std::string text;
  for (size_t i = 0; i < book.size(); ++i) {
    if (i) text += '\n';
    text += entry_line(book[i]);
  }
  const auto& s1 = book[rng.below(book.size())];
  const auto& s2 = book[rng.below(book.size())];
  const auto& q = book[rng.below(book.size())];
  text.append("\n\n").append(entry_line(s1)).append("\n").append(entry_line(s2)).append("\n\n");
  text.append(q.name).append(":");
  return {text, q.number};
}

bool phonebook_correct(const std::string& output, const std::string& answer) {
  const size_t nl = output.find('\n');
  return strip(nl == std::string::npos ? output : output.substr(0, nl)) == answer;
}

std::string eval_phonebook(const PhonebookOptions& opt) {
  HS_CHECK(!opt.sizes.empty(), "eval phonebook: --sizes is empty");
  HS_CHECK(opt.prompts >= 4 && opt.prompts % 4 == 0, "eval phonebook: --prompts must be a positive multiple of 4 "
           "(4 measurement groups), got ", opt.prompts);
  HS_CHECK(opt.batch >= 1 && opt.max_new >= 1, "eval phonebook: --batch and --max-new must be >= 1");
  HS_CHECK(!opt.cuda_graph || Device::parse(opt.device).is_cuda(),
           "--cuda-graph needs --device cuda (a CUDA graph replays GPU work), got --device ", opt.device);
  kernels::cpu::set_num_threads(static_cast<int>(opt.threads));
  auto model = load_model(opt.ckpt);
  place_for_decoding(*model, opt.device, opt.precision);
  data::ByteTokenizer tok;
  SamplingOptions greedy;
  greedy.temperature = 0;
  Rng rng(opt.seed);
  nlohmann::json out = nlohmann::json::array();
  std::printf("phonebook: %s, %lld prompts per size (4 groups), greedy, <= %lld new tokens\n", opt.ckpt.c_str(),
              (long long)opt.prompts, (long long)opt.max_new);
  std::printf("%8s %10s %10s %9s\n", "entries", "tokens", "accuracy", "std");
  for (int64_t size : opt.sizes) {
    std::vector<double> group_acc;
    double tokens = 0;
    for (int g = 0; g < 4; ++g) {
      std::vector<PhonebookPrompt> ps;
      for (int64_t i = 0; i < opt.prompts / 4; ++i) {
        auto book = make_phonebook(size, rng);
        ps.push_back(phonebook_prompt(book, rng));
      }
      int64_t correct = 0;
      for (size_t i = 0; i < ps.size(); i += static_cast<size_t>(opt.batch)) {
        std::vector<std::vector<int32_t>> ids;
        for (size_t j = i; j < std::min(ps.size(), i + static_cast<size_t>(opt.batch)); ++j) {
          std::vector<int32_t> ctx{tok.eos_id()};  // documents start after an EOS
          auto t = tok.encode(ps[j].text);
          ctx.insert(ctx.end(), t.begin(), t.end());
          tokens += static_cast<double>(ctx.size());
          ids.push_back(std::move(ctx));
        }
        auto gen = generate_tokens(*model, ids, opt.max_new, greedy, tok.eos_id(), data::ByteTokenizer::kRawVocab,
                                   {tok.bos_id()}, opt.cuda_graph);
        for (size_t j = 0; j < gen.size(); ++j)
          correct += phonebook_correct(tok.decode(gen[j]), ps[i + j].answer) ? 1 : 0;
      }
      group_acc.push_back(static_cast<double>(correct) / static_cast<double>(ps.size()));
    }
    double mean = 0, var = 0;
    for (double a : group_acc) mean += a / 4;
    for (double a : group_acc) var += (a - mean) * (a - mean) / 4;  // population std, as numpy's default
    const double seq_len = tokens / static_cast<double>(opt.prompts);
    std::printf("%8lld %10.0f %9.2f%% %8.2f%%\n", (long long)size, seq_len, 100 * mean, 100 * std::sqrt(var));
    out.push_back({{"size", size}, {"seq_len", seq_len}, {"mean_acc", mean}, {"std_acc", std::sqrt(var)},
                   {"n", opt.prompts}});
  }
  const std::string text = out.dump(2);
  if (!opt.json.empty()) {
    std::ofstream f(opt.json, std::ios::trunc);
    f << text << "\n";
    HS_CHECK(f.good(), "eval phonebook: cannot write '", opt.json, "'");
  }
  return text;
}

}  // namespace hyscale::train
