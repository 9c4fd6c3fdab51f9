// The fused z-gate of the selective scan (kernels/selective_scan.h, CPU; kernels/cuda.h and
// kernels/cuda_hybrid.h, CUDA): Mamba's output gate out = y * silu(z) applied inside the scan.
#pragma once
#include <cstdint>

namespace hyscale::kernels {
// z [B, T, Dc] with row stride ldz >= Dc between consecutive (b, t) rows (z may be a column slice
// of in_proj's output, read in place); dz: the backward's contiguous [B, T, Dc] output (the
// forward ignores it). z == nullptr: no gate.
template <class T> struct ScanGate {
  const T* z = nullptr;
  int64_t ldz = 0;
  T* dz = nullptr;
};
}  // namespace hyscale::kernels
