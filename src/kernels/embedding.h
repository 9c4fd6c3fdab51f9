// Token embedding: out[n, :] = table[ids[n], :].
// Layouts: ids [N] (int32, already range-checked by the op), table/dtable [V, D], out/dout [N, D].
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T> void embedding_fwd(const int32_t* ids, const T* table, T* out, int64_t N, int64_t D);
// dtable += scatter(dout). Deterministic: threads own column ranges and visit tokens in order.
template <class T> void embedding_bwd(const int32_t* ids, const T* dout, T* dtable, int64_t N, int64_t D);

}  // namespace hyscale::kernels::cpu
