// RMSNorm (SPEC §1.1): y = x * rsqrt(mean(x^2) + eps) * g, fused in one pass.
// Layouts: x, y, dy, dx are [rows, D] contiguous; g, dg are [D]; rstd is [rows]
// (saved by the forward for the backward, so the backward never re-reduces x).
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T>
void rmsnorm_fwd(const T* x, const T* g, T* y, T* rstd, int64_t rows, int64_t D, double eps);

// dx = rstd * (g*dy - xhat * mean(xhat * g * dy)),  xhat = x * rstd;
// dg += sum_rows(dy * xhat), reduced over fixed row chunks in a fixed order (deterministic).
template <class T>
void rmsnorm_bwd(const T* x, const T* g, const T* rstd, const T* dy, T* dx, T* dg, int64_t rows, int64_t D);

}  // namespace hyscale::kernels::cpu
