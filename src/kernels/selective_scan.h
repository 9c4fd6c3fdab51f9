// Mamba-1 selective scan (SPEC §3, steps 4–6), one fused op, fp32 state.
//   dt_t[c]   = softplus(delta_t[c] + dt_bias[c])            (bias + softplus fused)
//   A[c,n]    = -exp(A_log[c,n])
//   h_t[c,n]  = exp(dt_t[c] A[c,n]) h_{t-1}[c,n] + dt_t[c] B_t[n] u_t[c],   h_{-1} = 0
//   y_t[c]    = sum_n C_t[n] h_t[c,n] + D[c] u_t[c]           (D skip fused)
// and, with the optional z-gate (ScanGate: Mamba's output gate fused),
//   out_t[c]  = z_t[c] sigmoid(z_t[c]) y_t[c]                  (gmu.h's expression order)
// written to y instead of y_t. Without a gate, y is the GMU memory (pre-gate; the layer that
// exports it applies the gate itself).
// Layouts (contiguous): u, delta, y, du, ddelta [B, T, Dc]; Bm, Cm, dBm, dCm [B, T, N]
// (one group: B and C shared by all channels); A_log, dA_log [Dc, N]; D, dt_bias, dD,
// ddt_bias [Dc]; states [B, n_chunks, Dc, N] = h at the last step of each chunk of `chunk`
// steps, n_chunks = ceil(T / chunk). Memory saved for backward: the inputs plus states,
// O(B Dc N T / chunk), never the full [B, Dc, T, N] tensor.
// Backward: chunks are visited last to first; within a chunk the states are recomputed from
// the saved state of the previous chunk, then the reverse scan runs. Gradients are written
// (not accumulated), reduced over fixed channel groups and batch rows in a fixed order:
// bit-identical run to run and for any thread count. Indexing is 64-bit.
// Gated backward: dy is the gradient of the gated output; the pre-gate y_t is recomputed from the
// recomputed states (nothing extra is saved) and dz [B, T, Dc] (contiguous) is written:
//   dy_pre = dy z s,   dz = dy y s (1 + z (1 - s)),   s = sigmoid(z).
#pragma once
#include <cstdint>

#include "kernels/scan_gate.h"

namespace hyscale::kernels::cpu {

inline int64_t scan_num_chunks(int64_t T_, int64_t chunk) { return (T_ + chunk - 1) / chunk; }

template <class T>
void selective_scan_fwd(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                        const T* dt_bias, T* y, T* states, int64_t B, int64_t T_, int64_t Dc, int64_t N,
                        int64_t chunk, const ScanGate<T>& gate = {});

template <class T>
void selective_scan_bwd(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                        const T* dt_bias, const T* states, const T* dy, T* du, T* ddelta, T* dA_log, T* dBm, T* dCm,
                        T* dD, T* ddt_bias, int64_t B, int64_t T_, int64_t Dc, int64_t N, int64_t chunk,
                        const ScanGate<T>& gate = {});

}  // namespace hyscale::kernels::cpu

namespace hyscale::kernels::cpu {

// One decoding step of the scan for every channel, updating the state in place.
// Layouts: u, delta, y [B, Dc]; Bm, Cm [B, N]; h [B, Dc, N] (the state after the previous step).
template <class T>
void selective_scan_step(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                         const T* dt_bias, T* h, T* y, int64_t B, int64_t Dc, int64_t N);

}  // namespace hyscale::kernels::cpu
