// Causal depthwise conv1d with bias (Mamba-1, SPEC §3 step 2; width K = 2..4 in practice):
//   y[b,t,c] = bias[c] + sum_{k<K} w[c,k] x[b, t-K+1+k, c]     (zero left padding)
// Mamba-1 applies a SiLU next; the *_silu_* variants fuse it (one pass over the activations, and
// the backward recomputes the pre-activation from x instead of saving it). Layouts: x, y, dx, dy [B, T, C]; w, dw [C, K];
// bias, dbias [C]. Backward writes dx, dw, dbias; dw and dbias are reduced per channel by
// the thread that owns the channel, over (b, t) in order: deterministic.
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T>
void causal_conv1d_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C, int64_t K);
template <class T>
void causal_conv1d_bwd(const T* x, const T* w, const T* dy, T* dx, T* dw, T* dbias, int64_t B, int64_t T_, int64_t C,
                       int64_t K);

// Fused SiLU: y = silu(pre), pre = the conv output above. The forward is bit-identical to
// causal_conv1d_fwd followed by silu_fwd (kernels/elementwise.h): same expressions, same order.
// The backward recomputes pre from x, w, bias, forms dpre = dy * silu'(pre) as silu_bwd does, and
// then reduces exactly as causal_conv1d_bwd does from dy, so it equals the composed backward.
template <class T>
void causal_conv1d_silu_fwd(const T* x, const T* w, const T* bias, T* y, int64_t B, int64_t T_, int64_t C, int64_t K);
template <class T>
void causal_conv1d_silu_bwd(const T* x, const T* w, const T* bias, const T* dy, T* dx, T* dw, T* dbias, int64_t B,
                            int64_t T_, int64_t C, int64_t K);

}  // namespace hyscale::kernels::cpu

namespace hyscale::kernels::cpu {

// One decoding step: y[b,c] = bias[c] + sum_{k<K-1} w[c,k] state[b,k,c] + w[c,K-1] x[b,c];
// then the state window shifts by one (state holds the last K-1 inputs, oldest first).
// Layouts: x, y [B, C]; state [B, K-1, C].
template <class T>
void causal_conv1d_step(const T* x, const T* w, const T* bias, T* state, T* y, int64_t B, int64_t C, int64_t K);

}  // namespace hyscale::kernels::cpu
