// Generation: parallel prefill leaves the state step-wise decoding would; batched prompts of
// different lengths decode to the tokens each gives alone; greedy output is the argmax of the
// parallel forward at every step. Every architecture.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/autograd.h"
#include "core/random.h"
#include "nn/model.h"
#include "small_model.h"
#include "train/trainer.h"

using namespace hyscale;

namespace {
nn::ModelConfig small(const std::string& arch) { return testing::small_model(arch, 0.3); }
std::vector<int32_t> random_prompt(int64_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>(r.below(60)));
  return p;
}
const std::vector<std::string> kArchs = {"transformer", "transformerls", "samba", "sambayoco",
                                         "sambay",      "sambayda",      "swayoco"};
}  // namespace

TEST_CASE("parallel prefill leaves the decode state of step-wise feeding", "[generate]") {
  for (const auto& arch : kArchs) {
    INFO("arch " << arch);
    nn::Model model(small(arch));
    model.init_weights(4);
    for (auto& [name, p] : model.named_parameters())
      if (name.find("dt_bias") != std::string::npos) Tensor(p).fill(0.5);
    NoGrad ng;
    const auto prompt = random_prompt(19, 1);  // > window 5 and > 2 scan chunks
    const int64_t T = 19, extra = 6;
    auto a = model.init_decode(2, T + extra), b = model.init_decode(2, T + extra);
    // Row 1 by prefill, row 1 of `b` by steps (row 0 fed the same tokens in both).
    Tensor lp = model.prefill(Tensor::from_vector<int32_t>(prompt, {T}), a, 1);
    model.prefill(Tensor::from_vector<int32_t>(prompt, {T}), a, 0);
    Tensor ls;
    for (int64_t t = 0; t < T; ++t) ls = model.step(Tensor::from_vector<int32_t>({prompt[t], prompt[t]}, {2}), b);
    double worst = 0, scale = 0;
    auto cmp = [&](const float* x, const float* y) {
      for (int64_t v = 0; v < 64; ++v) {
        worst = std::max(worst, std::fabs(double(x[v]) - y[v]));
        scale = std::max(scale, std::fabs(double(y[v])));
      }
    };
    cmp(lp.data<float>(), ls.data<float>() + 64);
    REQUIRE(a.pos == b.pos);
    for (int64_t t = 0; t < extra; ++t) {  // and decoding continues identically
      Tensor ids = Tensor::from_vector<int32_t>({7 + int32_t(t), 3}, {2});
      Tensor x = model.step(ids, a), y = model.step(ids, b);
      cmp(x.data<float>(), y.data<float>());
      cmp(x.data<float>() + 64, y.data<float>() + 64);
    }
    INFO("max abs err " << worst << " max |logit| " << scale);
    REQUIRE(worst <= 2e-5 * scale);
  }
}

TEST_CASE("greedy generation is the argmax of the parallel forward at every step", "[generate]") {
  for (const auto& arch : kArchs) {
    INFO("arch " << arch);
    nn::Model model(small(arch));
    model.init_weights(9);
    const auto prompt = random_prompt(11, 2);
    train::SamplingOptions greedy;
    greedy.temperature = 0;
    auto out = train::generate_tokens(model, {prompt}, 20, greedy, /*eos=*/-1, 64);
    REQUIRE(out[0].size() == 20);
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), out[0].begin(), out[0].end());
    NoGrad ng;
    const int64_t n = static_cast<int64_t>(seq.size());
    Tensor logits = model.forward(Tensor::from_vector<int32_t>(seq, {1, n}));  // [n, V]
    for (size_t i = 0; i < out[0].size(); ++i) {
      const float* row = logits.data<float>() + (prompt.size() - 1 + i) * 64;
      const int32_t am = static_cast<int32_t>(std::max_element(row, row + 64) - row);
      INFO("step " << i);
      REQUIRE(out[0][i] == am);
    }
  }
}

TEST_CASE("batched generation with different prompt lengths gives each prompt's own tokens", "[generate]") {
  for (const auto& arch : kArchs) {
    INFO("arch " << arch);
    nn::Model model(small(arch));
    model.init_weights(5);
    const std::vector<std::vector<int32_t>> prompts = {random_prompt(3, 10), random_prompt(17, 11), random_prompt(8, 12)};
    for (int mode = 0; mode < 2; ++mode) {
      train::SamplingOptions s;
      s.temperature = mode == 0 ? 0.0 : 0.9;
      s.top_k = mode == 0 ? 0 : 20;
      s.top_p = mode == 0 ? 1.0 : 0.95;
      s.seed = 77;
      // EOS = 5: sequences stop at different steps.
      auto batch = train::generate_tokens(model, prompts, 15, s, /*eos=*/5, 64, {0});
      for (size_t b = 0; b < prompts.size(); ++b) {
        auto one = s;
        one.seed = s.seed + b;
        auto alone = train::generate_tokens(model, {prompts[b]}, 15, one, 5, 64, {0});
        INFO("prompt " << b << " mode " << mode);
        REQUIRE(batch[b] == alone[0]);
        for (int32_t t : batch[b]) REQUIRE((t != 5 && t != 0));
      }
    }
  }
}

TEST_CASE("generation rejects bad options and over-long prompts clearly", "[generate]") {
  nn::Model model(small("sambay"));
  model.init_weights(1);
  train::SamplingOptions s;
  s.top_p = 0;
  REQUIRE_THROWS_WITH(train::generate_tokens(model, {{1, 2}}, 4, s, -1, 64), Catch::Contains("top-p"));
  REQUIRE_THROWS_WITH(train::generate_tokens(model, {{}}, 4, train::SamplingOptions{}, -1, 64),
                      Catch::Contains("empty prompt"));
  auto st = model.init_decode(1, 4);
  REQUIRE_THROWS_WITH(model.prefill(Tensor::from_vector<int32_t>({1, 2, 3, 4, 5}, {5}), st, 0),
                      Catch::Contains("max_len"));
}

#include <regex>

#include "train/longgen.h"

TEST_CASE("phonebook prompts follow SPEC 9's format", "[generate][phonebook]") {
  Rng rng(3);
  auto book = train::make_phonebook(25, rng);
  REQUIRE(book.size() == 25);
  const std::regex entry_re("[A-Z][a-z]+ [A-Z][a-z]+: [6-9][0-9]{9}");
  for (auto& e : book) REQUIRE(std::regex_match(e.name + ": " + e.number, entry_re));
  auto p = train::phonebook_prompt(book, rng);
  // Book lines, blank line, two few-shot entries of the book, blank line, "Name:".
  std::vector<std::string> lines;
  size_t a = 0;
  for (size_t b; (b = p.text.find('\n', a)) != std::string::npos; a = b + 1) lines.push_back(p.text.substr(a, b - a));
  lines.push_back(p.text.substr(a));
  REQUIRE(lines.size() == 25 + 1 + 2 + 1 + 1);
  for (int i = 0; i < 25; ++i) REQUIRE(lines[i] == book[i].name + ": " + book[i].number);
  REQUIRE(lines[25].empty());
  REQUIRE(lines[28].empty());
  auto in_book = [&](const std::string& l) {
    for (auto& e : book)
      if (l == e.name + ": " + e.number) return true;
    return false;
  };
  REQUIRE(in_book(lines[26]));
  REQUIRE(in_book(lines[27]));
  const std::string& q = lines[29];
  REQUIRE(q.back() == ':');
  bool found = false;
  for (auto& e : book) found = found || (e.name + ":" == q && e.number == p.answer);
  REQUIRE(found);
  REQUIRE(p.text.substr(p.text.size() - q.size() - 2, 2) == "\n\n");
  // Scoring: the first output line, stripped, equals the number.
  REQUIRE(train::phonebook_correct(" " + p.answer + "\nJohn Smith: 6", p.answer));
  REQUIRE(train::phonebook_correct(p.answer, p.answer));
  REQUIRE_FALSE(train::phonebook_correct(" " + p.answer + "1", p.answer));
  REQUIRE_FALSE(train::phonebook_correct("\n" + p.answer, p.answer));
  REQUIRE_THROWS_WITH(train::make_phonebook(2, rng), Catch::Contains("at least 3"));
}

TEST_CASE("SambaY decode state: a formula, and beyond W only the shared KV grows", "[generate][decode]") {
  // docs/DECODING.md: per sequence, f32,
  //   F and A layers:  2 Hk hd 4 max_len        SWA layers: 2 Hk hd 4 min(W, max_len)
  //   Mamba layers:    4 d_inner (d_conv - 1 + d_state)            G, X layers: 0
  for (int64_t L : {8, 12, 16}) {
    auto c = small("sambay");
    c.n_layers = L;
    nn::Model model(c);
    const auto roles = model.roles();
    const int64_t kv = 2 * c.n_kv_heads * c.head_dim * 4, mamba = 4 * 2 * c.d_model * (c.d_conv - 1 + c.d_state);
    for (int64_t max_len : {3, 5, 64, 1000}) {
      int64_t want = 0;
      for (auto r : roles) {
        if (r == nn::Role::SharedKV || r == nn::Role::Attn) want += kv * max_len;
        if (r == nn::Role::SWA) want += kv * std::min<int64_t>(c.window, max_len);
        if (r == nn::Role::Mamba || r == nn::Role::MambaMem) want += mamba;
      }
      INFO("L " << L << " max_len " << max_len);
      REQUIRE(model.init_decode(2, max_len).bytes() == 2 * want);
    }
    // Beyond W, each extra position costs exactly one shared-KV entry, whatever the SWA count.
    REQUIRE(model.init_decode(1, 1000).bytes() - model.init_decode(1, 64).bytes() == (1000 - 64) * kv);
  }
}
