// CUDA selective scan backward (kernels/cuda_hybrid.h; CPU twin kernels/cpu/selective_scan.cpp,
// same math, same order of the time loop). Deterministic: no atomics, every sum has a fixed order.
//
// Design. One thread per (sequence b, chunk k, channel c): the adjoint recurrence
// g_t-1 = exp(dt_t A) (g_t + dy_t C_t) is linear, so, as in the forward, the chunks run in parallel
// once each knows the adjoint carried into it from the later chunks (the first version walked
// all chunks of a (b, c) in one thread: 8192 threads at B 2, Dc 4096, 33 ms on an H100):
//   a. carry, local: each chunk backwards from a zero carry (only dt, dy and C are needed): the
//      carry it passes on, and its dt sum (the chunk's decay is exp(A sum dt));
//   b. carry, combine: per (b, c, n), last chunk to first: the carry INTO each chunk;
//   c. the gradients (below), every chunk starting from its carry; launched in waves of chunks
//      so the stash stays under kStashBytes.
// A block of (c) is 128 consecutive channels of ONE chunk of ONE sequence (grid = [ceil(Dc /
// 128), chunks in the wave, B]), so its threads walk the same time steps in lockstep. Per
// thread, in registers: A[n] = -exp(A_log), the adjoint carry g[n] (dL/dh_t flowing back from
// t+1, already multiplied by exp(dt_{t+1} A)), and the dA[n] accumulator. For its chunk [s, e):
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
// over its chunk (last step first) are written as per-(b, k, c) partials, and a third kernel sums
// those rows in order (dA_log = A * sum, like the CPU).
#include <algorithm>

#include "kernels/cuda/scan_common.cuh"
#include "kernels/cuda_hybrid.h"

namespace hyscale::kernels::cuda {

namespace {
using namespace detail;

constexpr int kThreads = 128;  // channels per block (one tile)
constexpr int kWarps = kThreads / 32;
constexpr int kSteps = 4;  // time steps of dB/dC warp sums buffered in shared memory per flush
// h_{t-1} stash of one wave of chunks: 2 GiB at most (stream-ordered pool memory; at d16 width,
// B 1, T 4096 all 32 chunks fit in one 1 GiB wave), the waves balanced.
constexpr int64_t kStashBytes = int64_t{2} << 30;

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

template <class T, int kN, bool kVec>
__global__ void __launch_bounds__(kThreads)
    scan_bwd_k(const T* __restrict__ u, const T* __restrict__ delta, const T* __restrict__ A_log,
               const T* __restrict__ Bm, const T* __restrict__ Cm, const T* __restrict__ Dv,
               const T* __restrict__ dt_bias, const float* __restrict__ states, const T* __restrict__ dy,
               T* __restrict__ du, T* __restrict__ ddelta, float* __restrict__ stash, float* __restrict__ pB,
               float* __restrict__ pC, float* __restrict__ pA, float* __restrict__ pD, float* __restrict__ pbias,
               const float* __restrict__ gin, int64_t Bsz, int64_t T_, int64_t Dc, int N, int64_t chunk, int64_t k0,
               int64_t G) {
  constexpr int kQ = kN / 16;  // groups of 16 states
  __shared__ float sh[kSteps][kWarps][kQ * 32];
  const int64_t tile = blockIdx.x, k = k0 + blockIdx.y, b = blockIdx.z;
  const int64_t c = tile * kThreads + threadIdx.x;
  const bool valid = c < Dc;  // invalid threads (last tile) still take part in shuffles and syncs
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nq = (N + 15) / 16;  // groups in use (uniform over the block)
  const int64_t nch = (T_ + chunk - 1) / chunk;
  const int64_t BD = Bsz * G * Dc, col = (b * G + blockIdx.y) * Dc + c;  // stash columns of this wave
  const int64_t row = (b * nch + k) * Dc + c;                             // (b, k, c) rows of the partials

  float A[kN], A2[kN], g[kN], dA[kN];  // A2 = A log2(e): exp(dt A) = exp2(dt A2), as in the forward
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    A[n] = (valid && n < N) ? -expf(ld(A_log, c * N + n)) : 0.0f;
    A2[n] = A[n] * kLog2e;
    g[n] = (valid && n < N) ? gin[row * N + n] : 0.0f;  // the carry from the later chunks
    dA[n] = 0.0f;
  }
  const float bias = valid ? ld(dt_bias, c) : 0.0f, Dskip = valid ? ld(Dv, c) : 0.0f;
  float dDacc = 0.0f, dbacc = 0.0f;
  int slot = 0;         // next free step slot of sh
  int64_t t_first = 0;  // time step of slot 0 (slot j holds step t_first - j)

  {
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
        float Bv[kN];
        ld_row<kN, kVec>(Bm, bt, N, Bv);
#pragma unroll
        for (int n = 0; n < kN; ++n) {
          if (n < N) {
            sp[n * BD] = h[n];
            h[n] = exp2f(dt * A2[n]) * h[n] + dtu * Bv[n];  // the forward kernel's expression
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
      float Bv[kN], Cv[kN];
      ld_row<kN, kVec>(Bm, bt, N, Bv);
      ld_row<kN, kVec>(Cm, bt, N, Cv);
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
              const float Bn = Bv[n], Cn = Cv[n];
              const float hp = valid ? sp[n * BD] : 0.0f;
              const float gn = g[n] + dyv * Cn;  // dL/dh_t
              const float a = exp2f(dt * A2[n]);
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
      if (++slot == kSteps || t == s) {  // flush: block sums (warp order) -> partial per tile
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
    float* pa = pA + row * N;
#pragma unroll
    for (int n = 0; n < kN; ++n)
      if (n < N) pa[n] = dA[n] * A[n];  // dA_log = dA * A (the CPU's order)
    pD[row] = dDacc;
    pbias[row] = dbacc;
  }
}

// (a) The carry a chunk passes on when none comes in, and the chunk's dt sum; one thread per
// (b, k, c), channel fastest. gl [B, nch, Dc, N], dts [B, nch, Dc].
template <class T, int kN, bool kVec>
__global__ void scan_bwd_carry_local_k(const T* __restrict__ delta, const T* __restrict__ A_log,
                                       const T* __restrict__ Cm, const T* __restrict__ dt_bias,
                                       const T* __restrict__ dy, float* __restrict__ gl, float* __restrict__ dts,
                                       int64_t Bsz, int64_t T_, int64_t Dc, int N, int64_t chunk) {
  const int64_t nch = (T_ + chunk - 1) / chunk;
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= Bsz * nch * Dc) return;
  const int64_t c = idx % Dc, k = (idx / Dc) % nch, b = idx / (Dc * nch);
  float A2[kN], g[kN];
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    A2[n] = n < N ? -expf(ld(A_log, c * N + n)) * kLog2e : 0.0f;
    g[n] = 0.0f;
  }
  const float bias = ld(dt_bias, c);
  const int64_t s = k * chunk, e = min(T_, s + chunk);
  float S = 0.0f;
  for (int64_t t = e - 1; t >= s; --t) {
    const int64_t i = (b * T_ + t) * Dc + c;
    const float dt = softplusf_(ld(delta, i) + bias), dyv = ld(dy, i);
    const int64_t bt = (b * T_ + t) * N;
    S += dt;
    float Cv[kN];
    ld_row<kN, kVec>(Cm, bt, N, Cv);
#pragma unroll
    for (int n = 0; n < kN; ++n)
      if (n < N) g[n] = (g[n] + dyv * Cv[n]) * exp2f(dt * A2[n]);  // the gradient kernel's g update
  }
  float* gp = gl + idx * N;
  for (int n = 0; n < N; ++n) gp[n] = g[n];
  dts[idx] = S;
}

// (b) Per (b, c, n), last chunk to first: G_in[k] = G, then G = exp(A S_k) G + gl_k; G_in
// overwrites gl in place.
template <class T>
__global__ void scan_bwd_carry_combine_k(const T* __restrict__ A_log, float* __restrict__ gl,
                                         const float* __restrict__ dts, int64_t Bsz, int64_t nch, int64_t Dc, int N) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= Bsz * Dc * N) return;
  const int64_t n = idx % N, c = (idx / N) % Dc, b = idx / (N * Dc);
  const float A = -expf(ld(A_log, c * N + n));
  float G = 0.0f;
  for (int64_t k = nch - 1; k >= 0; --k) {
    const int64_t r = (b * nch + k) * Dc + c;
    const float local = gl[r * N + n];
    gl[r * N + n] = G;
    G = expf(A * dts[r]) * G + local;
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
// dA_log [Dc, N], dD, ddt_bias [Dc] = sum over the (sequence, chunk) rows, in row order.
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

template <class T, int kN, bool kVec>
void launch_scan_bwd(cudaStream_t st_, const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm,
                     const T* D, const T* dt_bias, const float* states, const T* dy, T* du, T* ddelta, float* stash,
                     float* pB, float* pC, float* pA, float* pD, float* pbias, float* gl, float* dts, int64_t B,
                     int64_t T_, int64_t Dc, int N, int64_t chunk, int64_t G) {
  const int64_t nch = (T_ + chunk - 1) / chunk, ntile = (Dc + kThreads - 1) / kThreads;
  scan_bwd_carry_local_k<T, kN, kVec><<<blocks_for(B * nch * Dc, 128), 128, 0, st_>>>(delta, A_log, Cm, dt_bias, dy, gl, dts,
                                                                                 B, T_, Dc, N, chunk);
  HS_LAUNCH_CHECK("selective_scan_bwd (local carries)", "B = ", B, ", T = ", T_, ", Dc = ", Dc, ", N = ", N);
  phase("scan_bwd.carry_local");
  scan_bwd_carry_combine_k<T><<<blocks_for(B * Dc * N, 256), 256, 0, st_>>>(A_log, gl, dts, B, nch, Dc, N);
  HS_LAUNCH_CHECK("selective_scan_bwd (carry combine)", "B = ", B, ", Dc = ", Dc, ", N = ", N, ", chunks = ", nch);
  phase("scan_bwd.carry_combine");
  for (int64_t k0 = 0; k0 < nch; k0 += G) {
    const int64_t g = std::min(G, nch - k0);
    const dim3 grid(static_cast<unsigned>(ntile), static_cast<unsigned>(g), static_cast<unsigned>(B));
    scan_bwd_k<T, kN, kVec><<<grid, kThreads, 0, st_>>>(u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, stash,
                                                   pB, pC, pA, pD, pbias, gl, B, T_, Dc, N, chunk, k0, G);
    HS_LAUNCH_CHECK("selective_scan_bwd", "B = ", B, ", T = ", T_, ", Dc = ", Dc, ", N = ", N, ", chunk = ", chunk,
                    ", chunks ", k0, "..", k0 + g - 1);
    phase("scan_bwd.gradients");
  }
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
  HS_CHECK(B <= 65535, "selective_scan_bwd (CUDA): batch ", B, " exceeds the grid's z dimension (65535)");
  const int64_t ntile = (Dc + kThreads - 1) / kThreads;
  HS_CHECK(ntile < (int64_t{1} << 31), "selective_scan_bwd (CUDA): grid too large");
  const int64_t nch = (T_ + chunk - 1) / chunk;
  const int64_t L = std::min(chunk, T_), BD = B * Dc, M = B * T_ * N;
  // Chunks per wave: as many as keep the h_{t-1} stash under kStashBytes (at least one).
  const int64_t Gmax = std::clamp<int64_t>(kStashBytes / std::max<int64_t>(1, L * N * BD * 4), 1, std::min<int64_t>(nch, 65535));
  const int64_t waves = (nch + Gmax - 1) / Gmax, G = (nch + waves - 1) / waves;
  const int64_t R = BD * nch;  // (b, k, c) rows
  const int64_t n_stash = L * N * BD * G, n_part = ntile * M, n_param = R * (N + 2), n_carry = R * (N + 1);
  const int64_t total = n_stash + 2 * n_part + n_param + n_carry;
  float* ws = nullptr;
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&ws), static_cast<size_t>(total) * sizeof(float), st_);
  HS_CHECK(e == cudaSuccess, "selective_scan_bwd (CUDA): workspace of ", total * 4, " bytes (B = ", B, ", T = ", T_,
           ", Dc = ", Dc, ", N = ", N, ", chunk = ", chunk, "): ", cudaGetErrorString(e));
  float* stash = ws;
  float* pB = stash + n_stash;
  float* pC = pB + n_part;
  float* pA = pC + n_part;
  float* pD = pA + R * N;
  float* pbias = pD + R;
  float* gl = pbias + R;
  float* dts = gl + R * N;

  const int n = static_cast<int>(N);
  if (N == 16 && aligned16(Bm) && aligned16(Cm))
    launch_scan_bwd<T, 16, true>(st_, u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, stash, pB, pC, pA,
                                 pD, pbias, gl, dts, B, T_, Dc, n, chunk, G);
  else if (N <= 16)
    launch_scan_bwd<T, 16, false>(st_, u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, stash, pB, pC, pA, pD,
                           pbias, gl, dts, B, T_, Dc, n, chunk, G);
  else if (N <= 32)
    launch_scan_bwd<T, 32, false>(st_, u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, stash, pB, pC, pA, pD,
                           pbias, gl, dts, B, T_, Dc, n, chunk, G);
  else
    launch_scan_bwd<T, 64, false>(st_, u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, stash, pB, pC, pA, pD,
                           pbias, gl, dts, B, T_, Dc, n, chunk, G);
  scan_bwd_sum_bc_k<<<blocks_for(M, 256), 256, 0, st_>>>(pB, pC, dBm, dCm, ntile, M);
  HS_LAUNCH_CHECK("selective_scan_bwd (dB/dC sum)", "B = ", B, ", T = ", T_, ", N = ", N, ", tiles = ", ntile);
  scan_bwd_sum_param_k<<<blocks_for(Dc * N, 256), 256, 0, st_>>>(pA, pD, pbias, dA_log, dD, ddt_bias, B * nch, Dc,
                                                                  N);
  HS_LAUNCH_CHECK("selective_scan_bwd (parameter sum)", "B = ", B, ", Dc = ", Dc, ", N = ", N);
  phase("scan_bwd.sums");
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
