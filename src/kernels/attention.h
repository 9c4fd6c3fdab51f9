// Causal multi-head attention with GQA, flash-style (online softmax over key
// tiles). Nothing of size T x T is ever stored: the forward saves only the
// log-sum-exp per (b, h, t); the backward recomputes probabilities tile by tile.
//
// Layouts (contiguous): q, dq [B, T, H, D]; k, dk [B, T, Hk, D]; v, dv [B, T, Hk, Dv];
// out, dout [B, T, H, Dv]; lse [B, H, T]. (Dv may differ from D: differential attention
// reads both value halves of a head pair as one [v1 | v2] value of width 2D.) Query head h reads KV head h / (H / Hk) (flash-attn's GQA rule).
// window = number of visible keys including the current token (query t sees keys
// t-window+1 .. t); window <= 0 or >= T means full causal attention (SPEC §4).
// The backward writes (not accumulates) dq, dk, dv and is deterministic.
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T>
void attention_fwd(const T* q, const T* k, const T* v, T* out, T* lse, int64_t B, int64_t T_, int64_t H, int64_t Hk,
                   int64_t D, int64_t Dv, double scale, int64_t window);

template <class T>
void attention_bwd(const T* q, const T* k, const T* v, const T* out, const T* dout, const T* lse, T* dq, T* dk, T* dv,
                   int64_t B, int64_t T_, int64_t H, int64_t Hk, int64_t D, int64_t Dv, double scale,
                   int64_t window);

}  // namespace hyscale::kernels::cpu

namespace hyscale::kernels::cpu {

// One decoding step: row b's queries attend to the first n_valid[b] slots of a KV cache (all of
// them visible: the caller keeps only what the query may see, e.g. a ring buffer of the
// last W tokens for sliding-window attention; slot order does not matter).
// Layouts: q [B, H, D]; out [B, H, Dv]; K element (b, slot j, KV head g, c) at
// kc[(b cap + j) k_pos + g k_head + c], V likewise with v_pos / v_head. Strides 0 mean the dense
// layouts kc [B, cap, Hk, D] and vc [B, cap, Hk, Dv]; other strides read a view of a cache in
// place (differential attention's half-heads).
template <class T>
void attention_decode(const T* q, const T* kc, const T* vc, T* out, int64_t B, int64_t H, int64_t Hk, int64_t D,
                      int64_t Dv, int64_t cap, const int64_t* n_valid, double scale, int64_t k_pos = 0,
                      int64_t k_head = 0, int64_t v_pos = 0, int64_t v_head = 0);

}  // namespace hyscale::kernels::cpu
