#include "kernels/selective_scan.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/vec_math.h"

namespace hyscale::kernels::cpu {

namespace {
constexpr int64_t kCB = 8;      // channels per block (one task's working set: kCB x N states)
constexpr int64_t kGroups = 8;  // channel groups for the dB/dC partial sums (fixed: deterministic)

// softplus with the usual threshold (log1p(exp(x)) == x in fp32 beyond 20); derivative sigmoid.
// fp32: the vectorisable softplusf_fast (vec_math.h), computed for a block's channels at once
// (the scalar log1pf call per (t, c) was 60 % of the forward's time); f64 (gradient checks): libm.
template <class T> inline T softplus(T x) { return x > T(20) ? x : std::log1p(kexp<T>(x)); }
template <> inline float softplus<float>(float x) { return softplusf_fast(x); }
template <class T> inline T dsoftplus(T x) { return x > T(20) ? T(1) : ksigmoid<T>(x); }

// dt[j] = softplus(delta[row + c0 + j] + dt_bias[c0 + j]), j < nc (one block of channels at step t).
template <class T> inline void block_dt(const T* delta_row, const T* bias, int64_t nc, T* dt) {
#pragma omp simd
  for (int64_t j = 0; j < nc; ++j) dt[j] = softplus(delta_row[j] + bias[j]);
}
}  // namespace

template <class T>
void selective_scan_fwd(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                        const T* dt_bias, T* y, T* states, int64_t B, int64_t T_, int64_t Dc, int64_t N,
                        int64_t chunk, const ScanGate<T>& gate) {
  const int64_t ncb = (Dc + kCB - 1) / kCB;
  const int64_t nch = scan_num_chunks(T_, chunk);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t cb = 0; cb < ncb; ++cb) {
      const int64_t c0 = cb * kCB, c1 = std::min(Dc, c0 + kCB);
      AlignedBuf<T> h(kCB * N), A(kCB * N);
      std::fill(h.begin(), h.end(), T(0));
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t n = 0; n < N; ++n) A[(c - c0) * N + n] = -std::exp(A_log[c * N + n]);
      for (int64_t t = 0; t < T_; ++t) {
        const T* Bt = Bm + (b * T_ + t) * N;
        const T* Ct = Cm + (b * T_ + t) * N;
        const int64_t row = (b * T_ + t) * Dc;
        T dtb[kCB];
        block_dt(delta + row + c0, dt_bias + c0, c1 - c0, dtb);
        for (int64_t c = c0; c < c1; ++c) {
          const T dt = dtb[c - c0];
          const T uv = u[row + c];
          const T dtu = dt * uv;
          T* hc = h.data() + (c - c0) * N;
          const T* Ac = A.data() + (c - c0) * N;
          T acc = 0;
#pragma omp simd reduction(+ : acc)
          for (int64_t n = 0; n < N; ++n) {
            hc[n] = kexp<T>(dt * Ac[n]) * hc[n] + dtu * Bt[n];
            acc += Ct[n] * hc[n];
          }
          const T yv = acc + D[c] * uv;
          if (gate.z) {
            const T zv = gate.z[(b * T_ + t) * gate.ldz + c];
            y[row + c] = zv * ksigmoid<T>(zv) * yv;  // gmu_gate_fwd's expression
          } else {
            y[row + c] = yv;
          }
        }
        if ((t + 1) % chunk == 0 || t == T_ - 1) {
          const int64_t k = t / chunk;
          for (int64_t c = c0; c < c1; ++c)
            std::memcpy(states + ((b * nch + k) * Dc + c) * N, h.data() + (c - c0) * N, sizeof(T) * N);
        }
      }
    }
}

template <class T>
void selective_scan_bwd(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                        const T* dt_bias, const T* states, const T* dy, T* du, T* ddelta, T* dA_log, T* dBm, T* dCm,
                        T* dD, T* ddt_bias, int64_t B, int64_t T_, int64_t Dc, int64_t N, int64_t chunk,
                        const ScanGate<T>& gate) {
  const int64_t ncb = (Dc + kCB - 1) / kCB;
  const int64_t G = std::min(kGroups, ncb);
  const int64_t nch = scan_num_chunks(T_, chunk);
  const int64_t L = std::min(chunk, T_);  // longest chunk
  // Partial sums: dB/dC per (channel group, batch row); dA/dD/dbias per batch row.
  AlignedBuf<T> pB(G * B * T_ * N), pC(G * B * T_ * N), pA(B * Dc * N), pD(B * Dc), pbias(B * Dc);
  std::fill(pB.begin(), pB.end(), T(0));
  std::fill(pC.begin(), pC.end(), T(0));
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      T* dBg = pB.data() + (g * B + b) * T_ * N;
      T* dCg = pC.data() + (g * B + b) * T_ * N;
      AlignedBuf<T> A(kCB * N), gs(kCB * N), hs((L + 1) * kCB * N), dA(kCB * N), dDl(kCB), dbl(kCB);
      for (int64_t cb = ncb * g / G; cb < ncb * (g + 1) / G; ++cb) {
        const int64_t c0 = cb * kCB, c1 = std::min(Dc, c0 + kCB), nc = c1 - c0;
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t n = 0; n < N; ++n) A[(c - c0) * N + n] = -std::exp(A_log[c * N + n]);
        std::fill(gs.begin(), gs.end(), T(0));
        std::fill(dA.begin(), dA.end(), T(0));
        std::fill(dDl.begin(), dDl.end(), T(0));
        std::fill(dbl.begin(), dbl.end(), T(0));
        for (int64_t k = nch - 1; k >= 0; --k) {
          const int64_t s = k * chunk, e = std::min(T_, s + chunk);
          // hs[0] = state before the chunk, hs[i + 1] = state after step s + i (recomputed).
          for (int64_t c = c0; c < c1; ++c) {
            T* h0 = hs.data() + (c - c0) * N;
            if (k == 0)
              std::fill(h0, h0 + N, T(0));
            else
              std::memcpy(h0, states + ((b * nch + k - 1) * Dc + c) * N, sizeof(T) * N);
          }
          for (int64_t t = s; t < e; ++t) {
            const T* Bt = Bm + (b * T_ + t) * N;
            const int64_t row = (b * T_ + t) * Dc;
            T dtb[kCB];
            block_dt(delta + row + c0, dt_bias + c0, nc, dtb);
            for (int64_t c = c0; c < c1; ++c) {
              const T dt = dtb[c - c0];
              const T dtu = dt * u[row + c];
              const T* hp = hs.data() + ((t - s) * kCB + (c - c0)) * N;
              T* hn = hs.data() + ((t - s + 1) * kCB + (c - c0)) * N;
              const T* Ac = A.data() + (c - c0) * N;
#pragma omp simd
              for (int64_t n = 0; n < N; ++n) hn[n] = kexp<T>(dt * Ac[n]) * hp[n] + dtu * Bt[n];
            }
          }
          // Reverse scan. gs holds dL/dh_{t} contributions flowing back from t+1 (already
          // multiplied by exp(dt_{t+1} A)); adding dy_t C_t makes it dL/dh_t.
          for (int64_t t = e - 1; t >= s; --t) {
            const T* Bt = Bm + (b * T_ + t) * N;
            const T* Ct = Cm + (b * T_ + t) * N;
            T* dBt = dBg + t * N;
            T* dCt = dCg + t * N;
            const int64_t row = (b * T_ + t) * Dc;
            T dtb[kCB], dsp[kCB];
#pragma omp simd
            for (int64_t j = 0; j < nc; ++j) {
              const T x = delta[row + c0 + j] + dt_bias[c0 + j];
              dtb[j] = softplus(x);
              dsp[j] = dsoftplus(x);
            }
            for (int64_t c = c0; c < c1; ++c) {
              const int64_t j = c - c0;
              const T dt = dtb[j];
              const T uv = u[row + c];
              T dyv = dy[row + c];
              const T* hcur = hs.data() + ((t - s + 1) * kCB + j) * N;
              if (gate.z) {  // dy is the gated output's: recompute the pre-gate y (gmu_gate_bwd's expressions)
                const T zv = gate.z[(b * T_ + t) * gate.ldz + c], sg = ksigmoid<T>(zv);
                T yv = 0;
#pragma omp simd reduction(+ : yv)
                for (int64_t n = 0; n < N; ++n) yv += Ct[n] * hcur[n];
                yv += D[c] * u[row + c];
                gate.dz[row + c] = dyv * yv * sg * (T(1) + zv * (T(1) - sg));
                dyv = dyv * zv * sg;
              }
              const T* hprev = hs.data() + ((t - s) * kCB + j) * N;
              const T* Ac = A.data() + j * N;
              T* gc = gs.data() + j * N;
              T* dAc = dA.data() + j * N;
              T ddt = 0, duv = 0;
#pragma omp simd reduction(+ : ddt, duv)
              for (int64_t n = 0; n < N; ++n) {
                const T gn = gc[n] + dyv * Ct[n];
                dCt[n] += dyv * hcur[n];
                const T a = kexp<T>(dt * Ac[n]);
                const T ah = a * hprev[n];
                dAc[n] += gn * dt * ah;
                ddt += gn * (Ac[n] * ah + Bt[n] * uv);
                dBt[n] += gn * dt * uv;
                duv += gn * Bt[n];
                gc[n] = gn * a;
              }
              du[row + c] = duv * dt + dyv * D[c];
              dDl[j] += dyv * uv;
              const T dx = ddt * dsp[j];
              ddelta[row + c] = dx;
              dbl[j] += dx;
            }
          }
        }
        for (int64_t j = 0; j < nc; ++j) {
          for (int64_t n = 0; n < N; ++n) pA[(b * Dc + c0 + j) * N + n] = dA[j * N + n] * A[j * N + n];  // dA_log = dA * A
          pD[b * Dc + c0 + j] = dDl[j];
          pbias[b * Dc + c0 + j] = dbl[j];
        }
      }
    }
  // Fixed-order reductions.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B * T_ * N; ++i) {
    const int64_t b = i / (T_ * N), r = i % (T_ * N);
    T sb = 0, sc = 0;
    for (int64_t g = 0; g < G; ++g) {
      sb += pB[(g * B + b) * T_ * N + r];
      sc += pC[(g * B + b) * T_ * N + r];
    }
    dBm[i] = sb;
    dCm[i] = sc;
  }
  for (int64_t c = 0; c < Dc; ++c) {
    T sd = 0, sbias = 0;
    for (int64_t b = 0; b < B; ++b) {
      sd += pD[b * Dc + c];
      sbias += pbias[b * Dc + c];
    }
    dD[c] = sd;
    ddt_bias[c] = sbias;
    for (int64_t n = 0; n < N; ++n) {
      T sa = 0;
      for (int64_t b = 0; b < B; ++b) sa += pA[(b * Dc + c) * N + n];
      dA_log[c * N + n] = sa;
    }
  }
}

#define HS_INST(T)                                                                                                 \
  template void selective_scan_fwd<T>(const T*, const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, \
                                      int64_t, int64_t, int64_t, int64_t, int64_t, const ScanGate<T>&);            \
  template void selective_scan_bwd<T>(const T*, const T*, const T*, const T*, const T*, const T*, const T*,        \
                                      const T*, const T*, T*, T*, T*, T*, T*, T*, T*, int64_t, int64_t, int64_t,  \
                                      int64_t, int64_t, const ScanGate<T>&);
HS_INST(float)
HS_INST(double)
#undef HS_INST

}  // namespace hyscale::kernels::cpu

namespace hyscale::kernels::cpu {

template <class T>
void selective_scan_step(const T* u, const T* delta, const T* A_log, const T* Bm, const T* Cm, const T* D,
                         const T* dt_bias, T* h, T* y, int64_t B, int64_t Dc, int64_t N) {
#pragma omp parallel for collapse(2) schedule(static) if (B * Dc * N > 65536)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < Dc; ++c) {
      // Same expression order as selective_scan_fwd, so step-wise decoding reproduces it.
      const T dt = softplus(delta[b * Dc + c] + dt_bias[c]);
      const T uv = u[b * Dc + c];
      const T dtu = dt * uv;
      const T* Bt = Bm + b * N;
      const T* Ct = Cm + b * N;
      T* hc = h + (b * Dc + c) * N;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        const T A = -std::exp(A_log[c * N + n]);
        hc[n] = kexp<T>(dt * A) * hc[n] + dtu * Bt[n];
        acc += Ct[n] * hc[n];
      }
      y[b * Dc + c] = acc + D[c] * uv;
    }
}

template void selective_scan_step<float>(const float*, const float*, const float*, const float*, const float*,
                                         const float*, const float*, float*, float*, int64_t, int64_t, int64_t);
template void selective_scan_step<double>(const double*, const double*, const double*, const double*, const double*,
                                          const double*, const double*, double*, double*, int64_t, int64_t, int64_t);

}  // namespace hyscale::kernels::cpu
