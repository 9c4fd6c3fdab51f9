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

// One decoding step's RoPE and KV-cache append, for B rows each at its own position
// pos_b = n_tok[b] - 1 (n_tok: the row's tokens including the new one, >= 1):
//   qkv row b = [q (H heads) | k (Hk heads) | v (Hk heads)] of D each, contiguous rows of (H + 2 Hk) D;
//   q_out [B, H, D] = rope(q, pos_b); the cache slot s_b = ring ? pos_b % cap : pos_b (< cap) of
//   k_cache, v_cache [B, cap, Hk, D] gets rope(k, pos_b) and v. Hk = 0: only q (cross-attention;
//   the caches are not touched and may be null). rope_base <= 0: no rotation (copies).
// The rotation is kernels/rope.h's rope_fwd at pos0 = pos_b, per row.
template <class T>
void decode_rope_append(const T* qkv, T* q_out, T* k_cache, T* v_cache, const int64_t* n_tok, int64_t B, int64_t H,
                        int64_t Hk, int64_t D, int64_t cap, bool ring, double rope_base);

}  // namespace hyscale::kernels::cpu
