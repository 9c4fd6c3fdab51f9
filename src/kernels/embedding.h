// Token embedding: out[n, :] = table[ids[n] - start, :].
// Layouts: ids [N] (int32, already range-checked by the op), table/dtable [V, D], out/dout [N, D].
// The table holds rows [start, start + V) of the vocabulary (start = 0 and V = the vocabulary
// for a whole table; a slice under vocabulary-parallel tensor parallelism): an id outside the
// slice gives a zero row forward and no gradient.
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T>
void embedding_fwd(const int32_t* ids, const T* table, T* out, int64_t N, int64_t D, int64_t start, int64_t V);
// dtable += scatter(dout). Deterministic: threads own column ranges and visit tokens in order.
template <class T>
void embedding_bwd(const int32_t* ids, const T* dout, T* dtable, int64_t N, int64_t D, int64_t start, int64_t V);

}  // namespace hyscale::kernels::cpu
