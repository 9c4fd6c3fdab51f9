// CUDA selective scan forward (kernels/cuda.h). Sequential in time per (sequence, channel)
// thread; the time loop is the scan's inherent dependency, channels and sequences are parallel.
#include "kernels/cuda/common.cuh"

namespace hyscale::kernels::cuda {

namespace {
using namespace detail;
__device__ __forceinline__ float softplusf_(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

template <class T, int kN>
__global__ void scan_fwd_k(const T* __restrict__ u, const T* __restrict__ delta, const T* __restrict__ A_log,
                           const T* __restrict__ Bm, const T* __restrict__ Cm, const T* __restrict__ Dv,
                           const T* __restrict__ dt_bias, T* __restrict__ y, float* __restrict__ states, int64_t Bsz,
                           int64_t T_, int64_t Dc, int N, int64_t chunk) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= Bsz * Dc) return;
  const int64_t b = idx / Dc, c = idx % Dc;
  float A[kN], h[kN];
  for (int n = 0; n < kN; ++n) {
    A[n] = n < N ? -expf(ld(A_log, c * N + n)) : 0.0f;
    h[n] = 0.0f;
  }
  const float bias = ld(dt_bias, c), Dc_ = ld(Dv, c);
  const int64_t n_chunks = (T_ + chunk - 1) / chunk;
  for (int64_t t = 0; t < T_; ++t) {
    const int64_t i = (b * T_ + t) * Dc + c;
    const float dt = softplusf_(ld(delta, i) + bias), uv = ld(u, i), dtu = dt * uv;
    const int64_t bt = (b * T_ + t) * N;
    float acc = 0.0f;
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      if (n < N) {
        h[n] = expf(dt * A[n]) * h[n] + dtu * ld(Bm, bt + n);  // accurate expf: the scan is memory-bound
        acc += ld(Cm, bt + n) * h[n];
      }
    }
    st(y, i, acc + Dc_ * uv);
    if ((t + 1) % chunk == 0 || t + 1 == T_) {
      float* sp = states + ((b * n_chunks + t / chunk) * Dc + c) * N;
      for (int n = 0; n < N; ++n) sp[n] = h[n];
    }
  }
}
}  // namespace

template <class T>
void selective_scan_fwd(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                        const T* dt_bias, T* y, float* states, int64_t B, int64_t T_, int64_t Dc, int64_t N,
                        int64_t chunk, void* s) {
  HS_CHECK(N >= 1 && N <= 64, "selective_scan_fwd (CUDA): d_state ", N, " outside [1, 64]");
  HS_CHECK(chunk >= 1, "selective_scan_fwd (CUDA): chunk must be >= 1");
  if (B * Dc == 0 || T_ == 0) return;
  const int64_t blocks = (B * Dc + 127) / 128;
  HS_CHECK(blocks < (int64_t{1} << 31), "selective_scan_fwd (CUDA): grid too large");
  const int n = static_cast<int>(N);
  if (N <= 16)
    scan_fwd_k<T, 16><<<static_cast<unsigned>(blocks), 128, 0, S(s)>>>(u, delta, A_log, Bm, Cm, D, dt_bias, y, states,
                                                                       B, T_, Dc, n, chunk);
  else
    scan_fwd_k<T, 64><<<static_cast<unsigned>(blocks), 128, 0, S(s)>>>(u, delta, A_log, Bm, Cm, D, dt_bias, y, states,
                                                                       B, T_, Dc, n, chunk);
  const cudaError_t e = cudaGetLastError();
  HS_CHECK(e == cudaSuccess, "CUDA kernel selective_scan_fwd failed to launch: ", cudaGetErrorString(e), " (B = ", B,
           ", T = ", T_, ", Dc = ", Dc, ", N = ", N, ")");
}

template void selective_scan_fwd<float>(const float*, const float*, const float*, const float*, const float*,
                                        const float*, const float*, float*, float*, int64_t, int64_t, int64_t,
                                        int64_t, int64_t, void*);
template void selective_scan_fwd<bf16>(const bf16*, const bf16*, const bf16*, const bf16*, const bf16*, const bf16*,
                                       const bf16*, bf16*, float*, int64_t, int64_t, int64_t, int64_t, int64_t, void*);

}  // namespace hyscale::kernels::cuda
