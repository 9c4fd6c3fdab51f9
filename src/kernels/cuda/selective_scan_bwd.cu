// CUDA selective scan backward (kernels/cuda_hybrid.h; CPU twin kernels/cpu/selective_scan.cpp,
// same math, same order of the time loop). Deterministic by default: no atomics, every sum has a
// fixed order (kernels/cuda.h's set_deterministic(false) trades that for atomics in dB, dC).
//
// Design. The adjoint recurrence g_t-1 = exp(dt_t A) (g_t + dy_t C_t) is linear, so, as in the
// forward, the chunks run in parallel once each knows the adjoint carried into it from the later
// chunks (the first version walked all chunks of a (b, c) in one thread: 33 ms on an H100):
//   a. carry, local: each chunk backwards from a zero carry (only dt, dy and C are needed): the
//      carry it passes on, and its dt sum (the chunk's decay is exp(A sum dt));
//   b. carry, combine: per (b, c, n), last chunk to first: the carry INTO each chunk;
//   c. the gradients (below), every chunk starting from its carry.
// The gradient kernel needs h_{t-1} at every step, walking time backwards. Recomputing it
// backwards, h_{t-1} = (h_t - dt B u) / exp(dt A), is unstable (exp(dt A) can be ~1e-7 for
// A = -16), so it is recomputed forwards and kept in REGISTERS, kSub = 16 steps at a time:
//   1. from the chunk's saved start state, run the forward recurrence through the chunk (the
//      forward kernel's expression) and checkpoint h at the start of every kSub-step sub-chunk
//      but the last (global scratch, each thread its own float4, coalesced; about 1/16 of the
//      states, mostly L2-resident; chunks of <= kSub steps need none);
//   2. sub-chunks last to first: from its checkpoint, recompute its <= kSub states into
//      registers (fully unrolled, so hp[step][state] never leaves the register file), then walk
//      them backwards with the CPU's per-step gradient formulas.
// (The version before this one stashed all of the chunk's h_{t-1} in global memory, min(chunk,
// T) * N floats per (b, c): 2 GiB written and read per layer at d16, B 1, T 4096.)
// Thread layout: 4 states per thread, kN / 4 consecutive lanes per channel (4 for N <= 16), so
// a warp holds 32 / (kN / 4) channels (8) and a block of kWarps warps 8 kWarps channels (a
// "tile", grid = [tiles, chunks in the wave, B]). All threads of a block walk the same steps in
// lockstep. Per thread, in registers: A, the adjoint carry g (dL/dh_t flowing back from t+1,
// already multiplied by exp(dt_{t+1} A)), the dA accumulator, for its 4 states.
// Per step: ddt and du are sums over the channel's states: xor shuffles over its kN / 4 lanes
// (every lane ends with the same value; lane 0 of the channel stores du and ddelta, which the
// channel owns). dB_t[n], dC_t[n] are sums over channels: each lane's 8 values (dB, dC of its 4
// states) are reduced over the warp's channels by a butterfly "transpose-reduce" (lanes of the
// same state group exchange halves; each ends with the warp sum of 8 / channels-per-warp of
// them), then go to shared memory, buffered for kHalf steps; the block sums them in warp order and
// writes one partial per (tile, b, t, n) to scratch. A second kernel sums the tiles in order
// (under set_deterministic(false) the block sums are atomically added to dB, dC instead).
// dA_log, dD, ddt_bias: each thread's own sums over its chunk (last step first) are written as
// per-(b, k, c) partials, and a third kernel sums those rows in order (dA_log = A * sum, like the CPU).
// The fused gate (ScanGate): where dy is read (passes a and c), it becomes the pre-gate gradient
// dy z sigmoid(z); the gradient pass also completes y_pre = sum_n C h_t + D u from the states it
// recomputes anyway (two more xor shuffles a step) and writes dz. Nothing extra is saved by the
// forward.
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/scan_common.cuh"
#include "kernels/cuda_hybrid.h"

namespace hyscale::kernels::cuda {

namespace {
using namespace detail;

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kSub = 16;           // steps whose h_{t-1} sit in registers (a sub-chunk)
constexpr int kHalf = kSub / 2;    // steps of dB/dC warp sums buffered in shared memory per flush
// Sub-chunk checkpoints of one wave of chunks: 1 GiB at most (stream-ordered pool memory; at d16
// width, B 1, T 4096, chunk 128 all 32 chunks take 64 MiB), the waves balanced.
constexpr int64_t kCkptBytes = int64_t{1} << 30;

// Lanes, channels and dB/dC values per lane after the warp reduction, for kN states (16, 32, 64).
template <int kN> struct Lay {
  static constexpr int kLPC = kN / 4;           // lanes per channel (4 states each)
  static constexpr int kCW = 32 / kLPC;         // channels per warp
  static constexpr int kCPB = kCW * kWarps;     // channels per block (a tile)
  static constexpr int kR = kN / 16;            // values per lane after the transpose-reduce
  static_assert(kN == 16 || kN == 32 || kN == 64, "scan backward: kN in {16, 32, 64}");
};

__device__ __forceinline__ float softplusf_(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
__device__ __forceinline__ float dsoftplusf_(float x) { return x > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

// Transpose-reduce over the lanes that hold the same state group (they differ in the lane bits
// >= kLPC). In: v[0..8) of this lane. Step with xor mask M keeps W values: the upper lanes (bit
// M set) keep the upper half and receive their partner's copy of it. Out: v[0..8 / channels per
// warp) of lane l = the sum over the warp's channels of v[cw * kR + r], cw = l / kLPC (fixed
// butterfly: deterministic, and the same on every run).
template <int W, int M, int kLPC> __device__ __forceinline__ void transpose_sum(float (&v)[8], int lane) {
  const bool upper = (lane & M) != 0;
#pragma unroll
  for (int i = 0; i < W; ++i) {
    const float send = upper ? v[i] : v[i + W];
    const float keep = upper ? v[i + W] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, M);
  }
  if constexpr (M / 2 >= kLPC) transpose_sum<W / 2, M / 2, kLPC>(v, lane);
}

// The gradient kernel (c above). kGate: with the fused gate (z, ldz, dz; a separate instance, so
// that the ungated one keeps its registers). ck: this wave's sub-chunk checkpoints, [kSub slots][G][B][tiles *
// kThreads] float4 (slot i = the state before sub-chunk i; the last sub-chunk needs none).
template <class T, int kN, bool kVec, bool kGate>
__global__ void __launch_bounds__(kThreads, 2)
    scan_bwd_k(const T* __restrict__ u, const T* __restrict__ delta, const T* __restrict__ A_log,
               const T* __restrict__ Bm, const T* __restrict__ Cm, const T* __restrict__ Dv,
               const T* __restrict__ dt_bias, const float* __restrict__ states, const T* __restrict__ dy,
               T* __restrict__ du, T* __restrict__ ddelta, float4* __restrict__ ck, float* __restrict__ pB,
               float* __restrict__ pC, float* __restrict__ pA, float* __restrict__ pD, float* __restrict__ pbias,
               const float* __restrict__ gin, const T* __restrict__ z, int64_t ldz, T* __restrict__ dz, int64_t Bsz,
               int64_t T_, int64_t Dc, int N, int64_t chunk, int64_t k0, int64_t G, bool atomic) {
  using Ly = Lay<kN>;
  constexpr int kLPC = Ly::kLPC, kCW = Ly::kCW, kCPB = Ly::kCPB, kR = Ly::kR;
  __shared__ float sh[kHalf][kWarps][32 * kR];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, q = lane % kLPC;
  const int64_t tile = blockIdx.x, k = k0 + blockIdx.y, b = blockIdx.z;
  const int64_t c = tile * kCPB + warp * kCW + lane / kLPC;
  const bool valid = c < Dc;  // invalid threads (last tile) still take part in shuffles and syncs
  const int n0 = 4 * q;       // this thread's states n0 .. n0 + 3
  const int64_t nch = (T_ + chunk - 1) / chunk;
  const int64_t row = (b * nch + k) * Dc + c;  // (b, k, c) rows of the carries and partials
  const int64_t ck_stride = G * Bsz * int64_t(gridDim.x) * kThreads;  // float4s per checkpoint slot
  float4* ckp = ck + (blockIdx.y * Bsz + b) * int64_t(gridDim.x) * kThreads + tile * kThreads + threadIdx.x;

  float A[4], A2[4], g[4], dA[4], h[4];  // A2 = A log2(e): exp(dt A) = exp2(dt A2), as in the forward
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int n = n0 + j;
    const bool on = valid && n < N;
    A[j] = on ? -expf(ld(A_log, c * N + n)) : 0.0f;
    A2[j] = A[j] * kLog2e;
    g[j] = on ? gin[row * N + n] : 0.0f;  // the carry from the later chunks
    dA[j] = 0.0f;
    h[j] = (on && k > 0) ? states[((b * nch + k - 1) * Dc + c) * N + n] : 0.0f;
  }
  const float bias = valid ? ld(dt_bias, c) : 0.0f, Dskip = valid ? ld(Dv, c) : 0.0f;
  float dDacc = 0.0f, dbacc = 0.0f;
  const int64_t s = k * chunk, e = min(T_, s + chunk);
  const int nsub = int((e - s + kSub - 1) / kSub);

  // One step of the forward recurrence (the forward kernel's expression); invalid threads keep 0.
  auto advance = [&](int64_t t) {
    float dt = 0.0f, dtu = 0.0f;
    if (valid) {
      const int64_t i = (b * T_ + t) * Dc + c;
      dt = softplusf_(ld(delta, i) + bias);
      dtu = dt * ld(u, i);
    }
    float Bv[4];
    ld4<kVec>(Bm, (b * T_ + t) * N, n0, N, Bv);
#pragma unroll
    for (int j = 0; j < 4; ++j) h[j] = exp2f(dt * A2[j]) * h[j] + dtu * Bv[j];
  };

  // 1. Checkpoints before sub-chunks 1 .. nsub - 1 (slot i - 1); h ends as the state before the last.
  for (int i = 0; i + 1 < nsub; ++i) {
    if (i > 0) ckp[(i - 1) * ck_stride] = make_float4(h[0], h[1], h[2], h[3]);
    const int64_t t0 = s + int64_t(i) * kSub;
#pragma unroll 4
    for (int jj = 0; jj < kSub; ++jj) advance(t0 + jj);
  }

  // 2. Sub-chunks last to first.
  for (int i = nsub - 1; i >= 0; --i) {
    const int64_t t0 = s + int64_t(i) * kSub;
    const int len = int(min(int64_t(kSub), e - t0));
    if (i < nsub - 1) {  // the last sub-chunk starts from h as phase 1 left it
      if (i == 0) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int n = n0 + j;
          h[j] = (valid && n < N && k > 0) ? states[((b * nch + k - 1) * Dc + c) * N + n] : 0.0f;
        }
      } else {
        const float4 v = ckp[(i - 1) * ck_stride];
        h[0] = v.x, h[1] = v.y, h[2] = v.z, h[3] = v.w;
      }
    }
    float hp[kSub][4];  // h_{t0 + jj - 1}
#pragma unroll
    for (int jj = 0; jj < kSub; ++jj) {
      if (jj < len) {
#pragma unroll
        for (int j = 0; j < 4; ++j) hp[jj][j] = h[j];
        if (jj + 1 < len) advance(t0 + jj);
      }
    }
#pragma unroll
    for (int half = 1; half >= 0; --half) {
      const int nst = min(kHalf, len - half * kHalf);  // steps in this half (block-uniform)
      if (nst <= 0) continue;
#pragma unroll
      for (int jk = kHalf - 1; jk >= 0; --jk) {
        const int jj = half * kHalf + jk;
        if (jj >= len) continue;
        const int64_t t = t0 + jj, i = (b * T_ + t) * Dc + c;
        float xv = 0.0f, dt = 0.0f, uv = 0.0f, dyv = 0.0f;  // zeros make an invalid thread contribute 0
        float gz = 0.0f;  // with the gate: dz = gz y_pre
        if (valid) {
          xv = ld(delta, i) + bias;
          dt = softplusf_(xv);
          uv = ld(u, i);
          dyv = ld(dy, i);
          if constexpr (kGate) {  // dy of the gated output -> of the pre-gate y (gmu_gate_bwd's expressions)
            const float zv = ld(z, (b * T_ + t) * ldz + c), sg = sigmoidf_(zv);
            gz = dyv * sg * (1.0f + zv * (1.0f - sg));
            dyv = dyv * zv * sg;
          }
        }
        const float dtu = dt * uv;
        float Bv[4], Cv[4];
        ld4<kVec>(Bm, (b * T_ + t) * N, n0, N, Bv);
        ld4<kVec>(Cm, (b * T_ + t) * N, n0, N, Cv);
        float v[8];  // [dB of the 4 states | dC of the 4 states], this thread's channel
        float ddt = 0.0f, duv = 0.0f, yp = 0.0f;  // yp: this thread's part of sum_n C h_t (gate only)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float gn = g[j] + dyv * Cv[j];  // dL/dh_t
          const float a = exp2f(dt * A2[j]);
          const float ah = a * hp[jj][j];
          const float ht = ah + dtu * Bv[j];
          v[4 + j] = dyv * ht;  // dy_t h_t
          if constexpr (kGate) yp += Cv[j] * ht;
          dA[j] += gn * dt * ah;
          ddt += gn * (A[j] * ah + Bv[j] * uv);
          v[j] = gn * dt * uv;
          duv += gn * Bv[j];
          g[j] = gn * a;
        }
#pragma unroll
        for (int o = 1; o < kLPC; o <<= 1) {  // over the channel's lanes
          ddt += __shfl_xor_sync(0xffffffffu, ddt, o);
          duv += __shfl_xor_sync(0xffffffffu, duv, o);
        }
        if constexpr (kGate) {
#pragma unroll
          for (int o = 1; o < kLPC; o <<= 1) yp += __shfl_xor_sync(0xffffffffu, yp, o);
          if (valid && q == 0) st(dz, i, gz * (yp + Dskip * uv));
        }
        transpose_sum<4, 16, kLPC>(v, lane);
#pragma unroll
        for (int r = 0; r < kR; ++r) sh[jk][warp][lane * kR + r] = v[r];
        if (valid && q == 0) {
          st(du, i, duv * dt + dyv * Dskip);
          dDacc += dyv * uv;
          const float dx = ddt * dsoftplusf_(xv);
          st(ddelta, i, dx);
          dbacc += dx;
        }
      }
      // Flush: block sums (warp order) -> one partial per (tile, b, t, n).
      __syncthreads();
      const int64_t tb = t0 + half * kHalf;
      for (int en = threadIdx.x; en < nst * 32 * kR; en += kThreads) {
        const int jk = en / (32 * kR), el = en % (32 * kR);
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) sum += sh[jk][w][el];
        const int l = el / kR, r = el % kR;                  // the lane that held it, and which value
        const int idx = (l / kLPC) * kR + r, n = 4 * (l % kLPC) + (idx & 3);  // v index, state
        if (n < N) {
          float* dst = idx < 4 ? pB : pC;
          if (atomic)  // pB, pC are dBm, dCm themselves (zeroed): the tiles meet in any order
            atomicAdd(dst + (b * T_ + tb + jk) * N + n, sum);
          else
            dst[((tile * Bsz + b) * T_ + tb + jk) * N + n] = sum;
        }
      }
      __syncthreads();
    }
  }
  if (valid) {
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (n0 + j < N) pA[row * N + n0 + j] = dA[j] * A[j];  // dA_log = dA * A (the CPU's order)
    if (q == 0) {
      pD[row] = dDacc;
      pbias[row] = dbacc;
    }
  }
}

// (a) The carry a chunk passes on when none comes in, and the chunk's dt sum; kN / 4 lanes per
// (b, k, c), 4 states each (as the forward's passes; no cross-lane sums here), channel fastest.
// gl [B, nch, Dc, N], dts [B, nch, Dc]. kVec as ld4.
template <class T, int kN, bool kVec>
__global__ void __launch_bounds__(128)
    scan_bwd_carry_local_k(const T* __restrict__ delta, const T* __restrict__ A_log, const T* __restrict__ Cm,
                           const T* __restrict__ dt_bias, const T* __restrict__ dy, const T* __restrict__ z,
                           int64_t ldz, float* __restrict__ gl, float* __restrict__ dts, int64_t Bsz, int64_t T_,
                           int64_t Dc, int N, int64_t chunk) {
  constexpr int kLPC = kN / 4;
  const int64_t nch = (T_ + chunk - 1) / chunk;
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t row = idx / kLPC;  // (b, k, c)
  if (row >= Bsz * nch * Dc) return;
  const int q = int(idx % kLPC), n0 = 4 * q;
  const int64_t c = row % Dc, k = (row / Dc) % nch, b = row / (Dc * nch);
  float A2[4], g[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    A2[j] = n0 + j < N ? -expf(ld(A_log, c * N + n0 + j)) * kLog2e : 0.0f;
    g[j] = 0.0f;
  }
  const float bias = ld(dt_bias, c);
  const int64_t s = k * chunk, e = min(T_, s + chunk);
  float S = 0.0f;
#pragma unroll 2
  for (int64_t t = e - 1; t >= s; --t) {
    const int64_t i = (b * T_ + t) * Dc + c;
    const float dt = softplusf_(ld(delta, i) + bias);
    float dyv = ld(dy, i);
    if (z) {  // the gradient kernel's expression
      const float zv = ld(z, (b * T_ + t) * ldz + c);
      dyv = dyv * zv * sigmoidf_(zv);
    }
    S += dt;
    float Cv[4];
    ld4<kVec>(Cm, (b * T_ + t) * N, n0, N, Cv);
#pragma unroll
    for (int j = 0; j < 4; ++j) g[j] = (g[j] + dyv * Cv[j]) * exp2f(dt * A2[j]);  // the gradient kernel's g update
  }
  float* gp = gl + row * N;
#pragma unroll
  for (int j = 0; j < 4; ++j)
    if (n0 + j < N) gp[n0 + j] = g[j];
  if (q == 0) dts[row] = S;
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

// All passes for kN-state lanes; kVec: B/C rows in 4-element vector loads (ld4).
template <class T, int kN, bool kVec>
void run_scan_bwd(cudaStream_t st_, const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                  const T* dt_bias, const float* states, const T* dy, T* du, T* ddelta, float* dA_log, float* dBm,
                  float* dCm, float* dD, float* ddt_bias, int64_t B, int64_t T_, int64_t Dc, int N, int64_t chunk,
                  const ScanGate<T>& gate) {
  constexpr int kCPB = Lay<kN>::kCPB;
  const int64_t ntile = (Dc + kCPB - 1) / kCPB;
  HS_CHECK(ntile < (int64_t{1} << 31), "selective_scan_bwd (CUDA): grid too large");
  const int64_t nch = (T_ + chunk - 1) / chunk;
  const int64_t L = std::min(chunk, T_), M = B * T_ * N;
  const int64_t slots = std::max<int64_t>(0, (L + kSub - 1) / kSub - 2);  // checkpoints per chunk
  const int64_t ck_per_chunk = slots * B * ntile * kThreads;                // float4s
  // Chunks per wave: as many as keep the checkpoints under kCkptBytes (at least one), balanced.
  const int64_t Gmax =
      std::clamp<int64_t>(kCkptBytes / std::max<int64_t>(1, ck_per_chunk * 16), 1, std::min<int64_t>(nch, 65535));
  const int64_t waves = (nch + Gmax - 1) / Gmax, G = (nch + waves - 1) / waves;
  const int64_t R = B * Dc * nch;  // (b, k, c) rows
  const bool atomic = !deterministic();
  const int64_t n_ck = 4 * ck_per_chunk * G, n_part = atomic ? 0 : ntile * M, n_param = R * (N + 2),
                n_carry = R * (N + 1);
  const int64_t total = n_ck + 2 * n_part + n_param + n_carry;
  float* ws = nullptr;
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&ws), static_cast<size_t>(total) * sizeof(float), st_);
  HS_CHECK(e == cudaSuccess, "selective_scan_bwd (CUDA): workspace of ", total * 4, " bytes (B = ", B, ", T = ", T_,
           ", Dc = ", Dc, ", N = ", N, ", chunk = ", chunk, "): ", cudaGetErrorString(e));
  float4* ck = reinterpret_cast<float4*>(ws);  // cudaMallocAsync memory is 256-byte aligned
  float* pB = atomic ? dBm : ws + n_ck;
  float* pC = atomic ? dCm : pB + n_part;
  float* pA = ws + n_ck + 2 * n_part;
  float* pD = pA + R * N;
  float* pbias = pD + R;
  float* gl = pbias + R;
  float* dts = gl + R * N;

  const int64_t carry_blocks = (B * nch * Dc * (kN / 4) + 127) / 128;
  HS_CHECK(carry_blocks < (int64_t{1} << 31), "selective_scan_bwd (CUDA): grid too large");
  scan_bwd_carry_local_k<T, kN, kVec><<<static_cast<unsigned>(carry_blocks), 128, 0, st_>>>(
      delta, A_log, Cm, dt_bias, dy, gate.z, gate.ldz, gl, dts, B, T_, Dc, N, chunk);
  HS_LAUNCH_CHECK("selective_scan_bwd (local carries)", "B = ", B, ", T = ", T_, ", Dc = ", Dc, ", N = ", N);
  phase("scan_bwd.carry_local");
  scan_bwd_carry_combine_k<T><<<blocks_for(B * Dc * N, 256), 256, 0, st_>>>(A_log, gl, dts, B, nch, Dc, N);
  HS_LAUNCH_CHECK("selective_scan_bwd (carry combine)", "B = ", B, ", Dc = ", Dc, ", N = ", N, ", chunks = ", nch);
  phase("scan_bwd.carry_combine");
  if (atomic) {
    e = cudaMemsetAsync(dBm, 0, static_cast<size_t>(M) * sizeof(float), st_);
    if (e == cudaSuccess) e = cudaMemsetAsync(dCm, 0, static_cast<size_t>(M) * sizeof(float), st_);
    HS_CHECK(e == cudaSuccess, "selective_scan_bwd (CUDA): zeroing dB, dC: ", cudaGetErrorString(e));
  }
  for (int64_t k0 = 0; k0 < nch; k0 += G) {
    const int64_t g = std::min(G, nch - k0);
    const dim3 grid(static_cast<unsigned>(ntile), static_cast<unsigned>(g), static_cast<unsigned>(B));
    auto kern = gate.z ? scan_bwd_k<T, kN, kVec, true> : scan_bwd_k<T, kN, kVec, false>;
    kern<<<grid, kThreads, 0, st_>>>(u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, ck, pB, pC, pA, pD,
                                     pbias, gl, gate.z, gate.ldz, gate.dz, B, T_, Dc, N, chunk, k0, G, atomic);
    HS_LAUNCH_CHECK("selective_scan_bwd", "B = ", B, ", T = ", T_, ", Dc = ", Dc, ", N = ", N, ", chunk = ", chunk,
                    ", chunks ", k0, "..", k0 + g - 1);
    phase("scan_bwd.gradients");
  }
  if (!atomic) {
    scan_bwd_sum_bc_k<<<blocks_for(M, 256), 256, 0, st_>>>(pB, pC, dBm, dCm, ntile, M);
    HS_LAUNCH_CHECK("selective_scan_bwd (dB/dC sum)", "B = ", B, ", T = ", T_, ", N = ", N, ", tiles = ", ntile);
  }
  scan_bwd_sum_param_k<<<blocks_for(Dc * N, 256), 256, 0, st_>>>(pA, pD, pbias, dA_log, dD, ddt_bias, B * nch, Dc,
                                                                  N);
  HS_LAUNCH_CHECK("selective_scan_bwd (parameter sum)", "B = ", B, ", Dc = ", Dc, ", N = ", N);
  phase("scan_bwd.sums");
  cudaFreeAsync(ws, st_);
}
}  // namespace

template <class T>
void selective_scan_bwd(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                        const T* dt_bias, const float* states, const T* dy, T* du, T* ddelta, float* dA_log,
                        float* dBm, float* dCm, float* dD, float* ddt_bias, int64_t B, int64_t T_, int64_t Dc,
                        int64_t N, int64_t chunk, void* s, const ScanGate<T>& gate) {
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
  const int n = static_cast<int>(N);
  const bool aligned = aligned16(Bm) && aligned16(Cm);
  const bool vec = aligned && N % 4 == 0;
  auto go = [&](auto kn) {
    constexpr int kN = decltype(kn)::value;
    if (vec)
      run_scan_bwd<T, kN, true>(st_, u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, dA_log, dBm, dCm,
                                dD, ddt_bias, B, T_, Dc, n, chunk, gate);
    else
      run_scan_bwd<T, kN, false>(st_, u, delta, A_log, Bm, Cm, D, dt_bias, states, dy, du, ddelta, dA_log, dBm, dCm,
                                 dD, ddt_bias, B, T_, Dc, n, chunk, gate);
  };
  if (N <= 16)
    go(std::integral_constant<int, 16>{});
  else if (N <= 32)
    go(std::integral_constant<int, 32>{});
  else
    go(std::integral_constant<int, 64>{});
}

#define HS_INST(T)                                                                                                  \
  template void selective_scan_bwd<T>(const T*, const T*, const T*, const T*, const T*, const T*, const T*,         \
                                      const float*, const T*, T*, T*, float*, float*, float*, float*, float*, int64_t, \
                                      int64_t, int64_t, int64_t, int64_t, void*, const ScanGate<T>&);
HS_INST(float)
HS_INST(bf16)
#undef HS_INST

}  // namespace hyscale::kernels::cuda
