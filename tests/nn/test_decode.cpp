// Step-wise decoding equals the parallel forward for every architecture, at lengths beyond
// the SWA window and the scan chunk; decode state holds only what each architecture needs.
#include <catch2/catch.hpp>
#include <cmath>

#include "gradcheck.h"
#include "nn/model.h"
#include "small_model.h"

using namespace hyscale;
using hyscale::testing::randint;

namespace {
nn::ModelConfig small(const std::string& arch) { return testing::small_model(arch, 0.2); }
}  // namespace

TEST_CASE("step-wise decoding reproduces the parallel forward (f32, rel. err <= 1e-5)", "[nn][decode]") {
  for (std::string arch : {"transformer", "transformerls", "samba", "sambayoco", "sambay", "sambayda", "swayoco"}) {
    INFO("arch " << arch);
    nn::Model model(small(arch));
    model.init_weights(1);
    for (auto& [name, p] : model.named_parameters())
      if (name.find("dt_bias") != std::string::npos) Tensor(p).fill(0.5);  // non-trivial scan dynamics
    const int64_t B = 2, T = 23;  // > window (5) and > 2 scan chunks (8)
    Tensor ids = randint({B, T}, 64, 2);
    NoGrad ng;
    auto ref = model.forward(ids).to_vector<float>();  // [B*T, V]
    auto st = model.init_decode(B, T);
    double worst = 0, scale = 0;
    for (int64_t t = 0; t < T; ++t) {
      Tensor step_ids = Tensor::empty({B}, DType::i32);
      for (int64_t b = 0; b < B; ++b) step_ids.data<int32_t>()[b] = ids.data<int32_t>()[b * T + t];
      auto lg = model.step(step_ids, st).to_vector<float>();  // [B, V]
      for (int64_t b = 0; b < B; ++b)
        for (int64_t v = 0; v < 64; ++v) {
          const double r = ref[(b * T + t) * 64 + v];
          worst = std::max(worst, std::fabs(lg[b * 64 + v] - r));
          scale = std::max(scale, std::fabs(r));
        }
    }
    INFO("max abs err " << worst << " max |logit| " << scale);
    REQUIRE(worst <= 1e-5 * scale);
  }
}

TEST_CASE("decode state: KV only where needed, ring buffers of W, constant in generated length for SambaY",
          "[nn][decode]") {
  auto c = small("sambay");
  nn::Model model(c);
  auto s1 = model.init_decode(1, 64), s2 = model.init_decode(1, 4096);
  // SambaY d8: M S M S M* F G X -> one full-length KV (F), two SWA rings of W, three Mamba states.
  const int64_t kv_entry = 2 * c.n_kv_heads * c.head_dim * 4;  // K and V, f32
  const int64_t mamba = (c.d_conv - 1 + c.d_state) * 2 * c.d_model * 4;
  REQUIRE(s1.bytes() == 64 * kv_entry + 2 * 5 * kv_entry + 3 * mamba);
  REQUIRE(s2.bytes() - s1.bytes() == (4096 - 64) * kv_entry);  // only the shared KV grows
  REQUIRE(!s1.layers[6].k.defined());                          // GMU keeps nothing
  REQUIRE(!s1.layers[7].k.defined());                          // cross-attention reads F's cache
  auto t = small("transformer");
  nn::Model tm(t);
  REQUIRE(tm.init_decode(1, 4096).bytes() == 8 * 4096 * kv_entry);  // every layer keeps a full KV
}
