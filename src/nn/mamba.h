// Mamba-1 mixer and the Gated Memory Unit (SPEC §2, §3).
//
// Mamba, for u = Norm1(x) [B, T, D], d_inner = expand * D:
//   [x; z] = in_proj u                     in_proj  [2 d_inner, D]
//   x~ = silu(conv1d(x) + b)               conv1d.weight [d_inner, d_conv], conv1d.bias [d_inner]
//   [delta_r; B; C] = x_proj x~            x_proj   [dt_rank + 2 N, d_inner]
//   delta = dt_proj delta_r                dt_proj  [d_inner, dt_rank] (+ dt_bias, softplus in the scan)
//   y = scan(x~, delta, A = -exp(A_log), B, C) + D x~     A_log [d_inner, N], D [d_inner]
//   out = out_proj (y * silu(z))           out_proj [D, d_inner]
// y (before the gate and out_proj) is the GMU memory m (SPEC §1.5).
//
// GMU: out = out_proj (silu(in_proj x) * m), in_proj [d_mem, D], out_proj [D, d_mem], no biases.
//
// Tensor parallel: the d_inner channels are split (in_proj column-parallel per x/z part; conv,
// scan, A_log, D, dt_bias and dt_proj's output rows local; x_proj row-parallel, its partial
// [delta_r; B; C] all-reduced, and all-reduced again in backward since every rank's channels
// use it; out_proj row-parallel). The GMU splits d_mem the same way, so the memory a rank
// exports is exactly the channels its GMU reads: never gathered.
#pragma once
#include "nn/module.h"
#include "parallel/tp_ops.h"

namespace hyscale::nn {

struct MambaConfig {
  int64_t dim = 0, d_state = 16, d_conv = 4, expand = 2, dt_rank = 0;  // dt_rank 0 = ceil(dim / 16)
  int64_t scan_chunk = 128;
  DType dtype = DType::f32;
  parallel::TensorParallel tp;
};

class Mamba : public Module {
 public:
  explicit Mamba(const MambaConfig& cfg);
  // x [B, T, D] -> [B, T, D]; when memory_out is given it receives y [B, T, d_inner].
  // Prefill (B = 1): conv_state [1, d_conv - 1, d_inner] and ssm_state [1, d_inner, N], when
  // given, receive the states after the last position (what step() continues from).
  Tensor forward(const Tensor& x, Tensor* memory_out = nullptr, Tensor* conv_state = nullptr,
                 Tensor* ssm_state = nullptr) const;
  // One decoding step, x [B, 1, D]; conv_state [B, d_conv - 1, d_inner] and ssm_state
  // [B, d_inner, N] are updated in place.
  Tensor step(const Tensor& x, Tensor& conv_state, Tensor& ssm_state, Tensor* memory_out = nullptr) const;
  int64_t d_inner() const { return d_inner_; }  // channels on this rank
  const MambaConfig& config() const { return cfg_; }
  Tensor in_proj, conv_w, conv_b, x_proj, dt_proj, dt_bias, A_log, D, out_proj;

 private:
  // final: the scan's state after the last step when the forward asked for it (on a GPU), else
  // undefined (the cpu replays the recurrence with the step kernel, bit for bit what step() does).
  void capture_state(const Tensor& x, const Tensor& xc, const Tensor& delta, const Tensor& dbc, Tensor* conv_state,
                     Tensor* ssm_state, const Tensor& final) const;
  MambaConfig cfg_;
  int64_t d_inner_, dt_rank_;
};

class GMU : public Module {
 public:
  GMU(int64_t dim, int64_t d_mem, DType dtype = DType::f32, parallel::TensorParallel tp = {});
  Tensor forward(const Tensor& x, const Tensor& memory) const;  // x [B, T, D], memory [B, T, d_mem local]
  Tensor in_proj, out_proj;

 private:
  parallel::TensorParallel tp_;
};

}  // namespace hyscale::nn
