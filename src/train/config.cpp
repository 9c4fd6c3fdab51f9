#include "train/config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

#include "core/error.h"

namespace hyscale::train {

namespace {

enum class Kind { Int, Float, Bool, String };

struct Field {
  std::string key;  // "section.name"
  Kind kind;
  void* ptr;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> allowed;  // for strings; empty = any non-empty string
  std::string help;
  bool allow_empty = false;          // for strings that mean "derive" when empty
};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Int: return "an integer";
    case Kind::Float: return "a number";
    case Kind::Bool: return "a boolean (true/false)";
    case Kind::String: return "a string";
  }
  return "?";
}

constexpr double kInf = std::numeric_limits<double>::infinity();

// The schema: every configurable key, its type, range and meaning.
std::vector<Field> schema(RunConfig& c) {
  auto I = [](std::string k, int64_t* p, double lo, double hi, std::string h) {
    return Field{std::move(k), Kind::Int, p, lo, hi, {}, std::move(h)};
  };
  auto F = [](std::string k, double* p, double lo, double hi, std::string h) {
    return Field{std::move(k), Kind::Float, p, lo, hi, {}, std::move(h)};
  };
  auto B = [](std::string k, bool* p, std::string h) { return Field{std::move(k), Kind::Bool, p, 0, 1, {}, std::move(h)}; };
  auto S = [](std::string k, std::string* p, std::vector<std::string> allowed, std::string h) {
    return Field{std::move(k), Kind::String, p, 0, 0, std::move(allowed), std::move(h)};
  };
  auto& m = c.model;
  auto& o = c.optimizer;
  auto& s = c.schedule;
  auto& t = c.training;
  auto& l = c.logging;
  auto& k = c.checkpointing;
  return {
      S("name", &c.name, {}, "run name; the run directory is <out_dir>/<name>"),
      S("out_dir", &c.out_dir, {}, "parent directory of run directories"),
      Field{"base_hps", Kind::String, &c.base_hps, 0, 0, {},
            "YAML file of base.* values (configs/base_hps/paper_era.yaml or head.yaml); empty = built-in paper-era set",
            true},
      I("base.d0", &c.base.d0, 1, 1e6, "muP++ base depth d0"),
      F("base.eta0", &c.base.eta0, 0, kInf, "base learning rate eta0"),
      F("base.b0", &c.base.b0, 1, kInf, "base batch in tokens b0"),
      F("base.t0", &c.base.t0, 0, kInf, "base token budget t0 (train tokens = t0 * N / n0)"),
      I("base.hd0", &c.base.hd0, 1, 1e6, "base head dim (muP++ attention scale sqrt(hd0)/hd)"),
      F("base.w_init", &c.base.w_init, 0, kInf, "hidden-matrix init multiplier"),
      F("base.n0_mult", &c.base.n0_mult, 0, kInf, "n0 = n0_mult * d0^3"),
      F("base.weight_decay", &c.base.weight_decay, 0, kInf, "base weight decay (matrices)"),
      F("base.warmup_tokens", &c.base.warmup_tokens, 0, kInf, "warmup tokens when schedule.warmup_steps is 0"),
      I("model.depth", &c.scaling.depth, 0, 4096,
        "muP++ depth d: L = d, D = ar d, heads d, KV heads d/4, head_dim hd0, MLP 4D (each overridable); 0 = off"),
      I("model.ar", &c.scaling.ar, 0, 1e6, "aspect ratio D/d under model.depth; under mup/mupp also the base width D0 = ar d0; 0 = the architecture's"),
      S("model.parametrization", &c.scaling.parametrization, {"sp", "mup", "mupp"},
        "sp | mup | mupp: learning rates, multipliers and init per SPEC §6.2"),
      I("model.non_embedding_params", &c.scaling.non_embedding_params, 0, 9e18,
        "derived, written by hyscale (any given value is replaced): non-embedding matrix parameters N"),
      F("model.paper_flops_per_token", &c.scaling.paper_flops_per_token, 0, kInf,
        "derived, written by hyscale: 6 * 14.5 * 128^2 * d^3, the paper's FLOPs x-axis per token (0 without depth)"),
      S("model.arch", &m.arch, {"transformer", "transformerls", "samba", "sambayoco", "sambay", "sambayda", "swayoco"},
        "architecture (SPEC §1.2); sets the layer roles unless model.pattern is given"),
      Field{"model.pattern", Kind::String, &m.pattern, 0, 0, {},
            "explicit layer roles, e.g. MSMSM*FGX (A full attn, S SWA, M Mamba, M* Mamba exporting the memory, "
            "F full attn sharing its KV, G GMU, X cross-attn); empty = from model.arch",
            true},
      I("model.vocab_size", &m.vocab_size, 0, 1e9, "padded vocabulary; 0 = from the dataset"),
      I("model.n_layers", &m.n_layers, 0, 4096, "number of blocks L (0 = the length of model.pattern)"),
      I("model.d_model", &m.d_model, 0, 1e6, "model width D; 0 = ar * depth"),
      I("model.n_heads", &m.n_heads, 0, 4096, "query heads; 0 = depth"),
      I("model.n_kv_heads", &m.n_kv_heads, 0, 4096, "KV heads (GQA); 0 = n_heads"),
      I("model.head_dim", &m.head_dim, 0, 4096, "head dimension; 0 = d_model / n_heads"),
      I("model.mlp_hidden", &m.mlp_hidden, 0, 1e7, "SwiGLU hidden size I; 0 = 4 * d_model"),
      I("model.window", &m.window, 0, 1e9, "SWA window, visible keys incl. self; 0 = arch default (128; samba 2048)"),
      S("model.rope", &m.rope, {"auto", "on", "off"}, "RoPE: auto = per arch (off for sambay, sambayda, sambayoco)"),
      S("model.diff_attn", &m.diff_attn, {"auto", "on", "off"}, "differential attention: auto = on for sambayda"),
      I("model.d_state", &m.d_state, 1, 1024, "Mamba state size N"),
      I("model.d_conv", &m.d_conv, 1, 8, "Mamba causal conv width"),
      I("model.expand", &m.expand, 1, 16, "Mamba d_inner = expand * d_model"),
      I("model.dt_rank", &m.dt_rank, 0, 1e6, "Mamba dt rank; 0 = ceil(d_model / 16)"),
      I("model.scan_chunk", &m.scan_chunk, 1, 1e9, "selective-scan steps between states saved for backward"),
      B("model.tie_embeddings", &m.tie_embeddings, "share the embedding with the LM head"),
      F("model.rope_base", &m.rope_base, 1e-300, kInf, "RoPE base"),
      F("model.norm_eps", &m.norm_eps, 1e-300, 1, "RMSNorm epsilon"),
      F("model.residual_mult", &m.residual_mult, 0, kInf, "multiplier r on every mixer/MLP output"),
      F("model.logit_mult", &m.logit_mult, 0, kInf, "multiplier on ln_f(x) before the LM head"),
      F("model.attn_scale", &m.attn_scale, 0, kInf, "softmax scale; 0 = 1/sqrt(head_dim)"),
      S("model.init", &m.init, {"normal", "uniform"},
        "linear-weight init: normal N(0, init_std^2) (sp) or uniform U(+-w_init/sqrt(fan_in)) (mup, mupp)"),
      F("model.init_std", &m.init_std, 0, kInf, "std of every linear weight under init: normal"),
      B("model.zero_readout", &m.zero_readout, "initialise lm_head to zero (mup/mupp, untied)"),
      F("model.embed_init_std", &m.embed_init_std, 0, kInf, "std of an untied embedding"),
      B("model.scale_out_proj_init", &m.scale_out_proj_init, "divide attn.proj and mlp.w3 init by sqrt(2L)"),
      F("optimizer.lr", &o.lr, 0, kInf, "peak learning rate; 0 = eta0 sqrt(b/b0) (x sqrt(d0/d) under mupp)"),
      F("optimizer.beta1", &o.beta1, 0, 0.999999, "AdamW beta1"),
      F("optimizer.beta2", &o.beta2, 0, 0.999999999, "AdamW beta2"),
      F("optimizer.eps", &o.eps, 1e-30, 1, "AdamW epsilon (> 0)"),
      F("optimizer.weight_decay", &o.weight_decay, 0, kInf, "decoupled weight decay of matrices"),
      F("optimizer.vector_weight_decay", &o.vector_weight_decay, 0, kInf,
        "weight decay of vectors, embeddings and LM head"),
      F("optimizer.matrix_lr_mult", &o.matrix_lr_mult, 0, kInf, "learning-rate multiplier of matrices"),
      F("optimizer.vector_lr_mult", &o.vector_lr_mult, 0, kInf, "learning-rate multiplier of vectors"),
      F("optimizer.grad_clip", &o.grad_clip, 0, kInf, "global gradient-norm clip; 0 = off"),
      I("schedule.warmup_steps", &s.warmup_steps, 0, 1e12, "linear warmup steps"),
      S("schedule.decay", &s.decay, {"linear", "cosine", "constant"}, "decay after warmup"),
      F("schedule.min_lr_ratio", &s.min_lr_ratio, 0, 1, "final lr as a fraction of the peak"),
      S("data.path", &c.data.path, {}, "directory written by `hyscale prepare`"),
      I("training.batch_size", &t.batch_size, 1, 1e7, "sequences per micro-batch per data-parallel rank"),
      I("training.seq_len", &t.seq_len, 1, 1e7, "tokens per sequence"),
      I("training.grad_accum", &t.grad_accum, 1, 1e6, "micro-batches per optimizer step"),
      I("training.max_steps", &t.max_steps, 0, 1e12, "optimizer steps; 0 = from max_tokens or the muP++ budget"),
      I("training.max_tokens", &t.max_tokens, 0, 9e18, "training tokens (sets max_steps); 0 = unused"),
      I("training.seed", &t.seed, 0, 9.0e18, "seed of init and data order"),
      I("training.threads", &t.threads, 0, 4096, "CPU threads; 0 = all cores"),
      S("training.device", &t.device, {}, "compute device: cpu, cuda (= cuda:0) or cuda:N"),
      S("training.precision", &t.precision, {"fp32", "bf16"},
        "fp32, or bf16 (cuda only): bf16 weight copies and activations, fp32 master weights, gradients and optimizer"),
      B("training.deterministic", &t.deterministic,
        "cuda: bit-identical reruns (fixed-order reductions); false lets the selective-scan backward add dB/dC "
        "with atomics"),
      B("training.weight_copies", &t.weight_copies,
        "cuda, bf16: keep bf16 copies of the weights that the AdamW step rewrites, instead of casting every weight "
        "in every forward (false: cast per forward)"),
      I("logging.log_interval", &l.log_interval, 1, 1e12, "optimizer steps between log lines"),
      I("logging.eval_interval", &l.eval_interval, 0, 1e12, "steps between evaluations; 0 = at the end only"),
      I("logging.eval_batches", &l.eval_batches, 1, 1e9, "validation batches (of batch_size x dp sequences) per evaluation"),
      F("logging.peak_flops", &l.peak_flops, 0, kInf,
        "peak FLOP/s of the whole job (e.g. 989e12 x GPUs for H100 bf16) for MFU; 0 = no MFU"),
      I("parallel.tp", &c.parallel.tp, 1, 4096,
        "tensor-parallel size (ranks per tp group, consecutive ranks); data-parallel size = ranks / tp"),
      I("parallel.zero", &c.parallel.zero, 0, 1, "1 = ZeRO-1: AdamW moments sharded over the data-parallel group"),
      F("parallel.bucket_mb", &c.parallel.bucket_mb, 0.001, 1e6,
        "data-parallel gradient bucket size in MiB (each bucket is reduced as soon as backward fills it)"),
      I("checkpointing.interval", &k.interval, 0, 1e12, "steps between checkpoints; 0 = at the end only"),
      I("checkpointing.keep_last", &k.keep_last, 1, 1e6, "checkpoints kept on disk"),
  };
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

void set_field(const Field& f, const std::string& raw_in, const std::string& origin) {
  const std::string raw = trim(raw_in);
  auto bad_type = [&]() {
    HS_FAIL(origin, ": key '", f.key, "' expects ", kind_name(f.kind), ", got '", raw, "'");
  };
  auto range = [&](double v) {
    if (!(v >= f.min && v <= f.max))
      HS_FAIL(origin, ": key '", f.key, "' = ", raw, " is out of range [", f.min, ", ", f.max, "]");
  };
  switch (f.kind) {
    case Kind::Int: {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), v);
      if (ec != std::errc() || p != raw.data() + raw.size() || raw.empty()) {
        // Accept integral floats written as 1e6.
        char* end = nullptr;
        double d = std::strtod(raw.c_str(), &end);
        if (raw.empty() || *end != '\0' || !std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.2e18) bad_type();
        v = static_cast<int64_t>(d);
      }
      range(static_cast<double>(v));
      *static_cast<int64_t*>(f.ptr) = v;
      break;
    }
    case Kind::Float: {
      char* end = nullptr;
      double d = std::strtod(raw.c_str(), &end);
      if (raw.empty() || *end != '\0' || std::isnan(d)) bad_type();
      if (!std::isfinite(d)) HS_FAIL(origin, ": key '", f.key, "' = ", raw, " must be a finite number");
      range(d);
      *static_cast<double*>(f.ptr) = d;
      break;
    }
    case Kind::Bool: {
      bool b;
      if (raw == "true" || raw == "True" || raw == "yes" || raw == "on" || raw == "1")
        b = true;
      else if (raw == "false" || raw == "False" || raw == "no" || raw == "off" || raw == "0")
        b = false;
      else
        bad_type();
      *static_cast<bool*>(f.ptr) = b;
      break;
    }
    case Kind::String: {
      if (raw.empty() && !f.allow_empty) HS_FAIL(origin, ": key '", f.key, "' must not be empty");
      if (raw.empty()) {
        *static_cast<std::string*>(f.ptr) = raw;
        break;
      }
      if (!f.allowed.empty() && std::find(f.allowed.begin(), f.allowed.end(), raw) == f.allowed.end())
        HS_FAIL(origin, ": key '", f.key, "' = '", raw, "' is not allowed (allowed values: ", join(f.allowed), ")");
      *static_cast<std::string*>(f.ptr) = raw;
      break;
    }
  }
}

const Field* find_field(const std::vector<Field>& fs, const std::string& key) {
  for (auto& f : fs)
    if (f.key == key) return &f;
  return nullptr;
}

[[noreturn]] void unknown_key(const std::vector<Field>& fs, const std::string& key, const std::string& origin) {
  std::string section = key.substr(0, key.find('.') == std::string::npos ? 0 : key.rfind('.'));
  std::vector<std::string> allowed;
  for (auto& f : fs) {
    std::string fsec = f.key.find('.') == std::string::npos ? "" : f.key.substr(0, f.key.rfind('.'));
    if (fsec == section) allowed.push_back(f.key);
  }
  if (allowed.empty())
    for (auto& f : fs) {
      std::string top = f.key.substr(0, f.key.find('.'));
      if (std::find(allowed.begin(), allowed.end(), top) == allowed.end()) allowed.push_back(top);
    }
  HS_FAIL(origin, ": unknown key '", key, "' (allowed here: ", join(allowed), ")");
}

void walk(const YAML::Node& node, const std::string& prefix, const std::vector<Field>& fs, const std::string& origin) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string name = it->first.as<std::string>();
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    const YAML::Node& v = it->second;
    if (v.IsMap()) {
      bool is_section = false;
      for (auto& f : fs)
        if (f.key.rfind(key + ".", 0) == 0) is_section = true;
      if (!is_section) {
        if (find_field(fs, key)) HS_FAIL(origin, ": key '", key, "' expects a single value, got a mapping");
        unknown_key(fs, key, origin);
      }
      walk(v, key, fs, origin);
    } else if (v.IsScalar()) {
      const Field* f = find_field(fs, key);
      if (!f) {
        for (auto& g : fs)
          if (g.key.rfind(key + ".", 0) == 0) HS_FAIL(origin, ": '", key, "' is a section and needs a mapping of keys");
        unknown_key(fs, key, origin);
      }
      set_field(*f, v.Scalar(), origin);
    } else if (v.IsNull()) {
      if (!find_field(fs, key)) {
        bool is_section = false;
        for (auto& f : fs)
          if (f.key.rfind(key + ".", 0) == 0) is_section = true;
        if (!is_section) unknown_key(fs, key, origin);
        continue;  // empty section
      }
      const Field* f = find_field(fs, key);
      if (f->allow_empty) {
        set_field(*f, "", origin);
        continue;
      }
      HS_FAIL(origin, ": key '", key, "' has no value");
    } else {
      HS_FAIL(origin, ": key '", key, "' must be a scalar or a section, got a list");
    }
  }
}

void apply_overrides(RunConfig& cfg, const std::vector<std::string>& overrides) {
  auto fs = schema(cfg);
  for (auto& o : overrides) {
    auto eq = o.find('=');
    HS_CHECK(eq != std::string::npos && eq > 0, "--set '", o, "': expected key=value (e.g. training.max_steps=100)");
    std::string key = trim(o.substr(0, eq));
    const Field* f = find_field(fs, key);
    if (!f) unknown_key(fs, key, "--set");
    set_field(*f, o.substr(eq + 1), "--set");
  }
}

}  // namespace

RunConfig parse_config(const std::string& text, const std::string& origin, const std::vector<std::string>& overrides) {
  RunConfig cfg;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    HS_FAIL(origin, ": invalid YAML: ", e.what());
  }
  if (!root.IsNull()) {
    HS_CHECK(root.IsMap(), origin, ": the top level must be a mapping of sections (model:, training:, ...)");
    auto fs = schema(cfg);
    walk(root, "", fs, origin);
  }
  apply_overrides(cfg, overrides);
  if (!cfg.base_hps.empty()) {
    // Precedence: built-in defaults < base_hps file < this config < --set.
    RunConfig layered;
    {
      std::ifstream in(cfg.base_hps);
      HS_CHECK(in.good(), origin, ": base_hps file '", cfg.base_hps, "' cannot be read");
      std::stringstream ss;
      ss << in.rdbuf();
      YAML::Node b;
      try {
        b = YAML::Load(ss.str());
      } catch (const YAML::Exception& e) {
        HS_FAIL(cfg.base_hps, ": invalid YAML: ", e.what());
      }
      HS_CHECK(b.IsMap() && b.size() == 1 && b["base"], cfg.base_hps,
               ": a base_hps file holds one section 'base:' with the base hyper-parameters");
      auto fs = schema(layered);
      walk(b, "", fs, cfg.base_hps);
    }
    if (!root.IsNull()) {
      auto fs = schema(layered);
      walk(root, "", fs, origin);
    }
    apply_overrides(layered, overrides);
    cfg = layered;
  }
  return cfg;
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  HS_CHECK(in.good(), "cannot read config file '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path, overrides);
}

int64_t default_aspect_ratio(const std::string& arch) {
  if (arch == "samba") return 122;
  if (arch == "sambay" || arch == "sambayda") return 124;
  if (arch == "sambayoco") return 126;
  if (arch == "swayoco") return 130;
  return 128;  // transformer, transformerls
}

double leading_order_params(const std::string& arch, double ar, double d) {
  double mult = 0;
  if (arch == "transformer" || arch == "transformerls") mult = 14.5 * ar * ar;
  else if (arch == "samba") mult = 15 * ar * ar + 160 * ar;
  else if (arch == "sambay" || arch == "sambayda") mult = 14.5 * ar * ar + 144 * ar;
  else if (arch == "sambayoco") mult = 13.5 * ar * ar + 208 * ar;
  else if (arch == "swayoco") mult = 12 * ar * ar + 288 * ar;
  return mult * d * d * d;
}

void resolve_config(RunConfig& cfg, int64_t vocab_from_data, int world) {
  auto& m = cfg.model;
  auto& sc = cfg.scaling;
  auto& o = cfg.optimizer;
  auto& t = cfg.training;
  const auto& base = cfg.base;
  if (m.vocab_size == 0) {
    HS_CHECK(vocab_from_data > 0, "model.vocab_size is 0 (from data) but no dataset vocabulary is known");
    m.vocab_size = vocab_from_data;
  }
  HS_CHECK(vocab_from_data <= 0 || m.vocab_size >= vocab_from_data, "model.vocab_size = ", m.vocab_size,
           " is smaller than the dataset's vocabulary (", vocab_from_data, ")");
  // ---- widths from one depth knob (SPEC §6.1); every derived value can be overridden
  if (sc.depth > 0) {
    const int64_t d = sc.depth;
    HS_CHECK(m.n_layers == 0 || m.n_layers == d, "model.n_layers (", m.n_layers, ") conflicts with model.depth (", d,
             "); leave model.n_layers at 0");
    m.n_layers = d;
    if (sc.ar == 0) sc.ar = default_aspect_ratio(m.arch);
    if (m.d_model == 0) m.d_model = sc.ar * d;
    if (m.n_heads == 0) m.n_heads = d;
    if (m.n_kv_heads == 0) {
      HS_CHECK(d % 4 == 0, "model.depth = ", d, ": KV heads = d/4 needs d divisible by 4; set model.n_kv_heads");
      m.n_kv_heads = d / 4;
    }
    if (m.head_dim == 0) m.head_dim = base.hd0;
  }
  if (m.n_layers == 0 && !m.pattern.empty()) m.n_layers = static_cast<int64_t>(nn::parse_pattern(m.pattern).size());
  HS_CHECK(m.n_layers > 0, "model.n_layers must be positive (or set model.depth or model.pattern)");
  HS_CHECK(m.d_model > 0 && m.n_heads > 0, "model.d_model and model.n_heads must be positive (or set model.depth)");
  if (m.n_kv_heads == 0) m.n_kv_heads = m.n_heads;
  if (m.head_dim == 0) {
    HS_CHECK(m.d_model % m.n_heads == 0, "model.head_dim = 0 needs model.d_model (", m.d_model,
             ") divisible by model.n_heads (", m.n_heads, "); set model.head_dim explicitly");
    m.head_dim = m.d_model / m.n_heads;
  }
  if (m.mlp_hidden == 0) m.mlp_hidden = 4 * m.d_model;
  // Architecture defaults written out, so config.resolved.yaml states them.
  if (m.window == 0) m.window = nn::effective_window(m);
  m.rope = nn::effective_rope(m) ? "on" : "off";
  m.diff_attn = nn::effective_diff(m) ? "on" : "off";
  if (m.dt_rank == 0) m.dt_rank = (m.d_model + 15) / 16;
  nn::validate_model_config(m);
  sc.non_embedding_params = nn::count_parameters(m).matrices;
  // SPEC §7: every architecture is placed on the Transformer++ axis 6 N T, N = 14.5 128^2 d^3.
  sc.paper_flops_per_token = sc.depth > 0 ? 6.0 * leading_order_params("transformer", 128, static_cast<double>(sc.depth)) : 0.0;

  // ---- parametrisation (SPEC §6.2, §6.3)
  // The paper ties width to depth (D = ar d) and uses one ratio r = d0/d for both the width rules
  // (matrix lr 1/w, logit multiplier 1/w) and the Depth-muP lr factor sqrt(r). hyscale keeps the
  // two apart so a width is never mistaken for a depth: r_d = d0 / L for the depth rules and
  // r_w = D0 / D for the width rules, with base width D0 = ar d0. Whenever D = ar d (every config
  // the depth knob derives) r_w = r_d = d0/d and the numbers are the paper's; they differ only when
  // model.d_model is overridden, or in a fixed-depth width sweep (coord-check), where the width
  // rules alone must keep activations flat.
  const std::string& par = sc.parametrization;
  const bool mu = par == "mup" || par == "mupp", mupp = par == "mupp";
  const double d = static_cast<double>(m.n_layers), r_d = static_cast<double>(base.d0) / d;
  if (mu && sc.ar == 0) sc.ar = default_aspect_ratio(m.arch);  // written out: it fixes D0
  const double ar = static_cast<double>(sc.ar > 0 ? sc.ar : default_aspect_ratio(m.arch));
  const double r_w = ar * static_cast<double>(base.d0) / static_cast<double>(m.d_model);
  const double tokens_per_step = static_cast<double>(t.batch_size * t.seq_len * t.grad_accum) * std::max(world, 1);
  if (o.lr == 0) o.lr = base.eta0 * std::sqrt(tokens_per_step / base.b0) * (mupp ? std::sqrt(r_d) : 1.0);
  if (mu) {
    o.matrix_lr_mult = r_w;  // hidden matrices: lr / w
    o.vector_lr_mult = 1.0;
    m.logit_mult = r_w;      // ln_f(x) / w before the LM head
    m.attn_scale = std::sqrt(static_cast<double>(base.hd0)) / static_cast<double>(m.head_dim);
    m.init = "uniform";
    m.w_init = base.w_init;
    m.zero_readout = !m.tie_embeddings;
    m.embed_init_std = 1e-4;  // untied "RWKV init"; tied uses 0.02
    o.weight_decay = base.weight_decay;
    o.vector_weight_decay = mupp ? 0.0 : base.weight_decay;  // no weight decay on vectors under muP++
  }
  if (mupp) m.residual_mult = 1.0 / std::sqrt(2.0 * d);  // Depth-muP branch multiplier
  // GPT-2 init scaling of out-projections: SP, or muP(++) with tied embeddings (SPEC §6.3 quirk).
  if (mu) m.scale_out_proj_init = m.tie_embeddings;

  // ---- token budget and warmup in steps (SPEC §6.4, §6.5)
  if (t.max_steps == 0) {
    double tokens = static_cast<double>(t.max_tokens);
    if (tokens == 0) {
      HS_CHECK(sc.depth > 0, "training.max_steps = 0 needs training.max_tokens or model.depth (token budget)");
      // The paper's budget uses SPEC §6.5's leading-order N(d) = mult(ar) d^3 (not the exact
      // count, which is a few % higher); an explicit model.pattern has no formula: exact count.
      const double n0 = base.n0_mult * std::pow(static_cast<double>(base.d0), 3);
      const double n = m.pattern.empty() ? leading_order_params(m.arch, static_cast<double>(sc.ar), d)
                                         : static_cast<double>(nn::count_parameters(m).matrices);
      tokens = base.t0 * n / n0;
    }
    t.max_steps = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(tokens / tokens_per_step)));
    if (t.max_tokens == 0) t.max_tokens = static_cast<int64_t>(tokens);
  } else if (t.max_tokens > 0) {
    HS_CHECK(static_cast<double>(t.max_steps) * tokens_per_step >= static_cast<double>(t.max_tokens) &&
                 static_cast<double>(t.max_steps - 1) * tokens_per_step < static_cast<double>(t.max_tokens),
             "training.max_steps (", t.max_steps, ") and training.max_tokens (", t.max_tokens,
             ") disagree; set only one");
  }
  if (cfg.schedule.warmup_steps == 0 && sc.depth > 0 && base.warmup_tokens > 0)
    cfg.schedule.warmup_steps =
        std::min<int64_t>(t.max_steps, static_cast<int64_t>(std::llround(base.warmup_tokens / tokens_per_step)));
  HS_CHECK(cfg.schedule.warmup_steps <= t.max_steps, "schedule.warmup_steps (", cfg.schedule.warmup_steps,
           ") exceeds training.max_steps (", t.max_steps, ")");
  HS_CHECK(cfg.name.find('/') == std::string::npos && cfg.name != "." && cfg.name != "..",
           "name: '", cfg.name, "' must be a plain directory name");
}

std::string to_yaml(const RunConfig& cfg_in) {
  RunConfig cfg = cfg_in;
  auto fs = schema(cfg);
  YAML::Emitter out;
  out.SetDoublePrecision(17);
  out << YAML::BeginMap;
  std::string open_section;
  for (auto& f : fs) {
    auto dot = f.key.find('.');
    std::string section = dot == std::string::npos ? "" : f.key.substr(0, dot);
    std::string leaf = dot == std::string::npos ? f.key : f.key.substr(dot + 1);
    if (section != open_section) {
      if (!open_section.empty()) out << YAML::EndMap;
      if (!section.empty()) out << YAML::Key << section << YAML::Value << YAML::BeginMap;
      open_section = section;
    }
    out << YAML::Key << leaf << YAML::Value;
    switch (f.kind) {
      case Kind::Int: out << *static_cast<int64_t*>(f.ptr); break;
      case Kind::Float: out << *static_cast<double*>(f.ptr); break;
      case Kind::Bool: out << *static_cast<bool*>(f.ptr); break;
      case Kind::String: out << *static_cast<std::string*>(f.ptr); break;
    }
  }
  if (!open_section.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string describe_keys() {
  RunConfig cfg;
  auto fs = schema(cfg);
  std::ostringstream os;
  for (auto& f : fs) {
    os << f.key << " (" << kind_name(f.kind);
    if (!f.allowed.empty()) os << ": " << join(f.allowed);
    os << "; default ";
    switch (f.kind) {
      case Kind::Int: os << *static_cast<int64_t*>(f.ptr); break;
      case Kind::Float: os << *static_cast<double*>(f.ptr); break;
      case Kind::Bool: os << (*static_cast<bool*>(f.ptr) ? "true" : "false"); break;
      case Kind::String: os << *static_cast<std::string*>(f.ptr); break;
    }
    os << ") — " << f.help << "\n";
  }
  return os.str();
}

}  // namespace hyscale::train
