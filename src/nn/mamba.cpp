#include "nn/mamba.h"

#include "core/ops.h"

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

Tensor Mamba::forward(const Tensor& u, Tensor* memory_out) const {
  const int64_t di = d_inner_, R = dt_rank_, N = cfg_.d_state;
  const auto& tp = cfg_.tp;
  Tensor xz = ops::linear(parallel::copy_to_tp(u, tp), in_proj);  // [B, T, 2 di]
  Tensor x = xz.slice(2, 0, di), z = xz.slice(2, di, 2 * di);
  Tensor xc = ops::silu(ops::causal_conv1d(x, conv_w, conv_b));
  // [B, T, R + 2N]: partial sums over this rank's channels; every rank's channels consume the total.
  Tensor dbc = parallel::copy_to_tp(parallel::reduce_from_tp(ops::linear(xc, x_proj), tp), tp);
  Tensor delta = ops::linear(dbc.slice(2, 0, R), dt_proj);
  Tensor y = ops::selective_scan(xc, delta, A_log, dbc.slice(2, R, R + N), dbc.slice(2, R + N, R + 2 * N), D, dt_bias,
                                 cfg_.scan_chunk);
  if (memory_out) *memory_out = y;
  return parallel::reduce_from_tp(ops::linear(ops::gmu_gate(z, y), out_proj), tp);  // y * silu(z)
}

GMU::GMU(int64_t dim, int64_t d_mem, DType dtype, parallel::TensorParallel tp) : tp_(tp) {
  HS_CHECK(d_mem % tp.size == 0, "tensor parallel splits the GMU memory: d_mem (", d_mem,
           ") must be divisible by parallel.tp (", tp.size, ")");
  in_proj = register_parameter("in_proj", Tensor::zeros({tp.local(d_mem), dim}, dtype), {0, {}});
  out_proj = register_parameter("out_proj", Tensor::zeros({dim, tp.local(d_mem)}, dtype), {1, {}});
}

Tensor GMU::forward(const Tensor& x, const Tensor& memory) const {
  HS_CHECK(memory.defined(), "GMU layer: no memory tensor (a GMU needs a Mamba memory layer 'M*' before it)");
  Tensor p = ops::linear(parallel::copy_to_tp(x, tp_), in_proj);
  return parallel::reduce_from_tp(ops::linear(ops::gmu_gate(p, memory), out_proj), tp_);
}

}  // namespace hyscale::nn
