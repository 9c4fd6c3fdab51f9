#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/rope.h"
#include "kernels/gemm.h"

namespace hyscale::kernels::cpu {

namespace {
constexpr int64_t kBq = 64;  // query rows per tile
constexpr int64_t kBk = 64;  // keys per tile

inline int64_t eff_window(int64_t window, int64_t T_) { return (window <= 0 || window > T_) ? T_ : window; }
}  // namespace

template <class T>
void attention_fwd(const T* q, const T* k, const T* v, T* out, T* lse, int64_t B, int64_t T_, int64_t H, int64_t Hk,
                   int64_t D, int64_t Dv, double scale_d, int64_t window) {
  const int64_t W = eff_window(window, T_);
  const int64_t rep = H / Hk;
  const int64_t nqb = (T_ + kBq - 1) / kBq;
  const T scale = static_cast<T>(scale_d);
  const T ninf = -std::numeric_limits<T>::infinity();
#pragma omp parallel
  {
    AlignedBuf<T> S(kBq * kBk), acc(kBq * Dv), m(kBq), l(kBq);
#pragma omp for collapse(3) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t qb = 0; qb < nqb; ++qb) {
          const int64_t g = h / rep;
          const int64_t i0 = qb * kBq, i1 = std::min(T_, i0 + kBq), nq = i1 - i0;
          const T* qblk = q + ((b * T_ + i0) * H + h) * D;
          std::fill(acc.begin(), acc.end(), T(0));
          std::fill(m.begin(), m.end(), ninf);
          std::fill(l.begin(), l.end(), T(0));
          const int64_t lo = std::max<int64_t>(0, i0 - W + 1);
          for (int64_t j0 = lo - lo % kBk; j0 < i1; j0 += kBk) {
            const int64_t j1 = std::min(i1, j0 + kBk), nk = j1 - j0;
            const T* kblk = k + ((b * T_ + j0) * Hk + g) * D;
            const T* vblk = v + ((b * T_ + j0) * Hk + g) * Dv;
            gemm<T>(false, true, nq, nk, D, scale, qblk, H * D, kblk, Hk * D, T(0), S.data(), kBk);
            for (int64_t r = 0; r < nq; ++r) {
              const int64_t i = i0 + r;
              T* s = S.data() + r * kBk;
              // Visible columns of this row in the tile: keys max(j0, i-W+1) .. min(i, j1-1).
              const int64_t c0 = std::max<int64_t>(0, i - W + 1 - j0), c1 = std::min<int64_t>(nk - 1, i - j0);
              if (c0 > c1) {  // nothing visible in this tile for this row
                std::fill(s, s + nk, T(0));
                continue;
              }
              T mx = ninf;
#pragma omp simd reduction(max : mx)
              for (int64_t c = c0; c <= c1; ++c) mx = std::max(mx, s[c]);
              const T mnew = std::max(m[r], mx);
              const T alpha = kexp<T>(m[r] - mnew);  // 0 on the first visible tile (m = -inf)
              T rs = 0;
#pragma omp simd reduction(+ : rs)
              for (int64_t c = 0; c < nk; ++c) {
                const T p = (c >= c0 && c <= c1) ? kexp<T>(s[c] - mnew) : T(0);
                s[c] = p;
                rs += p;
              }
              l[r] = l[r] * alpha + rs;
              m[r] = mnew;
              T* a = acc.data() + r * Dv;
#pragma omp simd
              for (int64_t d = 0; d < Dv; ++d) a[d] *= alpha;
            }
            gemm<T>(false, false, nq, Dv, nk, T(1), S.data(), kBk, vblk, Hk * Dv, T(1), acc.data(), Dv);
          }
          for (int64_t r = 0; r < nq; ++r) {
            const int64_t i = i0 + r;
            T* o = out + ((b * T_ + i) * H + h) * Dv;
            const T inv = l[r] > 0 ? T(1) / l[r] : T(0);
            for (int64_t d = 0; d < Dv; ++d) o[d] = acc[r * Dv + d] * inv;
            lse[(b * H + h) * T_ + i] = l[r] > 0 ? m[r] + std::log(l[r]) : ninf;
          }
        }
  }
}

template <class T>
void attention_bwd(const T* q, const T* k, const T* v, const T* out, const T* dout, const T* lse, T* dq, T* dk, T* dv,
                   int64_t B, int64_t T_, int64_t H, int64_t Hk, int64_t D, int64_t Dv, double scale_d,
                   int64_t window) {
  const int64_t W = eff_window(window, T_);
  const int64_t rep = H / Hk;
  const int64_t nqb = (T_ + kBq - 1) / kBq;
  const T scale = static_cast<T>(scale_d);
  // Per-(b, h) dK/dV, summed over the heads of each KV group afterwards in a fixed
  // order: more parallelism than one task per KV head, and still deterministic.
  AlignedBuf<T> dk_h(static_cast<size_t>(B * H * T_ * D)), dv_h(static_cast<size_t>(B * H * T_ * Dv));
  std::memset(dq, 0, sizeof(T) * B * T_ * H * D);
#pragma omp parallel
  {
    AlignedBuf<T> P(kBq * kBk), dP(kBq * kBk), Drow(kBq);
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / rep;
        T* dkh = dk_h.data() + (b * H + h) * T_ * D;  // [T, D]
        T* dvh = dv_h.data() + (b * H + h) * T_ * Dv;  // [T, Dv]
        std::fill(dkh, dkh + T_ * D, T(0));
        std::fill(dvh, dvh + T_ * Dv, T(0));
        for (int64_t qb = 0; qb < nqb; ++qb) {
          const int64_t i0 = qb * kBq, i1 = std::min(T_, i0 + kBq), nq = i1 - i0;
          const T* qblk = q + ((b * T_ + i0) * H + h) * D;
          const T* doblk = dout + ((b * T_ + i0) * H + h) * Dv;
          T* dqblk = dq + ((b * T_ + i0) * H + h) * D;
          const T* lrow = lse + (b * H + h) * T_ + i0;
          for (int64_t r = 0; r < nq; ++r) {  // D_i = rowsum(dO * O)
            const T* o = out + ((b * T_ + i0 + r) * H + h) * Dv;
            const T* d_o = doblk + r * H * Dv;
            T s = 0;
            for (int64_t d = 0; d < Dv; ++d) s += o[d] * d_o[d];
            Drow[r] = s;
          }
          const int64_t lo = std::max<int64_t>(0, i0 - W + 1);
          for (int64_t j0 = lo - lo % kBk; j0 < i1; j0 += kBk) {
            const int64_t j1 = std::min(i1, j0 + kBk), nk = j1 - j0;
            const T* kblk = k + ((b * T_ + j0) * Hk + g) * D;
            const T* vblk = v + ((b * T_ + j0) * Hk + g) * Dv;
            gemm<T>(false, true, nq, nk, D, scale, qblk, H * D, kblk, Hk * D, T(0), P.data(), kBk);
            gemm<T>(false, true, nq, nk, Dv, T(1), doblk, H * Dv, vblk, Hk * Dv, T(0), dP.data(), kBk);
            for (int64_t r = 0; r < nq; ++r) {
              const int64_t i = i0 + r;
              T* p = P.data() + r * kBk;
              T* dp = dP.data() + r * kBk;
              const T li = lrow[r];
              const int64_t c0 = std::max<int64_t>(0, i - W + 1 - j0), c1 = std::min<int64_t>(nk - 1, i - j0);
              const bool row_ok = li != -std::numeric_limits<T>::infinity();
              const T Dr = Drow[r];
#pragma omp simd
              for (int64_t c = 0; c < nk; ++c) {
                const T pv = (row_ok && c >= c0 && c <= c1) ? kexp<T>(p[c] - li) : T(0);
                p[c] = pv;
                dp[c] = pv * (dp[c] - Dr);  // dS
              }
            }
            // dV_j += P^T dO ; dK_j += scale dS^T Q ; dQ_i += scale dS K
            gemm<T>(true, false, nk, Dv, nq, T(1), P.data(), kBk, doblk, H * Dv, T(1), dvh + j0 * Dv, Dv);
            gemm<T>(true, false, nk, D, nq, scale, dP.data(), kBk, qblk, H * D, T(1), dkh + j0 * D, D);
            gemm<T>(false, false, nq, D, nk, scale, dP.data(), kBk, kblk, Hk * D, T(1), dqblk, H * D);
          }
        }
      }
    // Reduce per-head dK/dV into the KV heads, heads summed in index order.
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T_; ++t)
        for (int64_t g = 0; g < Hk; ++g) {
          T* dkr = dk + ((b * T_ + t) * Hk + g) * D;
          T* dvr = dv + ((b * T_ + t) * Hk + g) * Dv;
          for (int64_t d = 0; d < D; ++d) dkr[d] = 0;
          for (int64_t d = 0; d < Dv; ++d) dvr[d] = 0;
          for (int64_t j = 0; j < rep; ++j) {
            const int64_t h = g * rep + j;
            const T* sk = dk_h.data() + ((b * H + h) * T_ + t) * D;
            const T* sv = dv_h.data() + ((b * H + h) * T_ + t) * Dv;
            for (int64_t d = 0; d < D; ++d) dkr[d] += sk[d];
            for (int64_t d = 0; d < Dv; ++d) dvr[d] += sv[d];
          }
        }
  }
}

#define HS_INST(T)                                                                                              \
  template void attention_fwd<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t, int64_t, int64_t,      \
                                 int64_t, int64_t, double, int64_t);                                            \
  template void attention_bwd<T>(const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, \
                                 int64_t, int64_t, int64_t, int64_t, int64_t, double, int64_t);
HS_INST(float)
HS_INST(double)
#undef HS_INST

}  // namespace hyscale::kernels::cpu

namespace hyscale::kernels::cpu {

template <class T>
void attention_decode(const T* q, const T* kc, const T* vc, T* out, int64_t B, int64_t H, int64_t Hk, int64_t D,
                      int64_t Dv, int64_t cap, const int64_t* n_valid_rows, double scale_d, int64_t k_pos,
                      int64_t k_head, int64_t v_pos, int64_t v_head) {
  if (k_head == 0) k_head = D;
  if (k_pos == 0) k_pos = Hk * D;
  if (v_head == 0) v_head = Dv;
  if (v_pos == 0) v_pos = Hk * Dv;
  // Per (sequence b, KV head g): the group's rep = H / Hk query heads against the cache as two
  // small GEMMs read straight from the strided cache — S = scale Q_g K_g^T [rep, n], softmax,
  // O_g = S V_g [rep, Dv] — so every K and V row is streamed once for the whole group (decoding
  // is bound by reading the cache). Few tasks (batch 1): BLAS threads each GEMM; many: one task
  // per thread.
  const int64_t rep = H / Hk, tasks = B * Hk;
  const bool task_parallel = tasks >= num_threads();
  auto run = [&](int64_t task) {
    const int64_t b = task / Hk, g = task % Hk, n = n_valid_rows[b];
    const T* Qg = q + (b * H + g * rep) * D;  // rep query heads, contiguous
    const T* Kg = kc + b * cap * k_pos + g * k_head;
    const T* Vg = vc + b * cap * v_pos + g * v_head;
    T* Og = out + (b * H + g * rep) * Dv;
    std::vector<T> S(static_cast<size_t>(rep * n));
    gemm<T>(false, true, rep, n, D, static_cast<T>(scale_d), Qg, D, Kg, k_pos, T(0), S.data(), n);
    for (int64_t r = 0; r < rep; ++r) {
      T* sr = S.data() + r * n;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < n; ++j) mx = std::max(mx, sr[j]);
      T z = 0;
      for (int64_t j = 0; j < n; ++j) z += (sr[j] = kexp<T>(sr[j] - mx));
      const T inv = T(1) / z;
      for (int64_t j = 0; j < n; ++j) sr[j] *= inv;
    }
    gemm<T>(false, false, rep, Dv, n, T(1), S.data(), n, Vg, v_pos, T(0), Og, Dv);
  };
  if (task_parallel) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) run(t);
  } else {
    for (int64_t t = 0; t < tasks; ++t) run(t);
  }
}

template <class T>
void decode_rope_append(const T* qkv, T* q_out, T* k_cache, T* v_cache, const int64_t* n_tok, int64_t B, int64_t H,
                        int64_t Hk, int64_t D, int64_t cap, bool ring, double rope_base) {
  const int64_t W = (H + 2 * Hk) * D;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t pos = n_tok[b] - 1;
    HS_CHECK(pos >= 0, "decode_rope_append: row ", b, " has ", n_tok[b], " tokens");
    HS_CHECK(Hk == 0 || ring || pos < cap, "decode_rope_append: position ", pos, " outside a cache of ", cap);
    const T* row = qkv + b * W;
    auto put = [&](const T* src, T* dst, int64_t heads, bool rotate) {
      if (rotate) rope_fwd<T>(src, dst, 1, 1, heads, D, rope_base, pos);
      else std::copy(src, src + heads * D, dst);
    };
    put(row, q_out + b * H * D, H, rope_base > 0);
    if (Hk == 0) continue;
    const int64_t slot = ring ? pos % cap : pos;
    put(row + H * D, k_cache + (b * cap + slot) * Hk * D, Hk, rope_base > 0);
    put(row + (H + Hk) * D, v_cache + (b * cap + slot) * Hk * D, Hk, false);
  }
}
template void decode_rope_append<float>(const float*, float*, float*, float*, const int64_t*, int64_t, int64_t,
                                        int64_t, int64_t, int64_t, bool, double);
template void decode_rope_append<double>(const double*, double*, double*, double*, const int64_t*, int64_t, int64_t,
                                         int64_t, int64_t, int64_t, bool, double);

template void attention_decode<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t,
                                      int64_t, int64_t, int64_t, const int64_t*, double, int64_t, int64_t, int64_t,
                                      int64_t);
template void attention_decode<double>(const double*, const double*, const double*, double*, int64_t, int64_t,
                                       int64_t, int64_t, int64_t, int64_t, const int64_t*, double, int64_t, int64_t,
                                       int64_t, int64_t);

}  // namespace hyscale::kernels::cpu
