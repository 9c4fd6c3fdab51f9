#include "nn/model.h"

#include <algorithm>
#include <cmath>

#include "core/ops.h"
#include "core/profiler.h"
#include "parallel/tp_ops.h"

namespace hyscale::nn {

namespace {
const std::vector<std::string> kArchs = {"transformer", "transformerls", "samba",  "sambayoco",
                                         "sambay",      "sambayda",      "swayoco"};
bool is_yoco(const std::string& a) { return a == "sambayoco" || a == "sambay" || a == "sambayda" || a == "swayoco"; }

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// The profiler's name for a block's mixer (core/profiler.h).
const char* role_scope(Role r) {
  switch (r) {
    case Role::Attn: return "attn";
    case Role::SWA: return "swa";
    case Role::Mamba: return "mamba";
    case Role::MambaMem: return "mamba_mem";
    case Role::SharedKV: return "shared_kv";
    case Role::GMU: return "gmu";
    case Role::Cross: return "cross";
  }
  return "?";
}
}  // namespace

const char* role_code(Role r) {
  switch (r) {
    case Role::Attn: return "A";
    case Role::SWA: return "S";
    case Role::Mamba: return "M";
    case Role::MambaMem: return "M*";
    case Role::SharedKV: return "F";
    case Role::GMU: return "G";
    case Role::Cross: return "X";
  }
  return "?";
}

std::vector<Role> parse_pattern(const std::string& p) {
  std::vector<Role> out;
  for (size_t i = 0; i < p.size(); ++i) {
    switch (p[i]) {
      case 'A': out.push_back(Role::Attn); break;
      case 'S': out.push_back(Role::SWA); break;
      case 'M':
        if (i + 1 < p.size() && p[i + 1] == '*') {
          out.push_back(Role::MambaMem);
          ++i;
        } else {
          out.push_back(Role::Mamba);
        }
        break;
      case 'F': out.push_back(Role::SharedKV); break;
      case 'G': out.push_back(Role::GMU); break;
      case 'X': out.push_back(Role::Cross); break;
      default:
        HS_FAIL("model.pattern '", p, "': unknown layer code '", p[i], "' at position ", i,
                " (allowed: A full attention, S sliding-window attention, M Mamba, M* Mamba exporting the GMU memory, "
                "F full attention sharing its KV, G GMU, X cross-attention)");
    }
  }
  return out;
}

std::vector<Role> layer_roles(const ModelConfig& c) {
  if (!c.pattern.empty()) return parse_pattern(c.pattern);
  const int64_t L = c.n_layers;
  std::vector<Role> r(static_cast<size_t>(std::max<int64_t>(L, 0)));
  const std::string& a = c.arch;
  if (a == "transformer") {
    std::fill(r.begin(), r.end(), Role::Attn);
  } else if (a == "transformerls") {  // full_per_layer = 4: l % 4 == 3 full, the rest SWA
    for (int64_t l = 0; l < L; ++l) r[l] = l % 4 == 3 ? Role::Attn : Role::SWA;
  } else if (a == "samba") {  // rnn_per_layer = 2: even Mamba, odd SWA
    for (int64_t l = 0; l < L; ++l) r[l] = l % 2 == 0 ? Role::Mamba : Role::SWA;
  } else if (is_yoco(a)) {  // SPEC §1.3
    HS_CHECK(L >= 8 && L % 4 == 0, "model.n_layers = ", L, ": ", a,
             " (YOCO layout) needs a depth that is a multiple of 4 and at least 8");
    const bool rnn = a != "swayoco", gmu = a == "sambay" || a == "sambayda";
    const int64_t h = L / 2;
    for (int64_t l = 0; l < L; ++l) {
      if (l < h)
        r[l] = rnn && l % 2 == 0 ? Role::Mamba : Role::SWA;
      else if (l == h)
        r[l] = rnn ? Role::MambaMem : Role::SWA;
      else if (l == h + 1)
        r[l] = Role::SharedKV;
      else
        r[l] = gmu && l % 2 == 0 ? Role::GMU : Role::Cross;
    }
  } else {
    std::string allowed;
    for (auto& x : kArchs) allowed += (allowed.empty() ? "" : ", ") + x;
    HS_FAIL("model.arch: '", a, "' is not an architecture (allowed: ", allowed, ")");
  }
  return r;
}

int64_t effective_window(const ModelConfig& c) {
  if (c.window > 0) return c.window;
  return c.arch == "samba" ? 2048 : 128;  // SPEC §4
}

bool effective_rope(const ModelConfig& c) {
  if (c.rope == "on") return true;
  if (c.rope == "off") return false;
  // SambaY, SambaY+DA and Samba+YOCO use no positional encoding anywhere (SPEC §1.6).
  return !(c.arch == "sambayoco" || c.arch == "sambay" || c.arch == "sambayda");
}

bool effective_diff(const ModelConfig& c) {
  if (c.diff_attn == "on") return true;
  if (c.diff_attn == "off") return false;
  return c.arch == "sambayda";
}

void validate_model_config(const ModelConfig& c) {
  HS_CHECK(std::find(kArchs.begin(), kArchs.end(), c.arch) != kArchs.end() || !c.pattern.empty(), "model.arch: '",
           c.arch, "' is not an architecture");
  HS_CHECK(c.vocab_size > 0, "model.vocab_size must be positive, got ", c.vocab_size);
  HS_CHECK(c.d_model > 0, "model.d_model must be positive, got ", c.d_model);
  HS_CHECK(c.n_heads > 0, "model.n_heads must be positive, got ", c.n_heads);
  HS_CHECK(c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0, "model.n_kv_heads (", c.n_kv_heads,
           ") must divide model.n_heads (", c.n_heads, ")");
  HS_CHECK(c.mlp_hidden > 0, "model.mlp_hidden must be positive, got ", c.mlp_hidden);
  HS_CHECK(c.rope_base > 0, "model.rope_base must be positive, got ", c.rope_base);
  HS_CHECK(c.norm_eps > 0, "model.norm_eps must be positive, got ", c.norm_eps);
  HS_CHECK(c.head_dim > 0 && (!effective_rope(c) || c.head_dim % 2 == 0), "model.head_dim must be positive",
           effective_rope(c) ? " and even (RoPE)" : "", ", got ", c.head_dim);
  HS_CHECK(c.d_state > 0 && c.expand > 0 && c.d_conv >= 1 && c.d_conv <= 8 && c.scan_chunk > 0,
           "model.d_state, model.expand, model.scan_chunk must be positive and model.d_conv in [1, 8]");
  const auto roles = layer_roles(c);
  HS_CHECK(c.n_layers == static_cast<int64_t>(roles.size()), "model.pattern '", c.pattern, "' has ", roles.size(),
           " layers but model.n_layers = ", c.n_layers);
  HS_CHECK(c.n_layers > 0, "model.n_layers must be positive");
  if (effective_diff(c))
    HS_CHECK(c.n_kv_heads % 2 == 0 && c.n_heads % 2 == 0, "differential attention pairs heads, so model.n_kv_heads (",
             c.n_kv_heads, ") and model.n_heads (", c.n_heads,
             ") must be even (SPEC §1.2: sambayda at d = 12 or 20 has 3 or 5 KV heads; override model.n_kv_heads)");
  bool mem = false, kv = false;
  int n_mem = 0, n_kv = 0;
  for (size_t l = 0; l < roles.size(); ++l) {
    const Role r = roles[l];
    if (r == Role::MambaMem) mem = true, ++n_mem;
    if (r == Role::SharedKV) kv = true, ++n_kv;
    HS_CHECK(r != Role::GMU || mem, "layer ", l, " is a GMU (G) but no Mamba memory layer (M*) comes before it");
    HS_CHECK(r != Role::Cross || kv, "layer ", l,
             " is a cross-attention layer (X) but no shared-KV full-attention layer (F) comes before it");
  }
  HS_CHECK(n_mem <= 1 && n_kv <= 1, "model.pattern: at most one M* and one F layer (they define the memory and the "
           "shared KV), got ", n_mem, " and ", n_kv);
}

Block::Block(const ModelConfig& c, Role role, int64_t index, const parallel::TensorParallel& tp)
    : role_(role), r_(c.residual_mult) {
  norm1 = register_module("norm1", std::make_shared<RMSNorm>(c.d_model, c.norm_eps, c.param_dtype));
  switch (role) {
    case Role::Attn:
    case Role::SWA:
    case Role::SharedKV:
    case Role::Cross: {
      AttentionConfig ac;
      ac.dim = c.d_model;
      ac.n_heads = c.n_heads;
      ac.n_kv_heads = c.n_kv_heads;
      ac.head_dim = c.head_dim;
      ac.window = role == Role::SWA ? effective_window(c) : 0;
      ac.rope = effective_rope(c);
      ac.rope_base = c.rope_base;
      ac.scale = c.attn_scale;
      ac.cross = role == Role::Cross;
      ac.diff = effective_diff(c);
      ac.layer_index = index;
      ac.dtype = c.param_dtype;
      ac.tp = tp;
      attn = register_module("attn", std::make_shared<Attention>(ac));
      break;
    }
    case Role::Mamba:
    case Role::MambaMem: {
      MambaConfig mc;
      mc.dim = c.d_model;
      mc.d_state = c.d_state;
      mc.d_conv = c.d_conv;
      mc.expand = c.expand;
      mc.dt_rank = c.dt_rank;
      mc.scan_chunk = c.scan_chunk;
      mc.dtype = c.param_dtype;
      mc.tp = tp;
      mamba = register_module("mamba", std::make_shared<Mamba>(mc));
      break;
    }
    case Role::GMU:
      gmu = register_module("gmu", std::make_shared<GMU>(c.d_model, c.expand * c.d_model, c.param_dtype, tp));
      break;
  }
  norm2 = register_module("norm2", std::make_shared<RMSNorm>(c.d_model, c.norm_eps, c.param_dtype));
  mlp = register_module("mlp", std::make_shared<SwiGLUMLP>(c.d_model, c.mlp_hidden, c.param_dtype, tp));
}

Tensor Block::forward(const Tensor& x_in, BlockState& st, LayerCache* capture, int64_t row) const {
  auto branch = [&](const Tensor& y) { return r_ == 1.0 ? y : ops::scale(y, r_); };
  prof::Scope ps(role_scope(role_));
  Tensor h = norm1->forward(x_in), y;
  Tensor k, v, conv, ssm;
  if (capture && capture->conv.defined()) {
    conv = capture->conv.slice(0, row, row + 1);
    ssm = capture->ssm.slice(0, row, row + 1);
  }
  switch (role_) {
    case Role::Attn:
    case Role::SWA: y = capture ? attn->forward(h, &k, &v) : attn->forward(h); break;
    case Role::SharedKV: y = attn->forward(h, &st.k, &st.v); k = st.k, v = st.v; break;
    case Role::Cross: y = attn->forward_cross(h, st.k, st.v); break;
    case Role::Mamba: y = capture ? mamba->forward(h, nullptr, &conv, &ssm) : mamba->forward(h); break;
    case Role::MambaMem: y = capture ? mamba->forward(h, &st.memory, &conv, &ssm) : mamba->forward(h, &st.memory); break;
    case Role::GMU: y = gmu->forward(h, st.memory); break;
  }
  if (capture && capture->k.defined()) {
    // Row `row` of the KV cache: positions 0..T-1 (full) or the last `cap` of them, position p
    // at slot p % cap (ring buffer), as step() would have left it; copied in contiguous runs of
    // slots (at most two for a ring buffer).
    const int64_t T = k.size(1), cap = capture->cap;
    HS_CHECK(role_ == Role::SWA || T <= cap, "prefill: prompt of ", T, " tokens exceeds the KV cache (", cap, ")");
    const bool ring = role_ == Role::SWA;
    for (auto [cache, src] : {std::pair<Tensor*, Tensor>{&capture->k, k.detach()}, {&capture->v, v.detach()}}) {
      Tensor dst = cache->slice(0, row, row + 1);
      for (int64_t p = std::max<int64_t>(0, T - cap); p < T;) {
        const int64_t slot = ring ? p % cap : p, len = ring ? std::min(T - p, cap - slot) : T - p;
        dst.slice(1, slot, slot + len).copy_from(src.slice(1, p, p + len));
        p += len;
      }
    }
  }
  Tensor x = ops::add(x_in, branch(y));
  ps.set("mlp");
  return ops::add(x, branch(mlp->forward(norm2->forward(x))));
}

Model::Model(const ModelConfig& cfg, const parallel::TensorParallel& tp) : cfg_(cfg), tp_(tp) {
  validate_model_config(cfg);
  HS_CHECK(tp.size >= 1 && tp.rank >= 0 && tp.rank < tp.size && (tp.size == 1 || tp.comm),
           "model: bad tensor-parallel group (size ", tp.size, ", rank ", tp.rank, ")");
  HS_CHECK(cfg.vocab_size % tp.size == 0, "model.vocab_size (", cfg.vocab_size,
           ") must be divisible by parallel.tp (", tp.size, "); it is padded to a multiple of 64 tp");
  roles_ = layer_roles(cfg);
  const int64_t Vl = tp.local(cfg.vocab_size);
  wte = register_parameter("wte", Tensor::zeros({Vl, cfg.d_model}, cfg.param_dtype), {0, {}});
  for (int64_t i = 0; i < cfg.n_layers; ++i)
    blocks.push_back(register_module("blocks." + std::to_string(i), std::make_shared<Block>(cfg, roles_[i], i, tp)));
  ln_f = register_module("ln_f", std::make_shared<RMSNorm>(cfg.d_model, cfg.norm_eps, cfg.param_dtype));
  if (!cfg.tie_embeddings)
    lm_head = register_parameter("lm_head", Tensor::zeros({Vl, cfg.d_model}, cfg.param_dtype), {0, {}});
}

void Model::init_weights(uint64_t seed) {
  HS_CHECK(cfg_.init == "normal" || cfg_.init == "uniform", "model.init: '", cfg_.init,
           "' is not an init scheme (allowed: normal, uniform)");
  // Linear weights [out, in]: N(0, std^2) (SP) or U(+-w_init/sqrt(in)) (muP++), then / div.
  auto init_matrix = [&](Tensor& p, const std::string& name, double div) {
    if (cfg_.init == "normal")
      init_normal(p, cfg_.init_std / div, seed, name);
    else
      init_uniform(p, cfg_.w_init / std::sqrt(static_cast<double>(p.size(1))) / div, seed, name);
  };
  const double out_div = cfg_.scale_out_proj_init ? std::sqrt(2.0 * cfg_.n_layers) : 1.0;
  const auto params = named_parameters();
  const auto specs = named_shard_specs();
  for (size_t pi = 0; pi < params.size(); ++pi) {
    const std::string& name = params[pi].first;
    const ShardSpec& spec = specs[pi].second;
    Tensor local = params[pi].second;
    // Draw the global tensor (the stream depends only on seed and name, fan-in is the global
    // one), then keep this rank's rows/columns of every part.
    const bool sharded = spec.dim >= 0 && tp_.on();
    Tensor p = sharded ? Tensor::zeros(global_shape(local.shape(), spec, tp_.size), local.dtype()) : local;
    if (ends_with(name, "norm1.weight") || ends_with(name, "norm2.weight") || name == "ln_f.weight" ||
        ends_with(name, "subln.weight")) {
      p.fill(1.0);
    } else if (name == "wte") {
      init_normal(p, cfg_.tie_embeddings ? 0.02 : cfg_.embed_init_std, seed, name);
    } else if (name == "lm_head" && cfg_.zero_readout) {
      p.zero();
    } else if (ends_with(name, ".A_log")) {  // S4D-real: A = -(n + 1)
      const int64_t N = p.size(1);
      Tensor v = Tensor::empty(p.shape(), DType::f64);
      for (int64_t i = 0; i < p.numel(); ++i) v.data<double>()[i] = std::log(static_cast<double>(i % N + 1));
      p.copy_from(v);
    } else if (ends_with(name, ".D")) {
      p.fill(1.0);
    } else if (ends_with(name, ".dt_bias")) {
      // dt ~ exp(U(log 1e-3, log 1e-1)) clamped >= 1e-4; bias = softplus^-1(dt) (SPEC §3)
      Tensor u = Tensor::empty(p.shape(), DType::f64);
      init_uniform(u, 1.0, seed, name);
      for (int64_t i = 0; i < u.numel(); ++i) {
        double& x = u.data<double>()[i];
        const double frac = 0.5 * (x + 1.0);
        double dt = std::exp(std::log(1e-3) + frac * (std::log(1e-1) - std::log(1e-3)));
        dt = std::max(dt, 1e-4);
        x = dt + std::log(-std::expm1(-dt));
      }
      p.copy_from(u);
    } else if (ends_with(name, "conv1d.weight") || ends_with(name, "conv1d.bias")) {
      // PyTorch's default Conv1d init (paper-era): U(+-1/sqrt(fan_in)), fan_in = d_conv.
      init_uniform(p, 1.0 / std::sqrt(static_cast<double>(cfg_.d_conv)), seed, name);
    } else if (name.find(".lambda_") != std::string::npos) {
      init_normal(p, 0.1, seed, name);
    } else if (ends_with(name, "attn.proj") || ends_with(name, "mlp.w3") || ends_with(name, "mamba.out_proj") ||
               ends_with(name, "gmu.out_proj")) {
      init_matrix(p, name, out_div);  // GPT-2 branch divides these (SPEC §6.3 names)
    } else {
      init_matrix(p, name, 1.0);
    }
    if (sharded)
      for (const auto& sl : logical_slices(name, local.shape(), spec, tp_.size, tp_.rank))
        local.slice(sl.dim, sl.local_offset, sl.local_offset + sl.count)
            .copy_from(p.slice(sl.dim, sl.fused_offset + sl.global_offset, sl.fused_offset + sl.global_offset + sl.count));
  }
}

namespace {
double rms_of(const Tensor& t) {
  Tensor c = t.contiguous().to(DType::f64);
  double s = 0;
  for (int64_t i = 0; i < c.numel(); ++i) s += c.data<double>()[i] * c.data<double>()[i];
  return std::sqrt(s / static_cast<double>(std::max<int64_t>(c.numel(), 1)));
}
}  // namespace

Tensor Model::forward(const Tensor& ids, std::vector<std::pair<std::string, double>>* rms) const {
  Tensor logits = parallel::gather_from_tp(local_logits(ids, rms), tp_);
  if (rms) rms->emplace_back("logits", rms_of(logits));
  return logits;
}

Tensor Model::local_logits(const Tensor& ids, std::vector<std::pair<std::string, double>>* rms) const {
  HS_CHECK(ids.dim() == 2, "model.forward: ids must be [B, T], got ", shape_str(ids.shape()));
  const int64_t B = ids.size(0), T = ids.size(1);
  prof::Scope ps("embed");
  const Tensor table = cw(wte);  // one compute copy per forward, shared by a tied LM head
  Tensor x = parallel::vocab_parallel_embedding(ids, table, tp_);  // [B, T, D]
  if (rms) rms->emplace_back("embedding", rms_of(x));
  BlockState st;
  for (size_t i = 0; i < blocks.size(); ++i) {
    x = blocks[i]->forward(x, st);
    if (rms) rms->emplace_back("blocks." + std::to_string(i) + " [" + role_code(roles_[i]) + "]", rms_of(x));
  }
  ps.set("head");
  x = ln_f->forward(x);
  if (cfg_.logit_mult != 1.0) x = ops::scale(x, cfg_.logit_mult);
  Tensor xf = parallel::copy_to_tp(x.reshape({B * T, cfg_.d_model}), tp_);
  return lin(xf, cfg_.tie_embeddings ? wte : lm_head);  // tied: the table's own compute copy
}

Tensor Model::loss(const Tensor& ids, const Tensor& targets) const {
  HS_CHECK(targets.shape() == ids.shape(), "model.loss: targets ", shape_str(targets.shape()), " vs ids ",
           shape_str(ids.shape()));
  Tensor logits = local_logits(ids, nullptr);
  prof::Scope ps("head");
  return parallel::vocab_parallel_cross_entropy(logits, targets.reshape({targets.numel()}), tp_);
}

int64_t Model::embedding_params() const { return cfg_.vocab_size * cfg_.d_model * (cfg_.tie_embeddings ? 1 : 2); }

// Global counts (every tensor at its global shape), whatever the tensor-parallel layout.
int64_t Model::non_embedding_params() const {
  int64_t n = 0;
  const auto specs = named_shard_specs();
  const auto params = named_parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, t] = params[i];
    if (t.dim() == 2 && name != "wte" && name != "lm_head" && !ends_with(name, "conv1d.weight") &&
        !ends_with(name, ".A_log"))
      n += shape_numel(global_shape(t.shape(), specs[i].second, tp_.size));
  }
  return n;
}

int64_t Model::vector_params() const {
  int64_t n = 0;
  const auto specs = named_shard_specs();
  const auto params = named_parameters();
  for (size_t i = 0; i < params.size(); ++i) n += shape_numel(global_shape(params[i].second.shape(), specs[i].second, tp_.size));
  return n - non_embedding_params() - embedding_params();
}

double Model::train_flops_per_token(int64_t T) const { return nn::train_flops_per_token(cfg_, T); }
std::vector<std::string> Model::layer_summary() const { return nn::layer_summary(cfg_); }

ParamCounts count_parameters(const ModelConfig& c) {
  ParamCounts pc;
  const int64_t D = c.d_model, I = c.mlp_hidden, H = c.n_heads, Hk = c.n_kv_heads, hd = c.head_dim;
  const int64_t di = c.expand * D, R = c.dt_rank > 0 ? c.dt_rank : (D + 15) / 16, N = c.d_state;
  const bool da = effective_diff(c);
  pc.embedding = c.vocab_size * D * (c.tie_embeddings ? 1 : 2);
  pc.vectors = D;  // ln_f
  for (Role r : layer_roles(c)) {
    pc.matrices += 3 * D * I;
    pc.vectors += 2 * D;
    switch (r) {
      case Role::Attn:
      case Role::SWA:
      case Role::SharedKV: pc.matrices += D * (H + 2 * Hk) * hd + H * hd * D; break;
      case Role::Cross: pc.matrices += 2 * D * H * hd; break;
      case Role::Mamba:
      case Role::MambaMem:
        pc.matrices += 2 * di * D + (R + 2 * N) * di + di * R + D * di;
        pc.vectors += di * c.d_conv + di + di + di * N + di;
        break;
      case Role::GMU: pc.matrices += 2 * D * di; break;
    }
    if (da && r != Role::Mamba && r != Role::MambaMem && r != Role::GMU) pc.vectors += 6 * hd;
  }
  return pc;
}

double train_flops_per_token(const ModelConfig& c, int64_t T) {
  const auto roles_ = layer_roles(c);
  // Matmuls: 2 FLOPs per multiply-add, x3 for forward + backward, incl. the LM head.
  double f = 6.0 * static_cast<double>(count_parameters(c).matrices + c.vocab_size * c.d_model);
  const double Td = static_cast<double>(T);
  auto mean_visible = [&](int64_t W) {  // mean number of keys a query sees
    if (W <= 0 || W >= T) return (Td + 1.0) / 2.0;
    const double w = static_cast<double>(W);
    return (w * (w + 1.0) / 2.0 + (Td - w) * w) / Td;
  };
  // Per visible (query, key) pair and head: QK^T 2 hd + PV 2 hd; differential attention runs
  // two branches on H/2 heads with a 2 hd value: 2 hd + 4 hd per head.
  const double per_pair = (effective_diff(c) ? 6.0 : 4.0) * c.n_heads * c.head_dim;
  const double di = static_cast<double>(c.expand * c.d_model);
  for (Role r : roles_) {
    switch (r) {
      case Role::Attn:
      case Role::SharedKV:
      case Role::Cross: f += 3.0 * per_pair * mean_visible(0); break;
      case Role::SWA: f += 3.0 * per_pair * mean_visible(effective_window(c)); break;
      case Role::Mamba:
      case Role::MambaMem:
        // scan: ~7 FLOPs per (channel, state) and step (dt*A, exp, a*h, + dt*B*u, C*h, +), conv 2K per channel
        f += 3.0 * (7.0 * di * c.d_state + 2.0 * c.d_conv * di);
        break;
      case Role::GMU: break;  // its two matmuls are in the matrix count; the gate is elementwise
    }
  }
  return f;
}

std::vector<std::string> layer_summary(const ModelConfig& c) {
  const auto roles_ = layer_roles(c);
  std::vector<std::string> out;
  const std::string pos = effective_rope(c) ? "RoPE" : "NoPE";
  const std::string da = effective_diff(c) ? ", differential" : "";
  const std::string heads = "H=" + std::to_string(c.n_heads) + ", Hkv=" + std::to_string(c.n_kv_heads) +
                            ", hd=" + std::to_string(c.head_dim);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    std::string s = "blocks." + std::to_string(i) + " [" + role_code(roles_[i]) + "] ";
    switch (roles_[i]) {
      case Role::Attn: s += "full causal attention (" + heads + ", " + pos + da + ")"; break;
      case Role::SWA:
        s += "sliding-window attention (W=" + std::to_string(effective_window(c)) + ", " + heads + ", " + pos + da + ")";
        break;
      case Role::SharedKV: s += "full attention, its K/V shared with the cross-decoder (" + heads + ", " + pos + da + ")"; break;
      case Role::Cross: s += "cross-attention over the shared KV (" + heads + ", " + pos + da + ")"; break;
      case Role::Mamba: s += "Mamba-1 (d_inner " + std::to_string(c.expand * c.d_model) + ", d_state " + std::to_string(c.d_state) + ")"; break;
      case Role::MambaMem: s += "Mamba-1 exporting the GMU memory (d_inner " + std::to_string(c.expand * c.d_model) + ")"; break;
      case Role::GMU: s += "GMU over the memory (d_mem " + std::to_string(c.expand * c.d_model) + ")"; break;
    }
    out.push_back(s + " + SwiGLU MLP (hidden " + std::to_string(c.mlp_hidden) + ")");
  }
  return out;
}

}  // namespace hyscale::nn
