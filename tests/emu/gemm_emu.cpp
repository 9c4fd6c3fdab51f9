// kernels::cuda::gemm (kernels/cuda.h) for the emulated-device build of the library
// (test_gpu_emu): cuBLASLt is a library, not one of hyscale's kernels, so instead of emulating
// it this computes the documented contract directly on the host. Row-major
//   C[b] (M x N) = alpha op(A[b]) op(B[b]) + beta C[b],
// op(A) = A^T when ta (A stored K x M), op(B) = B^T when tb (B stored N x K), fp32 accumulation
// in k order, bf16 operands and outputs as their 16 bits (output rounded to nearest even);
// beta = 0 never reads C (cuBLAS's rule: C may hold NaN). The checks are gemm_lt.cu's.
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "cuda_emu.h"
#include "kernels/cuda.h"

namespace hyscale::kernels::cuda {

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda, const void* B,
          int64_t ldb, float beta, void* C, int64_t ldc, bool ab_bf16, bool c_bf16, int64_t batch, int64_t stride_a,
          int64_t stride_b, int64_t stride_c, void* stream) {
  if (M == 0 || N == 0 || batch == 0) return;
  HS_CHECK(K > 0, "gemm (cuBLASLt): K = 0 (the caller zero-fills C)");
  HS_CHECK(batch < (int64_t{1} << 31), "gemm (cuBLASLt): batch ", batch, " too large");
  HS_CHECK(lda >= (ta ? M : K) && ldb >= (tb ? K : N) && ldc >= N, "gemm (emulated): leading dimensions too small");
  // queued on the stream as cuBLASLt is (recorded while the stream captures a graph)
  const cudaError_t qe = emu::enqueue(stream != nullptr ? stream : current_stream(), [=] {
  auto in = [ab_bf16](const void* p, int64_t i) -> float {
    return ab_bf16 ? emu::bf2f(static_cast<const uint16_t*>(p)[i]) : static_cast<const float*>(p)[i];
  };
  std::vector<float> row(static_cast<size_t>(N));
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t oa = b * stride_a, ob = b * stride_b, oc = b * stride_c;
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) {
          const float a = in(A, oa + (ta ? k * lda + m : m * lda + k));
          const float x = in(B, ob + (tb ? n * ldb + k : k * ldb + n));
          acc += a * x;
        }
        row[n] = alpha * acc;
      }
      for (int64_t n = 0; n < N; ++n) {
        const int64_t i = oc + m * ldc + n;
        if (c_bf16) {
          uint16_t* c = static_cast<uint16_t*>(C);
          c[i] = emu::f2bf(beta == 0.0f ? row[n] : row[n] + beta * emu::bf2f(c[i]));
        } else {
          float* c = static_cast<float*>(C);
          c[i] = beta == 0.0f ? row[n] : row[n] + beta * c[i];
        }
      }
    }
  }
  });
  HS_CHECK(qe == cudaSuccess, "gemm (cuBLASLt, emulated): ", cudaGetErrorString(qe));
}

}  // namespace hyscale::kernels::cuda
