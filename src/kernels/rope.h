// Rotary position embedding, non-interleaved (SPEC §1.6): the first half of the
// head dim is rotated against the second half. For i < D/2,
//   theta_i = base^(-2i/D),  a = (pos0 + t) * theta_i,
//   y[i]       = x[i] cos a - x[i+D/2] sin a
//   y[i+D/2]   = x[i+D/2] cos a + x[i] sin a
// Layout: x, y [B, T, H, D] contiguous (D even). Backward = rotation by -a.
// Angles are computed in double and rounded once (the reference caches bf16 cos/sin;
// we keep full precision — a documented choice, not a bug).
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T>
void rope_fwd(const T* x, T* y, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0);
template <class T>
void rope_bwd(const T* dy, T* dx, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0);

}  // namespace hyscale::kernels::cpu
