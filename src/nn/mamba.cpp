#include "nn/mamba.h"

#include "core/autograd.h"
#include "core/ops.h"
#include "kernels/selective_scan.h"

namespace hyscale::nn {

Mamba::Mamba(const MambaConfig& cfg) : cfg_(cfg) {
  HS_CHECK(cfg.dim > 0 && cfg.d_state > 0 && cfg.expand > 0 && cfg.d_conv >= 1 && cfg.d_conv <= 8,
           "mamba: bad sizes (dim ", cfg.dim, ", d_state ", cfg.d_state, ", expand ", cfg.expand, ", d_conv ",
           cfg.d_conv, ")");
  const int64_t di = cfg.expand * cfg.dim;
  HS_CHECK(di % cfg.tp.size == 0, "tensor parallel splits Mamba channels: d_inner (", di,
           ") must be divisible by parallel.tp (", cfg.tp.size, ")");
  d_inner_ = cfg.tp.local(di);
  dt_rank_ = cfg.dt_rank > 0 ? cfg.dt_rank : (cfg.dim + 15) / 16;
  cfg_.dt_rank = dt_rank_;
  const DType t = cfg.dtype;
  const ShardSpec rows{0, {}}, cols{1, {}};
  in_proj = register_parameter("in_proj", Tensor::zeros({2 * d_inner_, cfg.dim}, t), {0, {{"x", di}, {"z", di}}});
  conv_w = register_parameter("conv1d.weight", Tensor::zeros({d_inner_, cfg.d_conv}, t), rows);
  conv_b = register_parameter("conv1d.bias", Tensor::zeros({d_inner_}, t), rows);
  x_proj = register_parameter("x_proj", Tensor::zeros({dt_rank_ + 2 * cfg.d_state, d_inner_}, t), cols);
  dt_proj = register_parameter("dt_proj", Tensor::zeros({d_inner_, dt_rank_}, t), rows);
  dt_bias = register_parameter("dt_bias", Tensor::zeros({d_inner_}, t), rows);
  A_log = register_parameter("A_log", Tensor::zeros({d_inner_, cfg.d_state}, t), rows);
  D = register_parameter("D", Tensor::zeros({d_inner_}, t), rows);
  out_proj = register_parameter("out_proj", Tensor::zeros({cfg.dim, d_inner_}, t), cols);
}

Tensor Mamba::forward(const Tensor& u, Tensor* memory_out, Tensor* conv_state, Tensor* ssm_state) const {
  const int64_t di = d_inner_, R = dt_rank_, N = cfg_.d_state;
  const auto& tp = cfg_.tp;
  Tensor xz = lin(parallel::copy_to_tp(u, tp), in_proj);  // [B, T, 2 di]
  Tensor x = xz.slice(2, 0, di), z = xz.slice(2, di, 2 * di);
  // silu(conv1d(x)) in one op; on the CPU bit-identical to the two ops, which decoding's step runs.
  Tensor xc = ops::causal_conv1d_silu(x, cw(conv_w), cw(conv_b));
  // [B, T, R + 2N]: partial sums over this rank's channels; every rank's channels consume the total.
  Tensor dbc = parallel::copy_to_tp(parallel::reduce_from_tp(lin(xc, x_proj), tp), tp);
  Tensor delta = lin(dbc.slice(2, 0, R), dt_proj);
  const Tensor Bm = dbc.slice(2, R, R + N), Cm = dbc.slice(2, R + N, R + 2 * N);
  Tensor gated;  // y * silu(z)
  // GPU prefill: the decode state is the scan's own final state (fp32, saved anyway).
  Tensor final;
  Tensor* fin = ssm_state != nullptr && u.device().is_cuda() ? &final : nullptr;
  if (memory_out) {
    // The memory layer needs the pre-gate y as well: the scan, then the gate as its own op.
    // The memory is read by every GMU layer of the cross-decoder, so its gradient is a sum over
    // them: under bf16 mixed precision it is exported in fp32 (each GMU casts it back down, the
    // values it sees are the same bf16 ones), so that sum accumulates in fp32, not in bf16.
    Tensor y = ops::selective_scan(xc, delta, cw(A_log), Bm, Cm, cw(D), cw(dt_bias), cfg_.scan_chunk, Tensor(), fin);
    *memory_out = y.dtype() == DType::bf16 ? ops::cast(y, DType::f32) : y;
    gated = ops::gmu_gate(z, y);
  } else {
    // Every other Mamba layer: the gate fused into the scan (z read in place from xz; the pre-gate
    // y is neither stored nor kept for the backward, which recomputes it).
    gated = ops::selective_scan(xc, delta, cw(A_log), Bm, Cm, cw(D), cw(dt_bias), cfg_.scan_chunk, z, fin);
  }
  if (conv_state || ssm_state) capture_state(x, xc, delta, dbc, conv_state, ssm_state, final);
  return parallel::reduce_from_tp(lin(gated, out_proj), tp);
}

void Mamba::capture_state(const Tensor& x_in, const Tensor& xc_in, const Tensor& delta_in, const Tensor& dbc,
                          Tensor* conv_state, Tensor* ssm_state, const Tensor& final) const {
  NoGrad ng;
  HS_CHECK(x_in.size(0) == 1, "mamba: state capture (prefill) takes one sequence at a time");
  const int64_t T = x_in.size(1), di = d_inner_, K = cfg_.d_conv, R = dt_rank_, N = cfg_.d_state;
  if (conv_state && K > 1) {  // the last K - 1 conv inputs, oldest first; zeros before the start
    Tensor x = x_in.detach();
    conv_state->zero();
    for (int64_t j = 0; j < K - 1; ++j) {
      const int64_t t = T - (K - 1) + j;
      if (t >= 0) conv_state->slice(1, j, j + 1).copy_from(x.slice(1, t, t + 1));
    }
  }
  if (!ssm_state) return;
  if (final.defined()) {  // a GPU: the scan's final state (fp32), as the decode step keeps it
    HS_CHECK(ssm_state->dtype() == final.dtype() && ssm_state->shape() == final.shape(),
             "mamba: the decode state ", ssm_state->desc(), " does not take the scan's final state ", final.desc(),
             " (make the decode state after moving the model)");
    ssm_state->copy_from(final);
    return;
  }
  // Run the recurrence over the prompt with the step kernel (same expression order as the scan).
  Tensor xc = xc_in.detach().contiguous(), delta = delta_in.detach().contiguous();
  Tensor Bm = dbc.detach().slice(2, R, R + N).contiguous(), Cm = dbc.detach().slice(2, R + N, R + 2 * N).contiguous();
  ssm_state->zero();
  Tensor y = Tensor::empty({di}, xc.dtype());
  auto run = [&](auto z) {
    using T_ = decltype(z);
    T_* h = ssm_state->data<T_>();
    for (int64_t t = 0; t < T; ++t)
      kernels::cpu::selective_scan_step<T_>(xc.data<T_>() + t * di, delta.data<T_>() + t * di, A_log.data<T_>(),
                                            Bm.data<T_>() + t * N, Cm.data<T_>() + t * N, D.data<T_>(),
                                            dt_bias.data<T_>(), h, y.data<T_>(), 1, di, N);
  };
  if (xc.dtype() == DType::f32)
    run(float{});
  else
    run(double{});
}

GMU::GMU(int64_t dim, int64_t d_mem, DType dtype, parallel::TensorParallel tp) : tp_(tp) {
  HS_CHECK(d_mem % tp.size == 0, "tensor parallel splits the GMU memory: d_mem (", d_mem,
           ") must be divisible by parallel.tp (", tp.size, ")");
  in_proj = register_parameter("in_proj", Tensor::zeros({tp.local(d_mem), dim}, dtype), {0, {}});
  out_proj = register_parameter("out_proj", Tensor::zeros({dim, tp.local(d_mem)}, dtype), {1, {}});
}

Tensor GMU::forward(const Tensor& x, const Tensor& memory) const {
  HS_CHECK(memory.defined(), "GMU layer: no memory tensor (a GMU needs a Mamba memory layer 'M*' before it)");
  Tensor p = lin(parallel::copy_to_tp(x, tp_), in_proj);
  // An fp32 memory under bf16 compute (see Mamba::forward) is cast to the gate's dtype here; the
  // cast's backward hands this layer's memory gradient back in fp32.
  const Tensor m = memory.dtype() == p.dtype() ? memory : ops::cast(memory, p.dtype());
  return parallel::reduce_from_tp(lin(ops::gmu_gate(p, m), out_proj), tp_);
}

}  // namespace hyscale::nn
