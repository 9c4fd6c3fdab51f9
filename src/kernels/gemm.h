// GEMM through OpenBLAS (CPU). Row-major:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C,  op(X) = X or X^T.
// lda/ldb/ldc are the row strides of A, B, C as stored (before op).
// Called inside an OpenMP parallel region, the OpenMP build of OpenBLAS runs
// single-threaded, so kernels may tile their work and call this per tile.
#pragma once
#include <cstdint>
#include <string>

namespace hyscale::kernels::cpu {

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Strided batch: for each b, C_b = alpha op(A_b) op(B_b) + beta C_b with A_b = A + b*stride_a, etc.
template <class T>
void gemm_batched(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K, T alpha,
                  const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta,
                  T* C, int64_t ldc, int64_t stride_c);

// OpenBLAS 0.3.21 (Debian 12) does not recognise recent Intel CPUs (e.g. model 207,
// Emerald Rapids) and silently falls back to its SSE3 "Prescott" kernels, 5x slower.
// OpenBLAS picks its kernels when the library loads, so the only remedy is to set
// OPENBLAS_CORETYPE to the matching family (from the CPU's own feature flags) and
// re-execute the program. Call first thing in main(); returns only when no re-exec is
// needed. A user's own OPENBLAS_CORETYPE is always respected. HYSCALE_NO_BLAS_FIX=1 disables.
void fix_blas_core_detection(char** argv);
std::string blas_core_name();

// Number of threads OpenBLAS and OpenMP use (0 = all cores).
void set_num_threads(int n);
int num_threads();

}  // namespace hyscale::kernels::cpu
