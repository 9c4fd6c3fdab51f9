// CUDA selective scan backward (kernels/cuda_hybrid.h; CPU twin kernels/cpu/selective_scan.cpp,
// same math, same order of the time loop). Deterministic: no atomics, every sum has a fixed order.
//
// Design. Like the forward, one thread per (sequence b, channel c): the time recurrence is
// sequential, channels and sequences are parallel. A block is 128 consecutive channels of ONE
// sequence (grid = [ceil(Dc / 128), B]), so its threads walk the same time steps in lockstep.
// Per thread, in registers: A[n] = -exp(A_log), the adjoint carry g[n] (dL/dh_t flowing back
// from t+1, already multiplied by exp(dt_{t+1} A)), and the dA[n] accumulator.
// Chunks are visited last to first. For chunk k = [s, e):
//   1. recompute: starting from the saved state of chunk k-1 (zero for k = 0), run the forward
//      recurrence through the chunk (same expression as the forward kernel) and STASH h_{t-1}
//      for every t in the chunk in global scratch laid out [min(chunk,T)][N][B*Dc] (consecutive
//      threads = consecutive columns: coalesced). Recomputing backwards with
//      h_{t-1} = (h_t - dt B u) / exp(dt A) would be cheaper but is unstable (exp(dt A) can be
//      ~1e-7 for A = -16), so the stash is the price: min(chunk, T) * N floats per thread.
//   2. reverse scan over t = e-1 .. s: h_{t-1} from the stash, a = exp(dt A), h_t = a h_{t-1} +
//      dt B u recomputed (the CPU's expression), then the CPU's per-step gradient formulas; du and
//      ddelta are stored directly (the thread owns its (b, t, c)).
// dB_t[n], dC_t[n] are sums over channels. Per step, each warp reduces its 32 channels' 2*16
// values (per group of 16 states) with a butterfly "transpose-reduce" (31 shuffles; lane l ends
// with the warp sum of value l); the 4 warps' sums go to shared memory, buffered for kSteps
// steps, then the block sums them in warp order and writes one partial per (tile, b, t, n) to
// scratch. A second kernel sums the tiles in order. dA_log, dD, ddt_bias: each thread's own sums
// over t (the CPU's order, last step first) are written as per-(b, c) partials, and a third
// kernel sums the batch rows in order (dA_log = A * sum, like the CPU).
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda_hybrid.h"

namespace hyscale::kernels::cuda {

namespace {
using namespace detail;

constexpr int kThreads = 128;  // channels per block (one tile)
constexpr int kWarps = kThreads / 32;
constexpr int kSteps = 4;  // time steps of dB/dC warp sums buffered in shared memory per flush

__device__ __forceinline__ float softplusf_(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
__device__ __forceinline__ float dsoftplusf_(float x) { return x > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-x)); }

// In: v[j] of this lane (j < 32). Out: v[0] of lane l = sum over the warp's lanes of v[l].
// Fixed butterfly (deterministic). Step w keeps w values: the upper half of the lanes (bit w
// set) keeps the upper half of the values and receives its partner's copy of them.
template <int W> __device__ __forceinline__ void transpose_sum_step(float (&v)[32], int lane) {
  const bool upper = (lane & W) != 0;
#pragma unroll
  for (int i = 0; i < W; ++i) {
    const float send = upper ? v[i] : v[i + W];
    const float keep = upper ? v[i + W] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, W);
  }
  if constexpr (W > 1) transpose_sum_step<W / 2>(v, lane);
}
__device__ __forceinline__ void warp_transpose_sum(float (&v)[32], int lane) { transpose_sum_step<16>(v, lane); }

template <class T, int kN>
__global__ void __launch_bounds__(kThreads)
    scan_bwd_k(const T* __restrict__ u, const T* __restrict__ delta, const T* __restrict__ A_log,
               const T* __restrict__ Bm, const T* __restrict__ Cm, const T* __restrict__ Dv,
               const T* __restrict__ dt_bias, const float* __restrict__ states, const T* __restrict__ dy,
               T* __restrict__ du, T* __restrict__ ddelta, float* __restrict__ stash, float* __restrict__ pB,
               float* __restrict__ pC, float* __restrict__ pA, float* __restrict__ pD, float* __restrict__ pbias,
               int64_t Bsz, int64_t T_, int64_t Dc, int N, int64_t chunk) {
  constexpr int kQ = kN / 16;  // groups of 16 states
  __shared__ float sh[kSteps][kWarps][kQ * 32];
  const int64_t tile = blockIdx.x, b = blockIdx.y;
  const int64_t c = tile * kThreads + threadIdx.x;
  const bool valid = c < Dc;  // invalid threads (last tile) still take part in shuffles and syncs
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nq = (N + 15) / 16;  // groups in use (uniform over the block)
  const int64_t BD = Bsz * Dc, col = b * Dc + c;
  const int64_t nch = (T_ + chunk - 1) / chunk;

  float A[kN], g[kN], dA[kN];
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    A[n] = (valid && n < N) ? -expf(ld(A_log, c * N + n)) : 0.0f;
    g[n] = 0.0f;
    dA[n] = 0.0f;
  }
  const float bias = valid ? ld(dt_bias, c) : 0.0f, Dskip = valid ? ld(Dv, c) : 0.0f;
  float dDacc = 0.0f, dbacc = 0.0f;
  int slot = 0;         // next free step slot of sh
  int64_t t_first = 0;  // time step of slot 0 (slot k holds step t_first - k)

  for (int64_t k = nch - 1; k >= 0; --k) {
    const int64_t s = k * chunk, e = min(T_, s + chunk);
    // 1. Recompute the chunk's states from the saved one; stash h_{t-1} for t in [s, e).
    if (valid) {
      float h[kN];
      const float* h0 = k > 0 ? states + ((b * nch + k - 1) * Dc + c) * N : nullptr;
#pragma unroll
      for (int n = 0; n < kN; ++n) h[n] = (h0 && n < N) ? h0[n] : 0.0f;
      for (int64_t t = s; t < e; ++t) {
        const int64_t i = (b * T_ + t) * Dc + c;
        const float dt = softplusf_(ld(delta, i) + bias), dtu = dt * ld(u, i);
        const int64_t bt = (b * T_ + t) * N;
        float* sp = stash + (t - s) * N * BD + col;
#pragma unroll
        for (int n = 0; n < kN; ++n) {
          if (n < N) {
            sp[n * BD] = h[n];
            h[n] = expf(dt * A[n]) * h[n] + dtu * ld(Bm, bt + n);  // the forward kernel's expression
          }
        }
      }
    }
    // 2. Reverse scan through the chunk.
    for (int64_t t = e - 1; t >= s; --t) {
      if (slot == 0) t_first = t;
      const int64_t i = (b * T_ + t) * Dc + c;
      float xv = 0.0f, dt = 0.0f, uv = 0.0f, dyv = 0.0f;  // zeros make an invalid thread contribute 0
      if (valid) {
        xv = ld(delta, i) + bias;
        dt = softplusf_(xv);
        uv = ld(u, i);
        dyv = ld(dy, i);
      }
      const float dtu = dt * uv;
      const int64_t bt = (b * T_ + t) * N;
      const float* sp = stash + (t - s) * N * BD + col;
      float ddt = 0.0f, duv = 0.0f;
#pragma unroll
      for (int q = 0; q < kQ; ++q) {
        if (q < nq) {
          float v[32];  // [dB for n = 16q .. 16q+15 | dC for the same n], this thread's channel
#pragma unroll
          for (int j = 0; j < 16; ++j) {
            const int n = q * 16 + j;
            float vb = 0.0f, vc = 0.0f;
            if (n < N) {
              const float Bn = ld(Bm, bt + n), Cn = ld(Cm, bt + n);
              const float hp = valid ? sp[n * BD] : 0.0f;
              const float gn = g[n] + dyv * Cn;  // dL/dh_t
              const float a = expf(dt * A[n]);
              const float ah = a * hp;
              vc = dyv * (ah + dtu * Bn);  // dy_t h_t
              dA[n] += gn * dt * ah;
              ddt += gn * (A[n] * ah + Bn * uv);
              vb = gn * dt * uv;
              duv += gn * Bn;
              g[n] = gn * a;
            }
            v[j] = vb;
            v[16 + j] = vc;
          }
          warp_transpose_sum(v, lane);
          sh[slot][warp][q * 32 + lane] = v[0];
        }
      }
      if (valid) {
        st(du, i, duv * dt + dyv * Dskip);
        dDacc += dyv * uv;
        const float dx = ddt * dsoftplusf_(xv);
        st(ddelta, i, dx);
        dbacc += dx;
      }
      if (++slot == kSteps || t == 0) {  // flush: block sums (warp order) -> partial per tile
        __syncthreads();
        const int per = nq * 32;
        for (int en = threadIdx.x; en < slot * per; en += kThreads) {
          const int kk = en / per, j = en % per;
          float sum = 0.0f;
#pragma unroll
          for (int w = 0; w < kWarps; ++w) sum += sh[kk][w][j];
          const int l = j & 31, n = (j >> 5) * 16 + (l & 15);
          if (n < N) (l < 16 ? pB : pC)[((tile * Bsz + b) * T_ + (t_first - kk)) * N + n] = sum;
        }
        __syncthreads();
        slot = 0;
      }
    }
  }
  if (valid) {
    float* pa = pA + col * N;
#pragma unroll
    for (int n = 0; n < kN; ++n)
      if (n < N) pa[n] = dA[n] * A[n];  // dA_log = dA * A (the CPU's order)
    pD[col] = dDacc;
    pbias[col] = dbacc;
  }
}

// dBm, dCm [M = B T N] = sum over tiles, in tile order.
__global__ void scan_bwd_sum_bc_k(const float* __restrict__ pB, const float* __restrict__ pC, float* __restrict__ dBm,
                                  float* __restrict__ dCm, int64_t ntile, int64_t M) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M; i += int64_t(gridDim.x) * blockDim.x) {
    float sb = 0.0f, sc = 0.0f;
    for (int64_t tl = 0; tl < ntile; ++tl) {
      sb += pB[tl * M + i];
      sc += pC[tl * M + i];
    }
    dBm[i] = sb;
    dCm[i] = sc;
  }
}
// dA_log [Dc, N], dD, ddt_bias [Dc] = sum over batch rows, in row order.
__global__ void scan_bwd_sum_param_k(const float* __restrict__ pA, const float* __restrict__ pD,
                                     const float* __restrict__ pbias, float* __restrict__ dA_log,
                                     float* __restrict__ dD, float* __restrict__ ddt_bias, int64_t Bsz, int64_t Dc,
                                     int64_t N) {
  const int64_t DN = Dc * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < DN; i += int64_t(gridDim.x) * blockDim.x) {
    float sa = 0.0f;
    for (int64_t b = 0; b < Bsz; ++b) sa += pA[b * DN + i];
    dA_log[i] = sa;
    if (i < Dc) {
      float sd = 0.0f, sbias = 0.0f;
      for (int64_t b = 0; b < Bsz; ++b) {
        sd += pD[b * Dc + i];
        sbias += pbias[b * Dc + i];
      }
      dD[i] = sd;
      ddt_bias[i] = sbias;
    }
  }
}

template <class T, int kN>
void launch_scan_bwd(dim3 grid, cudaStream_t st_, const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm,
                     const T* D, const T* dt_bias, const float* states, const T* dy, T* du, T* ddelta, float* stash,
                     float* pB, float* pC, float* pA, float* pD, float* pbias, int64_t B, int64_t T_, int64_t Dc,
                     int N, int64_t chunk) {
  scan_bwd_k<T, kN><<<grid, kThreads, 0, st_>>>(u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, stash,
                                                 pB, pC, pA, pD, pbias, B, T_, Dc, N, chunk);
}
}  // namespace

template <class T>
void selective_scan_bwd(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                        const T* dt_bias, const float* states, const T* dy, T* du, T* ddelta, float* dA_log,
                        float* dBm, float* dCm, float* dD, float* ddt_bias, int64_t B, int64_t T_, int64_t Dc,
                        int64_t N, int64_t chunk, void* s) {
  HS_CHECK(N >= 1 && N <= 64, "selective_scan_bwd (CUDA): d_state ", N, " outside [1, 64]");
  HS_CHECK(chunk >= 1, "selective_scan_bwd (CUDA): chunk must be >= 1");
  HS_CHECK(B >= 0 && T_ >= 0 && Dc >= 0, "selective_scan_bwd (CUDA): negative size");
  cudaStream_t st_ = S(s);
  if (B == 0 || T_ == 0 || Dc == 0) {  // empty sums: the gradients that exist are zero
    cudaError_t e = cudaSuccess;
    if (Dc > 0) {
      e = cudaMemsetAsync(dA_log, 0, static_cast<size_t>(Dc * N) * sizeof(float), st_);
      if (e == cudaSuccess) e = cudaMemsetAsync(dD, 0, static_cast<size_t>(Dc) * sizeof(float), st_);
      if (e == cudaSuccess) e = cudaMemsetAsync(ddt_bias, 0, static_cast<size_t>(Dc) * sizeof(float), st_);
    }
    if (e == cudaSuccess && B * T_ > 0) {
      e = cudaMemsetAsync(dBm, 0, static_cast<size_t>(B * T_ * N) * sizeof(float), st_);
      if (e == cudaSuccess) e = cudaMemsetAsync(dCm, 0, static_cast<size_t>(B * T_ * N) * sizeof(float), st_);
    }
    HS_CHECK(e == cudaSuccess, "selective_scan_bwd (CUDA): zeroing empty gradients: ", cudaGetErrorString(e));
    return;
  }
  HS_CHECK(B <= 65535, "selective_scan_bwd (CUDA): batch ", B, " exceeds the grid's y dimension (65535)");
  const int64_t ntile = (Dc + kThreads - 1) / kThreads;
  HS_CHECK(ntile < (int64_t{1} << 31), "selective_scan_bwd (CUDA): grid too large");
  const int64_t L = std::min(chunk, T_), BD = B * Dc, M = B * T_ * N;
  const int64_t n_stash = L * N * BD, n_part = ntile * M, n_param = BD * (N + 2);
  const int64_t total = n_stash + 2 * n_part + n_param;
  float* ws = nullptr;
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&ws), static_cast<size_t>(total) * sizeof(float), st_);
  HS_CHECK(e == cudaSuccess, "selective_scan_bwd (CUDA): workspace of ", total * 4, " bytes (B = ", B, ", T = ", T_,
           ", Dc = ", Dc, ", N = ", N, ", chunk = ", chunk, "): ", cudaGetErrorString(e));
  float* stash = ws;
  float* pB = stash + n_stash;
  float* pC = pB + n_part;
  float* pA = pC + n_part;
  float* pD = pA + BD * N;
  float* pbias = pD + BD;

  const dim3 grid(static_cast<unsigned>(ntile), static_cast<unsigned>(B));
  const int n = static_cast<int>(N);
  if (N <= 16)
    launch_scan_bwd<T, 16>(grid, st_, u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, stash, pB, pC, pA,
                           pD, pbias, B, T_, Dc, n, chunk);
  else if (N <= 32)
    launch_scan_bwd<T, 32>(grid, st_, u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, stash, pB, pC, pA,
                           pD, pbias, B, T_, Dc, n, chunk);
  else
    launch_scan_bwd<T, 64>(grid, st_, u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, stash, pB, pC, pA,
                           pD, pbias, B, T_, Dc, n, chunk);
  HS_LAUNCH_CHECK("selective_scan_bwd", "B = ", B, ", T = ", T_, ", Dc = ", Dc, ", N = ", N, ", chunk = ", chunk);
  scan_bwd_sum_bc_k<<<blocks_for(M, 256), 256, 0, st_>>>(pB, pC, dBm, dCm, ntile, M);
  HS_LAUNCH_CHECK("selective_scan_bwd (dB/dC sum)", "B = ", B, ", T = ", T_, ", N = ", N, ", tiles = ", ntile);
  scan_bwd_sum_param_k<<<blocks_for(Dc * N, 256), 256, 0, st_>>>(pA, pD, pbias, dA_log, dD, ddt_bias, B, Dc, N);
  HS_LAUNCH_CHECK("selective_scan_bwd (parameter sum)", "B = ", B, ", Dc = ", Dc, ", N = ", N);
  cudaFreeAsync(ws, st_);
}

#define HS_INST(T)                                                                                                  \
  template void selective_scan_bwd<T>(const T*, const T*, const T*, const T*, const T*, const T*, const T*,         \
                                      const float*, const T*, T*, T*, float*, float*, float*, float*, float*, int64_t, \
                                      int64_t, int64_t, int64_t, int64_t, void*);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
