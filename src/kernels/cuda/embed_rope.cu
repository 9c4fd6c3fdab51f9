// CUDA bodies of kernels/cuda.h: residual + RMSNorm, embedding (deterministic backward), RoPE.
#include <cub/cub.cuh>

#include <cmath>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/elementwise.cuh"

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
                                int64_t N, int64_t D, int64_t start, int64_t V) {
  const int64_t n = N * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / D, c = i - t * D;
    const int64_t r = static_cast<int64_t>(ids[t]) - start;
    st(out, i, r >= 0 && r < V ? ld(table, r * D + c) : 0.0f);
  }
}
// One block per sorted position; only segment starts work: they sum the rows of their id's
// positions in (stable-sorted, i.e. increasing) position order.
template <class T>
__global__ void embedding_bwd_k(const int32_t* __restrict__ sid, const int32_t* __restrict__ spos,
                                const T* __restrict__ dout, float* __restrict__ dtable, int64_t N, int64_t D,
                                int64_t start, int64_t V) {
  const int64_t i = blockIdx.x;
  if (i > 0 && sid[i] == sid[i - 1]) return;
  const int64_t row = static_cast<int64_t>(sid[i]) - start;
  if (row < 0 || row >= V) return;  // another slice's id (vocabulary-parallel)
  int64_t j = i;
  while (j < N && sid[j] == sid[i]) ++j;
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

// The (cos, sin) of rope_k for positions pos0 .. pos0 + T - 1 and frequencies k < half, computed
// by the same double-precision expressions and rounded to float as rope_k does: a table [T][half].
__global__ void rope_table_k(float2* __restrict__ tab, int64_t T_, int64_t half, int64_t D, double base,
                             int64_t pos0) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < T_ * half; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % half, t = i / half;
    const double theta = pow(base, -2.0 * static_cast<double>(k) / static_cast<double>(D));
    double sa, ca;
    sincos(static_cast<double>(pos0 + t) * theta, &sa, &ca);
    tab[i] = make_float2(static_cast<float>(ca), static_cast<float>(sa));
  }
}

// rope_k from the table: the same floats c and s (sign * sin rounds as -(float)sin), W = 16 bytes of
// consecutive frequencies per thread when aligned (half a multiple of W), else one at a time.
template <class T>
__global__ void rope_tab_k(const T* __restrict__ x, T* __restrict__ y, const float2* __restrict__ tab, int64_t rows,
                           int64_t T_, int64_t H, int64_t half, float sign, bool vec) {
  constexpr int W = Vec<T>::W;
  const int64_t D = 2 * half, per = vec ? half / W : half, n = rows * per;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / per, t = (row / H) % T_;
    if (vec) {
      const int64_t k0 = (i % per) * W;
      float a[W], b[W], o1[W], o2[W];
      Vec<T>::load(x, row * D + k0, a);
      Vec<T>::load(x, row * D + half + k0, b);
#pragma unroll
      for (int e = 0; e < W; ++e) {
        const float2 cs = tab[t * half + k0 + e];
        const float c = cs.x, sn = sign * cs.y;
        o1[e] = a[e] * c - b[e] * sn;
        o2[e] = b[e] * c + a[e] * sn;
      }
      Vec<T>::store(y, row * D + k0, o1);
      Vec<T>::store(y, row * D + half + k0, o2);
    } else {
      const int64_t k = i % per;
      const float2 cs = tab[t * half + k];
      const float c = cs.x, sn = sign * cs.y;
      const float x1 = ld(x, row * D + k), x2 = ld(x, row * D + k + half);
      st(y, row * D + k, x1 * c - x2 * sn);
      st(y, row * D + k + half, x2 * c + x1 * sn);
    }
  }
}

// Tables of the recent (device, T, D, base, pos0), kept on the device: training asks for the same
// one every layer and step. At most kRopeTables; the oldest goes first.
constexpr size_t kRopeTables = 16;
struct RopeTable {
  int dev;
  int64_t T, D, pos0;
  double base;
  float2* p;
};
const float2* rope_table(int64_t T_, int64_t D, double base, int64_t pos0, cudaStream_t st_) {
  static std::vector<RopeTable> tables;
  int dev = 0;
  HS_CUDA_OK(cudaGetDevice(&dev), "rope");
  for (const RopeTable& r : tables)
    if (r.dev == dev && r.T == T_ && r.D == D && r.base == base && r.pos0 == pos0) return r.p;
  if (tables.size() == kRopeTables) {
    HS_CUDA_OK(cudaDeviceSynchronize(), "rope (table eviction)");  // no kernel may still read it
    int cur = 0;
    HS_CUDA_OK(cudaGetDevice(&cur), "rope");
    HS_CUDA_OK(cudaSetDevice(tables.front().dev), "rope");
    HS_CUDA_OK(cudaFree(tables.front().p), "rope (table eviction)");
    HS_CUDA_OK(cudaSetDevice(cur), "rope");
    tables.erase(tables.begin());
  }
  float2* p = nullptr;
  HS_CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&p), static_cast<size_t>(T_ * (D / 2)) * sizeof(float2)),
             "rope (table)");
  rope_table_k<<<grid_for(T_ * (D / 2)), 256, 0, st_>>>(p, T_, D / 2, D, base, pos0);
  HS_LAUNCH_CHECK("rope (table)", "T = ", T_, ", D = ", D);
  tables.push_back({dev, T_, D, pos0, base, p});
  return p;
}
// Tables pay off from a few positions on; decode steps (T = 1, a new pos0 each) compute inline.
constexpr int64_t kRopeTableMinT = 16;

template <class T>
void rope_apply(const T* x, T* y, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0, double sign,
                cudaStream_t st_) {
  if (T_ < kRopeTableMinT) {
    rope_k<<<grid_for(B * T_ * H * D / 2), 256, 0, st_>>>(x, y, B, T_, H, D, base, pos0, sign);
    return;
  }
  const float2* tab = rope_table(T_, D, base, pos0, st_);
  const int64_t half = D / 2, rows = B * T_ * H;
  const bool vec = half % Vec<T>::W == 0 && aligned16(x) && aligned16(y);
  const int64_t work = vec ? rows * (half / Vec<T>::W) : rows * half;
  rope_tab_k<T><<<grid_for(work), 256, 0, st_>>>(x, y, tab, rows, T_, H, half, static_cast<float>(sign), vec);
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

template <class T>
void embedding_fwd(const int32_t* ids, const T* table, T* out, int64_t N, int64_t D, int64_t start, int64_t V,
                   void* s) {
  if (N * D == 0) return;
  embedding_fwd_k<<<grid_for(N * D), 256, 0, S(s)>>>(ids, table, out, N, D, start, V);
  HS_LAUNCH_CHECK("embedding_fwd", "N = ", N, ", D = ", D);
}

template <class T>
void embedding_bwd(const int32_t* ids, const T* dout, float* dtable, int64_t N, int64_t D, int64_t start, int64_t V,
                   void* s) {
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
  embedding_bwd_k<<<static_cast<unsigned>(N), 256, 0, S(s)>>>(sid, spos, dout, dtable, N, D, start, V);
  HS_LAUNCH_CHECK("embedding_bwd", "N = ", N, ", D = ", D);
  cudaFreeAsync(pos, S(s));
}

template <class T>
void rope_fwd(const T* x, T* y, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0, void* s) {
  HS_CHECK(D % 2 == 0, "rope_fwd (CUDA): head dim ", D, " must be even");
  if (B * T_ * H * D == 0) return;
  rope_apply<T>(x, y, B, T_, H, D, base, pos0, 1.0, S(s));
  HS_LAUNCH_CHECK("rope_fwd", "B = ", B, ", T = ", T_, ", H = ", H, ", D = ", D);
}
template <class T>
void rope_bwd(const T* dy, T* dx, int64_t B, int64_t T_, int64_t H, int64_t D, double base, int64_t pos0, void* s) {
  HS_CHECK(D % 2 == 0, "rope_bwd (CUDA): head dim ", D, " must be even");
  if (B * T_ * H * D == 0) return;
  rope_apply<T>(dy, dx, B, T_, H, D, base, pos0, -1.0, S(s));
  HS_LAUNCH_CHECK("rope_bwd", "B = ", B, ", T = ", T_, ", H = ", H, ", D = ", D);
}

#define HS_INST(T)                                                                                              \
  template void residual_rmsnorm_fwd<T>(const T*, const T*, const T*, T*, T*, float*, int64_t, int64_t, double, \
                                        void*);                                                                 \
  template void embedding_fwd<T>(const int32_t*, const T*, T*, int64_t, int64_t, int64_t, int64_t, void*);      \
  template void embedding_bwd<T>(const int32_t*, const T*, float*, int64_t, int64_t, int64_t, int64_t, void*);  \
  template void rope_fwd<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, double, int64_t, void*);          \
  template void rope_bwd<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, double, int64_t, void*);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
