#include "kernels/embedding.h"

#include <algorithm>
#include <cstring>

namespace hyscale::kernels::cpu {

template <class T>
void embedding_fwd(const int32_t* ids, const T* table, T* out, int64_t N, int64_t D, int64_t start, int64_t V) {
#pragma omp parallel for schedule(static) if (N * D > 65536)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = static_cast<int64_t>(ids[n]) - start;
    if (r >= 0 && r < V)
      std::memcpy(out + n * D, table + r * D, D * sizeof(T));
    else
      std::fill(out + n * D, out + (n + 1) * D, T(0));
  }
}

template <class T>
void embedding_bwd(const int32_t* ids, const T* dout, T* dtable, int64_t N, int64_t D, int64_t start, int64_t V) {
  constexpr int64_t kCols = 64;
  const int64_t nblk = (D + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (N * D > 65536)
  for (int64_t b = 0; b < nblk; ++b) {
    const int64_t c0 = b * kCols, c1 = std::min(D, c0 + kCols);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = static_cast<int64_t>(ids[n]) - start;
      if (r < 0 || r >= V) continue;
      T* dst = dtable + r * D;
      const T* src = dout + n * D;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

template void embedding_fwd<float>(const int32_t*, const float*, float*, int64_t, int64_t, int64_t, int64_t);
template void embedding_fwd<double>(const int32_t*, const double*, double*, int64_t, int64_t, int64_t, int64_t);
template void embedding_bwd<float>(const int32_t*, const float*, float*, int64_t, int64_t, int64_t, int64_t);
template void embedding_bwd<double>(const int32_t*, const double*, double*, int64_t, int64_t, int64_t, int64_t);

}  // namespace hyscale::kernels::cpu
