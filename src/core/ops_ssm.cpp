// Autograd ops of the Mamba-1 / GMU kernel families (selective scan, causal conv1d, GMU gate).
#include "core/ops.h"
#include "core/ops_util.h"
#include "core/ops_cuda.h"
#include "kernels/conv1d.h"
#include "kernels/gmu.h"
#include "kernels/selective_scan.h"

namespace hyscale::ops {

namespace kc = hyscale::kernels::cpu;
using namespace detail;

namespace {

struct SelectiveScanNode : Node {
  Tensor u, delta, A_log, Bm, Cm, D, dt_bias, states, z;  // z: the fused gate (rows ldz apart), or undefined
  int64_t chunk, ldz = 0;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor dy = g_in.contiguous();
    const int64_t B = u.size(0), T_ = u.size(1), Dc = u.size(2), N = A_log.size(1);
    const DType dt = u.dtype();
    Tensor du = Tensor::empty(u.shape(), dt), dd = Tensor::empty(delta.shape(), dt),
           dA = Tensor::empty(A_log.shape(), dt), dB = Tensor::empty(Bm.shape(), dt),
           dC = Tensor::empty(Cm.shape(), dt), dD = Tensor::empty(D.shape(), dt),
           dbias = Tensor::empty(dt_bias.shape(), dt);
    Tensor dz = z.defined() ? Tensor::empty(u.shape(), dt) : Tensor();
    dispatch(dt, [&](auto zero) {
      using T = decltype(zero);
      kernels::ScanGate<T> gate;
      if (z.defined()) gate = {HS_PTR(z), ldz, HS_PTR(dz)};
      kc::selective_scan_bwd<T>(HS_PTR(u), HS_PTR(delta), HS_PTR(A_log), HS_PTR(Bm), HS_PTR(Cm), HS_PTR(D),
                                HS_PTR(dt_bias), HS_PTR(states), HS_PTR(dy), HS_PTR(du), HS_PTR(dd), HS_PTR(dA),
                                HS_PTR(dB), HS_PTR(dC), HS_PTR(dD), HS_PTR(dbias), B, T_, Dc, N, chunk, gate);
    });
    if (z.defined()) return {du, dd, dA, dB, dC, dD, dbias, dz};
    return {du, dd, dA, dB, dC, dD, dbias};
  }
  void release() override { u = delta = A_log = Bm = Cm = D = dt_bias = states = z = Tensor(); }
  const char* name() const override { return "selective_scan"; }
};

// With silu, y = silu(conv): the backward recomputes the pre-activation, so it keeps the bias
// (a [C] vector) instead of the conv output.
struct Conv1dNode : Node {
  Tensor x, w, bias;
  bool silu = false;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor dy = g_in.contiguous();
    Tensor dx = Tensor::empty(x.shape(), x.dtype()), dw = Tensor::empty(w.shape(), w.dtype()),
           db = Tensor::empty({w.size(0)}, w.dtype());
    dispatch(x.dtype(), [&](auto z) {
      using T = decltype(z);
      if (silu)
        kc::causal_conv1d_silu_bwd<T>(HS_PTR(x), HS_PTR(w), HS_PTR(bias), HS_PTR(dy), HS_PTR(dx), HS_PTR(dw),
                                      HS_PTR(db), x.size(0), x.size(1), x.size(2), w.size(1));
      else
        kc::causal_conv1d_bwd<T>(HS_PTR(x), HS_PTR(w), HS_PTR(dy), HS_PTR(dx), HS_PTR(dw), HS_PTR(db), x.size(0),
                                 x.size(1), x.size(2), w.size(1));
    });
    return {dx, dw, db};
  }
  void release() override { x = w = bias = Tensor(); }
  const char* name() const override { return silu ? "causal_conv1d_silu" : "causal_conv1d"; }
};

struct GmuGateNode : Node {
  Tensor p, m;
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor dh = g_in.contiguous();
    Tensor dp = Tensor::empty(p.shape(), p.dtype()), dm = Tensor::zeros(m.shape(), m.dtype());
    const int64_t d = p.shape().back(), rows = p.numel() / std::max<int64_t>(d, 1);
    dispatch(p.dtype(), [&](auto z) {
      using T = decltype(z);
      kc::gmu_gate_bwd<T>(HS_PTR(p), HS_PTR(m), HS_PTR(dh), HS_PTR(dp), HS_PTR(dm), rows, d);
    });
    return {dp, dm};
  }
  void release() override { p = m = Tensor(); }
  const char* name() const override { return "gmu_gate"; }
};

// The gate input z of the scan [B, T, Dc]: kept as it is when its last dimension is dense and its
// B T rows are evenly spaced (ldz apart; a column slice of in_proj's [B, T, 2 Dc] output is), else
// made contiguous (ldz = Dc).
Tensor gate_rows(const char* op, const Tensor& z_in, const Tensor& u, int64_t& ldz) {
  HS_CHECK(z_in.defined() && z_in.dtype() == u.dtype() && z_in.device() == u.device(), op,
           ": the gate z must have u's dtype and device, got ", z_in.defined() ? dtype_name(z_in.dtype()) : "undefined",
           " on ", z_in.defined() ? z_in.device().str() : std::string("-"));
  HS_CHECK(z_in.shape() == u.shape(), op, ": the gate z must be ", shape_str(u.shape()), " like u, got ",
           shape_str(z_in.shape()));
  const Shape& s = z_in.strides();
  const int64_t B = u.size(0), T_ = u.size(1), Dc = u.size(2);
  if (Dc <= 1 || s[2] == 1) {
    const bool even = T_ == 1 || B == 1 || s[0] == s[1] * T_;  // row (b, t) at b s0 + t s1 = (b T + t) ldz
    ldz = T_ == 1 ? s[0] : s[1];
    if (even && ldz >= Dc) return z_in;
  }
  ldz = Dc;
  return z_in.contiguous();
}

}  // namespace

Tensor selective_scan(const Tensor& u_in, const Tensor& delta_in, const Tensor& A_log_in, const Tensor& B_in,
                      const Tensor& C_in, const Tensor& D_in, const Tensor& bias_in, int64_t chunk,
                      const Tensor& z_in, Tensor* final_state) {
  const char* op = "selective_scan";
  Tensor u = prep(op, u_in, "u"), delta = prep(op, delta_in, "delta"), A_log = prep(op, A_log_in, "A_log"),
         Bm = prep(op, B_in, "B"), Cm = prep(op, C_in, "C"), D = prep(op, D_in, "D"), bias = prep(op, bias_in, "dt_bias");
  for (const Tensor* t : {&delta, &A_log, &Bm, &Cm, &D, &bias}) same_dtype(op, u, *t);
  HS_CHECK(u.dim() == 3 && delta.shape() == u.shape(), op, ": u and delta must both be [B, T, Dc], got ",
           shape_str(u.shape()), " and ", shape_str(delta.shape()));
  const int64_t B = u.size(0), T_ = u.size(1), Dc = u.size(2);
  HS_CHECK(A_log.dim() == 2 && A_log.size(0) == Dc && A_log.size(1) > 0, op, ": A_log must be [", Dc, ", N], got ",
           shape_str(A_log.shape()));
  const int64_t N = A_log.size(1);
  HS_CHECK(Bm.shape() == Shape({B, T_, N}) && Cm.shape() == Bm.shape(), op, ": B and C must be [", B, ", ", T_, ", ",
           N, "], got ", shape_str(Bm.shape()), " and ", shape_str(Cm.shape()));
  HS_CHECK(D.shape() == Shape({Dc}) && bias.shape() == Shape({Dc}), op, ": D and dt_bias must be [", Dc, "], got ",
           shape_str(D.shape()), " and ", shape_str(bias.shape()));
  HS_CHECK(chunk >= 1, op, ": chunk must be >= 1, got ", chunk);
  HS_CHECK(final_state == nullptr || T_ > 0, op, ": no final state of an empty sequence");
  int64_t ldz = 0;
  const Tensor z = z_in.defined() ? gate_rows(op, z_in, u, ldz) : Tensor();
#ifdef HYSCALE_WITH_CUDA
  if (u.device().is_cuda())
    return cuda_impl::selective_scan(u, delta, A_log, Bm, Cm, D, bias, chunk, z, ldz, final_state);
#endif
  Tensor y = Tensor::empty(u.shape(), u.dtype());
  const int64_t nch = kc::scan_num_chunks(T_, chunk);
  Tensor states = Tensor::empty({B, nch, Dc, N}, u.dtype());
  dispatch(u.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::ScanGate<T> gate;
    if (z.defined()) gate = {HS_PTR(z), ldz, nullptr};
    kc::selective_scan_fwd<T>(HS_PTR(u), HS_PTR(delta), HS_PTR(A_log), HS_PTR(Bm), HS_PTR(Cm), HS_PTR(D),
                              HS_PTR(bias), HS_PTR(y), HS_PTR(states), B, T_, Dc, N, chunk, gate);
  });
  if (final_state) *final_state = states.slice(1, nch - 1, nch).reshape({B, Dc, N});
  if (!any_requires_grad({&u, &delta, &A_log, &Bm, &Cm, &D, &bias, &z})) return y;
  auto node = std::make_shared<SelectiveScanNode>();
  node->u = u.detach();
  node->delta = delta.detach();
  node->A_log = A_log.detach();
  node->Bm = Bm.detach();
  node->Cm = Cm.detach();
  node->D = D.detach();
  node->dt_bias = bias.detach();
  node->states = states;
  node->chunk = chunk;
  if (!z.defined()) return record(y, node, {&u, &delta, &A_log, &Bm, &Cm, &D, &bias});
  node->z = z.detach();
  node->ldz = ldz;
  return record(y, node, {&u, &delta, &A_log, &Bm, &Cm, &D, &bias, &z});
}

static Tensor conv1d_op(const char* op, bool silu, const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  Tensor x = prep(op, x_in, "x"), w = prep(op, w_in, "weight"), b = prep(op, b_in, "bias");
  same_dtype(op, x, w);
  same_dtype(op, x, b);
  HS_CHECK(x.dim() == 3, op, ": x must be [B, T, C], got ", shape_str(x.shape()));
  HS_CHECK(w.dim() == 2 && w.size(0) == x.size(2) && w.size(1) >= 1 && w.size(1) <= 8, op, ": weight must be [",
           x.size(2), ", K] with 1 <= K <= 8, got ", shape_str(w.shape()));
  HS_CHECK(b.shape() == Shape({x.size(2)}), op, ": bias must be [", x.size(2), "], got ", shape_str(b.shape()));
#ifdef HYSCALE_WITH_CUDA
  if (x.device().is_cuda()) return silu ? cuda_impl::causal_conv1d_silu(x, w, b) : cuda_impl::causal_conv1d(x, w, b);
#endif
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    if (silu)
      kc::causal_conv1d_silu_fwd<T>(HS_PTR(x), HS_PTR(w), HS_PTR(b), HS_PTR(y), x.size(0), x.size(1), x.size(2),
                                    w.size(1));
    else
      kc::causal_conv1d_fwd<T>(HS_PTR(x), HS_PTR(w), HS_PTR(b), HS_PTR(y), x.size(0), x.size(1), x.size(2),
                               w.size(1));
  });
  if (!any_requires_grad({&x, &w, &b})) return y;
  auto node = std::make_shared<Conv1dNode>();
  node->x = x.detach();
  node->w = w.detach();
  if (silu) node->bias = b.detach();
  node->silu = silu;
  return record(y, node, {&x, &w, &b});
}

Tensor causal_conv1d(const Tensor& x, const Tensor& w, const Tensor& bias) {
  return conv1d_op("causal_conv1d", false, x, w, bias);
}
Tensor causal_conv1d_silu(const Tensor& x, const Tensor& w, const Tensor& bias) {
  return conv1d_op("causal_conv1d_silu", true, x, w, bias);
}

Tensor gmu_gate(const Tensor& p_in, const Tensor& m_in) {
  const char* op = "gmu_gate";
  Tensor p = prep(op, p_in, "p"), m = prep(op, m_in, "memory");
  same_dtype(op, p, m);
  HS_CHECK(p.shape() == m.shape() && p.dim() >= 1, op, ": gate input ", shape_str(p.shape()), " and memory ",
           shape_str(m.shape()), " must have the same shape");
#ifdef HYSCALE_WITH_CUDA
  if (p.device().is_cuda()) return cuda_impl::gmu_gate(p, m);
#endif
  Tensor h = Tensor::empty(p.shape(), p.dtype());
  const int64_t d = p.shape().back(), rows = d ? p.numel() / d : 0;
  dispatch(p.dtype(), [&](auto z) {
    using T = decltype(z);
    kc::gmu_gate_fwd<T>(HS_PTR(p), HS_PTR(m), HS_PTR(h), rows, d);
  });
  if (!any_requires_grad({&p, &m})) return h;
  auto node = std::make_shared<GmuGateNode>();
  node->p = p.detach();
  node->m = m.detach();
  return record(h, node, {&p, &m});
}

}  // namespace hyscale::ops
