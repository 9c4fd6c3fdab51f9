// CUDA selective scan forward (kernels/cuda.h). The recurrence h_t = exp(dt_t A) h_t-1 + dt_t B_t u_t
// is linear in h, so the time axis is split into the caller's chunks and scanned in three passes
// (passes 1 and 3 with kN / 4 threads per (sequence, chunk, channel), 4 states each; pass 2 one
// thread per (sequence, channel, state); the first version ran one thread per (sequence, channel)
// through all T steps and measured 35 GB/s on an H100 at B 2, T 4096, Dc 4096, where 8192 threads
// cannot fill the GPU):
//   1. local: each chunk from a zero state. Its end state goes to `states` (the final layout),
//      and its dt sum to scratch: the chunk's decay of state n is prod_t exp(dt_t A_n) =
//      exp(A_n sum_t dt_t).
//   2. combine: per (b, c, n), sequentially over the chunks (T / chunk steps, cheap):
//      H_k = exp(A_n S_k) H_k-1 + local_k, written over `states` in place: the chunk-end states
//      the backward reads, as the CPU saves them (the same values up to rounding: the CPU
//      multiplies the per-step decays).
//   3. output: each chunk again, from the previous chunk's final state, computing y (the D skip
//      fused; with a gate the output gate too, y_pre z sigmoid(z), else y is the pre-gate GMU
//      memory).
// The inputs are read twice (pass 1 skips C), y written once. Per step, a thread's 4 values of B_t
// and C_t come in one vector load each when aligned, and the decays are exp2f(dt A log2 e) (one
// MUFU.EX2 each).
#include <type_traits>

#include "kernels/cuda/scan_common.cuh"

namespace hyscale::kernels::cuda {

namespace {
using namespace detail;
__device__ __forceinline__ float softplusf_(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

// Passes 1 and 3: 4 states per thread, kN / 4 consecutive lanes per (sequence, chunk, channel),
// channels fastest: the lanes of a warp read 32 / (kN / 4) consecutive channels of one time step,
// and the B_t / C_t loads are 4-element vectors (broadcast within the warp). A thread holds 4 of
// A and h instead of kN (the first version held all of a channel's states: 4x fewer threads,
// each with a long dependent loop per step); y = sum_n C h is completed by xor shuffles over the
// channel's lanes. Threads past the last channel still take part in the shuffles.
template <class T, int kN, bool kOut, bool kVec, bool kGate>
__global__ void __launch_bounds__(128)
    scan_fwd_chunk_k(const T* __restrict__ u, const T* __restrict__ delta, const T* __restrict__ A_log,
                     const T* __restrict__ Bm, const T* __restrict__ Cm, const T* __restrict__ Dv,
                     const T* __restrict__ dt_bias, const T* __restrict__ z, int64_t ldz, T* __restrict__ y,
                     float* __restrict__ states, float* __restrict__ dtsum, int64_t Bsz, int64_t T_, int64_t Dc, int N,
                     int64_t chunk) {
  constexpr int kLPC = kN / 4;  // lanes per channel
  const int64_t nch = (T_ + chunk - 1) / chunk;
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int q = int(idx % kLPC), n0 = 4 * q;  // this thread's states n0 .. n0 + 3
  const int64_t row = idx / kLPC;              // (b, k, c), c fastest
  const bool valid = row < Bsz * nch * Dc;
  const int64_t c = row % Dc, k = (row / Dc) % nch, b = row / (Dc * nch);
  float A2[4], h[4];  // A2 = A log2(e): exp(dt A) = exp2(dt A2)
  // Pass 3 starts from the previous chunk's final state (pass 2 wrote it), pass 1 from zero.
  const float* h0 = (kOut && valid && k > 0) ? states + ((b * nch + k - 1) * Dc + c) * N : nullptr;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const bool on = valid && n0 + j < N;
    A2[j] = on ? -expf(ld(A_log, c * N + n0 + j)) * kLog2e : 0.0f;
    h[j] = (h0 && on) ? h0[n0 + j] : 0.0f;
  }
  const float bias = valid ? ld(dt_bias, c) : 0.0f, Dskip = valid ? ld(Dv, c) : 0.0f;
  const int64_t s = k * chunk, e = valid ? (s + chunk < T_ ? s + chunk : T_) : s;
  // Every lane of a warp must run the same number of shuffle steps: the warp's longest chunk.
  int64_t len = e - s;
  if constexpr (kOut) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const int64_t other = __shfl_xor_sync(0xffffffffu, len, o);
      len = other > len ? other : len;
    }
  }
  float S = 0.0f;
#pragma unroll 2
  for (int64_t jt = 0; jt < len; ++jt) {
    const int64_t t = s + jt;
    const bool live = t < e;  // false past this thread's chunk (pass 3 only) or for an invalid thread
    const int64_t i = (b * T_ + t) * Dc + c;
    float dt = 0.0f, uv = 0.0f;
    if (live) {
      dt = softplusf_(ld(delta, i) + bias);
      uv = ld(u, i);
    }
    const float dtu = dt * uv;
    S += dt;
    float Bv[4], Cv[4];
    const int64_t bt = live ? (b * T_ + t) * N : 0;  // (an invalid thread's b may be past the batch)
    ld4<kVec>(Bm, bt, n0, N, Bv);
    if constexpr (kOut) ld4<kVec>(Cm, bt, n0, N, Cv);
    float acc = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      h[j] = exp2f(dt * A2[j]) * h[j] + dtu * Bv[j];  // the CPU's expression (its exp as exp2); dt 0: unchanged
      if constexpr (kOut) acc += Cv[j] * h[j];
    }
    if constexpr (kOut) {
#pragma unroll
      for (int o = 1; o < kLPC; o <<= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
      if (live && q == 0) {
        float yv = acc + Dskip * uv;
        if constexpr (kGate) {  // the fused output gate (gmu_gate's expression)
          const float zv = ld(z, (b * T_ + t) * ldz + c);
          yv = zv * sigmoidf_(zv) * yv;
        }
        st(y, i, yv);
      }
    }
  }
  if constexpr (!kOut) {
    if (valid) {
      float* sp = states + row * N;
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (n0 + j < N) sp[n0 + j] = h[j];
      if (q == 0) dtsum[row] = S;
    }
  }
}

// Pass 2: thread per (b, c, n), n fastest (the states' layout).
template <class T>
__global__ void scan_fwd_combine_k(const T* __restrict__ A_log, float* __restrict__ states,
                                   const float* __restrict__ dtsum, int64_t Bsz, int64_t nch, int64_t Dc, int N) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= Bsz * Dc * N) return;
  const int64_t n = idx % N, c = (idx / N) % Dc, b = idx / (N * Dc);
  const float A = -expf(ld(A_log, c * N + n));
  float H = 0.0f;
  for (int64_t k = 0; k < nch; ++k) {
    float* sp = states + ((b * nch + k) * Dc + c) * N + n;
    H = expf(A * dtsum[(b * nch + k) * Dc + c]) * H + *sp;
    *sp = H;
  }
}
}  // namespace

template <class T>
void selective_scan_fwd(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                        const T* dt_bias, T* y, float* states, int64_t B, int64_t T_, int64_t Dc, int64_t N,
                        int64_t chunk, void* s, const ScanGate<T>& gate) {
  HS_CHECK(N >= 1 && N <= 64, "selective_scan_fwd (CUDA): d_state ", N, " outside [1, 64]");
  HS_CHECK(chunk >= 1, "selective_scan_fwd (CUDA): chunk must be >= 1");
  if (B * Dc == 0 || T_ == 0) return;
  cudaStream_t st_ = S(s);
  const int64_t nch = (T_ + chunk - 1) / chunk, rows = B * nch * Dc;
  float* dtsum = nullptr;
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&dtsum), static_cast<size_t>(rows) * sizeof(float), st_);
  HS_CHECK(e == cudaSuccess, "selective_scan_fwd (CUDA): scratch of ", rows * 4, " bytes: ", cudaGetErrorString(e));
  const int n = static_cast<int>(N);
  const bool vec = N % 4 == 0 && aligned16(Bm) && aligned16(Cm);
  auto pass = [&](auto out) {  // out: std::true_type for pass 3
    constexpr bool kOut = decltype(out)::value;
    auto go = [&](auto kn, auto kvec) {
      constexpr int kN = decltype(kn)::value;
      constexpr bool kV = decltype(kvec)::value;
      const int64_t blocks = (rows * (kN / 4) + 127) / 128;
      HS_CHECK(blocks < (int64_t{1} << 31), "selective_scan_fwd (CUDA): grid too large");
      // The gate only matters in pass 3; its own instance keeps the ungated one's registers.
      auto kern = kOut && gate.z ? scan_fwd_chunk_k<T, kN, kOut, kV, kOut> : scan_fwd_chunk_k<T, kN, kOut, kV, false>;
      kern<<<static_cast<unsigned>(blocks), 128, 0, st_>>>(u, delta, A_log, Bm, Cm, D, dt_bias, gate.z, gate.ldz, y,
                                                           states, dtsum, B, T_, Dc, n, chunk);
    };
    using Yes = std::true_type;
    using No = std::false_type;
    if (N <= 16)
      vec ? go(std::integral_constant<int, 16>{}, Yes{}) : go(std::integral_constant<int, 16>{}, No{});
    else if (N <= 32)
      vec ? go(std::integral_constant<int, 32>{}, Yes{}) : go(std::integral_constant<int, 32>{}, No{});
    else
      vec ? go(std::integral_constant<int, 64>{}, Yes{}) : go(std::integral_constant<int, 64>{}, No{});
  };
  pass(std::false_type{});
  HS_LAUNCH_CHECK("selective_scan_fwd (local chunks)", "B = ", B, ", T = ", T_, ", Dc = ", Dc, ", N = ", N);
  phase("scan_fwd.local");
  scan_fwd_combine_k<T><<<blocks_for(B * Dc * N, 256), 256, 0, st_>>>(A_log, states, dtsum, B, nch, Dc, n);
  HS_LAUNCH_CHECK("selective_scan_fwd (chunk combine)", "B = ", B, ", Dc = ", Dc, ", N = ", N, ", chunks = ", nch);
  phase("scan_fwd.combine");
  pass(std::true_type{});
  HS_LAUNCH_CHECK("selective_scan_fwd (output)", "B = ", B, ", T = ", T_, ", Dc = ", Dc, ", N = ", N);
  phase("scan_fwd.output");
  cudaFreeAsync(dtsum, st_);
}

template void selective_scan_fwd<float>(const float*, const float*, const float*, const float*, const float*,
                                        const float*, const float*, float*, float*, int64_t, int64_t, int64_t,
                                        int64_t, int64_t, void*, const ScanGate<float>&);
template void selective_scan_fwd<bf16>(const bf16*, const bf16*, const bf16*, const bf16*, const bf16*, const bf16*,
                                       const bf16*, bf16*, float*, int64_t, int64_t, int64_t, int64_t, int64_t, void*,
                                       const ScanGate<bf16>&);

}  // namespace hyscale::kernels::cuda
