// CUDA bodies of kernels/cuda.h: residual + RMSNorm, embedding (deterministic backward), RoPE.
#include <cub/cub.cuh>

#include <cmath>

#include "kernels/cuda/common.cuh"

namespace hyscale::kernels::cuda {

namespace {

#define HS_CUDA_OK(call, what)                                                                        \
  do {                                                                                                \
    cudaError_t err_ = (call);                                                                        \
    if (err_ != cudaSuccess) HS_FAIL(what, ": ", #call, ": ", cudaGetErrorString(err_));             \
  } while (0)

using namespace detail;
int grid_for(int64_t n) { return blocks_for(n, 256); }
constexpr int kThreads = 256;

template <class T>
__global__ void residual_rmsnorm_k(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ g,
                                   T* __restrict__ h, T* __restrict__ out, float* __restrict__ rstd, int64_t D,
                                   float eps) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x;
  float ss = 0;
  for (int64_t i = threadIdx.x; i < D; i += kThreads) {
    const float v = ld(x, r * D + i) + ld(y, r * D + i);
    st(h, r * D + i, v);
    const float vr = ld(h, r * D + i);  // the stored (possibly bf16-rounded) residual is what is normalised
    ss += vr * vr;
  }
  ss = block_sum<kThreads>(ss, sh);
  const float rs = rsqrtf(ss / static_cast<float>(D) + eps);
  if (threadIdx.x == 0) rstd[r] = rs;
  for (int64_t i = threadIdx.x; i < D; i += kThreads) st(out, r * D + i, ld(h, r * D + i) * rs * ld(g, i));
}

template <class T>
__global__ void embedding_fwd_k(const int32_t* __restrict__ ids, const T* __restrict__ table, T* __restrict__ out,
                                int64_t N, int64_t D) {
  const int64_t n = N * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / D, c = i - t * D;
    st(out, i, ld(table, static_cast<int64_t>(ids[t]) * D + c));
  }
}
// One block per sorted position; only segment starts work: they sum the rows of their id's
// positions in (stable-sorted, i.e. increasing) position order.
template <class T>
__global__ void embedding_bwd_k(const int32_t* __restrict__ sid, const int32_t* __restrict__ spos,
                                const T* __restrict__ dout, float* __restrict__ dtable, int64_t N, int64_t D) {
  const int64_t i = blockIdx.x;
  if (i > 0 && sid[i] == sid[i - 1]) return;
  int64_t j = i;
  while (j < N && sid[j] == sid[i]) ++j;
  const int64_t row = sid[i];
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x) {
    float s = 0;
    for (int64_t k = i; k < j; ++k) s += ld(dout, static_cast<int64_t>(spos[k]) * D + c);
    dtable[row * D + c] += s;
  }
}
__global__ void iota_k(int32_t* p, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<int32_t>(i);
}

template <class T>
__global__ void rope_k(const T* __restrict__ x, T* __restrict__ y, int64_t B, int64_t T_, int64_t H, int64_t D,
                       double base, int64_t pos0, double sign) {
  const int64_t half = D / 2, n = B * T_ * H * half;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % half, row = i / half;  // row indexes (b, t, h)
    const int64_t t = (row / H) % T_;
    const double theta = pow(base, -2.0 * static_cast<double>(k) / static_cast<double>(D));
    double sa, ca;
    sincos(static_cast<double>(pos0 + t) * theta, &sa, &ca);
    const float c = static_cast<float>(ca), s = static_cast<float>(sign * sa);
    const float x1 = ld(x, row * D + k), x2 = ld(x, row * D + k + half);
    st(y, row * D + k, x1 * c - x2 * s);
    st(y, row * D + k + half, x2 * c + x1 * s);
  }
}

}  // namespace

template <class T>
void residual_rmsnorm_fwd(const T* x, const T* y, const T* g, T* h, T* out, float* rstd, int64_t rows, int64_t D,
                          double eps, void* s) {
  if (rows == 0) return;
  HS_CHECK(rows < (int64_t{1} << 31), "residual_rmsnorm_fwd (CUDA): ", rows, " rows exceed the grid");
  residual_rmsnorm_k<<<static_cast<unsigned>(rows), kThreads, 0, S(s)>>>(x, y, g, h, out, rstd, D,
                                                                         static_cast<float>(eps));
  HS_LAUNCH_CHECK("residual_rmsnorm_fwd", "rows = ", rows, ", D = ", D);
}

template <class T> void embedding_fwd(const int32_t* ids, const T* table, T* out, int64_t N, int64_t D, void* s) {
  if (N * D == 0) return;
  embedding_fwd_k<<<grid_for(N * D), 256, 0, S(s)>>>(ids, table, out, N, D);
  HS_LAUNCH_CHECK("embedding_fwd", "N = ", N, ", D = ", D);
}

template <class T> void embedding_bwd(const int32_t* ids, const T* dout, float* dtable, int64_t N, int64_t D, void* s) {
  if (N * D == 0) return;
  HS_CHECK(N < (int64_t{1} << 31), "embedding_bwd (CUDA): ", N, " tokens exceed int32 positions");
  int32_t *pos = nullptr, *sid = nullptr, *spos = nullptr;
  void* tmp = nullptr;
  size_t tmp_bytes = 0;
  const int n = static_cast<int>(N);
  HS_CUDA_OK(cub::DeviceRadixSort::SortPairs(nullptr, tmp_bytes, ids, sid, pos, spos, n, 0, 32, S(s)),
             "embedding_bwd sort (size query)");
  HS_CUDA_OK(cudaMallocAsync(reinterpret_cast<void**>(&pos), 3 * sizeof(int32_t) * N + tmp_bytes + 256, S(s)),
             "embedding_bwd workspace");
  sid = pos + N;
  spos = sid + N;
  tmp = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(spos + N) + 255) / 256 * 256);  // CUB wants 256-B alignment
  iota_k<<<grid_for(N), 256, 0, S(s)>>>(pos, N);
  HS_LAUNCH_CHECK("embedding_bwd iota", "N = ", N);
  HS_CUDA_OK(cub::DeviceRadixSort::SortPairs(tmp, tmp_bytes, ids, sid, pos, spos, n, 0, 32, S(s)),
             "embedding_bwd sort");  // LSD radix sort: stable, so positions stay increasing per id
  embedding_bwd_k<<<static_cast<unsigned>(N), 256, 0, S(s)>>>(sid, spos, dout, dtable, N, D);
  HS_LAUNCH_CHECK("embedding_bwd", "N = ", N, ", D = ", D);
  cudaFreeAsync(pos, S(s));
}

template <class T>
void rope_fwd(const T* x, T* y, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0, void* s) {
  HS_CHECK(D % 2 == 0, "rope_fwd (CUDA): head dim ", D, " must be even");
  if (B * T_ * H * D == 0) return;
  rope_k<<<grid_for(B * T_ * H * D / 2), 256, 0, S(s)>>>(x, y, B, T_, H, D, base, pos0, 1.0);
  HS_LAUNCH_CHECK("rope_fwd", "B = ", B, ", T = ", T_, ", H = ", H, ", D = ", D);
}
template <class T>
void rope_bwd(const T* dy, T* dx, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0, void* s) {
  HS_CHECK(D % 2 == 0, "rope_bwd (CUDA): head dim ", D, " must be even");
  if (B * T_ * H * D == 0) return;
  rope_k<<<grid_for(B * T_ * H * D / 2), 256, 0, S(s)>>>(dy, dx, B, T_, H, D, base, pos0, -1.0);
  HS_LAUNCH_CHECK("rope_bwd", "B = ", B, ", T = ", T_, ", H = ", H, ", D = ", D);
}

#define HS_INST(T)                                                                                              \
  template void residual_rmsnorm_fwd<T>(const T*, const T*, const T*, T*, T*, float*, int64_t, int64_t, double, \
                                        void*);                                                                 \
  template void embedding_fwd<T>(const int32_t*, const T*, T*, int64_t, int64_t, void*);                        \
  template void embedding_bwd<T>(const int32_t*, const T*, float*, int64_t, int64_t, void*);                    \
  template void rope_fwd<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, double, int64_t, void*);          \
  template void rope_bwd<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, double, int64_t, void*);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
