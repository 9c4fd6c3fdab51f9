// Gated Memory Unit gate (SPEC §2): h = silu(p) ⊙ m, with p = W1·x_l and m the memory
// of Mamba layer L/2 (scan output incl. D·x, before its own gate).
// Layouts: p, m, h, dh, dp, dm are [rows, d_mem], row-major, contiguous.
//   dp = dh ⊙ m ⊙ σ(p)(1 + p(1 − σ(p))),   dm += dh ⊙ silu(p)
// dm is accumulated (+=): several GMU layers read the same memory.
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T> void gmu_gate_fwd(const T* p, const T* m, T* h, int64_t rows, int64_t d_mem);
template <class T>
void gmu_gate_bwd(const T* p, const T* m, const T* dh, T* dp, T* dm_accum, int64_t rows, int64_t d_mem);

}  // namespace hyscale::kernels::cpu
