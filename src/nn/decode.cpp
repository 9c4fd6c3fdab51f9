// Step-wise decoding of every architecture (attention KV caches and ring buffers, Mamba conv
// and SSM states, the shared KV and the per-step GMU memory). All under NoGrad.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/ops.h"
#include "core/ops_util.h"
#include "kernels/attention.h"
#include "kernels/conv1d.h"
#include "kernels/selective_scan.h"
#include "core/storage.h"
#include "nn/model.h"
#ifdef HYSCALE_WITH_CUDA
#include "kernels/cuda_attention.h"
#include "kernels/cuda_hybrid.h"
#endif

namespace hyscale::nn {

namespace kc = hyscale::kernels::cpu;

namespace {
// Calls fn(T{}) for the tensor's dtype (f32 or f64).
template <class F> void by_dtype(DType t, F&& fn) {
  HS_CHECK(t == DType::f32 || t == DType::f64, "decode: parameters must be f32 or f64, got ", dtype_name(t));
  if (t == DType::f32)
    fn(float{});
  else
    fn(double{});
}

#ifdef HYSCALE_WITH_CUDA
namespace kg = hyscale::kernels::cuda;
// Device tensors: fn(T{}) with T = float or the bf16 storage type.
template <class F> void by_device_dtype(DType t, F&& fn) {
  HS_CHECK(t == DType::f32 || t == DType::bf16, "decode on a GPU: tensors must be f32 or bf16, got ", dtype_name(t));
  if (t == DType::f32)
    fn(float{});
  else
    fn(kg::bf16{});
}
template <class T> T* dp(const Tensor& t) { return static_cast<T*>(t.raw_data()); }
#endif

}  // namespace

// ---------------------------------------------------------------- attention
Tensor Attention::attend_cache(const Tensor& q, const Tensor& kc_, const Tensor& vc_,
                               const std::vector<int64_t>& n_valid, const Tensor* n_valid_dev) const {
  const int64_t B = q.size(0), H = cfg_.n_heads, Hk = cfg_.n_kv_heads, hd = cfg_.head_dim, cap = kc_.size(1);
  HS_CHECK(kc_.is_contiguous() && vc_.is_contiguous(), "decode: KV caches must be contiguous");
  HS_CHECK(kc_.device() == q.device() && kc_.dtype() == q.dtype(), "decode: KV cache ", kc_.desc(),
           " does not match the queries ", q.desc(), " (make the decode state after moving the model)");
  Tensor nv_dev;  // device: pos + 1 per row; the kernel clamps it to this cache's slots
  if (q.device().is_cuda())
    nv_dev = n_valid_dev != nullptr ? *n_valid_dev
                                     : Tensor::from_vector<int64_t>(n_valid, {B}).to(q.device());
  // The caches are read in place (never copied): K of KV head g of slot j at offset
  // koff + j k_pos + g k_head, V likewise.
  auto decode = [&](const Tensor& qq, int64_t Hq, int64_t Hkv, int64_t Dv, int64_t koff, int64_t k_head,
                    int64_t v_head) {
    Tensor qc = qq.contiguous();
    Tensor out = Tensor::empty({B, Hq, Dv}, q.dtype(), q.device());
    if (q.device().is_cuda()) {
#ifdef HYSCALE_WITH_CUDA
      by_device_dtype(q.dtype(), [&](auto z) {
        using T = decltype(z);
        kg::attention_decode<T>(dp<T>(qc), dp<T>(kc_) + koff, dp<T>(vc_), dp<T>(out), B, Hq, Hkv, hd, Dv, cap,
                                nv_dev.data<int64_t>(), cfg_.scale, Hk * hd, k_head, Hk * hd, v_head);
      });
#endif
      return out;
    }
    by_dtype(q.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::attention_decode<T>(qc.data<T>(), kc_.data<T>() + koff, vc_.data<T>(), out.data<T>(), B, Hq, Hkv, hd, Dv,
                              cap, n_valid.data(), cfg_.scale, Hk * hd, k_head, Hk * hd, v_head);
    });
    return out;
  };
  if (!cfg_.diff) return decode(q.reshape({B, H, hd}), H, Hk, hd, 0, hd, hd).reshape({B, 1, H * hd});
  // Differential attention: the pairing of `attend`, on the cache. Pair g of KV heads is heads
  // (2g, 2g+1): branch 1 reads K of head 2g, branch 2 of head 2g+1, both the value [v_2g | v_2g+1].
  Tensor qq = q.reshape({B, H / 2, 2 * hd});
  Tensor a1 = decode(qq.slice(2, 0, hd), H / 2, Hk / 2, 2 * hd, 0, 2 * hd, 2 * hd);
  Tensor a2 = decode(qq.slice(2, hd, 2 * hd), H / 2, Hk / 2, 2 * hd, hd, 2 * hd, 2 * hd);
  const double li = lambda_init();
  Tensor lam = ops::diff_lambda(cw_fp32(lambda_q1), cw_fp32(lambda_k1), cw_fp32(lambda_q2), cw_fp32(lambda_k2), li);
  Tensor o = ops::rmsnorm(ops::diff_combine(a1, a2, lam), cw(subln), 1e-5);
  return ops::scale(o, 1.0 - li).reshape({B, 1, H * hd});
}

Tensor Attention::rope_append(const Tensor& qkv, int64_t Hk_app, Tensor* k_cache, Tensor* v_cache,
                              const std::vector<int64_t>& pos, const Tensor* n_tok_dev) const {
  const int64_t B = qkv.size(0), H = cfg_.n_heads, hd = cfg_.head_dim;
  const bool ring = cfg_.window > 0;
  const int64_t cap = Hk_app > 0 ? k_cache->size(1) : 0;
  Tensor src = qkv.contiguous();
  HS_CHECK(src.dim() == 2 && src.size(1) == (H + 2 * Hk_app) * hd, "decode: qkv ", src.desc(), " is not [", B, ", ",
           (H + 2 * Hk_app) * hd, "]");
  if (Hk_app > 0)
    for (const Tensor* c : {k_cache, v_cache})
      HS_CHECK(c->is_contiguous() && c->device() == src.device() && c->dtype() == src.dtype() && c->size(0) == B &&
                   c->size(1) == cap && c->numel() == B * cap * Hk_app * hd,
               "decode: KV cache ", c->desc(), " does not suit ", src.desc(),
               " (make the decode state after moving the model)");
  for (int64_t p : pos)
    HS_CHECK(p >= 0 && (Hk_app == 0 || ring || p < cap), "decode: position ", p, " exceeds the KV cache of ", cap,
             " (max_len)");
  const double base = cfg_.rope ? cfg_.rope_base : 0.0;
  Tensor q = Tensor::empty({B, 1, H, hd}, src.dtype(), src.device());
  if (src.device().is_cuda()) {
#ifdef HYSCALE_WITH_CUDA
    Tensor nt;
    if (n_tok_dev == nullptr) {
      std::vector<int64_t> n(pos);
      for (auto& p : n) ++p;
      nt = Tensor::from_vector<int64_t>(n, {B}).to(src.device());
    }
    const int64_t* n_dev = (n_tok_dev != nullptr ? *n_tok_dev : nt).data<int64_t>();
    by_device_dtype(src.dtype(), [&](auto z) {
      using T = decltype(z);
      kg::decode_rope_append<T>(dp<T>(src), dp<T>(q), Hk_app > 0 ? dp<T>(*k_cache) : nullptr,
                                Hk_app > 0 ? dp<T>(*v_cache) : nullptr, n_dev, B, H, Hk_app, hd, cap, ring, base);
    });
#endif
    return q;
  }
  std::vector<int64_t> n(pos);
  for (auto& p : n) ++p;
  by_dtype(src.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::decode_rope_append<T>(src.data<T>(), q.data<T>(), Hk_app > 0 ? k_cache->data<T>() : nullptr,
                              Hk_app > 0 ? v_cache->data<T>() : nullptr, n.data(), B, H, Hk_app, hd, cap, ring, base);
  });
  return q;
}

Tensor Attention::step(const Tensor& x, Tensor& k_cache, Tensor& v_cache, const std::vector<int64_t>& pos,
                       const Tensor* n_valid_dev) const {
  HS_CHECK(!cfg_.cross, "attention: step() on a cross-attention layer");
  const int64_t B = x.size(0), H = cfg_.n_heads, Hk = cfg_.n_kv_heads, hd = cfg_.head_dim, cap = k_cache.size(1);
  // q rotated, k rotated and v into each row's cache slot: one kernel for the whole batch
  Tensor q = rope_append(lin(x, wqkv).reshape({B, (H + 2 * Hk) * hd}), Hk, &k_cache, &v_cache, pos, n_valid_dev);
  const bool ring = cfg_.window > 0;
  std::vector<int64_t> n_valid(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t p = pos[static_cast<size_t>(b)];
    n_valid[static_cast<size_t>(b)] = ring ? std::min(p + 1, cap) : p + 1;
  }
  return lin(attend_cache(q, k_cache, v_cache, n_valid, n_valid_dev), proj);
}

Tensor Attention::step_cross(const Tensor& x, const Tensor& k_cache, const Tensor& v_cache,
                             const std::vector<int64_t>& pos, const Tensor* n_valid_dev) const {
  HS_CHECK(cfg_.cross, "attention: step_cross() on a self-attention layer");
  const int64_t B = x.size(0);
  Tensor q = rope_append(lin(x, wq).reshape({B, cfg_.n_heads * cfg_.head_dim}), 0, nullptr, nullptr, pos, n_valid_dev);
  std::vector<int64_t> n_valid(pos.size());
  for (size_t b = 0; b < pos.size(); ++b) n_valid[b] = pos[b] + 1;
  return lin(attend_cache(q, k_cache, v_cache, n_valid, n_valid_dev), proj);
}

// ---------------------------------------------------------------- Mamba
Tensor Mamba::step(const Tensor& u, Tensor& conv_state, Tensor& ssm_state, Tensor* memory_out) const {
  const int64_t B = u.size(0), di = d_inner_, R = dt_rank_, N = cfg_.d_state;
  Tensor xz = lin(u, in_proj).reshape({B, 2 * di});
  Tensor x = xz.slice(1, 0, di).contiguous(), z = xz.slice(1, di, 2 * di).contiguous();
  Tensor y = Tensor::empty({B, di}, x.dtype(), x.device());
  if (u.device().is_cuda()) {
#ifdef HYSCALE_WITH_CUDA
    HS_CHECK(conv_state.device() == u.device() && conv_state.dtype() == x.dtype() && ssm_state.dtype() == DType::f32,
             "decode: Mamba state ", conv_state.desc(), " / ", ssm_state.desc(), " does not suit ", u.desc(),
             " (make the decode state after moving the model)");
    Tensor xc = Tensor::empty({B, di}, x.dtype(), x.device());
    const Tensor w = cw(conv_w), bias = cw(conv_b), A = cw(A_log), Dp = cw(D), bias_dt = cw(dt_bias);
    by_device_dtype(x.dtype(), [&](auto zz) {
      using T = decltype(zz);
      kg::causal_conv1d_step<T>(dp<T>(x), dp<T>(w), dp<T>(bias), dp<T>(conv_state), dp<T>(xc), B, di, cfg_.d_conv,
                                /*silu=*/true);
    });
    Tensor dbc = lin(xc, x_proj).contiguous();  // [B, R + 2N]; B and C read in place
    Tensor delta = lin(dbc.slice(1, 0, R), dt_proj).contiguous();
    by_device_dtype(x.dtype(), [&](auto zz) {
      using T = decltype(zz);
      kg::selective_scan_steps<T>(dp<T>(xc), dp<T>(delta), dp<T>(A), dp<T>(dbc) + R, dp<T>(dbc) + R + N, R + 2 * N,
                                  dp<T>(Dp), dp<T>(bias_dt), dp<float>(ssm_state), dp<T>(y), B, 1, di, N);
    });
#endif
  } else {
    Tensor xconv = Tensor::empty({B, di}, u.dtype());
    by_dtype(u.dtype(), [&](auto zz) {
      using T = decltype(zz);
      kc::causal_conv1d_step<T>(x.data<T>(), conv_w.data<T>(), conv_b.data<T>(), conv_state.data<T>(),
                                xconv.data<T>(), B, di, cfg_.d_conv);
    });
    Tensor xc = ops::silu(xconv);
    Tensor dbc = ops::linear(xc, x_proj);  // [B, R + 2N]
    Tensor delta = ops::linear(dbc.slice(1, 0, R), dt_proj).contiguous();
    Tensor Bm = dbc.slice(1, R, R + N).contiguous(), Cm = dbc.slice(1, R + N, R + 2 * N).contiguous();
    by_dtype(u.dtype(), [&](auto zz) {
      using T = decltype(zz);
      kc::selective_scan_step<T>(xc.data<T>(), delta.data<T>(), A_log.data<T>(), Bm.data<T>(), Cm.data<T>(),
                                 D.data<T>(), dt_bias.data<T>(), ssm_state.data<T>(), y.data<T>(), B, di, N);
    });
  }
  if (memory_out) *memory_out = y.reshape({B, 1, di});
  return lin(ops::gmu_gate(z, y), out_proj).reshape({B, 1, cfg_.dim});
}

// ---------------------------------------------------------------- blocks and model
Tensor Block::step(const Tensor& x_in, LayerCache& cache, const LayerCache* shared, Tensor& memory,
                   const std::vector<int64_t>& pos, const Tensor* n_valid_dev) const {
  auto branch = [&](const Tensor& y) { return r_ == 1.0 ? y : ops::scale(y, r_); };
  Tensor h = norm1->forward(x_in), y;
  switch (role_) {
    case Role::Attn:
    case Role::SWA:
    case Role::SharedKV: y = attn->step(h, cache.k, cache.v, pos, n_valid_dev); break;
    case Role::Cross:
      HS_CHECK(shared, "decode: cross-attention layer without a shared KV layer");
      y = attn->step_cross(h, shared->k, shared->v, pos, n_valid_dev);
      break;
    case Role::Mamba: y = mamba->step(h, cache.conv, cache.ssm); break;
    case Role::MambaMem: y = mamba->step(h, cache.conv, cache.ssm, &memory); break;
    case Role::GMU: y = gmu->forward(h, memory); break;
  }
  Tensor x = ops::add(x_in, branch(y));
  return ops::add(x, branch(mlp->forward(norm2->forward(x))));
}

DecodeState Model::init_decode(int64_t batch, int64_t max_len) const {
  HS_CHECK(batch > 0 && max_len > 0, "decode: batch and max_len must be positive");
  HS_CHECK(!tp_.on(), "decode: step-wise decoding runs in one process (tp = 1); checkpoints hold global tensors, "
           "so load the model without tensor parallelism");
  const auto& c = cfg_;
  DecodeState st;
  st.batch = batch;
  st.max_len = max_len;
  st.pos.assign(static_cast<size_t>(batch), 0);
  // The model's device; the compute dtype there (the SSM states: fp32 on a GPU, as the scan's).
  const Device dev = wte.device();
  const DType dt = compute_dtype().value_or(c.param_dtype);
  const DType ssm_dt = dev.is_cuda() ? DType::f32 : dt;
  for (size_t l = 0; l < roles_.size(); ++l) {
    LayerCache lc;
    switch (roles_[l]) {
      case Role::Attn:
      case Role::SharedKV:
      case Role::SWA:
        lc.cap = roles_[l] == Role::SWA ? std::min(effective_window(c), max_len) : max_len;
        lc.k = Tensor::zeros({batch, lc.cap, c.n_kv_heads, c.head_dim}, dt, dev);
        lc.v = Tensor::zeros({batch, lc.cap, c.n_kv_heads, c.head_dim}, dt, dev);
        break;
      case Role::Mamba:
      case Role::MambaMem:
        lc.conv = Tensor::zeros({batch, std::max<int64_t>(c.d_conv - 1, 0), c.expand * c.d_model}, dt, dev);
        lc.ssm = Tensor::zeros({batch, c.expand * c.d_model, c.d_state}, ssm_dt, dev);
        break;
      case Role::Cross:
      case Role::GMU: break;
    }
    st.layers.push_back(lc);
  }
  return st;
}

int64_t DecodeState::bytes() const {
  int64_t n = 0;
  for (auto& l : layers)
    for (const Tensor* t : {&l.k, &l.v, &l.conv, &l.ssm})
      if (t->defined()) n += static_cast<int64_t>(t->nbytes());
  return n;
}

Tensor Model::step_body(Tensor x, const Tensor& table, DecodeState& st, const Tensor* nv_dev) const {
  const int64_t B = st.batch;
  Tensor memory;
  const LayerCache* shared = nullptr;
  for (size_t l = 0; l < blocks.size(); ++l) {
    x = blocks[l]->step(x, st.layers[l], shared, memory, st.pos, nv_dev);
    if (roles_[l] == Role::SharedKV) shared = &st.layers[l];
  }
  x = ln_f->forward(x);
  if (cfg_.logit_mult != 1.0) x = ops::scale(x, cfg_.logit_mult);
  x = x.reshape({B, cfg_.d_model});
  return cfg_.tie_embeddings ? ops::linear(x, table) : lin(x, lm_head);
}

// CUDA-graph decoding (DecodeState::cuda_graph). Member order matters: the graph is destroyed
// first (its destructor waits for its last run), then the buffers its nodes read and write.
struct DecodeGraph {
  Tensor ids, nv;      // device inputs [B]: int32 tokens, int64 pos + 1
  Tensor logits;       // the captured step's output, rewritten by every replay
  std::vector<const void*> state_ptrs;  // the state tensors the capture wrote into
#ifdef HYSCALE_WITH_CUDA
  std::shared_ptr<cudart::Graph> exec;
#endif
  int warm = 0;        // eager steps run so far (the first is the warm-up)
  int64_t replays = 0;
  std::string failed;  // why capturing failed: then every step runs eagerly
};

std::string DecodeState::graph_status() const {
  if (!cuda_graph) return "off";
  if (!graph) return "not started";
  if (!graph->failed.empty()) return "failed: " + graph->failed + " (steps run eagerly)";
#ifdef HYSCALE_WITH_CUDA
  if (graph->exec) return "captured (" + std::to_string(graph->replays) + " replays)";
#endif
  return "warming up";
}

namespace {
std::vector<const void*> state_pointers(const DecodeState& st) {
  std::vector<const void*> r;
  for (const auto& l : st.layers)
    for (const Tensor* t : {&l.k, &l.v, &l.conv, &l.ssm}) r.push_back(t->defined() ? t->raw_data() : nullptr);
  return r;
}
}  // namespace

Tensor Model::step(const Tensor& ids, DecodeState& st) const {
  HS_CHECK(ids.dim() == 1 && ids.size(0) == st.batch, "decode: ids must be [", st.batch, "], got ",
           shape_str(ids.shape()));
  for (int64_t p : st.pos) HS_CHECK(p < st.max_len, "decode: position ", p, " reached max_len ", st.max_len);
  NoGrad ng;
  const int64_t B = st.batch;
  std::vector<int64_t> nv(st.pos);  // every attention layer's valid slots (pos + 1, clamped per cache)
  for (auto& p : nv) ++p;
  Tensor logits;
  const Device dev = wte.device();
  if (dev.is_cuda() && st.cuda_graph) {
#ifdef HYSCALE_WITH_CUDA
    // The graph reads its inputs from fixed device buffers: the ids are checked here on the host
    // (the captured embedding cannot read them back), then both are uploaded.
    Tensor ids_h = ids.contiguous().to(Device::cpu());
    const int64_t V = wte.size(0);
    ops::detail::check_ids("decode", ids_h, V);
    if (!st.graph) {
      st.graph = std::make_shared<DecodeGraph>();
      st.graph->ids = Tensor::zeros({B}, DType::i32, dev);
      st.graph->nv = Tensor::zeros({B}, DType::i64, dev);
    }
    DecodeGraph& g = *st.graph;
    g.ids.copy_from(ids_h);
    g.nv.copy_from(Tensor::from_vector<int64_t>(nv, {B}));
    auto body = [&] {
      // The compute table inside the body: a cast made here is part of the graph (its output
      // block belongs to the graph), where a table made outside would be freed after the capture.
      const Tensor table = cw(wte);
      Tensor x = Tensor::empty({B, 1, table.size(1)}, table.dtype(), table.device());
      by_device_dtype(table.dtype(), [&](auto z) {
        using T = decltype(z);
        kg::embedding_fwd<T>(g.ids.data<int32_t>(), dp<T>(table), dp<T>(x), B, table.size(1), 0, V);
      });
      return step_body(x, table, st, &g.nv);
    };
    if (g.exec && g.state_ptrs != state_pointers(st)) g.exec.reset();  // the state moved: capture again
    if (!g.failed.empty() || (!g.exec && g.warm == 0)) {
      logits = body();  // eager (the warm-up step: kernel attributes, GEMM heuristics, cached blocks)
      ++g.warm;
    } else {
      if (!g.exec) {
        try {
          g.exec = cudart::capture_graph(dev.index, [&] { g.logits = body(); });
          g.state_ptrs = state_pointers(st);
        } catch (const std::exception& e) {
          g.failed = e.what();
          g.exec.reset();
          g.logits = Tensor();
        }
      }
      if (g.exec) {
        cudart::launch_graph(*g.exec);
        ++g.replays;
        logits = g.logits.clone();  // (legacy stream: after the run) the next replay rewrites g.logits
      } else {
        logits = body();
      }
    }
#endif
  } else {
    const Tensor table = cw(wte);  // one compute copy per step, shared by a tied LM head
    Tensor x = ops::embedding(ids.reshape({B, 1}), table);  // [B, 1, D]
    Tensor nv_dev;  // on a GPU: one upload of the positions for every layer
    if (dev.is_cuda()) nv_dev = Tensor::from_vector<int64_t>(nv, {B}).to(dev);
    logits = step_body(x, table, st, nv_dev.defined() ? &nv_dev : nullptr);
  }
  for (auto& p : st.pos) ++p;
  return logits;
}

Tensor Model::prefill(const Tensor& ids, DecodeState& st, int64_t row) const {
  HS_CHECK(!tp_.on(), "prefill: runs in one process (tp = 1)");
  HS_CHECK(ids.dim() == 1 && ids.size(0) >= 1, "prefill: ids must be [T] with T >= 1, got ", shape_str(ids.shape()));
  HS_CHECK(row >= 0 && row < st.batch, "prefill: row ", row, " outside a batch of ", st.batch);
  HS_CHECK(st.pos[static_cast<size_t>(row)] == 0, "prefill: row ", row, " has already started (position ",
           st.pos[static_cast<size_t>(row)], ")");
  const int64_t T = ids.size(0);
  HS_CHECK(T <= st.max_len, "prefill: prompt of ", T, " tokens exceeds max_len ", st.max_len);
  NoGrad ng;
  const Tensor table = cw(wte);
  Tensor x = ops::embedding(ids.reshape({1, T}), table);
  BlockState bs;
  for (size_t l = 0; l < blocks.size(); ++l) x = blocks[l]->forward(x, bs, &st.layers[l], row);
  x = ln_f->forward(x.slice(1, T - 1, T));
  if (cfg_.logit_mult != 1.0) x = ops::scale(x, cfg_.logit_mult);
  st.pos[static_cast<size_t>(row)] = T;
  x = x.reshape({1, cfg_.d_model});
  return (cfg_.tie_embeddings ? ops::linear(x, table) : lin(x, lm_head)).reshape({cfg_.vocab_size});
}

}  // namespace hyscale::nn
