// A tiny model of any architecture for decoding and generation tests: 8 layers (YOCO layouts
// need >= 8), D 16, 4 heads of 8 with 2 KV heads, window 5 and scan chunk 8 (so short sequences
// already cross both), large init so logits are far from uniform.
#pragma once
#include <string>

#include "nn/model.h"

namespace hyscale::testing {
inline nn::ModelConfig small_model(const std::string& arch, double init_std = 0.2) {
  nn::ModelConfig m;
  m.arch = arch;
  m.vocab_size = 64;
  m.n_layers = 8;
  m.d_model = 16;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.head_dim = 8;
  m.mlp_hidden = 24;
  m.window = 5;
  m.scan_chunk = 8;
  m.init_std = init_std;
  m.embed_init_std = 1.0;
  return m;
}
}  // namespace hyscale::testing
