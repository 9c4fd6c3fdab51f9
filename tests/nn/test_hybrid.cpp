// Every architecture of the paper (SPEC §1–§5): whole-model gradients against finite
// differences (f64), causality (bitwise), analytic parameter counts against the tensors and
// against SPEC §6.5, differential-attention pairing against a direct reference, config errors.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/ops.h"
#include "gradcheck.h"
#include "nn/model.h"

using namespace hyscale;
using hyscale::testing::randint;
using hyscale::testing::randn;
using Catch::Matchers::Contains;

namespace {
const std::vector<std::string> kArchs = {"transformer", "transformerls", "samba",  "sambayoco",
                                         "sambay",      "sambayda",      "swayoco"};

nn::ModelConfig tiny(const std::string& arch, DType dt) {
  nn::ModelConfig m;
  m.arch = arch;
  m.vocab_size = 64;
  m.n_layers = 8;
  m.d_model = 8;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.head_dim = 4;
  m.mlp_hidden = 12;
  m.window = 3;
  m.d_state = 3;
  m.scan_chunk = 4;
  m.residual_mult = 0.8;
  m.init_std = 0.3;
  m.embed_init_std = 0.5;
  m.param_dtype = dt;
  return m;
}
}  // namespace

TEST_CASE("every architecture: loss gradient of every parameter matches finite differences (f64)", "[nn][grad]") {
  for (const auto& arch : kArchs) {
    INFO("arch " << arch);
    nn::Model model(tiny(arch, DType::f64));
    model.init_weights(3);
    // Non-trivial Mamba dynamics and DA lambdas (init puts dt near 1e-2).
    for (auto& [name, p] : model.named_parameters()) {
      if (name.find("dt_bias") != std::string::npos) Tensor(p).fill(0.3);
      if (name.find("lambda_") != std::string::npos) Tensor(p).copy_from(randn(p.shape(), 5, 0.5));
    }
    hyscale::testing::check_model_gradients(model, randint({2, 9}, 64, 4), randint({2, 9}, 64, 5), 5);
  }
}

TEST_CASE("every architecture is causal: changing token t leaves logits before t bitwise unchanged", "[nn]") {
  for (const auto& arch : kArchs) {
    INFO("arch " << arch);
    nn::Model model(tiny(arch, DType::f32));
    model.init_weights(7);
    NoGrad ng;
    Tensor a = randint({1, 20}, 64, 8);
    for (int64_t t : {0, 9, 19}) {
      Tensor b = a.clone();
      b.data<int32_t>()[t] = (a.data<int32_t>()[t] + 1) % 64;
      auto la = model.forward(a).to_vector<float>(), lb = model.forward(b).to_vector<float>();
      for (int64_t i = 0; i < t * 64; ++i) REQUIRE(la[i] == lb[i]);
      bool changed = false;
      for (int64_t i = t * 64; i < (t + 1) * 64; ++i) changed = changed || la[i] != lb[i];
      REQUIRE(changed);
    }
  }
}

TEST_CASE("layer roles follow SPEC §1.3", "[nn]") {
  auto roles = [](const std::string& arch, int64_t L) {
    auto c = tiny(arch, DType::f32);
    c.n_layers = L;
    std::string s;
    for (auto r : nn::layer_roles(c)) s += nn::role_code(r);
    return s;
  };
  REQUIRE(roles("sambay", 8) == "MSMSM*FGX");
  REQUIRE(roles("sambay", 16) == "MSMSMSMSM*FGXGXGX");
  REQUIRE(roles("sambayoco", 8) == "MSMSM*FXX");
  REQUIRE(roles("swayoco", 8) == "SSSSSFXX");
  REQUIRE(roles("samba", 4) == "MSMS");
  REQUIRE(roles("transformerls", 8) == "SSSASSSA");
  REQUIRE(roles("transformer", 3) == "AAA");
  auto c = tiny("sambay", DType::f32);
  c.pattern = "MSM*FGX";
  c.n_layers = 6;
  std::string s;
  for (auto r : nn::layer_roles(c)) s += nn::role_code(r);
  REQUIRE(s == "MSM*FGX");
}

TEST_CASE("analytic parameter counts equal the model's tensors", "[nn]") {
  for (const auto& arch : kArchs) {
    for (bool tied : {false, true}) {
      INFO("arch " << arch << " tied " << tied);
      auto c = tiny(arch, DType::f32);
      c.tie_embeddings = tied;
      nn::Model model(c);
      auto pc = nn::count_parameters(c);
      REQUIRE(pc.total() == model.num_parameters());
      REQUIRE(pc.matrices == model.non_embedding_params());
      REQUIRE(pc.embedding == model.embedding_params());
    }
  }
}

TEST_CASE("non-embedding matrix counts at the paper's widths (SPEC §6.5)", "[nn]") {
  struct A { std::string arch; int64_t ar; double mult; };
  // mult(ar) of SPEC §6.5's table: N(d) ~ mult * d^3 to leading order.
  for (A a : {A{"transformer", 128, 14.5 * 128 * 128}, A{"samba", 122, 15.0 * 122 * 122 + 160 * 122},
              A{"sambay", 124, 14.5 * 124 * 124 + 144 * 124}, A{"sambayda", 124, 14.5 * 124 * 124 + 144 * 124},
              A{"sambayoco", 126, 13.5 * 126 * 126 + 208 * 126}}) {
    for (int64_t d : {8, 12, 16, 20, 24}) {
      INFO(a.arch << " d" << d);
      nn::ModelConfig m;
      m.arch = a.arch;
      m.n_layers = d;
      m.d_model = a.ar * d;
      m.n_heads = d;
      m.n_kv_heads = d / 4;
      m.head_dim = 128;
      m.mlp_hidden = 4 * a.ar * d;
      m.vocab_size = 32000;
      if (a.arch == "sambayda" && (d / 4) % 2 == 1) {  // SPEC §1.2: odd KV-head count
        REQUIRE_THROWS_WITH(nn::validate_model_config(m), Contains("model.n_kv_heads"));
        continue;
      }
      const double n = static_cast<double>(nn::count_parameters(m).matrices);
      const double formula = a.mult * d * d * d;
      if (a.arch == "transformer") REQUIRE(n == formula);  // exact for Transformer++
      REQUIRE(std::fabs(n / formula - 1.0) < 0.05);
    }
  }
  nn::ModelConfig m;  // SPEC's worked example: SambaY d8 at D = 992
  m.arch = "sambay";
  m.n_layers = 8;
  m.d_model = 992;
  m.n_heads = 8;
  m.n_kv_heads = 2;
  m.head_dim = 128;
  m.mlp_hidden = 3968;
  m.vocab_size = 32000;
  REQUIRE(nn::count_parameters(m).matrices == 126698240);
}

TEST_CASE("differential attention equals a direct per-head-pair reference", "[nn][diff]") {
  nn::AttentionConfig ac;
  ac.dim = 12;
  ac.n_heads = 4;
  ac.n_kv_heads = 2;
  ac.head_dim = 3;
  ac.rope = false;
  ac.diff = true;
  ac.layer_index = 2;
  ac.window = 4;
  ac.dtype = DType::f64;
  nn::Attention attn(ac);
  for (auto& [name, p] : attn.named_parameters()) Tensor(p).copy_from(randn(p.shape(), name.size(), 0.4));
  const int64_t B = 1, T = 7, H = 4, Hk = 2, hd = 3;
  Tensor x = randn({B, T, 12}, 99);
  Tensor y = attn.forward(x);
  // Reference: q, k, v from wqkv; pair (2i, 2i+1); GQA within halves.
  NoGrad ng;
  Tensor qkv = ops::linear(x, attn.wqkv);
  auto at = [&](int64_t t, int64_t col) { return qkv.data<double>()[t * (H + 2 * Hk) * hd + col]; };
  const double li = 0.8 - 0.6 * std::exp(-0.3 * 2);
  auto dot = [](const Tensor& a, const Tensor& b) {
    double s = 0;
    for (int64_t i = 0; i < a.numel(); ++i) s += a.data<double>()[i] * b.data<double>()[i];
    return s;
  };
  const double lam = std::exp(dot(attn.lambda_q1, attn.lambda_k1)) - std::exp(dot(attn.lambda_q2, attn.lambda_k2)) + li;
  std::vector<double> out(T * H * hd);
  for (int64_t i = 0; i < H / 2; ++i) {
    const int64_t pair = i / ((H / 2) / (Hk / 2));  // KV pair read by this query pair
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> a[2];
      for (int br = 0; br < 2; ++br) {
        const int64_t qh = 2 * i + br, kh = 2 * pair + br;
        std::vector<double> s;
        double mx = -1e300;
        for (int64_t j = std::max<int64_t>(0, t - 3); j <= t; ++j) {
          double d = 0;
          for (int64_t c = 0; c < hd; ++c) d += at(t, qh * hd + c) * at(j, H * hd + kh * hd + c);
          s.push_back(d / std::sqrt(3.0));
          mx = std::max(mx, s.back());
        }
        double z = 0;
        for (double v : s) z += std::exp(v - mx);
        a[br].assign(2 * hd, 0.0);
        int64_t idx = 0;
        for (int64_t j = std::max<int64_t>(0, t - 3); j <= t; ++j, ++idx)
          for (int64_t half = 0; half < 2; ++half)
            for (int64_t c = 0; c < hd; ++c)
              a[br][half * hd + c] += std::exp(s[idx] - mx) / z * at(j, (H + Hk) * hd + (2 * pair + half) * hd + c);
      }
      std::vector<double> d(2 * hd);
      double ss = 0;
      for (int64_t c = 0; c < 2 * hd; ++c) {
        d[c] = a[0][c] - lam * a[1][c];
        ss += d[c] * d[c];
      }
      const double rs = 1.0 / std::sqrt(ss / (2 * hd) + 1e-5);
      for (int64_t c = 0; c < 2 * hd; ++c)  // re-interleave: first hd -> head 2i, second -> 2i+1
        out[t * H * hd + 2 * i * hd + c] = d[c] * rs * attn.subln.data<double>()[c] * (1 - li);
    }
  }
  Tensor ref = ops::linear(Tensor::from_vector(out, {B, T, H * hd}), attn.proj);
  auto yv = y.to_vector<double>(), rv = ref.to_vector<double>();
  for (size_t i = 0; i < yv.size(); ++i) REQUIRE(yv[i] == Approx(rv[i]).epsilon(1e-10).margin(1e-12));
}

TEST_CASE("unsupported depths and patterns are clear config errors", "[nn][errors]") {
  auto c = tiny("sambay", DType::f32);
  c.n_layers = 6;
  REQUIRE_THROWS_WITH(nn::validate_model_config(c), Contains("model.n_layers") && Contains("multiple of 4"));
  c.n_layers = 12;
  c.arch = "sambayda";
  c.n_kv_heads = 3;
  c.n_heads = 12;
  REQUIRE_THROWS_WITH(nn::validate_model_config(c), Contains("model.n_kv_heads"));
  c = tiny("sambay", DType::f32);
  c.pattern = "MGS";
  c.n_layers = 3;
  REQUIRE_THROWS_WITH(nn::validate_model_config(c), Contains("GMU") && Contains("M*"));
  c.pattern = "MSX";
  REQUIRE_THROWS_WITH(nn::validate_model_config(c), Contains("cross-attention"));
  c.pattern = "MQS";
  REQUIRE_THROWS_WITH(nn::validate_model_config(c), Contains("'Q'"));
  c.pattern = "M*FGX";
  c.n_layers = 4;
  REQUIRE_NOTHROW(nn::validate_model_config(c));
}

TEST_CASE("FLOP counter against hand counts for a tiny model of each architecture", "[nn][flops]") {
  // Hand count, independent of the counter's formulas: 6 x (every 2-D projection tensor of the
  // built model + the LM head) + 3 x per-pair attention FLOPs x (visible (query, key) pairs,
  // enumerated) / T + 3 x per-token scan and conv FLOPs for each Mamba layer.
  const int64_t T = 11;
  for (const auto& arch : kArchs) {
    INFO("arch " << arch);
    auto c = tiny(arch, DType::f32);
    nn::Model model(c);
    double matmul = 0;
    for (auto& [name, p] : model.named_parameters())
      if (p.dim() == 2 && name != "wte" && name != "lm_head" && name.find("conv1d") == std::string::npos &&
          name.find("A_log") == std::string::npos)
        matmul += static_cast<double>(p.numel());
    if (!c.tie_embeddings) REQUIRE(model.lm_head.numel() == c.vocab_size * c.d_model);
    matmul += static_cast<double>(c.vocab_size * c.d_model);  // LM head (tied or not, it is a matmul)
    const bool da = arch == "sambayda";
    const double per_pair = (da ? 6.0 : 4.0) * c.n_heads * c.head_dim;
    double attn = 0, scan = 0;
    for (auto r : model.roles()) {
      int64_t pairs = 0;
      const int64_t W = r == nn::Role::SWA ? c.window : T;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j <= t; ++j) pairs += (j >= t - W + 1) ? 1 : 0;
      if (r == nn::Role::Attn || r == nn::Role::SWA || r == nn::Role::SharedKV || r == nn::Role::Cross)
        attn += 3.0 * per_pair * static_cast<double>(pairs) / T;
      if (r == nn::Role::Mamba || r == nn::Role::MambaMem) {
        const double di = 2.0 * c.d_model;
        scan += 3.0 * (7.0 * di * c.d_state + 2.0 * c.d_conv * di);
      }
    }
    REQUIRE(model.train_flops_per_token(T) == Approx(6.0 * matmul + attn + scan).epsilon(1e-12));
  }
}
