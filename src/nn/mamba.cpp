#include "nn/mamba.h"

#include "core/ops.h"

namespace hyscale::nn {

Mamba::Mamba(const MambaConfig& cfg) : cfg_(cfg) {
  HS_CHECK(cfg.dim > 0 && cfg.d_state > 0 && cfg.expand > 0 && cfg.d_conv >= 1 && cfg.d_conv <= 8,
           "mamba: bad sizes (dim ", cfg.dim, ", d_state ", cfg.d_state, ", expand ", cfg.expand, ", d_conv ",
           cfg.d_conv, ")");
  d_inner_ = cfg.expand * cfg.dim;
  dt_rank_ = cfg.dt_rank > 0 ? cfg.dt_rank : (cfg.dim + 15) / 16;
  cfg_.dt_rank = dt_rank_;
  const DType t = cfg.dtype;
  in_proj = register_parameter("in_proj", Tensor::zeros({2 * d_inner_, cfg.dim}, t));
  conv_w = register_parameter("conv1d.weight", Tensor::zeros({d_inner_, cfg.d_conv}, t));
  conv_b = register_parameter("conv1d.bias", Tensor::zeros({d_inner_}, t));
  x_proj = register_parameter("x_proj", Tensor::zeros({dt_rank_ + 2 * cfg.d_state, d_inner_}, t));
  dt_proj = register_parameter("dt_proj", Tensor::zeros({d_inner_, dt_rank_}, t));
  dt_bias = register_parameter("dt_bias", Tensor::zeros({d_inner_}, t));
  A_log = register_parameter("A_log", Tensor::zeros({d_inner_, cfg.d_state}, t));
  D = register_parameter("D", Tensor::zeros({d_inner_}, t));
  out_proj = register_parameter("out_proj", Tensor::zeros({cfg.dim, d_inner_}, t));
}

Tensor Mamba::forward(const Tensor& u, Tensor* memory_out) const {
  const int64_t di = d_inner_, R = dt_rank_, N = cfg_.d_state;
  Tensor xz = ops::linear(u, in_proj);  // [B, T, 2 di]
  Tensor x = xz.slice(2, 0, di), z = xz.slice(2, di, 2 * di);
  Tensor xc = ops::silu(ops::causal_conv1d(x, conv_w, conv_b));
  Tensor dbc = ops::linear(xc, x_proj);  // [B, T, R + 2N]
  Tensor delta = ops::linear(dbc.slice(2, 0, R), dt_proj);
  Tensor y = ops::selective_scan(xc, delta, A_log, dbc.slice(2, R, R + N), dbc.slice(2, R + N, R + 2 * N), D, dt_bias,
                                 cfg_.scan_chunk);
  if (memory_out) *memory_out = y;
  return ops::linear(ops::gmu_gate(z, y), out_proj);  // y * silu(z)
}

GMU::GMU(int64_t dim, int64_t d_mem, DType dtype) {
  in_proj = register_parameter("in_proj", Tensor::zeros({d_mem, dim}, dtype));
  out_proj = register_parameter("out_proj", Tensor::zeros({dim, d_mem}, dtype));
}

Tensor GMU::forward(const Tensor& x, const Tensor& memory) const {
  HS_CHECK(memory.defined(), "GMU layer: no memory tensor (a GMU needs a Mamba memory layer 'M*' before it)");
  return ops::linear(ops::gmu_gate(ops::linear(x, in_proj), memory), out_proj);
}

}  // namespace hyscale::nn
